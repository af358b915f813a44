//! Cgroup hierarchies on this host, and cleanup / placement helpers.
//!
//! Why: the sensor identifies containers by their cgroup2 id (`bpf_get_current_cgroup_id`), and
//! flushes a container's syscall set when its cgroup is removed. The test bed must create,
//! inspect and remove cgroups in every mounted hierarchy (v1 controllers on hybrid hosts, plus
//! cgroup2) and place host processes in arbitrary cgroup2 directories.

use std::ffi::CString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::util;

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mount: PathBuf,
    pub v2: bool,
}

/// Every cgroup hierarchy mounted in our mount namespace (from `/proc/self/mountinfo`).
pub fn hierarchies() -> &'static [Hierarchy] {
    static H: OnceLock<Vec<Hierarchy>> = OnceLock::new();
    H.get_or_init(|| {
        let info = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
        let mut out: Vec<Hierarchy> = Vec::new();
        for line in info.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(sep) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(fstype), Some(mount)) = (fields.get(sep + 1), fields.get(4)) else {
                continue;
            };
            let v2 = match *fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => continue,
            };
            // Only hierarchies mounted at their root map test paths 1:1.
            if fields.get(3) != Some(&"/") {
                continue;
            }
            let mount = PathBuf::from(unescape_mountinfo(mount));
            if !out.iter().any(|h| h.mount == mount) {
                out.push(Hierarchy { mount, v2 });
            }
        }
        out
    })
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Mount point of the cgroup2 (unified) hierarchy; panics if there is none.
pub fn unified_mount() -> &'static Path {
    hierarchies()
        .iter()
        .find(|h| h.v2)
        .map(|h| h.mount.as_path())
        .expect("no cgroup2 hierarchy mounted: the sensor needs cgroup2 (mount -t cgroup2 none /sys/fs/cgroup/unified)")
}

/// Absolute directory of cgroup `rel` (e.g. `/kubepods/besteffort/pod.../<id>`) in cgroup2.
pub fn v2_dir(rel: &str) -> PathBuf {
    unified_mount().join(rel.trim_start_matches('/'))
}

/// Whether cgroup `rel` exists in the cgroup2 hierarchy.
pub fn exists_v2(rel: &str) -> bool {
    v2_dir(rel).is_dir()
}

/// The cgroup2 id of `rel` (the directory's inode number, what `bpf_get_current_cgroup_id`
/// returns for tasks in it), if it exists.
pub fn v2_id(rel: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(v2_dir(rel)).ok().map(|m| m.ino())
}

/// The cgroup2 path of a process (`0::<path>` in `/proc/<pid>/cgroup`).
pub fn proc_cgroup_v2(pid: u32) -> Option<String> {
    let s = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// Best-effort removal of cgroup `rel` in every hierarchy: kills leftover processes (cgroup2
/// `cgroup.kill`, v1 `cgroup.procs`) and rmdirs, retrying briefly while tasks exit.
/// Does not touch parents.
pub fn remove_everywhere(rel: &str) {
    for h in hierarchies() {
        let dir = h.mount.join(rel.trim_start_matches('/'));
        if !dir.is_dir() {
            continue;
        }
        // Children first (e.g. a pod dir holding container dirs).
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    let child = format!(
                        "{}/{}",
                        rel.trim_end_matches('/'),
                        e.file_name().to_string_lossy()
                    );
                    remove_one(&h.mount.join(child.trim_start_matches('/')), h.v2);
                }
            }
        }
        remove_one(&dir, h.v2);
    }
}

fn remove_one(dir: &Path, v2: bool) {
    if fs::remove_dir(dir).is_ok() || !dir.exists() {
        return;
    }
    if v2 {
        let _ = fs::write(dir.join("cgroup.kill"), "1");
    } else if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|p| p.parse::<u32>().ok()) {
            util::signal(pid, libc::SIGKILL);
        }
    }
    util::poll_until(Duration::from_secs(3), Duration::from_millis(20), || {
        (fs::remove_dir(dir).is_ok() || !dir.exists()).then_some(())
    });
}

/// A cgroup2 directory made by the test, for host processes, removed on drop.
///
/// Why: a process in a cgroup the sensor cannot map to a pod must show up as `scope: "host"`
/// with its raw cgroup path rather than crash or be dropped; a process directly in a pod's
/// cgroup (no container) must show up as `scope: "pod"`.
pub struct HostCgroup {
    rel: String,
}

impl HostCgroup {
    /// Creates `/<path>` in the cgroup2 hierarchy (and missing parents). Only the leaf is
    /// removed on drop: parents may be shared (e.g. `/kubepods/besteffort`).
    pub fn new(path: &str) -> HostCgroup {
        let rel = format!("/{}", path.trim_start_matches('/'));
        let dir = v2_dir(&rel);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        HostCgroup { rel }
    }

    /// Path relative to the cgroup2 root, e.g. `/sensor-test-ab12`.
    pub fn path(&self) -> &str {
        &self.rel
    }

    pub fn id(&self) -> u64 {
        v2_id(&self.rel).expect("host cgroup exists")
    }

    /// Makes `cmd` move itself into this cgroup between fork and exec, so that everything the
    /// program does (including its execve) happens inside the cgroup.
    pub fn enter_on_spawn(&self, cmd: &mut Command) {
        let procs = CString::new(
            v2_dir(&self.rel)
                .join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .expect("no NUL in cgroup path");
        // SAFETY: the closure only makes async-signal-safe syscalls (open/write/close) on
        // memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // "0" means "the writing process".
                let r = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if r != 1 {
                    return Err(err);
                }
                Ok(())
            });
        }
    }
}

impl Drop for HostCgroup {
    fn drop(&mut self) {
        remove_everywhere(&self.rel);
    }
}
