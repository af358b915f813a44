//! Guesses a pod's owning workload from its name alone.
//!
//! Without an API server there are no ownerReferences, but controllers name their pods
//! predictably: ReplicaSets (Deployments) and DaemonSets/Jobs append random suffixes
//! from Kubernetes' generate-name alphabet, StatefulSets append an ordinal. Matching
//! that alphabet exactly (no vowels, no 0/1/3) keeps ordinary names from looking
//! generated. A name that fits no pattern is reported as a bare pod.

use serde::{Deserialize, Serialize};

/// The controller kind a pod name points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum WorkloadKind {
    #[serde(rename = "deployment")]
    Deployment,
    #[serde(rename = "statefulset")]
    StatefulSet,
    /// Both use `<name>-<5 random chars>`, so the name cannot tell them apart.
    #[serde(rename = "daemonset-or-job")]
    DaemonSetOrJob,
    #[serde(rename = "cronjob")]
    CronJob,
    #[serde(rename = "pod")]
    Pod,
    // The kinds below only come from the Kubernetes API (ownerReferences), never from a name.
    #[serde(rename = "daemonset")]
    DaemonSet,
    #[serde(rename = "job")]
    Job,
    /// A ReplicaSet without a Deployment above it.
    #[serde(rename = "replicaset")]
    ReplicaSet,
    /// A controller of another kind (a custom resource such as an Argo Rollout or Workflow):
    /// the workload is named after it.
    #[serde(rename = "other")]
    Other,
}

/// A workload guessed from a pod name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
}

/// Kubernetes' `rand.String` / generate-name alphabet (k8s.io/apimachinery util/rand).
const GENERATE_NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Length of the random suffix generate-name appends.
const RANDOM_SUFFIX_LEN: usize = 5;
/// pod-template-hash encodes a uint32, so it is at most 10 chars; below 6 is vanishingly rare.
const TEMPLATE_HASH_LEN: std::ops::RangeInclusive<usize> = 6..=10;
/// A CronJob's Job is named after its scheduled time in minutes since the epoch:
/// 8 digits from 1990 until the year 2160.
const CRONJOB_TIME_MIN_LEN: usize = 8;

/// Infers the workload that owns a pod from the pod's name.
pub fn workload_from_pod_name(pod: &str) -> Workload {
    classify_pod_name(pod).unwrap_or_else(|| workload(WorkloadKind::Pod, pod))
}

/// Tries the patterns from most to least specific; `None` means "a bare pod".
fn classify_pod_name(pod: &str) -> Option<Workload> {
    let (base, last) = pod.rsplit_once('-')?;
    if base.is_empty() {
        return None;
    }
    if is_random_suffix(last) {
        return Some(classify_generated_name(base));
    }
    is_ordinal(last).then(|| workload(WorkloadKind::StatefulSet, base))
}

/// `base` is the pod name without its random suffix: `<deployment>-<hash>`,
/// `<cronjob>-<time>` or the DaemonSet/Job name itself.
fn classify_generated_name(base: &str) -> Workload {
    if let Some((owner, middle)) = base.rsplit_once('-')
        && !owner.is_empty()
    {
        // Time first: an 8-digit all-alphabet hash is far rarer than a schedule time
        // that happens to avoid 0, 1 and 3.
        if is_cronjob_time(middle) {
            return workload(WorkloadKind::CronJob, owner);
        }
        if is_template_hash(middle) {
            return workload(WorkloadKind::Deployment, owner);
        }
    }
    workload(WorkloadKind::DaemonSetOrJob, base)
}

fn workload(kind: WorkloadKind, name: &str) -> Workload {
    Workload {
        kind,
        name: name.to_string(),
    }
}

fn is_random_suffix(s: &str) -> bool {
    s.len() == RANDOM_SUFFIX_LEN && is_in_alphabet(s)
}

fn is_template_hash(s: &str) -> bool {
    TEMPLATE_HASH_LEN.contains(&s.len()) && is_in_alphabet(s)
}

/// Exactly 8 digits is always a schedule time. Longer all-digit tokens only count when
/// they contain 0, 1 or 3: otherwise they are a 9-10 char pod-template-hash, since
/// schedule times won't reach 9 digits for over a century.
fn is_cronjob_time(s: &str) -> bool {
    s.len() >= CRONJOB_TIME_MIN_LEN
        && is_all_digits(s)
        && (s.len() == CRONJOB_TIME_MIN_LEN || !is_in_alphabet(s))
}

/// StatefulSet ordinals are decimal without leading zeros ("0", "1", ..., "12").
fn is_ordinal(s: &str) -> bool {
    is_all_digits(s) && (s == "0" || !s.starts_with('0'))
}

fn is_all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_in_alphabet(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| GENERATE_NAME_ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use WorkloadKind::{CronJob, DaemonSetOrJob, Deployment, Pod, StatefulSet};

    #[test]
    fn infers_workload_from_pod_name() {
        let cases = [
            // Deployments: <name>-<pod-template-hash>-<suffix>
            ("nginx-7d9f8b6c4d-x2x9k", Deployment, "nginx"),
            ("coredns-5d78c9869d-8kz2t", Deployment, "coredns"),
            (
                "metrics-server-6d94bc8694-4w5zj",
                Deployment,
                "metrics-server",
            ),
            (
                "local-path-provisioner-6bc4bddd6b-kmrzq",
                Deployment,
                "local-path-provisioner",
            ),
            (
                "ingress-nginx-controller-5c9fd6c974-qf8vz",
                Deployment,
                "ingress-nginx-controller",
            ),
            // name ending in a version number is still the deployment name
            ("api-v2-7c6d8f9b5-rp4lt", Deployment, "api-v2"),
            // 'a' and 'e' are not in the alphabet: neither a hash nor a suffix
            ("coredns-5d78c9869d-abcde", Pod, "coredns-5d78c9869d-abcde"),
            // 6-char hash is the shortest we accept; 5 chars reads as a DaemonSet/Job name part
            ("web-9f8d7c-x2x9k", Deployment, "web"),
            ("web-9f8d7-x2x9k", DaemonSetOrJob, "web-9f8d7"),
            // 11 chars is longer than any uint32 hash
            ("web-9f8d7c6b5d4-x2x9k", DaemonSetOrJob, "web-9f8d7c6b5d4"),
            // 9-10 all-digit token without 0/1/3 is a hash, not a schedule time
            ("web-649587765-x2x9k", Deployment, "web"),
            // CronJobs: <name>-<minutes since epoch>-<suffix>
            ("backup-28734560-qwv7x", CronJob, "backup"),
            ("db-dump-29012345-2n7xk", CronJob, "db-dump"),
            // 8 digits that all fit the alphabet: still a schedule time (see is_cronjob_time)
            ("report-28892455-s4v9b", CronJob, "report"),
            // 7 digits: too short for a schedule time, and '1' and '0' rule out a hash
            ("report-2100000-s4v9b", DaemonSetOrJob, "report-2100000"),
            // DaemonSets and Jobs: <name>-<suffix>
            ("kube-proxy-q8m4z", DaemonSetOrJob, "kube-proxy"),
            ("kindnet-7xkpw", DaemonSetOrJob, "kindnet"),
            ("cilium-node-init-d5z2c", DaemonSetOrJob, "cilium-node-init"),
            ("db-migrate-bx6kq", DaemonSetOrJob, "db-migrate"),
            // StatefulSets: <name>-<ordinal>
            ("web-0", StatefulSet, "web"),
            ("redis-cluster-12", StatefulSet, "redis-cluster"),
            ("kafka-2", StatefulSet, "kafka"),
            // leading zero is not an ordinal
            ("build-007", Pod, "build-007"),
            // static pods: <name>-<node name>. "node1" has 5 chars but 'o', 'e', '1'
            ("etcd-node1", Pod, "etcd-node1"),
            (
                "kube-apiserver-kind-control-plane",
                Pod,
                "kube-apiserver-kind-control-plane",
            ),
            // Known limit: a static pod on a node named "worker-2" looks like a StatefulSet.
            (
                "kube-scheduler-worker-2",
                StatefulSet,
                "kube-scheduler-worker",
            ),
            // plain names
            ("my-app", Pod, "my-app"),
            ("debug", Pod, "debug"),
            // uppercase is not generated (and not valid DNS-1123 anyway)
            ("web-X2X9K", Pod, "web-X2X9K"),
            // degenerate inputs
            ("", Pod, ""),
            ("-", Pod, "-"),
            ("-x2x9k", Pod, "-x2x9k"),
            ("-0", Pod, "-0"),
            ("web-", Pod, "web-"),
            // empty owner before the hash: fall back to the whole base
            ("-7d9f8b6c4d-x2x9k", DaemonSetOrJob, "-7d9f8b6c4d"),
            ("héllo-x2x9k", DaemonSetOrJob, "héllo"),
            ("web-x2x9ké", Pod, "web-x2x9ké"),
        ];
        for (pod, kind, name) in cases {
            let expected = Workload {
                kind,
                name: name.to_string(),
            };
            assert_eq!(workload_from_pod_name(pod), expected, "pod: {pod}");
        }
    }
}
