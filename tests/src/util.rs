//! Small shared helpers: randomness, unique names, temp dirs, polling, tool checks.
//!
//! Why: every resource a test creates (namespaces, pods, cgroups, netns, runc ids) must be unique
//! so tests can run in parallel (and next to another engineer's run) without colliding, and
//! everything must be polled with a deadline rather than slept on.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Base directory for everything the test bed writes to disk.
pub const BASE_DIR: &str = "/tmp/sensor-testbed";

/// `n` random bytes from the kernel.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf
}

/// `len` random lowercase hex digits.
pub fn random_hex(len: usize) -> String {
    let mut s: String = random_bytes(len.div_ceil(2))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    s.truncate(len);
    s
}

/// A random v4-looking UUID (`xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`), like a pod UID.
pub fn random_uuid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `len` characters from the alphabet Kubernetes uses for generated name suffixes
/// (`k8s.io/apimachinery/pkg/util/rand`: no vowels, no confusable digits).
pub fn random_k8s_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes(len)
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// A name unique in this process and very likely on this machine: `<prefix>-<counter><random>`.
/// Lowercase alphanumerics and `-` only, so it is a valid Kubernetes namespace/DNS label.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{n}{}", random_hex(8))
}

/// Whether a process with this pid exists.
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Polls `f` every `interval` until it returns `Some` or `timeout` passes.
pub fn poll_until<T>(
    timeout: Duration,
    interval: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(interval);
    }
}

/// Panics unless we are root: the test bed creates cgroups, network namespaces and containers.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the sensor end-to-end tests must run as root (cgroups, netns, runc, eBPF)"
    );
}

/// Finds `tool` in `PATH` (plus the sbin dirs, which a non-login root shell may lack), or panics
/// naming the Debian package that provides it.
pub fn require_tool(tool: &str, apt_package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path
        .split(':')
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]);
    for dir in dirs {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{tool}` not found: install it with `apt-get install -y {apt_package}`");
}

/// The python3 interpreter for peer services. Prefers the system one (`/usr/bin/python3`): a
/// version-manager shim would add startup time and an extra process layer.
pub fn python3() -> PathBuf {
    let system = Path::new("/usr/bin/python3");
    if system.is_file() {
        return system.to_path_buf();
    }
    require_tool("python3", "python3")
}

/// Runs a command to completion and panics with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, ignoring failure (cleanup paths).
pub fn run_quiet(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A directory under [`BASE_DIR`] removed (recursively) on drop.
///
/// Named `<pid>-<tag>-<unique>` so that [`TempDir::new`] can sweep the leftovers of test
/// processes that died without running destructors (a killed `cargo test`).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        sweep_stale();
        let path = Path::new(BASE_DIR).join(format!("{}-{}", std::process::id(), unique_name(tag)));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory (for post-mortem debugging) and returns its path.
    pub fn into_path(self) -> PathBuf {
        let p = self.path.clone();
        std::mem::forget(self);
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Removes `BASE_DIR/<pid>-*` entries whose pid is gone. Runs once per process.
fn sweep_stale() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = fs::read_dir(BASE_DIR) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !pid_alive(pid) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    });
}

/// Drains a reader line by line on a background thread, sending each line on the returned
/// channel. Lets callers wait for a readiness line with a timeout without ever letting the
/// child block on a full pipe.
pub fn line_channel(r: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Receiver gone: keep draining so the writer never blocks.
                continue;
            }
        }
    });
    rx
}

/// Sends `sig` to `pid` (a child we started).
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we own; errors (already gone) are ignored.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Returns whether a file is a statically linked ELF (no PT_INTERP program header).
pub fn is_static_elf(path: &Path) -> bool {
    let Ok(data) = fs::read(path) else {
        return false;
    };
    if data.len() < 64 || &data[0..4] != b"\x7fELF" || data[4] != 2 {
        return false; // not a 64-bit ELF
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let off = phoff + i * phentsize;
        off + 4 <= data.len() && u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) != 3
    })
}

/// The first `head` and last `tail` bytes of `s` (on char boundaries), with a marker between
/// when something was cut: errors usually sit at the start of a long log, context at the end.
pub fn head_tail(s: &str, head: usize, tail_len: usize) -> String {
    if s.len() <= head + tail_len {
        return s.to_string();
    }
    let mut h = head;
    while !s.is_char_boundary(h) {
        h -= 1;
    }
    format!(
        "{}\n[... {} bytes cut ...]\n{}",
        &s[..h],
        s.len() - h - tail_len,
        tail(s, tail_len)
    )
}

/// Tail of a string, at most `max` bytes (on a char boundary), for panic messages.
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
