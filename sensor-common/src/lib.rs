//! Types shared by the kernel programs (`sensor-ebpf`) and user space (`sensor`).
//!
//! Every type here is `#[repr(C)]` plain old data with explicit padding fields, so the kernel
//! and user space agree on the layout byte for byte; the layout is asserted at compile time at
//! the bottom of this file. No `bool`, `Option` or implicit padding.
//!
//! Every event starts with [`EventHeader`]; user space checks `kind` with
//! [`EventKind::try_from`] and the byte length against [`EventKind::size`] before reading the rest.
#![no_std]

pub mod names;

/// Bounds on what the kernel copies. Larger inputs are truncated and flagged.
pub mod limits {
    /// Bytes of a path copied into an event (exec filename, file open, cgroup path).
    pub const MAX_PATH: usize = 512;
    /// Bytes of the NUL-separated argument vector copied into an exec event.
    pub const MAX_ARGS: usize = 1024;
    /// Bytes of a DNS answer (UDP datagram or TCP segment payload) copied into an event
    /// (a power of two, so the verifier can bound the copy with a mask).
    pub const MAX_DNS_PAYLOAD: usize = 2048;
    /// Syscall numbers tracked per ABI: `SYSCALL_WORDS * 64`.
    pub const SYSCALL_WORDS: usize = 8;
    pub const MAX_SYSCALL_NR: usize = SYSCALL_WORDS * 64;
    /// cgroups whose syscall sets are tracked at once (slots are recycled when a cgroup goes away).
    pub const MAX_CGROUP_SLOTS: u32 = 8192;
    /// Aggregated flows (cgroup, peer, port, protocol, direction) held in the kernel.
    pub const MAX_FLOWS: u32 = 65536;
    /// Listening sockets remembered (LRU: the oldest are forgotten first).
    pub const MAX_LISTENERS: u32 = 16384;
    /// Sockets that sent to port 53, remembered so an answer (seen in softirq) names the
    /// process that asked (LRU).
    pub const MAX_DNS_CLIENTS: u32 = 8192;
    /// Sensitive path patterns configured at once.
    pub const MAX_FILE_PATTERNS: u32 = 32;
    /// Anchor names (one per pattern) in the kernel's anchor map.
    pub const MAX_FILE_ANCHORS: u32 = 64;
    /// Uprobe attachments live at once (one hit counter each; more are refused at attach).
    pub const MAX_UPROBE_ATTACHMENTS: u32 = 4096;
    /// How far up a relative open's base directory (in components) an anchor name is looked for.
    pub const MAX_ANCHOR_DEPTH: usize = 4;
    /// Bytes of an open's path string copied (a power of two, so the verifier can bound it).
    pub const MAX_OPEN_PATH: usize = 256;
    /// Base-directory components copied for a matching relative open.
    pub const MAX_PATH_DEPTH: usize = 16;
    /// Bytes per path component slot (NUL included).
    pub const PATH_NAME_SLOT: usize = 64;
    /// Task comm length (`TASK_COMM_LEN`).
    pub const COMM_LEN: usize = 16;
}

use limits::*;

/// The kind tag of an event, first field of every [`EventHeader`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Fork = 1,
    Exec = 2,
    Exit = 3,
    CgroupMkdir = 4,
    CgroupRmdir = 5,
    Flow = 6,
    Dns = 7,
    FileOpen = 8,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::Fork,
        EventKind::Exec,
        EventKind::Exit,
        EventKind::CgroupMkdir,
        EventKind::CgroupRmdir,
        EventKind::Flow,
        EventKind::Dns,
        EventKind::FileOpen,
    ];

    /// Size in bytes of the whole event (header included) the kernel sends for this kind.
    /// Exhaustive, so a new kind cannot be forgotten.
    pub const fn size(self) -> usize {
        match self {
            EventKind::Fork => core::mem::size_of::<ForkEvent>(),
            EventKind::Exec => core::mem::size_of::<ExecEvent>(),
            EventKind::Exit => core::mem::size_of::<ExitEvent>(),
            EventKind::CgroupMkdir | EventKind::CgroupRmdir => core::mem::size_of::<CgroupEvent>(),
            EventKind::Flow => core::mem::size_of::<FlowEvent>(),
            EventKind::Dns => core::mem::size_of::<DnsEvent>(),
            EventKind::FileOpen => core::mem::size_of::<FileEvent>(),
        }
    }

    /// The per-kind counter bumped when the ring buffer had no room for the event.
    pub const fn ringbuf_full_stat(self) -> Stat {
        match self {
            EventKind::Fork => Stat::RingbufFullFork,
            EventKind::Exec => Stat::RingbufFullExec,
            EventKind::Exit => Stat::RingbufFullExit,
            EventKind::CgroupMkdir | EventKind::CgroupRmdir => Stat::RingbufFullCgroup,
            EventKind::Flow => Stat::RingbufFullFlow,
            EventKind::Dns => Stat::RingbufFullDns,
            EventKind::FileOpen => Stat::RingbufFullFile,
        }
    }
}

impl TryFrom<u32> for EventKind {
    type Error = u32;
    /// The kind whose tag is `v`: read off [`EventKind::ALL`], so there is no second list.
    fn try_from(v: u32) -> Result<Self, u32> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| *k as u32 == v)
            .ok_or(v)
    }
}

/// The largest event, for buffer sizing.
pub const MAX_EVENT_SIZE: usize = {
    let mut max = 0;
    let mut i = 0;
    while i < EventKind::ALL.len() {
        let s = EventKind::ALL[i].size();
        if s > max {
            max = s;
        }
        i += 1;
    }
    max
};

/// Common header of every event.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// [`EventKind`] as u32.
    pub kind: u32,
    /// Size of the whole event in bytes, header included.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns()`: CLOCK_BOOTTIME nanoseconds.
    pub ts_ns: u64,
    /// cgroup v2 id of the task (or socket) the event is about.
    pub cgroup_id: u64,
    /// Thread group id (the user-visible pid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
}

/// A new process (not a thread): `sched_process_fork` where the child leads its thread group.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkEvent {
    pub header: EventHeader,
    pub child_pid: u32,
    pub _pad: u32,
}

pub mod exec_flags {
    pub const FILENAME_TRUNCATED: u32 = 1;
    pub const ARGS_TRUNCATED: u32 = 2;
    /// The argument area of the new image could not be read (paged out, or no mm).
    pub const ARGS_UNREADABLE: u32 = 4;
    /// The first exec of the workload in a new container cgroup: what the cgroup did before it
    /// was the container runtime's setup (see [`crate::SyscallSet`]).
    pub const WORKLOAD_START: u32 = 8;
}

/// A successful exec (`sched_process_exec`), with the argument vector of the new image.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Parent's thread group id (`real_parent->tgid`).
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// [`exec_flags`].
    pub flags: u32,
    /// Bytes of `filename` used, without the terminating NUL.
    pub filename_len: u32,
    /// Bytes of `args` used: NUL-separated arguments.
    pub args_len: u32,
    pub comm: [u8; COMM_LEN],
    /// The path given to execve (`bprm->filename`).
    pub filename: [u8; MAX_PATH],
    pub args: [u8; MAX_ARGS],
    /// Components in `exe` (0 when the executable's path could not be walked).
    pub exe_depth: u32,
    /// [`exe_flags`].
    pub exe_flags: u32,
    /// The executable actually run (`bprm->file`, symlinks resolved), leaf first, one
    /// NUL-padded slot of [`limits::PATH_NAME_SLOT`] bytes per component.
    pub exe: [u8; MAX_PATH_DEPTH * PATH_NAME_SLOT],
}

pub mod exe_flags {
    /// The path had more components than the walk copies: the top is cut.
    pub const TRUNCATED: u32 = 1;
}

/// The last thread of a process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// Wait status as the kernel stores it: `(code << 8) | signal`.
    pub exit_code: u32,
    pub _pad: u32,
}

pub mod cgroup_flags {
    pub const PATH_TRUNCATED: u32 = 1;
}

/// A cgroup v2 directory was created or removed. `header.cgroup_id` is the creator's cgroup;
/// `id` is the cgroup the event is about.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CgroupEvent {
    pub header: EventHeader,
    pub id: u64,
    pub level: u32,
    pub flags: u32,
    pub path_len: u32,
    pub _pad: u32,
    /// Path relative to the cgroup2 mount, e.g. `/kubepods/besteffort/pod<uid>/<id>`.
    pub path: [u8; MAX_PATH],
}

/// How a flow was first seen.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowOrigin {
    /// connect() on a TCP or UDP socket.
    Connect = 1,
    /// accept() returned a TCP connection.
    Accept = 2,
    /// sendmsg()/sendto() with an address on an unconnected UDP socket.
    UdpSend = 3,
}

impl TryFrom<u32> for FlowOrigin {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            1 => FlowOrigin::Connect,
            2 => FlowOrigin::Accept,
            3 => FlowOrigin::UdpSend,
            other => return Err(other),
        })
    }
}

pub mod flow_direction {
    /// This side initiated (connect, UDP send).
    pub const EGRESS: u8 = 1;
    /// The peer initiated (accept).
    pub const INGRESS: u8 = 2;
}

/// Key of the in-kernel flow aggregate: one entry per cgroup, peer, port, protocol, direction.
/// Egress flows are keyed by the remote port (the service); ingress flows by the local port (the
/// listener), with `remote_port` 0 so ephemeral client ports do not explode the table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub cgroup_id: u64,
    /// IPv6, or IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
    pub remote_addr: [u8; 16],
    pub remote_port: u16,
    pub local_port: u16,
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub protocol: u8,
    /// [`flow_direction`].
    pub direction: u8,
    pub _pad: [u8; 2],
}

/// A listening TCP socket: the cgroup it belongs to and its port. The value in the map is the
/// process that called listen() (or held the socket when the sensor started), so a SYN seen in
/// softirq context can name the process that will accept it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerKey {
    pub cgroup_id: u64,
    pub port: u16,
    pub _pad: [u8; 6],
}

/// Counters of one flow aggregate, updated atomically by the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowStats {
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// connect()/accept() calls (TCP) or first sends (UDP) aggregated here.
    pub connections: u64,
    /// Bytes at the IP layer, this side to the peer.
    pub bytes_sent: u64,
    pub bytes_recv: u64,
    pub packets_sent: u64,
    pub packets_recv: u64,
    /// Process that opened the flow first (0 until a process is known).
    pub pid: u32,
    pub _pad: u32,
    /// Non-zero once the first-sighting event was sent (u64: the BPF ISA's atomic exchange is
    /// 64-bit only before v3). An ingress aggregate is created
    /// silently when a SYN reaches a listener (so bytes that arrive before accept() are
    /// counted) and reported at the first accept(), with the accepting process.
    pub reported: u64,
}

/// First sighting of a flow aggregate (one event per key, not per connection or packet).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FlowEvent {
    pub header: EventHeader,
    pub key: FlowKey,
    /// [`FlowOrigin`] as u32.
    pub origin: u32,
    pub _pad: u32,
    /// Local address when known (accept), else zero.
    pub local_addr: [u8; 16],
}

pub mod dns_flags {
    pub const TCP: u32 = 1;
    pub const TRUNCATED: u32 = 2;
}

/// A packet from port 53 delivered to a socket of `header.cgroup_id`: a DNS answer (UDP) or a
/// segment of one (TCP, 2-byte length prefix). Parsed in user space.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DnsEvent {
    pub header: EventHeader,
    /// [`dns_flags`].
    pub flags: u32,
    /// Bytes of `payload` used.
    pub payload_len: u32,
    /// Full payload length on the wire (may exceed `payload_len`).
    pub wire_len: u32,
    pub server_port: u16,
    pub client_port: u16,
    pub server_addr: [u8; 16],
    pub client_addr: [u8; 16],
    pub payload: [u8; MAX_DNS_PAYLOAD],
}

pub mod file_flags {
    /// The requested path string was longer than [`super::limits::MAX_OPEN_PATH`] and was cut.
    pub const REQUESTED_TRUNCATED: u32 = 1;
    /// The opened file's path had more components than [`super::limits::MAX_PATH_DEPTH`]: the
    /// top is cut.
    pub const RESOLVED_TRUNCATED: u32 = 2;
    /// The requested path string could not be read from user memory (or the syscall takes no
    /// path: `open_by_handle_at`). The file was still judged by its resolved path.
    pub const REQUESTED_UNREADABLE: u32 = 4;
    /// Opened through the 32-bit compat ABI.
    pub const COMPAT: u32 = 8;
}

/// An open (any: at `security_file_open`; or a successful open-family syscall, native or 32-bit
/// compat, at syscall exit where trampolines are refused) of a file whose path - after the
/// kernel resolved symlinks,
/// `..`, bind mounts and `/proc/*/root`, rebuilt from the opened `struct file` by walking
/// dentries and mounts up to the opener's mount-namespace root - has a configured anchor name
/// near its leaf. User space applies the exact patterns to that path; the requested string
/// is kept as evidence.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileEvent {
    pub header: EventHeader,
    /// [`file_flags`].
    pub flags: u32,
    /// The opened file's flags (`file->f_flags`: `O_*` as the kernel applied them).
    pub open_flags: u32,
    /// Bytes of `path` used (without the NUL).
    pub path_len: u32,
    /// Number of components in `resolved`.
    pub depth: u32,
    /// The descriptor the open returned (`u32::MAX` when the hook ran before it existed).
    pub fd: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
    /// The path as passed to the syscall.
    pub path: [u8; MAX_OPEN_PATH],
    /// The opened file's path components, leaf first, one NUL-padded slot of
    /// [`limits::PATH_NAME_SLOT`] bytes each.
    pub resolved: [u8; MAX_PATH_DEPTH * PATH_NAME_SLOT],
}

/// FNV-1a (32-bit) of a path component: the key of the anchor map, computed the same way on
/// both sides.
pub const fn anchor_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < name.len() {
        h ^= name[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
}

/// The syscalls a cgroup has made, one bit per syscall number, native ABI and 32-bit compat
/// ABI apart, and what the container runtime made there before the workload's first exec.
///
/// A cgroup created after the probes were loaded starts in [`syscall_phase::SETUP`]: its bits
/// are the runtime's (runc init, crun) until the first exec that is not the runtime
/// re-executing itself; at that exec the kernel moves `native`/`compat` into
/// `setup_native`/`setup_compat` and switches to [`syscall_phase::WORKLOAD`]. The per-syscall
/// path never looks at the phase: it always sets bits in `native`/`compat`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallSet {
    /// [`syscall_phase`]. Written last at the switch, so a reader that sees `WORKLOAD` sees
    /// the setup bits already moved.
    pub phase: u64,
    pub native: [u64; SYSCALL_WORDS],
    pub compat: [u64; SYSCALL_WORDS],
    pub setup_native: [u64; SYSCALL_WORDS],
    pub setup_compat: [u64; SYSCALL_WORDS],
}

/// [`SyscallSet::phase`] values. 0 (the zeroed slot) is the workload, so a slot that is never
/// marked (a cgroup older than the sensor) records everything as the workload's.
pub mod syscall_phase {
    pub const WORKLOAD: u64 = 0;
    pub const SETUP: u64 = 1;
}

/// Per-CPU one-entry cache: the last cgroup seen on this CPU and its syscall-set slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SlotCache {
    pub cgroup_id: u64,
    pub slot: u32,
    pub _pad: u32,
}

/// Kernel-side counters (per-CPU array indexes). Every loss has its own cause.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    RingbufFullFork = 0,
    RingbufFullExec = 1,
    RingbufFullExit = 2,
    RingbufFullCgroup = 3,
    RingbufFullFlow = 4,
    RingbufFullDns = 5,
    RingbufFullFile = 6,
    /// A cgroup made a syscall but no free syscall-set slot was left.
    SyscallSlotsExhausted = 7,
    /// A syscall number beyond [`limits::MAX_SYSCALL_NR`].
    SyscallOutOfRange = 8,
    /// A new flow could not be inserted in the flow map (full).
    FlowMapFull = 9,
    /// Syscall-set slots assigned to new cgroups.
    SyscallSlotsAssigned = 10,
    /// Successful opens examined by the file probe.
    FileOpensChecked = 11,
    /// The opened file could not be found from its descriptor (read fault).
    FilePathUnresolved = 12,
}

pub const NUM_STATS: u32 = 16;

impl Stat {
    pub const ALL: [Stat; 13] = [
        Stat::RingbufFullFork,
        Stat::RingbufFullExec,
        Stat::RingbufFullExit,
        Stat::RingbufFullCgroup,
        Stat::RingbufFullFlow,
        Stat::RingbufFullDns,
        Stat::RingbufFullFile,
        Stat::SyscallSlotsExhausted,
        Stat::SyscallOutOfRange,
        Stat::FlowMapFull,
        Stat::SyscallSlotsAssigned,
        Stat::FileOpensChecked,
        Stat::FilePathUnresolved,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Stat::RingbufFullFork => "ringbuf_full_fork",
            Stat::RingbufFullExec => "ringbuf_full_exec",
            Stat::RingbufFullExit => "ringbuf_full_exit",
            Stat::RingbufFullCgroup => "ringbuf_full_cgroup",
            Stat::RingbufFullFlow => "ringbuf_full_flow",
            Stat::RingbufFullDns => "ringbuf_full_dns",
            Stat::RingbufFullFile => "ringbuf_full_file",
            Stat::SyscallSlotsExhausted => "syscall_slots_exhausted",
            Stat::SyscallOutOfRange => "syscall_out_of_range",
            Stat::FlowMapFull => "flow_map_full",
            Stat::SyscallSlotsAssigned => "syscall_slots_assigned",
            Stat::FileOpensChecked => "file_opens_checked",
            Stat::FilePathUnresolved => "file_path_unresolved",
        }
    }

    /// Whether this counter counts lost data (as opposed to activity).
    pub const fn is_loss(self) -> bool {
        !matches!(self, Stat::SyscallSlotsAssigned | Stat::FileOpensChecked)
    }
}

/// Load-time constants, written into the programs' read-only data by user space
/// (`EbpfLoader::set_global`). Kernel struct offsets come from the running kernel's BTF, never
/// from headers; the verifier sees them as constants.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelConfig {
    /// 32-bit compat syscall test on `pt_regs`: compat when
    /// `(*(u64*)(regs + regs_compat_offset) & regs_compat_mask) == regs_compat_value`.
    pub regs_compat_mask: u64,
    pub regs_compat_value: u64,
    /// Syscall numbers worth a look at exit, native and compat together (one bit each): the
    /// exit program's first test, so every other syscall leaves after one load and a bit test.
    pub exit_interest: [u64; SYSCALL_WORDS],
    pub regs_compat_offset: u32,
    /// `task_struct` fields.
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_mm: u32,
    pub task_signal: u32,
    pub task_exit_code: u32,
    /// `mm_struct.arg_start` / `arg_end`.
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    /// `signal_struct.live` (atomic_t counter).
    pub signal_live: u32,
    /// `linux_binprm.filename`, `linux_binprm.file`.
    pub binprm_filename: u32,
    pub binprm_file: u32,
    /// `cgroup.kn`, `kernfs_node.id`, `cgroup.root`, `cgroup_root.hierarchy_id`, `cgroup.level`.
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    pub cgroup_root: u32,
    pub cgroup_root_hierarchy_id: u32,
    pub cgroup_level: u32,
    /// Hierarchy id of cgroup v2 (the default hierarchy): only its mkdir/rmdir are reported.
    pub dfl_hierarchy_id: u32,
    /// `file.f_path`, `file.f_flags`.
    pub file_f_path: u32,
    pub file_f_flags: u32,
    /// fd -> file: `task_struct.files`, `files_struct.fdt`, `fdtable.fd`, `fdtable.max_fds`.
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_fd: u32,
    pub fdt_max_fds: u32,
    /// Path walk: `path.mnt`, `path.dentry`, `dentry.d_parent`, `dentry.d_name` + `qstr.name`,
    /// `vfsmount.mnt_root`, and `struct mount` (`mnt` embedded, `mnt_parent`, `mnt_mountpoint`).
    pub path_mnt: u32,
    pub path_dentry: u32,
    pub dentry_d_parent: u32,
    pub dentry_d_name_name: u32,
    pub vfsmount_mnt_root: u32,
    pub mount_mnt: u32,
    pub mount_mnt_parent: u32,
    pub mount_mnt_mountpoint: u32,
    /// The current task's cgroup v2 id by direct reads: `task_struct.cgroups`,
    /// `css_set.dfl_cgrp` (then `cgroup_kn` and `kernfs_node_id` above).
    pub task_cgroups: u32,
    pub css_set_dfl_cgrp: u32,
    /// Offsets in `pt_regs` of the first four syscall arguments (x86-64: di, si, dx, r10).
    pub regs_arg0: u32,
    pub regs_arg1: u32,
    pub regs_arg2: u32,
    pub regs_arg3: u32,
    /// Syscall numbers of the open family on this architecture, native and 32-bit compat;
    /// `u32::MAX` if absent.
    pub nr_open: u32,
    pub nr_creat: u32,
    pub nr_openat: u32,
    pub nr_openat2: u32,
    pub nr_open_by_handle_at: u32,
    pub nr_compat_open: u32,
    pub nr_compat_creat: u32,
    pub nr_compat_openat: u32,
    pub nr_compat_openat2: u32,
    pub nr_compat_open_by_handle_at: u32,
    /// At syscall exit: the syscall number in `pt_regs` (x86-64 `orig_ax`, arm64 `syscallno`),
    /// the first argument (x86-64 `di`; arm64 `orig_x0`, since `x0` holds the return value by
    /// then), and the first two arguments of a compat syscall (ia32 `bx`, `cx`; AArch32
    /// `orig_x0`, `x1`).
    pub regs_syscall_nr: u32,
    pub regs_exit_arg0: u32,
    pub regs_compat_arg0: u32,
    pub regs_compat_arg1: u32,
    /// Native listen(2) number; listen's socket: `file.private_data` (the `struct socket`),
    /// `socket.sk`, and `sock_common.skc_num` (local port) / `skc_family` in `struct sock`.
    pub nr_listen: u32,
    pub file_private_data: u32,
    pub socket_sk: u32,
    pub skc_num: u32,
    pub skc_family: u32,
    /// Whether any sensitive path anchor is configured (0 = skip the path walk entirely).
    pub file_anchors: u32,
}

impl KernelConfig {
    /// All zero: the placeholder the kernel object is built with.
    pub const fn zeroed() -> Self {
        // SAFETY: plain integers; all-zero is a valid value.
        unsafe { core::mem::zeroed() }
    }
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: all of these are repr(C) plain data with explicit padding; every bit pattern is valid.
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for ListenerKey {}
    unsafe impl aya::Pod for FlowStats {}
    unsafe impl aya::Pod for SyscallSet {}
    unsafe impl aya::Pod for SlotCache {}
    unsafe impl aya::Pod for KernelConfig {}
}

// Layout checks: a size change here is an ABI change between kernel and user space.
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<EventHeader>() == 32);
    assert!(size_of::<ForkEvent>() == 40);
    assert!(size_of::<ExitEvent>() == 40);
    assert!(
        size_of::<ExecEvent>()
            == 32 + 24 + COMM_LEN + MAX_PATH + MAX_ARGS + 8 + MAX_PATH_DEPTH * PATH_NAME_SLOT
    );
    assert!(size_of::<CgroupEvent>() == 32 + 24 + MAX_PATH);
    assert!(size_of::<FlowKey>() == 32);
    assert!(size_of::<ListenerKey>() == 16);
    assert!(size_of::<FlowStats>() == 72);
    assert!(size_of::<FlowEvent>() == 32 + 32 + 8 + 16);
    assert!(size_of::<DnsEvent>() == 32 + 16 + 32 + MAX_DNS_PAYLOAD);
    assert!(
        size_of::<FileEvent>()
            == 32 + 24 + COMM_LEN + MAX_OPEN_PATH + MAX_PATH_DEPTH * PATH_NAME_SLOT
    );
    assert!(MAX_OPEN_PATH.is_power_of_two());
    assert!(PATH_NAME_SLOT.is_power_of_two());
    assert!(size_of::<SyscallSet>() == 8 + 4 * 8 * SYSCALL_WORDS);
    assert!(size_of::<SlotCache>() == 16);
    assert!(size_of::<KernelConfig>().is_multiple_of(8));
    assert!((Stat::FilePathUnresolved as u32) < NUM_STATS);
    // Kind tags are 1..=N in `EventKind::ALL` order: user space indexes its counters by them
    // (and `try_from` reads `ALL`, so a kind left out of it would be refused as unknown).
    let mut i = 0;
    while i < EventKind::ALL.len() {
        assert!(EventKind::ALL[i] as usize == i + 1);
        i += 1;
    }
    assert!(MAX_DNS_PAYLOAD.is_power_of_two());
    assert!(MAX_PATH.is_power_of_two());
    assert!(MAX_ARGS.is_power_of_two());
};
