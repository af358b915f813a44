//! The agent's profiles in memory, shared by the learner (writes) and the gRPC API (reads),
//! with a dirty mark per profile so only what changed is written to disk.

use std::collections::{BTreeMap, HashSet};

use crate::{
    attribution::workload::WorkloadKind,
    profile::model::{ApplicationProfile, ProfileKey, Timestamp},
};

/// Why a profile is partial when its first container predates the sensor.
pub const PARTIAL_PREEXISTING: &str =
    "a container started before the sensor: its start-up was not observed";

struct Slot {
    profile: ApplicationProfile,
    dirty: bool,
}

pub struct ProfileStore {
    profiles: BTreeMap<ProfileKey, Slot>,
    /// Profiles restored from the state dir: learning continues, their containers' earlier
    /// life was observed by the previous run.
    restored: HashSet<ProfileKey>,
    learning_period_seconds: u64,
}

impl ProfileStore {
    pub fn new(learning_period_seconds: u64, restored: Vec<ApplicationProfile>) -> Self {
        let keys = restored.iter().map(|p| p.key.clone()).collect();
        Self {
            profiles: restored
                .into_iter()
                .map(|p| {
                    (
                        p.key.clone(),
                        Slot {
                            profile: p,
                            dirty: false,
                        },
                    )
                })
                .collect(),
            restored: keys,
            learning_period_seconds,
        }
    }

    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// Applies `f` to the profile of `key`, creating it (learning from `now`) on first sight.
    /// A profile first seen from a container that predates the sensor, and not restored from
    /// the state dir, is partial.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        key: &ProfileKey,
        kind: WorkloadKind,
        now: Timestamp,
        preexisting: bool,
        pod: &str,
        node: &str,
        f: impl FnOnce(&mut ApplicationProfile) -> bool,
    ) {
        let restored = self.restored.contains(key);
        let period = self.learning_period_seconds;
        let slot = self.profiles.entry(key.clone()).or_insert_with(|| {
            let mut profile = ApplicationProfile::new(key.clone(), kind, period, now);
            if preexisting && !restored {
                profile.mark_partial(PARTIAL_PREEXISTING, now);
            }
            tracing::info!(profile = %key, "learning a new profile");
            Slot {
                profile,
                dirty: true,
            }
        });
        let mut changed = false;
        if !pod.is_empty() {
            changed |= slot.profile.add_pod(pod, node, now);
        }
        changed |= f(&mut slot.profile);
        slot.dirty |= changed;
    }

    /// Applies `f` to an existing profile only.
    pub fn update_existing(
        &mut self,
        key: &ProfileKey,
        f: impl FnOnce(&mut ApplicationProfile) -> bool,
    ) {
        if let Some(slot) = self.profiles.get_mut(key) {
            slot.dirty |= f(&mut slot.profile);
        }
    }

    /// Moves profiles whose learning period is over to `ready`.
    pub fn advance(&mut self, now: Timestamp) -> Vec<ProfileKey> {
        let mut ready = Vec::new();
        for (key, slot) in &mut self.profiles {
            if slot.profile.advance(now) {
                slot.dirty = true;
                tracing::info!(profile = %key, "profile ready");
                ready.push(key.clone());
            }
        }
        ready
    }

    /// Copies of the changed profiles; their marks are cleared.
    pub fn take_dirty(&mut self) -> Vec<ApplicationProfile> {
        self.profiles
            .values_mut()
            .filter(|s| s.dirty)
            .map(|s| {
                s.dirty = false;
                s.profile.clone()
            })
            .collect()
    }

    /// Marks a profile dirty again (its write failed).
    pub fn mark_dirty(&mut self, key: &ProfileKey) {
        if let Some(s) = self.profiles.get_mut(key) {
            s.dirty = true;
        }
    }

    pub fn get(&self, key: &ProfileKey) -> Option<&ApplicationProfile> {
        self.profiles.get(key).map(|s| &s.profile)
    }

    pub fn visit(&self, f: &mut dyn FnMut(&ApplicationProfile)) {
        for slot in self.profiles.values() {
            f(&slot.profile);
        }
    }

    pub fn snapshot(&self) -> Vec<ApplicationProfile> {
        self.profiles.values().map(|s| s.profile.clone()).collect()
    }

    /// Restarts learning for every container of a workload; returns the profiles restarted.
    pub fn relearn(&mut self, namespace: &str, workload: &str, now: Timestamp) -> Vec<ProfileKey> {
        let mut keys = Vec::new();
        for (key, slot) in &mut self.profiles {
            if key.namespace == namespace && key.workload == workload {
                slot.profile.relearn(now);
                slot.dirty = true;
                keys.push(key.clone());
            }
        }
        keys
    }

    /// Runs `f` on one profile and marks it dirty when it returns true; `None` when there is no
    /// profile for `key`.
    pub fn with_profile<R>(
        &mut self,
        key: &ProfileKey,
        f: impl FnOnce(&mut ApplicationProfile) -> (bool, R),
    ) -> Option<R> {
        let slot = self.profiles.get_mut(key)?;
        let (changed, r) = f(&mut slot.profile);
        slot.dirty |= changed;
        Some(r)
    }

    /// All profiles of one workload (its containers).
    pub fn workload(&self, namespace: &str, workload: &str) -> Vec<ApplicationProfile> {
        self.profiles
            .values()
            .filter(|s| s.profile.key.namespace == namespace && s.profile.key.workload == workload)
            .map(|s| s.profile.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::model::{Completeness, Status};

    const T0: Timestamp = Timestamp::lit("2026-11-26T00:00:00Z");

    fn key(c: &str) -> ProfileKey {
        ProfileKey {
            namespace: "ns".into(),
            workload: "web".into(),
            container: c.into(),
        }
    }

    #[test]
    fn replicas_share_a_profile_and_dirty_marks_track_changes() {
        let mut s = ProfileStore::new(60, Vec::new());
        s.update(
            &key("app"),
            WorkloadKind::Deployment,
            T0,
            false,
            "web-1",
            "n1",
            |p| p.record_file("/etc/shadow", "/etc/shadow", T0),
        );
        s.update(
            &key("app"),
            WorkloadKind::Deployment,
            T0,
            false,
            "web-2",
            "n1",
            |_| false,
        );
        assert_eq!(s.len(), 1);
        let dirty = s.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert_eq!(
            dirty[0].pods,
            vec!["web-1".to_string(), "web-2".to_string()]
        );
        assert!(s.take_dirty().is_empty());
        s.update(
            &key("app"),
            WorkloadKind::Deployment,
            T0,
            false,
            "web-1",
            "n1",
            |_| false,
        );
        assert!(s.take_dirty().is_empty(), "no change, nothing to write");
    }

    #[test]
    fn preexisting_containers_make_new_profiles_partial_but_not_restored_ones() {
        let mut s = ProfileStore::new(60, Vec::new());
        s.update(
            &key("old"),
            WorkloadKind::Deployment,
            T0,
            true,
            "web-1",
            "n1",
            |_| false,
        );
        assert_eq!(
            s.get(&key("old")).unwrap().completeness,
            Completeness::Partial
        );
        let restored = ApplicationProfile::new(key("kept"), WorkloadKind::Deployment, 60, T0);
        let mut s = ProfileStore::new(60, vec![restored]);
        s.update(
            &key("kept"),
            WorkloadKind::Deployment,
            T0,
            true,
            "web-1",
            "n1",
            |_| false,
        );
        assert_eq!(
            s.get(&key("kept")).unwrap().completeness,
            Completeness::Full
        );
    }

    #[test]
    fn advance_makes_profiles_ready_after_the_period() {
        let mut s = ProfileStore::new(60, Vec::new());
        s.update(
            &key("app"),
            WorkloadKind::Deployment,
            T0,
            false,
            "",
            "n1",
            |_| false,
        );
        s.take_dirty();
        assert!(s.advance(Timestamp::lit("2026-11-26T00:00:59Z")).is_empty());
        assert_eq!(
            s.advance(Timestamp::lit("2026-11-26T00:01:00Z")),
            vec![key("app")]
        );
        assert_eq!(s.get(&key("app")).unwrap().status, Status::Ready);
        assert_eq!(s.take_dirty().len(), 1);
    }
}
