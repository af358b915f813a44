//! `CiliumNetworkPolicy` (cilium.io/v2) drafts: the same allow-list as [`super::netpol`], but
//! egress peers the containers reached by DNS name are allowed by name (`toFQDNs`), which keeps
//! working when the addresses behind a name change. Typed structs with the CRD's field names
//! (`endpointSelector`, `toEndpoints`, `toFQDNs[].matchName`, `toCIDR`,
//! `toPorts[].ports[].port/protocol`, `toPorts[].rules.dns[].matchPattern`, `fromEndpoints`,
//! `fromCIDR`). The tests (`crd_schema.rs`) read every golden draft and drafts of varied and
//! random profiles into the `CiliumNetworkPolicy` type kopium generates from Cilium's v2 CRD
//! (crate `kcr_cilium_io` 2.20251226.70155: Cilium's main branch of 2025-11-14 to 2025-12-19,
//! v1.19 development) and write it back unchanged: field names, JSON types, required fields,
//! enum values and the namespaced scope are checked; the CRD's patterns, `maxItems`, `oneOf`
//! and CEL rules are not (the type does not carry them).
//!
//! Cilium learns the addresses of `toFQDNs` names only from the DNS answers its DNS proxy sees,
//! and the proxy sees only lookups an L7 DNS rule selects, so the DNS rule carries
//! `rules.dns: [{matchPattern: "*"}]` (every lookup is allowed and seen), and a policy with
//! `toFQDNs` always has one: when the profile recorded no resolver (a partial profile, size caps)
//! the rule to the cluster DNS is added, with a review line.
//! A direction with no observed traffic gets the empty rule `[{}]`, which in Cilium turns on
//! default-deny for that direction (an absent list would leave it open), matching the
//! NetworkPolicy draft's `policyTypes: [Ingress, Egress]`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::DraftError;
use super::netpol::{KUBE_DNS_LABEL, KUBE_DNS_NAMESPACE, policy_name};
use super::traffic::{DNS_PORTS, Group, PeerRef, PortProto, Traffic, host_cidr};
use crate::ai::Catalogue;
use crate::profile::model::ApplicationProfile;

/// The label Cilium gives every endpoint with its namespace.
pub const CILIUM_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Prefix of a selector key that matches only labels from Kubernetes (Cilium's label source),
/// as Cilium's own examples select the cluster DNS.
pub const K8S_SOURCE: &str = "k8s:";
pub const API_VERSION: &str = "cilium.io/v2";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiliumNetworkPolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: CiliumPolicySpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiliumPolicySpec {
    pub endpoint_selector: EndpointSelector,
    pub ingress: Vec<IngressRule>,
    pub egress: Vec<EgressRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSelector {
    pub match_labels: BTreeMap<String, String>,
}

/// One egress rule. Cilium allows one kind of peer per rule (`toEndpoints`, `toCIDR` or
/// `toFQDNs`); an empty rule (`{}`) only turns on default-deny.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_endpoints: Vec<EndpointSelector>,
    #[serde(default, rename = "toCIDR", skip_serializing_if = "Vec::is_empty")]
    pub to_cidr: Vec<String>,
    #[serde(default, rename = "toFQDNs", skip_serializing_if = "Vec::is_empty")]
    pub to_fqdns: Vec<FqdnSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_ports: Vec<PortRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_endpoints: Vec<EndpointSelector>,
    #[serde(default, rename = "fromCIDR", skip_serializing_if = "Vec::is_empty")]
    pub from_cidr: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_ports: Vec<PortRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FqdnSelector {
    pub match_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRule {
    pub ports: Vec<PortProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<L7Rules>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortProtocol {
    /// A port number as a string (the CRD also accepts port names).
    pub port: String,
    /// `TCP` or `UDP`.
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct L7Rules {
    pub dns: Vec<DnsRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsRule {
    pub match_pattern: String,
}

/// The policy for one container's profile: [`cilium_network_policy_for_workload`] with one.
pub fn cilium_network_policy(
    profile: &ApplicationProfile,
    catalogue: &Catalogue,
) -> Result<CiliumNetworkPolicy, DraftError> {
    cilium_network_policy_for_workload(&[profile], catalogue)
}

/// The policy `sensor-<workload>` for all containers of one workload. Selectors, grouping,
/// annotations and review lines are those of [`super::netpol::network_policy_for_workload`];
/// the differences:
/// - the DNS rule (kube-dns pods, or resolvers by `toCIDR`) carries `rules.dns: [{matchPattern:
///   "*"}]`, which `toFQDNs` needs; with `toFQDNs` and no recorded resolver, the rule to the
///   kube-dns pods is added (and a `sensor.io/review` line says so);
/// - an egress peer known by DNS names becomes `toFQDNs: [{matchName: <name>}...]` with its
///   ports (in-cluster Service names excepted: `toFQDNs` does not apply inside the cluster);
///   a peer without names stays `toCIDR` `/32` (`/128`);
/// - peers in other namespaces are selected with the `io.kubernetes.pod.namespace` label.
///
/// An error if `profiles` is empty or mixes workloads.
pub fn cilium_network_policy_for_workload(
    profiles: &[&ApplicationProfile],
    catalogue: &Catalogue,
) -> Result<CiliumNetworkPolicy, DraftError> {
    let mut t = Traffic::of_workload(profiles, catalogue)?;

    let mut peers = Vec::new();
    for g in &t.egress {
        let (endpoints, cidrs, names) = split_peers(g, Some(&t.egress_names));
        let to_ports = vec![PortRule {
            ports: port_list(&g.ports),
            rules: None,
        }];
        if !endpoints.is_empty() {
            peers.push(EgressRule {
                to_endpoints: endpoints,
                to_ports: to_ports.clone(),
                ..Default::default()
            });
        }
        if !names.is_empty() {
            peers.push(EgressRule {
                to_fqdns: names
                    .into_iter()
                    .map(|match_name| FqdnSelector { match_name })
                    .collect(),
                to_ports: to_ports.clone(),
                ..Default::default()
            });
        }
        if !cidrs.is_empty() {
            peers.push(EgressRule {
                to_cidr: cidrs,
                to_ports,
                ..Default::default()
            });
        }
    }
    let by_name = peers.iter().any(|r| !r.to_fqdns.is_empty());
    // Without a DNS rule the proxy sees no lookup and the names never resolve to allowed
    // addresses: pair the names with the resolver every pod has by default.
    let assumed_dns = by_name && !t.cluster_dns && t.resolver_ips.is_empty();
    if assumed_dns {
        t.review.push(format!(
            "egress is allowed by DNS name but no lookup was recorded (partial profile or size \
             caps): DNS to the cluster DNS pods ({KUBE_DNS_NAMESPACE}, {}={}) was added, which \
             toFQDNs needs; check that the pods resolve through the cluster DNS",
            KUBE_DNS_LABEL.0, KUBE_DNS_LABEL.1
        ));
    }

    let dns_ports = vec![PortRule {
        ports: port_list(&DNS_PORTS),
        rules: Some(L7Rules {
            dns: vec![DnsRule {
                match_pattern: "*".to_string(),
            }],
        }),
    }];
    let mut egress = Vec::new();
    if t.cluster_dns || assumed_dns {
        egress.push(EgressRule {
            to_endpoints: vec![kube_dns_selector()],
            to_ports: dns_ports.clone(),
            ..Default::default()
        });
    }
    if !t.resolver_ips.is_empty() {
        egress.push(EgressRule {
            to_cidr: t.resolver_ips.iter().map(|ip| host_cidr(*ip)).collect(),
            to_ports: dns_ports,
            ..Default::default()
        });
    }
    egress.extend(peers);
    if egress.is_empty() {
        egress.push(EgressRule::default());
    }

    let mut ingress = Vec::new();
    for g in &t.ingress {
        let (endpoints, cidrs, _) = split_peers(g, None);
        let to_ports = vec![PortRule {
            ports: port_list(&g.ports),
            rules: None,
        }];
        if !endpoints.is_empty() {
            ingress.push(IngressRule {
                from_endpoints: endpoints,
                to_ports: to_ports.clone(),
                ..Default::default()
            });
        }
        if !cidrs.is_empty() {
            ingress.push(IngressRule {
                from_cidr: cidrs,
                to_ports,
                ..Default::default()
            });
        }
    }
    if ingress.is_empty() {
        ingress.push(IngressRule::default());
    }

    Ok(CiliumNetworkPolicy {
        api_version: API_VERSION.to_string(),
        kind: "CiliumNetworkPolicy".to_string(),
        metadata: ObjectMeta {
            name: Some(policy_name(&t.workload)),
            namespace: Some(t.namespace.clone()),
            annotations: Some(super::netpol::annotations(&t)?),
            ..Default::default()
        },
        spec: CiliumPolicySpec {
            endpoint_selector: EndpointSelector {
                match_labels: t.selector.clone(),
            },
            ingress,
            egress,
        },
    })
}

/// The cluster DNS pods as Cilium's examples select them: `k8s:`-sourced labels only.
fn kube_dns_selector() -> EndpointSelector {
    EndpointSelector {
        match_labels: BTreeMap::from([
            (
                format!("{K8S_SOURCE}{CILIUM_NAMESPACE_LABEL}"),
                KUBE_DNS_NAMESPACE.to_string(),
            ),
            (
                format!("{K8S_SOURCE}{}", KUBE_DNS_LABEL.0),
                KUBE_DNS_LABEL.1.to_string(),
            ),
        ]),
    }
}

/// The policy as YAML.
pub fn to_yaml(policy: &CiliumNetworkPolicy) -> Result<String, DraftError> {
    super::yaml_string(policy)
}

/// The policy as pretty JSON with a trailing newline.
pub fn to_json(policy: &CiliumNetworkPolicy) -> Result<String, DraftError> {
    super::json_string(policy)
}

/// A name `toFQDNs.matchName` accepts (the CRD's pattern `^([-a-zA-Z0-9_]+[.]?)+$`, at most 255
/// characters) that is not an in-cluster Service name.
fn fqdn_name(name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !super::traffic::is_cluster_service_name(name);
    ok.then(|| name.to_ascii_lowercase())
}

/// A group's peers as Cilium names them: endpoint selectors, CIDRs, and (egress only, when
/// `names` is given) the DNS names of addresses known by name.
fn split_peers(
    g: &Group,
    names: Option<&BTreeMap<IpAddr, BTreeSet<String>>>,
) -> (Vec<EndpointSelector>, Vec<String>, BTreeSet<String>) {
    let mut endpoints = Vec::new();
    let mut cidrs = Vec::new();
    let mut fqdns = BTreeSet::new();
    for p in &g.peers {
        match p {
            PeerRef::Pods { namespace, labels } => {
                let mut match_labels = labels.clone();
                if let Some(ns) = namespace {
                    match_labels.insert(CILIUM_NAMESPACE_LABEL.to_string(), ns.clone());
                }
                endpoints.push(EndpointSelector { match_labels });
            }
            PeerRef::Ip(ip) => {
                let by_name: BTreeSet<String> = names
                    .and_then(|n| n.get(ip))
                    .into_iter()
                    .flatten()
                    .filter_map(|n| fqdn_name(n))
                    .collect();
                if by_name.is_empty() {
                    cidrs.push(host_cidr(*ip));
                } else {
                    fqdns.extend(by_name);
                }
            }
        }
    }
    (endpoints, cidrs, fqdns)
}

fn port_list(ports: &[PortProto]) -> Vec<PortProtocol> {
    ports
        .iter()
        .map(|p| PortProtocol {
            port: p.port.to_string(),
            protocol: p.protocol_name().to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::drafts::testutil::{
        arb_workload, cidr_contains, golden, kube_dns_pod, peer_labels, profile, proptest_config,
    };
    use crate::drafts::traffic::is_local;
    use crate::profile::model::{Flow, Peer, Protocol, Resolver};

    // The golden files were read and checked by hand: the model API and the vector store are
    // allowed by name with their ports, DNS goes to kube-dns with the `*` DNS rule, the
    // in-cluster peer by labels, ingress on 8080. Regenerate with UPDATE_GOLDEN=1 and review.
    #[test]
    fn golden_agent_cilium() {
        golden(
            "agent.cilium.yaml",
            &to_yaml(&cilium_network_policy(&profile("agent"), Catalogue::embedded()).unwrap())
                .unwrap(),
        );
    }

    // Checked by hand: /128 CIDRs, names for the IPv6 peer, empty ingress rule = deny.
    #[test]
    fn golden_ipv6_cilium() {
        golden(
            "ipv6.cilium.yaml",
            &to_yaml(&cilium_network_policy(&profile("ipv6"), Catalogue::embedded()).unwrap())
                .unwrap(),
        );
    }

    #[test]
    fn no_traffic_denies_both_directions() {
        let mut p = profile("agent");
        p.egress.clear();
        p.ingress.clear();
        p.resolvers.clear();
        let v = serde_json::to_value(cilium_network_policy(&p, Catalogue::embedded()).unwrap())
            .unwrap();
        assert_eq!(v["spec"]["egress"], serde_json::json!([{}]));
        assert_eq!(v["spec"]["ingress"], serde_json::json!([{}]));
    }

    #[test]
    fn each_rule_has_one_kind_of_peer() {
        let cnp = cilium_network_policy(&profile("agent"), Catalogue::embedded()).unwrap();
        for r in &cnp.spec.egress {
            let kinds = [
                !r.to_endpoints.is_empty(),
                !r.to_cidr.is_empty(),
                !r.to_fqdns.is_empty(),
            ];
            assert!(kinds.iter().filter(|k| **k).count() <= 1, "{r:?}");
        }
    }

    #[test]
    fn fqdn_names() {
        assert_eq!(fqdn_name("API.openai.com"), Some("api.openai.com".into()));
        assert_eq!(fqdn_name("qdrant.vectors.svc.cluster.local"), None);
        assert_eq!(fqdn_name("a..b"), None);
        assert_eq!(fqdn_name("bad name"), None);
    }

    // ---- the property: observed behaviour is allowed (by name where names were seen) ----

    fn selector_admits(sel: &EndpointSelector, ns: &str, pod: &Peer) -> bool {
        let mut labels = peer_labels(pod);
        labels.insert(CILIUM_NAMESPACE_LABEL.into(), pod.namespace.clone());
        // Pod labels come from Kubernetes: a `k8s:` key matches them as a bare key does.
        let key = |k: &String| k.strip_prefix(K8S_SOURCE).unwrap_or(k).to_string();
        let wanted: BTreeMap<String, &String> =
            sel.match_labels.iter().map(|(k, v)| (key(k), v)).collect();
        // Without a namespace label, Cilium limits a selector to the policy's namespace.
        (wanted.contains_key(CILIUM_NAMESPACE_LABEL) || pod.namespace == ns)
            && wanted.iter().all(|(k, v)| labels.get(k) == Some(*v))
    }

    /// The rules that let Cilium's DNS proxy see lookups (port 53, `rules.dns: *`).
    fn dns_rules(cnp: &CiliumNetworkPolicy) -> Vec<&EgressRule> {
        cnp.spec
            .egress
            .iter()
            .filter(|r| {
                r.to_ports.iter().any(|p| {
                    p.ports.iter().all(|pp| pp.port == "53")
                        && p.rules
                            .as_ref()
                            .is_some_and(|l7| l7.dns.iter().any(|d| d.match_pattern == "*"))
                })
            })
            .collect()
    }

    /// The agent's profile as a capped, partial one can look: names known, no lookup recorded.
    fn names_without_resolver() -> ApplicationProfile {
        let mut p = profile("agent");
        p.resolvers.clear();
        p.egress.retain(|f| f.port != 53);
        p
    }

    #[test]
    fn names_without_a_recorded_resolver_get_the_cluster_dns_rule() {
        let cnp = cilium_network_policy(&names_without_resolver(), Catalogue::embedded()).unwrap();
        assert!(
            cnp.spec.egress.iter().any(|r| !r.to_fqdns.is_empty()),
            "{}",
            to_yaml(&cnp).unwrap()
        );
        let dns = dns_rules(&cnp);
        assert_eq!(dns.len(), 1, "{}", to_yaml(&cnp).unwrap());
        assert_eq!(dns[0].to_endpoints, [kube_dns_selector()]);
        let v = serde_json::to_value(dns[0]).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "toEndpoints": [{"matchLabels": {
                    "k8s:io.kubernetes.pod.namespace": "kube-system",
                    "k8s:k8s-app": "kube-dns",
                }}],
                "toPorts": [{
                    "ports": [{"port": "53", "protocol": "UDP"}, {"port": "53", "protocol": "TCP"}],
                    "rules": {"dns": [{"matchPattern": "*"}]},
                }],
            })
        );
        let review = &cnp.metadata.annotations.as_ref().unwrap()["sensor.io/review"];
        assert!(review.contains("no lookup was recorded"), "{review}");
    }

    #[test]
    fn no_dns_rule_is_added_without_names_or_when_a_resolver_was_recorded() {
        let mut p = names_without_resolver();
        p.dns.clear();
        for f in &mut p.egress {
            f.dns_names.clear();
        }
        let cnp = cilium_network_policy(&p, Catalogue::embedded()).unwrap();
        assert!(dns_rules(&cnp).is_empty(), "{}", to_yaml(&cnp).unwrap());

        // A resolver outside the cluster: its own DNS rule lets the proxy see the lookups.
        let mut p = names_without_resolver();
        p.resolvers.push(Resolver {
            ip: "192.0.2.53".parse().unwrap(),
            cluster_dns: false,
        });
        let cnp = cilium_network_policy(&p, Catalogue::embedded()).unwrap();
        let dns = dns_rules(&cnp);
        assert_eq!(dns.len(), 1, "{}", to_yaml(&cnp).unwrap());
        assert_eq!(dns[0].to_cidr, ["192.0.2.53/32"]);
    }

    fn ports_admit(rules: &[PortRule], f: &Flow) -> bool {
        let proto = match f.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        };
        rules.is_empty()
            || rules.iter().any(|r| {
                r.ports
                    .iter()
                    .any(|p| p.port == f.port.to_string() && p.protocol == proto)
            })
    }

    fn egress_allowed(
        cnp: &CiliumNetworkPolicy,
        profiles: &[&ApplicationProfile],
        f: &Flow,
    ) -> bool {
        let ns = cnp.metadata.namespace.as_deref().unwrap();
        let ip = f.ip.to_canonical();
        let to_cluster_dns = f.port == 53
            && profiles
                .iter()
                .flat_map(|p| &p.resolvers)
                .any(|r| r.cluster_dns && r.ip.to_canonical() == ip);
        let names: BTreeSet<String> = profiles
            .iter()
            .flat_map(|p| &p.dns)
            .filter(|d| d.addresses.iter().any(|a| a.to_canonical() == ip))
            .map(|d| d.name.clone())
            // Names seen for this address by any container of the workload.
            .chain(
                profiles
                    .iter()
                    .flat_map(|p| &p.egress)
                    .filter(|g| g.ip.to_canonical() == ip)
                    .flat_map(|g| g.dns_names.iter().cloned()),
            )
            .map(|n| n.to_ascii_lowercase())
            .collect();
        cnp.spec.egress.iter().any(|r| {
            ports_admit(&r.to_ports, f)
                && (r.to_endpoints.iter().any(|s| {
                    f.peer.as_ref().is_some_and(|p| selector_admits(s, ns, p))
                        || (to_cluster_dns && selector_admits(s, ns, &kube_dns_pod()))
                }) || r.to_cidr.iter().any(|c| cidr_contains(c, ip))
                    || r.to_fqdns.iter().any(|q| names.contains(&q.match_name)))
        })
    }

    fn ingress_allowed(cnp: &CiliumNetworkPolicy, f: &Flow) -> bool {
        let ns = cnp.metadata.namespace.as_deref().unwrap();
        cnp.spec.ingress.iter().any(|r| {
            ports_admit(&r.to_ports, f)
                && (r
                    .from_endpoints
                    .iter()
                    .any(|s| f.peer.as_ref().is_some_and(|p| selector_admits(s, ns, p)))
                    || r.from_cidr.iter().any(|c| cidr_contains(c, f.ip)))
        })
    }

    proptest! {
        #![proptest_config(proptest_config(256))]

        #[test]
        fn observed_flows_are_allowed_and_loopback_never_appears(workload in arb_workload()) {
            let profiles: Vec<&ApplicationProfile> = workload.iter().collect();
            let cnp = cilium_network_policy_for_workload(&profiles, Catalogue::embedded()).unwrap();
            for p in &profiles {
                for f in p.egress.iter().filter(|f| !is_local(f.ip)) {
                    prop_assert!(egress_allowed(&cnp, &profiles, f), "egress {:?} denied by\n{}", f, to_yaml(&cnp).unwrap());
                }
                for f in p.ingress.iter().filter(|f| !is_local(f.ip)) {
                    prop_assert!(ingress_allowed(&cnp, f), "ingress {:?} denied by\n{}", f, to_yaml(&cnp).unwrap());
                }
            }
            let cidrs = cnp.spec.egress.iter().flat_map(|r| &r.to_cidr)
                .chain(cnp.spec.ingress.iter().flat_map(|r| &r.from_cidr));
            for c in cidrs {
                let ip: IpAddr = c.split_once('/').unwrap().0.parse().unwrap();
                prop_assert!(!is_local(ip), "local address {} in\n{}", c, to_yaml(&cnp).unwrap());
            }
            for r in &cnp.spec.egress {
                let kinds = [!r.to_endpoints.is_empty(), !r.to_cidr.is_empty(), !r.to_fqdns.is_empty()];
                prop_assert!(kinds.iter().filter(|k| **k).count() <= 1);
            }
            // toFQDNs is never without a rule that shows the DNS proxy the lookups.
            if cnp.spec.egress.iter().any(|r| !r.to_fqdns.is_empty()) {
                prop_assert!(!dns_rules(&cnp).is_empty(), "no DNS rule in\n{}", to_yaml(&cnp).unwrap());
            }
            prop_assert!(!cnp.spec.egress.is_empty() && !cnp.spec.ingress.is_empty());
        }
    }
}
