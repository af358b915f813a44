//! The container image `cargo xtask image` writes, run the way a node runs the DaemonSet.
//!
//! The archive (`SENSOR_IMAGE`; `cargo xtask test` builds it from the debug binary) is unpacked
//! per the OCI image spec (digests, media types, layers; `sensor_tests::oci`) and its rootfs is
//! run with runc, read-only, with the manifest's settings read from `deploy/daemonset.yaml`:
//! its capabilities only (bounding = effective = permitted), no_new_privs, the host's PID
//! namespace (hostPID), a private cgroup namespace (what containerd gives a non-privileged
//! container on a cgroup v2 node), its hostPath mounts, its memory limit. Inside, the image's
//! own `sensor trace` must attach every probe and attribute a runc pod's exec and exit, and the
//! container's memory cgroup must stay under the manifest's limit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use sensor_tests::{ContainerConfig, Kubelet, Pod, Runc, Sensor, deploy, oci, runc, util};
use serde_json::{Value, json};

const EV: Duration = Duration::from_secs(20);

fn image_archive() -> PathBuf {
    let path = std::env::var_os("SENSOR_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "SENSOR_IMAGE is not set: `cargo xtask test` builds the image and sets it, or run \
             `cargo xtask image --debug --output target/node-sensor-image-debug.tar` and set \
             SENSOR_IMAGE to that file"
            )
        });
    assert!(
        path.is_file(),
        "SENSOR_IMAGE={} does not exist",
        path.display()
    );
    path
}

/// The image, unpacked once per test process (a debug image is ~200 MB).
fn unpacked() -> &'static oci::UnpackedImage {
    static IMAGE: OnceLock<(util::TempDir, oci::UnpackedImage)> = OnceLock::new();
    &IMAGE
        .get_or_init(|| {
            let dir = util::TempDir::new("image");
            let image = oci::unpack(&image_archive(), dir.path());
            (dir, image)
        })
        .1
}

/// The image's command line with `args` (its entrypoint replaced by nothing: the binary).
fn entrypoint(image: &oci::UnpackedImage) -> String {
    image.config["config"]["Entrypoint"][0]
        .as_str()
        .expect("image entrypoint")
        .to_string()
}

fn caps_for_runc(caps: &[String]) -> Value {
    let names: Vec<String> = caps.iter().map(|c| format!("CAP_{c}")).collect();
    json!({
        "bounding": names, "effective": names, "permitted": names,
        "inheritable": [], "ambient": []
    })
}

fn bind(source: &Path, destination: &str, readonly: bool) -> Value {
    let mut options = vec!["rbind", "nosuid", "nodev"];
    if readonly {
        options.push("ro");
    }
    json!({ "destination": destination, "type": "bind",
            "source": source.display().to_string(), "options": options })
}

/// The mounts a runtime gives every container, and the manifest's volumes
/// ([`deploy::test_volumes`]).
fn mounts(docs: &[Value], kubelet: &Kubelet, scratch: &Path) -> Vec<Value> {
    let mut m = vec![
        json!({ "destination": "/proc", "type": "proc", "source": "proc" }),
        json!({ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }),
        json!({ "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] }),
        json!({ "destination": "/sys", "type": "sysfs", "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"] }),
    ];
    for (source, inside, readonly) in deploy::test_volumes(docs, kubelet, scratch) {
        m.push(bind(&source, &inside, readonly));
    }
    m
}

/// A container of the image with the DaemonSet's security settings.
fn image_container(
    image: &oci::UnpackedImage,
    docs: &[Value],
    id: &str,
    cgroup: &str,
    args: &[&str],
) -> ContainerConfig {
    let caps = deploy::added_capabilities(docs);
    let mut cfg = ContainerConfig::new(id, cgroup, args);
    cfg.env = image.config["config"]["Env"]
        .as_array()
        .expect("image Env")
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    cfg.set(
        "/root",
        json!({ "path": image.rootfs.display().to_string(), "readonly": true }),
    )
    .set("/process/capabilities", caps_for_runc(&caps))
    .set("/process/noNewPrivileges", json!(true))
    .set("/process/user", json!({ "uid": 0, "gid": 0 }))
    // hostPID: no pid namespace. The cgroup namespace is private, as containerd makes it
    // for a non-privileged container on a cgroup v2 node. The host network namespace here
    // stands for the pod's own: the sensor opens no socket but its own API's.
    .set(
        "/linux/namespaces",
        json!([{ "type": "mount" }, { "type": "ipc" }, { "type": "uts" }, { "type": "cgroup" }]),
    )
}

/// The manifest's image reference is what the archive is tagged with.
#[test]
fn image_archive_follows_the_oci_spec_and_carries_the_manifest_tag() {
    let docs = deploy::documents();
    let image = unpacked();
    let reference = deploy::sensor_container(&docs)["image"].as_str().unwrap();
    assert_eq!(image.repo_tags, vec![reference.to_string()]);
    assert_eq!(image.name, format!("docker.io/library/{reference}"));
    let binary = image.rootfs.join(entrypoint(image).trim_start_matches('/'));
    assert!(binary.is_file(), "{} in the image", binary.display());
}

#[test]
fn image_prints_its_version_under_runc() {
    let docs = deploy::documents();
    let dir = util::TempDir::new("image-version");
    let image = unpacked();
    let kubelet = Kubelet::new();
    let id = format!("img-version-{}", util::random_hex(8));
    let bin = entrypoint(image);
    let cfg = image_container(
        image,
        &docs,
        &id,
        &format!("/sensor-image/{id}"),
        &[&bin, "--version"],
    )
    .set("/mounts", json!(mounts(&docs, &kubelet, dir.path())));
    let out = Runc::new().run(&cfg, runc::DEFAULT_TIMEOUT);
    out.assert_success();
    let host = util::run_ok(Command::new(Sensor::binary()).arg("--version"));
    assert_eq!(
        out.stdout, host,
        "the image's sensor is the binary under test"
    );
    assert!(out.stdout.starts_with("sensor "), "{}", out.stdout);
}

/// `runc run` of the sensor, its stdout and stderr read line by line.
struct RunningImage {
    child: Child,
    state: util::TempDir,
    id: String,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    out_lines: Vec<String>,
    err_lines: Vec<String>,
}

impl RunningImage {
    fn start(runc: &Runc, cfg: &ContainerConfig) -> RunningImage {
        let bundle = runc.bundle(cfg);
        let state = util::TempDir::new("image-runc");
        let mut child = Command::new(util::require_tool("runc", "runc"))
            .arg("--root")
            .arg(state.path())
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&cfg.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runc");
        RunningImage {
            stdout: util::line_channel(child.stdout.take().unwrap()),
            stderr: util::line_channel(child.stderr.take().unwrap()),
            child,
            state,
            id: cfg.id.clone(),
            out_lines: Vec::new(),
            err_lines: Vec::new(),
        }
    }

    fn drain(&mut self) {
        self.out_lines.extend(self.stdout.try_iter());
        self.err_lines.extend(self.stderr.try_iter());
    }

    fn stderr(&mut self) -> String {
        self.drain();
        self.err_lines.join("\n")
    }

    /// Waits for a stdout JSON event satisfying `pred`.
    fn wait_event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + EV;
        loop {
            self.drain();
            if let Some(v) = self
                .out_lines
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| pred(v))
            {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "no {what} event from the sensor in the image within {EV:?}\nstdout:\n{}\nstderr:\n{}",
                    util::tail(&self.out_lines.join("\n"), 6000),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_stderr(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.stderr().contains(text) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the sensor container exited ({status}) before {text:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn runc(&self, args: &[&str]) {
        util::run_quiet(
            Command::new("runc")
                .arg("--root")
                .arg(self.state.path())
                .args(args),
        );
    }

    /// SIGINT to the sensor; its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        self.runc(&["kill", &self.id, "INT"]);
        let status = util::poll_until(Duration::from_secs(20), Duration::from_millis(20), || {
            self.child.try_wait().unwrap()
        })
        .unwrap_or_else(|| panic!("the sensor container did not stop:\n{}", self.stderr()));
        std::thread::sleep(Duration::from_millis(200));
        self.drain();
        status
    }
}

impl Drop for RunningImage {
    fn drop(&mut self) {
        self.runc(&["kill", &self.id, "KILL"]);
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.runc(&["delete", "--force", &self.id]);
    }
}

/// Peak memory of a cgroup: v1 `memory.max_usage_in_bytes` where the memory controller is on
/// v1 (hybrid hosts), else v2 `memory.peak`.
fn memory_peak(cgroup: &str) -> u64 {
    let candidates = [
        format!("/sys/fs/cgroup/memory{cgroup}/memory.max_usage_in_bytes"),
        format!("/sys/fs/cgroup/unified{cgroup}/memory.peak"),
        format!("/sys/fs/cgroup{cgroup}/memory.peak"),
    ];
    candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no memory peak file for cgroup {cgroup}: {candidates:?}"))
}

#[test]
fn image_traces_a_pod_with_the_manifest_privileges_mounts_and_memory_limit() {
    let docs = deploy::documents();
    let dir = util::TempDir::new("image-trace");
    let image = unpacked();
    let ns = util::unique_name("dimg");
    let pod = Pod::deployment_replica(&ns, "imaged").with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let runc = Runc::new();

    let id = format!("img-trace-{}", util::random_hex(8));
    let cgroup = format!("/sensor-image/{id}");
    let limit = deploy::memory_limit_bytes(&docs);
    let bin = entrypoint(image);
    let args = [bin.as_str(), "trace", "--json", "--namespace", &ns];
    let cfg = image_container(image, &docs, &id, &cgroup, &args)
        .set("/mounts", json!(mounts(&docs, &kubelet, dir.path())))
        .set("/linux/resources", json!({ "memory": { "limit": limit } }))
        .env("NO_COLOR=1");
    let mut sensor = RunningImage::start(&runc, &cfg);
    let started = Instant::now();
    // Printed once the probes are attached (a missing required one is a start-up error).
    sensor.wait_stderr("capture started", Duration::from_secs(90));
    eprintln!("sensor in the image started in {:?}", started.elapsed());

    let marker = format!("img-{}", util::random_hex(8));
    runc.run(
        &ContainerConfig::sh(&pod, "app", &format!("/bin/echo {marker}; exit 4")),
        runc::DEFAULT_TIMEOUT,
    )
    .assert_code(4);
    let attributed = |v: &Value, kind: &str| {
        v["kind"] == kind
            && v["namespace"] == ns.as_str()
            && v["pod"] == pod.name.as_str()
            && v["container"] == "app"
            && v["workload"] == "imaged"
    };
    sensor.wait_event("exec", |v| {
        attributed(v, "exec") && v["args"] == json!(["/bin/echo", marker])
    });
    sensor.wait_event("exit", |v| attributed(v, "exit") && v["exit_code"] == 4);
    let peak = memory_peak(&cgroup);
    let status = sensor.stop();
    assert!(
        status.success(),
        "sensor exit {status}:\n{}",
        sensor.stderr()
    );
    eprintln!(
        "memory cgroup peak of the sensor container: {:.1} MiB (manifest limit {} MiB)",
        peak as f64 / (1 << 20) as f64,
        limit >> 20
    );
    assert!(
        peak < limit,
        "peak {peak} B reaches the manifest's limit {limit} B"
    );
}
