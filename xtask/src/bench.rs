//! `cargo xtask bench`: what the sensor costs and whether it loses anything, on this machine.
//!
//! 1. Per-syscall overhead (`overhead`): a pinned getppid loop in a pod-shaped cgroup, with no
//!    probe, the empty-hook floor, `sensor trace`, the agent (`sensor run` with learned
//!    profiles) and bpftrace, interleaved over rounds.
//! 2. Floods with accounting (`flood`): exec and connect floods from pod-shaped cgroups, every
//!    event either processed or counted as dropped; agent CPU and peak RSS.
//! 3. Idle RSS of the sensor.
//! 4. The agent with learned profiles (`agent`): draft generation time per workload, and the
//!    agent's memory with 500 profiles loaded against an empty state.
//! 5. Detection latency (`detect`): `sensor run` with a ready profile, distinct unexpected execs
//!    from the pod's cgroup, timed from right before `execve` to the line of `sensor watch`.
//! 6. Anomaly stream throughput (`detect`): `sensor-dev bench-stream`, 10k anomalies/s through
//!    the agent's log, hub and gRPC server to a fast and a slow client.
//!
//! Prints tables and writes docs/benchmarks.md (`report`). Every process the bench starts is
//! stopped and every cgroup it creates is removed, also on errors and Ctrl-C (`tools`,
//! `system`). The workloads run as the hidden `xtask bench-worker` subcommand (`workload`).

mod agent;
mod detect;
mod flood;
mod overhead;
mod report;
mod system;
mod tools;
mod verdict;
mod workload;

use std::{
    cell::RefCell,
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, ensure};
use serde_json::Value;

pub use self::workload::worker;
use self::{
    system::{Cgroup2, Machine, PodCgroup, WorkDir, allowed_cpus, busy_neighbours, foreign_probes},
    tools::Spawned,
};

/// How long a tool may take to attach (the sensor parses BTF and loads a dozen programs).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a tool may take to flush and exit after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What every part of the bench needs.
struct Ctx {
    sensor_bin: PathBuf,
    /// `sensor-dev` next to it: the empty hooks, synthetic profiles and in-process benches.
    dev_bin: PathBuf,
    cg2: Cgroup2,
    work: WorkDir,
    cpus: Vec<usize>,
    /// Compilers, runtimes, other sensors seen running (noise sources).
    neighbours: RefCell<BTreeSet<String>>,
    /// Other processes' tracing BPF programs seen loaded.
    foreign: RefCell<BTreeSet<String>>,
}

impl Ctx {
    /// `xtask bench-worker <cgroup dir> ...`: this very binary (through /proc/self/exe, so a
    /// rebuild of xtask during the bench does not matter).
    fn worker(&self, cgroup: &PodCgroup) -> Command {
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg("bench-worker").arg(&cgroup.dir);
        cmd
    }

    /// Records what else is running now (`ours`: processes the bench started).
    fn look_around(&self, ours: &[u32]) {
        self.neighbours.borrow_mut().extend(busy_neighbours(ours));
        self.foreign.borrow_mut().extend(foreign_probes(ours));
    }
}

/// The JSON line a workload printed last.
fn worker_result(worker: &Spawned) -> Result<Value> {
    let text = fs::read_to_string(&worker.stdout)
        .with_context(|| format!("reading {}", worker.stdout.display()))?;
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .with_context(|| format!("{} printed nothing; {}", worker.name, worker.stderr_tail()))?;
    serde_json::from_str(line)
        .with_context(|| format!("{} printed `{line}`, not JSON", worker.name))
}

pub fn run(
    root: &Path,
    sensor_bin: &Path,
    calls: u64,
    rounds: usize,
    write_doc: bool,
) -> Result<()> {
    ensure!(
        calls >= 10_000,
        "--calls must be at least 10000 for a meaningful ns/call"
    );
    ensure!(rounds >= 1, "--rounds must be at least 1");
    ensure!(
        Path::new("/bin/true").exists(),
        "/bin/true is missing (the exec flood runs it)"
    );
    let dev_bin = crate::dev_bin(sensor_bin);
    ensure!(
        dev_bin.exists(),
        "{} is missing: the bench runs the developer tools next to the sensor (cargo xtask build)",
        dev_bin.display()
    );
    tools::install_interrupt_handler();
    let started = Instant::now();
    let cg2 = Cgroup2::find()?;
    let machine = Machine::read(&cg2);
    let sensor_version = Command::new(sensor_bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let file_hook = file_hook(sensor_bin);
    let ctx = Ctx {
        sensor_bin: sensor_bin.to_path_buf(),
        dev_bin,
        cg2,
        work: WorkDir::create()?,
        cpus: allowed_cpus(),
        neighbours: RefCell::new(BTreeSet::new()),
        foreign: RefCell::new(BTreeSet::new()),
    };
    println!(
        "bench: {} on {} ({} cores), kernel {}, cgroup2 at {}",
        sensor_bin.display(),
        machine.cpu_model,
        machine.cores,
        machine.kernel,
        ctx.cg2.mount_point.display()
    );
    let foreign = foreign_probes(&[]);
    if !foreign.is_empty() {
        eprintln!(
            "bench: warning: other processes hold tracing BPF programs ({}): their probes slow every \
             configuration; loops timed while one is loaded are repeated",
            foreign.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    ctx.look_around(&[]);

    let overhead = overhead::run(&ctx, calls, rounds)?;
    ctx.neighbours
        .borrow_mut()
        .extend(overhead.neighbours.iter().cloned());
    ctx.foreign
        .borrow_mut()
        .extend(overhead.foreign_probes.iter().cloned());
    let exec = flood::exec_flood(&ctx)?;
    let connect = flood::connect_flood(&ctx)?;
    let agent = agent::run(&ctx)?;
    let detect = detect::latency(&ctx)?;
    let stream = detect::stream(&ctx)?;
    ctx.look_around(&[]);

    let neighbours = ctx.neighbours.borrow().clone();
    let foreign = ctx.foreign.borrow().clone();
    let report = report::Report {
        machine: &machine,
        sensor_version,
        file_hook,
        overhead: &overhead,
        rounds,
        exec: &exec,
        connect: &connect,
        agent: &agent,
        detect: &detect,
        stream: &stream,
        neighbours: &neighbours,
        foreign: &foreign,
        minutes: started.elapsed().as_secs_f64() / 60.0,
    };
    print!("{}", report.terminal());
    if write_doc {
        let path = root.join("docs").join("benchmarks.md");
        fs::create_dir_all(root.join("docs")).context("creating docs/")?;
        fs::write(&path, report.document())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    let failed: Vec<String> = report
        .targets()
        .into_iter()
        .filter(|t| !t.pass)
        .map(|t| t.what)
        .collect();
    if !failed.is_empty() {
        println!("targets missed: {}", failed.join(", "));
    }
    println!(
        "bench took {:.1} min",
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

/// The hook the sensor judges sensitive files with on this kernel (`sensor doctor --json`):
/// fentry where trampolines are allowed, else the `sys_exit` fallback, which runs on every
/// syscall and so shows in the per-syscall overhead.
fn file_hook(sensor_bin: &Path) -> String {
    let out = Command::new(sensor_bin).args(["doctor", "--json"]).output();
    let report: serde_json::Value = out
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default();
    report["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["program"] == "file_open")
        .and_then(|p| p["hook"].as_str())
        .unwrap_or("unknown")
        .to_string()
}
