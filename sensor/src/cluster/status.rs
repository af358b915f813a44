//! What the cluster tasks did, shared with metrics (read at scrape time).

use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

/// Why a piece write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFailure {
    /// No answer (connection refused, timeout): retried at the next round.
    Unreachable,
    /// 403: RBAC lacks a permission (logged once with the permission's name).
    Forbidden,
    /// 404: the API has no `profilepieces.sensor.io` (the CRDs are not installed): logged
    /// once with the fix, retried next round.
    NoResource,
    /// 4xx other than 403/404/409/429: the API refused this content (e.g. too large, invalid);
    /// the same content is not sent again.
    Rejected,
    /// 409 or 429, 5xx: retried at the next round.
    Transient,
}

impl WriteFailure {
    pub const ALL: [WriteFailure; 5] = [
        WriteFailure::Unreachable,
        WriteFailure::Forbidden,
        WriteFailure::NoResource,
        WriteFailure::Rejected,
        WriteFailure::Transient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WriteFailure::Unreachable => "unreachable",
            WriteFailure::Forbidden => "forbidden",
            WriteFailure::NoResource => "no_resource",
            WriteFailure::Rejected => "rejected",
            WriteFailure::Transient => "transient",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default)]
pub struct ClusterStatus {
    pub pieces_written: AtomicU64,
    /// Pieces cut to fit the size cap (each write of a cut piece).
    pub pieces_collapsed: AtomicU64,
    /// Profiles that did not fit even cut (never sent).
    pub pieces_too_large: AtomicU64,
    pub piece_bytes_last: AtomicU64,
    pub piece_bytes_max: AtomicU64,
    failures: [AtomicU64; 5],
    /// Pieces whose write is due but waits for the rate limit.
    pub pieces_waiting: AtomicU64,
    /// The Lease holder as last seen.
    pub leader: Mutex<Option<String>>,
    /// Whether this sensor merges now.
    pub leading: AtomicBool,
    pub election_failures: AtomicU64,
    /// Merged profiles written (content changed) by this sensor as leader.
    pub merges_written: AtomicU64,
    pub merge_failures: AtomicU64,
    /// Pieces whose evidence could not be merged (e.g. no pod label shared with the others).
    pub merge_conflicts: AtomicU64,
    /// Workloads re-read from the API because a piece lost evidence (relearn, deletion).
    pub workload_rebuilds: AtomicU64,
    /// Pieces skipped by the merger: unparsable or foreign objects.
    pub pieces_skipped: AtomicU64,
    /// Pieces in the merger's cache.
    pub pieces_known: AtomicU64,
    pub workloads_merged: AtomicU64,
    pub merge_round_ms: AtomicU64,
    /// From the newest piece's snapshot to its merged profile's write, last write.
    pub merge_lag_ms: AtomicU64,
    /// Merged seccomp profiles written under the install directory / removed.
    pub files_installed: AtomicU64,
    pub files_removed: AtomicU64,
    pub install_failures: AtomicU64,
}

impl ClusterStatus {
    pub fn failed(&self, why: WriteFailure) {
        self.failures[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn failures(&self, why: WriteFailure) -> u64 {
        self.failures[why.index()].load(Ordering::Relaxed)
    }

    pub fn wrote(&self, bytes: usize, collapsed: bool) {
        let bytes = bytes as u64;
        self.pieces_written.fetch_add(1, Ordering::Relaxed);
        self.piece_bytes_last.store(bytes, Ordering::Relaxed);
        self.piece_bytes_max.fetch_max(bytes, Ordering::Relaxed);
        if collapsed {
            self.pieces_collapsed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
