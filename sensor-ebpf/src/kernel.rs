//! Reading kernel structures at offsets that user space resolved from the running kernel's BTF.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel;

use crate::maps::conf;

/// Reads a `T` at `base + offset` from kernel memory. `None` if the read faults.
#[inline(always)]
pub unsafe fn read_at<T: Copy>(base: *const u8, offset: u32) -> Option<T> {
    let mut out = core::mem::MaybeUninit::<T>::uninit();
    let ret = unsafe {
        bpf_probe_read_kernel(
            out.as_mut_ptr().cast(),
            core::mem::size_of::<T>() as u32,
            base.wrapping_add(offset as usize).cast(),
        )
    };
    if ret == 0 {
        Some(unsafe { out.assume_init() })
    } else {
        None
    }
}

/// Reads a pointer field at `base + offset`.
#[inline(always)]
pub unsafe fn read_ptr(base: *const u8, offset: u32) -> Option<*const u8> {
    let p: u64 = unsafe { read_at(base, offset)? };
    if p == 0 { None } else { Some(p as *const u8) }
}

/// The `struct file` behind descriptor `fd` of the current task, or `None`.
#[inline(always)]
pub unsafe fn current_file(fd: u32) -> Option<*const u8> {
    unsafe {
        let task = aya_ebpf::helpers::generated::bpf_get_current_task() as *const u8;
        let files = read_ptr(task, conf!(task_files))?;
        let fdt = read_ptr(files, conf!(files_fdt))?;
        let max_fds: u32 = read_at(fdt, conf!(fdt_max_fds))?;
        if fd >= max_fds {
            return None;
        }
        let fd_array = read_ptr(fdt, conf!(fdt_fd))?;
        read_ptr(fd_array, fd * 8)
    }
}
