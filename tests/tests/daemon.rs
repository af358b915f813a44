//! End-to-end tests of the agent, `sensor run`: learning profiles from real runc pods, the
//! lifecycle `learning -> ready`, the seccomp and NetworkPolicy drafts (applied for real: runc
//! enforces the seccomp draft, `kubernetes-validate` checks the policy), persistence across
//! `kill -9`, quarantine of corrupt state, configuration errors and client errors.
//!
//! Each test has its own agent, state dir, socket, kubelet metadata root, namespace, pods and
//! runc root, so tests run in parallel with each other and with the capture tests. Nothing
//! sleeps for a fixed time: everything is polled with a deadline.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sensor_tests::daemon::{self, files_under, sensor_cmd};
use sensor_tests::expect::strs;
use sensor_tests::util::{self, TempDir};
use sensor_tests::validate::assert_validates;
use sensor_tests::{
    ContainerConfig, Daemon, DaemonConfig, DnsZone, Kubelet, Peer, Pod, Runc, runc,
};
use serde_json::{Value, json};

/// How long a container may run.
const RUN: Duration = runc::DEFAULT_TIMEOUT;
/// How long an observation may take to reach a profile (syscall sets are read every 2 s,
/// profiles flushed every second here).
const LEARN: Duration = Duration::from_secs(20);

fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Polls until `path` holds JSON satisfying `pred`.
#[track_caller]
fn wait_file_json(agent: &Daemon, path: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = None;
    util::poll_until(LEARN, Duration::from_millis(100), || {
        let v = read_json(path)?;
        let ok = pred(&v);
        last = Some(v.clone());
        ok.then_some(v)
    })
    .unwrap_or_else(|| {
        panic!(
            "{} not {what} within {LEARN:?}; last content: {}\n{}",
            path.display(),
            last.map_or("(missing or not JSON)".into(), |v| v.to_string()),
            agent.diagnostics()
        )
    })
}

fn has_exec(p: &Value, path: &str, args: &[&str]) -> bool {
    p["execs"].as_array().is_some_and(|execs| {
        execs
            .iter()
            .any(|e| e["path"] == path && e["args"] == json!(args))
    })
}

fn free_port() -> u16 {
    let l = TcpListener::bind(("0.0.0.0", 0)).expect("find a free port");
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// 1. learn -> ready -> the enforce draft runs the same pod and refuses what was never seen.

#[test]
fn learn_then_enforce_seccomp() {
    let dir = TempDir::new("agent");
    let ns = util::unique_name("ag");
    let pod = Pod::deployment_replica(&ns, "learner").with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let agent = Daemon::start(DaemonConfig::new(dir.path(), &kubelet).learning_period("4s"));
    let key = (ns.as_str(), "learner", "app");

    let script = "echo start; cat /etc/hostname; ls /; exit 0";
    let runc = Runc::new();
    let learned = runc.run(&ContainerConfig::sh(&pod, "app", script), RUN);
    learned.assert_success();
    assert!(
        learned.stdout.starts_with("start\ntestbed\n") && learned.stdout.contains("etc"),
        "unexpected output of the learning run: {:?}",
        learned.stdout
    );
    runc.run(&ContainerConfig::sh(&pod, "app", script), RUN)
        .assert_success();

    let profile = agent.wait_profile(key, "ready", LEARN, |p| p["status"] == "ready");
    let native = strs(&profile["syscalls"]["native"]);
    for s in ["execve", "write"] {
        assert!(
            native.contains(&s.to_string()),
            "{s} missing from the learned syscalls {native:?}"
        );
    }
    // The rare call the test makes later must really be new to the profile.
    assert!(
        !native.iter().any(|s| s == "ioprio_get"),
        "the learning runs never call ioprio_get, yet the profile has it: {native:?}"
    );
    assert_eq!(profile["completeness"], "full", "{profile}");
    assert!(
        profile["readyAt"].is_string(),
        "a ready profile says since when: {profile}"
    );

    // The drafts on disk, and the same bytes through the API.
    let enforce_path = agent.seccomp_path(key.0, key.1, key.2, false);
    let audit_path = agent.seccomp_path(key.0, key.1, key.2, true);
    for (mode, path) in [("enforce", &enforce_path), ("audit", &audit_path)] {
        let mut last = (String::new(), String::new());
        let same = util::poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
            let file = std::fs::read_to_string(path).unwrap_or_default();
            let out = agent.seccomp(key, mode);
            out.ok();
            last = (file.clone(), out.stdout.clone());
            (!file.is_empty() && file == out.stdout).then_some(())
        });
        assert!(
            same.is_some(),
            "`sensor seccomp --mode {mode}` does not print the content of {}:\nfile:\n{}\nclient:\n{}",
            path.display(),
            last.0,
            last.1
        );
    }
    let enforce = read_json(&enforce_path).expect("the enforce draft is JSON");
    eprintln!("enforce draft {}:\n{}", enforce_path.display(), enforce);
    let audit = read_json(&audit_path).expect("the audit draft is JSON");
    assert_eq!(enforce["defaultAction"], "SCMP_ACT_ERRNO", "{enforce}");
    assert_eq!(audit["defaultAction"], "SCMP_ACT_LOG", "{audit}");
    let allowed: Vec<String> = enforce["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
        .flat_map(|r| strs(&r["names"]))
        .collect();
    assert!(
        allowed.contains(&"execve".to_string()) && !allowed.contains(&"ioprio_get".to_string()),
        "the enforce draft allows {allowed:?}"
    );

    // The same pod under the enforce draft: works, same output.
    let enforced = runc.run(
        &ContainerConfig::sh(&pod, "app", script).seccomp(enforce.clone()),
        RUN,
    );
    assert!(
        enforced.code == Some(0) && enforced.stdout == learned.stdout,
        "the learned command fails under its own enforce draft ({:?}):\nstdout: {:?} (learned: {:?})\n\
         stderr: {}\ndraft: {enforce}",
        enforced.code,
        enforced.stdout,
        learned.stdout,
        enforced.stderr
    );

    eprintln!(
        "learned run: {:?}\nenforced run: {:?}",
        learned.stdout, enforced.stdout
    );
    // A syscall never made (ionice -p 1: ioprio_get) fails with EPERM; the rest still works.
    let rare = "echo start; cat /etc/hostname; ls /; ionice -p 1; echo ionice=$?; exit 0";
    let refused = runc.run(
        &ContainerConfig::sh(&pod, "app", rare).seccomp(enforce.clone()),
        RUN,
    );
    assert!(
        refused.code == Some(0)
            && refused.stdout.starts_with(&learned.stdout)
            && refused.stdout.ends_with("ionice=1\n")
            && refused.stderr.contains("Operation not permitted"),
        "under the enforce draft, ionice's ioprio_get must fail with EPERM while the rest of the \
         container works ({:?}):\nstdout: {:?}\nstderr: {}",
        refused.code,
        refused.stdout,
        refused.stderr
    );

    eprintln!("refused run: {:?} / {:?}", refused.stdout, refused.stderr);
    // The audit draft runs the pod, and the rare call succeeds.
    let audited = runc.run(
        &ContainerConfig::sh(&pod, "app", rare).seccomp(audit.clone()),
        RUN,
    );
    assert!(
        audited.code == Some(0)
            && audited.stdout.starts_with(&learned.stdout)
            && audited.stdout.ends_with("ionice=0\n")
            && !audited.stderr.contains("Operation not permitted"),
        "under the audit draft the pod must run and ionice succeed ({:?}):\nstdout: {:?}\nstderr: {}",
        audited.code,
        audited.stdout,
        audited.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// 2. The NetworkPolicy draft: valid for Kubernetes 1.29 and 1.34, exactly the observed egress.

/// Every (cidr, port, protocol) an egress rule allows; panics on a peer that is not an ipBlock
/// (nothing here is in-cluster) or a rule without ports.
fn egress_allowed(policy: &Value) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    for rule in policy["spec"]["egress"].as_array().into_iter().flatten() {
        let ports = rule["ports"]
            .as_array()
            .unwrap_or_else(|| panic!("an egress rule without ports allows every port: {rule}"));
        let peers = rule["to"]
            .as_array()
            .unwrap_or_else(|| panic!("an egress rule without peers allows everyone: {rule}"));
        for peer in peers {
            let cidr = peer["ipBlock"]["cidr"]
                .as_str()
                .unwrap_or_else(|| panic!("expected only ipBlock peers, got {peer}"));
            assert!(
                peer["ipBlock"]["except"].is_null(),
                "unexpected except in {peer}"
            );
            for p in ports {
                out.push((
                    cidr.to_string(),
                    p["port"]
                        .as_i64()
                        .unwrap_or_else(|| panic!("numeric port expected: {p}")),
                    p["protocol"].as_str().unwrap_or("TCP").to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn netpol_draft_matches_observed_egress() {
    let dir = TempDir::new("agent");
    let ns = util::unique_name("ag");
    let pod = Pod::deployment_replica(&ns, "netclient").with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let mut peer = Peer::new();
    let port: u16 = 8443;
    peer.start_tcp_server(port);
    let ip = peer.peer_ip().to_string();
    let name = format!("api-{}.example.test", util::random_k8s_suffix(6));
    peer.start_dns_server(&DnsZone::new().a(&name, peer.peer_ip(), 300));
    let agent = Daemon::start(DaemonConfig::new(dir.path(), &kubelet));
    let key = (ns.as_str(), "netclient", "app");

    // DNS through the peer, TCP to the peer, and loopback both ways inside the pod (it shares
    // the host network namespace): a listener it starts itself and a client to it.
    let lp = free_port();
    let script = format!(
        "nslookup {name} {ip} || exit 11; \
         echo hello | nc {ip} {port} || exit 12; \
         nc -l -p {lp} > /tmp/got & L=$!; \
         i=0; until echo ping | nc 127.0.0.1 {lp}; do i=$((i+1)); [ $i -gt 100 ] && exit 13; sleep 0.05; done; \
         wait $L; cat /tmp/got"
    );
    let runc = Runc::new();
    let out = runc.run(&ContainerConfig::sh(&pod, "app", &script), RUN);
    out.assert_success();
    assert!(
        out.stdout.contains(&ip)
            && out.stdout.contains("received 6")
            && out.stdout.ends_with("ping\n"),
        "the pod's traffic did not go as planned:\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );

    let has_flow = |p: &Value, ip: &str, port: u16, proto: &str| {
        p["egress"].as_array().is_some_and(|fs| {
            fs.iter()
                .any(|f| f["ip"] == ip && f["port"] == port && f["protocol"] == proto)
        })
    };
    let profile = agent.wait_profile(key, "showing the pod's egress", LEARN, |p| {
        has_flow(p, &ip, port, "tcp")
            && has_flow(p, &ip, 53, "udp")
            && has_flow(p, "127.0.0.1", lp, "tcp")
            && p["resolvers"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["ip"] == ip.as_str()))
    });

    // The draft through the API (JSON to parse, YAML to validate) and on disk.
    let ns_args = ["netpol", "--namespace", key.0, "--workload", key.1];
    let yaml_out = agent.client(&[&ns_args[..], &["--format", "yaml"]].concat());
    yaml_out.ok();
    let json_out = agent.client(&[&ns_args[..], &["--format", "json"]].concat());
    json_out.ok();
    let policy = json_out.json();
    let file = agent.netpol_path(key.0, key.1);
    let mut last_file = String::new();
    let on_disk = util::poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        last_file = std::fs::read_to_string(&file).unwrap_or_default();
        (last_file == yaml_out.stdout).then_some(())
    });
    assert!(
        on_disk.is_some(),
        "{} is not the draft `sensor netpol --format yaml` prints:\nfile:\n{last_file}\nclient:\n{}",
        file.display(),
        yaml_out.stdout
    );
    let check = dir.path().join("netpol-check");
    std::fs::create_dir_all(&check).unwrap();
    let yaml_path = check.join("policy.yaml");
    std::fs::write(&yaml_path, &yaml_out.stdout).unwrap();
    assert_validates(&yaml_path, &yaml_out.stdout);
    assert_validates(&file, &last_file);
    let json_path = check.join("policy.json");
    std::fs::write(&json_path, &json_out.stdout).unwrap();
    assert_validates(&json_path, &json_out.stdout);

    eprintln!("netpol draft {}:\n{}", file.display(), yaml_out.stdout);
    eprintln!("profile egress: {}", profile["egress"]);
    assert_eq!(policy["kind"], "NetworkPolicy", "{policy}");
    assert_eq!(policy["metadata"]["namespace"], ns.as_str(), "{policy}");
    let types = strs(&policy["spec"]["policyTypes"]);
    assert!(types.contains(&"Egress".to_string()), "{policy}");
    let peer32 = format!("{ip}/32");
    let expected = vec![
        (peer32.clone(), 53, "TCP".to_string()),
        (peer32.clone(), 53, "UDP".to_string()),
        (peer32.clone(), i64::from(port), "TCP".to_string()),
    ];
    assert_eq!(
        egress_allowed(&policy),
        expected,
        "the egress of the draft is not exactly the observed non-loopback egress\nprofile: {}\npolicy: {}",
        serde_json::to_string_pretty(&profile).unwrap(),
        serde_json::to_string_pretty(&policy).unwrap()
    );
    // Nothing non-loopback came in, so no ingress rule at all.
    assert!(
        policy["spec"]["ingress"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "no non-loopback ingress was observed, yet: {}",
        policy["spec"]["ingress"]
    );
    // Loopback is nowhere, though the profile saw it.
    for text in [&json_out.stdout, &yaml_out.stdout, &last_file] {
        for local in ["127.0.0.", "::1/", "\"::1\"", " ::1"] {
            assert!(
                !text.contains(local),
                "the draft mentions loopback ({local}):\n{text}"
            );
        }
    }
    // The name resolved for the peer is kept for the reviewer.
    assert!(
        yaml_out.stdout.contains(&name),
        "the DNS name {name} of {peer32} is not in the draft:\n{}",
        yaml_out.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Two replicas of a Deployment share one profile.

#[test]
fn replicas_share_one_profile() {
    let dir = TempDir::new("agent");
    let ns = util::unique_name("ag");
    let hash = util::random_k8s_suffix(10);
    let pods: Vec<Pod> = (0..2)
        .map(|_| {
            let name = format!("web-{hash}-{}", util::random_k8s_suffix(5));
            Pod::new(&ns, &name).with_container("app")
        })
        .collect();
    assert_ne!(pods[0].uid, pods[1].uid);
    let kubelet = Kubelet::new();
    for p in &pods {
        kubelet.add_pod(p);
    }
    let agent = Daemon::start(DaemonConfig::new(dir.path(), &kubelet));
    let runc = Runc::new();
    let running: Vec<_> = pods
        .iter()
        .map(|p| {
            runc.spawn(&ContainerConfig::sh(
                p,
                "app",
                "echo serving; sleep 0.3; exit 0",
            ))
        })
        .collect();
    for c in running {
        c.wait(RUN).assert_success();
    }

    let names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
    let key = (ns.as_str(), "web", "app");
    let profile = agent.wait_profile(key, "listing both replicas", LEARN, |p| {
        let pods = strs(&p["pods"]);
        names.iter().all(|n| pods.contains(n))
    });
    assert_eq!(profile["workloadKind"], "deployment", "{profile}");
    assert_eq!(strs(&profile["pods"]).len(), 2, "{profile}");
    let list = agent.list(Some(&ns));
    assert_eq!(
        list.len(),
        1,
        "two replicas of one Deployment must give one profile, got {}",
        serde_json::to_string_pretty(&list).unwrap()
    );
    assert_eq!(
        (&list[0]["workload"], &list[0]["container"]),
        (&json!("web"), &json!("app")),
        "{list:?}"
    );
    let path = agent.profile_path(key.0, key.1, key.2);
    wait_file_json(&agent, &path, "listing both replicas", |p| {
        let pods = strs(&p["pods"]);
        names.iter().all(|n| pods.contains(n))
    });
    let files: Vec<PathBuf> = files_under(&agent.state_dir().join("profiles").join(&ns));
    assert_eq!(
        files,
        vec![path.clone()],
        "one profile file for the workload"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. kill -9 mid-learning, restart on the same state: the profile continues.

#[test]
fn kill9_mid_learning_then_restart_continues() {
    let dir = TempDir::new("agent");
    let ns = util::unique_name("ag");
    let pod = Pod::deployment_replica(&ns, "durable").with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let config = DaemonConfig::new(dir.path(), &kubelet).learning_period("1h");
    let mut first = Daemon::start(config.clone());
    let key = (ns.as_str(), "durable", "app");
    let runc = Runc::new();
    runc.run(
        &ContainerConfig::for_pod(&pod, "app", &["/bin/echo", "before-restart"]),
        RUN,
    )
    .assert_success();
    let path = first.profile_path(key.0, key.1, key.2);
    wait_file_json(&first, &path, "recording the first exec", |p| {
        has_exec(p, "/bin/echo", &["/bin/echo", "before-restart"])
    });

    let first_pid = first.pid().expect("the first agent runs");
    first.kill9();
    let text = std::fs::read_to_string(&path).expect("the profile file survives kill -9");
    let before: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is corrupt after kill -9 ({e}):\n{text}", path.display()));
    assert!(
        text.ends_with("}\n"),
        "{} looks truncated:\n{text}",
        path.display()
    );
    assert_eq!(before["status"], "learning", "{before}");
    assert!(
        has_exec(&before, "/bin/echo", &["/bin/echo", "before-restart"]),
        "{before}"
    );
    let started = before["learningStarted"].clone();
    assert!(started.is_string(), "{before}");
    // Every other state file is whole too (drafts are written atomically as well).
    for f in files_under(&config.state_dir) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            assert!(
                read_json(&f).is_some(),
                "{} is torn after kill -9",
                f.display()
            );
        }
    }
    // A kill -9 can land in the middle of any atomic write (profile or draft), leaving the
    // writer's temp file (`.<name>.<pid>.tmp`, see the sensor's `write_atomic`). Whether this
    // kill did is a matter of timing, so leave the same files a kill at the worst moment
    // leaves, deterministically: the restarted agent must clean them up.
    let state = config.state_dir.clone();
    let torn = &text.as_bytes()[..text.len() / 2];
    for tmp in [
        state.join(format!("profiles/{ns}/durable/.app.json.{first_pid}.tmp")),
        state.join(format!("seccomp/{ns}/durable/.app.json.{first_pid}.tmp")),
        state.join(format!(
            "seccomp/{ns}/durable/.app.audit.json.{first_pid}.tmp"
        )),
        state.join(format!("netpol/{ns}/.durable.yaml.{first_pid}.tmp")),
    ] {
        std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
        std::fs::write(&tmp, torn).unwrap();
    }

    // Same state dir, same socket path (the stale socket must be replaced).
    let mut second = Daemon::start(config);
    let restored = second
        .show(key.0, key.1, key.2)
        .unwrap_or_else(|| panic!("the profile was not restored\n{}", second.diagnostics()));
    assert_eq!(
        restored["learningStarted"], started,
        "learning must continue, not restart: {restored}"
    );
    assert_eq!(restored["status"], "learning", "{restored}");
    assert_eq!(
        restored["completeness"], before["completeness"],
        "{restored}"
    );
    assert!(
        has_exec(&restored, "/bin/echo", &["/bin/echo", "before-restart"]),
        "the restored profile lost what was learned: {restored}"
    );

    runc.run(
        &ContainerConfig::for_pod(&pod, "app", &["/bin/echo", "after-restart"]),
        RUN,
    )
    .assert_success();
    let both = |p: &Value| {
        has_exec(p, "/bin/echo", &["/bin/echo", "before-restart"])
            && has_exec(p, "/bin/echo", &["/bin/echo", "after-restart"])
    };
    second.wait_profile(
        key,
        "recording the exec made after the restart",
        LEARN,
        both,
    );
    let after = wait_file_json(
        &second,
        &path,
        "recording the exec made after the restart",
        both,
    );
    assert_eq!(after["learningStarted"], started, "{after}");
    assert_eq!(after["status"], "learning", "{after}");

    let status = second.stop();
    assert!(
        status.success(),
        "the agent exits 0 on SIGINT, got {status}\n{}",
        second.diagnostics()
    );
    let final_profile = read_json(&path).expect("the profile parses after a clean stop");
    assert!(both(&final_profile), "{final_profile}");
    let leftovers: Vec<PathBuf> = files_under(second.state_dir())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temp files of the writes interrupted by kill -9 are still there after the restarted \
         agent loaded its state, flushed and stopped: {leftovers:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. A corrupt profile file is moved aside with a warning; the others load.

#[test]
fn corrupt_state_file_is_quarantined() {
    let dir = TempDir::new("agent");
    let ns = util::unique_name("ag");
    let kubelet = Kubelet::new();
    let config = DaemonConfig::new(dir.path(), &kubelet);
    let state = config.state_dir.clone();
    let bad = daemon::profile_path(&state, &ns, "web", "app");
    let good = daemon::profile_path(&state, &ns, "web", "sidecar");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    let garbage = b"{\"version\": 1, \"namespace\": \"x\", \"sysc\x00\xff garbage";
    std::fs::write(&bad, garbage).unwrap();
    let valid = json!({
        "version": 1,
        "namespace": ns,
        "workload": "web",
        "container": "sidecar",
        "workloadKind": "deployment",
        "status": "learning",
        "completeness": "full",
        "learningStarted": "2026-01-01T00:00:00Z",
        "learningPeriodSeconds": 315_360_000u64,
        "updated": "2026-01-01T00:00:00Z",
        "nodes": ["node-a"],
        "pods": ["web-7d9f8b6c4d-x2x9k"],
        "syscalls": { "native": ["exit_group", "read", "write"], "compat": [] },
        "execs": [{
            "path": "/bin/sleep", "args": ["/bin/sleep", "3600"], "count": 1,
            "firstSeen": "2026-01-01T00:00:00Z", "lastSeen": "2026-01-01T00:00:00Z"
        }],
        "egress": [],
        "ingress": [],
        "dns": [],
        "resolvers": [],
        "files": [],
        "overflow": { "execs": false, "egress": false, "ingress": false, "files": false, "dns": false }
    });
    std::fs::write(&good, serde_json::to_vec_pretty(&valid).unwrap()).unwrap();

    let agent = Daemon::start(config);
    let list = agent.list(Some(&ns));
    let keys: Vec<(String, String)> = list
        .iter()
        .map(|s| {
            (
                s["workload"].as_str().unwrap_or_default().to_string(),
                s["container"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![("web".to_string(), "sidecar".to_string())],
        "only the valid profile is listed: {list:?}\n{}",
        agent.diagnostics()
    );
    let shown = agent
        .show(&ns, "web", "sidecar")
        .expect("the valid profile is served");
    assert_eq!(
        shown["learningStarted"], valid["learningStarted"],
        "{shown}"
    );
    assert_eq!(shown["execs"], valid["execs"], "{shown}");
    assert!(
        agent.show(&ns, "web", "app").is_none(),
        "the corrupt profile must not be served"
    );

    let moved = bad.with_file_name("app.json.corrupt");
    assert_eq!(
        std::fs::read(&moved).ok().as_deref(),
        Some(&garbage[..]),
        "the garbage must be moved, intact, to {} (state files: {:?})",
        moved.display(),
        files_under(&state)
    );
    assert!(!bad.exists(), "{} is still in place", bad.display());
    let bad_name = bad.display().to_string();
    let warning = agent
        .stderr()
        .lines()
        .find(|l| l.contains("WARN") && l.contains(&bad_name))
        .map(str::to_string);
    assert!(
        warning.is_some(),
        "no warning naming {bad_name} on stderr:\n{}",
        agent.stderr()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Bad configuration: exit 2, one line, before anything is loaded.

#[test]
fn bad_config_exits_2_with_one_message() {
    let dir = TempDir::new("agent");
    let kubelet = Kubelet::new();
    let config = DaemonConfig::new(dir.path(), &kubelet).learning_period("2fortnights");
    let yaml = dir.path().join("agent.yaml");
    std::fs::write(&yaml, "flushInterval: 1s\nlearnigPeriod: 1h\n").unwrap();
    let mut with_file = DaemonConfig::new(dir.path(), &kubelet).arg("--config");
    with_file.extra.push(yaml.display().to_string());

    let cases: [(&str, Vec<String>, Vec<String>); 2] = [
        (
            "--learning-period 2fortnights",
            config.argv(),
            vec!["--learning-period".into(), "2fortnights".into()],
        ),
        (
            "a config file with an unknown key",
            {
                // No --learning-period flag: the file is what is read.
                let mut v = with_file.argv();
                let i = v.iter().position(|a| a == "--learning-period").unwrap();
                v.drain(i..i + 2);
                v
            },
            vec![yaml.display().to_string(), "learnigPeriod".into()],
        ),
    ];
    for (what, argv, names) in cases {
        let out = sensor_cmd(&argv, Duration::from_secs(30));
        let lines = out.stderr_lines();
        eprintln!(
            "{what}: {:?} in {:?}: {}",
            out.code, out.duration, out.stderr
        );
        assert!(
            out.code == Some(2)
                && lines.len() == 1
                && names.iter().all(|n| lines[0].contains(n.as_str())),
            "{what}: expected exit 2 and one stderr line naming {names:?}; got {:?} in {:?}\n\
             command: {}\nstderr:\n{}\nstdout:\n{}",
            out.code,
            out.duration,
            out.command,
            out.stderr,
            out.stdout
        );
        // Before anything: no state dir, no socket, no probe loading (which takes a while).
        assert!(
            out.duration < Duration::from_secs(3),
            "{what}: took {:?} to refuse a bad configuration",
            out.duration
        );
        assert!(
            !dir.path().join("state").exists() && !dir.path().join("s.sock").exists(),
            "{what}: the agent created its state dir or socket before validating its configuration"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Client errors: unknown profile, unreachable agent.

#[test]
fn grpc_client_errors() {
    let dir = TempDir::new("agent");
    let kubelet = Kubelet::new();
    let agent = Daemon::start(DaemonConfig::new(dir.path(), &kubelet));
    let nope = ["--namespace", "nope", "--workload", "nope"];
    let cases: [Vec<&str>; 3] = [
        [&["profiles", "show"][..], &nope, &["--container", "nope"]].concat(),
        [&["seccomp"][..], &nope, &["--container", "nope"]].concat(),
        [&["netpol"][..], &nope].concat(),
    ];
    for args in &cases {
        let out = agent.client(args);
        let lines = out.stderr_lines();
        eprintln!("{}: {:?}: {}", out.command, out.code, out.stderr);
        let said = lines.first().map(|l| l.to_lowercase()).unwrap_or_default();
        assert!(
            out.code == Some(1)
                && out.stdout.is_empty()
                && lines.len() == 1
                && said.contains("nope")
                && ["not found", "no profile", "no workload", "unknown"]
                    .iter()
                    .any(|w| said.contains(w)),
            "`{}`: expected exit 1 and one line saying `nope` was not found; got {:?}\n\
             stdout: {}\nstderr: {}",
            out.command,
            out.code,
            out.stdout,
            out.stderr
        );
    }

    let missing = dir.path().join("nonexistent.sock");
    let started = Instant::now();
    let out = sensor_cmd(
        &[
            "profiles",
            "list",
            "--server",
            &format!("unix:{}", missing.display()),
        ],
        Duration::from_secs(30),
    );
    let said = out.stderr.to_lowercase();
    assert!(
        out.code == Some(1)
            && out.stdout.is_empty()
            && out.stderr_lines().len() == 1
            && said.contains("cannot reach")
            && said.contains(&missing.display().to_string()),
        "an unreachable agent: expected exit 1 and one line saying it cannot be reached at {}; got \
         {:?} after {:?}\nstderr: {}",
        missing.display(),
        out.code,
        started.elapsed(),
        out.stderr
    );
}
