//! Running containers with runc: OCI bundle generation and foreground/background runs.
//!
//! Why: real containers (namespaces, pivot_root, runc init, cgroup placement, seccomp) are what
//! the sensor sees on a node; runc is the runtime under containerd and CRI-O. The bundle's
//! `config.json` comes from `runc spec` (generated once per process) patched with serde_json:
//! no terminal, the caller's argv, the shared read-only [`Rootfs`], the kubelet-shaped
//! `linux.cgroupsPath`, a tmpfs `/tmp`, the host network namespace by default (so containers
//! reach the test's netns peers through host routes), optional `linux.seccomp` and extra mounts.
//!
//! Each [`Runc`] has its own `--root` state dir and bundle dir so parallel tests never collide.
//! `runc run` removes the container's cgroup when the container exits (the sensor relies on
//! that to flush a container's syscall set); [`RunOutput::cgroup_removed_by_runc`] records
//! whether it did, and the cgroup is removed here otherwise.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cgroup;
use crate::pod::Pod;
use crate::rootfs::Rootfs;
use crate::util::{self, TempDir};

/// The host's python3 as seen in a container with [`ContainerConfig::host_usr`].
pub const CONTAINER_PYTHON: &str = "/usr/bin/python3";

/// Default time limit for a foreground container.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Which network namespace the container gets.
#[derive(Debug, Clone)]
pub enum Network {
    /// Share the host's network namespace (the default): reach netns peers via host routes,
    /// listen on host ports.
    Host,
    /// A fresh, empty network namespace (only `lo`, down).
    Private,
    /// Join an existing network namespace, e.g. `/var/run/netns/<name>`.
    Join(PathBuf),
}

/// What to run and where: one container.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// runc container id (unique on the machine).
    pub id: String,
    pub args: Vec<String>,
    pub cgroups_path: String,
    pub network: Network,
    pub seccomp: Option<Value>,
    /// Extra OCI mount objects (`destination`, `type`, `source`, `options`).
    pub mounts: Vec<Value>,
    pub env: Vec<String>,
    pub cwd: String,
    /// Last edits of the generated `config.json`: (JSON pointer, value), applied in order.
    pub overrides: Vec<(String, Value)>,
}

impl ContainerConfig {
    pub fn new(id: &str, cgroups_path: &str, args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            id: id.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            cgroups_path: cgroups_path.to_string(),
            network: Network::Host,
            seccomp: None,
            mounts: Vec::new(),
            env: vec![
                "PATH=/bin:/sbin:/usr/bin:/usr/sbin".into(),
                "HOME=/root".into(),
            ],
            cwd: "/".into(),
            overrides: Vec::new(),
        }
    }

    /// Sets the `config.json` value at `pointer` (e.g. `/root/path`, `/process/capabilities`);
    /// the parent must exist. For what the other options do not cover (another rootfs, a
    /// deployment's capabilities, namespaces).
    pub fn set(mut self, pointer: &str, value: Value) -> Self {
        self.overrides.push((pointer.to_string(), value));
        self
    }

    /// Container `container` of `pod`: runc id = container id, cgroup = kubelet-shaped path.
    pub fn for_pod(pod: &Pod, container: &str, args: &[&str]) -> ContainerConfig {
        ContainerConfig::new(
            &pod.container(container).id,
            &pod.cgroup_path(container),
            args,
        )
    }

    /// `/bin/sh -c <script>` in container `container` of `pod`.
    pub fn sh(pod: &Pod, container: &str, script: &str) -> ContainerConfig {
        ContainerConfig::for_pod(pod, container, &["/bin/sh", "-c", script])
    }

    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// A seccomp profile in OCI form (`defaultAction`, `architectures`, `syscalls`).
    pub fn seccomp(mut self, profile: Value) -> Self {
        self.seccomp = Some(profile);
        self
    }

    pub fn mount(mut self, mount: Value) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Bind-mounts host `source` at `destination` (which must exist in the read-only rootfs).
    pub fn bind_mount(self, source: &Path, destination: &str, readonly: bool) -> Self {
        let mut options = vec!["rbind", "nosuid", "nodev"];
        if readonly {
            options.push("ro");
        }
        self.mount(json!({
            "destination": destination,
            "type": "bind",
            "source": source.display().to_string(),
            "options": options,
        }))
    }

    /// Bind-mounts the host's `/usr`, `/lib` and `/lib64` (those that exist, symlinks resolved)
    /// read-only at the same places, so that host programs, e.g. [`CONTAINER_PYTHON`], run in
    /// the busybox rootfs (its own `/bin` stays busybox).
    pub fn host_usr(mut self) -> Self {
        for dir in ["/usr", "/lib", "/lib64"] {
            if let Ok(real) = fs::canonicalize(dir) {
                self = self.bind_mount(&real, dir, true);
            }
        }
        self
    }

    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.to_string());
        self
    }

    pub fn cwd(mut self, cwd: &str) -> Self {
        self.cwd = cwd.to_string();
        self
    }
}

/// Result of a container run.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// runc's exit code: the container process's exit code (or 128+signal, or runc's own error).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    /// Whether the container's cgroup2 directory was already gone when runc returned.
    pub cgroup_removed_by_runc: bool,
    pub duration: Duration,
}

impl RunOutput {
    /// Panics (with the container's output) unless it exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert!(
            !self.timed_out && self.code == Some(code),
            "container exited with {:?} (signal {:?}, timed out: {}), expected {code}\nstdout: {}\nstderr: {}",
            self.code,
            self.signal,
            self.timed_out,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }
}

/// A runc instance with its own state root and bundle directory.
/// An OCI runtime CLI: runc (the default), or crun.
pub struct Runc {
    bin: PathBuf,
    kind: OciRuntime,
    state: TempDir,
    bundles: TempDir,
}

/// Which runtime a [`Runc`] drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OciRuntime {
    Runc,
    /// crun refuses this machine's hybrid cgroup layout (v1 controllers with cgroup2 at
    /// `/sys/fs/cgroup/unified`), so each crun command runs in its own mount namespace where
    /// the unified hierarchy is mounted at `/sys/fs/cgroup`: the cgroup2-only layout of an
    /// EKS node, with the same cgroup ids the sensor sees. The container's device rules are
    /// dropped: on cgroup2 crun enforces them with a BPF program, which needs a memlock limit
    /// this sandbox (no CAP_SYS_RESOURCE) cannot raise.
    Crun,
}

impl Default for Runc {
    fn default() -> Self {
        Self::new()
    }
}

impl Runc {
    pub fn new() -> Runc {
        util::require_root();
        Runc {
            bin: util::require_tool("runc", "runc"),
            kind: OciRuntime::Runc,
            state: TempDir::new("runc-state"),
            bundles: TempDir::new("bundles"),
        }
    }

    /// crun instead of runc (see [`OciRuntime::Crun`]).
    pub fn crun() -> Runc {
        util::require_root();
        Runc {
            bin: util::require_tool("crun", "crun"),
            kind: OciRuntime::Crun,
            state: TempDir::new("crun-state"),
            bundles: TempDir::new("bundles"),
        }
    }

    pub fn kind(&self) -> OciRuntime {
        self.kind
    }

    fn cmd(&self) -> Command {
        let mut c = match self.kind {
            OciRuntime::Runc => Command::new(&self.bin),
            OciRuntime::Crun => {
                let mut c = Command::new("unshare");
                c.args([
                    "--mount",
                    "sh",
                    "-c",
                    "mount --make-rprivate / && mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"",
                ])
                .arg(&self.bin);
                c
            }
        };
        c.arg("--root").arg(self.state.path());
        c
    }

    /// Writes the bundle (`<bundles>/<id>/config.json`) and returns its directory.
    pub fn bundle(&self, cfg: &ContainerConfig) -> PathBuf {
        let dir = self.bundles.path().join(&cfg.id);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let mut config = render_config(&util::require_tool("runc", "runc"), cfg);
        if self.kind == OciRuntime::Crun
            && let Some(resources) = config["linux"]["resources"].as_object_mut()
        {
            resources.remove("devices");
        }
        fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .expect("write config.json");
        dir
    }

    /// Starts `runc run` for `cfg` in the background (runc stays in the foreground of its own
    /// process, we don't use `--detach`, so its exit status is the container's).
    pub fn spawn(&self, cfg: &ContainerConfig) -> RunningContainer<'_> {
        let bundle = self.bundle(cfg);
        let mut child = self
            .cmd()
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&cfg.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn runc: {e}"));
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        RunningContainer {
            runc: self,
            id: cfg.id.clone(),
            cgroups_path: cfg.cgroups_path.clone(),
            child: Some(child),
            stdout: Some(stdout),
            stderr: Some(stderr),
            started: Instant::now(),
        }
    }

    /// Runs a container to completion (or `timeout`, then kills it).
    pub fn run(&self, cfg: &ContainerConfig, timeout: Duration) -> RunOutput {
        self.spawn(cfg).wait(timeout)
    }

    /// `runc state <id>` as JSON, if the container exists.
    pub fn state(&self, id: &str) -> Option<Value> {
        let out = self
            .cmd()
            .arg("state")
            .arg(id)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    fn force_delete(&self, id: &str) {
        util::run_quiet(self.cmd().args(["kill", id, "KILL"]));
        util::run_quiet(self.cmd().args(["delete", "--force", id]));
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        if let Ok(out) = self
            .cmd()
            .args(["list", "-q"])
            .stderr(Stdio::null())
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.is_empty())
            {
                self.force_delete(id);
            }
        }
    }
}

/// A container whose `runc run` is in progress. Killed and deleted on drop.
pub struct RunningContainer<'a> {
    runc: &'a Runc,
    id: String,
    cgroups_path: String,
    child: Option<Child>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    started: Instant,
}

impl RunningContainer<'_> {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits until the container's process is running and returns its host pid.
    pub fn wait_running(&self, timeout: Duration) -> u32 {
        util::poll_until(timeout, Duration::from_millis(10), || {
            let st = self.runc.state(&self.id)?;
            (st["status"] == "running")
                .then(|| st["pid"].as_u64().map(|p| p as u32))
                .flatten()
        })
        .unwrap_or_else(|| panic!("container {} not running after {timeout:?}", self.id))
    }

    /// Sends `signal` (e.g. `"TERM"`, `"KILL"`) to the container's init process.
    pub fn kill(&self, signal: &str) {
        util::run_quiet(self.runc.cmd().args(["kill", &self.id, signal]));
    }

    /// Whether runc (and so the container) has exited.
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Waits for the container to exit; on timeout kills it (and reports `timed_out`).
    pub fn wait(mut self, timeout: Duration) -> RunOutput {
        let mut child = self.child.take().expect("not waited yet");
        let deadline = self.started + timeout;
        let mut timed_out = false;
        let status: ExitStatus = loop {
            if let Some(st) = child.try_wait().expect("wait runc") {
                break st;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                self.runc.force_delete(&self.id);
                let _ = child.kill();
                break child.wait().expect("wait runc");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let duration = self.started.elapsed();
        let cgroup_removed_by_runc = !cgroup::exists_v2(&self.cgroups_path);
        if !cgroup_removed_by_runc {
            cgroup::remove_everywhere(&self.cgroups_path);
        }
        util::run_quiet(self.runc.cmd().args(["delete", "--force", &self.id]));
        use std::os::unix::process::ExitStatusExt;
        RunOutput {
            code: status.code(),
            signal: status.signal(),
            stdout: self.stdout.take().unwrap().join().unwrap_or_default(),
            stderr: self.stderr.take().unwrap().join().unwrap_or_default(),
            timed_out,
            cgroup_removed_by_runc,
            duration,
        }
    }
}

impl Drop for RunningContainer<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.runc.force_delete(&self.id);
            let _ = child.kill();
            let _ = child.wait();
            cgroup::remove_everywhere(&self.cgroups_path);
        }
    }
}

fn collect(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// `runc spec` output, generated once per process.
fn spec_template(runc: &Path) -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let dir = TempDir::new("spec");
        util::run_ok(
            Command::new(runc)
                .arg("spec")
                .arg("--bundle")
                .arg(dir.path()),
        );
        let text =
            fs::read_to_string(dir.path().join("config.json")).expect("read generated config.json");
        serde_json::from_str(&text).expect("runc spec output is JSON")
    })
}

/// The bundle's `config.json` for `cfg`.
pub fn render_config(runc: &Path, cfg: &ContainerConfig) -> Value {
    let mut c = spec_template(runc).clone();
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(cfg.args);
    c["process"]["env"] = json!(cfg.env);
    c["process"]["cwd"] = json!(cfg.cwd);
    c["root"] = json!({ "path": Rootfs::shared().path().display().to_string(), "readonly": true });
    c["hostname"] = json!("testbed");
    let linux = &mut c["linux"];
    linux["cgroupsPath"] = json!(cfg.cgroups_path);
    let namespaces = linux["namespaces"]
        .as_array_mut()
        .expect("spec has linux.namespaces");
    namespaces.retain(|n| n["type"] != "network");
    match &cfg.network {
        Network::Host => {}
        Network::Private => namespaces.push(json!({ "type": "network" })),
        Network::Join(path) => {
            namespaces.push(json!({ "type": "network", "path": path.display().to_string() }))
        }
    }
    if let Some(seccomp) = &cfg.seccomp {
        linux["seccomp"] = seccomp.clone();
    }
    let mounts = c["mounts"].as_array_mut().expect("spec has mounts");
    mounts.push(json!({
        "destination": "/tmp",
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777", "size=16m"],
    }));
    mounts.extend(cfg.mounts.iter().cloned());
    for (pointer, value) in &cfg.overrides {
        let (parent, key) = pointer
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("override {pointer}: not a JSON pointer"));
        let target = c
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("override {pointer}: no object at {parent:?}"));
        target.insert(key.to_string(), value.clone());
    }
    c
}
