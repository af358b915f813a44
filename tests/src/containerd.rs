//! A private containerd daemon (Debian's `containerd`, with `ctr`), for the image tests.
//!
//! Why: kind loads an image archive with `ctr images import`, and a node's RuntimeDefault seccomp
//! profile is the one containerd generates from the container's capabilities. Running the real
//! daemon (own socket, root and state under a temp dir, the CRI plugin off) checks both for real.
//! The daemon is killed and its directories removed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::{self, TempDir};

pub struct Containerd {
    daemon: Child,
    dir: TempDir,
    ctr: PathBuf,
}

impl Containerd {
    /// Starts the daemon and waits until `ctr version` answers.
    pub fn start() -> Containerd {
        util::require_root();
        let bin = util::require_tool("containerd", "containerd");
        let ctr = util::require_tool("ctr", "containerd");
        let dir = TempDir::new("containerd");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}/root\"\nstate = \"{root}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{root}/containerd.sock\"\n",
                root = dir.path().display()
            ),
        )
        .expect("write containerd config");
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log file");
        let daemon = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        let c = Containerd { daemon, dir, ctr };
        util::poll_until(Duration::from_secs(30), Duration::from_millis(100), || {
            c.ctr(&["version"]).status.success().then_some(())
        })
        .unwrap_or_else(|| panic!("containerd did not answer within 30 s:\n{}", c.log()));
        c
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr --address <socket> <args>` (namespace `k8s.io`, kubelet's).
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.ctr);
        c.arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(["--namespace", "k8s.io"]);
        c
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run ctr")
    }

    /// `ctr images import` the way `kind load image-archive` does (from stdin, all platforms,
    /// digest images). Returns ctr's output.
    pub fn import(&self, archive: &Path) -> Output {
        let file = std::fs::File::open(archive)
            .unwrap_or_else(|e| panic!("open {}: {e}", archive.display()));
        self.command()
            .args(["images", "import", "--all-platforms", "--digests", "-"])
            .stdin(file)
            .output()
            .expect("ctr images import")
    }

    /// The default OCI spec ctr builds on (`ctr oci spec`).
    pub fn default_spec(&self) -> Value {
        let out = self.ctr(&["oci", "spec"]);
        assert!(out.status.success(), "ctr oci spec failed");
        serde_json::from_slice(&out.stdout).expect("ctr oci spec prints JSON")
    }

    /// The runtime config containerd generated for a running container.
    pub fn runtime_config(&self, id: &str) -> Value {
        let path = self
            .dir
            .path()
            .join("state/io.containerd.runtime.v2.task/k8s.io")
            .join(id)
            .join("config.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).expect("config.json")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Ok(out) = self.command().args(["tasks", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.ctr(&["tasks", "kill", "-s", "KILL", id]);
            }
        }
        util::poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
            let out = self.ctr(&["tasks", "ls", "-q"]);
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .is_empty()
                .then_some(())
        });
        if let Ok(out) = self.command().args(["containers", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.ctr(&["containers", "rm", id]);
            }
        }
        util::signal(self.daemon.id(), libc::SIGTERM);
        if util::poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            self.daemon.try_wait().ok().flatten()
        })
        .is_none()
        {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
    }
}
