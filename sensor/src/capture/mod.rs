//! The collector: loads the kernel programs, reads their ring buffer and maps, and counts every
//! event and every loss.

pub mod attach;
pub mod compat;
pub mod counters;
pub mod decode;
pub mod flows;
pub mod kernel;
pub mod kinds;
pub mod listeners;
pub mod loader;
pub mod patterns;
pub mod reader;
pub mod syscall_names;
pub mod syscall_sets;

use std::{collections::BTreeMap, sync::Arc};

use aya::maps::{Array, HashMap, MapData, PerCpuArray, Queue, RingBuf};
use sensor_common::{EventKind, names};
use tokio::sync::mpsc;

pub use self::{
    attach::{AttachCounts, AttachManager, AttachmentId, Target, UProbeLocation},
    counters::Counters,
    decode::KernelEvent,
    flows::FlowTable,
    loader::{LoadError, LoadOptions, ProbeStatus, Probes},
    syscall_sets::SyscallSets,
};

/// Loaded probes plus handles on their maps, split so the consumer owns the map handles it
/// writes (syscall sets, flows) and the reader task owns the ring buffer.
pub struct Collector {
    pub probes: Probes,
    pub syscall_sets: SyscallSets,
    pub flows: FlowTable,
    pub stats: PerCpuArray<MapData, u64>,
    /// An LRU hash in the kernel; aya reads it as a hash map.
    pub listeners: HashMap<MapData, sensor_common::ListenerKey, u32>,
    pub counters: Arc<Counters>,
    ring: Option<RingBuf<MapData>>,
}

impl Collector {
    pub fn start(opts: &LoadOptions) -> Result<Collector, LoadError> {
        let mut probes = Probes::load(opts)?;
        let counters = Arc::new(Counters::with_attachments(probes.manager.counters()));
        let ebpf = probes.manager.ebpf_mut();
        let mut take = |name: &'static str| ebpf.take_map(name).ok_or(LoadError::Missing(name));
        let map_err = |name: &'static str| move |source| LoadError::Map { name, source };
        let ring = RingBuf::try_from(take(names::RINGBUF_EVENTS)?)
            .map_err(map_err(names::RINGBUF_EVENTS))?;
        let slots = HashMap::try_from(take(names::MAP_SLOT_OF_CGROUP)?)
            .map_err(map_err(names::MAP_SLOT_OF_CGROUP))?;
        let sets = Array::try_from(take(names::MAP_SYSCALL_SETS)?)
            .map_err(map_err(names::MAP_SYSCALL_SETS))?;
        let free = Queue::try_from(take(names::MAP_FREE_SLOTS)?)
            .map_err(map_err(names::MAP_FREE_SLOTS))?;
        let flows =
            HashMap::try_from(take(names::MAP_FLOWS)?).map_err(map_err(names::MAP_FLOWS))?;
        let stats =
            PerCpuArray::try_from(take(names::MAP_STATS)?).map_err(map_err(names::MAP_STATS))?;
        let listeners = HashMap::try_from(take(names::MAP_LISTENERS)?)
            .map_err(map_err(names::MAP_LISTENERS))?;
        Ok(Collector {
            probes,
            listeners,
            syscall_sets: SyscallSets::new(slots, sets, free),
            flows: FlowTable::new(flows),
            stats,
            counters,
            ring: Some(ring),
        })
    }

    /// Starts the ring-buffer reader on the current tokio runtime; events arrive on the returned
    /// queue (bounded: overflow is dropped and counted).
    pub fn spawn_reader(&mut self, queue: usize) -> mpsc::Receiver<KernelEvent> {
        let (tx, rx) = mpsc::channel(queue);
        let ring = self.ring.take().expect("reader already started");
        let counters = self.counters.clone();
        tokio::spawn(async move {
            if let Err(e) = reader::run(ring, tx, counters).await {
                tracing::error!("ring buffer reader stopped: {e}");
            }
        });
        rx
    }

    /// The ring buffer itself, for a reader of raw records (`sensor-dev records`) instead of
    /// [`Collector::spawn_reader`].
    pub fn take_ring(&mut self) -> Option<RingBuf<MapData>> {
        self.ring.take()
    }

    /// Everything counted so far: decoded events by kind and losses by cause.
    pub fn snapshot(&self) -> CountersSnapshot {
        let kernel = counters::kernel_stats(&self.stats);
        let mut events = BTreeMap::new();
        let mut lost = BTreeMap::new();
        for kind in EventKind::ALL {
            events.insert(
                counters::kind_name(kind).to_string(),
                self.counters.decoded_count(kind),
            );
            let q = self.counters.queue_full_count(kind);
            lost.insert(format!("queue_full_{}", counters::kind_name(kind)), q);
        }
        for stat in sensor_common::Stat::ALL {
            let v = kernel.get(stat.name()).copied().unwrap_or(0);
            if stat.is_loss() {
                lost.insert(stat.name().to_string(), v);
            } else {
                events.insert(stat.name().to_string(), v);
            }
        }
        lost.insert(
            "malformed".to_string(),
            self.counters
                .malformed
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        lost.insert(
            "dns_unparsed".to_string(),
            self.counters
                .dns_unparsed
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        CountersSnapshot { events, lost }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CountersSnapshot {
    pub events: BTreeMap<String, u64>,
    pub lost: BTreeMap<String, u64>,
}
