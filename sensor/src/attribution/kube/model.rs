//! What the sensor keeps of a pod from the Kubernetes API: a small projection of the `Pod`
//! object, made once when the object arrives (the full object is dropped right away).

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use k8s_openapi::api::core::v1::Pod;

use super::owner::OwnerRef;
use crate::attribution::workload::Workload;

/// One pod as the API describes it. Pods on other nodes (peers) keep no service account and
/// no containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPod {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: Arc<BTreeMap<String, String>>,
    /// The controller that owns the pod directly (a ReplicaSet, a Job...), if any.
    pub owner: Option<OwnerRef>,
    /// The workload: exact when the owner chain was read from the API (`workload_exact`),
    /// otherwise derived from the direct owner without further lookups (see `owner.rs`).
    pub workload: Workload,
    pub workload_exact: bool,
    /// The object the workload is (a Deployment, StatefulSet, DaemonSet, CronJob, Job,
    /// ReplicaSet, or the pod itself when nothing controls it), with its uid: what the
    /// cluster profiles are owned by. Known only when the workload is exact.
    pub workload_object: Option<OwnerRef>,
    pub service_account: Option<String>,
    /// Pod IPs, only while they belong to the pod: empty for host-network pods (their address
    /// is the node's) and for pods that finished (their address is handed out again).
    pub ips: Vec<IpAddr>,
    /// (runtime container id without the `containerd://` prefix, container name).
    pub containers: Vec<(String, String)>,
}

impl ApiPod {
    /// The name of the container with this runtime id (or a unique prefix of 12+ characters).
    pub fn container_name(&self, container_id: &str) -> Option<&str> {
        if container_id.len() < 12 {
            return None;
        }
        let mut found = self
            .containers
            .iter()
            .filter(|(id, _)| id.starts_with(container_id) || container_id.starts_with(id));
        let (_, name) = found.next()?;
        found.next().is_none().then_some(name.as_str())
    }
}

/// The parts of a `Pod` the sensor keeps, before the owner is resolved. `None` for an object
/// without uid, namespace or name (never sent by a real API server).
pub fn project(pod: &Pod, with_details: bool) -> Option<(ApiPodParts, Option<OwnerRef>)> {
    let meta = &pod.metadata;
    let uid = meta.uid.clone().filter(|s| !s.is_empty())?;
    let namespace = meta.namespace.clone().filter(|s| !s.is_empty())?;
    let name = meta.name.clone().filter(|s| !s.is_empty())?;
    let labels = meta.labels.clone().unwrap_or_default();
    let owner = OwnerRef::controller_of(meta.owner_references.as_deref().unwrap_or_default());
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let finished = status
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    let ips = if host_network || finished {
        Vec::new()
    } else {
        pod_ips(pod)
    };
    let (service_account, containers) = if with_details {
        (
            spec.and_then(|s| s.service_account_name.clone()),
            container_ids(pod),
        )
    } else {
        (None, Vec::new())
    };
    Some((
        ApiPodParts {
            uid,
            namespace,
            name,
            labels,
            service_account,
            ips,
            containers,
        },
        owner,
    ))
}

/// A projected pod waiting for its workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPodParts {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: Option<String>,
    pub ips: Vec<IpAddr>,
    pub containers: Vec<(String, String)>,
}

impl ApiPodParts {
    /// `top`: the controller above `owner` as read from the API (`Some(None)`: it has none),
    /// `None` when the workload is derived, not exact.
    pub fn with_workload(
        self,
        owner: Option<OwnerRef>,
        workload: Workload,
        top: Option<Option<OwnerRef>>,
    ) -> ApiPod {
        let exact = top.is_some();
        let workload_object = top.map(|parent| {
            parent
                .or_else(|| owner.clone())
                .unwrap_or_else(|| OwnerRef {
                    kind: "Pod".into(),
                    name: self.name.clone(),
                    uid: self.uid.clone(),
                })
        });
        ApiPod {
            uid: self.uid,
            namespace: self.namespace,
            name: self.name,
            labels: Arc::new(self.labels),
            owner,
            workload,
            workload_exact: exact,
            workload_object,
            service_account: self.service_account,
            ips: self.ips,
            containers: self.containers,
        }
    }
}

/// `status.podIPs` (dual stack), else `status.podIP`; unparsable entries are skipped.
fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    if ips.is_empty() {
        ips.extend(
            status
                .pod_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    ips.sort();
    ips.dedup();
    ips
}

/// Every container, init container and ephemeral container with a runtime id.
fn container_ids(pod: &Pod) -> Vec<(String, String)> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    [
        &status.container_statuses,
        &status.init_container_statuses,
        &status.ephemeral_container_statuses,
    ]
    .into_iter()
    .flatten()
    .flatten()
    .filter_map(|c| {
        let id = c.container_id.as_deref()?;
        // `containerd://<id>`, `cri-o://<id>`, `docker://<id>`.
        let id = id.split_once("://").map_or(id, |(_, id)| id);
        (!id.is_empty()).then(|| (id.to_string(), c.name.clone()))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).expect("a valid Pod")
    }

    #[test]
    fn projects_identity_ips_and_containers() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app"}], "serviceAccountName": "web-sa",
                     "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.7",
                       "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
                       "containerStatuses": [{"name": "app", "containerID": "containerd://abcdef0123456789",
                                              "image": "x", "imageID": "y", "ready": true, "restartCount": 0}]}
        }));
        let (parts, owner) = project(&p, true).unwrap();
        assert_eq!(owner, None);
        assert_eq!(parts.service_account.as_deref(), Some("web-sa"));
        assert_eq!(
            parts.ips,
            vec![
                "10.0.0.7".parse::<IpAddr>().unwrap(),
                "fd00::7".parse().unwrap()
            ]
        );
        assert_eq!(
            parts.containers,
            vec![("abcdef0123456789".into(), "app".into())]
        );
        let api = parts.with_workload(
            None,
            crate::attribution::workload::Workload {
                kind: crate::attribution::workload::WorkloadKind::Pod,
                name: "web-0".into(),
            },
            Some(None),
        );
        assert_eq!(api.container_name("abcdef012345"), Some("app"));
        // A pod without a controller is its own workload object.
        assert_eq!(
            api.workload_object.as_ref().map(|o| o.kind.as_str()),
            Some("Pod")
        );
        assert_eq!(api.container_name("abcdef01"), None, "too short a prefix");
        // Peers keep no details.
        let (parts, _) = project(&p, false).unwrap();
        assert!(parts.service_account.is_none() && parts.containers.is_empty());
    }

    #[test]
    fn host_network_and_finished_pods_have_no_address_of_their_own() {
        for (spec, phase) in [
            (
                serde_json::json!({"containers": [], "hostNetwork": true}),
                "Running",
            ),
            (serde_json::json!({"containers": []}), "Succeeded"),
            (serde_json::json!({"containers": []}), "Failed"),
        ] {
            let p = pod(serde_json::json!({
                "metadata": {"name": "p", "namespace": "n", "uid": "u"},
                "spec": spec, "status": {"phase": phase, "podIP": "10.0.0.9"}
            }));
            assert!(project(&p, false).unwrap().0.ips.is_empty(), "{phase}");
        }
    }

    #[test]
    fn objects_without_identity_are_skipped() {
        let p = pod(serde_json::json!({"metadata": {"name": "p", "namespace": "n"}}));
        assert!(project(&p, true).is_none());
    }
}
