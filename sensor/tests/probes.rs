//! One test per kernel program of the probe table, against the running kernel (aya's
//! integration tests): load the object, attach that program alone through the attach manager,
//! trigger its hook, see its effect (a ring-buffer record or a map change), detach it, trigger
//! again and see none. The uprobe program (not in the table: attached while running) is tested
//! the same way on a small C program compiled with gcc at test time.
//!
//! No sleeps: every hook here runs synchronously in the triggering syscall (or, for a SYN on
//! loopback, before `connect` returns), so once the trigger has returned, its record is in the
//! ring buffer or will never be. Each test loads its own object (its own maps and ring buffer),
//! so the tests run in parallel; records of other processes are told apart by pid or port.
//!
//! Needs root (`cargo xtask test` runs it as root); a test without privileges fails, it is
//! never skipped.

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use aya::maps::{Array, HashMap, MapData, RingBuf};
use sensor::capture::{
    AttachmentId, KernelEvent, LoadOptions, ProbeStatus, Probes, Target, UProbeLocation,
    compat::{Hook, PROBES, ProbeSpec},
    decode::{decode, opened_path},
    kernel::mounts::cgroup2_mount,
    loader::{attach_spec, default_btf_path},
    patterns::SensitivePattern,
};
use sensor_common::{FlowKey, FlowOrigin, FlowStats, SyscallSet, flow_direction, names};

/// How long a record that should come may take (it is normally there at once).
const COMES: Duration = Duration::from_secs(5);

struct Kernel {
    probes: Probes,
    ring: RingBuf<MapData>,
}

fn cgroup2_root() -> PathBuf {
    cgroup2_mount(Path::new("/proc"))
        .expect("reading /proc/self/mountinfo")
        .expect("cgroup2 is mounted")
        .mount_point
}

/// This process's cgroup v2 id: the inode of its cgroup directory.
fn own_cgroup_id() -> u64 {
    let text = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup v2 line in /proc/self/cgroup");
    let dir = cgroup2_root().join(path.trim_start_matches('/'));
    std::fs::metadata(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .ino()
}

fn options(file_patterns: Vec<SensitivePattern>) -> LoadOptions {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the kernel program tests load eBPF programs: run them as root (`cargo xtask test`)"
    );
    LoadOptions {
        btf_path: default_btf_path().to_path_buf(),
        cgroup2_root: cgroup2_root(),
        ring_buffer_bytes: 1 << 20,
        file_patterns,
    }
}

/// The kernel object loaded with nothing attached, its ring buffer taken.
fn load(file_patterns: Vec<SensitivePattern>) -> Kernel {
    let mut probes = Probes::load_unattached(&options(file_patterns))
        .unwrap_or_else(|e| panic!("loading the kernel object: {e}"));
    let map = probes
        .manager
        .ebpf_mut()
        .take_map(names::RINGBUF_EVENTS)
        .expect("ring buffer map");
    let ring = RingBuf::try_from(map).expect("ring buffer");
    Kernel { probes, ring }
}

fn spec(program: &str) -> &'static ProbeSpec {
    PROBES
        .iter()
        .find(|s| s.program == program)
        .unwrap_or_else(|| panic!("{program} is not in the probe table"))
}

impl Kernel {
    /// Attaches one program of the table (or its fallback) and insists it attached: every
    /// program of the table attaches on the kernels the tests run on (fentry falls back to
    /// its tracepoint where trampolines are refused; the status says which).
    fn attach(&mut self, program: &str) -> (ProbeStatus, AttachmentId) {
        let (status, id) = attach_spec(&mut self.probes.manager, spec(program));
        let id = id.unwrap_or_else(|| {
            panic!(
                "{program} did not attach on this kernel: {}",
                status.error.as_deref().unwrap_or_default()
            )
        });
        assert!(status.attached && status.error.is_none(), "{status:?}");
        (status, id)
    }

    fn detach(&mut self, id: AttachmentId) {
        self.probes
            .manager
            .detach(id)
            .unwrap_or_else(|e| panic!("detaching {id}: {e}"));
    }

    /// Every record now in the ring buffer, decoded.
    fn drain(&mut self) -> Vec<KernelEvent> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            out.push(decode(&item).unwrap_or_else(|e| panic!("malformed record: {e}")));
        }
        out
    }

    /// Waits for a record that `pick` accepts; panics with what was seen instead.
    fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&KernelEvent) -> Option<T>) -> T {
        let deadline = Instant::now() + COMES;
        let mut seen = 0;
        loop {
            for event in self.drain() {
                seen += 1;
                if let Some(found) = pick(&event) {
                    return found;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {what} record within {COMES:?} ({seen} other records)"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asserts that no record `pick` accepts is in the ring buffer now (the trigger has
    /// returned: a record would already be there).
    fn expect_none(&mut self, what: &str, mut pick: impl FnMut(&KernelEvent) -> bool) {
        let found = self.drain().iter().filter(|e| pick(e)).count();
        assert_eq!(found, 0, "{what}: records after detach");
    }

    fn map<'a, M>(&'a mut self, name: &str) -> M
    where
        M: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
    {
        let map = self
            .probes
            .manager
            .ebpf_mut()
            .map_mut(name)
            .unwrap_or_else(|| panic!("map {name}"));
        M::try_from(map).unwrap_or_else(|e| panic!("map {name}: {e}"))
    }
}

/// Runs `program args` to completion; its pid.
fn run(program: &str, args: &[&str]) -> u32 {
    let mut child = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// --- process programs -------------------------------------------------------------------------

#[test]
fn sched_process_fork() {
    let mut k = load(Vec::new());
    let (_, id) = k.attach("sched_process_fork");
    let child = run("/bin/true", &[]);
    let parent = k.expect("fork", |e| match e {
        KernelEvent::Fork(f) if f.child_pid == child => Some(f.header.pid),
        _ => None,
    });
    assert_eq!(parent, std::process::id());
    k.detach(id);
    let child = run("/bin/true", &[]);
    k.expect_none(
        "fork",
        |e| matches!(e, KernelEvent::Fork(f) if f.child_pid == child),
    );
}

#[test]
fn sched_process_exec() {
    let mut k = load(Vec::new());
    let (_, id) = k.attach("sched_process_exec");
    let marker = unique("exec-marker");
    let child = run("/bin/echo", &[&marker]);
    let args = k.expect("exec", |e| match e {
        KernelEvent::Exec(x) if x.header.pid == child => Some(sensor::capture::decode::split_args(
            &x.args[..x.args_len as usize],
        )),
        _ => None,
    });
    assert_eq!(args, ["/bin/echo", marker.as_str()]);
    k.detach(id);
    let child = run("/bin/echo", &[&marker]);
    k.expect_none(
        "exec",
        |e| matches!(e, KernelEvent::Exec(x) if x.header.pid == child),
    );
}

#[test]
fn sched_process_exit() {
    let mut k = load(Vec::new());
    let (_, id) = k.attach("sched_process_exit");
    let child = run("/bin/sh", &["-c", "exit 3"]);
    let code = k.expect("exit", |e| match e {
        KernelEvent::Exit(x) if x.header.pid == child => Some(x.exit_code),
        _ => None,
    });
    assert_eq!(code, 3 << 8);
    k.detach(id);
    let child = run("/bin/sh", &["-c", "exit 3"]);
    k.expect_none(
        "exit",
        |e| matches!(e, KernelEvent::Exit(x) if x.header.pid == child),
    );
}

// --- cgroup programs --------------------------------------------------------------------------

/// A cgroup directory under the cgroup2 root, removed on drop.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn create() -> TestCgroup {
        let path = cgroup2_root().join(unique("probe-test"));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TestCgroup(path)
    }

    fn name(&self) -> String {
        self.0.file_name().unwrap().to_string_lossy().into_owned()
    }

    fn remove(self) {
        std::fs::remove_dir(&self.0).unwrap_or_else(|e| panic!("rmdir {}: {e}", self.0.display()));
        std::mem::forget(self);
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn cgroup_record(e: &KernelEvent, mkdir: bool, name: &str) -> Option<u64> {
    let c = match (e, mkdir) {
        (KernelEvent::CgroupMkdir(c), true) | (KernelEvent::CgroupRmdir(c), false) => c,
        _ => return None,
    };
    let path = sensor::capture::decode::c_str(&c.path[..c.path_len as usize]);
    path.ends_with(&format!("/{name}")).then_some(c.id)
}

#[test]
fn cgroup_mkdir() {
    let mut k = load(Vec::new());
    let (_, id) = k.attach("cgroup_mkdir");
    let cg = TestCgroup::create();
    let name = cg.name();
    let cgroup_id = k.expect("cgroup_mkdir", |e| cgroup_record(e, true, &name));
    assert_eq!(cgroup_id, std::fs::metadata(&cg.0).unwrap().ino());
    k.detach(id);
    let again = TestCgroup::create();
    let name = again.name();
    k.expect_none("cgroup_mkdir", |e| cgroup_record(e, true, &name).is_some());
    cg.remove();
    again.remove();
}

#[test]
fn cgroup_rmdir() {
    let mut k = load(Vec::new());
    let cg = TestCgroup::create();
    let (name, inode) = (cg.name(), std::fs::metadata(&cg.0).unwrap().ino());
    let (_, id) = k.attach("cgroup_rmdir");
    cg.remove();
    let cgroup_id = k.expect("cgroup_rmdir", |e| cgroup_record(e, false, &name));
    assert_eq!(cgroup_id, inode);
    k.detach(id);
    let again = TestCgroup::create();
    let name = again.name();
    again.remove();
    k.expect_none("cgroup_rmdir", |e| cgroup_record(e, false, &name).is_some());
}

// --- syscall sets -----------------------------------------------------------------------------

#[test]
fn sys_enter() {
    let mut k = load(Vec::new());
    let cgroup_id = own_cgroup_id();
    let nr = libc::SYS_getppid as usize;
    let bit = |set: &SyscallSet| set.native[nr / 64] & (1 << (nr % 64)) != 0;
    let (_, id) = k.attach("sys_enter");
    // SAFETY: getppid has no preconditions.
    unsafe { libc::getppid() };
    let slot = {
        let slots: HashMap<&mut MapData, u64, u32> = k.map(names::MAP_SLOT_OF_CGROUP);
        slots
            .get(&cgroup_id, 0)
            .unwrap_or_else(|e| panic!("no syscall-set slot for this cgroup ({cgroup_id}): {e}"))
    };
    {
        let sets: Array<&mut MapData, SyscallSet> = k.map(names::MAP_SYSCALL_SETS);
        assert!(bit(&sets.get(&slot, 0).unwrap()), "getppid not recorded");
    }
    k.detach(id);
    let mut sets: Array<&mut MapData, SyscallSet> = k.map(names::MAP_SYSCALL_SETS);
    sets.set(slot, SyscallSet::default(), 0).unwrap();
    // SAFETY: as above.
    unsafe { libc::getppid() };
    assert_eq!(
        sets.get(&slot, 0).unwrap(),
        SyscallSet::default(),
        "syscalls recorded after detach"
    );
}

// --- sensitive file opens ---------------------------------------------------------------------

/// A directory whose files are sensitive (its name is the anchor), with two files written
/// before any probe is attached (writing them is an open too), removed on drop.
struct SensitiveDir {
    dir: PathBuf,
    first: PathBuf,
    second: PathBuf,
}

impl SensitiveDir {
    fn create() -> SensitiveDir {
        let dir = std::env::temp_dir().join(unique("probe-secrets"));
        std::fs::create_dir(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let file = |name: &str| {
            let path = dir.join(name);
            std::fs::write(&path, b"secret").unwrap();
            path
        };
        SensitiveDir {
            first: file("first"),
            second: file("second"),
            dir,
        }
    }

    fn pattern(&self) -> SensitivePattern {
        SensitivePattern::parse(&format!("{}/", self.dir.display())).unwrap()
    }
}

impl Drop for SensitiveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The fd of a file-open record for `path` opened by this process.
fn file_record(e: &KernelEvent, path: &Path) -> Option<u32> {
    match e {
        KernelEvent::FileOpen(f)
            if f.header.pid == std::process::id() && opened_path(f) == path.to_string_lossy() =>
        {
            Some(f.fd)
        }
        _ => None,
    }
}

/// Opens a sensitive file while attachment `id` is in place, then another after detaching it;
/// the first open's record's fd.
fn file_open_seen_then_not(k: &mut Kernel, dir: &SensitiveDir, id: AttachmentId) -> u32 {
    drop(std::fs::File::open(&dir.first).unwrap());
    let fd = k.expect("file open", |e| file_record(e, &dir.first));
    k.detach(id);
    drop(std::fs::File::open(&dir.second).unwrap());
    k.expect_none("file open", |e| file_record(e, &dir.second).is_some());
    fd
}

/// The table entry: fentry where the kernel allows trampolines, else its tracepoint fallback,
/// and the status says which.
#[test]
fn file_open() {
    let dir = SensitiveDir::create();
    let mut k = load(vec![dir.pattern()]);
    let spec = spec("file_open");
    let fallback = spec.fallback.expect("file_open has a fallback");
    let (status, id) = k.attach("file_open");
    let fell_back = status.hook == fallback.hook.describe();
    if fell_back {
        let note = status.note.as_deref().unwrap_or_default();
        assert!(
            note.contains(&spec.hook.describe()) && note.contains("refused"),
            "a fallback says why: {status:?}"
        );
    } else {
        assert_eq!(status.hook, spec.hook.describe());
        assert!(status.note.is_none(), "{status:?}");
    }
    eprintln!("file_open attached as {}", status.hook);
    let fd = file_open_seen_then_not(&mut k, &dir, id);
    // The fentry hook runs before the descriptor exists; the syscall-exit one after.
    assert_eq!(fd == u32::MAX, !fell_back, "fd {fd} from {}", status.hook);
}

/// The fallback on its own (it is in the table as `file_open`'s fallback).
#[test]
fn sys_exit() {
    let dir = SensitiveDir::create();
    let mut k = load(vec![dir.pattern()]);
    let fallback = spec("file_open")
        .fallback
        .expect("file_open has a fallback");
    let id = k
        .probes
        .manager
        .attach(fallback.program, Target::Hook(fallback.hook))
        .unwrap_or_else(|e| panic!("{}: {e}", fallback.program));
    let fd = file_open_seen_then_not(&mut k, &dir, id);
    assert_ne!(fd, u32::MAX, "the exit hook sees the returned descriptor");
}

// --- network programs -------------------------------------------------------------------------

fn flow(e: &KernelEvent, origin: FlowOrigin, pick: impl Fn(&FlowKey) -> bool) -> Option<FlowKey> {
    match e {
        KernelEvent::Flow(f) if f.origin == origin as u32 && pick(&f.key) => Some(f.key),
        _ => None,
    }
}

fn listener(v6: bool) -> TcpListener {
    if v6 {
        TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).expect("bind [::1]")
    } else {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1")
    }
}

fn connect_test(program: &str, v6: bool) {
    let mut k = load(Vec::new());
    let (_, id) = k.attach(program);
    let l = listener(v6);
    let port = l.local_addr().unwrap().port();
    drop(TcpStream::connect(l.local_addr().unwrap()).unwrap());
    let (key, pid) = k.expect("connect flow", |e| {
        let key = flow(e, FlowOrigin::Connect, |k| k.remote_port == port)?;
        let KernelEvent::Flow(f) = e else { return None };
        Some((key, f.header.pid))
    });
    assert_eq!(key.protocol, libc::IPPROTO_TCP as u8);
    assert_eq!(key.direction, flow_direction::EGRESS);
    assert_eq!(pid, std::process::id());
    k.detach(id);
    let l = listener(v6);
    let port = l.local_addr().unwrap().port();
    drop(TcpStream::connect(l.local_addr().unwrap()).unwrap());
    k.expect_none("connect flow", |e| {
        flow(e, FlowOrigin::Connect, |k| k.remote_port == port).is_some()
    });
}

#[test]
fn connect4() {
    connect_test("connect4", false);
}

#[test]
fn connect6() {
    connect_test("connect6", true);
}

fn udp_pair(v6: bool) -> (UdpSocket, UdpSocket) {
    let any: SocketAddr = if v6 {
        (Ipv6Addr::LOCALHOST, 0).into()
    } else {
        (Ipv4Addr::LOCALHOST, 0).into()
    };
    (UdpSocket::bind(any).unwrap(), UdpSocket::bind(any).unwrap())
}

fn sendmsg_test(program: &str, v6: bool) {
    let mut k = load(Vec::new());
    let (_, id) = k.attach(program);
    let (receiver, sender) = udp_pair(v6);
    let port = receiver.local_addr().unwrap().port();
    sender
        .send_to(b"ping", receiver.local_addr().unwrap())
        .unwrap();
    let key = k.expect("udp send flow", |e| {
        flow(e, FlowOrigin::UdpSend, |k| k.remote_port == port)
    });
    assert_eq!(key.protocol, libc::IPPROTO_UDP as u8);
    k.detach(id);
    let (receiver, sender) = udp_pair(v6);
    let port = receiver.local_addr().unwrap().port();
    sender
        .send_to(b"ping", receiver.local_addr().unwrap())
        .unwrap();
    k.expect_none("udp send flow", |e| {
        flow(e, FlowOrigin::UdpSend, |k| k.remote_port == port).is_some()
    });
}

#[test]
fn sendmsg4() {
    sendmsg_test("sendmsg4", false);
}

#[test]
fn sendmsg6() {
    sendmsg_test("sendmsg6", true);
}

/// A SYN reaching a listener opens the accept side of a flow.
#[test]
fn skb_ingress() {
    let mut k = load(Vec::new());
    let (_, id) = k.attach("skb_ingress");
    let l = listener(false);
    let port = l.local_addr().unwrap().port();
    drop(TcpStream::connect(l.local_addr().unwrap()).unwrap());
    let key = k.expect("accept flow", |e| {
        flow(e, FlowOrigin::Accept, |k| k.local_port == port)
    });
    assert_eq!(key.direction, flow_direction::INGRESS);
    assert_eq!(key.cgroup_id, own_cgroup_id());
    k.detach(id);
    let l = listener(false);
    let port = l.local_addr().unwrap().port();
    drop(TcpStream::connect(l.local_addr().unwrap()).unwrap());
    k.expect_none("accept flow", |e| {
        flow(e, FlowOrigin::Accept, |k| k.local_port == port).is_some()
    });
}

/// Packets sent on a known flow count on it.
#[test]
fn skb_egress() {
    let mut k = load(Vec::new());
    let (receiver, sender) = udp_pair(false);
    let port = receiver.local_addr().unwrap().port();
    let key = FlowKey {
        cgroup_id: own_cgroup_id(),
        remote_addr: Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets(),
        remote_port: port,
        local_port: 0,
        protocol: libc::IPPROTO_UDP as u8,
        direction: flow_direction::EGRESS,
        _pad: [0; 2],
    };
    {
        let mut flows: HashMap<&mut MapData, FlowKey, FlowStats> = k.map(names::MAP_FLOWS);
        flows.insert(key, FlowStats::default(), 0).unwrap();
    }
    let (_, id) = k.attach("skb_egress");
    let to = receiver.local_addr().unwrap();
    sender.send_to(b"ping", to).unwrap();
    let sent = |k: &mut Kernel| {
        let flows: HashMap<&mut MapData, FlowKey, FlowStats> = k.map(names::MAP_FLOWS);
        flows.get(&key, 0).unwrap().packets_sent
    };
    assert_eq!(sent(&mut k), 1, "one datagram sent on the flow");
    k.detach(id);
    sender.send_to(b"ping", to).unwrap();
    assert_eq!(sent(&mut k), 1, "packets counted after detach");
}

// --- the manager itself -----------------------------------------------------------------------

/// Attachments come and go while the object stays loaded: one program attached twice runs
/// twice, and each detach removes exactly one attachment.
#[test]
fn attachments_come_and_go() {
    let mut k = load(Vec::new());
    let manager = &mut k.probes.manager;
    let hook = Target::Hook(Hook::RawTracepoint("sched_process_exec"));
    let first = manager.attach("sched_process_exec", hook.clone()).unwrap();
    let second = manager.attach("sched_process_exec", hook).unwrap();
    assert_ne!(first, second);
    assert_eq!(manager.attachments().count(), 2);
    let execs = |k: &mut Kernel| {
        let child = run("/bin/true", &[]);
        // Every record of the exec is in the ring buffer once the child has run.
        k.drain()
            .iter()
            .filter(|e| matches!(e, KernelEvent::Exec(x) if x.header.pid == child))
            .count()
    };
    assert_eq!(execs(&mut k), 2);
    k.detach(first);
    assert_eq!(execs(&mut k), 1);
    let counts = k.probes.manager.counters().read();
    assert_eq!((counts.live, counts.attached, counts.detached), (1, 2, 1));
    k.detach(second);
    let child = run("/bin/true", &[]);
    k.expect_none(
        "exec",
        |e| matches!(e, KernelEvent::Exec(x) if x.header.pid == child),
    );
    assert!(k.probes.manager.detach(second).is_err(), "detached twice");
    let counts = k.probes.manager.counters().read();
    assert_eq!((counts.live, counts.detached, counts.failed), (0, 2, 0));
}

// --- uprobes ---------------------------------------------------------------------------------

/// The uprobe target: a C program whose `probe_target` is called N times per line `N` read from
/// stdin (then it answers `done`). It prints the function's address first, so a test can find
/// the file offset in /proc/<pid>/maps. `noipa` keeps every call: no inlining, no elision.
const UPROBE_TARGET_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
volatile long sink;
__attribute__((noipa)) void probe_target(long i) { sink += i; }
int main(void) {
    char line[32];
    printf("%p\n", (void *)probe_target);
    fflush(stdout);
    while (fgets(line, sizeof line, stdin)) {
        long n = strtol(line, 0, 10);
        for (long i = 0; i < n; i++) probe_target(i);
        printf("done\n");
        fflush(stdout);
    }
    return 0;
}
"#;

/// The target compiled with gcc into its own temp dir: its own inode, so an unscoped uprobe on
/// it sees only the processes of the test that built it.
struct UProbeTarget {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl UProbeTarget {
    fn build() -> UProbeTarget {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("target.c");
        std::fs::write(&source, UPROBE_TARGET_C).unwrap();
        let path = dir.path().join("uprobe-target");
        let out = Command::new("gcc")
            .args(["-O2", "-o"])
            .arg(&path)
            .arg(&source)
            .output()
            .unwrap_or_else(|e| panic!("gcc (the uprobe tests compile their target): {e}"));
        assert!(out.status.success(), "gcc: {out:?}");
        UProbeTarget { _dir: dir, path }
    }

    fn spawn(&self) -> Caller {
        let mut child = Command::new(&self.path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        let address = u64::from_str_radix(line.trim().trim_start_matches("0x"), 16)
            .unwrap_or_else(|e| panic!("address {line:?}: {e}"));
        Caller {
            child,
            stdout,
            address,
        }
    }
}

/// A running target process, calling `probe_target` when told to.
struct Caller {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    address: u64,
}

impl Caller {
    fn pid(&self) -> std::num::NonZeroU32 {
        std::num::NonZeroU32::new(self.child.id()).unwrap()
    }

    /// Calls `probe_target` `n` times and returns once the calls are made (a uprobe runs
    /// synchronously in the call, so every hit is counted by then).
    fn call(&mut self, n: u32) {
        use std::io::{BufRead, Write};
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{n}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "done\n");
    }

    /// The file offset of `probe_target` in the executable, from this process's mappings.
    fn file_offset(&self) -> u64 {
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", self.child.id())).unwrap();
        for line in maps.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (range, offset) = (fields[0], fields[2]);
            let (start, end) = range.split_once('-').unwrap();
            let start = u64::from_str_radix(start, 16).unwrap();
            let end = u64::from_str_radix(end, 16).unwrap();
            if (start..end).contains(&self.address) {
                return self.address - start + u64::from_str_radix(offset, 16).unwrap();
            }
        }
        panic!("{:#x} is in no mapping:\n{maps}", self.address);
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const UPROBE_PROGRAM: &str = "uprobe_hits";
const UPROBE_SYMBOL: &str = "probe_target";

/// Hits counted in the kernel map itself, whatever the manager thinks is attached.
fn raw_hits(k: &mut Kernel, id: AttachmentId) -> Option<u64> {
    let hits: HashMap<&mut MapData, u64, u64> = k.map(names::MAP_UPROBE_HITS);
    hits.get(&id.cookie(), 0).ok()
}

/// Scoped to one process: exactly its calls are counted, another process's calls to the same
/// function are not, and after detach nothing is (not even into a counter put back by hand).
#[test]
fn uprobe_hits_one_process() {
    let mut k = load(Vec::new());
    let target = UProbeTarget::build();
    let mut caller = target.spawn();
    let mut other = target.spawn();
    let id = k
        .probes
        .manager
        .attach_uprobe(
            UPROBE_PROGRAM,
            &target.path,
            UProbeLocation::Symbol(UPROBE_SYMBOL.into()),
            Some(caller.pid()),
        )
        .unwrap_or_else(|e| panic!("attaching the uprobe: {e}"));
    assert_eq!(k.probes.manager.uprobe_hits(id), Some(0));
    caller.call(7);
    assert_eq!(k.probes.manager.uprobe_hits(id), Some(7));
    other.call(5);
    assert_eq!(
        k.probes.manager.uprobe_hits(id),
        Some(7),
        "another process counted"
    );
    caller.call(3);
    assert_eq!(k.probes.manager.uprobe_hits(id), Some(10));

    k.detach(id);
    assert_eq!(k.probes.manager.uprobe_hits(id), None);
    assert_eq!(raw_hits(&mut k, id), None, "counter left in the kernel map");
    // A link left behind would count into its counter again.
    let mut hits: HashMap<&mut MapData, u64, u64> = k.map(names::MAP_UPROBE_HITS);
    hits.insert(id.cookie(), 10, 0).unwrap();
    caller.call(7);
    assert_eq!(raw_hits(&mut k, id), Some(10), "counted after detach");
    let counts = k.probes.manager.counters().read();
    assert_eq!(
        (counts.live, counts.attached, counts.detached, counts.failed),
        (0, 1, 1, 0)
    );
}

/// Unscoped, every process is counted; a second attachment of the same program (by file
/// offset, scoped) has its own counter (its own cookie), and detaching it leaves the first
/// one counting.
#[test]
fn uprobe_hits_every_process_and_by_offset() {
    let mut k = load(Vec::new());
    let target = UProbeTarget::build();
    let mut a = target.spawn();
    let mut b = target.spawn();
    let manager = &mut k.probes.manager;
    let all = manager
        .attach_uprobe(
            UPROBE_PROGRAM,
            &target.path,
            UProbeLocation::Symbol(UPROBE_SYMBOL.into()),
            None,
        )
        .unwrap_or_else(|e| panic!("attaching the unscoped uprobe: {e}"));
    let offset = a.file_offset();
    let one = manager
        .attach_uprobe(
            UPROBE_PROGRAM,
            &target.path,
            UProbeLocation::Offset(offset),
            Some(a.pid()),
        )
        .unwrap_or_else(|e| panic!("attaching the uprobe at offset {offset:#x}: {e}"));
    a.call(3);
    b.call(4);
    let manager = &k.probes.manager;
    assert_eq!(manager.uprobe_hits(all), Some(7));
    assert_eq!(manager.uprobe_hits(one), Some(3));

    k.detach(one);
    a.call(2);
    let manager = &k.probes.manager;
    assert_eq!(manager.uprobe_hits(all), Some(9));
    assert_eq!(manager.uprobe_hits(one), None);
    let counts = manager.counters().read();
    assert_eq!(
        (counts.live, counts.attached, counts.detached, counts.failed),
        (1, 2, 1, 0)
    );
    k.detach(all);
    assert_eq!(k.probes.manager.counters().read().live, 0);
}

/// A symbol the object does not have, or a program that is not a uprobe: refused with the
/// reason, counted, and nothing left behind (no attachment, no counter).
#[test]
fn uprobe_refusals() {
    let mut k = load(Vec::new());
    let target = UProbeTarget::build();
    let manager = &mut k.probes.manager;
    let err = manager
        .attach_uprobe(
            UPROBE_PROGRAM,
            &target.path,
            UProbeLocation::Symbol("no_such_function".into()),
            None,
        )
        .expect_err("a missing symbol");
    assert!(err.text.contains("no_such_function"), "{err}");
    assert!(!err.permission_denied, "{err}");
    let err = manager
        .attach_uprobe(
            "sched_process_exec",
            &target.path,
            UProbeLocation::Symbol(UPROBE_SYMBOL.into()),
            None,
        )
        .expect_err("a raw tracepoint program is not a uprobe");
    assert!(!err.permission_denied, "{err}");
    let counts = manager.counters().read();
    assert_eq!((counts.live, counts.attached, counts.failed), (0, 0, 2));
    assert_eq!(manager.attachments().count(), 0);
    let hits: HashMap<&mut MapData, u64, u64> = k.map(names::MAP_UPROBE_HITS);
    assert_eq!(hits.keys().count(), 0, "hit counters left behind");
}

/// Loading and attaching the whole table through the manager gives one live attachment per
/// attached probe.
#[test]
fn the_table_attaches_through_the_manager() {
    let probes = Probes::load_available(&options(Vec::new()))
        .unwrap_or_else(|e| panic!("loading the kernel object: {e}"));
    assert_eq!(probes.status.len(), PROBES.len());
    let attached = probes.status.iter().filter(|s| s.attached).count();
    let counts = probes.manager.counters().read();
    assert_eq!(counts.live as usize, attached);
    assert_eq!(probes.manager.attachments().count(), attached);
    // A refused preferred hook whose fallback attached counts as one failure.
    let fell_back = probes.status.iter().filter(|s| s.note.is_some()).count();
    let missing = probes.status.len() - attached;
    assert!(counts.failed as usize >= fell_back + missing, "{counts:?}");
}
