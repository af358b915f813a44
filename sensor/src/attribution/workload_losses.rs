//! Losses by workload, with bounded cardinality.
//!
//! Labels are `namespace` and `workload` only: pod names and container ids change with every
//! rollout, workloads do not. At most [`MAX_WORKLOADS`] label pairs are kept; losses of further
//! workloads are counted under `workload="_other"` (namespace empty), so a node with thousands
//! of short-lived bare pods cannot grow the scrape without bound, and nothing goes uncounted.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use crate::attribution::{Attribution, Scope};

/// Label pairs kept per counter before the rest goes to [`OTHER`].
pub const MAX_WORKLOADS: usize = 100;
/// The workload label of the losses beyond [`MAX_WORKLOADS`].
pub const OTHER: &str = "_other";

/// `(namespace, workload)` of an attribution: the workload (else the pod) of a pod; `host`
/// or `unknown` (namespace empty) for the rest.
pub fn workload_labels(who: &Attribution) -> (String, String) {
    match who.scope {
        Scope::Container | Scope::Pod => (
            who.namespace.clone().unwrap_or_default(),
            who.workload
                .clone()
                .or_else(|| who.pod.clone())
                .unwrap_or_else(|| "unknown".to_string()),
        ),
        Scope::Host => (String::new(), "host".to_string()),
        Scope::Unknown => (String::new(), "unknown".to_string()),
    }
}

/// A counter by `(namespace, workload)`, bounded. Bumped on loss paths only (never per event).
#[derive(Debug, Default)]
pub struct WorkloadCounter {
    counts: Mutex<BTreeMap<(String, String), u64>>,
}

impl WorkloadCounter {
    pub fn add(&self, who: &Attribution, n: u64) {
        let mut key = workload_labels(who);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        // One slot is kept for `_other`, so at most MAX_WORKLOADS pairs in all.
        if !counts.contains_key(&key) && counts.len() + 1 >= MAX_WORKLOADS {
            key = (String::new(), OTHER.to_string());
        }
        *counts.entry(key).or_default() += n;
    }

    /// `((namespace, workload), count)`, sorted.
    pub fn snapshot(&self) -> Vec<((String, String), u64)> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

/// Losses waiting for their container's names before they are counted by workload: a container
/// that fails at once (a DNS lookup as its first act) loses before kubelet has written the log
/// symlink that names it, as its events are held back (pipeline `HOLD`). Bounded: beyond
/// [`PendingLosses::MAX`] a loss is counted at once with what is known.
#[derive(Debug, Default)]
pub struct PendingLosses {
    /// (when, cgroup id, pid), oldest first.
    queue: VecDeque<(Instant, u64, u32)>,
}

impl PendingLosses {
    pub const MAX: usize = 1024;

    /// Queues a loss of `cgroup_id`; `false` when full (the caller counts it now).
    pub fn push(&mut self, cgroup_id: u64, pid: u32) -> bool {
        if self.queue.len() >= Self::MAX {
            return false;
        }
        self.queue.push_back((Instant::now(), cgroup_id, pid));
        true
    }

    /// Counts the losses whose container is named by now, older than `hold`, or `settle_now`
    /// (e.g. the cgroup is going away); keeps the rest.
    pub fn settle(
        &mut self,
        hold: Duration,
        mut settle_now: impl FnMut(u64) -> bool,
        mut attribute: impl FnMut(u64, u32) -> std::sync::Arc<Attribution>,
        counter: &WorkloadCounter,
    ) {
        self.queue.retain(|(since, cgroup_id, pid)| {
            let who = attribute(*cgroup_id, *pid);
            let done = who.is_complete() || since.elapsed() >= hold || settle_now(*cgroup_id);
            if done {
                counter.add(&who, 1);
            }
            !done
        });
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, workload: &str) -> Attribution {
        Attribution {
            scope: Scope::Container,
            namespace: Some(ns.into()),
            pod: Some(format!("{workload}-7d9f8b6c4d-x2x9k")),
            pod_uid: None,
            container: Some("app".into()),
            container_id: None,
            workload: Some(workload.into()),
            workload_kind: None,
            cgroup_id: 7,
            cgroup: None,
            workload_from_api: false,
            labels: None,
            service_account: None,
        }
    }

    #[test]
    fn counts_by_workload_and_names_the_host() {
        let c = WorkloadCounter::default();
        c.add(&pod("shop", "checkout"), 1);
        c.add(&pod("shop", "checkout"), 2);
        let mut host = pod("", "");
        host.scope = Scope::Host;
        c.add(&host, 1);
        assert_eq!(
            c.snapshot(),
            vec![
                ((String::new(), "host".to_string()), 1),
                (("shop".to_string(), "checkout".to_string()), 3),
            ]
        );
    }

    #[test]
    fn a_pending_loss_waits_for_its_names_or_the_hold() {
        let counter = WorkloadCounter::default();
        let mut pending = PendingLosses::default();
        assert!(pending.push(7, 100));
        assert!(pending.push(8, 200));
        let mut unnamed = pod("", "");
        unnamed.namespace = None;
        unnamed.workload = None;
        unnamed.pod = None;
        let hold = Duration::from_secs(60);
        // Names not known yet: nothing counted.
        pending.settle(hold, |_| false, |_, _| unnamed.clone().into(), &counter);
        assert!(counter.snapshot().is_empty());
        // Cgroup 7 is named now; cgroup 8 is going away and is counted with what is known.
        pending.settle(
            hold,
            |cgroup| cgroup == 8,
            |cgroup, _| {
                if cgroup == 7 {
                    pod("shop", "checkout").into()
                } else {
                    unnamed.clone().into()
                }
            },
            &counter,
        );
        assert!(pending.is_empty());
        assert_eq!(
            counter.snapshot(),
            vec![
                ((String::new(), "unknown".to_string()), 1),
                (("shop".to_string(), "checkout".to_string()), 1),
            ]
        );
        // The hold expires: counted as known.
        assert!(pending.push(9, 1));
        pending.settle(
            Duration::ZERO,
            |_| false,
            |_, _| unnamed.clone().into(),
            &counter,
        );
        assert!(pending.is_empty());
        for _ in 0..PendingLosses::MAX {
            assert!(pending.push(9, 1));
        }
        assert!(!pending.push(9, 1), "bounded");
    }

    #[test]
    fn cardinality_is_bounded_and_nothing_is_lost() {
        let c = WorkloadCounter::default();
        for i in 0..1000 {
            c.add(&pod("ns", &format!("w{i}")), 1);
        }
        // A workload already counted keeps its own series.
        c.add(&pod("ns", "w0"), 1);
        let snap = c.snapshot();
        assert_eq!(snap.len(), MAX_WORKLOADS);
        assert_eq!(snap.iter().map(|(_, n)| n).sum::<u64>(), 1001);
        let other = snap.iter().find(|((_, w), _)| w == OTHER).unwrap().1;
        assert_eq!(other, 1000 - (MAX_WORKLOADS as u64 - 1));
        let w0 = snap.iter().find(|((_, w), _)| w == "w0").unwrap().1;
        assert_eq!(w0, 2);
    }
}
