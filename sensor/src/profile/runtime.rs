//! What the container runtime does inside a container's cgroup before the program starts.
//!
//! The kernel aggregates syscalls and execs per cgroup, and runc (or crun) runs its `init` step
//! in the container's cgroup: the re-exec of itself from a memfd, its Go runtime's housekeeping,
//! then `execve` of the entrypoint. Part of that varies from one start to the next (measured
//! on this project's test bed, 48 starts of the same pod: `sched_yield` in 28, `tgkill` in 18,
//! both Go preemption), so a baseline learned from a few starts would report the runtime's own
//! noise as the workload's deviation.
//!
//! Two consequences, both documented in docs/profiles.md:
//! - [`RUNTIME_SYSCALLS`] are never reported as unexpected and always allowed by seccomp drafts
//!   (they are also in the container runtime's default seccomp profile, so allowing them gives
//!   away nothing RuntimeDefault does not).
//! - [`is_runtime_reexec`] execs are neither learned nor judged.

/// Syscalls a container start may make in the container's cgroup, or right after the seccomp
/// filter is loaded and before the entrypoint runs, depending on timing: Go runtime signals and
/// scheduling (`tgkill`, `sched_yield`, `futex`, `nanosleep`, `rt_sig*`, `sigaltstack`,
/// `getpid`, `gettid`, `madvise`), the final exec (`execve`, `execveat`, and `access` for the
/// binary lookup), thread/process exit, and `unlink` (runc 1.1's `try_bindfd` removes its
/// temporary bind-mount target of `/proc/self/exe` after it may already have joined the cgroup).
pub const RUNTIME_SYSCALLS: &[&str] = &[
    "access",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "futex",
    "getpid",
    "gettid",
    "madvise",
    "nanosleep",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_yield",
    "sigaltstack",
    "tgkill",
    "unlink",
];

/// Whether `name` is one of [`RUNTIME_SYSCALLS`].
pub fn is_runtime_syscall(name: &str) -> bool {
    RUNTIME_SYSCALLS.contains(&name)
}

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
        for name in RUNTIME_SYSCALLS {
            assert!(syscalls::x86_64::Sysno::from_str(name).is_ok(), "{name}");
        }
    }
}
