//! Opens of sensitive files, judged on the file actually opened: at syscall exit, the returned
//! descriptor's `struct file` is walked (dentries and mounts up to the opener's mount-namespace
//! root), so a symlink, `..`, a bind-mounted path or `/proc/<pid>/root/...` names the file the
//! kernel opened, not the string the program passed. The walk stops after the few components
//! nearest the leaf unless one of them is an anchor; only candidates go to user space, which
//! applies the exact patterns. No user memory is needed to decide: the requested string is read
//! afterwards as evidence only (the kernel has just copied it, so its page is resident).
//!
//! Two hooks, one check: [`file_open`] (fentry on `security_file_open`) runs once per open and
//! sees every way of opening, io_uring included; on a kernel that refuses trampolines the
//! loader attaches [`sys_exit`] instead, a program on every syscall exit whose first test is
//! one load of the syscall number and one bit test against the open family
//! (`KernelConfig::exit_interest`), so every other syscall leaves at once. The price of each is
//! in docs/benchmarks.md.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm,
        generated::{bpf_get_current_task_btf, bpf_probe_read_user_str, bpf_task_pt_regs},
    },
    macros::{btf_tracepoint, fentry, map},
    maps::PerCpuArray,
    programs::{BtfTracePointContext, FEntryContext},
};
use sensor_common::{
    EventKind, FileEvent, Stat, file_flags,
    limits::{MAX_OPEN_PATH, MAX_SYSCALL_NR},
};

use crate::{
    kernel::{current_file, read_at, read_ptr},
    maps::{EVENTS, conf, count, header},
    path::walk,
    syscalls::{is_compat, load},
};

/// The event is built here: too big for the 512-byte BPF stack.
#[map]
static FILE_SCRATCH: PerCpuArray<FileEvent> = PerCpuArray::with_max_entries(1, 0);

/// `sys_exit(struct pt_regs *regs, long ret)` as a BTF tracepoint (typed `regs`: plain loads).
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    let nr: u32 = unsafe { load::<u32>(regs, conf!(regs_syscall_nr)) };
    if nr as usize >= MAX_SYSCALL_NR {
        return 0;
    }
    let word = unsafe {
        core::ptr::read_volatile(
            (&raw const crate::maps::CONFIG.exit_interest as *const u64).add(nr as usize / 64),
        )
    };
    if word & (1u64 << (nr % 64)) == 0 {
        return 0;
    }
    let ret: i64 = ctx.arg(1);
    if ret < 0 || conf!(file_anchors) == 0 {
        return 0;
    }
    let compat = is_compat(regs);
    let Some(path_arg) = open_path_arg(regs, nr, compat) else {
        return 0; // another syscall with the same number in the other ABI
    };
    count(Stat::FileOpensChecked);
    let file = unsafe { current_file(ret as u32) };
    if file
        .and_then(|f| unsafe { check_file(f, ret as u32, path_arg, compat) })
        .is_none()
    {
        count(Stat::FilePathUnresolved);
    }
    0
}

/// `security_file_open(struct file *file)`, the LSM hook every open passes through once the
/// path is resolved (the `open` family, `open_by_handle_at`, io_uring's `IORING_OP_OPENAT`,
/// exec's open of the binary), before the descriptor exists. Preferred over [`sys_exit`]: it
/// runs per open, not per syscall. Needs trampolines (fentry, 5.5; `bpf_task_pt_regs`, 5.15);
/// where the kernel refuses them the loader attaches [`sys_exit`] instead.
#[fentry(function = "security_file_open")]
pub fn file_open(ctx: FEntryContext) -> i32 {
    if conf!(file_anchors) == 0 {
        return 0;
    }
    let file: *const u8 = ctx.arg(0);
    // The requested string, when the open came from an open-family syscall: the task's
    // syscall registers say which one.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const u8;
    let (path_arg, compat) = if regs.is_null() {
        (0, false)
    } else {
        let nr: u32 = unsafe { load::<u32>(regs, conf!(regs_syscall_nr)) };
        let compat = is_compat(regs);
        (open_path_arg(regs, nr, compat).unwrap_or(0), compat)
    };
    count(Stat::FileOpensChecked);
    if unsafe { check_file(file, NO_FD, path_arg, compat) }.is_none() {
        count(Stat::FilePathUnresolved);
    }
    0
}

/// The event's `fd` when the hook runs before the descriptor exists.
const NO_FD: u32 = u32::MAX;

/// The user pointer of the requested path of an open-family syscall `nr` of the given ABI (0
/// for one without a path, `open_by_handle_at`), or `None` when `nr` is not an open at all.
/// A plain integer, not a nested `Option`: the verifier rejects spilling the undefined payload
/// of a `None`.
#[inline(always)]
fn open_path_arg(regs: *const u8, nr: u32, compat: bool) -> Option<u64> {
    let arg = |offset: u32| Some(unsafe { load::<u64>(regs, offset) });
    if compat {
        if nr == conf!(nr_compat_open) || nr == conf!(nr_compat_creat) {
            arg(conf!(regs_compat_arg0))
        } else if nr == conf!(nr_compat_openat) || nr == conf!(nr_compat_openat2) {
            arg(conf!(regs_compat_arg1))
        } else if nr == conf!(nr_compat_open_by_handle_at) {
            Some(0)
        } else {
            None
        }
    } else if nr == conf!(nr_open) || nr == conf!(nr_creat) {
        arg(conf!(regs_exit_arg0))
    } else if nr == conf!(nr_openat) || nr == conf!(nr_openat2) {
        arg(conf!(regs_arg1))
    } else if nr == conf!(nr_open_by_handle_at) {
        Some(0)
    } else {
        None
    }
}

/// `Some(())` when the opened file was examined (candidate or not), `None` when its path
/// could not be walked (counted as unresolved).
#[inline(always)]
unsafe fn check_file(file: *const u8, fd: u32, path_arg: u64, compat: bool) -> Option<()> {
    unsafe {
        let f_path = conf!(file_f_path);
        let dentry = read_ptr(file, f_path + conf!(path_dentry))?;
        let mnt = read_ptr(file, f_path + conf!(path_mnt))?;
        let ev = FILE_SCRATCH.get_ptr_mut(0)?;
        let (depth, truncated, anchor) = walk((&raw mut (*ev).resolved).cast(), dentry, mnt, true)?;
        if !anchor {
            return Some(());
        }
        let mut flags = if truncated {
            file_flags::RESOLVED_TRUNCATED
        } else {
            0
        };
        if compat {
            flags |= file_flags::COMPAT;
        }
        (*ev).path_len = 0;
        (*ev).path[0] = 0;
        let n = if path_arg == 0 {
            0
        } else {
            bpf_probe_read_user_str(
                (&raw mut (*ev).path).cast(),
                MAX_OPEN_PATH as u32,
                path_arg as *const _,
            )
        };
        if n > 0 {
            (*ev).path_len = (n as u32 - 1) & (MAX_OPEN_PATH as u32 - 1);
            if n as usize >= MAX_OPEN_PATH {
                flags |= file_flags::REQUESTED_TRUNCATED;
            }
        } else {
            flags |= file_flags::REQUESTED_UNREADABLE;
        }
        (*ev).header = header(EventKind::FileOpen);
        (*ev).flags = flags;
        (*ev).open_flags = read_at::<u32>(file, conf!(file_f_flags)).unwrap_or(0);
        (*ev).depth = depth;
        (*ev).fd = fd;
        (*ev)._pad = 0;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        if EVENTS.output::<FileEvent>(&*ev, 0).is_err() {
            count(EventKind::FileOpen.ringbuf_full_stat());
        }
        Some(())
    }
}
