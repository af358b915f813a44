//! What accepting an anomaly adds to the baseline: the [`Fold`] of a finding, from the
//! observation it was made of. Every path that raises anomalies (events, a container's final
//! syscall set, the periodic syscall poll, rate windows, the live NetworkPolicy audit) goes
//! through [`of`], and every rule reports behaviour a profile can hold, so every first
//! occurrence carries a fold (`accept_tests.rs` raises each rule on each of its paths).

use super::{
    model::{Finding, Fold, RuleId},
    rules,
};
use crate::{
    attribution::event::{Detail, Event},
    profile::{
        builder::{Direction, FlowDelta, FlowId},
        normalize::normalize_args,
    },
};

/// What a finding was made of.
#[derive(Debug, Clone, Copy)]
pub enum Observation<'a> {
    /// An attributed event: exec, file, DNS, connect or UDP send, or a syscall set read when
    /// its container's cgroup went (or when the agent stops).
    Event(&'a Event),
    /// A container's syscall set, read by the periodic poll.
    SyscallPoll,
    /// One flow's rate window.
    FlowWindow {
        id: FlowId,
        window: FlowDelta,
        window_seconds: u64,
    },
    /// A new flow (connect, UDP send, accept) judged by the live NetworkPolicy audit: the peer,
    /// the port (remote for egress, local for ingress), the names the peer was resolved from.
    Flow { id: FlowId, names: &'a [String] },
}

/// The behaviour `finding` reports, as the profile stores it. `None` only when the observation
/// does not hold what the rule reports (a caller passing the wrong observation).
pub fn of(finding: &Finding, observed: &Observation<'_>) -> Option<Fold> {
    // No wildcard: a new rule must say what accepting it adds.
    match finding.rule {
        RuleId::UnexpectedExec | RuleId::ShellSpawned | RuleId::AgentCodeExecution => {
            exec(observed)
        }
        // The subject names the call and its ABI, whichever set (running or final) it came from.
        RuleId::UnexpectedSyscall => {
            let (name, compat) = rules::syscall_of_subject(&finding.subject);
            Some(Fold::Syscall {
                name: name.to_string(),
                compat,
            })
        }
        RuleId::UnexpectedEgress | RuleId::CloudMetadataAccess | RuleId::NewAiProvider => {
            egress(observed)
        }
        RuleId::UnexpectedDns => dns(observed),
        RuleId::ServiceAccountTokenRead | RuleId::SensitiveFileRead => file(observed),
        // Restates a token or credential read, or an IMDS connection, of an agent.
        RuleId::AgentCredentialAccess => file(observed).or_else(|| egress(observed)),
        RuleId::EgressVolumeSpike | RuleId::LargePayload | RuleId::PromptSizeSpike => {
            rate(observed)
        }
        RuleId::WouldDeny => flow(observed),
    }
}

fn exec(observed: &Observation<'_>) -> Option<Fold> {
    match observed {
        Observation::Event(Event {
            detail: Detail::Exec { path, args, .. },
            ..
        }) => Some(Fold::Exec {
            path: path.clone(),
            args: normalize_args(args),
        }),
        _ => None,
    }
}

fn file(observed: &Observation<'_>) -> Option<Fold> {
    match observed {
        Observation::Event(Event {
            detail: Detail::File { path, pattern, .. },
            ..
        }) => Some(Fold::File {
            path: path.clone(),
            pattern: pattern.clone(),
        }),
        _ => None,
    }
}

fn dns(observed: &Observation<'_>) -> Option<Fold> {
    match observed {
        Observation::Event(Event {
            detail: Detail::Dns {
                question, answers, ..
            },
            ..
        }) => Some(Fold::Dns {
            name: question.clone(),
            addresses: answers.iter().map(|a| a.ip).collect(),
        }),
        _ => None,
    }
}

fn egress(observed: &Observation<'_>) -> Option<Fold> {
    match observed {
        Observation::Event(Event {
            detail:
                Detail::Connect {
                    protocol,
                    remote_ip,
                    remote_port,
                    remote_names,
                    ..
                },
            ..
        }) => Some(Fold::Egress {
            ip: *remote_ip,
            port: *remote_port,
            protocol: rules::protocol_from_name(protocol)?,
            names: remote_names.clone(),
        }),
        _ => None,
    }
}

fn rate(observed: &Observation<'_>) -> Option<Fold> {
    match observed {
        Observation::FlowWindow {
            id,
            window,
            window_seconds,
        } => Some(Fold::Rate {
            ip: id.ip,
            port: id.port,
            protocol: id.protocol,
            ingress: id.direction == Direction::Ingress,
            connections: window.connections,
            bytes_sent: window.bytes_sent,
            bytes_recv: window.bytes_recv,
            window_seconds: *window_seconds,
        }),
        _ => None,
    }
}

fn flow(observed: &Observation<'_>) -> Option<Fold> {
    let Observation::Flow { id, names } = *observed else {
        return None;
    };
    Some(match id.direction {
        Direction::Egress => Fold::Egress {
            ip: id.ip,
            port: id.port,
            protocol: id.protocol,
            names: names.to_vec(),
        },
        Direction::Ingress => Fold::Ingress {
            ip: id.ip,
            port: id.port,
            protocol: id.protocol,
        },
    })
}
