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

/// The running cluster tasks.
pub struct Cluster {
    pub status: Arc<status::ClusterStatus>,
    /// Asks the merger candidate to stop (and release the lease if it holds it).
    stop_leader: Option<tokio::sync::oneshot::Sender<tokio::sync::oneshot::Sender<()>>>,
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
        let (stop_leader, stop) = tokio::sync::oneshot::channel();
        tokio::spawn(leader::run(
            client.clone(),
            settings.leader,
            status.clone(),
            stop,
        ));
        if let Some(dir) = settings.install_dir {
            tokio::spawn(install::run(client, dir, metadata.clone(), status.clone()));
        }
        Some(Cluster {
            status,
            stop_leader: Some(stop_leader),
        })
    }

    /// A clean stop: the merger lease is released if this node holds it (waits at most
    /// `timeout`), so merging moves to another node at once.
    pub async fn stop(&mut self, timeout: std::time::Duration) {
        let Some(stop) = self.stop_leader.take() else {
            return;
        };
        let (done, stopped) = tokio::sync::oneshot::channel();
        if stop.send(done).is_ok() {
            let _ = tokio::time::timeout(timeout, stopped).await;
        }
    }
}
