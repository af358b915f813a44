//! The seccomp drafts are made of what the workload did, not of what the container runtime did
//! to start it: runc init's (or crun's) namespaces, mounts, `pivot_root`, hostname and keyring
//! run inside the container's cgroup before the seccomp filter exists, and the kernel keeps
//! them apart (the runtime setup, shown in the profile, never in the drafts). What the runtime
//! does after it installs the filter is the documented runtime floor (docs/profiles.md), the
//! only thing a draft allows beyond the workload's own syscalls.
//!
//! Proved for real: learn a pod, enforce its draft with the runtime that learned it - runc
//! (with and without `noNewPrivileges`), crun, containerd's shim via `ctr` - and for a partial
//! profile (the sensor started after the pod): the pod starts and runs unchanged; with
//! CAP_SYS_ADMIN granted, `unshare`, `mount` and `pivot_root` are refused by the enforce draft
//! and succeed under the audit draft (so it is the draft that refuses them).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sensor_tests::containerd::Containerd;
use sensor_tests::expect::strs;
use sensor_tests::util::{self, TempDir};
use sensor_tests::{ContainerConfig, Daemon, DaemonConfig, Kubelet, Pod, Rootfs, Runc, runc};
use serde_json::{Value, json};

const RUN: Duration = runc::DEFAULT_TIMEOUT;
const LEARN: Duration = Duration::from_secs(30);

/// What runc and crun do to build a container; none may be in a workload's set or a draft
/// here (the workloads below never make them).
const SETUP_PRIMITIVES: &[&str] = &[
    "keyctl",
    "mount",
    "pivot_root",
    "sethostname",
    "setns",
    "umount2",
    "unshare",
];

fn allowed(draft: &Value) -> Vec<String> {
    let mut names: Vec<String> = draft["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| strs(&r["names"]))
        .collect();
    names.sort();
    names
}

/// The runtime floor as docs/profiles.md documents it: the first column of the table under
/// the heading "The runtime floor".
fn documented_floor() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/profiles.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let section = text
        .split("### The runtime floor")
        .nth(1)
        .unwrap_or_else(|| panic!("{} has no `### The runtime floor`", path.display()));
    let names: Vec<String> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cell = l.split('|').nth(1)?.trim();
            Some(cell.strip_prefix('`')?.strip_suffix('`')?.to_string())
        })
        .collect();
    assert!(
        names.len() > 10,
        "the floor table in {} lists {names:?}",
        path.display()
    );
    names
}

/// A learned profile and its drafts, with the floor line of `sensor seccomp`'s notes.
struct Learned {
    profile: Value,
    enforce: Value,
    audit: Value,
    /// Names the enforce draft allows for the runtime only (from the CLI's note).
    floor_added: Vec<String>,
}

fn drafts_of(agent: &Daemon, key: (&str, &str, &str), profile: Value) -> Learned {
    let draft = |mode: &str| {
        let out = agent.seccomp(key, mode);
        out.ok();
        (out.json(), out.stderr.clone())
    };
    let (enforce, notes) = draft("enforce");
    let (audit, _) = draft("audit");
    let floor_line = notes
        .lines()
        .find(|l| l.contains("runtime floor"))
        .unwrap_or_else(|| panic!("no runtime-floor note next to the draft:\n{notes}"));
    let floor_added = floor_line
        .rsplit_once("): ")
        .map(|(_, names)| names.split(", ").map(str::to_string).collect())
        .unwrap_or_else(|| panic!("cannot read the floor note {floor_line:?}"));
    Learned {
        profile,
        enforce,
        audit,
        floor_added,
    }
}

/// The checks every runtime shares: the setup is shown apart, and the draft is exactly the
/// workload's syscalls plus documented floor entries.
/// `expect_setup`: primitives the runtime must have been seen making (none for a container
/// older than the sensor).
fn assert_workload_only(l: &Learned, expect_setup: &[&str]) {
    let native = strs(&l.profile["syscalls"]["native"]);
    let setup = strs(&l.profile["syscalls"]["runtimeSetup"]["native"]);
    for p in SETUP_PRIMITIVES {
        assert!(
            !native.iter().any(|s| s == p),
            "{p} is in the workload's syscalls {native:?} (runtime setup: {setup:?})"
        );
    }
    if !expect_setup.is_empty() {
        for p in expect_setup {
            assert!(
                setup.iter().any(|s| s == p),
                "the runtime's {p} is not shown in the profile's runtime setup {setup:?}\n{}",
                l.profile
            );
        }
    } else {
        assert!(
            setup.is_empty(),
            "a container older than the sensor has no observed setup: {setup:?}"
        );
    }
    let draft = allowed(&l.enforce);
    let documented = documented_floor();
    for name in &l.floor_added {
        assert!(
            documented.contains(name),
            "the draft adds {name}, which docs/profiles.md does not document"
        );
        assert!(!native.contains(name), "{name} is the workload's own");
    }
    let mut want: Vec<String> = native.iter().chain(&l.floor_added).cloned().collect();
    want.sort();
    want.dedup();
    assert_eq!(
        draft, want,
        "the enforce draft is not exactly the workload's syscalls plus the floor it names"
    );
    for p in SETUP_PRIMITIVES {
        assert!(!draft.iter().any(|s| s == p), "the draft allows {p}");
    }
    assert_eq!(l.audit["defaultAction"], "SCMP_ACT_LOG");
}

fn learn(agent: &Daemon, key: (&str, &str, &str), expect_full: bool) -> Learned {
    let profile = agent.wait_profile(key, "ready", LEARN, |p| p["status"] == "ready");
    let completeness = if expect_full { "full" } else { "partial" };
    assert_eq!(profile["completeness"], completeness, "{profile}");
    drafts_of(agent, key, profile)
}

/// Every capability the escape primitives need, so that only seccomp can refuse them.
fn with_sys_admin(cfg: ContainerConfig) -> ContainerConfig {
    let caps = json!([
        "CAP_SYS_ADMIN",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE"
    ]);
    cfg.set(
        "/process/capabilities",
        json!({ "bounding": caps, "effective": caps, "permitted": caps }),
    )
}

/// Learns with `runtime`, then enforces: the shared proof for runc and crun.
fn learn_and_enforce(runtime: Runc, workload: &str) {
    let dir = TempDir::new("setup");
    let ns = util::unique_name("rs");
    let pod = Pod::deployment_replica(&ns, workload).with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let agent = Daemon::start(DaemonConfig::new(dir.path(), &kubelet).learning_period("4s"));
    let key = (ns.as_str(), workload, "app");

    let base = "echo start; mkdir -p /tmp/m /tmp/old; cat /etc/hostname; ls /; echo done";
    let pod_sh = |script: &str| with_sys_admin(ContainerConfig::sh(&pod, "app", script));
    let learned_run = runtime.run(&pod_sh(base), RUN);
    learned_run.assert_success();
    runtime.run(&pod_sh(base), RUN).assert_success();
    let l = learn(&agent, key, true);
    eprintln!(
        "{:?}: workload {:?}\nruntime setup {:?}\nfloor added {:?}",
        runtime.kind(),
        strs(&l.profile["syscalls"]["native"]),
        strs(&l.profile["syscalls"]["runtimeSetup"]["native"]),
        l.floor_added
    );
    // runc and crun set the spec's hostname (`testbed`).
    assert_workload_only(&l, &["mount", "pivot_root", "sethostname"]);

    // The pod starts under its draft and runs unchanged: with no_new_privs (the filter goes
    // on just before the exec) and without (Kubernetes' default: before the runtime drops
    // capabilities and switches user, so the floor carries it to the exec).
    for nnp in [true, false] {
        let cfg = pod_sh(base)
            .set("/process/noNewPrivileges", json!(nnp))
            .seccomp(l.enforce.clone());
        let out = runtime.run(&cfg, RUN);
        assert!(
            out.code == Some(0) && out.stdout == learned_run.stdout,
            "{:?} (noNewPrivileges {nnp}) fails under the enforce draft ({:?}):\nstdout: {:?} \
             (learned: {:?})\nstderr: {}\ndraft: {}",
            runtime.kind(),
            out.code,
            out.stdout,
            learned_run.stdout,
            out.stderr,
            l.enforce
        );
    }

    // The escape primitives, with the capabilities they need: refused by the enforce draft...
    let escape = format!(
        "{base}; unshare -m true; echo u=$?; mount -t tmpfs none /tmp/m; echo m=$?; \
         pivot_root /tmp /tmp/old; echo p=$?"
    );
    let out = runtime.run(&pod_sh(&escape).seccomp(l.enforce.clone()), RUN);
    let tail = out.stdout.trim_start_matches(&learned_run.stdout);
    assert!(
        out.code == Some(0)
            && out.stdout.starts_with(&learned_run.stdout)
            && tail.contains("u=1")
            && !tail.contains("m=0")
            && tail.contains("p=1")
            // busybox mount words EPERM as "you must be root"
            && out.stderr.matches("Operation not permitted").count() >= 2
            && out.stderr.contains("mount: you must be root"),
        "under the enforce draft unshare, mount and pivot_root must fail with EPERM \
         ({:?}):\nstdout: {:?}\nstderr: {}",
        out.code,
        out.stdout,
        out.stderr
    );
    // ...and allowed under the audit draft, so it is the draft, not a capability, that refuses.
    let audited = format!(
        "{base}; unshare -m true; echo u=$?; mount -t tmpfs none /tmp/m; echo m=$?; \
         unshare -m pivot_root /tmp /tmp/old; echo p=$?"
    );
    let out = runtime.run(&pod_sh(&audited).seccomp(l.audit.clone()), RUN);
    assert!(
        out.code == Some(0) && out.stdout.ends_with("u=0\nm=0\np=0\n"),
        "under the audit draft the same calls succeed ({:?}):\nstdout: {:?}\nstderr: {}",
        out.code,
        out.stdout,
        out.stderr
    );
}

#[test]
fn runc_draft_leaves_out_the_runtime_setup_and_the_pod_still_starts() {
    learn_and_enforce(Runc::new(), "setup-runc");
}

#[test]
fn crun_draft_leaves_out_the_runtime_setup_and_the_pod_still_starts() {
    learn_and_enforce(Runc::crun(), "setup-crun");
}

/// The sensor starts after the pod: the profile is partial, has no runtime setup, and its
/// draft (the workload's calls seen since, plus the floor) still starts the pod.
#[test]
fn partial_profile_draft_starts_the_pod() {
    let dir = TempDir::new("setup-partial");
    let ns = util::unique_name("rsp");
    let pod = Pod::deployment_replica(&ns, "late").with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let runc = Runc::new();
    let step = "cat /etc/hostname; ls / >/dev/null; mkdir -p /tmp/x";
    let forever = format!("while true; do {step}; sleep 0.2; done");
    let running = runc.spawn(&ContainerConfig::sh(&pod, "app", &forever));
    running.wait_running(RUN);

    let agent = Daemon::start(DaemonConfig::new(dir.path(), &kubelet).learning_period("4s"));
    let key = (ns.as_str(), "late", "app");
    let l = learn(&agent, key, false);
    running.kill("KILL");
    drop(running);
    assert_workload_only(&l, &[]);

    let bounded = format!("i=0; while [ $i -lt 3 ]; do {step}; i=$((i+1)); done; echo done");
    let plain = runc.run(&ContainerConfig::sh(&pod, "app", &bounded), RUN);
    plain.assert_success();
    let enforced = runc.run(
        &ContainerConfig::sh(&pod, "app", &bounded).seccomp(l.enforce.clone()),
        RUN,
    );
    assert!(
        enforced.code == Some(0) && enforced.stdout == plain.stdout,
        "the partial profile's enforce draft does not start the pod ({:?}):\nstdout: {:?}\n\
         stderr: {}\ndraft: {}",
        enforced.code,
        enforced.stdout,
        enforced.stderr,
        l.enforce
    );
}

/// Under containerd (`ctr`, containerd-shim-runc-v2 -> runc): learned, then run with
/// `--seccomp-profile <the enforce draft>`.
#[test]
fn containerd_draft_leaves_out_the_runtime_setup_and_the_pod_still_starts() {
    let containerd = Containerd::start();
    let dir = TempDir::new("setup-ctr");
    let ns = util::unique_name("rsc");
    let pod = Pod::deployment_replica(&ns, "ctr-app").with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let agent = Daemon::start(DaemonConfig::new(dir.path(), &kubelet).learning_period("4s"));
    let key = (ns.as_str(), "ctr-app", "app");
    let script = "echo start; cat /etc/hostname; ls /; echo done";
    let id = pod.container("app").id.clone();
    let ctr_run = |seccomp: Option<&Path>| {
        let mut cmd: Command = containerd.command();
        cmd.args(["run", "--rm", "--rootfs", "--read-only", "--net-host"])
            .arg("--cgroup")
            .arg(pod.cgroup_path("app"))
            .args([
                "--mount",
                "type=tmpfs,src=tmpfs,dst=/tmp,options=rw:nosuid:nodev",
            ]);
        if let Some(profile) = seccomp {
            cmd.arg("--seccomp").arg("--seccomp-profile").arg(profile);
        }
        let out = cmd
            .arg(Rootfs::shared().path())
            .arg(&id)
            .args(["/bin/sh", "-c", script])
            .output()
            .expect("ctr run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, learned, err) = ctr_run(None);
    assert!(
        code == Some(0) && learned.starts_with("start\n"),
        "ctr run: {code:?} {learned:?} {err}\n{}",
        util::tail(&containerd.log(), 3000)
    );
    ctr_run(None);
    let l = learn(&agent, key, true);
    // ctr sets no hostname.
    assert_workload_only(&l, &["mount", "pivot_root"]);

    let draft = dir.path().join("enforce.json");
    std::fs::write(&draft, l.enforce.to_string()).unwrap();
    let (code, out, err) = ctr_run(Some(&draft));
    assert!(
        code == Some(0) && out == learned,
        "under containerd the enforce draft does not start the pod ({code:?}):\nstdout: {out:?} \
         (learned: {learned:?})\nstderr: {err}\ndraft: {}",
        l.enforce
    );
}
