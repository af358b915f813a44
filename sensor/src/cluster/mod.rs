//! Cluster-wide profiles through the Kubernetes API: each node's learned profiles as
//! [`crd::ProfilePiece`] objects, merged by one elected sensor into [`crd::WorkloadProfile`]
//! objects that every node reads (docs/cluster.md).

pub mod crd;
pub mod install;
pub mod leader;
pub mod lease;
pub mod merger;
pub mod piece;
pub mod pieces;
pub mod status;
pub mod writer;

use std::sync::{Arc, RwLock};

use crate::{attribution::kube::KubeMetadata, learn::store::ProfileStore};

#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub writer: writer::WriterSettings,
    pub leader: leader::LeaderSettings,
    /// `--install-seccomp-dir`: where every node installs the ready merged profiles.
    pub install_dir: Option<std::path::PathBuf>,
}

/// The running cluster tasks (cheap to clone).
#[derive(Clone)]
pub struct Cluster {
    pub status: Arc<status::ClusterStatus>,
}

impl Cluster {
    /// Starts the cluster tasks on the API `metadata` uses (needs a tokio runtime); `None`
    /// (logged) when no client can be built.
    pub fn start(
        metadata: &KubeMetadata,
        settings: ClusterSettings,
        store: Arc<RwLock<ProfileStore>>,
    ) -> Option<Cluster> {
        let client = match crate::attribution::kube::client(metadata.endpoint()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cluster profiles: off, no API client ({e})");
                return None;
            }
        };
        let status = Arc::new(status::ClusterStatus::default());
        tokio::spawn(writer::run(
            client.clone(),
            settings.writer,
            store,
            Some(metadata.clone()),
            status.clone(),
        ));
        tokio::spawn(leader::run(client.clone(), settings.leader, status.clone()));
        if let Some(dir) = settings.install_dir {
            tokio::spawn(install::run(client, dir, metadata.clone(), status.clone()));
        }
        Some(Cluster { status })
    }
}
