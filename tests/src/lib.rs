//! Privileged end-to-end test bed for the node sensor.
//!
//! Reproduces what the sensor sees on a Kubernetes node, without a cluster: real runc containers
//! ([`runc`]) on a shared busybox rootfs ([`rootfs`]) in kubelet-shaped cgroups ([`pod`],
//! [`cgroup`]), kubelet's on-node name metadata ([`kubelet`]), network peers in their own
//! network namespaces with TCP and DNS services ([`netns`], [`dns_client`]), and a handle on the
//! `sensor` binary whose JSON output the tests assert on ([`sensor`], [`expect`]), and the agent
//! (`sensor run`) with its gRPC clients ([`daemon`]), its anomaly log and anomaly stream
//! consumers (`sensor watch`, a Python grpcio client: [`anomaly`], [`jsonl`]), and a stand-in
//! for the cloud metadata service inside a test network namespace ([`imds`]), and the agent's
//! metrics and health endpoint, scraped with the Prometheus Python parser ([`metrics`]).
//!
//! Everything must run as root on a real kernel. Every resource is unique per test so tests run
//! in parallel; everything is cleaned up on drop. Missing tools panic with the Debian package to
//! install (`cargo xtask test` installs them all). `tests/README.md` says how to run them.

pub mod anomaly;
pub mod capture_checks;
pub mod cgroup;
pub mod containerd;
pub mod daemon;
pub mod deploy;
pub mod dns_client;
pub mod expect;
pub mod faults;
pub mod imds;
pub mod jsonl;
pub mod kube_api;
pub mod kube_resources;
pub mod kubelet;
pub mod metrics;
pub mod netns;
pub mod oci;
pub mod pod;
pub mod qemu;
pub mod rootfs;
pub mod runc;
pub mod sensor;
pub mod util;
pub mod validate;

pub use daemon::{CmdOutput, Daemon, DaemonConfig};
pub use expect::Expect;
pub use imds::ImdsPeer;
pub use jsonl::JsonLines;
pub use kubelet::Kubelet;
pub use netns::{DnsZone, Peer};
pub use pod::{CgroupDriver, Pod, Qos, Runtime};
pub use rootfs::Rootfs;
pub use runc::{ContainerConfig, Network, RunOutput, Runc};
pub use sensor::{Sensor, SensorProcess};
