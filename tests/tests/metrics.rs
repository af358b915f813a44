//! End-to-end tests of the agent's metrics and health endpoint (`sensor run --metrics-listen`):
//! a real agent on a free port, real runc pods, `/metrics` fetched over HTTP and parsed by the
//! Prometheus project's Python parser, `/healthz` and `/readyz` checked by status code as
//! kubelet does.
//!
//! The numbers are checked against independent ground truth from the same agent: the profile
//! list over gRPC, the anomaly log, the pod's own profile, a `sensor watch` subscriber.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sensor_tests::anomaly::{self, read_log};
use sensor_tests::metrics::{Scrape, get, listening_addr, request, scrape};
use sensor_tests::util::{self, TempDir};
use sensor_tests::{ContainerConfig, Daemon, DaemonConfig, Kubelet, Peer, Pod, Runc, runc};
use serde_json::Value;

/// Learning period of the agent: long enough to scrape a learning profile.
const LEARNING_PERIOD: &str = "10s";
/// How long a number may take to show (syscall sets and flows are polled every 2 s, profiles
/// flushed every second).
const SETTLE: Duration = Duration::from_secs(20);

/// The 13 probes the agent attaches (capture/compat.rs: sys_enter, file_open - by fentry or its
/// sys_exit fallback - and the rest).
const PROGRAMS: usize = 13;

/// The learning runs: a shell, `/bin/echo` and `cat` (busybox runs applets through
/// `/proc/self/exe`, each an exec).
const NORMAL: &str = "/bin/echo learning >/dev/null; cat /etc/hostname; exit 0";

struct Bed {
    dir: TempDir,
    ns: String,
    kubelet: Kubelet,
    runc: Runc,
}

impl Bed {
    fn new() -> Bed {
        Bed {
            dir: TempDir::new("metrics"),
            ns: util::unique_name("mx"),
            kubelet: Kubelet::new(),
            runc: Runc::new(),
        }
    }

    fn config(&self) -> DaemonConfig {
        DaemonConfig::new(self.dir.path(), &self.kubelet)
            .learning_period(LEARNING_PERIOD)
            .flush_interval("1s")
            .arg("--anomaly-window")
            .arg("2s")
            .arg("--metrics-listen")
            .arg("127.0.0.1:0")
    }

    fn pod(&self, deployment: &str) -> Pod {
        let name = format!(
            "{deployment}-{}-{}",
            util::random_k8s_suffix(10),
            util::random_k8s_suffix(5)
        );
        let pod = Pod::new(&self.ns, &name).with_container("app");
        self.kubelet.add_pod(&pod);
        pod
    }

    #[track_caller]
    fn sh(&self, pod: &Pod, script: &str) {
        self.runc
            .run(
                &ContainerConfig::sh(pod, "app", script),
                runc::DEFAULT_TIMEOUT,
            )
            .assert_success();
    }
}

/// Scrapes until `f` returns `Some`; panics with `what` and the last scrape's samples of
/// `family` on timeout.
#[track_caller]
fn wait_scrape<T>(
    agent: &Daemon,
    addr: std::net::SocketAddr,
    what: &str,
    family: &str,
    mut f: impl FnMut(&Scrape) -> Option<T>,
) -> T {
    let mut last = None;
    util::poll_until(SETTLE, Duration::from_millis(300), || {
        let s = scrape(addr);
        let r = f(&s);
        last = Some(s);
        r
    })
    .unwrap_or_else(|| {
        panic!(
            "metrics never showed {what} within {SETTLE:?}; last {family}: {:?}\n{}",
            last.as_ref().map(|s| s.samples(family)),
            agent.diagnostics()
        )
    })
}

/// `sensor profiles list --json` counted by (status, completeness).
fn listed_by_state(agent: &Daemon) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for p in agent.list(None) {
        let key = (
            p["status"].as_str().unwrap_or("?").to_string(),
            p["completeness"].as_str().unwrap_or("?").to_string(),
        );
        *out.entry(key).or_default() += 1;
    }
    out
}

/// `sensor_profiles` by (status, completeness), non-zero entries only.
fn scraped_by_state(s: &Scrape) -> BTreeMap<(String, String), u64> {
    s.samples("sensor_profiles")
        .into_iter()
        .filter(|x| x.value > 0.0)
        .map(|x| {
            (
                (x.labels["status"].clone(), x.labels["completeness"].clone()),
                x.value as u64,
            )
        })
        .collect()
}

/// The metrics agree with the gRPC profile list (both of the whole agent), and show `want`
/// profiles in `status` (full).
#[track_caller]
fn wait_profiles_agree(agent: &Daemon, addr: std::net::SocketAddr, status: &str) {
    wait_scrape(
        agent,
        addr,
        &format!("profiles by state equal to `profiles list` with one {status} or more"),
        "sensor_profiles",
        |s| {
            let scraped = scraped_by_state(s);
            let listed = listed_by_state(agent);
            let has = scraped
                .get(&(status.to_string(), "full".to_string()))
                .is_some_and(|n| *n >= 1);
            (has && scraped == listed).then_some(())
        },
    );
}

fn exec_total(profile: &Value) -> u64 {
    profile["execs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["count"].as_u64())
        .sum()
}

/// Every family has help text and a type, every name is `sensor_*` or `process_*`, every
/// counter sample ends in `_total`.
#[track_caller]
fn assert_well_formed(s: &Scrape) {
    assert_eq!(s.status, 200);
    assert!(
        s.content_type.starts_with("text/plain; version=0.0.4"),
        "Content-Type {:?}",
        s.content_type
    );
    for f in &s.families {
        assert!(
            f.name.starts_with("sensor_") || f.name.starts_with("process_"),
            "family {} is not sensor_* or process_*",
            f.name
        );
        assert!(!f.help.trim().is_empty(), "family {} has no help", f.name);
        assert!(
            matches!(f.kind.as_str(), "counter" | "gauge"),
            "family {} has type {}",
            f.name,
            f.kind
        );
        if f.kind == "counter" {
            for x in &f.samples {
                assert!(x.name.ends_with("_total"), "counter sample {}", x.name);
            }
        }
    }
}

/// Capture is node-wide: the broken DNS answers of one test are losses in every agent running
/// at that moment. The tests that start agents take turns, so the loss counters that must stay
/// at zero do.
static ONE_AGENT_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_agent_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AGENT_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn metrics_follow_a_pod_from_learning_to_an_anomaly() {
    let _turn = one_agent_at_a_time();
    let bed = Bed::new();
    let mut agent = Daemon::spawn(bed.config());
    let addr = listening_addr(&agent, Duration::from_secs(30));

    // Start-up: the endpoint answers before the probes are attached; /readyz says what is
    // missing until everything is up, /healthz is 200 throughout.
    let mut seen = Vec::new();
    let started = Instant::now();
    let ready = util::poll_until(agent_start_timeout(), Duration::from_millis(5), || {
        let r = request(addr, "GET", "/readyz")?;
        if seen
            .last()
            .is_none_or(|(s, b): &(u16, String)| *s != r.status || *b != r.body)
        {
            seen.push((r.status, r.body.clone()));
        }
        let live = get(addr, "/healthz");
        assert_eq!(live.status, 200, "/healthz during start-up: {live:?}");
        (r.status == 200).then_some(r)
    });
    let ready = ready.unwrap_or_else(|| {
        panic!(
            "/readyz not 200 within {:?}; answers: {seen:?}\n{}",
            agent_start_timeout(),
            agent.diagnostics()
        )
    });
    assert_eq!(ready.body, "ready\n");
    assert!(
        seen.iter()
            .any(|(s, b)| *s == 503 && b.contains("probes_attached")),
        "/readyz was never seen answering 503 for unattached probes before it was ready: \
         {seen:?} (after {:?})",
        started.elapsed()
    );
    agent.wait_started();
    let live = get(addr, "/healthz");
    assert_eq!(live.status, 200, "{live:?}");
    assert!(live.body.starts_with("ok: event loop ticked"), "{live:?}");
    assert_eq!(
        request(addr, "POST", "/metrics").map(|r| r.status),
        Some(405)
    );
    assert_eq!(request(addr, "GET", "/nope").map(|r| r.status), Some(404));

    // The first scrape: well formed; probes, readiness, build and kernel facts; every loss
    // counter present and zero.
    let s0 = scrape(addr);
    assert_well_formed(&s0);
    let probes = s0.samples("sensor_probe_attached");
    assert_eq!(probes.len(), PROGRAMS, "{probes:?}");
    assert!(probes.iter().all(|p| p.value == 1.0), "{probes:?}");
    for check in [
        "state_loaded",
        "probes_attached",
        "grpc_serving",
        "not_stopping",
    ] {
        assert_eq!(s0.must("sensor_ready", &[("check", check)]), 1.0, "{check}");
    }
    assert!(s0.must("sensor_event_loop_heartbeat_age_seconds", &[]) < 5.0);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(
        s0.must("sensor_kernel_info", &[("release", release.trim())]),
        1.0
    );
    assert_eq!(
        s0.must(
            "sensor_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(s0.must("sensor_kernel_btf_size_bytes", &[]) > 1e6);
    let lost = s0.samples("sensor_events_lost_total");
    let causes: std::collections::BTreeSet<&str> =
        lost.iter().map(|x| x.labels["cause"].as_str()).collect();
    assert_eq!(
        causes.into_iter().collect::<Vec<_>>(),
        ["malformed", "queue_full", "ring_buffer_full"]
    );
    assert!(lost.iter().all(|x| x.value == 0.0), "losses: {lost:?}");
    for name in [
        "sensor_flow_map_full_total",
        "sensor_dns_answers_unparsed_total",
    ] {
        assert_eq!(s0.must(name, &[]), 0.0, "{name}");
    }
    let unrecorded = s0.samples("sensor_syscalls_unrecorded_total");
    assert_eq!(unrecorded.len(), 2, "{unrecorded:?}");
    assert!(unrecorded.iter().all(|x| x.value == 0.0), "{unrecorded:?}");
    s0.must("sensor_file_paths_unresolved_total", &[]);
    assert!(s0.must("process_resident_memory_bytes", &[]) > 1e6);
    assert!(s0.must("process_cpu_seconds_total", &[]) > 0.0);
    assert_eq!(
        s0.must("sensor_grpc_subscribers", &[("stream", "anomalies")]),
        0.0
    );

    // A `sensor watch` client is a subscriber of the anomaly stream.
    let watcher = anomaly::watch(&agent, &["--namespace", &bed.ns]);
    wait_scrape(
        &agent,
        addr,
        "one anomaly subscriber",
        "sensor_grpc_subscribers",
        |s| {
            (s.value("sensor_grpc_subscribers", &[("stream", "anomalies")]) == Some(1.0))
                .then_some(())
        },
    );

    // A pod learns: its execs are counted (at least as many as its profile holds), and the
    // profile shows as learning, as `profiles list` says.
    let pod = bed.pod("shop");
    for _ in 0..2 {
        bed.sh(&pod, NORMAL);
    }
    let key = (bed.ns.as_str(), "shop", "app");
    let profile = agent.wait_profile(key, "learning with execs", SETTLE, |p| {
        p["status"] == "learning" && exec_total(p) >= 4
    });
    let execs = exec_total(&profile);
    let s1 = scrape(addr);
    let decoded = |s: &Scrape| s.must("sensor_events_decoded_total", &[("kind", "exec")]);
    assert!(
        decoded(&s1) - decoded(&s0) >= execs as f64,
        "exec events decoded moved by {} while the pod's profile counts {execs} execs",
        decoded(&s1) - decoded(&s0)
    );
    assert!(
        s1.must("sensor_events_decoded_total", &[("kind", "cgroup_mkdir")])
            > s0.must("sensor_events_decoded_total", &[("kind", "cgroup_mkdir")]),
        "the pod's cgroups were created"
    );
    wait_profiles_agree(&agent, addr, "learning");

    // Ready: the metric follows the list again.
    agent.wait_profile(key, "ready", SETTLE, |p| p["status"] == "ready");
    wait_profiles_agree(&agent, addr, "ready");

    // A deviation: an unexpected exec, counted by rule and severity; the records counted equal
    // the log's, and the last sequence number is the log's.
    bed.sh(&pod, "/bin/echo deviation >/dev/null; exit 0");
    wait_scrape(
        &agent,
        addr,
        "unexpected-exec anomalies matching the log",
        "sensor_anomaly_records_total",
        |s| {
            let log = read_log(agent.state_dir());
            let last = log.iter().filter_map(|a| a["seq"].as_u64()).max()?;
            let records: f64 = s
                .samples("sensor_anomaly_records_total")
                .iter()
                .map(|x| x.value)
                .sum();
            let exec = s.value(
                "sensor_anomalies_total",
                &[("rule", "unexpected-exec"), ("severity", "medium")],
            )?;
            (exec >= 1.0
                && records == log.len() as f64
                && s.must("sensor_anomaly_log_last_seq", &[]) == last as f64)
                .then_some(())
        },
    );
    let s2 = scrape(addr);
    assert_well_formed(&s2);
    assert!(
        s2.must(
            "sensor_grpc_stream_published_total",
            &[("stream", "anomalies")]
        ) >= 1.0,
        "the anomaly was published to the stream"
    );
    watcher.wait_for(
        Duration::from_secs(10),
        "the unexpected-exec anomaly",
        |lines| {
            lines
                .iter()
                .find(|l| l["rule"] == "unexpected-exec")
                .map(|_| ())
        },
    );
    let lost = s2.samples("sensor_events_lost_total");
    assert!(lost.iter().all(|x| x.value == 0.0), "losses: {lost:?}");

    // The subscriber leaves.
    drop(watcher);
    wait_scrape(
        &agent,
        addr,
        "no anomaly subscriber",
        "sensor_grpc_subscribers",
        |s| {
            (s.value("sensor_grpc_subscribers", &[("stream", "anomalies")]) == Some(0.0))
                .then_some(())
        },
    );

    let status = agent.stop();
    assert!(
        status.success(),
        "agent exit: {status}\n{}",
        agent.diagnostics()
    );
}

/// A UDP "DNS server" in the peer's namespace that answers every query (same id) with a
/// response header announcing a question that is not there (a truncated message).
const BAD_DNS_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
bad = bytes([0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0])
while True:
    query, peer = s.recvfrom(2048)
    s.sendto(query[:2] + bad, peer)
"#;

/// A child process killed (and reaped) when the test ends, also when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn unparsable_dns_answers_are_counted_for_their_workload() {
    let _turn = one_agent_at_a_time();
    let bed = Bed::new();
    let peer = Peer::new();
    let ip = peer.peer_ip().to_string();
    let mut server = KillOnDrop(
        peer.command(util::python3())
            .args(["-c", BAD_DNS_SERVER, &ip])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the bad DNS server"),
    );
    let ready = util::line_channel(server.0.stdout.take().unwrap()).recv_timeout(SETTLE);
    assert_eq!(
        ready.as_deref(),
        Ok("ready"),
        "bad DNS server did not start"
    );

    let mut agent = Daemon::start(bed.config());
    let addr = listening_addr(&agent, Duration::from_secs(5));

    let pod = bed.pod("resolver");
    bed.sh(
        &pod,
        // busybox nslookup over UDP; the broken answers make it fail, which is the point. The
        // sleeps make it a container that lives a moment, as workloads do: a packet has no pid,
        // so its cgroup is learned from the container's processes (see docs/metrics.md).
        &format!("sleep 0.5; nslookup svc.example.test {ip} >/dev/null 2>&1; sleep 0.5; exit 0"),
    );
    wait_scrape(
        &agent,
        addr,
        "the pod's unparsable DNS answer",
        "sensor_workload_dns_answers_unparsed_total",
        |s| {
            let mine = s.value(
                "sensor_workload_dns_answers_unparsed_total",
                &[("namespace", bed.ns.as_str()), ("workload", "resolver")],
            )?;
            (mine >= 1.0 && s.must("sensor_dns_answers_unparsed_total", &[]) >= mine).then_some(())
        },
    );
    drop(server);
    assert!(agent.stop().success(), "{}", agent.diagnostics());
}

fn agent_start_timeout() -> Duration {
    sensor_tests::daemon::START_TIMEOUT
}

#[test]
fn a_bad_metrics_address_exits_2_and_a_taken_port_fails_before_loading() {
    let dir = TempDir::new("metrics-bad");
    let state = dir.path().join("state").display().to_string();
    let sock = format!("unix:{}", dir.path().join("s.sock").display());
    let run = |metrics_listen: &str| {
        sensor_tests::daemon::sensor_cmd(
            &[
                "run",
                "--state-dir",
                &state,
                "--grpc-listen",
                &sock,
                "--metrics-listen",
                metrics_listen,
            ],
            Duration::from_secs(20),
        )
    };
    let out = run("localhost:9090");
    assert_eq!(out.code, Some(2), "{out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one message: {lines:?}");
    assert!(
        lines[0].contains("`metricsListen`") && lines[0].contains("localhost:9090"),
        "{lines:?}"
    );

    // A port already taken: the agent stops at once, naming the address, before it loads
    // anything (no state dir created).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(&format!("127.0.0.1:{port}"));
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("metrics endpoint: binding 127.0.0.1:{port}")),
        "{}",
        out.stderr
    );
    assert!(
        !std::path::Path::new(&state).exists(),
        "the state dir was created before the port was checked"
    );
}
