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
    profile::model::{ProfileKey, Timestamp},
};

/// Containers remembered as scanned at most; past it the set starts over (a container may
/// then be scanned again: cheap, and only its directory listings).
const MAX_SCANNED: usize = 16 * 1024;

pub struct PackageScanner {
    proc_root: PathBuf,
    store: Arc<RwLock<ProfileStore>>,
    /// Container ids scanned or being scanned.
    scanned: Arc<Mutex<HashSet<String>>>,
    /// The packages to look for.
    catalogue: &'static Catalogue,
}

impl PackageScanner {
    pub fn new(
        proc_root: PathBuf,
        store: Arc<RwLock<ProfileStore>>,
        catalogue: &'static Catalogue,
    ) -> Self {
        Self {
            proc_root,
            store,
            scanned: Arc::default(),
            catalogue,
        }
    }

    /// A process of container `container_id` (profile `key`) was seen: scan its root once.
    /// Does nothing outside a tokio runtime (unit tests of the learner).
    pub fn on_process(&self, key: &ProfileKey, container_id: &str, pid: u32, now: Timestamp) {
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
        let own_root = self.proc_root.join("self/root");
        let (store, scanned, catalogue) =
            (self.store.clone(), self.scanned.clone(), self.catalogue);
        let (key, container_id, now) = (key.clone(), container_id.to_string(), now);
        runtime.spawn_blocking(move || {
            // The process is gone, not ours to read, or not in its container's filesystem yet
            // (the same root as the sensor's): let a later process of the container retry.
            if std::fs::read_dir(&root).is_err() || same_directory(&root, &own_root) {
                scanned
                    .lock()
                    .expect("scanned set lock")
                    .remove(&container_id);
                return;
            }
            let found = packages::scan(&root, catalogue);
            tracing::debug!(
                container = %container_id,
                packages = found.len(),
                "container filesystem scanned for agent frameworks"
            );
            if found.is_empty() {
                return;
            }
            let entries: Vec<_> = found.iter().map(|f| f.entry(now)).collect();
            store
                .write()
                .expect("profile store lock")
                .update_existing(&key, |p| p.record_packages(&entries, now));
        });
    }
}

/// Whether two paths are the same directory (device and inode).
fn same_directory(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
