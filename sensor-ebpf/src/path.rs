//! Rebuilding a path from a (dentry, vfsmount) pair: the kernel's own view of where a file is,
//! with relative paths, `..` and symlinks already resolved. Used for opened files and for the
//! executable of an exec.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use sensor_common::limits::{MAX_ANCHOR_DEPTH, MAX_PATH_DEPTH, PATH_NAME_SLOT};

use crate::{
    kernel::read_ptr,
    maps::{FILE_ANCHORS, conf},
};

pub const FNV_BASIS: u32 = 0x811c_9dc5;
pub const FNV_PRIME: u32 = 0x0100_0193;

/// Copies the components of the path of (dentry, vfsmount) - leaf first, one slot each - into
/// `names`, crossing mounts up to the namespace root. With `want_anchor`, also reports whether
/// one of the last [`MAX_ANCHOR_DEPTH`] components is an anchor, and stops right after them
/// when none is (the caller has no use for the rest). Returns (depth, truncated, anchor).
///
/// Shaped for the verifier: each iteration records exactly one component (the loop index is
/// the depth), after crossing at most one mount boundary.
#[inline(always)]
pub unsafe fn walk(
    names: *mut u8,
    mut dentry: *const u8,
    vfsmount: *const u8,
    want_anchor: bool,
) -> Option<(u32, bool, bool)> {
    unsafe {
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
            if want_anchor && !anchor && i + 1 >= MAX_ANCHOR_DEPTH {
                return Some((i as u32 + 1, false, false));
            }
            dentry = parent;
        }
        Some((MAX_PATH_DEPTH as u32, true, anchor))
    }
}

/// FNV-1a over `len` bytes of a slot: must equal `sensor_common::anchor_hash`.
#[inline(always)]
pub unsafe fn fnv1a(slot: *const u8, len: usize) -> u32 {
    let mut h = FNV_BASIS;
    for j in 0..PATH_NAME_SLOT {
        if j >= len {
            break;
        }
        h = (h ^ unsafe { *slot.add(j) } as u32).wrapping_mul(FNV_PRIME);
    }
    h
}
