//! Maps, load-time configuration, counters and the event-emission helper shared by all programs.

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, Queue, RingBuf},
};
use sensor_common::{
    EventHeader, EventKind, FlowKey, FlowStats, KernelConfig, ListenerKey, NUM_STATS, SlotCache,
    Stat, SyscallSet,
    limits::{
        MAX_CGROUP_SLOTS, MAX_DNS_CLIENTS, MAX_FILE_ANCHORS, MAX_FLOWS, MAX_LISTENERS,
        MAX_UPROBE_ATTACHMENTS,
    },
};

/// Load-time constants (struct offsets from BTF, ...). Lives in .rodata, frozen before the
/// programs load, so the verifier treats every field as a known constant.
#[unsafe(no_mangle)]
pub static CONFIG: KernelConfig = KernelConfig::zeroed();

/// Reads one field of [`CONFIG`]. Volatile, so the compiler cannot fold the zero initialiser
/// into the code: the real values are written by user space at load time.
macro_rules! conf {
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        unsafe {
            core::ptr::read_volatile(&raw const $crate::maps::CONFIG.$field)
        }
    }};
}
pub(crate) use conf;

/// All events to user space. Size set by user space at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// Counters by [`Stat`], per CPU so increments need no atomics.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(NUM_STATS, 0);

/// cgroup id -> syscall-set slot.
#[map]
pub static SLOT_OF_CGROUP: HashMap<u64, u32> = HashMap::with_max_entries(MAX_CGROUP_SLOTS, 0);

/// Syscall sets by slot.
#[map]
pub static SYSCALL_SETS: Array<SyscallSet> = Array::with_max_entries(MAX_CGROUP_SLOTS, 0);

/// Free slots; filled by user space at start, refilled when it drains a removed cgroup.
#[map]
pub static FREE_SLOTS: Queue<u32> = Queue::with_max_entries(MAX_CGROUP_SLOTS, 0);

/// cgroups created since the probes were loaded and not yet given a slot: their first slot
/// starts in the setup phase (the runtime's work before the workload's first exec). A cgroup
/// older than the sensor is not here, so its slot records everything as the workload's.
#[map]
pub static NEW_CGROUPS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(MAX_CGROUP_SLOTS, 0);

/// Last cgroup seen on this CPU and its slot + 1 (0 = empty).
#[map]
pub static SLOT_CACHE: PerCpuArray<SlotCache> = PerCpuArray::with_max_entries(1, 0);

/// Flow aggregates.
#[map]
pub static FLOWS: HashMap<FlowKey, FlowStats> = HashMap::with_max_entries(MAX_FLOWS, 0);

/// Listening sockets -> the process that listens (see `ListenerKey`).
#[map]
pub static LISTENERS: LruHashMap<ListenerKey, u32> = LruHashMap::with_max_entries(MAX_LISTENERS, 0);

/// Socket cookie of a DNS client socket -> the process that sent the query.
#[map]
pub static DNS_CLIENTS: LruHashMap<u64, u32> = LruHashMap::with_max_entries(MAX_DNS_CLIENTS, 0);

/// Sensitive path anchors: FNV-1a hash of a path component -> how far from the leaf it may be.
#[map]
pub static FILE_ANCHORS: HashMap<u32, u32> = HashMap::with_max_entries(MAX_FILE_ANCHORS, 0);

/// Uprobe attachment id (its attach cookie) -> calls seen. User space creates an entry before
/// it attaches and removes it after it detaches; the kernel only increments.
#[map]
pub static UPROBE_HITS: HashMap<u64, u64> = HashMap::with_max_entries(MAX_UPROBE_ATTACHMENTS, 0);

#[inline(always)]
pub fn count(stat: Stat) {
    if let Some(p) = STATS.get_ptr_mut(stat as u32) {
        unsafe { *p += 1 };
    }
}

/// Fills a header for the current task.
#[inline(always)]
pub fn header(kind: EventKind) -> EventHeader {
    let pid_tgid = bpf_get_current_pid_tgid();
    EventHeader {
        kind: kind as u32,
        size: kind.size() as u32,
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
    }
}

/// Fills a header for an event about a socket rather than the current task (packets, flows):
/// `cgroup_id` and `pid` are given. No current-task helper is called: 6.1's verifier does not
/// offer them to cgroup_skb programs (`unknown func bpf_get_current_pid_tgid#14`; 6.18's does),
/// and in softirq the current task is unrelated anyway.
#[inline(always)]
pub fn socket_header(kind: EventKind, cgroup_id: u64, pid: u32, tid: u32) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        size: kind.size() as u32,
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
        cgroup_id,
        pid,
        tid,
    }
}

/// Reserves room for an event of type `T` in the ring buffer, counting a failure under the
/// event kind's loss counter.
#[inline(always)]
pub fn reserve<T: 'static>(kind: EventKind) -> Option<aya_ebpf::maps::ring_buf::RingBufEntry<T>> {
    let entry = EVENTS.reserve::<T>(0);
    if entry.is_none() {
        count(kind.ringbuf_full_stat());
    }
    entry
}
