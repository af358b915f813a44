//! Syscall sets: one bit per syscall number per cgroup, set from `sys_enter`. No event per
//! syscall: user space reads the bitmaps (without clearing them) and drains a cgroup's bitmap
//! when the cgroup is removed.
//!
//! Hot path: a per-CPU one-entry cache (last cgroup -> slot) in front of an array of bitmaps;
//! both lookups are inlined by the verifier. The hash map is only consulted when the CPU switches
//! cgroup, and a slot is taken from the free queue the first time a cgroup makes a syscall, so a
//! container's bitmap starts with the runtime's own init work inside it.
//!
//! The runtime's setup (namespaces, mounts, `pivot_root`, dropping capabilities: runc init or
//! crun before the seccomp filter exists) is told apart from the workload without any work on
//! the hot path: a cgroup created after the sensor started is in its setup phase until its
//! first exec of a program that is not the runtime itself, and that exec (in
//! `sched_process_exec`, after the old image's threads are gone) moves the bits into the setup
//! half of the slot. See `sensor_common::SyscallSet`.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::generated::{bpf_get_current_task_btf, bpf_probe_read_kernel_str},
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use sensor_common::{
    SlotCache, Stat,
    limits::{MAX_SYSCALL_NR, SYSCALL_WORDS},
    syscall_phase,
};

use crate::maps::{FREE_SLOTS, NEW_CGROUPS, SLOT_CACHE, SLOT_OF_CGROUP, SYSCALL_SETS, conf, count};

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
    if !compat && nr as u32 == conf!(nr_listen) {
        crate::network::on_listen(regs);
    }
    0
}

/// Reads a field of a typed kernel pointer at an offset from the load-time config. A plain
/// load: the verifier checks it against the pointer's BTF type and makes it fault-safe.
#[inline(always)]
pub(crate) unsafe fn load<T: Copy>(base: *const u8, offset: u32) -> T {
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize) as *const T) }
}

/// Whether the current syscall entered through the 32-bit compat ABI, decided from the
/// registers the way the architecture does it (x86-64: `cs == __USER32_CS`; arm64: the
/// AArch32 bit of `pstate`). Mask 0 means the architecture has no compat ABI here.
#[inline(always)]
pub(crate) fn is_compat(regs: *const u8) -> bool {
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
    let set = SYSCALL_SETS.get_ptr_mut(slot)?;
    // The phase is set before the slot is published, so no bit of a new container's runtime
    // can land in the workload's set.
    let new = unsafe { NEW_CGROUPS.get(cgroup_id) }.is_some();
    unsafe {
        (*set).phase = if new {
            syscall_phase::SETUP
        } else {
            syscall_phase::WORKLOAD
        };
    }
    if SLOT_OF_CGROUP
        .insert(cgroup_id, slot, BPF_NOEXIST as u64)
        .is_ok()
    {
        if new {
            let _ = NEW_CGROUPS.remove(cgroup_id);
        }
        count(Stat::SyscallSlotsAssigned);
        return Some(slot);
    }
    // Another CPU assigned a slot to this cgroup first: give ours back and use theirs.
    unsafe { (*set).phase = syscall_phase::WORKLOAD };
    let _ = FREE_SLOTS.push(slot, 0);
    unsafe { SLOT_OF_CGROUP.get(cgroup_id) }.copied()
}

/// A cgroup v2 directory was created: its first syscalls will be a container runtime's setup.
#[inline(always)]
pub fn cgroup_created(cgroup_id: u64) {
    let _ = NEW_CGROUPS.insert(cgroup_id, 1, 0);
}

/// Called for every successful exec with `bprm->filename`. If the current cgroup is still in
/// its setup phase and this exec starts the workload (it is not the runtime re-executing
/// itself from `/proc/self/exe` or a descriptor, as runc init does), the bits recorded so far
/// become the setup set and the workload's set starts empty. Returns whether this exec
/// started the workload. Independent of the ring buffer: a full buffer loses the exec event,
/// never the switch. Execs are rare: a hash lookup is fine here.
#[inline(always)]
pub fn exec_in_cgroup(filename: *const u8) -> bool {
    let cgroup_id = current_cgroup_id();
    let Some(slot) = (unsafe { SLOT_OF_CGROUP.get(cgroup_id) }).copied() else {
        return false;
    };
    let Some(set) = SYSCALL_SETS.get_ptr_mut(slot) else {
        return false;
    };
    unsafe {
        if core::ptr::read_volatile(&raw const (*set).phase) != syscall_phase::SETUP
            || is_runtime_reexec(filename)
        {
            return false;
        }
        for i in 0..SYSCALL_WORDS {
            let n = crate::atomic::take((&raw mut (*set).native as *mut u64).add(i));
            if n != 0 {
                crate::atomic::or((&raw mut (*set).setup_native as *mut u64).add(i), n);
            }
            let c = crate::atomic::take((&raw mut (*set).compat as *mut u64).add(i));
            if c != 0 {
                crate::atomic::or((&raw mut (*set).setup_compat as *mut u64).add(i), c);
            }
        }
        // Last: a reader that sees the workload phase sees the setup bits already moved.
        core::ptr::write_volatile(&raw mut (*set).phase, syscall_phase::WORKLOAD);
    }
    true
}

/// `/proc/self/exe`, `/proc/self/fd/<n>` or `/dev/fd/<n>`: a program executing its own image or
/// an inherited descriptor - how runc re-executes itself (its memfd copy) inside the new
/// cgroup. No container's entrypoint is given to execve like that. An unreadable name is not a
/// re-exec (the workload starts: the safe side for the drafts).
#[inline(always)]
fn is_runtime_reexec(filename: *const u8) -> bool {
    const SELF_EXE: &[u8] = b"/proc/self/exe\0";
    const SELF_FD: &[u8] = b"/proc/self/fd/";
    const DEV_FD: &[u8] = b"/dev/fd/";
    let mut buf = [0u8; 16];
    if filename.is_null()
        || unsafe {
            bpf_probe_read_kernel_str(buf.as_mut_ptr().cast(), buf.len() as u32, filename.cast())
        } <= 0
    {
        return false;
    }
    starts_with(&buf, SELF_EXE)
        || (starts_with(&buf, SELF_FD) && buf[SELF_FD.len()] != 0)
        || (starts_with(&buf, DEV_FD) && buf[DEV_FD.len()] != 0)
}

#[inline(always)]
fn starts_with(s: &[u8; 16], prefix: &[u8]) -> bool {
    for (i, b) in prefix.iter().enumerate() {
        if s[i] != *b {
            return false;
        }
    }
    true
}

/// Does nothing: the benchmark's floor (the cost of any program on `sys_enter`). Only loaded
/// by `sensor-dev empty-hook`.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter_empty(_ctx: RawTracePointContext) -> i32 {
    0
}

/// Does nothing on `sys_exit`: with [`sys_enter_empty`], the floor of a sensor that hooks both
/// (the sensitive-file fallback where trampolines are refused). Only loaded by
/// `sensor-dev empty-hook --exit`.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit_empty(_ctx: RawTracePointContext) -> i32 {
    0
}
