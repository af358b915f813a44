//! Opens of sensitive paths, seen at syscall entry from the `sys_enter` program (a branch on
//! the open-family syscall numbers, so other syscalls pay two compares). No exit hook: enabling
//! any syscall-exit tracepoint makes *every* syscall take the exit tracing path (+28 ns here),
//! and fentry/LSM with `bpf_d_path` is not available on every kernel.
//!
//! The path string is copied from user memory and each component hashed against the anchor
//! map; for a relative path the base directory (cwd or `dirfd`) is rebuilt by walking dentries
//! and mounts up to the opener's mount-namespace root, and its last components are checked too
//! (so `cd /var/run/secrets/...; cat token` is caught). Only candidates go to user space, which
//! joins, normalises and matches the exact patterns. Symlinks in the requested path are not
//! resolved (the file is not open yet).

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm,
        generated::{bpf_get_current_task, bpf_probe_read_kernel_str, bpf_probe_read_user_str},
    },
    macros::map,
    maps::PerCpuArray,
};
use sensor_common::{
    EventKind, FileEvent, Stat, file_flags,
    limits::{MAX_ANCHOR_DEPTH, MAX_OPEN_PATH, MAX_PATH_DEPTH, PATH_NAME_SLOT},
};

use crate::{
    kernel::{current_file, read_ptr},
    maps::{EVENTS, FILE_ANCHORS, conf, count, header},
};

const AT_FDCWD: i32 = -100;
/// `O_CREAT | O_WRONLY | O_TRUNC`: what creat(2) means.
const CREAT_FLAGS: u32 = 0o100 | 0o1 | 0o1000;
const FNV_BASIS: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// The event is built here: too big for the 512-byte BPF stack.
#[map]
static FILE_SCRATCH: PerCpuArray<FileEvent> = PerCpuArray::with_max_entries(1, 0);

/// Called from `sys_enter` for the open-family syscalls; `regs` is the typed `pt_regs`.
#[inline(never)]
pub fn on_open(regs: *const u8, nr: u32) {
    if conf!(file_anchors) == 0 {
        return;
    }
    count(Stat::FileOpensChecked);
    if unsafe { check_open(regs, nr) }.is_none() {
        count(Stat::FilePathUnresolved);
    }
}

#[inline(always)]
unsafe fn arg(regs: *const u8, offset: u32) -> u64 {
    unsafe { core::ptr::read_volatile(regs.wrapping_add(offset as usize) as *const u64) }
}

/// `Some(())` when the open was examined (candidate or not), `None` when something could not
/// be read (an unresolved open, counted).
#[inline(always)]
unsafe fn check_open(regs: *const u8, nr: u32) -> Option<()> {
    unsafe {
        let (dirfd, path, flags) = if nr == conf!(nr_openat) || nr == conf!(nr_openat2) {
            let flags = if nr == conf!(nr_openat) {
                arg(regs, conf!(regs_arg2)) as u32
            } else {
                0 // openat2's flags live in `struct open_how` in user memory; not read
            };
            (
                arg(regs, conf!(regs_arg0)) as i32,
                arg(regs, conf!(regs_arg1)),
                flags,
            )
        } else if nr == conf!(nr_creat) {
            (AT_FDCWD, arg(regs, conf!(regs_arg0)), CREAT_FLAGS)
        } else {
            (
                AT_FDCWD,
                arg(regs, conf!(regs_arg0)),
                arg(regs, conf!(regs_arg1)) as u32,
            )
        };
        let ev = FILE_SCRATCH.get_ptr_mut(0)?;
        let buf = (&raw mut (*ev).path) as *mut u8;
        let n = bpf_probe_read_user_str(buf.cast(), MAX_OPEN_PATH as u32, path as *const _);
        if n <= 0 {
            return None;
        }
        let len = (n as u32 - 1) & (MAX_OPEN_PATH as u32 - 1);
        let mut matched = path_has_anchor(buf);
        let mut fflags = if n as usize >= MAX_OPEN_PATH {
            file_flags::PATH_TRUNCATED
        } else {
            0
        };
        (*ev).base_depth = 0;
        if *buf != b'/' {
            match base_dir(dirfd) {
                Some((dentry, vfsmount)) => match walk(ev, dentry, vfsmount, !matched) {
                    Some((depth, truncated, anchor)) => {
                        matched |= anchor;
                        (*ev).base_depth = depth;
                        if truncated {
                            fflags |= file_flags::BASE_TRUNCATED;
                        }
                    }
                    None => fflags |= file_flags::BASE_UNRESOLVED,
                },
                None => fflags |= file_flags::BASE_UNRESOLVED,
            }
        }
        if !matched {
            return Some(());
        }
        (*ev).header = header(EventKind::FileOpen);
        (*ev).flags = fflags;
        (*ev).open_flags = flags;
        (*ev).path_len = len;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        if EVENTS.output::<FileEvent>(&*ev, 0).is_err() {
            count(EventKind::FileOpen.ringbuf_full_stat());
        }
        Some(())
    }
}

/// Whether any `/`-separated component of the NUL-terminated string hashes to an anchor.
/// Shaped for the verifier: one pass, the hash is the only running state.
#[inline(always)]
unsafe fn path_has_anchor(buf: *const u8) -> bool {
    let mut h = FNV_BASIS;
    for i in 0..MAX_OPEN_PATH {
        let c = unsafe { *buf.add(i) };
        if c == b'/' || c == 0 {
            if h != FNV_BASIS && FILE_ANCHORS.get_ptr(h).is_some() {
                return true;
            }
            if c == 0 {
                return false;
            }
            h = FNV_BASIS;
        } else {
            h = (h ^ c as u32).wrapping_mul(FNV_PRIME);
        }
    }
    false
}

/// The directory a relative path starts from: the cwd, or the file `dirfd` refers to.
/// Returns its (dentry, vfsmount).
#[inline(always)]
unsafe fn base_dir(dirfd: i32) -> Option<(*const u8, *const u8)> {
    unsafe {
        if dirfd == AT_FDCWD {
            let task = bpf_get_current_task() as *const u8;
            let fs = read_ptr(task, conf!(task_fs))?;
            let pwd = conf!(fs_pwd);
            Some((
                read_ptr(fs, pwd + conf!(path_dentry))?,
                read_ptr(fs, pwd + conf!(path_mnt))?,
            ))
        } else if dirfd >= 0 {
            let file = current_file(dirfd as u32)?;
            let f_path = conf!(file_f_path);
            Some((
                read_ptr(file, f_path + conf!(path_dentry))?,
                read_ptr(file, f_path + conf!(path_mnt))?,
            ))
        } else {
            None
        }
    }
}

/// Copies the directory's components (leaf first) into `ev.base`, crossing mounts up to the
/// namespace root. With `want_anchor`, also reports whether one of the last
/// [`MAX_ANCHOR_DEPTH`] components is an anchor. Returns (depth, truncated, anchor).
///
/// Shaped for the verifier: each iteration records exactly one component (the loop index is
/// the depth), after crossing at most one mount boundary.
#[inline(always)]
unsafe fn walk(
    ev: *mut FileEvent,
    mut dentry: *const u8,
    vfsmount: *const u8,
    want_anchor: bool,
) -> Option<(u32, bool, bool)> {
    unsafe {
        let names = (&raw mut (*ev).base) as *mut u8;
        let mount_mnt = conf!(mount_mnt) as usize;
        let mut mount = vfsmount.wrapping_sub(mount_mnt);
        let mut mnt_root = read_ptr(vfsmount, conf!(vfsmount_mnt_root))?;
        let mut anchor = false;
        for i in 0..MAX_PATH_DEPTH {
            if dentry == mnt_root {
                // Step from the root of this mount to where it is mounted.
                let parent = read_ptr(mount, conf!(mount_mnt_parent))?;
                if parent == mount {
                    return Some((i as u32, false, anchor)); // the namespace's root mount
                }
                dentry = read_ptr(mount, conf!(mount_mnt_mountpoint))?;
                mount = parent;
                mnt_root = read_ptr(parent.wrapping_add(mount_mnt), conf!(vfsmount_mnt_root))?;
            }
            let parent = read_ptr(dentry, conf!(dentry_d_parent))?;
            if parent == dentry {
                return Some((i as u32, false, anchor));
            }
            let slot = names.add(i * PATH_NAME_SLOT);
            let name = read_ptr(dentry, conf!(dentry_d_name_name))?;
            let n = bpf_probe_read_kernel_str(slot.cast(), PATH_NAME_SLOT as u32, name.cast());
            if n <= 0 {
                return None;
            }
            if want_anchor
                && !anchor
                && i < MAX_ANCHOR_DEPTH
                && FILE_ANCHORS.get_ptr(fnv1a(slot, n as usize - 1)).is_some()
            {
                anchor = true;
            }
            dentry = parent;
        }
        Some((MAX_PATH_DEPTH as u32, true, anchor))
    }
}

/// FNV-1a over `len` bytes of a slot: must equal `sensor_common::anchor_hash`.
#[inline(always)]
unsafe fn fnv1a(slot: *const u8, len: usize) -> u32 {
    let mut h = FNV_BASIS;
    for j in 0..PATH_NAME_SLOT {
        if j >= len {
            break;
        }
        h = (h ^ unsafe { *slot.add(j) } as u32).wrapping_mul(FNV_PRIME);
    }
    h
}
