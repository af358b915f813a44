//! Evaluation of one flow against a checked policy set (see the module docs for semantics).

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::policy::{CompiledPolicy, Peer, PolicyError, PortMatch, Rule};
use super::{
    Denial, DenyReason, Endpoint, Flow, NAMESPACE_NAME_LABEL, Namespaces, Pod, Side, Verdict,
};

/// Policies, checked once; evaluation cannot fail.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<CompiledPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// How one rule fares on a flow.
enum RuleOutcome {
    Allows,
    PeerMismatch,
    PortMismatch,
    NamedPortUnresolved(String),
}

/// What evaluating selectors against a flow's namespaces had to assume.
struct Context<'a> {
    namespaces: &'a Namespaces,
    assumed: BTreeSet<String>,
}

impl PolicySet {
    pub fn new<'a>(
        policies: impl IntoIterator<Item = &'a NetworkPolicy>,
    ) -> Result<PolicySet, PolicyError> {
        Ok(PolicySet {
            policies: policies
                .into_iter()
                .map(CompiledPolicy::compile)
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub fn evaluate(&self, flow: &Flow, namespaces: &Namespaces) -> Verdict {
        let mut cx = Context {
            namespaces,
            assumed: BTreeSet::new(),
        };
        let egress = match &flow.source {
            Endpoint::Pod(pod) => self.side(Direction::Egress, pod, flow, &mut cx),
            Endpoint::External(_) => Side::External,
        };
        let ingress = match &flow.destination {
            Endpoint::Pod(pod) => self.side(Direction::Ingress, pod, flow, &mut cx),
            Endpoint::External(_) => Side::External,
        };
        Verdict {
            egress,
            ingress,
            assumed_namespaces: cx.assumed,
        }
    }

    /// The verdict of the policies selecting `subject` (the source for egress, the
    /// destination for ingress).
    fn side(&self, dir: Direction, subject: &Pod, flow: &Flow, cx: &mut Context) -> Side {
        let selecting: Vec<(&CompiledPolicy, &Vec<Rule>)> = self
            .policies
            .iter()
            .filter(|p| {
                p.id.namespace == subject.namespace && p.pod_selector.matches(&subject.labels)
            })
            .filter_map(|p| {
                let rules = match dir {
                    Direction::Ingress => p.ingress.as_ref(),
                    Direction::Egress => p.egress.as_ref(),
                }?;
                Some((p, rules))
            })
            .collect();
        if selecting.is_empty() {
            return Side::Unrestricted;
        }
        let selected_by = selecting.iter().map(|(p, _)| p.id.clone()).collect();
        let other = match dir {
            Direction::Ingress => &flow.source,
            Direction::Egress => &flow.destination,
        };
        let mut denials = Vec::new();
        for (policy, rules) in &selecting {
            let outcomes: Vec<RuleOutcome> = rules
                .iter()
                .map(|r| rule_outcome(r, policy, other, flow, cx))
                .collect();
            if outcomes.iter().any(|o| matches!(o, RuleOutcome::Allows)) {
                return Side::Allowed {
                    selected_by,
                    allowed_by: policy.id.clone(),
                };
            }
            denials.push(Denial {
                policy: policy.id.clone(),
                reason: closest_reason(outcomes),
            });
        }
        Side::Denied {
            selected_by,
            denials,
        }
    }
}

/// The most specific reason among a policy's rules: an unresolved named port, then a port
/// mismatch (the peer was right), then no peer; no rules at all is its own reason.
fn closest_reason(outcomes: Vec<RuleOutcome>) -> DenyReason {
    if outcomes.is_empty() {
        return DenyReason::NoRules;
    }
    let mut reason = DenyReason::NoPeerMatched;
    for o in outcomes {
        match o {
            RuleOutcome::NamedPortUnresolved(name) => return DenyReason::NamedPortUnresolved(name),
            RuleOutcome::PortMismatch => reason = DenyReason::PortNotMatched,
            RuleOutcome::PeerMismatch | RuleOutcome::Allows => {}
        }
    }
    reason
}

fn rule_outcome(
    rule: &Rule,
    policy: &CompiledPolicy,
    other: &Endpoint,
    flow: &Flow,
    cx: &mut Context,
) -> RuleOutcome {
    let peer_ok = match &rule.peers {
        None => true,
        // Every peer is evaluated (no short-circuit) so the namespaces assumed are all noted.
        Some(peers) => peers
            .iter()
            .map(|p| peer_matches(p, &policy.id.namespace, other, cx))
            .fold(false, |acc, m| acc | m),
    };
    if !peer_ok {
        return RuleOutcome::PeerMismatch;
    }
    let Some(ports) = &rule.ports else {
        return RuleOutcome::Allows;
    };
    let mut unresolved = None;
    for p in ports {
        match port_matches(p, flow) {
            Some(true) => return RuleOutcome::Allows,
            Some(false) => {}
            None => {
                if let PortMatch::Named(_, name) = p {
                    unresolved.get_or_insert_with(|| name.clone());
                }
            }
        }
    }
    match unresolved {
        Some(name) => RuleOutcome::NamedPortUnresolved(name),
        None => RuleOutcome::PortMismatch,
    }
}

fn peer_matches(peer: &Peer, policy_namespace: &str, other: &Endpoint, cx: &mut Context) -> bool {
    match (peer, other) {
        (Peer::IpBlock { cidr, except }, endpoint) => {
            let ip = match endpoint {
                Endpoint::External(ip) => Some(*ip),
                // A pod IP inside the block is matched: see the module docs.
                Endpoint::Pod(pod) => pod.ip,
            };
            ip.is_some_and(|ip| cidr.contains(ip) && !except.iter().any(|e| e.contains(ip)))
        }
        (Peer::Pods { .. }, Endpoint::External(_)) => false,
        (Peer::Pods { namespaces, pods }, Endpoint::Pod(pod)) => {
            let namespace_ok = match namespaces {
                None => pod.namespace == policy_namespace,
                Some(sel) => {
                    if !cx.namespaces.is_known(&pod.namespace)
                        && sel.keys().any(|k| k != NAMESPACE_NAME_LABEL)
                    {
                        cx.assumed.insert(pod.namespace.clone());
                    }
                    sel.matches(&cx.namespaces.labels(&pod.namespace))
                }
            };
            namespace_ok && pods.as_ref().is_none_or(|s| s.matches(&pod.labels))
        }
    }
}

/// `Some(matched)`, or `None` for a named port that cannot be resolved (the destination is a
/// pod whose container port names are unknown).
fn port_matches(p: &PortMatch, flow: &Flow) -> Option<bool> {
    match p {
        PortMatch::Any(proto) => Some(*proto == flow.protocol),
        PortMatch::Range(proto, first, last) => {
            Some(*proto == flow.protocol && (*first..=*last).contains(&flow.port))
        }
        PortMatch::Named(proto, name) => {
            if *proto != flow.protocol {
                return Some(false);
            }
            match (&flow.destination, &flow.port_name) {
                // An address outside the cluster has no container port names.
                (Endpoint::External(_), _) => Some(false),
                (Endpoint::Pod(_), Some(known)) => Some(known == name),
                (Endpoint::Pod(_), None) => None,
            }
        }
    }
}
