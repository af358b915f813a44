//! Heap held by the Kubernetes API source per pod (glibc's in-use bytes, `mallinfo2`), measured
//! with the real client against the test API server: the basis for watching every pod of the
//! cluster for peers (`--kubernetes-peers cluster`, the default). One test in its own binary,
//! so no other test allocates meanwhile.

use std::time::{Duration, Instant};

use sensor::attribution::kube::{Endpoint, KubeMetadata, PeerScope};
use sensor_tests::kube_api::{KubeApi, PodObject, replicaset};

/// The steady-state cost per pod must stay below this (it is what a 5000-node, 150k-pod
/// cluster multiplies).
const MAX_BYTES_PER_POD: f64 = 2048.0;

fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    unsafe { libc::mallinfo2().uordblks }
}

async fn settle(m: &KubeMetadata, ok: impl Fn(&KubeMetadata) -> bool) {
    let start = Instant::now();
    while !ok(m) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{:?}",
            m.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the last page's buffers go.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// A pod as a Helm chart would label it, on `node`.
fn pod(i: usize, node: &str) -> PodObject {
    let app = format!("service-{}", i / 10);
    let hash = format!("{:010x}", 0x5c_9fd6_c974_u64 + (i / 10) as u64);
    PodObject::new(
        &format!("team-{}", i % 20),
        &format!("{app}-{hash}-{:05}", i % 100_000),
        &format!("{:08x}-1b3d-4c6e-a8f0-2d4b6c8e0a1f", i),
        node,
    )
    .label("app.kubernetes.io/name", &app)
    .label("app.kubernetes.io/instance", &format!("{app}-prod"))
    .label("app.kubernetes.io/component", "server")
    .label("pod-template-hash", &hash)
    .owner(
        "ReplicaSet",
        &format!("{app}-{hash}"),
        &format!("rs-{}", i / 10),
    )
    .ip(&format!(
        "10.{}.{}.{}",
        64 + i / 65536,
        (i / 256) % 256,
        i % 256
    ))
}

/// Heap growth while `n` pods are listed into a new source.
async fn measure(
    n: usize,
    node_of: impl Fn(usize) -> &'static str,
    peers: PeerScope,
) -> (usize, KubeMetadata, KubeApi) {
    let api = KubeApi::start();
    for i in 0..n {
        let p = pod(i, node_of(i));
        if node_of(i) == "node-a" {
            let (kind, name, uid) = p.owner.clone().unwrap();
            assert_eq!(kind, "ReplicaSet");
            let deployment = name.rsplit_once('-').unwrap().0.to_string();
            api.put_object(replicaset(
                &p.namespace,
                &name,
                &uid,
                Some((&deployment, "dep")),
                &p.labels,
            ));
        }
        api.put_pod(p.json());
    }
    let before = heap_in_use();
    let m = KubeMetadata::spawn(Endpoint::Url(api.url()), "node-a".into(), peers);
    settle(&m, |m| {
        let s = m.status();
        s.synced && (s.local_pods + s.peer_pods) as usize == n
    })
    .await;
    (heap_in_use().saturating_sub(before), m, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heap_per_cached_pod() {
    let remote = |_| "node-b";
    let (d1k, _m1, _a1) = measure(1000, remote, PeerScope::Cluster).await;
    let (d5k, _m5, _a5) = measure(5000, remote, PeerScope::Cluster).await;
    let per_peer = (d5k as f64 - d1k as f64) / 4000.0;
    // This node's pods keep more (service account, containers) and their owners.
    let local = |_| "node-a";
    let (l1k, _ml1, _al1) = measure(1000, local, PeerScope::Node).await;
    let (l2k, _ml2, _al2) = measure(2000, local, PeerScope::Node).await;
    let per_local = (l2k as f64 - l1k as f64) / 1000.0;
    eprintln!(
        "heap: 1000 peer pods {:.0} KiB, 5000 peer pods {:.0} KiB -> {per_peer:.0} B per peer pod; \
         1000 local pods {:.0} KiB, 2000 local pods {:.0} KiB -> {per_local:.0} B per local pod",
        d1k as f64 / 1024.0,
        d5k as f64 / 1024.0,
        l1k as f64 / 1024.0,
        l2k as f64 / 1024.0,
    );
    assert!(
        per_peer > 0.0 && per_peer < MAX_BYTES_PER_POD,
        "{per_peer} bytes per peer pod"
    );
    assert!(
        per_local > 0.0 && per_local < 2.0 * MAX_BYTES_PER_POD,
        "{per_local} bytes per local pod"
    );
}
