//! What the container runtime does inside a container's cgroup, and what of it a seccomp
//! profile must allow.
//!
//! The kernel aggregates syscalls per cgroup, and runc's `init` (or crun) runs in the
//! container's cgroup before the workload: namespaces, mounts, `pivot_root`, hostname, keyring,
//! capabilities, then `execve` of the entrypoint. The kernel keeps that part apart (the
//! *runtime setup*, everything before the workload's first exec; `sensor_common::SyscallSet`),
//! so profiles and drafts are made of what the workload did. Most of the setup runs before the
//! seccomp filter exists and needs no allowance; what runs after the filter is installed and
//! before the exec is the [`RUNTIME_FLOOR`], which every draft allows. Where a runtime
//! installs the filter (runc 1.1/1.2, `libcontainer/standard_init_linux.go`): without
//! `noNewPrivileges` - the Kubernetes default, `allowPrivilegeEscalation` unset - before it
//! drops capabilities and switches user; with it, just before the exec. crun installs it after
//! its mounts, before dropping capabilities.
//!
//! Documented in docs/profiles.md:
//! - [`RUNTIME_FLOOR`] is always allowed by seccomp drafts and never reported as unexpected.
//! - [`is_runtime_reexec`] execs are neither learned nor judged.
//! - [`UPGRADE_SETUP_ONLY`]: how a version-1 profile (learned before the split) is upgraded.

/// A container runtime whose start-up the floor covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// runc 1.1 and 1.2 (under containerd's `runc.v2` shim, CRI-O, `ctr`).
    Runc,
    /// crun 1.x (CRI-O's default on some distributions).
    Crun,
}

/// One syscall the runtime may make after the seccomp filter is installed and before (or as)
/// it executes the workload, and why.
#[derive(Debug, Clone, Copy)]
pub struct FloorEntry {
    pub name: &'static str,
    pub runtimes: &'static [Runtime],
    pub why: &'static str,
}

use Runtime::{Crun, Runc};

const fn entry(name: &'static str, runtimes: &'static [Runtime], why: &'static str) -> FloorEntry {
    FloorEntry {
        name,
        runtimes,
        why,
    }
}

const BOTH: &[Runtime] = &[Runc, Crun];
const RUNC: &[Runtime] = &[Runc];
const CRUN: &[Runtime] = &[Crun];

/// What a container start needs after its seccomp filter is installed: the union over the
/// supported runtimes, each entry with the runtimes that need it and why. Seen on this
/// project's test bed with a `SCMP_ACT_LOG` filter (task `seccomp.mode == 2` in the container's
/// cgroup before the exec; runc 1.1.5, crun 1.8.1, with and without `noNewPrivileges`), plus
/// what runc 1.2's source does there (`close_range`, `execveat` for `runc-dmz`). A draft that
/// missed one of these fails the container with "operation not permitted" before the workload
/// runs. None of them builds a container (no `mount`, `unshare`, `pivot_root`, `setns`,
/// `sethostname`, `keyctl`): those run before the filter.
#[rustfmt::skip]
pub const RUNTIME_FLOOR: &[FloorEntry] = &[
    entry("access",         RUNC, "looking the entrypoint up on PATH (older Go, exec.LookPath)"),
    entry("capget",         RUNC, "reading the capability sets before dropping to the container's"),
    entry("capset",         BOTH, "dropping to the container's capability set"),
    entry("chdir",          RUNC, "changing to the container's working directory"),
    entry("close",          BOTH, "closing the runtime's own descriptors before the exec"),
    entry("close_range",    RUNC, "closing inherited descriptors in one call (runc 1.2)"),
    entry("epoll_ctl",      RUNC, "Go's poller for runc's pipes and the exec fifo"),
    entry("epoll_pwait",    RUNC, "Go's poller for runc's pipes and the exec fifo"),
    entry("execve",         BOTH, "executing the entrypoint"),
    entry("execveat",       RUNC, "executing through a descriptor (runc 1.2's runc-dmz)"),
    entry("exit",           BOTH, "a thread of a start that fails"),
    entry("exit_group",     BOTH, "a start that fails exits"),
    entry("faccessat",      RUNC, "checking the entrypoint is executable (eaccess)"),
    entry("faccessat2",     RUNC, "checking the entrypoint is executable (eaccess)"),
    entry("fcntl",          RUNC, "marking inherited descriptors close-on-exec"),
    entry("fstat",          RUNC, "reading /proc/self/fd to close inherited descriptors"),
    entry("fstatfs",        RUNC, "checking that /proc/self/fd is on procfs before trusting it"),
    entry("futex",          RUNC, "Go runtime (runc is Go): thread synchronisation"),
    entry("getcwd",         RUNC, "resolving a relative entrypoint (exec.LookPath)"),
    entry("getdents64",     RUNC, "reading /proc/self/fd to close inherited descriptors"),
    entry("getpid",         RUNC, "checking its parent and signalling itself (Go runtime)"),
    entry("getppid",        RUNC, "checking the parent runc is still alive before the exec"),
    entry("gettid",         RUNC, "Go runtime: thread-directed signals"),
    entry("madvise",        RUNC, "Go runtime: returning memory"),
    entry("mmap",           RUNC, "Go runtime: allocating memory"),
    entry("nanosleep",      RUNC, "Go runtime: scheduler back-off"),
    entry("newfstatat",     RUNC, "looking the entrypoint up (exec.LookPath) and the fifo"),
    entry("openat",         RUNC, "opening the exec fifo and /proc/self/fd"),
    entry("prctl",          BOTH, "keeping capabilities across the user switch, the parent-death signal"),
    entry("read",           RUNC, "reading /proc/self/fd and the sync pipe"),
    entry("rt_sigaction",   CRUN, "resetting signal handlers before the exec"),
    entry("rt_sigprocmask", BOTH, "unblocking signals before the exec (Go runtime for runc)"),
    entry("rt_sigreturn",   RUNC, "Go runtime: returning from a preemption signal"),
    entry("sched_yield",    RUNC, "Go runtime: scheduler"),
    entry("setgid",         RUNC, "switching to the container's group"),
    entry("setgroups",      RUNC, "setting the container's supplementary groups"),
    entry("setresgid",      CRUN, "switching to the container's group"),
    entry("setresuid",      CRUN, "switching to the container's user"),
    entry("setuid",         RUNC, "switching to the container's user"),
    entry("sigaltstack",    RUNC, "Go runtime: signal stacks for new threads"),
    entry("tgkill",         RUNC, "Go runtime: preempting a goroutine"),
    entry("write",          BOTH, "signalling the parent through the exec fifo / sync pipe"),
];

/// Whether `name` is in [`RUNTIME_FLOOR`].
pub fn is_floor_syscall(name: &str) -> bool {
    RUNTIME_FLOOR.iter().any(|e| e.name == name)
}

/// The floor's syscall names.
pub fn floor_names() -> impl Iterator<Item = &'static str> {
    RUNTIME_FLOOR.iter().map(|e| e.name)
}

/// Syscalls runc and crun make to build a container, before its seccomp filter exists, and a
/// workload has little reason to make. A version-1 profile (learned before the runtime's setup
/// was told apart) has them mixed into the workload's set: the upgrade moves these, and only
/// these, into the runtime setup, marked `inferred` (`profile::upgrade`). A workload that
/// really makes one is reported once as unexpected, and can be accepted.
pub const UPGRADE_SETUP_ONLY: &[&str] = &[
    "keyctl",
    "mount",
    "pivot_root",
    "setdomainname",
    "sethostname",
    "setns",
    "umount2",
    "unshare",
];

const RUNTIMES: &[&str] = &["runc", "crun"];

/// The runtime re-executing itself (`runc init` from a memfd, `/dev/fd/N` or `/proc/self/fd/N`
/// or `/proc/self/exe`): exactly two arguments `<runtime> init`, and the resolved executable,
/// when known, is the runtime or its memfd copy. A program that only borrows the argv (a
/// binary named `runc` elsewhere, extra arguments) does not match.
pub fn is_runtime_reexec(path: &str, exe: Option<&str>, args: &[String]) -> bool {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let [argv0, init] = args else {
        return false;
    };
    let reexec_path = path == "/proc/self/exe"
        || ["/dev/fd/", "/proc/self/fd/"].iter().any(|d| {
            path.strip_prefix(d)
                .is_some_and(|n| n.parse::<u32>().is_ok())
        });
    let exe_ok = exe.is_none_or(|x| {
        RUNTIMES.contains(&base(x).as_str()) || x.contains("runc_cloned") || x.starts_with("memfd:")
    });
    init == "init" && RUNTIMES.contains(&base(argv0).as_str()) && reexec_path && exe_ok
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn runc_reexec_shapes_seen_on_the_test_bed() {
        let args = s(&["/usr/sbin/runc", "init"]);
        assert!(is_runtime_reexec("/dev/fd/6", None, &args));
        assert!(is_runtime_reexec(
            "/proc/self/exe",
            Some("/usr/sbin/runc"),
            &args
        ));
        assert!(is_runtime_reexec(
            "/proc/self/fd/9",
            None,
            &s(&["crun", "init"])
        ));
    }

    #[test]
    fn look_alikes_are_not_the_runtime() {
        let args = s(&["/usr/sbin/runc", "init"]);
        assert!(
            !is_runtime_reexec("/tmp/runc", None, &args),
            "not a re-exec path"
        );
        assert!(
            !is_runtime_reexec("/dev/fd/6", Some("/tmp/payload"), &args),
            "other binary"
        );
        assert!(!is_runtime_reexec("/dev/fd/x", None, &args));
        assert!(!is_runtime_reexec(
            "/dev/fd/6",
            None,
            &s(&["runc", "init", "-x"])
        ));
        assert!(!is_runtime_reexec(
            "/dev/fd/6",
            None,
            &s(&["python3", "init"])
        ));
        assert!(!is_runtime_reexec("/dev/fd/6", None, &s(&["runc", "exec"])));
    }

    #[test]
    fn the_floor_is_known_to_the_syscall_tables() {
        // aarch64 lacks some (`access`): seccomp drafts keep only the names a node knows.
        for e in RUNTIME_FLOOR {
            assert!(
                syscalls::x86_64::Sysno::from_str(e.name).is_ok(),
                "{}",
                e.name
            );
            assert!(!e.runtimes.is_empty() && !e.why.is_empty(), "{}", e.name);
        }
    }

    #[test]
    fn docs_profiles_md_documents_exactly_this_floor() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/profiles.md");
        let text = std::fs::read_to_string(path).expect("docs/profiles.md");
        let section = text
            .split("### The runtime floor")
            .nth(1)
            .expect("the section");
        let rows: Vec<(String, String)> = section
            .lines()
            .skip_while(|l| !l.starts_with("| `"))
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').to_string(), cells[2].to_string())
            })
            .collect();
        let name = |r: &Runtime| match r {
            Runtime::Runc => "runc",
            Runtime::Crun => "crun",
        };
        let want: Vec<(String, String)> = RUNTIME_FLOOR
            .iter()
            .map(|e| {
                let rts: Vec<&str> = e.runtimes.iter().map(name).collect();
                (e.name.to_string(), rts.join(", "))
            })
            .collect();
        assert_eq!(
            rows, want,
            "docs/profiles.md's floor table and RUNTIME_FLOOR differ"
        );
    }

    #[test]
    fn the_floor_is_sorted_unique_and_builds_no_container() {
        let names: Vec<&str> = floor_names().collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
        for name in UPGRADE_SETUP_ONLY {
            assert!(!is_floor_syscall(name), "{name} is a setup primitive");
        }
    }
}
