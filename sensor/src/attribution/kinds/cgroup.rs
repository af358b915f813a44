//! cgroup v2 directories created and removed (two kinds, one record). A new cgroup's path is
//! learnt; a removed one's syscall set is drained into its final `syscalls` event, and its
//! flows and state wait for the pipeline's next sweep.

use sensor_common::SyscallSet;

use super::Context;
use crate::{
    attribution::event::{Detail, Event},
    capture::{
        kinds::cgroup::{self as record, Record},
        syscall_sets::named,
    },
};

/// `cgroup_mkdir`: the cgroup table learns the path (no event).
pub fn created(c: &Record, cx: &mut Context<'_>, _out: &mut Vec<Event>) {
    cx.attributor.cgroup_created(c.id, record::path(c));
}

/// `cgroup_rmdir`: the final syscall set, if the cgroup had one.
pub fn removed(c: &Record, cx: &mut Context<'_>, out: &mut Vec<Event>) {
    if let Some(set) = cx.collector.syscall_sets.drain(c.id) {
        out.push(syscalls(cx, c.header.ts_ns, c.id, &set, true));
    }
    cx.removed.insert(c.id);
    cx.attributor.cgroup_removed(c.id);
}

/// A cgroup's syscall set as a `syscalls` event: here at its removal, and from the pipeline for
/// cgroups gone unseen (`is_final`) and for the live ones at exit (not final).
pub fn syscalls(
    cx: &mut Context<'_>,
    ts_ns: u64,
    cgroup_id: u64,
    set: &SyscallSet,
    is_final: bool,
) -> Event {
    let n = named(set);
    cx.event(
        ts_ns,
        cgroup_id,
        0,
        Detail::Syscalls {
            native: n.native,
            compat: n.compat,
            setup_native: n.setup_native,
            setup_compat: n.setup_compat,
            is_final,
        },
    )
}
