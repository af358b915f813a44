//! tracefs: where it is, and the field offsets of tracepoint records, read from each event's
//! `format` file (they can differ between kernels, so they are never assumed).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error(
        "tracefs is not mounted (looked for {0}/events); mount it with `mount -t tracefs nodev /sys/kernel/tracing`, or in a pod mount the host's /sys/kernel/tracing"
    )]
    NotMounted(PathBuf),
    #[error("reading tracepoint format {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tracepoint {event} has no field `{field}`")]
    NoField { event: String, field: String },
}

/// The tracefs directory to use: from mountinfo if mounted, else the usual places.
pub fn find(mountinfo: &str) -> Result<PathBuf, TracefsError> {
    let candidates = super::mounts::find_mount(mountinfo, "tracefs")
        .map(|m| m.mount_point)
        .into_iter()
        .chain([
            PathBuf::from("/sys/kernel/tracing"),
            PathBuf::from("/sys/kernel/debug/tracing"),
        ]);
    let mut first = None;
    for dir in candidates {
        if dir.join("events").is_dir() {
            return Ok(dir);
        }
        first.get_or_insert(dir);
    }
    Err(TracefsError::NotMounted(
        first.unwrap_or_else(|| PathBuf::from("/sys/kernel/tracing")),
    ))
}

/// Finds tracefs, mounting it at /sys/kernel/tracing when nothing is mounted (root on the host
/// can; in a pod the manifest mounts the host's). The error says how to fix it otherwise.
pub fn find_or_mount(mountinfo: &str) -> Result<PathBuf, TracefsError> {
    match find(mountinfo) {
        Ok(dir) => Ok(dir),
        Err(e) => {
            let target = PathBuf::from("/sys/kernel/tracing");
            if mount_tracefs(&target) && target.join("events").is_dir() {
                tracing::info!("mounted tracefs at {}", target.display());
                Ok(target)
            } else {
                Err(e)
            }
        }
    }
}

fn mount_tracefs(target: &Path) -> bool {
    use std::ffi::CString;
    let (Ok(src), Ok(dst), Ok(fstype)) = (
        CString::new("nodev"),
        CString::new(target.as_os_str().as_encoded_bytes()),
        CString::new("tracefs"),
    ) else {
        return false;
    };
    // SAFETY: valid NUL-terminated strings; no data argument.
    unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        ) == 0
    }
}

/// Whether `category/name` exists on this kernel.
pub fn has_event(tracefs: &Path, category: &str, name: &str) -> bool {
    tracefs
        .join("events")
        .join(category)
        .join(name)
        .join("format")
        .exists()
}

/// Byte offset of `field` in the records of tracepoint `category/name`.
pub fn field_offset(
    tracefs: &Path,
    category: &str,
    name: &str,
    field: &str,
) -> Result<u32, TracefsError> {
    let path = tracefs
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    let text =
        std::fs::read_to_string(&path).map_err(|source| TracefsError::Read { path, source })?;
    parse_field_offset(&text, field).ok_or_else(|| TracefsError::NoField {
        event: format!("{category}/{name}"),
        field: field.to_string(),
    })
}

/// Parses `field:long ret; offset:16; size:8; signed:1;` lines (tab-separated in the file).
pub fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let line = line.trim();
        let decl = line.strip_prefix("field:")?.split(';').next()?;
        let name = decl.split_whitespace().last()?.split('[').next()?;
        if name != field {
            return None;
        }
        let offset = line
            .split(';')
            .find_map(|p| p.trim().strip_prefix("offset:"))?;
        offset.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYS_EXIT_OPENAT: &str = "name: sys_exit_openat
ID: 781
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;

print fmt: \"0x%lx\", REC->ret
";

    #[test]
    fn parses_offsets_from_a_real_format_file() {
        assert_eq!(parse_field_offset(SYS_EXIT_OPENAT, "ret"), Some(16));
        assert_eq!(parse_field_offset(SYS_EXIT_OPENAT, "__syscall_nr"), Some(8));
        assert_eq!(parse_field_offset(SYS_EXIT_OPENAT, "common_pid"), Some(4));
        assert_eq!(parse_field_offset(SYS_EXIT_OPENAT, "missing"), None);
        assert_eq!(
            parse_field_offset("field:char comm[16];\toffset:8;\tsize:16;", "comm"),
            Some(8)
        );
        assert_eq!(parse_field_offset("garbage", "ret"), None);
    }

    #[test]
    fn reads_this_kernels_sys_exit_openat() {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dir = find(&mountinfo).expect("tracefs mounted (cargo xtask test mounts it)");
        assert_eq!(
            field_offset(&dir, "syscalls", "sys_exit_openat", "ret").unwrap(),
            16
        );
        assert!(has_event(&dir, "syscalls", "sys_exit_openat2"));
    }
}
