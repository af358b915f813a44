//! What the server serves, provided by the agent:
//!
//! - [`ProfileSource`]: profiles (and their [`Graduation`]) from the agent's live store;
//! - [`AnomalySource`]: the anomaly log (replay) and a [`Subscription`] to new anomalies;
//! - [`EventSource`]: a [`Subscription`] to live attributed events;
//! - [`Control`](super::control::Control) (in `control`): drift commands.
//!
//! In-memory implementations ([`MemorySource`], [`MemoryAnomalies`], [`MemoryEvents`]) serve
//! tests and tools.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError, RwLock},
};

use super::hub::{Hub, Subscription};
use crate::attribution::event::Event;
use crate::detect::model::Anomaly;
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
    /// Whether the drafts of `key` are ready to enforce. Default: not evaluated.
    fn graduation(&self, _key: &ProfileKey) -> Graduation {
        Graduation::unknown()
    }
}

/// Whether a profile's drafts can be enforced (profile ready, full completeness, no
/// unexpected-syscall/egress anomaly within the agent's window), and why not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graduation {
    /// False when the agent does not evaluate graduation (then `ready_to_enforce` is false).
    pub evaluated: bool,
    pub ready_to_enforce: bool,
    /// Why not; empty when ready.
    pub reasons: Vec<String>,
    /// The network draft, judged by the live NetworkPolicy audit (`None`: not evaluated).
    pub network: Option<crate::audit::live::NetworkGraduation>,
}

impl Graduation {
    /// Not evaluated.
    pub fn unknown() -> Self {
        Self::default()
    }

    pub fn ready() -> Self {
        Self {
            evaluated: true,
            ready_to_enforce: true,
            reasons: Vec::new(),
            network: None,
        }
    }

    pub fn not_ready(reasons: Vec<String>) -> Self {
        Self {
            evaluated: true,
            ready_to_enforce: false,
            reasons,
            network: None,
        }
    }
}

/// The anomaly log and the live anomalies, for `StreamAnomalies`.
///
/// Contract (what makes replay-then-live lossless and duplicate-free):
/// - an anomaly is appended to the log (gets its `seq`) *before* it is published to
///   subscribers, and published in increasing `seq` order;
/// - [`Self::read_after`] sees every record whose `seq <= last_seq()`;
/// - [`Self::last_seq`] is the last sequence number given out (0 when none).
///
/// `read_after` runs on a blocking thread (it reads files); it must not hold a lock the
/// capture path needs for the whole read.
pub trait AnomalySource: Send + Sync + 'static {
    /// Records with `seq > seq`, oldest first, at most `limit`.
    fn read_after(&self, seq: u64, limit: usize) -> Result<Vec<Anomaly>, String>;
    /// The last sequence number given out (0 when none yet).
    fn last_seq(&self) -> u64;
    /// Anomalies published from now on (e.g. [`Hub::subscribe`]).
    fn subscribe(&self) -> Subscription<Anomaly>;
}

/// Live attributed events, for `StreamEvents`.
pub trait EventSource: Send + Sync + 'static {
    /// Events published from now on (e.g. [`Hub::subscribe`]).
    fn subscribe(&self) -> Subscription<Event>;
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

/// An anomaly log in memory plus a [`Hub`]: [`Self::append`] numbers, stores and publishes, in
/// the order the [`AnomalySource`] contract asks for.
pub struct MemoryAnomalies {
    log: Mutex<MemoryLog>,
    hub: Hub<Anomaly>,
}

#[derive(Default)]
struct MemoryLog {
    records: Vec<Anomaly>,
    last_seq: u64,
}

impl MemoryAnomalies {
    /// Subscribers get queues of `capacity` anomalies.
    pub fn new(capacity: usize) -> Self {
        Self {
            log: Mutex::default(),
            hub: Hub::new(capacity),
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, MemoryLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `anomaly` the next sequence number (its `seq` is overwritten), stores it, then
    /// publishes it. Returns the sequence number.
    pub fn append(&self, mut anomaly: Anomaly) -> u64 {
        let mut log = self.log();
        log.last_seq += 1;
        anomaly.seq = log.last_seq;
        log.records.push(anomaly.clone());
        // Publishing under the log lock keeps `seq` order for concurrent appenders.
        self.hub.publish(anomaly);
        log.last_seq
    }

    /// Forgets the records up to `seq` (retention); the numbering goes on.
    pub fn drop_through(&self, seq: u64) {
        self.log().records.retain(|a| a.seq > seq);
    }

    pub fn get(&self, seq: u64) -> Option<Anomaly> {
        self.log().records.iter().find(|a| a.seq == seq).cloned()
    }

    pub fn hub(&self) -> &Hub<Anomaly> {
        &self.hub
    }
}

impl AnomalySource for MemoryAnomalies {
    fn read_after(&self, seq: u64, limit: usize) -> Result<Vec<Anomaly>, String> {
        let log = self.log();
        let start = log.records.partition_point(|a| a.seq <= seq);
        Ok(log.records[start..].iter().take(limit).cloned().collect())
    }

    fn last_seq(&self) -> u64 {
        self.log().last_seq
    }

    fn subscribe(&self) -> Subscription<Anomaly> {
        self.hub.subscribe()
    }
}

/// Live events through a [`Hub`].
pub struct MemoryEvents {
    hub: Hub<Event>,
}

impl MemoryEvents {
    pub fn new(capacity: usize) -> Self {
        Self {
            hub: Hub::new(capacity),
        }
    }

    pub fn publish(&self, event: Event) {
        self.hub.publish(event);
    }

    pub fn hub(&self) -> &Hub<Event> {
        &self.hub
    }
}

impl EventSource for MemoryEvents {
    fn subscribe(&self) -> Subscription<Event> {
        self.hub.subscribe()
    }
}
