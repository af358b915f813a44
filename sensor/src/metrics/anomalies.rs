//! Anomalies by rule id and severity: a fixed table of atomics (10 rules x 4 severities), bumped
//! once per logged record, so the label set is bounded by construction.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::detect::model::{Anomaly, RuleId, Severity};

const SEVERITIES: [Severity; 4] = [
    Severity::Low,
    Severity::Medium,
    Severity::High,
    Severity::Critical,
];
const CELLS: usize = RuleId::ALL.len() * SEVERITIES.len();

/// The label value of a severity (as in the anomaly JSON).
pub fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

#[derive(Debug)]
pub struct AnomalyCounts {
    /// Occurrences: a first-occurrence record counts 1, a repeat record its `count`.
    occurrences: [AtomicU64; CELLS],
    /// Records written to the log (and published).
    records: [AtomicU64; CELLS],
}

impl Default for AnomalyCounts {
    fn default() -> Self {
        Self {
            occurrences: std::array::from_fn(|_| AtomicU64::new(0)),
            records: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn cell(rule: RuleId, severity: Severity) -> usize {
    let r = RuleId::ALL
        .iter()
        .position(|x| *x == rule)
        .expect("RuleId::ALL lists every rule");
    let s = SEVERITIES
        .iter()
        .position(|x| *x == severity)
        .expect("every severity listed");
    r * SEVERITIES.len() + s
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnomalyCount {
    pub rule: RuleId,
    pub severity: Severity,
    pub occurrences: u64,
    pub records: u64,
}

impl AnomalyCounts {
    /// A record was logged and published.
    pub fn record(&self, a: &Anomaly) {
        let i = cell(a.finding.rule, a.finding.severity);
        self.records[i].fetch_add(1, Ordering::Relaxed);
        self.occurrences[i].fetch_add(a.count.max(1), Ordering::Relaxed);
    }

    /// The (rule, severity) pairs seen so far, in rule then severity order. Pairs never seen
    /// are left out: most rules have one or two severities.
    pub fn seen(&self) -> Vec<AnomalyCount> {
        let mut out = Vec::new();
        for rule in RuleId::ALL {
            for severity in SEVERITIES {
                let i = cell(rule, severity);
                let records = self.records[i].load(Ordering::Relaxed);
                if records > 0 {
                    out.push(AnomalyCount {
                        rule,
                        severity,
                        occurrences: self.occurrences[i].load(Ordering::Relaxed),
                        records,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_occurrences_by_rule_and_severity() {
        let counts = AnomalyCounts::default();
        let first = Anomaly::sample("/usr/bin/curl");
        counts.record(&first);
        let mut repeat = first.clone();
        repeat.count = 5;
        repeat.repeat_of = Some(1);
        counts.record(&repeat);
        let mut token = first.clone();
        token.finding.rule = RuleId::ServiceAccountTokenRead;
        token.finding.severity = Severity::High;
        counts.record(&token);
        assert_eq!(
            counts.seen(),
            vec![
                AnomalyCount {
                    rule: RuleId::UnexpectedExec,
                    severity: Severity::Medium,
                    occurrences: 6,
                    records: 2
                },
                AnomalyCount {
                    rule: RuleId::ServiceAccountTokenRead,
                    severity: Severity::High,
                    occurrences: 1,
                    records: 1
                },
            ]
        );
    }
}
