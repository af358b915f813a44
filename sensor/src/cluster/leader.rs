//! The merger: every sensor is a candidate for the Lease ([`super::lease`]); the one holding
//! it merges. While leading it watches every `ProfilePiece` into a cache
//! ([`super::pieces`]: one list, then changes), and each round (a third of the lease duration)
//! lists the Nodes' names, marks the pieces of nodes that are gone (`status`), and merges only
//! the workload containers whose pieces changed; it server-side applies a merged profile when
//! its content changed (field manager `sensor/merger`, whoever leads: a new leader takes the
//! objects over without a conflict). A piece that does not parse, or that is not where its
//! writer puts it, is skipped and counted, never a crash. Losing the lease drops the cache
//! and the watch.

use std::{
    collections::{BTreeSet, HashMap},
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use k8s_openapi::api::{coordination::v1::Lease, core::v1::Node};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use tokio_stream::{Stream, StreamExt};
use tracing::{info, warn};

use super::{
    crd::{ProfilePiece, ProfilePieceStatus, WorkloadProfile, WorkloadProfileSpec},
    lease::Elector,
    merger::same_content,
    piece::{labels, merged_name},
    pieces::{PieceCache, parse},
    status::ClusterStatus,
};
use crate::profile::model::{ProfileKey, Timestamp};

/// The merger's field manager, the same for every leader.
pub const MANAGER: &str = "sensor/merger";

#[derive(Debug, Clone)]
pub struct LeaderSettings {
    /// This candidate's identity in the Lease (the node name: one sensor per node).
    pub identity: String,
    /// Where the Lease lives: the sensor's own namespace.
    pub namespace: String,
    pub lease_duration: Duration,
}

type PieceStream =
    Pin<Box<dyn Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Send>>;

/// What a leader keeps between rounds; dropped when leadership is lost.
#[derive(Default)]
struct Leading {
    cache: PieceCache,
    /// Merged specs as written (or found), by (namespace, name).
    written: HashMap<(String, String), WorkloadProfileSpec>,
    /// Whether the existing merged profiles were read since leadership began.
    seeded: bool,
    /// The watch has delivered its first complete list.
    listed: bool,
}

/// Runs until `stop` fires (a clean stop: the lease is released, so another node takes over
/// at once) or the process ends.
pub async fn run(
    client: Client,
    settings: LeaderSettings,
    status: Arc<ClusterStatus>,
    mut stop: tokio::sync::oneshot::Receiver<tokio::sync::oneshot::Sender<()>>,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let mut elector = Elector::new(leases, &settings.identity, settings.lease_duration);
    let mut tick = tokio::time::interval(settings.lease_duration / 3);
    let mut election_failing = false;
    let mut state: Option<Leading> = None;
    let mut pieces: Option<PieceStream> = None;
    let mut watch_failing = false;
    loop {
        tokio::select! {
            done = &mut stop => {
                match elector.release().await {
                    Ok(true) => info!("cluster profiles: merger lease released"),
                    Ok(false) => {}
                    Err(e) => warn!("cluster profiles: could not release the merger lease ({e}); another node takes over when it expires"),
                }
                status.leading.store(false, Ordering::Relaxed);
                if let Ok(done) = done {
                    let _ = done.send(());
                }
                return;
            }
            _ = tick.tick() => {}
            item = async { pieces.as_mut().expect("a watch").next().await }, if pieces.is_some() => {
                let Some(leading) = state.as_mut() else { continue };
                match item {
                    Some(Ok(watcher::Event::Init)) => leading.cache.begin_relist(),
                    Some(Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o))) => {
                        leading.cache.apply(&o)
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        leading.cache.end_relist();
                        leading.listed = true;
                        watch_failing = false;
                    }
                    Some(Ok(watcher::Event::Delete(o))) => leading.cache.delete(&o),
                    Some(Err(e)) => {
                        if !watch_failing {
                            warn!("cluster profiles: watching pieces failed ({e}); retrying");
                            watch_failing = true;
                        }
                    }
                    None => pieces = None,
                }
                continue;
            }
        }
        match elector.round().await {
            Ok(holder) => {
                election_failing = false;
                *status.leader.lock().unwrap_or_else(|e| e.into_inner()) = holder;
            }
            Err(e) => {
                if !election_failing {
                    warn!(
                        namespace = settings.namespace,
                        "cluster profiles: leader election failed ({e}); merging waits (needs get/create/update on leases of API group coordination.k8s.io in the sensor's namespace)"
                    );
                    election_failing = true;
                }
                status.election_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        let leading = elector.is_leading();
        if leading != state.is_some() {
            info!(
                identity = elector.identity(),
                leading, "cluster profiles: merger leadership changed"
            );
            if leading {
                state = Some(Leading::default());
                let resource = ApiResource::erase::<ProfilePiece>(&());
                let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
                pieces = Some(Box::pin(
                    watcher(api, watcher::Config::default()).default_backoff(),
                ));
            } else {
                state = None;
                pieces = None;
            }
        }
        status.leading.store(leading, Ordering::Relaxed);
        if let Some(leading) = state.as_mut().filter(|l| l.listed) {
            let started = Instant::now();
            if let Err(e) = merge_round(&client, &elector, &status, leading).await {
                warn!("cluster profiles: merge round failed ({e}); retried next round");
                status.merge_failures.fetch_add(1, Ordering::Relaxed);
            }
            status
                .merge_round_ms
                .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }
}

async fn merge_round(
    client: &Client,
    elector: &Elector,
    status: &ClusterStatus,
    leading: &mut Leading,
) -> Result<(), kube::Error> {
    status
        .pieces_skipped
        .store(leading.cache.skipped() as u64, Ordering::Relaxed);
    status
        .pieces_known
        .store(leading.cache.len() as u64, Ordering::Relaxed);
    if !leading.seeded {
        let existing: Api<WorkloadProfile> = Api::all(client.clone());
        for w in existing.list(&ListParams::default()).await?.items {
            let id = (
                w.metadata.namespace.clone().unwrap_or_default(),
                w.metadata.name.clone().unwrap_or_default(),
            );
            leading.written.insert(id, w.spec);
        }
        leading.seeded = true;
    }
    mark_gone_nodes(client, elector, leading).await?;

    let dirty = leading.cache.take_dirty();
    let now = Timestamp::now();
    let mut merged = 0u64;
    let mut failed: Option<kube::Error> = None;
    for key in &dirty {
        if failed.is_some() || !elector.is_leading() {
            leading.cache.mark_dirty(key.clone());
            continue;
        }
        match merge_one(client, elector, status, leading, key, now).await {
            Ok(wrote) => merged += u64::from(wrote),
            Err(e) => {
                leading.cache.mark_dirty(key.clone());
                failed = Some(e);
            }
        }
    }
    status.workloads_merged.store(merged, Ordering::Relaxed);
    failed.map_or(Ok(()), Err)
}

/// Pieces of nodes that are gone get `status.nodeGone` (and back when a node of that name
/// returns). A 403 on nodes leaves the marks as they are.
async fn mark_gone_nodes(
    client: &Client,
    elector: &Elector,
    leading: &mut Leading,
) -> Result<(), kube::Error> {
    let Ok(listed) = Api::<Node>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
    else {
        return Ok(());
    };
    let nodes: BTreeSet<String> = listed
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    let changes: Vec<(String, String, bool)> = leading
        .cache
        .contributions()
        .filter_map(|((ns, name), c)| {
            let gone = !nodes.contains(&c.node);
            (gone != c.node_gone).then(|| (ns.clone(), name.clone(), gone))
        })
        .collect();
    for (ns, name, gone) in changes {
        if !elector.is_leading() {
            break;
        }
        let new = ProfilePieceStatus {
            node_gone: gone,
            node_gone_seen: gone.then(Timestamp::now),
        };
        let patch = json!({"apiVersion": "sensor.io/v1alpha1", "kind": "ProfilePiece",
            "metadata": {"name": name}, "status": new});
        // The watch brings the marked piece back, which re-merges its workload.
        Api::<ProfilePiece>::namespaced(client.clone(), &ns)
            .patch_status(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
    }
    Ok(())
}

/// Merges `key`'s pieces and writes the result if its content changed. Returns whether it
/// wrote.
async fn merge_one(
    client: &Client,
    elector: &Elector,
    status: &ClusterStatus,
    leading: &mut Leading,
    key: &ProfileKey,
    now: Timestamp,
) -> Result<bool, kube::Error> {
    if leading.cache.workload(key).is_some_and(|w| w.stale) {
        // Evidence was lost (a relearn, a deleted piece): read this workload's pieces again.
        let selector = labels(key, None)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            &key.namespace,
            &ApiResource::erase::<ProfilePiece>(&()),
        );
        let listed = api.list(&ListParams::default().labels(&selector)).await?;
        let pieces: Vec<ProfilePiece> = listed.items.iter().filter_map(parse).collect();
        leading.cache.rebuild(key, &pieces);
        status.workload_rebuilds.fetch_add(1, Ordering::Relaxed);
    }
    status
        .merge_conflicts
        .store(leading.cache.conflicts, Ordering::Relaxed);
    let Some(w) = leading.cache.workload(key) else {
        // Every piece was deleted (with the workload, by the garbage collector): the merged
        // profile goes the same way through its owner reference.
        return Ok(false);
    };
    let owners = w.owners.clone();
    let contributions: Vec<_> = w.pieces.values().cloned().collect();
    let Some(spec) = w.evidence.finish(&contributions, elector.identity(), now) else {
        return Ok(false);
    };
    let newest = contributions.iter().map(|c| c.updated).max().unwrap_or(now);
    let id = (key.namespace.clone(), merged_name(key));
    if leading
        .written
        .get(&id)
        .is_some_and(|w| same_content(w, &spec))
    {
        return Ok(false);
    }
    let mut object = WorkloadProfile::new(&id.1, spec.clone());
    object.metadata = ObjectMeta {
        name: Some(id.1.clone()),
        namespace: Some(key.namespace.clone()),
        labels: Some(labels(key, None)),
        owner_references: owners,
        ..ObjectMeta::default()
    };
    Api::<WorkloadProfile>::namespaced(client.clone(), &key.namespace)
        .patch(
            &id.1,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await?;
    status.merges_written.fetch_add(1, Ordering::Relaxed);
    status.merge_lag_ms.store(
        now.duration_since(newest).as_millis() as u64,
        Ordering::Relaxed,
    );
    leading.written.insert(id, spec);
    Ok(true)
}
