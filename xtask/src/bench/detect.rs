//! Anomalies (issue 4): detection latency on the real path and the stream's throughput.
//!
//! 1. Latency (`latency`): `sensor run` with a short learning period; a pod-shaped cgroup (with
//!    kubelet's files) learns a baseline of `/bin/true` execs until its profile is `ready`;
//!    `sensor watch --json` is connected; then the same cgroup execs distinct paths (symlinks to
//!    /bin/true), each an `unexpected-exec` anomaly of its own. Each child stamps
//!    CLOCK_REALTIME right before its `execve`; the bench stamps CLOCK_REALTIME when the
//!    anomaly's JSON line arrives on watch's stdout. Latency = arrival - trigger, matched by the
//!    exec path.
//! 2. Throughput (`stream`): `sensor-dev bench-stream`, the agent's anomaly log + hub + gRPC
//!    server in one process, a publisher at 10k anomalies/s and a fast and a slow client.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::{
    Ctx, READY_TIMEOUT, STOP_TIMEOUT,
    system::{PodCgroup, PodNames, write_kubelet_metadata},
    tools::{Spawned, Stream, check_interrupted, nap},
    worker_result,
};

/// Unexpected execs timed, and their pace.
pub const TRIGGERS: usize = 200;
pub const TRIGGER_RATE: u64 = 20;
/// Execs of /bin/true while learning (the baseline), and their pace.
pub const LEARN_EXECS: usize = 20;
pub const LEARN_RATE: u64 = 50;
/// `sensor run` flags of the latency run.
pub const LEARNING_PERIOD: &str = "4s";
pub const FLUSH_INTERVAL: &str = "1s";
pub const NAMESPACE: &str = "bench";
pub const POD: &str = "detect-latency";
pub const CONTAINER: &str = "app";
/// How long a profile may take to become ready after its first event.
const READY_WAIT: Duration = Duration::from_secs(30);
/// How long the last anomalies may take to arrive after the trigger worker exited.
pub const ARRIVAL_WAIT: Duration = Duration::from_secs(10);

/// `sensor-dev bench-stream` parameters.
pub const STREAM_RATE: u64 = 10_000;
pub const STREAM_SECS: u64 = 5;
/// The agent's per-subscriber hub queue (`HUB_QUEUE` in sensor/src/daemon/mod.rs).
pub const STREAM_QUEUE: usize = 4096;
pub const SLOW_PAUSE_US: u64 = 1000;

/// One line of `sensor watch --json`, stamped on arrival.
struct Arrival {
    at_ns: u64,
    line: String,
}

fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `sensor watch --json` with its stdout read line by line by a thread that stamps each line
/// with CLOCK_REALTIME the moment it is read. Killed and reaped when dropped.
struct Watch {
    child: Child,
    stderr: PathBuf,
    rx: mpsc::Receiver<Arrival>,
    reader: Option<JoinHandle<()>>,
}

impl Watch {
    fn start(ctx: &Ctx, server: &str) -> Result<Watch> {
        check_interrupted()?;
        let stderr = ctx.work.path.join("detect-watch.err");
        let err =
            fs::File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?;
        let mut child = Command::new(&ctx.sensor_bin)
            .args(["watch", "--json", "--server", server])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .context("starting sensor watch")?;
        let stdout = child.stdout.take().context("watch stdout")?;
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let at_ns = realtime_ns();
                        let arrival = Arrival {
                            at_ns,
                            line: line.trim_end().to_string(),
                        };
                        if tx.send(arrival).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Watch {
            child,
            stderr,
            rx,
            reader: Some(reader),
        })
    }

    fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n    ")
    }

    /// Everything that arrived so far (without waiting).
    fn drain(&self, into: &mut Vec<Arrival>) {
        while let Ok(a) = self.rx.try_recv() {
            into.push(a);
        }
    }

    /// Waits up to `timeout` for more lines; false if none came.
    fn wait(&self, into: &mut Vec<Arrival>, timeout: Duration) -> Result<bool> {
        check_interrupted()?;
        match self.rx.recv_timeout(timeout) {
            Ok(a) => {
                into.push(a);
                self.drain(into);
                Ok(true)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(false),
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!(
                "sensor watch closed its output; stderr:\n    {}",
                self.stderr_tail()
            ),
        }
    }

    fn stop(&mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The exec path an anomaly is about (observed evidence, else the fold, else the process).
fn anomaly_path(v: &Value) -> Option<&str> {
    v["evidence"]["observed"]["path"]
        .as_str()
        .or_else(|| v["fold"]["path"].as_str())
        .or_else(|| v["process"]["path"].as_str())
}

/// Symlinks to /bin/true: `<dir>/x-<i>` for the triggers, `<dir>/canary`. Removed when dropped.
struct Links {
    dir: PathBuf,
}

impl Links {
    fn create(dir: PathBuf, count: usize) -> Result<Links> {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let links = Links { dir };
        for name in (0..count)
            .map(|i| format!("x-{i}"))
            .chain(["canary".to_string()])
        {
            let link = links.dir.join(name);
            std::os::unix::fs::symlink("/bin/true", &link)
                .with_context(|| format!("linking {}", link.display()))?;
        }
        Ok(links)
    }

    fn trigger(&self, i: usize) -> String {
        self.dir.join(format!("x-{i}")).display().to_string()
    }

    fn canary(&self) -> String {
        self.dir.join("canary").display().to_string()
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[derive(Debug, Default)]
pub struct Latency {
    pub triggers: usize,
    /// Trigger children that exec'd (exited 0).
    pub exec_ok: u64,
    /// Triggers whose anomaly arrived at the client.
    pub matched: usize,
    /// Sorted, milliseconds.
    pub ms: Vec<f64>,
    /// Of the matched: rule `unexpected-exec`, the pod's names, the process with its path.
    pub attributed: usize,
    /// Of the matched: with at least one ancestor (the worker).
    pub with_ancestry: usize,
    /// Anomalies for a trigger path that arrived more than once.
    pub duplicates: usize,
    /// Anomalies that were not about a trigger or the canary, by rule.
    pub other: BTreeMap<String, u64>,
    pub canary_ms: f64,
    /// First learning exec to `ready` in `sensor profiles list`.
    pub ready_secs: f64,
    /// The triggers' achieved pace.
    pub trigger_secs: f64,
    pub agent_exit: Option<i32>,
}

impl Latency {
    /// Nearest-rank percentile of the latencies (NaN when none).
    pub fn pct(&self, p: f64) -> f64 {
        let n = self.ms.len();
        if n == 0 {
            return f64::NAN;
        }
        self.ms[((p * n as f64).ceil() as usize).clamp(1, n) - 1]
    }

    pub fn max(&self) -> f64 {
        self.ms.last().copied().unwrap_or(f64::NAN)
    }

    pub fn min(&self) -> f64 {
        self.ms.first().copied().unwrap_or(f64::NAN)
    }
}

/// `sensor profiles list --json`: the status of our profile, if listed.
fn profile_status(ctx: &Ctx, server: &str) -> Result<Option<String>> {
    let mut t = Spawned::spawn(
        "detect-profiles-list",
        Command::new(&ctx.sensor_bin).args(["profiles", "list", "--json", "--server", server]),
        &ctx.work.path,
    )?;
    let status = t.wait_exit(Duration::from_secs(30))?;
    if !status.success() {
        return Ok(None);
    }
    let text = fs::read_to_string(&t.stdout).unwrap_or_default();
    let _ = fs::remove_file(&t.stdout);
    let _ = fs::remove_file(&t.stderr);
    let Ok(Value::Array(entries)) = serde_json::from_str::<Value>(&text) else {
        return Ok(None);
    };
    Ok(entries
        .iter()
        .find(|e| {
            e["namespace"] == NAMESPACE && e["workload"] == POD && e["container"] == CONTAINER
        })
        .and_then(|e| e["status"].as_str().map(str::to_string)))
}

/// `bench-worker <cgroup> exec-paced <rate> <paths...>`, waited for; its trigger stamps.
fn exec_paced(
    ctx: &Ctx,
    cgroup: &PodCgroup,
    name: &str,
    rate: u64,
    paths: &[String],
) -> Result<(u64, Vec<u64>, f64)> {
    let mut w = Spawned::spawn(
        name,
        ctx.worker(cgroup)
            .arg("exec-paced")
            .arg(rate.to_string())
            .args(paths),
        &ctx.work.path,
    )?;
    let secs = paths.len() as u64 / rate + 60;
    let status = w.wait_exit(Duration::from_secs(secs))?;
    ensure!(
        status.success(),
        "{name} failed ({status}); {}",
        w.stderr_tail()
    );
    let v = worker_result(&w)?;
    let stamps: Vec<u64> = v["stamps_ns"]
        .as_array()
        .context("worker printed no stamps_ns")?
        .iter()
        .map(|s| s.as_u64().unwrap_or(0))
        .collect();
    ensure!(
        stamps.len() == paths.len(),
        "{name}: {} stamps for {} paths",
        stamps.len(),
        paths.len()
    );
    Ok((
        v["exec_ok"].as_u64().unwrap_or(0),
        stamps,
        v["secs"].as_f64().unwrap_or(f64::NAN),
    ))
}

pub fn latency(ctx: &Ctx) -> Result<Latency> {
    let state = ctx.work.path.join("detect-state");
    let logs = ctx.work.path.join("kubelet-detect");
    for d in [state.clone(), logs.join("pods"), logs.join("containers")] {
        fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let sock = state.join("s.sock");
    let server = format!("unix:{}", sock.display());
    println!(
        "detection latency: sensor run (learning period {LEARNING_PERIOD}), {LEARN_EXECS} x /bin/true to learn, \
         then {TRIGGERS} distinct unexpected execs at {TRIGGER_RATE}/s, seen by sensor watch"
    );
    let mut agent = Spawned::spawn(
        "agent-detect",
        Command::new(&ctx.sensor_bin)
            .arg("run")
            .arg("--state-dir")
            .arg(&state)
            .arg("--grpc-listen")
            .arg(&server)
            .arg("--pod-logs-dir")
            .arg(logs.join("pods"))
            .arg("--container-logs-dir")
            .arg(logs.join("containers"))
            .args(["--learning-period", LEARNING_PERIOD])
            .args(["--flush-interval", FLUSH_INTERVAL])
            .args(["--node-name", "bench-node"]),
        &ctx.work.path,
    )?;
    agent.wait_ready(Stream::Stderr, "agent running", READY_TIMEOUT)?;

    let cgroup = PodCgroup::create(&ctx.cg2)?;
    write_kubelet_metadata(
        &logs,
        &cgroup,
        &PodNames {
            namespace: NAMESPACE,
            pod: POD.to_string(),
            container: CONTAINER,
        },
    )?;
    let links = Links::create(ctx.work.path.join("detect-exec"), TRIGGERS)?;

    // The baseline: the same worker, the same code path, exec'ing /bin/true.
    let t_learn = Instant::now();
    let learn: Vec<String> = vec!["/bin/true".to_string(); LEARN_EXECS];
    let (ok, _, _) = exec_paced(ctx, &cgroup, "detect-learn", LEARN_RATE, &learn)?;
    ensure!(
        ok == LEARN_EXECS as u64,
        "learning: {ok} of {LEARN_EXECS} execs succeeded"
    );
    let ready_secs = loop {
        if profile_status(ctx, &server)?.as_deref() == Some("ready") {
            break t_learn.elapsed().as_secs_f64();
        }
        if let Some(status) = agent.exited()? {
            bail!(
                "the agent exited ({status}) while learning; {}",
                agent.stderr_tail()
            );
        }
        if t_learn.elapsed() > READY_WAIT {
            bail!(
                "profile {NAMESPACE}/{POD}/{CONTAINER} not ready {READY_WAIT:?} after its first exec \
                 (learning period {LEARNING_PERIOD}); status: {:?}",
                profile_status(ctx, &server)?
            );
        }
        nap(Duration::from_millis(250))?;
    };
    println!(
        "  profile {NAMESPACE}/{POD}/{CONTAINER} ready {ready_secs:.1} s after the first exec"
    );

    let mut watch = Watch::start(ctx, &server)?;
    let mut arrivals = Vec::new();
    // The canary: proves the stream is live before anything is timed (watch prints nothing
    // until the first anomaly).
    let canary = links.canary();
    let (_, canary_stamp, _) = exec_paced(
        ctx,
        &cgroup,
        "detect-canary",
        1,
        std::slice::from_ref(&canary),
    )?;
    let t_canary = Instant::now();
    let canary_at = loop {
        if let Some(a) = arrivals.iter().find(|a: &&Arrival| {
            serde_json::from_str::<Value>(&a.line)
                .ok()
                .is_some_and(|v| anomaly_path(&v) == Some(canary.as_str()))
        }) {
            break a.at_ns;
        }
        if t_canary.elapsed() > Duration::from_secs(20) {
            bail!(
                "no anomaly for {canary} reached sensor watch within 20 s; watch stderr:\n    {}\n  agent {}",
                watch.stderr_tail(),
                agent.stderr_tail()
            );
        }
        watch.wait(&mut arrivals, Duration::from_millis(200))?;
    };
    let canary_ms = canary_at.saturating_sub(canary_stamp[0]) as f64 / 1e6;

    let paths: Vec<String> = (0..TRIGGERS).map(|i| links.trigger(i)).collect();
    let (exec_ok, stamps, trigger_secs) =
        exec_paced(ctx, &cgroup, "detect-triggers", TRIGGER_RATE, &paths)?;
    let index: HashMap<&str, usize> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect();
    let mut first: Vec<Option<(u64, Value)>> = vec![None; TRIGGERS];
    let mut duplicates = 0;
    let mut other = BTreeMap::new();
    let mut seen = 0;
    let waited = Instant::now();
    loop {
        watch.drain(&mut arrivals);
        for a in &arrivals[seen..] {
            let Ok(v) = serde_json::from_str::<Value>(&a.line) else {
                *other.entry("(not JSON)".to_string()).or_insert(0) += 1;
                continue;
            };
            match anomaly_path(&v).and_then(|p| index.get(p)) {
                Some(&i) if first[i].is_none() => first[i] = Some((a.at_ns, v)),
                Some(_) => duplicates += 1,
                None if anomaly_path(&v) == Some(canary.as_str()) => {}
                None => {
                    let rule = v["rule"]
                        .as_str()
                        .or(v["gap"].as_u64().map(|_| "(gap)"))
                        .unwrap_or("?");
                    *other.entry(rule.to_string()).or_insert(0) += 1;
                }
            }
        }
        seen = arrivals.len();
        if first.iter().all(Option::is_some) || waited.elapsed() > ARRIVAL_WAIT {
            break;
        }
        watch.wait(&mut arrivals, Duration::from_millis(200))?;
    }
    watch.stop();
    drop(watch);
    ctx.look_around(&[agent.pid()]);
    let status = agent.stop(STOP_TIMEOUT)?;
    cgroup.remove()?;
    drop(links);

    let mut ms: Vec<f64> = Vec::new();
    let (mut attributed, mut with_ancestry) = (0, 0);
    for (i, hit) in first.iter().enumerate() {
        let Some((at, v)) = hit else { continue };
        ms.push(at.saturating_sub(stamps[i]) as f64 / 1e6);
        if v["rule"] == "unexpected-exec"
            && v["namespace"] == NAMESPACE
            && v["pod"] == POD
            && v["container"] == CONTAINER
            && v["process"]["path"] == paths[i].as_str()
        {
            attributed += 1;
        }
        if v["process"]["ancestry"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            with_ancestry += 1;
        }
    }
    ms.sort_by(f64::total_cmp);
    let r = Latency {
        triggers: TRIGGERS,
        exec_ok,
        matched: ms.len(),
        ms,
        attributed,
        with_ancestry,
        duplicates,
        other,
        canary_ms,
        ready_secs,
        trigger_secs,
        agent_exit: status.code(),
    };
    println!(
        "  {} of {} anomalies at the client: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        r.matched,
        r.triggers,
        r.pct(0.5),
        r.pct(0.99),
        r.max()
    );
    Ok(r)
}

/// Percentiles as printed by `bench-stream`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pcts {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Pcts {
    fn from(v: &Value) -> Pcts {
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        Pcts {
            p50: f("p50"),
            p90: f("p90"),
            p99: f("p99"),
            p999: f("p999"),
            max: f("max"),
        }
    }
}

#[derive(Debug, Default)]
pub struct StreamClient {
    pub received: u64,
    pub gaps: u64,
    pub missed: u64,
    pub out_of_order: u64,
    pub complete: bool,
    pub drain_secs: f64,
    /// Publish -> received (fast client only), ms.
    pub latency_ms: Option<Pcts>,
    pub error: Option<String>,
}

impl StreamClient {
    fn from(v: &Value) -> StreamClient {
        StreamClient {
            received: v["received"].as_u64().unwrap_or(0),
            gaps: v["gaps"].as_u64().unwrap_or(0),
            missed: v["missed"].as_u64().unwrap_or(0),
            out_of_order: v["out_of_order"].as_u64().unwrap_or(0),
            complete: v["complete"].as_bool().unwrap_or(false),
            drain_secs: v["drain_secs"].as_f64().unwrap_or(f64::NAN),
            latency_ms: v["latency_ms"]
                .is_object()
                .then(|| Pcts::from(&v["latency_ms"])),
            error: v["error"].as_str().map(str::to_string),
        }
    }

    pub fn accounted(&self) -> u64 {
        self.received + self.missed
    }
}

#[derive(Debug, Default)]
pub struct StreamBench {
    pub rate: u64,
    pub seconds: u64,
    pub queue: u64,
    pub slow_pause_us: u64,
    pub published: u64,
    pub publish_secs: f64,
    pub achieved_rate: f64,
    pub behind_max_ms: f64,
    pub publisher_cpu_secs: f64,
    /// Bytes the anomaly log held after the run, and the fsync of it.
    pub log_bytes: u64,
    pub log_sync_ms: f64,
    /// The publish call (hub), µs.
    pub publish_us: Pcts,
    /// The log append before it, µs.
    pub append_us: Pcts,
    pub hub_dropped: u64,
    pub hub_gaps: u64,
    pub fast: StreamClient,
    pub slow: StreamClient,
}

pub fn stream(ctx: &Ctx) -> Result<StreamBench> {
    let dir = ctx.work.path.join("stream");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!(
        "anomaly stream: {STREAM_RATE}/s for {STREAM_SECS} s through the hub and gRPC, a fast and a slow client"
    );
    let v = run_stream(ctx, &dir)?;
    let _ = fs::remove_dir_all(&dir);
    let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let s = StreamBench {
        rate: v["rate"].as_u64().unwrap_or(0),
        seconds: v["seconds"].as_u64().unwrap_or(0),
        queue: v["queue"].as_u64().unwrap_or(0),
        slow_pause_us: v["slow_pause_us"].as_u64().unwrap_or(0),
        published: v["published"]
            .as_u64()
            .context("bench-stream printed no `published`")?,
        publish_secs: num("publish_secs"),
        achieved_rate: num("achieved_rate"),
        behind_max_ms: num("behind_max_ms"),
        publisher_cpu_secs: num("publisher_cpu_secs"),
        log_bytes: v["log_bytes"].as_u64().unwrap_or(0),
        log_sync_ms: num("log_sync_ms"),
        publish_us: Pcts::from(&v["publish_us"]),
        append_us: Pcts::from(&v["append_us"]),
        hub_dropped: v["hub"]["dropped"].as_u64().unwrap_or(0),
        hub_gaps: v["hub"]["gaps"].as_u64().unwrap_or(0),
        fast: StreamClient::from(&v["fast"]),
        slow: StreamClient::from(&v["slow"]),
    };
    println!(
        "  published {} at {:.0}/s; publish call p99 {:.1} µs; fast client {} (+{} missed), slow client {} + {} missed in {} gaps",
        s.published,
        s.achieved_rate,
        s.publish_us.p99,
        s.fast.received,
        s.fast.missed,
        s.slow.received,
        s.slow.missed,
        s.slow.gaps
    );
    Ok(s)
}

fn run_stream(ctx: &Ctx, dir: &Path) -> Result<Value> {
    let mut t = Spawned::spawn(
        "bench-stream",
        Command::new(&ctx.dev_bin)
            .args(["bench-stream", "--socket"])
            .arg(dir.join("s.sock"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--rate", &STREAM_RATE.to_string()])
            .args(["--seconds", &STREAM_SECS.to_string()])
            .args(["--queue", &STREAM_QUEUE.to_string()])
            .args(["--slow-pause-us", &SLOW_PAUSE_US.to_string()]),
        &ctx.work.path,
    )?;
    ctx.look_around(&[t.pid()]);
    let status = t.wait_exit(Duration::from_secs(STREAM_SECS + 90))?;
    ensure!(
        status.success(),
        "sensor-dev bench-stream failed ({status}); {}",
        t.stderr_tail()
    );
    worker_result(&t)
}
