//! Profile model (`profile::model`) -> API messages, and API enums -> names for people.

use std::time::{Duration, SystemTime};

use prost_types::Timestamp;

use super::proto;
use crate::attribution::workload::WorkloadKind;
use crate::profile::model::{self as model, ApplicationProfile};

/// An RFC 3339 time (of an event or an anomaly) as a protobuf Timestamp; `None` when empty or
/// unreadable.
pub fn timestamp(rfc3339: &str) -> Option<Timestamp> {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .map(Timestamp::from)
}

/// A time of the profile as a protobuf Timestamp (always `Some`: profile times are valid
/// instants, `profile::time`).
pub fn profile_time(t: model::Timestamp) -> Option<Timestamp> {
    Some(Timestamp::from(t.to_system_time()))
}

/// The current time, for the `time` field of responses.
pub fn now() -> Option<Timestamp> {
    Some(Timestamp::from(SystemTime::now()))
}

/// A Timestamp back to RFC 3339 (UTC, `Z`), for the CLI. Empty when unset or out of range.
pub fn rfc3339(ts: Option<&Timestamp>) -> String {
    ts.and_then(|ts| SystemTime::try_from(*ts).ok())
        .map(|t| humantime::format_rfc3339(t).to_string())
        .unwrap_or_default()
}

pub fn workload_kind(kind: WorkloadKind) -> proto::WorkloadKind {
    match kind {
        WorkloadKind::Deployment => proto::WorkloadKind::Deployment,
        WorkloadKind::StatefulSet => proto::WorkloadKind::Statefulset,
        WorkloadKind::DaemonSetOrJob => proto::WorkloadKind::DaemonsetOrJob,
        WorkloadKind::CronJob => proto::WorkloadKind::Cronjob,
        WorkloadKind::Pod => proto::WorkloadKind::Pod,
        WorkloadKind::DaemonSet => proto::WorkloadKind::Daemonset,
        WorkloadKind::Job => proto::WorkloadKind::Job,
        WorkloadKind::ReplicaSet => proto::WorkloadKind::Replicaset,
        WorkloadKind::Other => proto::WorkloadKind::Other,
    }
}

pub fn status(status: model::Status) -> proto::ProfileStatus {
    match status {
        model::Status::Learning => proto::ProfileStatus::Learning,
        model::Status::Ready => proto::ProfileStatus::Ready,
    }
}

pub fn completeness(c: model::Completeness) -> proto::Completeness {
    match c {
        model::Completeness::Full => proto::Completeness::Full,
        model::Completeness::Partial => proto::Completeness::Partial,
    }
}

fn protocol(p: model::Protocol) -> proto::Protocol {
    match p {
        model::Protocol::Tcp => proto::Protocol::Tcp,
        model::Protocol::Udp => proto::Protocol::Udp,
    }
}

fn overflow(o: &model::Overflow) -> proto::Overflow {
    proto::Overflow {
        execs: o.execs,
        egress: o.egress,
        ingress: o.ingress,
        files: o.files,
        dns: o.dns,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub fn summary(p: &ApplicationProfile) -> proto::ProfileSummary {
    proto::ProfileSummary {
        namespace: p.key.namespace.clone(),
        workload: p.key.workload.clone(),
        container: p.key.container.clone(),
        workload_kind: workload_kind(p.workload_kind).into(),
        status: status(p.status).into(),
        completeness: completeness(p.completeness).into(),
        learning_started: profile_time(p.learning_started),
        ready_at: p.ready_at.and_then(profile_time),
        updated: profile_time(p.updated),
        syscalls: count(p.syscalls.native.len() + p.syscalls.compat.len()),
        execs: count(p.execs.len()),
        egress: count(p.egress.len()),
        ingress: count(p.ingress.len()),
        files: count(p.files.len()),
        dns_names: count(p.dns.len()),
        overflow: Some(overflow(&p.overflow)),
        // The agent's judgement, added by the server.
        graduation: None,
    }
}

/// The full typed profile, with its persisted JSON form. `node_name`/`time` are left for the
/// caller (the server sets them; offline there is no node).
pub fn profile(p: &ApplicationProfile) -> proto::Profile {
    proto::Profile {
        namespace: p.key.namespace.clone(),
        workload: p.key.workload.clone(),
        container: p.key.container.clone(),
        version: p.version,
        workload_kind: workload_kind(p.workload_kind).into(),
        status: status(p.status).into(),
        completeness: completeness(p.completeness).into(),
        partial_reasons: p.partial_reasons.clone(),
        learning_started: profile_time(p.learning_started),
        learning_period: prost_types::Duration::try_from(Duration::from_secs(
            p.learning_period_seconds,
        ))
        .ok(),
        ready_at: p.ready_at.and_then(profile_time),
        updated: profile_time(p.updated),
        nodes: p.nodes.clone(),
        pods: p.pods.clone(),
        labels: p.labels.clone().into_iter().collect(),
        syscalls: Some(proto::Syscalls {
            native: p.syscalls.native.clone(),
            compat: p.syscalls.compat.clone(),
            runtime_setup: Some(proto::RuntimeSetup {
                native: p.syscalls.runtime_setup.native.clone(),
                compat: p.syscalls.runtime_setup.compat.clone(),
                inferred: p.syscalls.runtime_setup.inferred,
            }),
        }),
        execs: p.execs.iter().map(exec).collect(),
        egress: p.egress.iter().map(flow).collect(),
        ingress: p.ingress.iter().map(flow).collect(),
        dns: p
            .dns
            .iter()
            .map(|d| proto::DnsName {
                name: d.name.clone(),
                addresses: d.addresses.iter().map(ToString::to_string).collect(),
                count: d.count,
            })
            .collect(),
        resolvers: p
            .resolvers
            .iter()
            .map(|r| proto::Resolver {
                ip: r.ip.to_string(),
                cluster_dns: r.cluster_dns,
            })
            .collect(),
        files: p
            .files
            .iter()
            .map(|f| proto::FileAccess {
                path: f.path.clone(),
                pattern: f.pattern.clone(),
                count: f.count,
                first_seen: profile_time(f.first_seen),
                last_seen: profile_time(f.last_seen),
            })
            .collect(),
        overflow: Some(overflow(&p.overflow)),
        json: persisted_json(p),
        // The agent's judgement, added by the server (offline there is none).
        graduation: None,
        node_name: String::new(),
        time: None,
    }
}

/// The persisted form: pretty JSON with a trailing newline, as in the state dir.
pub fn persisted_json(p: &ApplicationProfile) -> String {
    let mut s = serde_json::to_string_pretty(p).expect("profiles serialize (string keys only)");
    s.push('\n');
    s
}

fn exec(e: &model::ExecEntry) -> proto::Exec {
    proto::Exec {
        path: e.path.clone(),
        args: e.args.clone(),
        count: e.count,
        first_seen: profile_time(e.first_seen),
        last_seen: profile_time(e.last_seen),
    }
}

fn flow(f: &model::Flow) -> proto::Flow {
    proto::Flow {
        ip: f.ip.to_string(),
        port: u32::from(f.port),
        protocol: protocol(f.protocol).into(),
        dns_names: f.dns_names.clone(),
        peer: f.peer.as_ref().map(|p| proto::Peer {
            namespace: p.namespace.clone(),
            pod: p.pod.clone().unwrap_or_default(),
            workload: p.workload.clone().unwrap_or_default(),
            labels: p.labels.clone().into_iter().collect(),
        }),
        connections: f.connections,
        bytes_sent: f.bytes_sent,
        bytes_recv: f.bytes_recv,
        rate: Some(proto::RateStats {
            window_seconds: f.rate.window_seconds,
            windows: f.rate.windows,
            max_connections_per_window: f.rate.max_connections_per_window,
            max_bytes_sent_per_window: f.rate.max_bytes_sent_per_window,
            max_bytes_recv_per_window: f.rate.max_bytes_recv_per_window,
            max_bytes_sent_per_connection: f.rate.max_bytes_sent_per_connection,
        }),
        first_seen: profile_time(f.first_seen),
        last_seen: profile_time(f.last_seen),
    }
}

// ---- names for people (CLI output): the persisted JSON's spelling ----

pub fn workload_kind_name(kind: i32) -> &'static str {
    match proto::WorkloadKind::try_from(kind) {
        Ok(proto::WorkloadKind::Deployment) => "deployment",
        Ok(proto::WorkloadKind::Statefulset) => "statefulset",
        Ok(proto::WorkloadKind::DaemonsetOrJob) => "daemonset-or-job",
        Ok(proto::WorkloadKind::Cronjob) => "cronjob",
        Ok(proto::WorkloadKind::Pod) => "pod",
        Ok(proto::WorkloadKind::Daemonset) => "daemonset",
        Ok(proto::WorkloadKind::Job) => "job",
        Ok(proto::WorkloadKind::Replicaset) => "replicaset",
        Ok(proto::WorkloadKind::Other) => "other",
        Ok(proto::WorkloadKind::Unspecified) | Err(_) => "unknown",
    }
}

pub fn status_name(status: i32) -> &'static str {
    match proto::ProfileStatus::try_from(status) {
        Ok(proto::ProfileStatus::Learning) => "learning",
        Ok(proto::ProfileStatus::Ready) => "ready",
        Ok(proto::ProfileStatus::Unspecified) | Err(_) => "unknown",
    }
}

pub fn completeness_name(c: i32) -> &'static str {
    match proto::Completeness::try_from(c) {
        Ok(proto::Completeness::Full) => "full",
        Ok(proto::Completeness::Partial) => "partial",
        Ok(proto::Completeness::Unspecified) | Err(_) => "unknown",
    }
}

pub fn protocol_name(p: i32) -> &'static str {
    match proto::Protocol::try_from(p) {
        Ok(proto::Protocol::Tcp) => "tcp",
        Ok(proto::Protocol::Udp) => "udp",
        Ok(proto::Protocol::Unspecified) | Err(_) => "?",
    }
}

/// The overflowed lists, e.g. `["egress", "files"]`.
pub fn overflow_names(o: Option<&proto::Overflow>) -> Vec<&'static str> {
    let Some(o) = o else { return Vec::new() };
    [
        (o.execs, "execs"),
        (o.egress, "egress"),
        (o.ingress, "ingress"),
        (o.files, "files"),
        (o.dns, "dns"),
    ]
    .into_iter()
    .filter_map(|(hit, name)| hit.then_some(name))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let ts = timestamp("2025-06-02T09:00:00Z").unwrap();
        assert_eq!(ts.seconds, 1_748_854_800);
        assert_eq!(rfc3339(Some(&ts)), "2025-06-02T09:00:00Z");
        let nanos = timestamp("2025-06-02T09:00:00.123456789Z").unwrap();
        assert_eq!(nanos.nanos, 123_456_789);
        assert_eq!(timestamp(""), None);
        assert_eq!(timestamp("yesterday"), None);
        assert_eq!(rfc3339(None), "");
    }

    #[test]
    fn enum_names_match_the_persisted_spelling() {
        for kind in [
            WorkloadKind::Deployment,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSetOrJob,
            WorkloadKind::CronJob,
            WorkloadKind::Pod,
            WorkloadKind::DaemonSet,
            WorkloadKind::Job,
            WorkloadKind::ReplicaSet,
            WorkloadKind::Other,
        ] {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(
                json.as_str().unwrap(),
                workload_kind_name(workload_kind(kind).into())
            );
        }
        assert_eq!(status_name(status(model::Status::Ready).into()), "ready");
        assert_eq!(
            completeness_name(completeness(model::Completeness::Partial).into()),
            "partial"
        );
        assert_eq!(status_name(42), "unknown");
    }
}
