//! End-to-end: `sensor run` (real kernel, a real runc pod in a kubelet-shaped cgroup) pointed at
//! a Kubernetes API server over real HTTP (`sensor_tests::kube_api`, serving real API JSON).
//! The learned profile carries the pod's labels and the exact Deployment owner, its flow to a
//! pod on another node names that pod, and the NetworkPolicy draft selects by labels on both
//! ends (validated with kubernetes-validate). With the API down the agent starts and captures
//! from kubelet's files, says so once, and catches up when the API comes back.

use std::time::Duration;

use sensor_tests::expect::strs;
use sensor_tests::kube_api::{KubeApi, PodObject, replicaset};
use sensor_tests::util::{self, TempDir};
use sensor_tests::validate::assert_validates;
use sensor_tests::{ContainerConfig, Daemon, DaemonConfig, Kubelet, Peer, Pod, Runc, runc};
use serde_json::json;

const NODE: &str = "node-a";
const LEARN: Duration = Duration::from_secs(30);
/// The agent's watcher backs off up to 30 s between attempts.
const RECOVER: Duration = Duration::from_secs(75);

/// A Deployment whose name is long enough that Kubernetes truncated its pods' generateName base
/// (58 characters) in the middle of the pod-template-hash: the pod name alone says "bare pod".
const LONG: &str = "inference-gateway-router-for-the-research-assistant";
const HASH: &str = "7d9f8b6c4d";

fn agent_config(dir: &TempDir, kubelet: &Kubelet, url: &str) -> DaemonConfig {
    DaemonConfig::new(dir.path(), kubelet)
        .arg("--node-name")
        .arg(NODE)
        .arg("--kubernetes-api-url")
        .arg(url)
}

#[test]
fn profile_and_netpol_carry_api_labels_owner_and_peers() {
    let dir = TempDir::new("kube");
    let ns = util::unique_name("kb");
    let rs = format!("{LONG}-{HASH}");
    let pod_name = format!("{}{}", &rs[..58], util::random_k8s_suffix(5));
    let pod = Pod::new(&ns, &pod_name).with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let mut peer = Peer::new();
    let port: u16 = 8443;
    peer.start_tcp_server(port);
    let peer_ip = peer.peer_ip().to_string();

    let api = KubeApi::start();
    let labels: std::collections::BTreeMap<String, String> = [
        ("app.kubernetes.io/name", "router"),
        ("tier", "gateway"),
        ("pod-template-hash", HASH),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let rs_uid = util::random_uuid();
    api.put_object(replicaset(
        &ns,
        &rs,
        &rs_uid,
        Some((LONG, &util::random_uuid())),
        &labels,
    ));
    let mut me = PodObject::new(&ns, &pod.name, &pod.uid, NODE)
        .owner("ReplicaSet", &rs, &rs_uid)
        .service_account("router")
        .ip("10.244.1.5")
        .containers(&[("app", &pod.container("app").id)]);
    me.labels = labels.clone();
    api.put_pod(me.json());
    api.put_pod(
        PodObject::new(
            "models",
            "llm-5c9fd6c974-b5c7d",
            &util::random_uuid(),
            "node-b",
        )
        .label("app", "llm")
        .label("pod-template-hash", "5c9fd6c974")
        .owner("ReplicaSet", "llm-5c9fd6c974", &util::random_uuid())
        .ip(&peer_ip)
        .json(),
    );

    let agent = Daemon::start(agent_config(&dir, &kubelet, &api.url()));
    util::poll_until(LEARN, Duration::from_millis(100), || {
        agent
            .stderr()
            .contains("Kubernetes API: this node's pods listed")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the agent did not list the pods\n{}", agent.diagnostics()));

    let script = format!("echo hello | nc {peer_ip} {port} || exit 12; exit 0");
    let runc = Runc::new();
    runc.run(
        &ContainerConfig::sh(&pod, "app", &script),
        runc::DEFAULT_TIMEOUT,
    )
    .assert_success();

    let key = (ns.as_str(), LONG, "app");
    let profile = agent.wait_profile(key, "carrying labels and the peer", LEARN, |p| {
        p["labels"]["tier"] == "gateway"
            && p["egress"].as_array().is_some_and(|fs| {
                fs.iter()
                    .any(|f| f["ip"] == peer_ip.as_str() && f["peer"]["namespace"] == "models")
            })
    });
    eprintln!(
        "profile: {}",
        serde_json::to_string_pretty(&profile).unwrap()
    );
    assert_eq!(profile["workloadKind"], "deployment", "{profile}");
    assert_eq!(profile["labels"]["app.kubernetes.io/name"], "router");
    let flow = profile["egress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["ip"] == peer_ip.as_str())
        .unwrap();
    assert_eq!(
        flow["peer"],
        json!({"namespace": "models", "pod": "llm-5c9fd6c974-b5c7d", "workload": "llm",
               "labels": {"app": "llm", "pod-template-hash": "5c9fd6c974"}}),
        "{flow}"
    );
    // The name heuristic would have made a bare-pod profile named after the pod.
    let listed = agent.list(Some(&ns));
    assert_eq!(listed.len(), 1, "{listed:?}");

    // The NetworkPolicy draft: selectors from the API's labels on both ends.
    let out = agent.client(&[
        "netpol",
        "--namespace",
        &ns,
        "--workload",
        LONG,
        "--format",
        "json",
    ]);
    out.ok();
    let policy = out.json();
    eprintln!("netpol: {}", serde_json::to_string_pretty(&policy).unwrap());
    assert_eq!(
        policy["spec"]["podSelector"],
        json!({"matchLabels": {"app.kubernetes.io/name": "router", "tier": "gateway"}}),
        "{policy}"
    );
    let review = policy["metadata"]["annotations"]["sensor.io/review"]
        .as_str()
        .unwrap_or("");
    assert!(
        !review.contains("is a guess"),
        "labels were known: {review}"
    );
    let rule = policy["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ports"] == json!([{"port": port, "protocol": "TCP"}]))
        .unwrap_or_else(|| panic!("no egress rule for {port}: {policy}"));
    assert_eq!(
        rule["to"],
        json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "models"}},
                "podSelector": {"matchLabels": {"app": "llm"}}}]),
        "the peer must be selected by labels, not by address: {policy}"
    );
    assert!(
        !out.stdout.contains(&format!("{peer_ip}/32")),
        "{}",
        out.stdout
    );
    let yaml = agent.client(&["netpol", "--namespace", &ns, "--workload", LONG]);
    yaml.ok();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, &yaml.stdout).unwrap();
    assert_validates(&file, &yaml.stdout);
}

#[test]
fn agent_captures_with_the_api_down_then_catches_up() {
    let dir = TempDir::new("kube");
    let ns = util::unique_name("kb");
    let pod = Pod::deployment_replica(&ns, "offline").with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    // Nothing listens there yet.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let agent = Daemon::start(agent_config(
        &dir,
        &kubelet,
        &format!("http://127.0.0.1:{port}"),
    ));
    let runc = Runc::new();
    runc.run(
        &ContainerConfig::for_pod(&pod, "app", &["/bin/echo", "offline"]),
        runc::DEFAULT_TIMEOUT,
    )
    .assert_success();
    let key = (ns.as_str(), "offline", "app");
    let profile = agent.wait_profile(key, "learnt from kubelet's files", LEARN, |p| {
        p["execs"].as_array().is_some_and(|e| !e.is_empty())
    });
    assert!(profile["labels"].is_null(), "no API, no labels: {profile}");
    assert_eq!(
        profile["workloadKind"], "deployment",
        "from the pod name: {profile}"
    );
    let warnings = |agent: &Daemon| {
        agent
            .stderr()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("Kubernetes API: unreachable"))
            .count()
    };
    // Said once per watch (this node's pods, other nodes' pods), not once per retry.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(warnings(&agent), 2, "{}", agent.stderr());

    // The API comes up where the agent was told it is: labels reach the profile.
    let api = KubeApi::bind(port);
    let hash = pod.name.rsplit('-').nth(1).unwrap().to_string();
    let rs = format!("offline-{hash}");
    let rs_uid = util::random_uuid();
    let labels: std::collections::BTreeMap<String, String> =
        [("app", "offline"), ("pod-template-hash", hash.as_str())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    api.put_object(replicaset(
        &ns,
        &rs,
        &rs_uid,
        Some(("offline", &util::random_uuid())),
        &labels,
    ));
    let mut me = PodObject::new(&ns, &pod.name, &pod.uid, NODE)
        .owner("ReplicaSet", &rs, &rs_uid)
        .containers(&[("app", &pod.container("app").id)]);
    me.labels = labels;
    api.put_pod(me.json());
    util::poll_until(RECOVER, Duration::from_millis(200), || {
        agent
            .stderr()
            .contains("this node's pods listed again")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the agent did not reconnect\n{}", agent.diagnostics()));
    runc.run(
        &ContainerConfig::for_pod(&pod, "app", &["/bin/echo", "online"]),
        runc::DEFAULT_TIMEOUT,
    )
    .assert_success();
    let profile = agent.wait_profile(key, "carrying the API's labels", LEARN, |p| {
        p["labels"]["app"] == "offline"
    });
    assert_eq!(strs(&profile["pods"]), vec![pod.name.clone()], "{profile}");
    assert_eq!(warnings(&agent), 2, "{}", agent.stderr());
}
