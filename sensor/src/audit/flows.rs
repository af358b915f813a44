//! A profile's recorded traffic as evaluator flows (pure).
//!
//! - Egress: source = the workload's pods (the profile's labels), destination = the peer pod
//!   when the profile knew it (namespace and labels from the Kubernetes API, plus its IP),
//!   else the address as an endpoint outside the cluster. Port = the remote port.
//! - Ingress: source = the peer (same rules), destination = the workload's pods on the local
//!   port.
//! - DNS to the cluster DNS (a resolver marked `clusterDns`) on port 53: the destination is
//!   the kube-dns pods (`kube-system`, `k8s-app: kube-dns`) with the Service address as their
//!   IP, as the drafts assume: policies see the pods behind the Service address.
//! - Not evaluated (counted): loopback/unspecified addresses (traffic that stays inside the pod
//!   is never subject to NetworkPolicy) and port 0.
//!
//! Labels that are unknown are the drafts' guesses (`app.kubernetes.io/name: <workload>`); each
//! guess is a note, since a verdict about guessed labels is only as good as the guess.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::audit::netpol_eval::{Endpoint, Flow, Labels, Pod, Protocol};
use crate::drafts::netpol::{KUBE_DNS_LABEL, KUBE_DNS_NAMESPACE};
use crate::drafts::traffic::{guessed_labels, is_local};
use crate::profile::model::{self, ApplicationProfile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Egress,
    Ingress,
}

/// Who is at the other end of a recorded flow, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// The cluster DNS (evaluated as the kube-dns pods).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cluster_dns: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
}

impl std::fmt::Display for PeerInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cluster_dns {
            return write!(
                f,
                "cluster DNS {} ({KUBE_DNS_NAMESPACE} pods {}={})",
                self.ip, KUBE_DNS_LABEL.0, KUBE_DNS_LABEL.1
            );
        }
        match (&self.namespace, &self.pod, &self.workload) {
            (Some(ns), Some(pod), _) => write!(f, "pod {ns}/{pod} at {}", self.ip)?,
            (Some(ns), None, Some(w)) => write!(f, "workload {ns}/{w} at {}", self.ip)?,
            (Some(ns), None, None) => write!(f, "a pod of namespace {ns} at {}", self.ip)?,
            _ => write!(f, "{}", self.ip)?,
        }
        if !self.dns_names.is_empty() {
            write!(f, " ({})", self.dns_names.join(", "))?;
        }
        Ok(())
    }
}

/// One recorded flow of one container, ready to evaluate.
#[derive(Debug, Clone)]
pub struct RecordedFlow {
    pub direction: Direction,
    pub peer: PeerInfo,
    pub protocol: Protocol,
    /// Egress: the remote port; ingress: the local port.
    pub port: u16,
    pub connections: u64,
    /// RFC 3339 (the profile's format).
    pub last_seen: String,
    pub flow: Flow,
}

#[derive(Debug, Clone, Default)]
pub struct ProfileFlows {
    pub flows: Vec<RecordedFlow>,
    /// Loopback, unspecified or port-0 flows: not subject to NetworkPolicy.
    pub skipped: usize,
    pub notes: Vec<String>,
}

/// What every flow of one profile shares: the workload's own pod (its labels, or the draft's
/// guess with a note) and the addresses of its cluster DNS.
struct Workload {
    own: Pod,
    cluster_dns: BTreeSet<IpAddr>,
    note: Option<String>,
}

fn workload(profile: &ApplicationProfile) -> Workload {
    let key = &profile.key;
    let (labels, note) = if profile.labels.is_empty() {
        let guess = guessed_labels(&key.workload);
        let note = format!(
            "{}/{}: pod labels unknown (no Kubernetes API): assumed {}, the draft's guess",
            key.namespace,
            key.workload,
            show_labels(&guess)
        );
        (guess, Some(note))
    } else {
        (profile.labels.clone(), None)
    };
    Workload {
        own: Pod {
            namespace: key.namespace.clone(),
            labels,
            ip: None,
        },
        cluster_dns: profile
            .resolvers
            .iter()
            .filter(|r| r.cluster_dns)
            .map(|r| r.ip.to_canonical())
            .collect(),
        note,
    }
}

/// One flow of the workload, or `None` when NetworkPolicy never applies to it (loopback,
/// unspecified address, port 0).
fn recorded(
    w: &Workload,
    direction: Direction,
    f: &model::Flow,
    guesses: &mut BTreeSet<String>,
) -> Option<RecordedFlow> {
    let ip = f.ip.to_canonical();
    if is_local(ip) || f.port == 0 {
        return None;
    }
    let to_cluster_dns =
        direction == Direction::Egress && f.port == 53 && w.cluster_dns.contains(&ip);
    let (peer, endpoint) = if to_cluster_dns {
        (
            PeerInfo {
                cluster_dns: true,
                ..peer_info(ip, f)
            },
            Endpoint::Pod(Pod {
                namespace: KUBE_DNS_NAMESPACE.to_string(),
                labels: Labels::from([(
                    KUBE_DNS_LABEL.0.to_string(),
                    KUBE_DNS_LABEL.1.to_string(),
                )]),
                ip: Some(ip),
            }),
        )
    } else {
        (peer_info(ip, f), peer_endpoint(ip, f, guesses))
    };
    let own_endpoint = Endpoint::Pod(w.own.clone());
    let (source, destination) = match direction {
        Direction::Egress => (own_endpoint, endpoint),
        Direction::Ingress => (endpoint, own_endpoint),
    };
    let protocol = match f.protocol {
        model::Protocol::Tcp => Protocol::Tcp,
        model::Protocol::Udp => Protocol::Udp,
    };
    Some(RecordedFlow {
        direction,
        peer,
        protocol,
        port: f.port,
        connections: f.connections,
        last_seen: f.last_seen.to_string(),
        flow: Flow {
            source,
            destination,
            protocol,
            port: f.port,
            // Profiles do not record container port names.
            port_name: None,
        },
    })
}

/// The flows of `profile` (see the module docs).
pub fn of_profile(profile: &ApplicationProfile) -> ProfileFlows {
    let w = workload(profile);
    let mut out = ProfileFlows::default();
    out.notes.extend(w.note.clone());
    let mut guesses = BTreeSet::new();
    for (direction, f) in profile
        .egress
        .iter()
        .map(|f| (Direction::Egress, f))
        .chain(profile.ingress.iter().map(|f| (Direction::Ingress, f)))
    {
        match recorded(&w, direction, f, &mut guesses) {
            Some(r) => out.flows.push(r),
            None => out.skipped += 1,
        }
    }
    out.notes.extend(guesses);
    out
}

/// One flow `f` of `profile`'s workload, built exactly as [`of_profile`] builds it.
pub fn one(
    profile: &ApplicationProfile,
    direction: Direction,
    f: &model::Flow,
) -> Option<RecordedFlow> {
    recorded(&workload(profile), direction, f, &mut BTreeSet::new())
}

fn peer_info(ip: IpAddr, f: &model::Flow) -> PeerInfo {
    let peer = f.peer.as_ref().filter(|p| !p.namespace.is_empty());
    PeerInfo {
        ip,
        namespace: peer.map(|p| p.namespace.clone()),
        pod: peer.and_then(|p| p.pod.clone()),
        workload: peer.and_then(|p| p.workload.clone()),
        cluster_dns: false,
        dns_names: f.dns_names.clone(),
    }
}

/// The peer pod when the profile knew it, else the address (outside the cluster's pods as far
/// as we know).
fn peer_endpoint(ip: IpAddr, f: &model::Flow, guesses: &mut BTreeSet<String>) -> Endpoint {
    let Some(peer) = f.peer.as_ref().filter(|p| !p.namespace.is_empty()) else {
        return Endpoint::External(ip);
    };
    let labels = if !peer.labels.is_empty() {
        peer.labels.clone()
    } else if let Some(w) = &peer.workload {
        let guess = guessed_labels(w);
        guesses.insert(format!(
            "peer {}/{w}: labels unknown: assumed {}, the draft's guess",
            peer.namespace,
            show_labels(&guess)
        ));
        guess
    } else {
        Labels::new()
    };
    Endpoint::Pod(Pod {
        namespace: peer.namespace.clone(),
        labels,
        ip: Some(ip),
    })
}

fn show_labels(l: &Labels) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
