//! User-space side of the per-cgroup syscall bitmaps: read without clearing, and drain a
//! cgroup's set when the cgroup is removed so its slot can serve a new cgroup.

use aya::maps::{Array, HashMap, MapData, Queue};
use sensor_common::{SyscallSet, limits::SYSCALL_WORDS};

pub struct SyscallSets {
    slots: HashMap<MapData, u64, u32>,
    sets: Array<MapData, SyscallSet>,
    free: Queue<MapData, u32>,
}

impl SyscallSets {
    pub fn new(
        slots: HashMap<MapData, u64, u32>,
        sets: Array<MapData, SyscallSet>,
        free: Queue<MapData, u32>,
    ) -> Self {
        Self { slots, sets, free }
    }

    /// The set recorded so far for a cgroup, if it made any syscall.
    pub fn read(&self, cgroup_id: u64) -> Option<SyscallSet> {
        let slot = self.slots.get(&cgroup_id, 0).ok()?;
        self.sets.get(&slot, 0).ok()
    }

    /// Every cgroup with a slot and its set.
    pub fn read_all(&self) -> Vec<(u64, SyscallSet)> {
        self.slots
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(cgroup, slot)| Some((cgroup, self.sets.get(&slot, 0).ok()?)))
            .collect()
    }

    /// Final read for a removed cgroup: returns its set, clears the slot and frees it. Safe
    /// because a removed cgroup has no task left to write to it, and cgroup ids are never
    /// reused, so a stale per-CPU cache entry can never match again.
    pub fn drain(&mut self, cgroup_id: u64) -> Option<SyscallSet> {
        let slot = self.slots.get(&cgroup_id, 0).ok()?;
        let set = self.sets.get(&slot, 0).ok();
        let _ = self.slots.remove(&cgroup_id);
        if self.sets.set(slot, SyscallSet::default(), 0).is_ok() {
            let _ = self.free.push(slot, 0);
        }
        set
    }
}

/// Syscall numbers whose bit is set.
pub fn numbers(words: &[u64; SYSCALL_WORDS]) -> Vec<u32> {
    let mut out = Vec::new();
    for (w, word) in words.iter().enumerate() {
        let mut bits = *word;
        while bits != 0 {
            let b = bits.trailing_zeros();
            out.push(w as u32 * 64 + b);
            bits &= bits - 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lists_set_bits_in_order() {
        let mut words = [0u64; SYSCALL_WORDS];
        words[0] = 1 | (1 << 63);
        words[7] = 1 << 63;
        assert_eq!(numbers(&words), vec![0, 63, 511]);
        assert!(numbers(&[0; SYSCALL_WORDS]).is_empty());
    }
}
