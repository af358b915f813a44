//! A handle on the `sensor` binary under test, run as `sensor trace --json ...`.
//!
//! Why: the tests check the sensor end to end through its public output contract (one JSON
//! object per stdout line), without linking the sensor crate. stdout and stderr are drained on
//! background threads (the sensor never blocks on a full pipe); events accumulate in a shared
//! list that tests poll with deadlines.
//!
//! Binary: `$SENSOR_BIN` if set, else `<workspace>/target/release/sensor` if it exists and is
//! newer than `<workspace>/target/debug/sensor`, else the debug one.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::expect::{self, Expect};
use crate::util;

/// Text on the sensor's stderr that says its probes are attached.
pub const READY_TEXT: &str = "capture started";
/// How long the sensor may take to load and attach.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the sensor may take to exit after SIGINT.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Sensor;

impl Sensor {
    /// The binary under test (see the module docs). Panics if there is none.
    pub fn binary() -> PathBuf {
        if let Some(p) = std::env::var_os("SENSOR_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "SENSOR_BIN={} does not exist", p.display());
            return p;
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let release = workspace.join("target/release/sensor");
        let debug = workspace.join("target/debug/sensor");
        let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
        match (mtime(&release), mtime(&debug)) {
            (Some(r), Some(d)) if r > d => release,
            (Some(_), None) => release,
            (_, Some(_)) => debug,
            (None, None) => panic!(
                "sensor binary not found ({} or {}): build it with `cargo build --release -p sensor` \
                 (or `cargo xtask` equivalent), or set SENSOR_BIN",
                release.display(),
                debug.display()
            ),
        }
    }

    /// Spawns `sensor trace --json <args>` and waits until it reports `capture started`.
    /// Panics (with its stderr) if it exits first or takes longer than [`START_TIMEOUT`].
    pub fn trace<S: AsRef<str>>(args: &[S]) -> SensorProcess {
        util::require_root();
        Sensor::trace_with(&Sensor::binary(), args)
    }

    /// [`Sensor::trace`] with an explicit binary (the test bed's self-tests use a fake one).
    pub fn trace_with<S: AsRef<str>>(bin: &Path, args: &[S]) -> SensorProcess {
        Sensor::trace_wrapped(&[], bin, args)
    }

    /// [`Sensor::trace_with`] run through `wrapper` (a program and its arguments, e.g.
    /// `setpriv ... --` to run with fewer privileges), which must exec the sensor.
    pub fn trace_wrapped<S: AsRef<str>>(
        wrapper: &[String],
        bin: &Path,
        args: &[S],
    ) -> SensorProcess {
        let mut argv: Vec<String> = wrapper.iter().skip(1).cloned().collect();
        if !wrapper.is_empty() {
            argv.push(bin.display().to_string());
        }
        argv.extend(["trace".to_string(), "--json".to_string()]);
        argv.extend(args.iter().map(|a| a.as_ref().to_string()));
        let program = wrapper.first().map_or(bin.to_path_buf(), PathBuf::from);
        let bin = program.as_path();
        let mut child = Command::new(bin)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let shared = Arc::new(Shared::default());
        spawn_stdout_reader(child.stdout.take().unwrap(), shared.clone());
        spawn_stderr_reader(child.stderr.take().unwrap(), shared.clone());
        let mut sp = SensorProcess {
            child: Some(child),
            shared,
            status: None,
            command: format!("{} {}", bin.display(), argv.join(" ")),
        };
        sp.wait_started();
        sp
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    events: Vec<Value>,
    /// stdout lines that are not JSON objects (diagnostics only).
    other_stdout: Vec<String>,
    stderr: String,
    stdout_eof: bool,
    stderr_eof: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn spawn_stdout_reader(r: impl Read + Send + 'static, shared: Arc<Shared>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim_end();
                    let mut st = shared.lock();
                    match serde_json::from_str::<Value>(text) {
                        Ok(v) if v.is_object() => st.events.push(v),
                        _ => st.other_stdout.push(text.to_string()),
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

fn spawn_stderr_reader(mut r: impl Read + Send + 'static, shared: Arc<Shared>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut st = shared.lock();
                    st.stderr.push_str(&String::from_utf8_lossy(&buf[..n]));
                    // Keep memory bounded on a chatty sensor: drop the oldest half past 4 MiB.
                    if st.stderr.len() > 4 << 20 {
                        let cut = util::tail(&st.stderr, 2 << 20).to_string();
                        st.stderr = cut;
                    }
                    drop(st);
                    shared.cv.notify_all();
                }
            }
        }
        shared.lock().stderr_eof = true;
        shared.cv.notify_all();
    });
}

/// A running `sensor trace`. Killed on drop (SIGKILL) if not stopped.
pub struct SensorProcess {
    child: Option<Child>,
    shared: Arc<Shared>,
    status: Option<ExitStatus>,
    command: String,
}

impl SensorProcess {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn wait_started(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut st = self.shared.lock();
        loop {
            if st.stderr.contains(READY_TEXT) {
                return;
            }
            let exited = st.stdout_eof && st.stderr_eof;
            if exited || Instant::now() >= deadline {
                drop(st);
                let status = if exited {
                    self.reap(Duration::from_secs(2))
                } else {
                    None
                };
                let st = self.shared.lock();
                let why = match (exited, status) {
                    (true, s) => format!(
                        "exited ({}) before printing {READY_TEXT:?}",
                        s.map_or("?".into(), |s| s.to_string())
                    ),
                    (false, _) => {
                        format!("did not print {READY_TEXT:?} on stderr within {START_TIMEOUT:?}")
                    }
                };
                let stdout = st.other_stdout.join("\n");
                let events = st.events.len();
                let stderr = st.stderr.clone();
                drop(st);
                self.kill();
                panic!(
                    "sensor {why}.\ncommand: {}\n(does the binary implement `sensor trace --json`?)\n\
                     stderr:\n{}\nnon-JSON stdout:\n{}\n({events} JSON events)",
                    self.command,
                    util::head_tail(&stderr, 4000, 4000),
                    util::tail(&stdout, 4000)
                );
            }
            st = self
                .shared
                .cv
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits up to `timeout` for an event satisfying `pred` (already received or new) and
    /// returns it, or `None`. Returns `None` early if the sensor's stdout closed.
    pub fn try_wait_for(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        let mut st = self.shared.lock();
        loop {
            if let Some(v) = st.events[seen..].iter().find(|v| pred(v)) {
                return Some(v.clone());
            }
            seen = st.events.len();
            let now = Instant::now();
            if st.stdout_eof || now >= deadline {
                return None;
            }
            st = self
                .shared
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for an event satisfying `pred`; panics with the sensor's recent output on timeout.
    pub fn wait_for(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        self.try_wait_for(pred, timeout).unwrap_or_else(|| {
            panic!(
                "no matching sensor event within {timeout:?}\n{}",
                self.diagnostics(None)
            )
        })
    }

    /// Waits for an event matching `e`; on timeout panics listing what was expected and, for
    /// the closest events of the same kind, which conditions they failed.
    pub fn expect(&self, e: &Expect, timeout: Duration) -> Value {
        self.try_wait_for(|v| e.matches(v), timeout)
            .unwrap_or_else(|| {
                panic!(
                    "expected sensor event {e} within {timeout:?}\n{}",
                    self.diagnostics(Some(e))
                )
            })
    }

    /// Waits until at least `n` events match `e` and returns all the matches so far.
    pub fn expect_count(&self, e: &Expect, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            let found: Vec<Value> = st.events.iter().filter(|v| e.matches(v)).cloned().collect();
            let now = Instant::now();
            if found.len() >= n {
                return found;
            }
            if st.stdout_eof || now >= deadline {
                drop(st);
                panic!(
                    "expected {n} sensor events {e} within {timeout:?}, got {}: {found:#?}\n{}",
                    found.len(),
                    self.diagnostics(Some(e))
                );
            }
            st = self
                .shared
                .cv
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// All events so far matching `e`.
    pub fn find_all(&self, e: &Expect) -> Vec<Value> {
        self.shared
            .lock()
            .events
            .iter()
            .filter(|v| e.matches(v))
            .cloned()
            .collect()
    }

    /// All JSON events received so far.
    pub fn events(&self) -> Vec<Value> {
        self.shared.lock().events.clone()
    }

    /// Everything the sensor wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.shared.lock().stderr.clone()
    }

    /// Exit status, once stopped.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// SIGINT, then waits up to [`STOP_TIMEOUT`] for exit and for the rest of stdout (final
    /// summaries: `flow`, `syscalls`, `stats`). Panics if it does not exit in time.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        if let Some(pid) = self.pid() {
            util::signal(pid, libc::SIGINT);
        }
        let Some(status) = self.reap(STOP_TIMEOUT) else {
            self.kill();
            panic!(
                "sensor did not exit within {STOP_TIMEOUT:?} of SIGINT\n{}",
                self.diagnostics(None)
            );
        };
        // stdout EOF after exit: all final lines are in.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut st = self.shared.lock();
        while !(st.stdout_eof && st.stderr_eof) && Instant::now() < deadline {
            st = self
                .shared
                .cv
                .wait_timeout(st, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        status
    }

    fn reap(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = util::poll_until(timeout, Duration::from_millis(10), || {
            child.try_wait().ok().flatten()
        })?;
        self.status = Some(status);
        self.child = None;
        Some(status)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            if let Ok(s) = c.wait() {
                self.status = Some(s);
            }
        }
    }

    /// Recent output for failure messages; with `e`, also the near misses.
    pub fn diagnostics(&self, e: Option<&Expect>) -> String {
        let st = self.shared.lock();
        let mut out = format!(
            "sensor: {}\n{} JSON events received",
            self.command,
            st.events.len()
        );
        if st.stdout_eof {
            out.push_str(" (stdout closed: the sensor exited)");
        }
        out.push('\n');
        if let Some(e) = e {
            out.push_str(&expect::near_misses(e, &st.events, 8));
        }
        let last: Vec<String> = st
            .events
            .iter()
            .rev()
            .take(15)
            .rev()
            .map(|v| format!("  {v}"))
            .collect();
        out.push_str(&format!("last events:\n{}\n", last.join("\n")));
        if !st.other_stdout.is_empty() {
            let other = st.other_stdout.join("\n");
            out.push_str(&format!("non-JSON stdout:\n{}\n", util::tail(&other, 2000)));
        }
        out.push_str(&format!(
            "stderr:\n{}",
            util::head_tail(&st.stderr, 2000, 3000)
        ));
        out
    }
}

impl Drop for SensorProcess {
    fn drop(&mut self) {
        if self.child.is_some() && std::thread::panicking() {
            eprintln!(
                "--- sensor diagnostics at panic ---\n{}",
                self.diagnostics(None)
            );
        }
        self.kill();
    }
}
