//! Attribution: cgroup id -> cgroup path -> pod uid + container id -> namespace, pod and
//! container names (kubelet's on-node files) -> workload. Anything outside kubepods is `host`.

pub mod cgroup_path;
pub mod cgroups;
pub mod dns;
pub mod event;
pub mod kinds;
pub mod kube;
pub mod kubelet;
pub mod pipeline;
pub mod processes;
pub mod selector;
pub mod workload;
pub mod workload_losses;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use self::{
    cgroup_path::{CgroupKind, classify, short_id},
    cgroups::CgroupTable,
    kube::{ApiPod, KubeMetadata},
    kubelet::{KubeletDirs, KubeletIndex},
    processes::ProcessTable,
    workload::{WorkloadKind, workload_from_pod_name},
};

/// How often unresolved names may trigger a re-read of kubelet's directories: kubelet writes
/// the container-log symlink only after the container started.
const RESCAN_INTERVAL: Duration = Duration::from_millis(100);
/// How long an incomplete attribution is reused before trying again.
const RETRY_INCOMPLETE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// A container of a pod.
    Container,
    /// The pod's own cgroup (sandbox, conmon...), not one of its containers.
    Pod,
    /// Anything outside kubepods: system services, the node's own processes.
    Host,
    /// The cgroup could not be resolved to a path at all.
    Unknown,
}

/// Who an event belongs to. Serialized flat into every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribution {
    pub scope: Scope,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_kind: Option<WorkloadKind>,
    /// The workload was read from the Kubernetes API (not derived from the pod name).
    #[serde(skip)]
    pub workload_from_api: bool,
    /// Pod labels (Kubernetes API only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Arc<BTreeMap<String, String>>>,
    /// The pod's service account (Kubernetes API only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    pub cgroup_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
}

impl Attribution {
    /// An attribution that knows only its scope and cgroup (the rest is filled in as found).
    pub fn bare(scope: Scope, cgroup_id: u64, cgroup: Option<String>) -> Self {
        Self {
            scope,
            namespace: None,
            pod: None,
            pod_uid: None,
            container: None,
            container_id: None,
            workload: None,
            workload_kind: None,
            workload_from_api: false,
            labels: None,
            service_account: None,
            cgroup_id,
            cgroup,
        }
    }

    /// Everything that can be known is known (no reason to look again).
    pub fn is_complete(&self) -> bool {
        match self.scope {
            Scope::Container => self.pod.is_some() && self.container.is_some(),
            Scope::Pod => self.pod.is_some(),
            Scope::Host => true,
            Scope::Unknown => false,
        }
    }

    /// Display name: `namespace/pod/container`, `namespace/pod`, or `host`.
    pub fn display(&self) -> String {
        match (&self.namespace, &self.pod, &self.container, self.scope) {
            (Some(ns), Some(pod), Some(c), _) => format!("{ns}/{pod}/{c}"),
            (Some(ns), Some(pod), None, Scope::Container) => {
                format!(
                    "{ns}/{pod}/{}",
                    self.container_id.as_deref().map(short_id).unwrap_or("?")
                )
            }
            (Some(ns), Some(pod), None, _) => format!("{ns}/{pod}"),
            _ => match self.scope {
                Scope::Host => "host".to_string(),
                Scope::Unknown => format!("unknown(cgroup {})", self.cgroup_id),
                Scope::Container | Scope::Pod => format!(
                    "pod {}/{}",
                    self.pod_uid.as_deref().unwrap_or("?"),
                    self.container_id.as_deref().map(short_id).unwrap_or("-")
                ),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct AttributionOptions {
    pub cgroup2_mount: PathBuf,
    pub cgroup2_root: String,
    pub kubelet: KubeletDirs,
    pub proc_root: PathBuf,
    pub process_table_size: usize,
}

struct Cached {
    attribution: Arc<Attribution>,
    resolved_at: Instant,
    /// [`KubeMetadata::local_generation`] when resolved: a change of this node's pods in the
    /// API since then means looking again.
    api_generation: u64,
}

/// Pods whose name-derived workload disagreed with the API's, already logged (bounded).
const MISMATCHES_LOGGED: usize = 1024;

pub struct Attributor {
    cgroups: CgroupTable,
    pub processes: ProcessTable,
    kubelet: KubeletIndex,
    dirs: KubeletDirs,
    proc_root: PathBuf,
    cache: HashMap<u64, Cached>,
    last_kubelet_scan: Instant,
    /// Pod metadata from the Kubernetes API, when that source is on.
    api: Option<KubeMetadata>,
    mismatches_logged: HashSet<String>,
}

impl Attributor {
    /// Reads the current state of the node: every cgroup, kubelet's pods, live processes (so
    /// pods started before the sensor are attributed without a restart).
    pub fn new(opts: AttributionOptions) -> Self {
        let mut cgroups = CgroupTable::new(opts.cgroup2_mount, opts.cgroup2_root);
        let found = cgroups.scan();
        let kubelet = KubeletIndex::scan(&opts.kubelet);
        let mut processes = ProcessTable::new(opts.process_table_size);
        let seeded = processes.seed_from_proc(&opts.proc_root, |p| cgroups.id_of(p));
        tracing::info!(
            cgroups = found,
            processes = seeded,
            "attribution state seeded"
        );
        Self {
            cgroups,
            processes,
            kubelet,
            dirs: opts.kubelet,
            proc_root: opts.proc_root,
            cache: HashMap::new(),
            last_kubelet_scan: Instant::now(),
            api: None,
            mismatches_logged: HashSet::new(),
        }
    }

    /// Uses pod metadata from the Kubernetes API from now on (see [`kube`]).
    pub fn set_pod_metadata(&mut self, api: KubeMetadata) {
        self.api = Some(api);
        self.cache.clear();
    }

    pub fn cgroup_created(&mut self, id: u64, path: String) {
        self.cgroups.created(id, path);
        self.cache.remove(&id);
    }

    pub fn cgroup_removed(&mut self, id: u64) {
        self.cgroups.removed(id);
    }

    /// Ids of the cgroups that exist right now.
    pub fn live_cgroups(&self) -> std::collections::HashSet<u64> {
        self.cgroups.live_ids()
    }

    /// Id of a cgroup v2 path (hierarchy-absolute), from the filesystem.
    pub fn cgroup_id_of(&self, path: &str) -> Option<u64> {
        self.cgroups.id_of(path)
    }

    pub fn cgroup_path(&self, id: u64) -> Option<&str> {
        self.cgroups.path(id)
    }

    /// Who owns cgroup `cgroup_id`. `pid` (0 if unknown) lets an unseen cgroup be resolved
    /// through /proc.
    pub fn attribute(&mut self, cgroup_id: u64, pid: u32) -> Arc<Attribution> {
        let api_generation = self.api.as_ref().map_or(0, KubeMetadata::local_generation);
        if let Some(c) = self.cache.get(&cgroup_id)
            && c.api_generation == api_generation
            && (c.attribution.is_complete() || c.resolved_at.elapsed() < RETRY_INCOMPLETE)
        {
            return c.attribution.clone();
        }
        let mut a = self.resolve(cgroup_id, pid);
        if !a.is_complete()
            && a.scope != Scope::Unknown
            && self.last_kubelet_scan.elapsed() >= RESCAN_INTERVAL
        {
            self.kubelet = KubeletIndex::scan(&self.dirs);
            self.last_kubelet_scan = Instant::now();
            a = self.resolve(cgroup_id, pid);
        }
        let a = Arc::new(a);
        self.cache.insert(
            cgroup_id,
            Cached {
                attribution: a.clone(),
                resolved_at: Instant::now(),
                api_generation,
            },
        );
        a
    }

    /// Drops cached attributions of removed cgroups (call after their last events).
    pub fn forget(&mut self, cgroup_id: u64) {
        self.cache.remove(&cgroup_id);
    }

    fn resolve(&mut self, cgroup_id: u64, pid: u32) -> Attribution {
        let path = match self.cgroups.path(cgroup_id) {
            Some(p) => Some(p.to_string()),
            None if pid != 0 => self
                .cgroups
                .learn_from_pid(cgroup_id, pid, &self.proc_root)
                .map(str::to_string),
            None => None,
        };
        let Some(path) = path else {
            return Attribution::bare(Scope::Unknown, cgroup_id, None);
        };
        match classify(&path) {
            CgroupKind::Host => Attribution::bare(Scope::Host, cgroup_id, Some(path)),
            CgroupKind::PodLevel { pod_uid, .. } => {
                let mut a = Attribution::bare(Scope::Pod, cgroup_id, Some(path));
                if let Some(pod) = self.kubelet.pod(&pod_uid) {
                    a.namespace = Some(pod.namespace.clone());
                    a.pod = Some(pod.name.clone());
                    let w = workload_from_pod_name(&pod.name);
                    a.workload = Some(w.name);
                    a.workload_kind = Some(w.kind);
                }
                self.apply_api(&mut a, &pod_uid, None);
                a.pod_uid = Some(pod_uid);
                a
            }
            CgroupKind::Container(r) => {
                let mut a = Attribution::bare(Scope::Container, cgroup_id, Some(path));
                let resolved = self.kubelet.resolve(&r);
                if let Some(pod) = resolved.pod {
                    a.namespace = Some(pod.namespace.clone());
                    a.pod = Some(pod.name.clone());
                    let w = workload_from_pod_name(&pod.name);
                    a.workload = Some(w.name);
                    a.workload_kind = Some(w.kind);
                }
                a.container = resolved.container_name.map(str::to_string);
                self.apply_api(&mut a, &r.pod_uid, Some(&r.container_id));
                a.pod_uid = Some(r.pod_uid);
                a.container_id = Some(r.container_id);
                a
            }
        }
    }

    /// What the API knows of the pod: names kubelet's files do not have yet, labels, service
    /// account, and the workload from ownerReferences, which wins over the name-derived one.
    fn apply_api(&mut self, a: &mut Attribution, pod_uid: &str, container_id: Option<&str>) {
        let Some(pod) = self.api.as_ref().and_then(|api| api.local_pod(pod_uid)) else {
            return;
        };
        a.namespace.get_or_insert_with(|| pod.namespace.clone());
        a.pod.get_or_insert_with(|| pod.name.clone());
        if a.container.is_none() {
            a.container = container_id
                .and_then(|id| pod.container_name(id))
                .map(str::to_string);
        }
        self.log_mismatch(&pod);
        a.workload = Some(pod.workload.name.clone());
        a.workload_kind = Some(pod.workload.kind);
        a.workload_from_api = true;
        a.labels = Some(pod.labels.clone());
        a.service_account = pod.service_account.clone();
    }

    /// Says once per pod when the API names another workload than the pod name suggested:
    /// the profile key follows the API from here on.
    fn log_mismatch(&mut self, pod: &ApiPod) {
        let guessed = workload_from_pod_name(&pod.name);
        if guessed.name == pod.workload.name || self.mismatches_logged.contains(&pod.uid) {
            return;
        }
        if self.mismatches_logged.len() >= MISMATCHES_LOGGED {
            self.mismatches_logged.clear();
        }
        self.mismatches_logged.insert(pod.uid.clone());
        tracing::info!(
            pod = %format!("{}/{}", pod.namespace, pod.name),
            api = %format!("{:?} {}", pod.workload.kind, pod.workload.name),
            name_suggests = %format!("{:?} {}", guessed.kind, guessed.name),
            "workload from the Kubernetes API differs from the pod name's: profiles use the API's"
        );
    }
}

/// A pod at the other end of a flow, as the Kubernetes metadata names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}
