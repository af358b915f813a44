//! Detection rules: pure functions of (observation, ready profile) -> findings. No I/O, no
//! clocks; the caller adds the pod, the process and the sequence number (see `model::Anomaly`).
//! This file dispatches an observation to the rule families, one file each (`exec`, `syscalls`,
//! `network`, `dns`, `files`, `volume`; `agent` for AI agents, with its own table), which share
//! `helpers`.
//!
//! | rule                         | severity                  | Kubescape      | MITRE ATT&CK                          |
//! |------------------------------|---------------------------|----------------|---------------------------------------|
//! | `unexpected-exec`            | medium                    | R0001 (R0007 for kubectl) | -                          |
//! | `shell-spawned`              | high                      | -              | T1059 (.004 shell, .006 Python, .007 JS, .001 pwsh) |
//! | `unexpected-syscall`         | medium; high for escape/injection/module syscalls and for compat use without a compat baseline | R0003 | T1055.008 / T1547.006 / T1611 for those few |
//! | `unexpected-egress`          | medium                    | R0011          | T1071                                 |
//! | `cloud-metadata-access`      | critical                  | -              | T1552.005                             |
//! | `unexpected-dns`             | medium                    | R0005          | T1071.004                             |
//! | `service-account-token-read` | high                      | R0006          | T1528                                 |
//! | `sensitive-file-read`        | high (shadow, credentials), medium (environ, other) | R0010 (R0008 for environ) | T1003.008 / T1552.001 / T1552 |
//! | `egress-volume-spike`        | high                      | -              | T1041                                 |
//! | `large-payload`              | high                      | -              | T1041                                 |
//!
//! Kubescape ids are those of kubescape/node-agent (`pkg/ruleengine/v1`, e.g.
//! `r0006_unexpected_service_account_token_access.go`) and kubescape/rulelibrary
//! (`pkg/rules/r00xx-*`): R0001 Unexpected process launched, R0003 Unexpected system call,
//! R0005 Unexpected domain request, R0006 Unexpected service account token access, R0007
//! Kubernetes client executed, R0008 Read environment variables from procfs, R0010 Unexpected
//! sensitive file access, R0011 Unexpected egress network traffic. Kubescape has no rule for a
//! shell spawn against a baseline, IMDS access, or traffic volume: those carry none.
//!
//! Matching follows the profile builder exactly (exec: literal-or-glob path, then
//! `normalize_args` and `args_match`; flows: (ip, port, protocol); DNS: the question), with two
//! tolerances that only remove false positives: DNS names compare case-insensitively without
//! the trailing dot, and file paths compare after folding `/var/run` into `/run`, kubelet's
//! `..<timestamp>` atomic-writer directories into `..data` (projected tokens rotate) and
//! `/proc/<pid>` into `/proc/*` (pids change with every restart).

pub mod agent;
mod dns;
mod exec;
mod files;
mod helpers;
mod network;
mod syscalls;
mod volume;

use serde::{Deserialize, Serialize};

use self::{dns::*, exec::*, files::*, helpers::*, network::*, syscalls::*, volume::*};
pub use self::{network::protocol_from_name, syscalls::syscall_of_subject};
use crate::detect::model::Finding;
use crate::{
    ai::Catalogue,
    attribution::event::{Detail, Event},
    profile::{
        builder::{Direction, FlowDelta, FlowId},
        model::{ApplicationProfile, Status},
        runtime,
    },
};

/// Thresholds of the volume rules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RuleConfig {
    /// A window is a spike when its connections or bytes sent exceed this many times the
    /// baseline's busiest window (scaled to the window length). Default 4.0.
    pub spike_factor: f64,
    /// ...and the window has at least this many connections (so an idle baseline does not page
    /// on a small burst). Default 20.
    pub min_spike_connections: u64,
    /// ...or at least this many bytes sent. Default 1 MiB.
    pub min_spike_bytes: u64,
    /// Bytes sent per connection in a window above this many times the baseline's bytes per
    /// connection is a large payload. Default 8.0.
    pub large_payload_factor: f64,
    /// ...when at least this many bytes per connection. Default 256 KiB.
    pub min_large_payload_bytes: u64,
    /// To a model API, bytes sent per connection above this many times the baseline's is a
    /// prompt-size spike (it replaces the large-payload rule there). Default 4.0.
    pub prompt_factor: f64,
    /// ...when at least this many bytes per connection. Default 64 KiB.
    pub min_prompt_bytes: u64,
}

impl Default for RuleConfig {
    fn default() -> Self {
        Self {
            spike_factor: 4.0,
            min_spike_connections: 20,
            min_spike_bytes: 1 << 20,
            large_payload_factor: 8.0,
            min_large_payload_bytes: 256 << 10,
            prompt_factor: 4.0,
            min_prompt_bytes: 64 << 10,
        }
    }
}

/// Findings for one attributed event of a container whose profile is READY (the caller checks
/// readiness; a profile that is not ready yields nothing here too). A `syscalls` event goes
/// through [`on_syscalls`]; flow summaries, exits and accepts yield nothing (volume is judged
/// per window by [`on_flow_window`]).
pub fn on_event(event: &Event, profile: &ApplicationProfile, cfg: &RuleConfig) -> Vec<Finding> {
    let _ = cfg;
    if !ready(profile) {
        return Vec::new();
    }
    match &event.detail {
        Detail::Exec {
            path,
            exe,
            args,
            args_truncated,
            path_truncated,
            uid,
            ..
        } => exec_rules(
            profile,
            path,
            exe.as_deref(),
            args,
            *args_truncated || *path_truncated,
            *uid,
        ),
        Detail::Connect {
            protocol,
            remote_ip,
            remote_port,
            origin,
            remote_names,
        } => connect_rules(
            profile,
            protocol,
            *remote_ip,
            *remote_port,
            origin,
            remote_names,
        )
        .into_iter()
        .collect(),
        Detail::Dns {
            question,
            qtype,
            rcode,
            server_ip,
            answers,
            ..
        } => {
            let answers: Vec<String> = answers.iter().map(|a| a.ip.to_string()).collect();
            dns_rule(profile, question, qtype, rcode, *server_ip, &answers)
                .into_iter()
                .collect()
        }
        Detail::File {
            path,
            requested,
            pattern,
            open_flags,
            ..
        } => file_rules(profile, path, requested.as_deref(), pattern, *open_flags)
            .into_iter()
            .collect(),
        Detail::Syscalls { native, compat, .. } => on_syscalls(native, compat, profile),
        Detail::Exit { .. } | Detail::Accept { .. } | Detail::Flow { .. } => Vec::new(),
    }
}

/// Syscalls seen (names, per ABI) vs the baseline: one finding per name outside it.
pub fn on_syscalls(
    native: &[String],
    compat: &[String],
    profile: &ApplicationProfile,
) -> Vec<Finding> {
    if !ready(profile) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (abi, seen, baseline) in [
        (Abi::Native, native, &profile.syscalls.native),
        (Abi::Compat, compat, &profile.syscalls.compat),
    ] {
        let mut new: Vec<&str> = seen
            .iter()
            .map(String::as_str)
            .filter(|s| !baseline.iter().any(|b| b == s) && !runtime::is_floor_syscall(s))
            .collect();
        new.sort_unstable();
        new.dedup();
        for name in &new {
            out.push(syscall_finding(abi, name, baseline, &new, profile));
        }
    }
    out
}

/// What one flow did during one rate window vs the baseline's rate stats for that flow. Only
/// egress flows present in the baseline are judged (a new peer is `unexpected-egress`, from its
/// connect event).
pub fn on_flow_window(
    id: FlowId,
    window: FlowDelta,
    window_seconds: u64,
    profile: &ApplicationProfile,
    cfg: &RuleConfig,
    catalogue: &Catalogue,
) -> Vec<Finding> {
    if !ready(profile) || id.direction != Direction::Egress || window.is_zero() {
        return Vec::new();
    }
    let Some(flow) = profile
        .egress
        .iter()
        .find(|f| same_ip(f.ip, id.ip) && f.port == id.port && f.protocol == id.protocol)
    else {
        return Vec::new();
    };
    let subject = peer_subject(id.ip, id.port, proto_name(id.protocol));
    let mut out = Vec::new();
    out.extend(spike_rule(flow, window, window_seconds, cfg, &subject));
    if agent::is_model_api(flow, catalogue) {
        out.extend(agent::prompt_rule(
            flow,
            window,
            window_seconds,
            cfg,
            &subject,
            catalogue,
        ));
    } else {
        out.extend(large_payload_rule(
            flow,
            window,
            window_seconds,
            cfg,
            &subject,
        ));
    }
    out
}

fn ready(profile: &ApplicationProfile) -> bool {
    profile.status == Status::Ready
}

#[cfg(test)]
mod tests;
