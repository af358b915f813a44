//! The pods known from the API: this node's pods by uid (for attribution) and every known pod
//! by address (for the peers of flows). Plain data, fed by the watch task, read by the agent.
//!
//! A (re-)list replaces a set wholesale: pods not seen in it were deleted while the watch was
//! down and are dropped when the list is complete, so a missed delete never leaves a stale pod.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::Arc,
};

use super::{model::ApiPod, owner::OwnerRef};

/// Which watch a pod came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PodSet {
    /// Pods on this node (`spec.nodeName=<node>`).
    Local,
    /// Pods on other nodes (peers only).
    Remote,
}

#[derive(Debug, Default)]
struct Pods {
    by_uid: HashMap<String, Arc<ApiPod>>,
    /// Uids seen by the list in progress, if one is.
    listing: Option<HashSet<String>>,
}

#[derive(Debug, Default)]
pub struct PodCache {
    local: Pods,
    remote: Pods,
    /// Address -> (set, uid) of the pod that holds it (the last one applied).
    by_ip: HashMap<IpAddr, (PodSet, String)>,
    /// Bumped on every change of a local pod, so attributions know when to look again.
    local_generation: u64,
}

impl PodCache {
    fn pods(&mut self, set: PodSet) -> &mut Pods {
        match set {
            PodSet::Local => &mut self.local,
            PodSet::Remote => &mut self.remote,
        }
    }

    pub fn local_generation(&self) -> u64 {
        self.local_generation
    }

    /// Number of pods held in `set`.
    pub fn len(&self, set: PodSet) -> usize {
        match set {
            PodSet::Local => self.local.by_uid.len(),
            PodSet::Remote => self.remote.by_uid.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.local.by_uid.is_empty() && self.remote.by_uid.is_empty()
    }

    /// A pod on this node.
    pub fn local(&self, uid: &str) -> Option<Arc<ApiPod>> {
        self.local.by_uid.get(uid).cloned()
    }

    /// The object of a workload with pods on this node (see [`ApiPod::workload_object`]).
    pub fn local_workload_object(&self, namespace: &str, workload: &str) -> Option<OwnerRef> {
        self.local
            .by_uid
            .values()
            .filter(|p| p.namespace == namespace && p.workload.name == workload)
            .find_map(|p| p.workload_object.clone())
    }

    pub fn has_local_workload(&self, namespace: &str, workload: &str) -> bool {
        self.local
            .by_uid
            .values()
            .any(|p| p.namespace == namespace && p.workload.name == workload)
    }

    /// The pod that holds `ip` (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn by_ip(&self, ip: &IpAddr) -> Option<Arc<ApiPod>> {
        let (set, uid) = self.by_ip.get(&ip.to_canonical())?;
        match set {
            PodSet::Local => self.local.by_uid.get(uid).cloned(),
            PodSet::Remote => self.remote.by_uid.get(uid).cloned(),
        }
    }

    /// A list of `set` starts.
    pub fn begin_list(&mut self, set: PodSet) {
        self.pods(set).listing = Some(HashSet::new());
    }

    /// A pod was added or changed (or listed).
    pub fn apply(&mut self, set: PodSet, pod: ApiPod) {
        let uid = pod.uid.clone();
        let pods = self.pods(set);
        if let Some(listing) = &mut pods.listing {
            listing.insert(uid.clone());
        }
        if pods.by_uid.get(&uid).is_some_and(|old| **old == pod) {
            return;
        }
        let pod = Arc::new(pod);
        let old = pods.by_uid.insert(uid.clone(), pod.clone());
        if let Some(old) = old {
            self.unindex(set, &old);
        }
        for ip in &pod.ips {
            self.by_ip.insert(ip.to_canonical(), (set, uid.clone()));
        }
        if set == PodSet::Local {
            self.local_generation += 1;
        }
    }

    /// A pod was deleted.
    pub fn delete(&mut self, set: PodSet, uid: &str) {
        if let Some(old) = self.pods(set).by_uid.remove(uid) {
            self.unindex(set, &old);
            if set == PodSet::Local {
                self.local_generation += 1;
            }
        }
    }

    /// The list of `set` is complete: pods it did not return are gone. Returns how many.
    pub fn finish_list(&mut self, set: PodSet) -> usize {
        let Some(listed) = self.pods(set).listing.take() else {
            return 0;
        };
        let gone: Vec<String> = self
            .pods(set)
            .by_uid
            .keys()
            .filter(|uid| !listed.contains(*uid))
            .cloned()
            .collect();
        for uid in &gone {
            self.delete(set, uid);
        }
        gone.len()
    }

    /// Removes the address entries that still point at `pod`.
    fn unindex(&mut self, set: PodSet, pod: &ApiPod) {
        for ip in &pod.ips {
            let ip = ip.to_canonical();
            if self
                .by_ip
                .get(&ip)
                .is_some_and(|(s, uid)| *s == set && *uid == pod.uid)
            {
                self.by_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::workload::{Workload, WorkloadKind};

    fn pod(uid: &str, ips: &[&str]) -> ApiPod {
        ApiPod {
            uid: uid.into(),
            namespace: "ns".into(),
            name: format!("pod-{uid}"),
            labels: Default::default(),
            owner: None,
            workload: Workload {
                kind: WorkloadKind::Pod,
                name: format!("pod-{uid}"),
            },
            workload_exact: true,
            workload_object: None,
            service_account: None,
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            containers: Vec::new(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_follow_pods() {
        let mut c = PodCache::default();
        c.apply(PodSet::Local, pod("a", &["10.0.0.1"]));
        c.apply(PodSet::Remote, pod("b", &["10.0.1.1", "fd00::1"]));
        assert_eq!(c.by_ip(&ip("10.0.0.1")).unwrap().uid, "a");
        assert_eq!(c.by_ip(&ip("::ffff:10.0.1.1")).unwrap().uid, "b");
        assert_eq!(c.by_ip(&ip("fd00::1")).unwrap().uid, "b");
        // a new address replaces the old one
        c.apply(PodSet::Remote, pod("b", &["10.0.1.2"]));
        assert!(c.by_ip(&ip("10.0.1.1")).is_none());
        // an address handed to another pod: the newer pod holds it; the old pod's delete
        // does not take it away
        c.apply(PodSet::Remote, pod("c", &["10.0.0.1"]));
        c.delete(PodSet::Local, "a");
        assert_eq!(c.by_ip(&ip("10.0.0.1")).unwrap().uid, "c");
        assert!(c.local("a").is_none());
        assert_eq!((c.len(PodSet::Local), c.len(PodSet::Remote)), (0, 2));
    }

    #[test]
    fn a_relist_drops_pods_deleted_while_the_watch_was_down() {
        let mut c = PodCache::default();
        for uid in ["a", "b", "c"] {
            c.apply(PodSet::Local, pod(uid, &[]));
        }
        c.apply(PodSet::Remote, pod("r", &["10.9.9.9"]));
        let g = c.local_generation();
        c.begin_list(PodSet::Local);
        c.apply(PodSet::Local, pod("a", &[]));
        c.apply(PodSet::Local, pod("d", &[]));
        assert_eq!(c.finish_list(PodSet::Local), 2);
        let mut left: Vec<_> = ["a", "b", "c", "d"]
            .into_iter()
            .filter(|u| c.local(u).is_some())
            .collect();
        left.sort();
        assert_eq!(left, vec!["a", "d"]);
        assert!(c.local_generation() > g);
        assert!(
            c.by_ip(&ip("10.9.9.9")).is_some(),
            "the other set is untouched"
        );
        assert_eq!(c.finish_list(PodSet::Local), 0, "no list in progress");
    }

    #[test]
    fn unchanged_pods_do_not_bump_the_generation() {
        let mut c = PodCache::default();
        c.apply(PodSet::Local, pod("a", &[]));
        let g = c.local_generation();
        c.apply(PodSet::Local, pod("a", &[]));
        assert_eq!(c.local_generation(), g);
        c.apply(PodSet::Remote, pod("r", &[]));
        assert_eq!(c.local_generation(), g, "peers do not change attributions");
    }
}
