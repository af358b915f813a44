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
//! - [`lookup`]: request validation and profile lookup, with precise status codes (and the
//!   request enums as [`crate::drafts::render`] knows them);
//! - [`convert`], [`message`]: model -> messages (profiles; anomalies and events);
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
    //! A realistic event for the API's unit tests (the profile is the drafts'
    //! [`crate::drafts::testutil::sample_profile`]).

    use crate::attribution::workload::WorkloadKind;
    pub use crate::drafts::testutil::{partial, sample_profile};

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
}
