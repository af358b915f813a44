//! User-space side of the per-cgroup syscall bitmaps: read without clearing, and drain a
//! cgroup's set when the cgroup is removed so its slot can serve a new cgroup.

use aya::maps::{Array, HashMap, MapData, Queue};
use sensor_common::{SyscallSet, limits::SYSCALL_WORDS, syscall_phase};

use crate::capture::syscall_names::{Abi, name};

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

/// A slot's syscalls by name, the workload's apart from the container runtime's setup (what
/// ran in the cgroup before the workload's first exec; see [`SyscallSet`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedSyscalls {
    pub native: Vec<String>,
    pub compat: Vec<String>,
    pub setup_native: Vec<String>,
    pub setup_compat: Vec<String>,
}

/// Names the bits of `set` by phase. While the cgroup is still in its setup phase every bit is
/// the runtime's: the workload has not started.
pub fn named(set: &SyscallSet) -> NamedSyscalls {
    let names = |abi, words: &[u64; SYSCALL_WORDS]| -> Vec<String> {
        numbers(words).into_iter().map(|n| name(abi, n)).collect()
    };
    let or = |a: &[u64; SYSCALL_WORDS], b: &[u64; SYSCALL_WORDS]| {
        let mut out = *a;
        out.iter_mut().zip(b).for_each(|(o, w)| *o |= w);
        out
    };
    if set.phase == syscall_phase::SETUP {
        NamedSyscalls {
            setup_native: names(Abi::Native, &or(&set.native, &set.setup_native)),
            setup_compat: names(Abi::Compat, &or(&set.compat, &set.setup_compat)),
            ..NamedSyscalls::default()
        }
    } else {
        NamedSyscalls {
            native: names(Abi::Native, &set.native),
            compat: names(Abi::Compat, &set.compat),
            setup_native: names(Abi::Native, &set.setup_native),
            setup_compat: names(Abi::Compat, &set.setup_compat),
        }
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

    fn bit(nr: u32) -> [u64; SYSCALL_WORDS] {
        let mut words = [0u64; SYSCALL_WORDS];
        words[nr as usize / 64] |= 1 << (nr % 64);
        words
    }

    #[test]
    fn a_cgroup_in_its_setup_phase_has_no_workload_syscalls_yet() {
        let (a, b) = (name(Abi::Native, 0), name(Abi::Native, 1));
        let set = SyscallSet {
            phase: syscall_phase::SETUP,
            native: bit(0),
            setup_native: bit(1),
            ..SyscallSet::default()
        };
        let n = named(&set);
        assert!(n.native.is_empty() && n.compat.is_empty(), "{n:?}");
        assert_eq!(n.setup_native, vec![a.clone(), b.clone()]);

        let started = SyscallSet {
            phase: syscall_phase::WORKLOAD,
            ..set
        };
        let n = named(&started);
        assert_eq!((n.native, n.setup_native), (vec![a], vec![b]));
    }
}
