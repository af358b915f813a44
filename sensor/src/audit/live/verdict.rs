//! One observed flow of a workload against the audited set: the evaluator flow is built exactly
//! as `sensor audit netpol` builds it from a profile (same labels, guesses, cluster-DNS and
//! loopback rules), and a denial becomes a `would-deny` finding whose evidence is the verdict.

use std::collections::BTreeMap;

use super::super::flows::{self, Direction, RecordedFlow};
use super::super::policy_files::LoadedPolicies;
use super::super::report;
use crate::audit::netpol_eval::{Side, Verdict};
use crate::detect::model::{Evidence, Finding, RuleId, Severity};
use crate::profile::model::{ApplicationProfile, Flow};

/// The evaluator flow of `flow` seen by the workload of `profile` (its labels and resolvers);
/// `None` for flows NetworkPolicy never applies to (loopback, port 0).
pub fn recorded_flow(
    profile: &ApplicationProfile,
    direction: Direction,
    flow: Flow,
) -> Option<RecordedFlow> {
    flows::one(profile, direction, &flow)
}

/// The finding when `set` would deny `flow`, else `None`.
pub fn would_deny(flow: &RecordedFlow, set: &LoadedPolicies, dir: &str) -> Option<Finding> {
    let verdict = set.set.evaluate(&flow.flow, &set.namespaces);
    if verdict.allowed() {
        return None;
    }
    Some(finding(flow, &verdict, set.policies.len(), dir))
}

fn finding(flow: &RecordedFlow, verdict: &Verdict, policies: usize, dir: &str) -> Finding {
    let direction = match flow.direction {
        Direction::Egress => "egress to",
        Direction::Ingress => "ingress from",
    };
    let what = format!("{direction} {} {}/{}", flow.peer, flow.protocol, flow.port);
    let why = report::why(verdict);
    let selected: Vec<String> = [&verdict.egress, &verdict.ingress]
        .into_iter()
        .filter_map(|side| match side {
            Side::Denied { selected_by, .. } => Some(selected_by),
            _ => None,
        })
        .flatten()
        .map(|p| p.to_string())
        .collect();
    let baseline = BTreeMap::from([(
        "auditedPolicies".to_string(),
        format!("{} from {dir}", report::count(policies, "NetworkPolicy")),
    )]);
    let mut observed = BTreeMap::from([
        ("flow".to_string(), what.clone()),
        ("selectedBy".to_string(), selected.join(", ")),
        ("denied".to_string(), why.join("; ")),
    ]);
    if let Ok(json) = serde_json::to_string(verdict) {
        observed.insert("verdict".to_string(), json);
    }
    Finding {
        rule: RuleId::WouldDeny,
        kubescape_rule: None,
        severity: Severity::Medium,
        mitre: None,
        message: format!(
            "{what} would be denied by the audited NetworkPolicies: {}",
            why.first().map(String::as_str).unwrap_or("denied")
        ),
        subject: format!(
            "{} {}:{}/{}",
            match flow.direction {
                Direction::Egress => "egress",
                Direction::Ingress => "ingress",
            },
            flow.peer.ip,
            flow.port,
            flow.protocol
        ),
        evidence: Evidence { baseline, observed },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::policy_files;
    use crate::profile::model::Protocol;

    fn profile() -> ApplicationProfile {
        let text = r#"{"version":1,"namespace":"ns","workload":"web","container":"app",
            "workloadKind":"deployment","status":"learning","completeness":"full",
            "learningStarted":"2026-01-01T00:00:00Z","learningPeriodSeconds":60,
            "updated":"2026-01-01T00:00:00Z","labels":{"app":"web"},
            "syscalls":{"native":[]}}"#;
        serde_json::from_str(text).unwrap()
    }

    fn flow(ip: &str, port: u16, protocol: Protocol) -> Flow {
        Flow::sample(ip, port, protocol, &[])
    }

    fn policies(text: &str) -> LoadedPolicies {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p.yaml");
        std::fs::write(&path, text).unwrap();
        policy_files::load(&path, None).unwrap()
    }

    const DNS_ONLY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
        metadata: {name: dns-only, namespace: ns}\n\
        spec:\n  podSelector: {matchLabels: {app: web}}\n  policyTypes: [Egress]\n  \
        egress: [{ports: [{port: 53, protocol: UDP}]}]\n";

    #[test]
    fn a_denied_flow_is_a_medium_would_deny_with_the_verdict_as_evidence() {
        let set = policies(DNS_ONLY);
        let p = profile();
        let dns =
            recorded_flow(&p, Direction::Egress, flow("10.0.0.9", 53, Protocol::Udp)).unwrap();
        assert_eq!(would_deny(&dns, &set, "/pol"), None);
        let tcp =
            recorded_flow(&p, Direction::Egress, flow("10.0.0.9", 8443, Protocol::Tcp)).unwrap();
        let f = would_deny(&tcp, &set, "/pol").expect("TCP/8443 is not allowed");
        assert_eq!(f.rule, RuleId::WouldDeny);
        assert_eq!(f.severity, Severity::Medium);
        assert_eq!(f.subject, "egress 10.0.0.9:8443/TCP");
        assert_eq!(f.evidence.observed["selectedBy"], "ns/dns-only");
        assert_eq!(
            f.evidence.observed["denied"],
            "denied by egress of the source: ns/dns-only selects it, a rule matches the peer \
             but not the protocol/port"
        );
        let verdict: serde_json::Value =
            serde_json::from_str(&f.evidence.observed["verdict"]).unwrap();
        assert_eq!(verdict["egress"]["denials"][0]["reason"], "portNotMatched");
        assert_eq!(
            f.evidence.baseline["auditedPolicies"],
            "1 NetworkPolicy from /pol"
        );
    }

    #[test]
    fn loopback_is_not_judged_and_other_pods_are_not_selected() {
        let set = policies(DNS_ONLY);
        let p = profile();
        assert!(
            recorded_flow(&p, Direction::Egress, flow("127.0.0.1", 80, Protocol::Tcp)).is_none()
        );
        let mut other = profile();
        other.labels = BTreeMap::from([("app".to_string(), "db".to_string())]);
        let f = recorded_flow(
            &other,
            Direction::Egress,
            flow("10.0.0.9", 8443, Protocol::Tcp),
        )
        .unwrap();
        assert_eq!(would_deny(&f, &set, "/pol"), None);
    }
}
