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
    log::{AnomalyLog, LogError},
    model::{Ancestor, Anomaly, Finding, Fold, ProcessRef, RuleId},
    rules::{self, RuleConfig},
};
use crate::{
    attribution::{Attribution, processes::ProcessTable, workload::WorkloadKind},
    event::{Detail, Event},
    profile::{
        builder::{Direction, FlowDelta, FlowId},
        model::{ApplicationProfile, ProfileKey, Protocol, Status},
        normalize::normalize_args,
    },
};

/// Ancestry depth carried in an anomaly.
const ANCESTRY: usize = 8;

pub struct Engine {
    pub config: RuleConfig,
    aggregator: Aggregator,
    pub log: AnomalyLog,
    node: String,
    /// Last time a rule fired for a profile (graduation: no unexpected syscall/egress lately);
    /// shared with the API, which reports graduation.
    pub last_fired: LastFired,
}

/// When each rule last fired for each profile.
pub type LastFired = Arc<Mutex<HashMap<(ProfileKey, RuleId), SystemTime>>>;

/// The context an anomaly is built in.
pub struct Story<'a> {
    pub who: &'a Attribution,
    pub time: &'a str,
    pub pid: Option<u32>,
    pub processes: &'a ProcessTable,
}

impl Engine {
    pub fn new(
        log: AnomalyLog,
        node: String,
        aggregate_window: Duration,
        forget_after: Duration,
    ) -> Self {
        Self {
            config: RuleConfig::default(),
            aggregator: Aggregator::new(aggregate_window, forget_after),
            log,
            node,
            last_fired: LastFired::default(),
        }
    }

    /// Findings of one attributed event against its (ready) profile.
    pub fn on_event(
        &mut self,
        ev: &Event,
        profile: &ApplicationProfile,
        processes: &ProcessTable,
        publish: &mut dyn FnMut(&Anomaly),
    ) -> Result<(), LogError> {
        if profile.status != Status::Ready {
            return Ok(());
        }
        let findings = rules::on_event(ev, profile, &self.config);
        let story = Story {
            who: &ev.who,
            time: &ev.time,
            pid: ev.pid,
            processes,
        };
        for f in findings {
            let fold = fold_for_event(&f, ev);
            self.emit(f, &story, fold, profile, publish)?;
        }
        Ok(())
    }

    /// Findings of a container's syscall set (no process: bitmaps carry no pid).
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
        for f in rules::on_syscalls(native, compat, profile) {
            let compat_call = compat.contains(&f.subject) && !native.contains(&f.subject);
            let fold = Some(Fold::Syscall {
                name: f.subject.clone(),
                compat: compat_call,
            });
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
        for f in rules::on_flow_window(id, window, window_seconds, profile, &self.config) {
            let fold = Some(Fold::Rate {
                ip: id.ip,
                port: id.port,
                protocol: id.protocol,
                ingress: id.direction == Direction::Ingress,
                connections: window.connections,
                bytes_sent: window.bytes_sent,
                bytes_recv: window.bytes_recv,
                window_seconds,
            });
            self.emit(f, story, fold, profile, publish)?;
        }
        Ok(())
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
        for repeat in self.aggregator.due(Instant::now(), force) {
            let logged = self.log.append(repeat)?;
            publish(&logged);
        }
        Ok(())
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

/// The process and its ancestry, from the process table.
pub fn process_ref(processes: &ProcessTable, pid: u32) -> ProcessRef {
    let me = processes.get(pid);
    ProcessRef {
        pid,
        ppid: me.map(|p| p.ppid),
        comm: me.map(|p| p.comm.clone()).unwrap_or_default(),
        path: me.map(|p| p.path.clone()).unwrap_or_default(),
        args: me.map(|p| p.args.clone()).unwrap_or_default(),
        ancestry: processes
            .ancestry(pid, ANCESTRY)
            .into_iter()
            .map(|p| Ancestor {
                pid: p.pid,
                comm: p.comm.clone(),
                path: p.path.clone(),
                args: p.args.clone(),
            })
            .collect(),
    }
}

/// What accepting a finding adds to the baseline, from the event that raised it.
fn fold_for_event(f: &Finding, ev: &Event) -> Option<Fold> {
    match (&ev.detail, f.rule) {
        (Detail::Exec { path, args, .. }, RuleId::UnexpectedExec | RuleId::ShellSpawned) => {
            Some(Fold::Exec {
                path: path.clone(),
                args: normalize_args(args),
            })
        }
        (Detail::File { path, pattern, .. }, _) => Some(Fold::File {
            path: path.clone(),
            pattern: pattern.clone(),
        }),
        (
            Detail::Dns {
                question, answers, ..
            },
            _,
        ) => Some(Fold::Dns {
            name: question.clone(),
            addresses: answers.iter().map(|a| a.ip).collect(),
        }),
        (
            Detail::Connect {
                protocol,
                remote_ip,
                remote_port,
                remote_names,
                ..
            },
            _,
        ) => Some(Fold::Egress {
            ip: *remote_ip,
            port: *remote_port,
            protocol: if *protocol == "udp" {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            names: remote_names.clone(),
        }),
        _ => None,
    }
}

/// Adds an accepted anomaly's behaviour to a profile (even a ready one). Returns a description
/// of what was added.
pub fn fold_into(profile: &mut ApplicationProfile, fold: &Fold, now: &str) -> String {
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
            profile.record_flow(
                id,
                FlowDelta {
                    connections: 1,
                    ..Default::default()
                },
                names,
                now,
            );
            format!("egress {ip}:{port}/{protocol:?}")
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
    profile.updated = now.to_string();
    what
}
