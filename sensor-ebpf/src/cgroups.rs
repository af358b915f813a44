//! cgroup v2 directories created and removed. User space learns a new container's cgroup path
//! here (even if the container lives 50 ms) and drains its syscall set when it is removed.

use aya_ebpf::{
    helpers::generated::bpf_probe_read_kernel_str, macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sensor_common::{CgroupEvent, EventKind, cgroup_flags, limits::MAX_PATH};

use crate::{
    kernel::{read_at, read_ptr},
    maps::{conf, header, reserve},
};

/// `cgroup_mkdir(struct cgroup *cgrp, const char *path)`.
#[raw_tracepoint(tracepoint = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: RawTracePointContext) -> i32 {
    emit(&ctx, EventKind::CgroupMkdir);
    0
}

/// `cgroup_rmdir(struct cgroup *cgrp, const char *path)`.
#[raw_tracepoint(tracepoint = "cgroup_rmdir")]
pub fn cgroup_rmdir(ctx: RawTracePointContext) -> i32 {
    emit(&ctx, EventKind::CgroupRmdir);
    0
}

#[inline(always)]
fn emit(ctx: &RawTracePointContext, kind: EventKind) {
    let cgrp: *const u8 = ctx.arg(0);
    let path: *const u8 = ctx.arg(1);
    unsafe {
        // Only the v2 hierarchy: v1 hierarchies have their own id spaces.
        let Some(root) = read_ptr(cgrp, conf!(cgroup_root)) else {
            return;
        };
        match read_at::<u32>(root, conf!(cgroup_root_hierarchy_id)) {
            Some(h) if h == conf!(dfl_hierarchy_id) => {}
            _ => return,
        }
        let Some(kn) = read_ptr(cgrp, conf!(cgroup_kn)) else {
            return;
        };
        let Some(id) = read_at::<u64>(kn, conf!(kernfs_node_id)) else {
            return;
        };
        if kind == EventKind::CgroupMkdir {
            crate::syscalls::cgroup_created(id);
        }
        let Some(mut entry) = reserve::<CgroupEvent>(kind) else {
            return;
        };
        let ev = entry.as_mut_ptr();
        (*ev).header = header(kind);
        (*ev).id = id;
        (*ev).level = read_at::<i32>(cgrp, conf!(cgroup_level)).unwrap_or(0) as u32;
        (*ev)._pad = 0;
        let n =
            bpf_probe_read_kernel_str((&raw mut (*ev).path).cast(), MAX_PATH as u32, path.cast());
        let n = if n > 0 { n as u32 - 1 } else { 0 };
        (*ev).path_len = n;
        (*ev).flags = if n as usize >= MAX_PATH - 1 {
            cgroup_flags::PATH_TRUNCATED
        } else {
            0
        };
        entry.submit(0);
    }
}
