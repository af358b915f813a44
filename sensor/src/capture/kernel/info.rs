//! The kernel the probes run on (release, version string, machine, where BTF was read from),
//! for support: the metrics' `sensor_kernel_info`, `sensor info` and the API's node info.

use std::{ffi::CStr, path::Path};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelInfo {
    pub release: String,
    pub version: String,
    pub machine: String,
    pub btf: String,
    /// Size of the BTF file (0 when it cannot be read): a vmlinux BTF of a few MiB is normal,
    /// a missing or tiny one explains failed offsets.
    pub btf_bytes: u64,
}

impl KernelInfo {
    /// `uname(2)` and the BTF file the agent loads offsets from.
    pub fn read(btf: &Path) -> KernelInfo {
        // SAFETY: uname fills the zeroed struct; each field is NUL-terminated on success.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::uname(&mut u) } == 0;
        let field = |f: &[libc::c_char]| -> String {
            if !ok {
                return String::new();
            }
            // SAFETY: a field of a successful uname is a NUL-terminated string inside `f`.
            unsafe { CStr::from_ptr(f.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        KernelInfo {
            release: field(&u.release),
            version: field(&u.version),
            machine: field(&u.machine),
            btf: btf.display().to_string(),
            btf_bytes: std::fs::metadata(btf).map(|m| m.len()).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_running_kernel() {
        let k = KernelInfo::read(Path::new("/sys/kernel/btf/vmlinux"));
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(k.release, release.trim());
        assert_eq!(k.machine, std::env::consts::ARCH);
        assert!(!k.version.is_empty());
        let missing = KernelInfo::read(Path::new("/nonexistent/vmlinux"));
        assert_eq!(missing.btf_bytes, 0);
    }
}
