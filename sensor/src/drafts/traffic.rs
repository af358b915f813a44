//! The network behaviour of one workload (all its containers' profiles merged), reduced to what
//! the NetworkPolicy and CiliumNetworkPolicy generators both need: who the workload's pods are,
//! which peers it talks to on which ports, how it resolves names, and what a reviewer must check.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::DraftError;
use crate::ai::Catalogue;
use crate::profile::model::{ApplicationProfile, Flow, Peer, Protocol};

/// The label the selectors fall back to when pod labels are unknown (no Kubernetes API): the
/// recommended `app.kubernetes.io/name` label, with the workload name as its value.
pub const GUESS_LABEL: &str = "app.kubernetes.io/name";

/// Labels Kubernetes controllers set per pod or per revision: they differ between replicas or
/// rollouts, so a selector that includes them would stop matching after the next rollout.
pub const PER_POD_LABELS: &[&str] = &[
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/job-completion-index",
];

/// `labels` without the per-pod labels of [`PER_POD_LABELS`].
pub fn stable_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !PER_POD_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Addresses that never leave the pod: loopback and the unspecified address (a connect to
/// `0.0.0.0` reaches the local host). IPv4-mapped IPv6 addresses count as their IPv4 address.
pub fn is_local(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || ip.is_unspecified()
}

/// `ip/32` or `ip/128`, for the canonical form of `ip`.
pub fn host_cidr(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

/// A name of an in-cluster Service (`<svc>.<ns>.svc.cluster.local`, the default cluster domain).
pub fn is_cluster_service_name(name: &str) -> bool {
    let n = name.trim_end_matches('.');
    n.ends_with(".svc.cluster.local")
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// `s` shortened into a valid label value (<= 63 characters, alphanumeric at both ends).
fn label_value(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The labels assumed for pods of `workload` when their real labels are unknown.
pub fn guessed_labels(workload: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(GUESS_LABEL.to_string(), label_value(workload))])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortProto {
    pub port: u16,
    pub protocol: Protocol,
}

impl PortProto {
    pub fn protocol_name(&self) -> &'static str {
        match self.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// The two DNS ports, UDP first (the usual transport), then TCP (large answers, retries).
pub const DNS_PORTS: [PortProto; 2] = [
    PortProto {
        port: 53,
        protocol: Protocol::Udp,
    },
    PortProto {
        port: 53,
        protocol: Protocol::Tcp,
    },
];

/// A peer as a policy can name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerRef {
    /// Pods selected by labels, in `namespace` (`None`: the workload's own namespace).
    Pods {
        namespace: Option<String>,
        labels: BTreeMap<String, String>,
    },
    /// One address (canonical form).
    Ip(IpAddr),
}

/// Peers that share one set of ports: one policy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub ports: Vec<PortProto>,
    pub peers: Vec<PeerRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    pub namespace: String,
    pub workload: String,
    /// `namespace/workload/container` of every merged profile.
    pub sources: Vec<String>,
    /// Labels selecting the workload's pods.
    pub selector: BTreeMap<String, String>,
    /// `selector` is [`guessed_labels`]: pod labels were unknown.
    pub selector_guessed: bool,
    /// A resolver is the cluster DNS: allow the kube-dns pods.
    pub cluster_dns: bool,
    /// Resolvers allowed by address (not the cluster DNS, or a node-local cache on a
    /// link-local address).
    pub resolver_ips: BTreeSet<IpAddr>,
    pub egress: Vec<Group>,
    pub ingress: Vec<Group>,
    /// DNS names the containers resolved to each egress peer allowed by address.
    pub egress_names: BTreeMap<IpAddr, BTreeSet<String>>,
    /// What a reviewer must check (guesses the generator had to make).
    pub review: Vec<String>,
    /// [`super::draft_notes`] of the profiles (prefixed with the container when several).
    pub notes: Vec<String>,
    /// What each egress flow's peer is (model API, vector store, ...), in flow order.
    pub egress_classes: Vec<crate::ai::PeerClass>,
}

impl Traffic {
    /// Merges the profiles of one workload's containers; egress peers are classified with
    /// `catalogue`. An error if `profiles` is empty or mixes namespaces or workloads.
    pub fn of_workload(
        profiles: &[&ApplicationProfile],
        catalogue: &Catalogue,
    ) -> Result<Traffic, DraftError> {
        let first = profiles.first().ok_or(DraftError::NoProfiles)?;
        let namespace = first.key.namespace.clone();
        let workload = first.key.workload.clone();
        if let Some(other) = profiles
            .iter()
            .find(|p| p.key.namespace != namespace || p.key.workload != workload)
        {
            return Err(DraftError::MixedWorkloads {
                first: Box::new(first.key.clone()),
                other: Box::new(other.key.clone()),
            });
        }
        let mut review = Vec::new();

        // The workload's own pods: the labels every container's profile agrees on.
        let mut selector: Option<BTreeMap<String, String>> = None;
        for p in profiles {
            let labels = stable_labels(&p.labels);
            if labels.is_empty() {
                continue;
            }
            selector = Some(match selector {
                None => labels,
                Some(s) => s
                    .into_iter()
                    .filter(|(k, v)| labels.get(k) == Some(v))
                    .collect(),
            });
        }
        let (selector, selector_guessed) = match selector {
            Some(s) if !s.is_empty() => (s, false),
            _ => {
                let s = guessed_labels(&workload);
                review.push(format!(
                    "pod selector {GUESS_LABEL}={} is a guess (the pod labels were unknown): \
                     check that it selects the pods of {namespace}/{workload}, and only them",
                    s[GUESS_LABEL]
                ));
                (s, true)
            }
        };

        // Resolvers.
        let mut cluster_dns = false;
        let mut resolver_ips = BTreeSet::new();
        let mut all_resolvers = BTreeSet::new();
        for r in profiles.iter().flat_map(|p| &p.resolvers) {
            let ip = r.ip.to_canonical();
            if is_local(ip) {
                continue;
            }
            all_resolvers.insert(ip);
            if !r.cluster_dns {
                resolver_ips.insert(ip);
            } else {
                cluster_dns = true;
                if is_link_local(ip) && resolver_ips.insert(ip) {
                    review.push(format!(
                        "the cluster DNS is reached at the link-local address {ip} (a node-local \
                         DNS cache): allowed by address as well as the kube-dns pods"
                    ));
                }
            }
        }

        // DNS names per address, from the flows and from the DNS answers.
        let mut names_by_ip: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
        for p in profiles {
            for d in &p.dns {
                for a in &d.addresses {
                    names_by_ip
                        .entry(a.to_canonical())
                        .or_default()
                        .insert(d.name.clone());
                }
            }
            for f in &p.egress {
                names_by_ip
                    .entry(f.ip.to_canonical())
                    .or_default()
                    .extend(f.dns_names.iter().cloned());
            }
        }

        let mut classify = Classifier {
            namespace: &namespace,
            review: BTreeSet::new(),
        };
        let mut egress_ports: BTreeMap<PeerRef, BTreeSet<PortProto>> = BTreeMap::new();
        let mut egress_classes = Vec::new();
        for f in profiles.iter().flat_map(|p| &p.egress) {
            let ip = f.ip.to_canonical();
            // Port 0 cannot be written in a policy (and reaches nothing).
            if is_local(ip) || f.port == 0 || (f.port == 53 && all_resolvers.contains(&ip)) {
                continue;
            }
            let names: Vec<String> = names_by_ip
                .get(&ip)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            egress_classes.push(crate::ai::classify::classify_peer(
                &names,
                f.port,
                f.protocol,
                f.peer.is_some(),
                catalogue,
            ));
            egress_ports
                .entry(classify.peer(f))
                .or_default()
                .insert(port_of(f));
        }
        let mut ingress_ports: BTreeMap<PeerRef, BTreeSet<PortProto>> = BTreeMap::new();
        for f in profiles.iter().flat_map(|p| &p.ingress) {
            if is_local(f.ip) || f.port == 0 {
                continue;
            }
            ingress_ports
                .entry(classify.peer(f))
                .or_default()
                .insert(port_of(f));
        }
        review.extend(classify.review);

        let mut egress_names = BTreeMap::new();
        for peer in egress_ports.keys() {
            if let PeerRef::Ip(ip) = peer
                && let Some(names) = names_by_ip.get(ip).filter(|n| !n.is_empty())
            {
                if let Some(svc) = names.iter().find(|n| is_cluster_service_name(n)) {
                    review.push(format!(
                        "{} ({svc}) is an in-cluster Service address: policies see the Service's \
                         pods, not this address; replace it with a selector for those pods",
                        host_cidr(*ip)
                    ));
                }
                egress_names.insert(*ip, names.clone());
            }
        }

        let mut notes = Vec::new();
        for p in profiles {
            for n in super::draft_notes(p) {
                let n = if profiles.len() > 1 {
                    format!("container {}: {n}", p.key.container)
                } else {
                    n
                };
                if !notes.contains(&n) {
                    notes.push(n);
                }
            }
        }

        Ok(Traffic {
            sources: profiles.iter().map(|p| p.key.to_string()).collect(),
            namespace,
            workload,
            selector,
            selector_guessed,
            cluster_dns,
            resolver_ips,
            egress: group(egress_ports),
            ingress: group(ingress_ports),
            egress_names,
            review,
            notes,
            egress_classes,
        })
    }
}

fn port_of(f: &Flow) -> PortProto {
    PortProto {
        port: f.port,
        protocol: f.protocol,
    }
}

/// Peers with the same port set share a rule. Rules are ordered by their port sets, peers
/// within a rule by kind (selectors first) then address.
fn group(ports_by_peer: BTreeMap<PeerRef, BTreeSet<PortProto>>) -> Vec<Group> {
    let mut by_ports: BTreeMap<Vec<PortProto>, Vec<PeerRef>> = BTreeMap::new();
    for (peer, ports) in ports_by_peer {
        by_ports
            .entry(ports.into_iter().collect())
            .or_default()
            .push(peer);
    }
    by_ports
        .into_iter()
        .map(|(ports, peers)| Group { ports, peers })
        .collect()
}

struct Classifier<'a> {
    namespace: &'a str,
    review: BTreeSet<String>,
}

impl Classifier<'_> {
    /// How a policy names the peer of `f`: in-cluster pods by labels (their real ones, or the
    /// [`guessed_labels`] of their workload), anything else by address.
    fn peer(&mut self, f: &Flow) -> PeerRef {
        let ip = f.ip.to_canonical();
        let Some(peer) = f.peer.as_ref().filter(|p| !p.namespace.is_empty()) else {
            return PeerRef::Ip(ip);
        };
        let namespace = (peer.namespace != self.namespace).then(|| peer.namespace.clone());
        let labels = stable_labels(&peer.labels);
        if !labels.is_empty() {
            return PeerRef::Pods { namespace, labels };
        }
        match &peer.workload {
            Some(w) => {
                let labels = guessed_labels(w);
                self.review.insert(format!(
                    "peer {}/{w}: labels unknown, selected by the guess {GUESS_LABEL}={}: check it",
                    peer.namespace, labels[GUESS_LABEL]
                ));
                PeerRef::Pods { namespace, labels }
            }
            None => {
                self.review.insert(format!(
                    "peer {} at {ip}: labels and workload unknown, allowed by its pod address, \
                     which changes when the pod is replaced",
                    describe(peer)
                ));
                PeerRef::Ip(ip)
            }
        }
    }
}

fn describe(peer: &Peer) -> String {
    match &peer.pod {
        Some(pod) => format!("pod {}/{pod}", peer.namespace),
        None => format!("in namespace {}", peer.namespace),
    }
}
