//! A handle on the agent under test, `sensor run`, and on the client subcommands that reach it
//! over its gRPC socket (`sensor profiles list|show`, `sensor seccomp`, `sensor netpol`).
//!
//! Why: the agent's contract is its state directory (profiles, drafts), its socket and its exit
//! status, not a stream of events: tests start one agent per test (own state dir, own socket,
//! own kubelet metadata root), drive pods, and poll the state dir and the client subcommands
//! with deadlines. stderr is drained on a background thread (ANSI colour codes stripped) so the
//! agent never blocks on a full pipe and warnings can be asserted on.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kubelet::Kubelet;
use crate::pod::Pod;
use crate::runc::{self, ContainerConfig, Runc};
use crate::sensor::Sensor;
use crate::util;

/// Text on the agent's stderr once its probes are attached and the API task is started.
pub const READY_TEXT: &str = "agent running";
/// How long the agent may take to load, attach and listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the agent may take to exit after SIGINT (it flushes its state first).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Time limit of one client subcommand.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the agent may take to learn the exec of [`Daemon::sync_events`]'s marker container
/// (events of a container whose names are not known yet are held for up to 2 s).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// What to start: `sensor run` flags.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub learning_period: String,
    pub flush_interval: String,
    /// `--pod-logs-dir`/`--container-logs-dir` ([`Kubelet::sensor_args`]).
    pub kubelet_args: Vec<String>,
    pub extra: Vec<String>,
    /// A program (and its arguments) that execs the sensor, e.g. `setpriv ... --` to run it
    /// with a deployment's privileges only; empty: run the sensor directly.
    pub wrapper: Vec<String>,
}

impl DaemonConfig {
    /// State in `<dir>/state`, socket `<dir>/s.sock`, learning period 1h, flush every 1s.
    pub fn new(dir: &Path, kubelet: &Kubelet) -> DaemonConfig {
        DaemonConfig {
            state_dir: dir.join("state"),
            socket: dir.join("s.sock"),
            learning_period: "1h".into(),
            flush_interval: "1s".into(),
            kubelet_args: kubelet.sensor_args(),
            extra: Vec::new(),
            wrapper: Vec::new(),
        }
    }

    pub fn wrapped(mut self, wrapper: Vec<String>) -> Self {
        self.wrapper = wrapper;
        self
    }

    pub fn learning_period(mut self, d: &str) -> Self {
        self.learning_period = d.to_string();
        self
    }

    pub fn flush_interval(mut self, d: &str) -> Self {
        self.flush_interval = d.to_string();
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.to_string());
        self
    }

    /// The full `sensor run` argument vector.
    pub fn argv(&self) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "run".into(),
            "--state-dir".into(),
            self.state_dir.display().to_string(),
            "--grpc-listen".into(),
            format!("unix:{}", self.socket.display()),
            "--learning-period".into(),
            self.learning_period.clone(),
            "--flush-interval".into(),
            self.flush_interval.clone(),
        ];
        v.extend(self.kubelet_args.iter().cloned());
        v.extend(self.extra.iter().cloned());
        v
    }
}

#[derive(Default)]
struct Shared {
    stderr: Mutex<(String, bool)>,
    cv: Condvar,
}

/// A running `sensor run`. Killed on drop (SIGKILL) if not stopped.
pub struct Daemon {
    pub config: DaemonConfig,
    child: Option<Child>,
    shared: Arc<Shared>,
    status: Option<ExitStatus>,
    command: String,
}

/// Output of a finished command (a client subcommand, or an agent that exited by itself).
#[derive(Debug, Clone)]
pub struct CmdOutput {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    /// ANSI colour codes stripped.
    pub stderr: String,
    pub timed_out: bool,
    pub duration: Duration,
}

impl CmdOutput {
    /// Panics (with the output) unless the command exited 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(
            !self.timed_out && self.code == Some(0),
            "`{}` failed ({:?}, timed out: {})\nstdout:\n{}\nstderr:\n{}",
            self.command,
            self.code,
            self.timed_out,
            util::tail(&self.stdout, 4000),
            util::tail(&self.stderr, 4000)
        );
        self
    }

    /// stdout parsed as JSON; panics with the text if it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`{}` did not print JSON ({e}):\n{}\nstderr:\n{}",
                self.command,
                util::tail(&self.stdout, 4000),
                util::tail(&self.stderr, 2000)
            )
        })
    }

    /// Non-empty stderr lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// Removes ANSI escape sequences (`ESC [ ... letter`), as tracing colours its output.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Runs `sensor <args>` to completion (killed after `timeout`).
pub fn sensor_cmd<S: AsRef<str>>(args: &[S], timeout: Duration) -> CmdOutput {
    let bin = Sensor::binary();
    let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
    let command = format!("{} {}", bin.display(), args.join(" "));
    let started = Instant::now();
    let mut child = Command::new(&bin)
        .args(&args)
        .env_remove("SENSOR_SERVER")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command}: {e}"));
    let out = collect(child.stdout.take().unwrap());
    let err = collect(child.stderr.take().unwrap());
    let mut timed_out = false;
    let status = util::poll_until(timeout, Duration::from_millis(5), || {
        child.try_wait().ok().flatten()
    })
    .unwrap_or_else(|| {
        timed_out = true;
        let _ = child.kill();
        child.wait().expect("wait for sensor")
    });
    CmdOutput {
        command,
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: strip_ansi(&err.join().unwrap_or_default()),
        timed_out,
        duration: started.elapsed(),
    }
}

fn collect(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl Daemon {
    /// Spawns `sensor run` and waits until it prints [`READY_TEXT`] and its socket exists.
    /// Panics (with its stderr) if it exits first or takes longer than [`START_TIMEOUT`].
    pub fn start(config: DaemonConfig) -> Daemon {
        let mut agent = Daemon::spawn(config);
        agent.wait_started();
        agent
    }

    /// Spawns `sensor run` without waiting for it to start (see [`Daemon::wait_started`]).
    pub fn spawn(config: DaemonConfig) -> Daemon {
        util::require_root();
        let mut argv = config.argv();
        let mut bin = Sensor::binary();
        if let Some((program, args)) = config.wrapper.split_first() {
            argv.insert(0, bin.display().to_string());
            argv.splice(0..0, args.iter().cloned());
            bin = PathBuf::from(program);
        }
        let command = format!("{} {}", bin.display(), argv.join(" "));
        let mut child = Command::new(&bin)
            .args(&argv)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command}: {e}"));
        let shared = Arc::new(Shared::default());
        {
            let shared = shared.clone();
            let mut r = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let mut pending = Vec::new();
                loop {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            pending.extend_from_slice(&buf[..n]);
                            // Strip escapes on whole lines only (a sequence may be split).
                            if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                                let text = strip_ansi(&String::from_utf8_lossy(&pending[..=end]));
                                pending.drain(..=end);
                                let mut st =
                                    shared.stderr.lock().unwrap_or_else(|e| e.into_inner());
                                st.0.push_str(&text);
                                if st.0.len() > 4 << 20 {
                                    st.0 = util::tail(&st.0, 2 << 20).to_string();
                                }
                                drop(st);
                                shared.cv.notify_all();
                            }
                        }
                    }
                }
                let mut st = shared.stderr.lock().unwrap_or_else(|e| e.into_inner());
                st.0.push_str(&strip_ansi(&String::from_utf8_lossy(&pending)));
                st.1 = true;
                drop(st);
                shared.cv.notify_all();
            });
        }
        Daemon {
            config,
            child: Some(child),
            shared,
            status: None,
            command,
        }
    }

    /// Waits until the agent prints [`READY_TEXT`] and its socket exists; panics (with its
    /// stderr) if it exits first or takes longer than [`START_TIMEOUT`].
    pub fn wait_started(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let (ready, eof) = {
                let st = self.shared.stderr.lock().unwrap_or_else(|e| e.into_inner());
                (st.0.contains(READY_TEXT), st.1)
            };
            // "agent running" is logged as the API task starts: wait until the socket answers
            // (after a kill -9 the dead agent's socket file is still there until replaced).
            if ready && is_socket(&self.config.socket) && accepts(&self.config.socket) {
                return;
            }
            let exited = eof || self.has_exited();
            if exited || Instant::now() >= deadline {
                let status = self.reap(Duration::from_secs(2));
                let why = if exited {
                    format!(
                        "exited ({}) before printing {READY_TEXT:?} and listening",
                        status.map_or("?".into(), |s| s.to_string())
                    )
                } else {
                    format!(
                        "did not print {READY_TEXT:?} and listen on {} within {START_TIMEOUT:?}",
                        self.config.socket.display()
                    )
                };
                self.kill();
                panic!(
                    "agent {why}\ncommand: {}\nstderr:\n{}",
                    self.command,
                    util::head_tail(&self.stderr(), 4000, 4000)
                );
            }
            let st = self.shared.stderr.lock().unwrap_or_else(|e| e.into_inner());
            let _ = self.shared.cv.wait_timeout(st, Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `unix:<socket>`, for `--server`.
    pub fn server(&self) -> String {
        format!("unix:{}", self.config.socket.display())
    }

    pub fn state_dir(&self) -> &Path {
        &self.config.state_dir
    }

    /// Everything the agent wrote to stderr so far (no colour codes).
    pub fn stderr(&self) -> String {
        self.shared
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Waits until stderr contains `text`.
    pub fn wait_stderr(&self, text: &str, timeout: Duration) -> bool {
        util::poll_until(timeout, Duration::from_millis(20), || {
            self.stderr().contains(text).then_some(())
        })
        .is_some()
    }

    /// Runs `sensor <args...> --server <this agent>`.
    pub fn client(&self, args: &[&str]) -> CmdOutput {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.push("--server".into());
        v.push(self.server());
        sensor_cmd(&v, CLIENT_TIMEOUT)
    }

    /// `sensor seccomp` for a profile key in `mode` (`enforce`, `audit`): the draft on stdout,
    /// its notes on stderr.
    pub fn seccomp(&self, key: (&str, &str, &str), mode: &str) -> CmdOutput {
        self.client(&[
            "seccomp",
            "--namespace",
            key.0,
            "--workload",
            key.1,
            "--container",
            key.2,
            "--mode",
            mode,
        ])
    }

    /// `sensor profiles list --json [--namespace ns]`: the summaries.
    pub fn list(&self, namespace: Option<&str>) -> Vec<Value> {
        let mut args = vec!["profiles", "list", "--json"];
        if let Some(ns) = namespace {
            args.extend(["--namespace", ns]);
        }
        let out = self.client(&args);
        out.ok();
        match out.json() {
            Value::Array(a) => a,
            other => panic!("`{}` printed {other}, not an array", out.command),
        }
    }

    /// `sensor profiles show --json`: the profile, or `None` if the agent has none (exit 1).
    pub fn show(&self, ns: &str, workload: &str, container: &str) -> Option<Value> {
        let out = self.client(&[
            "profiles",
            "show",
            "--json",
            "--namespace",
            ns,
            "--workload",
            workload,
            "--container",
            container,
        ]);
        if out.code == Some(1) && !out.timed_out {
            return None;
        }
        out.ok();
        Some(out.json())
    }

    /// Polls `profiles show --json` until the profile exists and satisfies `pred`; panics
    /// with `what`, the last profile seen and the agent's stderr on timeout.
    #[track_caller]
    pub fn wait_profile(
        &self,
        key: (&str, &str, &str),
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = None;
        let found = util::poll_until(timeout, Duration::from_millis(250), || {
            let p = self.show(key.0, key.1, key.2)?;
            let ok = pred(&p);
            last = Some(p.clone());
            ok.then_some(p)
        });
        found.unwrap_or_else(|| {
            panic!(
                "profile {}/{}/{} not {what} within {timeout:?}\nlast seen: {}\n{}",
                key.0,
                key.1,
                key.2,
                last.map_or("none (not found)".to_string(), |v| {
                    serde_json::to_string_pretty(&v).unwrap()
                }),
                self.diagnostics()
            )
        })
    }

    /// An event barrier: returns once the agent has handled every kernel event of the
    /// containers that ran to completion before this call (their execs, connections, DNS
    /// answers, file opens, and the final syscall set read when their cgroup went), so that what
    /// they caused is in the anomaly log and the profiles by then. "Nothing was reported" can
    /// then be asserted without waiting a fixed time.
    ///
    /// How: the agent handles kernel events one at a time in the order of its ring buffer, and
    /// a container's cgroup is removed before `runc run` returns. A marker container then runs
    /// `/bin/echo` as a new workload in a namespace of its own (known to kubelet before
    /// it starts, like the test bed's pods, so its events are not held back), and this waits
    /// until that exec is in the marker's profile: a learning profile, so the marker adds no
    /// anomaly and no profile to the test's namespace. Needs what the agent's containers need:
    /// `runc` and the agent's `kubelet` metadata root.
    ///
    /// Not covered: what the agent does on a timer rather than per event (repeat records at the
    /// end of a repeat window, rate windows): wait for a marker of that timer first.
    #[track_caller]
    pub fn sync_events(&self, runc: &Runc, kubelet: &Kubelet) {
        let ns = util::unique_name("sync");
        let pod = Pod::deployment_replica(&ns, "marker").with_container("app");
        kubelet.add_pod(&pod);
        runc.run(
            &ContainerConfig::sh(&pod, "app", "/bin/echo sync >/dev/null"),
            runc::DEFAULT_TIMEOUT,
        )
        .assert_success();
        self.wait_profile(
            (&ns, "marker", "app"),
            "holding the marker's exec of /bin/echo",
            SYNC_TIMEOUT,
            |p| {
                p["execs"]
                    .as_array()
                    .is_some_and(|e| e.iter().any(|x| x["path"] == "/bin/echo"))
            },
        );
    }

    /// `<state>/profiles/<ns>/<workload>/<container>.json`
    pub fn profile_path(&self, ns: &str, workload: &str, container: &str) -> PathBuf {
        profile_path(&self.config.state_dir, ns, workload, container)
    }

    /// `<state>/seccomp/<ns>/<workload>/<container>.json` (`.audit.json` for audit).
    pub fn seccomp_path(&self, ns: &str, workload: &str, container: &str, audit: bool) -> PathBuf {
        let ext = if audit { "audit.json" } else { "json" };
        self.config
            .state_dir
            .join("seccomp")
            .join(ns)
            .join(workload)
            .join(format!("{container}.{ext}"))
    }

    /// `<state>/netpol/<ns>/<workload>.yaml`
    pub fn netpol_path(&self, ns: &str, workload: &str) -> PathBuf {
        self.config
            .state_dir
            .join("netpol")
            .join(ns)
            .join(format!("{workload}.yaml"))
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(pid) = self.pid() {
            util::signal(pid, libc::SIGKILL);
        }
        if self.reap(STOP_TIMEOUT).is_none() {
            panic!("agent did not die within {STOP_TIMEOUT:?} of SIGKILL");
        }
    }

    /// SIGINT, then waits up to [`STOP_TIMEOUT`] for exit. Panics if it does not exit in time.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        if let Some(pid) = self.pid() {
            util::signal(pid, libc::SIGINT);
        }
        let Some(status) = self.reap(STOP_TIMEOUT) else {
            let diag = self.diagnostics();
            self.kill();
            panic!("agent did not exit within {STOP_TIMEOUT:?} of SIGINT\n{diag}");
        };
        // Let the reader take the last lines.
        util::poll_until(Duration::from_secs(5), Duration::from_millis(10), || {
            self.shared
                .stderr
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .then_some(())
        });
        status
    }

    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    fn reap(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.status {
            return Some(s);
        }
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

    /// The command and stderr, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "agent: {}\nstatus: {:?}\nstderr:\n{}",
            self.command,
            self.status,
            util::head_tail(&self.stderr(), 3000, 5000)
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() && std::thread::panicking() {
            eprintln!("--- agent diagnostics at panic ---\n{}", self.diagnostics());
        }
        self.kill();
    }
}

/// `<state>/profiles/<ns>/<workload>/<container>.json`
pub fn profile_path(state: &Path, ns: &str, workload: &str, container: &str) -> PathBuf {
    state
        .join("profiles")
        .join(ns)
        .join(workload)
        .join(format!("{container}.json"))
}

fn accepts(p: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(p).is_ok()
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// Every file under `dir` (recursively), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => out.push(p),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}
