//! Kubernetes `NetworkPolicy` (networking.k8s.io/v1) drafts: one policy per workload that allows
//! what its containers were seen doing and nothing else, in both directions.
//!
//! The objects are `k8s-openapi`'s typed structs (feature `v1_30`, see the workspace
//! `Cargo.toml`); NetworkPolicy v1 is the same on Kubernetes 1.29 to 1.34, and the drafts are
//! validated against both ends of that range by `tests/netpol_validate.rs`.
//!
//! What NetworkPolicy cannot express is carried in annotations (prefix
//! [`super::ANNOTATION_PREFIX`]):
//! - `sensor.io/profiles`: the profiles the policy was made from (`ns/workload/container`,
//!   comma-separated);
//! - `sensor.io/egress-names`: the DNS names the containers resolved for each `ipBlock` peer, as
//!   a JSON object `{"<cidr>": ["<name>", ...]}` (sorted), so a reviewer can tell what
//!   `203.0.113.7/32` is and that the address may change;
//! - `sensor.io/egress-classes`: what the egress peers are, from the AI catalogue
//!   ([`crate::ai`]): e.g. `Amazon Bedrock (model API), Pinecone (vector store), 1 cluster
//!   service, nothing else`;
//! - `sensor.io/review`: one line per guess the generator had to make (a guessed pod selector,
//!   a pod allowed by address, a Service address...);
//! - `sensor.io/notes`: one line per caveat of the profiles ([`super::draft_notes`]: partial,
//!   still learning, caps hit).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::traffic::{DNS_PORTS, Group, PeerRef, PortProto, Traffic, host_cidr};
use super::{ANNOTATION_PREFIX, DraftError};
use crate::ai::Catalogue;
use crate::profile::model::ApplicationProfile;

/// Namespace label every namespace carries (set by the API server since 1.22).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The labels of the cluster DNS pods (CoreDNS) in `kube-system`, the same on EKS and kubeadm
/// clusters (the Deployment keeps kube-dns' historical label).
pub const KUBE_DNS_LABEL: (&str, &str) = ("k8s-app", "kube-dns");
pub const KUBE_DNS_NAMESPACE: &str = "kube-system";

/// The policy for one container's profile: [`network_policy_for_workload`] with one profile.
pub fn network_policy(
    profile: &ApplicationProfile,
    catalogue: &Catalogue,
) -> Result<NetworkPolicy, DraftError> {
    network_policy_for_workload(&[profile], catalogue)
}

/// The policy `sensor-<workload>` (as a DNS-1123 name) in the workload's namespace, merging the
/// profiles of all its containers (they share the pods, hence one policy).
///
/// - `podSelector`: the pods' labels (`profile.labels`, the labels all containers' profiles agree
///   on) without the per-pod/per-revision labels controllers add (`pod-template-hash`,
///   `controller-revision-hash`, `statefulset.kubernetes.io/pod-name`, `job-name`...). When the
///   labels are unknown (no Kubernetes API), the guess `app.kubernetes.io/name: <workload>` and a
///   `sensor.io/review` line saying to check it.
/// - `policyTypes: [Ingress, Egress]`: both directions are restricted to what was observed.
/// - Egress: DNS first (the kube-dns pods on 53/UDP+TCP for the cluster DNS; other resolvers by
///   address on 53/UDP+TCP), then one rule per set of ports: in-cluster peers by pod selector
///   (plus a `namespaceSelector` on `kubernetes.io/metadata.name` for other namespaces), other
///   peers by `ipBlock` `/32` or `/128`. Loopback and DNS traffic to a resolver are not repeated.
/// - Ingress: the same per local port, for the clients seen.
///
/// Egress peers are classified (the `sensor.io/egress-classes` annotation) with `catalogue`.
/// An error if `profiles` is empty or mixes workloads.
pub fn network_policy_for_workload(
    profiles: &[&ApplicationProfile],
    catalogue: &Catalogue,
) -> Result<NetworkPolicy, DraftError> {
    let t = Traffic::of_workload(profiles, catalogue)?;

    let mut egress = Vec::new();
    if t.cluster_dns {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(selector([(
                    NAMESPACE_NAME_LABEL.to_string(),
                    KUBE_DNS_NAMESPACE.to_string(),
                )])),
                pod_selector: Some(selector([(
                    KUBE_DNS_LABEL.0.to_string(),
                    KUBE_DNS_LABEL.1.to_string(),
                )])),
                ip_block: None,
            }]),
            ports: Some(ports(&DNS_PORTS)),
        });
    }
    if !t.resolver_ips.is_empty() {
        egress.push(NetworkPolicyEgressRule {
            to: Some(t.resolver_ips.iter().map(|ip| ip_peer(*ip)).collect()),
            ports: Some(ports(&DNS_PORTS)),
        });
    }
    egress.extend(t.egress.iter().map(|g| NetworkPolicyEgressRule {
        to: Some(peers(g)),
        ports: Some(ports(&g.ports)),
    }));
    let ingress = t
        .ingress
        .iter()
        .map(|g| NetworkPolicyIngressRule {
            from: Some(peers(g)),
            ports: Some(ports(&g.ports)),
        })
        .collect();

    Ok(NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(policy_name(&t.workload)),
            namespace: Some(t.namespace.clone()),
            annotations: Some(annotations(&t)?),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(t.selector.clone())),
            policy_types: Some(vec!["Ingress".to_string(), "Egress".to_string()]),
            egress: Some(egress),
            ingress: Some(ingress),
        }),
    })
}

/// `sensor-<workload>`, made a DNS-1123 subdomain.
pub fn policy_name(workload: &str) -> String {
    super::dns1123_subdomain(&format!("sensor-{workload}"))
}

/// The policy as YAML (what `sensor netpol` prints and `<state>/netpol/` stores).
pub fn to_yaml(policy: &NetworkPolicy) -> Result<String, DraftError> {
    super::yaml_string(policy)
}

/// The policy as pretty JSON with a trailing newline.
pub fn to_json(policy: &NetworkPolicy) -> Result<String, DraftError> {
    super::json_string(policy)
}

/// Annotation values are kept well under the API server's 256 KiB limit for all annotations of
/// an object: past these sizes entries are left out and the value says how many.
const MAX_NAMES_ANNOTATION: usize = 32 * 1024;
const MAX_LINES_ANNOTATION: usize = 16 * 1024;

pub(crate) fn annotations(t: &Traffic) -> Result<BTreeMap<String, String>, DraftError> {
    let mut a = BTreeMap::new();
    a.insert(format!("{ANNOTATION_PREFIX}profiles"), t.sources.join(", "));
    if !t.egress_classes.is_empty() {
        a.insert(
            format!("{ANNOTATION_PREFIX}egress-classes"),
            crate::ai::classify::summary(&t.egress_classes),
        );
    }
    if !t.egress_names.is_empty() {
        let mut names: BTreeMap<String, Vec<&String>> = BTreeMap::new();
        let mut size = 2;
        let mut left_out = 0;
        for (ip, n) in &t.egress_names {
            let entry = (host_cidr(*ip), n.iter().collect::<Vec<_>>());
            let entry_size = entry.0.len() + n.iter().map(|s| s.len() + 3).sum::<usize>() + 6;
            if size + entry_size > MAX_NAMES_ANNOTATION {
                left_out += 1;
                continue;
            }
            size += entry_size;
            names.insert(entry.0, entry.1);
        }
        let mut value = serde_json::to_string(&names)?;
        if left_out > 0 {
            // Not a valid CIDR key, so a reader cannot mistake it for one.
            value.pop();
            value.push_str(&format!(r#","more":"{left_out} addresses left out"}}"#));
        }
        a.insert(format!("{ANNOTATION_PREFIX}egress-names"), value);
    }
    if !t.review.is_empty() {
        a.insert(
            format!("{ANNOTATION_PREFIX}review"),
            bounded_lines(&t.review),
        );
    }
    if !t.notes.is_empty() {
        a.insert(format!("{ANNOTATION_PREFIX}notes"), bounded_lines(&t.notes));
    }
    Ok(a)
}

/// `lines` joined by newlines, at most [`MAX_LINES_ANNOTATION`] bytes.
fn bounded_lines(lines: &[String]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if out.len() + line.len() + 1 > MAX_LINES_ANNOTATION {
            out.push_str(&format!("... and {} more", lines.len() - i));
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.truncate(out.trim_end_matches('\n').len());
    out
}

fn selector(labels: impl IntoIterator<Item = (String, String)>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.into_iter().collect()),
        match_expressions: None,
    }
}

fn ip_peer(ip: std::net::IpAddr) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: host_cidr(ip),
            except: None,
        }),
        ..Default::default()
    }
}

fn peers(g: &Group) -> Vec<NetworkPolicyPeer> {
    g.peers
        .iter()
        .map(|p| match p {
            PeerRef::Ip(ip) => ip_peer(*ip),
            PeerRef::Pods { namespace, labels } => NetworkPolicyPeer {
                namespace_selector: namespace
                    .as_ref()
                    .map(|ns| selector([(NAMESPACE_NAME_LABEL.to_string(), ns.clone())])),
                pod_selector: Some(selector(labels.clone())),
                ip_block: None,
            },
        })
        .collect()
}

fn ports(ports: &[PortProto]) -> Vec<NetworkPolicyPort> {
    ports
        .iter()
        .map(|p| NetworkPolicyPort {
            port: Some(IntOrString::Int(i32::from(p.port))),
            protocol: Some(p.protocol_name().to_string()),
            end_port: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::IpAddr;

    use proptest::prelude::*;

    use super::*;
    use crate::drafts::testutil::{
        arb_workload, cidr_contains, golden, kube_dns_pod, peer_labels, profile, proptest_config,
    };
    use crate::drafts::traffic::{is_local, stable_labels};
    use crate::profile::model::{Flow, Peer, Protocol, Resolver};

    // The golden files were read and checked by hand against the profiles in testdata/:
    // every non-loopback flow has a rule, DNS goes to kube-dns, names sit in the annotation,
    // per-pod labels are gone from the selectors. Regenerate with UPDATE_GOLDEN=1 and review
    // the diff before committing.
    #[test]
    fn golden_agent_policy() {
        let np = network_policy(&profile("agent"), Catalogue::embedded()).unwrap();
        golden("agent.netpol.yaml", &to_yaml(&np).unwrap());
        golden("agent.netpol.json", &to_json(&np).unwrap());
    }

    // Checked by hand: guessed selector + review line, notes of a partial learning profile.
    #[test]
    fn golden_partial_policy() {
        golden(
            "partial.netpol.yaml",
            &to_yaml(&network_policy(&profile("partial"), Catalogue::embedded()).unwrap()).unwrap(),
        );
    }

    // Checked by hand: /128 blocks, IPv4-mapped address written as IPv4, ::1 left out.
    #[test]
    fn golden_ipv6_policy() {
        golden(
            "ipv6.netpol.yaml",
            &to_yaml(&network_policy(&profile("ipv6"), Catalogue::embedded()).unwrap()).unwrap(),
        );
    }

    #[test]
    fn containers_of_one_workload_merge() {
        let a = profile("agent");
        let mut b = profile("agent");
        b.key.container = "sidecar".into();
        b.egress.truncate(1);
        b.egress[0].port = 9090;
        let np = network_policy_for_workload(&[&a, &b], Catalogue::embedded()).unwrap();
        let ann = np.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            ann["sensor.io/profiles"],
            "agents/research-agent/agent, agents/research-agent/sidecar"
        );
        let spec = np.spec.unwrap();
        let all_ports: Vec<i32> = spec
            .egress
            .unwrap()
            .iter()
            .flat_map(|r| r.ports.clone().unwrap())
            .map(|p| match p.port {
                Some(IntOrString::Int(i)) => i,
                _ => panic!("numeric ports only"),
            })
            .collect();
        assert!(all_ports.contains(&9090) && all_ports.contains(&443));
    }

    #[test]
    fn merging_two_workloads_is_refused() {
        let a = profile("agent");
        let b = profile("partial");
        let e = network_policy_for_workload(&[&a, &b], Catalogue::embedded()).unwrap_err();
        assert!(e.to_string().contains("different workloads"), "{e}");
        assert!(matches!(e, DraftError::MixedWorkloads { .. }), "{e:?}");
        let e = network_policy_for_workload(&[], Catalogue::embedded()).unwrap_err();
        assert!(matches!(e, DraftError::NoProfiles), "{e:?}");
    }

    #[test]
    fn annotations_stay_small_with_many_peers() {
        let mut p = profile("agent");
        let template = p.egress[1].clone();
        p.egress = (0..2000u32)
            .map(|i| {
                let mut f = template.clone();
                f.ip = IpAddr::from(std::net::Ipv4Addr::from(0xcb00_0000u32 + i));
                f.dns_names = (0..16)
                    .map(|n| format!("host-{n}.region-{i}.example.com"))
                    .collect();
                f
            })
            .collect();
        p.labels.clear();
        let np = network_policy(&p, Catalogue::embedded()).unwrap();
        let ann = np.metadata.annotations.unwrap();
        let total: usize = ann.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(total < 64 * 1024, "{total} bytes of annotations");
        let names: serde_json::Value =
            serde_json::from_str(&ann["sensor.io/egress-names"]).unwrap();
        assert!(
            names["more"]
                .as_str()
                .unwrap()
                .ends_with("addresses left out")
        );
    }

    #[test]
    fn names_are_dns1123() {
        assert_eq!(policy_name("Research_Agent"), "sensor-research-agent");
    }

    // ---- the property: observed behaviour is allowed, loopback never appears ----

    fn labels_match(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
        assert!(sel.match_expressions.is_none());
        sel.match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v))
    }

    /// Whether `peer` of a rule admits a connection with `ip` and the pod `pod` (if in-cluster),
    /// in a policy of namespace `ns`.
    fn peer_admits(p: &NetworkPolicyPeer, ns: &str, ip: IpAddr, pod: Option<&Peer>) -> bool {
        if let Some(block) = &p.ip_block {
            assert!(p.pod_selector.is_none() && p.namespace_selector.is_none());
            return cidr_contains(&block.cidr, ip)
                && !block.except.iter().flatten().any(|e| cidr_contains(e, ip));
        }
        let Some(pod) = pod else { return false };
        let ns_ok = match &p.namespace_selector {
            None => pod.namespace == ns,
            Some(sel) => labels_match(
                sel,
                &BTreeMap::from([(NAMESPACE_NAME_LABEL.to_string(), pod.namespace.clone())]),
            ),
        };
        ns_ok
            && p.pod_selector
                .as_ref()
                .is_none_or(|sel| labels_match(sel, &peer_labels(pod)))
    }

    fn port_admits(ports: &Option<Vec<NetworkPolicyPort>>, port: u16, proto: Protocol) -> bool {
        let proto = match proto {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        };
        match ports {
            None => true,
            Some(ports) => ports.iter().any(|p| {
                p.protocol.as_deref().unwrap_or("TCP") == proto
                    && match &p.port {
                        None => true,
                        Some(IntOrString::Int(i)) => {
                            let end = p.end_port.unwrap_or(*i);
                            (*i..=end).contains(&i32::from(port))
                        }
                        Some(IntOrString::String(_)) => false,
                    }
            }),
        }
    }

    fn egress_allowed(np: &NetworkPolicy, resolvers: &[Resolver], f: &Flow) -> bool {
        let ns = np.metadata.namespace.as_deref().unwrap();
        let spec = np.spec.as_ref().unwrap();
        // Traffic to the cluster DNS Service reaches a kube-dns pod.
        let dns_pod = kube_dns_pod();
        let to_cluster_dns = f.port == 53
            && resolvers
                .iter()
                .any(|r| r.cluster_dns && r.ip.to_canonical() == f.ip.to_canonical());
        spec.egress.iter().flatten().any(|r| {
            port_admits(&r.ports, f.port, f.protocol)
                && r.to.iter().flatten().any(|p| {
                    peer_admits(p, ns, f.ip, f.peer.as_ref())
                        || (to_cluster_dns && peer_admits(p, ns, f.ip, Some(&dns_pod)))
                })
        })
    }

    fn ingress_allowed(np: &NetworkPolicy, f: &Flow) -> bool {
        let ns = np.metadata.namespace.as_deref().unwrap();
        let spec = np.spec.as_ref().unwrap();
        spec.ingress.iter().flatten().any(|r| {
            port_admits(&r.ports, f.port, f.protocol)
                && r.from
                    .iter()
                    .flatten()
                    .any(|p| peer_admits(p, ns, f.ip, f.peer.as_ref()))
        })
    }

    proptest! {
        #![proptest_config(proptest_config(512))]

        #[test]
        fn observed_flows_are_allowed_and_loopback_never_appears(workload in arb_workload()) {
            let profiles: Vec<&ApplicationProfile> = workload.iter().collect();
            let np = network_policy_for_workload(&profiles, Catalogue::embedded()).unwrap();
            let resolvers: Vec<Resolver> =
                profiles.iter().flat_map(|p| p.resolvers.clone()).collect();
            for p in &profiles {
                for f in p.egress.iter().filter(|f| !is_local(f.ip)) {
                    prop_assert!(egress_allowed(&np, &resolvers, f), "egress {:?} denied by\n{}", f, to_yaml(&np).unwrap());
                }
                for f in p.ingress.iter().filter(|f| !is_local(f.ip)) {
                    prop_assert!(ingress_allowed(&np, f), "ingress {:?} denied by\n{}", f, to_yaml(&np).unwrap());
                }
            }
            let spec = np.spec.as_ref().unwrap();
            let blocks = spec.egress.iter().flatten().flat_map(|r| r.to.iter().flatten())
                .chain(spec.ingress.iter().flatten().flat_map(|r| r.from.iter().flatten()))
                .filter_map(|p| p.ip_block.as_ref());
            for b in blocks {
                let ip: IpAddr = b.cidr.split_once('/').unwrap().0.parse().unwrap();
                prop_assert!(!is_local(ip), "local address {} in\n{}", b.cidr, to_yaml(&np).unwrap());
                prop_assert!(b.cidr.ends_with("/32") || b.cidr.ends_with("/128"));
            }
            // Selectors never carry per-pod labels; the pod selector is never empty.
            let sel = spec.pod_selector.as_ref().unwrap().match_labels.clone().unwrap();
            prop_assert!(!sel.is_empty());
            prop_assert_eq!(stable_labels(&sel), sel);
            prop_assert!(crate::drafts::is_dns1123_subdomain(np.metadata.name.as_deref().unwrap()));
        }
    }
}
