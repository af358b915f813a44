//! `sensor doctor` on the real kernel: it loads and attaches every probe for real, finds a runc
//! pod in its kubelet-shaped cgroup, agrees with the DaemonSet's measured capability set, and
//! says "cannot run" (exit code 1) with the reason when BTF or a capability is missing. And
//! `sensor info` (gRPC `GetInfo`) reports the running agent's probes the same way.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use sensor_tests::{
    CgroupDriver, ContainerConfig, Daemon, DaemonConfig, Kubelet, Pod, Runc, Runtime, Sensor,
    deploy, util,
};

fn doctor(wrapper: &[String], args: &[&str]) -> Output {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(Sensor::binary());
            c
        }
        None => Command::new(Sensor::binary()),
    };
    cmd.arg("doctor")
        .args(args)
        .output()
        .expect("run sensor doctor")
}

fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}):\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` check in {report:#}"))
}

/// The programs of the compatibility table, from `doctor --table`.
fn table_programs() -> Vec<String> {
    let out = doctor(&[], &["--table"]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(2)
        .map(|l| l.split('`').nth(1).expect("program column").to_string())
        .collect()
}

#[test]
fn every_probe_attaches_and_a_running_pod_is_found() {
    let ns = util::unique_name("doc");
    let pod = Pod::deployment_replica(&ns, "doc")
        .driver(CgroupDriver::Systemd)
        .runtime(Runtime::Crio)
        .with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let runc = Runc::new();
    let app = runc.spawn(&ContainerConfig::for_pod(
        &pod,
        "app",
        &["/bin/sleep", "60"],
    ));
    app.wait_running(Duration::from_secs(10));

    let mut args = vec!["--json".to_string()];
    args.extend(kubelet.sensor_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = doctor(&[], &args);
    app.kill("KILL");
    let r = report(&out);
    assert!(out.status.success(), "exit {:?}: {r:#}", out.status.code());
    assert_eq!(r["canRun"], true, "{r:#}");

    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(r["kernelRelease"], release.trim());
    let attached: Vec<&str> = r["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["attached"], true, "{p:#}");
            p["program"].as_str().unwrap()
        })
        .collect();
    assert_eq!(attached, table_programs());
    assert_eq!(r["doesNotCapture"], serde_json::json!([]));

    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let cgroup2 = mountinfo
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split_whitespace().nth(4))
        .expect("cgroup2 mounted");
    let detail = check(&r, "cgroup v2")["detail"].as_str().unwrap();
    assert!(detail.starts_with(cgroup2), "{detail}");
    // The pod's container is in the tree under the systemd driver with CRI-O's naming.
    assert!(
        r["containers"]["runtimes"]["crio"].as_u64() >= Some(1),
        "{r:#}"
    );
    assert!(
        r["containers"]["drivers"]
            .as_array()
            .unwrap()
            .contains(&"systemd".into()),
        "{r:#}"
    );
    assert_eq!(check(&r, "kubelet pod logs")["level"], "ok");
    assert_eq!(check(&r, "BPF ring buffer")["level"], "ok");
}

#[test]
fn the_daemonsets_capabilities_are_enough_and_bpf_is_not_optional() {
    let caps = deploy::added_capabilities(&deploy::documents());
    let out = doctor(&deploy::setpriv_wrapper(&caps), &["--json"]);
    let r = report(&out);
    assert!(out.status.success(), "with {caps:?}: {r:#}");
    assert_eq!(check(&r, "capabilities")["level"], "ok", "{r:#}");
    for p in r["probes"].as_array().unwrap() {
        assert_eq!(p["attached"], true, "with {caps:?}: {p:#}");
    }

    let without_bpf: Vec<String> = caps.iter().filter(|c| *c != "BPF").cloned().collect();
    assert_ne!(without_bpf.len(), caps.len(), "the manifest adds BPF");
    let out = doctor(&deploy::setpriv_wrapper(&without_bpf), &["--json"]);
    let r = report(&out);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["canRun"], false);
    assert_eq!(check(&r, "capabilities")["level"], "fail", "{r:#}");
    let programs = check(&r, "kernel programs");
    assert_eq!(programs["level"], "fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot run on this node"), "{stderr}");
}

#[test]
fn missing_btf_is_named_and_fails() {
    let out = doctor(&[], &["--btf", "/nonexistent/vmlinux"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("kernel BTF"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.trim_start().starts_with("FAIL"), "{line}");
    assert!(
        line.contains("/nonexistent/vmlinux") && line.contains("CONFIG_DEBUG_INFO_BTF"),
        "{line}"
    );
    assert!(
        stdout.contains("verdict: the sensor cannot run on this node"),
        "{stdout}"
    );
}

#[test]
fn the_running_agent_reports_its_probes_over_grpc() {
    let dir = util::TempDir::new("info");
    let kubelet = Kubelet::new();
    let agent = Daemon::start(DaemonConfig::new(dir.path(), &kubelet));
    let info = agent.client(&["info", "--json"]);
    let info = info.ok().json();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(info["kernelRelease"], release.trim());
    let programs: Vec<String> = info["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["attached"], true, "{p:#}");
            assert!(p["needs"].as_str().is_some_and(|n| !n.is_empty()), "{p:#}");
            p["program"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(programs, table_programs());
    assert_eq!(info["notCaptured"], serde_json::json!([]));
    let text = agent.client(&["info"]);
    let text = text.ok();
    assert!(
        text.stdout.contains("every probe is attached"),
        "{}",
        text.stdout
    );
}
