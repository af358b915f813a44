//! Flows already judged under the current policy set: each (workload, direction, peer, port,
//! protocol) is judged once, not once per connection. Bounded: past the capacity a flow is
//! still judged (repeats are then aggregated by the anomaly engine) but not remembered, and
//! each such flow is counted.

use std::collections::HashSet;
use std::net::IpAddr;

use super::super::flows::Direction;
use crate::audit::netpol_eval::Protocol;

/// What makes a flow "the same" for the live audit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub namespace: String,
    pub workload: String,
    pub direction: Direction,
    pub peer: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Debug)]
pub struct Judged {
    seen: HashSet<FlowKey>,
    capacity: usize,
    /// Flows judged while the set was full (not remembered).
    overflow: u64,
}

impl Judged {
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            capacity,
            overflow: 0,
        }
    }

    /// True when `key` must be judged now: not judged yet under the current set (or the set of
    /// judged flows is full).
    pub fn first_time(&mut self, key: &FlowKey) -> bool {
        if self.seen.contains(key) {
            return false;
        }
        if self.seen.len() >= self.capacity {
            self.overflow += 1;
            return true;
        }
        self.seen.insert(key.clone());
        true
    }

    /// The policy set changed: every flow is new again.
    pub fn clear(&mut self) {
        self.seen.clear();
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn overflow(&self) -> u64 {
        self.overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(workload: &str, port: u16) -> FlowKey {
        FlowKey {
            namespace: "ns".into(),
            workload: workload.into(),
            direction: Direction::Egress,
            peer: "10.0.0.2".parse().unwrap(),
            port,
            protocol: Protocol::Tcp,
        }
    }

    #[test]
    fn a_flow_is_judged_once_per_workload_until_the_set_changes() {
        let mut j = Judged::new(10);
        assert!(j.first_time(&key("a", 80)));
        assert!(!j.first_time(&key("a", 80)));
        // Another workload, another port: new flows.
        assert!(j.first_time(&key("b", 80)));
        assert!(j.first_time(&key("a", 443)));
        assert!(!j.first_time(&key("a", 443)));
        j.clear();
        assert!(j.first_time(&key("a", 80)));
        assert_eq!(j.overflow(), 0);
    }

    #[test]
    fn past_capacity_flows_are_judged_every_time_and_counted() {
        let mut j = Judged::new(2);
        assert!(j.first_time(&key("a", 1)));
        assert!(j.first_time(&key("a", 2)));
        assert!(j.first_time(&key("a", 3)));
        assert!(j.first_time(&key("a", 3)));
        assert_eq!(j.overflow(), 2);
        assert_eq!(j.len(), 2);
        // Remembered ones stay deduplicated.
        assert!(!j.first_time(&key("a", 1)));
    }
}
