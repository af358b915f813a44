//! Usage errors - a bad flag or a bad configuration - end the program with exit code 2 and
//! exactly one line on stderr, so that a supervisor's log (kubelet, systemd) shows the cause at
//! a glance. clap's own rendering spans several lines (tips, usage, a pointer to `--help`).

use super::exit::Exit;

/// Handles a failed command-line parse: help and version are printed as clap prints them; an
/// error becomes one line and [`Exit::Usage`] (exit code 2, as clap has it).
pub fn parse_failure(e: &clap::Error) -> Exit {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            Exit::Success
        }
        // `sensor` alone: the help is the useful answer.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Exit::Usage
        }
        _ => {
            eprintln!("{}", one_line(&e.render().to_string()));
            Exit::Usage
        }
    }
}

/// clap's rendered error on one line: the error, then its tips; the usage block and the
/// pointer to `--help` are left out.
pub fn one_line(rendered: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let mut in_usage = false;
    for line in rendered.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            in_usage = false;
            continue;
        }
        if trimmed.starts_with("Usage:") {
            in_usage = true;
            continue;
        }
        if in_usage || trimmed.starts_with("For more information") {
            continue;
        }
        parts.push(trimmed);
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn rendered(args: &[&str]) -> String {
        crate::cli::Cli::try_parse_from(args)
            .unwrap_err()
            .render()
            .to_string()
    }

    #[test]
    fn clap_errors_become_one_line_with_their_tips() {
        let line = one_line(&rendered(&["sensor", "run", "--stat-dir", "/x"]));
        assert_eq!(
            line,
            "error: unexpected argument '--stat-dir' found; tip: a similar argument exists: \
             '--state-dir'"
        );
        let line = one_line(&rendered(&["sensor", "watch", "--since", "x"]));
        assert!(
            line.starts_with("error: invalid value 'x' for '--since <SEQ>'")
                && !line.contains('\n'),
            "{line}"
        );
        let line = one_line(&rendered(&["sensor", "run", "--state-dir"]));
        assert!(
            line.starts_with("error: a value is required for '--state-dir <DIR>'"),
            "{line}"
        );
    }
}
