//! An exec: the process table takes the new image, and an `exec` event says what ran (the
//! executable only when it differs from the path given to execve).

use sensor_common::exec_flags;

use super::Context;
use crate::{
    attribution::{
        event::{Detail, Event},
        processes::ProcessInfo,
    },
    capture::kinds::exec::{self as record, Record},
};

pub fn attribute(e: &Record, cx: &mut Context<'_>, out: &mut Vec<Event>) {
    let h = e.header;
    let path = record::filename(e);
    let args = record::args(e);
    let comm = record::comm(e);
    cx.attributor.processes.exec(ProcessInfo {
        pid: h.pid,
        ppid: e.ppid,
        comm,
        path: path.clone(),
        args: args.clone(),
        cgroup_id: h.cgroup_id,
        exited: false,
    });
    let exe = record::exe(e).filter(|x| *x != path);
    let detail = Detail::Exec {
        path,
        exe,
        args,
        args_truncated: e.flags & (exec_flags::ARGS_TRUNCATED | exec_flags::ARGS_UNREADABLE) != 0,
        path_truncated: e.flags & exec_flags::FILENAME_TRUNCATED != 0,
        uid: e.uid,
        workload_start: e.flags & exec_flags::WORKLOAD_START != 0,
    };
    out.push(cx.event(h.ts_ns, h.cgroup_id, h.pid, detail));
}
