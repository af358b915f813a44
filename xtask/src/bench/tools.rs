//! External processes (probes, workloads): started with their output in files, waited for with
//! timeouts, stopped with SIGINT, and killed and reaped when dropped, so an error or Ctrl-C
//! never leaves a probe attached.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT/SIGTERM set a flag that every wait checks, so the bench unwinds through its cleanup
/// guards instead of dying with probes and cgroups left behind.
pub fn install_interrupt_handler() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps, but notices an interrupt.
pub fn nap(d: Duration) -> Result<()> {
    check_interrupted()?;
    std::thread::sleep(d);
    check_interrupted()
}

pub enum Stream {
    Stdout,
    Stderr,
}

/// A child process whose stdout and stderr go to files in the work dir.
pub struct Spawned {
    pub name: String,
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl Spawned {
    pub fn spawn(name: &str, cmd: &mut Command, dir: &Path) -> Result<Spawned> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        check_interrupted()?;
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let stdout = dir.join(format!("{n:03}-{name}.out"));
        let stderr = dir.join(format!("{n:03}-{name}.err"));
        let out =
            File::create(&stdout).with_context(|| format!("creating {}", stdout.display()))?;
        let err =
            File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        Ok(Spawned {
            name: name.to_string(),
            child,
            stdout,
            stderr,
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn poll(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .with_context(|| format!("waiting for {}", self.name))?;
        }
        Ok(self.status)
    }

    /// The exit status if the process has exited, without waiting.
    pub fn exited(&mut self) -> Result<Option<ExitStatus>> {
        self.poll()
    }

    /// The last lines of stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n    ");
        if tail.is_empty() {
            "(stderr empty)".to_string()
        } else {
            format!("stderr:\n    {tail}")
        }
    }

    /// Waits until `needle` shows up in the given stream (the tool says it is attached).
    pub fn wait_ready(&mut self, stream: Stream, needle: &str, timeout: Duration) -> Result<()> {
        let file = match stream {
            Stream::Stdout => self.stdout.clone(),
            Stream::Stderr => self.stderr.clone(),
        };
        let start = Instant::now();
        loop {
            if fs::read(&file)
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
            {
                return Ok(());
            }
            if let Some(status) = self.poll()? {
                bail!(
                    "{} exited ({status}) before printing `{needle}`; {}",
                    self.name,
                    self.stderr_tail()
                );
            }
            if start.elapsed() > timeout {
                bail!(
                    "{} did not print `{needle}` within {timeout:?}; {}",
                    self.name,
                    self.stderr_tail()
                );
            }
            nap(Duration::from_millis(20))?;
        }
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.poll()? {
                return Ok(status);
            }
            if start.elapsed() > timeout {
                self.kill();
                bail!(
                    "{} did not finish within {timeout:?} (killed); {}",
                    self.name,
                    self.stderr_tail()
                );
            }
            nap(Duration::from_millis(5))?;
        }
    }

    /// SIGINT (the tools flush and exit on it), then waits; SIGKILL and an error on timeout.
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.poll()? {
            bail!(
                "{} had already exited ({status}); {}",
                self.name,
                self.stderr_tail()
            );
        }
        // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let start = Instant::now();
        loop {
            if let Some(status) = self.poll()? {
                return Ok(status);
            }
            if start.elapsed() > timeout {
                self.kill();
                bail!(
                    "{} did not exit within {timeout:?} of SIGINT (killed); {}",
                    self.name,
                    self.stderr_tail()
                );
            }
            // Not `nap`: a Ctrl-C here must still let the tool finish its exit.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the tool and requires a clean exit.
    pub fn stop_ok(&mut self, timeout: Duration) -> Result<()> {
        let status = self.stop(timeout)?;
        if !status.success() {
            bail!(
                "{} exited with {status} after SIGINT; {}",
                self.name,
                self.stderr_tail()
            );
        }
        Ok(())
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.poll(), Ok(None) | Err(_)) {
            self.kill();
        }
    }
}
