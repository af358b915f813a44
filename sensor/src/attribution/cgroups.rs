//! cgroup v2 id -> path. On cgroup2 a cgroup's id is the inode number of its directory, so the
//! table is seeded by walking the mount, then kept current from the kernel's mkdir/rmdir events
//! (which also name cgroups too short-lived to ever be walked).

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// Removed cgroups kept so that events queued before the removal still resolve.
const REMOVED_KEPT: usize = 4096;

pub struct CgroupTable {
    /// cgroup2 mount point in this mount namespace.
    mount: PathBuf,
    /// Path of the mount's root inside the hierarchy (`/` unless a cgroup namespace narrows it).
    mount_root: String,
    paths: HashMap<u64, String>,
    removed: std::collections::VecDeque<u64>,
}

impl CgroupTable {
    pub fn new(mount: PathBuf, mount_root: String) -> Self {
        Self {
            mount,
            mount_root,
            paths: HashMap::new(),
            removed: Default::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn path(&self, id: u64) -> Option<&str> {
        self.paths.get(&id).map(String::as_str)
    }

    /// Id of a cgroup path (hierarchy-absolute), from the filesystem.
    pub fn id_of(&self, path: &str) -> Option<u64> {
        let rel = self.relative(path)?;
        std::fs::metadata(self.mount.join(rel))
            .ok()
            .map(|m| m.ino())
    }

    /// Walks the whole cgroup2 tree; returns how many cgroups were found.
    pub fn scan(&mut self) -> usize {
        let mut stack = vec![self.mount.clone()];
        let mut n = 0;
        while let Some(dir) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            if let Some(path) = self.hierarchy_path(&dir) {
                self.paths.insert(meta.ino(), path);
                n += 1;
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
        n
    }

    /// Ids of every cgroup that exists now (a fresh walk, without touching the table).
    pub fn live_ids(&self) -> std::collections::HashSet<u64> {
        let mut ids = std::collections::HashSet::new();
        let mut stack = vec![self.mount.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            ids.insert(meta.ino());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(entry.path());
                }
            }
        }
        ids
    }

    /// A cgroup created (kernel event): `path` is hierarchy-absolute.
    pub fn created(&mut self, id: u64, path: String) {
        self.paths.insert(id, path);
    }

    /// A cgroup removed: kept for a while so queued events still resolve.
    pub fn removed(&mut self, id: u64) {
        self.removed.push_back(id);
        while self.removed.len() > REMOVED_KEPT {
            if let Some(old) = self.removed.pop_front() {
                self.paths.remove(&old);
            }
        }
    }

    /// Resolves an id not seen yet from a process that lives in it: its /proc/<pid>/cgroup
    /// names the path, confirmed by the directory's inode.
    pub fn learn_from_pid(&mut self, id: u64, pid: u32, proc_root: &Path) -> Option<&str> {
        let text = std::fs::read_to_string(proc_root.join(format!("{pid}/cgroup"))).ok()?;
        let path = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))?
            .to_string();
        if self.id_of(&path) == Some(id) {
            self.paths.insert(id, path);
            return self.path(id);
        }
        None
    }

    fn hierarchy_path(&self, dir: &Path) -> Option<String> {
        let rel = dir.strip_prefix(&self.mount).ok()?;
        let rel = rel.to_str()?;
        Some(join(&self.mount_root, rel))
    }

    /// Hierarchy-absolute path -> path relative to the mount (None if outside the mount).
    fn relative<'a>(&self, path: &'a str) -> Option<&'a str> {
        let root = self.mount_root.trim_end_matches('/');
        let rest = path.strip_prefix(root)?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        Some(rest.trim_start_matches('/'))
    }
}

fn join(root: &str, rel: &str) -> String {
    let root = root.trim_end_matches('/');
    if rel.is_empty() {
        if root.is_empty() {
            "/".to_string()
        } else {
            root.to_string()
        }
    } else {
        format!("{root}/{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_relativises_with_any_mount_root() {
        assert_eq!(join("/", ""), "/");
        assert_eq!(join("/", "kubepods/pod1"), "/kubepods/pod1");
        assert_eq!(join("/kubepods.slice", "x"), "/kubepods.slice/x");
        let t = CgroupTable::new(PathBuf::from("/sys/fs/cgroup"), "/".into());
        assert_eq!(t.relative("/kubepods/a"), Some("kubepods/a"));
        assert_eq!(t.relative("/"), Some(""));
        let t = CgroupTable::new(PathBuf::from("/sys/fs/cgroup"), "/kubepods".into());
        assert_eq!(t.relative("/kubepods/a"), Some("a"));
        assert_eq!(t.relative("/kubepodsX/a"), None);
        assert_eq!(t.relative("/system.slice"), None);
    }

    #[test]
    fn scan_finds_the_real_cgroup2_tree_by_inode() {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let m = crate::capture::kernel::mounts::find_mount(&mountinfo, "cgroup2")
            .expect("cgroup2 mounted");
        let mut t = CgroupTable::new(m.mount_point.clone(), m.root.clone());
        let dir = m
            .mount_point
            .join(format!("sensor-unit-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let n = t.scan();
        let id = std::fs::metadata(&dir).unwrap().ino();
        std::fs::remove_dir(&dir).unwrap();
        assert!(n >= 2);
        assert_eq!(
            t.path(id),
            Some(format!("/sensor-unit-{}", std::process::id()).as_str())
        );
    }
}
