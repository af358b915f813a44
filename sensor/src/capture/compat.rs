//! What each kernel program needs from the running kernel, and what the sensor loses without it.
//!
//! The loader attaches every program in [`PROBES`]; a program the kernel refuses is skipped with
//! one warning when it is [`Need::Optional`], and stops the sensor when it is [`Need::Required`]
//! (the sensor would be wrong, not just blind in one area, without it). Support is decided by
//! loading and attaching on the running kernel, never by comparing version strings: the
//! `since` versions here document upstream's minimum for the reader (`sensor doctor`,
//! docs/kernels.md); distribution kernels backport and disable features independently.

use aya::programs::CgroupSkbAttachType;
use serde::Serialize;

/// Where a program hooks in.
#[derive(Debug, Clone, Copy)]
pub enum Hook {
    RawTracepoint(&'static str),
    /// BTF-enabled raw tracepoint (typed arguments, plain loads).
    BtfTracepoint(&'static str),
    /// fentry on a kernel function (a BPF trampoline).
    FEntry(&'static str),
    CgroupSockAddr,
    CgroupSkb(CgroupSkbAttachType),
}

impl Hook {
    pub fn describe(self) -> String {
        match self {
            Hook::RawTracepoint(tp) => format!("raw_tracepoint/{tp}"),
            Hook::BtfTracepoint(tp) => format!("tp_btf/{tp}"),
            Hook::FEntry(f) => format!("fentry/{f}"),
            Hook::CgroupSockAddr => "cgroup sock_addr on the cgroup2 root".to_string(),
            Hook::CgroupSkb(CgroupSkbAttachType::Ingress) => {
                "cgroup_skb/ingress on the cgroup2 root".to_string()
            }
            Hook::CgroupSkb(CgroupSkbAttachType::Egress) => {
                "cgroup_skb/egress on the cgroup2 root".to_string()
            }
        }
    }
}

/// Whether the sensor can run without a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "need", content = "without")]
pub enum Need {
    /// Without it the sensor refuses to start (the reason is the text).
    Required(&'static str),
    /// Without it the sensor runs and this is what it does not capture.
    Optional(&'static str),
}

impl Need {
    pub fn is_required(self) -> bool {
        matches!(self, Need::Required(_))
    }

    /// What is lost (or why the sensor cannot run) without the program.
    pub fn without(self) -> &'static str {
        match self {
            Need::Required(why) | Need::Optional(why) => why,
        }
    }
}

/// Another program that captures the same facts, attached when the preferred one is refused
/// (for any reason, EPERM included: a kernel may forbid trampolines to root).
#[derive(Debug, Clone, Copy)]
pub struct Fallback {
    pub program: &'static str,
    pub hook: Hook,
    pub needs: &'static str,
    /// What using it instead costs.
    pub cost: &'static str,
}

/// One kernel program: its hook, what it captures, what it needs, and what is lost without it.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    pub program: &'static str,
    pub hook: Hook,
    pub fallback: Option<Fallback>,
    pub captures: &'static str,
    /// Program type and kernel features it relies on.
    pub needs: &'static str,
    /// Upstream kernel version that introduced what it needs (documentation only).
    pub since: &'static str,
    pub need: Need,
}

/// The program type is 4.17 (connect) / 4.18 (sendmsg); `bpf_get_socket_cookie` in it (DNS
/// answers -> asking pid) 5.7; the flow table's first-seen flag an atomic exchange, 5.12.
const NETWORK_SOCK_ADDR: &str =
    "BPF_PROG_TYPE_CGROUP_SOCK_ADDR, bpf_get_socket_cookie (5.7), atomic xchg (5.12), cgroup2";
const NETWORK_SKB: &str = "BPF_PROG_TYPE_CGROUP_SKB, atomic xchg (5.12), cgroup2";
const RAW_TRACEPOINT: &str = "BPF_PROG_TYPE_RAW_TRACEPOINT, bpf_probe_read_kernel (5.5)";

pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        program: "sys_enter",
        fallback: None,
        hook: Hook::BtfTracepoint("sys_enter"),
        captures: "syscall sets per cgroup, listening sockets",
        needs: "BPF_PROG_TYPE_TRACING (tp_btf, 5.5), kernel BTF, bpf_get_current_task_btf (5.11), atomic or (5.12)",
        since: "5.12",
        need: Need::Required(
            "syscall sets are the basis of profiles and seccomp drafts; a draft learned without them would refuse every syscall",
        ),
    },
    ProbeSpec {
        program: "file_open",
        fallback: Some(Fallback {
            program: "sys_exit",
            hook: Hook::BtfTracepoint("sys_exit"),
            needs: "BPF_PROG_TYPE_TRACING (tp_btf, 5.5), kernel BTF",
            cost: "a program on every syscall exit; misses io_uring opens",
        }),
        hook: Hook::FEntry("security_file_open"),
        captures: "sensitive file opens, judged on the opened file (symlinks, .., /proc/*/root resolved)",
        needs: "BPF_PROG_TYPE_TRACING (fentry: BPF trampolines, 5.5; arm64 6.0), kernel BTF, bpf_task_pt_regs (5.15)",
        since: "5.15",
        need: Need::Optional(
            "no sensitive file reads: no file events, no files in profiles, no token or credential anomalies",
        ),
    },
    ProbeSpec {
        program: "sched_process_fork",
        fallback: None,
        hook: Hook::RawTracepoint("sched_process_fork"),
        captures: "process creation",
        needs: RAW_TRACEPOINT,
        since: "5.5",
        need: Need::Required("process ancestry in anomalies would be wrong"),
    },
    ProbeSpec {
        program: "sched_process_exec",
        fallback: None,
        hook: Hook::RawTracepoint("sched_process_exec"),
        captures: "exec with argv",
        needs: RAW_TRACEPOINT,
        since: "5.5",
        need: Need::Required("profiles would have no executables and exec rules could not run"),
    },
    ProbeSpec {
        program: "sched_process_exit",
        fallback: None,
        hook: Hook::RawTracepoint("sched_process_exit"),
        captures: "process exit codes",
        needs: RAW_TRACEPOINT,
        since: "5.5",
        need: Need::Required(
            "the process table would keep every dead process and reuse pids wrongly",
        ),
    },
    ProbeSpec {
        program: "cgroup_mkdir",
        fallback: None,
        hook: Hook::RawTracepoint("cgroup_mkdir"),
        captures: "new container cgroups",
        needs: RAW_TRACEPOINT,
        since: "5.5",
        need: Need::Optional(
            "new containers are found on their first event instead of at creation",
        ),
    },
    ProbeSpec {
        program: "cgroup_rmdir",
        fallback: None,
        hook: Hook::RawTracepoint("cgroup_rmdir"),
        captures: "removed container cgroups",
        needs: RAW_TRACEPOINT,
        since: "5.5",
        need: Need::Required(
            "a finished container's syscall set would be neither drained nor its slot reused",
        ),
    },
    ProbeSpec {
        program: "connect4",
        fallback: None,
        hook: Hook::CgroupSockAddr,
        captures: "IPv4 connects",
        needs: NETWORK_SOCK_ADDR,
        since: "5.12",
        need: Need::Optional("no IPv4 connects: IPv4 egress is missing from profiles and drafts"),
    },
    ProbeSpec {
        program: "connect6",
        fallback: None,
        hook: Hook::CgroupSockAddr,
        captures: "IPv6 connects",
        needs: NETWORK_SOCK_ADDR,
        since: "5.12",
        need: Need::Optional("no IPv6 connects: IPv6 egress is missing from profiles and drafts"),
    },
    ProbeSpec {
        program: "sendmsg4",
        fallback: None,
        hook: Hook::CgroupSockAddr,
        captures: "IPv4 UDP sends",
        needs: NETWORK_SOCK_ADDR,
        since: "5.12",
        need: Need::Optional(
            "no unconnected IPv4 UDP peers (DNS queries included): DNS answers lose their process",
        ),
    },
    ProbeSpec {
        program: "sendmsg6",
        fallback: None,
        hook: Hook::CgroupSockAddr,
        captures: "IPv6 UDP sends",
        needs: NETWORK_SOCK_ADDR,
        since: "5.12",
        need: Need::Optional("no unconnected IPv6 UDP peers"),
    },
    ProbeSpec {
        program: "skb_ingress",
        fallback: None,
        hook: Hook::CgroupSkb(CgroupSkbAttachType::Ingress),
        captures: "TCP accepts (SYN to a listener), bytes received per flow, DNS answers",
        needs: NETWORK_SKB,
        since: "5.12",
        need: Need::Optional(
            "no ingress, no received byte counts and no DNS answers (egress has addresses, not names)",
        ),
    },
    ProbeSpec {
        program: "skb_egress",
        fallback: None,
        hook: Hook::CgroupSkb(CgroupSkbAttachType::Egress),
        captures: "bytes sent per flow",
        needs: NETWORK_SKB,
        since: "5.12",
        need: Need::Optional("no sent byte counts: volume and large-payload rules cannot fire"),
    },
];

/// Kernel features the whole object needs before any program loads; without one the sensor
/// cannot start at all, and says which.
pub const OBJECT_NEEDS: &[(&str, &str)] = &[
    ("kernel BTF (CONFIG_DEBUG_INFO_BTF)", "5.2"),
    ("BPF ring buffer (BPF_MAP_TYPE_RINGBUF)", "5.8"),
    ("BPF global variables (.rodata maps)", "5.2"),
    ("LRU hash maps", "4.10"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_listed_once() {
        let mut names: Vec<_> = PROBES.iter().map(|p| p.program).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROBES.len());
    }

    #[test]
    fn every_probe_says_what_is_lost_without_it() {
        for p in PROBES {
            assert!(!p.need.without().is_empty(), "{}", p.program);
            assert!(
                p.since.split('.').all(|n| n.parse::<u32>().is_ok()),
                "{}",
                p.since
            );
        }
    }
}
