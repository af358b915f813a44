//! Self-tests of the test bed: everything the sensor tests rely on, without the sensor. Named
//! `bed` so that cargo runs them before `capture`.
//! If one of these fails, the sensor tests' failures say nothing about the sensor.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use sensor_tests::dns_client::{self, TYPE_A, TYPE_AAAA, TYPE_CNAME};
use sensor_tests::{
    CgroupDriver, ContainerConfig, DnsZone, Expect, Kubelet, Network, Peer, Pod, Qos, Rootfs, Runc,
    Runtime, cgroup, rootfs, runc, util,
};
use serde_json::json;

const T: Duration = runc::DEFAULT_TIMEOUT;

#[test]
fn rootfs_has_applets_etc_and_service_account() {
    let r = Rootfs::shared();
    for f in [
        "bin/busybox",
        "bin/sh",
        "bin/nc",
        "bin/nslookup",
        "bin/adjtimex",
        "bin/ionice",
        "etc/passwd",
        "etc/group",
    ] {
        assert!(r.path().join(f).exists(), "rootfs lacks {f}");
    }
    assert!(!r.path().join("bin/busybox").is_symlink());
    for d in ["tmp", "proc", "sys", "dev"] {
        assert!(r.path().join(d).is_dir(), "rootfs lacks /{d}");
    }
    let token = r.host_path(&format!("{}/token", rootfs::SERVICE_ACCOUNT_DIR));
    assert_eq!(std::fs::read_to_string(token).unwrap(), rootfs::DUMMY_TOKEN);
    for f in ["ca.crt", "namespace"] {
        assert!(
            r.host_path(&format!("{}/{f}", rootfs::SERVICE_ACCOUNT_DIR))
                .is_file()
        );
    }
}

#[test]
fn pod_cgroup_paths_follow_kubelet_shapes() {
    let mut p = Pod::new("ns", "p").with_container("c");
    p.uid = "1b2c3d4e-0000-4000-8000-00000000abcd".into();
    p.containers[0].id = "ab".repeat(32);
    let id = "ab".repeat(32);
    let uid = p.uid.clone();
    let uid_ = uid.replace('-', "_");
    assert_eq!(
        p.cgroup_path("c"),
        format!("/kubepods/besteffort/pod{uid}/{id}")
    );
    p.qos = Qos::Burstable;
    assert_eq!(
        p.cgroup_path("c"),
        format!("/kubepods/burstable/pod{uid}/{id}")
    );
    p.qos = Qos::Guaranteed;
    assert_eq!(p.cgroup_path("c"), format!("/kubepods/pod{uid}/{id}"));
    p.runtime = Runtime::Crio;
    assert_eq!(p.cgroup_path("c"), format!("/kubepods/pod{uid}/crio-{id}"));
    p.driver = CgroupDriver::Systemd;
    assert_eq!(
        p.cgroup_path("c"),
        format!("/kubepods.slice/kubepods-pod{uid_}.slice/crio-{id}.scope")
    );
    p.qos = Qos::BestEffort;
    p.runtime = Runtime::Containerd;
    assert_eq!(
        p.cgroup_path("c"),
        format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/cri-containerd-{id}.scope"
        )
    );
    p.runtime = Runtime::Docker;
    assert!(p.cgroup_path("c").ends_with(&format!("/docker-{id}.scope")));

    let d = Pod::deployment_replica("ns", "agent");
    let parts: Vec<&str> = d.name.split('-').collect();
    assert_eq!(
        (parts.len(), parts[0], parts[1].len(), parts[2].len()),
        (3, "agent", 10, 5)
    );
    let u = util::random_uuid();
    assert_eq!((u.len(), &u[14..15]), (36, "4"));
}

/// runc puts the container in the kubelet-shaped cgroup in cgroup2 (what the sensor keys on),
/// propagates the exit code, and removes the container's cgroup when it exits.
#[test]
fn runc_runs_in_kubepods_cgroup_both_layouts() {
    let runc = Runc::new();
    for (driver, runtime) in [
        (CgroupDriver::Cgroupfs, Runtime::Containerd),
        (CgroupDriver::Systemd, Runtime::Containerd),
        (CgroupDriver::Systemd, Runtime::Crio),
    ] {
        let pod = Pod::new(&util::unique_name("tb"), "p")
            .driver(driver)
            .runtime(runtime)
            .with_container("c");
        let path = pod.cgroup_path("c");
        let out = runc.run(
            &ContainerConfig::sh(&pod, "c", "/bin/echo hi; cat /proc/self/cgroup; exit 7"),
            T,
        );
        out.assert_code(7);
        assert!(out.stdout.starts_with("hi\n"), "{out:?}");
        assert!(
            out.stdout.lines().any(|l| l == format!("0::{path}")),
            "not in {path}: {}",
            out.stdout
        );
        assert!(out.cgroup_removed_by_runc, "runc left {path} behind");
        assert!(
            cgroup::exists_v2(&pod.pod_cgroup_path()),
            "pod cgroup made by runc"
        );
        let pod_cg = pod.pod_cgroup_path();
        drop(pod);
        assert!(
            !cgroup::exists_v2(&pod_cg),
            "Pod::drop removes the pod cgroup"
        );
        for h in cgroup::hierarchies() {
            assert!(
                !h.mount.join(pod_cg.trim_start_matches('/')).exists(),
                "left in {}",
                h.mount.display()
            );
        }
    }
}

/// Seen from the host, the container's init process is in the container cgroup.
#[test]
fn runc_background_container_visible_from_host() {
    let runc = Runc::new();
    let pod = Pod::new(&util::unique_name("tb"), "p").with_container("c");
    let c = runc.spawn(&ContainerConfig::for_pod(&pod, "c", &["/bin/sleep", "30"]));
    let pid = c.wait_running(Duration::from_secs(10));
    assert_eq!(
        cgroup::proc_cgroup_v2(pid).as_deref(),
        Some(pod.cgroup_path("c").as_str())
    );
    let id = cgroup::v2_id(&pod.cgroup_path("c")).expect("cgroup exists while running");
    assert!(id > 1);
    c.kill("KILL");
    let out = c.wait(Duration::from_secs(10));
    assert!(!out.timed_out && out.code == Some(137), "{out:?}");
    assert!(out.cgroup_removed_by_runc);
}

#[test]
fn runc_timeout_kills_and_cleans_up() {
    let runc = Runc::new();
    let pod = Pod::new(&util::unique_name("tb"), "p").with_container("c");
    let out = runc.run(
        &ContainerConfig::for_pod(&pod, "c", &["/bin/sleep", "30"]),
        Duration::from_millis(800),
    );
    assert!(out.timed_out, "{out:?}");
    assert!(out.duration < Duration::from_secs(10));
    assert!(!cgroup::exists_v2(&pod.cgroup_path("c")));
}

/// A Localhost-style seccomp profile in config.json is enforced.
#[test]
fn runc_enforces_seccomp_profile() {
    let runc = Runc::new();
    let pod = Pod::new(&util::unique_name("tb"), "p").with_container("c");
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{ "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO" }],
    });
    let cfg = ContainerConfig::sh(&pod, "c", "mkdir /tmp/x && echo made").seccomp(profile);
    let out = runc.run(&cfg, T);
    assert_ne!(out.code, Some(0), "mkdir should be denied: {out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
    // Without the profile it works (and /tmp is a writable tmpfs on the read-only rootfs).
    let pod2 = Pod::new(&util::unique_name("tb"), "p").with_container("c");
    runc.run(
        &ContainerConfig::sh(&pod2, "c", "mkdir /tmp/x && echo made"),
        T,
    )
    .assert_success();
}

#[test]
fn runc_bind_mount_and_private_network() {
    let runc = Runc::new();
    let kubelet = Kubelet::new();
    let pod = Pod::new(&util::unique_name("tb"), "p").with_container("c");
    let vol = kubelet.service_account_volume(&pod);
    let cfg = ContainerConfig::sh(&pod, "c", "cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; ls -a /var/run/secrets/kubernetes.io/serviceaccount; ls /sys/class/net")
        .bind_mount(&vol, rootfs::SERVICE_ACCOUNT_DIR, true)
        .network(Network::Private);
    let out = runc.run(&cfg, T);
    out.assert_success();
    assert!(out.stdout.starts_with(&pod.namespace), "{out:?}");
    assert!(out.stdout.contains("..data"), "{out:?}");
    assert_eq!(
        out.stdout.lines().last(),
        Some("lo"),
        "private netns has only lo: {out:?}"
    );
}

#[test]
fn kubelet_metadata_layout() {
    let kubelet = Kubelet::new();
    let pod = Pod::new(&util::unique_name("tb"), "web-0")
        .with_container("app")
        .with_container("sidecar");
    kubelet.add_pod(&pod);
    for c in &pod.containers {
        let log = kubelet.pods_dir().join(format!(
            "{}_{}_{}/{}/0.log",
            pod.namespace, pod.name, pod.uid, c.name
        ));
        assert!(log.is_file());
        let link = kubelet.containers_dir().join(format!(
            "{}_{}_{}-{}.log",
            pod.name, pod.namespace, c.name, c.id
        ));
        assert_eq!(std::fs::read_link(&link).unwrap(), log);
    }
    let args = kubelet.sensor_args();
    assert_eq!(args[0], "--pod-logs-dir");
    assert_eq!(args[2], "--container-logs-dir");
    kubelet.remove_pod(&pod);
    assert!(!kubelet.pod_log_dir(&pod).exists());
    assert_eq!(
        std::fs::read_dir(kubelet.containers_dir()).unwrap().count(),
        0
    );
}

/// Host <-> peer TCP both ways, and container -> peer through the host's routes.
#[test]
fn netns_peer_reachable() {
    let mut peer = Peer::new();
    assert!(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout
            .windows(peer.netns().len())
            .any(|w| w == peer.netns().as_bytes())
    );
    peer.start_tcp_server(8080);

    // host -> peer
    let mut s = TcpStream::connect_timeout(
        &SocketAddr::from((peer.peer_ip(), 8080)),
        Duration::from_secs(5),
    )
    .unwrap();
    s.write_all(&[b'x'; 1000]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "received 1000\n");

    // container (host netns) -> peer
    let runc = Runc::new();
    let pod = Pod::new(&util::unique_name("tb"), "p").with_container("c");
    let script = format!("head -c 5000 /dev/zero | /bin/nc {} 8080", peer.peer_ip());
    let out = runc.run(&ContainerConfig::sh(&pod, "c", &script), T);
    out.assert_success();
    assert_eq!(out.stdout, "received 5000\n");

    // peer -> host listener
    let listener = TcpListener::bind((peer.host_ip(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut c, from) = listener.accept().unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).unwrap();
        c.write_all(b"ok\n").unwrap();
        (buf.len(), from)
    });
    let reply = peer.send_tcp(peer.host_ip(), port, 321, Duration::from_secs(5));
    assert_eq!(reply, "ok\n");
    let (n, from) = server.join().unwrap();
    assert_eq!((n, from.ip()), (321, std::net::IpAddr::V4(peer.peer_ip())));
}

#[test]
fn netns_peers_get_distinct_subnets() {
    let peers: Vec<Peer> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3).map(|_| s.spawn(Peer::new)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: Vec<Ipv4Addr> = peers.iter().map(|p| p.peer_ip()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 3);
    let names: Vec<String> = peers.iter().map(|p| p.netns().to_string()).collect();
    drop(peers);
    let list = String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for n in names {
        assert!(
            !list
                .lines()
                .any(|l| l.split_whitespace().next() == Some(n.as_str())),
            "netns {n} not deleted"
        );
    }
}

fn test_zone(r: &str) -> DnsZone {
    DnsZone::new()
        .a(
            &format!("api-{r}.test.internal"),
            Ipv4Addr::new(192, 0, 2, 10),
            300,
        )
        .aaaa(
            &format!("api-{r}.test.internal"),
            "2001:db8::10".parse().unwrap(),
            300,
        )
        .cname(
            &format!("www-{r}.test.internal"),
            &format!("edge-{r}.test.internal"),
            60,
        )
        .cname(
            &format!("edge-{r}.test.internal"),
            &format!("origin-{r}.test.internal"),
            60,
        )
        .a(
            &format!("origin-{r}.test.internal"),
            Ipv4Addr::new(192, 0, 2, 20),
            30,
        )
}

/// The peer's DNS server answers A, AAAA, a CNAME chain and NXDOMAIN, over UDP and TCP.
#[test]
fn dns_server_answers_host_queries() {
    let mut peer = Peer::new();
    let r = util::random_hex(6);
    peer.start_dns_server(&test_zone(&r));
    let server = SocketAddr::from((peer.peer_ip(), 53));
    let t = Duration::from_secs(5);

    let a = dns_client::query_udp(server, &format!("api-{r}.test.internal"), TYPE_A, t);
    assert_eq!(a.rcode, 0);
    assert_eq!(a.answers.len(), 1);
    assert_eq!(
        (
            a.answers[0].data.as_str(),
            a.answers[0].ttl,
            a.answers[0].rtype
        ),
        ("192.0.2.10", 300, TYPE_A)
    );

    let aaaa = dns_client::query_udp(server, &format!("API-{r}.test.internal."), TYPE_AAAA, t);
    assert_eq!(aaaa.answers.len(), 1);
    assert_eq!(
        aaaa.answers[0].data.parse::<Ipv6Addr>().unwrap(),
        "2001:db8::10".parse::<Ipv6Addr>().unwrap()
    );

    let chain = dns_client::query_udp(server, &format!("www-{r}.test.internal"), TYPE_A, t);
    let got: Vec<(String, u16, String)> = chain
        .answers
        .iter()
        .map(|a| (a.name.clone(), a.rtype, a.data.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                format!("www-{r}.test.internal"),
                TYPE_CNAME,
                format!("edge-{r}.test.internal")
            ),
            (
                format!("edge-{r}.test.internal"),
                TYPE_CNAME,
                format!("origin-{r}.test.internal")
            ),
            (
                format!("origin-{r}.test.internal"),
                TYPE_A,
                "192.0.2.20".to_string()
            ),
        ]
    );

    let nx = dns_client::query_udp(server, &format!("missing-{r}.test.internal"), TYPE_A, t);
    assert_eq!((nx.rcode, nx.answers.len()), (3, 0));

    let tcp = dns_client::query_tcp(server, &format!("www-{r}.test.internal"), TYPE_A, t);
    assert_eq!(tcp.answers.len(), 3);
}

/// busybox nslookup inside a container gets the answers (the sensor DNS test relies on it).
#[test]
fn dns_server_answers_container_nslookup() {
    let mut peer = Peer::new();
    let r = util::random_hex(6);
    peer.start_dns_server(&test_zone(&r));
    let runc = Runc::new();
    let pod = Pod::new(&util::unique_name("tb"), "p").with_container("c");
    let ip = peer.peer_ip();
    let script = format!(
        "nslookup www-{r}.test.internal {ip}; nslookup -type=aaaa api-{r}.test.internal {ip}; nslookup missing-{r}.test.internal {ip}; true"
    );
    let out = runc.run(&ContainerConfig::sh(&pod, "c", &script), T);
    out.assert_success();
    assert!(
        out.stdout.contains("192.0.2.20"),
        "{out:?}\n{}",
        peer.service_logs()
    );
    assert!(
        out.stdout.contains(&format!("origin-{r}.test.internal")),
        "{out:?}"
    );
    assert!(out.stdout.contains("2001:db8::10"), "{out:?}");
    assert!(
        out.stdout.contains("NXDOMAIN") || out.stderr.contains("NXDOMAIN"),
        "{out:?}"
    );
}

/// A host process can be placed in an arbitrary cgroup2 directory before it execs.
#[test]
fn host_cgroup_placement() {
    let cg = cgroup::HostCgroup::new(&util::unique_name("sensor-test"));
    let mut cmd = Command::new(util::require_tool("busybox", "busybox-static"));
    cmd.args(["cat", "/proc/self/cgroup"]);
    cg.enter_on_spawn(&mut cmd);
    let out = util::run_ok(&mut cmd);
    assert!(
        out.lines().any(|l| l == format!("0::{}", cg.path())),
        "{out}"
    );
    assert!(cg.id() > 1);
    let dir = cgroup::v2_dir(cg.path());
    drop(cg);
    assert!(!dir.exists());
}

#[test]
fn expect_describes_failures() {
    let pod = Pod::new("ns1", "agent-abc-xyz").with_container("c");
    let v = json!({
        "kind": "exec", "scope": "container", "namespace": "ns1", "pod": "agent-abc-xyz",
        "pod_uid": pod.uid, "container": "c", "container_id": pod.container("c").id,
        "cgroup": pod.cgroup_path("c"), "exit_code": 7.0, "args": ["/bin/echo", "hi"],
    });
    let e = Expect::kind("exec")
        .attributed(&pod, "c")
        .eq("exit_code", 7)
        .contains_str("args", "hi");
    assert!(e.matches(&v), "{:?}", e.failures(&v));
    let e2 = Expect::kind("exit").eq("signal", 9).absent("missing");
    assert_eq!(e2.failures(&v), vec!["kind == \"exit\"", "signal == 9"]);
    assert!(e2.to_string().contains("signal == 9"));
}

/// A stand-in for the sensor binary: checks the handle's plumbing (readiness on stderr, JSON
/// lines vs. other stdout, SIGINT -> final lines) independently of the real sensor.
const FAKE_SENSOR: &str = r#"
import json, signal, sys, time
assert sys.argv[1:3] == ["trace", "--json"], sys.argv
print("loading probes...", file=sys.stderr, flush=True)
print("not json", flush=True)
print(json.dumps({"kind": "exec", "args": sys.argv[3:]}), flush=True)
print("capture started", file=sys.stderr, flush=True)
def stop(*_):
    print(json.dumps({"kind": "flow", "bytes_sent": 5}))
    print(json.dumps({"kind": "stats", "events": {"exec": 1}, "lost": {}}))
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
time.sleep(0.3)
print(json.dumps({"kind": "exit", "exit_code": 7}), flush=True)
while True:
    time.sleep(1)
"#;

#[test]
fn sensor_handle_with_fake_binary() {
    let dir = util::TempDir::new("fake-sensor");
    let bin = dir.path().join("sensor");
    std::fs::write(
        &bin,
        format!("#!{}\n{FAKE_SENSOR}", util::python3().display()),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&bin).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&bin, perms).unwrap();

    let mut s = sensor_tests::Sensor::trace_with(&bin, &["--namespace", "x"]);
    let exec = s.expect(&Expect::kind("exec"), Duration::from_secs(5));
    assert_eq!(exec["args"], json!(["--namespace", "x"]));
    s.expect(
        &Expect::kind("exit").eq("exit_code", 7),
        Duration::from_secs(5),
    );
    assert!(
        s.try_wait_for(|v| v["kind"] == "nope", Duration::from_millis(100))
            .is_none()
    );
    assert!(s.status().is_none());
    let status = s.stop();
    assert!(status.success());
    let kinds: Vec<String> = s
        .events()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["exec", "exit", "flow", "stats"]);
    assert!(s.stderr().contains("loading probes"));
    assert!(s.diagnostics(None).contains("not json"));

    // A binary that exits before "capture started": a clear panic naming the problem.
    let early = dir.path().join("early");
    std::fs::write(
        &early,
        "#!/bin/sh\necho 'error: unrecognized subcommand trace' >&2\nexit 2\n",
    )
    .unwrap();
    let mut perms = std::fs::metadata(&early).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&early, perms).unwrap();
    let Err(err) =
        std::panic::catch_unwind(|| sensor_tests::Sensor::trace_with(&early, &[] as &[&str]))
    else {
        panic!("a sensor that exits early must make trace() panic");
    };
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("exited") && msg.contains("unrecognized subcommand trace"),
        "{msg}"
    );
}
