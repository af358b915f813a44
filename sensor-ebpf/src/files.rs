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
        generated::{bpf_get_current_task, bpf_probe_read_user_str},
    },
    macros::map,
    maps::PerCpuArray,
};
use sensor_common::{EventKind, FileEvent, Stat, file_flags, limits::MAX_OPEN_PATH};

use crate::{
    kernel::{current_file, read_ptr},
    maps::{EVENTS, FILE_ANCHORS, conf, count, header},
    path::{FNV_BASIS, FNV_PRIME, walk},
};

const AT_FDCWD: i32 = -100;
/// `O_CREAT | O_WRONLY | O_TRUNC`: what creat(2) means.
const CREAT_FLAGS: u32 = 0o100 | 0o1 | 0o1000;

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
                Some((dentry, vfsmount)) => {
                    match walk((&raw mut (*ev).base).cast(), dentry, vfsmount, !matched) {
                        Some((depth, truncated, anchor)) => {
                            matched |= anchor;
                            (*ev).base_depth = depth;
                            if truncated {
                                fflags |= file_flags::BASE_TRUNCATED;
                            }
                        }
                        None => fflags |= file_flags::BASE_UNRESOLVED,
                    }
                }
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
