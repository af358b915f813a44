//! The cluster profile resources (group `sensor.io`, version `v1alpha1`), defined once here;
//! `sensor crds` prints their CustomResourceDefinitions and `deploy/crds.yaml` is that output,
//! checked by a test.
//!
//! - [`ProfilePiece`]: what one node learned of one workload container. Its only writer is
//!   that node's sensor (server-side apply, field manager `sensor/node/<node>`); the merger
//!   writes its `status` only (the node is gone).
//! - [`WorkloadProfile`]: the cluster's baseline of one workload container, the union of its
//!   pieces. Its only writer is the elected merger (field manager `sensor/merger`).
//!
//! Both live in the workload's namespace, owned by the workload object, so deleting the
//! workload lets the garbage collector delete its profiles.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::profile::model::{ApplicationProfile, Completeness, Status, Syscalls, Timestamp};

pub const GROUP: &str = "sensor.io";
pub const VERSION: &str = "v1alpha1";

/// What `kubectl get` shows of a profile, counted from the profile it summarises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub status: Status,
    pub completeness: Completeness,
    /// Nodes whose evidence is in the profile.
    pub nodes: u32,
    /// Distinct syscall names (native and compat ABIs, every architecture).
    pub syscalls: u32,
    pub execs: u32,
    pub egress: u32,
}

impl Summary {
    pub fn of(profile: &ApplicationProfile, nodes: usize, syscalls: usize) -> Summary {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Summary {
            status: profile.status,
            completeness: profile.completeness,
            nodes: n(nodes),
            syscalls: n(syscalls),
            execs: n(profile.execs.len()),
            egress: n(profile.egress.len()),
        }
    }
}

/// One node's learned profile of one workload container.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sensor.io",
    version = "v1alpha1",
    kind = "ProfilePiece",
    namespaced,
    status = "ProfilePieceStatus",
    shortname = "piece",
    category = "sensor",
    doc = "What one node's sensor learned of one workload container; merged with the other nodes' pieces into a WorkloadProfile.",
    printcolumn = r#"{"name":"Workload","type":"string","jsonPath":".spec.profile.workload"}"#,
    printcolumn = r#"{"name":"Container","type":"string","jsonPath":".spec.profile.container"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"Arch","type":"string","jsonPath":".spec.architecture"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".spec.summary.status"}"#,
    printcolumn = r#"{"name":"Completeness","type":"string","jsonPath":".spec.summary.completeness"}"#,
    printcolumn = r#"{"name":"Syscalls","type":"integer","jsonPath":".spec.summary.syscalls"}"#,
    printcolumn = r#"{"name":"Execs","type":"integer","jsonPath":".spec.summary.execs"}"#,
    printcolumn = r#"{"name":"Egress","type":"integer","jsonPath":".spec.summary.egress"}"#,
    printcolumn = r#"{"name":"Node-Gone","type":"boolean","jsonPath":".status.nodeGone"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProfilePieceSpec {
    pub node: String,
    /// The node's architecture (`x86_64`, `aarch64`): the ABI of `profile.syscalls`.
    pub architecture: String,
    pub summary: Summary,
    /// What was cut to keep the object under the size cap (empty when nothing was), e.g.
    /// `execs: kept 128 of 256`. The matching `profile.overflow` flags are set too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub collapsed: Vec<String>,
    /// The node's profile, in the persisted format (docs/formats.md).
    pub profile: ApplicationProfile,
}

/// Written by the merger only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfilePieceStatus {
    /// The piece's Node object is gone (an autoscaled node): its evidence still counts, its
    /// learning state no longer holds the cluster's profile back.
    #[serde(default)]
    pub node_gone: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_gone_seen: Option<Timestamp>,
}

/// The syscalls of one architecture, from that architecture's pieces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArchitectureSyscalls {
    pub architecture: String,
    pub syscalls: Syscalls,
}

/// One node's piece as the merge saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contributor {
    pub node: String,
    pub architecture: String,
    pub status: Status,
    pub completeness: Completeness,
    pub node_gone: bool,
    /// The piece's own `profile.updated`.
    pub updated: Timestamp,
}

/// The cluster's baseline of one workload container.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sensor.io",
    version = "v1alpha1",
    kind = "WorkloadProfile",
    namespaced,
    shortname = "wprof",
    category = "sensor",
    doc = "The cluster-wide baseline of one workload container: the union of every node's ProfilePiece, written by the elected merger.",
    printcolumn = r#"{"name":"Workload","type":"string","jsonPath":".spec.profile.workload"}"#,
    printcolumn = r#"{"name":"Container","type":"string","jsonPath":".spec.profile.container"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".spec.summary.status"}"#,
    printcolumn = r#"{"name":"Completeness","type":"string","jsonPath":".spec.summary.completeness"}"#,
    printcolumn = r#"{"name":"Nodes","type":"integer","jsonPath":".spec.summary.nodes"}"#,
    printcolumn = r#"{"name":"Syscalls","type":"integer","jsonPath":".spec.summary.syscalls"}"#,
    printcolumn = r#"{"name":"Execs","type":"integer","jsonPath":".spec.summary.execs"}"#,
    printcolumn = r#"{"name":"Egress","type":"integer","jsonPath":".spec.summary.egress"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadProfileSpec {
    pub summary: Summary,
    /// Syscalls per architecture (a mixed amd64/arm64 cluster has both); a node's drafts use
    /// its own architecture's section.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["architecture"]))]
    pub architectures: Vec<ArchitectureSyscalls>,
    /// Every piece merged, live or from a node that is gone.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["node"]))]
    pub contributors: Vec<Contributor>,
    /// The merger (the Lease holder) that wrote this version.
    pub merged_by: String,
    pub merged_at: Timestamp,
    /// The merged profile (`profile::merge` of the pieces, in the persisted format); its
    /// `syscalls` are the union over every architecture, for display: drafts read
    /// `architectures`.
    pub profile: ApplicationProfile,
}

/// Both definitions, as `kubectl apply` takes them (one YAML stream).
pub fn definitions_yaml() -> String {
    use kube::CustomResourceExt;
    let mut out = String::from(
        "# The sensor's cluster profile resources. Generated by `sensor crds`; a test fails when\n\
         # this file and the Rust types (sensor/src/cluster/crd.rs) drift.\n",
    );
    for crd in [ProfilePiece::crd(), WorkloadProfile::crd()] {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd).expect("a CRD serialises to YAML"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checked_in_definitions_are_the_types() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crds.yaml");
        let file = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            file == definitions_yaml(),
            "deploy/crds.yaml differs from the Rust types: run `cargo run -p sensor --bin sensor -- crds > deploy/crds.yaml`"
        );
    }
}
