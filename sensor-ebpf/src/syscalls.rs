//! Syscall sets: one bit per syscall number per cgroup, set from `sys_enter`. No event per
//! syscall: user space reads the bitmaps (without clearing them) and drains a cgroup's bitmap
//! when the cgroup is removed.
//!
//! Hot path: a per-CPU one-entry cache (last cgroup -> slot) in front of an array of bitmaps;
//! both lookups are inlined by the verifier. The hash map is only consulted when the CPU switches
//! cgroup, and a slot is taken from the free queue the first time a cgroup makes a syscall, so a
//! container's bitmap starts with the runtime's own init work inside it.

use aya_ebpf::{
    bindings::BPF_NOEXIST, helpers::bpf_get_current_cgroup_id, macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_common::{SlotCache, Stat, limits::MAX_SYSCALL_NR};

use crate::{
    kernel::read_at,
    maps::{FREE_SLOTS, SLOT_CACHE, SLOT_OF_CGROUP, SYSCALL_SETS, conf, count},
};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    let nr: i64 = ctx.arg(1);
    if nr < 0 || nr >= MAX_SYSCALL_NR as i64 {
        count(Stat::SyscallOutOfRange);
        return 0;
    }
    let Some(slot) = current_slot() else {
        return 0;
    };
    let Some(set) = SYSCALL_SETS.get_ptr_mut(slot) else {
        return 0;
    };
    let regs: *const u8 = ctx.arg(0);
    let word = (nr as usize) / 64;
    let bit = 1u64 << (nr as u64 % 64);
    unsafe {
        let words = if is_compat(regs) {
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
    0
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
    let value: u64 = match unsafe { read_at(regs, conf!(regs_compat_offset)) } {
        Some(v) => v,
        None => return false,
    };
    value & mask == conf!(regs_compat_value)
}

#[inline(always)]
fn current_slot() -> Option<u32> {
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
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
