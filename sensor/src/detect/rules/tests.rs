//! The rules' tests, on plain data (property tests included).

use std::{net::IpAddr, sync::Arc};

use proptest::prelude::*;

use super::*;
use crate::{
    ai::Catalogue,
    attribution::event::DnsAnswerRecord,
    attribution::{Attribution, Scope, workload::WorkloadKind},
    detect::model::{RuleId, Severity},
    profile::model::{ExecEntry, Flow, ProfileKey, Protocol, Resolver, Timestamp},
};

const T0: Timestamp = Timestamp::lit("2026-11-26T00:00:00Z");
const T1: Timestamp = Timestamp::lit("2026-11-26T00:00:30Z");
const T2: Timestamp = Timestamp::lit("2026-11-26T00:02:00Z");

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn learning() -> ApplicationProfile {
    let key = ProfileKey {
        namespace: "ns".into(),
        workload: "api".into(),
        container: "app".into(),
    };
    ApplicationProfile::new(key, WorkloadKind::Deployment, 60, T0)
}

fn make_ready(mut p: ApplicationProfile) -> ApplicationProfile {
    assert!(p.advance(T2));
    p
}

fn egress(addr: &str, port: u16, protocol: Protocol) -> FlowId {
    FlowId {
        direction: Direction::Egress,
        ip: ip(addr),
        port,
        protocol,
    }
}

fn delta(connections: u64, bytes_sent: u64) -> FlowDelta {
    FlowDelta {
        connections,
        bytes_sent,
        bytes_recv: 0,
    }
}

/// A ready web API: runs its server and `kill <pid>`, talks to a database, an HTTPS API and
/// the cluster DNS, reads its service-account token through `..data`.
fn api_profile() -> ApplicationProfile {
    let mut p = learning();
    p.record_syscalls(&s(&["read", "write", "openat", "connect"]), &[], T1);
    p.record_exec("/app/server", &s(&["/app/server", "--port=8080"]), T1);
    p.record_exec("/bin/kill", &s(&["kill", "41233"]), T1);
    p.record_file(
        "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_26_00_00_00.1/token",
        "/var/run/secrets/kubernetes.io/serviceaccount/",
        T1,
    );
    p.record_file("/proc/1/environ", "/proc/*/environ", T1);
    let resolver = Resolver {
        ip: ip("10.96.0.10"),
        cluster_dns: true,
    };
    p.record_dns(
        "api.example.com",
        &[ip("203.0.113.7")],
        resolver.clone(),
        T1,
    );
    p.record_dns("db.data.svc.cluster.local", &[ip("10.0.0.5")], resolver, T1);
    for (id, windows) in [
        (
            egress("10.0.0.5", 5432, Protocol::Tcp),
            vec![delta(100, 1 << 20), delta(40, 300 << 10)],
        ),
        (
            egress("203.0.113.7", 443, Protocol::Tcp),
            vec![delta(2, 20 << 10)],
        ),
        (egress("10.96.0.10", 53, Protocol::Udp), vec![delta(5, 500)]),
    ] {
        let mut total = FlowDelta::default();
        for w in &windows {
            total.add(*w);
        }
        p.record_flow(id, total, &[], T1);
        for w in windows {
            p.record_window(id, w, 60, T1);
        }
    }
    make_ready(p)
}

fn attribution() -> Attribution {
    Attribution {
        scope: Scope::Container,
        namespace: Some("ns".into()),
        pod: Some("api-7d9f8b6c4d-x2x9k".into()),
        pod_uid: None,
        container: Some("app".into()),
        container_id: None,
        workload: Some("api".into()),
        workload_kind: Some(WorkloadKind::Deployment),
        workload_from_api: false,
        labels: None,
        service_account: None,
        cgroup_id: 7,
        cgroup: None,
    }
}

fn event(detail: Detail) -> Event {
    Event {
        time: T2.into(),
        kind: detail.kind(),
        node: Arc::from("node-1"),
        who: Arc::new(attribution()),
        pid: Some(4242),
        ppid: Some(1),
        comm: Some("x".into()),
        detail,
    }
}

fn exec(path: &str, args: &[&str]) -> Event {
    event(Detail::Exec {
        exe: None,
        path: path.into(),
        args: s(args),
        args_truncated: false,
        workload_start: false,
        path_truncated: false,
        uid: 1000,
    })
}

fn connect(addr: &str, port: u16, protocol: &'static str) -> Event {
    event(Detail::Connect {
        protocol,
        remote_ip: ip(addr),
        remote_port: port,
        origin: if protocol == "udp" {
            "udp-send"
        } else {
            "connect"
        },
        remote_names: Vec::new(),
    })
}

fn dns(name: &str) -> Event {
    event(Detail::Dns {
        question: name.into(),
        qtype: "A".into(),
        rcode: "NOERROR".into(),
        server_ip: ip("10.96.0.10"),
        transport: "udp",
        answers: vec![DnsAnswerRecord {
            ip: ip("198.51.100.9"),
            names: vec![name.into()],
            ttl: 30,
        }],
    })
}

fn file(path: &str, pattern: &str) -> Event {
    event(Detail::sample_file(path, pattern))
}

fn rules_of(findings: &[Finding]) -> Vec<RuleId> {
    findings.iter().map(|f| f.rule).collect()
}

fn run(p: &ApplicationProfile, e: &Event) -> Vec<Finding> {
    on_event(e, p, &RuleConfig::default())
}

// ---- exec ----

#[test]
fn exec_matches_through_normalised_args() {
    let p = api_profile();
    assert!(run(&p, &exec("/bin/kill", &["kill", "99812"])).is_empty());
    assert!(run(&p, &exec("/app/server", &["/app/server", "--port=8080"])).is_empty());

    let f = run(&p, &exec("/bin/kill", &["kill", "-9", "41233"]));
    assert_eq!(rules_of(&f), [RuleId::UnexpectedExec]);
    assert_eq!(f[0].subject, "/bin/kill kill -9 *");
    assert_eq!(f[0].kubescape_rule.as_deref(), Some("R0001"));
    assert_eq!(f[0].severity, Severity::Medium);
    assert_eq!(f[0].evidence.baseline["samePathArgs"], "1: kill *");
    assert!(f[0].message.contains("arguments"), "{}", f[0].message);

    let f = run(&p, &exec("/usr/bin/curl", &["curl", "-s", "http://x"]));
    assert_eq!(rules_of(&f), [RuleId::UnexpectedExec]);
    assert_eq!(
        f[0].evidence.baseline["programs"],
        "2: /app/server, /bin/kill"
    );
    assert_eq!(f[0].evidence.observed["path"], "/usr/bin/curl");

    let f = run(
        &p,
        &exec("/usr/local/bin/kubectl", &["kubectl", "get", "secrets"]),
    );
    assert_eq!(f[0].kubescape_rule.as_deref(), Some("R0007"));
}

#[test]
fn baseline_path_globs_match_like_the_builder() {
    let mut p = learning();
    p.execs.push(ExecEntry {
        path: "/tmp/tmp.*/run.sh".into(),
        args: s(&["run.sh"]),
        count: 1,
        first_seen: T1,
        last_seen: T1,
    });
    let p = make_ready(p);
    assert!(run(&p, &exec("/tmp/tmp.Xk3j9QpZ/run.sh", &["run.sh"])).is_empty());
    assert_eq!(
        rules_of(&run(&p, &exec("/tmp/evil/run.sh", &["run.sh"]))),
        [RuleId::UnexpectedExec]
    );
}

#[test]
fn shells_and_interpreters_are_recognised() {
    let p = api_profile();
    let cases: &[(&str, &[&str], &str)] = &[
        ("/bin/bash", &["bash", "-i"], "T1059.004"),
        ("/bin/sh", &["/bin/sh", "-c", "id"], "T1059.004"),
        ("/usr/bin/dash", &["dash"], "T1059.004"),
        ("/bin/ash", &["-ash"], "T1059.004"),
        ("/usr/bin/zsh", &["zsh"], "T1059.004"),
        ("/usr/bin/python3", &["python3", "-c", "1"], "T1059.006"),
        ("/usr/local/bin/python3.11", &["python3.11"], "T1059.006"),
        ("/usr/bin/python3.12", &["python3.12", "x.py"], "T1059.006"),
        ("/usr/bin/node", &["node", "-e", "1"], "T1059.007"),
        ("/usr/local/bin/nodejs18", &["nodejs18"], "T1059.007"),
        ("/usr/bin/perl5.36", &["perl"], "T1059"),
        ("/usr/bin/ruby3.2", &["ruby"], "T1059"),
        ("/usr/bin/php8.2", &["php"], "T1059"),
        ("/usr/bin/pwsh", &["pwsh"], "T1059.001"),
        ("/bin/busybox", &["sh", "-c", "wget x"], "T1059.004"),
        ("/bin/busybox", &["busybox", "ash"], "T1059.004"),
        ("/proc/self/exe", &["sh", "-c", "id"], "T1059.004"),
    ];
    for (path, args, technique) in cases {
        let f = run(&p, &exec(path, args));
        assert_eq!(
            rules_of(&f),
            [RuleId::UnexpectedExec, RuleId::ShellSpawned],
            "{path} {args:?}"
        );
        let shell = &f[1];
        assert_eq!(shell.severity, Severity::High);
        assert_eq!(shell.kubescape_rule, None);
        assert_eq!(
            shell.mitre.as_ref().unwrap().technique,
            *technique,
            "{path}"
        );
        assert_eq!(shell.subject, f[0].subject);
    }
    // Not shells: look-alike names, multi-call binaries running other applets, runc's
    // re-exec.
    let not_shells: &[(&str, &[&str])] = &[
        ("/usr/bin/shasum", &["shasum"]),
        ("/usr/bin/sha256sum", &["sha256sum", "f"]),
        ("/usr/bin/bashbug", &["bashbug"]),
        ("/usr/sbin/php-fpm8.2", &["php-fpm"]),
        ("/usr/bin/pythonista", &["pythonista"]),
        ("/bin/busybox", &["wget", "x"]),
        ("/bin/busybox", &["busybox", "ls"]),
        ("/proc/self/exe", &["runc", "init", "--not-the-runtime"]),
        ("/app/sh-helper", &["sh"]),
    ];
    for (path, args) in not_shells {
        assert_eq!(
            rules_of(&run(&p, &exec(path, args))),
            [RuleId::UnexpectedExec],
            "{path} {args:?}"
        );
    }
}

#[test]
fn no_shell_finding_when_the_baseline_runs_a_shell() {
    let mut p = learning();
    p.record_exec("/bin/sh", &s(&["/bin/sh", "-c", "echo ready"]), T1);
    let p = make_ready(p);
    // Any script through the same shell is baseline (the code collapses to `*`).
    assert!(run(&p, &exec("/bin/sh", &["/bin/sh", "-c", "curl x | sh"])).is_empty());
    // Another interpreter is a new program, but the workload already runs a shell.
    assert_eq!(
        rules_of(&run(&p, &exec("/usr/bin/python3", &["python3"]))),
        [RuleId::UnexpectedExec]
    );
    // Busybox as the baseline shell counts too.
    let mut p = learning();
    p.record_exec("/bin/busybox", &s(&["sh", "-c", "true"]), T1);
    let p = make_ready(p);
    assert_eq!(
        rules_of(&run(&p, &exec("/bin/bash", &["bash"]))),
        [RuleId::UnexpectedExec]
    );
}

// ---- syscalls ----

#[test]
fn syscalls_outside_the_baseline_per_abi() {
    let p = api_profile();
    assert!(on_syscalls(&s(&["read", "write"]), &[], &p).is_empty());

    // The container runtime's start-up noise is never a finding.
    assert!(on_syscalls(&s(&["tgkill", "sched_yield", "execveat"]), &[], &p).is_empty());
    assert!(run(&p, &exec("/dev/fd/6", &["/usr/sbin/runc", "init"])).is_empty());

    let f = on_syscalls(&s(&["read", "ptrace", "mlock", "mlock", "tgkill"]), &[], &p);
    assert_eq!(f.len(), 2, "one per new name: {f:?}");
    assert_eq!(
        (f[0].subject.as_str(), f[0].severity),
        ("mlock", Severity::Medium)
    );
    assert_eq!(f[0].mitre, None);
    assert_eq!(
        (f[1].subject.as_str(), f[1].severity),
        ("ptrace", Severity::High)
    );
    assert_eq!(f[1].mitre.as_ref().unwrap().technique, "T1055.008");
    assert_eq!(f[1].kubescape_rule.as_deref(), Some("R0003"));
    assert_eq!(f[1].evidence.observed["newInThisSet"], "2: mlock, ptrace");
    assert_eq!(f[1].evidence.baseline["native"], "4 syscalls");

    // A native name in the baseline does not cover its compat use, and a workload with no
    // compat baseline at all says so.
    let f = on_syscalls(&[], &s(&["connect"]), &p);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].subject, "compat:connect");
    assert_eq!(f[0].severity, Severity::High);
    assert!(f[0].message.contains("no compat"), "{}", f[0].message);
    assert_eq!(f[0].evidence.baseline["compat"], "none");

    let mut p = learning();
    p.record_syscalls(&s(&["read"]), &s(&["read"]), T1);
    let p = make_ready(p);
    assert!(on_syscalls(&s(&["read"]), &s(&["read"]), &p).is_empty());
    let f = on_syscalls(&[], &s(&["connect"]), &p);
    assert_eq!(f[0].severity, Severity::Medium);
    assert!(!f[0].message.contains("no compat"));

    // The same through a syscalls event.
    let e = event(Detail::Syscalls {
        native: s(&["setns"]),
        compat: vec![],
        setup_native: vec![],
        setup_compat: vec![],
        is_final: false,
    });
    let f = run(&p, &e);
    assert_eq!(rules_of(&f), [RuleId::UnexpectedSyscall]);
    assert_eq!(f[0].mitre.as_ref().unwrap().technique, "T1611");
}

// ---- network ----

#[test]
fn egress_peers_outside_the_baseline() {
    let p = api_profile();
    assert!(run(&p, &connect("10.0.0.5", 5432, "tcp")).is_empty());
    assert!(run(&p, &connect("::ffff:10.0.0.5", 5432, "tcp")).is_empty());
    assert!(run(&p, &connect("10.96.0.10", 53, "udp")).is_empty());

    let f = run(&p, &connect("198.51.100.1", 4444, "tcp"));
    assert_eq!(rules_of(&f), [RuleId::UnexpectedEgress]);
    assert_eq!(f[0].subject, "198.51.100.1:4444/tcp");
    assert_eq!(f[0].kubescape_rule.as_deref(), Some("R0011"));
    assert_eq!(f[0].mitre.as_ref().unwrap().technique, "T1071");

    // Known address, other port or protocol.
    let f = run(&p, &connect("10.0.0.5", 22, "tcp"));
    assert_eq!(rules_of(&f), [RuleId::UnexpectedEgress]);
    assert_eq!(
        f[0].evidence.baseline["sameAddress"],
        "1: 10.0.0.5:5432/tcp"
    );
    let f = run(&p, &connect("10.96.0.10", 53, "tcp"));
    assert_eq!(f[0].subject, "10.96.0.10:53/tcp");

    // UDP sends and loopback count too; IPv6 subjects are bracketed.
    let f = run(&p, &connect("198.51.100.1", 53, "udp"));
    assert_eq!(f[0].evidence.observed["origin"], "udp-send");
    let f = run(&p, &connect("127.0.0.1", 9000, "tcp"));
    assert_eq!(rules_of(&f), [RuleId::UnexpectedEgress]);
    assert_eq!(f[0].evidence.observed["scope"], "loopback");
    let f = run(&p, &connect("2001:db8::1", 443, "tcp"));
    assert_eq!(f[0].subject, "[2001:db8::1]:443/tcp");
}

#[test]
fn metadata_service_takes_precedence_over_egress() {
    let p = api_profile();
    for (addr, port, subject) in [
        ("169.254.169.254", 80, "169.254.169.254:80/tcp"),
        ("::ffff:169.254.169.254", 80, "169.254.169.254:80/tcp"),
        ("fd00:ec2::254", 80, "[fd00:ec2::254]:80/tcp"),
    ] {
        let f = run(&p, &connect(addr, port, "tcp"));
        assert_eq!(rules_of(&f), [RuleId::CloudMetadataAccess], "{addr}");
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].subject, subject);
        assert_eq!(f[0].kubescape_rule, None);
        let m = f[0].mitre.as_ref().unwrap();
        assert_eq!(
            (m.technique.as_str(), m.tactic.as_str()),
            ("T1552.005", "Credential Access")
        );
    }
    // Not the metadata service: a neighbour address is plain egress.
    assert_eq!(
        rules_of(&run(&p, &connect("169.254.169.253", 80, "tcp"))),
        [RuleId::UnexpectedEgress]
    );

    // A baseline that uses IMDS on :80 is quiet there, and still critical elsewhere.
    let mut p = learning();
    p.record_flow(
        egress("169.254.169.254", 80, Protocol::Tcp),
        delta(1, 100),
        &[],
        T1,
    );
    let p = make_ready(p);
    assert!(run(&p, &connect("169.254.169.254", 80, "tcp")).is_empty());
    let f = run(&p, &connect("169.254.169.254", 443, "tcp"));
    assert_eq!(rules_of(&f), [RuleId::CloudMetadataAccess]);
    assert!(f[0].message.contains("port"), "{}", f[0].message);
}

#[test]
fn dns_names_outside_the_baseline() {
    let p = api_profile();
    assert!(run(&p, &dns("api.example.com")).is_empty());
    assert!(run(&p, &dns("API.Example.com.")).is_empty());
    assert!(run(&p, &dns("db.data.svc.cluster.local")).is_empty());
    let f = run(&p, &dns("x7f3k.evil.example"));
    assert_eq!(rules_of(&f), [RuleId::UnexpectedDns]);
    assert_eq!(f[0].subject, "x7f3k.evil.example");
    assert_eq!(f[0].kubescape_rule.as_deref(), Some("R0005"));
    assert_eq!(f[0].mitre.as_ref().unwrap().technique, "T1071.004");
    assert_eq!(f[0].evidence.observed["answers"], "1: 198.51.100.9");
    assert!(
        f[0].evidence.baseline["dnsNames"].starts_with("2: "),
        "{:?}",
        f[0].evidence
    );
}

// ---- files ----

#[test]
fn service_account_tokens_name_the_token() {
    let p = api_profile();
    // The baseline's token, after a rotation and through the other spelling.
    for path in [
        "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_26_00_00_00.1/token",
        "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_27_09_13_44.42/token",
        "/run/secrets/kubernetes.io/serviceaccount/..data/token",
    ] {
        assert!(
            run(
                &p,
                &file(path, "/var/run/secrets/kubernetes.io/serviceaccount/")
            )
            .is_empty(),
            "{path}"
        );
    }
    let cases = [
        (
            "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_26_00_00_00.1/namespace",
            "Kubernetes service-account token",
            false,
        ),
        (
            "/var/run/secrets/eks.amazonaws.com/serviceaccount/..2026_11_26_00_00_00.1/token",
            "EKS IRSA",
            true,
        ),
        (
            "/run/secrets/eks.amazonaws.com/serviceaccount/token",
            "EKS IRSA",
            true,
        ),
        (
            "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            "EKS Pod Identity",
            true,
        ),
        (
            "/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
            "EKS Pod Identity",
            true,
        ),
    ];
    for (path, token, never) in cases {
        let f = run(&p, &file(path, "x"));
        assert_eq!(rules_of(&f), [RuleId::ServiceAccountTokenRead], "{path}");
        let f = &f[0];
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.kubescape_rule.as_deref(), Some("R0006"));
        assert_eq!(f.mitre.as_ref().unwrap().technique, "T1528");
        assert!(f.message.starts_with(token), "{path}: {}", f.message);
        assert_eq!(f.subject, path);
        assert_eq!(f.evidence.baseline["tokenFiles"] == "none", never, "{path}");
    }
    // Not a Pod Identity token merely because the name contains the IRSA directory.
    let f = run(
        &p,
        &file("/run/secrets/pods.eks.amazonaws.com/serviceaccount/x", "x"),
    );
    assert!(!f[0].message.contains("IRSA"));
}

#[test]
fn sensitive_files_by_kind() {
    let p = api_profile();
    // The baseline read /proc/1/environ: another pid's environ is the same behaviour.
    assert!(run(&p, &file("/proc/77/environ", "/proc/*/environ")).is_empty());
    assert!(run(&p, &file("/proc/1/environ", "/proc/*/environ")).is_empty());

    let cases = [
        ("/etc/shadow", Severity::High, "R0010", Some("T1003.008")),
        ("/etc/gshadow", Severity::High, "R0010", Some("T1003.008")),
        (
            "/root/.aws/credentials",
            Severity::High,
            "R0010",
            Some("T1552.001"),
        ),
        (
            "/home/app/.config/gcloud/application_default_credentials.json",
            Severity::High,
            "R0010",
            Some("T1552.001"),
        ),
        (
            "/root/.kube/config",
            Severity::High,
            "R0010",
            Some("T1552.001"),
        ),
        (
            "/root/.docker/config.json",
            Severity::High,
            "R0010",
            Some("T1552.001"),
        ),
        ("/etc/custom-secret", Severity::Medium, "R0010", None),
    ];
    for (path, severity, kubescape, technique) in cases {
        let f = run(&p, &file(path, path));
        assert_eq!(rules_of(&f), [RuleId::SensitiveFileRead], "{path}");
        assert_eq!(f[0].severity, severity, "{path}");
        assert_eq!(f[0].kubescape_rule.as_deref(), Some(kubescape), "{path}");
        assert_eq!(
            f[0].mitre.as_ref().map(|m| m.technique.as_str()),
            technique,
            "{path}"
        );
        assert_eq!(f[0].subject, path);
    }

    // Environ in a workload that never read one.
    let fresh = make_ready(learning());
    let f = run(&fresh, &file("/proc/1/environ", "/proc/*/environ"));
    assert_eq!(rules_of(&f), [RuleId::SensitiveFileRead]);
    assert_eq!(f[0].severity, Severity::Medium);
    assert_eq!(f[0].kubescape_rule.as_deref(), Some("R0008"));

    // Opening for writing is said so.
    let mut e = file("/etc/shadow", "/etc/shadow");
    if let Detail::File { open_flags, .. } = &mut e.detail {
        *open_flags = 0o1 | 0o1000;
    }
    let f = run(&p, &e);
    assert_eq!(f[0].evidence.observed["access"], "write");
    assert!(f[0].message.contains("writing"), "{}", f[0].message);
}

// ---- volume ----

fn window(p: &ApplicationProfile, id: FlowId, d: FlowDelta, secs: u64) -> Vec<Finding> {
    let cfg = RuleConfig::default();
    on_flow_window(id, d, secs, p, &cfg, Catalogue::embedded())
}

#[test]
fn volume_spikes_scale_with_the_window_and_respect_minimums() {
    let p = api_profile();
    let db = egress("10.0.0.5", 5432, Protocol::Tcp); // max 100 conns, 1 MiB per 60s
    assert!(window(&p, db, delta(100, 1 << 20), 60).is_empty());
    assert!(
        window(&p, db, delta(400, 1 << 20), 60).is_empty(),
        "4x is not above 4x"
    );

    let f = window(&p, db, delta(401, 1 << 20), 60);
    assert_eq!(rules_of(&f), [RuleId::EgressVolumeSpike]);
    assert_eq!(f[0].subject, "10.0.0.5:5432/tcp");
    assert_eq!(f[0].severity, Severity::High);
    assert_eq!(f[0].mitre.as_ref().unwrap().technique, "T1041");
    assert!(f[0].message.contains("connections"), "{}", f[0].message);
    assert_eq!(f[0].evidence.observed["connections"], "401 in 60s (4.0x)");
    assert_eq!(f[0].evidence.baseline["maxConnectionsPerWindow"], "100");

    // Bytes: 5 MiB over 100 connections in a minute (50 KiB each: not a large payload).
    let f = window(&p, db, delta(100, 5 << 20), 60);
    assert_eq!(rules_of(&f), [RuleId::EgressVolumeSpike]);
    assert!(f[0].message.contains("bytes sent"), "{}", f[0].message);

    // A 5-minute window may hold 5 baseline windows.
    assert!(window(&p, db, delta(1000, 1 << 20), 300).is_empty());
    assert_eq!(
        rules_of(&window(&p, db, delta(2001, 1 << 20), 300)),
        [RuleId::EgressVolumeSpike]
    );
    // A shorter window is not scaled down: the baseline's burst may fit in it.
    assert!(window(&p, db, delta(400, 1 << 20), 10).is_empty());

    // An idle baseline (5 DNS packets a minute) does not page on a small burst...
    let dns = egress("10.96.0.10", 53, Protocol::Udp);
    // (19 is more than 4x 5, but fewer than 20 connections)...
    assert!(window(&p, dns, delta(19, 1900), 60).is_empty());
    // ...but does on a real one.
    assert_eq!(
        rules_of(&window(&p, dns, delta(21, 2100), 60)),
        [RuleId::EgressVolumeSpike]
    );
}

#[test]
fn large_payloads_per_connection() {
    let p = api_profile();
    // 203.0.113.7:443: 2 connections, 20 KiB in the busiest window: 10 KiB each.
    let api = egress("203.0.113.7", 443, Protocol::Tcp);
    assert!(
        window(&p, api, delta(1, 80 << 10), 60).is_empty(),
        "8x, below 256 KiB"
    );
    let f = window(&p, api, delta(1, 300 << 10), 60);
    assert_eq!(rules_of(&f), [RuleId::LargePayload]);
    assert_eq!(f[0].subject, "203.0.113.7:443/tcp");
    assert_eq!(f[0].evidence.baseline["bytesSentPerConnection"], "10.0 KiB");
    assert_eq!(
        f[0].evidence.observed["bytesSentPerConnection"],
        "300.0 KiB"
    );
    // Bytes on a connection opened in an earlier window count against one connection.
    assert_eq!(
        rules_of(&window(&p, api, delta(0, 300 << 10), 60)),
        [RuleId::LargePayload]
    );
    // Many connections sharing the bytes are not a large payload.
    assert!(window(&p, api, delta(2, 300 << 10), 60).is_empty());

    // Both at once: a 2 MiB upload in one connection to a peer that gets 10 KiB requests.
    let f = window(&p, api, delta(1, 2 << 20), 60);
    assert_eq!(
        rules_of(&f),
        [RuleId::EgressVolumeSpike, RuleId::LargePayload]
    );

    // Without closed windows the learning totals stand in.
    let mut q = learning();
    let id = egress("198.51.100.4", 443, Protocol::Tcp);
    q.record_flow(id, delta(10, 100 << 10), &[], T1);
    let q = make_ready(q);
    assert_eq!(q.egress[0].rate.windows, 0);
    assert!(window(&q, id, delta(1, 80 << 10), 60).is_empty());
    assert_eq!(
        rules_of(&window(&q, id, delta(1, 300 << 10), 60)),
        [RuleId::LargePayload]
    );
}

#[test]
fn windows_of_unknown_peers_and_ingress_are_not_judged() {
    let p = api_profile();
    assert!(
        window(
            &p,
            egress("198.51.100.1", 443, Protocol::Tcp),
            delta(10_000, 1 << 30),
            60
        )
        .is_empty()
    );
    let ingress = FlowId {
        direction: Direction::Ingress,
        ..egress("10.0.0.5", 5432, Protocol::Tcp)
    };
    assert!(window(&p, ingress, delta(10_000, 1 << 30), 60).is_empty());
    // Same address and port, other protocol: not that flow.
    assert!(
        window(
            &p,
            egress("10.0.0.5", 5432, Protocol::Udp),
            delta(10_000, 1 << 30),
            60
        )
        .is_empty()
    );
}

#[test]
fn a_profile_that_is_not_ready_yields_nothing() {
    let mut p = api_profile();
    p.status = Status::Learning;
    for e in [
        exec("/bin/bash", &["bash"]),
        connect("169.254.169.254", 80, "tcp"),
        dns("evil.example"),
        file("/etc/shadow", "/etc/shadow"),
    ] {
        assert!(run(&p, &e).is_empty());
    }
    assert!(on_syscalls(&s(&["ptrace"]), &s(&["read"]), &p).is_empty());
    assert!(
        window(
            &p,
            egress("10.0.0.5", 5432, Protocol::Tcp),
            delta(10_000, 1 << 30),
            60
        )
        .is_empty()
    );
}

#[test]
fn rule_config_defaults_and_partial_config() {
    let c = RuleConfig::default();
    assert_eq!(c.spike_factor, 4.0);
    assert_eq!(c.min_spike_connections, 20);
    assert_eq!(c.min_spike_bytes, 1024 * 1024);
    assert_eq!(c.large_payload_factor, 8.0);
    assert_eq!(c.min_large_payload_bytes, 256 * 1024);
    let c: RuleConfig = serde_json::from_str(r#"{"spikeFactor": 10}"#).unwrap();
    assert_eq!((c.spike_factor, c.min_spike_connections), (10.0, 20));
}

#[test]
fn evidence_stays_short() {
    let mut p = learning();
    for i in 0..200 {
        p.record_exec(&format!("/opt/tool{i}"), &s(&["t"]), T1);
    }
    let p = make_ready(p);
    let long = "a".repeat(5000);
    let f = run(&p, &exec("/usr/bin/x", &["x", &long]));
    for v in f[0]
        .evidence
        .baseline
        .values()
        .chain(f[0].evidence.observed.values())
    {
        assert!(v.len() <= 300, "{v}");
    }
    assert!(f[0].evidence.baseline["programs"].starts_with("200: "));
    assert!(f[0].evidence.baseline["programs"].ends_with(", ..."));
}

// ---- property: normal behaviour of a ready workload is silent ----

/// Parts of an argument: written text, or something generated that normalisation collapses.
#[derive(Debug, Clone, Copy)]
enum Piece {
    Lit(&'static str),
    Pid,
    Uuid,
    Mixed,
    Code,
}

const TEMPLATES: &[(&str, &[&[Piece]])] = {
    use Piece::*;
    &[
        ("/bin/kill", &[&[Lit("kill")], &[Pid]]),
        (
            "/app/server",
            &[
                &[Lit("/app/server")],
                &[Lit("--port=8080")],
                &[Lit("--id="), Uuid],
            ],
        ),
        ("/bin/sh", &[&[Lit("/bin/sh")], &[Lit("-c")], &[Code]]),
        ("/bin/busybox", &[&[Lit("sh")], &[Lit("-c")], &[Code]]),
        (
            "/usr/local/bin/python3.11",
            &[
                &[Lit("python3.11")],
                &[Lit("/tmp/tmp."), Mixed, Lit("/job.py")],
                &[Lit("--batch="), Pid],
            ],
        ),
        ("/usr/bin/node", &[&[Lit("node")], &[Lit("-e")], &[Code]]),
        (
            "/usr/bin/curl",
            &[
                &[Lit("curl")],
                &[Lit("-s")],
                &[Lit("http://10.0.0.5:8080/healthz")],
            ],
        ),
        (
            "/app/worker",
            &[&[Lit("worker")], &[Lit("--shard")], &[Lit("3")]],
        ),
    ]
};

/// Concrete argv for a template from a seed: dynamic parts differ between seeds.
fn instantiate(template: &[&[Piece]], seed: u64) -> Vec<String> {
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    template
        .iter()
        .map(|arg| {
            arg.iter()
                .map(|piece| match piece {
                    Piece::Lit(s) => s.to_string(),
                    Piece::Pid => (10_000 + next() % 4_000_000).to_string(),
                    Piece::Uuid => {
                        let a = next();
                        let b = next();
                        format!(
                            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                            a >> 32,
                            (a >> 16) & 0xffff,
                            a & 0xffff,
                            b >> 48,
                            b & 0xffff_ffff_ffff
                        )
                    }
                    Piece::Mixed => {
                        let letters: String = (0..3)
                            .map(|_| (b'a' + (next() % 26) as u8) as char)
                            .collect();
                        format!("{letters}{:06}", next() % 1_000_000)
                    }
                    Piece::Code => {
                        let cmds = ["echo ok", "ls /tmp", "id; uname -a", "1+1", "print(1)"];
                        cmds[(next() % cmds.len() as u64) as usize].to_string()
                    }
                })
                .collect()
        })
        .collect()
}

const SYSCALLS: &[&str] = &[
    "read",
    "write",
    "openat",
    "close",
    "mmap",
    "futex",
    "epoll_wait",
    "connect",
    "accept4",
    "sendto",
    "recvfrom",
    "clone3",
    "execve",
    "ptrace",
    "mount",
    "setns",
];
const NAMES: &[&str] = &[
    "api.example.com",
    "db.data.svc.cluster.local",
    "s3.eu-west-1.amazonaws.com",
    "metadata.google.internal",
];
const FILES: &[&str] = &[
    "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_26_00_00_00.1/token",
    "/run/secrets/eks.amazonaws.com/serviceaccount/token",
    "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
    "/etc/shadow",
    "/proc/1/environ",
    "/root/.aws/credentials",
];
const IPS: &[&str] = &[
    "10.0.0.5",
    "10.96.0.10",
    "203.0.113.7",
    "127.0.0.1",
    "169.254.169.254",
    "fd00:ec2::254",
    "2001:db8::10",
    "::1",
];

#[derive(Debug, Clone)]
struct FlowPlan {
    ip: IpAddr,
    port: u16,
    protocol: Protocol,
    windows: Vec<(u64, u64)>,
    window_seconds: u64,
}

#[derive(Debug, Clone)]
struct Plan {
    native: Vec<&'static str>,
    compat: Vec<&'static str>,
    execs: Vec<(usize, Vec<u64>)>,
    names: Vec<&'static str>,
    files: Vec<&'static str>,
    egress: Vec<FlowPlan>,
}

fn arb_flow_plan() -> impl Strategy<Value = FlowPlan> {
    (
        prop::sample::select(IPS),
        prop::sample::select(vec![53u16, 80, 443, 5432]),
        prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
        prop::collection::vec((0u64..500, 0u64..(64 << 20)), 0..4),
        prop::sample::select(vec![30u64, 60, 300]),
    )
        .prop_map(|(ip, port, protocol, windows, window_seconds)| FlowPlan {
            ip: ip.parse().unwrap(),
            port,
            protocol,
            windows,
            window_seconds,
        })
}

fn arb_plan() -> impl Strategy<Value = Plan> {
    (
        prop::sample::subsequence(SYSCALLS, 0..SYSCALLS.len()),
        prop::sample::subsequence(SYSCALLS, 0..4),
        prop::collection::vec(
            (
                0..TEMPLATES.len(),
                prop::collection::vec(any::<u64>(), 1..3),
            ),
            0..5,
        ),
        prop::sample::subsequence(NAMES, 0..NAMES.len()),
        prop::sample::subsequence(FILES, 0..FILES.len()),
        prop::collection::vec(arb_flow_plan(), 0..5),
    )
        .prop_map(|(native, compat, execs, names, files, egress)| Plan {
            native,
            compat,
            execs,
            names,
            files,
            egress,
        })
}

/// Learns a profile from the plan with the real builder, then freezes it.
fn learn(plan: &Plan) -> ApplicationProfile {
    let mut p = learning();
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    p.record_syscalls(&own(&plan.native), &own(&plan.compat), T1);
    for (t, seeds) in &plan.execs {
        let (path, template) = TEMPLATES[*t];
        for seed in seeds {
            p.record_exec(path, &instantiate(template, *seed), T1);
        }
    }
    for name in &plan.names {
        let resolver = Resolver {
            ip: ip("10.96.0.10"),
            cluster_dns: true,
        };
        p.record_dns(name, &[ip("203.0.113.7")], resolver, T1);
    }
    for f in &plan.files {
        p.record_file(f, "pattern", T1);
    }
    for f in &plan.egress {
        let id = FlowId {
            direction: Direction::Egress,
            ip: f.ip,
            port: f.port,
            protocol: f.protocol,
        };
        let mut total = delta(1, 0);
        for (c, b) in &f.windows {
            total.add(delta(*c, *b));
        }
        p.record_flow(id, total, &[], T1);
        for (c, b) in &f.windows {
            p.record_window(id, delta(*c, *b), f.window_seconds, T1);
        }
    }
    make_ready(p)
}

/// A window within a flow's rate stats: no more connections, bytes, or bytes per
/// connection than the baseline's busiest window (or its totals, without windows).
fn window_within(flow: &Flow, a: u64, b: u64) -> FlowDelta {
    // The brief's formulas, written out independently of the rule's helpers.
    let r = &flow.rate;
    let (max_conn, max_bytes, per_conn) = if r.windows > 0 {
        (
            r.max_connections_per_window,
            r.max_bytes_sent_per_window,
            r.max_bytes_sent_per_window / r.max_connections_per_window.max(1),
        )
    } else {
        (
            flow.connections,
            flow.bytes_sent,
            flow.bytes_sent / flow.connections.max(1),
        )
    };
    let connections = if max_conn == 0 { 0 } else { a % (max_conn + 1) };
    let cap = max_bytes.min(per_conn.saturating_mul(connections.max(1)));
    let bytes_sent = if cap == 0 { 0 } else { b % (cap + 1) };
    FlowDelta {
        connections,
        bytes_sent,
        bytes_recv: b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn normal_behaviour_of_a_ready_workload_is_silent(
        plan in arb_plan(),
        replay_seeds in prop::collection::vec(any::<u64>(), 8),
        picks in prop::collection::vec(any::<u64>(), 8),
        secs in 1u64..900,
    ) {
        let p = learn(&plan);
        let cfg = RuleConfig::default();
        let mut events = Vec::new();
        // Its programs, with fresh dynamic arguments.
        for (i, (t, _)) in plan.execs.iter().enumerate() {
            let (path, template) = TEMPLATES[*t];
            let seed = replay_seeds[i % replay_seeds.len()] ^ i as u64;
            events.push(exec(path, &instantiate(template, seed).iter().map(String::as_str).collect::<Vec<_>>()));
        }
        // Its peers, names and files, and events no rule judges.
        for f in &p.egress {
            let proto = proto_name(f.protocol);
            events.push(connect(&f.ip.to_string(), f.port, proto));
        }
        for d in &p.dns {
            events.push(dns(&d.name));
        }
        for f in &p.files {
            events.push(file(&f.path, &f.pattern));
        }
        events.push(event(Detail::Exit { exit_code: Some(0), signal: None }));
        events.push(event(Detail::Accept {
            protocol: "tcp",
            remote_ip: ip("198.51.100.1"),
            local_ip: ip("10.0.0.9"),
            local_port: 8080,
        }));
        // Subsets of its syscalls, as sets and as an event.
        let subset = |v: &[String], pick: u64| -> Vec<String> {
            v.iter().enumerate().filter(|(i, _)| pick >> (i % 64) & 1 == 1).map(|(_, s)| s.clone()).collect()
        };
        let native = subset(&p.syscalls.native, picks[0]);
        let compat = subset(&p.syscalls.compat, picks[1]);
        prop_assert!(on_syscalls(&native, &compat, &p).is_empty());
        events.push(event(Detail::Syscalls {
            native,
            compat,
            setup_native: vec![],
            setup_compat: vec![],
            is_final: true,
        }));

        for e in &events {
            let f = on_event(e, &p, &cfg);
            prop_assert!(f.is_empty(), "{:?} -> {:?}", e.detail, f);
        }

        // Windows within each flow's rate stats, over any window length.
        for (i, f) in p.egress.iter().enumerate() {
            let id = FlowId { direction: Direction::Egress, ip: f.ip, port: f.port, protocol: f.protocol };
            let w = window_within(f, picks[(i + 2) % 8], picks[(i + 3) % 8]);
            let found = on_flow_window(id, w, secs, &p, &cfg, Catalogue::embedded());
            prop_assert!(found.is_empty(), "{f:?} window {w:?} over {secs}s -> {found:?}");
            let w = window_within(f, u64::MAX, u64::MAX);
            let found = on_flow_window(id, w, f.rate.window_seconds, &p, &cfg, Catalogue::embedded());
            prop_assert!(found.is_empty(), "{f:?} busiest window {w:?} -> {found:?}");
        }
    }

    /// Whatever happens, a profile that is not ready yields nothing.
    #[test]
    fn nothing_before_ready(plan in arb_plan(), t in 0..TEMPLATES.len(), seed in any::<u64>()) {
        let mut p = learn(&plan);
        p.status = Status::Learning;
        let cfg = RuleConfig::default();
        let (path, template) = TEMPLATES[t];
        let argv = instantiate(template, seed);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        for e in [
            exec("/bin/bash", &["bash"]),
            exec(path, &argv),
            connect("169.254.169.254", 80, "tcp"),
            connect("198.51.100.1", 4444, "tcp"),
            dns("evil.example"),
            file("/etc/shadow", "/etc/shadow"),
        ] {
            prop_assert!(on_event(&e, &p, &cfg).is_empty());
        }
        prop_assert!(on_syscalls(&s(&["kexec_load"]), &s(&["read"]), &p).is_empty());
        let id = egress("10.0.0.5", 5432, Protocol::Tcp);
        prop_assert!(on_flow_window(id, delta(1 << 20, 1 << 40), 60, &p, &cfg, Catalogue::embedded()).is_empty());
    }
}

#[test]
fn a_known_service_at_a_new_address_is_not_unexpected() {
    let mut p = learning();
    p.record_flow(
        egress("203.0.113.7", 443, Protocol::Tcp),
        delta(1, 10),
        &s(&["api.example.com"]),
        T1,
    );
    let p = make_ready(p);
    let connect = |addr: &str, port: u16, names: &[&str]| {
        event(Detail::Connect {
            protocol: "tcp",
            remote_ip: ip(addr),
            remote_port: port,
            origin: "connect",
            remote_names: s(names),
        })
    };
    let cfg = RuleConfig::default();
    assert!(
        on_event(
            &connect("203.0.113.99", 443, &["API.example.com"]),
            &p,
            &cfg
        )
        .is_empty()
    );
    let new_name = on_event(&connect("203.0.113.99", 443, &["evil.example"]), &p, &cfg);
    assert_eq!(new_name.len(), 1);
    assert_eq!(new_name[0].rule, RuleId::UnexpectedEgress);
    let new_port = on_event(
        &connect("203.0.113.99", 8443, &["api.example.com"]),
        &p,
        &cfg,
    );
    assert_eq!(new_port.len(), 1, "same name, other port: a new service");
}
