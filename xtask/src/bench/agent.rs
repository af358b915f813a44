//! The agent with learned profiles (`sensor run`): 500 realistic profiles written by the
//! sensor's hidden `debug synth-profiles`, the draft generators timed per workload
//! (`debug bench-drafts`), and the agent's memory with those profiles loaded against an empty
//! state dir. Also the agent configuration of the per-syscall overhead (`LoopAgent`): the
//! agent, with 500 profiles loaded, attached while the getppid loop runs in a named pod.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use super::{
    Ctx, READY_TIMEOUT, STOP_TIMEOUT,
    system::{PodCgroup, PodNames, status_kib, write_kubelet_metadata},
    tools::{Spawned, Stream, nap},
};

/// Learned profiles in the loaded state (250 workloads x 2 containers).
pub const PROFILES: usize = 500;
/// Idle time after the API answered, before the memory is read.
pub const IDLE_SECS: u64 = 5;
/// How long the API may take to answer with every profile after `agent running`.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// The pod the getppid loop runs in when the agent is attached (a bare pod: workload = pod).
pub const LOOP_NAMESPACE: &str = "bench";
pub const LOOP_POD: &str = "getppid-loop";
pub const LOOP_CONTAINER: &str = "loop";

/// `/proc/<pid>/status` memory lines, KiB, plus the BPF ring buffer's share from smaps.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mem {
    pub vm_rss: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub vm_hwm: u64,
    /// Resident pages of `anon_inode:bpf-map` mappings (the ring buffer), counted in RssFile.
    pub bpf_map: u64,
}

impl Mem {
    fn read(pid: u32) -> Result<Mem> {
        Ok(Mem {
            vm_rss: status_kib(pid, "VmRSS")?,
            rss_anon: status_kib(pid, "RssAnon")?,
            rss_file: status_kib(pid, "RssFile")?,
            vm_hwm: status_kib(pid, "VmHWM")?,
            bpf_map: smaps_rss_kib(pid, "anon_inode:bpf-map"),
        })
    }
}

/// Sum of `Rss:` over the mappings of `/proc/<pid>/smaps` whose path is `name` (0 if unreadable).
fn smaps_rss_kib(pid: u32, name: &str) -> u64 {
    let Ok(smaps) = fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return 0;
    };
    let mut ours = false;
    let mut total = 0;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // A mapping header: range perms offset dev inode [path]
            ours = fields.nth(4) == Some(name);
        } else if ours && first == "Rss:" {
            total += fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    total
}

/// What every profile of the loaded state holds, from `sensor profiles list --json`.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    pub syscalls: u64,
    pub execs: u64,
    pub egress: u64,
    pub ingress: u64,
    pub dns_names: u64,
    pub files: u64,
    /// Every listed profile has the same counts as the first.
    pub uniform: bool,
}

/// One agent, started on a state dir and measured once idle.
#[derive(Debug, Default)]
pub struct AgentRun {
    /// `restored=` of the agent's `state loaded` line.
    pub restored: u64,
    /// Entries of `sensor profiles list --json`, and their distinct (namespace, workload).
    pub listed: usize,
    pub workloads: usize,
    pub shape: Option<Shape>,
    /// Start to `agent running`.
    pub ready_secs: f64,
    /// Start to the first complete answer of the API.
    pub listed_secs: f64,
    /// Right at `agent running`, before any API call.
    pub at_ready: Mem,
    /// After the list call and `IDLE_SECS` of idling (the measurement).
    pub idle: Mem,
    /// After a second list call (does the API's memory add up?).
    pub second_list: Mem,
    /// Exit code after SIGINT (None: killed by a signal).
    pub exit_code: Option<i32>,
}

pub struct Drafts {
    pub workloads: u64,
    pub profiles: u64,
    pub mean_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub bytes: u64,
}

pub struct AgentBench {
    pub synth_secs: f64,
    /// Persisted profiles: files and bytes on disk.
    pub state_files: u64,
    pub state_bytes: u64,
    pub drafts: Drafts,
    pub loaded: AgentRun,
    pub empty: AgentRun,
}

/// Escape sequences out of a log line (tracing colours its output even into a file).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte (0x40..=0x7e)
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&d) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `key=<number>` on the first log line containing `line_has`.
fn log_number(stderr: &Path, line_has: &str, key: &str) -> Option<u64> {
    let text = strip_ansi(&fs::read_to_string(stderr).ok()?);
    let line = text.lines().find(|l| l.contains(line_has))?;
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Files and bytes under a directory.
fn dir_size(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    let Ok(entries) = fs::read_dir(dir) else {
        return (0, 0);
    };
    for e in entries.flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => {
                let (f, b) = dir_size(&e.path());
                files += f;
                bytes += b;
            }
            Ok(m) => {
                files += 1;
                bytes += m.len();
            }
            Err(_) => {}
        }
    }
    (files, bytes)
}

/// A `sensor-dev` helper that prints one JSON line and exits 0.
fn dev_json(ctx: &Ctx, name: &str, args: &[&str], dir: &Path) -> Result<Value> {
    let mut t = Spawned::spawn(
        name,
        Command::new(&ctx.dev_bin).args(args).arg(dir),
        &ctx.work.path,
    )?;
    let status = t.wait_exit(Duration::from_secs(120))?;
    ensure!(
        status.success(),
        "sensor-dev {} failed ({status}); {}",
        args.join(" "),
        t.stderr_tail()
    );
    super::worker_result(&t)
}

/// `sensor-dev synth-profiles`: `PROFILES` profiles into `dir/profiles/`; seconds taken.
fn synth(ctx: &Ctx, dir: &Path) -> Result<f64> {
    let t0 = Instant::now();
    let v = dev_json(
        ctx,
        "synth-profiles",
        &[
            "synth-profiles",
            "--count",
            &PROFILES.to_string(),
            "--state-dir",
        ],
        dir,
    )?;
    let secs = t0.elapsed().as_secs_f64();
    ensure!(
        v["profiles"].as_u64() == Some(PROFILES as u64),
        "synth-profiles printed {v}, expected {PROFILES} profiles"
    );
    Ok(secs)
}

fn kubelet_dirs(logs: &Path) -> Result<()> {
    for d in ["pods", "containers"] {
        fs::create_dir_all(logs.join(d))
            .with_context(|| format!("creating {}", logs.join(d).display()))?;
    }
    Ok(())
}

/// `sensor run` on a state dir, its API on `<state>/s.sock`, kubelet dirs under `logs`.
fn start_agent(ctx: &Ctx, name: &str, state: &Path, logs: &Path) -> Result<Spawned> {
    kubelet_dirs(logs)?;
    let mut cmd = Command::new(&ctx.sensor_bin);
    cmd.arg("run")
        .arg("--state-dir")
        .arg(state)
        .arg("--grpc-listen")
        .arg(format!("unix:{}", state.join("s.sock").display()))
        .arg("--pod-logs-dir")
        .arg(logs.join("pods"))
        .arg("--container-logs-dir")
        .arg(logs.join("containers"));
    Spawned::spawn(name, &mut cmd, &ctx.work.path)
}

/// `sensor profiles list --json` until it answers with `expected` entries.
fn list_profiles(
    ctx: &Ctx,
    agent: &mut Spawned,
    state: &Path,
    expected: usize,
) -> Result<Vec<Value>> {
    let server = format!("unix:{}", state.join("s.sock").display());
    let start = Instant::now();
    loop {
        let mut client = Spawned::spawn(
            "profiles-list",
            Command::new(&ctx.sensor_bin).args(["profiles", "list", "--json", "--server", &server]),
            &ctx.work.path,
        )?;
        let status = client.wait_exit(LIST_TIMEOUT)?;
        let last = if status.success() {
            let text = fs::read_to_string(&client.stdout).unwrap_or_default();
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Array(entries)) if entries.len() == expected => return Ok(entries),
                Ok(Value::Array(entries)) => {
                    format!("{} entries instead of {expected}", entries.len())
                }
                Ok(other) => {
                    bail!(
                        "`sensor profiles list --json` printed no JSON array: {:.300}",
                        other.to_string()
                    )
                }
                Err(e) => format!("output is not JSON ({e}): {text:.300}"),
            }
        } else {
            format!("exited {status}; {}", client.stderr_tail())
        };
        if let Some(status) = agent.exited()? {
            bail!(
                "the agent exited ({status}) while being listed; {}",
                agent.stderr_tail()
            );
        }
        if start.elapsed() > LIST_TIMEOUT {
            bail!(
                "`sensor profiles list --json` did not list {expected} profiles within {LIST_TIMEOUT:?}: {last}"
            );
        }
        nap(Duration::from_millis(200))?;
    }
}

fn shape(entries: &[Value]) -> Result<Option<Shape>> {
    let Some(first) = entries.first() else {
        return Ok(None);
    };
    let count = |v: &Value, field: &str| -> Result<u64> {
        v[field].as_u64().with_context(|| {
            format!("`profiles list --json` entry without a numeric `{field}`: {v:.300}")
        })
    };
    let fields = [
        "syscalls", "execs", "egress", "ingress", "dnsNames", "files",
    ];
    let of = |v: &Value| -> Result<Vec<u64>> { fields.iter().map(|f| count(v, f)).collect() };
    let firsts = of(first)?;
    let mut uniform = true;
    for e in entries {
        uniform &= of(e)? == firsts;
    }
    Ok(Some(Shape {
        syscalls: firsts[0],
        execs: firsts[1],
        egress: firsts[2],
        ingress: firsts[3],
        dns_names: firsts[4],
        files: firsts[5],
        uniform,
    }))
}

/// Starts the agent on `state`, waits until it runs and lists `expected` profiles, idles, reads
/// its memory, stops it with SIGINT.
fn measure(ctx: &Ctx, name: &str, state: &Path, expected: usize) -> Result<AgentRun> {
    let logs = ctx.work.path.join(format!("kubelet-{name}"));
    let t0 = Instant::now();
    let mut agent = start_agent(ctx, name, state, &logs)?;
    agent.wait_ready(Stream::Stderr, "agent running", READY_TIMEOUT)?;
    let ready_secs = t0.elapsed().as_secs_f64();
    let pid = agent.pid();
    let at_ready = Mem::read(pid)?;
    let restored = log_number(&agent.stderr, "state loaded", "restored").with_context(|| {
        format!(
            "no `state loaded ... restored=N` line; {}",
            agent.stderr_tail()
        )
    })?;
    ensure!(
        restored == expected as u64,
        "the agent restored {restored} profiles from {}, expected {expected}",
        state.display()
    );
    let entries = list_profiles(ctx, &mut agent, state, expected)?;
    let listed_secs = t0.elapsed().as_secs_f64();
    let workloads: BTreeSet<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["namespace"].as_str().unwrap_or_default().to_string(),
                e["workload"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let shape = shape(&entries)?;
    println!(
        "  {name}: running after {ready_secs:.2} s, {} profiles listed; idle {IDLE_SECS} s",
        entries.len()
    );
    nap(Duration::from_secs(IDLE_SECS))?;
    let idle = Mem::read(pid)?;
    list_profiles(ctx, &mut agent, state, expected)?;
    nap(Duration::from_millis(500))?;
    let second_list = Mem::read(pid)?;
    ctx.look_around(&[pid]);
    let status = agent.stop(STOP_TIMEOUT)?;
    Ok(AgentRun {
        restored,
        listed: entries.len(),
        workloads: workloads.len(),
        shape,
        ready_secs,
        listed_secs,
        at_ready,
        idle,
        second_list,
        exit_code: status.code(),
    })
}

pub fn run(ctx: &Ctx) -> Result<AgentBench> {
    let loaded_dir = ctx.work.path.join("agent-state-500");
    let empty_dir = ctx.work.path.join("agent-state-empty");
    for d in [&loaded_dir, &empty_dir] {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    println!(
        "agent with learned profiles: {PROFILES} synthetic profiles, drafts timed, RSS with and without them"
    );
    let synth_secs = synth(ctx, &loaded_dir)?;
    let (state_files, state_bytes) = dir_size(&loaded_dir);
    let d = dev_json(
        ctx,
        "bench-drafts",
        &["bench-drafts", "--state-dir"],
        &loaded_dir,
    )?;
    let num = |k: &str| {
        d[k].as_f64()
            .with_context(|| format!("bench-drafts printed {d}: no `{k}`"))
    };
    let drafts = Drafts {
        workloads: num("workloads")? as u64,
        profiles: num("profiles")? as u64,
        mean_ms: num("mean_ms")?,
        p99_ms: num("p99_ms")?,
        max_ms: num("max_ms")?,
        bytes: num("bytes")? as u64,
    };
    ensure!(
        drafts.profiles == PROFILES as u64,
        "bench-drafts saw {} profiles, expected {PROFILES}",
        drafts.profiles
    );
    println!(
        "  drafts: {} workloads, mean {:.3} ms, p99 {:.3} ms, max {:.3} ms per workload",
        drafts.workloads, drafts.mean_ms, drafts.p99_ms, drafts.max_ms
    );
    let loaded = measure(ctx, "agent-500", &loaded_dir, PROFILES)?;
    let empty = measure(ctx, "agent-empty", &empty_dir, 0)?;
    Ok(AgentBench {
        synth_secs,
        state_files,
        state_bytes,
        drafts,
        loaded,
        empty,
    })
}

/// What the agent learned about the getppid loop's pod while attached to it.
#[derive(Debug, Default)]
pub struct LoopProfile {
    /// Path of the profile under the state dir.
    pub path: String,
    pub found: bool,
    pub syscalls: usize,
    pub getppid: bool,
}

/// The agent as an overhead configuration: one state dir with `PROFILES` profiles (the loop's
/// own profile is added to it and updated round after round), kubelet dirs that name the
/// loop's cgroup, so the agent is learning that pod's profile while it is being timed.
pub struct LoopAgent {
    state: PathBuf,
    logs: PathBuf,
}

impl LoopAgent {
    pub fn prepare(ctx: &Ctx) -> Result<LoopAgent> {
        let state = ctx.work.path.join("agent-overhead-state");
        let logs = ctx.work.path.join("kubelet-agent-overhead");
        fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
        kubelet_dirs(&logs)?;
        synth(ctx, &state)?;
        Ok(LoopAgent { state, logs })
    }

    pub fn start(&self, ctx: &Ctx) -> Result<Spawned> {
        let mut t = start_agent(ctx, "sensor-run", &self.state, &self.logs)?;
        t.wait_ready(Stream::Stderr, "agent running", READY_TIMEOUT)?;
        Ok(t)
    }

    /// kubelet's files for the loop's cgroup, so the agent attributes it to a pod.
    pub fn name(&self, cgroup: &PodCgroup) -> Result<()> {
        write_kubelet_metadata(
            &self.logs,
            cgroup,
            &PodNames {
                namespace: LOOP_NAMESPACE,
                pod: LOOP_POD.to_string(),
                container: LOOP_CONTAINER,
            },
        )
    }

    /// The loop pod's profile as the agent persisted it (read after the last agent stopped).
    pub fn learned(&self) -> LoopProfile {
        let rel = Path::new("profiles")
            .join(LOOP_NAMESPACE)
            .join(LOOP_POD)
            .join(format!("{LOOP_CONTAINER}.json"));
        let mut out = LoopProfile {
            path: rel.display().to_string(),
            ..LoopProfile::default()
        };
        let Some(v) = fs::read_to_string(self.state.join(&rel))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        else {
            return out;
        };
        out.found = true;
        let names: Vec<&str> = ["native", "compat"]
            .iter()
            .flat_map(|abi| v["syscalls"][abi].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        out.syscalls = names.len();
        out.getppid = names.contains(&"getppid");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_is_stripped() {
        let line = "\u{1b}[2m2026\u{1b}[0m state loaded \u{1b}[3mrestored\u{1b}[0m\u{1b}[2m=\u{1b}[0m500 \u{1b}[3mquarantined\u{1b}[0m=0";
        assert_eq!(
            strip_ansi(line),
            "2026 state loaded restored=500 quarantined=0"
        );
    }
}
