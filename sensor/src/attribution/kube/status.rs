//! The state of the Kubernetes API source, for logs and metrics: written by the watch task,
//! read by anyone (atomics, no lock).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct KubeStatus {
    connected: AtomicBool,
    synced: AtomicBool,
    local_pods: AtomicU64,
    peer_pods: AtomicU64,
    relists: AtomicU64,
    errors: AtomicU64,
    owner_lookups: AtomicU64,
    owner_lookup_errors: AtomicU64,
}

/// A copy of [`KubeStatus`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KubeStatusSnapshot {
    /// The last request to the API succeeded (a list, a watch event).
    pub connected: bool,
    /// This node's pods were listed at least once.
    pub synced: bool,
    /// Pods of this node held.
    pub local_pods: u64,
    /// Pods of other nodes held (peers; 0 with `--kubernetes-peers node`).
    pub peer_pods: u64,
    /// Full re-lists after the first list (a watch expired with 410 Gone, or failed).
    pub relists: u64,
    /// Failed requests: lists, watches, watch errors (each retried with backoff).
    pub errors: u64,
    /// ReplicaSet/Job reads for exact owners, and how many failed (the owner was then derived).
    pub owner_lookups: u64,
    pub owner_lookup_errors: u64,
}

impl KubeStatus {
    pub fn snapshot(&self) -> KubeStatusSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        KubeStatusSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            synced: self.synced.load(Ordering::Relaxed),
            local_pods: get(&self.local_pods),
            peer_pods: get(&self.peer_pods),
            relists: get(&self.relists),
            errors: get(&self.errors),
            owner_lookups: get(&self.owner_lookups),
            owner_lookup_errors: get(&self.owner_lookup_errors),
        }
    }

    pub(super) fn set_connected(&self, v: bool) {
        self.connected.store(v, Ordering::Relaxed);
    }

    pub(super) fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    pub(super) fn set_counts(&self, local: usize, peers: usize) {
        self.local_pods.store(local as u64, Ordering::Relaxed);
        self.peer_pods.store(peers as u64, Ordering::Relaxed);
    }

    pub(super) fn relisted(&self) {
        self.relists.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn owner_lookup(&self, failed: bool) {
        self.owner_lookups.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.owner_lookup_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}
