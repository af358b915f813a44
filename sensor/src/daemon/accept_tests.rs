//! Every rule, raised on every path the agent raises it on, can be accepted: the anomaly carries
//! a fold, `Controls::accept` (what `sensor profiles accept` calls) adds it to the baseline, the
//! next draft allows it, and the same behaviour is quiet afterwards.
//!
//! Structural: `scenarios` matches every rule without a wildcard (a new rule does not compile
//! until it has one), the test walks `RuleId::ALL` and checks that each rule is raised where
//! its scenarios say, and that every `Path` raised something. A path is one entry point the
//! agent feeds: the engine's event, syscall-poll and rate-window calls, and the live audit.

use std::{
    collections::{BTreeSet, HashSet},
    sync::{Arc, RwLock},
    time::Duration,
};

use super::services::Controls;
use crate::audit::live::runner::LiveAudit;
use crate::learn::{learner::Learner, store::ProfileStore};
use crate::{
    ai::Catalogue,
    api::Control,
    attribution::event::{Detail, DnsAnswerRecord, Event},
    attribution::{processes::ProcessTable, workload::WorkloadKind},
    audit::netpol_eval::{Namespaces, PolicySet},
    audit::report,
    detect::{
        engine::{Engine, Story},
        log::{AnomalyLog, Retention},
        model::{Anomaly, Fold, RuleId},
    },
    drafts::{
        netpol::{network_policy, to_yaml},
        seccomp::{NodeArch, allowed_syscalls},
    },
    profile::{
        builder::{Direction, FlowDelta, FlowId},
        model::{ApplicationProfile, Flow, ProfileKey, Protocol, Resolver, Status, Timestamp},
    },
};

const T0: Timestamp = Timestamp::lit("2026-11-26T00:00:00Z");
const T1: Timestamp = Timestamp::lit("2026-11-26T00:00:30Z");
const T2: Timestamp = Timestamp::lit("2026-11-26T00:02:00Z");
const BEDROCK: &str = "bedrock-runtime.us-east-1.amazonaws.com";

/// The entry points anomalies are raised from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Path {
    /// `Engine::on_event`: exec, file, DNS, connect and UDP-send events.
    Event,
    /// `Engine::on_event` with a container's final syscall set (its cgroup went).
    ExitSyscalls,
    /// `Engine::on_event` with the running sets read as the agent stops.
    StopSyscalls,
    /// `Engine::on_syscalls`: the periodic read of the syscall bitmaps.
    SyscallPoll,
    /// `Engine::on_flow_window`: a rate window of a flow.
    FlowWindow,
    /// `LiveAudit::on_event` with a connect or UDP send.
    AuditEgress,
    /// `LiveAudit::on_event` with an accept (ingress).
    AuditIngress,
}

impl Path {
    const ALL: [Path; 7] = [
        Path::Event,
        Path::ExitSyscalls,
        Path::StopSyscalls,
        Path::SyscallPoll,
        Path::FlowWindow,
        Path::AuditEgress,
        Path::AuditIngress,
    ];
}

/// What is fed to a path.
#[derive(Debug, Clone)]
enum Input {
    Event(Event),
    Poll {
        native: Vec<String>,
        compat: Vec<String>,
    },
    Window {
        id: FlowId,
        window: FlowDelta,
        seconds: u64,
    },
    Audit(Event),
}

impl Input {
    fn path(&self) -> Path {
        match self {
            Input::Event(ev) => match ev.detail {
                Detail::Syscalls { is_final: true, .. } => Path::ExitSyscalls,
                Detail::Syscalls {
                    is_final: false, ..
                } => Path::StopSyscalls,
                _ => Path::Event,
            },
            Input::Poll { .. } => Path::SyscallPoll,
            Input::Window { .. } => Path::FlowWindow,
            Input::Audit(ev) => match ev.detail {
                Detail::Accept { .. } => Path::AuditIngress,
                _ => Path::AuditEgress,
            },
        }
    }
}

/// A ready profile and what makes it raise a rule.
struct Scenario {
    profile: ApplicationProfile,
    input: Input,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn key(workload: &str) -> ProfileKey {
    ProfileKey {
        namespace: "shop".into(),
        workload: workload.into(),
        container: "app".into(),
    }
}

fn egress_id(ip: &str, port: u16) -> FlowId {
    FlowId {
        direction: Direction::Egress,
        ip: ip.parse().unwrap(),
        port,
        protocol: Protocol::Tcp,
    }
}

fn delta(connections: u64, bytes_sent: u64) -> FlowDelta {
    FlowDelta {
        connections,
        bytes_sent,
        bytes_recv: 0,
    }
}

/// Learns `windows` of flow `id` (named `names`) into `p`.
fn learn_flow(p: &mut ApplicationProfile, id: FlowId, names: &[&str], windows: &[FlowDelta]) {
    let mut total = FlowDelta::default();
    for w in windows {
        total.add(*w);
    }
    p.record_flow(id, total, &s(names), T1);
    for w in windows {
        p.record_window(id, *w, 60, T1);
    }
}

/// A ready web API: a server, a few syscalls, a database, a DNS name, no sensitive file.
fn api() -> ApplicationProfile {
    let mut p = ApplicationProfile::new(key("api"), WorkloadKind::Deployment, 60, T0);
    p.labels = [("app".to_string(), "api".to_string())].into();
    p.record_syscalls(&s(&["read", "write", "openat", "connect"]), &[], T1);
    p.record_exec("/app/server", &s(&["/app/server", "--port=8080"]), T1);
    let resolver = Resolver {
        ip: "10.96.0.10".parse().unwrap(),
        cluster_dns: true,
    };
    p.record_dns(
        "db.data.svc.cluster.local",
        &["10.0.0.5".parse().unwrap()],
        resolver,
        T1,
    );
    learn_flow(
        &mut p,
        egress_id("10.0.0.5", 5432),
        &[],
        &[delta(100, 1 << 20), delta(40, 300 << 10)],
    );
    assert!(p.advance(T2));
    p
}

/// A ready AI agent: `python3 agent.py` calling Bedrock.
fn agent() -> ApplicationProfile {
    let mut p = ApplicationProfile::new(key("assistant"), WorkloadKind::Deployment, 60, T0);
    p.labels = [("app".to_string(), "assistant".to_string())].into();
    p.record_exec("/usr/bin/python3", &s(&["python3", "agent.py"]), T1);
    p.record_agent_program("python3 agent.py", T1);
    learn_flow(
        &mut p,
        egress_id("10.0.0.9", 443),
        &[BEDROCK],
        &[delta(2, 20 << 10), delta(3, 30 << 10)],
    );
    assert!(p.advance(T2));
    p
}

fn event(p: &ApplicationProfile, detail: Detail) -> Event {
    Event {
        time: "2026-11-26T01:00:00Z".into(),
        kind: detail.kind(),
        node: Arc::from("node-1"),
        who: Arc::new(p.key.attribution(p.workload_kind)),
        pid: Some(4242),
        ppid: Some(1),
        comm: Some("x".into()),
        detail,
    }
}

/// `p` and an event of its container with `detail`.
fn with_event(p: ApplicationProfile, detail: Detail) -> Scenario {
    let ev = event(&p, detail);
    Scenario {
        profile: p,
        input: Input::Event(ev),
    }
}

fn exec(p: ApplicationProfile, path: &str, args: &[&str]) -> Scenario {
    with_event(
        p,
        Detail::Exec {
            path: path.into(),
            exe: None,
            args: s(args),
            args_truncated: false,
            path_truncated: false,
            uid: 1000,
            workload_start: false,
        },
    )
}

fn connect_detail(ip: &str, port: u16, names: &[&str]) -> Detail {
    Detail::Connect {
        protocol: "tcp",
        remote_ip: ip.parse().unwrap(),
        remote_port: port,
        origin: "connect",
        remote_names: s(names),
    }
}

fn connect(p: ApplicationProfile, ip: &str, port: u16, names: &[&str]) -> Scenario {
    with_event(p, connect_detail(ip, port, names))
}

fn file(p: ApplicationProfile, path: &str, pattern: &str) -> Scenario {
    with_event(p, Detail::sample_file(path, pattern))
}

fn dns(p: ApplicationProfile, name: &str, answer: &str) -> Scenario {
    with_event(
        p,
        Detail::Dns {
            question: name.into(),
            qtype: "A".into(),
            rcode: "NOERROR".into(),
            server_ip: "10.96.0.10".parse().unwrap(),
            transport: "udp",
            answers: vec![DnsAnswerRecord {
                ip: answer.parse().unwrap(),
                names: vec![name.into()],
                ttl: 30,
            }],
        },
    )
}

/// One native and one compat call, outside the baseline, through every syscall path.
fn syscalls() -> Vec<Scenario> {
    let mut out = Vec::new();
    // `connect`: in the native baseline, not in the runtime floor (which is never judged).
    for (native, compat) in [(s(&["ftruncate"]), vec![]), (vec![], s(&["connect"]))] {
        for is_final in [true, false] {
            out.push(with_event(
                api(),
                Detail::Syscalls {
                    native: native.clone(),
                    compat: compat.clone(),
                    setup_native: vec![],
                    setup_compat: vec![],
                    is_final,
                },
            ));
        }
        out.push(Scenario {
            profile: api(),
            input: Input::Poll { native, compat },
        });
    }
    out
}

fn window(p: ApplicationProfile, id: FlowId, window: FlowDelta) -> Scenario {
    Scenario {
        profile: p,
        input: Input::Window {
            id,
            window,
            seconds: 60,
        },
    }
}

/// New flows the audited deny-all policy denies, both directions.
fn audited() -> Vec<Scenario> {
    let p = api();
    let out = event(&p, connect_detail("203.0.113.9", 443, &["pay.example.com"]));
    let accept = event(
        &p,
        Detail::Accept {
            protocol: "tcp",
            remote_ip: "10.0.3.7".parse().unwrap(),
            local_ip: "10.0.1.2".parse().unwrap(),
            local_port: 8080,
        },
    );
    vec![
        Scenario {
            profile: p,
            input: Input::Audit(out),
        },
        Scenario {
            profile: api(),
            input: Input::Audit(accept),
        },
    ]
}

/// What raises `rule`, on each path it can be raised on. No wildcard: a new rule needs its own.
fn scenarios(rule: RuleId) -> Vec<Scenario> {
    match rule {
        RuleId::UnexpectedExec => vec![exec(api(), "/usr/bin/curl", &["curl", "-s", "x"])],
        RuleId::ShellSpawned => vec![exec(api(), "/bin/sh", &["sh", "-c", "id"])],
        RuleId::UnexpectedSyscall => syscalls(),
        RuleId::UnexpectedEgress => vec![connect(api(), "203.0.113.9", 443, &[])],
        RuleId::UnexpectedDns => vec![dns(api(), "evil.example", "203.0.113.66")],
        RuleId::ServiceAccountTokenRead => vec![file(
            api(),
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "/var/run/secrets/kubernetes.io/serviceaccount/",
        )],
        RuleId::CloudMetadataAccess => vec![connect(api(), "169.254.169.254", 80, &[])],
        RuleId::EgressVolumeSpike => vec![window(
            api(),
            egress_id("10.0.0.5", 5432),
            delta(1000, 1 << 20),
        )],
        RuleId::LargePayload => vec![window(
            api(),
            egress_id("10.0.0.5", 5432),
            delta(1, 50 << 20),
        )],
        RuleId::SensitiveFileRead => vec![file(api(), "/etc/shadow", "/etc/shadow")],
        RuleId::WouldDeny => audited(),
        RuleId::AgentCodeExecution => {
            vec![exec(
                agent(),
                "/usr/bin/python3",
                &["python3", "-c", "print(1)"],
            )]
        }
        RuleId::NewAiProvider => vec![
            connect(agent(), "10.9.0.1", 443, &["api.openai.com"]),
            connect(agent(), "10.9.0.2", 443, &["api-openai.com.example.net"]),
        ],
        RuleId::PromptSizeSpike => vec![window(
            agent(),
            egress_id("10.0.0.9", 443),
            delta(1, 1 << 20),
        )],
        RuleId::AgentCredentialAccess => vec![
            file(
                agent(),
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
                "/var/run/secrets/kubernetes.io/serviceaccount/",
            ),
            connect(agent(), "169.254.169.254", 80, &[]),
        ],
    }
}

/// A namespace-wide deny-all policy: every new flow is a `would-deny`.
const DENY_ALL: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
metadata: {name: deny-all, namespace: shop}\n\
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n";

/// An agent's state for one scenario: its store, anomaly log and audited policies.
struct Bed {
    state: tempfile::TempDir,
    policies: tempfile::TempDir,
    store: Arc<RwLock<ProfileStore>>,
    key: ProfileKey,
}

impl Bed {
    fn new(profile: ApplicationProfile) -> Bed {
        let policies = tempfile::tempdir().unwrap();
        std::fs::write(policies.path().join("policy.yaml"), DENY_ALL).unwrap();
        Bed {
            state: tempfile::tempdir().unwrap(),
            policies,
            key: profile.key.clone(),
            store: Arc::new(RwLock::new(ProfileStore::new(60, vec![profile]))),
        }
    }

    fn profile(&self) -> ApplicationProfile {
        self.store.read().unwrap().get(&self.key).unwrap().clone()
    }

    /// The audited set becomes the NetworkPolicy draft of the current baseline.
    fn audit_the_draft(&self) {
        std::fs::write(
            self.policies.path().join("policy.yaml"),
            to_yaml(&network_policy(&self.profile(), Catalogue::embedded()).unwrap()).unwrap(),
        )
        .unwrap();
    }

    /// Feeds `input` to its path as the agent does, with a fresh engine (no aggregation across
    /// calls) logging into this bed's state dir; returns what was published.
    fn raise(&self, input: &Input) -> Vec<Anomaly> {
        let log = AnomalyLog::open(self.state.path(), Retention::default()).unwrap();
        let mut engine = Engine::new(
            log,
            "node-1".into(),
            Duration::from_secs(60),
            Duration::from_secs(3600),
            Catalogue::embedded(),
        );
        let processes = ProcessTable::new(64);
        let mut out = Vec::new();
        let mut publish = |a: &Anomaly| out.push(a.clone());
        let who = self.key.attribution(WorkloadKind::Deployment);
        let time = T2.to_string();
        let story = Story {
            who: &who,
            time: &time,
            pid: None,
            processes: &processes,
            agent: None,
        };
        match input {
            Input::Event(ev) => {
                let store = self.store.read().unwrap();
                let profile = store.get(&self.key).unwrap();
                engine
                    .on_event(ev, profile, &processes, &|| None, &mut publish)
                    .unwrap();
            }
            Input::Poll { native, compat } => {
                let store = self.store.read().unwrap();
                let profile = store.get(&self.key).unwrap();
                engine
                    .on_syscalls(native, compat, profile, &story, &mut publish)
                    .unwrap();
            }
            Input::Window {
                id,
                window,
                seconds,
            } => {
                let store = self.store.read().unwrap();
                let profile = store.get(&self.key).unwrap();
                engine
                    .on_flow_window(*id, *window, *seconds, profile, &story, &mut publish)
                    .unwrap();
            }
            Input::Audit(ev) => {
                let mut audit = LiveAudit::start(self.policies.path(), Arc::default()).unwrap();
                let learner = Learner::new(self.store.clone(), HashSet::new(), "node-1".into());
                audit.on_event(
                    ev,
                    &self.store,
                    &learner,
                    &mut engine,
                    &processes,
                    &mut publish,
                );
            }
        }
        out
    }

    fn controls(&self) -> Controls {
        Controls {
            store: self.store.clone(),
            state_dir: self.state.path().to_path_buf(),
        }
    }
}

/// Problems with the next drafts of `p` for what `fold` added: the seccomp draft must allow an
/// accepted syscall and the NetworkPolicy draft every recorded flow, the accepted one among
/// them. Programs, files and DNS names are in no draft (Cilium's allows every lookup).
fn draft_problems(p: &ApplicationProfile, fold: &Fold) -> Vec<String> {
    let flow = |direction: Direction, ip, port, protocol| {
        let flows = match direction {
            Direction::Egress => &p.egress,
            Direction::Ingress => &p.ingress,
        };
        let held = flows
            .iter()
            .any(|f: &Flow| f.ip == ip && f.port == port && f.protocol == protocol);
        let set = PolicySet::new([&network_policy(p, Catalogue::embedded()).unwrap()]).unwrap();
        let audit = report::audit(std::slice::from_ref(p), &set, &Namespaces::default());
        let mut problems = Vec::new();
        if !held {
            problems.push(format!(
                "the baseline has no {direction:?} flow {ip}:{port}"
            ));
        }
        if !audit.would_deny.is_empty() {
            problems.push(format!(
                "the NetworkPolicy draft denies recorded flows: {}",
                report::render_text(&audit)
            ));
        }
        problems
    };
    match fold {
        Fold::Syscall { name, .. } => {
            if allowed_syscalls(p, NodeArch::current()).contains(name) {
                vec![]
            } else {
                vec![format!("the seccomp draft does not allow {name}")]
            }
        }
        Fold::Egress {
            ip, port, protocol, ..
        } => flow(Direction::Egress, *ip, *port, *protocol),
        Fold::Ingress { ip, port, protocol } => flow(Direction::Ingress, *ip, *port, *protocol),
        Fold::Rate {
            ip,
            port,
            protocol,
            ingress,
            ..
        } => {
            let direction = if *ingress {
                Direction::Ingress
            } else {
                Direction::Egress
            };
            flow(direction, *ip, *port, *protocol)
        }
        Fold::Exec { .. } | Fold::File { .. } | Fold::Dns { .. } => vec![],
    }
}

/// Raises the scenario, accepts each anomaly it raised, and checks the baseline, the drafts and
/// that the same input is quiet; returns the (rule, path) pairs raised.
fn accept_each(rule: RuleId, sc: &Scenario) -> Vec<(RuleId, Path)> {
    let path = sc.input.path();
    let first = Bed::new(sc.profile.clone()).raise(&sc.input);
    assert!(
        first.iter().any(|a| a.finding.rule == rule),
        "the {} scenario on path {path:?} raised {:?}",
        rule.as_str(),
        first.iter().map(|a| a.finding.rule).collect::<Vec<_>>()
    );
    let mut raised = Vec::new();
    for a in &first {
        let what = format!(
            "{} on path {path:?} ({})",
            a.finding.rule.as_str(),
            a.finding.subject
        );
        raised.push((a.finding.rule, path));
        assert!(a.fold.is_some(), "{what} carries no fold");
        // A bed per anomaly: each accept is judged alone.
        let bed = Bed::new(sc.profile.clone());
        let again = bed.raise(&sc.input);
        let seq = again
            .iter()
            .find(|b| b.finding.rule == a.finding.rule && b.finding.subject == a.finding.subject)
            .map(|b| b.seq)
            .unwrap_or_else(|| panic!("{what}: not raised again from a fresh state"));
        let outcome = bed
            .controls()
            .accept(seq)
            .unwrap_or_else(|e| panic!("{what}: accept failed: {e}"));
        assert!(outcome.changed, "{what}: accepting added nothing");
        let after = bed.profile();
        assert_eq!(after.status, Status::Ready, "{what}: no longer ready");
        let problems = draft_problems(&after, &outcome.fold);
        assert!(problems.is_empty(), "{what}: {problems:?}");
        if matches!(path, Path::AuditEgress | Path::AuditIngress) {
            // The audit judges the policies, not the baseline: quiet once the set audited is
            // the draft that now holds the flow.
            bed.audit_the_draft();
        }
        let repeat: Vec<String> = bed
            .raise(&sc.input)
            .iter()
            .filter(|b| b.finding.rule == a.finding.rule && b.finding.subject == a.finding.subject)
            .map(|b| b.finding.message.clone())
            .collect();
        assert!(
            repeat.is_empty(),
            "{what}: raised again after accept: {repeat:?}"
        );
    }
    raised
}

#[test]
fn every_rule_on_every_path_can_be_accepted_and_is_quiet_afterwards() {
    let mut raised = BTreeSet::new();
    for rule in RuleId::ALL {
        let scenarios = scenarios(rule);
        assert!(
            !scenarios.is_empty(),
            "no scenario raises {}",
            rule.as_str()
        );
        for sc in &scenarios {
            raised.extend(accept_each(rule, sc));
        }
    }
    for path in Path::ALL {
        assert!(
            raised.iter().any(|(_, p)| *p == path),
            "nothing was raised on path {path:?}"
        );
    }
    for rule in RuleId::ALL {
        let paths: Vec<Path> = Path::ALL
            .into_iter()
            .filter(|p| raised.contains(&(rule, *p)))
            .collect();
        eprintln!("{:<27} {paths:?}", rule.as_str());
    }
    // The syscall rule on each of its three paths: the exit-time set (short-lived pods) too.
    for path in [Path::ExitSyscalls, Path::StopSyscalls, Path::SyscallPoll] {
        assert!(
            raised.contains(&(RuleId::UnexpectedSyscall, path)),
            "{path:?}"
        );
    }
}

#[test]
fn a_compat_call_folds_into_the_compat_baseline() {
    for sc in syscalls()
        .into_iter()
        .filter(|sc| matches!(&sc.input, Input::Poll { compat, .. } if !compat.is_empty()))
    {
        let bed = Bed::new(sc.profile.clone());
        let a = bed.raise(&sc.input);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(
            a[0].fold,
            Some(Fold::Syscall {
                name: "connect".into(),
                compat: true
            })
        );
        bed.controls().accept(a[0].seq).unwrap();
        let p = bed.profile();
        assert_eq!(
            (
                p.syscalls.native.contains(&"connect".to_string()),
                p.syscalls.compat.clone()
            ),
            (true, s(&["connect"])),
            "compat connect joins the compat set, the native one was there already"
        );
    }
}

#[test]
fn a_final_syscall_set_says_so_in_the_evidence() {
    let found: Vec<(Path, String)> = syscalls()
        .iter()
        .map(|sc| {
            let a = Bed::new(sc.profile.clone()).raise(&sc.input);
            (
                sc.input.path(),
                a[0].finding.evidence.observed["syscallSet"].clone(),
            )
        })
        .collect();
    for (path, set) in found {
        let want = match path {
            Path::ExitSyscalls => "final (container exited)",
            Path::StopSyscalls => "running (read as the agent stopped)",
            _ => "running (periodic read)",
        };
        assert_eq!(set, want, "{path:?}");
    }
}
