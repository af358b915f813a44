//! The Kubernetes API source (`attribution::kube`) against a real HTTP server that speaks the
//! API's wire protocol (`sensor_tests::kube_api`): lists, watch streams with resourceVersions,
//! ReplicaSet -> Deployment and Job -> CronJob owner chains, 410 Gone and dropped watches,
//! 403 and an unreachable or stalled server; then the attribution built on the cache.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    os::unix::fs::MetadataExt,
    path::Path,
    time::{Duration, Instant},
};

use sensor::attribution::{
    AttributionOptions, Attributor, Scope,
    kube::{Endpoint, KubeMetadata, PeerScope},
    kubelet::KubeletDirs,
    workload::WorkloadKind,
};
use sensor_tests::kube_api::{KubeApi, Mode, PodObject, job, replicaset};

const NODE: &str = "node-a";
/// Long enough for the watcher's backoff after a failure (0.8 s doubling).
const WAIT: Duration = Duration::from_secs(40);

async fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "not {what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const UID_WEB: &str = "0b6a4c1e-2f3d-4e5a-8b7c-9d0e1f2a3b4c";
const UID_LONG: &str = "5e2f7a9c-1b3d-4c6e-a8f0-2d4b6c8e0a1f";
const WEB_CID: &str = "3b1f8c2d9e4a7b6c5d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e";
/// A Deployment whose name is long enough that Kubernetes truncated the pod name's
/// generateName base (58 characters) through the pod-template-hash: the name heuristic cannot
/// find the Deployment in `<name>-7d9f8b6<5 random>`.
const LONG: &str = "inference-gateway-router-for-the-research-assistant";

/// A node with one pod per owner kind, a host-network pod and a pod on another node.
fn cluster(api: &KubeApi) {
    let web_labels = labels(&[("app", "web"), ("pod-template-hash", "7d9f8b6c4d")]);
    api.put_object(replicaset(
        "shop",
        "web-7d9f8b6c4d",
        "rs-web",
        Some(("web", "dep-web")),
        &web_labels,
    ));
    let long_rs = format!("{LONG}-7d9f8b6c4d");
    let long_labels = labels(&[
        ("app.kubernetes.io/name", "router"),
        ("pod-template-hash", "7d9f8b6c4d"),
    ]);
    api.put_object(replicaset(
        "ai",
        &long_rs,
        "rs-long",
        Some((LONG, "dep-long")),
        &long_labels,
    ));
    api.put_object(job(
        "ops",
        "backup-28734560",
        "job-backup",
        Some(("backup", "cj-backup")),
    ));
    let pods = [
        PodObject::new("shop", "web-7d9f8b6c4d-x2x9k", UID_WEB, NODE)
            .label("app", "web")
            .label("pod-template-hash", "7d9f8b6c4d")
            .owner("ReplicaSet", "web-7d9f8b6c4d", "rs-web")
            .service_account("web-sa")
            .ip("10.1.0.5")
            .containers(&[("app", WEB_CID)]),
        PodObject::new(
            "ai",
            &format!("{}{}", &long_rs[..58], "x2x9k"),
            UID_LONG,
            NODE,
        )
        .label("app.kubernetes.io/name", "router")
        .label("pod-template-hash", "7d9f8b6c4d")
        .owner("ReplicaSet", &long_rs, "rs-long")
        .ip("10.1.0.6"),
        PodObject::new("ops", "backup-28734560-qwv7x", "uid-backup", NODE).owner(
            "Job",
            "backup-28734560",
            "job-backup",
        ),
        PodObject::new("shop", "db-0", "uid-db", NODE).owner("StatefulSet", "db", "ss-db"),
        PodObject::new("kube-system", "agent-q8m4z", "uid-agent", NODE)
            .owner("DaemonSet", "agent", "ds-agent")
            .ip("10.0.0.10")
            .host_network(),
        PodObject::new("shop", "debug", "uid-debug", NODE).ip("10.1.0.9"),
        PodObject::new("models", "llm-5c9fd6c974-b5c7d", "uid-llm", "node-b")
            .label("app", "llm")
            .label("pod-template-hash", "5c9fd6c974")
            .owner("ReplicaSet", "llm-5c9fd6c974", "rs-llm")
            .ip("10.2.0.9"),
    ];
    for p in pods {
        api.put_pod(p.json());
    }
}

async fn synced(api: &KubeApi, peers: PeerScope) -> KubeMetadata {
    let m = KubeMetadata::spawn(Endpoint::Url(api.url()), NODE.into(), peers);
    wait_for("synced", WAIT, || m.status().synced).await;
    m
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_this_nodes_pods_with_exact_owners_and_follows_the_watch() {
    let api = KubeApi::start();
    cluster(&api);
    let m = synced(&api, PeerScope::Cluster).await;
    wait_for("peers listed", WAIT, || m.status().peer_pods == 1).await;
    assert_eq!(m.status().local_pods, 6, "{:?}", m.status());

    let workload = |uid: &str| {
        let p = m
            .local_pod(uid)
            .unwrap_or_else(|| panic!("{uid} not cached"));
        (p.workload.kind, p.workload.name.clone(), p.workload_exact)
    };
    assert_eq!(
        workload(UID_WEB),
        (WorkloadKind::Deployment, "web".into(), true)
    );
    assert_eq!(
        workload(UID_LONG),
        (WorkloadKind::Deployment, LONG.into(), true)
    );
    assert_eq!(
        workload("uid-backup"),
        (WorkloadKind::CronJob, "backup".into(), true)
    );
    assert_eq!(
        workload("uid-db"),
        (WorkloadKind::StatefulSet, "db".into(), true)
    );
    assert_eq!(
        workload("uid-agent"),
        (WorkloadKind::DaemonSet, "agent".into(), true)
    );
    assert_eq!(
        workload("uid-debug"),
        (WorkloadKind::Pod, "debug".into(), true)
    );
    assert!(
        m.local_pod("uid-llm").is_none(),
        "a pod of another node is not local"
    );

    let web = m.local_pod(UID_WEB).unwrap();
    assert_eq!(
        *web.labels,
        labels(&[("app", "web"), ("pod-template-hash", "7d9f8b6c4d")])
    );
    assert_eq!(web.service_account.as_deref(), Some("web-sa"));
    assert_eq!(web.container_name(WEB_CID), Some("app"));

    // Addresses: this node's pods and the peers; never a host-network pod's (the node's).
    assert_eq!(m.pod_by_ip(&ip("10.1.0.5")).unwrap().uid, UID_WEB);
    assert_eq!(m.pod_by_ip(&ip("::ffff:10.1.0.6")).unwrap().uid, UID_LONG);
    assert!(m.pod_by_ip(&ip("10.0.0.10")).is_none());
    let peer = m.peer(&ip("10.2.0.9")).expect("the peer on node-b");
    assert_eq!(
        (
            peer.namespace.as_str(),
            peer.pod.as_deref(),
            peer.workload.as_deref()
        ),
        ("models", Some("llm-5c9fd6c974-b5c7d"), Some("llm"))
    );
    assert_eq!(peer.labels["app"], "llm");

    // Requests: one watch per set with its field selector, owners read for local pods only.
    // Each set starts its watch after its own list, so the second watch may still be on its
    // way when the cache is already complete: wait for it (bounded).
    let watch_selectors = |reqs: &[sensor_tests::kube_api::Request]| -> Vec<String> {
        reqs.iter()
            .filter(|r| r.is_watch())
            .filter_map(|r| r.query.get("fieldSelector").cloned())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reqs = api.requests();
    while !(watch_selectors(&reqs)
        .iter()
        .any(|s| s == "spec.nodeName=node-a")
        && watch_selectors(&reqs)
            .iter()
            .any(|s| s == "spec.nodeName!=node-a"))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
        reqs = api.requests();
    }
    let selectors = watch_selectors(&reqs);
    assert!(
        selectors.iter().any(|s| s == "spec.nodeName=node-a")
            && selectors.iter().any(|s| s == "spec.nodeName!=node-a"),
        "{selectors:?}"
    );
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert!(paths.contains(&"/apis/apps/v1/namespaces/shop/replicasets/web-7d9f8b6c4d"));
    assert!(paths.contains(&"/apis/batch/v1/namespaces/ops/jobs/backup-28734560"));
    assert!(
        !paths.iter().any(|p| p.contains("llm-5c9fd6c974")),
        "peers are never looked up: {paths:?}"
    );
    let lookups = m.status().owner_lookups;
    assert_eq!((lookups, m.status().owner_lookup_errors), (3, 0));

    // The watch: a relabel, a new pod, a delete.
    let g = m.local_generation();
    api.put_pod(
        PodObject::new("shop", "db-0", "uid-db", NODE)
            .owner("StatefulSet", "db", "ss-db")
            .label("tier", "data")
            .json(),
    );
    wait_for("the relabel", WAIT, || {
        m.local_pod("uid-db")
            .is_some_and(|p| p.labels.get("tier").is_some())
    })
    .await;
    assert!(m.local_generation() > g);
    api.put_pod(
        PodObject::new("shop", "web-7d9f8b6c4d-p9q8r", "uid-web2", NODE)
            .label("app", "web")
            .label("pod-template-hash", "7d9f8b6c4d")
            .owner("ReplicaSet", "web-7d9f8b6c4d", "rs-web")
            .json(),
    );
    api.delete_pod("uid-debug");
    wait_for("the new pod and the delete", WAIT, || {
        m.local_pod("uid-web2").is_some() && m.local_pod("uid-debug").is_none()
    })
    .await;
    assert!(m.pod_by_ip(&ip("10.1.0.9")).is_none());
    assert_eq!(
        m.status().owner_lookups,
        lookups,
        "the ReplicaSet is read once"
    );
    assert_eq!(m.status().relists, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_mid_stream_relists_and_drops_pods_deleted_meanwhile() {
    let api = KubeApi::start();
    cluster(&api);
    let m = synced(&api, PeerScope::Node).await;
    let lists_before = api
        .requests()
        .iter()
        .filter(|r| !r.is_watch() && r.path == "/api/v1/pods")
        .count();
    // Gone without a DELETED event the client could still see; then the history expires.
    api.forget_pod("uid-debug");
    api.put_pod(PodObject::new("shop", "late", "uid-late", NODE).json());
    api.expire_watches();
    wait_for("the re-list", WAIT, || {
        m.status().relists >= 1
            && m.local_pod("uid-debug").is_none()
            && m.local_pod("uid-late").is_some()
    })
    .await;
    let lists_after = api
        .requests()
        .iter()
        .filter(|r| !r.is_watch() && r.path == "/api/v1/pods")
        .count();
    assert!(lists_after > lists_before, "no new list after 410");
    let s = m.status();
    assert!(s.connected && s.synced && s.errors >= 1, "{s:?}");
    assert_eq!(s.local_pods, 6, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_resumes_from_the_last_resource_version() {
    let api = KubeApi::start();
    cluster(&api);
    let m = synced(&api, PeerScope::Node).await;
    let rv = api.put_pod(PodObject::new("shop", "one", "uid-one", NODE).json());
    wait_for("pod one", WAIT, || m.local_pod("uid-one").is_some()).await;
    let before = api.requests().len();
    api.end_watches();
    wait_for("a new watch", WAIT, || {
        api.requests()[before..].iter().any(|r| r.is_watch())
    })
    .await;
    api.put_pod(PodObject::new("shop", "two", "uid-two", NODE).json());
    wait_for("pod two", WAIT, || m.local_pod("uid-two").is_some()).await;
    let after: Vec<_> = api.requests()[before..].to_vec();
    assert!(
        after
            .iter()
            .any(|r| r.is_watch() && r.query.get("resourceVersion") == Some(&rv.to_string())),
        "the watch did not resume from resourceVersion {rv}: {after:?}"
    );
    assert!(
        !after
            .iter()
            .any(|r| !r.is_watch() && r.path == "/api/v1/pods"),
        "a resumed watch needs no list: {after:?}"
    );
    assert_eq!(m.status().relists, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_then_allowed() {
    let api = KubeApi::start();
    cluster(&api);
    api.set_mode(Mode::Forbidden);
    let m = KubeMetadata::spawn(Endpoint::Url(api.url()), NODE.into(), PeerScope::Node);
    wait_for("an error", WAIT, || m.status().errors >= 1).await;
    let s = m.status();
    assert!(!s.connected && !s.synced && s.local_pods == 0, "{s:?}");
    api.set_mode(Mode::Serve);
    wait_for("synced once allowed", WAIT, || m.status().synced).await;
    assert_eq!(m.status().local_pods, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_stalled_servers_never_block_readers() {
    // Nothing listens on the port yet.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let m = KubeMetadata::spawn(
        Endpoint::Url(format!("http://127.0.0.1:{port}")),
        NODE.into(),
        PeerScope::Node,
    );
    wait_for("an error", WAIT, || m.status().errors >= 1).await;
    let t = Instant::now();
    for _ in 0..1000 {
        assert!(m.local_pod(UID_WEB).is_none());
    }
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    // The API comes up where it was expected: the source catches up by itself.
    let api = KubeApi::bind(port);
    cluster(&api);
    wait_for("synced after the API came up", WAIT, || m.status().synced).await;
    assert!(m.local_pod(UID_WEB).is_some());

    let stalled = KubeApi::start();
    stalled.set_mode(Mode::Stall(Duration::from_secs(30)));
    let s = KubeMetadata::spawn(Endpoint::Url(stalled.url()), NODE.into(), PeerScope::Node);
    // Once the API has the source's first request, the source is waiting on a stalled answer.
    wait_for("asking the stalled API", WAIT, || {
        !stalled.requests().is_empty()
    })
    .await;
    let t = Instant::now();
    assert!(s.local_pod(UID_WEB).is_none() && !s.status().synced);
    assert!(t.elapsed() < Duration::from_millis(50));
    assert!(!stalled.requests().is_empty(), "the source did ask");
}

/// The attribution a real `Attributor` makes from a kubelet-shaped cgroup tree (in a temp
/// dir) and the API's pods: names, exact workload, labels, service account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribution_prefers_the_api_and_follows_its_changes() {
    let root = std::env::temp_dir().join(format!("sensor-kube-attr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let cg = root.join("cgroup");
    let long_cid = "c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c";
    let web = cg.join(format!("kubepods/besteffort/pod{UID_WEB}/{WEB_CID}"));
    let long = cg.join(format!("kubepods/besteffort/pod{UID_LONG}/{long_cid}"));
    for d in [&web, &long] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::create_dir_all(root.join("proc")).unwrap();
    let id = |p: &Path| std::fs::metadata(p).unwrap().ino();
    // No kubelet files at all: names come from the API alone.
    let mut attributor = Attributor::new(AttributionOptions {
        cgroup2_mount: cg.clone(),
        cgroup2_root: "/".into(),
        kubelet: KubeletDirs {
            pod_logs: root.join("pods"),
            container_logs: root.join("containers"),
        },
        proc_root: root.join("proc"),
        process_table_size: 64,
    });
    let before = attributor.attribute(id(&web), 0);
    assert_eq!(
        (before.scope, before.pod.as_deref()),
        (Scope::Container, None)
    );

    let api = KubeApi::start();
    cluster(&api);
    let m = synced(&api, PeerScope::Node).await;
    attributor.set_pod_metadata(m.clone());
    let a = attributor.attribute(id(&web), 0);
    assert_eq!(
        (
            a.namespace.as_deref(),
            a.pod.as_deref(),
            a.container.as_deref(),
            a.workload.as_deref(),
            a.workload_kind,
            a.workload_from_api
        ),
        (
            Some("shop"),
            Some("web-7d9f8b6c4d-x2x9k"),
            Some("app"),
            Some("web"),
            Some(WorkloadKind::Deployment),
            true
        )
    );
    assert_eq!(a.service_account.as_deref(), Some("web-sa"));
    assert_eq!(a.labels.as_deref().unwrap()["app"], "web");
    // The long-named Deployment: the name alone says "bare pod"; the API knows better.
    let pod_name = m.local_pod(UID_LONG).unwrap().name.clone();
    assert_eq!(
        sensor::attribution::workload::workload_from_pod_name(&pod_name).kind,
        WorkloadKind::Pod
    );
    let a = attributor.attribute(id(&long), 0);
    assert_eq!(
        (a.workload.as_deref(), a.workload_kind),
        (Some(LONG), Some(WorkloadKind::Deployment))
    );

    // A relabel in the API reaches the cached attribution.
    api.put_pod(
        PodObject::new("shop", "web-7d9f8b6c4d-x2x9k", UID_WEB, NODE)
            .label("app", "web")
            .label("release", "canary")
            .owner("ReplicaSet", "web-7d9f8b6c4d", "rs-web")
            .containers(&[("app", WEB_CID)])
            .json(),
    );
    wait_for("the relabel in the attribution", WAIT, || {
        attributor
            .attribute(id(&web), 0)
            .labels
            .as_deref()
            .is_some_and(|l| l.get("release").is_some_and(|v| v == "canary"))
    })
    .await;
    let _ = std::fs::remove_dir_all(&root);
}
