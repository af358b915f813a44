//! The background task that keeps the [`PodCache`] current: one watch of this node's pods
//! (`spec.nodeName=<node>`), one of every other pod when peers are cluster-wide. kube-runtime's
//! watcher lists (in pages of 500), then watches from the list's resourceVersion, resumes a
//! dropped watch from the last resourceVersion seen, and lists again after `410 Gone`; errors
//! are retried with its default backoff (0.8 s doubling to 30 s). Nothing here is awaited by the
//! agent: it reads the cache, which is only locked for short, synchronous updates.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use k8s_openapi::api::{apps::v1::ReplicaSet, batch::v1::Job, core::v1::Pod};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use tokio_stream::StreamExt;
use tracing::{info, warn};

use super::{
    cache::{PodCache, PodSet},
    model::{ApiPod, project},
    owner::{OwnerRef, ParentKind, derived_workload, exact_workload, parent_to_look_up},
    settings::{Endpoint, PeerScope},
    status::KubeStatus,
};

/// A ReplicaSet or Job read that takes longer is given up (the owner is then derived).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Owner answers kept (by owner uid); past this the memo is cleared and refilled.
const OWNER_MEMO: usize = 4096;

/// What the task shares with the readers.
#[derive(Clone)]
pub(super) struct Shared {
    pub cache: Arc<RwLock<PodCache>>,
    pub status: Arc<KubeStatus>,
    pub generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Shared {
    fn update<R>(&self, f: impl FnOnce(&mut PodCache) -> R) -> R {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        let r = f(&mut cache);
        self.status
            .set_counts(cache.len(PodSet::Local), cache.len(PodSet::Remote));
        self.generation.store(
            cache.local_generation(),
            std::sync::atomic::Ordering::Release,
        );
        r
    }
}

/// Runs until the process ends.
pub(super) async fn run(endpoint: Endpoint, node: String, peers: PeerScope, shared: Shared) {
    let client = match client(&endpoint) {
        Ok(c) => c,
        Err(e) => {
            shared.status.error();
            warn!(
                "Kubernetes API: cannot build a client ({e}); pods are named from kubelet's \
                 files only"
            );
            return;
        }
    };
    let local = watch_pods(
        client.clone(),
        PodSet::Local,
        format!("spec.nodeName={node}"),
        shared.clone(),
    );
    match peers {
        PeerScope::Node => local.await,
        PeerScope::Cluster => {
            let remote = watch_pods(
                client,
                PodSet::Remote,
                format!("spec.nodeName!={node}"),
                shared,
            );
            tokio::join!(local, remote);
        }
    }
}

/// A client for `endpoint` (in-cluster credentials, or a URL reached anonymously).
pub fn client(endpoint: &Endpoint) -> Result<Client, String> {
    let mut config = match endpoint {
        Endpoint::InCluster => kube::Config::incluster().map_err(|e| e.to_string())?,
        Endpoint::Url(url) => kube::Config::new(url.parse().map_err(|e| format!("{url}: {e}"))?),
    };
    // An unreachable address fails fast and is retried with backoff.
    config.connect_timeout = Some(Duration::from_secs(5));
    Client::try_from(config).map_err(|e| e.to_string())
}

async fn watch_pods(client: Client, set: PodSet, fields: String, shared: Shared) {
    let api: Api<Pod> = Api::all(client.clone());
    let mut owners = Owners::new(client, shared.status.clone());
    let stream = watcher(api, watcher::Config::default().fields(&fields)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut link = Link::new(set);
    let mut listed_once = false;
    let mut listed = 0usize;
    while let Some(item) = stream.next().await {
        match item {
            Ok(watcher::Event::Init) => {
                if listed_once {
                    shared.status.relisted();
                }
                listed = 0;
                shared.update(|c| c.begin_list(set));
            }
            Ok(watcher::Event::InitApply(pod)) => {
                listed += 1;
                if let Some(p) = owners.api_pod(&pod, set).await {
                    shared.update(|c| c.apply(set, p));
                }
            }
            Ok(watcher::Event::InitDone) => {
                let gone = shared.update(|c| c.finish_list(set));
                shared.status.set_connected(true);
                if set == PodSet::Local {
                    shared.status.set_synced();
                }
                link.listed(listed, gone, listed_once);
                listed_once = true;
            }
            Ok(watcher::Event::Apply(pod)) => {
                shared.status.set_connected(true);
                link.resumed();
                if let Some(p) = owners.api_pod(&pod, set).await {
                    shared.update(|c| c.apply(set, p));
                }
            }
            Ok(watcher::Event::Delete(pod)) => {
                shared.status.set_connected(true);
                link.resumed();
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    shared.update(|c| c.delete(set, uid));
                }
            }
            Err(e) => {
                shared.status.error();
                shared.status.set_connected(false);
                link.failed(&e);
            }
        }
    }
}

/// Owner resolution of this node's pods, with a memo of the ReplicaSets and Jobs read.
struct Owners {
    client: Client,
    status: Arc<KubeStatus>,
    /// Owner uid -> that owner's own controller (`None`: it has none).
    memo: HashMap<String, Option<OwnerRef>>,
    failing: bool,
}

impl Owners {
    fn new(client: Client, status: Arc<KubeStatus>) -> Self {
        Self {
            client,
            status,
            memo: HashMap::new(),
            failing: false,
        }
    }

    /// The pod as the cache keeps it. Peers are never looked up (their owner is derived).
    async fn api_pod(&mut self, pod: &Pod, set: PodSet) -> Option<ApiPod> {
        let local = set == PodSet::Local;
        let (parts, owner) = project(pod, local)?;
        let (workload, top) = match parent_to_look_up(owner.as_ref()).zip(owner.as_ref()) {
            None => (
                exact_workload(&parts.name, owner.as_ref(), None),
                Some(None),
            ),
            Some(_) if !local => (
                derived_workload(&parts.name, &parts.labels, owner.as_ref()),
                None,
            ),
            Some((kind, o)) => match self.parent(kind, &parts.namespace, o).await {
                Some(parent) => (
                    exact_workload(&parts.name, Some(o), parent.as_ref()),
                    Some(parent),
                ),
                None => (derived_workload(&parts.name, &parts.labels, Some(o)), None),
            },
        };
        Some(parts.with_workload(owner, workload, top))
    }

    /// The controller of `owner` (`Some(None)`: it has none); `None` when it could not be read.
    async fn parent(
        &mut self,
        kind: ParentKind,
        namespace: &str,
        owner: &OwnerRef,
    ) -> Option<Option<OwnerRef>> {
        if let Some(parent) = self.memo.get(&owner.uid) {
            return Some(parent.clone());
        }
        let read = tokio::time::timeout(LOOKUP_TIMEOUT, self.read(kind, namespace, &owner.name));
        let result = match read.await {
            Ok(Ok((uid, parent))) if uid == owner.uid => Ok(parent),
            Ok(Ok(_)) => Err("it was replaced by another object of the same name".to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {LOOKUP_TIMEOUT:?}")),
        };
        self.status.owner_lookup(result.is_err());
        match result {
            Ok(parent) => {
                if self.memo.len() >= OWNER_MEMO {
                    self.memo.clear();
                }
                self.memo.insert(owner.uid.clone(), parent.clone());
                if std::mem::take(&mut self.failing) {
                    info!("Kubernetes API: owner lookups work again");
                }
                Some(parent)
            }
            Err(e) => {
                if !std::mem::replace(&mut self.failing, true) {
                    warn!(
                        "Kubernetes API: cannot read {} {namespace}/{} ({e}); workloads are \
                         derived from the controllers' naming until lookups work",
                        owner.kind, owner.name
                    );
                }
                None
            }
        }
    }

    /// (uid, controller) of a ReplicaSet or Job.
    async fn read(
        &self,
        kind: ParentKind,
        namespace: &str,
        name: &str,
    ) -> Result<(String, Option<OwnerRef>), kube::Error> {
        let meta = match kind {
            ParentKind::ReplicaSet => {
                Api::<ReplicaSet>::namespaced(self.client.clone(), namespace)
                    .get(name)
                    .await?
                    .metadata
            }
            ParentKind::Job => {
                Api::<Job>::namespaced(self.client.clone(), namespace)
                    .get(name)
                    .await?
                    .metadata
            }
        };
        Ok((
            meta.uid.unwrap_or_default(),
            OwnerRef::controller_of(meta.owner_references.as_deref().unwrap_or_default()),
        ))
    }
}

/// Logs the connection's state changes, once each (errors repeat with backoff: not logged).
struct Link {
    set: PodSet,
    state: LinkState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LinkState {
    Starting,
    Up,
    Down(String),
}

impl Link {
    fn new(set: PodSet) -> Self {
        Self {
            set,
            state: LinkState::Starting,
        }
    }

    fn what(&self) -> &'static str {
        match self.set {
            PodSet::Local => "this node's pods",
            PodSet::Remote => "other nodes' pods",
        }
    }

    fn meanwhile(&self) -> &'static str {
        match self.set {
            PodSet::Local => "pods are named from kubelet's files only until it recovers",
            PodSet::Remote => "peers on other nodes stay addresses until it recovers",
        }
    }

    fn listed(&mut self, pods: usize, gone: usize, relist: bool) {
        let what = self.what();
        match (&self.state, relist) {
            (LinkState::Down(_), _) | (_, true) => info!(
                pods,
                gone, "Kubernetes API: {what} listed again ({gone} gone meanwhile)"
            ),
            _ => info!(pods, "Kubernetes API: {what} listed"),
        }
        self.state = LinkState::Up;
    }

    /// A watch event after a failure: the watch resumed without a new list.
    fn resumed(&mut self) {
        if matches!(self.state, LinkState::Down(_)) {
            info!("Kubernetes API: the watch of {} resumed", self.what());
            self.state = LinkState::Up;
        }
    }

    fn failed(&mut self, e: &watcher::Error) {
        let class = classify(e);
        if self.state == LinkState::Down(class.to_string()) {
            return;
        }
        let (what, meanwhile) = (self.what(), self.meanwhile());
        if class == GONE {
            // Expected now and then: the watch fell behind the API server's history.
            info!("Kubernetes API: the watch of {what} expired (410 Gone): listing again");
        } else {
            warn!("Kubernetes API: {class} ({e}) watching {what}; {meanwhile}");
        }
        self.state = LinkState::Down(class.to_string());
    }
}

const GONE: &str = "watch expired";

/// A short name for the kind of failure (state changes are logged per kind).
fn classify(e: &watcher::Error) -> &'static str {
    let code = match e {
        watcher::Error::WatchError(r) => Some(r.code),
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => match e {
            kube::Error::Api(r) => Some(r.code),
            _ => None,
        },
        watcher::Error::NoResourceVersion => return "unusable answer (no resourceVersion)",
    };
    match code {
        Some(410) => GONE,
        Some(401) => "unauthorized (401)",
        Some(403) => "forbidden (403): RBAC must allow get, list and watch on pods",
        Some(c) if c >= 500 => "server error",
        Some(_) => "request refused",
        None => "unreachable",
    }
}
