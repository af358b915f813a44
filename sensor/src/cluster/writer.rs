//! This node's pieces to the API: one `ProfilePiece` per learned workload container,
//! server-side applied by this node's field manager, on change and at a bounded rate.
//!
//! Every [`WriterSettings::tick`] the task snapshots the profile store and plans
//! ([`WritePlan`]): a piece is due when its shape changed (new syscall, exec, peer, file,
//! state) and [`WriterSettings::min_interval`] passed since its last write, or when only its
//! counters changed and [`WriterSettings::refresh`] passed. At most
//! [`WriterSettings::max_per_tick`] pieces are written per tick, the longest-waiting first; the
//! rest wait (counted). A failed write is retried next tick, except content the API refused
//! (4xx): that content is not sent again, a changed profile is. Capture never waits on any of
//! this: the task only takes the store's read lock to clone it.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams},
};
use tracing::{info, warn};

use super::{
    crd::{ProfilePiece, ProfilePieceSpec},
    piece::{Fingerprint, MAX_PIECE_BYTES, PieceError, labels, piece_name, piece_spec},
    status::{ClusterStatus, WriteFailure},
};
use crate::{
    attribution::kube::{KubeMetadata, owner::OwnerRef},
    drafts::seccomp::NodeArch,
    learn::store::ProfileStore,
    profile::model::{ProfileKey, Timestamp},
};

#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub node: String,
    pub arch: NodeArch,
    pub tick: Duration,
    pub min_interval: Duration,
    pub refresh: Duration,
    pub max_per_tick: usize,
    pub max_bytes: usize,
}

impl WriterSettings {
    /// Defaults: 30 s between two writes of a piece with new behaviour.
    pub fn new(node: &str) -> WriterSettings {
        Self::with_interval(node, Duration::from_secs(30))
    }

    /// Pieces with new behaviour at most every `interval`, with new counters only every ten;
    /// rounds three times per interval (at most 20 writes each, 120 per minute at 30 s).
    pub fn with_interval(node: &str, interval: Duration) -> WriterSettings {
        WriterSettings {
            node: node.to_string(),
            arch: NodeArch::current(),
            tick: (interval / 3).max(Duration::from_millis(300)),
            min_interval: interval,
            refresh: interval * 10,
            max_per_tick: 20,
            max_bytes: MAX_PIECE_BYTES,
        }
    }

    /// The field manager of this node's pieces.
    pub fn manager(&self) -> String {
        format!("sensor/node/{}", self.node)
    }
}

#[derive(Debug, Clone, Copy)]
struct Written {
    fingerprint: Fingerprint,
    at: Instant,
}

/// Which pieces to write now. Pure bookkeeping, driven by the task.
#[derive(Debug, Default)]
pub struct WritePlan {
    written: HashMap<ProfileKey, Written>,
    /// Content the API refused: not sent again.
    refused: HashMap<ProfileKey, Fingerprint>,
    /// Since when a piece has been due (for longest-waiting first).
    due_since: HashMap<ProfileKey, Instant>,
}

impl WritePlan {
    /// Whether `key`'s piece with `fp` should be written at `now`.
    pub fn is_due(
        &self,
        key: &ProfileKey,
        fp: Fingerprint,
        now: Instant,
        s: &WriterSettings,
    ) -> bool {
        if self.refused.get(key) == Some(&fp) {
            return false;
        }
        match self.written.get(key) {
            None => true,
            Some(w) if w.fingerprint == fp => false,
            Some(w) if w.fingerprint.shape != fp.shape => {
                now.duration_since(w.at) >= s.min_interval
            }
            Some(w) => now.duration_since(w.at) >= s.refresh,
        }
    }

    /// The due pieces, longest-waiting first, at most `s.max_per_tick`; the number left
    /// waiting.
    pub fn choose<T>(
        &mut self,
        candidates: Vec<(ProfileKey, Fingerprint, T)>,
        now: Instant,
        s: &WriterSettings,
    ) -> (Vec<(ProfileKey, Fingerprint, T)>, usize) {
        let due: Vec<(ProfileKey, Fingerprint, T)> = candidates
            .into_iter()
            .filter(|(k, fp, _)| self.is_due(k, *fp, now, s))
            .collect();
        let mut due: Vec<(Instant, ProfileKey, Fingerprint, T)> = due
            .into_iter()
            .map(|(k, fp, t)| (*self.due_since.entry(k.clone()).or_insert(now), k, fp, t))
            .collect();
        due.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let waiting = due.len().saturating_sub(s.max_per_tick);
        let chosen = due
            .into_iter()
            .take(s.max_per_tick)
            .map(|(_, k, fp, t)| (k, fp, t))
            .collect();
        (chosen, waiting)
    }

    /// Whether the last write of `key` had exactly this content.
    pub fn is_written(&self, key: &ProfileKey, fp: Fingerprint) -> bool {
        self.written.get(key).is_some_and(|w| w.fingerprint == fp)
    }

    pub fn wrote(&mut self, key: &ProfileKey, fingerprint: Fingerprint, at: Instant) {
        self.due_since.remove(key);
        self.refused.remove(key);
        self.written
            .insert(key.clone(), Written { fingerprint, at });
    }

    pub fn refused(&mut self, key: &ProfileKey, fingerprint: Fingerprint) {
        self.due_since.remove(key);
        self.refused.insert(key.clone(), fingerprint);
    }
}

/// The `apiVersion` of a workload object's kind.
fn api_version(kind: &str) -> &'static str {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        _ => "v1",
    }
}

/// The object to server-side apply for `key`.
pub fn piece_object(
    key: &ProfileKey,
    spec: ProfilePieceSpec,
    owner: Option<&OwnerRef>,
) -> ProfilePiece {
    let mut piece = ProfilePiece::new(&piece_name(key, &spec.node), spec);
    piece.metadata = ObjectMeta {
        name: piece.metadata.name.take(),
        namespace: Some(key.namespace.clone()),
        labels: Some(labels(key, Some(&piece.spec.node))),
        owner_references: owner.map(|o| {
            vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: api_version(&o.kind).to_string(),
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                    uid: o.uid.clone(),
                    controller: None,
                    block_owner_deletion: None,
                },
            ]
        }),
        ..ObjectMeta::default()
    };
    piece
}

/// Classifies a failed API call.
pub fn failure(e: &kube::Error) -> WriteFailure {
    match e {
        kube::Error::Api(s) => match s.code {
            403 => WriteFailure::Forbidden,
            404 => WriteFailure::NoResource,
            409 | 429 => WriteFailure::Transient,
            400..=499 => WriteFailure::Rejected,
            _ => WriteFailure::Transient,
        },
        _ => WriteFailure::Unreachable,
    }
}

/// Runs until the process ends.
pub async fn run(
    client: Client,
    settings: WriterSettings,
    store: Arc<RwLock<ProfileStore>>,
    metadata: Option<KubeMetadata>,
    status: Arc<ClusterStatus>,
) {
    let manager = settings.manager();
    let mut plan = WritePlan::default();
    let mut owners: HashMap<ProfileKey, OwnerRef> = HashMap::new();
    let mut too_large_logged: HashSet<ProfileKey> = HashSet::new();
    // Each profile's `updated` as of its last successful write (or too-large verdict): an
    // unchanged profile is neither cloned nor turned into a piece again.
    let mut settled: HashMap<ProfileKey, Timestamp> = HashMap::new();
    let mut failing: Option<WriteFailure> = None;
    let mut tick = tokio::time::interval(settings.tick);
    info!(
        node = settings.node,
        manager, "cluster profiles: writing this node's pieces"
    );
    loop {
        tick.tick().await;
        let mut profiles = Vec::new();
        store.read().expect("profile store lock").visit(&mut |p| {
            let owner_pending = metadata.is_some() && !owners.contains_key(&p.key);
            if settled.get(&p.key) != Some(&p.updated) || owner_pending {
                profiles.push(p.clone());
            }
        });
        let mut candidates = Vec::new();
        for p in &profiles {
            if let Some(m) = &metadata
                && let Some(o) = m.local_workload_object(&p.key.namespace, &p.key.workload)
            {
                owners.insert(p.key.clone(), o);
            }
            match piece_spec(p, &settings.node, settings.arch, settings.max_bytes) {
                Ok(spec) => {
                    let fp = Fingerprint::of(&spec);
                    if plan.is_written(&p.key, fp) {
                        // Only times moved: what the API holds is this piece already.
                        settled.insert(p.key.clone(), p.updated);
                    } else {
                        candidates.push((p.key.clone(), fp, (spec, p.updated)));
                    }
                }
                Err(e @ PieceError::TooLarge { .. }) => {
                    status
                        .pieces_too_large
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    settled.insert(p.key.clone(), p.updated);
                    if too_large_logged.insert(p.key.clone()) {
                        warn!("cluster profiles: {e}; the piece is not written");
                    }
                }
            }
        }
        let now = Instant::now();
        let (chosen, waiting) = plan.choose(candidates, now, &settings);
        status
            .pieces_waiting
            .store(waiting as u64, std::sync::atomic::Ordering::Relaxed);
        for (key, fp, (spec, updated)) in chosen {
            let collapsed = !spec.collapsed.is_empty();
            let object = piece_object(&key, spec, owners.get(&key));
            let name = object.metadata.name.clone().unwrap_or_default();
            let bytes = serde_json::to_vec(&object).map(|v| v.len()).unwrap_or(0);
            let api: Api<ProfilePiece> = Api::namespaced(client.clone(), &key.namespace);
            let params = PatchParams::apply(&manager).force();
            match api.patch(&name, &params, &Patch::Apply(&object)).await {
                Ok(_) => {
                    plan.wrote(&key, fp, Instant::now());
                    settled.insert(key.clone(), updated);
                    status.wrote(bytes, collapsed);
                    if let Some(was) = failing.take() {
                        info!(
                            "cluster profiles: pieces are written again (after {})",
                            was.as_str()
                        );
                    }
                }
                Err(e) => {
                    let why = failure(&e);
                    status.failed(why);
                    if why == WriteFailure::Rejected {
                        plan.refused(&key, fp);
                        warn!(
                            piece = name,
                            namespace = key.namespace,
                            "cluster profiles: the API refused the piece ({e}); this content is not sent again"
                        );
                    } else if failing != Some(why) {
                        match why {
                            WriteFailure::Forbidden => warn!(
                                "cluster profiles: the API forbids this node's sensor to patch profilepieces.sensor.io in namespace {} ({e}); grant the ClusterRole `patch` on `profilepieces` of API group `sensor.io` (deploy/daemonset.yaml); learning goes on locally",
                                key.namespace
                            ),
                            WriteFailure::NoResource => warn!(
                                "cluster profiles: the API has no profilepieces.sensor.io ({e}): the CRDs are not installed; apply deploy/crds.yaml (or `sensor crds | kubectl apply -f -`); learning goes on locally, pieces are written once they exist"
                            ),
                            _ => warn!(
                                "cluster profiles: cannot write pieces ({e}); learning goes on locally, pieces are written once the API answers"
                            ),
                        }
                        failing = Some(why);
                    }
                    if why == WriteFailure::Unreachable {
                        // The rest of this round would fail the same way.
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(w: &str) -> ProfileKey {
        ProfileKey {
            namespace: "ns".into(),
            workload: w.into(),
            container: "c".into(),
        }
    }

    fn fp(shape: u64, content: u64) -> Fingerprint {
        Fingerprint { shape, content }
    }

    #[test]
    fn writes_new_shapes_soon_and_new_counts_rarely() {
        let s = WriterSettings::new("n");
        let mut plan = WritePlan::default();
        let t0 = Instant::now();
        let k = key("w");
        assert!(
            plan.is_due(&k, fp(1, 1), t0, &s),
            "a new piece is due at once"
        );
        plan.wrote(&k, fp(1, 1), t0);
        assert!(
            !plan.is_due(&k, fp(1, 1), t0 + Duration::from_secs(3600), &s),
            "unchanged"
        );
        assert!(!plan.is_due(&k, fp(2, 2), t0 + Duration::from_secs(10), &s));
        assert!(plan.is_due(&k, fp(2, 2), t0 + s.min_interval, &s));
        assert!(!plan.is_due(&k, fp(1, 2), t0 + Duration::from_secs(60), &s));
        assert!(plan.is_due(&k, fp(1, 2), t0 + s.refresh, &s));
    }

    #[test]
    fn refused_content_is_not_sent_again_but_new_content_is() {
        let s = WriterSettings::new("n");
        let mut plan = WritePlan::default();
        let t0 = Instant::now();
        let k = key("w");
        plan.refused(&k, fp(1, 1));
        assert!(!plan.is_due(&k, fp(1, 1), t0, &s));
        assert!(plan.is_due(&k, fp(2, 2), t0, &s));
    }

    #[test]
    fn a_round_is_bounded_and_the_longest_waiting_go_first() {
        let mut s = WriterSettings::new("n");
        s.max_per_tick = 2;
        let mut plan = WritePlan::default();
        let t0 = Instant::now();
        let all = |names: &[&str]| -> Vec<(ProfileKey, Fingerprint, ())> {
            names.iter().map(|n| (key(n), fp(1, 1), ())).collect()
        };
        let (first, waiting) = plan.choose(all(&["c", "b", "a"]), t0, &s);
        assert_eq!(waiting, 1);
        let first: Vec<_> = first.into_iter().map(|(k, f, _)| (k, f)).collect();
        assert_eq!(
            first
                .iter()
                .map(|(k, _)| k.workload.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        for (k, f) in &first {
            plan.wrote(k, *f, t0);
        }
        // `c` waited since t0; a newcomer `0` (first by name) comes after it.
        let (second, waiting) = plan.choose(
            all(&["a", "b", "c", "0", "1"]),
            t0 + Duration::from_secs(10),
            &s,
        );
        assert_eq!(waiting, 1);
        let names: Vec<_> = second.iter().map(|(k, _, _)| k.workload.clone()).collect();
        assert_eq!(names, ["c", "0"]);
    }

    #[test]
    fn api_answers_are_classified() {
        let api = |code: u16| {
            kube::Error::Api(kube::core::ErrorResponse {
                status: "Failure".into(),
                message: "m".into(),
                reason: "r".into(),
                code,
            })
        };
        assert_eq!(failure(&api(403)), WriteFailure::Forbidden);
        assert_eq!(failure(&api(404)), WriteFailure::NoResource);
        assert_eq!(failure(&api(409)), WriteFailure::Transient);
        assert_eq!(failure(&api(413)), WriteFailure::Rejected);
        assert_eq!(failure(&api(422)), WriteFailure::Rejected);
        assert_eq!(failure(&api(503)), WriteFailure::Transient);
    }

    #[test]
    fn pieces_are_owned_by_their_workload() {
        let spec = crate::cluster::piece::piece_spec(
            &crate::profile::model::ApplicationProfile::new(
                key("web"),
                crate::attribution::workload::WorkloadKind::Deployment,
                60,
                crate::profile::model::Timestamp::UNIX_EPOCH,
            ),
            "node-a",
            NodeArch::X86_64,
            MAX_PIECE_BYTES,
        )
        .unwrap();
        let owner = OwnerRef {
            kind: "Deployment".into(),
            name: "web".into(),
            uid: "u1".into(),
        };
        let o = piece_object(&key("web"), spec, Some(&owner));
        assert_eq!(o.metadata.name.as_deref(), Some("web.c.node-a"));
        assert_eq!(o.metadata.namespace.as_deref(), Some("ns"));
        let refs = o.metadata.owner_references.clone().unwrap();
        assert_eq!(
            (refs[0].api_version.as_str(), refs[0].uid.as_str()),
            ("apps/v1", "u1")
        );
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(json["apiVersion"], "sensor.io/v1alpha1");
        assert_eq!(json["kind"], "ProfilePiece");
    }
}
