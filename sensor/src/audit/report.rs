//! Evaluates recorded flows against a policy set and groups what would be denied by workload
//! and peer (pure), with the text and JSON renderings of `sensor audit netpol`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::flows::{self, Direction, PeerInfo};
use crate::audit::netpol_eval::{Namespaces, PolicySet, Protocol, Side, Verdict};
use crate::profile::model::ApplicationProfile;

/// A flow (merged over the workload's containers) the policies would deny.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeniedFlow {
    pub namespace: String,
    pub workload: String,
    pub containers: Vec<String>,
    pub direction: Direction,
    pub peer: PeerInfo,
    pub protocol: Protocol,
    /// Egress: the remote port; ingress: the workload's local port.
    pub port: u16,
    pub connections: u64,
    pub last_seen: String,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    pub policies: usize,
    pub workloads: usize,
    pub profiles: usize,
    /// Recorded flows evaluated (per container).
    pub flows_evaluated: usize,
    /// Loopback, unspecified or port-0 flows: not subject to NetworkPolicy.
    pub flows_skipped: usize,
    pub would_deny: Vec<DeniedFlow>,
    /// Namespaces whose labels were assumed by a `namespaceSelector` (no Namespace object).
    pub assumed_namespaces: BTreeSet<String>,
    pub notes: Vec<String>,
}

type MergeKey = (String, String, Direction, PeerInfo, Protocol, u16);

/// Evaluates every recorded flow of `profiles`.
pub fn audit(profiles: &[ApplicationProfile], set: &PolicySet, namespaces: &Namespaces) -> Audit {
    let mut merged: BTreeMap<MergeKey, DeniedFlow> = BTreeMap::new();
    let mut assumed = BTreeSet::new();
    let mut notes = Vec::new();
    let mut evaluated = 0;
    let mut skipped = 0;
    let mut workloads = BTreeSet::new();
    for p in profiles {
        workloads.insert((&p.key.namespace, &p.key.workload));
        let pf = flows::of_profile(p);
        skipped += pf.skipped;
        for n in pf.notes {
            if !notes.contains(&n) {
                notes.push(n);
            }
        }
        for f in pf.flows {
            evaluated += 1;
            let verdict = set.evaluate(&f.flow, namespaces);
            assumed.extend(verdict.assumed_namespaces.iter().cloned());
            if verdict.allowed() {
                continue;
            }
            let key = (
                p.key.namespace.clone(),
                p.key.workload.clone(),
                f.direction,
                f.peer.clone(),
                f.protocol,
                f.port,
            );
            let entry = merged.entry(key).or_insert_with(|| DeniedFlow {
                namespace: p.key.namespace.clone(),
                workload: p.key.workload.clone(),
                containers: Vec::new(),
                direction: f.direction,
                peer: f.peer.clone(),
                protocol: f.protocol,
                port: f.port,
                connections: 0,
                last_seen: String::new(),
                verdict,
            });
            entry.containers.push(p.key.container.clone());
            entry.connections += f.connections;
            // RFC 3339 in UTC with the same precision: the string order is the time order.
            if f.last_seen > entry.last_seen {
                entry.last_seen = f.last_seen;
            }
        }
    }
    Audit {
        policies: set.len(),
        workloads: workloads.len(),
        profiles: profiles.len(),
        flows_evaluated: evaluated,
        flows_skipped: skipped,
        would_deny: merged.into_values().collect(),
        assumed_namespaces: assumed,
        notes,
    }
}

/// The report for a terminal: a summary line, then per workload, per peer, one line per port.
pub fn render_text(a: &Audit) -> String {
    let mut out = String::new();
    let summary = format!(
        "{} of {} ({}) evaluated against {}; {} not subject to policy",
        count(a.flows_evaluated, "recorded flow"),
        count(a.workloads, "workload"),
        count(a.profiles, "profile"),
        count(a.policies, "NetworkPolicy"),
        count(a.flows_skipped, "loopback/port-0 flow"),
    );
    if a.would_deny.is_empty() {
        out.push_str(&format!("no flow would be denied: {summary}\n"));
        return out;
    }
    out.push_str(&format!(
        "{} would be denied: {summary}\n",
        count(a.would_deny.len(), "flow")
    ));
    let mut last_workload = None;
    let mut last_peer = None;
    for d in &a.would_deny {
        let workload = (&d.namespace, &d.workload);
        if last_workload != Some(workload) {
            out.push_str(&format!("\n{}/{}\n", d.namespace, d.workload));
            last_workload = Some(workload);
            last_peer = None;
        }
        let peer = (d.direction, &d.peer);
        if last_peer != Some(peer) {
            let arrow = match d.direction {
                Direction::Egress => "egress to",
                Direction::Ingress => "ingress from",
            };
            out.push_str(&format!("  {arrow} {}\n", d.peer));
            last_peer = Some(peer);
        }
        out.push_str(&format!(
            "    {}/{:<5} {} connection{}, last seen {}, containers {}\n",
            d.protocol,
            d.port,
            d.connections,
            if d.connections == 1 { "" } else { "s" },
            d.last_seen,
            d.containers.join(",")
        ));
        for line in why(&d.verdict) {
            out.push_str(&format!("      {line}\n"));
        }
    }
    out
}

/// `1 flow`, `2 flows`; `NetworkPolicy` becomes `NetworkPolicies`.
pub fn count(n: usize, what: &str) -> String {
    match (n, what.strip_suffix('y')) {
        (1, _) => format!("1 {what}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ => format!("{n} {what}s"),
    }
}

/// One line per side that denies: which policies selected the pod and why each did not allow.
pub fn why(v: &Verdict) -> Vec<String> {
    let mut lines = Vec::new();
    for (side, what) in [
        (&v.egress, "egress of the source"),
        (&v.ingress, "ingress of the destination"),
    ] {
        if let Side::Denied { denials, .. } = side {
            for d in denials {
                lines.push(format!(
                    "denied by {what}: {} selects it, {}",
                    d.policy, d.reason
                ));
            }
        }
    }
    if !v.assumed_namespaces.is_empty() {
        lines.push(format!(
            "namespace labels assumed (only kubernetes.io/metadata.name) for: {}",
            v.assumed_namespaces
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::drafts::netpol::network_policy_for_workload;
    use crate::profile::model::{Flow, Peer, Protocol as P, RateStats, Resolver, Timestamp};

    fn flow(ip: &str, port: u16, protocol: P, last_seen: &str) -> Flow {
        Flow {
            ip: ip.parse().unwrap(),
            port,
            protocol,
            dns_names: vec![],
            peer: None,
            connections: 2,
            bytes_sent: 0,
            bytes_recv: 0,
            rate: RateStats::default(),
            first_seen: Timestamp::lit(last_seen),
            last_seen: Timestamp::lit(last_seen),
        }
    }

    fn profile(container: &str) -> ApplicationProfile {
        let mut p: ApplicationProfile = serde_json::from_value(serde_json::json!({
            "version": 1, "namespace": "shop", "workload": "api", "container": container,
            "workloadKind": "deployment", "status": "learning", "completeness": "full",
            "learningStarted": "2026-11-26T00:00:00Z", "learningPeriodSeconds": 3600,
            "updated": "2026-11-26T00:00:00Z", "syscalls": {"native": []},
        }))
        .unwrap();
        p.labels = BTreeMap::from([("app".into(), "api".into())]);
        p.resolvers = vec![Resolver {
            ip: "10.96.0.10".parse().unwrap(),
            cluster_dns: true,
        }];
        p.egress = vec![
            flow("10.96.0.10", 53, P::Udp, "2026-11-26T00:00:01Z"),
            flow("203.0.113.7", 443, P::Tcp, "2026-11-26T00:00:02Z"),
            flow("127.0.0.1", 8080, P::Tcp, "2026-11-26T00:00:03Z"),
            Flow {
                peer: Some(Peer {
                    namespace: "data".into(),
                    pod: Some("db-0".into()),
                    workload: Some("db".into()),
                    labels: BTreeMap::from([("app".into(), "db".into())]),
                }),
                ..flow("10.244.1.9", 5432, P::Tcp, "2026-11-26T00:00:04Z")
            },
        ];
        p.ingress = vec![flow("10.244.2.3", 8080, P::Tcp, "2026-11-26T00:00:05Z")];
        p
    }

    /// The draft made from the profiles allows every flow they recorded (the promise of
    /// `sensor netpol`); removing one rule makes exactly that flow a would-deny.
    #[test]
    fn the_draft_allows_what_it_was_made_from_and_a_narrower_one_does_not() {
        let profiles = vec![profile("app"), profile("sidecar")];
        let refs: Vec<&ApplicationProfile> = profiles.iter().collect();
        let draft = network_policy_for_workload(&refs, crate::ai::Catalogue::embedded()).unwrap();
        let set = PolicySet::new([&draft]).unwrap();
        let a = audit(&profiles, &set, &Namespaces::default());
        assert!(a.would_deny.is_empty(), "{}", render_text(&a));
        assert_eq!((a.flows_evaluated, a.flows_skipped, a.workloads), (8, 2, 1));

        let mut narrow = draft.clone();
        let spec = narrow.spec.as_mut().unwrap();
        let egress = spec.egress.as_mut().unwrap();
        let before = egress.len();
        egress.retain(|r| {
            !r.ports.iter().flatten().any(|p| {
                p.port == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(443))
            })
        });
        assert_eq!(egress.len(), before - 1);
        let set = PolicySet::new([&narrow]).unwrap();
        let a = audit(&profiles, &set, &Namespaces::default());
        assert_eq!(a.would_deny.len(), 1, "{}", render_text(&a));
        let d = &a.would_deny[0];
        assert_eq!(
            (d.direction, d.peer.ip.to_string(), d.port, d.connections),
            (Direction::Egress, "203.0.113.7".into(), 443, 4)
        );
        assert_eq!(d.containers, ["app", "sidecar"]);
        assert_eq!(d.last_seen, "2026-11-26T00:00:02Z");
        let text = render_text(&a);
        assert!(
            text.contains("shop/api\n  egress to 203.0.113.7\n    TCP/443")
                && text.contains("denied by egress of the source: shop/sensor-api selects it, no rule matches the peer"),
            "{text}"
        );
    }

    #[test]
    fn ingress_denials_name_the_destination_side() {
        let profiles = vec![profile("app")];
        let deny_ingress: k8s_openapi::api::networking::v1::NetworkPolicy =
            serde_yaml_ng::from_str(
                "metadata: {name: deny-in, namespace: shop}\nspec: {podSelector: {matchLabels: {app: api}}, policyTypes: [Ingress]}",
            )
            .unwrap();
        let set = PolicySet::new([&deny_ingress]).unwrap();
        let a = audit(&profiles, &set, &Namespaces::default());
        assert_eq!(a.would_deny.len(), 1);
        assert_eq!(a.would_deny[0].direction, Direction::Ingress);
        let json = serde_json::to_value(&a.would_deny[0].verdict).unwrap();
        assert_eq!(
            json["ingress"],
            serde_json::json!({
                "verdict": "denied",
                "selectedBy": [{"namespace": "shop", "name": "deny-in"}],
                "denials": [{"policy": {"namespace": "shop", "name": "deny-in"}, "reason": "noRules"}],
            })
        );
        assert_eq!(json["egress"]["verdict"], "external");
        assert_eq!(a.would_deny[0].port, 8080);
        assert!(
            render_text(&a).contains(
                "denied by ingress of the destination: shop/deny-in selects it, it has no rule"
            ),
            "{}",
            render_text(&a)
        );
    }
}
