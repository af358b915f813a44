//! The merger: every sensor is a candidate for the Lease ([`super::lease`]); the one holding
//! it merges. Each round (a third of the lease duration) it lists every `ProfilePiece`, the
//! Nodes and the `WorkloadProfile`s, marks the pieces of nodes that are gone (`status`), and
//! server-side applies each workload container's merged profile when its content changed
//! (field manager `sensor/merger`, whoever leads: a new leader takes the objects over without
//! a conflict). A piece that does not parse, or that sits in another namespace than its
//! profile's, is skipped and counted, never a crash.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use k8s_openapi::api::{coordination::v1::Lease, core::v1::Node};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams},
};
use serde_json::json;
use tracing::{info, warn};

use super::{
    crd::{ProfilePiece, ProfilePieceStatus, WorkloadProfile, WorkloadProfileSpec},
    lease::Elector,
    merger::{Piece, group, merge_pieces, same_content},
    piece::{labels, merged_name, piece_name},
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

/// Runs until the process ends.
pub async fn run(client: Client, settings: LeaderSettings, status: Arc<ClusterStatus>) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let mut elector = Elector::new(leases, &settings.identity, settings.lease_duration);
    let mut tick = tokio::time::interval(settings.lease_duration / 3);
    let mut was_leading = false;
    let mut election_failing = false;
    let mut written: HashMap<(String, String), WorkloadProfileSpec> = HashMap::new();
    loop {
        tick.tick().await;
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
        if leading != was_leading {
            info!(
                identity = elector.identity(),
                leading, "cluster profiles: merger leadership changed"
            );
            written.clear();
            was_leading = leading;
        }
        status.leading.store(leading, Ordering::Relaxed);
        if leading {
            let started = Instant::now();
            if let Err(e) = merge_round(&client, &elector, &status, &mut written).await {
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
    written: &mut HashMap<(String, String), WorkloadProfileSpec>,
) -> Result<(), kube::Error> {
    let piece_resource = ApiResource::erase::<ProfilePiece>(&());
    let dynamic: Api<DynamicObject> = Api::all_with(client.clone(), &piece_resource);
    let listed = dynamic.list(&ListParams::default()).await?;
    let mut pieces = Vec::new();
    let mut skipped = 0u64;
    for o in listed.items {
        let parsed = serde_json::to_value(&o)
            .ok()
            .and_then(|v| serde_json::from_value::<ProfilePiece>(v).ok());
        match parsed {
            Some(p) if is_own(&p) => pieces.push(p),
            _ => skipped += 1,
        }
    }
    status.pieces_skipped.store(skipped, Ordering::Relaxed);

    // Nodes that are gone: their pieces are marked (a 403 on nodes leaves marks as they are).
    let nodes: Option<BTreeSet<String>> = Api::<Node>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .ok()
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .collect()
        });
    if let Some(nodes) = &nodes {
        for p in &mut pieces {
            let gone = !nodes.contains(&p.spec.node);
            let marked = p.status.as_ref().is_some_and(|s| s.node_gone);
            if gone != marked && elector.is_leading() {
                let new = ProfilePieceStatus {
                    node_gone: gone,
                    node_gone_seen: gone.then(Timestamp::now),
                };
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let name = p.metadata.name.clone().unwrap_or_default();
                let patch = json!({"apiVersion": "sensor.io/v1alpha1", "kind": "ProfilePiece",
                    "metadata": {"name": name}, "status": new});
                Api::<ProfilePiece>::namespaced(client.clone(), &ns)
                    .patch_status(
                        &name,
                        &PatchParams::apply(MANAGER).force(),
                        &Patch::Apply(&patch),
                    )
                    .await?;
                p.status = Some(new);
            }
        }
    }

    let owners: HashMap<ProfileKey, _> = pieces
        .iter()
        .filter_map(|p| {
            p.metadata
                .owner_references
                .clone()
                .map(|o| (p.spec.profile.key.clone(), o))
        })
        .collect();
    let groups = group(pieces.iter().map(Piece::of).collect());
    let now = Timestamp::now();
    let mut merged_count = 0u64;
    for (key, group) in groups {
        let spec = match merge_pieces(&group, elector.identity(), now) {
            Ok(s) => s,
            Err(e) => {
                status.merge_conflicts.fetch_add(1, Ordering::Relaxed);
                warn!("cluster profiles: pieces of {key} not merged: {e}");
                continue;
            }
        };
        merged_count += 1;
        let id = (key.namespace.clone(), merged_name(&key));
        if written.get(&id).is_some_and(|w| same_content(w, &spec)) {
            continue;
        }
        let api: Api<WorkloadProfile> = Api::namespaced(client.clone(), &key.namespace);
        if written.get(&id).is_none()
            && let Ok(Some(existing)) = api.get_opt(&id.1).await
            && same_content(&existing.spec, &spec)
        {
            written.insert(id, existing.spec);
            continue;
        }
        if !elector.is_leading() {
            return Ok(());
        }
        let mut object = WorkloadProfile::new(&id.1, spec.clone());
        object.metadata = ObjectMeta {
            name: Some(id.1.clone()),
            namespace: Some(key.namespace.clone()),
            labels: Some(labels(&key, None)),
            owner_references: owners.get(&key).cloned(),
            ..ObjectMeta::default()
        };
        api.patch(
            &id.1,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await?;
        status.merges_written.fetch_add(1, Ordering::Relaxed);
        let lag = now.duration_since(group.iter().map(|p| p.profile.updated).max().unwrap_or(now));
        status
            .merge_lag_ms
            .store(lag.as_millis() as u64, Ordering::Relaxed);
        written.insert(id, spec);
    }
    status
        .workloads_merged
        .store(merged_count, Ordering::Relaxed);
    Ok(())
}

/// A piece this sensor wrote: in its profile's namespace, under its own name.
fn is_own(p: &ProfilePiece) -> bool {
    let key = &p.spec.profile.key;
    p.metadata.namespace.as_deref() == Some(key.namespace.as_str())
        && p.metadata.name.as_deref() == Some(piece_name(key, &p.spec.node).as_str())
}
