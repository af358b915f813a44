//! A `NetworkPolicy` checked and reduced to what evaluation needs: every selector, CIDR,
//! protocol and port validated once, so evaluating a flow cannot fail. The checks are the API
//! server's (one peer kind with `ipBlock`, `endPort` only with a numeric port...): a policy the
//! cluster would refuse is refused here too, with the reason.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use thiserror::Error;

use super::cidr::Cidr;
use super::{PolicyId, Protocol};
use crate::attribution::selector::Selector;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("NetworkPolicy {policy}: {message}")]
pub struct PolicyError {
    pub policy: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub id: PolicyId,
    pub pod_selector: Selector,
    pub ingress: Option<Vec<Rule>>,
    pub egress: Option<Vec<Rule>>,
}

/// One ingress or egress rule. `peers: None` (no `from`/`to`, or an empty list) allows every
/// peer; `ports: None` (absent or empty) every port.
#[derive(Debug, Clone)]
pub struct Rule {
    pub peers: Option<Vec<Peer>>,
    pub ports: Option<Vec<PortMatch>>,
}

#[derive(Debug, Clone)]
pub enum Peer {
    /// Pods: `pods` in the policy's namespace when `namespaces` is `None`, else in every
    /// namespace `namespaces` selects (`pods: None`: all pods there).
    Pods {
        namespaces: Option<Selector>,
        pods: Option<Selector>,
    },
    IpBlock {
        cidr: Cidr,
        except: Vec<Cidr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortMatch {
    /// Every port of the protocol.
    Any(Protocol),
    /// `first..=last` (a single port has `first == last`).
    Range(Protocol, u16, u16),
    /// A container port name, resolved on the destination pod.
    Named(Protocol, String),
}

impl CompiledPolicy {
    /// `policy` must carry its namespace (the loader fills in a default).
    pub fn compile(policy: &NetworkPolicy) -> Result<CompiledPolicy, PolicyError> {
        let id = PolicyId {
            namespace: policy.metadata.namespace.clone().unwrap_or_default(),
            name: policy.metadata.name.clone().unwrap_or_default(),
        };
        let fail = |message: String| PolicyError {
            policy: id.to_string(),
            message,
        };
        if id.namespace.is_empty() {
            return Err(fail("metadata.namespace is missing".into()));
        }
        if id.name.is_empty() {
            return Err(fail("metadata.name is missing".into()));
        }
        let spec = policy.spec.clone().unwrap_or_default();
        // An absent podSelector is defaulted to `{}` (all pods of the namespace) by the API.
        let pod_selector = match &spec.pod_selector {
            Some(s) => Selector::compile(s).map_err(|e| fail(format!("spec.podSelector: {e}")))?,
            None => Selector::everything(),
        };
        // policyTypes absent or empty: Ingress always, Egress when there are egress rules
        // (the API server's defaulting; `egress: []` does not count).
        let types = spec.policy_types.clone().unwrap_or_default();
        let (has_ingress, has_egress) = if types.is_empty() {
            (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty()))
        } else {
            for t in &types {
                if t != "Ingress" && t != "Egress" {
                    return Err(fail(format!(
                        "spec.policyTypes: unknown type {t:?} (Ingress, Egress)"
                    )));
                }
            }
            (
                types.iter().any(|t| t == "Ingress"),
                types.iter().any(|t| t == "Egress"),
            )
        };
        let ingress_rules: Vec<_> = spec
            .ingress
            .iter()
            .flatten()
            .map(|r| (&r.from, &r.ports))
            .collect();
        let egress_rules: Vec<_> = spec
            .egress
            .iter()
            .flatten()
            .map(|r| (&r.to, &r.ports))
            .collect();
        let ingress = has_ingress
            .then(|| rules("spec.ingress", &ingress_rules).map_err(fail))
            .transpose()?;
        let egress = has_egress
            .then(|| rules("spec.egress", &egress_rules).map_err(fail))
            .transpose()?;
        Ok(CompiledPolicy {
            id,
            pod_selector,
            ingress,
            egress,
        })
    }
}

type RuleFields<'a> = (
    &'a Option<Vec<NetworkPolicyPeer>>,
    &'a Option<Vec<NetworkPolicyPort>>,
);

/// The rules of one direction; an error names the field (`spec.egress[2].ports[0]: ...`).
fn rules(field: &str, list: &[RuleFields]) -> Result<Vec<Rule>, String> {
    list.iter()
        .enumerate()
        .map(|(i, (peers, ports))| {
            rule(peers.as_deref(), ports.as_deref()).map_err(|e| format!("{field}[{i}].{e}"))
        })
        .collect()
}

fn rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
) -> Result<Rule, String> {
    let peers = match peers {
        None | Some([]) => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, p)| peer(p).map_err(|e| format!("peers[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let ports = match ports {
        None | Some([]) => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, p)| port(p).map_err(|e| format!("ports[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(Rule { peers, ports })
}

fn peer(p: &NetworkPolicyPeer) -> Result<Peer, String> {
    let compile = |s: &Option<_>, what: &str| {
        s.as_ref()
            .map(|s| Selector::compile(s).map_err(|e| format!("{what}: {e}")))
            .transpose()
    };
    match (&p.ip_block, &p.pod_selector, &p.namespace_selector) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err("ipBlock cannot be combined with podSelector or namespaceSelector".into())
        }
        (Some(b), None, None) => {
            let cidr = Cidr::parse(&b.cidr).map_err(|e| format!("ipBlock.cidr: {e}"))?;
            let except = b
                .except
                .iter()
                .flatten()
                .map(|e| Cidr::parse(e).map_err(|e| format!("ipBlock.except: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Peer::IpBlock { cidr, except })
        }
        (None, None, None) => Err("a peer needs podSelector, namespaceSelector or ipBlock".into()),
        (None, pods, namespaces) => Ok(Peer::Pods {
            namespaces: compile(namespaces, "namespaceSelector")?,
            pods: compile(pods, "podSelector")?,
        }),
    }
}

fn port(p: &NetworkPolicyPort) -> Result<PortMatch, String> {
    let protocol = match p.protocol.as_deref() {
        None | Some("TCP") => Protocol::Tcp,
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        Some(other) => return Err(format!("unknown protocol {other:?} (TCP, UDP, SCTP)")),
    };
    let number = |n: i32| {
        u16::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("port {n} is not 1 to 65535"))
    };
    match (&p.port, p.end_port) {
        (None, None) => Ok(PortMatch::Any(protocol)),
        (None, Some(_)) => Err("endPort needs a port".into()),
        (Some(IntOrString::String(name)), None) => {
            if name.is_empty() {
                return Err("empty port name".into());
            }
            Ok(PortMatch::Named(protocol, name.clone()))
        }
        (Some(IntOrString::String(_)), Some(_)) => Err("endPort needs a numeric port".into()),
        (Some(IntOrString::Int(n)), end) => {
            let first = number(*n)?;
            let last = end.map(number).transpose()?.unwrap_or(first);
            if last < first {
                return Err(format!("endPort {last} is below port {first}"));
            }
            Ok(PortMatch::Range(protocol, first, last))
        }
    }
}
