//! User-space function calls (uprobes), counted per attachment. The attach manager sets each
//! uprobe attachment's cookie to its attachment id and creates its counter before attaching, so
//! one loaded program serves any number of attachments (libraries, processes) and user space
//! reads how often each one fired. The TLS uprobes (`SSL_write`/`SSL_read`) call [`hit`] first,
//! so their attachments are counted the same way.
//!
//! Every calling process is counted, container or not: narrowing is the attachment's job (a pid
//! scope, or a library path inside one container's root filesystem). A container test here would
//! cost a hash lookup per call for nothing the scope does not already give.

use aya_ebpf::{
    EbpfContext, helpers::generated::bpf_get_attach_cookie, macros::uprobe, programs::ProbeContext,
};

use crate::maps::UPROBE_HITS;

/// Counts one call for the attachment that fired. The attach cookie (Linux 5.15+) says which.
#[uprobe]
pub fn uprobe_hits(ctx: ProbeContext) -> u32 {
    hit(&ctx);
    0
}

/// One more hit for the attachment that fired. Only attachments whose counter user space
/// created are counted: a call still in flight while its attachment is detached finds no entry
/// (it was removed with the link) and is dropped, so no entry outlives its attachment.
#[inline(always)]
pub fn hit(ctx: &ProbeContext) {
    let cookie = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) };
    if let Some(hits) = UPROBE_HITS.get_ptr_mut(cookie) {
        unsafe { crate::atomic::add(hits, 1) };
    }
}
