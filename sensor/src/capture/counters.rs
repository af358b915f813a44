//! Every event accounted for: decoded by kind, and every loss by cause (kernel counters read
//! from the STATS map, user-space losses counted here).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use aya::maps::{MapData, PerCpuArray};
use sensor_common::{EventKind, Stat};

use super::attach::{AttachCounters, AttachCounts};

/// One slot per [`EventKind`] value (`sensor-common` numbers them 1..=N, so slot 0 is unused).
const KIND_SLOTS: usize = EventKind::ALL.len() + 1;

/// User-space counters, shared between the ring-buffer reader and the consumers.
#[derive(Debug, Default)]
pub struct Counters {
    decoded: [AtomicU64; KIND_SLOTS],
    /// Records that failed the tag/length checks.
    pub malformed: AtomicU64,
    /// Events dropped because the consumer queue was full, by kind.
    queue_full: [AtomicU64; KIND_SLOTS],
    /// DNS payloads that did not parse.
    pub dns_unparsed: AtomicU64,
    /// The attach manager's: attachments made, removed and refused.
    attachments: Arc<AttachCounters>,
}

impl Counters {
    /// Counters that also report the attach manager's.
    pub fn with_attachments(attachments: Arc<AttachCounters>) -> Counters {
        Counters {
            attachments,
            ..Counters::default()
        }
    }

    pub fn attachments(&self) -> AttachCounts {
        self.attachments.read()
    }

    pub fn decoded(&self, kind: EventKind) {
        self.decoded[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn queue_full(&self, kind: EventKind) {
        self.queue_full[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn decoded_count(&self, kind: EventKind) -> u64 {
        self.decoded[kind as usize].load(Ordering::Relaxed)
    }

    pub fn queue_full_count(&self, kind: EventKind) -> u64 {
        self.queue_full[kind as usize].load(Ordering::Relaxed)
    }
}

/// Kernel counters summed over CPUs, by [`Stat`] name.
pub fn kernel_stats(map: &PerCpuArray<MapData, u64>) -> BTreeMap<&'static str, u64> {
    Stat::ALL
        .iter()
        .map(|&stat| {
            let total = map
                .get(&(stat as u32), 0)
                .map(|per_cpu| per_cpu.iter().sum())
                .unwrap_or(0);
            (stat.name(), total)
        })
        .collect()
}

/// Name of an event kind in stats output.
pub fn kind_name(kind: EventKind) -> &'static str {
    super::kinds::name(kind)
}
