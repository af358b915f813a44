//! Runs the rules on what the agent sees, for ready profiles only, and turns findings into
//! anomalies with the whole story: attribution, the process and its ancestry, the evidence, and
//! what accepting the anomaly would add to the baseline. Repeats are aggregated; every record
//! goes to the anomaly log (which numbers it) and then to the subscribers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use super::{
    aggregate::{Aggregator, Verdict},
    fold::{self, Observation},
    log::{AnomalyLog, LogError},
    model::{AgentChain, Ancestor, Anomaly, Finding, Fold, ProcessRef, RuleId},
    rules::{self, RuleConfig},
};
use crate::{
    ai::{Catalogue, tools::Chain},
    attribution::event::{Detail, Event, command_label, peer_label},
    attribution::{Attribution, processes::ProcessTable, workload::WorkloadKind},
    profile::{
        builder::{Direction, FlowDelta, FlowId},
        model::{ApplicationProfile, ProfileKey, Status, Timestamp},
    },
};

/// Ancestry depth carried in an anomaly.
const ANCESTRY: usize = 8;

/// Evidence of `unexpected-syscall`: which read of the container's set found the call. A final
/// set is all a pod that lived between two polls (a Job, a tool container) leaves.
const SET_KEY: &str = "syscallSet";
const SET_RUNNING: &str = "running (periodic read)";
const SET_FINAL: &str = "final (container exited)";
const SET_AT_STOP: &str = "running (read as the agent stopped)";

pub struct Engine {
    pub config: RuleConfig,
    aggregator: Aggregator,
    pub log: AnomalyLog,
    node: String,
    /// Last time a rule fired for a profile (graduation: no unexpected syscall/egress lately);
    /// shared with the API, which reports graduation.
    pub last_fired: LastFired,
    /// What the agent rules know about AI services (model APIs, MCP servers...).
    catalogue: &'static Catalogue,
}

/// When each rule last fired for each profile.
pub type LastFired = Arc<Mutex<HashMap<(ProfileKey, RuleId), SystemTime>>>;

/// The context an anomaly is built in.
pub struct Story<'a> {
    pub who: &'a Attribution,
    pub time: &'a str,
    pub pid: Option<u32>,
    pub processes: &'a ProcessTable,
    /// agent -> tool -> action, when the process belongs to an AI agent.
    pub agent: Option<AgentChain>,
}

impl Engine {
    pub fn new(
        log: AnomalyLog,
        node: String,
        aggregate_window: Duration,
        forget_after: Duration,
        catalogue: &'static Catalogue,
    ) -> Self {
        Self {
            config: RuleConfig::default(),
            aggregator: Aggregator::new(aggregate_window, forget_after),
            log,
            node,
            last_fired: LastFired::default(),
            catalogue,
        }
    }

    /// Findings of one attributed event against its (ready) profile: the generic rules, then
    /// the agent rules. `chain` places the process in an AI agent's tool calls; it is asked
    /// only when a rule needs it or a finding is made (it copies names).
    pub fn on_event(
        &mut self,
        ev: &Event,
        profile: &ApplicationProfile,
        processes: &ProcessTable,
        chain: &dyn Fn() -> Option<Chain>,
        publish: &mut dyn FnMut(&Anomaly),
    ) -> Result<(), LogError> {
        if profile.status != Status::Ready {
            return Ok(());
        }
        let mut findings = rules::on_event(ev, profile, &self.config);
        let asked = !findings.is_empty() || rules::agent::needs_chain(ev);
        let mut chain_now = if asked { chain() } else { None };
        let agent =
            rules::agent::on_event(ev, profile, &findings, chain_now.as_ref(), self.catalogue);
        findings.extend(agent);
        if findings.is_empty() {
            return Ok(());
        }
        if !asked {
            chain_now = chain();
        }
        let story = Story {
            who: &ev.who,
            time: &ev.time,
            pid: ev.pid,
            processes,
            agent: chain_now.map(|c| agent_chain(&c, &ev.detail)),
        };
        let set = match ev.detail {
            Detail::Syscalls { is_final: true, .. } => Some(SET_FINAL),
            Detail::Syscalls {
                is_final: false, ..
            } => Some(SET_AT_STOP),
            _ => None,
        };
        for mut f in findings {
            let fold = fold::of(&f, &Observation::Event(ev));
            if let Some(set) = set {
                f.evidence.observed.insert(SET_KEY.into(), set.into());
            }
            self.emit(f, &story, fold, profile, publish)?;
        }
        Ok(())
    }

    /// Findings of a container's running syscall set, read by the periodic poll (no process:
    /// bitmaps carry no pid).
    pub fn on_syscalls(
        &mut self,
        native: &[String],
        compat: &[String],
        profile: &ApplicationProfile,
        story: &Story<'_>,
        publish: &mut dyn FnMut(&Anomaly),
    ) -> Result<(), LogError> {
        if profile.status != Status::Ready {
            return Ok(());
        }
        for mut f in rules::on_syscalls(native, compat, profile) {
            let fold = fold::of(&f, &Observation::SyscallPoll);
            f.evidence
                .observed
                .insert(SET_KEY.into(), SET_RUNNING.into());
            self.emit(f, story, fold, profile, publish)?;
        }
        Ok(())
    }

    /// Findings of one flow's rate window.
    pub fn on_flow_window(
        &mut self,
        id: FlowId,
        window: FlowDelta,
        window_seconds: u64,
        profile: &ApplicationProfile,
        story: &Story<'_>,
        publish: &mut dyn FnMut(&Anomaly),
    ) -> Result<(), LogError> {
        if profile.status != Status::Ready {
            return Ok(());
        }
        let observed = Observation::FlowWindow {
            id,
            window,
            window_seconds,
        };
        for f in rules::on_flow_window(
            id,
            window,
            window_seconds,
            profile,
            &self.config,
            self.catalogue,
        ) {
            let fold = fold::of(&f, &observed);
            self.emit(f, story, fold, profile, publish)?;
        }
        Ok(())
    }

    /// A finding made outside the rules (the live NetworkPolicy audit) of what was `observed`,
    /// for any profile status: attributed, logged, aggregated and published like the others.
    pub fn report(
        &mut self,
        finding: Finding,
        observed: &Observation<'_>,
        story: &Story<'_>,
        profile: &ApplicationProfile,
        publish: &mut dyn FnMut(&Anomaly),
    ) -> Result<(), LogError> {
        let fold = fold::of(&finding, observed);
        self.emit(finding, story, fold, profile, publish)
    }

    fn emit(
        &mut self,
        finding: Finding,
        story: &Story<'_>,
        fold: Option<Fold>,
        profile: &ApplicationProfile,
        publish: &mut dyn FnMut(&Anomaly),
    ) -> Result<(), LogError> {
        let now = Instant::now();
        self.last_fired
            .lock()
            .expect("last-fired lock")
            .insert((profile.key.clone(), finding.rule), SystemTime::now());
        let anomaly = Anomaly {
            seq: 0,
            time: story.time.to_string(),
            node: self.node.clone(),
            namespace: profile.key.namespace.clone(),
            pod: story.who.pod.clone().unwrap_or_default(),
            pod_uid: story.who.pod_uid.clone().unwrap_or_default(),
            container: profile.key.container.clone(),
            container_id: story.who.container_id.clone().unwrap_or_default(),
            workload: profile.key.workload.clone(),
            workload_kind: story.who.workload_kind.unwrap_or(WorkloadKind::Pod),
            labels: profile.labels.clone(),
            finding,
            process: story.pid.map(|pid| process_ref(story.processes, pid)),
            agent_chain: story.agent.clone(),
            count: 1,
            repeat_of: None,
            last_seen: story.time.to_string(),
            fold,
        };
        if let Verdict::Report(anomaly) = self.aggregator.observe(anomaly, now) {
            let logged = self.log.append(*anomaly)?;
            self.aggregator.reported(&logged, now);
            publish(&logged);
        }
        Ok(())
    }

    /// Repeat records due now (or all pending ones with `force`, at shutdown).
    pub fn tick(&mut self, force: bool, publish: &mut dyn FnMut(&Anomaly)) -> Result<(), LogError> {
        // Every due record is tried: one that cannot be written (counted by the log) must not
        // take the others with it.
        let mut first_error = None;
        for repeat in self.aggregator.due(Instant::now(), force) {
            match self.log.append(repeat) {
                Ok(logged) => publish(&logged),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Whether a rule fired for the profile within `window`.
    pub fn fired_within(&self, key: &ProfileKey, rule: RuleId, window: Duration) -> bool {
        self.last_fired
            .lock()
            .expect("last-fired lock")
            .get(&(key.clone(), rule))
            .is_some_and(|t| t.elapsed().unwrap_or_default() < window)
    }

    /// Seeds the graduation record from the log (anomalies before a restart still count).
    pub fn seed_last_fired(&self, within: Duration) {
        let Ok(records) = self.log.read_after(0, usize::MAX) else {
            return;
        };
        let mut map = self.last_fired.lock().expect("last-fired lock");
        for a in records {
            let Ok(t) = humantime::parse_rfc3339_weak(&a.last_seen) else {
                continue;
            };
            if SystemTime::now().duration_since(t).unwrap_or_default() > within {
                continue;
            }
            let key = ProfileKey {
                namespace: a.namespace,
                workload: a.workload,
                container: a.container,
            };
            let slot = map.entry((key, a.finding.rule)).or_insert(t);
            if *slot < t {
                *slot = t;
            }
        }
    }
}

/// The process and its ancestry, from the process table. The chain stays inside the
/// container (ancestors in the process's cgroup) plus the first ancestor outside it - the
/// runtime that started it - whose arguments are not copied: host command lines do not belong
/// in a container's anomaly.
pub fn process_ref(processes: &ProcessTable, pid: u32) -> ProcessRef {
    let me = processes.get(pid);
    let cgroup = me.map(|p| p.cgroup_id);
    let mut ancestry = Vec::new();
    for p in processes.ancestry(pid, ANCESTRY) {
        let inside = cgroup.is_some_and(|c| c == p.cgroup_id);
        ancestry.push(Ancestor {
            pid: p.pid,
            comm: p.comm.clone(),
            path: p.path.clone(),
            args: if inside { p.args.clone() } else { Vec::new() },
        });
        if !inside {
            break;
        }
    }
    ProcessRef {
        pid,
        ppid: me.map(|p| p.ppid),
        comm: me.map(|p| p.comm.clone()).unwrap_or_default(),
        path: me.map(|p| p.path.clone()).unwrap_or_default(),
        args: me.map(|p| p.args.clone()).unwrap_or_default(),
        ancestry,
    }
}

/// The chain of an event's process, with the event as the action.
fn agent_chain(chain: &Chain, detail: &Detail) -> AgentChain {
    AgentChain {
        agent: chain.agent.clone(),
        tool: chain.tool.clone(),
        action: action(detail),
    }
}

/// One event as an action: `exec curl -s x`, `connect 10.0.0.1:443/tcp (api.example.com)`.
fn action(detail: &Detail) -> String {
    let action = match detail {
        Detail::Exec { path, args, .. } => format!("exec {}", command_label(path, args)),
        Detail::Connect {
            protocol,
            remote_ip,
            remote_port,
            remote_names,
            ..
        } => format!(
            "connect {}",
            peer_label(*remote_ip, *remote_port, protocol, remote_names)
        ),
        Detail::File {
            path, open_flags, ..
        } => {
            if open_flags & 0o3 == 0 {
                format!("read {path}")
            } else {
                format!("open {path} for writing")
            }
        }
        Detail::Dns { question, .. } => format!("resolve {question}"),
        other => other.kind().to_string(),
    };
    crate::text::truncate(&action, 200)
}

/// What an accepted flow counts as: the one connection that was reported.
const ONE_CONNECTION: FlowDelta = FlowDelta {
    connections: 1,
    bytes_sent: 0,
    bytes_recv: 0,
};

/// Adds an accepted anomaly's behaviour to a profile (even a ready one). Returns a description
/// of what was added.
pub fn fold_into(profile: &mut ApplicationProfile, fold: &Fold, now: Timestamp) -> String {
    // Folding bypasses the freeze of ready profiles: it is the user's decision.
    let status = profile.status;
    profile.status = Status::Learning;
    let what = match fold {
        Fold::Exec { path, args } => {
            profile.record_exec(path, args, now);
            format!("exec {path} {}", args.join(" "))
        }
        Fold::Syscall { name, compat } => {
            if *compat {
                profile.record_syscalls(&[], std::slice::from_ref(name), now);
            } else {
                profile.record_syscalls(std::slice::from_ref(name), &[], now);
            }
            format!("syscall {name}{}", if *compat { " (compat)" } else { "" })
        }
        Fold::Egress {
            ip,
            port,
            protocol,
            names,
        } => {
            let id = FlowId {
                direction: Direction::Egress,
                ip: *ip,
                port: *port,
                protocol: *protocol,
            };
            profile.record_flow(id, ONE_CONNECTION, names, now);
            format!("egress {ip}:{port}/{protocol:?}")
        }
        Fold::Ingress { ip, port, protocol } => {
            let id = FlowId {
                direction: Direction::Ingress,
                ip: *ip,
                port: *port,
                protocol: *protocol,
            };
            profile.record_flow(id, ONE_CONNECTION, &[], now);
            format!("ingress from {ip} to port {port}/{protocol:?}")
        }
        Fold::Dns { name, addresses } => {
            // The resolver is already known (the name was resolved through it); a placeholder
            // is only used when none is, and removed again so no draft ever sees it.
            let placeholder = crate::profile::model::Resolver {
                ip: std::net::IpAddr::from([0, 0, 0, 0]),
                cluster_dns: false,
            };
            let resolver = profile
                .resolvers
                .first()
                .cloned()
                .unwrap_or(placeholder.clone());
            profile.record_dns(name, addresses, resolver, now);
            profile.resolvers.retain(|r| *r != placeholder);
            format!("dns name {name}")
        }
        Fold::File { path, pattern } => {
            profile.record_file(path, pattern, now);
            format!("file {path}")
        }
        Fold::Rate {
            ip,
            port,
            protocol,
            ingress,
            connections,
            bytes_sent,
            bytes_recv,
            window_seconds,
        } => {
            let direction = if *ingress {
                Direction::Ingress
            } else {
                Direction::Egress
            };
            let id = FlowId {
                direction,
                ip: *ip,
                port: *port,
                protocol: *protocol,
            };
            let window = FlowDelta {
                connections: *connections,
                bytes_sent: *bytes_sent,
                bytes_recv: *bytes_recv,
            };
            profile.record_window(id, window, *window_seconds, now);
            format!(
                "rate of {ip}:{port}: {connections} connections, {bytes_sent} bytes sent per {window_seconds}s"
            )
        }
    };
    profile.status = status;
    profile.updated = now;
    what
}

/// What a baseline allows, without the counters and timestamps that every fold bumps: two
/// profiles with the same behaviour give equal values, so an accept that adds nothing new is
/// reported as unchanged.
pub fn allowed_behaviour(p: &ApplicationProfile) -> impl PartialEq + use<> {
    let flows = |flows: &[crate::profile::model::Flow]| {
        flows
            .iter()
            .map(|f| {
                (
                    f.ip,
                    f.port,
                    f.protocol,
                    f.dns_names.clone(),
                    f.rate.max_connections_per_window,
                    f.rate.max_bytes_sent_per_window,
                    f.rate.max_bytes_recv_per_window,
                    f.rate.max_bytes_sent_per_connection,
                )
            })
            .collect::<Vec<_>>()
    };
    (
        p.syscalls.clone(),
        p.execs
            .iter()
            .map(|e| (e.path.clone(), e.args.clone()))
            .collect::<Vec<_>>(),
        flows(&p.egress),
        flows(&p.ingress),
        p.dns
            .iter()
            .map(|d| (d.name.clone(), d.addresses.clone()))
            .collect::<Vec<_>>(),
        p.resolvers.clone(),
        p.files
            .iter()
            .map(|f| (f.path.clone(), f.pattern.clone()))
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{attribution::processes::ProcessInfo, profile::model::Protocol};

    fn proc(pid: u32, ppid: u32, comm: &str, cgroup_id: u64) -> ProcessInfo {
        ProcessInfo {
            pid,
            ppid,
            comm: comm.into(),
            path: format!("/bin/{comm}"),
            args: vec![comm.into(), "--secret-host-flag".into()],
            cgroup_id,
            exited: false,
        }
    }

    #[test]
    fn ancestry_stops_at_the_container_boundary_without_host_arguments() {
        let mut t = ProcessTable::new(64);
        t.exec(proc(1, 0, "systemd", 1));
        t.exec(proc(10, 1, "containerd-shim", 1));
        t.exec(proc(20, 10, "runc", 1));
        t.exec(proc(30, 20, "sh", 77));
        t.exec(proc(40, 30, "python3", 77));
        t.exec(proc(50, 40, "curl", 77));
        let r = process_ref(&t, 50);
        let chain: Vec<(u32, usize)> = r.ancestry.iter().map(|a| (a.pid, a.args.len())).collect();
        assert_eq!(
            chain,
            vec![(40, 2), (30, 2), (20, 0)],
            "inside with args, then the runtime without"
        );
        assert_eq!(r.comm, "curl");
        assert_eq!(process_ref(&t, 999).ancestry.len(), 0);
    }

    /// An empty profile past its 1 s learning period.
    fn ready_profile() -> ApplicationProfile {
        let key = ProfileKey {
            namespace: "ns".into(),
            workload: "w".into(),
            container: "c".into(),
        };
        let mut p = ApplicationProfile::new(
            key,
            WorkloadKind::Deployment,
            1,
            Timestamp::lit("2026-11-26T00:00:00Z"),
        );
        p.advance(Timestamp::lit("2026-11-26T00:00:05Z"));
        p
    }

    #[test]
    fn folding_an_exec_makes_it_part_of_a_ready_baseline() {
        let mut p = ready_profile();
        let fold = Fold::Exec {
            path: "/usr/bin/curl".into(),
            args: vec!["curl".into(), "*".into()],
        };
        let what = fold_into(&mut p, &fold, Timestamp::lit("2026-11-26T00:00:06Z"));
        assert!(what.contains("/usr/bin/curl"));
        assert_eq!(p.status, Status::Ready, "still ready");
        assert_eq!(p.execs.len(), 1);
        assert!(
            !p.record_exec(
                "/usr/bin/curl",
                &["curl".into(), "x".into()],
                Timestamp::lit("2026-11-26T00:00:07Z")
            ) || p.execs.len() == 1
        );
    }

    #[test]
    fn folding_the_same_behaviour_twice_changes_nothing_the_second_time() {
        let mut p = ready_profile();
        let folds = [
            Fold::Exec {
                path: "/usr/bin/curl".into(),
                args: vec!["curl".into()],
            },
            Fold::Egress {
                ip: "10.0.0.9".parse().unwrap(),
                port: 443,
                protocol: Protocol::Tcp,
                names: vec!["api.example.com".into()],
            },
            Fold::Syscall {
                name: "ptrace".into(),
                compat: false,
            },
        ];
        for fold in &folds {
            let before = allowed_behaviour(&p);
            fold_into(&mut p, fold, Timestamp::lit("2026-11-26T00:00:06Z"));
            assert!(
                allowed_behaviour(&p) != before,
                "first accept of {fold:?} adds it"
            );
            let before = allowed_behaviour(&p);
            fold_into(&mut p, fold, Timestamp::lit("2026-11-26T00:00:07Z"));
            assert!(
                allowed_behaviour(&p) == before,
                "second accept of {fold:?} adds nothing"
            );
        }
    }
}
