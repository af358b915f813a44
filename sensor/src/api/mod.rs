//! The gRPC API, service `sensor.v1.Sensor` (`proto/sensor/v1/sensor.proto`), with
//! `grpc.health.v1.Health` and server reflection.
//!
//! - [`addr`]: `--grpc-listen` / `--server` addresses (`unix:/path`, `host:port`);
//! - [`source`]: [`ProfileSource`], what the agent gives the server;
//! - [`server`]: the service and [`serve`];
//! - [`lookup`]: request validation and profile lookup, with precise status codes;
//! - [`convert`]: profile model -> messages;
//! - [`render`]: drafts in the requested format, with their notes (server and offline CLI);
//! - [`client`]: connecting to the agent.
//!
//! Other clients on the Unix socket must send `:authority: localhost` (grpcio >= 1.57 sends the
//! percent-encoded socket path, which the HTTP/2 layer rejects with PROTOCOL_ERROR): Python
//! `options=[("grpc.default_authority", "localhost")]`, grpcurl `-authority localhost`.

pub mod addr;
pub mod client;
pub mod convert;
pub mod lookup;
pub mod render;
pub mod server;
pub mod source;

/// Code generated from the proto by build.rs (tonic-prost-build over a protox descriptor set).
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("sensor.v1");
}

pub use addr::{DEFAULT_ADDR, ListenAddr, ListenAddrError};
pub use server::{ApiError, SERVICE_NAME, serve};
pub use source::{MemorySource, ProfileSource};

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
        let t = |s: &str| format!("2025-06-02T{s}Z");
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
            overflow: Overflow::default(),
        }
    }

    pub fn partial(mut p: ApplicationProfile) -> ApplicationProfile {
        p.completeness = Completeness::Partial;
        p.partial_reasons = vec!["container started before the sensor".into()];
        p
    }
}
