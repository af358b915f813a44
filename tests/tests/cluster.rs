//! End-to-end: cluster-wide profiles. Two `sensor run` daemons play two nodes (distinct
//! `--node-name`, distinct kubelet directories so each sees only its own node's pods) against
//! one Kubernetes API server stand-in that speaks the real wire protocol (server-side apply,
//! watches, optimistic concurrency: `sensor_tests::kube_api`). Replicas of one Deployment run
//! as real runc pods, one per node, each doing something the other does not.

use std::collections::BTreeMap;
use std::time::Duration;

use sensor_tests::kube_api::{KubeApi, PodObject, replicaset};
use sensor_tests::util::{self, TempDir};
use sensor_tests::{ContainerConfig, Daemon, DaemonConfig, Kubelet, Pod, Runc, runc};
use serde_json::Value;

const PIECES: &str = "sensor.io/v1alpha1/profilepieces";
const WAIT: Duration = Duration::from_secs(60);

struct Node {
    name: String,
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
            Node {
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
        let url = self.api.url();
        let node = &mut self.nodes[i];
        let config = DaemonConfig::new(node._dir.path(), &node.kubelet)
            .learning_period("1h")
            .arg("--node-name")
            .arg(&node.name)
            .arg("--kubernetes-api-url")
            .arg(&url)
            .arg("--cluster-piece-interval")
            .arg("2s");
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
