//! Opens of sensitive paths, from the `syscalls:sys_exit_open*` tracepoints (they fire only for
//! those syscalls; fentry/LSM hooks with `bpf_d_path` are not available everywhere - e.g. not
//! on kernels that refuse trampolines).
//!
//! The opened file is found from the returned descriptor and its path rebuilt by walking
//! dentries and mounts, so relative opens (`cd .../serviceaccount && cat token`), `..` and
//! symlinks are already resolved, and the walk ends at the opener's mount-namespace root (a
//! container's path is the one the container sees). Cheap filter first: only if one of the
//! last [`MAX_ANCHOR_DEPTH`] components hashes to a configured anchor name is the whole path
//! copied out; user space then applies the exact patterns.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, generated::bpf_probe_read_kernel_str},
    macros::{map, tracepoint},
    maps::PerCpuArray,
    programs::TracePointContext,
};
use sensor_common::{
    EventKind, FileEvent, Stat, file_flags,
    limits::{MAX_ANCHOR_DEPTH, MAX_PATH_DEPTH, PATH_NAME_SLOT},
};

use crate::{
    kernel::{current_file, read_at, read_ptr},
    maps::{EVENTS, FILE_ANCHORS, conf, count, header},
};

/// The event is built here: too big for the 512-byte BPF stack.
#[map]
static FILE_SCRATCH: PerCpuArray<FileEvent> = PerCpuArray::with_max_entries(1, 0);

/// Attached to `sys_exit_openat`, `sys_exit_openat2` and (where it exists) `sys_exit_open`.
#[tracepoint]
pub fn sys_exit_open(ctx: TracePointContext) -> u32 {
    if conf!(file_anchors) == 0 {
        return 0;
    }
    let Ok(ret) = (unsafe { ctx.read_at::<i64>(conf!(sys_exit_ret) as usize) }) else {
        return 0;
    };
    if ret < 0 {
        return 0;
    }
    count(Stat::FileOpensChecked);
    if unsafe { check_open(ret as u32) }.is_none() {
        count(Stat::FilePathUnresolved);
    }
    0
}

/// `Some(())` when the open was examined (matching or not), `None` on a read fault.
#[inline(always)]
unsafe fn check_open(fd: u32) -> Option<()> {
    unsafe {
        let file = current_file(fd)?;
        let f_path = conf!(file_f_path);
        let vfsmount = read_ptr(file, f_path + conf!(path_mnt))?;
        let dentry = read_ptr(file, f_path + conf!(path_dentry))?;
        let ev = FILE_SCRATCH.get_ptr_mut(0)?;
        if !walk(ev, dentry, vfsmount)? {
            return Some(());
        }
        (*ev).header = header(EventKind::FileOpen);
        (*ev).open_flags = read_at::<u32>(file, conf!(file_f_flags)).unwrap_or(0);
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*ev)._pad = 0;
        if EVENTS.output::<FileEvent>(&*ev, 0).is_err() {
            count(EventKind::FileOpen.ringbuf_full_stat());
        }
        Some(())
    }
}

/// Copies the path components (leaf first) into `ev`. Returns whether an anchor matched.
///
/// Shaped for the verifier: each iteration records exactly one component (so the loop index is
/// the depth), crossing at most one mount boundary first; truncated names are left for user
/// space to notice (a full slot without NUL).
#[inline(always)]
unsafe fn walk(ev: *mut FileEvent, mut dentry: *const u8, vfsmount: *const u8) -> Option<bool> {
    unsafe {
        let names = (&raw mut (*ev).names) as *mut u8;
        let mount_mnt = conf!(mount_mnt) as usize;
        let mut mount = vfsmount.wrapping_sub(mount_mnt);
        let mut mnt_root = read_ptr(vfsmount, conf!(vfsmount_mnt_root))?;
        let mut matched = false;
        let mut depth = MAX_PATH_DEPTH as u32;
        let mut truncated = true;
        for i in 0..MAX_PATH_DEPTH {
            if dentry == mnt_root {
                // Step from the root of this mount to where it is mounted.
                let parent = read_ptr(mount, conf!(mount_mnt_parent))?;
                if parent == mount {
                    depth = i as u32;
                    truncated = false;
                    break; // the namespace's root mount
                }
                dentry = read_ptr(mount, conf!(mount_mnt_mountpoint))?;
                mount = parent;
                mnt_root = read_ptr(parent.wrapping_add(mount_mnt), conf!(vfsmount_mnt_root))?;
            }
            let parent = read_ptr(dentry, conf!(dentry_d_parent))?;
            if parent == dentry {
                depth = i as u32;
                truncated = false;
                break;
            }
            let slot = names.add(i * PATH_NAME_SLOT);
            let name = read_ptr(dentry, conf!(dentry_d_name_name))?;
            let n = bpf_probe_read_kernel_str(slot.cast(), PATH_NAME_SLOT as u32, name.cast());
            if n <= 0 {
                return None;
            }
            if i < MAX_ANCHOR_DEPTH
                && !matched
                && let Some(max_depth) = FILE_ANCHORS.get(fnv1a(slot, n as usize - 1))
            {
                matched = i as u32 <= *max_depth;
            }
            if i + 1 >= MAX_ANCHOR_DEPTH && !matched {
                return Some(false);
            }
            dentry = parent;
        }
        if !matched {
            return Some(false);
        }
        (*ev).depth = depth;
        (*ev).flags = if truncated {
            file_flags::PATH_TRUNCATED
        } else {
            0
        };
        Some(true)
    }
}

/// FNV-1a over `len` bytes of a slot: must equal `sensor_common::anchor_hash`.
#[inline(always)]
unsafe fn fnv1a(slot: *const u8, len: usize) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for j in 0..PATH_NAME_SLOT {
        if j >= len {
            break;
        }
        h ^= unsafe { *slot.add(j) } as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}
