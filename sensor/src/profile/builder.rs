//! How observations change a profile. Pure functions of (profile, observation, time): the
//! agent feeds them, tests drive them with plain data.
//!
//! While `learning`, new entries are added (up to the caps, overflow flagged). Once `ready` the
//! baseline is frozen: only the counters of known entries move; anything new is left for the
//! anomaly rules. Every `record_*` returns whether the profile changed (so it gets persisted).

use std::net::IpAddr;

use super::{
    model::{
        ApplicationProfile, Completeness, DnsName, ExecEntry, FileEntry, Flow, PROFILE_VERSION,
        PackageEntry, ProfileKey, Protocol, RateStats, Resolver, Status, Syscalls, Timestamp,
        ToolEntry, caps,
    },
    normalize::{args_match, glob, normalize_args},
};
use crate::attribution::workload::WorkloadKind;

/// Which side opened a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Egress,
    Ingress,
}

/// Identity of a flow entry in a profile: egress by remote port, ingress by local port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId {
    pub direction: Direction,
    pub ip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

/// Counter increments of a flow since the last observation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowDelta {
    pub connections: u64,
    pub bytes_sent: u64,
    pub bytes_recv: u64,
}

impl FlowDelta {
    pub fn is_zero(&self) -> bool {
        *self == FlowDelta::default()
    }

    pub fn add(&mut self, other: FlowDelta) {
        self.connections += other.connections;
        self.bytes_sent += other.bytes_sent;
        self.bytes_recv += other.bytes_recv;
    }
}

impl ApplicationProfile {
    /// A new profile, learning from `now` for `learning_period_seconds`.
    pub fn new(
        key: ProfileKey,
        workload_kind: WorkloadKind,
        learning_period_seconds: u64,
        now: Timestamp,
    ) -> Self {
        Self {
            version: PROFILE_VERSION,
            key,
            workload_kind,
            status: Status::Learning,
            completeness: Completeness::Full,
            partial_reasons: Vec::new(),
            learning_started: now,
            learning_period_seconds,
            ready_at: None,
            updated: now,
            nodes: Vec::new(),
            pods: Vec::new(),
            labels: Default::default(),
            syscalls: Syscalls::default(),
            execs: Vec::new(),
            egress: Vec::new(),
            ingress: Vec::new(),
            dns: Vec::new(),
            resolvers: Vec::new(),
            files: Vec::new(),
            packages: Vec::new(),
            agent_programs: Vec::new(),
            tools: Vec::new(),
            overflow: Default::default(),
        }
    }

    fn learning(&self) -> bool {
        self.status == Status::Learning
    }

    fn touched(&mut self, now: Timestamp) -> bool {
        self.updated = now;
        true
    }

    /// Marks the profile partial (idempotent per reason).
    pub fn mark_partial(&mut self, reason: &str, now: Timestamp) -> bool {
        if self.partial_reasons.iter().any(|r| r == reason) {
            return false;
        }
        self.completeness = Completeness::Partial;
        self.partial_reasons.push(reason.to_string());
        self.touched(now)
    }

    /// A pod (replica) and node that contributed.
    pub fn add_pod(&mut self, pod: &str, node: &str, now: Timestamp) -> bool {
        let mut changed = false;
        if !self.pods.iter().any(|p| p == pod) && self.pods.len() < caps::PODS {
            self.pods.push(pod.to_string());
            changed = true;
        }
        if !self.nodes.iter().any(|n| n == node) {
            self.nodes.push(node.to_string());
            changed = true;
        }
        changed && self.touched(now)
    }

    /// Syscall names seen (native and compat ABI).
    pub fn record_syscalls(
        &mut self,
        native: &[String],
        compat: &[String],
        now: Timestamp,
    ) -> bool {
        if !self.learning() {
            return false;
        }
        let a = merge_sorted(&mut self.syscalls.native, native);
        let b = merge_sorted(&mut self.syscalls.compat, compat);
        (a || b) && self.touched(now)
    }

    /// What the container runtime did before the workload's first exec: kept apart from the
    /// workload's syscalls, while learning.
    pub fn record_runtime_setup(
        &mut self,
        native: &[String],
        compat: &[String],
        now: Timestamp,
    ) -> bool {
        if !self.learning() {
            return false;
        }
        let setup = &mut self.syscalls.runtime_setup;
        let a = merge_sorted(&mut setup.native, native);
        let b = merge_sorted(&mut setup.compat, compat);
        (a || b) && self.touched(now)
    }

    /// A program run. Arguments are normalised (dynamic parts collapsed) before matching.
    pub fn record_exec(&mut self, path: &str, args: &[String], now: Timestamp) -> bool {
        let args = normalize_args(args);
        if let Some(e) = self
            .execs
            .iter_mut()
            .find(|e| glob(&e.path, path) && args_match(&e.args, &args))
        {
            e.count += 1;
            e.last_seen = now;
            return self.touched(now);
        }
        if !self.learning() {
            return false;
        }
        if self.execs.len() >= caps::EXECS {
            let changed = !self.overflow.execs;
            self.overflow.execs = true;
            return changed && self.touched(now);
        }
        self.execs.push(ExecEntry {
            path: path.to_string(),
            args,
            count: 1,
            first_seen: now,
            last_seen: now,
        });
        self.touched(now)
    }

    /// An open of a sensitive path.
    pub fn record_file(&mut self, path: &str, pattern: &str, now: Timestamp) -> bool {
        if let Some(f) = self.files.iter_mut().find(|f| f.path == path) {
            f.count += 1;
            f.last_seen = now;
            return self.touched(now);
        }
        if !self.learning() {
            return false;
        }
        if self.files.len() >= caps::FILES {
            let changed = !self.overflow.files;
            self.overflow.files = true;
            return changed && self.touched(now);
        }
        self.files.push(FileEntry {
            path: path.to_string(),
            pattern: pattern.to_string(),
            count: 1,
            first_seen: now,
            last_seen: now,
        });
        self.touched(now)
    }

    /// A command whose process called a model API (the agent). Identity: any state.
    pub fn record_agent_program(&mut self, command: &str, now: Timestamp) -> bool {
        if self.agent_programs.iter().any(|p| p == command)
            || self.agent_programs.len() >= caps::AGENT_PROGRAMS
        {
            return false;
        }
        self.agent_programs.push(command.to_string());
        self.agent_programs.sort();
        self.touched(now)
    }

    /// A tool invocation started (`failed` None) or ended (`failed` Some). Arguments are
    /// normalised like execs; new tools are learned only while learning, known ones counted.
    pub fn record_tool(
        &mut self,
        path: &str,
        args: &[String],
        failed: Option<bool>,
        now: Timestamp,
    ) -> bool {
        let args = normalize_args(args);
        if let Some(t) = self
            .tools
            .iter_mut()
            .find(|t| glob(&t.path, path) && args_match(&t.args, &args))
        {
            match failed {
                None => t.invocations += 1,
                Some(true) => t.failures += 1,
                Some(false) => return false,
            }
            t.last_seen = now;
            return self.touched(now);
        }
        if !self.learning() || failed.is_some() {
            return false;
        }
        if self.tools.len() >= caps::TOOLS {
            let changed = !self.overflow.tools;
            self.overflow.tools = true;
            return changed && self.touched(now);
        }
        self.tools.push(ToolEntry {
            path: path.to_string(),
            args,
            invocations: 1,
            failures: 0,
            first_seen: now,
            last_seen: now,
        });
        self.touched(now)
    }

    /// Packages found in a container of this profile: new ones are added, a known one takes
    /// the newest version seen. An inventory, not behaviour: recorded in any state.
    pub fn record_packages(&mut self, found: &[PackageEntry], now: Timestamp) -> bool {
        let mut changed = false;
        for f in found {
            match self
                .packages
                .iter_mut()
                .find(|p| p.ecosystem == f.ecosystem && p.name == f.name)
            {
                Some(p) if p.version != f.version && f.version.is_some() => {
                    p.version = f.version.clone();
                    changed = true;
                }
                Some(_) => {}
                None => {
                    self.packages.push(PackageEntry {
                        first_seen: now,
                        ..f.clone()
                    });
                    changed = true;
                }
            }
        }
        if changed {
            self.packages
                .sort_by(|a, b| (&a.ecosystem, &a.name).cmp(&(&b.ecosystem, &b.name)));
            self.touched(now);
        }
        changed
    }

    /// A DNS answer: the name asked, the addresses returned, and who answered.
    pub fn record_dns(
        &mut self,
        name: &str,
        addresses: &[IpAddr],
        resolver: Resolver,
        now: Timestamp,
    ) -> bool {
        let mut changed = false;
        if !self.resolvers.iter().any(|r| r.ip == resolver.ip) && self.learning() {
            self.resolvers.push(resolver);
            changed = true;
        }
        let learning = self.learning();
        let full = self.dns.len() >= caps::DNS_NAMES;
        match self.dns.iter_mut().find(|d| d.name == name) {
            Some(d) => {
                d.count += 1;
                for a in addresses {
                    if !d.addresses.contains(a) && d.addresses.len() < caps::NAMES_PER_PEER {
                        d.addresses.push(*a);
                    }
                }
                changed = true;
            }
            None if !learning => {}
            None if full => {
                changed |= !self.overflow.dns;
                self.overflow.dns = true;
            }
            None => {
                self.dns.push(DnsName {
                    name: name.to_string(),
                    addresses: addresses
                        .iter()
                        .copied()
                        .take(caps::NAMES_PER_PEER)
                        .collect(),
                    count: 1,
                });
                changed = true;
            }
        }
        // Names learnt later still label the flows already recorded to those addresses (while
        // learning only: a ready baseline must not grow by itself).
        for flow in self
            .egress
            .iter_mut()
            .filter(|f| learning && addresses.contains(&f.ip))
        {
            if !flow.dns_names.iter().any(|n| n == name)
                && flow.dns_names.len() < caps::NAMES_PER_PEER
            {
                flow.dns_names.push(name.to_string());
                changed = true;
            }
        }
        changed && self.touched(now)
    }

    /// New connections and bytes on a flow (`names`: what the container resolved the peer to).
    pub fn record_flow(
        &mut self,
        id: FlowId,
        delta: FlowDelta,
        names: &[String],
        now: Timestamp,
    ) -> bool {
        let learning = self.learning();
        let (flows, overflow, cap) = match id.direction {
            Direction::Egress => (&mut self.egress, &mut self.overflow.egress, caps::EGRESS),
            Direction::Ingress => (&mut self.ingress, &mut self.overflow.ingress, caps::INGRESS),
        };
        let flow = match flows
            .iter_mut()
            .position(|f| f.ip == id.ip && f.port == id.port && f.protocol == id.protocol)
        {
            Some(i) => &mut flows[i],
            None if !learning => return false,
            None if flows.len() >= cap => {
                let changed = !*overflow;
                *overflow = true;
                return changed && self.touched(now);
            }
            None => {
                flows.push(Flow {
                    ip: id.ip,
                    port: id.port,
                    protocol: id.protocol,
                    dns_names: Vec::new(),
                    peer: None,
                    connections: 0,
                    bytes_sent: 0,
                    bytes_recv: 0,
                    rate: RateStats::default(),
                    first_seen: now,
                    last_seen: now,
                });
                flows.last_mut().expect("just pushed")
            }
        };
        flow.connections += delta.connections;
        flow.bytes_sent += delta.bytes_sent;
        flow.bytes_recv += delta.bytes_recv;
        flow.last_seen = now;
        for n in names.iter().filter(|_| learning) {
            if !flow.dns_names.contains(n) && flow.dns_names.len() < caps::NAMES_PER_PEER {
                flow.dns_names.push(n.clone());
            }
        }
        self.touched(now)
    }

    /// What the Kubernetes API says of a pod of this profile: its labels (the profile keeps the
    /// labels all its pods share: a selector built from them matches every replica seen, across
    /// rollouts) and the exact workload kind (refines a kind derived from the pod name). Identity,
    /// not behaviour: updated in every status.
    pub fn record_identity(
        &mut self,
        labels: Option<&std::collections::BTreeMap<String, String>>,
        exact_kind: Option<WorkloadKind>,
        now: Timestamp,
    ) -> bool {
        let mut changed = false;
        if let Some(kind) = exact_kind.filter(|k| *k != self.workload_kind) {
            self.workload_kind = kind;
            changed = true;
        }
        if let Some(labels) = labels.filter(|l| !l.is_empty()) {
            let shared: std::collections::BTreeMap<String, String> = if self.labels.is_empty() {
                labels.clone()
            } else {
                self.labels
                    .iter()
                    .filter(|(k, v)| labels.get(*k) == Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            // Replicas of a controller always share its selector's labels; nothing shared means
            // unrelated pods, and the labels already recorded stay.
            if !shared.is_empty() && shared != self.labels {
                self.labels = shared;
                changed = true;
            }
        }
        changed && self.touched(now)
    }

    /// The pod and workload at the other end of a recorded flow (Kubernetes API), while
    /// learning: a ready baseline's policy must not change because an address changed hands.
    pub fn record_peer(&mut self, id: FlowId, peer: &super::model::Peer, now: Timestamp) -> bool {
        if !self.learning() {
            return false;
        }
        let flows = match id.direction {
            Direction::Egress => &mut self.egress,
            Direction::Ingress => &mut self.ingress,
        };
        let Some(flow) = flows
            .iter_mut()
            .find(|f| f.ip == id.ip && f.port == id.port && f.protocol == id.protocol)
        else {
            return false;
        };
        if flow.peer.as_ref() == Some(peer) {
            return false;
        }
        flow.peer = Some(peer.clone());
        self.touched(now)
    }

    /// Closes a rate window for a flow: `total` is what the flow did during the window.
    pub fn record_window(
        &mut self,
        id: FlowId,
        total: FlowDelta,
        window_seconds: u64,
        now: Timestamp,
    ) -> bool {
        if total.is_zero() || !self.learning() {
            return false;
        }
        let flows = match id.direction {
            Direction::Egress => &mut self.egress,
            Direction::Ingress => &mut self.ingress,
        };
        let Some(flow) = flows
            .iter_mut()
            .find(|f| f.ip == id.ip && f.port == id.port && f.protocol == id.protocol)
        else {
            return false;
        };
        let r = &mut flow.rate;
        r.window_seconds = window_seconds;
        r.windows += 1;
        r.max_connections_per_window = r.max_connections_per_window.max(total.connections);
        r.max_bytes_sent_per_window = r.max_bytes_sent_per_window.max(total.bytes_sent);
        r.max_bytes_recv_per_window = r.max_bytes_recv_per_window.max(total.bytes_recv);
        // Only what the ratio of the maxima misses: profiles keep their form otherwise.
        let per_connection = total.bytes_sent / total.connections.max(1);
        if per_connection > r.max_bytes_sent_per_window / r.max_connections_per_window.max(1) {
            r.max_bytes_sent_per_connection = r.max_bytes_sent_per_connection.max(per_connection);
        }
        self.touched(now)
    }

    /// Moves `learning -> ready` once the learning period has passed.
    pub fn advance(&mut self, now: Timestamp) -> bool {
        if self.status != Status::Learning {
            return false;
        }
        let elapsed = now.duration_since(self.learning_started);
        if elapsed.as_secs() < self.learning_period_seconds {
            return false;
        }
        self.status = Status::Ready;
        self.ready_at = Some(now);
        self.touched(now)
    }

    /// Restarts learning from `now` (the baseline is cleared).
    pub fn relearn(&mut self, now: Timestamp) {
        let fresh = ApplicationProfile::new(
            self.key.clone(),
            self.workload_kind,
            self.learning_period_seconds,
            now,
        );
        *self = fresh;
    }
}

/// Adds names to a sorted, deduplicated list; returns whether anything was added.
fn merge_sorted(into: &mut Vec<String>, names: &[String]) -> bool {
    let before = into.len();
    for n in names {
        if let Err(at) = into.binary_search(n) {
            into.insert(at, n.clone());
        }
    }
    into.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::lit("2026-11-26T00:00:00Z");
    const T1: Timestamp = Timestamp::lit("2026-11-26T00:00:30Z");
    const T2: Timestamp = Timestamp::lit("2026-11-26T00:02:00Z");

    fn profile() -> ApplicationProfile {
        let key = ProfileKey {
            namespace: "ns".into(),
            workload: "agent".into(),
            container: "app".into(),
        };
        ApplicationProfile::new(key, WorkloadKind::Deployment, 60, T0)
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn egress(ip: &str, port: u16) -> FlowId {
        FlowId {
            direction: Direction::Egress,
            ip: ip.parse().unwrap(),
            port,
            protocol: Protocol::Tcp,
        }
    }

    #[test]
    fn learning_adds_and_ready_freezes() {
        let mut p = profile();
        assert!(p.record_syscalls(&s(&["read", "execve"]), &[], T1));
        assert!(!p.record_syscalls(&s(&["read"]), &[], T1), "nothing new");
        assert_eq!(p.syscalls.native, s(&["execve", "read"]));
        assert!(!p.advance(T1), "period not over");
        assert!(p.advance(T2));
        assert_eq!(p.status, Status::Ready);
        assert_eq!(p.ready_at, Some(T2));
        assert!(!p.record_syscalls(&s(&["ptrace"]), &[], T2), "frozen");
        assert!(!p.syscalls.native.contains(&"ptrace".to_string()));
    }

    #[test]
    fn execs_merge_through_wildcards_and_count() {
        let mut p = profile();
        p.record_exec("/bin/kill", &s(&["kill", "41233"]), T1);
        p.record_exec("/bin/kill", &s(&["kill", "41302"]), T1);
        p.record_exec("/tmp/tmp.Xk3j9QpZ/run.sh", &s(&["run.sh"]), T1);
        assert_eq!(p.execs.len(), 2);
        assert_eq!(p.execs[0].args, s(&["kill", "*"]));
        assert_eq!(p.execs[0].count, 2);
        p.advance(T2);
        assert!(
            p.record_exec("/bin/kill", &s(&["kill", "99999"]), T2),
            "known exec still counted"
        );
        assert!(
            !p.record_exec("/bin/curl", &s(&["curl", "x"]), T2),
            "new exec not added once ready"
        );
    }

    #[test]
    fn caps_bound_the_profile_and_flag_overflow() {
        let mut p = profile();
        for i in 0..caps::EGRESS + 10 {
            let ip = format!("10.0.{}.{}", i / 250, i % 250);
            p.record_flow(
                egress(&ip, 443),
                FlowDelta {
                    connections: 1,
                    ..Default::default()
                },
                &[],
                T1,
            );
        }
        assert_eq!(p.egress.len(), caps::EGRESS);
        assert!(p.overflow.egress);
        for i in 0..caps::FILES + 5 {
            p.record_file(&format!("/etc/shadow{i}"), "/etc/shadow", T1);
        }
        assert_eq!(p.files.len(), caps::FILES);
        assert!(p.overflow.files);
        for i in 0..caps::EXECS + 5 {
            p.record_exec(&format!("/bin/tool{i}"), &s(&["tool"]), T1);
        }
        assert_eq!(p.execs.len(), caps::EXECS);
        assert!(p.overflow.execs);
    }

    #[test]
    fn flows_count_and_windows_keep_the_maximum() {
        let mut p = profile();
        let id = egress("10.1.2.3", 443);
        let d = |c, b| FlowDelta {
            connections: c,
            bytes_sent: b,
            bytes_recv: 2 * b,
        };
        p.record_flow(id, d(3, 100), &s(&["api.example.com"]), T1);
        p.record_flow(id, d(2, 50), &[], T1);
        assert_eq!(p.egress[0].connections, 5);
        assert_eq!(p.egress[0].bytes_sent, 150);
        assert_eq!(p.egress[0].dns_names, s(&["api.example.com"]));
        p.record_window(id, d(5, 150), 60, T1);
        p.record_window(id, d(1, 10), 60, T1);
        let r = p.egress[0].rate;
        assert_eq!(
            (
                r.windows,
                r.max_connections_per_window,
                r.max_bytes_sent_per_window
            ),
            (2, 5, 150)
        );
        assert!(
            !p.record_window(id, FlowDelta::default(), 60, T1),
            "idle windows do not count"
        );
    }

    #[test]
    fn dns_names_label_flows_learnt_before_the_answer() {
        let mut p = profile();
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        p.record_flow(egress("10.9.9.9", 443), FlowDelta::default(), &[], T1);
        let resolver = Resolver {
            ip: "10.96.0.10".parse().unwrap(),
            cluster_dns: true,
        };
        assert!(p.record_dns("model.example.com", &[ip], resolver.clone(), T1));
        assert_eq!(p.egress[0].dns_names, s(&["model.example.com"]));
        assert_eq!(p.resolvers, vec![resolver]);
        assert_eq!(p.dns[0].addresses, vec![ip]);
    }

    #[test]
    fn partial_reasons_are_kept_once() {
        let mut p = profile();
        assert!(p.mark_partial("container started before the sensor", T1));
        assert!(!p.mark_partial("container started before the sensor", T1));
        assert_eq!(p.completeness, Completeness::Partial);
        assert!(p.add_pod("agent-7d9f8b6c4d-x2x9k", "node-1", T1));
        assert!(!p.add_pod("agent-7d9f8b6c4d-x2x9k", "node-1", T1));
    }

    #[test]
    fn labels_are_those_all_pods_share_and_api_kinds_refine_guesses() {
        let mut p = profile();
        p.workload_kind = WorkloadKind::DaemonSetOrJob;
        let l = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let v1 = l(&[
            ("app", "agent"),
            ("version", "1"),
            ("pod-template-hash", "a1"),
        ]);
        assert!(p.record_identity(Some(&v1), Some(WorkloadKind::DaemonSet), T1));
        assert_eq!(
            (p.labels.clone(), p.workload_kind),
            (v1.clone(), WorkloadKind::DaemonSet)
        );
        assert!(!p.record_identity(Some(&v1), Some(WorkloadKind::DaemonSet), T1));
        // a rollout: only what both revisions share stays
        let v2 = l(&[
            ("app", "agent"),
            ("version", "2"),
            ("pod-template-hash", "b2"),
        ]);
        assert!(p.record_identity(Some(&v2), None, T1));
        assert_eq!(p.labels, l(&[("app", "agent")]));
        // unknown labels (no API) and unrelated labels change nothing
        assert!(!p.record_identity(None, None, T1));
        assert!(!p.record_identity(Some(&l(&[("other", "x")])), None, T1));
        p.advance(T2);
        assert!(p.record_identity(Some(&l(&[("app", "agent")])), Some(WorkloadKind::Job), T2));
    }

    #[test]
    fn peers_are_recorded_while_learning_only() {
        let mut p = profile();
        let id = egress("10.1.2.3", 443);
        let peer = super::super::model::Peer {
            namespace: "models".into(),
            pod: Some("llm-0".into()),
            workload: Some("llm".into()),
            labels: [("app".to_string(), "llm".to_string())].into(),
        };
        assert!(!p.record_peer(id, &peer, T1), "no such flow");
        p.record_flow(id, FlowDelta::default(), &[], T1);
        assert!(p.record_peer(id, &peer, T1));
        assert!(!p.record_peer(id, &peer, T1));
        assert_eq!(p.egress[0].peer.as_ref(), Some(&peer));
        p.advance(T2);
        let other = super::super::model::Peer {
            pod: Some("llm-1".into()),
            ..peer
        };
        assert!(!p.record_peer(id, &other, T2), "frozen once ready");
    }

    #[test]
    fn profile_json_round_trips() {
        let mut p = profile();
        p.record_syscalls(&s(&["read"]), &s(&["read"]), T1);
        p.record_flow(
            egress("2001:db8::1", 443),
            FlowDelta {
                connections: 1,
                bytes_sent: 10,
                bytes_recv: 20,
            },
            &[],
            T1,
        );
        let json = serde_json::to_string_pretty(&p).unwrap();
        assert!(json.contains("\"learningStarted\""));
        assert!(json.contains("\"namespace\": \"ns\""));
        let back: ApplicationProfile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}
