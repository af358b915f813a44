//! The image in a real containerd (Debian's 1.6): imported the way `kind load image-archive`
//! imports it, then run by `ctr` with the DaemonSet's settings and containerd's own
//! RuntimeDefault seccomp profile (`--seccomp`, generated from the container's capabilities,
//! as the CRI plugin does for `seccompProfile: RuntimeDefault`).
//!
//! Why: the manifest chooses RuntimeDefault over Unconfined on the strength of containerd
//! allowing bpf() and perf_event_open() to a container holding CAP_BPF and CAP_PERFMON. This
//! checks the generated profile and runs the sensor under it: every probe must attach and a
//! runc pod's exec must be reported.

use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sensor_tests::containerd::Containerd;
use sensor_tests::{ContainerConfig, Kubelet, Pod, Runc, deploy, runc, util};
use serde_json::{Value, json};

fn image_archive() -> std::path::PathBuf {
    let path = std::env::var_os("SENSOR_IMAGE")
        .map(std::path::PathBuf::from)
        .expect("SENSOR_IMAGE is not set: `cargo xtask test` builds the image and sets it");
    assert!(
        path.is_file(),
        "SENSOR_IMAGE={} does not exist",
        path.display()
    );
    path
}

/// Names of the syscalls a seccomp profile allows unconditionally.
fn allowed(seccomp: &Value) -> Vec<String> {
    seccomp["syscalls"]
        .as_array()
        .expect("seccomp syscalls")
        .iter()
        .filter(|r| {
            r["action"] == "SCMP_ACT_ALLOW" && r["args"].as_array().is_none_or(|a| a.is_empty())
        })
        .flat_map(|r| r["names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(String::from))
        .collect()
}

#[test]
fn image_imports_like_kind_and_runs_under_containerds_runtime_default_seccomp() {
    let docs = deploy::documents();
    let reference = deploy::sensor_container(&docs)["image"]
        .as_str()
        .unwrap()
        .to_string();
    let caps = deploy::added_capabilities(&docs);
    let containerd = Containerd::start();

    let import = containerd.import(&image_archive());
    assert!(
        import.status.success(),
        "ctr images import: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let images =
        String::from_utf8_lossy(&containerd.ctr(&["images", "ls", "-q"]).stdout).to_string();
    let name = format!("docker.io/library/{reference}");
    assert!(
        images.lines().any(|l| l == name),
        "{name} imported; images: {images}"
    );

    // drop: ALL = drop every capability of containerd's default spec, then add the manifest's.
    let default_caps: Vec<String> =
        containerd.default_spec()["process"]["capabilities"]["bounding"]
            .as_array()
            .expect("default bounding set")
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
    let ns = util::unique_name("dctr");
    let pod = Pod::deployment_replica(&ns, "ctrd").with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let scratch = util::TempDir::new("ctr-volumes");
    let id = format!("sensor-{}", util::random_hex(8));
    let mut cmd = containerd.command();
    cmd.args(["run", "--rm", "--read-only", "--seccomp", "--net-host"])
        // hostPID: the host's pid namespace (this process's: /proc/1 is not ours to open here).
        .arg("--with-ns")
        .arg(format!("pid:/proc/{}/ns/pid", std::process::id()))
        .args(["--env", "NO_COLOR=1"]);
    for cap in &default_caps {
        cmd.args(["--cap-drop", cap]);
    }
    for cap in &caps {
        cmd.args(["--cap-add", &format!("CAP_{cap}")]);
    }
    for (source, inside, readonly) in deploy::test_volumes(&docs, &kubelet, scratch.path()) {
        let options = if readonly { "rbind:ro" } else { "rbind:rw" };
        cmd.arg("--mount").arg(format!(
            "type=bind,src={},dst={inside},options={options}",
            source.display()
        ));
    }
    let mut sensor = cmd
        .arg(&name)
        .arg(&id)
        .args([
            "/usr/local/bin/sensor",
            "trace",
            "--json",
            "--namespace",
            &ns,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ctr run");
    let stdout = util::line_channel(sensor.stdout.take().unwrap());
    let stderr = std::io::BufReader::new(sensor.stderr.take().unwrap());
    let (tx, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut err_lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !err_lines
        .iter()
        .any(|l: &String| l.contains("capture started"))
    {
        if let Ok(line) = started.recv_timeout(Duration::from_millis(100)) {
            err_lines.push(line);
        }
        if let Some(status) = sensor.try_wait().unwrap() {
            err_lines.extend(started.try_iter());
            panic!(
                "the sensor under containerd exited ({status}) before attaching:\n{}\ncontainerd log:\n{}",
                err_lines.join("\n"),
                util::tail(&containerd.log(), 3000)
            );
        }
        assert!(
            Instant::now() < deadline,
            "no `capture started` within 90 s:\n{}",
            err_lines.join("\n")
        );
    }

    // What containerd generated: exactly the manifest's capabilities, no_new_privs, and its
    // RuntimeDefault profile (default deny) that allows bpf and perf_event_open.
    let config = containerd.runtime_config(&id);
    let process = &config["process"];
    let want: Vec<String> = caps.iter().map(|c| format!("CAP_{c}")).collect();
    for set in ["bounding", "effective", "permitted"] {
        let mut got: Vec<String> = process["capabilities"][set]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        got.sort();
        let mut want = want.clone();
        want.sort();
        assert_eq!(got, want, "{set} capabilities containerd set");
    }
    assert_eq!(process["noNewPrivileges"], true);
    let seccomp = &config["linux"]["seccomp"];
    assert_eq!(
        seccomp["defaultAction"], "SCMP_ACT_ERRNO",
        "RuntimeDefault denies by default"
    );
    let allowed = allowed(seccomp);
    for syscall in ["bpf", "perf_event_open"] {
        assert!(
            allowed.iter().any(|s| s == syscall),
            "{syscall} allowed by containerd's profile"
        );
    }
    assert_eq!(config["root"]["readonly"], true);

    let marker = format!("ctrd-{}", util::random_hex(8));
    Runc::new()
        .run(
            &ContainerConfig::sh(&pod, "app", &format!("/bin/echo {marker}")),
            runc::DEFAULT_TIMEOUT,
        )
        .assert_success();
    let want_args = json!(["/bin/echo", marker]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let exec = loop {
        if let Ok(line) = stdout.recv_timeout(Duration::from_millis(100)) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["kind"] == "exec"
                && v["pod"] == pod.name.as_str()
                && v["args"] == want_args
            {
                break v;
            }
            seen.push(line);
        }
        assert!(
            Instant::now() < deadline,
            "no exec event of the pod from the sensor under containerd:\n{}",
            util::tail(&seen.join("\n"), 4000)
        );
    };
    assert_eq!(exec["container"], "app");
    assert_eq!(exec["namespace"], ns.as_str());
    let kill = containerd.ctr(&["tasks", "kill", "-s", "INT", &id]);
    assert!(kill.status.success(), "ctr tasks kill");
    let status = util::poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
        sensor.try_wait().unwrap()
    })
    .expect("the sensor stops on SIGINT");
    assert!(status.success(), "sensor under containerd exited {status}");
}
