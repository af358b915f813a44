//! Every node installs the cluster's seccomp profiles: a watch of the `WorkloadProfile`s; each
//! ready one's enforce and audit drafts (for this node's architecture) are written under
//! `--install-seccomp-dir` at `sensor/<ns>/<workload>/<container>{,.audit}.json`, the same
//! path on every node, atomically (write + rename). A node that starts later lists them all
//! first. A file is removed when its profile is deleted and this node runs no pod of that
//! workload (a running pod keeps the profile it was started with).
//!
//! In cluster mode this is the only writer of that directory: local drafts are still written
//! to the state directory, but not installed, so a node never enforces a baseline that lacks
//! what the workload's replicas did on other nodes.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
};

use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use tokio_stream::StreamExt;
use tracing::{info, warn};

use super::{crd::WorkloadProfile, merger::profile_for, status::ClusterStatus};
use crate::{
    attribution::kube::KubeMetadata,
    drafts::seccomp::{self, NodeArch, SeccompMode},
    profile::{model::Status, persist::write_atomic},
};

/// The files of one ready merged profile: (path under the install dir, content).
pub fn files(profile: &WorkloadProfile, arch: NodeArch) -> Vec<(String, String)> {
    if profile.spec.profile.status != Status::Ready {
        return Vec::new();
    }
    let p = profile_for(&profile.spec, arch.machine());
    [SeccompMode::Enforce, SeccompMode::Audit]
        .into_iter()
        .filter_map(|mode| {
            let draft = seccomp::seccomp_draft(&p, mode, arch);
            seccomp::to_json(&draft)
                .ok()
                .map(|json| (seccomp::localhost_path(&p.key, mode), json))
        })
        .collect()
}

/// Writes `content` at `path` unless it is there already. Returns whether it wrote.
fn install(path: &Path, content: &str) -> std::io::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    write_atomic(path, content.as_bytes()).map_err(std::io::Error::other)?;
    Ok(true)
}

/// Runs until the process ends.
pub async fn run(client: Client, dir: PathBuf, metadata: KubeMetadata, status: Arc<ClusterStatus>) {
    let arch = NodeArch::current();
    let api: Api<WorkloadProfile> = Api::all(client);
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut failing = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => {
                failing = false;
                for (rel, content) in files(&p, arch) {
                    let path = dir.join(&rel);
                    match install(&path, &content) {
                        Ok(true) => {
                            status.files_installed.fetch_add(1, Ordering::Relaxed);
                            info!(path = %path.display(), "cluster profiles: installed the merged seccomp profile");
                        }
                        Ok(false) => {}
                        Err(e) => {
                            status.install_failures.fetch_add(1, Ordering::Relaxed);
                            warn!(path = %path.display(), "cluster profiles: cannot install: {e}");
                        }
                    }
                }
            }
            Ok(watcher::Event::Delete(p)) => {
                let key = &p.spec.profile.key;
                if metadata.has_local_workload(&key.namespace, &key.workload) {
                    continue;
                }
                for mode in [SeccompMode::Enforce, SeccompMode::Audit] {
                    let path = dir.join(seccomp::localhost_path(key, mode));
                    if std::fs::remove_file(&path).is_ok() {
                        status.files_removed.fetch_add(1, Ordering::Relaxed);
                        info!(path = %path.display(), "cluster profiles: removed (profile deleted, no pod of it here)");
                    }
                }
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(e) => {
                if !failing {
                    warn!("cluster profiles: watching merged profiles failed ({e}); retrying");
                    failing = true;
                }
            }
        }
    }
}
