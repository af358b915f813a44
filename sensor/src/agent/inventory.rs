//! The AI inventory of each container: catalogued agent frameworks and SDKs installed in its
//! filesystem, scanned once per container (by runtime container id) off the event loop, the
//! first time one of its processes is seen, and recorded in its profile.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, Mutex, RwLock},
};

use super::store::ProfileStore;
use crate::{
    ai::{Catalogue, packages},
    profile::model::ProfileKey,
};

/// Containers remembered as scanned at most; past it the set starts over (a container may
/// then be scanned again: cheap, and only its directory listings).
const MAX_SCANNED: usize = 16 * 1024;

pub struct PackageScanner {
    proc_root: PathBuf,
    store: Arc<RwLock<ProfileStore>>,
    /// Container ids scanned or being scanned.
    scanned: Arc<Mutex<HashSet<String>>>,
}

impl PackageScanner {
    pub fn new(proc_root: PathBuf, store: Arc<RwLock<ProfileStore>>) -> Self {
        Self {
            proc_root,
            store,
            scanned: Arc::default(),
        }
    }

    /// A process of container `container_id` (profile `key`) was seen: scan its root once.
    /// Does nothing outside a tokio runtime (unit tests of the learner).
    pub fn on_process(&self, key: &ProfileKey, container_id: &str, pid: u32, now: &str) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut scanned = self.scanned.lock().expect("scanned set lock");
            if scanned.contains(container_id) {
                return;
            }
            if scanned.len() >= MAX_SCANNED {
                scanned.clear();
            }
            scanned.insert(container_id.to_string());
        }
        let root = packages::process_root(&self.proc_root, pid);
        let (store, scanned) = (self.store.clone(), self.scanned.clone());
        let (key, container_id, now) = (key.clone(), container_id.to_string(), now.to_string());
        runtime.spawn_blocking(move || {
            if std::fs::read_dir(&root).is_err() {
                // The process is gone (or not ours to read): let its next process retry.
                scanned
                    .lock()
                    .expect("scanned set lock")
                    .remove(&container_id);
                return;
            }
            let found = packages::scan(&root, Catalogue::embedded());
            tracing::debug!(
                container = %container_id,
                packages = found.len(),
                "container filesystem scanned for agent frameworks"
            );
            if found.is_empty() {
                return;
            }
            let entries: Vec<_> = found.iter().map(|f| f.entry(&now)).collect();
            store
                .write()
                .expect("profile store lock")
                .update_existing(&key, |p| p.record_packages(&entries, &now));
        });
    }
}
