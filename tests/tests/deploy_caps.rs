//! The DaemonSet's capability set, measured on the real kernel.
//!
//! The set is read from `deploy/daemonset.yaml` (`capabilities.add`), never copied here. The
//! sensor then runs under `setpriv` exactly as containerd runs the container: uid 0,
//! no_new_privs (`allowPrivilegeEscalation: false`), bounding = permitted = effective = that
//! set, nothing inheritable or ambient (checked in `/proc/<pid>/status`). With the set it must
//! attach every probe and report a runc pod's exec, exit, sensitive file read, connect, and an
//! accept on a socket that was listening before the sensor started, with the listening process.
//! Without any one of the added capabilities it must fail with a clear error, or name the
//! missing capability and the loss it causes: otherwise the capability is not needed.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sensor_tests::expect::Expect;
use sensor_tests::{
    ContainerConfig, Daemon, DaemonConfig, Kubelet, Peer, Pod, Runc, Sensor, SensorProcess, deploy,
    rootfs, runc, util,
};

const EV: Duration = Duration::from_secs(15);
const RUN: Duration = runc::DEFAULT_TIMEOUT;

fn manifest_caps() -> Vec<String> {
    deploy::added_capabilities(&deploy::documents())
}

fn without(caps: &[String], cap: &str) -> Vec<String> {
    caps.iter().filter(|c| *c != cap).cloned().collect()
}

/// A free TCP port on the host.
fn free_port() -> u16 {
    let l = TcpListener::bind(("0.0.0.0", 0)).expect("find a free port");
    l.local_addr().unwrap().port()
}

/// Whether something listens on TCP `port` in the host's network namespace.
fn listening(port: u16) -> bool {
    let hex = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && format!("{} ", f[1]).ends_with(&hex) && f[3] == "0A"
            })
        })
    })
}

/// One pod: a `listener` container (nc -l) started before the sensor, and an `app` container
/// run afterwards.
struct Workload {
    ns: String,
    pod: Pod,
    kubelet: Kubelet,
    runc: Runc,
    peer: Peer,
    port: u16,
}

impl Workload {
    fn new(tag: &str) -> Workload {
        let ns = util::unique_name(tag);
        let pod = Pod::deployment_replica(&ns, "caps")
            .with_container("listener")
            .with_container("app");
        let kubelet = Kubelet::new();
        kubelet.add_pod(&pod);
        let mut peer = Peer::new();
        peer.start_tcp_server(8080);
        Workload {
            ns,
            pod,
            kubelet,
            runc: Runc::new(),
            peer,
            port: free_port(),
        }
    }

    fn sensor_args(&self) -> Vec<String> {
        let mut args = vec!["--namespace".to_string(), self.ns.clone()];
        args.extend(self.kubelet.sensor_args());
        args
    }

    /// Starts the listener container and waits until it listens.
    fn start_listener(&self) -> runc::RunningContainer<'_> {
        let c = self.runc.spawn(&ContainerConfig::for_pod(
            &self.pod,
            "listener",
            &["/bin/nc", "-l", "-p", &self.port.to_string()],
        ));
        util::poll_until(Duration::from_secs(10), Duration::from_millis(10), || {
            listening(self.port).then_some(())
        })
        .unwrap_or_else(|| panic!("the listener container does not listen on {}", self.port));
        c
    }

    /// The app reads its token, connects to the peer and exits 3; the peer connects to the
    /// listener, which then exits.
    fn exercise(&self, listener: runc::RunningContainer<'_>) {
        let script = format!(
            "cat {}/token >/dev/null; echo x | /bin/nc {} 8080 >/dev/null; exit 3",
            rootfs::SERVICE_ACCOUNT_DIR,
            self.peer.peer_ip()
        );
        self.runc
            .run(&ContainerConfig::sh(&self.pod, "app", &script), RUN)
            .assert_code(3);
        self.peer
            .send_tcp(self.peer.host_ip(), self.port, 10, Duration::from_secs(10));
        listener.wait(RUN).assert_success();
    }

    fn ev(&self, kind: &str, container: &str) -> Expect {
        Expect::kind(kind).attributed(&self.pod, container)
    }

    fn accept(&self) -> Expect {
        self.ev("accept", "listener")
            .eq("protocol", "tcp")
            .eq("local_port", self.port)
    }
}

/// The sensor's privileges are exactly `caps`, as containerd would set them.
fn assert_privileges(pid: u32, caps: &[String]) {
    let p = deploy::process_privileges(pid);
    let mask = deploy::capability_mask(caps);
    let names = |m| deploy::capability_names(m);
    assert_eq!(
        names(p.effective),
        names(mask),
        "effective capabilities of the sensor (pid {pid})"
    );
    assert_eq!(names(p.permitted), names(mask), "permitted capabilities");
    assert_eq!(names(p.bounding), names(mask), "bounding set");
    assert_eq!((p.inheritable, p.ambient), (0, 0), "inheritable/ambient");
    assert!(
        p.no_new_privs,
        "no_new_privs (allowPrivilegeEscalation: false)"
    );
}

#[test]
fn manifest_capabilities_attach_every_probe_and_capture_a_pod() {
    let caps = manifest_caps();
    let w = Workload::new("dcap");
    let listener = w.start_listener();
    // `capture started` is printed once the probes are attached (a required probe that fails,
    // or any probe refused for lack of privilege, is a start-up error; tests/tests/doctor.rs
    // checks that every probe attaches under this set).
    let mut sensor = Sensor::trace_wrapped(
        &deploy::setpriv_wrapper(&caps),
        &Sensor::binary(),
        &w.sensor_args(),
    );
    assert_privileges(sensor.pid().unwrap(), &caps);
    w.exercise(listener);

    sensor.expect(&w.ev("exec", "app").eq("path", "/bin/sh"), EV);
    let token = format!("{}/token", rootfs::SERVICE_ACCOUNT_DIR);
    sensor.expect(
        // busybox runs `cat` through /proc/self/exe: comm is `exe`.
        &w.ev("file", "app")
            .eq("path", token.as_str())
            .present("pid"),
        EV,
    );
    sensor.expect(
        &w.ev("connect", "app")
            .eq("remote_port", 8080)
            .eq("comm", "nc"),
        EV,
    );
    sensor.expect(&w.ev("exit", "app").eq("comm", "sh").eq("exit_code", 3), EV);
    // The listener predates the sensor: its process is found through /proc/<pid>/fd.
    sensor.expect(&w.accept().eq("comm", "nc").present("pid"), EV);
    let status = sensor.stop();
    assert!(status.success(), "sensor exit: {status}");
}

/// How a sensor run without one capability ended.
enum Start {
    /// Exited before `capture started`.
    Failed { code: Option<i32>, stderr: String },
    /// Started; its stderr up to then.
    Started { stderr: String },
}

/// Runs `sensor trace` under `wrapper` until it starts (then stops it) or exits.
fn try_start(wrapper: &[String], args: &[String]) -> Start {
    let mut child = Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(Sensor::binary())
        .args(["trace", "--json"])
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn setpriv");
    let lines = util::line_channel(child.stderr.take().unwrap());
    let mut stderr = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        while let Ok(line) = lines.try_recv() {
            stderr.push_str(&line);
            stderr.push('\n');
        }
        if stderr.contains("capture started") {
            util::signal(child.id(), libc::SIGINT);
            let _ = child.wait();
            return Start::Started { stderr };
        }
        if let Some(status) = child.try_wait().expect("wait sensor") {
            // The rest of stderr.
            while let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
                stderr.push_str(&line);
                stderr.push('\n');
            }
            return Start::Failed {
                code: status.code(),
                stderr,
            };
        }
        assert!(
            Instant::now() < deadline,
            "sensor neither started nor exited:\n{stderr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_added_capability_is_needed() {
    let caps = manifest_caps();
    assert!(!caps.is_empty(), "the manifest adds capabilities");
    let mut report = Vec::new();
    for cap in &caps {
        let fewer = without(&caps, cap);
        let w = Workload::new("dcapx");
        let listener = w.start_listener();
        match try_start(&deploy::setpriv_wrapper(&fewer), &w.sensor_args()) {
            Start::Failed { code, stderr } => {
                let error = stderr
                    .lines()
                    .find(|l| l.starts_with("error:"))
                    .unwrap_or_else(|| panic!("without {cap}: no `error:` line:\n{stderr}"));
                assert_ne!(code, Some(0), "without {cap} the sensor must fail");
                assert!(
                    stderr.contains("Operation not permitted")
                        || stderr.contains("Permission denied"),
                    "without {cap}: the error names the refused operation:\n{stderr}"
                );
                report.push(format!("{cap}: exit {code:?}, {}", util::tail(error, 200)));
                drop(listener);
            }
            Start::Started { stderr } => {
                // Not fatal: the sensor must say which capability is missing and what it loses.
                let warning = stderr
                    .lines()
                    .find(|l| l.contains(&format!("CAP_{cap}")))
                    .unwrap_or_else(|| {
                        panic!(
                            "without {cap} the sensor starts and reports nothing missing: \
                             {cap} is not needed, remove it from the manifest\n{stderr}"
                        )
                    });
                report.push(format!("{cap}: starts, warns: {}", warning.trim()));
                if cap == "SYS_PTRACE" {
                    // The loss it announces, for real: the accept no longer names the process.
                    let sensor: SensorProcess = Sensor::trace_wrapped(
                        &deploy::setpriv_wrapper(&fewer),
                        &Sensor::binary(),
                        &w.sensor_args(),
                    );
                    w.exercise(listener);
                    let accept = sensor.expect(&w.accept(), EV);
                    assert!(
                        accept.get("pid").is_none() && accept.get("comm").is_none(),
                        "without SYS_PTRACE the pre-existing listener is unreadable: {accept}"
                    );
                }
            }
        }
    }
    eprintln!(
        "capabilities removed one at a time:\n  {}",
        report.join("\n  ")
    );
}

/// The agent itself (`sensor run`) with the ConfigMap's config file and the manifest's
/// capabilities: the file is accepted, the state dir, socket and installed seccomp drafts are
/// written (paths moved to temp dirs by flags, which win over the file).
#[test]
fn agent_runs_with_the_manifest_config_and_capabilities() {
    let docs = deploy::documents();
    let caps = deploy::added_capabilities(&docs);
    let dir = util::TempDir::new("deploy-agent");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, deploy::agent_config(&docs)).unwrap();
    let install = dir.path().join("kubelet-seccomp");
    let w = Workload::new("dagent");
    let agent = Daemon::start(
        DaemonConfig::new(dir.path(), &w.kubelet)
            .learning_period("3s")
            .arg("--config")
            .arg(&config.display().to_string())
            .arg("--install-seccomp-dir")
            .arg(&install.display().to_string())
            .wrapped(deploy::setpriv_wrapper(&caps)),
    );
    assert_privileges(agent.pid().unwrap(), &caps);
    w.runc
        .run(&ContainerConfig::sh(&w.pod, "app", "echo hi"), RUN)
        .assert_success();
    agent.wait_profile((w.ns.as_str(), "caps", "app"), "ready", EV * 2, |p| {
        p["status"] == "ready"
    });
    let installed = install
        .join("sensor")
        .join(&w.ns)
        .join("caps")
        .join("app.json");
    util::poll_until(EV, Duration::from_millis(100), || {
        installed.is_file().then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the ready seccomp draft was not installed at {}\n{}",
            installed.display(),
            agent.diagnostics()
        )
    });
}
