//! Losses reported while the agent runs, not only at exit: when a loss counter (kernel ring
//! buffer full, user-space queue full, flow table full, malformed records, ...) grows, one
//! warning names the counters that grew and by how much. At most one warning per check (every
//! syscall poll), so a flood makes a few lines, not one per lost event.

use std::collections::BTreeMap;

use tracing::warn;

use crate::capture::CountersSnapshot;

/// The loss counters as of the last check.
#[derive(Debug, Default)]
pub struct LossReporter {
    last: BTreeMap<String, u64>,
}

impl LossReporter {
    /// Warns about the counters that grew since the last call; returns them (name, growth).
    pub fn check(&mut self, snapshot: &CountersSnapshot) -> Vec<(String, u64)> {
        let grown = growth(&self.last, &snapshot.lost);
        if !grown.is_empty() {
            let text: Vec<String> = grown.iter().map(|(k, v)| format!("{k}=+{v}")).collect();
            let total: BTreeMap<&str, u64> = snapshot
                .lost
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(k, v)| (k.as_str(), *v))
                .collect();
            warn!(grown = %text.join(" "), total = ?total, "events lost");
        }
        self.last = snapshot.lost.clone();
        grown
    }
}

/// Counters of `now` above their value in `before` (absent = 0), with the difference.
fn growth(before: &BTreeMap<String, u64>, now: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    now.iter()
        .filter_map(|(k, v)| {
            let was = before.get(k).copied().unwrap_or(0);
            (*v > was).then(|| (k.clone(), v - was))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(lost: &[(&str, u64)]) -> CountersSnapshot {
        CountersSnapshot {
            events: BTreeMap::new(),
            lost: lost.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn only_growth_is_reported() {
        let mut r = LossReporter::default();
        assert!(r.check(&snapshot(&[("queue_full_exec", 0)])).is_empty());
        assert_eq!(
            r.check(&snapshot(&[
                ("queue_full_exec", 5),
                ("ringbuf_full_exec", 0)
            ])),
            [("queue_full_exec".to_string(), 5)]
        );
        assert!(r.check(&snapshot(&[("queue_full_exec", 5)])).is_empty());
        assert_eq!(
            r.check(&snapshot(&[("queue_full_exec", 7), ("malformed", 1)])),
            [
                ("malformed".to_string(), 1),
                ("queue_full_exec".to_string(), 2)
            ]
        );
    }
}
