//! Pod metadata from the Kubernetes API (optional, in-cluster): labels, the exact owner
//! workload, the service account and the addresses of pods.
//!
//! Kubelet's files (`../kubelet.rs`) name pods and containers with no API at all; this source
//! adds what only the API knows. It is a background task ([`watch`]) that fills a shared
//! [`PodCache`]; attribution and the learner only *read* the cache, so capture never waits on
//! the API: when it is down, slow or forbidden, pods keep their kubelet names and the
//! name-derived workload (`../workload.rs`), and flows keep plain addresses.
//!
//! - this node's pods: a watch with `spec.nodeName=<node>`; owners of ReplicaSets and Jobs are
//!   read once each (ReplicaSet -> Deployment, Job -> CronJob);
//! - other nodes' pods (peers of flows, `--kubernetes-peers cluster`): a second watch with
//!   `spec.nodeName!=<node>`, projected to namespace, name, labels, derived workload and
//!   addresses on arrival.

pub mod cache;
pub mod model;
pub mod owner;
pub mod settings;
pub mod status;
mod watch;

use std::{
    net::IpAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

pub use self::{
    cache::{PodCache, PodSet},
    model::ApiPod,
    owner::OwnerRef,
    settings::{ApiMode, Endpoint, KubeApiSettings, PeerScope},
    status::{KubeStatus, KubeStatusSnapshot},
    watch::client,
};
use super::Peer;

/// A handle on the pods known from the API (cheap to clone).
#[derive(Clone)]
pub struct KubeMetadata {
    shared: watch::Shared,
    endpoint: Endpoint,
}

impl KubeMetadata {
    /// Starts the source for `endpoint` in the background (needs a tokio runtime).
    pub fn spawn(endpoint: Endpoint, node: String, peers: PeerScope) -> Self {
        let shared = watch::Shared {
            cache: Arc::new(RwLock::new(PodCache::default())),
            status: Arc::new(KubeStatus::default()),
            generation: Arc::new(AtomicU64::new(0)),
        };
        tokio::spawn(watch::run(endpoint.clone(), node, peers, shared.clone()));
        Self { shared, endpoint }
    }

    /// The source for these settings, or `None` (logged once, with the reason) when it is off.
    pub fn start(settings: &KubeApiSettings, node: &str) -> Option<Self> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").ok();
        match settings::endpoint(
            settings,
            host.as_deref(),
            std::path::Path::new(settings::SERVICE_ACCOUNT_TOKEN),
        ) {
            Ok(endpoint) => {
                tracing::info!(
                    ?endpoint,
                    node,
                    peers = ?settings.peers,
                    "Kubernetes API: watching pods (names fall back to kubelet's files meanwhile)"
                );
                Some(Self::spawn(endpoint, node.to_string(), settings.peers))
            }
            Err(why) => {
                tracing::info!(
                    "Kubernetes API: not used ({why}); pods are named from kubelet's files"
                );
                None
            }
        }
    }

    /// The API server this source talks to (other API users of the daemon share it).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// A pod of this node by uid.
    pub fn local_pod(&self, uid: &str) -> Option<Arc<ApiPod>> {
        self.read().local(uid)
    }

    /// The object (with uid) of a workload that has pods on this node, when the API named it
    /// exactly.
    pub fn local_workload_object(&self, namespace: &str, workload: &str) -> Option<OwnerRef> {
        self.read().local_workload_object(namespace, workload)
    }

    /// Whether this node runs a pod of the workload.
    pub fn has_local_workload(&self, namespace: &str, workload: &str) -> bool {
        self.read().has_local_workload(namespace, workload)
    }

    /// The pod (this node's or, with cluster-wide peers, any node's) that holds `ip`.
    pub fn pod_by_ip(&self, ip: &IpAddr) -> Option<Arc<ApiPod>> {
        self.read().by_ip(ip)
    }

    /// The peer a flow to or from `ip` talks to, when a pod holds that address.
    pub fn peer(&self, ip: &IpAddr) -> Option<Peer> {
        self.pod_by_ip(ip).map(|p| Peer {
            namespace: p.namespace.clone(),
            pod: Some(p.name.clone()),
            workload: Some(p.workload.name.clone()),
            labels: (*p.labels).clone(),
        })
    }

    /// Changes with every change of this node's pods (one atomic load: for hot paths).
    pub fn local_generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Connection state and counters (for metrics).
    pub fn status(&self) -> KubeStatusSnapshot {
        self.shared.status.snapshot()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, PodCache> {
        self.shared.cache.read().unwrap_or_else(|e| e.into_inner())
    }
}
