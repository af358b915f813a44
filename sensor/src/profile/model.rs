//! The application profile: what one container of one workload does, learned over a period.
//! All replicas of a workload share it. This is the persisted format
//! (`<state>/profiles/<ns>/<workload>/<container>.json`) and the input of the draft generators,
//! so it is plain data with stable, documented field names (camelCase in JSON).

use std::{collections::BTreeMap, net::IpAddr};

use serde::{Deserialize, Serialize};

pub use super::time::Timestamp;
/// Defined with attribution (which names flow peers); part of the profile format.
pub use crate::attribution::Peer;
use crate::attribution::workload::WorkloadKind;

/// Format version of the persisted profile. Version 1 (before the runtime's setup was told
/// apart) is upgraded on load (`profile::upgrade`); a file with any other version is
/// quarantined.
pub const PROFILE_VERSION: u32 = 2;

/// Bounds per profile: beyond them new entries are dropped and `overflow` says so.
pub mod caps {
    pub const EXECS: usize = 256;
    pub const EGRESS: usize = 512;
    pub const INGRESS: usize = 512;
    pub const FILES: usize = 128;
    pub const DNS_NAMES: usize = 512;
    pub const NAMES_PER_PEER: usize = 16;
    pub const PODS: usize = 32;
    pub const ARGS_PER_EXEC: usize = 32;
    pub const ARG_LEN: usize = 256;
    pub const AGENT_PROGRAMS: usize = 16;
    pub const TOOLS: usize = 128;
}

/// Identity of a profile: one container of one workload.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ProfileKey {
    pub namespace: String,
    pub workload: String,
    pub container: String,
}

impl ProfileKey {
    /// The attribution of a profile as a whole (no particular pod), for findings about the
    /// workload's aggregate behaviour (rate windows).
    pub fn attribution(&self, kind: WorkloadKind) -> crate::attribution::Attribution {
        let mut a =
            crate::attribution::Attribution::bare(crate::attribution::Scope::Container, 0, None);
        a.namespace = Some(self.namespace.clone());
        a.workload = Some(self.workload.clone());
        a.workload_kind = Some(kind);
        a.container = Some(self.container.clone());
        a
    }
}

impl std::fmt::Display for ProfileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.workload, self.container)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Still collecting the baseline.
    Learning,
    /// The learning period is over: the baseline is frozen; drafts can be applied.
    Ready,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Completeness {
    /// Every container instance was observed from its creation.
    Full,
    /// Some behaviour may be missing: see `partialReasons`.
    Partial,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationProfile {
    pub version: u32,
    #[serde(flatten)]
    pub key: ProfileKey,
    pub workload_kind: WorkloadKind,
    pub status: Status,
    pub completeness: Completeness,
    /// Why the profile is partial (e.g. "container started before the sensor").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub partial_reasons: Vec<String>,
    /// RFC 3339 times (`profile::time`).
    pub learning_started: Timestamp,
    pub learning_period_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<Timestamp>,
    pub updated: Timestamp,
    /// Node(s) that contributed.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub nodes: Vec<String>,
    /// Pods observed (bounded by `caps::PODS`).
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub pods: Vec<String>,
    /// Pod labels when known (Kubernetes API); used for NetworkPolicy selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub syscalls: Syscalls,
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub execs: Vec<ExecEntry>,
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["ip", "port", "protocol"]))]
    pub egress: Vec<Flow>,
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["ip", "port", "protocol"]))]
    pub ingress: Vec<Flow>,
    /// DNS names the container resolved, with the addresses returned.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub dns: Vec<DnsName>,
    /// DNS servers that answered the container.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["ip"]))]
    pub resolvers: Vec<Resolver>,
    /// Sensitive files opened.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["path"]))]
    pub files: Vec<FileEntry>,
    /// Agent frameworks and SDKs found in the container's filesystem (AI catalogue); bounded
    /// by the catalogue's size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["ecosystem", "name"]))]
    pub packages: Vec<PackageEntry>,
    /// Commands (path and normalised arguments) whose processes called a model API: the
    /// container's AI agent(s). Identity, not behaviour: recorded in any state, bounded by
    /// `caps::AGENT_PROGRAMS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub agent_programs: Vec<String>,
    /// Tools the agent ran (programs executed by children of an agent process), learned like
    /// execs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub tools: Vec<ToolEntry>,
    #[serde(default)]
    pub overflow: Overflow,
}

/// A tool an agent process ran: the child's program and normalised arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolEntry {
    pub path: String,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub args: Vec<String>,
    /// Invocations seen, and how many of those ended with a non-zero exit code or a signal.
    pub invocations: u64,
    #[serde(default)]
    pub failures: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// A catalogued package found installed in the container (`ai::packages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PackageEntry {
    /// `python` or `node`.
    pub ecosystem: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `framework`, `mcp`, `model-sdk`, `model-runtime`, `vector-store-sdk`.
    pub kind: String,
    /// Where, inside the container.
    pub path: String,
    pub first_seen: Timestamp,
}

/// Syscall names (sorted), native ABI and 32-bit compat ABI apart: the workload's, i.e. what the
/// container did from its first exec on. This is the baseline and what the seccomp drafts allow
/// (with the runtime floor, `profile::runtime`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Syscalls {
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub native: Vec<String>,
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub compat: Vec<String>,
    /// What the container runtime did in the container's cgroup before the workload's first
    /// exec (runc init, crun: namespaces, mounts, `pivot_root`, capabilities). Shown, never
    /// judged, never allowed by the drafts: the seccomp filter does not exist yet when these
    /// run.
    #[serde(default, skip_serializing_if = "RuntimeSetup::is_empty")]
    pub runtime_setup: RuntimeSetup,
}

/// The container runtime's syscalls before the workload's first exec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSetup {
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub native: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub compat: Vec<String>,
    /// Separated by name when a version-1 profile (learned before the kernel told the two
    /// apart) was upgraded (`profile::upgrade`), not observed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
}

impl RuntimeSetup {
    pub fn is_empty(&self) -> bool {
        self.native.is_empty() && self.compat.is_empty()
    }
}

/// A program run, with dynamic argument parts collapsed into `*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecEntry {
    pub path: String,
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub args: Vec<String>,
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// One peer of the container: for egress the remote address and port, for ingress the remote
/// address and the local (listening) port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    #[schemars(with = "String")]
    pub ip: IpAddr,
    /// Egress: the remote port; ingress: the local port.
    pub port: u16,
    pub protocol: Protocol,
    /// Names this container resolved to `ip` (DNS answers it received).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub dns_names: Vec<String>,
    /// The peer pod and workload when known (Kubernetes API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Peer>,
    pub connections: u64,
    pub bytes_sent: u64,
    pub bytes_recv: u64,
    pub rate: RateStats,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

#[cfg(test)]
impl Flow {
    /// A flow for unit tests: one connection, no bytes, no peer pod, times at the epoch.
    pub fn sample(ip: &str, port: u16, protocol: Protocol, dns_names: &[&str]) -> Flow {
        Flow {
            ip: ip.parse().expect("test address"),
            port,
            protocol,
            dns_names: dns_names.iter().map(|n| n.to_string()).collect(),
            peer: None,
            connections: 1,
            bytes_sent: 0,
            bytes_recv: 0,
            rate: RateStats::default(),
            first_seen: Timestamp::UNIX_EPOCH,
            last_seen: Timestamp::UNIX_EPOCH,
        }
    }
}

/// Per-window statistics of a flow: the busiest window seen while learning, the baseline for
/// volume anomalies.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct RateStats {
    pub window_seconds: u64,
    /// Windows in which the flow was active.
    pub windows: u64,
    pub max_connections_per_window: u64,
    pub max_bytes_sent_per_window: u64,
    pub max_bytes_recv_per_window: u64,
    /// The most bytes sent per connection in one window, when above the ratio of the two
    /// maxima (`large-payload` and `prompt-size-spike` judge bytes per connection; accepting
    /// one of them must raise exactly that).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_bytes_sent_per_connection: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsName {
    pub name: String,
    #[schemars(with = "Vec<String>", extend("x-kubernetes-list-type" = "set"))]
    pub addresses: Vec<IpAddr>,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resolver {
    #[schemars(with = "String")]
    pub ip: IpAddr,
    /// The cluster DNS (kube-dns/CoreDNS): the nameserver of the container's resolv.conf with
    /// the cluster search domains. NetworkPolicy must then allow the DNS pods by label, since
    /// policies see the pods behind the Service address, not the address itself.
    pub cluster_dns: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    pub path: String,
    pub pattern: String,
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// Which caps were hit (entries beyond them were not recorded).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Overflow {
    pub execs: bool,
    pub egress: bool,
    pub ingress: bool,
    pub files: bool,
    pub dns: bool,
    #[serde(default)]
    pub tools: bool,
}

impl Overflow {
    pub fn any(&self) -> bool {
        self.execs || self.egress || self.ingress || self.files || self.dns || self.tools
    }
}
