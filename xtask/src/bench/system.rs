//! What the bench reads from and does to the host: the cgroup2 mount, pod-shaped cgroup leaves
//! (created for a measurement, always removed), kubelet's metadata files, /proc counters, and
//! a description of the machine.

use std::{
    collections::BTreeSet,
    fs,
    io::ErrorKind,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};

use super::tools::nap;

/// The cgroup2 hierarchy as mounted here (found in /proc/self/mountinfo: /sys/fs/cgroup on
/// EKS nodes, /sys/fs/cgroup/unified on hybrid hosts such as this VM).
pub struct Cgroup2 {
    pub mount_point: PathBuf,
    /// The mount's root inside the hierarchy (`/` unless in a cgroup namespace).
    pub root: String,
}

impl Cgroup2 {
    pub fn find() -> Result<Cgroup2> {
        let mountinfo =
            fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            if right.split_whitespace().next() != Some("cgroup2") {
                continue;
            }
            let mut fields = left.split_whitespace();
            let (Some(root), Some(mount_point)) = (fields.nth(3), fields.next()) else {
                continue;
            };
            return Ok(Cgroup2 {
                mount_point: PathBuf::from(unescape(mount_point)),
                root: unescape(root),
            });
        }
        bail!("cgroup v2 is not mounted (no cgroup2 line in /proc/self/mountinfo)")
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = (b[i] == b'\\')
            .then(|| b.get(i + 1..i + 4))
            .flatten()
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A few pseudo-random bits for names (uniqueness, not secrecy).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Kubernetes names of a pod-shaped cgroup (used for the kubelet metadata files).
pub struct PodNames {
    pub namespace: &'static str,
    pub pod: String,
    pub container: &'static str,
}

/// `<cgroup2>/kubepods/besteffort/pod<uid>/<64-hex id>` (kubelet's cgroupfs layout), created for
/// one measurement. Dropping it kills whatever is still inside and removes what was created.
pub struct PodCgroup {
    pub dir: PathBuf,
    /// Path inside the hierarchy, as the sensor prints it (`/kubepods/...`).
    pub path: String,
    /// cgroup id = inode number of the directory (what `bpf_get_current_cgroup_id` returns).
    pub id: u64,
    pub pod_uid: String,
    pub container_id: String,
    /// Directories this guard created, outermost first.
    created: Vec<PathBuf>,
    removed: bool,
}

impl PodCgroup {
    pub fn create(cg: &Cgroup2) -> Result<PodCgroup> {
        let r = random_u64();
        let pod_uid = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            r >> 32,
            (r >> 16) & 0xffff,
            r & 0xfff,
            (r >> 52) & 0xfff,
            random_u64() & 0xffff_ffff_ffff
        );
        let container_id: String = (0..4).map(|_| format!("{:016x}", random_u64())).collect();
        let rel = PathBuf::from("kubepods")
            .join("besteffort")
            .join(format!("pod{pod_uid}"))
            .join(&container_id);
        let mut guard = PodCgroup {
            dir: cg.mount_point.join(&rel),
            path: format!("{}/{}", cg.root.trim_end_matches('/'), rel.display()),
            id: 0,
            pod_uid,
            container_id,
            created: Vec::new(),
            removed: false,
        };
        let mut dir = cg.mount_point.clone();
        for part in rel.iter() {
            dir.push(part);
            match fs::create_dir(&dir) {
                Ok(()) => guard.created.push(dir.clone()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("creating cgroup {}", dir.display()));
                }
            }
        }
        guard.id = fs::metadata(&guard.dir)
            .with_context(|| format!("stat {}", guard.dir.display()))?
            .ino();
        Ok(guard)
    }

    fn procs(&self) -> Vec<u32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kills what is left inside, then removes the leaf and the parents this guard created
    /// (parents still used by someone else stay).
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        if !self.dir.exists() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let procs = self.procs();
            if procs.is_empty() {
                match fs::remove_dir(&self.dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    // EBUSY while the last task is still being torn down.
                    Err(_) if Instant::now() < deadline => {}
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("removing cgroup {}", self.dir.display()));
                    }
                }
            } else {
                // cgroup.kill (5.14+) takes everything down, or SIGKILL one by one.
                if fs::write(self.dir.join("cgroup.kill"), "1").is_err() {
                    for pid in &procs {
                        // SAFETY: kill has no memory preconditions.
                        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
                    }
                }
                if Instant::now() >= deadline {
                    bail!(
                        "cgroup {} still holds processes {procs:?} after 10 s",
                        self.dir.display()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for dir in self.created.iter().rev().skip(1) {
            // Parents we created; another user (a test's runc container) may be in them now.
            let _ = fs::remove_dir(dir);
        }
        self.created.clear();
        Ok(())
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        if !self.removed
            && let Err(e) = self.teardown()
        {
            eprintln!("bench: cleanup: {e:#}");
        }
    }
}

/// kubelet's on-node metadata for a pod-shaped cgroup: `<D>/pods/<ns>_<pod>_<uid>/<c>/0.log`
/// and the symlink `<D>/containers/<pod>_<ns>_<c>-<id>.log` to it, so the sensor names it.
pub fn write_kubelet_metadata(logs: &Path, cg: &PodCgroup, names: &PodNames) -> Result<()> {
    let dir = logs
        .join("pods")
        .join(format!("{}_{}_{}", names.namespace, names.pod, cg.pod_uid))
        .join(names.container);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = dir.join("0.log");
    fs::write(&log, "").with_context(|| format!("writing {}", log.display()))?;
    let containers = logs.join("containers");
    fs::create_dir_all(&containers)
        .with_context(|| format!("creating {}", containers.display()))?;
    let link = containers.join(format!(
        "{}_{}_{}-{}.log",
        names.pod, names.namespace, names.container, cg.container_id
    ));
    std::os::unix::fs::symlink(&log, &link)
        .with_context(|| format!("linking {}", link.display()))?;
    Ok(())
}

/// A scratch directory for tool outputs, removed at the end (kept if SENSOR_BENCH_KEEP is set).
pub struct WorkDir {
    pub path: PathBuf,
}

impl WorkDir {
    pub fn create() -> Result<WorkDir> {
        let path = std::env::temp_dir().join(format!(
            "sensor-bench-{}-{:08x}",
            std::process::id(),
            random_u64() as u32
        ));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::env::var_os("SENSOR_BENCH_KEEP").is_some() {
            eprintln!("bench: outputs kept in {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no memory preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/<pid>/stat).
pub fn cpu_ticks(pid: &str) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The comm field may hold spaces and parentheses: fields start after the last ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')' field index 0 is field 3 (state); utime is field 14, stime 15.
    let utime: u64 = fields
        .get(11)
        .and_then(|v| v.parse().ok())
        .context("no utime in /proc/<pid>/stat")?;
    let stime: u64 = fields
        .get(12)
        .and_then(|v| v.parse().ok())
        .context("no stime in /proc/<pid>/stat")?;
    Ok(utime + stime)
}

/// A `Vm*` line of /proc/<pid>/status, in KiB.
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Busy ticks of the whole machine (all CPUs) from the first line of /proc/stat.
pub fn machine_busy_ticks() -> Result<u64> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let cpu = stat.lines().next().context("empty /proc/stat")?;
    let v: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is already in user)
    if v.len() < 8 {
        bail!("unexpected /proc/stat cpu line: {cpu}");
    }
    Ok(v[0] + v[1] + v[2] + v[5] + v[6] + v[7])
}

/// CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: zeroed cpu_set_t is valid; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Names of CPU-heavy or probe-loading processes running now (other than `ours`): compilers,
/// container runtimes, other sensors or bpftrace. Shown in the report as sources of noise.
pub fn busy_neighbours(ours: &[u32]) -> BTreeSet<String> {
    const WATCH: &[&str] = &[
        "rustc",
        "cargo",
        "cc1",
        "ld",
        "bpf-linker",
        "clippy-driver",
        "runc",
        "sensor",
        "sensor-dev",
        "bpftrace",
        "python3",
    ];
    let me = std::process::id();
    let mut seen = BTreeSet::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return seen;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || ours.contains(&pid) {
            continue;
        }
        if let Ok(comm) = fs::read_to_string(entry.path().join("comm")) {
            let comm = comm.trim();
            if WATCH.contains(&comm) {
                seen.insert(comm.to_string());
            }
        }
    }
    seen
}

/// Processes other than `ours` holding a BPF program of a tracing kind (tracepoint, raw
/// tracepoint, kprobe, perf event, fentry/fexit): someone else's probe that may sit on the
/// syscall path and slow every configuration alike (e.g. a test run of the sensor).
pub fn foreign_probes(ours: &[u32]) -> BTreeSet<String> {
    // BPF_PROG_TYPE_KPROBE, TRACEPOINT, PERF_EVENT, RAW_TRACEPOINT, RAW_TRACEPOINT_WRITABLE, TRACING
    const TRACING_TYPES: &[u32] = &[2, 5, 7, 17, 24, 26];
    let me = std::process::id();
    let mut found = BTreeSet::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || ours.contains(&pid) {
            continue;
        }
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let is_prog =
                fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:bpf-prog");
            if !is_prog {
                continue;
            }
            let info = fs::read_to_string(entry.path().join("fdinfo").join(fd.file_name()))
                .unwrap_or_default();
            let prog_type = info
                .lines()
                .find_map(|l| l.strip_prefix("prog_type:"))
                .and_then(|v| v.trim().parse::<u32>().ok());
            if prog_type.is_some_and(|t| TRACING_TYPES.contains(&t)) {
                let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                found.insert(format!("{} (pid {pid})", comm.trim()));
                break;
            }
        }
    }
    found
}

/// Kernel, CPU model and count, date: the header of the report.
pub struct Machine {
    pub kernel: String,
    pub cpu_model: String,
    pub cores: usize,
    pub date: String,
    pub cgroup2: String,
    pub bpftrace: String,
}

impl Machine {
    pub fn read(cg: &Cgroup2) -> Machine {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
            .max(1);
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let bpftrace = std::process::Command::new("bpftrace")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string());
        Machine {
            kernel,
            cpu_model,
            cores,
            date: utc_now(),
            cgroup2: cg.mount_point.display().to_string(),
            bpftrace,
        }
    }
}

/// `YYYY-MM-DD HH:MM UTC` without a calendar crate (days-to-civil, H. Hinnant).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Waits until `f` holds, polling; false on timeout.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        nap(Duration::from_millis(100))?;
    }
}
