//! The workload that owns a pod, from ownerReferences.
//!
//! Exact: the pod's controller (a `ReplicaSet`, `Job`, `StatefulSet`, `DaemonSet`...), and for a
//! ReplicaSet or a Job the controller above it, read from the API (`Deployment`, `CronJob`).
//! [`exact_workload`] combines the two. When the parent object cannot be read (peers on other
//! nodes are never looked up; a lookup that failed), [`derived_workload`] names it from the
//! controllers' naming rules instead: the Deployment controller names its ReplicaSets
//! `<deployment>-<pod-template-hash>` and puts the hash on the pods; the CronJob controller
//! names its Jobs `<cronjob>-<scheduled time in minutes>`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::attribution::workload::{Workload, WorkloadKind};

/// A controller reference: kind, name and uid of the owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

impl OwnerRef {
    /// The managing controller among `refs` (`controller: true`), else none: other owner
    /// references do not manage the object.
    pub fn controller_of(refs: &[OwnerReference]) -> Option<OwnerRef> {
        refs.iter()
            .find(|r| r.controller == Some(true))
            .map(|r| OwnerRef {
                kind: r.kind.clone(),
                name: r.name.clone(),
                uid: r.uid.clone(),
            })
    }
}

/// The parent object to read to know the workload exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParentKind {
    ReplicaSet,
    Job,
}

/// Which parent object, if any, must be read for an exact answer.
pub fn parent_to_look_up(owner: Option<&OwnerRef>) -> Option<ParentKind> {
    match owner?.kind.as_str() {
        "ReplicaSet" => Some(ParentKind::ReplicaSet),
        "Job" => Some(ParentKind::Job),
        _ => None,
    }
}

/// The workload of a pod whose direct controller is `owner` and, for a ReplicaSet or a Job,
/// whose controller is `parent_owner` (as read from the API).
pub fn exact_workload(
    pod_name: &str,
    owner: Option<&OwnerRef>,
    parent_owner: Option<&OwnerRef>,
) -> Workload {
    let Some(owner) = owner else {
        return workload(WorkloadKind::Pod, pod_name);
    };
    match (owner.kind.as_str(), parent_owner) {
        ("ReplicaSet", Some(p)) if p.kind == "Deployment" => {
            workload(WorkloadKind::Deployment, &p.name)
        }
        ("Job", Some(p)) if p.kind == "CronJob" => workload(WorkloadKind::CronJob, &p.name),
        ("ReplicaSet" | "Job", Some(p)) => workload(WorkloadKind::Other, &p.name),
        ("ReplicaSet", None) => workload(WorkloadKind::ReplicaSet, &owner.name),
        ("Job", None) => workload(WorkloadKind::Job, &owner.name),
        _ => direct(pod_name, owner),
    }
}

/// The workload without reading the parent object (see the module docs).
pub fn derived_workload(
    pod_name: &str,
    labels: &std::collections::BTreeMap<String, String>,
    owner: Option<&OwnerRef>,
) -> Workload {
    let Some(owner) = owner else {
        return workload(WorkloadKind::Pod, pod_name);
    };
    match owner.kind.as_str() {
        "ReplicaSet" => match labels
            .get("pod-template-hash")
            .and_then(|hash| owner.name.strip_suffix(hash.as_str()))
            .and_then(|base| base.strip_suffix('-'))
            .filter(|base| !base.is_empty())
        {
            Some(deployment) => workload(WorkloadKind::Deployment, deployment),
            None => workload(WorkloadKind::ReplicaSet, &owner.name),
        },
        "Job" => match owner.name.rsplit_once('-') {
            Some((cronjob, time))
                if !cronjob.is_empty()
                    && time.len() >= 8
                    && time.bytes().all(|b| b.is_ascii_digit()) =>
            {
                workload(WorkloadKind::CronJob, cronjob)
            }
            _ => workload(WorkloadKind::Job, &owner.name),
        },
        _ => direct(pod_name, owner),
    }
}

/// Owners that need no lookup.
fn direct(pod_name: &str, owner: &OwnerRef) -> Workload {
    match owner.kind.as_str() {
        "StatefulSet" => workload(WorkloadKind::StatefulSet, &owner.name),
        "DaemonSet" => workload(WorkloadKind::DaemonSet, &owner.name),
        // Static pods: kubelet's mirror pod is owned by the Node. It is its own workload.
        "Node" => workload(WorkloadKind::Pod, pod_name),
        _ => workload(WorkloadKind::Other, &owner.name),
    }
}

fn workload(kind: WorkloadKind, name: &str) -> Workload {
    Workload {
        kind,
        name: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use WorkloadKind::*;

    fn owner(kind: &str, name: &str) -> OwnerRef {
        OwnerRef {
            kind: kind.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    fn w(kind: WorkloadKind, name: &str) -> Workload {
        workload(kind, name)
    }

    #[test]
    fn exact_chains() {
        let rs = owner("ReplicaSet", "web-7d9f8b6c4d");
        let job = owner("Job", "backup-28734560");
        let cases = [
            (None, None, w(Pod, "pod-a")),
            (
                Some(&rs),
                Some(owner("Deployment", "web")),
                w(Deployment, "web"),
            ),
            (Some(&rs), None, w(ReplicaSet, "web-7d9f8b6c4d")),
            (
                Some(&rs),
                Some(owner("Rollout", "canary")),
                w(Other, "canary"),
            ),
            (
                Some(&job),
                Some(owner("CronJob", "backup")),
                w(CronJob, "backup"),
            ),
            (Some(&job), None, w(Job, "backup-28734560")),
        ];
        for (o, parent, expected) in cases {
            assert_eq!(
                exact_workload("pod-a", o, parent.as_ref()),
                expected,
                "{o:?} {parent:?}"
            );
        }
        let direct_cases = [
            (owner("StatefulSet", "db"), w(StatefulSet, "db")),
            (owner("DaemonSet", "agent"), w(DaemonSet, "agent")),
            (owner("Node", "node-1"), w(Pod, "pod-a")),
            (owner("Workflow", "etl"), w(Other, "etl")),
        ];
        for (o, expected) in direct_cases {
            assert_eq!(exact_workload("pod-a", Some(&o), None), expected);
            assert_eq!(
                derived_workload("pod-a", &BTreeMap::new(), Some(&o)),
                expected
            );
            assert_eq!(parent_to_look_up(Some(&o)), None);
        }
        assert_eq!(parent_to_look_up(Some(&rs)), Some(ParentKind::ReplicaSet));
        assert_eq!(parent_to_look_up(Some(&job)), Some(ParentKind::Job));
    }

    #[test]
    fn derivation_follows_the_controllers_naming() {
        let hash = BTreeMap::from([("pod-template-hash".to_string(), "7d9f8b6c4d".to_string())]);
        let none = BTreeMap::new();
        let cases = [
            (
                owner("ReplicaSet", "web-7d9f8b6c4d"),
                &hash,
                w(Deployment, "web"),
            ),
            // no hash label, or a hash that is not the name's suffix: a bare ReplicaSet
            (
                owner("ReplicaSet", "web-7d9f8b6c4d"),
                &none,
                w(ReplicaSet, "web-7d9f8b6c4d"),
            ),
            (
                owner("ReplicaSet", "web-5c9fd6c974"),
                &hash,
                w(ReplicaSet, "web-5c9fd6c974"),
            ),
            (
                owner("ReplicaSet", "-7d9f8b6c4d"),
                &hash,
                w(ReplicaSet, "-7d9f8b6c4d"),
            ),
            (owner("Job", "backup-28734560"), &none, w(CronJob, "backup")),
            (owner("Job", "db-migrate"), &none, w(Job, "db-migrate")),
            (
                owner("Job", "migrate-1234567"),
                &none,
                w(Job, "migrate-1234567"),
            ),
        ];
        for (o, labels, expected) in cases {
            assert_eq!(
                derived_workload("pod-a", labels, Some(&o)),
                expected,
                "{o:?}"
            );
        }
        assert_eq!(derived_workload("pod-a", &none, None), w(Pod, "pod-a"));
    }

    #[test]
    fn only_the_managing_controller_counts() {
        let refs: Vec<OwnerReference> = serde_json::from_value(serde_json::json!([
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "1"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "2", "controller": true}
        ]))
        .unwrap();
        assert_eq!(
            OwnerRef::controller_of(&refs).map(|o| o.name),
            Some("web-1".to_string())
        );
        assert_eq!(OwnerRef::controller_of(&refs[..1]), None);
    }
}
