//! A long-running child process whose stdout is JSON lines: `sensor watch --json`, the Python
//! gRPC consumer (`tests/python/consumer.py`).
//!
//! Why: stream consumers never exit by themselves; tests need what they printed so far, to wait
//! (with a deadline) until they printed something, and to kill them mid-stream (resume tests).
//! stdout is parsed on a background thread as it comes (a line that is not JSON is kept apart
//! and reported), stderr is drained too, so the child never blocks on a pipe.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::strip_ansi;
use crate::util;

#[derive(Default)]
struct State {
    lines: Vec<Value>,
    /// stdout lines that are not JSON.
    garbage: Vec<String>,
    stderr: String,
    stdout_eof: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running JSON-lines producer. Killed (SIGKILL) on drop.
pub struct JsonLines {
    what: String,
    command: String,
    child: Option<Child>,
    status: Option<ExitStatus>,
    shared: Arc<Shared>,
}

impl JsonLines {
    /// Spawns `cmd` (stdin null, stdout and stderr piped and drained). `what` names it in
    /// failure messages.
    pub fn spawn(what: &str, mut cmd: Command) -> JsonLines {
        let command = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what} ({command}): {e}"));
        let shared = Arc::new(Shared::default());
        spawn_stdout_reader(child.stdout.take().unwrap(), shared.clone());
        spawn_stderr_reader(child.stderr.take().unwrap(), shared.clone());
        JsonLines {
            what: what.to_string(),
            command,
            child: Some(child),
            status: None,
            shared,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Every JSON line printed so far.
    pub fn lines(&self) -> Vec<Value> {
        self.shared.lock().lines.clone()
    }

    /// stdout lines that were not JSON.
    pub fn garbage(&self) -> Vec<String> {
        self.shared.lock().garbage.clone()
    }

    /// stderr so far (ANSI codes stripped).
    pub fn stderr(&self) -> String {
        strip_ansi(&self.shared.lock().stderr)
    }

    /// Waits until `f(lines so far)` returns `Some`; panics with `what`, the lines and stderr
    /// after `timeout` or if the process exits first without satisfying it.
    #[track_caller]
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&[Value]) -> Option<T>,
    ) -> T {
        self.try_wait_for(timeout, &mut f).unwrap_or_else(|| {
            panic!(
                "{} did not print {what} within {timeout:?}\n{}",
                self.what,
                self.diagnostics()
            )
        })
    }

    /// [`JsonLines::wait_for`] without the panic: `None` on timeout or end of output.
    pub fn try_wait_for<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&[Value]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if let Some(v) = f(&st.lines) {
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline || st.stdout_eof {
                return None;
            }
            st = self
                .shared
                .cv
                .wait_timeout(st, (deadline - now).min(Duration::from_millis(50)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Whether the process has exited (its status is kept).
    pub fn has_exited(&mut self) -> bool {
        if self.status.is_some() {
            return true;
        }
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        if let Ok(Some(s)) = child.try_wait() {
            self.status = Some(s);
            return true;
        }
        false
    }

    /// SIGKILL and reap; waits (briefly) for the readers to take the last output.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            if let Ok(s) = c.wait() {
                self.status = Some(s);
            }
        }
        util::poll_until(Duration::from_secs(5), Duration::from_millis(10), || {
            self.shared.lock().stdout_eof.then_some(())
        });
    }

    /// The command, exit status, last lines and stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        let st = self.shared.lock();
        let n = st.lines.len();
        let last: Vec<String> = st.lines[n.saturating_sub(8)..]
            .iter()
            .map(|v| util::tail(&v.to_string(), 600).to_string())
            .collect();
        format!(
            "{}: {}\nstatus: {:?}\n{n} JSON lines, last ones:\n{}\nnon-JSON lines: {:?}\nstderr:\n{}",
            self.what,
            self.command,
            self.status,
            last.join("\n"),
            st.garbage.iter().take(5).collect::<Vec<_>>(),
            util::head_tail(&strip_ansi(&st.stderr), 3000, 3000)
        )
    }
}

impl Drop for JsonLines {
    fn drop(&mut self) {
        if self.child.is_some() && std::thread::panicking() {
            eprintln!("--- {} at panic ---\n{}", self.what, self.diagnostics());
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_stdout_reader(r: impl Read + Send + 'static, shared: Arc<Shared>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let line = text.trim_end_matches(['\n', '\r']);
                    if line.trim().is_empty() {
                        continue;
                    }
                    let mut st = shared.lock();
                    match serde_json::from_str::<Value>(line) {
                        Ok(v) => st.lines.push(v),
                        Err(_) => st.garbage.push(line.to_string()),
                    }
                    drop(st);
                    shared.cv.notify_all();
                }
            }
        }
        shared.lock().stdout_eof = true;
        shared.cv.notify_all();
    });
}

fn spawn_stderr_reader(r: impl Read + Send + 'static, shared: Arc<Shared>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut buf = [0u8; 8192];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut st = shared.lock();
                    st.stderr.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if st.stderr.len() > 4 << 20 {
                        st.stderr = util::tail(&st.stderr, 2 << 20).to_string();
                    }
                }
            }
        }
    });
}
