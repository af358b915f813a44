//! Capture on Debian bookworm's 6.1 kernel (the kernel line of EKS's AL2023 nodes), booted
//! under QEMU: every probe loads, and an exec (argv), a TCP connect (with byte counts), a DNS
//! answer, a syscall set and a token read through a symlink (by the fentry file hook this host
//! cannot use) are captured and attributed to a pod's container inside the guest.
//!
//! The guest's `/init` builds a kubelet-shaped cgroup2 path and kubelet's `/var/log/pods`
//! metadata, starts `sensor trace --json`, runs the workload inside the container cgroup
//! (peers: `guest_peer` on loopback), removes the cgroup (which ends the flows and the syscall
//! set), and prints the sensor's output on the console. The events are judged here with the
//! host-kernel tests' checks (`capture_checks`), so a kernel layout difference fails the build.
//!
//! Kernel: `$SENSOR_GUEST_KERNEL` (downloaded and cached by `cargo xtask test`).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sensor_tests::capture_checks::{answers_map, ev, num, qtype, rcode, with_question};
use sensor_tests::expect::{self, Expect};
use sensor_tests::qemu::{self, Console, Initramfs};
use sensor_tests::{CgroupDriver, Pod, Qos, Runtime, Sensor, util};
use serde_json::{Value, json};

/// Boot, workload and the sensor's shutdown together (TCG emulation; ~3 s boot).
const GUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The guest waits this long (seconds) for the sensor to attach, and for the final events.
const GUEST_WAIT_S: u32 = 60;
const TCP_PORT: u16 = 8080;
const DNS_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// What the guest does, all known to the host before it boots.
struct Scenario {
    pod: Pod,
    marker: String,
    name: String,
    bytes: usize,
}

impl Scenario {
    fn new() -> Scenario {
        let ns = util::unique_name("k61");
        let pod = Pod::deployment_replica(&ns, "guest")
            .driver(CgroupDriver::Systemd)
            .runtime(Runtime::Containerd)
            .qos(Qos::BestEffort)
            .with_container("main");
        let r = util::random_hex(8);
        Scenario {
            pod,
            marker: format!("hello-{r}"),
            name: format!("www-{r}.test.internal"),
            bytes: 100_000 + (util::random_bytes(1)[0] as usize) * 37,
        }
    }

    /// The container's commands: an exec with argv, a DNS query, a TCP upload, two syscalls no
    /// shell makes (adjtimex -> clock_adjtime, ionice -p -> ioprio_get), and a read of the
    /// service-account token through a directory symlink.
    fn workload(&self) -> String {
        format!(
            "/bin/echo {marker}\n\
             /bin/nslookup {name} 127.0.0.1\n\
             head -c {n} /dev/zero | /bin/nc 127.0.0.1 {TCP_PORT}\n\
             /bin/adjtimex >/dev/null; /bin/ionice -p 1 >/dev/null; true\n\
             ln -s {sa} /tmp/sa && /bin/cat /tmp/sa/token >/dev/null\n",
            marker = self.marker,
            name = self.name,
            n = self.bytes,
            sa = SA_DIR,
        )
    }

    /// The guest's `/init` (busybox sh).
    fn init(&self) -> String {
        let cgroup = format!("/sys/fs/cgroup{}", self.pod.cgroup_path("main"));
        let wait = GUEST_WAIT_S * 10;
        format!(
            r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin NO_COLOR=1 NODE_NAME=guest-61
{section_fn}
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing
ip link set lo up
# Polls (0.1 s steps, up to {GUEST_WAIT_S} s) until the command succeeds.
until_ok() {{ i=0; until "$@"; do i=$((i+1)); [ $i -ge {wait} ] && return 1; sleep 0.1; done; }}
section uname uname -r
mkdir -p {cgroup}
section doctor /sensor doctor --json
/sensor trace --json --namespace {ns} >/tmp/events 2>/tmp/sensor.err &
sensor=$!
# Until the sensor attached its probes; fails at once if it exited (its stderr says why).
wait_started() {{
  i=0
  until grep -q "capture started" /tmp/sensor.err; do
    kill -0 $sensor 2>/dev/null || return 1
    i=$((i+1)); [ $i -ge {wait} ] && return 1; sleep 0.1
  done
}}
if wait_started; then
  /guest_peer 127.0.0.1 {TCP_PORT} {name}={ip} >/tmp/peer.out 2>&1 &
  until_ok grep -q ready /tmp/peer.out
  section workload sh -c 'echo $$ > {cgroup}/cgroup.procs && exec sh /workload.sh'
  rmdir {cgroup}
  section final-events until_ok grep -q '"final":true' /tmp/events
  kill -INT $sensor
fi
wait $sensor
section sensor-exit echo $?
section peer cat /tmp/peer.out
section sensor-stderr cat /tmp/sensor.err
section events cat /tmp/events
poweroff -f
"#,
            section_fn = qemu::SECTION_FN,
            ns = self.pod.namespace,
            name = self.name,
            ip = DNS_ANSWER,
        )
    }

    /// kubelet's metadata for the pod (what the sensor reads names from).
    fn kubelet_metadata(&self, fs: &Initramfs) {
        let pod = &self.pod;
        let c = pod.container("main");
        let log = format!(
            "/var/log/pods/{}_{}_{}/{}/0.log",
            pod.namespace, pod.name, pod.uid, c.name
        );
        fs.write(
            &log,
            "2024-01-01T00:00:00.000000000Z stdout F started\n",
            0o644,
        );
        fs.symlink(
            &log,
            &format!(
                "/var/log/containers/{}_{}_{}-{}.log",
                pod.name, pod.namespace, c.name, c.id
            ),
        );
    }
}

/// The guest's report: the console, split into its sections.
struct Guest {
    console: Console,
    sections: std::collections::BTreeMap<String, Vec<String>>,
    events: Vec<Value>,
}

impl Guest {
    fn section(&self, name: &str) -> &[String] {
        self.sections.get(name).map_or(&[], Vec::as_slice)
    }

    /// The event matching `e`; panics with the near misses and the guest's console.
    fn expect(&self, e: &Expect) -> Value {
        if let Some(v) = self.events.iter().find(|v| e.matches(v)) {
            return v.clone();
        }
        panic!(
            "no event in the 6.1 guest matches {e}\n{}\n{}",
            expect::near_misses(e, &self.events, 8),
            self.evidence()
        );
    }

    /// Everything the guest said, for failure messages.
    fn evidence(&self) -> String {
        format!(
            "--- guest console ({:.1} s{}) ---\n{}",
            self.console.elapsed.as_secs_f64(),
            if self.console.timed_out {
                ", TIMED OUT"
            } else {
                ""
            },
            util::head_tail(&self.console.text(), 6000, 6000)
        )
    }
}

/// Where the last guest console is saved.
fn console_log() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("kernel_61-console.log")
}

fn run_guest(scenario: &Scenario) -> Guest {
    util::require_root();
    let kernel = qemu::guest_kernel();
    let fs = Initramfs::new();
    fs.add_program(&Sensor::binary(), "/sensor");
    fs.add_program(Path::new(env!("CARGO_BIN_EXE_guest_peer")), "/guest_peer");
    fs.write("/init", scenario.init(), 0o755);
    fs.write("/workload.sh", scenario.workload(), 0o755);
    fs.write(&format!("{SA_DIR}/token"), "guest-token", 0o600);
    scenario.kubelet_metadata(&fs);
    let dir = util::TempDir::new("k61");
    let archive = dir.path().join("initramfs.cpio");
    fs.pack(&archive);
    let console = qemu::boot(&kernel, &archive, GUEST_TIMEOUT);
    // Kept for reading after a run (CI artifacts, comparing kernels).
    let _ = std::fs::write(console_log(), console.text());
    let sections = console.sections();
    let events = sections
        .get("events")
        .into_iter()
        .flatten()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(Value::is_object)
        .collect();
    Guest {
        console,
        sections,
        events,
    }
}

/// `sensor doctor --json` as printed in the guest (kernel messages that landed in between,
/// `[   1.234] ...`, are dropped).
fn doctor_report(lines: &[String]) -> Option<Value> {
    let json: String = lines
        .iter()
        .filter(|l| !l.trim_start().starts_with('['))
        .map(String::as_str)
        .collect();
    serde_json::from_str(&json).ok()
}

/// One line per probe: program, hook, attached or the kernel's reason.
fn probe_lines(doctor: &Value) -> Vec<String> {
    doctor["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let state = if p["attached"] == true {
                "attached".to_string()
            } else {
                let error = p["error"].as_str().unwrap_or("no error given");
                format!("NOT attached: {}", kernel_reason(error))
            };
            format!(
                "  {:<20} {:<40} {state}",
                p["program"].as_str().unwrap_or("?"),
                p["hook"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// The line of a load error that says why: the verifier's complaint (the line before its
/// `verification time` trailer), else the first line. The whole log is in the evidence.
fn kernel_reason(error: &str) -> &str {
    let lines: Vec<&str> = error.lines().collect();
    lines
        .iter()
        .position(|l| l.starts_with("verification time"))
        .and_then(|i| lines[..i].last().copied())
        .or(lines.first().copied())
        .unwrap_or(error)
}

#[test]
fn capture_on_debian_6_1_under_qemu() {
    let s = Scenario::new();
    let guest = run_guest(&s);
    let uname = guest.section("uname").join(" ");
    let doctor = doctor_report(guest.section("doctor"));
    let probes = doctor.as_ref().map(probe_lines).unwrap_or_default();
    // Straight to stderr: libtest's capture would hide these from a passing run.
    let _ = writeln!(
        std::io::stderr(),
        "kernel_61: guest kernel {uname}, {:.1} s in QEMU (TCG), {} events (console: {})\n{}",
        guest.console.elapsed.as_secs_f64(),
        guest.events.len(),
        console_log().display(),
        probes.join("\n")
    );
    assert!(
        !guest.console.timed_out,
        "the guest did not power off\n{}",
        guest.evidence()
    );
    assert!(
        uname.starts_with("6.1."),
        "the guest runs a 6.1 kernel, got {uname:?}\n{}",
        guest.evidence()
    );

    // Every probe loads and attaches: `sensor doctor` tried each one, and the capture run
    // skipped none (an optional probe the kernel refuses is only a warning there).
    let doctor = doctor.unwrap_or_else(|| {
        panic!(
            "`sensor doctor --json` printed no report\n{}",
            guest.evidence()
        )
    });
    assert!(
        !probes.is_empty() && probes.iter().all(|l| l.ends_with(" attached")),
        "every probe attaches on 6.1:\n{}\n{}",
        probes.join("\n"),
        guest.evidence()
    );
    assert_eq!(
        doctor["canRun"],
        true,
        "doctor's verdict\n{}",
        guest.evidence()
    );
    // The guest's kubelet-shaped cgroup is recognised as what it imitates.
    assert!(
        doctor["containers"]["runtimes"]["containerd"] == 1
            && doctor["containers"]["drivers"] == json!(["systemd"]),
        "doctor finds one containerd container under the systemd driver: {}\n{}",
        doctor["containers"],
        guest.evidence()
    );
    let stderr = guest.section("sensor-stderr");
    assert!(
        stderr.iter().any(|l| l.contains("capture started"))
            && !stderr.iter().any(|l| l.contains("probe not attached")),
        "the capture run started with every probe\n{}",
        guest.evidence()
    );
    assert!(
        guest.section("workload").iter().any(|l| l == &s.marker)
            && guest
                .section("workload")
                .contains(&format!("received {}", s.bytes)),
        "the workload ran (echo, and the peer got every byte)\n{}",
        guest.evidence()
    );

    let pod = &s.pod;
    // exec with argv, attributed (workload name from the pod name).
    guest.expect(
        &ev("exec", pod, "main")
            .eq("workload", "guest")
            .eq("workload_kind", "deployment")
            .eq("path", "/bin/echo")
            .eq("args", json!(["/bin/echo", s.marker]))
            .eq("args_truncated", false)
            .eq("uid", 0)
            .eq("comm", "echo"),
    );
    // TCP connect, then the flow's byte counts (emitted when the cgroup was removed).
    guest.expect(
        &ev("connect", pod, "main")
            .eq("protocol", "tcp")
            .eq("remote_ip", "127.0.0.1")
            .eq("remote_port", TCP_PORT)
            .eq("origin", "connect")
            .eq("comm", "nc"),
    );
    let n = s.bytes as f64;
    let reply_len = format!("received {}\n", s.bytes).len() as f64;
    let flow = guest.expect(
        &ev("flow", pod, "main")
            .eq("protocol", "tcp")
            .eq("direction", "egress")
            .eq("remote_ip", "127.0.0.1")
            .eq("remote_port", TCP_PORT)
            .num_that("connections", ">= 1", |c| c >= 1.0)
            .num_that("bytes_sent", &format!(">= {n}"), move |b| b >= n)
            .num_that("bytes_recv", &format!(">= {reply_len}"), move |b| {
                b >= reply_len
            })
            .num_that("packets_sent", ">= 1", |p| p >= 1.0)
            .num_that("packets_recv", ">= 1", |p| p >= 1.0)
            .present("local_port"),
    );
    assert!(
        num(&flow, "bytes_sent") < n * 2.0,
        "bytes_sent counts payload, not a multiple: {flow}"
    );
    // DNS answer over UDP: name -> address.
    let answer: IpAddr = DNS_ANSWER.into();
    let name = s.name.clone();
    guest.expect(
        &with_question(ev("dns", pod, "main"), &s.name)
            .eq("comm", "nslookup")
            .eq("server_ip", "127.0.0.1")
            .that("qtype A", |v| qtype(v, "A", 1))
            .that("rcode NOERROR", |v| rcode(v, "NOERROR", 0))
            .that(
                &format!("answers map {answer} to [{name}] with 0 < ttl <= 300"),
                move |v| answers_map(v, answer, std::slice::from_ref(&name)),
            ),
    );
    // The final syscall set holds the rare syscalls the workload made.
    guest.expect(
        &ev("syscalls", pod, "main")
            .eq("final", true)
            .that("native has clock_adjtime|adjtimex", |v| {
                v["native"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|s| s == "clock_adjtime" || s == "adjtimex"))
            })
            .contains_str("native", "ioprio_get")
            .contains_str("native", "execve")
            .contains_str("native", "exit_group")
            .present("compat"),
    );
    // The token read through a symlink, judged on the opened file by the preferred hook:
    // fentry on security_file_open (this host refuses trampolines; the 6.1 kernel does not).
    let file_open = doctor["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["program"] == "file_open")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        file_open["hook"],
        "fentry/security_file_open",
        "on 6.1 sensitive files are judged by fentry, not the syscall-exit fallback: {file_open}\n{}",
        guest.evidence()
    );
    guest.expect(
        &ev("file", pod, "main")
            .eq("path", format!("{SA_DIR}/token"))
            .eq("requested", "/tmp/sa/token")
            .eq("pattern", format!("{SA_DIR}/"))
            .eq("comm", "cat"),
    );
    assert_eq!(
        guest.section("sensor-exit"),
        ["0"],
        "the sensor exits cleanly on SIGINT\n{}",
        guest.evidence()
    );
}
