//! Syscall sets: one bit per syscall number per cgroup, set from `sys_enter`. No event per
//! syscall: user space reads the bitmaps (without clearing them) and drains a cgroup's bitmap
//! when the cgroup is removed.
//!
//! Hot path: a per-CPU one-entry cache (last cgroup -> slot) in front of an array of bitmaps;
//! both lookups are inlined by the verifier. The hash map is only consulted when the CPU switches
//! cgroup, and a slot is taken from the free queue the first time a cgroup makes a syscall, so a
//! container's bitmap starts with the runtime's own init work inside it.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::generated::bpf_get_current_task_btf,
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use sensor_common::{SlotCache, Stat, limits::MAX_SYSCALL_NR};

use crate::maps::{FREE_SLOTS, SLOT_CACHE, SLOT_OF_CGROUP, SYSCALL_SETS, conf, count};

/// `sys_enter(struct pt_regs *regs, long id)` as a BTF tracepoint: `regs` and the current
/// task are typed kernel pointers, so the compat test and the cgroup id are plain loads (a
/// `bpf_probe_read_kernel` per syscall cost ~35 ns here; the cgroup-id helper ~12 ns more).
#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter(ctx: BtfTracePointContext) -> i32 {
    let nr: i64 = ctx.arg(1);
    let regs: *const u8 = ctx.arg(0);
    if nr < 0 || nr >= MAX_SYSCALL_NR as i64 {
        count(Stat::SyscallOutOfRange);
        return 0;
    }
    let compat = is_compat(regs);
    if let Some(slot) = current_slot()
        && let Some(set) = SYSCALL_SETS.get_ptr_mut(slot)
    {
        let word = (nr as usize) / 64;
        let bit = 1u64 << (nr as u64 % 64);
        unsafe {
            let words = if compat {
                &raw mut (*set).compat
            } else {
                &raw mut (*set).native
            };
            let w = (words as *mut u64).add(word & 7);
            // Plain read first: after warm-up the bit is almost always set already.
            if *w & bit == 0 {
                crate::atomic::or(w, bit);
            }
        }
    }
    if !compat {
        let nr = nr as u32;
        if nr == conf!(nr_openat)
            || nr == conf!(nr_open)
            || nr == conf!(nr_openat2)
            || nr == conf!(nr_creat)
        {
            crate::files::on_open(regs, nr);
        } else if nr == conf!(nr_listen) {
            crate::network::on_listen(regs);
        }
    }
    0
}

/// Reads a field of a typed kernel pointer at an offset from the load-time config. A plain
/// load: the verifier checks it against the pointer's BTF type and makes it fault-safe.
#[inline(always)]
unsafe fn load<T: Copy>(base: *const u8, offset: u32) -> T {
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize) as *const T) }
}

/// Whether the current syscall entered through the 32-bit compat ABI, decided from the
/// registers the way the architecture does it (x86-64: `cs == __USER32_CS`; arm64: the
/// AArch32 bit of `pstate`). Mask 0 means the architecture has no compat ABI here.
#[inline(always)]
fn is_compat(regs: *const u8) -> bool {
    let mask = conf!(regs_compat_mask);
    if mask == 0 {
        return false;
    }
    let value: u64 = unsafe { load::<u16>(regs, conf!(regs_compat_offset)) } as u64;
    value & mask == conf!(regs_compat_value)
}

/// The current task's cgroup v2 id: `current->cgroups->dfl_cgrp->kn->id`, four plain loads.
#[inline(always)]
fn current_cgroup_id() -> u64 {
    unsafe {
        let task = bpf_get_current_task_btf() as *const u8;
        let css_set: *const u8 = load(task, conf!(task_cgroups));
        let cgroup: *const u8 = load(css_set, conf!(css_set_dfl_cgrp));
        let kn: *const u8 = load(cgroup, conf!(cgroup_kn));
        load(kn, conf!(kernfs_node_id))
    }
}

#[inline(always)]
fn current_slot() -> Option<u32> {
    let cgroup_id = current_cgroup_id();
    let cache = SLOT_CACHE.get_ptr_mut(0)?;
    unsafe {
        if (*cache).cgroup_id == cgroup_id && (*cache).slot != 0 {
            return Some((*cache).slot - 1);
        }
    }
    let slot = slot_for(cgroup_id)?;
    unsafe {
        *cache = SlotCache {
            cgroup_id,
            slot: slot + 1,
            _pad: 0,
        };
    }
    Some(slot)
}

#[inline(never)]
fn slot_for(cgroup_id: u64) -> Option<u32> {
    if let Some(slot) = unsafe { SLOT_OF_CGROUP.get(cgroup_id) } {
        return Some(*slot);
    }
    let Ok(Some(slot)) = FREE_SLOTS.pop() else {
        count(Stat::SyscallSlotsExhausted);
        return None;
    };
    if SLOT_OF_CGROUP
        .insert(cgroup_id, slot, BPF_NOEXIST as u64)
        .is_ok()
    {
        count(Stat::SyscallSlotsAssigned);
        return Some(slot);
    }
    // Another CPU assigned a slot to this cgroup first: give ours back and use theirs.
    let _ = FREE_SLOTS.push(slot, 0);
    unsafe { SLOT_OF_CGROUP.get(cgroup_id) }.copied()
}

/// Does nothing: the benchmark's floor (the cost of any program on `sys_enter`). Only loaded
/// by `sensor debug empty-hook`.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter_empty(_ctx: RawTracePointContext) -> i32 {
    0
}
