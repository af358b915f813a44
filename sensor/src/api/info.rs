//! `GetInfo`: what this agent runs on and what its probes capture, built once at start.

use std::path::Path;

use super::proto;
use crate::capture::{ProbeStatus, kernel::info::KernelInfo};

/// The answer to `GetInfo`, from the probes' load results.
pub fn agent_info(
    node_name: &str,
    kernel: &KernelInfo,
    cgroup2_mount: &Path,
    probes: &[ProbeStatus],
) -> proto::AgentInfo {
    proto::AgentInfo {
        node_name: node_name.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        kernel_release: kernel.release.clone(),
        machine: kernel.machine.clone(),
        cgroup2_mount: cgroup2_mount.display().to_string(),
        probes: probes.iter().map(probe_info).collect(),
        not_captured: probes
            .iter()
            .filter(|p| !p.attached)
            .map(ProbeStatus::loss)
            .collect(),
        started: super::convert::now(),
    }
}

fn probe_info(p: &ProbeStatus) -> proto::ProbeInfo {
    proto::ProbeInfo {
        program: p.program.to_string(),
        hook: p.hook.clone(),
        captures: p.captures.to_string(),
        needs: p.needs.to_string(),
        since: p.since.to_string(),
        required: p.required,
        attached: p.attached,
        error: p.error.clone().unwrap_or_default(),
        without: p.without.to_string(),
        note: p.note.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_probe_is_named_with_its_loss() {
        let probe = |program, attached| ProbeStatus {
            program,
            hook: "raw_tracepoint/x".into(),
            captures: "things",
            needs: "RAW_TRACEPOINT",
            since: "5.5",
            required: false,
            without: "no things",
            attached,
            permission_denied: false,
            error: (!attached).then(|| "Invalid argument".to_string()),
            note: None,
        };
        let kernel = KernelInfo::read(Path::new("/sys/kernel/btf/vmlinux"));
        let info = agent_info(
            "n1",
            &kernel,
            Path::new("/sys/fs/cgroup"),
            &[probe("a", true), probe("b", false)],
        );
        assert_eq!(info.node_name, "n1");
        assert_eq!(info.probes.len(), 2);
        assert!(info.probes[0].attached && info.probes[0].error.is_empty());
        assert_eq!(info.probes[1].error, "Invalid argument");
        assert_eq!(info.not_captured, ["things (b): no things"]);
        assert_eq!(info.kernel_release, kernel.release);
        assert!(!info.kernel_release.is_empty());
    }
}
