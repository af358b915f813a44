//! Anomalies (`detect::model`) and events (`event`) -> stream messages, with the JSON form each
//! message carries (the anomaly log line, the `sensor trace --json` line).

use super::convert::{timestamp, workload_kind};
use super::proto;
use crate::attribution::Scope;
use crate::attribution::event::{Detail, Event};
use crate::detect::model::{self as model, Anomaly, Fold, Severity};
use crate::profile::model::Protocol;

pub fn severity(s: Severity) -> proto::Severity {
    match s {
        Severity::Low => proto::Severity::Low,
        Severity::Medium => proto::Severity::Medium,
        Severity::High => proto::Severity::High,
        Severity::Critical => proto::Severity::Critical,
    }
}

/// The log's spelling (`low` ... `critical`), for people.
pub fn severity_name(s: i32) -> &'static str {
    match proto::Severity::try_from(s) {
        Ok(proto::Severity::Low) => "low",
        Ok(proto::Severity::Medium) => "medium",
        Ok(proto::Severity::High) => "high",
        Ok(proto::Severity::Critical) => "critical",
        Ok(proto::Severity::Unspecified) | Err(_) => "unknown",
    }
}

fn protocol(p: Protocol) -> proto::Protocol {
    match p {
        Protocol::Tcp => proto::Protocol::Tcp,
        Protocol::Udp => proto::Protocol::Udp,
    }
}

/// The anomaly as logged: one JSON object, no newline.
pub fn anomaly_json(a: &Anomaly) -> String {
    serde_json::to_string(a).expect("anomalies serialise")
}

pub fn anomaly(a: &Anomaly) -> proto::Anomaly {
    let f = &a.finding;
    proto::Anomaly {
        seq: a.seq,
        time: timestamp(&a.time),
        node: a.node.clone(),
        namespace: a.namespace.clone(),
        pod: a.pod.clone(),
        pod_uid: a.pod_uid.clone(),
        container: a.container.clone(),
        container_id: a.container_id.clone(),
        workload: a.workload.clone(),
        workload_kind: workload_kind(a.workload_kind).into(),
        labels: a.labels.clone().into_iter().collect(),
        rule_id: f.rule.as_str().to_string(),
        kubescape_rule: f.kubescape_rule.clone().unwrap_or_default(),
        severity: severity(f.severity).into(),
        mitre: f.mitre.as_ref().map(|m| proto::Mitre {
            technique: m.technique.clone(),
            name: m.name.clone(),
            tactic: m.tactic.clone(),
        }),
        message: f.message.clone(),
        subject: f.subject.clone(),
        evidence: Some(proto::Evidence {
            baseline: f.evidence.baseline.clone().into_iter().collect(),
            observed: f.evidence.observed.clone().into_iter().collect(),
        }),
        process: a.process.as_ref().map(process),
        count: a.count,
        repeat_of: a.repeat_of.unwrap_or(0),
        last_seen: timestamp(&a.last_seen),
        fold: a.fold.as_ref().map(fold),
        json: anomaly_json(a),
        agent_chain: a.agent_chain.as_ref().map(|c| proto::AgentChain {
            agent: Some(super::agents::chain_process(&c.agent)),
            tool: c.tool.as_ref().map(|t| proto::ChainTool {
                id: t.id.clone(),
                process: Some(super::agents::chain_process(&t.process)),
                started: timestamp(&t.started),
            }),
            action: c.action.clone(),
        }),
    }
}

fn process(p: &model::ProcessRef) -> proto::Process {
    proto::Process {
        pid: p.pid,
        ppid: p.ppid,
        comm: p.comm.clone(),
        path: p.path.clone(),
        args: p.args.clone(),
        ancestry: p
            .ancestry
            .iter()
            .map(|a| proto::Ancestor {
                pid: a.pid,
                comm: a.comm.clone(),
                path: a.path.clone(),
                args: a.args.clone(),
            })
            .collect(),
    }
}

pub fn fold(f: &Fold) -> proto::Fold {
    use proto::fold::Kind;
    let kind = match f {
        Fold::Exec { path, args } => Kind::Exec(proto::FoldExec {
            path: path.clone(),
            args: args.clone(),
        }),
        Fold::Syscall { name, compat } => Kind::Syscall(proto::FoldSyscall {
            name: name.clone(),
            compat: *compat,
        }),
        Fold::Egress {
            ip,
            port,
            protocol: p,
            names,
        } => Kind::Egress(proto::FoldEgress {
            ip: ip.to_string(),
            port: u32::from(*port),
            protocol: protocol(*p).into(),
            names: names.clone(),
        }),
        Fold::Ingress {
            ip,
            port,
            protocol: p,
        } => Kind::Ingress(proto::FoldIngress {
            ip: ip.to_string(),
            port: u32::from(*port),
            protocol: protocol(*p).into(),
        }),
        Fold::Dns { name, addresses } => Kind::Dns(proto::FoldDns {
            name: name.clone(),
            addresses: addresses.iter().map(ToString::to_string).collect(),
        }),
        Fold::File { path, pattern } => Kind::File(proto::FoldFile {
            path: path.clone(),
            pattern: pattern.clone(),
        }),
        Fold::Rate {
            ip,
            port,
            protocol: p,
            ingress,
            connections,
            bytes_sent,
            bytes_recv,
            window_seconds,
        } => Kind::Rate(proto::FoldRate {
            ip: ip.to_string(),
            port: u32::from(*port),
            protocol: protocol(*p).into(),
            ingress: *ingress,
            connections: *connections,
            bytes_sent: *bytes_sent,
            bytes_recv: *bytes_recv,
            window_seconds: *window_seconds,
        }),
    };
    proto::Fold { kind: Some(kind) }
}

fn scope(s: Scope) -> proto::Scope {
    match s {
        Scope::Container => proto::Scope::Container,
        Scope::Pod => proto::Scope::Pod,
        Scope::Host => proto::Scope::Host,
        Scope::Unknown => proto::Scope::Unknown,
    }
}

/// The kind of a stream message, from its detail.
fn event_kind(detail: &proto::event::Detail) -> proto::EventKind {
    use proto::event::Detail as D;
    match detail {
        D::Exec(_) => proto::EventKind::Exec,
        D::Exit(_) => proto::EventKind::Exit,
        D::Connect(_) => proto::EventKind::Connect,
        D::Accept(_) => proto::EventKind::Accept,
        D::Dns(_) => proto::EventKind::Dns,
        D::File(_) => proto::EventKind::File,
        D::Syscalls(_) => proto::EventKind::Syscalls,
        D::Flow(_) => proto::EventKind::Flow,
    }
}

/// The `Event.kind` string of a proto kind (what the stream filters match on).
pub fn kind_name(kind: proto::EventKind) -> &'static str {
    match kind {
        proto::EventKind::Unspecified => "",
        proto::EventKind::Exec => "exec",
        proto::EventKind::Exit => "exit",
        proto::EventKind::Connect => "connect",
        proto::EventKind::Accept => "accept",
        proto::EventKind::Dns => "dns",
        proto::EventKind::File => "file",
        proto::EventKind::Syscalls => "syscalls",
        proto::EventKind::Flow => "flow",
    }
}

pub fn event(e: &Event) -> proto::Event {
    use proto::event::Detail as D;
    let w = &e.who;
    let text = |o: &Option<String>| o.clone().unwrap_or_default();
    let detail = match &e.detail {
        Detail::Exec {
            path,
            exe,
            args,
            args_truncated,
            path_truncated,
            uid,
            workload_start,
        } => D::Exec(proto::ExecEvent {
            exe: exe.clone().unwrap_or_default(),
            path: path.clone(),
            args: args.clone(),
            args_truncated: *args_truncated,
            path_truncated: *path_truncated,
            uid: *uid,
            workload_start: *workload_start,
        }),
        Detail::Exit { exit_code, signal } => D::Exit(proto::ExitEvent {
            exit_code: *exit_code,
            signal: *signal,
        }),
        Detail::Connect {
            protocol,
            remote_ip,
            remote_port,
            origin,
            remote_names,
        } => D::Connect(proto::ConnectEvent {
            protocol: protocol.to_string(),
            remote_ip: remote_ip.to_string(),
            remote_port: u32::from(*remote_port),
            origin: origin.to_string(),
            remote_names: remote_names.clone(),
        }),
        Detail::Accept {
            protocol,
            remote_ip,
            local_ip,
            local_port,
        } => D::Accept(proto::AcceptEvent {
            protocol: protocol.to_string(),
            remote_ip: remote_ip.to_string(),
            local_ip: local_ip.to_string(),
            local_port: u32::from(*local_port),
        }),
        Detail::Dns {
            question,
            qtype,
            rcode,
            server_ip,
            transport,
            answers,
        } => D::Dns(proto::DnsEvent {
            question: question.clone(),
            qtype: qtype.clone(),
            rcode: rcode.clone(),
            server_ip: server_ip.to_string(),
            transport: transport.to_string(),
            answers: answers
                .iter()
                .map(|a| proto::DnsAnswer {
                    ip: a.ip.to_string(),
                    names: a.names.clone(),
                    ttl: a.ttl,
                })
                .collect(),
        }),
        Detail::File {
            path,
            requested,
            pattern,
            path_truncated,
            compat,
            open_flags,
        } => D::File(proto::FileEvent {
            path: path.clone(),
            requested: text(requested),
            pattern: pattern.clone(),
            path_truncated: *path_truncated,
            compat: *compat,
            open_flags: *open_flags,
        }),
        Detail::Syscalls {
            native,
            compat,
            setup_native,
            setup_compat,
            is_final,
        } => D::Syscalls(proto::SyscallsEvent {
            native: native.clone(),
            compat: compat.clone(),
            r#final: *is_final,
            setup_native: setup_native.clone(),
            setup_compat: setup_compat.clone(),
        }),
        Detail::Flow {
            protocol,
            direction,
            remote_ip,
            remote_port,
            local_port,
            connections,
            bytes_sent,
            bytes_recv,
            packets_sent,
            packets_recv,
            remote_names,
        } => D::Flow(proto::FlowEvent {
            protocol: protocol.to_string(),
            direction: direction.to_string(),
            remote_ip: remote_ip.to_string(),
            remote_port: u32::from(*remote_port),
            local_port: u32::from(*local_port),
            connections: *connections,
            bytes_sent: *bytes_sent,
            bytes_recv: *bytes_recv,
            packets_sent: *packets_sent,
            packets_recv: *packets_recv,
            remote_names: remote_names.clone(),
        }),
    };
    proto::Event {
        kind: event_kind(&detail).into(),
        time: timestamp(&e.time),
        node: e.node.to_string(),
        scope: scope(w.scope).into(),
        namespace: text(&w.namespace),
        pod: text(&w.pod),
        pod_uid: text(&w.pod_uid),
        container: text(&w.container),
        container_id: text(&w.container_id),
        workload: text(&w.workload),
        workload_kind: w
            .workload_kind
            .map_or(proto::WorkloadKind::Unspecified, workload_kind)
            .into(),
        cgroup_id: w.cgroup_id,
        cgroup: text(&w.cgroup),
        pid: e.pid,
        ppid: e.ppid,
        comm: e.comm.clone().unwrap_or_default(),
        detail: Some(detail),
        json: serde_json::to_string(e).expect("events serialise"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::testutil::sample_event;

    #[test]
    fn anomalies_keep_every_field_and_the_log_line() {
        let mut a = Anomaly::sample("/usr/bin/curl");
        a.seq = 42;
        a.repeat_of = Some(40);
        let m = anomaly(&a);
        assert_eq!(m.seq, 42);
        assert_eq!(m.rule_id, "unexpected-exec");
        assert_eq!(m.kubescape_rule, "R0001");
        assert_eq!(m.severity, proto::Severity::Medium as i32);
        assert_eq!(m.repeat_of, 40);
        assert_eq!(m.mitre.as_ref().unwrap().technique, "T1059");
        let p = m.process.as_ref().unwrap();
        assert_eq!((p.pid, p.ppid, p.comm.as_str()), (4242, Some(4200), "curl"));
        assert_eq!(p.ancestry.len(), 2);
        assert_eq!(
            m.evidence.as_ref().unwrap().observed["path"],
            "/usr/bin/curl"
        );
        let Some(proto::fold::Kind::Exec(f)) = m.fold.as_ref().and_then(|f| f.kind.clone()) else {
            panic!("exec fold: {:?}", m.fold)
        };
        assert_eq!(f.args, ["-s", "*"]);
        let back: Anomaly = serde_json::from_str(&m.json).unwrap();
        assert_eq!(back, a, "the json field is the log line");
        assert_eq!(m.time.unwrap().seconds, 1_780_000_000);
    }

    #[test]
    fn events_carry_attribution_detail_and_trace_json() {
        let e = sample_event("exec", "shop", "checkout-7d9f8b6c5d-x2x4z");
        let m = event(&e);
        assert_eq!(m.kind, proto::EventKind::Exec as i32);
        assert_eq!(m.namespace, "shop");
        assert_eq!(m.workload, "checkout");
        assert_eq!(m.workload_kind, proto::WorkloadKind::Deployment as i32);
        assert_eq!(m.pid, Some(4242));
        assert!(matches!(m.detail, Some(proto::event::Detail::Exec(_))));
        let v: serde_json::Value = serde_json::from_str(&m.json).unwrap();
        assert_eq!(v["kind"], "exec");
        assert_eq!(v["namespace"], "shop");
        let host = Event {
            who: Arc::new(crate::attribution::Attribution {
                scope: Scope::Host,
                namespace: None,
                pod: None,
                pod_uid: None,
                container: None,
                container_id: None,
                workload: None,
                workload_kind: None,
                workload_from_api: false,
                labels: None,
                service_account: None,
                cgroup_id: 1,
                cgroup: None,
            }),
            ..e
        };
        let m = event(&host);
        assert_eq!(m.scope, proto::Scope::Host as i32);
        assert_eq!(m.workload_kind, proto::WorkloadKind::Unspecified as i32);
        assert_eq!(m.pod, "");
    }
}
