//! The gRPC API, service `sensor.v1.Sensor` (`proto/sensor/v1/sensor.proto`), with
//! `grpc.health.v1.Health` and server reflection.
//!
//! - [`addr`]: `--grpc-listen` / `--server` addresses (`unix:/path`, `host:port`);
//! - [`source`]: what the agent gives the server: [`ProfileSource`] (profiles, graduation),
//!   [`AnomalySource`] (log replay + live), [`EventSource`] (live events);
//! - [`control`]: [`Control`], the drift commands (accept an anomaly, relearn a workload);
//! - [`hub`]: the broadcast with a bounded queue per subscriber and in-band gaps, which the
//!   agent publishes anomalies and events through;
//! - [`server`]: the service, [`Services`] and [`serve`];
//! - [`stream`]: `StreamAnomalies` (replay, then live) and `StreamEvents`;
//! - [`limits`]: request size and open-stream bounds per client;
//! - [`filter`]: stream filters (label selectors, pod regexes, deny lists), compiled once;
//! - [`tls`]: mutual TLS for TCP (server and client side);
//! - [`lookup`]: request validation and profile lookup, with precise status codes;
//! - [`convert`], [`message`]: model -> messages (profiles; anomalies and events);
//! - [`render`]: drafts in the requested format, with their notes (server and offline CLI);
//! - [`client`]: connecting to the agent.
//!
//! Other clients on the Unix socket must send `:authority: localhost` (grpcio >= 1.57 sends the
//! percent-encoded socket path, which the HTTP/2 layer rejects with PROTOCOL_ERROR): Python
//! `options=[("grpc.default_authority", "localhost")]`, grpcurl `-authority localhost`.

pub mod addr;
pub mod agents;
pub mod client;
pub mod control;
pub mod convert;
pub mod filter;
pub mod hub;
pub mod info;
pub mod limits;
pub mod lookup;
pub mod message;
pub mod render;
pub mod server;
pub mod source;
pub mod stream;
pub mod tls;

/// Code generated from the proto by build.rs (tonic-prost-build over a protox descriptor set).
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("sensor.v1");
}

pub use addr::{DEFAULT_ADDR, ListenAddr, ListenAddrError};
pub use control::{AcceptOutcome, Control, ControlError, MemoryControl};
pub use hub::{Delivery, Hub, HubStats, Subscription};
pub use server::{ApiError, SERVICE_NAME, Services, Transport, serve, serve_reporting};
pub use source::{
    AnomalySource, EventSource, Graduation, MemoryAnomalies, MemoryEvents, MemorySource,
    ProfileSource,
};
pub use tls::{ClientTls, TlsError, TlsFiles};

/// The encoded `FileDescriptorSet` of the proto and its imports (served by reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sensor_v1_descriptor.bin"));

#[cfg(test)]
pub(crate) mod testutil {
    //! A realistic profile for the API's unit tests.

    use std::collections::BTreeMap;

    use crate::attribution::workload::WorkloadKind;
    use crate::profile::model::*;

    pub fn sample_profile(key: ProfileKey) -> ApplicationProfile {
        let t = |s: &str| Timestamp::parse(&format!("2025-06-02T{s}Z")).unwrap();
        ApplicationProfile {
            version: PROFILE_VERSION,
            key,
            workload_kind: WorkloadKind::Deployment,
            status: Status::Ready,
            completeness: Completeness::Full,
            partial_reasons: vec![],
            learning_started: t("08:00:00"),
            learning_period_seconds: 3600,
            ready_at: Some(t("09:00:00")),
            updated: t("09:30:00"),
            nodes: vec!["node-1".into()],
            pods: vec!["checkout-7d9f8b6c5d-x2x4z".into()],
            labels: BTreeMap::from([("app".to_string(), "checkout".to_string())]),
            syscalls: Syscalls {
                native: ["read", "write", "openat", "close", "connect", "exit_group"]
                    .map(String::from)
                    .to_vec(),
                compat: vec![],
                runtime_setup: Default::default(),
            },
            execs: vec![ExecEntry {
                path: "/usr/local/bin/checkout".into(),
                args: vec!["--port".into(), "8080".into()],
                count: 1,
                first_seen: t("08:00:01"),
                last_seen: t("08:00:01"),
            }],
            egress: vec![Flow {
                ip: "203.0.113.7".parse().unwrap(),
                port: 443,
                protocol: Protocol::Tcp,
                dns_names: vec!["api.stripe.com".into()],
                peer: None,
                connections: 12,
                bytes_sent: 4096,
                bytes_recv: 16384,
                rate: RateStats {
                    window_seconds: 60,
                    windows: 5,
                    max_connections_per_window: 4,
                    max_bytes_sent_per_window: 2048,
                    max_bytes_recv_per_window: 8192,
                    max_bytes_sent_per_connection: 0,
                },
                first_seen: t("08:01:00"),
                last_seen: t("09:20:00"),
            }],
            ingress: vec![],
            dns: vec![DnsName {
                name: "api.stripe.com".into(),
                addresses: vec!["203.0.113.7".parse().unwrap()],
                count: 12,
            }],
            resolvers: vec![],
            files: vec![],
            packages: vec![],
            agent_programs: vec![],
            tools: vec![],
            overflow: Overflow::default(),
        }
    }

    /// An unexpected exec of `path` in shop/checkout/app (seq 0: the log numbers it).
    pub fn sample_anomaly(path: &str) -> crate::detect::model::Anomaly {
        use crate::detect::model::*;
        let time = "2026-05-28T20:26:40Z".to_string();
        Anomaly {
            seq: 0,
            time: time.clone(),
            node: "node-1".into(),
            namespace: "shop".into(),
            pod: "checkout-7d9f8b6c5d-x2x4z".into(),
            pod_uid: "0b7f4a4e-2f4c-4c39-9f3e-0d0c6c2b1a11".into(),
            container: "app".into(),
            container_id: "3f2a".into(),
            workload: "checkout".into(),
            workload_kind: WorkloadKind::Deployment,
            labels: BTreeMap::new(),
            finding: Finding {
                rule: RuleId::UnexpectedExec,
                kubescape_rule: Some("R0001".into()),
                severity: Severity::Medium,
                mitre: Some(Mitre {
                    technique: "T1059".into(),
                    name: "Command and Scripting Interpreter".into(),
                    tactic: "Execution".into(),
                }),
                message: format!("{path} was run, which the baseline never did"),
                subject: format!("{path} -s *"),
                evidence: Evidence {
                    baseline: BTreeMap::from([(
                        "programs".to_string(),
                        "/usr/local/bin/checkout".to_string(),
                    )]),
                    observed: BTreeMap::from([
                        ("path".to_string(), path.to_string()),
                        ("args".to_string(), "-s *".to_string()),
                    ]),
                },
            },
            agent_chain: None,
            process: Some(ProcessRef {
                pid: 4242,
                ppid: Some(4200),
                comm: path
                    .rsplit('/')
                    .next()
                    .unwrap_or(path)
                    .chars()
                    .take(15)
                    .collect(),
                path: path.into(),
                args: vec![path.into(), "-s".into(), "http://203.0.113.9/".into()],
                ancestry: vec![
                    Ancestor {
                        pid: 4200,
                        comm: "sh".into(),
                        path: "/bin/sh".into(),
                        args: vec!["sh".into(), "-c".into()],
                    },
                    Ancestor {
                        pid: 1,
                        comm: "checkout".into(),
                        path: "/usr/local/bin/checkout".into(),
                        args: vec![],
                    },
                ],
            }),
            count: 1,
            repeat_of: None,
            last_seen: time,
            fold: Some(Fold::Exec {
                path: path.into(),
                args: vec!["-s".into(), "*".into()],
            }),
        }
    }

    /// An event of `kind` (exec or exit) in `namespace`/`pod` (workload checkout, container app).
    pub fn sample_event(
        kind: &str,
        namespace: &str,
        pod: &str,
    ) -> crate::attribution::event::Event {
        use std::sync::Arc;

        use crate::attribution::event::{Detail, Event};
        use crate::attribution::{Attribution, Scope};
        let detail = match kind {
            "exit" => Detail::Exit {
                exit_code: Some(0),
                signal: None,
            },
            _ => Detail::Exec {
                exe: None,
                path: "/usr/bin/curl".into(),
                args: vec!["curl".into(), "-s".into()],
                args_truncated: false,
                workload_start: false,
                path_truncated: false,
                uid: 0,
            },
        };
        Event {
            time: "2026-05-28T20:26:40.5Z".into(),
            kind: detail.kind(),
            node: Arc::from("node-1"),
            who: Arc::new(Attribution {
                scope: Scope::Container,
                namespace: Some(namespace.into()),
                pod: Some(pod.into()),
                pod_uid: None,
                container: Some("app".into()),
                container_id: None,
                workload: Some("checkout".into()),
                workload_kind: Some(WorkloadKind::Deployment),
                workload_from_api: false,
                labels: None,
                service_account: None,
                cgroup_id: 77,
                cgroup: None,
            }),
            pid: Some(4242),
            ppid: Some(4200),
            comm: Some("curl".into()),
            detail,
        }
    }

    pub fn partial(mut p: ApplicationProfile) -> ApplicationProfile {
        p.completeness = Completeness::Partial;
        p.partial_reasons = vec!["container started before the sensor".into()];
        p
    }
}
