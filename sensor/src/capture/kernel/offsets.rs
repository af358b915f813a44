//! The [`KernelConfig`] the kernel programs run with: every kernel struct offset they use,
//! resolved from the running kernel's BTF (aya's Rust eBPF has no CO-RE relocations, and
//! offsets baked from one kernel's headers read garbage on another).

use sensor_common::KernelConfig;

use super::btf::{Btf, BtfError};
use crate::capture::syscall_names::{self, Abi};

/// Hierarchy id of cgroup v2 (`cgrp_dfl_root`): it is set up first at boot and gets id 0; the
/// v1 hierarchies get 1.. (seen on this kernel: the `cgroup_mkdir` tracepoint reports
/// `root=0` for a cgroup2 mkdir and `root=4` for a memory-controller mkdir).
const CGROUP2_HIERARCHY_ID: u32 = 0;

/// Resolves every offset the programs need. The error names the missing `struct.field`.
pub fn kernel_config(btf: &Btf) -> Result<KernelConfig, BtfError> {
    let off = |ty: &str, member: &str| btf.member_offset(ty, member);
    let (regs_compat_offset, regs_compat_mask, regs_compat_value) = compat_test(btf)?;
    let mut c = KernelConfig::zeroed();
    c.regs_compat_mask = regs_compat_mask;
    c.regs_compat_value = regs_compat_value;
    c.regs_compat_offset = regs_compat_offset;
    c.task_pid = off("task_struct", "pid")?;
    c.task_tgid = off("task_struct", "tgid")?;
    c.task_real_parent = off("task_struct", "real_parent")?;
    c.task_mm = off("task_struct", "mm")?;
    c.task_signal = off("task_struct", "signal")?;
    c.task_exit_code = off("task_struct", "exit_code")?;
    c.mm_arg_start = off("mm_struct", "arg_start")?;
    c.mm_arg_end = off("mm_struct", "arg_end")?;
    c.signal_live = off("signal_struct", "live")?;
    c.binprm_filename = off("linux_binprm", "filename")?;
    c.binprm_file = off("linux_binprm", "file")?;
    c.cgroup_kn = off("cgroup", "kn")?;
    c.kernfs_node_id = off("kernfs_node", "id")?;
    c.cgroup_root = off("cgroup", "root")?;
    c.cgroup_root_hierarchy_id = off("cgroup_root", "hierarchy_id")?;
    c.cgroup_level = off("cgroup", "level")?;
    c.dfl_hierarchy_id = CGROUP2_HIERARCHY_ID;
    c.file_f_path = off("file", "f_path")?;
    c.file_f_flags = off("file", "f_flags")?;
    c.task_files = off("task_struct", "files")?;
    c.files_fdt = off("files_struct", "fdt")?;
    c.fdt_fd = off("fdtable", "fd")?;
    c.fdt_max_fds = off("fdtable", "max_fds")?;
    c.path_mnt = off("path", "mnt")?;
    c.path_dentry = off("path", "dentry")?;
    c.dentry_d_parent = off("dentry", "d_parent")?;
    c.dentry_d_name_name = btf.member_path_offset("dentry", "d_name.name")?;
    c.vfsmount_mnt_root = off("vfsmount", "mnt_root")?;
    c.mount_mnt = off("mount", "mnt")?;
    c.mount_mnt_parent = off("mount", "mnt_parent")?;
    c.mount_mnt_mountpoint = off("mount", "mnt_mountpoint")?;
    c.task_cgroups = off("task_struct", "cgroups")?;
    c.css_set_dfl_cgrp = off("css_set", "dfl_cgrp")?;
    [c.regs_arg0, c.regs_arg1, c.regs_arg2, c.regs_arg3] = syscall_args(btf)?;
    let exit = exit_regs(btf)?;
    [
        c.regs_syscall_nr,
        c.regs_exit_arg0,
        c.regs_compat_arg0,
        c.regs_compat_arg1,
    ] = exit;
    let nr = |name: &str| syscall_names::number(Abi::Native, name).unwrap_or(u32::MAX);
    let compat = |name: &str| match regs_compat_mask {
        0 => u32::MAX,
        _ => syscall_names::number(Abi::Compat, name).unwrap_or(u32::MAX),
    };
    c.nr_open = nr("open");
    c.nr_creat = nr("creat");
    c.nr_openat = nr("openat");
    c.nr_openat2 = nr("openat2");
    c.nr_open_by_handle_at = nr("open_by_handle_at");
    c.nr_compat_open = compat("open");
    c.nr_compat_creat = compat("creat");
    c.nr_compat_openat = compat("openat");
    c.nr_compat_openat2 = compat("openat2");
    c.nr_compat_open_by_handle_at = compat("open_by_handle_at");
    for n in [
        c.nr_open,
        c.nr_creat,
        c.nr_openat,
        c.nr_openat2,
        c.nr_open_by_handle_at,
        c.nr_compat_open,
        c.nr_compat_creat,
        c.nr_compat_openat,
        c.nr_compat_openat2,
        c.nr_compat_open_by_handle_at,
    ] {
        if (n as usize) < c.exit_interest.len() * 64 {
            c.exit_interest[n as usize / 64] |= 1 << (n % 64);
        }
    }
    c.nr_listen = nr("listen");
    c.file_private_data = off("file", "private_data")?;
    c.socket_sk = off("socket", "sk")?;
    // `struct sock` starts with `struct sock_common __sk_common`; read through it.
    c.skc_num = btf.member_path_offset("sock", "__sk_common.skc_num")?;
    c.skc_family = btf.member_path_offset("sock", "__sk_common.skc_family")?;
    Ok(c)
}

/// Offsets in `pt_regs` of the first four syscall arguments.
fn syscall_args(btf: &Btf) -> Result<[u32; 4], BtfError> {
    if cfg!(target_arch = "x86_64") {
        Ok([
            btf.member_offset("pt_regs", "di")?,
            btf.member_offset("pt_regs", "si")?,
            btf.member_offset("pt_regs", "dx")?,
            btf.member_offset("pt_regs", "r10")?,
        ])
    } else {
        // arm64: `u64 regs[31]` (inside an anonymous union); x0..x3.
        let regs = btf.member_offset("pt_regs", "regs")?;
        Ok([regs, regs + 8, regs + 16, regs + 24])
    }
}

/// Offsets in `pt_regs` read at syscall exit: the syscall number, the first argument (which
/// arm64 has overwritten with the return value in `x0` by then, but keeps in `orig_x0`), and
/// the first two arguments of a 32-bit compat syscall.
fn exit_regs(btf: &Btf) -> Result<[u32; 4], BtfError> {
    if cfg!(target_arch = "x86_64") {
        Ok([
            btf.member_offset("pt_regs", "orig_ax")?,
            btf.member_offset("pt_regs", "di")?,
            btf.member_offset("pt_regs", "bx")?,
            btf.member_offset("pt_regs", "cx")?,
        ])
    } else {
        let regs = btf.member_offset("pt_regs", "regs")?;
        let orig_x0 = btf.member_offset("pt_regs", "orig_x0")?;
        Ok([
            btf.member_offset("pt_regs", "syscallno")?,
            orig_x0,
            orig_x0,
            regs + 8,
        ])
    }
}

/// How a syscall's registers say it came through the 32-bit compat ABI on this architecture.
/// (offset in `pt_regs`, mask, value); mask 0 = no compat ABI.
fn compat_test(btf: &Btf) -> Result<(u32, u64, u64), BtfError> {
    if cfg!(target_arch = "x86_64") {
        // ia32 syscalls run with the 32-bit user code segment, __USER32_CS = 0x23.
        Ok((btf.member_offset("pt_regs", "cs")?, 0xffff, 0x23))
    } else if cfg!(target_arch = "aarch64") {
        // AArch32 tasks run with PSR_MODE32_BIT (0x10) set in pstate.
        Ok((btf.member_offset("pt_regs", "pstate")?, 0x10, 0x10))
    } else {
        Ok((0, 0, 0))
    }
}
