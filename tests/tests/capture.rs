//! End-to-end capture tests: real runc containers in kubelet-shaped cgroups, traced by the
//! `sensor trace --json` binary, asserted through its JSON output contract.
//!
//! Each test has its own namespace, pod(s), kubelet metadata root, runc root, network peer and
//! sensor process, so tests run in parallel. Sensor-side timeouts are generous (events should
//! arrive within a second); nothing sleeps for a fixed time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::process::Command;
use std::time::Duration;

use sensor_tests::capture_checks::{
    answers_map, common, ev, num, process_fields, qtype, rcode, sensor_for, with_question,
};
use sensor_tests::expect::{self, Expect};
use sensor_tests::{
    CgroupDriver, ContainerConfig, DnsZone, Kubelet, Peer, Pod, Qos, Runc, Runtime, Sensor, cgroup,
    rootfs, runc, util,
};
use serde_json::{Value, json};

/// How long to wait for one expected sensor event.
const EV: Duration = Duration::from_secs(15);
/// How long a container may run.
const RUN: Duration = runc::DEFAULT_TIMEOUT;

// ---------------------------------------------------------------------------------------------
// 1 + 7: exec argv, exit code, attribution (workload from the pod name), both cgroup layouts.

fn exec_and_exit_code(driver: CgroupDriver, runtime: Runtime, qos: Qos) {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "agent")
        .driver(driver)
        .runtime(runtime)
        .qos(qos)
        .with_container("main");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);
    let runc = Runc::new();
    let marker = format!("hello-{}", util::random_hex(10));
    let script = format!("/bin/echo {marker} ; exit 7");
    let out = runc.run(&ContainerConfig::sh(&pod, "main", &script), RUN);
    out.assert_code(7);
    assert_eq!(out.stdout, format!("{marker}\n"));

    let workload = |e: Expect| e.eq("workload", "agent").eq("workload_kind", "deployment");
    let echo = sensor.expect(
        &workload(ev("exec", &pod, "main"))
            .eq("path", "/bin/echo")
            .eq("args", json!(["/bin/echo", marker]))
            .eq("args_truncated", false)
            .eq("uid", 0)
            .eq("comm", "echo"),
        EV,
    );
    let sh_exec = sensor.expect(
        &workload(ev("exec", &pod, "main"))
            .eq("path", "/bin/sh")
            .eq("args", json!(["/bin/sh", "-c", script])),
        EV,
    );
    let sh_exit = sensor.expect(
        &workload(ev("exit", &pod, "main"))
            .eq("comm", "sh")
            .eq("exit_code", 7)
            .absent("signal"),
        EV,
    );
    let echo_exit = sensor.expect(
        &ev("exit", &pod, "main")
            .eq("pid", echo["pid"].clone())
            .eq("exit_code", 0)
            .absent("signal"),
        EV,
    );

    // Process tree and cgroup identity are consistent across events.
    assert_eq!(
        sh_exit["pid"], sh_exec["pid"],
        "the shell's exec and exit carry the same pid"
    );
    assert_eq!(echo["ppid"], sh_exec["pid"], "echo's parent is the shell");
    for e in [&sh_exec, &sh_exit, &echo_exit] {
        assert_eq!(
            e["cgroup_id"], echo["cgroup_id"],
            "one container, one cgroup id: {e}"
        );
    }
}

#[test]
fn exec_argv_and_exit_code_cgroupfs_containerd() {
    exec_and_exit_code(CgroupDriver::Cgroupfs, Runtime::Containerd, Qos::BestEffort);
}

#[test]
fn exec_argv_and_exit_code_systemd_containerd() {
    exec_and_exit_code(CgroupDriver::Systemd, Runtime::Containerd, Qos::Burstable);
}

#[test]
fn exec_argv_and_exit_code_systemd_crio_guaranteed() {
    exec_and_exit_code(CgroupDriver::Systemd, Runtime::Crio, Qos::Guaranteed);
}

#[test]
fn exec_argv_and_exit_code_cgroupfs_crio_burstable() {
    exec_and_exit_code(CgroupDriver::Cgroupfs, Runtime::Crio, Qos::Burstable);
}

// ---------------------------------------------------------------------------------------------
// kubelet metadata that appears while the sensor runs (the normal case on a node).

/// The sensor (a DaemonSet) is up before the pod is scheduled: names written afterwards are
/// picked up.
#[test]
fn pod_created_after_sensor_start() {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "late").with_container("main");
    let kubelet = Kubelet::new();
    let sensor = sensor_for(&kubelet, &ns);
    kubelet.add_pod(&pod);
    let marker = format!("late-{}", util::random_hex(10));
    let runc = Runc::new();
    runc.run(
        &ContainerConfig::for_pod(&pod, "main", &["/bin/echo", &marker]),
        RUN,
    )
    .assert_success();
    sensor.expect(
        &ev("exec", &pod, "main")
            .eq("workload", "late")
            .eq("args", json!(["/bin/echo", marker])),
        EV,
    );
}

/// kubelet creates the `/var/log/containers` symlink only after StartContainer returns, so a
/// container's first events precede it. Events after the symlink appears must be fully
/// attributed (the sensor must not cache the earlier, incomplete lookup for good).
#[test]
fn container_log_symlink_after_container_start() {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "slowlink").with_container("main");
    let kubelet = Kubelet::new();
    kubelet.add_pod_dirs(&pod);
    let sensor = sensor_for(&kubelet, &ns);
    let sync = util::TempDir::new("sync");
    let late = format!("late-{}", util::random_hex(10));
    let script = format!(
        "/bin/echo early; /bin/touch /mnt/started; \
         until [ -e /mnt/go ]; do /bin/sleep 0.02; done; /bin/echo {late}"
    );
    let runc = Runc::new();
    let c = runc.spawn(&ContainerConfig::sh(&pod, "main", &script).bind_mount(
        sync.path(),
        "/mnt",
        false,
    ));
    util::poll_until(Duration::from_secs(10), Duration::from_millis(5), || {
        sync.path().join("started").exists().then_some(())
    })
    .expect("container started");
    kubelet.link_container(&pod, "main");
    std::fs::write(sync.path().join("go"), "").unwrap();
    c.wait(RUN).assert_success();
    sensor.expect(
        &ev("exec", &pod, "main")
            .eq("workload", "slowlink")
            .eq("args", json!(["/bin/echo", late])),
        EV,
    );
}

// ---------------------------------------------------------------------------------------------
// 2: connect + egress flow bytes; accept + ingress flow bytes.

#[test]
fn connect_and_egress_flow_bytes() {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "client").with_container("curl");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);
    let mut peer = Peer::new();
    peer.start_tcp_server(8080);
    let ip = peer.peer_ip().to_string();

    let n: usize = 100_000 + (util::random_bytes(1)[0] as usize) * 37;
    let runc = Runc::new();
    let out = runc.run(
        &ContainerConfig::sh(
            &pod,
            "curl",
            &format!("head -c {n} /dev/zero | /bin/nc {ip} 8080"),
        ),
        RUN,
    );
    out.assert_success();
    assert_eq!(
        out.stdout,
        format!("received {n}\n"),
        "the peer got every byte"
    );

    sensor.expect(
        &ev("connect", &pod, "curl")
            .eq("protocol", "tcp")
            .eq("remote_ip", ip.as_str())
            .eq("remote_port", 8080)
            .eq("origin", "connect")
            .eq("comm", "nc"),
        EV,
    );
    // Emitted when the container's cgroup is removed (runc run does that on exit).
    let reply_len = format!("received {n}\n").len() as f64;
    let flow = sensor.expect(
        &ev("flow", &pod, "curl")
            .eq("protocol", "tcp")
            .eq("direction", "egress")
            .eq("remote_ip", ip.as_str())
            .eq("remote_port", 8080)
            .num_that("connections", ">= 1", |c| c >= 1.0)
            .num_that("bytes_sent", &format!(">= {n}"), move |b| b >= n as f64)
            .num_that("bytes_recv", &format!(">= {reply_len}"), move |b| {
                b >= reply_len
            })
            .num_that("packets_sent", ">= 1", |p| p >= 1.0)
            .num_that("packets_recv", ">= 1", |p| p >= 1.0)
            .present("local_port"),
        EV,
    );
    assert!(
        num(&flow, "bytes_sent") < (n as f64) * 2.0,
        "bytes_sent counts payload, not a multiple: {flow}"
    );
}

#[test]
fn accept_and_ingress_flow_bytes() {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "server").with_container("listener");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);
    let peer = Peer::new();
    let port = {
        let l = TcpListener::bind(("0.0.0.0", 0)).expect("find a free port");
        l.local_addr().unwrap().port()
    };

    let runc = Runc::new();
    let c = runc.spawn(&ContainerConfig::for_pod(
        &pod,
        "listener",
        &["/bin/nc", "-l", "-p", &port.to_string()],
    ));
    // The peer retries until the container listens, sends m bytes, half-closes; nc then exits.
    let m = 777;
    peer.send_tcp(peer.host_ip(), port, m, Duration::from_secs(10));
    let out = c.wait(RUN);
    out.assert_success();
    assert_eq!(out.stdout.len(), m, "the container received every byte");

    let peer_ip = peer.peer_ip().to_string();
    let host_ip = peer.host_ip().to_string();
    sensor.expect(
        &ev("accept", &pod, "listener")
            .eq("protocol", "tcp")
            .eq("remote_ip", peer_ip.as_str())
            .eq("local_ip", host_ip.as_str())
            .eq("local_port", port)
            .eq("comm", "nc"),
        EV,
    );
    sensor.expect(
        &ev("flow", &pod, "listener")
            .eq("protocol", "tcp")
            .eq("direction", "ingress")
            .eq("remote_ip", peer_ip.as_str())
            .eq("local_port", port)
            .num_that("connections", ">= 1", |c| c >= 1.0)
            .num_that("bytes_recv", &format!(">= {m}"), move |b| b >= m as f64),
        EV,
    );
}

// ---------------------------------------------------------------------------------------------
// 3: DNS answers (A through a CNAME chain, AAAA, NXDOMAIN).

#[test]
fn dns_answers_attributed() {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "resolver").with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);

    let r = util::random_hex(8);
    let (www, edge, origin, api, missing) = (
        format!("www-{r}.test.internal"),
        format!("edge-{r}.test.internal"),
        format!("origin-{r}.test.internal"),
        format!("api-{r}.test.internal"),
        format!("missing-{r}.test.internal"),
    );
    let v4: IpAddr = Ipv4Addr::new(192, 0, 2, 20).into();
    let v6: IpAddr = "2001:db8::5e:10".parse::<Ipv6Addr>().unwrap().into();
    let mut peer = Peer::new();
    peer.start_dns_server(
        &DnsZone::new()
            .cname(&www, &edge, 120)
            .cname(&edge, &origin, 120)
            .a(&origin, Ipv4Addr::new(192, 0, 2, 20), 60)
            .aaaa(&api, "2001:db8::5e:10".parse().unwrap(), 90),
    );
    let server = peer.peer_ip().to_string();

    let runc = Runc::new();
    let script = format!(
        "/bin/nslookup {www} {server}; /bin/nslookup -type=aaaa {api} {server}; /bin/nslookup {missing} {server}; true"
    );
    let out = runc.run(&ContainerConfig::sh(&pod, "app", &script), RUN);
    out.assert_success();
    assert!(
        out.stdout.contains("192.0.2.20") && out.stdout.contains("2001:db8::5e:10"),
        "{out:?}"
    );

    let (www_c, origin_c) = (www.clone(), origin.clone());
    sensor.expect(
        &with_question(ev("dns", &pod, "app"), &www)
            .eq("comm", "nslookup")
            .eq("server_ip", server.as_str())
            .that("qtype A", |v| qtype(v, "A", 1))
            .that("rcode NOERROR", |v| rcode(v, "NOERROR", 0))
            .that(
                &format!("answers map {v4} to [{www}, {origin}] with 0 < ttl <= 300"),
                move |v| answers_map(v, v4, &[www_c.clone(), origin_c.clone()]),
            ),
        EV,
    );
    sensor.expect(
        &with_question(ev("dns", &pod, "app"), &api)
            .that("qtype AAAA", |v| qtype(v, "AAAA", 28))
            .that("rcode NOERROR", |v| rcode(v, "NOERROR", 0))
            .that(&format!("answers map {v6} to [{api}]"), {
                let api_c = api.clone();
                move |v| answers_map(v, v6, std::slice::from_ref(&api_c))
            }),
        EV,
    );
    sensor.expect(
        &with_question(ev("dns", &pod, "app"), &missing)
            .that("rcode NXDOMAIN", |v| rcode(v, "NXDOMAIN", 3))
            .that("no answers", |v| {
                v["answers"].as_array().is_none_or(Vec::is_empty)
            }),
        EV,
    );
}

// ---------------------------------------------------------------------------------------------
// 4: service-account token reads (absolute path, relative path, kubelet-style projected volume).

#[test]
fn service_account_token_reads() {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "reader")
        .with_container("plain")
        .with_container("projected");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);
    let sa = rootfs::SERVICE_ACCOUNT_DIR;
    let token = format!("{sa}/token");
    let runc = Runc::new();

    let script = format!("/bin/cat {token} >/dev/null && cd {sa} && /bin/cat token >/dev/null");
    runc.run(&ContainerConfig::sh(&pod, "plain", &script), RUN)
        .assert_success();
    let pattern_ok = |p: &str| p.starts_with("/var/run/secrets/kubernetes.io/serviceaccount");
    let reads = sensor.expect_count(
        &ev("file", &pod, "plain")
            .eq("path", token.as_str())
            .eq("comm", "cat")
            .str_that("pattern", "names the SA dir", pattern_ok),
        2,
        EV,
    );
    let mut pids: Vec<String> = reads.iter().map(|r| r["pid"].to_string()).collect();
    pids.sort();
    pids.dedup();
    assert!(
        pids.len() >= 2,
        "one read by absolute path, one by relative path (two cat processes): {reads:#?}"
    );

    // Like kubelet: the volume is bind-mounted, token -> ..data/token -> ..<timestamp>/token.
    let vol = kubelet.service_account_volume(&pod);
    let cfg = ContainerConfig::sh(&pod, "projected", &format!("/bin/cat {token} >/dev/null"))
        .bind_mount(&vol, sa, true);
    runc.run(&cfg, RUN).assert_success();
    let prefix = format!("{sa}/");
    sensor.expect(
        &ev("file", &pod, "projected")
            .str_that(
                "path",
                &format!("is under {prefix} and names the token"),
                move |p| p.starts_with(&prefix) && p.ends_with("/token"),
            )
            .str_that("pattern", "names the SA dir", pattern_ok),
        EV,
    );
}

// ---------------------------------------------------------------------------------------------
// 5: the final syscall set holds a rare syscall the test made, and only that container's.

#[test]
fn syscall_set_has_rare_syscalls() {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "sys")
        .with_container("rare")
        .with_container("plain");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);
    let runc = Runc::new();

    // busybox adjtimex (read-only, no CAP_SYS_TIME needed) -> clock_adjtime (glibc's adjtimex);
    // ionice -p 1 -> ioprio_get. Neither runc init, the Go runtime nor ash makes them.
    runc.run(
        &ContainerConfig::sh(
            &pod,
            "rare",
            "/bin/adjtimex >/dev/null; /bin/ionice -p 1 >/dev/null; true",
        ),
        RUN,
    )
    .assert_success();
    runc.run(
        &ContainerConfig::sh(&pod, "plain", "/bin/echo plain >/dev/null; true"),
        RUN,
    )
    .assert_success();

    let adj = |v: &Value| {
        v["native"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s == "clock_adjtime" || s == "adjtimex"))
    };
    sensor.expect(
        &ev("syscalls", &pod, "rare")
            .eq("final", true)
            .that("native has clock_adjtime|adjtimex", adj)
            .contains_str("native", "ioprio_get")
            .contains_str("native", "execve")
            .contains_str("native", "exit_group")
            .present("compat"),
        EV,
    );
    let plain = sensor.expect(
        &ev("syscalls", &pod, "plain")
            .eq("final", true)
            .contains_str("native", "execve"),
        EV,
    );
    assert!(
        !adj(&plain),
        "the other container's set must not include clock_adjtime: {plain}"
    );
    assert!(
        !plain["native"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "ioprio_get"),
        "the other container's set must not include ioprio_get: {plain}"
    );
}

// ---------------------------------------------------------------------------------------------
// 6: a container whose whole life is a few tens of milliseconds loses nothing.

#[test]
fn short_lived_containers_lose_nothing() {
    let ns = util::unique_name("st");
    let names: Vec<String> = (0..5).map(|i| format!("blink{i}")).collect();
    let mut pod = Pod::deployment_replica(&ns, "blink");
    for n in &names {
        pod = pod.with_container(n);
    }
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let mut sensor = sensor_for(&kubelet, &ns);
    let runc = Runc::new();
    for n in &names {
        let out = runc.run(&ContainerConfig::for_pod(&pod, n, &["/bin/true"]), RUN);
        out.assert_success();
        eprintln!(
            "{n}: container lived {:?} (runc run wall time)",
            out.duration
        );
    }
    for n in &names {
        let exec = sensor.expect(
            &ev("exec", &pod, n)
                .eq("path", "/bin/true")
                .eq("args", json!(["/bin/true"])),
            EV,
        );
        sensor.expect(
            &ev("exit", &pod, n)
                .eq("pid", exec["pid"].clone())
                .eq("exit_code", 0)
                .eq("comm", "true"),
            EV,
        );
        // The workload's set starts at its exec (`/bin/true` execs nothing itself); runc's
        // work before it, the exec included, is the runtime setup.
        sensor.expect(
            &ev("syscalls", &pod, n)
                .eq("final", true)
                .that("native non-empty", |v| {
                    v["native"].as_array().is_some_and(|a| !a.is_empty())
                })
                .contains_str("native", "exit_group")
                .contains_str("setup_native", "execve")
                .contains_str("setup_native", "pivot_root"),
            EV,
        );
    }
    let status = sensor.stop();
    let stats = sensor.expect(&Expect::kind("stats"), Duration::from_secs(1));
    assert!(
        stats["events"].is_object() && stats["lost"].is_object(),
        "stats shape: {stats}"
    );
    assert!(
        status.success(),
        "sensor exit status after SIGINT: {status}"
    );
    let last = sensor.events().pop().unwrap();
    assert_eq!(last["kind"], "stats", "stats is the last line");
}

// ---------------------------------------------------------------------------------------------
// 8: cgroups outside the kubelet layouts.

#[test]
fn unknown_cgroup_layout_is_host_scope() {
    let kubelet = Kubelet::new();
    // A pod used at the end to show the sensor still works.
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "after").with_container("c");
    kubelet.add_pod(&pod);
    // No --namespace filter: host-scope events have no namespace.
    let mut sensor = Sensor::trace(&kubelet.sensor_args());
    let cg = cgroup::HostCgroup::new(&util::unique_name("sensor-test"));
    let marker = format!("host-{}", util::random_hex(10));
    let busybox = util::require_tool("busybox", "busybox-static");
    let mut cmd = Command::new(&busybox);
    cmd.args(["echo", &marker]);
    cg.enter_on_spawn(&mut cmd);
    let child = cmd
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn busybox");
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());

    let path = cg.path().to_string();
    let exec = sensor.expect(
        &common()
            .that("pid > 0, comm present", |v| process_fields().matches(v))
            .eq("kind", "exec")
            .eq("pid", pid)
            .eq("scope", "host")
            .contains_str("args", &marker)
            .eq("path", busybox.display().to_string())
            .str_that("cgroup", &format!("ends with {path:?}"), move |c| {
                c.ends_with(&path)
            })
            .absent("namespace")
            .absent("pod")
            .absent("container"),
        EV,
    );
    assert_eq!(
        expect::args(&exec),
        vec![busybox.display().to_string(), "echo".into(), marker.clone()]
    );
    assert_eq!(
        num(&exec, "cgroup_id") as u64,
        cg.id(),
        "cgroup_id is the cgroup2 inode"
    );
    sensor.expect(
        &Expect::kind("exit")
            .eq("pid", pid)
            .eq("exit_code", 0)
            .eq("scope", "host"),
        EV,
    );
    drop(cg); // rmdir of an unknown cgroup must not upset the sensor either

    // Still alive and capturing: a pod container is attributed afterwards.
    Runc::new()
        .run(&ContainerConfig::for_pod(&pod, "c", &["/bin/true"]), RUN)
        .assert_success();
    sensor.expect(&ev("exec", &pod, "c").eq("path", "/bin/true"), EV);
    let status = sensor.stop();
    assert!(
        status.success(),
        "sensor exit status after SIGINT: {status}"
    );
    sensor.expect(&Expect::kind("stats"), Duration::from_secs(1));
}

#[test]
fn pod_level_process_has_pod_scope() {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "podscope").with_container("c");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);
    // A process directly in the pod's cgroup (not in a container's), like a pod-level hook.
    let cg = cgroup::HostCgroup::new(&pod.pod_cgroup_path());
    let marker = format!("podlevel-{}", util::random_hex(10));
    let mut cmd = Command::new(util::require_tool("busybox", "busybox-static"));
    cmd.args(["echo", &marker])
        .stdout(std::process::Stdio::null());
    cg.enter_on_spawn(&mut cmd);
    assert!(cmd.status().unwrap().success());
    sensor.expect(
        &common()
            .that("pid > 0, comm present", |v| process_fields().matches(v))
            .eq("kind", "exec")
            .eq("scope", "pod")
            .eq("namespace", ns.as_str())
            .eq("pod", pod.name.as_str())
            .eq("pod_uid", pod.uid.as_str())
            .absent("container")
            .absent("container_id")
            .contains_str("args", &marker),
        EV,
    );
}

// ---------------------------------------------------------------------------------------------
// IPv6: connect and accept over a ULA veth, with flow bytes both ways.

/// `field` parses as an IP address equal to `ip` (so the textual form does not matter).
fn ip_is(e: Expect, field: &str, ip: IpAddr) -> Expect {
    e.str_that(field, &format!("is {ip}"), move |s| {
        s.parse::<IpAddr>().ok() == Some(ip)
    })
}

#[test]
fn ipv6_connect_and_accept() {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "sixer")
        .with_container("client")
        .with_container("server");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);
    let mut peer = Peer::new();
    peer.enable_ipv6();
    let (host6, peer6) = (IpAddr::from(peer.host_ip6()), IpAddr::from(peer.peer_ip6()));
    peer.start_tcp_server_on(peer6, 8080);
    let runc = Runc::new();

    // Egress: the client sends n bytes to [peer6]:8080, the peer replies "received n".
    let n: usize = 50_000 + (util::random_bytes(1)[0] as usize) * 41;
    let out = runc.run(
        &ContainerConfig::sh(
            &pod,
            "client",
            &format!("head -c {n} /dev/zero | /bin/nc {peer6} 8080"),
        ),
        RUN,
    );
    out.assert_success();
    assert_eq!(
        out.stdout,
        format!("received {n}\n"),
        "the peer got every byte"
    );

    // Ingress: the server listens (busybox nc binds [::]), the peer connects to [host6]:port,
    // sends m bytes and half-closes; the server sends `pong` and half-closes.
    let port = {
        let l = TcpListener::bind(("::", 0)).expect("find a free port");
        l.local_addr().unwrap().port()
    };
    let pong = format!("pong-{}", util::random_hex(12));
    let c = runc.spawn(&ContainerConfig::sh(
        &pod,
        "server",
        &format!("printf {pong} | /bin/nc -l -p {port}"),
    ));
    let m = 4321;
    let reply = peer.send_tcp(host6, port, m, Duration::from_secs(10));
    let out = c.wait(RUN);
    out.assert_success();
    assert_eq!(out.stdout.len(), m, "the server received every byte");
    assert_eq!(reply, pong, "the peer received the server's reply");

    sensor.expect(
        &ip_is(ev("connect", &pod, "client"), "remote_ip", peer6)
            .eq("protocol", "tcp")
            .eq("remote_port", 8080)
            .eq("origin", "connect")
            .eq("comm", "nc"),
        EV,
    );
    let nc_exec = sensor.expect(
        &ev("exec", &pod, "server")
            .eq("path", "/bin/nc")
            .eq("args", json!(["/bin/nc", "-l", "-p", port.to_string()])),
        EV,
    );
    let accept = sensor.expect(
        &ip_is(
            ip_is(ev("accept", &pod, "server"), "remote_ip", peer6),
            "local_ip",
            host6,
        )
        .eq("protocol", "tcp")
        .eq("local_port", port)
        .eq("comm", "nc"),
        EV,
    );
    assert_eq!(
        accept["pid"], nc_exec["pid"],
        "the accept names the listening nc process: {accept}"
    );

    // Flows are emitted when each container's cgroup is removed (done: both have exited).
    let reply_len = format!("received {n}\n").len() as f64;
    let egress = sensor.expect(
        &ip_is(ev("flow", &pod, "client"), "remote_ip", peer6)
            .eq("protocol", "tcp")
            .eq("direction", "egress")
            .eq("remote_port", 8080)
            .num_that("connections", ">= 1", |c| c >= 1.0)
            .num_that("bytes_sent", &format!(">= {n}"), move |b| b >= n as f64)
            .num_that("bytes_recv", &format!(">= {reply_len}"), move |b| {
                b >= reply_len
            })
            .num_that("packets_sent", ">= 1", |p| p >= 1.0)
            .num_that("packets_recv", ">= 1", |p| p >= 1.0),
        EV,
    );
    assert!(
        num(&egress, "bytes_sent") < (n as f64) * 2.0,
        "bytes_sent counts payload, not a multiple: {egress}"
    );
    let pong_len = pong.len() as f64;
    sensor.expect(
        &ip_is(ev("flow", &pod, "server"), "remote_ip", peer6)
            .eq("protocol", "tcp")
            .eq("direction", "ingress")
            .eq("local_port", port)
            .num_that("connections", ">= 1", |c| c >= 1.0)
            .num_that("bytes_recv", &format!(">= {m}"), move |b| b >= m as f64)
            .num_that("bytes_sent", &format!(">= {pong_len}"), move |b| {
                b >= pong_len
            })
            .num_that("packets_sent", ">= 1", |p| p >= 1.0)
            .num_that("packets_recv", ">= 1", |p| p >= 1.0),
        EV,
    );
}

// ---------------------------------------------------------------------------------------------
// DNS over TCP: a length-prefixed query written with printf into nc.

#[test]
fn dns_over_tcp_answer() {
    use sensor_tests::dns_client;

    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "tcpdns").with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);

    let r = util::random_hex(8);
    let (alias, target) = (
        format!("alias-{r}.test.internal"),
        format!("target-{r}.test.internal"),
    );
    let v4 = Ipv4Addr::new(192, 0, 2, 77);
    let mut peer = Peer::new();
    peer.start_dns_server(
        &DnsZone::new()
            .cname(&alias, &target, 200)
            .a(&target, v4, 45),
    );
    let server = peer.peer_ip().to_string();

    let id = 0x5a00 | u16::from(util::random_bytes(1)[0]);
    let query = dns_client::tcp_frame(&dns_client::encode_query(id, &alias, dns_client::TYPE_A));
    let script = format!(
        "printf '{}' | /bin/nc {server} 53 | /bin/od -An -tx1 -v",
        dns_client::printf_escaped(&query)
    );
    let run = Runc::new().run(&ContainerConfig::sh(&pod, "app", &script), RUN);
    run.assert_success();
    let out = run.stdout;
    // The container really got the answer over TCP (checked before blaming the sensor).
    let stream = dns_client::parse_od_hex(&out).unwrap_or_else(|e| panic!("od output: {e}"));
    let msgs = dns_client::split_tcp_stream(&stream).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(msgs.len(), 1, "one DNS/TCP reply: {out}");
    let reply = dns_client::decode(&msgs[0]).unwrap();
    assert_eq!((reply.id, reply.rcode), (id, 0), "{reply:?}");
    assert!(
        reply.answers.iter().any(|a| a.data == v4.to_string()),
        "{reply:?}"
    );

    let (alias_c, target_c) = (alias.clone(), target.clone());
    sensor.expect(
        &with_question(ev("dns", &pod, "app"), &alias)
            .eq("comm", "nc")
            .eq("transport", "tcp")
            .eq("server_ip", server.as_str())
            .that("qtype A", |v| qtype(v, "A", 1))
            .that("rcode NOERROR", |v| rcode(v, "NOERROR", 0))
            .that(
                &format!("answers map {v4} to [{alias}, {target}] with 0 < ttl <= 300"),
                move |v| answers_map(v, v4.into(), &[alias_c.clone(), target_c.clone()]),
            ),
        EV,
    );
}

// ---------------------------------------------------------------------------------------------
// Sensitive opens by relative path: joined with the cwd, or with a real dirfd.

#[test]
fn relative_open_through_dirfd_and_cwd() {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "relopen")
        .with_container("shell")
        .with_container("py");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);
    let sa = rootfs::SERVICE_ACCOUNT_DIR;
    let token = format!("{sa}/token");
    let runc = Runc::new();

    // Relative to the cwd: `./token`, `../serviceaccount/token` from the SA dir, and a path
    // that climbs from /tmp.
    let up = format!("..{token}");
    let script = format!(
        "cd {sa} && /bin/cat ./token >/dev/null && /bin/cat ../serviceaccount/token >/dev/null \
         && cd /tmp && /bin/cat {up} >/dev/null"
    );
    runc.run(&ContainerConfig::sh(&pod, "shell", &script), RUN)
        .assert_success();
    for requested in ["./token", "../serviceaccount/token", up.as_str()] {
        sensor.expect(
            &ev("file", &pod, "shell")
                .eq("path", token.as_str())
                .eq("requested", requested)
                .eq("comm", "cat")
                .eq("pattern", "/var/run/secrets/kubernetes.io/serviceaccount/"),
            EV,
        );
    }

    // Relative to a real directory fd (openat(dirfd, ...), not AT_FDCWD), from a cwd (/tmp)
    // that would give a different, wrong path if the sensor joined with the cwd.
    let py = format!(
        "import os\n\
         fd = os.open({sa:?}, os.O_RDONLY | os.O_DIRECTORY)\n\
         os.close(os.open('token', os.O_RDONLY, dir_fd=fd))\n\
         os.close(os.open('../serviceaccount/namespace', os.O_RDONLY, dir_fd=fd))\n\
         print('ok')\n"
    );
    let out = runc.run(
        &ContainerConfig::for_pod(&pod, "py", &[runc::CONTAINER_PYTHON, "-S", "-c", &py])
            .host_usr()
            .cwd("/tmp"),
        RUN,
    );
    out.assert_success();
    assert_eq!(out.stdout, "ok\n");
    for (requested, path) in [
        ("token", token.clone()),
        ("../serviceaccount/namespace", format!("{sa}/namespace")),
    ] {
        sensor.expect(
            &ev("file", &pod, "py")
                .eq("path", path.as_str())
                .eq("requested", requested)
                .str_that("comm", "starts with python", |c| c.starts_with("python"))
                .eq("pattern", "/var/run/secrets/kubernetes.io/serviceaccount/"),
            EV,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a process environment through /proc.

#[test]
fn file_open_of_proc_environ() {
    let ns = util::unique_name("st");
    let pod = Pod::deployment_replica(&ns, "envreader").with_container("main");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let sensor = sensor_for(&kubelet, &ns);
    let marker = format!("SECRET_MARKER={}", util::random_hex(12));
    let out = Runc::new().run(
        &ContainerConfig::sh(
            &pod,
            "main",
            "/bin/cat /proc/1/environ | /bin/tr '\\0' '\\n'",
        )
        .env(&marker),
        RUN,
    );
    out.assert_success();
    assert!(
        out.stdout.lines().any(|l| l == marker),
        "the container read its pid 1's environment: {out:?}"
    );
    sensor.expect(
        &ev("file", &pod, "main")
            .eq("path", "/proc/1/environ")
            .eq("pattern", "/proc/*/environ")
            .absent("requested")
            .eq("comm", "cat"),
        EV,
    );
}
