//! The exit-code contract of `sensor`, in one place (documented in docs/operations.md, "Exit
//! codes"). Each command returns an [`Exit`] or a [`CommandError`] that carries one; `main`
//! only turns it into the process's exit status.

use std::fmt;

/// How a `sensor` command ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; a check or an audit found nothing (`doctor`: the sensor can run here; `audit
    /// netpol`: no recorded flow would be denied). Also `--help` and `--version`.
    Success,
    /// 1: the command ran and found what it looks for: recorded flows the policies would deny
    /// (`audit netpol`), a FAIL that keeps the sensor from running on this node (`doctor`).
    Findings,
    /// 1: the command failed (the agent unreachable, a probe refused by the kernel, I/O, no
    /// profile to audit...).
    Failure,
    /// 2: the input is wrong: a flag (clap's errors, folded into one line), the config file or
    /// a setting of `sensor run`, a malformed policy file. Also `sensor` without a command.
    Usage,
}

impl Exit {
    /// The process exit code. Findings share 1 with failures, as `diff` and `grep` would
    /// have it: anything but 0 needs attention; 2 means the command line or a file given to it
    /// must be fixed first.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Findings | Exit::Failure => 1,
            Exit::Usage => 2,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// A command that did not end in [`Exit::Success`]: the message (printed as `error: ...`, one
/// line) and the exit code it ends with.
pub struct CommandError {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl CommandError {
    /// Bad input: exit code 2.
    pub fn usage(error: impl Into<anyhow::Error>) -> CommandError {
        CommandError {
            exit: Exit::Usage,
            error: error.into(),
        }
    }

    /// The check or audit found something: exit code 1.
    pub fn findings(error: impl Into<anyhow::Error>) -> CommandError {
        CommandError {
            exit: Exit::Findings,
            error: error.into(),
        }
    }

    /// The same error (and exit code) behind a context line, as anyhow's `context`.
    pub fn context(self, context: &'static str) -> CommandError {
        CommandError {
            exit: self.exit,
            error: self.error.context(context),
        }
    }
}

/// Any other error is a failure: exit code 1.
impl<E: Into<anyhow::Error>> From<E> for CommandError {
    fn from(error: E) -> CommandError {
        CommandError {
            exit: Exit::Failure,
            error: error.into(),
        }
    }
}

impl fmt::Debug for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} (exit code {}): {:#}",
            self.exit,
            self.exit.code(),
            self.error
        )
    }
}

/// What `main` prints for a failed command: `error: ` and the whole context chain on one line.
impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {:#}", self.error)
    }
}

/// A command's result: `Ok` ends with [`Exit::Success`].
pub type CommandResult = Result<(), CommandError>;

/// The exit code of a command's result; a failure's message goes to stderr first.
pub fn report(result: CommandResult) -> Exit {
    match result {
        Ok(()) => Exit::Success,
        Err(e) => {
            eprintln!("{e}");
            e.exit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<(Exit, u8)> = [Exit::Success, Exit::Findings, Exit::Failure, Exit::Usage]
            .into_iter()
            .map(|e| (e, e.code()))
            .collect();
        assert_eq!(
            codes,
            [
                (Exit::Success, 0),
                (Exit::Findings, 1),
                (Exit::Failure, 1),
                (Exit::Usage, 2)
            ]
        );
    }

    #[test]
    fn an_error_keeps_its_exit_code_behind_context_and_prints_the_chain_on_one_line() {
        let e = CommandError::usage(anyhow::anyhow!("`--x`: bad")).context("sensor run");
        assert_eq!(e.exit, Exit::Usage);
        assert_eq!(e.to_string(), "error: sensor run: `--x`: bad");
        let io = std::io::Error::other("disk on fire");
        let e: CommandError = io.into();
        assert_eq!(e.exit, Exit::Failure);
        assert_eq!(
            CommandError::findings(anyhow::anyhow!("1 flow")).exit,
            Exit::Findings
        );
    }
}
