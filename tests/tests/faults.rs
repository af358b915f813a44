//! Fault and abuse tests of the agent (`sensor run`), against the real kernel with real runc
//! pods, real gRPC clients and the real binary:
//!
//! 1. `kill -9` at random moments while it learns pods, flushes profiles and writes anomalies,
//!    restarted each time on the same state: every file whole, profiles restored (a profile
//!    cut on purpose is quarantined), anomaly sequence numbers continuing strictly, a
//!    `sensor watch` resuming across every restart, no temp file left; and a full disk under
//!    the state dir (a tmpfs): the agent keeps serving, unwritable records are counted, the
//!    log stays whole;
//! 2. an exec/UDP/DNS flood from a pod, with the default and with a tiny ring buffer: resident
//!    memory bounded (measured), every exec of the flood accounted for (seen on a gRPC event
//!    stream, missed in its in-band gaps, or counted lost by the agent), losses warned while
//!    they happen, the API answering throughout;
//! 3. malformed configuration and flags: exit code 2, one stderr line naming the key or flag,
//!    nothing started;
//! 4. API abuse: the socket refuses another uid, oversized requests are refused while others
//!    are served, a flood of 200 subscribers is bounded.
//!
//! The heavy tests (1, 2, 4) take a lock so they run one at a time: their numbers (memory,
//! latency) are about the agent, not about each other.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sensor_tests::anomaly::{self, anomalies, describe, read_log, read_log_ns, seqs};
use sensor_tests::daemon::{self, CmdOutput, sensor_cmd};
use sensor_tests::faults::{
    Rng, RssSampler, final_counters, letters, py_abuse, quarantined_files, status_kib, temp_files,
    unparsable_json,
};
use sensor_tests::util::{self, TempDir};
use sensor_tests::{
    ContainerConfig, Daemon, DaemonConfig, DnsZone, Kubelet, Peer, Pod, Runc, Sensor, runc,
};
use serde_json::Value;

/// How long a container may run.
const RUN: Duration = runc::DEFAULT_TIMEOUT;
/// The known behaviour of the test workloads (learned, then repeated: it keeps the profile's
/// counters moving, so the profile is rewritten at every flush).
const KNOWN: &str = "/bin/echo learning >/dev/null; cat /etc/hostname >/dev/null";
/// How long a profile may take to become ready (learning period + flush + syscall poll).
const READY: Duration = Duration::from_secs(30);

static HEAVY: Mutex<()> = Mutex::new(());

/// One heavy test at a time (see the module comment).
fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// One test's world: temp dir, namespace, kubelet metadata, runc root.
struct World {
    dir: TempDir,
    ns: String,
    kubelet: Kubelet,
    runc: Runc,
}

impl World {
    fn new() -> World {
        World {
            dir: TempDir::new("faults"),
            ns: util::unique_name("ft"),
            kubelet: Kubelet::new(),
            runc: Runc::new(),
        }
    }

    /// A replica of Deployment `deployment` in this test's namespace, known to kubelet.
    fn pod(&self, deployment: &str) -> Pod {
        let pod = Pod::deployment_replica(&self.ns, deployment).with_container("app");
        self.kubelet.add_pod(&pod);
        pod
    }

    /// `sh -c script` in `pod`'s container `app`; whether it exited 0.
    fn sh(&self, pod: &Pod, script: &str) -> bool {
        self.runc
            .run(
                &ContainerConfig::sh(pod, "app", &format!("{script}; exit 0")),
                RUN,
            )
            .code
            == Some(0)
    }

    /// Runs `KNOWN` in a new pod of `deployment` until its profile is ready.
    #[track_caller]
    fn learn(&self, agent: &Daemon, deployment: &str) -> Pod {
        let pod = self.pod(deployment);
        for _ in 0..2 {
            assert!(
                self.sh(&pod, KNOWN),
                "the learning run of {deployment} failed"
            );
        }
        agent.wait_profile((&self.ns, deployment, "app"), "ready", READY, |p| {
            p["status"] == "ready"
        });
        pod
    }
}

/// Sequence numbers are 1..=n, each once, in order.
#[track_caller]
fn assert_numbered_from_one(records: &[Value], when: &str) {
    let got = seqs(records);
    let want: Vec<u64> = (1..=got.len() as u64).collect();
    assert!(
        got == want,
        "{when}: the log's sequence numbers are not 1..=n in order:\n{}",
        describe(records)
    );
}

/// The `(namespace, workload, container)` of every profile file under `<state>/profiles/ns`.
fn profiles_on_disk(state: &Path, ns: &str) -> BTreeSet<(String, String)> {
    daemon::files_under(&state.join("profiles").join(ns))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| {
            let container = p.file_stem()?.to_str()?.to_string();
            let workload = p.parent()?.file_name()?.to_str()?.to_string();
            Some((workload, container))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. kill -9 under load, restart each time.

/// Kills of one run.
const KILLS: usize = 5;

#[test]
fn kill9_at_random_moments_under_load_then_restart() {
    let _heavy = heavy();
    let world = World::new();
    let ns = world.ns.clone();
    let mut rng = Rng::from_env_or_clock();
    // Flushes every 100 ms and a constant load: most moments are in or near a write.
    let config = DaemonConfig::new(world.dir.path(), &world.kubelet)
        .learning_period("3s")
        .flush_interval("100ms")
        .arg("--anomaly-window")
        .arg("1s");
    let state = config.state_dir.clone();
    let mut agent = Daemon::start(config.clone());
    let steady = world.learn(&agent, "steady");
    let watcher = anomaly::watch(&agent, &["--namespace", &ns, "--since", "0"]);

    let stop = AtomicBool::new(false);
    let runs = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let mut kills = Vec::new();
    // Profile files cut on purpose, as their quarantined names.
    let mut cut: Vec<PathBuf> = Vec::new();
    std::thread::scope(|s| {
        // Whatever happens below (a failed assertion too), the load stops: the scope waits for
        // it before the test can end.
        let _stop_load = StopOnDrop(&stop);
        // The load: the learned pod repeats its behaviour (profile rewrites) plus two programs
        // it never ran (anomalies); every third run a new workload starts learning (new profile
        // and draft files). It goes on while the agent is dead: a node does not wait for it.
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let word = letters(i);
                let script = format!("{KNOWN}; /bin/echo k-{word}; /bin/echo kk-{word}");
                if !world.sh(&steady, &script) {
                    failed.lock().unwrap().push(format!("steady run {i}"));
                }
                if i.is_multiple_of(3) {
                    let fresh = world.pod(&format!("fresh-{word}"));
                    if !world.sh(&fresh, KNOWN) {
                        failed.lock().unwrap().push(format!("fresh-{word}"));
                    }
                }
                runs.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        });

        for round in 1..=KILLS {
            let wait = rng.duration(Duration::from_millis(700), Duration::from_millis(3000));
            std::thread::sleep(wait);
            let dead = agent.pid().expect("the agent runs");
            agent.kill9();

            // What the kill left: whole files only (atomic writes), a numbered log whose last
            // line may be cut, maybe temp files of the writes it interrupted.
            let torn_json = unparsable_json(&state);
            assert!(
                torn_json.is_empty(),
                "kill #{round}: torn state files: {torn_json:?}"
            );
            let log = read_log(&state);
            assert_numbered_from_one(&log, &format!("after kill #{round}"));
            let logged = log.len() as u64;
            let log_text = std::fs::read(anomaly::log_path(&state)).unwrap_or_default();
            let torn_line = !log_text.is_empty() && !log_text.ends_with(b"\n");
            let mut temps = temp_files(&state);
            if round == 1 {
                // Whether a kill lands inside a write is luck; the first restart always finds
                // what a kill inside the sequence-counter write leaves (`write_atomic`'s temp
                // file, in the state dir itself, with a counter that must not be trusted).
                let tmp = state.join(format!(".anomalies.seq.{dead}.tmp"));
                std::fs::write(&tmp, "999999\n").unwrap();
                temps.push(tmp);
            }
            let mut on_disk = profiles_on_disk(&state, &ns);
            if round == 2 {
                // And what a partial write by anything else (a full disk, a copy cut short)
                // leaves: a profile file cut in half. It is quarantined, never fatal.
                let (workload, container) = on_disk
                    .iter()
                    .find(|(w, _)| w.starts_with("fresh-"))
                    .cloned()
                    .expect("a fresh workload's profile on disk");
                let path = daemon::profile_path(&state, &ns, &workload, &container);
                let text = std::fs::read(&path).unwrap();
                std::fs::write(&path, &text[..text.len() / 2]).unwrap();
                on_disk.remove(&(workload, container));
                cut.push(path.with_file_name(format!("{}.corrupt", file_name(&path))));
            }

            agent = Daemon::start(config.clone());

            // Loading the state removed the interrupted writes' temp files.
            let left: Vec<&PathBuf> = temps.iter().filter(|t| t.exists()).collect();
            assert!(
                left.is_empty(),
                "kill #{round}: temp files still there after the restart: {left:?}"
            );
            // Only the file cut on purpose is quarantined: the kills left none corrupt.
            let quarantined = quarantined_files(&state);
            assert_eq!(
                quarantined,
                cut,
                "kill #{round}: quarantined files other than the one cut on purpose, so a \
                 kill left one corrupt\n{}",
                agent.diagnostics()
            );
            // Every profile that was on disk is served again.
            let listed: BTreeSet<(String, String)> = agent
                .list(Some(&ns))
                .iter()
                .map(|p| {
                    (
                        p["workload"].as_str().unwrap_or_default().to_string(),
                        p["container"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            let missing: Vec<_> = on_disk.difference(&listed).collect();
            assert!(
                missing.is_empty(),
                "kill #{round}: profiles on disk but not restored: {missing:?}\n{}",
                agent.diagnostics()
            );
            // Numbering continues right after the last whole record: no number reused, none
            // skipped.
            let next =
                util::poll_until(Duration::from_secs(30), Duration::from_millis(100), || {
                    seqs(&read_log(&state)).into_iter().find(|s| *s > logged)
                })
                .unwrap_or_else(|| {
                    panic!(
                        "kill #{round}: no anomaly logged after the restart\n{}",
                        agent.diagnostics()
                    )
                });
            assert_eq!(
                next,
                logged + 1,
                "kill #{round}: {logged} records were logged before the kill (last line cut: \
                 {torn_line}); the first after the restart must be #{}",
                logged + 1
            );
            eprintln!(
                "kill #{round} after {wait:?}: {logged} records (torn last line: {torn_line}), \
                 {} temp files, {} profiles on disk; next #{next}",
                temps.len(),
                on_disk.len()
            );
            kills.push((wait, logged, torn_line, temps.len()));
        }
    });
    let failed = failed.into_inner().unwrap();
    assert!(failed.is_empty(), "container runs failed: {failed:?}");

    // The watcher reconnected after every kill and resumed with since_seq: once the log is
    // quiet (the load stopped), it has printed each record of the namespace once, in order, as
    // logged.
    let mut quiet_since = (Instant::now(), 0);
    while quiet_since.0.elapsed() < Duration::from_secs(4) {
        let n = read_log(&state).len();
        if n != quiet_since.1 {
            quiet_since = (Instant::now(), n);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mine = read_log_ns(&state, &ns);
    let last = *seqs(&mine).last().expect("anomalies were logged");
    watcher.wait_for(
        Duration::from_secs(30),
        &format!("#{last} after {KILLS} kills"),
        |l| seqs(&anomalies(l)).contains(&last).then_some(()),
    );
    let got = anomalies(&watcher.lines());
    assert_eq!(
        seqs(&got),
        seqs(&mine),
        "`sensor watch` across {KILLS} kill -9 restarts: not every record once, in order"
    );
    for (g, want) in got.iter().zip(&mine) {
        assert_eq!(g, want, "#{} differs from the log", want["seq"]);
    }

    let status = agent.stop();
    assert!(
        status.success(),
        "SIGINT after the kills: {status}\n{}",
        agent.diagnostics()
    );
    let log = read_log(&state);
    assert_numbered_from_one(&log, "at the end");
    let leftovers = temp_files(&state);
    assert!(
        leftovers.is_empty(),
        "temp files after a clean stop: {leftovers:?}"
    );
    assert_eq!(quarantined_files(&state), cut);
    let torn = unparsable_json(&state);
    assert!(torn.is_empty(), "{torn:?}");
    eprintln!(
        "{KILLS} kills {kills:?} (wait, records, torn line, temp files); {} load runs; {} \
         records at the end",
        runs.load(Ordering::Relaxed),
        log.len()
    );
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Sets the flag when dropped (also while unwinding from a panic).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// 1b. A full disk under the state dir.

/// A tmpfs mounted for one test, unmounted when dropped (before its temp dir is removed).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        util::run_ok(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(at),
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        util::run_quiet(std::process::Command::new("umount").arg("-l").arg(&self.0));
    }
}

/// Writes `path` until the file system is full; its size.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a_u8; 4096];
    let mut written = 0;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    written
}

#[test]
fn full_disk_keeps_the_agent_serving_and_the_log_whole() {
    let _heavy = heavy();
    let world = World::new();
    let ns = world.ns.clone();
    let disk = Tmpfs::mount(&world.dir.path().join("small"), "8m");
    let mut config = DaemonConfig::new(world.dir.path(), &world.kubelet)
        .learning_period("3s")
        .flush_interval("200ms")
        .arg("--anomaly-window")
        .arg("1s");
    config.state_dir = disk.0.join("state");
    let state = config.state_dir.clone();
    let mut agent = Daemon::start(config);
    let pod = world.learn(&agent, "diskfull");
    let anomaly_run = |tag: &str| {
        assert!(world.sh(
            &pod,
            &format!("{KNOWN}; /bin/echo {tag}-a; /bin/echo {tag}-b")
        ));
    };
    let logged_over = |n: usize, what: &str| {
        util::poll_until(Duration::from_secs(30), Duration::from_millis(100), || {
            let log = read_log_ns(&state, &ns);
            (log.len() > n).then_some(log.len())
        })
        .unwrap_or_else(|| panic!("{what}: no new anomaly logged\n{}", agent.diagnostics()))
    };
    anomaly_run("roomy");
    let before = logged_over(0, "with room");

    // The disk is full: records cannot be written. The agent says so, counts them, and keeps
    // serving; nothing half-written stays in the log.
    let filler = disk.0.join("filler");
    let filled = fill(&filler);
    for i in 0..3 {
        anomaly_run(&format!("full{i}"));
    }
    assert!(
        agent.wait_stderr("record not logged", Duration::from_secs(30)),
        "no warning about unlogged records while the disk was full\n{}",
        agent.diagnostics()
    );
    assert!(agent.status().is_none(), "the agent died on a full disk");
    agent.client(&["profiles", "list", "--namespace", &ns]).ok();
    let during = read_log(&state);
    assert_numbered_from_one(&during, "while the disk was full");

    // Room again: logging resumes, numbered right after the last written record, and every
    // line of the log is whole (a cut record would make `read_log` panic).
    std::fs::remove_file(&filler).unwrap();
    let stuck = read_log_ns(&state, &ns).len();
    anomaly_run("again");
    let after = logged_over(stuck, "after the disk had room again");
    let log = read_log(&state);
    assert_numbered_from_one(&log, "after the disk had room again");
    let text = std::fs::read(anomaly::log_path(&state)).unwrap();
    assert!(text.ends_with(b"\n"), "the log ends with a cut line");
    let stderr = agent.stderr();
    let unlogged = stderr.matches("record not logged").count();
    let status = agent.stop();
    assert!(status.success(), "{status}\n{}", agent.diagnostics());
    let leftovers = temp_files(&state);
    assert!(leftovers.is_empty(), "temp files: {leftovers:?}");
    let torn = unparsable_json(&state);
    assert!(torn.is_empty(), "{torn:?}");
    eprintln!(
        "full disk: filler {} KiB; records of the namespace {before} before, {stuck} while \
         full, {after} after; {unlogged} warnings of unlogged records",
        filled / 1024
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Event flood.

/// How long the flood runs.
const FLOOD_SECONDS: u64 = 20;
/// First argument of every exec of the flood.
const MARKER: &str = "flood";
/// The agent's resident memory may not pass this during the flood. Measured here: see
/// docs/operations.md (idle ~30 MiB, start-up peak ~60 MiB from BTF parsing).
const RSS_CEILING_MIB: u64 = 192;

/// In the flooding container (python3 from the host's /usr): for `seconds`, as fast as it can,
/// an exec of `/bin/echo <marker>-<unique word>`, 8 UDP datagrams to distinct ports of the
/// peer, and a DNS query for a unique name; prints the counts as JSON.
const FLOOD_PY: &str = r#"
import json, os, socket, struct, sys, time
ip, seconds, marker = sys.argv[1], float(sys.argv[2]), sys.argv[3]

def letters(n):
    s = ""
    while True:
        s = chr(97 + n % 26) + s
        n //= 26
        if n == 0:
            return s

def query(qid, name):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!6H", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!2H", 1, 1)

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.setblocking(False)
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.setblocking(False)
devnull = os.open("/dev/null", os.O_WRONLY)
counts = {"execs": 0, "exec_failed": 0, "udp": 0, "dns": 0}
children = 0
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    try:
        os.posix_spawn("/bin/echo", ["/bin/echo", marker + "-" + letters(i)], {},
                       file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
        counts["execs"] += 1
        children += 1
    except OSError:
        counts["exec_failed"] += 1
    while children > 0:
        pid, _ = os.waitpid(-1, os.WNOHANG if children < 16 else 0)
        if pid == 0:
            break
        children -= 1
    for k in range(8):
        try:
            udp.sendto(b"x", (ip, 20000 + (i * 8 + k) % 40000))
            counts["udp"] += 1
        except OSError:
            pass
    try:
        dns.sendto(query(i & 0xFFFF, "q-" + letters(i) + ".flood.test"), (ip, 53))
        counts["dns"] += 1
    except OSError:
        pass
    try:
        while True:
            dns.recv(4096)
    except OSError:
        pass
    i += 1
while children > 0:
    os.waitpid(-1, 0)
    children -= 1
print(json.dumps(counts))
"#;

/// What one flood did and what the agent made of it.
struct FloodOutcome {
    /// The flood's own counts (`execs`, `udp`, `dns`, `exec_failed`).
    generated: Value,
    took: Duration,
    /// Daemon RSS (KiB): before the flood, sampled every 100 ms during it, and VmHWM at the end.
    idle_kib: u64,
    samples: Vec<(Duration, u64)>,
    hwm_kib: u64,
    /// Flood execs seen on a gRPC event stream, and messages its in-band gaps said it missed.
    seen: u64,
    gaps: u64,
    /// `sensor profiles list` latencies during the flood.
    latencies: Vec<Duration>,
    /// The agent's counters logged at its exit: decoded events and losses.
    events: std::collections::BTreeMap<String, u64>,
    lost: std::collections::BTreeMap<String, u64>,
    /// The agent's stderr up to just before it was stopped (warnings while running).
    stderr_running: String,
    /// Anomaly records of the namespace.
    logged: usize,
}

impl FloodOutcome {
    fn execs(&self) -> u64 {
        self.generated["execs"].as_u64().unwrap()
    }

    fn lost_exec(&self) -> u64 {
        self.lost.get("ringbuf_full_exec").copied().unwrap_or(0)
            + self.lost.get("queue_full_exec").copied().unwrap_or(0)
    }

    fn peak_kib(&self) -> u64 {
        self.samples
            .iter()
            .map(|(_, k)| *k)
            .max()
            .expect("RSS samples")
    }

    /// Each exec of the flood was seen on the stream, reported missed by the stream's gaps, or
    /// counted lost by the agent (kernel ring buffer or its queue; the counters are per node,
    /// so they may include other processes' losses: an upper bound).
    #[track_caller]
    fn assert_execs_accounted(&self) {
        let (execs, seen, gaps, lost) = (self.execs(), self.seen, self.gaps, self.lost_exec());
        assert!(
            seen <= execs && seen + gaps + lost >= execs,
            "execs: {execs} generated, {seen} seen on the stream + {gaps} missed in its gaps + \
             {lost} lost by the agent do not account for them"
        );
    }

    fn report(&self, what: &str) {
        let max_latency = self.latencies.iter().max().copied().unwrap_or_default();
        let lost: std::collections::BTreeMap<&String, &u64> =
            self.lost.iter().filter(|(_, v)| **v > 0).collect();
        eprintln!(
            "{what}: flood of {:?}: generated {}; agent RSS idle {} MiB, peak {} MiB (VmHWM {} \
             MiB), at the end {} MiB; event stream: {} flood execs + {} missed (gaps); agent \
             lost (non-zero): {lost:?}; decoded: {:?}; {} anomalies logged; {} API calls, \
             slowest {max_latency:?}",
            self.took,
            self.generated,
            self.idle_kib / 1024,
            self.peak_kib() / 1024,
            self.hwm_kib / 1024,
            self.samples.last().map(|(_, k)| *k).unwrap_or(0) / 1024,
            self.seen,
            self.gaps,
            self.events,
            self.logged,
            self.latencies.len()
        );
    }
}

/// Starts an agent with `config`, lets workload `flooder` learn, then floods from its pod for
/// `seconds` (see `FLOOD_PY`) while a gRPC event stream counts the flood's execs and the CLI
/// calls the API every 0.5 s; stops the agent once it has worked through the flood.
fn flood(world: &World, config: DaemonConfig, seconds: u64) -> FloodOutcome {
    let ns = world.ns.clone();
    let mut peer = Peer::new();
    // Every flood name is unknown to it: NXDOMAIN answers, each an unexpected DNS name.
    peer.start_dns_server(&DnsZone::new());
    let state = config.state_dir.clone();
    let mut agent = Daemon::start(config);
    let pid = agent.pid().expect("agent pid");
    let pod = world.learn(&agent, "flooder");
    let idle_kib = status_kib(pid, "VmRSS").expect("VmRSS");

    let work = world.dir.path().join("flood");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("flood.py"), FLOOD_PY).unwrap();
    let stop_file = work.join("stop-counting");
    let counter = py_abuse(
        &agent,
        &work.join("py"),
        &[
            "count",
            "--namespace",
            &ns,
            "--marker",
            &format!("{MARKER}-"),
            "--stop-file",
            stop_file.to_str().unwrap(),
        ],
    );
    counter.wait_for(Duration::from_secs(60), "ready", |l| {
        l.iter().any(|x| x["kind"] == "ready").then_some(())
    });

    let sampler = RssSampler::start(pid, Duration::from_millis(100));
    let started = Instant::now();
    let mut flood = world.runc.spawn(
        &ContainerConfig::for_pod(
            &pod,
            "app",
            &[
                runc::CONTAINER_PYTHON,
                "/data/flood.py",
                &peer.peer_ip().to_string(),
                &seconds.to_string(),
                MARKER,
            ],
        )
        .host_usr()
        .bind_mount(&work, "/data", true),
    );
    // The API keeps answering while the flood runs.
    let mut latencies = Vec::new();
    while !flood.has_exited() {
        let t = Instant::now();
        let out = agent.client(&["profiles", "list", "--json", "--namespace", &ns]);
        let took = t.elapsed();
        assert!(
            out.code == Some(0) && took < Duration::from_secs(5),
            "`sensor profiles list` during the flood: {:?} after {took:?}\n{}",
            out.code,
            out.stderr
        );
        latencies.push(took);
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = flood.wait(Duration::from_secs(seconds + 60));
    out.assert_success();
    let generated: Value = out
        .stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("the flood printed no counts: {out:?}"));
    let took = started.elapsed();

    // Until the agent has worked through what it got (the log stops growing), at most 3x the
    // flood's time.
    let mut last_len = 0;
    let mut stable = Instant::now();
    while stable.elapsed() < Duration::from_secs(3) && started.elapsed() < took * 4 {
        let len = std::fs::metadata(anomaly::log_path(&state))
            .map(|m| m.len())
            .unwrap_or(0);
        if len != last_len {
            last_len = len;
            stable = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    std::fs::write(&stop_file, b"").unwrap();
    let count = counter.wait_for(Duration::from_secs(30), "the count", |l| {
        l.iter().find(|x| x["kind"] == "count").cloned()
    });
    let samples = sampler.finish();
    let hwm_kib = status_kib(pid, "VmHWM").expect("VmHWM");
    let stderr_running = agent.stderr();
    let status = agent.stop();
    assert!(status.success(), "{status}\n{}", agent.diagnostics());
    let (events, lost) = final_counters(&agent.stderr());
    FloodOutcome {
        generated,
        took,
        idle_kib,
        samples,
        hwm_kib,
        seen: count["matching"].as_u64().unwrap(),
        gaps: count["gaps"].as_u64().unwrap(),
        latencies,
        events,
        lost,
        stderr_running,
        logged: read_log_ns(&state, &ns).len(),
    }
}

#[test]
fn event_flood_memory_bounded_losses_counted_api_answers() {
    let _heavy = heavy();
    let world = World::new();
    let config = DaemonConfig::new(world.dir.path(), &world.kubelet)
        .learning_period("3s")
        .flush_interval("1s");
    let f = flood(&world, config, FLOOD_SECONDS);
    f.report("default ring buffer");
    assert!(
        f.peak_kib() < RSS_CEILING_MIB * 1024,
        "the agent's RSS reached {} MiB during the flood (ceiling {RSS_CEILING_MIB} MiB)",
        f.peak_kib() / 1024
    );
    f.assert_execs_accounted();
    if f.lost.values().sum::<u64>() > 0 {
        assert!(
            f.stderr_running.contains("events lost"),
            "the agent lost {:?} but never warned while running",
            f.lost
        );
    }
    assert!(
        f.logged > 0,
        "the flood of a ready workload raised no anomaly at all"
    );
}

/// The smallest ring buffer the agent accepts (`ringBufferBytes`): a few records.
const TINY_RING_BYTES: u32 = 4096;

#[test]
fn flood_into_a_tiny_ring_buffer_counts_every_loss() {
    let _heavy = heavy();
    let world = World::new();
    let file = world.dir.path().join("tiny-ring.yaml");
    std::fs::write(&file, format!("ringBufferBytes: {TINY_RING_BYTES}\n")).unwrap();
    let config = DaemonConfig::new(world.dir.path(), &world.kubelet)
        .learning_period("3s")
        .flush_interval("1s")
        .arg("--config")
        .arg(file.to_str().unwrap());
    let f = flood(&world, config, 8);
    f.report("4 KiB ring buffer");
    let ring_lost: u64 = f
        .lost
        .iter()
        .filter(|(k, _)| k.starts_with("ringbuf_full_"))
        .map(|(_, v)| v)
        .sum();
    assert!(
        ring_lost > 0,
        "a {TINY_RING_BYTES}-byte ring buffer under a flood lost nothing: {:?}",
        f.lost
    );
    // Losses are said while they happen, not only at exit.
    assert!(
        f.stderr_running.contains("events lost") && f.stderr_running.contains("ringbuf_full_"),
        "the agent lost {ring_lost} records in the ring buffer but did not warn while running"
    );
    f.assert_execs_accounted();
}

// ---------------------------------------------------------------------------------------------
// 3. Malformed configuration and flags.

/// One bad input: the argv after `sensor`, and words the one error line must contain.
struct BadInput {
    what: &'static str,
    argv: Vec<String>,
    names: Vec<String>,
    /// Run as uid 65534 (an unreadable file for it).
    as_nobody: bool,
}

fn bad(what: &'static str, argv: Vec<String>, names: Vec<String>) -> BadInput {
    BadInput {
        what,
        argv,
        names,
        as_nobody: false,
    }
}

impl BadInput {
    fn run_as_nobody(mut self) -> Self {
        self.as_nobody = true;
        self
    }
}

#[test]
fn malformed_config_and_flags_exit_2_with_one_line_and_start_nothing() {
    let dir = TempDir::new("faults");
    let kubelet = Kubelet::new();
    let state = dir.path().join("state");
    let socket = dir.path().join("s.sock");
    let base = || DaemonConfig::new(dir.path(), &kubelet);
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    // `sensor run` with the test's state dir and socket (unless `extra` listens elsewhere),
    // then `extra`.
    let run = |extra: &[&str]| {
        let mut v = base().argv();
        if extra.contains(&"--grpc-listen") {
            let i = v.iter().position(|a| a == "--grpc-listen").unwrap();
            v.drain(i..i + 2);
        }
        v.extend(s(extra));
        v
    };
    // Without --learning-period (the file sets it).
    let run_with_file = |path: &str| {
        let mut v = run(&["--config", path]);
        let i = v.iter().position(|a| a == "--learning-period").unwrap();
        v.drain(i..i + 2);
        v
    };
    let tcp = ["--grpc-listen", "127.0.0.1:50999"];
    let secret = file("secret.yaml", "learningPeriod: 1h\n");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cert_dir = TempDir::new("faults-tls");
    let some_pem = cert_dir.path().join("not-a-cert.pem");
    std::fs::write(&some_pem, "hello\n").unwrap();
    let missing = dir.path().join("missing.pem").display().to_string();
    let state_file = file("state-is-a-file", "");
    let unknown_key = file("unknown.yaml", "flushInterval: 1s\nlearnigPeriod: 1h\n");
    let wrong_type = file("type.yaml", "flushInterval: [1, 2]\n");
    let bad_ring = file("ring.yaml", "ringBufferBytes: lots\n");
    let short = file("short.yaml", "anomalyWindow: 10ms\n");
    let not_yaml = file("broken.yaml", "learningPeriod: [1h\n");
    let pem = some_pem.display().to_string();

    let cases = vec![
        bad(
            "unknown config key",
            run_with_file(&unknown_key),
            s(&[&unknown_key, "learnigPeriod"]),
        ),
        bad(
            "wrong type in the file",
            run_with_file(&wrong_type),
            s(&[&wrong_type, "flushInterval"]),
        ),
        bad(
            "a number that is a word",
            run_with_file(&bad_ring),
            s(&[&bad_ring, "ringBufferBytes"]),
        ),
        bad(
            "broken YAML",
            run_with_file(&not_yaml),
            s(&[&not_yaml, "line 1"]),
        ),
        bad(
            "duration below the minimum in the file",
            run_with_file(&short),
            s(&[&short, "anomalyWindow", "10ms"]),
        ),
        bad(
            "bad duration flag",
            base().learning_period("2fortnights").argv(),
            s(&["--learning-period", "2fortnights"]),
        ),
        bad(
            "flush interval below the minimum",
            base().flush_interval("5ms").argv(),
            s(&["--flush-interval", "5ms"]),
        ),
        bad(
            "unknown listen scheme",
            run(&["--grpc-listen", "ftp://127.0.0.1:1"]),
            s(&["--grpc-listen", "ftp"]),
        ),
        bad(
            "bad port",
            run(&["--grpc-listen", "127.0.0.1:99999"]),
            s(&["--grpc-listen", "99999"]),
        ),
        bad(
            "empty unix path",
            run(&["--grpc-listen", "unix:"]),
            s(&["--grpc-listen", "empty"]),
        ),
        bad("TCP without TLS", run(&tcp), s(&["--grpc-listen", "TLS"])),
        bad(
            "missing config file",
            run(&["--config", &missing]),
            s(&[&missing, "No such file"]),
        ),
        bad(
            "config file unreadable for the user",
            run(&["--config", &secret]),
            s(&[&secret, "Permission denied"]),
        )
        .run_as_nobody(),
        bad(
            "--grpc-insecure with a unix socket",
            run(&["--grpc-insecure"]),
            s(&["--grpc-insecure", "Unix socket"]),
        ),
        bad(
            "--grpc-insecure with TLS files",
            run(&[
                tcp[0],
                tcp[1],
                "--grpc-insecure",
                "--grpc-tls-cert",
                &pem,
                "--grpc-tls-key",
                &pem,
                "--grpc-tls-client-ca",
                &pem,
            ]),
            s(&["--grpc-insecure", "conflicts"]),
        ),
        bad(
            "TLS files with a unix socket",
            run(&["--grpc-tls-cert", &pem]),
            s(&["--grpc-tls-cert", "Unix socket"]),
        ),
        bad(
            "incomplete TLS",
            run(&[tcp[0], tcp[1], "--grpc-tls-cert", &pem]),
            s(&[
                "--grpc-tls-cert",
                "missing --grpc-tls-key and --grpc-tls-client-ca",
            ]),
        ),
        bad(
            "TLS file missing",
            run(&[
                tcp[0],
                tcp[1],
                "--grpc-tls-cert",
                &missing,
                "--grpc-tls-key",
                &pem,
                "--grpc-tls-client-ca",
                &pem,
            ]),
            s(&["--grpc-tls-cert", &missing, "No such file"]),
        ),
        bad(
            "TLS file that is not PEM",
            run(&[
                tcp[0],
                tcp[1],
                "--grpc-tls-cert",
                &pem,
                "--grpc-tls-key",
                &pem,
                "--grpc-tls-client-ca",
                &pem,
            ]),
            s(&["--grpc-tls-cert", &pem, "no CERTIFICATE"]),
        ),
        bad(
            "state dir is a file",
            {
                let mut v = run(&[]);
                let i = v.iter().position(|a| a == "--state-dir").unwrap();
                v[i + 1] = state_file.clone();
                v
            },
            s(&["--state-dir", &state_file, "not a directory"]),
        ),
        bad(
            "missing BTF",
            run(&["--btf", &missing]),
            s(&["--btf", &missing]),
        ),
        bad(
            "empty node name",
            run(&["--node-name", " "]),
            s(&["--node-name", "empty"]),
        ),
        bad(
            "relative sensitive path",
            run(&["--sensitive-path", "relative/token"]),
            s(&["--sensitive-path", "relative/token"]),
        ),
        bad(
            "unknown flag (a typo)",
            run(&["--stat-dir", "/x"]),
            s(&["--stat-dir", "--state-dir"]),
        ),
        bad(
            "flag without its value",
            {
                let mut v = run(&[]);
                v.push("--flush-interval".into());
                v
            },
            s(&["--flush-interval"]),
        ),
        bad(
            "client: bad --server",
            s(&["profiles", "list", "--server", "ftp://x:1"]),
            s(&["--server", "ftp"]),
        ),
        bad(
            "client: --since not a number",
            s(&["watch", "--since", "yesterday"]),
            s(&["--since", "yesterday"]),
        ),
    ];
    let mut problems = Vec::new();
    for case in &cases {
        let out = if case.as_nobody {
            as_nobody(&case.argv)
        } else {
            sensor_cmd(&case.argv, Duration::from_secs(30))
        };
        let lines = out.stderr_lines();
        eprintln!(
            "{}: exit {:?} in {:?}: {}",
            case.what,
            out.code,
            out.duration,
            out.stderr.trim()
        );
        let named = lines.len() == 1 && case.names.iter().all(|n| lines[0].contains(n.as_str()));
        if out.code != Some(2) || !named {
            problems.push(format!(
                "{}: expected exit 2 and one stderr line naming {:?}; got {:?}\n  command: {}\n  \
                 stderr: {}",
                case.what, case.names, out.code, out.command, out.stderr
            ));
        }
        // Refused before anything: no probe loading (seconds), no state, no socket.
        if out.duration > Duration::from_secs(3) || state.exists() || socket.exists() {
            problems.push(format!(
                "{}: took {:?}; state dir created: {}; socket created: {}",
                case.what,
                out.duration,
                state.exists(),
                socket.exists()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `setpriv --reuid 65534 --regid 65534 --clear-groups <sensor copy> <args>`; the binary is
/// copied where uid 65534 can run it (the build tree may not be).
fn as_nobody(args: &[String]) -> CmdOutput {
    let bin = nobody_binary();
    let mut argv = vec![
        "--reuid".to_string(),
        "65534".into(),
        "--regid".into(),
        "65534".into(),
        "--clear-groups".into(),
        bin.display().to_string(),
    ];
    argv.extend(args.iter().cloned());
    let started = Instant::now();
    let out = std::process::Command::new(util::require_tool("setpriv", "util-linux"))
        .args(&argv)
        .env("NO_COLOR", "1")
        .env_remove("SENSOR_SERVER")
        .output()
        .expect("run setpriv");
    CmdOutput {
        command: format!("setpriv {}", argv.join(" ")),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: daemon::strip_ansi(&String::from_utf8_lossy(&out.stderr)),
        timed_out: false,
        duration: started.elapsed(),
    }
}

/// A copy of the sensor binary in a world-readable directory, mode 0755.
fn nobody_binary() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let dir = TempDir::new("faults-bin").into_path();
        let bin = dir.join("sensor");
        std::fs::copy(Sensor::binary(), &bin).expect("copy the sensor binary");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    })
    .clone()
}

// ---------------------------------------------------------------------------------------------
// 4. API abuse.

#[test]
fn unix_socket_refuses_other_uids() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _heavy = heavy();
    let world = World::new();
    // A socket directory anyone may enter: what keeps uid 65534 out is the socket's own mode.
    let sock_dir = world.dir.path().join("run");
    std::fs::create_dir_all(&sock_dir).unwrap();
    for d in [world.dir.path(), sock_dir.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut config = DaemonConfig::new(world.dir.path(), &world.kubelet);
    config.socket = sock_dir.join("sensor.sock");
    let agent = Daemon::start(config);
    let meta = std::fs::metadata(&agent.config.socket).unwrap();
    assert_eq!(
        (meta.mode() & 0o777, meta.uid()),
        (0o600, 0),
        "the socket must be mode 0600, owned by root"
    );

    agent.client(&["profiles", "list"]).ok();
    let server = agent.server();
    for args in [
        vec!["profiles", "list", "--server", &server],
        vec!["watch", "--server", &server],
    ] {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = as_nobody(&args);
        let lines = out.stderr_lines();
        eprintln!(
            "uid 65534 `{}`: {:?}: {}",
            args.join(" "),
            out.code,
            out.stderr.trim()
        );
        let said = lines.first().copied().unwrap_or_default();
        assert!(
            out.code == Some(1)
                && lines.len() == 1
                && said.contains("permission denied")
                && said.contains(&agent.config.socket.display().to_string())
                && said.contains("0600"),
            "uid 65534 must be refused with one clear permission error naming the socket; got \
             {:?}\nstdout: {}\nstderr: {}",
            out.code,
            out.stdout,
            out.stderr
        );
    }
    // Root still gets through, and the agent is unaffected.
    agent.client(&["profiles", "list"]).ok();
}

#[test]
fn oversized_requests_refused_while_others_are_served() {
    let _heavy = heavy();
    let world = World::new();
    let agent = Daemon::start(DaemonConfig::new(world.dir.path(), &world.kubelet));
    let work = world.dir.path().join("py");
    // 2 MiB, above the 1 MiB limit; then 512 KiB, below it (refused for its content only).
    let big = py_abuse(
        &agent,
        &work,
        &["oversized", "--bytes", &(2 << 20).to_string()],
    );
    let refused = big.wait_for(Duration::from_secs(60), "the oversized call", |l| {
        l.iter().find(|x| x["kind"] == "oversized").cloned()
    });
    let after = big.wait_for(Duration::from_secs(60), "the call after it", |l| {
        l.iter().find(|x| x["kind"] == "after").cloned()
    });
    eprintln!("2 MiB request: {refused}; then: {after}");
    let details = refused["details"].as_str().unwrap_or_default();
    assert!(
        refused["code"] == "StatusCode.OUT_OF_RANGE"
            && details.contains("message length too large")
            && details.contains("1048576"),
        "a 2 MiB request must be refused by its size, naming the limit: {refused}"
    );
    assert_eq!(
        after["code"], "OK",
        "the same connection is served after it: {after}"
    );
    // The agent serves other clients as before.
    agent.client(&["profiles", "list"]).ok();
    let under = py_abuse(
        &agent,
        &work,
        &["oversized", "--bytes", &(512 << 10).to_string()],
    );
    let answer = under.wait_for(Duration::from_secs(60), "the 512 KiB call", |l| {
        l.iter().find(|x| x["kind"] == "oversized").cloned()
    });
    assert_eq!(
        answer["code"], "StatusCode.INVALID_ARGUMENT",
        "a 512 KiB request is decoded and refused for its content (a 512 KiB namespace): {answer}"
    );
}

/// Concurrent StreamEvents of the subscriber flood.
const SUBSCRIBERS: usize = 200;
/// The agent's RSS while they stream (see the measurement at the assertion).
const SUBSCRIBERS_RSS_CEILING_MIB: u64 = 160;

#[test]
fn subscriber_flood_is_bounded() {
    let _heavy = heavy();
    let world = World::new();
    let agent = Daemon::start(DaemonConfig::new(world.dir.path(), &world.kubelet));
    let pid = agent.pid().unwrap();
    let pod = world.pod("busy");
    // Events for the streams to carry while they are open.
    let busy = world.runc.spawn(&ContainerConfig::sh(
        &pod,
        "app",
        "end=$(( $(date +%s) + 20 )); while [ $(date +%s) -lt $end ]; do /bin/true; done",
    ));
    let before_kib = status_kib(pid, "VmRSS").unwrap();
    let sampler = RssSampler::start(pid, Duration::from_millis(100));
    let flood = py_abuse(
        &agent,
        &world.dir.path().join("py"),
        &[
            "streams",
            "--count",
            &SUBSCRIBERS.to_string(),
            "--hold",
            "8",
            "--per-channel",
            "20",
        ],
    );
    // Meanwhile the CLI is served.
    let t = Instant::now();
    agent.client(&["profiles", "list"]).ok();
    let cli_took = t.elapsed();
    let result = flood.wait_for(Duration::from_secs(90), "the stream results", |l| {
        l.iter().find(|x| x["kind"] == "streams").cloned()
    });
    let reopen = flood.wait_for(Duration::from_secs(60), "the reopened stream", |l| {
        l.iter().find(|x| x["kind"] == "reopen").cloned()
    });
    let samples = sampler.finish();
    drop(busy);
    let peak_kib = samples.iter().map(|(_, k)| *k).max().unwrap();
    eprintln!(
        "{SUBSCRIBERS} StreamEvents: {result}; reopen: {reopen}; agent RSS {} -> peak {} MiB; \
         `profiles list` during: {cli_took:?}",
        before_kib / 1024,
        peak_kib / 1024
    );
    let limit = 32;
    assert_eq!(
        (result["accepted"].as_u64(), result["refused"].as_u64()),
        (Some(limit), Some(SUBSCRIBERS as u64 - limit)),
        "{limit} streams served and the rest refused with RESOURCE_EXHAUSTED: {result}"
    );
    assert!(
        result["refusal"]
            .as_str()
            .is_some_and(|r| r.contains("StreamEvents") && r.contains("32 open")),
        "the refusal says why: {result}"
    );
    assert!(
        result["events"].as_u64() > Some(0),
        "the accepted streams carried events: {result}"
    );
    assert_eq!(result["list_code"], "OK", "{result}");
    assert!(result["list_ms"].as_f64() < Some(5000.0), "{result}");
    assert_eq!(
        reopen["code"], "open",
        "once the flood's clients are gone their slots are free: {reopen}"
    );
    // Measured: 41 -> 107 MiB with the bound (32 streams carrying every event of the node);
    // without it, 200 streams took the agent to 259 MiB.
    assert!(
        peak_kib < SUBSCRIBERS_RSS_CEILING_MIB * 1024,
        "{SUBSCRIBERS} subscribers grew the agent from {} to {} MiB (ceiling \
         {SUBSCRIBERS_RSS_CEILING_MIB} MiB)",
        before_kib / 1024,
        peak_kib / 1024
    );
}
