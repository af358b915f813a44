//! `unexpected-dns`: a question the workload never asked while learning.

use std::{collections::BTreeMap, net::IpAddr};

use super::helpers::{add_completeness, mitre, summary, truncate};
use crate::detect::model::{Evidence, Finding, RuleId, Severity};
use crate::profile::model::ApplicationProfile;

/// Whether the baseline resolved `key` (a [`dns_key`]) or reached a peer under that name.
pub(super) fn knows_name(profile: &ApplicationProfile, key: &str) -> bool {
    profile.dns.iter().any(|d| dns_key(&d.name) == key)
        || profile
            .egress
            .iter()
            .any(|f| f.dns_names.iter().any(|n| dns_key(n) == key))
}

pub(super) fn dns_key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

pub(super) fn dns_rule(
    profile: &ApplicationProfile,
    question: &str,
    qtype: &str,
    rcode: &str,
    server: IpAddr,
    answers: &[String],
) -> Option<Finding> {
    let key = dns_key(question);
    if key.is_empty() {
        return None;
    }
    if knows_name(profile, &key) {
        return None;
    }
    let mut baseline = BTreeMap::from([(
        "dnsNames".to_string(),
        summary(
            profile.dns.len(),
            profile.dns.iter().map(|d| truncate(&d.name, 60)),
            4,
        ),
    )]);
    add_completeness(&mut baseline, profile, profile.overflow.dns, "dns");
    let mut observed = BTreeMap::from([
        ("name".to_string(), truncate(question, 160)),
        ("qtype".to_string(), qtype.to_string()),
        ("rcode".to_string(), rcode.to_string()),
        ("server".to_string(), server.to_string()),
    ]);
    if !answers.is_empty() {
        observed.insert(
            "answers".into(),
            summary(answers.len(), answers.iter().cloned(), 3),
        );
    }
    Some(Finding {
        rule: RuleId::UnexpectedDns,
        kubescape_rule: Some("R0005".into()),
        severity: Severity::Medium,
        // T1071.004 Application Layer Protocol: DNS: names outside the baseline are how DNS
        // tunnelling and new C2 domains show up.
        mitre: mitre(
            "T1071.004",
            "Application Layer Protocol: DNS",
            "Command and Control",
        ),
        message: format!(
            "DNS lookup of {}, a name the baseline never resolved.",
            truncate(question, 120)
        ),
        subject: key,
        evidence: Evidence { baseline, observed },
    })
}
