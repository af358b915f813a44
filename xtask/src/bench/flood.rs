//! Floods with accounting: with `sensor trace --json` writing to a file, a pod-shaped cgroup
//! execs /bin/true as fast as it can, or connects to loopback listeners at a fixed rate; then
//! every generated event must be either in the output (attributed to that cgroup) or in the
//! sensor's loss counters. Also the agent's CPU and memory, and its idle RSS.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::{
    Ctx, READY_TIMEOUT, STOP_TIMEOUT,
    system::{
        PodCgroup, PodNames, clock_ticks_per_sec, cpu_ticks, status_kib, wait_until,
        write_kubelet_metadata,
    },
    tools::{Spawned, Stream, nap},
    worker_result,
    workload::Listeners,
};

pub const EXEC_COUNT: u64 = 10_000;
pub const CONNECT_RATE: u64 = 20_000;
pub const CONNECT_SECS: u64 = 3;
pub const CONNECT_PORTS: usize = 16;
pub const CONNECT_THREADS: usize = 2;
pub const IDLE_SECS: u64 = 5;

/// What the sensor's output says about one cgroup, plus its final stats line.
struct Output {
    ours: Vec<Value>,
    lost: BTreeMap<String, u64>,
}

impl Output {
    fn lost(&self, name: &str) -> u64 {
        self.lost.get(name).copied().unwrap_or(0)
    }

    fn count(&self, kind: &str) -> u64 {
        self.ours.iter().filter(|v| v["kind"] == kind).count() as u64
    }
}

/// The sensor, started with kubelet metadata dirs under `logs`.
fn start_sensor(ctx: &Ctx, name: &str, logs: &Path) -> Result<Spawned> {
    for d in ["pods", "containers"] {
        fs::create_dir_all(logs.join(d))
            .with_context(|| format!("creating {}", logs.join(d).display()))?;
    }
    let mut cmd = Command::new(&ctx.sensor_bin);
    cmd.args(["trace", "--json", "--pod-logs-dir"])
        .arg(logs.join("pods"))
        .arg("--container-logs-dir")
        .arg(logs.join("containers"));
    let mut sensor = Spawned::spawn(name, &mut cmd, &ctx.work.path)?;
    sensor.wait_ready(Stream::Stderr, "capture started", READY_TIMEOUT)?;
    Ok(sensor)
}

/// Whether the output already holds a `kind` line for this cgroup id (cheap text scan).
fn has_line(out: &Path, cgroup_id: u64, kind: &str) -> bool {
    let Ok(text) = fs::read_to_string(out) else {
        return false;
    };
    let id = format!("\"cgroup_id\":{cgroup_id},");
    let kind = format!("\"kind\":\"{kind}\"");
    text.lines().any(|l| l.contains(&id) && l.contains(&kind))
}

/// Parses the sensor's JSON lines: those of the given cgroup (by id, or by path when the id is
/// missing), and the final stats line.
fn parse_output(out: &PathBuf, cgroup_id: u64, cgroup_path: &str) -> Result<Output> {
    let file = fs::File::open(out).with_context(|| format!("opening {}", out.display()))?;
    let mut ours = Vec::new();
    let mut stats = None;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("sensor output line {} is not JSON: {line}", i + 1))?;
        if v["kind"] == "stats" {
            stats = Some(v);
        } else if v["cgroup_id"].as_u64() == Some(cgroup_id)
            || (v["cgroup_id"].is_null() && v["cgroup"] == cgroup_path)
        {
            ours.push(v);
        }
    }
    let stats = stats.context("the sensor printed no final stats line")?;
    let lost = stats["lost"]
        .as_object()
        .context("stats line without `lost`")?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect();
    Ok(Output { ours, lost })
}

/// Agent CPU over a window, as % of one core.
fn cpu_percent(ticks: u64, secs: f64) -> f64 {
    ticks as f64 / clock_ticks_per_sec() / secs * 100.0
}

pub struct ExecFlood {
    pub requested: u64,
    pub generated: u64,
    pub failed: u64,
    pub parallel: usize,
    pub secs: f64,
    pub rate: f64,
    pub processed: u64,
    /// Of the processed: attributed with the pod's name (kubelet metadata).
    pub named: u64,
    pub dropped_ringbuf: u64,
    pub dropped_queue: u64,
    pub malformed: u64,
    pub agent_cpu_pct: f64,
    pub peak_rss_kib: u64,
    pub idle_rss_kib: u64,
    /// Peak RSS before the flood (start-up included).
    pub idle_hwm_kib: u64,
    pub removal_seen: bool,
}

impl ExecFlood {
    pub fn dropped(&self) -> u64 {
        self.dropped_ringbuf + self.dropped_queue
    }
    pub fn unaccounted(&self) -> i64 {
        self.generated as i64 - self.processed as i64 - self.dropped() as i64
    }
}

pub struct ConnectFlood {
    pub target_rate: u64,
    pub attempted: u64,
    pub generated: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub accepted: u64,
    pub secs: f64,
    pub rate: f64,
    pub processed: u64,
    pub aggregates: u64,
    pub connect_lines: u64,
    pub dropped_ringbuf: u64,
    pub dropped_queue: u64,
    pub dropped_map_full: u64,
    pub malformed: u64,
    pub agent_cpu_pct: f64,
    pub peak_rss_kib: u64,
    pub flows_seen: bool,
}

impl ConnectFlood {
    pub fn dropped(&self) -> u64 {
        self.dropped_ringbuf + self.dropped_queue + self.dropped_map_full
    }
    pub fn unaccounted(&self) -> i64 {
        self.generated as i64 - self.processed as i64 - self.dropped() as i64
    }
}

/// Idle RSS first (sensor started, 5 s of nothing), then the exec flood on the same sensor.
pub fn exec_flood(ctx: &Ctx) -> Result<ExecFlood> {
    let logs = ctx.work.path.join("kubelet-exec");
    let mut sensor = start_sensor(ctx, "sensor-exec-flood", &logs)?;
    let pid = sensor.pid();
    println!("idle RSS: sensor started, waiting {IDLE_SECS} s");
    nap(Duration::from_secs(IDLE_SECS))?;
    let idle_rss_kib = status_kib(pid, "VmRSS")?;
    let idle_hwm_kib = status_kib(pid, "VmHWM")?;

    let names = PodNames {
        namespace: "bench",
        pod: "exec-flood".into(),
        container: "flood",
    };
    let cgroup = PodCgroup::create(&ctx.cg2)?;
    write_kubelet_metadata(&logs, &cgroup, &names)?;
    let (id, path) = (cgroup.id, cgroup.path.clone());
    ctx.look_around(&[pid]);
    let parallel = ctx.cpus.len();
    println!("exec flood: {EXEC_COUNT} fork+exec of /bin/true, {parallel} at a time, in {path}");

    let ticks0 = cpu_ticks(&pid.to_string())?;
    let t0 = Instant::now();
    let mut worker = Spawned::spawn(
        "exec-flood",
        ctx.worker(&cgroup)
            .args(["exec", &EXEC_COUNT.to_string(), &parallel.to_string()]),
        &ctx.work.path,
    )?;
    let status = worker.wait_exit(Duration::from_secs(300))?;
    let window = t0.elapsed().as_secs_f64();
    let ticks1 = cpu_ticks(&pid.to_string())?;
    ensure!(
        status.success(),
        "exec flood failed ({status}); {}",
        worker.stderr_tail()
    );
    let v = worker_result(&worker)?;
    drop(worker);
    cgroup.remove()?;

    // The cgroup's removal is reported (its final syscall set) after everything it did before.
    let removal_seen = wait_until(Duration::from_secs(30), || {
        has_line(&sensor.stdout, id, "syscalls")
    })?;
    nap(Duration::from_millis(1500))?;
    let peak_rss_kib = status_kib(pid, "VmHWM")?;
    ctx.look_around(&[pid]);
    sensor.stop_ok(STOP_TIMEOUT)?;

    let out = parse_output(&sensor.stdout, id, &path)?;
    // The flood's own execs: not the worker's exec of itself after joining the cgroup.
    let execs: Vec<&Value> = out
        .ours
        .iter()
        .filter(|v| v["kind"] == "exec" && v["path"] == "/bin/true")
        .collect();
    Ok(ExecFlood {
        requested: EXEC_COUNT,
        generated: v["exec_ok"].as_u64().context("exec flood output")?,
        failed: v["failed"].as_u64().unwrap_or(0),
        parallel,
        secs: v["secs"].as_f64().unwrap_or(f64::NAN),
        rate: v["rate"].as_f64().unwrap_or(f64::NAN),
        processed: execs.len() as u64,
        named: execs
            .iter()
            .filter(|e| e["pod"] == names.pod.as_str() && e["namespace"] == names.namespace)
            .count() as u64,
        dropped_ringbuf: out.lost("ringbuf_full_exec"),
        dropped_queue: out.lost("queue_full_exec"),
        malformed: out.lost("malformed"),
        agent_cpu_pct: cpu_percent(ticks1 - ticks0, window),
        peak_rss_kib,
        idle_rss_kib,
        idle_hwm_kib,
        removal_seen,
    })
}

pub fn connect_flood(ctx: &Ctx) -> Result<ConnectFlood> {
    let listeners = Listeners::start(CONNECT_PORTS)?;
    let ports = listeners
        .ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let logs = ctx.work.path.join("kubelet-connect");
    let mut sensor = start_sensor(ctx, "sensor-connect-flood", &logs)?;
    let pid = sensor.pid();

    let names = PodNames {
        namespace: "bench",
        pod: "connect-flood".into(),
        container: "flood",
    };
    let cgroup = PodCgroup::create(&ctx.cg2)?;
    write_kubelet_metadata(&logs, &cgroup, &names)?;
    let (id, path) = (cgroup.id, cgroup.path.clone());
    nap(Duration::from_millis(300))?;
    ctx.look_around(&[pid]);
    println!(
        "connect flood: {CONNECT_RATE}/s for {CONNECT_SECS} s to 127.0.0.1 over {CONNECT_PORTS} ports, {CONNECT_THREADS} threads, in {path}"
    );

    let accepted0 = listeners.accepted();
    let ticks0 = cpu_ticks(&pid.to_string())?;
    let t0 = Instant::now();
    let mut worker = Spawned::spawn(
        "connect-flood",
        ctx.worker(&cgroup).args([
            "connect",
            &CONNECT_RATE.to_string(),
            &CONNECT_SECS.to_string(),
            &CONNECT_THREADS.to_string(),
            &ports,
        ]),
        &ctx.work.path,
    )?;
    let status = worker.wait_exit(Duration::from_secs(CONNECT_SECS * 10 + 60))?;
    let window = t0.elapsed().as_secs_f64();
    let ticks1 = cpu_ticks(&pid.to_string())?;
    ensure!(
        status.success(),
        "connect flood failed ({status}); {}",
        worker.stderr_tail()
    );
    let v = worker_result(&worker)?;
    drop(worker);
    // Connections still in the accept queue.
    nap(Duration::from_millis(200))?;
    let accepted = listeners.accepted() - accepted0;
    cgroup.remove()?;

    // Flows of a removed cgroup are read and reported at the sensor's next sweep (1 s).
    let flows_seen = wait_until(Duration::from_secs(30), || {
        has_line(&sensor.stdout, id, "flow")
    })?;
    nap(Duration::from_millis(1500))?;
    let peak_rss_kib = status_kib(pid, "VmHWM")?;
    ctx.look_around(&[pid]);
    sensor.stop_ok(STOP_TIMEOUT)?;
    drop(listeners);

    let out = parse_output(&sensor.stdout, id, &path)?;
    let flows: Vec<&Value> = out
        .ours
        .iter()
        .filter(|v| v["kind"] == "flow" && v["direction"] == "egress")
        .collect();
    let generated = v["ok"].as_u64().context("connect flood output")?;
    if generated == 0 {
        bail!("no connect succeeded: {}", v["first_error"]);
    }
    Ok(ConnectFlood {
        target_rate: CONNECT_RATE,
        attempted: v["attempted"].as_u64().unwrap_or(0),
        generated,
        failed: v["failed"].as_u64().unwrap_or(0),
        first_error: v["first_error"].as_str().map(str::to_string),
        accepted,
        secs: v["secs"].as_f64().unwrap_or(f64::NAN),
        rate: v["rate"].as_f64().unwrap_or(f64::NAN),
        processed: flows
            .iter()
            .map(|f| f["connections"].as_u64().unwrap_or(0))
            .sum(),
        aggregates: flows.len() as u64,
        connect_lines: out.count("connect"),
        dropped_ringbuf: out.lost("ringbuf_full_flow"),
        dropped_queue: out.lost("queue_full_flow"),
        dropped_map_full: out.lost("flow_map_full"),
        malformed: out.lost("malformed"),
        agent_cpu_pct: cpu_percent(ticks1 - ticks0, window),
        peak_rss_kib,
        flows_seen,
    })
}
