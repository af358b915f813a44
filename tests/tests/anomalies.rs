//! End-to-end tests of anomaly detection and streaming: a workload learns its baseline in real
//! runc pods, becomes `ready`, then deviations from it are reported (attributed, with the
//! process and its ancestry, with evidence), logged with per-node sequence numbers in
//! `<state>/anomalies.jsonl`, and streamed over gRPC to `sensor watch` and to a Python grpcio
//! consumer; streams resume without loss or duplicates, a slow consumer gets a gap, sequence
//! numbers survive restarts, accepted behaviour joins the baseline, and graduation is reported.
//!
//! Each test has its own agent (short `--learning-period` and `--anomaly-window`), state dir,
//! socket, kubelet metadata root, namespace, pods and runc root, so tests run in parallel with
//! each other and with the other end-to-end tests. Nothing sleeps for a fixed time: "nothing
//! more happens" checks wait on a barrier instead ([`Daemon::sync_events`]: a marker container
//! whose exec the agent handles after every event of the runs before it; for repeat records,
//! first a repeat record of a marker anomaly that became due no earlier).
//!
//! Traffic never leaves the machine: peers live in test network namespaces, and the metadata
//! service address 169.254.169.254 exists only inside one of them ([`ImdsPeer`]), which the
//! container joins.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sensor_tests::anomaly::{self, anomalies, describe, read_log, read_log_ns, seqs};
use sensor_tests::imds::{IMDS_PORT, IMDS_V4};
use sensor_tests::util::{self, TempDir};
use sensor_tests::{
    ContainerConfig, Daemon, DaemonConfig, DnsZone, ImdsPeer, Kubelet, Network, Peer, Pod,
    RunOutput, Runc, runc,
};
use serde_json::Value;

/// How long a container may run.
const RUN: Duration = runc::DEFAULT_TIMEOUT;
/// Learning period of the agents here: long enough for a couple of short learning runs and the
/// syscall poll that follows them (every 2 s).
const LEARNING_PERIOD: &str = "4s";
/// Container runs of the learning phase of a workload whose normal behaviour is checked to be
/// quiet afterwards (see `ready_workload_normal_behaviour_is_quiet_then_deviations_are_reported`).
const LEARNING_RUNS: usize = 8;
/// Repeats of an anomaly are summarised once per this window.
const ANOMALY_WINDOW: &str = "2s";
/// How long a profile may take to become ready (learning period + flush + slack).
const READY: Duration = Duration::from_secs(20);
/// How long a deviation may take to reach the log (syscall sets and flows are read every 2 s).
const DETECT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Helpers

/// One test's world: temp dir, namespace, kubelet metadata, runc root.
struct Bed {
    dir: TempDir,
    ns: String,
    kubelet: Kubelet,
    runc: Runc,
}

impl Bed {
    fn new() -> Bed {
        Bed {
            dir: TempDir::new("anomalies"),
            ns: util::unique_name("an"),
            kubelet: Kubelet::new(),
            runc: Runc::new(),
        }
    }

    /// Daemon flags: short learning period and repeat window, flush every second.
    fn config(&self) -> DaemonConfig {
        DaemonConfig::new(self.dir.path(), &self.kubelet)
            .learning_period(LEARNING_PERIOD)
            .flush_interval("1s")
            .arg("--anomaly-window")
            .arg(ANOMALY_WINDOW)
    }

    /// A new replica pod of Deployment `deployment` in this test's namespace (ReplicaSet hash
    /// `hash`), with container `app`, known to kubelet.
    fn replica(&self, deployment: &str, hash: &str) -> Pod {
        self.replica_in(&self.ns, deployment, hash)
    }

    fn replica_in(&self, ns: &str, deployment: &str, hash: &str) -> Pod {
        let name = format!("{deployment}-{hash}-{}", util::random_k8s_suffix(5));
        let pod = Pod::new(ns, &name).with_container("app");
        self.kubelet.add_pod(&pod);
        pod
    }

    /// Runs `sh -c script` in container `app` of `pod`; panics unless it exits 0.
    #[track_caller]
    fn sh(&self, pod: &Pod, script: &str) -> RunOutput {
        self.run(ContainerConfig::sh(pod, "app", script))
    }

    #[track_caller]
    fn run(&self, cfg: ContainerConfig) -> RunOutput {
        let out = self.runc.run(&cfg, RUN);
        out.assert_success();
        out
    }

    fn work(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Returns once `agent` has handled every event of the containers run so far
    /// ([`Daemon::sync_events`]).
    #[track_caller]
    fn sync(&self, agent: &Daemon) {
        agent.sync_events(&self.runc, &self.kubelet);
    }
}

/// Waits until `ns/workload/app` is ready; returns the profile.
#[track_caller]
fn wait_ready(agent: &Daemon, ns: &str, workload: &str) -> Value {
    agent.wait_profile((ns, workload, "app"), "ready", READY, |p| {
        p["status"] == "ready"
    })
}

/// Polls the log (records of `ns`) until `f` returns `Some`; panics with `what` and the log.
#[track_caller]
fn wait_log<T>(
    agent: &Daemon,
    ns: &str,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut(&[Value]) -> Option<T>,
) -> T {
    let mut last = Vec::new();
    util::poll_until(timeout, Duration::from_millis(100), || {
        last = read_log_ns(agent.state_dir(), ns);
        f(&last)
    })
    .unwrap_or_else(|| {
        panic!(
            "the anomaly log has no {what} after {timeout:?}; records of {ns}:\n{}\n{}",
            describe(&last),
            agent.diagnostics()
        )
    })
}

/// Waits for the repeat record of #`seq` (written once a repeat window has passed since its
/// first counted repeat, at a flush).
#[track_caller]
fn wait_repeat(agent: &Daemon, ns: &str, seq: u64) -> Value {
    wait_log(
        agent,
        ns,
        &format!("repeat record of #{seq}"),
        DETECT,
        |r| r.iter().find(|a| a["repeatOf"] == seq).cloned(),
    )
}

/// Polls the log (records of `ns`) until `f` returns `Some`, for at most `timeout`.
fn poll_log<T>(
    agent: &Daemon,
    ns: &str,
    timeout: Duration,
    mut f: impl FnMut(&[Value]) -> Option<T>,
) -> Option<T> {
    util::poll_until(timeout, Duration::from_millis(100), || {
        f(&read_log_ns(agent.state_dir(), ns))
    })
}

/// A record for failure messages: the ancestors as `comm(pid)` only (their full argv can be
/// long: the chain leaves the container).
fn brief(a: &Value) -> String {
    let mut a = a.clone();
    if let Some(chain) = a["process"]["ancestry"].as_array() {
        let short: Vec<String> = chain
            .iter()
            .map(|p| format!("{}({})", p["comm"].as_str().unwrap_or("?"), p["pid"]))
            .collect();
        a["process"]["ancestry"] = Value::from(short.join(" < "));
    }
    a.to_string()
}

/// Whether a record is an unexpected exec of `path` with exactly `args`.
fn is_exec(a: &Value, path: &str, args: &[&str]) -> bool {
    a["rule"] == "unexpected-exec"
        && a["fold"]["kind"] == "exec"
        && a["fold"]["path"] == path
        && a["fold"]["args"] == serde_json::json!(args)
}

/// Problems with the story of anomaly `a` (empty when it is complete): attribution to
/// `ns/pod/app` of Deployment `workload`, the process (`program`, with a pid and a comm), its
/// ancestry starting with the shell that ran it, and evidence.
fn story_problems(a: &Value, ns: &str, pod: &str, workload: &str, program: &str) -> Vec<String> {
    let mut p = Vec::new();
    let rule = a["rule"].as_str().unwrap_or("?");
    let mut check = |ok: bool, what: String| {
        if !ok {
            p.push(format!("{rule} #{}: {what}", a["seq"]));
        }
    };
    check(
        a["namespace"] == ns,
        format!("namespace is {} not {ns}", a["namespace"]),
    );
    check(a["pod"] == pod, format!("pod is {} not {pod}", a["pod"]));
    check(
        a["container"] == "app",
        format!("container is {}", a["container"]),
    );
    check(
        a["workload"] == workload,
        format!("workload is {} not {workload}", a["workload"]),
    );
    check(
        a["workloadKind"] == "deployment",
        format!("workloadKind is {}", a["workloadKind"]),
    );
    check(
        a["podUid"].as_str().is_some_and(|s| !s.is_empty()),
        "no podUid".into(),
    );
    check(
        a["containerId"].as_str().is_some_and(|s| s.len() == 64),
        format!("containerId is {}", a["containerId"]),
    );
    check(
        a["severity"].is_string() && a["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no severity or message".into(),
    );
    let process = &a["process"];
    check(
        process.is_object(),
        format!("no process at all (the record: {})", brief(a)),
    );
    if process.is_object() {
        check(
            process["pid"].as_u64().is_some_and(|pid| pid > 0),
            format!("process pid is {}", process["pid"]),
        );
        // busybox sh runs applets as `/proc/self/exe` with argv[0] the applet (the kernel's
        // comm is then `exe`): argv[0] names the program.
        check(
            process["args"][0] == program
                || process["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("/{program}"))),
            format!(
                "process is {} {} (comm {}), not {program}",
                process["path"], process["args"], process["comm"]
            ),
        );
        check(
            process["comm"].as_str().is_some_and(|c| !c.is_empty()),
            "process without comm".into(),
        );
        let ancestry = process["ancestry"].as_array().cloned().unwrap_or_default();
        check(
            !ancestry.is_empty(),
            format!("empty ancestry (process: {process})"),
        );
        if let Some(parent) = ancestry.first() {
            check(
                parent["comm"] == "sh" && parent["pid"].as_u64() == process["ppid"].as_u64(),
                format!(
                    "the nearest ancestor is not the shell that ran it: {parent} (ppid {})",
                    process["ppid"]
                ),
            );
        }
    }
    let observed = a["evidence"]["observed"].as_object();
    check(
        observed.is_some_and(|o| !o.is_empty()),
        format!("no observed evidence: {}", a["evidence"]),
    );
    check(
        a["evidence"]["baseline"]
            .as_object()
            .is_some_and(|o| !o.is_empty()),
        format!("no baseline evidence: {}", a["evidence"]),
    );
    p
}

/// A fresh ReplicaSet-like hash.
fn rs_hash() -> String {
    util::random_k8s_suffix(10)
}

/// The learning runs of the simpler workloads: a couple of programs, one of them `/bin/echo`
/// (whose later runs with new arguments are the unexpected execs the tests count on).
const SIMPLE: &str = "/bin/echo learning >/dev/null; cat /etc/hostname; exit 0";

/// Learns `SIMPLE` in `pod` (three runs) and waits until its workload is ready.
#[track_caller]
fn learn_simple(bed: &Bed, agent: &Daemon, pod: &Pod, workload: &str) -> Value {
    for _ in 0..3 {
        bed.sh(pod, SIMPLE);
    }
    wait_ready(agent, &pod.namespace, workload)
}

/// A script running `/bin/echo <word>` for each word (each an unexpected exec with its own
/// subject: the aggregator merges only repeats of the same program and arguments).
fn echo_script(words: &[String]) -> String {
    let mut s: String = words
        .iter()
        .map(|w| format!("/bin/echo {w} >/dev/null; "))
        .collect();
    s.push_str("exit 0");
    s
}

/// `prefix-<i>` words: small numbers stay as they are in normalised arguments.
fn words(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Waits for the unexpected exec of `/bin/echo <w>` for every word; returns their seqs.
#[track_caller]
fn wait_echoes(agent: &Daemon, ns: &str, words: &[String]) -> Vec<u64> {
    wait_log(
        agent,
        ns,
        &format!("unexpected-exec of /bin/echo for each of {words:?}"),
        DETECT,
        |r| {
            words
                .iter()
                .map(|w| {
                    r.iter()
                        .find(|a| is_exec(a, "/bin/echo", &["/bin/echo", w.as_str()]))
                        .and_then(|a| a["seq"].as_u64())
                })
                .collect::<Option<Vec<u64>>>()
        },
    )
}

/// Checks that `got` (stream records) holds every seq of `expected` (log records) exactly
/// once, in order, each record as logged, and nothing else.
#[track_caller]
fn assert_same_records(what: &str, got: &[Value], expected: &[Value]) {
    let got_seqs = seqs(got);
    let want_seqs = seqs(expected);
    let dup: Vec<u64> = {
        let mut seen = BTreeSet::new();
        got_seqs
            .iter()
            .copied()
            .filter(|s| !seen.insert(*s))
            .collect()
    };
    assert!(
        dup.is_empty() && got_seqs == want_seqs,
        "{what}: the stream's sequence numbers are not the log's, each once and in order\n\
         duplicates: {dup:?}\nmissing: {:?}\nextra: {:?}\nstream: {got_seqs:?}\nlog: {want_seqs:?}",
        want_seqs
            .iter()
            .filter(|s| !got_seqs.contains(s))
            .collect::<Vec<_>>(),
        got_seqs
            .iter()
            .filter(|s| !want_seqs.contains(s))
            .collect::<Vec<_>>(),
    );
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g, e, "{what}: #{} differs from the log", e["seq"]);
    }
}

/// Checks that what a stream consumer printed (`got`, in order) is exactly the log's records of
/// `ns` up to the last one it printed, and that it got at least up to `at_least`.
#[track_caller]
fn assert_matches_log(what: &str, got: &[Value], agent: &Daemon, ns: &str, at_least: u64) {
    let top = seqs(got).into_iter().max().unwrap_or(0);
    assert!(
        top >= at_least,
        "{what}: printed up to #{top}, not #{at_least}: {:?}",
        seqs(got)
    );
    let expected: Vec<Value> = read_log_ns(agent.state_dir(), ns)
        .into_iter()
        .filter(|a| a["seq"].as_u64() <= Some(top))
        .collect();
    assert_same_records(what, got, &expected);
}

/// Sequence numbers are 1..=n, each once, in order.
#[track_caller]
fn assert_consecutive(records: &[Value]) {
    let s = seqs(records);
    let want: Vec<u64> = (1..=s.len() as u64).collect();
    assert_eq!(
        s,
        want,
        "the log's sequence numbers are not 1..=n in order:\n{}",
        describe(records)
    );
}

// ---------------------------------------------------------------------------------------------
// 1. learn -> ready -> the same behaviour is quiet -> each deviation is reported, with its story.

#[test]
fn ready_workload_normal_behaviour_is_quiet_then_deviations_are_reported() {
    let bed = Bed::new();
    let ns = bed.ns.clone();
    let hash = rs_hash();
    let workload = "shop";

    let mut peer = Peer::new();
    let port: u16 = 8443;
    let other_port: u16 = 9443;
    peer.start_tcp_server(port);
    peer.start_tcp_server(other_port);
    let ip = peer.peer_ip().to_string();
    let name = format!("api-{}.example.test", util::random_k8s_suffix(6));
    let fresh_name = format!("exfil-{}.example.test", util::random_k8s_suffix(6));
    let shared_name = format!("alias-{}.example.test", util::random_k8s_suffix(6));
    // An address in the peer's subnet that nothing answers on: only ever resolved.
    let unused_ip = std::net::Ipv4Addr::new(10, 231, peer.peer_ip().octets()[2], 77);
    peer.start_dns_server(
        &DnsZone::new()
            .a(&name, peer.peer_ip(), 300)
            .a(&fresh_name, unused_ip, 300)
            .a(&shared_name, peer.peer_ip(), 300),
    );

    let agent = Daemon::start(bed.config());
    let watcher = anomaly::watch(&agent, &["--namespace", &ns]);

    // Learn: the pod resolves a name through the test DNS server, talks to the peer, reads a
    // file, runs a couple of programs; several times, as a workload restarts: the syscall set
    // of a container includes what runc's Go runtime does in its cgroup before the program
    // starts, and some of that varies from start to start (tgkill, sched_yield: preemption).
    let normal = format!(
        "nslookup {name} {ip} >/dev/null || exit 11; \
         echo hello | nc {ip} {port} || exit 12; \
         cat /etc/hostname; \
         ls / >/dev/null; \
         exit 0"
    );
    let learner = bed.replica(workload, &hash);
    for _ in 0..LEARNING_RUNS {
        let out = bed.sh(&learner, &normal);
        assert!(
            out.stdout.contains("received 6") && out.stdout.ends_with("testbed\n"),
            "the learning run did not go as planned: {out:?}"
        );
    }
    let profile = wait_ready(&agent, &ns, workload);
    let exec_count = |p: &Value| -> u64 {
        p["execs"]
            .as_array()
            .into_iter()
            .flatten()
            // busybox sh runs applets through `/proc/self/exe`: argv[0] names the program.
            .filter(|e| e["args"][0] == "cat")
            .filter_map(|e| e["count"].as_u64())
            .sum()
    };
    let cat_before = exec_count(&profile);

    // The same behaviour, in a new container of a new replica: no anomaly at all.
    let again = bed.replica(workload, &hash);
    let out = bed.sh(&again, &normal);
    assert!(out.stdout.contains("received 6"), "{out:?}");
    // The run was seen (counters of known behaviour keep moving in a ready profile) ...
    agent.wait_profile(
        (ns.as_str(), workload, "app"),
        "counting the rerun's exec of cat",
        READY,
        |p| p["status"] == "ready" && exec_count(p) > cat_before,
    );
    // ... and nothing was reported, on the stream or in the log, once the agent has handled
    // every event of the run (its final syscall set included: read when its cgroup went).
    bed.sync(&agent);
    let logged = read_log(agent.state_dir());
    let streamed = anomalies(&watcher.lines());
    assert!(
        logged.is_empty() && streamed.is_empty(),
        "the ready workload repeated its learned behaviour exactly, yet anomalies were \
         reported:\nlog:\n{}\nsensor watch:\n{}\nprofile: {profile}\n(known source: the \
         sensor counts what runc does inside the container's cgroup before the program starts \
         as the workload's own behaviour, and some of it varies from start to start: \
         unexpected-syscall tgkill / sched_yield (Go preemption), access / execveat / unlink \
         with an unexpected-exec of `/dev/fd/N /usr/sbin/runc init` (runc re-executing itself \
         from a memfd))",
        describe(&logged),
        describe(&streamed)
    );

    // Deviations, one run (one new replica) each. Problems are collected so that one report
    // covers every deviation.
    let mut problems: Vec<String> = Vec::new();
    let mut checked: Vec<Value> = Vec::new();
    let mut check = |what: &str,
                     pod: &Pod,
                     program: &str,
                     find: &dyn Fn(&Value) -> bool,
                     details: &dyn Fn(&Value) -> bool| {
        let Some(a) = poll_log(&agent, &ns, DETECT, |r| r.iter().find(|a| find(a)).cloned()) else {
            problems.push(format!(
                "{what}: no such anomaly within {DETECT:?} (pod {}); the profile's egress and dns \
                 now: {}",
                pod.name,
                agent.show(&ns, workload, "app").map_or(Value::Null, |p| {
                    serde_json::json!({ "egress": p["egress"], "dns": p["dns"] })
                })
            ));
            return;
        };
        problems.extend(story_problems(&a, &ns, &pod.name, workload, program));
        if !details(&a) {
            problems.push(format!("{what}: unexpected details: {}", brief(&a)));
        }
        checked.push(a);
    };

    // a) The service-account token.
    let pod = bed.replica(workload, &hash);
    bed.sh(
        &pod,
        "cat /var/run/secrets/kubernetes.io/serviceaccount/token >/dev/null; exit 0",
    );
    check(
        "service-account token read",
        &pod,
        "cat",
        &|a| a["rule"] == "service-account-token-read" && a["pod"] == pod.name.as_str(),
        &|a| {
            a["severity"] == "high"
                && a["kubescapeRule"] == "R0006"
                && a["mitre"]["technique"] == "T1528"
                && a["evidence"]["observed"]["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/serviceaccount/token"))
        },
    );

    // b) A program the baseline never ran.
    let pod = bed.replica(workload, &hash);
    bed.sh(&pod, "/bin/uname -a >/dev/null; exit 0");
    check(
        "new program /bin/uname",
        &pod,
        "uname",
        &|a| a["pod"] == pod.name.as_str() && is_exec(a, "/bin/uname", &["/bin/uname", "-a"]),
        &|a| {
            a["severity"] == "medium"
                && a["kubescapeRule"] == "R0001"
                && a["process"]["path"] == "/bin/uname"
                && a["evidence"]["observed"]["path"] == "/bin/uname"
        },
    );

    // c) Domains the baseline never resolved: one resolving to an address nobody contacted,
    //    one resolving to the address of a peer the baseline knows (here the DNS server itself:
    //    many names share addresses, e.g. behind a CDN or a shared ingress). Both are new names.
    for (new_name, resolves_to) in [
        (&fresh_name, "a new address"),
        (&shared_name, "the known peer's address"),
    ] {
        let pod = bed.replica(workload, &hash);
        bed.sh(
            &pod,
            &format!("nslookup {new_name} {ip} >/dev/null; exit 0"),
        );
        check(
            &format!("new domain {new_name} resolving to {resolves_to}"),
            &pod,
            "nslookup",
            &|a| a["rule"] == "unexpected-dns" && a["subject"] == new_name.as_str(),
            &|a| {
                a["kubescapeRule"] == "R0005"
                    && a["evidence"]["observed"]["name"] == new_name.as_str()
            },
        );
    }

    // d) A peer (port) the baseline never contacted.
    let pod = bed.replica(workload, &hash);
    let out = bed.sh(&pod, &format!("echo hello | nc {ip} {other_port}; exit 0"));
    assert!(out.stdout.contains("received 6"), "{out:?}");
    let subject = format!("{ip}:{other_port}/tcp");
    check(
        &format!("new peer {subject}"),
        &pod,
        "nc",
        &|a| a["rule"] == "unexpected-egress" && a["subject"] == subject.as_str(),
        &|a| {
            a["kubescapeRule"] == "R0011"
                && a["pod"] == pod.name.as_str()
                && a["evidence"]["observed"]["peer"] == subject.as_str()
        },
    );

    // e) The cloud metadata service, which exists only in the IMDS peer's namespace: the
    //    container joins it, so nothing can leave the machine.
    let imds = ImdsPeer::new();
    let pod = bed.replica(workload, &hash);
    let out = bed.run(
        ContainerConfig::sh(
            &pod,
            "app",
            &format!("echo GET | nc {IMDS_V4} {IMDS_PORT}; exit 0"),
        )
        .network(Network::Join(imds.netns_path())),
    );
    assert!(
        out.stdout.contains("received 4"),
        "the stand-in metadata service did not answer: {out:?}\n{}",
        imds.peer().service_logs()
    );
    drop(imds);
    let subject = format!("{IMDS_V4}:{IMDS_PORT}/tcp");
    check(
        "metadata service access",
        &pod,
        "nc",
        &|a| a["rule"] == "cloud-metadata-access" && a["pod"] == pod.name.as_str(),
        &|a| {
            a["severity"] == "critical"
                && a["mitre"]["technique"] == "T1552.005"
                && a["subject"] == subject.as_str()
                && a["evidence"]["observed"]["peer"] == subject.as_str()
        },
    );

    // The stream carried each of them too, exactly as logged.
    let streamed = watcher.wait_for(DETECT, "every checked anomaly", |lines| {
        let got = anomalies(lines);
        checked
            .iter()
            .all(|c| got.iter().any(|g| g["seq"] == c["seq"]))
            .then_some(got)
    });
    for c in &checked {
        let s = streamed.iter().find(|g| g["seq"] == c["seq"]).unwrap();
        if s != c {
            problems.push(format!(
                "#{}: sensor watch --json printed\n{}\nbut the log has\n{}",
                c["seq"],
                brief(s),
                brief(c)
            ));
        }
    }

    eprintln!(
        "anomalies of {ns}:\n{}",
        describe(&read_log_ns(agent.state_dir(), &ns))
    );
    for c in &checked {
        eprintln!("{}", brief(c));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) with the reported deviations:\n- {}\n\nlog:\n{}",
        problems.len(),
        problems.join("\n- "),
        describe(&read_log_ns(agent.state_dir(), &ns))
    );
}

// ---------------------------------------------------------------------------------------------
// 2. A third-party client: Python, grpcio from PyPI, stubs generated from the repo's proto.

#[test]
fn python_grpcio_consumer_receives_the_stream() {
    let bed = Bed::new();
    let ns = bed.ns.clone();
    let other_ns = util::unique_name("an");
    let (hash, other_hash) = (rs_hash(), rs_hash());
    let agent = Daemon::start(bed.config());

    let pod = bed.replica("api", &hash);
    let other = bed.replica_in(&other_ns, "api", &other_hash);
    learn_simple(&bed, &agent, &pod, "api");
    learn_simple(&bed, &agent, &other, "api");

    // One anomaly in each namespace before the consumer connects (replayed: since_seq 0) ...
    let before = words("replayed", 1);
    bed.sh(&pod, &echo_script(&before));
    let other_before = vec!["elsewhere-1".to_string()];
    bed.sh(&other, &echo_script(&other_before));
    let replayed = wait_echoes(&agent, &ns, &before)[0];
    wait_echoes(&agent, &other_ns, &other_before);

    let consumer = anomaly::py_consumer(
        &agent,
        &bed.work("py"),
        &["--namespace", &ns, "--since", "0", "--list-profiles"],
    );
    // ListProfiles: both workloads, ready.
    let profiles = consumer.wait_for(Duration::from_secs(60), "its ListProfiles result", |l| {
        l.iter().find(|x| x["kind"] == "profiles").cloned()
    });
    for n in [&ns, &other_ns] {
        let p = profiles["profiles"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["namespace"] == n.as_str() && p["workload"] == "api")
            .unwrap_or_else(|| panic!("ListProfiles did not list {n}/api: {profiles}"));
        assert_eq!(p["container"], "app", "{p}");
        assert_eq!(p["status"], "PROFILE_STATUS_READY", "{p}");
        assert_eq!(p["workloadKind"], "WORKLOAD_KIND_DEPLOYMENT", "{p}");
    }
    assert!(profiles["nodeName"].is_string(), "{profiles}");

    // The replay, then `live`.
    let live = consumer.wait_for(DETECT, "the end of the replay (live)", |l| {
        l.iter().find(|x| x["kind"] == "live").cloned()
    });
    let lines = consumer.lines();
    let live_at = lines.iter().position(|x| x["kind"] == "live").unwrap();
    assert!(
        lines[..live_at]
            .iter()
            .any(|x| x["kind"] == "anomaly" && x["seq"] == replayed),
        "the replay (since_seq 0) did not carry #{replayed} before `live`: {lines:?}"
    );
    assert!(
        live["lastSeq"].as_u64() >= Some(replayed),
        "live.lastSeq {} is before the replayed #{replayed}",
        live["lastSeq"]
    );

    // ... and one live, in each namespace: only this namespace's reach the consumer. The other
    // namespace's first: the stream is in sequence order, so once the consumer has this
    // namespace's, the filter has had the other one.
    let after = words("live", 1);
    let other_live = vec!["elsewhere-2".to_string()];
    bed.sh(&other, &echo_script(&other_live));
    bed.sh(&pod, &echo_script(&after));
    let other_seq = wait_echoes(&agent, &other_ns, &other_live)[0];
    let live_seq = wait_echoes(&agent, &ns, &after)[0];
    assert!(
        other_seq < live_seq,
        "the other namespace's anomaly #{other_seq} was not logged before #{live_seq}"
    );
    let got = consumer.wait_for(DETECT, &format!("the live anomaly #{live_seq}"), |l| {
        l.iter()
            .find(|x| x["kind"] == "anomaly" && x["seq"] == live_seq)
            .cloned()
    });
    assert_eq!(got["rule"], "unexpected-exec", "{got}");
    assert_eq!(got["namespace"], ns.as_str(), "{got}");
    assert_eq!(got["pod"], pod.name.as_str(), "{got}");
    assert_eq!(got["workload"], "api", "{got}");
    assert_eq!(got["severity"], "SEVERITY_MEDIUM", "{got}");
    assert!(
        got["process"]["pid"].as_u64().is_some() && got["process"]["ancestry"].is_array(),
        "the process and its ancestry did not reach the Python client: {}",
        brief(&got)
    );

    // Everything it printed is exactly the log's records of this namespace, once each.
    let printed: Vec<Value> = consumer
        .lines()
        .into_iter()
        .filter(|x| x["kind"] == "anomaly")
        .collect();
    assert!(
        printed.iter().all(|x| x["namespace"] == ns.as_str()),
        "the namespace filter let other namespaces through: {}",
        describe(&printed)
    );
    let as_logged: Vec<Value> = printed.iter().map(|x| x["json"].clone()).collect();
    assert_matches_log("the Python consumer", &as_logged, &agent, &ns, live_seq);
    assert!(
        consumer.garbage().is_empty(),
        "the consumer printed non-JSON lines: {:?}",
        consumer.garbage()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Disconnect, anomalies meanwhile, reconnect with --since: nothing lost, nothing twice.

#[test]
fn resume_without_loss_or_duplicates() {
    let bed = Bed::new();
    let ns = bed.ns.clone();
    let agent = Daemon::start(bed.config());
    let pod = bed.replica("resumer", &rs_hash());
    learn_simple(&bed, &agent, &pod, "resumer");

    let mut first = anomaly::watch(&agent, &["--namespace", &ns, "--since", "0"]);
    let batch1 = words("first", 4);
    bed.sh(&pod, &echo_script(&batch1));
    let seqs1 = wait_echoes(&agent, &ns, &batch1);
    let max1 = *seqs1.iter().max().unwrap();
    first.wait_for(DETECT, "the first batch", |l| {
        seqs(&anomalies(l)).contains(&max1).then_some(())
    });
    first.kill();
    let got1 = anomalies(&first.lines());
    let last_seen = *seqs(&got1).iter().max().unwrap();

    // While nobody watches.
    let batch2 = words("second", 4);
    bed.sh(&pod, &echo_script(&batch2));
    let seqs2 = wait_echoes(&agent, &ns, &batch2);
    assert!(
        seqs2.iter().all(|s| *s > last_seen),
        "{seqs2:?} after {last_seen}"
    );

    let second = anomaly::watch(
        &agent,
        &["--namespace", &ns, "--since", &last_seen.to_string()],
    );
    // And live, after the reconnection.
    let max2 = *seqs2.iter().max().unwrap();
    second.wait_for(DETECT, "the anomalies made while disconnected", |l| {
        seqs(&anomalies(l)).contains(&max2).then_some(())
    });
    let batch3 = words("third", 4);
    bed.sh(&pod, &echo_script(&batch3));
    let seqs3 = wait_echoes(&agent, &ns, &batch3);
    let max3 = *seqs3.iter().max().unwrap();
    second.wait_for(DETECT, "the anomalies made after reconnecting", |l| {
        seqs(&anomalies(l)).contains(&max3).then_some(())
    });

    // Whatever else the runs caused (e.g. their final syscall sets, read when their cgroups
    // went) must also arrive once.
    bed.sync(&agent);
    let log = read_log_ns(agent.state_dir(), &ns);
    let last = *seqs(&log).iter().max().unwrap();
    second.wait_for(
        DETECT,
        &format!("every logged anomaly up to #{last}"),
        |l| seqs(&anomalies(l)).contains(&last).then_some(()),
    );
    let got2 = anomalies(&second.lines());
    assert!(
        seqs(&got2).iter().all(|s| *s > last_seen),
        "`sensor watch --since {last_seen}` printed records at or before {last_seen}: {:?}",
        seqs(&got2)
    );
    let union: Vec<Value> = got1.iter().chain(got2.iter()).cloned().collect();
    eprintln!(
        "first watcher: {:?}; second (--since {last_seen}): {:?}; log: {:?}",
        seqs(&got1),
        seqs(&got2),
        seqs(&log)
    );
    assert_matches_log("first + resumed watcher", &union, &agent, &ns, last);
    assert_consecutive(&read_log(agent.state_dir()));
}

// ---------------------------------------------------------------------------------------------
// 4. A consumer that stops reading gets a gap with the exact count; capture and the other
//    consumers go on.

/// Distinct unexpected peers the flood makes (one UDP datagram each): more than the agent's
/// per-subscriber queue (4096) plus what the transport buffers for a paused client.
const FLOOD: usize = 6000;

const FLOOD_PY: &str = r#"
import socket, sys, time
ip, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = 0
for i in range(n):
    try:
        s.sendto(b"x", (ip, first + i))
        sent += 1
    except OSError:
        pass
    if i % 250 == 249:
        time.sleep(0.005)
print("sent", sent)
"#;

#[test]
fn slow_consumer_gets_a_gap_and_capture_continues() {
    let bed = Bed::new();
    let ns = bed.ns.clone();
    let peer = Peer::new();
    let agent = Daemon::start(bed.config());
    let pod = bed.replica("flooder", &rs_hash());
    learn_simple(&bed, &agent, &pod, "flooder");

    let fast = anomaly::watch(&agent, &["--namespace", &ns]);
    let work = bed.work("slow");
    std::fs::create_dir_all(&work).unwrap();
    let pause = work.join("pause");
    let slow = anomaly::py_consumer(
        &agent,
        &work,
        &["--namespace", &ns, "--pause-file", pause.to_str().unwrap()],
    );
    slow.wait_for(Duration::from_secs(60), "live", |l| {
        l.iter().any(|x| x["kind"] == "live").then_some(())
    });

    // Both consumers are live: a first marker reaches both.
    let w1 = vec!["marker-1".to_string()];
    bed.sh(&pod, &echo_script(&w1));
    let m1 = wait_echoes(&agent, &ns, &w1)[0];
    for (who, c) in [("sensor watch", &fast), ("python consumer", &slow)] {
        c.wait_for(DETECT, &format!("marker #{m1} ({who})"), |l| {
            seqs(&anomalies(l)).contains(&m1).then_some(())
        });
    }
    // The slow one stops reading after the next message.
    std::fs::write(&pause, b"").unwrap();
    let w2 = vec!["marker-2".to_string()];
    bed.sh(&pod, &echo_script(&w2));
    let m2 = wait_echoes(&agent, &ns, &w2)[0];
    slow.wait_for(DETECT, "paused", |l| {
        l.iter().any(|x| x["kind"] == "paused").then_some(())
    });
    let paused_at = slow.lines().len();

    // The flood: FLOOD distinct unexpected peers, quickly.
    let script = work.join("flood.py");
    std::fs::write(&script, FLOOD_PY).unwrap();
    let first_port = 20000;
    let started = Instant::now();
    let out = bed.run(
        ContainerConfig::for_pod(
            &pod,
            "app",
            &[
                "/bin/sh",
                "-c",
                &format!(
                    "{} /data/flood.py {} {first_port} {FLOOD}; exit 0",
                    runc::CONTAINER_PYTHON,
                    peer.peer_ip()
                ),
            ],
        )
        .host_usr()
        .bind_mount(&work, "/data", true),
    );
    assert!(out.stdout.contains(&format!("sent {FLOOD}")), "{out:?}");
    // Until every datagram is a record (or, should the kernel have dropped events, until the
    // log stops growing).
    let flood_count = |log: &[Value]| {
        log.iter()
            .filter(|a| {
                a["rule"] == "unexpected-egress"
                    && a["evidence"]["observed"]["origin"] == "udp-send"
                    && a["seq"].as_u64() > Some(m2)
            })
            .count()
    };
    let mut last_len = 0;
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_secs(3) {
        if flood_count(&read_log_ns(agent.state_dir(), &ns)) == FLOOD {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the log kept growing for a minute"
        );
        let n = read_log_ns(agent.state_dir(), &ns).len();
        if n != last_len {
            last_len = n;
            stable_since = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let flood_records = flood_count(&read_log_ns(agent.state_dir(), &ns));
    eprintln!(
        "flood: {FLOOD} datagrams -> {flood_records} unexpected-egress records in {:?}",
        started.elapsed()
    );

    // Capture goes on while the slow consumer is stuck: the API answers, a new anomaly is
    // detected and the fast consumer gets it.
    let t = Instant::now();
    let listed = agent.list(Some(&ns));
    assert!(
        listed.len() == 1 && t.elapsed() < Duration::from_secs(5),
        "`sensor profiles list` took {:?} while a consumer is stuck: {listed:?}",
        t.elapsed()
    );
    let w3 = vec!["marker-3".to_string()];
    bed.sh(&pod, &echo_script(&w3));
    let m3 = wait_echoes(&agent, &ns, &w3)[0];
    fast.wait_for(DETECT, &format!("marker #{m3}"), |l| {
        seqs(&anomalies(l)).contains(&m3).then_some(())
    });
    assert_eq!(
        slow.lines().len(),
        paused_at,
        "the paused consumer printed something: the test did not pause it"
    );

    // Resume: the queued anomalies, then the gap, then live again.
    std::fs::remove_file(&pause).unwrap();
    let gap = slow.try_wait_for(Duration::from_secs(30), |l| {
        l[paused_at..].iter().find(|x| x["kind"] == "gap").cloned()
    });
    let w4 = vec!["marker-4".to_string()];
    bed.sh(&pod, &echo_script(&w4));
    let m4 = wait_echoes(&agent, &ns, &w4)[0];
    slow.wait_for(Duration::from_secs(30), &format!("marker #{m4}"), |l| {
        seqs(&anomalies(l)).contains(&m4).then_some(())
    });
    fast.wait_for(DETECT, &format!("marker #{m4}"), |l| {
        seqs(&anomalies(l)).contains(&m4).then_some(())
    });

    // The accounting of the period (m2, m4).
    let log = read_log_ns(agent.state_dir(), &ns);
    let published: Vec<u64> = seqs(&log)
        .into_iter()
        .filter(|s| *s > m2 && *s < m4)
        .collect();
    let lines = slow.lines();
    let received: Vec<u64> = seqs(&anomalies(&lines[paused_at..]))
        .into_iter()
        .filter(|s| *s > m2 && *s < m4)
        .collect();
    let gaps: Vec<&Value> = lines[paused_at..]
        .iter()
        .filter(|x| x["kind"] == "gap")
        .collect();
    let missed: u64 = gaps.iter().filter_map(|g| g["missed"].as_u64()).sum();
    eprintln!(
        "period #{m2}..#{m4}: {} published, the slow consumer received {} and gaps {:?}",
        published.len(),
        received.len(),
        gaps
    );
    assert!(
        gap.is_some() && missed > 0,
        "no gap: {} anomalies were published while the consumer did not read ({flood_records} \
         from the flood), and it received {} of them afterwards; the agent's per-subscriber \
         queue holds 4096, so the flood should have overflowed it",
        published.len(),
        received.len()
    );
    for g in &gaps {
        assert_eq!(g["reason"], "GAP_REASON_SLOW_CONSUMER", "{g}");
    }
    let mut sorted = received.clone();
    sorted.dedup();
    assert!(
        sorted == received && received.windows(2).all(|w| w[0] < w[1]),
        "the slow consumer received duplicates or out of order: {received:?}"
    );
    assert_eq!(
        received.len() as u64 + missed,
        published.len() as u64,
        "received + missed must be what was published in the period: {} + {missed} != {} \
         (gaps {gaps:?})",
        received.len(),
        published.len()
    );
    // Each gap sits where the loss was: right after `afterSeq` come `missed` anomalies the
    // consumer did not get.
    for g in &gaps {
        let after = g["afterSeq"].as_u64().unwrap();
        let n = g["missed"].as_u64().unwrap() as usize;
        let lost: Vec<u64> = published
            .iter()
            .copied()
            .filter(|s| *s > after)
            .take(n)
            .collect();
        assert!(
            lost.len() == n && lost.iter().all(|s| !received.contains(s)),
            "gap {g}: the {n} anomalies after #{after} are not the ones missing"
        );
    }
    // The fast consumer got everything, once, and no gap.
    let fast_lines = fast.lines();
    assert!(
        !fast_lines.iter().any(|x| x.get("gap").is_some()),
        "the fast consumer got a gap too"
    );
    let fast_got: Vec<Value> = anomalies(&fast_lines)
        .into_iter()
        .filter(|a| a["seq"].as_u64().is_some_and(|s| s >= m1 && s <= m4))
        .collect();
    let want: Vec<Value> = log
        .iter()
        .filter(|a| a["seq"].as_u64().is_some_and(|s| s >= m1 && s <= m4))
        .cloned()
        .collect();
    assert_same_records("the fast consumer", &fast_got, &want);
}

// ---------------------------------------------------------------------------------------------
// 5. Sequence numbers continue across restarts (SIGINT and kill -9); a watcher resumes.

#[test]
fn restart_continues_sequence_numbers() {
    let bed = Bed::new();
    let ns = bed.ns.clone();
    let config = bed.config();
    let mut agent = Daemon::start(config.clone());
    let pod = bed.replica("durable", &rs_hash());
    learn_simple(&bed, &agent, &pod, "durable");
    // A watcher that lives through both restarts (it reconnects and resumes by itself).
    let watcher = anomaly::watch(&agent, &["--namespace", &ns, "--since", "0"]);

    let batch = words("before", 3);
    bed.sh(&pod, &echo_script(&batch));
    wait_echoes(&agent, &ns, &batch);
    let status = agent.stop();
    assert!(
        status.success(),
        "SIGINT: {status}\n{}",
        agent.diagnostics()
    );
    let log = read_log(&config.state_dir);
    assert_consecutive(&log);
    let n = log.len() as u64;

    let mut agent = Daemon::start(config.clone());
    let profile = agent
        .show(&ns, "durable", "app")
        .expect("the profile is restored");
    assert_eq!(profile["status"], "ready", "{profile}");
    let batch = words("after-stop", 1);
    bed.sh(&pod, &echo_script(&batch));
    let seq = wait_echoes(&agent, &ns, &batch)[0];
    let log = read_log(&config.state_dir);
    assert_consecutive(&log);
    let first_new = seqs(&log).into_iter().find(|s| *s > n);
    assert_eq!(
        first_new,
        Some(n + 1),
        "after a clean restart the next anomaly must be #{}; log:\n{}",
        n + 1,
        describe(&log)
    );
    assert!(seq > n, "#{seq} after #{n}");

    // kill -9: the records reached the file before the kill (they are written at once).
    let before_kill = read_log(&config.state_dir);
    agent.kill9();
    let log = read_log(&config.state_dir);
    assert_consecutive(&log);
    assert!(
        log.len() >= before_kill.len() && log[..before_kill.len()] == before_kill[..],
        "records lost or changed by kill -9:\nbefore:\n{}\nafter:\n{}",
        describe(&before_kill),
        describe(&log)
    );
    let m = log.len() as u64;
    let agent = Daemon::start(config.clone());
    let batch = words("after-kill", 1);
    bed.sh(&pod, &echo_script(&batch));
    let seq = wait_echoes(&agent, &ns, &batch)[0];
    let log = read_log(&config.state_dir);
    assert_consecutive(&log);
    assert_eq!(
        seqs(&log).into_iter().find(|s| *s > m),
        Some(m + 1),
        "after kill -9 the next anomaly must be #{}; log:\n{}",
        m + 1,
        describe(&log)
    );
    assert!(seq > m, "#{seq} after #{m}");

    // The watcher reconnected each time and printed every record once.
    let last = seqs(&log).into_iter().max().unwrap();
    watcher.wait_for(
        Duration::from_secs(20),
        &format!("#{last} after the restarts"),
        |l| seqs(&anomalies(l)).contains(&last).then_some(()),
    );
    assert_matches_log(
        "sensor watch across two restarts",
        &anomalies(&watcher.lines()),
        &agent,
        &ns,
        last,
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Drift: accept an anomaly into the baseline; relearn a workload.

#[test]
fn accept_folds_behaviour_into_the_baseline() {
    let bed = Bed::new();
    let ns = bed.ns.clone();
    let agent = Daemon::start(bed.config());
    let pod = bed.replica("drifter", &rs_hash());
    learn_simple(&bed, &agent, &pod, "drifter");

    let new = vec!["accepted".to_string()];
    bed.sh(&pod, &echo_script(&new));
    let seq = wait_echoes(&agent, &ns, &new)[0];
    let record = read_log_ns(agent.state_dir(), &ns)
        .into_iter()
        .find(|a| a["seq"] == seq)
        .unwrap();
    let subject = record["subject"].clone();

    let out = agent.client(&["profiles", "accept", &seq.to_string()]);
    out.ok();
    assert!(
        out.stdout.contains(&format!("accepted #{seq}"))
            && out.stdout.contains(&format!("{ns}/drifter/app")),
        "{}",
        out.stdout
    );
    let profile = agent.wait_profile(
        (&ns, "drifter", "app"),
        "holding the accepted exec",
        READY,
        |p| {
            p["execs"].as_array().is_some_and(|e| {
                e.iter().any(|x| {
                    x["path"] == "/bin/echo"
                        && x["args"] == serde_json::json!(["/bin/echo", "accepted"])
                })
            })
        },
    );
    assert_eq!(
        profile["status"], "ready",
        "accepting keeps the profile ready: {profile}"
    );
    // Accepting it again changes nothing, and says so (`changed: false`); checked at the end
    // so that the rest of the drift story is tested whatever happens here.
    let again = agent.client(&["profiles", "accept", &seq.to_string()]);
    again.ok();
    let accepted_twice = again.stdout.clone();

    // The same exec again: no anomaly (neither a new one nor a repeat record of the old one,
    // which would come after the repeat window).
    bed.sh(&pod, &echo_script(&new));
    // Something not accepted still is; run twice, its repeat record is the barrier: it became
    // due a repeat window after its second run, which came after the accepted exec's, so a
    // repeat of the accepted record would be due by then too (written by the same flush or an
    // earlier one; the event barrier then waits for that flush to end).
    let other = vec!["not-accepted".to_string()];
    bed.sh(&pod, &echo_script(&other));
    let other_seq = wait_echoes(&agent, &ns, &other)[0];
    bed.sh(&pod, &echo_script(&other));
    wait_repeat(&agent, &ns, other_seq);
    bed.sync(&agent);
    let after: Vec<Value> = read_log_ns(agent.state_dir(), &ns)
        .into_iter()
        .filter(|a| a["subject"] == subject || a["repeatOf"] == seq)
        .collect();
    assert_eq!(
        seqs(&after),
        vec![seq],
        "the accepted behaviour was reported again:\n{}",
        describe(&after)
    );

    // Unknown sequence number: an error naming it.
    let bad = agent.client(&["profiles", "accept", "999999"]);
    assert!(
        bad.code == Some(1) && bad.stderr.contains("999999"),
        "accept of an unknown seq: {:?} {}",
        bad.code,
        bad.stderr
    );

    // Relearn: back to learning, and what the workload does now is learned, not reported.
    let out = agent.client(&[
        "profiles",
        "relearn",
        "--namespace",
        &ns,
        "--workload",
        "drifter",
    ]);
    out.ok();
    assert!(
        out.stdout.contains(&format!("{ns}/drifter/app")),
        "{}",
        out.stdout
    );
    let relearning = agent
        .show(&ns, "drifter", "app")
        .expect("the profile is still there");
    assert_eq!(relearning["status"], "learning", "{relearning}");
    assert_ne!(
        relearning["learningStarted"], profile["learningStarted"],
        "learning restarted now: {relearning}"
    );
    let before = read_log_ns(agent.state_dir(), &ns).len();
    let during = vec!["while-relearning".to_string()];
    bed.sh(&pod, &echo_script(&during));
    agent.wait_profile(
        (&ns, "drifter", "app"),
        "learning the exec made while relearning",
        READY,
        |p| {
            p["execs"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|x| x["args"] == serde_json::json!(["/bin/echo", "while-relearning"]))
            })
        },
    );
    let new_records: Vec<Value> = read_log_ns(agent.state_dir(), &ns)[before..].to_vec();
    assert!(
        new_records.is_empty(),
        "a learning profile produced anomalies:\n{}",
        describe(&new_records)
    );
    let ready_again = wait_ready(&agent, &ns, "drifter");
    eprintln!("ready again: readyAt {}", ready_again["readyAt"]);

    assert!(
        accepted_twice.contains("already in the baseline"),
        "accepting #{seq} a second time must report that the baseline already had it \
         (AcceptAnomalyResponse.changed = false), but `sensor profiles accept {seq}` printed: \
         {accepted_twice}"
    );
}

/// A CronJob's next pod (`<cronjob>-<schedule minute>-<suffix>`, workload `<cronjob>`), known
/// to kubelet: each run of a short-lived Job is a new pod.
fn cronjob_pod(bed: &Bed, cronjob: &str, run: u32) -> Pod {
    let name = format!(
        "{cronjob}-{}-{}",
        29_412_000 + run,
        util::random_k8s_suffix(5)
    );
    let pod = Pod::new(&bed.ns, &name).with_container("app");
    bed.kubelet.add_pod(&pod);
    pod
}

/// The Job's normal run: write a file, read it back.
const JOB: &str = "echo data >/tmp/f; cat /tmp/f >/dev/null; exit 0";
/// The same Job with one new call: busybox `truncate` is `ftruncate`.
const JOB_TRUNCATE: &str = "echo data >/tmp/f; truncate -s 0 /tmp/f; cat /tmp/f >/dev/null; exit 0";
/// ...plus `sync`, a second new call whose report shows the run's final set was judged.
const JOB_TRUNCATE_SYNC: &str =
    "echo data >/tmp/f; truncate -s 0 /tmp/f; cat /tmp/f >/dev/null; sync; exit 0";

/// The allowed names of a seccomp draft.
fn seccomp_allows(draft: &Value) -> Vec<String> {
    draft["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| r["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect()
}

/// The first `unexpected-syscall` record of `name` in the log of `ns`.
fn syscall_record(records: &[Value], name: &str) -> Option<Value> {
    records
        .iter()
        .find(|a| a["rule"] == "unexpected-syscall" && a["subject"] == name)
        .cloned()
}

#[test]
fn syscall_drift_of_a_short_lived_job_is_accepted_from_its_final_syscall_set() {
    let bed = Bed::new();
    let ns = bed.ns.clone();
    let agent = Daemon::start(bed.config());
    let mut run = 0;
    let mut next_pod = |cronjob: &str| {
        run += 1;
        cronjob_pod(&bed, cronjob, run)
    };

    // Each pod lives a few ms, far less than the 2 s between syscall polls, so its calls reach
    // the agent as the final set read when its cgroup goes. A poll can still land in those ms
    // (then the periodic read reports it first): that attempt starts over with a new CronJob.
    let mut found = None;
    for attempt in 1..=3 {
        let cronjob = format!("backup{attempt}");
        for _ in 0..3 {
            bed.sh(&next_pod(&cronjob), JOB);
        }
        let profile = wait_ready(&agent, &ns, &cronjob);
        assert_eq!(profile["workloadKind"], "cronjob", "{profile}");
        let native: Vec<&str> = profile["syscalls"]["native"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            native.contains(&"write")
                && !native.contains(&"ftruncate")
                && !native.contains(&"sync"),
            "the learning runs write but never truncate or sync, yet the baseline has {native:?}"
        );
        bed.sh(&next_pod(&cronjob), JOB_TRUNCATE);
        let record = wait_log(&agent, &ns, "unexpected-syscall ftruncate", DETECT, |r| {
            syscall_record(r, "ftruncate").filter(|a| a["workload"] == cronjob.as_str())
        });
        match record["evidence"]["observed"]["syscallSet"].as_str() {
            Some("final (container exited)") => {
                found = Some((cronjob, record));
                break;
            }
            Some("running (periodic read)") => eprintln!(
                "attempt {attempt}: a periodic read caught the pod alive: {}",
                brief(&record)
            ),
            other => panic!(
                "the record does not say which read of the syscall set found ftruncate \
                 ({other:?}): {}",
                brief(&record)
            ),
        }
    }
    let (cronjob, record) =
        found.expect("three Jobs in a row were caught alive by the 2 s syscall poll");
    let seq = record["seq"].as_u64().unwrap();
    assert_eq!(
        record["fold"],
        serde_json::json!({"kind": "syscall", "name": "ftruncate", "compat": false}),
        "{}",
        brief(&record)
    );
    assert_eq!(record["workloadKind"], "cronjob", "{}", brief(&record));

    let draft_path = agent.seccomp_path(&ns, &cronjob, "app", false);
    let before = util::poll_until(READY, Duration::from_millis(200), || {
        Some(read_json_file(&draft_path)).filter(|d| !d.is_null())
    })
    .unwrap_or_else(|| panic!("no seccomp draft at {}", draft_path.display()));
    assert!(
        !seccomp_allows(&before).contains(&"ftruncate".to_string()),
        "the draft allowed ftruncate before the accept: {before}"
    );

    let out = agent.client(&["profiles", "accept", &seq.to_string()]);
    out.ok();
    assert!(
        out.stdout.contains(&format!("accepted #{seq}"))
            && out.stdout.contains("syscall ftruncate"),
        "{}",
        out.stdout
    );
    let profile = agent.wait_profile(
        (&ns, &cronjob, "app"),
        "holding the accepted ftruncate",
        READY,
        |p| {
            p["syscalls"]["native"]
                .as_array()
                .is_some_and(|n| n.iter().any(|s| s == "ftruncate"))
        },
    );
    assert_eq!(profile["status"], "ready", "{profile}");

    // The next draft allows it, and enforcing that draft runs the new Job.
    let draft = util::poll_until(READY, Duration::from_millis(200), || {
        let d = read_json_file(&draft_path);
        seccomp_allows(&d)
            .contains(&"ftruncate".to_string())
            .then_some(d)
    })
    .unwrap_or_else(|| {
        panic!(
            "the seccomp draft {} never allowed ftruncate: {}",
            draft_path.display(),
            read_json_file(&draft_path)
        )
    });
    let enforced = bed.runc.run(
        &ContainerConfig::sh(&next_pod(&cronjob), "app", JOB_TRUNCATE).seccomp(draft.clone()),
        RUN,
    );
    enforced.assert_success();

    // The same Job again, plus `sync`: the set is judged (sync is reported) and ftruncate is
    // not, neither as a new record nor as a repeat of the accepted one.
    bed.sh(&next_pod(&cronjob), JOB_TRUNCATE_SYNC);
    let marker = wait_log(&agent, &ns, "unexpected-syscall sync", DETECT, |r| {
        syscall_record(r, "sync").filter(|a| a["workload"] == cronjob.as_str())
    });
    assert_eq!(
        marker["evidence"]["observed"]["syscallSet"],
        "final (container exited)",
        "{}",
        brief(&marker)
    );
    // Past the repeat window: the same Job once more makes a repeat of `sync`, due a window
    // after this second run; a repeat of the accepted record (its occurrence came first) would
    // be due by then too, and the event barrier waits for the flush that wrote it to end.
    bed.sh(&next_pod(&cronjob), JOB_TRUNCATE_SYNC);
    wait_repeat(&agent, &ns, marker["seq"].as_u64().unwrap());
    bed.sync(&agent);
    let again: Vec<Value> = read_log_ns(agent.state_dir(), &ns)
        .into_iter()
        .filter(|a| a["workload"] == cronjob.as_str())
        .filter(|a| (a["subject"] == "ftruncate" && a["seq"] != seq) || a["repeatOf"] == seq)
        .collect();
    assert!(
        again.is_empty(),
        "the accepted ftruncate was reported again:\n{}",
        describe(&again)
    );
}

/// A JSON file, or `null` while it is missing or being written.
fn read_json_file(path: &std::path::Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------------------
// 7. Graduation: ready + complete + no unexpected syscall/egress within the window.

#[test]
fn graduation_reported_by_profiles_show() {
    let bed = Bed::new();
    let ns = bed.ns.clone();
    let mut peer = Peer::new();
    let port: u16 = 7443;
    peer.start_tcp_server(port);
    let ip = peer.peer_ip().to_string();
    let window = Duration::from_secs(8);
    let agent = Daemon::start(bed.config().arg("--graduation-window").arg("8s"));
    let pod = bed.replica("graduate", &rs_hash());
    learn_simple(&bed, &agent, &pod, "graduate");

    let graduation = || -> Value {
        let list = agent.list(Some(&ns));
        assert_eq!(list.len(), 1, "{list:?}");
        list[0]["graduation"].clone()
    };
    let show_text = || -> String {
        let out = agent.client(&[
            "profiles",
            "show",
            "--namespace",
            &ns,
            "--workload",
            "graduate",
            "--container",
            "app",
        ]);
        out.ok();
        out.stdout
            .lines()
            .find(|l| l.starts_with("enforce:"))
            .unwrap_or_else(|| panic!("`profiles show` has no enforce line:\n{}", out.stdout))
            .to_string()
    };

    let g = graduation();
    assert!(
        g["evaluated"] == true
            && g["readyToEnforce"] == true
            && g["reasons"] == serde_json::json!([]),
        "a ready, complete workload without anomalies is ready to enforce: {g}\nlog:\n{}",
        describe(&read_log_ns(agent.state_dir(), &ns))
    );
    let text = show_text();
    assert!(text.contains("ready (drafts can be enforced)"), "{text}");

    // An unexpected peer.
    bed.sh(&pod, &format!("echo hi | nc {ip} {port}; exit 0"));
    let subject = format!("{ip}:{port}/tcp");
    wait_log(
        &agent,
        &ns,
        &format!("unexpected-egress to {subject}"),
        DETECT,
        |r| {
            r.iter()
                .find(|a| a["rule"] == "unexpected-egress" && a["subject"] == subject.as_str())
                .cloned()
        },
    );
    let seen = Instant::now();
    let g = graduation();
    let reasons: Vec<String> = g["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    assert!(
        g["evaluated"] == true
            && g["readyToEnforce"] == false
            && reasons
                .iter()
                .any(|r| r.contains("unexpected-egress") && r.contains("8s")),
        "after an unexpected-egress anomaly the workload is not ready to enforce, and says \
         why: {g}"
    );
    let text = show_text();
    assert!(
        text.contains("not ready") && text.contains("unexpected-egress"),
        "{text}"
    );

    // The window is configurable: once it has passed without another such anomaly, ready again.
    let ready_again = util::poll_until(
        window + Duration::from_secs(10),
        Duration::from_millis(250),
        || (graduation()["readyToEnforce"] == true).then_some(seen.elapsed()),
    );
    let log = read_log_ns(agent.state_dir(), &ns);
    let after = ready_again.unwrap_or_else(|| {
        panic!(
            "not ready to enforce again after the {window:?} graduation window: {}\nlog:\n{}",
            graduation(),
            describe(&log)
        )
    });
    assert!(
        after >= window - Duration::from_secs(3),
        "ready to enforce again only {after:?} after the anomaly; the window is {window:?}"
    );
    assert!(show_text().contains("ready (drafts can be enforced)"));
}
