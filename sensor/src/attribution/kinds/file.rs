//! A candidate open (an anchor matched in the kernel): a `file` event if a sensitive pattern
//! matches the opened file's full path, nothing otherwise.

use sensor_common::file_flags;

use super::Context;
use crate::{
    attribution::event::{Detail, Event},
    capture::{
        kinds::file::{Record, opened_path, requested_path},
        patterns::{canonical_path, match_path},
    },
};

pub fn attribute(f: &Record, cx: &mut Context<'_>, out: &mut Vec<Event>) {
    let h = f.header;
    let path = canonical_path(&opened_path(f));
    let Some(pattern) = match_path(cx.patterns, &path) else {
        return;
    };
    let pattern = pattern.text.clone();
    let requested = requested_path(f).filter(|r| *r != path);
    let detail = Detail::File {
        requested,
        path,
        pattern,
        path_truncated: f.flags & file_flags::RESOLVED_TRUNCATED != 0,
        compat: f.flags & file_flags::COMPAT != 0,
        open_flags: f.open_flags,
    };
    out.push(cx.event(h.ts_ns, h.cgroup_id, h.pid, detail));
}
