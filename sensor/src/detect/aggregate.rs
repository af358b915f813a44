//! Repeats of the same anomaly become counts, not a flood. The first occurrence of a
//! (workload, container, rule, subject) is reported at once; later occurrences are counted and
//! reported as one "repeat" record per window (with `count` and `repeat_of`). After a quiet
//! period the next occurrence is a new first occurrence.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use super::model::{Anomaly, RuleId};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Fingerprint {
    namespace: String,
    workload: String,
    container: String,
    rule: RuleId,
    subject: String,
}

impl Fingerprint {
    fn of(a: &Anomaly) -> Self {
        Self {
            namespace: a.namespace.clone(),
            workload: a.workload.clone(),
            container: a.container.clone(),
            rule: a.finding.rule,
            subject: a.finding.subject.clone(),
        }
    }
}

struct Open {
    first_seq: u64,
    /// Occurrences not reported yet.
    pending: u64,
    /// The latest occurrence, as the template of the repeat record.
    latest: Anomaly,
    first_pending_time: String,
    window_started: Instant,
    last_activity: Instant,
}

pub struct Aggregator {
    window: Duration,
    forget_after: Duration,
    open: HashMap<Fingerprint, Open>,
}

/// What to do with an occurrence.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A first occurrence: log and stream it, then call [`Aggregator::reported`] with its seq.
    Report(Box<Anomaly>),
    /// Counted into the next repeat record.
    Counted,
}

impl Aggregator {
    /// `window`: how often repeats are summarised; `forget_after`: quiet time after which an
    /// occurrence is new again.
    pub fn new(window: Duration, forget_after: Duration) -> Self {
        Self {
            window,
            forget_after,
            open: HashMap::new(),
        }
    }

    pub fn observe(&mut self, anomaly: Anomaly, now: Instant) -> Verdict {
        let key = Fingerprint::of(&anomaly);
        match self.open.get_mut(&key) {
            Some(open) if now.duration_since(open.last_activity) < self.forget_after => {
                if open.pending == 0 {
                    open.first_pending_time = anomaly.time.clone();
                    open.window_started = now;
                }
                open.pending += anomaly.count.max(1);
                open.last_activity = now;
                open.latest = anomaly;
                Verdict::Counted
            }
            _ => Verdict::Report(Box::new(anomaly)),
        }
    }

    /// Records the sequence number a first occurrence got in the log.
    pub fn reported(&mut self, anomaly: &Anomaly, now: Instant) {
        self.open.insert(
            Fingerprint::of(anomaly),
            Open {
                first_seq: anomaly.seq,
                pending: 0,
                latest: anomaly.clone(),
                first_pending_time: anomaly.time.clone(),
                window_started: now,
                last_activity: now,
            },
        );
    }

    /// Repeat records due (a window has passed since their first pending occurrence), and
    /// forgetting of quiet fingerprints. `force` flushes every pending count (shutdown).
    pub fn due(&mut self, now: Instant, force: bool) -> Vec<Anomaly> {
        let mut out = Vec::new();
        for open in self.open.values_mut() {
            if open.pending > 0 && (force || now.duration_since(open.window_started) >= self.window)
            {
                let mut repeat = open.latest.clone();
                repeat.count = open.pending;
                repeat.repeat_of = Some(open.first_seq);
                repeat.last_seen = open.latest.last_seen.clone();
                repeat.time = open.first_pending_time.clone();
                out.push(repeat);
                open.pending = 0;
            }
        }
        let forget = self.forget_after;
        self.open
            .retain(|_, o| o.pending > 0 || now.duration_since(o.last_activity) < forget);
        out
    }

    /// Open fingerprints (for metrics and tests).
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        attribution::workload::WorkloadKind,
        detect::model::{Evidence, Finding, Severity},
    };

    fn anomaly(subject: &str, time: &str) -> Anomaly {
        Anomaly {
            seq: 0,
            time: time.into(),
            node: "n1".into(),
            namespace: "ns".into(),
            pod: "p".into(),
            pod_uid: String::new(),
            container: "app".into(),
            container_id: String::new(),
            workload: "web".into(),
            workload_kind: WorkloadKind::Deployment,
            labels: Default::default(),
            finding: Finding {
                rule: RuleId::UnexpectedDns,
                kubescape_rule: None,
                severity: Severity::Low,
                mitre: None,
                message: "m".into(),
                subject: subject.into(),
                evidence: Evidence::default(),
            },
            process: None,
            count: 1,
            repeat_of: None,
            last_seen: time.into(),
            fold: None,
        }
    }

    #[test]
    fn first_occurrence_is_reported_then_repeats_are_counted_per_window() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(Duration::from_secs(60), Duration::from_secs(3600));
        let Verdict::Report(first) = agg.observe(anomaly("evil.example", "T0"), t0) else {
            panic!("first")
        };
        let mut first = *first;
        first.seq = 7;
        agg.reported(&first, t0);
        for i in 0..1000 {
            assert_eq!(
                agg.observe(
                    anomaly("evil.example", &format!("T{i}")),
                    t0 + Duration::from_millis(i)
                ),
                Verdict::Counted
            );
        }
        assert!(
            agg.due(t0 + Duration::from_secs(30), false).is_empty(),
            "window not over"
        );
        let repeats = agg.due(t0 + Duration::from_secs(61), false);
        assert_eq!(repeats.len(), 1);
        assert_eq!(repeats[0].count, 1000);
        assert_eq!(repeats[0].repeat_of, Some(7));
        assert_eq!(repeats[0].time, "T0");
        assert!(
            agg.due(t0 + Duration::from_secs(200), false).is_empty(),
            "nothing pending"
        );
        // A different subject is its own anomaly.
        assert!(matches!(
            agg.observe(anomaly("other.example", "T"), t0),
            Verdict::Report(_)
        ));
    }

    #[test]
    fn quiet_fingerprints_are_forgotten_and_force_flushes() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(Duration::from_secs(60), Duration::from_secs(600));
        let mut a = anomaly("x", "T0");
        a.seq = 1;
        agg.reported(&a, t0);
        assert_eq!(
            agg.observe(anomaly("x", "T1"), t0 + Duration::from_secs(1)),
            Verdict::Counted
        );
        assert_eq!(
            agg.due(t0 + Duration::from_secs(2), true).len(),
            1,
            "forced"
        );
        agg.due(t0 + Duration::from_secs(700), false);
        assert!(agg.is_empty());
        assert!(matches!(
            agg.observe(anomaly("x", "T2"), t0 + Duration::from_secs(701)),
            Verdict::Report(_)
        ));
    }
}
