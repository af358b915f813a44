//! Anomalies: deviations of a `ready` workload from its profile, with the whole story (which
//! pod, which process and its ancestry, what the baseline says, what happened). This is the
//! format of `<state>/anomalies.jsonl` (one JSON object per line) and of the gRPC stream.

use std::{collections::BTreeMap, net::IpAddr};

use serde::{Deserialize, Serialize};

pub use crate::ai::tools::{ChainProcess, ChainTool};
use crate::{attribution::workload::WorkloadKind, profile::model::Protocol};

/// Stable rule identifiers (the strings are the public ids; never rename one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleId {
    /// A program (path + normalised args) not in the baseline.
    UnexpectedExec,
    /// A syscall not in the baseline.
    UnexpectedSyscall,
    /// An egress peer (ip, port, protocol) not in the baseline.
    UnexpectedEgress,
    /// A DNS name not in the baseline.
    UnexpectedDns,
    /// A Kubernetes service-account token (or EKS IRSA / Pod Identity token) read outside the
    /// baseline.
    ServiceAccountTokenRead,
    /// A connection to the cloud instance metadata service (169.254.169.254, fd00:ec2::254).
    CloudMetadataAccess,
    /// A shell or interpreter spawned by a workload whose baseline has none.
    ShellSpawned,
    /// Connections or bytes per window to a known peer far above the baseline's maximum.
    EgressVolumeSpike,
    /// Bytes sent on one flow in a window far above the baseline.
    LargePayload,
    /// Another sensitive file read outside the baseline.
    SensitiveFileRead,
    /// A new flow the audited candidate NetworkPolicies (`--audit-netpol`) would deny.
    WouldDeny,
    /// An agent workload executed code (an interpreter given inline or piped code, or a
    /// program under a writable temporary directory) of a kind its baseline never ran.
    AgentCodeExecution,
    /// A catalogued model API or vector store the baseline never called, or a name that
    /// imitates one.
    NewAiProvider,
    /// Bytes sent per connection to a model API far above the baseline's.
    PromptSizeSpike,
    /// An agent workload read credentials (service-account/IRSA token, cloud or cluster
    /// credential files) or reached the instance metadata service outside its baseline.
    AgentCredentialAccess,
}

impl RuleId {
    pub const ALL: [RuleId; 15] = [
        RuleId::UnexpectedExec,
        RuleId::UnexpectedSyscall,
        RuleId::UnexpectedEgress,
        RuleId::UnexpectedDns,
        RuleId::ServiceAccountTokenRead,
        RuleId::CloudMetadataAccess,
        RuleId::ShellSpawned,
        RuleId::EgressVolumeSpike,
        RuleId::LargePayload,
        RuleId::SensitiveFileRead,
        RuleId::WouldDeny,
        RuleId::AgentCodeExecution,
        RuleId::NewAiProvider,
        RuleId::PromptSizeSpike,
        RuleId::AgentCredentialAccess,
    ];

    /// The public id, e.g. `unexpected-exec`.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::UnexpectedExec => "unexpected-exec",
            RuleId::UnexpectedSyscall => "unexpected-syscall",
            RuleId::UnexpectedEgress => "unexpected-egress",
            RuleId::UnexpectedDns => "unexpected-dns",
            RuleId::ServiceAccountTokenRead => "service-account-token-read",
            RuleId::CloudMetadataAccess => "cloud-metadata-access",
            RuleId::ShellSpawned => "shell-spawned",
            RuleId::EgressVolumeSpike => "egress-volume-spike",
            RuleId::LargePayload => "large-payload",
            RuleId::SensitiveFileRead => "sensitive-file-read",
            RuleId::WouldDeny => "would-deny",
            RuleId::AgentCodeExecution => "agent-code-execution",
            RuleId::NewAiProvider => "new-ai-provider",
            RuleId::PromptSizeSpike => "prompt-size-spike",
            RuleId::AgentCredentialAccess => "agent-credential-access",
        }
    }

    pub fn parse(s: &str) -> Option<RuleId> {
        RuleId::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// A MITRE ATT&CK technique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mitre {
    /// e.g. `T1059`, `T1552.005`.
    pub technique: String,
    pub name: String,
    pub tactic: String,
}

/// What a rule found: the pure part of an anomaly (no pod, process or sequence number yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub rule: RuleId,
    /// The matching Kubescape runtime rule id where one exists (e.g. `R0001`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubescape_rule: Option<String>,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mitre: Option<Mitre>,
    /// One sentence for people.
    pub message: String,
    /// What makes two findings "the same" for aggregation, e.g. the exec path + args, the
    /// syscall name, the peer `ip:port/proto`.
    pub subject: String,
    pub evidence: Evidence,
}

/// Baseline vs observed, as short readable values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    /// What the profile says (e.g. "3 programs: /app/server, ...", "max 12 connections/60s").
    pub baseline: BTreeMap<String, String>,
    /// What happened.
    pub observed: BTreeMap<String, String>,
}

/// A process in an anomaly, with its ancestry (nearest parent first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessRef {
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comm: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestry: Vec<Ancestor>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ancestor {
    pub pid: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comm: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// agent -> tool -> action, e.g. `python3 agent.py` -> `sh -c curl ...` -> `connect
/// 203.0.113.9:80/tcp`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentChain {
    pub agent: ChainProcess,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ChainTool>,
    /// What was done, e.g. `exec /usr/bin/curl -s x`, `connect 10.0.0.1:443/tcp`.
    pub action: String,
}

/// One anomaly as logged and streamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anomaly {
    /// Per-node monotonic sequence number (never reused, survives restarts).
    pub seq: u64,
    /// RFC 3339: when this anomaly (or this batch of repeats) was first seen.
    pub time: String,
    pub node: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_uid: String,
    pub container: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_id: String,
    pub workload: String,
    pub workload_kind: WorkloadKind,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(flatten)]
    pub finding: Finding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessRef>,
    /// For a process of an AI agent: the agent process, the tool invocation it belongs to
    /// (unset when the agent acted itself) and the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_chain: Option<AgentChain>,
    /// How many occurrences this record stands for (1 for a first occurrence; a repeat record
    /// summarises the occurrences of one aggregation window).
    pub count: u64,
    /// For a repeat record: the sequence number of the first occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_of: Option<u64>,
    /// RFC 3339: last occurrence covered by this record.
    pub last_seen: String,
    /// What accepting this anomaly adds to the baseline (`sensor profiles accept <seq>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fold: Option<Fold>,
}

/// The behaviour an anomaly observed, in the form the profile stores it: accepting the anomaly
/// adds exactly this to the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fold {
    Exec {
        path: String,
        args: Vec<String>,
    },
    Syscall {
        name: String,
        compat: bool,
    },
    Egress {
        ip: IpAddr,
        port: u16,
        protocol: Protocol,
        names: Vec<String>,
    },
    /// A new inbound flow: the peer's address, the local port, the protocol.
    Ingress {
        ip: IpAddr,
        port: u16,
        protocol: Protocol,
    },
    Dns {
        name: String,
        addresses: Vec<IpAddr>,
    },
    File {
        path: String,
        pattern: String,
    },
    /// A flow's window above the baseline: accepting raises the baseline's maxima.
    Rate {
        ip: IpAddr,
        port: u16,
        protocol: Protocol,
        ingress: bool,
        connections: u64,
        bytes_sent: u64,
        bytes_recv: u64,
        window_seconds: u64,
    },
}

impl Anomaly {
    /// A fixture for tests (the unit tests and `sensor/tests`), the one every test starts from:
    /// an unexpected exec of `path` in shop/checkout/app, with its process, ancestry, evidence
    /// and fold (seq 0: the log numbers it). Tests change the fields they are about.
    #[doc(hidden)]
    pub fn sample(path: &str) -> Anomaly {
        let time = "2026-05-28T20:26:40Z".to_string();
        Anomaly {
            seq: 0,
            time: time.clone(),
            node: "node-1".into(),
            namespace: "shop".into(),
            pod: "checkout-7d9f8b6c5d-x2x4z".into(),
            pod_uid: "0b7f4a4e-2f4c-4c39-9f3e-0d0c6c2b1a11".into(),
            container: "app".into(),
            container_id: "3f2a".into(),
            workload: "checkout".into(),
            workload_kind: WorkloadKind::Deployment,
            labels: BTreeMap::new(),
            finding: Finding {
                rule: RuleId::UnexpectedExec,
                kubescape_rule: Some("R0001".into()),
                severity: Severity::Medium,
                mitre: Some(Mitre {
                    technique: "T1059".into(),
                    name: "Command and Scripting Interpreter".into(),
                    tactic: "Execution".into(),
                }),
                message: format!("{path} was run, which the baseline never did"),
                subject: format!("{path} -s *"),
                evidence: Evidence {
                    baseline: BTreeMap::from([(
                        "programs".to_string(),
                        "/usr/local/bin/checkout".to_string(),
                    )]),
                    observed: BTreeMap::from([
                        ("path".to_string(), path.to_string()),
                        ("args".to_string(), "-s *".to_string()),
                    ]),
                },
            },
            agent_chain: None,
            process: Some(ProcessRef {
                pid: 4242,
                ppid: Some(4200),
                comm: path
                    .rsplit('/')
                    .next()
                    .unwrap_or(path)
                    .chars()
                    .take(15)
                    .collect(),
                path: path.into(),
                args: vec![path.into(), "-s".into(), "http://203.0.113.9/".into()],
                ancestry: vec![
                    Ancestor {
                        pid: 4200,
                        comm: "sh".into(),
                        path: "/bin/sh".into(),
                        args: vec!["sh".into(), "-c".into()],
                    },
                    Ancestor {
                        pid: 1,
                        comm: "checkout".into(),
                        path: "/usr/local/bin/checkout".into(),
                        args: vec![],
                    },
                ],
            }),
            count: 1,
            repeat_of: None,
            last_seen: time,
            fold: Some(Fold::Exec {
                path: path.into(),
                args: vec!["-s".into(), "*".into()],
            }),
        }
    }
}
