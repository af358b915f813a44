//! A busybox root filesystem shared (read-only) by every container of the test process.
//!
//! Why: no image registry or Docker here, but a static busybox gives containers a shell, `nc`,
//! `nslookup`, `cat`... Building it once per process and mounting it read-only keeps container
//! start-up at a few tens of milliseconds; each container gets its own bundle dir and a tmpfs `/tmp`.
//!
//! Layout: `/bin/busybox` plus one symlink per applet, `/etc/{passwd,group}`, empty mount points
//! (`/tmp /proc /sys /dev`), and a service-account volume at
//! `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace}` with dummy contents
//! (a real directory, not a `/var/run -> /run` symlink, so paths are what the sensor's default
//! patterns name).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::util::{self, TempDir};

/// Where the service-account files live inside the container.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The EKS IRSA web-identity token, a cloud credential file, and a directory beside the
/// service-account one that holds nothing sensitive (for "reached through a symlink into a
/// sensitive directory's sibling").
pub const IRSA_TOKEN: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";
pub const AWS_CREDENTIALS: &str = "/root/.aws/credentials";
pub const SA_SIBLING_FILE: &str = "/var/run/secrets/kubernetes.io/settings/config";

/// Dummy token written into the rootfs (a syntactically JWT-looking string).
pub const DUMMY_TOKEN: &str =
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6dGVzdDp0ZXN0In0.c2lnbmF0dXJl";

/// Mount points that exist (empty) in the rootfs; extra mounts must target one of these or a
/// directory that already exists, because the rootfs is mounted read-only. `usr`, `lib` and
/// `lib64` take the host's (read-only) for containers that run a host program such as python3
/// ([`crate::runc::ContainerConfig::host_usr`]).
pub const MOUNT_POINTS: &[&str] = &[
    "tmp", "proc", "sys", "dev", "mnt", "run", "data", "usr", "lib", "lib64",
];

pub struct Rootfs {
    dir: TempDir,
}

impl Rootfs {
    /// The process-wide rootfs, built on first use.
    pub fn shared() -> &'static Rootfs {
        static ROOTFS: OnceLock<Rootfs> = OnceLock::new();
        ROOTFS.get_or_init(Rootfs::build)
    }

    /// Absolute path of the rootfs directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Builds a fresh rootfs in a new temp dir.
    pub fn build() -> Rootfs {
        let busybox = util::require_tool("busybox", "busybox-static");
        assert!(
            util::is_static_elf(&busybox),
            "{} is dynamically linked: containers need a static busybox, install it with `apt-get install -y busybox-static`",
            busybox.display()
        );
        let dir = TempDir::new("rootfs");
        let root = dir.path();
        for d in [
            "bin",
            "etc",
            "var/run",
            SERVICE_ACCOUNT_DIR.trim_start_matches('/'),
        ]
        .iter()
        .chain(MOUNT_POINTS)
        {
            mkdir(&root.join(d));
        }
        let bb = root.join("bin/busybox");
        fs::copy(&busybox, &bb).unwrap_or_else(|e| panic!("copy {}: {e}", busybox.display()));
        let list = util::run_ok(Command::new(&busybox).arg("--list"));
        for applet in list
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox")
        {
            let link = root.join("bin").join(applet);
            if !link.exists() {
                symlink("busybox", &link)
                    .unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
            }
        }
        write(
            root,
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        );
        write(root, "etc/group", "root:x:0:\nnogroup:x:65534:\n");
        write(root, "etc/hostname", "testbed\n");
        let sa = SERVICE_ACCOUNT_DIR.trim_start_matches('/');
        write(root, &format!("{sa}/token"), DUMMY_TOKEN);
        write(
            root,
            &format!("{sa}/ca.crt"),
            "-----BEGIN CERTIFICATE-----\nZHVtbXk=\n-----END CERTIFICATE-----\n",
        );
        write(root, &format!("{sa}/namespace"), "default");
        for (file, contents) in [
            (IRSA_TOKEN, DUMMY_TOKEN),
            (
                AWS_CREDENTIALS,
                "[default]\naws_access_key_id = AKIDTESTBED\naws_secret_access_key = dummy\n",
            ),
            (SA_SIBLING_FILE, "log_level = info\n"),
        ] {
            let rel = file.trim_start_matches('/');
            mkdir(root.join(rel).parent().expect("a file under a directory"));
            write(root, rel, contents);
        }
        Rootfs { dir }
    }

    /// Path of a file inside the rootfs, as seen from the host.
    pub fn host_path(&self, in_container: &str) -> PathBuf {
        self.path().join(in_container.trim_start_matches('/'))
    }
}

fn mkdir(p: &Path) {
    fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
}

fn write(root: &Path, rel: &str, contents: &str) {
    let p = root.join(rel);
    fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}
