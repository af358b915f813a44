//! Capture metrics, read at scrape time from the counters capture keeps anyway: the collector's
//! user-space counters (atomics) and the kernel's per-CPU `STATS` map, through a second handle
//! on the same map. Nothing is added to the per-event path.

use std::{fmt, os::fd::AsFd, sync::Arc};

use aya::maps::{IterableMap, Map, MapData, MapError, PerCpuArray};
use prometheus_client::encoding::DescriptorEncoder;
use sensor_common::{EventKind, Stat};

use super::families::{self, Labels, labels};
use crate::attribution::workload_losses::WorkloadCounter;
use crate::capture::{AttachCounts, Counters, ProbeStatus, counters};

/// A second handle (its own fd) on the kernel's `STATS` map, so a scrape reads it without
/// borrowing the collector the event loop owns.
pub struct KernelStats(PerCpuArray<MapData, u64>);

impl KernelStats {
    pub fn duplicate(map: &PerCpuArray<MapData, u64>) -> Result<Self, MapError> {
        let fd = map
            .map()
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|io_error| {
                MapError::SyscallError(aya::sys::SyscallError {
                    call: "dup",
                    io_error,
                })
            })?;
        let data = MapData::from_fd(fd)?;
        Ok(Self(PerCpuArray::try_from(Map::PerCpuArray(data))?))
    }

    /// Every kernel counter, summed over CPUs.
    pub fn read(&self) -> Vec<(Stat, u64)> {
        let by_name = counters::kernel_stats(&self.0);
        Stat::ALL
            .iter()
            .map(|s| (*s, by_name.get(s.name()).copied().unwrap_or(0)))
            .collect()
    }
}

impl fmt::Debug for KernelStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KernelStats")
    }
}

/// What capture exposes, set once capture has started.
#[derive(Debug)]
pub struct CaptureSource {
    pub counters: Arc<Counters>,
    pub kernel: KernelStats,
    pub probes: Vec<ProbeStatus>,
    pub ring_buffer_bytes: u32,
    pub dns_unparsed_by_workload: Arc<WorkloadCounter>,
}

/// The values of one scrape: plain data, encoded by [`encode`].
#[derive(Debug, Clone, Default)]
pub struct CaptureCounts {
    /// By event kind, in [`EventKind::ALL`] order.
    pub decoded: Vec<(EventKind, u64)>,
    pub queue_full: Vec<(EventKind, u64)>,
    pub kernel: Vec<(Stat, u64)>,
    pub malformed: u64,
    pub dns_unparsed: u64,
    pub dns_unparsed_by_workload: Vec<((String, String), u64)>,
    /// (program, hook, attached).
    pub probes: Vec<(String, String, bool)>,
    /// The attach manager's attachments (the probe table's and those made while running).
    pub attachments: AttachCounts,
    pub ring_buffer_bytes: u32,
}

impl CaptureSource {
    /// What a started capture exposes; `dns_unparsed_by_workload` is the pipeline's counter.
    pub fn of(
        collector: &crate::capture::Collector,
        dns_unparsed_by_workload: Arc<WorkloadCounter>,
        ring_buffer_bytes: u32,
    ) -> Result<Self, MapError> {
        Ok(Self {
            counters: collector.counters.clone(),
            kernel: KernelStats::duplicate(&collector.stats)?,
            probes: collector.probes.status.clone(),
            ring_buffer_bytes,
            dns_unparsed_by_workload,
        })
    }

    pub fn counts(&self) -> CaptureCounts {
        use std::sync::atomic::Ordering::Relaxed;
        CaptureCounts {
            decoded: EventKind::ALL
                .iter()
                .map(|k| (*k, self.counters.decoded_count(*k)))
                .collect(),
            queue_full: EventKind::ALL
                .iter()
                .map(|k| (*k, self.counters.queue_full_count(*k)))
                .collect(),
            kernel: self.kernel.read(),
            malformed: self.counters.malformed.load(Relaxed),
            dns_unparsed: self.counters.dns_unparsed.load(Relaxed),
            dns_unparsed_by_workload: self.dns_unparsed_by_workload.snapshot(),
            probes: self
                .probes
                .iter()
                .map(|p| (p.program.to_string(), p.hook.clone(), p.attached))
                .collect(),
            attachments: self.counters.attachments(),
            ring_buffer_bytes: self.ring_buffer_bytes,
        }
    }
}

/// Where a kernel counter is exposed. Exhaustive: a new [`Stat`] must be placed here.
enum Destination {
    /// `sensor_events_lost_total{cause="ring_buffer_full", kind}`.
    RingBufferFull(&'static str),
    /// `sensor_syscalls_unrecorded_total{cause}`.
    SyscallUnrecorded(&'static str),
    FlowMapFull,
    FilePathUnresolved,
    SlotsAssigned,
    OpensChecked,
}

fn destination(stat: Stat) -> Destination {
    use Destination::*;
    match stat {
        Stat::RingbufFullFork => RingBufferFull("fork"),
        Stat::RingbufFullExec => RingBufferFull("exec"),
        Stat::RingbufFullExit => RingBufferFull("exit"),
        Stat::RingbufFullCgroup => RingBufferFull("cgroup"),
        Stat::RingbufFullFlow => RingBufferFull("flow"),
        Stat::RingbufFullDns => RingBufferFull("dns"),
        Stat::RingbufFullFile => RingBufferFull("file"),
        Stat::SyscallSlotsExhausted => SyscallUnrecorded("slots_exhausted"),
        Stat::SyscallOutOfRange => SyscallUnrecorded("out_of_range"),
        Stat::FlowMapFull => FlowMapFull,
        Stat::FilePathUnresolved => FilePathUnresolved,
        Stat::SyscallSlotsAssigned => SlotsAssigned,
        Stat::FileOpensChecked => OpensChecked,
    }
}

/// The kernel counters that go to one destination.
fn kernel_where<T>(
    c: &CaptureCounts,
    mut pick: impl FnMut(Destination) -> Option<T>,
) -> Vec<(T, u64)> {
    c.kernel
        .iter()
        .filter_map(|(stat, v)| pick(destination(*stat)).map(|t| (t, *v)))
        .collect()
}

fn kernel_total(c: &CaptureCounts, pick: impl Fn(&Destination) -> bool) -> u64 {
    c.kernel
        .iter()
        .filter(|(stat, _)| pick(&destination(*stat)))
        .map(|(_, v)| v)
        .sum()
}

pub fn encode(c: &CaptureCounts, enc: &mut DescriptorEncoder) -> fmt::Result {
    families::counters(
        enc,
        "sensor_events_decoded",
        "Kernel events read from the ring buffer and decoded, by kind",
        c.decoded
            .iter()
            .map(|(k, v)| (labels([("kind", counters::kind_name(*k))]), *v)),
    )?;
    let mut lost: Vec<(Labels, u64)> = kernel_where(c, |d| match d {
        Destination::RingBufferFull(kind) => Some(kind),
        _ => None,
    })
    .into_iter()
    .map(|(kind, v)| (labels([("cause", "ring_buffer_full"), ("kind", kind)]), v))
    .collect();
    lost.extend(c.queue_full.iter().map(|(k, v)| {
        (
            labels([("cause", "queue_full"), ("kind", counters::kind_name(*k))]),
            *v,
        )
    }));
    lost.push((
        labels([("cause", "malformed"), ("kind", "unknown")]),
        c.malformed,
    ));
    families::counters(
        enc,
        "sensor_events_lost",
        "Kernel events lost before user space handled them, by cause: ring_buffer_full (the kernel \
         found no room in the ring buffer), queue_full (the queue between the ring-buffer reader \
         and the pipeline was full), malformed (a record failed the tag or length checks)",
        lost,
    )?;
    families::counters(
        enc,
        "sensor_syscalls_unrecorded",
        "Syscalls that could not be recorded in a syscall set, by cause: slots_exhausted (no free \
         per-cgroup slot), out_of_range (syscall number beyond the bitmap)",
        kernel_where(c, |d| match d {
            Destination::SyscallUnrecorded(cause) => Some(cause),
            _ => None,
        })
        .into_iter()
        .map(|(cause, v)| (labels([("cause", cause)]), v)),
    )?;
    families::counter(
        enc,
        "sensor_flow_map_full",
        "Connections and sends whose new flow aggregate did not fit in the kernel flow map",
        kernel_total(c, |d| matches!(d, Destination::FlowMapFull)),
    )?;
    families::counter(
        enc,
        "sensor_file_paths_unresolved",
        "Successful opens whose file the kernel could not walk from its descriptor (a read \
         fault), so not matched against the sensitive paths",
        kernel_total(c, |d| matches!(d, Destination::FilePathUnresolved)),
    )?;
    families::counter(
        enc,
        "sensor_dns_answers_unparsed",
        "DNS payloads (answers or TCP segments) that did not parse or were cut",
        c.dns_unparsed,
    )?;
    families::counters(
        enc,
        "sensor_workload_dns_answers_unparsed",
        "DNS payloads that did not parse, by the workload that received them (at most 100 \
         workloads; the rest under workload=\"_other\")",
        c.dns_unparsed_by_workload.iter().map(|((ns, w), v)| {
            (
                labels([("namespace", ns.as_str()), ("workload", w.as_str())]),
                *v,
            )
        }),
    )?;
    families::counter(
        enc,
        "sensor_syscall_slots_assigned",
        "Per-cgroup syscall-set slots the kernel assigned to new cgroups",
        kernel_total(c, |d| matches!(d, Destination::SlotsAssigned)),
    )?;
    families::counter(
        enc,
        "sensor_file_opens_checked",
        "Successful opens whose file the kernel examined against the sensitive path anchors",
        kernel_total(c, |d| matches!(d, Destination::OpensChecked)),
    )?;
    families::gauges(
        enc,
        "sensor_probe_attached",
        "Whether each kernel program is attached (1) or not (0)",
        c.probes.iter().map(|(program, hook, attached)| {
            (
                labels([("program", program.as_str()), ("hook", hook.as_str())]),
                i64::from(*attached),
            )
        }),
    )?;
    families::gauge(
        enc,
        "sensor_probe_attachments",
        "Kernel program attachments in place (the probe table's and those made while running)",
        i64::try_from(c.attachments.live).unwrap_or(i64::MAX),
    )?;
    families::counters(
        enc,
        "sensor_probe_attach_operations",
        "Attach manager operations, by result: attached, detached, failed (the kernel refused \
         an attach, fallbacks included)",
        [
            ("attached", c.attachments.attached),
            ("detached", c.attachments.detached),
            ("failed", c.attachments.failed),
        ]
        .into_iter()
        .map(|(result, v)| (labels([("result", result)]), v)),
    )?;
    families::gauge(
        enc,
        "sensor_ring_buffer_size_bytes",
        "Size of the kernel event ring buffer",
        i64::from(c.ring_buffer_bytes),
    )
}
