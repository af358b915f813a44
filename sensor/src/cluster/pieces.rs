//! The merger's view of every `ProfilePiece`, fed by a watch (list once, then changes), kept
//! small enough for tens of thousands of pieces: per workload container the merged evidence
//! (an [`Accumulator`]) and per piece only its state (a [`Contribution`]); a piece is parsed,
//! added to its accumulator and dropped. Pieces only grow while a node learns, so a newer
//! snapshot merged into the accumulator gives what merging everything again would (`merge` is
//! idempotent). When a piece loses evidence (its node relearned the workload: a later
//! `learningStarted`) or goes away, its workload is marked *stale*: the leader re-reads that
//! workload's pieces by label and rebuilds it. Pure bookkeeping: the leader feeds it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::{
    crd::ProfilePiece,
    merger::{Accumulator, Contribution, Piece},
    piece::piece_name,
};
use crate::profile::model::ProfileKey;

/// (namespace, name) of an object.
pub type ObjectId = (String, String);

#[derive(Debug, Default)]
pub struct Workload {
    pub evidence: Accumulator,
    pub pieces: BTreeMap<ObjectId, Contribution>,
    pub owners: Option<Vec<OwnerReference>>,
    /// Evidence was lost: rebuild from a fresh read of the workload's pieces.
    pub stale: bool,
}

#[derive(Debug, Default)]
pub struct PieceCache {
    workloads: HashMap<ProfileKey, Workload>,
    key_of: HashMap<ObjectId, ProfileKey>,
    /// Objects seen by the relist in progress, if one is.
    relisting: Option<BTreeSet<ObjectId>>,
    /// Keys whose pieces changed since [`PieceCache::take_dirty`].
    dirty: BTreeSet<ProfileKey>,
    /// Objects that are not pieces of this sensor (unparsable, foreign), by id.
    skipped: BTreeSet<ObjectId>,
    /// Pieces whose evidence could not be merged (e.g. no shared label with the others).
    pub conflicts: u64,
}

fn id_of(o: &kube::api::DynamicObject) -> ObjectId {
    (
        o.metadata.namespace.clone().unwrap_or_default(),
        o.metadata.name.clone().unwrap_or_default(),
    )
}

/// A piece this sensor wrote: in its profile's namespace, under its own name.
pub fn is_own(p: &ProfilePiece) -> bool {
    let key = &p.spec.profile.key;
    p.metadata.namespace.as_deref() == Some(key.namespace.as_str())
        && p.metadata.name.as_deref() == Some(piece_name(key, &p.spec.node).as_str())
}

/// The piece in `o`, if it is one of this sensor's.
pub fn parse(o: &kube::api::DynamicObject) -> Option<ProfilePiece> {
    serde_json::to_value(o)
        .ok()
        .and_then(|v| serde_json::from_value::<ProfilePiece>(v).ok())
        .filter(is_own)
}

impl PieceCache {
    /// A relist starts (the watch's `Init`).
    pub fn begin_relist(&mut self) {
        self.relisting = Some(BTreeSet::new());
    }

    /// The relist is complete: what it did not contain is gone.
    pub fn end_relist(&mut self) {
        if let Some(seen) = self.relisting.take() {
            let gone: Vec<ObjectId> = self
                .key_of
                .keys()
                .filter(|id| !seen.contains(*id))
                .cloned()
                .collect();
            for id in gone {
                self.remove(&id);
            }
            self.skipped.retain(|id| seen.contains(id));
        }
    }

    /// An object added or changed.
    pub fn apply(&mut self, o: &kube::api::DynamicObject) {
        let id = id_of(o);
        if let Some(seen) = self.relisting.as_mut() {
            seen.insert(id.clone());
        }
        match parse(o) {
            Some(p) => {
                self.skipped.remove(&id);
                self.add(id, &p);
            }
            None => {
                self.remove(&id);
                self.skipped.insert(id);
            }
        }
    }

    fn add(&mut self, id: ObjectId, p: &ProfilePiece) {
        let piece = Piece::of(p);
        let key = piece.profile.key.clone();
        if let Some(old_key) = self.key_of.get(&id).cloned()
            && old_key != key
        {
            self.remove(&id);
        }
        let w = self.workloads.entry(key.clone()).or_default();
        let contribution = piece.contribution();
        if w.pieces
            .get(&id)
            .is_some_and(|old| old.learning_started != contribution.learning_started)
        {
            // The node relearned: what it knew before is not evidence any more.
            w.stale = true;
        }
        if !w.stale && w.evidence.add(&piece.architecture, &piece.profile).is_err() {
            self.conflicts += 1;
        }
        if w.owners.is_none() {
            w.owners = p.metadata.owner_references.clone();
        }
        w.pieces.insert(id.clone(), contribution);
        self.key_of.insert(id, key.clone());
        self.dirty.insert(key);
    }

    /// An object deleted.
    pub fn delete(&mut self, o: &kube::api::DynamicObject) {
        let id = id_of(o);
        self.skipped.remove(&id);
        self.remove(&id);
    }

    fn remove(&mut self, id: &ObjectId) {
        let Some(key) = self.key_of.remove(id) else {
            return;
        };
        if let Some(w) = self.workloads.get_mut(&key) {
            w.pieces.remove(id);
            if w.pieces.is_empty() {
                self.workloads.remove(&key);
            } else {
                // Its evidence is in the accumulator: only a rebuild takes it out.
                w.stale = true;
            }
        }
        self.dirty.insert(key);
    }

    /// Replaces `key`'s evidence with `pieces` (a fresh read of all of its pieces).
    pub fn rebuild(&mut self, key: &ProfileKey, pieces: &[ProfilePiece]) {
        let ids: Vec<ObjectId> = self
            .key_of
            .iter()
            .filter(|(_, k)| *k == key)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.key_of.remove(id);
        }
        self.workloads.remove(key);
        for p in pieces
            .iter()
            .filter(|p| is_own(p) && p.spec.profile.key == *key)
        {
            let id = (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            );
            self.add(id, p);
        }
    }

    /// The keys whose pieces changed since the last call.
    pub fn take_dirty(&mut self) -> BTreeSet<ProfileKey> {
        std::mem::take(&mut self.dirty)
    }

    /// Marks `key` changed again (its merge failed and is to be retried).
    pub fn mark_dirty(&mut self, key: ProfileKey) {
        self.dirty.insert(key);
    }

    pub fn workload(&self, key: &ProfileKey) -> Option<&Workload> {
        self.workloads.get(key)
    }

    /// Every piece's (id, state).
    pub fn contributions(&self) -> impl Iterator<Item = (&ObjectId, &Contribution)> {
        self.workloads.values().flat_map(|w| w.pieces.iter())
    }

    pub fn len(&self) -> usize {
        self.key_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.key_of.is_empty()
    }

    pub fn skipped(&self) -> usize {
        self.skipped.len()
    }
}

#[cfg(test)]
mod tests {
    use kube::api::DynamicObject;
    use serde_json::json;

    use super::*;

    fn object(ns: &str, name: &str, node: &str, workload: &str, started: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "sensor.io/v1alpha1", "kind": "ProfilePiece",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"node": node, "architecture": "x86_64",
                "summary": {"status": "learning", "completeness": "full", "nodes": 1,
                            "syscalls": 0, "execs": 0, "egress": 0},
                "profile": {"version": 2, "namespace": "shop", "workload": workload,
                    "container": "app", "workloadKind": "deployment", "status": "learning",
                    "completeness": "full", "learningStarted": started,
                    "learningPeriodSeconds": 60, "updated": started,
                    "syscalls": {"native": [format!("only_{node}")]}}}
        }))
        .unwrap()
    }

    const T0: &str = "2026-12-01T00:00:00Z";
    const T1: &str = "2026-12-02T00:00:00Z";

    fn key(workload: &str) -> ProfileKey {
        ProfileKey {
            namespace: "shop".into(),
            workload: workload.into(),
            container: "app".into(),
        }
    }

    fn syscalls(c: &PieceCache, w: &str) -> Vec<String> {
        let spec = c
            .workload(&key(w))
            .unwrap()
            .evidence
            .finish(&[], "m", crate::profile::model::Timestamp::lit(T1))
            .unwrap();
        spec.profile.syscalls.native
    }

    #[test]
    fn changes_mark_their_workload_and_bad_objects_are_skipped() {
        let mut c = PieceCache::default();
        c.begin_relist();
        c.apply(&object("shop", "web.app.a", "a", "web", T0));
        c.apply(&object("shop", "web.app.b", "b", "web", T0));
        c.apply(&object("shop", "api.app.a", "a", "api", T0));
        // Foreign: another namespace than its profile's; misnamed: not the name it would have.
        c.apply(&object("other", "web.app.a", "a", "web", T0));
        c.apply(&object("shop", "whatever", "a", "web", T0));
        c.end_relist();
        assert_eq!(c.len(), 3);
        assert_eq!(c.skipped(), 2);
        assert_eq!(c.take_dirty(), BTreeSet::from([key("api"), key("web")]));
        assert_eq!(c.workload(&key("web")).unwrap().pieces.len(), 2);
        assert_eq!(syscalls(&c, "web"), ["only_a", "only_b"]);
        assert!(c.take_dirty().is_empty());
        // A newer snapshot of a piece: merged in, nothing stale.
        c.apply(&object("shop", "web.app.a", "a", "web", T0));
        assert_eq!(c.take_dirty(), BTreeSet::from([key("web")]));
        assert!(!c.workload(&key("web")).unwrap().stale);
        // A deleted piece: its evidence must go, so the workload is rebuilt.
        c.delete(&object("shop", "web.app.b", "b", "web", T0));
        assert!(c.workload(&key("web")).unwrap().stale);
        assert_eq!(c.take_dirty(), BTreeSet::from([key("web")]));
    }

    #[test]
    fn a_relearned_piece_makes_its_workload_stale_and_a_rebuild_drops_the_old_evidence() {
        let mut c = PieceCache::default();
        c.apply(&object("shop", "web.app.a", "a", "web", T0));
        c.apply(&object("shop", "web.app.a", "a", "web", T1));
        assert!(c.workload(&key("web")).unwrap().stale);
        let fresh: ProfilePiece = parse(&object("shop", "web.app.b", "b", "web", T1)).unwrap();
        c.rebuild(&key("web"), &[fresh]);
        let w = c.workload(&key("web")).unwrap();
        assert!(!w.stale);
        assert_eq!(w.pieces.len(), 1);
        assert_eq!(syscalls(&c, "web"), ["only_b"]);
    }

    #[test]
    fn a_relist_drops_what_it_no_longer_contains() {
        let mut c = PieceCache::default();
        c.apply(&object("shop", "web.app.a", "a", "web", T0));
        c.apply(&object("shop", "api.app.a", "a", "api", T0));
        c.take_dirty();
        c.begin_relist();
        c.apply(&object("shop", "web.app.a", "a", "web", T0));
        c.end_relist();
        assert_eq!(c.len(), 1);
        assert!(c.workload(&key("api")).is_none());
        assert!(c.take_dirty().contains(&key("api")));
    }
}
