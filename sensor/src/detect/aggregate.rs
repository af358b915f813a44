//! Repeats of the same anomaly become counts, not a flood. The first occurrence of a
//! (workload, container, rule, subject) is reported at once; later occurrences are counted and
//! reported as one "repeat" record per window (with `count` and `repeat_of`). After a quiet
//! period the next occurrence is a new first occurrence.
//!
//! Bounded: at most [`MAX_OPEN`] fingerprints are kept (each holds its latest record, a few KiB
//! with the process ancestry), so a flood of distinct anomalies cannot grow the agent without
//! bound. Past that the least recently active are forgotten early; a forgotten fingerprint with
//! counted repeats has its repeat record emitted at the next [`Aggregator::due`], so no count is
//! lost, and its next occurrence is a first occurrence again.

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

/// Fingerprints kept at once.
pub const MAX_OPEN: usize = 4096;

pub struct Aggregator {
    window: Duration,
    forget_after: Duration,
    capacity: usize,
    open: HashMap<Fingerprint, Open>,
    /// Repeat records of fingerprints forgotten early, emitted by the next `due`.
    flushed: Vec<Anomaly>,
    /// Fingerprints forgotten early (for metrics and tests).
    evicted: u64,
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
        Self::with_capacity(window, forget_after, MAX_OPEN)
    }

    /// At most `capacity` fingerprints (at least 8) are kept.
    pub fn with_capacity(window: Duration, forget_after: Duration, capacity: usize) -> Self {
        Self {
            window,
            forget_after,
            capacity: capacity.max(8),
            open: HashMap::new(),
            flushed: Vec::new(),
            evicted: 0,
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
        self.make_room();
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
        let mut out = std::mem::take(&mut self.flushed);
        for open in self.open.values_mut() {
            if open.pending > 0 && (force || now.duration_since(open.window_started) >= self.window)
            {
                out.push(repeat_record(open));
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

    /// Fingerprints forgotten early because [`MAX_OPEN`] were open.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// At capacity: forgets the least recently active eighth at once (amortised: one sort per
    /// `capacity / 8` new fingerprints, not a scan per insert).
    fn make_room(&mut self) {
        if self.open.len() < self.capacity {
            return;
        }
        let mut by_age: Vec<(Instant, Fingerprint)> = self
            .open
            .iter()
            .map(|(key, open)| (open.last_activity, key.clone()))
            .collect();
        by_age.sort_by_key(|(t, _)| *t);
        for (_, key) in by_age.into_iter().take(self.capacity / 8) {
            if let Some(mut open) = self.open.remove(&key) {
                if open.pending > 0 {
                    self.flushed.push(repeat_record(&mut open));
                }
                self.evicted += 1;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// The repeat record of `open`'s pending occurrences; they are reported with it.
fn repeat_record(open: &mut Open) -> Anomaly {
    let mut repeat = open.latest.clone();
    repeat.count = open.pending;
    repeat.repeat_of = Some(open.first_seq);
    repeat.last_seen = open.latest.last_seen.clone();
    repeat.time = open.first_pending_time.clone();
    open.pending = 0;
    repeat
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared fixture with `subject` (what the fingerprint tells apart) and `time`.
    fn anomaly(subject: &str, time: &str) -> Anomaly {
        let mut a = Anomaly::sample("/usr/bin/curl");
        a.finding.subject = subject.into();
        a.time = time.into();
        a.last_seen = time.into();
        a
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

    #[test]
    fn a_flood_of_distinct_anomalies_stays_bounded_and_loses_no_count() {
        let t0 = Instant::now();
        let mut agg =
            Aggregator::with_capacity(Duration::from_secs(60), Duration::from_secs(3600), 64);
        // The first fingerprint repeats (pending count), then 1000 distinct ones push it out.
        let mut first = anomaly("repeated", "T0");
        first.seq = 1;
        agg.reported(&first, t0);
        assert_eq!(agg.observe(anomaly("repeated", "T1"), t0), Verdict::Counted);
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(i + 1);
            let Verdict::Report(a) = agg.observe(anomaly(&format!("s{i}"), "T"), now) else {
                panic!("s{i} is new")
            };
            let mut a = *a;
            a.seq = i + 2;
            agg.reported(&a, now);
            assert!(agg.len() <= 64, "{} fingerprints open", agg.len());
        }
        assert!(agg.evicted() >= 1000 - 64, "{}", agg.evicted());
        // The count of the evicted repeat is not lost: it comes out at the next `due`, before
        // its window is over.
        let due = agg.due(t0 + Duration::from_secs(2), false);
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!((due[0].count, due[0].repeat_of), (1, Some(1)));
        assert!(agg.due(t0 + Duration::from_secs(3), false).is_empty());
        // Forgotten early: its next occurrence is a first occurrence again.
        assert!(matches!(
            agg.observe(anomaly("repeated", "T2"), t0 + Duration::from_secs(4)),
            Verdict::Report(_)
        ));
    }
}
