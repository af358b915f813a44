//! Seccomp drafts: the OCI / kubelet `Localhost` profile JSON ([`super::spo`] makes the same rules
//! a Security Profiles Operator `SeccompProfile` object).
//!
//! The profile keeps syscall names only, so a draft depends on the profile and the node
//! architecture alone: every node of one architecture gets the same bytes.
//!
//! - Enforce: `defaultAction: SCMP_ACT_ERRNO` with `defaultErrnoRet: 1` (EPERM): a syscall the
//!   container was never seen making fails with "operation not permitted".
//! - Audit: `defaultAction: SCMP_ACT_LOG`: such a syscall is allowed and logged by the kernel
//!   (audit log / `dmesg`), which is how a team checks the draft before enforcing it.
//!
//! The JSON stays exactly the OCI format (runtimes parse it): caveats go through
//! [`super::draft_notes`] and [`unknown_syscalls`], which the CLI and gRPC print next to it.

use std::collections::BTreeSet;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::profile::{
    model::{ApplicationProfile, ProfileKey},
    runtime,
};

/// The architecture of the node the draft is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeArch {
    X86_64,
    Aarch64,
}

impl NodeArch {
    /// The architecture this binary was built for, i.e. of the node it runs on. The sensor
    /// supports x86_64 and aarch64 nodes only; a build for another target says x86_64.
    pub const fn current() -> NodeArch {
        if cfg!(target_arch = "aarch64") {
            NodeArch::Aarch64
        } else {
            NodeArch::X86_64
        }
    }

    /// The kernel's name of the architecture (`uname -m`).
    pub fn machine(self) -> &'static str {
        match self {
            NodeArch::X86_64 => "x86_64",
            NodeArch::Aarch64 => "aarch64",
        }
    }

    /// The architecture `uname -m` names, if the sensor supports it.
    pub fn from_machine(machine: &str) -> Option<NodeArch> {
        match machine {
            "x86_64" => Some(NodeArch::X86_64),
            "aarch64" => Some(NodeArch::Aarch64),
            _ => None,
        }
    }

    /// The seccomp architectures of the node: the native one and the 32-bit ABIs its kernel
    /// runs (so a 32-bit binary in the container gets the same allow-list, not a bypass).
    pub fn architectures(self) -> Vec<ScmpArch> {
        match self {
            NodeArch::X86_64 => vec![ScmpArch::X86_64, ScmpArch::X86, ScmpArch::X32],
            NodeArch::Aarch64 => vec![ScmpArch::Aarch64, ScmpArch::Arm],
        }
    }

    /// Whether `name` is a syscall of the native ABI (`compat == false`) or of the 32-bit
    /// compat ABI, per the maintained `syscalls` crate tables.
    pub fn knows(self, name: &str, compat: bool) -> bool {
        match (self, compat) {
            (NodeArch::X86_64, false) => syscalls::x86_64::Sysno::from_str(name).is_ok(),
            (NodeArch::X86_64, true) => syscalls::x86::Sysno::from_str(name).is_ok(),
            (NodeArch::Aarch64, false) => syscalls::aarch64::Sysno::from_str(name).is_ok(),
            (NodeArch::Aarch64, true) => syscalls::arm::Sysno::from_str(name).is_ok(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeccompMode {
    /// Deny what was not observed (EPERM).
    Enforce,
    /// Log what was not observed, deny nothing.
    Audit,
}

impl SeccompMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SeccompMode::Enforce => "enforce",
            SeccompMode::Audit => "audit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompAction {
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScmpArch {
    #[serde(rename = "SCMP_ARCH_X86_64")]
    X86_64,
    #[serde(rename = "SCMP_ARCH_X86")]
    X86,
    #[serde(rename = "SCMP_ARCH_X32")]
    X32,
    #[serde(rename = "SCMP_ARCH_AARCH64")]
    Aarch64,
    #[serde(rename = "SCMP_ARCH_ARM")]
    Arm,
}

/// The OCI runtime-spec seccomp profile, as kubelet reads it from its seccomp directory for a
/// pod's `localhostProfile`. Exactly these fields, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeccompProfile {
    pub default_action: SeccompAction,
    /// EPERM (1) in enforce mode; absent in audit mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    pub architectures: Vec<ScmpArch>,
    pub syscalls: Vec<SyscallRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyscallRule {
    pub names: Vec<String>,
    pub action: SeccompAction,
}

const EPERM: u32 = 1;

/// The draft for `profile` on a node of architecture `arch`: one `SCMP_ACT_ALLOW` rule with the
/// workload's native and compat syscall names (sorted, deduplicated), keeping only names the
/// architecture's tables know ([`unknown_syscalls`] lists the others, e.g. `syscall_511` from a
/// kernel newer than the tables). The runtime's setup before the workload's first exec is not
/// in it (the filter does not exist yet then); what the runtime does after the filter is
/// installed ([`runtime::RUNTIME_FLOOR`]) is added, so the container starts. A profile without
/// syscalls gives an empty `syscalls` list.
pub fn seccomp_draft(
    profile: &ApplicationProfile,
    mode: SeccompMode,
    arch: NodeArch,
) -> SeccompProfile {
    let mut names = allowed_syscalls(profile, arch);
    if !names.is_empty() {
        let floor = runtime::floor_names().filter(|n| arch.knows(n, false));
        names.extend(floor.map(|n| n.to_string()));
        names.sort_unstable();
        names.dedup();
    }
    let (default_action, default_errno_ret) = match mode {
        SeccompMode::Enforce => (SeccompAction::Errno, Some(EPERM)),
        SeccompMode::Audit => (SeccompAction::Log, None),
    };
    SeccompProfile {
        default_action,
        default_errno_ret,
        architectures: arch.architectures(),
        syscalls: if names.is_empty() {
            Vec::new()
        } else {
            vec![SyscallRule {
                names,
                action: SeccompAction::Allow,
            }]
        },
    }
}

/// The [`runtime::RUNTIME_FLOOR`] names a draft of `profile` allows although the workload was
/// not seen making them (sorted): what the draft grants for the container runtime alone. Empty
/// for a profile without syscalls (its draft allows nothing).
pub fn floor_added(profile: &ApplicationProfile, arch: NodeArch) -> Vec<&'static str> {
    let workload = allowed_syscalls(profile, arch);
    if workload.is_empty() {
        return Vec::new();
    }
    runtime::floor_names()
        .filter(|n| arch.knows(n, false) && !workload.iter().any(|w| w == n))
        .collect()
}

/// The profile's syscall names (native and compat) that `arch`'s tables know, sorted, unique.
pub fn allowed_syscalls(profile: &ApplicationProfile, arch: NodeArch) -> Vec<String> {
    split_syscalls(profile, arch).0
}

/// The profile's syscall names that `arch`'s tables do not know (left out of the draft), sorted,
/// unique. A native name is checked against the native table, a compat name against the 32-bit
/// one.
pub fn unknown_syscalls(profile: &ApplicationProfile, arch: NodeArch) -> Vec<String> {
    split_syscalls(profile, arch).1
}

fn split_syscalls(profile: &ApplicationProfile, arch: NodeArch) -> (Vec<String>, Vec<String>) {
    let mut known = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    let all = (profile.syscalls.native.iter().map(|n| (n.as_str(), false)))
        .chain(profile.syscalls.compat.iter().map(|n| (n.as_str(), true)));
    for (name, compat) in all {
        if arch.knows(name, compat) {
            known.insert(name.to_string());
        } else {
            unknown.insert(name.to_string());
        }
    }
    // A name known in one ABI but not the other is allowed (libseccomp maps it per ABI).
    unknown.retain(|n| !known.contains(n));
    (known.into_iter().collect(), unknown.into_iter().collect())
}

/// The draft as the file kubelet reads: pretty JSON with a trailing newline.
pub fn to_json(profile: &SeccompProfile) -> Result<String, super::DraftError> {
    super::json_string(profile)
}

/// Where the draft goes, relative to kubelet's seccomp directory (`/var/lib/kubelet/seccomp`):
/// `sensor/<ns>/<workload>/<container>.json`, `.audit.json` for audit. This is the pod's
/// `securityContext.seccompProfile.localhostProfile`. Each element is reduced to a safe path
/// element (no `/`, no `..`).
pub fn localhost_path(key: &ProfileKey, mode: SeccompMode) -> String {
    let ext = match mode {
        SeccompMode::Enforce => "json",
        SeccompMode::Audit => "audit.json",
    };
    format!(
        "sensor/{}/{}/{}.{ext}",
        super::path_segment(&key.namespace),
        super::path_segment(&key.workload),
        super::path_segment(&key.container)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drafts::testutil::{golden, profile};
    use crate::profile::model::Syscalls;

    fn with_syscalls(native: &[&str], compat: &[&str]) -> ApplicationProfile {
        let mut p = profile("agent");
        p.syscalls = Syscalls {
            native: native.iter().map(|s| s.to_string()).collect(),
            compat: compat.iter().map(|s| s.to_string()).collect(),
            runtime_setup: Default::default(),
        };
        p
    }

    // The golden files were read and checked by hand: sorted unique names from both ABIs,
    // `syscall_511` left out, the x86_64 architecture list, EPERM only in enforce mode.
    // Regenerate with UPDATE_GOLDEN=1 and review the diff before committing.
    #[test]
    fn golden_agent_seccomp() {
        let p = profile("agent");
        golden(
            "agent.seccomp.json",
            &to_json(&seccomp_draft(&p, SeccompMode::Enforce, NodeArch::X86_64)).unwrap(),
        );
    }

    // Checked by hand: compat names kept (32-bit helper).
    #[test]
    fn golden_partial_seccomp() {
        let p = profile("partial");
        golden(
            "partial.seccomp.json",
            &to_json(&seccomp_draft(&p, SeccompMode::Enforce, NodeArch::X86_64)).unwrap(),
        );
    }

    /// `names` plus the runtime floor known on `arch`, sorted.
    fn with_runtime_floor(names: &[&str], arch: NodeArch) -> Vec<String> {
        let floor = runtime::floor_names().filter(|n| arch.knows(n, false));
        let all: BTreeSet<String> = names
            .iter()
            .map(|n| n.to_string())
            .chain(floor.map(str::to_string))
            .collect();
        all.into_iter().collect()
    }

    #[test]
    fn names_from_both_abis_sorted_unique_unknown_dropped() {
        let p = with_syscalls(
            &["write", "read", "syscall_511", "read", "openat"],
            &["socketcall", "_llseek", "read", "syscall_460"],
        );
        let d = seccomp_draft(&p, SeccompMode::Enforce, NodeArch::X86_64);
        assert_eq!(d.syscalls.len(), 1);
        assert_eq!(d.syscalls[0].action, SeccompAction::Allow);
        assert_eq!(
            d.syscalls[0].names,
            with_runtime_floor(
                &["_llseek", "openat", "read", "socketcall", "write"],
                NodeArch::X86_64
            )
        );
        assert_eq!(
            unknown_syscalls(&p, NodeArch::X86_64),
            ["syscall_460", "syscall_511"]
        );
    }

    #[test]
    fn names_are_checked_against_the_node_arch() {
        // `open` and `fork` do not exist on arm64 (only openat/clone); `arm_fadvise64_64` is an
        // arm (compat) syscall.
        let p = with_syscalls(&["open", "fork", "openat", "clone"], &["arm_fadvise64_64"]);
        let d = seccomp_draft(&p, SeccompMode::Enforce, NodeArch::Aarch64);
        assert_eq!(
            d.syscalls[0].names,
            with_runtime_floor(&["arm_fadvise64_64", "clone", "openat"], NodeArch::Aarch64)
        );
        assert!(
            !d.syscalls[0].names.contains(&"access".to_string()),
            "not an arm64 syscall"
        );
        assert_eq!(unknown_syscalls(&p, NodeArch::Aarch64), ["fork", "open"]);
        assert!(unknown_syscalls(&p, NodeArch::X86_64) == ["arm_fadvise64_64"]);
    }

    #[test]
    fn enforce_and_audit_differ_only_in_the_default() {
        let p = profile("agent");
        for arch in [NodeArch::X86_64, NodeArch::Aarch64] {
            let e = seccomp_draft(&p, SeccompMode::Enforce, arch);
            let a = seccomp_draft(&p, SeccompMode::Audit, arch);
            assert_eq!(e.default_action, SeccompAction::Errno);
            assert_eq!(e.default_errno_ret, Some(1));
            assert_eq!(a.default_action, SeccompAction::Log);
            assert_eq!(a.default_errno_ret, None);
            assert_eq!(e.architectures, a.architectures);
            assert_eq!(e.syscalls, a.syscalls);
            let json = to_json(&a).unwrap();
            assert!(!json.contains("defaultErrnoRet"), "{json}");
        }
    }

    #[test]
    fn architecture_lists() {
        let json = |arch| {
            serde_json::to_value(seccomp_draft(&profile("agent"), SeccompMode::Enforce, arch))
                .unwrap()["architectures"]
                .clone()
        };
        assert_eq!(
            json(NodeArch::X86_64),
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        assert_eq!(
            json(NodeArch::Aarch64),
            serde_json::json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
    }

    #[test]
    fn json_has_only_oci_fields_and_round_trips() {
        let d = seccomp_draft(&profile("agent"), SeccompMode::Enforce, NodeArch::X86_64);
        let json = to_json(&d).unwrap();
        assert!(json.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "architectures",
                "defaultAction",
                "defaultErrnoRet",
                "syscalls"
            ]
        );
        assert_eq!(serde_json::from_str::<SeccompProfile>(&json).unwrap(), d);
    }

    #[test]
    fn empty_profile_gives_no_empty_rule() {
        let d = seccomp_draft(
            &with_syscalls(&[], &[]),
            SeccompMode::Audit,
            NodeArch::X86_64,
        );
        assert!(d.syscalls.is_empty());
    }

    #[test]
    fn current_arch_is_known_here() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(NodeArch::current(), NodeArch::X86_64);
        #[cfg(target_arch = "aarch64")]
        assert_eq!(NodeArch::current(), NodeArch::Aarch64);
    }

    #[test]
    fn localhost_paths() {
        let key = ProfileKey {
            namespace: "agents".into(),
            workload: "research-agent".into(),
            container: "agent".into(),
        };
        assert_eq!(
            localhost_path(&key, SeccompMode::Enforce),
            "sensor/agents/research-agent/agent.json"
        );
        assert_eq!(
            localhost_path(&key, SeccompMode::Audit),
            "sensor/agents/research-agent/agent.audit.json"
        );
        let evil = ProfileKey {
            namespace: "..".into(),
            workload: "a/../../b".into(),
            container: "c".into(),
        };
        assert_eq!(
            localhost_path(&evil, SeccompMode::Enforce),
            "sensor/_/a_.._.._b/c.json"
        );
    }
}
