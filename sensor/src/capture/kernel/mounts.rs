//! Where the kernel filesystems the sensor needs are mounted, read from `/proc/self/mountinfo`
//! (never assumed: EKS nodes are cgroup2-only at /sys/fs/cgroup, hybrid hosts put cgroup2 at
//! /sys/fs/cgroup/unified, and a DaemonSet sees host mounts wherever its manifest put them).

use std::path::{Path, PathBuf};

/// One mount of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted in this mount namespace.
    pub mount_point: PathBuf,
    /// The directory of the filesystem that appears at `mount_point` (field 4 of mountinfo):
    /// `/` for a full cgroup2 mount, a sub-path when a cgroup namespace or bind mount narrows it.
    pub root: String,
}

/// Finds the first mount of filesystem type `fstype` in mountinfo text.
pub fn find_mount(mountinfo: &str, fstype: &str) -> Option<Mount> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split_whitespace();
        if right.next()? != fstype {
            return None;
        }
        let mut fields = left.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        Some(Mount {
            mount_point: PathBuf::from(unescape(mount_point)),
            root: unescape(root),
        })
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup2 mount of this host, from `<proc>/self/mountinfo`.
pub fn cgroup2_mount(proc_root: &Path) -> std::io::Result<Option<Mount>> {
    let text = std::fs::read_to_string(proc_root.join("self/mountinfo"))?;
    Ok(find_mount(&text, "cgroup2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 23 0:13 / /sys/kernel/tracing rw,relatime - tracefs nodev rw
";
    const CGROUP2_ONLY: &str = "\
25 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,seclabel,nsdelegate,memory_recursiveprot
";
    const DAEMONSET: &str = "\
1200 1100 0:27 / /host/sys/fs/cgroup ro,nosuid,nodev,noexec,relatime master:9 - cgroup2 cgroup2 rw,nsdelegate
1201 1100 0:27 /kubepods.slice/x /sys/fs/cgroup ro,nosuid - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_cgroup2_on_hybrid_and_unified_hosts() {
        let m = find_mount(HYBRID, "cgroup2").unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(m.root, "/");
        let m = find_mount(CGROUP2_ONLY, "cgroup2").unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(
            find_mount(HYBRID, "tracefs").unwrap().mount_point,
            PathBuf::from("/sys/kernel/tracing")
        );
    }

    #[test]
    fn first_mount_wins_and_root_is_kept() {
        let m = find_mount(DAEMONSET, "cgroup2").unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/host/sys/fs/cgroup"));
        let second = DAEMONSET.lines().nth(1).unwrap();
        assert_eq!(
            find_mount(second, "cgroup2").unwrap().root,
            "/kubepods.slice/x"
        );
    }

    #[test]
    fn missing_and_garbage_lines_are_none() {
        assert_eq!(find_mount("", "cgroup2"), None);
        assert_eq!(find_mount("garbage\n - \n1 2 3", "cgroup2"), None);
        assert_eq!(find_mount(HYBRID, "bpf"), None);
    }

    #[test]
    fn octal_escapes_are_decoded() {
        let line = "50 1 0:40 / /mnt/with\\040space rw - cgroup2 cgroup2 rw";
        assert_eq!(
            find_mount(line, "cgroup2").unwrap().mount_point,
            PathBuf::from("/mnt/with space")
        );
        assert_eq!(unescape("a\\"), "a\\");
        assert_eq!(unescape("a\\04"), "a\\04");
    }
}
