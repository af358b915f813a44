//! Another kernel under QEMU: an initramfs built from host files, booted with software
//! emulation (TCG), its serial console read back in sections.
//!
//! Why: CI must prove capture on the kernels nodes run (Debian's 6.1, the line of EKS's AL2023),
//! not only on the build machine's. KVM fails nested here and the cloud kernel has no 9p and
//! builds virtio as modules, so everything the guest runs is packed into the initramfs (see
//! TESTBED.md, "Other kernels").
//!
//! Kernel: `$SENSOR_GUEST_KERNEL` (a `vmlinuz`; `cargo xtask test` downloads and caches
//! Debian's). The guest's `/init` reports through [`section`]-framed blocks on the console:
//! `@@begin <name>` ... `@@end <name>`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use crate::util::{self, TempDir};

/// The environment variable naming the guest kernel image.
pub const KERNEL_ENV: &str = "SENSOR_GUEST_KERNEL";

/// The guest kernel image. Panics with how to get one if unset.
pub fn guest_kernel() -> PathBuf {
    let path = std::env::var_os(KERNEL_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "{KERNEL_ENV} is not set: run through `cargo xtask test`, which downloads Debian's \
             6.1 cloud kernel into target/kernels/, or point it at a vmlinuz"
            )
        });
    assert!(
        path.is_file(),
        "{KERNEL_ENV}={} does not exist",
        path.display()
    );
    path
}

/// A guest root file system being assembled in a temp dir, packed with `cpio`.
pub struct Initramfs {
    root: TempDir,
}

impl Default for Initramfs {
    fn default() -> Self {
        Self::new()
    }
}

impl Initramfs {
    /// The empty skeleton: mount points, `/dev/console` (the kernel opens it for `/init`'s
    /// stdio before anything is mounted) and a static busybox at `/bin/busybox`.
    pub fn new() -> Initramfs {
        let root = TempDir::new("initramfs");
        for d in ["bin", "dev", "proc", "sys", "tmp", "etc", "var/log"] {
            fs::create_dir_all(root.path().join(d)).expect("create initramfs dirs");
        }
        util::run_ok(Command::new("mknod").args([
            "-m",
            "600",
            root.path().join("dev/console").to_str().unwrap(),
            "c",
            "5",
            "1",
        ]));
        let busybox = util::require_tool("busybox", "busybox-static");
        assert!(
            util::is_static_elf(&busybox),
            "{} is not static: install busybox-static",
            busybox.display()
        );
        let fs = Initramfs { root };
        fs.copy(&busybox, "/bin/busybox", 0o755);
        fs
    }

    /// The host path of guest path `guest` (absolute).
    pub fn host_path(&self, guest: &str) -> PathBuf {
        self.root.path().join(guest.trim_start_matches('/'))
    }

    /// Writes `contents` at `guest` (parents created).
    pub fn write(&self, guest: &str, contents: impl AsRef<[u8]>, mode: u32) {
        let dest = self.host_path(guest);
        fs::create_dir_all(dest.parent().unwrap()).expect("create parent dir");
        fs::write(&dest, contents).unwrap_or_else(|e| panic!("write {}: {e}", dest.display()));
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// A symlink at `guest` pointing to `target` (a guest path).
    pub fn symlink(&self, target: &str, guest: &str) {
        let link = self.host_path(guest);
        fs::create_dir_all(link.parent().unwrap()).expect("create parent dir");
        symlink(target, &link).unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
    }

    /// Copies a host file to `guest`.
    pub fn copy(&self, host: &Path, guest: &str, mode: u32) {
        let bytes = fs::read(host).unwrap_or_else(|e| panic!("read {}: {e}", host.display()));
        self.write(guest, bytes, mode);
    }

    /// A dynamically linked host program at `guest`, without its debug info (the debug build
    /// of the sensor is mostly DWARF), plus every library `ldd` lists at its host path.
    pub fn add_program(&self, host: &Path, guest: &str) {
        let dest = self.host_path(guest);
        fs::create_dir_all(dest.parent().unwrap()).expect("create parent dir");
        util::run_ok(
            Command::new("objcopy")
                .arg("--strip-debug")
                .arg(host)
                .arg(&dest),
        );
        fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).expect("chmod");
        let ldd = util::run_ok(Command::new("ldd").arg(host));
        for lib in shared_libraries(&ldd).unwrap_or_else(|e| panic!("ldd {}: {e}", host.display()))
        {
            if !self.host_path(&lib.display().to_string()).exists() {
                self.copy(&lib, &lib.display().to_string(), 0o755);
            }
        }
    }

    /// Packs the tree as a `newc` cpio archive (uncompressed: the kernel unpacks it as is,
    /// and compressing tens of MiB would cost more than it saves).
    pub fn pack(&self, out: &Path) {
        let cpio = util::require_tool("cpio", "cpio");
        let list = util::run_ok(Command::new("find").arg(".").current_dir(self.root.path()));
        let archive = fs::File::create(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        let mut child = Command::new(cpio)
            .args(["--quiet", "-o", "-H", "newc"])
            .current_dir(self.root.path())
            .stdin(Stdio::piped())
            .stdout(archive)
            .spawn()
            .expect("spawn cpio");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), list.as_bytes())
            .expect("feed cpio");
        assert!(child.wait().expect("wait cpio").success(), "cpio failed");
    }
}

/// The library paths in `ldd` output (`name => /path (0x...)`, the loader's `/path (0x...)`);
/// the vDSO has no file. A library ldd could not find is an error.
pub fn shared_libraries(ldd: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in ldd.lines().map(str::trim) {
        if line.contains("not found") {
            return Err(format!("missing library: {line}"));
        }
        let path = line.split("=>").last().unwrap_or(line).trim();
        let path = path.split(" (").next().unwrap_or(path);
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// What one boot printed.
pub struct Console {
    /// Every console line, `\r` removed.
    pub lines: Vec<String>,
    /// From QEMU's start to its exit (or the timeout).
    pub elapsed: Duration,
    /// The guest did not power off within the timeout (QEMU was killed).
    pub timed_out: bool,
}

impl Console {
    /// The lines of every `@@begin <name>` ... `@@end <name>` block, by name.
    pub fn sections(&self) -> BTreeMap<String, Vec<String>> {
        sections(&self.lines)
    }

    /// The whole console, for failure messages.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// Splits console lines into named sections (see [`Console::sections`]). Kernel messages that
/// land inside a block stay in it: readers skip what they cannot parse.
pub fn sections(lines: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in lines {
        // A marker may follow terminal escapes the firmware left on the line.
        if let Some(at) = line.find("@@begin ") {
            let name = line[at + "@@begin ".len()..].trim().to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if line.contains("@@end ") {
            current = None;
        } else if let Some(name) = &current {
            out.get_mut(name).unwrap().push(line.clone());
        }
    }
    out
}

/// Shell function for the guest's `/init`: `section <name> <command...>` prints the command's
/// output between the markers [`sections`] reads.
pub const SECTION_FN: &str =
    "section() { n=$1; shift; echo \"@@begin $n\"; \"$@\" 2>&1; echo \"@@end $n\"; }";

/// Boots `kernel` with `initramfs` on 2 emulated CPUs and 1 GiB, console on the serial port,
/// until the guest powers off or `timeout` passes.
pub fn boot(kernel: &Path, initramfs: &Path, timeout: Duration) -> Console {
    let qemu = util::require_tool("qemu-system-x86_64", "qemu-system-x86");
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "2"])
        // No NIC: the guest's traffic stays on loopback.
        .args(["-nographic", "-no-reboot", "-nic", "none", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initramfs)
        // panic=-1: a crashed guest reboots at once, and -no-reboot turns that into an exit.
        // loglevel=5: warnings and their backtraces (soft lockups, BPF splats) reach the
        // console evidence; boot chatter does not.
        .args(["-append", "console=ttyS0 quiet loglevel=5 panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qemu-system-x86_64");
    let stdout = util::line_channel(child.stdout.take().unwrap());
    let stderr = util::line_channel(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    let mut timed_out = false;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        match stdout.recv_timeout(left) {
            Ok(line) => lines.push(line.trim_end_matches('\r').to_string()),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait().expect("wait qemu");
    let elapsed = start.elapsed();
    lines.extend(stderr.try_iter().map(|l| format!("qemu stderr: {l}")));
    if !status.success() && !timed_out {
        lines.push(format!("qemu exited: {status}"));
    }
    Console {
        lines,
        elapsed,
        timed_out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_libraries_skip_the_vdso_and_keep_the_loader() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        assert_eq!(
            shared_libraries(ldd).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert!(shared_libraries("\tlibfoo.so => not found\n").is_err());
    }

    #[test]
    fn sections_collect_framed_lines_only() {
        let lines: Vec<String> = [
            "boot noise",
            "\x1b[2J@@begin a",
            "x",
            "y",
            "@@end a",
            "z",
            "@@begin b",
            "@@end b",
        ]
        .map(String::from)
        .to_vec();
        let s = sections(&lines);
        assert_eq!(s["a"], ["x", "y"]);
        assert!(s["b"].is_empty());
        assert_eq!(s.len(), 2);
    }
}
