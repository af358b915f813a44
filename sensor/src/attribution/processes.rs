//! A bounded process table: pid -> what it runs, its parent, its cgroup. Gives ancestry chains
//! and a ppid for events whose probe does not carry one. Seeded from /proc at start so
//! processes that predate the sensor have a parent and a command line too.

use std::{
    collections::{HashMap, VecDeque},
    path::Path,
};

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// Executable path as given to exec (or /proc/<pid>/exe when seeded).
    pub path: String,
    pub args: Vec<String>,
    pub cgroup_id: u64,
    /// Seen exiting; kept briefly so late events still resolve.
    #[serde(skip)]
    pub exited: bool,
}

/// Bounded: when full, exited processes go first, then the oldest inserted.
pub struct ProcessTable {
    by_pid: HashMap<u32, ProcessInfo>,
    /// Insertion order for eviction; may hold pids already removed.
    order: VecDeque<u32>,
    exited: VecDeque<u32>,
    capacity: usize,
    evicted: u64,
}

impl ProcessTable {
    pub fn new(capacity: usize) -> Self {
        Self {
            by_pid: HashMap::new(),
            order: VecDeque::new(),
            exited: VecDeque::new(),
            capacity: capacity.max(1),
            evicted: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    /// Live processes dropped because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    pub fn get(&self, pid: u32) -> Option<&ProcessInfo> {
        self.by_pid.get(&pid)
    }

    /// A fork: the child inherits the parent's image until it execs.
    pub fn fork(&mut self, parent: u32, child: u32, cgroup_id: u64) {
        let info = match self.by_pid.get(&parent) {
            Some(p) => ProcessInfo {
                pid: child,
                ppid: parent,
                exited: false,
                cgroup_id,
                ..p.clone()
            },
            None => ProcessInfo {
                pid: child,
                ppid: parent,
                comm: String::new(),
                path: String::new(),
                args: Vec::new(),
                cgroup_id,
                exited: false,
            },
        };
        self.insert(info);
    }

    /// An exec replaces the image; the parent is kept from the kernel's view.
    pub fn exec(&mut self, info: ProcessInfo) {
        self.insert(info);
    }

    pub fn exit(&mut self, pid: u32) {
        if let Some(p) = self.by_pid.get_mut(&pid)
            && !p.exited
        {
            p.exited = true;
            self.exited.push_back(pid);
        }
        // Keep a bounded tail of exited processes for late events, drop the rest.
        while self.exited.len() > self.capacity / 8 + 1 {
            if let Some(old) = self.exited.pop_front()
                && self.by_pid.get(&old).is_some_and(|p| p.exited)
            {
                self.by_pid.remove(&old);
            }
        }
    }

    fn insert(&mut self, info: ProcessInfo) {
        let pid = info.pid;
        if self.by_pid.insert(pid, info).is_none() {
            self.order.push_back(pid);
        }
        while self.by_pid.len() > self.capacity {
            self.evict_one();
        }
        // The order queue can accumulate stale pids; compact it when it grows too far.
        if self.order.len() > self.capacity * 2 {
            let live = &self.by_pid;
            self.order.retain(|p| live.contains_key(p));
        }
    }

    fn evict_one(&mut self) {
        while let Some(pid) = self.exited.pop_front() {
            if self.by_pid.get(&pid).is_some_and(|p| p.exited) {
                self.by_pid.remove(&pid);
                return;
            }
        }
        while let Some(pid) = self.order.pop_front() {
            if self.by_pid.remove(&pid).is_some() {
                self.evicted += 1;
                return;
            }
        }
    }

    /// A live process in cgroup `cgroup_id`, if the table knows one.
    pub fn pid_in_cgroup(&self, cgroup_id: u64) -> Option<u32> {
        self.by_pid
            .values()
            .find(|p| p.cgroup_id == cgroup_id && !p.exited)
            .map(|p| p.pid)
    }

    /// The chain of ancestors, nearest first, up to `max` entries (stops at pid 1 or an unknown
    /// parent; guards against cycles from pid reuse).
    pub fn ancestry(&self, pid: u32, max: usize) -> Vec<&ProcessInfo> {
        let mut out = Vec::new();
        let mut current = self.by_pid.get(&pid).map(|p| p.ppid);
        while let Some(ppid) = current {
            if out.len() >= max || ppid == 0 {
                break;
            }
            let Some(parent) = self.by_pid.get(&ppid) else {
                break;
            };
            if out.iter().any(|p: &&ProcessInfo| p.pid == parent.pid) {
                break;
            }
            out.push(parent);
            current = if parent.pid == 1 {
                None
            } else {
                Some(parent.ppid)
            };
        }
        out
    }

    /// Seeds the table from `<proc_root>` (processes alive before the sensor started).
    /// `cgroup_id_of` maps a cgroup v2 path to its id. Unreadable processes are skipped.
    pub fn seed_from_proc(
        &mut self,
        proc_root: &Path,
        cgroup_id_of: impl Fn(&str) -> Option<u64>,
    ) -> usize {
        let Ok(all) = procfs::process::all_processes_with_root(proc_root) else {
            return 0;
        };
        let mut n = 0;
        for proc in all.flatten() {
            let Ok(stat) = proc.stat() else { continue };
            let args = proc.cmdline().unwrap_or_default();
            let path = proc
                .exe()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| args.first().cloned().unwrap_or_default());
            let cgroup_id = proc
                .cgroups()
                .ok()
                .and_then(|cgs| {
                    cgs.0
                        .into_iter()
                        .find(|c| c.hierarchy == 0)
                        .map(|c| c.pathname)
                })
                .and_then(|p| cgroup_id_of(&p))
                .unwrap_or(0);
            self.insert(ProcessInfo {
                pid: stat.pid as u32,
                ppid: stat.ppid as u32,
                comm: stat.comm,
                path,
                args,
                cgroup_id,
                exited: false,
            });
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, ppid: u32, comm: &str) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid,
            comm: comm.into(),
            path: format!("/bin/{comm}"),
            args: vec![comm.into()],
            cgroup_id: 7,
            exited: false,
        }
    }

    #[test]
    fn fork_inherits_image_and_exec_replaces_it() {
        let mut t = ProcessTable::new(16);
        t.exec(proc(10, 1, "sh"));
        t.fork(10, 11, 7);
        assert_eq!(t.get(11).unwrap().comm, "sh");
        assert_eq!(t.get(11).unwrap().ppid, 10);
        t.exec(proc(11, 10, "curl"));
        assert_eq!(t.get(11).unwrap().path, "/bin/curl");
    }

    #[test]
    fn ancestry_is_nearest_first_and_bounded() {
        let mut t = ProcessTable::new(16);
        t.exec(proc(1, 0, "init"));
        t.exec(proc(10, 1, "containerd-shim"));
        t.exec(proc(20, 10, "python"));
        t.exec(proc(30, 20, "sh"));
        let chain: Vec<u32> = t.ancestry(30, 8).iter().map(|p| p.pid).collect();
        assert_eq!(chain, vec![20, 10, 1]);
        assert_eq!(t.ancestry(30, 2).len(), 2);
        assert!(t.ancestry(999, 8).is_empty());
    }

    #[test]
    fn ancestry_survives_a_cycle() {
        let mut t = ProcessTable::new(16);
        t.exec(proc(5, 6, "a"));
        t.exec(proc(6, 5, "b"));
        assert!(t.ancestry(5, 10).len() <= 2);
    }

    #[test]
    fn stays_bounded_and_evicts_exited_first() {
        let mut t = ProcessTable::new(4);
        for pid in 1..=4 {
            t.exec(proc(pid, 0, "x"));
        }
        t.exit(2);
        t.exec(proc(5, 0, "y"));
        assert_eq!(t.len(), 4);
        assert!(t.get(2).is_none(), "the exited process goes first");
        assert_eq!(t.evicted(), 0);
        for pid in 6..100 {
            t.exec(proc(pid, 0, "z"));
        }
        assert_eq!(t.len(), 4);
        assert!(t.evicted() > 0);
    }

    #[test]
    fn seeding_from_proc_finds_this_process() {
        let mut t = ProcessTable::new(100_000);
        let n = t.seed_from_proc(Path::new("/proc"), |_| Some(1));
        assert!(n > 0);
        let me = t.get(std::process::id()).expect("own pid seeded");
        assert!(!me.path.is_empty());
        assert_eq!(me.cgroup_id, 1);
    }
}
