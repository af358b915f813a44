//! `unexpected-syscall`: a syscall name (per ABI) outside the baseline; escape, injection and
//! module syscalls rate higher.

use std::collections::BTreeMap;

use super::helpers::{add_completeness, count_label, mitre, summary};
use crate::detect::model::{Evidence, Finding, Mitre, RuleId, Severity};
use crate::profile::model::ApplicationProfile;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Abi {
    Native,
    Compat,
}

/// Syscalls that are exploitation or escape primitives rather than ordinary behaviour, with
/// the technique where one fits.
pub(super) fn dangerous_syscall(name: &str) -> Option<Option<Mitre>> {
    Some(match name {
        "ptrace" | "process_vm_readv" | "process_vm_writev" => mitre(
            "T1055.008",
            "Process Injection: Ptrace System Calls",
            "Defense Evasion",
        ),
        "init_module" | "finit_module" | "delete_module" => mitre(
            "T1547.006",
            "Boot or Logon Autostart Execution: Kernel Modules and Extensions",
            "Persistence",
        ),
        "unshare" | "setns" | "mount" | "fsmount" | "move_mount" | "pivot_root" | "chroot"
        | "open_by_handle_at" => mitre("T1611", "Escape to Host", "Privilege Escalation"),
        "bpf" | "kexec_load" | "kexec_file_load" | "userfaultfd" | "keyctl" | "add_key"
        | "request_key" | "perf_event_open" => None,
        _ => return None,
    })
}

/// Prefix of a compat syscall's subject (`compat:read`).
pub(super) const COMPAT_SUBJECT: &str = "compat:";

/// The syscall an `unexpected-syscall` subject names, and whether it is the compat ABI's.
pub fn syscall_of_subject(subject: &str) -> (&str, bool) {
    match subject.strip_prefix(COMPAT_SUBJECT) {
        Some(name) => (name, true),
        None => (subject, false),
    }
}

pub(super) fn syscall_finding(
    abi: Abi,
    name: &str,
    baseline: &[String],
    all_new: &[&str],
    profile: &ApplicationProfile,
) -> Finding {
    let dangerous = dangerous_syscall(name);
    let no_compat_baseline = abi == Abi::Compat && baseline.is_empty();
    let severity = if dangerous.is_some() || no_compat_baseline {
        Severity::High
    } else {
        Severity::Medium
    };
    let message = match abi {
        Abi::Native => format!("System call {name} used, which the baseline never used."),
        Abi::Compat if no_compat_baseline => format!(
            "32-bit compat system call {name} used in a workload whose baseline has no compat \
             system calls at all (a 32-bit program, or an attempt to slip past native-only \
             seccomp filters)."
        ),
        Abi::Compat => {
            format!("32-bit compat system call {name} used, which the baseline never used.")
        }
    };
    let (abi_name, subject) = match abi {
        Abi::Native => ("native", name.to_string()),
        Abi::Compat => ("compat (32-bit)", format!("{COMPAT_SUBJECT}{name}")),
    };
    let mut baseline_ev = BTreeMap::from([
        (
            "native".to_string(),
            count_label(profile.syscalls.native.len(), "syscall"),
        ),
        (
            "compat".to_string(),
            count_label(profile.syscalls.compat.len(), "syscall"),
        ),
    ]);
    add_completeness(&mut baseline_ev, profile, false, "");
    let observed = BTreeMap::from([
        ("syscall".to_string(), name.to_string()),
        ("abi".to_string(), abi_name.to_string()),
        (
            "newInThisSet".to_string(),
            summary(all_new.len(), all_new.iter().map(|s| s.to_string()), 5),
        ),
    ]);
    Finding {
        rule: RuleId::UnexpectedSyscall,
        kubescape_rule: Some("R0003".into()),
        severity,
        mitre: dangerous.flatten(),
        message,
        subject,
        evidence: Evidence {
            baseline: baseline_ev,
            observed,
        },
    }
}
