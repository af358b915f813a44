//! End-to-end: cluster-wide profiles. Two `sensor run` daemons play two nodes (distinct
//! `--node-name`, distinct kubelet directories so each sees only its own node's pods) against
//! one Kubernetes API server stand-in that speaks the real wire protocol (server-side apply,
//! watches, optimistic concurrency: `sensor_tests::kube_api`). Replicas of one Deployment run
//! as real runc pods, one per node, each doing something the other does not.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use sensor_tests::kube_api::{KubeApi, PodObject, replicaset};
use sensor_tests::metrics::{listening_addr, scrape};
use sensor_tests::util::{self, TempDir};
use sensor_tests::{ContainerConfig, Daemon, DaemonConfig, Kubelet, Pod, Runc, runc};
use serde_json::Value;

const PIECES: &str = "sensor.io/v1alpha1/profilepieces";
const MERGED: &str = "sensor.io/v1alpha1/workloadprofiles";
const LEASES: &str = "coordination.k8s.io/v1/leases";
const LEASE: &str = "sensor-profile-merger";
const WAIT: Duration = Duration::from_secs(60);

struct Node {
    name: String,
    install: PathBuf,
    kubelet: Kubelet,
    pod: Pod,
    daemon: Option<Daemon>,
    _dir: TempDir,
}

struct Cluster {
    api: KubeApi,
    ns: String,
    deployment_uid: String,
    nodes: Vec<Node>,
}

/// A Deployment `web` in a fresh namespace with one replica on each of `nodes`.
fn cluster(nodes: &[&str]) -> Cluster {
    let api = KubeApi::start();
    let ns = util::unique_name("cl");
    let hash = util::random_k8s_suffix(10);
    let rs = format!("web-{hash}");
    let rs_uid = util::random_uuid();
    let deployment_uid = util::random_uuid();
    let labels: BTreeMap<String, String> = [("app", "web"), ("pod-template-hash", hash.as_str())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    api.put_object(replicaset(
        &ns,
        &rs,
        &rs_uid,
        Some(("web", &deployment_uid)),
        &labels,
    ));
    let nodes = nodes
        .iter()
        .map(|node| {
            let dir = TempDir::new(&format!("cluster-{node}"));
            let kubelet = Kubelet::new();
            let pod = Pod::new(&ns, &format!("{rs}-{}", util::random_k8s_suffix(5)))
                .with_container("app");
            kubelet.add_pod(&pod);
            let mut object = PodObject::new(&ns, &pod.name, &pod.uid, node)
                .owner("ReplicaSet", &rs, &rs_uid)
                .containers(&[("app", &pod.container("app").id)]);
            object.labels = labels.clone();
            api.put_pod(object.json());
            api.put_resource(
                "v1/nodes",
                serde_json::json!({"apiVersion": "v1", "kind": "Node",
                                   "metadata": {"name": node}}),
            );
            Node {
                install: dir.path().join("seccomp"),
                name: node.to_string(),
                kubelet,
                pod,
                daemon: None,
                _dir: dir,
            }
        })
        .collect();
    Cluster {
        api,
        ns,
        deployment_uid,
        nodes,
    }
}

impl Cluster {
    fn start(&mut self, i: usize) {
        self.start_learning(i, "1h");
    }

    fn start_learning(&mut self, i: usize, learning: &str) {
        self.start_with(i, learning, &[]);
    }

    fn start_with(&mut self, i: usize, learning: &str, extra: &[&str]) {
        let url = self.api.url();
        let node = &mut self.nodes[i];
        let mut config = DaemonConfig::new(node._dir.path(), &node.kubelet)
            .learning_period(learning)
            .arg("--install-seccomp-dir")
            .arg(node.install.to_str().unwrap())
            .arg("--cluster-lease-duration")
            .arg("4s")
            .arg("--cluster-namespace")
            .arg("node-sensor")
            .arg("--node-name")
            .arg(&node.name)
            .arg("--kubernetes-api-url")
            .arg(&url)
            .arg("--cluster-piece-interval")
            .arg("2s");
        for a in extra {
            config = config.arg(a);
        }
        let daemon = Daemon::start(config);
        util::poll_until(WAIT, Duration::from_millis(100), || {
            daemon
                .stderr()
                .contains("Kubernetes API: this node's pods listed")
                .then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "{} did not list its pods\n{}",
                node.name,
                daemon.diagnostics()
            )
        });
        node.daemon = Some(daemon);
    }

    fn run(&self, i: usize, script: &str) {
        let node = &self.nodes[i];
        Runc::new()
            .run(
                &ContainerConfig::sh(&node.pod, "app", script),
                runc::DEFAULT_TIMEOUT,
            )
            .assert_success();
    }

    fn merged(&self) -> Option<Value> {
        self.api.resource(MERGED, &self.ns, "web.app")
    }

    fn wait_merged(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        util::poll_until(WAIT, Duration::from_millis(200), || {
            self.merged().filter(|p| check(p))
        })
        .unwrap_or_else(|| {
            panic!(
                "no merged profile {what}: {:?}\n{}",
                self.merged(),
                self.diagnostics()
            )
        })
    }

    fn holder(&self) -> Option<String> {
        self.api
            .resource(LEASES, "node-sensor", LEASE)
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    }

    fn diagnostics(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|n| n.daemon.as_ref().map(|d| d.diagnostics()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The enforce profile installed on node `i`, once there.
    fn installed(&self, i: usize) -> String {
        let path = self.nodes[i]
            .install
            .join(format!("sensor/{}/web/app.json", self.ns));
        util::poll_until(WAIT, Duration::from_millis(200), || {
            std::fs::read_to_string(&path).ok()
        })
        .unwrap_or_else(|| panic!("{} not installed\n{}", path.display(), self.diagnostics()))
    }

    fn piece(&self, node: &str) -> Option<Value> {
        self.api
            .resource(PIECES, &self.ns, &format!("web.app.{node}"))
    }

    /// The piece of `node` once `check` holds.
    fn wait_piece(&self, node: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        util::poll_until(WAIT, Duration::from_millis(200), || {
            self.piece(node).filter(|p| check(p))
        })
        .unwrap_or_else(|| {
            let diag: Vec<String> = self
                .nodes
                .iter()
                .filter_map(|n| n.daemon.as_ref().map(|d| d.diagnostics()))
                .collect();
            panic!(
                "no piece of {node} {what}: {:?}\n{}",
                self.piece(node),
                diag.join("\n")
            )
        })
    }
}

fn runs(piece: &Value, program: &str) -> bool {
    piece["spec"]["profile"]["execs"]
        .as_array()
        .is_some_and(|e| {
            e.iter()
                .any(|x| x["path"].as_str().is_some_and(|p| p.ends_with(program)))
        })
}

#[test]
fn each_node_applies_its_own_piece_owned_by_the_workload() {
    let mut c = cluster(&["node-a", "node-b"]);
    c.start(0);
    c.start(1);
    c.run(0, "/bin/cat /etc/hostname >/dev/null");
    c.run(1, "/bin/uname -a >/dev/null");

    let a = c.wait_piece("node-a", "with cat", |p| runs(p, "cat"));
    let b = c.wait_piece("node-b", "with uname", |p| runs(p, "uname"));
    eprintln!("piece a: {}", serde_json::to_string_pretty(&a).unwrap());

    // Each node's own evidence, nothing of the other's.
    assert!(!runs(&a, "uname"), "{a}");
    assert!(!runs(&b, "cat"), "{b}");
    for (piece, node) in [(&a, "node-a"), (&b, "node-b")] {
        assert_eq!(piece["spec"]["node"], node);
        assert_eq!(piece["spec"]["architecture"], std::env::consts::ARCH);
        assert_eq!(piece["spec"]["profile"]["workload"], "web");
        assert_eq!(piece["spec"]["profile"]["workloadKind"], "deployment");
        assert!(
            piece["spec"]["summary"]["syscalls"].as_u64().unwrap() > 10,
            "{piece}"
        );
        assert_eq!(piece["metadata"]["labels"]["sensor.io/workload"], "web");
        assert_eq!(piece["metadata"]["labels"]["sensor.io/node"], node);
        // Garbage-collected with the Deployment.
        let owners = piece["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(owners.len(), 1, "{piece}");
        assert_eq!(owners[0]["kind"], "Deployment");
        assert_eq!(owners[0]["apiVersion"], "apps/v1");
        assert_eq!(owners[0]["name"], "web");
        assert_eq!(owners[0]["uid"], c.deployment_uid.as_str());
        // One writer per object: this node's field manager and no other.
        let managers: Vec<&str> = piece["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert_eq!(managers, [format!("sensor/node/{node}")], "{piece}");
    }

    // Writes are bounded: nothing failed, and per node at most one new-behaviour write per
    // interval (2 s) since its first, plus the first.
    let writes = c.api.writes();
    for n in &c.nodes {
        let mine: Vec<_> = writes
            .iter()
            .filter(|w| w.manager.as_deref() == Some(&format!("sensor/node/{}", n.name)))
            .collect();
        assert!(mine.iter().all(|w| w.code < 300), "{mine:?}");
        let first = mine.first().expect("a write").at;
        let last = mine.last().expect("a write").at;
        let allowed = 1 + (last - first).as_secs() / 2 + 1;
        assert!(
            (mine.len() as u64) <= allowed,
            "{} writes of {} in {:?}: {mine:?}",
            mine.len(),
            n.name,
            last - first
        );
        eprintln!(
            "{}: {} writes in {:.1} s, largest {} bytes",
            n.name,
            mine.len(),
            (last - first).as_secs_f64(),
            mine.iter().map(|w| w.bytes).max().unwrap_or(0)
        );
    }
}

fn merged_runs(merged: &Value, program: &str) -> bool {
    merged["spec"]["profile"]["execs"]
        .as_array()
        .is_some_and(|e| {
            e.iter()
                .any(|x| x["path"].as_str().is_some_and(|p| p.ends_with(program)))
        })
}

/// Replica B's work: busybox `truncate` is `ftruncate`, a syscall replica A never makes.
const B_WORK: &str = "/bin/uname -a >/dev/null; echo x >/tmp/f; truncate -s 0 /tmp/f";

#[test]
fn one_merged_baseline_installed_on_every_node_through_a_failover() {
    let mut c = cluster(&["node-a", "node-b", "node-c"]);
    c.start_learning(0, "8s");
    c.start_learning(1, "8s");
    c.run(0, "/bin/cat /etc/hostname >/dev/null");
    c.run(1, B_WORK);

    // One merged profile with both replicas' behaviour, ready once both pieces are.
    let merged = c.wait_merged("ready with cat and uname", |m| {
        m["spec"]["summary"]["status"] == "ready"
            && merged_runs(m, "cat")
            && merged_runs(m, "uname")
    });
    eprintln!(
        "merged: {}",
        serde_json::to_string_pretty(&merged["spec"]["summary"]).unwrap()
    );
    assert_eq!(merged["spec"]["summary"]["nodes"], 2);
    let contributors: Vec<&str> = merged["spec"]["contributors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["node"].as_str())
        .collect();
    assert_eq!(contributors, ["node-a", "node-b"]);
    assert_eq!(
        merged["metadata"]["ownerReferences"][0]["uid"],
        c.deployment_uid.as_str()
    );
    assert_eq!(
        merged["metadata"]["managedFields"][0]["manager"],
        "sensor/merger"
    );
    let first_leader = c.holder().expect("a lease holder");
    assert_eq!(merged["spec"]["mergedBy"], first_leader.as_str());

    // Every node installs the same file.
    let on_a = c.installed(0);
    let on_b = c.installed(1);
    assert_eq!(
        on_a, on_b,
        "the merged enforce profile differs between nodes"
    );

    // Replica B's work runs on node A's installed profile; node A's local-only draft (what
    // it learned alone) refuses it.
    let runc = Runc::new();
    let installed: Value = serde_json::from_str(&on_a).unwrap();
    runc.run(
        &ContainerConfig::sh(&c.nodes[0].pod, "app", B_WORK).seccomp(installed),
        runc::DEFAULT_TIMEOUT,
    )
    .assert_success();
    let a = c.nodes[0].daemon.as_ref().unwrap();
    let local: Value = serde_json::from_str(
        &std::fs::read_to_string(a.seccomp_path(&c.ns, "web", "app", false)).unwrap(),
    )
    .unwrap();
    let refused = runc.run(
        &ContainerConfig::sh(&c.nodes[0].pod, "app", B_WORK).seccomp(local),
        runc::DEFAULT_TIMEOUT,
    );
    assert_ne!(
        refused.code,
        Some(0),
        "node A's local draft allowed B's work: {refused:?}"
    );

    // The leader dies: another takes the lease over within its duration (4 s) plus a round.
    let leader = c.nodes.iter().position(|n| n.name == first_leader).unwrap();
    c.nodes[leader].daemon.as_mut().unwrap().kill9();
    let killed_at = std::time::Instant::now();
    let next = util::poll_until(Duration::from_secs(20), Duration::from_millis(100), || {
        c.holder().filter(|h| *h != first_leader)
    })
    .unwrap_or_else(|| panic!("no failover\n{}", c.diagnostics()));
    eprintln!(
        "failover {first_leader} -> {next} in {:.1} s",
        killed_at.elapsed().as_secs_f64()
    );

    // A node that joins late: its replica's new work is merged by the new leader, and it
    // receives the merged file.
    c.start_learning(2, "8s");
    c.run(2, "/bin/id >/dev/null");
    let merged = c.wait_merged("with node-c's id, ready again", |m| {
        m["spec"]["summary"]["status"] == "ready"
            && merged_runs(m, "id")
            && m["spec"]["mergedBy"] == next.as_str()
    });
    assert!(
        merged_runs(&merged, "cat") && merged_runs(&merged, "uname"),
        "{merged}"
    );
    let survivor = 1 - leader.min(1);
    let on_c = util::poll_until(WAIT, Duration::from_millis(200), || {
        let c_file = c.installed(2);
        let other = c.installed(survivor);
        (c_file == other && c_file.contains("SCMP_ACT_ERRNO")).then_some(c_file)
    });
    assert!(
        on_c.is_some(),
        "node-c's file differs from node {survivor}'s\n{}",
        c.diagnostics()
    );

    // No two mergers fought: the writers of the merged profile, in order, change once.
    let mut by: Vec<String> = c
        .api
        .writes()
        .iter()
        .filter(|w| w.resource == MERGED && w.changed)
        .filter_map(|w| w.body["spec"]["mergedBy"].as_str().map(str::to_string))
        .collect();
    by.dedup();
    assert_eq!(
        by,
        [first_leader.clone(), next.clone()],
        "merged profile writers in order"
    );
}

/// 403 -> one clear error naming the permission, learning goes on, pieces are written once
/// allowed; corrupt and foreign pieces are skipped and counted, merging goes on.
#[test]
fn forbidden_then_allowed_and_bad_pieces_are_skipped() {
    let mut c = cluster(&["node-a"]);
    c.api.forbid("sensor.io/v1alpha1/profilepieces");
    c.start_with(0, "1h", &["--metrics-listen", "127.0.0.1:0"]);
    c.run(0, "/bin/cat /etc/hostname >/dev/null");
    let daemon = c.nodes[0].daemon.as_ref().unwrap();
    let said = "forbids this node's sensor to patch profilepieces.sensor.io";
    assert!(
        daemon.wait_stderr(said, WAIT),
        "no 403 message\n{}",
        daemon.diagnostics()
    );
    let addr = listening_addr(daemon, Duration::from_secs(10));
    // Several rounds later (a round per 0.67 s), still one message, and the failures counted.
    util::poll_until(WAIT, Duration::from_millis(300), || {
        (scrape(addr).must(
            "sensor_cluster_piece_write_failures_total",
            &[("cause", "forbidden")],
        ) >= 3.0)
            .then_some(())
    })
    .expect("forbidden writes counted");
    assert_eq!(
        daemon.stderr().matches(said).count(),
        1,
        "{}",
        daemon.stderr()
    );
    assert!(c.piece("node-a").is_none());

    c.api.allow_all();
    c.wait_piece("node-a", "after the permission is granted", |p| {
        runs(p, "cat")
    });
    assert!(daemon.wait_stderr("pieces are written again", WAIT));

    // A corrupt piece and a foreign one (a valid piece in another namespace than its
    // profile's): skipped, counted, and the merge goes on.
    c.api.put_resource(
        PIECES,
        serde_json::json!({"apiVersion": "sensor.io/v1alpha1", "kind": "ProfilePiece",
            "metadata": {"name": "junk", "namespace": c.ns}, "spec": {"node": 5}}),
    );
    let mut foreign = c.piece("node-a").unwrap();
    foreign["metadata"]["namespace"] = serde_json::json!("elsewhere");
    foreign["metadata"].as_object_mut().unwrap().remove("uid");
    c.api.put_resource(PIECES, foreign);
    util::poll_until(WAIT, Duration::from_millis(300), || {
        (scrape(addr).value("sensor_cluster_pieces_skipped", &[]) == Some(2.0)).then_some(())
    })
    .unwrap_or_else(|| panic!("bad pieces not counted\n{}", daemon.diagnostics()));
    let merged = c.wait_merged("despite bad pieces", |m| merged_runs(m, "cat"));
    assert_eq!(merged["spec"]["summary"]["nodes"], 1, "{merged}");
    assert!(daemon.status().is_none(), "the daemon must keep running");
}

/// A node that relearns a workload takes its old evidence out of the merged profile (the
/// merger re-reads that workload's pieces), and what other nodes saw stays.
#[test]
fn a_relearned_node_takes_its_old_evidence_out_of_the_merge() {
    let mut c = cluster(&["node-a", "node-b"]);
    c.start(0);
    c.start(1);
    c.run(0, "/bin/cat /etc/hostname >/dev/null");
    c.run(1, "/bin/uname -a >/dev/null");
    c.wait_merged("with cat and uname", |m| {
        merged_runs(m, "cat") && merged_runs(m, "uname")
    });
    let a = c.nodes[0].daemon.as_ref().unwrap();
    a.client(&[
        "profiles",
        "relearn",
        "--namespace",
        &c.ns,
        "--workload",
        "web",
    ])
    .ok();
    c.run(0, "/bin/id >/dev/null");
    let merged = c.wait_merged("without node A's old cat, with its new id", |m| {
        !merged_runs(m, "cat") && merged_runs(m, "id") && merged_runs(m, "uname")
    });
    assert_eq!(merged["spec"]["summary"]["nodes"], 2, "{merged}");
}

/// The API goes away: learning goes on, the failed writes are counted and said once, and the
/// node's new behaviour is applied once an API server answers again.
#[test]
fn pieces_written_while_the_api_was_down_arrive_after_it_returns() {
    let mut c = cluster(&["node-a"]);
    c.start_with(0, "1h", &["--metrics-listen", "127.0.0.1:0"]);
    c.run(0, "/bin/cat /etc/hostname >/dev/null");
    c.wait_piece("node-a", "with cat", |p| runs(p, "cat"));
    let port = c.api.port();
    c.api.stop();
    let daemon = c.nodes[0].daemon.as_ref().unwrap();
    let addr = listening_addr(daemon, Duration::from_secs(10));
    c.run(0, "/bin/uname -a >/dev/null");
    util::poll_until(WAIT, Duration::from_millis(300), || {
        (scrape(addr).must(
            "sensor_cluster_piece_write_failures_total",
            &[("cause", "unreachable")],
        ) >= 2.0)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no failed writes counted\n{}", daemon.diagnostics()));
    let said = "cluster profiles: cannot write pieces";
    assert_eq!(
        daemon.stderr().matches(said).count(),
        1,
        "{}",
        daemon.stderr()
    );

    // An API server on the same address again (empty: what matters is the node's retry).
    c.api = KubeApi::bind(port);
    c.wait_piece(
        "node-a",
        "with the uname learned while the API was down",
        |p| runs(p, "cat") && runs(p, "uname"),
    );
    assert!(daemon.wait_stderr("pieces are written again", WAIT));
}

/// A clean stop of the merger releases the Lease: another node takes it over at its next
/// round, well within the lease duration (4 s) a crash would cost.
#[test]
fn a_clean_stop_hands_the_merger_over_at_once() {
    let mut c = cluster(&["node-a", "node-b"]);
    c.start(0);
    c.start(1);
    let first = util::poll_until(WAIT, Duration::from_millis(100), || c.holder())
        .unwrap_or_else(|| panic!("no lease holder\n{}", c.diagnostics()));
    let leader = c.nodes.iter().position(|n| n.name == first).unwrap();
    let stopping = std::time::Instant::now();
    let daemon = c.nodes[leader].daemon.as_mut().unwrap();
    assert!(daemon.stop().success(), "{}", daemon.diagnostics());
    assert!(
        daemon.stderr().contains("merger lease released"),
        "{}",
        daemon.stderr()
    );
    let next = util::poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        c.holder().filter(|h| !h.is_empty() && *h != first)
    })
    .unwrap_or_else(|| panic!("no hand-over\n{}", c.diagnostics()));
    let took = stopping.elapsed();
    eprintln!(
        "clean stop {first} -> {next} in {:.2} s",
        took.as_secs_f64()
    );
    assert!(took < Duration::from_secs(3), "hand-over took {took:?}");
}
