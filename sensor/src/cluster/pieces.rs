//! The merger's view of every `ProfilePiece`, fed by a watch (list once, then changes), so a
//! round merges only the workload containers whose pieces changed instead of re-listing every
//! piece of the cluster. Pure bookkeeping: the leader task feeds it watch events.

use std::collections::{BTreeSet, HashMap};

use super::{crd::ProfilePiece, piece::piece_name};
use crate::profile::model::ProfileKey;

/// (namespace, name) of an object.
pub type ObjectId = (String, String);

#[derive(Debug, Default)]
pub struct PieceCache {
    pieces: HashMap<ObjectId, ProfilePiece>,
    by_key: HashMap<ProfileKey, BTreeSet<ObjectId>>,
    /// Objects seen by the relist in progress, if one is.
    relisting: Option<BTreeSet<ObjectId>>,
    /// Keys whose pieces changed since [`PieceCache::take_dirty`].
    dirty: BTreeSet<ProfileKey>,
    /// Objects that are not pieces of this sensor (unparsable, foreign), by id.
    skipped: BTreeSet<ObjectId>,
}

fn id_of(o: &kube::api::DynamicObject) -> ObjectId {
    (
        o.metadata.namespace.clone().unwrap_or_default(),
        o.metadata.name.clone().unwrap_or_default(),
    )
}

/// A piece this sensor wrote: in its profile's namespace, under its own name.
fn is_own(p: &ProfilePiece) -> bool {
    let key = &p.spec.profile.key;
    p.metadata.namespace.as_deref() == Some(key.namespace.as_str())
        && p.metadata.name.as_deref() == Some(piece_name(key, &p.spec.node).as_str())
}

impl PieceCache {
    pub fn clear(&mut self) {
        *self = PieceCache::default();
    }

    /// A relist starts (the watch's `Init`).
    pub fn begin_relist(&mut self) {
        self.relisting = Some(BTreeSet::new());
    }

    /// The relist is complete: what it did not contain is gone.
    pub fn end_relist(&mut self) {
        if let Some(seen) = self.relisting.take() {
            let gone: Vec<ObjectId> = self
                .pieces
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
        let parsed = serde_json::to_value(o)
            .ok()
            .and_then(|v| serde_json::from_value::<ProfilePiece>(v).ok())
            .filter(is_own);
        match parsed {
            Some(p) => {
                self.skipped.remove(&id);
                let key = p.spec.profile.key.clone();
                if let Some(old) = self.pieces.get(&id)
                    && old.spec.profile.key != key
                {
                    let old_key = old.spec.profile.key.clone();
                    self.unindex(&old_key, &id);
                }
                self.by_key
                    .entry(key.clone())
                    .or_default()
                    .insert(id.clone());
                self.pieces.insert(id, p);
                self.dirty.insert(key);
            }
            None => {
                self.remove(&id);
                self.skipped.insert(id);
            }
        }
    }

    /// An object deleted.
    pub fn delete(&mut self, o: &kube::api::DynamicObject) {
        let id = id_of(o);
        self.skipped.remove(&id);
        self.remove(&id);
    }

    fn remove(&mut self, id: &ObjectId) {
        if let Some(old) = self.pieces.remove(id) {
            let key = old.spec.profile.key;
            self.unindex(&key, id);
            self.dirty.insert(key);
        }
    }

    fn unindex(&mut self, key: &ProfileKey, id: &ObjectId) {
        if let Some(ids) = self.by_key.get_mut(key) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_key.remove(key);
            }
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

    /// The pieces of `key` (none: every piece of it was deleted).
    pub fn of(&self, key: &ProfileKey) -> Vec<&ProfilePiece> {
        self.by_key
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|id| self.pieces.get(id))
            .collect()
    }

    pub fn all(&self) -> impl Iterator<Item = &ProfilePiece> {
        self.pieces.values()
    }

    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
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

    fn object(ns: &str, name: &str, node: &str, workload: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "sensor.io/v1alpha1", "kind": "ProfilePiece",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"node": node, "architecture": "x86_64",
                "summary": {"status": "learning", "completeness": "full", "nodes": 1,
                            "syscalls": 0, "execs": 0, "egress": 0},
                "profile": {"version": 2, "namespace": "shop", "workload": workload,
                    "container": "app", "workloadKind": "deployment", "status": "learning",
                    "completeness": "full", "learningStarted": "2026-12-01T00:00:00Z",
                    "learningPeriodSeconds": 60, "updated": "2026-12-01T00:00:00Z",
                    "syscalls": {"native": []}}}
        }))
        .unwrap()
    }

    fn key(workload: &str) -> ProfileKey {
        ProfileKey {
            namespace: "shop".into(),
            workload: workload.into(),
            container: "app".into(),
        }
    }

    #[test]
    fn changes_mark_their_workload_and_bad_objects_are_skipped() {
        let mut c = PieceCache::default();
        c.begin_relist();
        c.apply(&object("shop", "web.app.a", "a", "web"));
        c.apply(&object("shop", "web.app.b", "b", "web"));
        c.apply(&object("shop", "api.app.a", "a", "api"));
        // Foreign: another namespace than its profile's; misnamed: not the name it would have.
        c.apply(&object("other", "web.app.a", "a", "web"));
        c.apply(&object("shop", "whatever", "a", "web"));
        c.end_relist();
        assert_eq!(c.len(), 3);
        assert_eq!(c.skipped(), 2);
        assert_eq!(c.take_dirty(), BTreeSet::from([key("api"), key("web")]));
        assert_eq!(c.of(&key("web")).len(), 2);
        assert!(c.take_dirty().is_empty());
        c.apply(&object("shop", "web.app.a", "a", "web"));
        assert_eq!(c.take_dirty(), BTreeSet::from([key("web")]));
        c.delete(&object("shop", "web.app.b", "b", "web"));
        assert_eq!(c.of(&key("web")).len(), 1);
        assert_eq!(c.take_dirty(), BTreeSet::from([key("web")]));
    }

    #[test]
    fn a_relist_drops_what_it_no_longer_contains() {
        let mut c = PieceCache::default();
        c.apply(&object("shop", "web.app.a", "a", "web"));
        c.apply(&object("shop", "api.app.a", "a", "api"));
        c.take_dirty();
        c.begin_relist();
        c.apply(&object("shop", "web.app.a", "a", "web"));
        c.end_relist();
        assert_eq!(c.len(), 1);
        assert!(c.of(&key("api")).is_empty());
        assert!(c.take_dirty().contains(&key("api")));
    }
}
