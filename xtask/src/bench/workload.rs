//! The workloads, run as `xtask bench-worker <cgroup dir> <workload> ...` (a hidden subcommand)
//! so that each one joins its pod-shaped cgroup *before* it starts: the getppid loop, the exec
//! flood and the connect flood. Each prints one JSON line with what it did. Also the TCP
//! listeners the connect flood talks to (in the bench process, outside the flood's cgroup).

use std::{
    ffi::CString,
    fs,
    io::ErrorKind,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::{fd::AsRawFd, unix::process::CommandExt},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use super::system::{clock_ticks_per_sec, cpu_ticks, machine_busy_ticks};

/// Entry point of the hidden `bench-worker` subcommand.
pub fn worker(args: &[String]) -> Result<()> {
    let usage = "usage: bench-worker <cgroup-dir> (getppid <calls> <cpu> | exec <count> <parallel> | connect <rate> <secs> <threads> <port,...> | exec-paced <rate> <path>...)";
    let [cgroup, workload, rest @ ..] = args else {
        bail!("{usage}")
    };
    let num = |i: usize| -> Result<u64> {
        rest.get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{usage}: argument {} of {workload}", i + 1))
    };
    // Decide everything before joining the cgroup, so that only the workload runs there. Like
    // a container runtime, join first, then exec the workload: the sensor counts what a new
    // container's cgroup does before its first exec as the runtime's setup, not the workload's.
    if cgroup != JOINED {
        join_cgroup(Path::new(cgroup))?;
        let exe = std::env::current_exe().context("the worker's own path")?;
        let err = std::process::Command::new(exe)
            .arg("bench-worker")
            .arg(JOINED)
            .arg(workload)
            .args(rest)
            .exec();
        bail!("exec of the worker in its cgroup: {err}");
    }
    let result = match workload.as_str() {
        "getppid" => {
            let (calls, cpu) = (num(0)?, num(1)? as usize);
            pin_to_cpu(cpu)?;
            getppid_loop(calls)?
        }
        "exec" => {
            let (count, parallel) = (num(0)?, num(1)? as usize);
            let true_bin = CString::new("/bin/true")?;
            exec_flood(&true_bin, count, parallel.max(1))?
        }
        "connect" => {
            let (rate, secs, threads) = (num(0)?, num(1)?, num(2)?.max(1));
            let ports: Vec<u16> = rest
                .get(3)
                .context(usage)?
                .split(',')
                .map(|p| p.parse().context("port"))
                .collect::<Result<_>>()?;
            ensure!(!ports.is_empty() && rate > 0, "{usage}");
            connect_flood(rate, secs, threads as usize, &ports)?
        }
        "exec-paced" => {
            let rate = num(0)?;
            let paths: Vec<CString> = rest[1..]
                .iter()
                .map(|p| CString::new(p.as_str()).context("path with a NUL byte"))
                .collect::<Result<_>>()?;
            ensure!(rate > 0 && !paths.is_empty(), "{usage}");
            let stamps = SharedStamps::new(paths.len())?;
            exec_paced(&paths, rate, &stamps)?
        }
        other => bail!("unknown workload `{other}`; {usage}"),
    };
    println!("{result}");
    Ok(())
}

/// The cgroup argument of the worker once it has joined its cgroup and re-executed itself.
const JOINED: &str = "-";

fn join_cgroup(dir: &Path) -> Result<()> {
    let pid = std::process::id();
    fs::write(dir.join("cgroup.procs"), format!("{pid}\n"))
        .with_context(|| format!("moving pid {pid} into {}", dir.display()))?;
    let leaf = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let mine = fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    ensure!(
        mine.lines()
            .any(|l| l.starts_with("0::") && l.ends_with(leaf)),
        "not in {} after joining it: {mine}",
        dir.display()
    );
    Ok(())
}

fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET stays in bounds for cpu < CPU_SETSIZE.
    unsafe {
        ensure!(cpu < libc::CPU_SETSIZE as usize, "cpu {cpu} out of range");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("pinning to cpu {cpu}"));
        }
    }
    Ok(())
}

/// `clock_gettime(clock)` in nanoseconds, without allocation (measured loops call it).
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// A plain counter loop: xtask is built without optimisations, and a `for` over a range would
/// add iterator calls to every syscall.
#[inline(never)]
fn getppid_n(n: u64) {
    let mut i = 0;
    while i < n {
        // SAFETY: getppid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
        i += 1;
    }
}

/// `calls` getppid syscalls in a tight loop, timed with CLOCK_MONOTONIC after a warm-up. Also
/// reports how busy the rest of the machine was meanwhile (CPU time not spent by this loop).
fn getppid_loop(calls: u64) -> Result<Value> {
    getppid_n((calls / 10).clamp(10_000, 500_000));
    let busy0 = machine_busy_ticks()?;
    let own0 = cpu_ticks("self")?;
    let t0 = monotonic_ns();
    getppid_n(calls);
    let t1 = monotonic_ns();
    let own1 = cpu_ticks("self")?;
    let busy1 = machine_busy_ticks()?;
    let secs = (t1 - t0) as f64 / 1e9;
    let others = (busy1 - busy0).saturating_sub(own1 - own0) as f64 / clock_ticks_per_sec();
    Ok(json!({
        "calls": calls,
        "ns_per_call": (t1 - t0) as f64 / calls as f64,
        "secs": secs,
        "background_cores": others / secs,
    }))
}

/// Reaps one child; counts it as ok if it exited 0.
fn reap(ok: &mut u64, failed: &mut u64) -> Result<()> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out-pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r > 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(e).context("waitpid");
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        *ok += 1;
    } else {
        *failed += 1;
    }
    Ok(())
}

/// fork + execve(/bin/true) `count` times, `parallel` children at a time, as fast as possible.
/// A child that exits 0 has exec'd: `exec_ok` is the number of execs generated.
fn exec_flood(path: &CString, count: u64, parallel: usize) -> Result<Value> {
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null()];
    let (mut started, mut running, mut ok, mut failed) = (0u64, 0usize, 0u64, 0u64);
    let t0 = monotonic_ns();
    while started < count {
        if running >= parallel {
            reap(&mut ok, &mut failed)?;
            running -= 1;
        }
        // SAFETY: single-threaded process; the child only calls execve and _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: argv/envp are NULL-terminated arrays of valid C strings.
            unsafe {
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
        }
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            if running > 0 && e.raw_os_error() == Some(libc::EAGAIN) {
                reap(&mut ok, &mut failed)?;
                running -= 1;
                continue;
            }
            return Err(e).context("fork");
        }
        started += 1;
        running += 1;
    }
    while running > 0 {
        reap(&mut ok, &mut failed)?;
        running -= 1;
    }
    let secs = (monotonic_ns() - t0) as f64 / 1e9;
    Ok(
        json!({ "started": started, "exec_ok": ok, "failed": failed, "secs": secs, "rate": started as f64 / secs }),
    )
}

/// u64 slots in memory shared with the children (MAP_SHARED): a child writes its own time stamp
/// there right before `execve`, without a syscall (`clock_gettime` is in the vDSO).
struct SharedStamps {
    ptr: *mut u64,
    len: usize,
}

impl SharedStamps {
    fn new(len: usize) -> Result<SharedStamps> {
        let bytes = len.max(1) * std::mem::size_of::<u64>();
        // SAFETY: an anonymous shared mapping, no file, checked for MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mmap for the time stamps");
        }
        Ok(SharedStamps {
            ptr: ptr.cast(),
            len,
        })
    }

    fn get(&self, i: usize) -> u64 {
        assert!(i < self.len);
        // SAFETY: in bounds; children that wrote it have exited (reaped) before we read.
        unsafe { std::ptr::read_volatile(self.ptr.add(i)) }
    }
}

fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// fork + execve of each path in turn (argv = [path], empty environment), paced at `rate` per
/// second, each child reaped before the next starts. Each child stamps CLOCK_REALTIME into
/// `stamps` right before its `execve`: the trigger times of the detection-latency bench.
fn exec_paced(paths: &[CString], rate: u64, stamps: &SharedStamps) -> Result<Value> {
    let envp = [std::ptr::null()];
    let (mut ok, mut failed) = (0u64, 0u64);
    let t0 = Instant::now();
    for (i, path) in paths.iter().enumerate() {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let argv = [path.as_ptr(), std::ptr::null()];
        // SAFETY: single-threaded process; the child only reads the clock, stores to the shared
        // mapping and calls execve or _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: i < stamps.len (one slot per path); argv/envp are NULL-terminated arrays
            // of valid C strings.
            unsafe {
                std::ptr::write_volatile(stamps.ptr.add(i), realtime_ns());
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
        }
        if pid < 0 {
            return Err(std::io::Error::last_os_error()).context("fork");
        }
        reap(&mut ok, &mut failed)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let stamps: Vec<u64> = (0..paths.len()).map(|i| stamps.get(i)).collect();
    Ok(
        json!({ "started": paths.len(), "exec_ok": ok, "failed": failed, "secs": secs, "stamps_ns": stamps }),
    )
}

/// TCP connects to 127.0.0.1, round-robin over `ports`, paced at `rate` per second for `secs`
/// seconds over `threads` threads; each connection is closed right away.
fn connect_flood(rate: u64, secs: u64, threads: usize, ports: &[u16]) -> Result<Value> {
    let total = rate * secs;
    let interval = Duration::from_secs_f64(threads as f64 / rate as f64);
    let t0 = Instant::now();
    let results: Vec<(u64, u64, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let (mut ok, mut failed, mut first_error) = (0u64, 0u64, None);
                    let mine =
                        (total / threads as u64) + u64::from((t as u64) < total % threads as u64);
                    for i in 0..mine {
                        let due = t0 + interval.mul_f64(i as f64);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        let port =
                            ports[((i * threads as u64 + t as u64) % ports.len() as u64) as usize];
                        match TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
                            Ok(stream) => {
                                ok += 1;
                                drop(stream);
                            }
                            Err(e) => {
                                failed += 1;
                                first_error.get_or_insert_with(|| e.to_string());
                            }
                        }
                    }
                    (ok, failed, first_error)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, 0, Some("thread panicked".into()))))
            .collect()
    });
    let secs = t0.elapsed().as_secs_f64();
    let ok: u64 = results.iter().map(|r| r.0).sum();
    let failed: u64 = results.iter().map(|r| r.1).sum();
    let first_error = results.iter().find_map(|r| r.2.clone());
    Ok(
        json!({ "attempted": total, "ok": ok, "failed": failed, "first_error": first_error, "secs": secs, "rate": ok as f64 / secs }),
    )
}

/// Loopback TCP listeners that accept and close, on one thread (poll over all sockets).
pub struct Listeners {
    pub ports: Vec<u16>,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Listeners {
    pub fn start(count: usize) -> Result<Listeners> {
        let mut sockets = Vec::new();
        for _ in 0..count {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .context("binding a loopback listener")?;
            l.set_nonblocking(true)?;
            // A deep accept queue: a burst must not turn into SYN retransmits (1 s stalls).
            // SAFETY: listen on a socket we own.
            unsafe { libc::listen(l.as_raw_fd(), 4096) };
            sockets.push(l);
        }
        let ports = sockets
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<_, _>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let (stop2, accepted2) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            let mut fds: Vec<libc::pollfd> = sockets
                .iter()
                .map(|l| libc::pollfd {
                    fd: l.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            while !stop2.load(Ordering::Relaxed) {
                // SAFETY: fds is a valid array of pollfd for its length.
                let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
                if n <= 0 {
                    continue;
                }
                for (l, fd) in sockets.iter().zip(&fds) {
                    if fd.revents & libc::POLLIN == 0 {
                        continue;
                    }
                    while let Ok((stream, _)) = l.accept() {
                        accepted2.fetch_add(1, Ordering::Relaxed);
                        drop(stream);
                    }
                }
            }
        });
        Ok(Listeners {
            ports,
            stop,
            accepted,
            thread: Some(thread),
        })
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
