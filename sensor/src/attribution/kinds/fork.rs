//! A new process: the process table learns the child (its parent's image and cgroup); no event.

use super::Context;
use crate::{attribution::event::Event, capture::kinds::fork::Record};

pub fn attribute(f: &Record, cx: &mut Context<'_>, _out: &mut Vec<Event>) {
    cx.attributor
        .processes
        .fork(f.header.pid, f.child_pid, f.header.cgroup_id);
}
