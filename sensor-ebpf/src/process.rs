//! Process tree: new processes, successful execs with their argument vector, process exits.
//!
//! Raw tracepoints (no tracefs needed); kernel struct fields are read at offsets resolved from
//! BTF by user space.

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_uid_gid,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user},
    },
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_common::{
    EventKind, ExecEvent, ExitEvent, ForkEvent, exe_flags, exec_flags,
    limits::{MAX_ARGS, MAX_PATH},
};

use crate::{
    kernel::{read_at, read_ptr},
    maps::{conf, header, reserve},
    path::walk,
};

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`.
/// Threads are skipped: only a child that leads its own thread group is a new process.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let child: *const u8 = ctx.arg(1);
    let (Some(pid), Some(tgid)) = (unsafe { read_at::<u32>(child, conf!(task_pid)) }, unsafe {
        read_at::<u32>(child, conf!(task_tgid))
    }) else {
        return 0;
    };
    if pid != tgid {
        return 0;
    }
    let Some(mut entry) = reserve::<ForkEvent>(EventKind::Fork) else {
        return 0;
    };
    entry.write(ForkEvent {
        header: header(EventKind::Fork),
        child_pid: pid,
        _pad: 0,
    });
    entry.submit(0);
    0
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`:
/// runs in the new image, so the arguments are read from the new mm's argument area in one copy.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    let bprm: *const u8 = ctx.arg(2);
    let filename = unsafe { read_ptr(bprm, conf!(binprm_filename)) };
    let workload_start = crate::syscalls::exec_in_cgroup(filename.unwrap_or(core::ptr::null()));
    let Some(mut entry) = reserve::<ExecEvent>(EventKind::Exec) else {
        return 0;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        (*ev).header = header(EventKind::Exec);
        let uid_gid = bpf_get_current_uid_gid();
        (*ev).uid = uid_gid as u32;
        (*ev).gid = (uid_gid >> 32) as u32;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*ev).ppid = parent_tgid(task);
        let mut flags = 0;

        // Filename as passed to execve.
        (*ev).filename_len = 0;
        if let Some(name) = filename {
            let n = bpf_probe_read_kernel_str(
                (&raw mut (*ev).filename).cast(),
                MAX_PATH as u32,
                name.cast(),
            );
            if n > 0 {
                let n = n as u32 - 1;
                (*ev).filename_len = n;
                if n as usize >= MAX_PATH - 1 {
                    flags |= exec_flags::FILENAME_TRUNCATED;
                }
            }
        }

        if workload_start {
            flags |= exec_flags::WORKLOAD_START;
        }

        // Arguments: [arg_start, arg_end) of the new mm, NUL-separated.
        (*ev).args_len = 0;
        let mut read_ok = false;
        if let Some(mm) = read_ptr(task, conf!(task_mm)) {
            let start: Option<u64> = read_at(mm, conf!(mm_arg_start));
            let end: Option<u64> = read_at(mm, conf!(mm_arg_end));
            if let (Some(start), Some(end)) = (start, end)
                && end > start
            {
                let mut len = end - start;
                if len > MAX_ARGS as u64 {
                    len = MAX_ARGS as u64;
                    flags |= exec_flags::ARGS_TRUNCATED;
                }
                // Masking keeps the verifier's bound proof simple: 1..=MAX_ARGS.
                let len = ((len - 1) & (MAX_ARGS as u64 - 1)) + 1;
                if bpf_probe_read_user((&raw mut (*ev).args).cast(), len as u32, start as *const _)
                    == 0
                {
                    (*ev).args_len = len as u32;
                    read_ok = true;
                }
            }
        }
        if !read_ok {
            flags |= exec_flags::ARGS_UNREADABLE;
        }
        (*ev).flags = flags;

        // The executable actually run (symlinks resolved: `ln -s /bin/sh x; ./x` is sh).
        (*ev).exe_depth = 0;
        (*ev).exe_flags = 0;
        if let Some(file) = read_ptr(bprm, conf!(binprm_file)) {
            let f_path = conf!(file_f_path);
            if let (Some(dentry), Some(mnt)) = (
                read_ptr(file, f_path + conf!(path_dentry)),
                read_ptr(file, f_path + conf!(path_mnt)),
            ) && let Some((depth, truncated, _)) =
                walk((&raw mut (*ev).exe).cast(), dentry, mnt, false)
            {
                (*ev).exe_depth = depth;
                (*ev).exe_flags = if truncated { exe_flags::TRUNCATED } else { 0 };
            }
        }
    }
    entry.submit(0);
    0
}

/// `sched_process_exit(struct task_struct *p, ...)`: reported once per process, when its last
/// thread exits (`signal->live` reached zero before the tracepoint fires).
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    unsafe {
        let Some(signal) = read_ptr(task, conf!(task_signal)) else {
            return 0;
        };
        match read_at::<i32>(signal, conf!(signal_live)) {
            Some(0) => {}
            _ => return 0,
        }
        let exit_code = read_at::<u32>(task, conf!(task_exit_code)).unwrap_or(0);
        let Some(mut entry) = reserve::<ExitEvent>(EventKind::Exit) else {
            return 0;
        };
        entry.write(ExitEvent {
            header: header(EventKind::Exit),
            exit_code,
            _pad: 0,
        });
        entry.submit(0);
    }
    0
}

#[inline(always)]
unsafe fn parent_tgid(task: *const u8) -> u32 {
    unsafe {
        match read_ptr(task, conf!(task_real_parent)) {
            Some(parent) => read_at::<u32>(parent, conf!(task_tgid)).unwrap_or(0),
            None => 0,
        }
    }
}
