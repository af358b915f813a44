//! User-space side of the in-kernel flow aggregates: read the counters, and remove the flows
//! of cgroups that are gone (after a last read) so the table does not fill up.

use std::collections::HashSet;

use aya::maps::{HashMap, MapData};
use sensor_common::{FlowKey, FlowStats};

pub struct FlowTable {
    map: HashMap<MapData, FlowKey, FlowStats>,
}

impl FlowTable {
    pub fn new(map: HashMap<MapData, FlowKey, FlowStats>) -> Self {
        Self { map }
    }

    pub fn read_all(&self) -> Vec<(FlowKey, FlowStats)> {
        self.map.iter().filter_map(Result::ok).collect()
    }

    /// Removes and returns the flows of the given cgroups.
    pub fn drain_cgroups(&mut self, cgroups: &HashSet<u64>) -> Vec<(FlowKey, FlowStats)> {
        if cgroups.is_empty() {
            return Vec::new();
        }
        let gone: Vec<(FlowKey, FlowStats)> = self
            .read_all()
            .into_iter()
            .filter(|(k, _)| cgroups.contains(&k.cgroup_id))
            .collect();
        for (key, _) in &gone {
            let _ = self.map.remove(key);
        }
        gone
    }
}
