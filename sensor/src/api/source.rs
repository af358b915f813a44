//! Where the server gets profiles from: the agent implements [`ProfileSource`] over its live
//! store; [`MemorySource`] is a plain map (tests, tools).

use std::{
    collections::BTreeMap,
    sync::{PoisonError, RwLock},
};

use crate::profile::model::{ApplicationProfile, ProfileKey};

/// What the API serves. Calls are synchronous and expected to be quick (an in-memory copy);
/// the server calls them from its request handlers.
pub trait ProfileSource: Send + Sync + 'static {
    /// Calls `f` on every profile held, in any order, without copying them (the agent holds
    /// hundreds; a copy of all of them per request would cost tens of MiB).
    fn visit(&self, f: &mut dyn FnMut(&ApplicationProfile));
    /// Copies of every profile (tests and tools; request handlers use [`Self::visit`]).
    fn profiles(&self) -> Vec<ApplicationProfile> {
        let mut all = Vec::new();
        self.visit(&mut |p| all.push(p.clone()));
        all
    }
    /// One profile; `None` when there is none for `key`.
    fn profile(&self, key: &ProfileKey) -> Option<ApplicationProfile>;
    /// The node this agent runs on (`node_name` of every response).
    fn node_name(&self) -> String;
}

/// Profiles in a map, replaced with [`MemorySource::upsert`].
#[derive(Debug, Default)]
pub struct MemorySource {
    node_name: String,
    profiles: RwLock<BTreeMap<ProfileKey, ApplicationProfile>>,
}

impl MemorySource {
    pub fn new(node_name: impl Into<String>) -> Self {
        Self {
            node_name: node_name.into(),
            profiles: RwLock::default(),
        }
    }

    pub fn with_profiles(
        node_name: impl Into<String>,
        profiles: impl IntoIterator<Item = ApplicationProfile>,
    ) -> Self {
        let source = Self::new(node_name);
        for p in profiles {
            source.upsert(p);
        }
        source
    }

    /// Adds or replaces the profile of `profile.key`.
    pub fn upsert(&self, profile: ApplicationProfile) {
        self.profiles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(profile.key.clone(), profile);
    }
}

impl ProfileSource for MemorySource {
    fn visit(&self, f: &mut dyn FnMut(&ApplicationProfile)) {
        for p in self
            .profiles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            f(p);
        }
    }

    fn profile(&self, key: &ProfileKey) -> Option<ApplicationProfile> {
        self.profiles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn node_name(&self) -> String {
        self.node_name.clone()
    }
}
