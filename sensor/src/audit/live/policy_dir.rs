//! The candidate policy set of the live audit: the policy files of one directory (read as
//! `sensor audit netpol --policy DIR` reads them), reloaded when the directory changes. The
//! change check compares each entry's name, size and modification time: cheap enough to run
//! every few seconds. A reload that fails keeps the previous set; the failure is reported once
//! per state of the directory, not at every poll.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::super::policy_files::{self, LoadedPolicies, PolicyFileError};

/// Name, size and modification time of every entry, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Fingerprint(Vec<(PathBuf, u64, Option<SystemTime>)>);

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut entries: Vec<(PathBuf, u64, Option<SystemTime>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| {
            let meta = e.metadata().ok();
            (
                e.path(),
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            )
        })
        .collect();
    entries.sort();
    Fingerprint(entries)
}

/// What a poll found.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    /// A new set is in place.
    Reloaded,
    /// The directory changed but does not load: the previous set stays.
    Failed(PolicyFileError),
}

#[derive(Debug)]
pub struct PolicyDir {
    dir: PathBuf,
    current: LoadedPolicies,
    /// When the current set was loaded (the audit of this set started then).
    loaded_at: SystemTime,
    seen: Fingerprint,
}

impl PolicyDir {
    /// The first load: an error here is bad input (exit code 2).
    pub fn load(dir: &Path) -> Result<Self, PolicyFileError> {
        let seen = fingerprint(dir);
        let current = policy_files::load(dir, None)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            current,
            loaded_at: SystemTime::now(),
            seen,
        })
    }

    /// Reloads when the directory changed since the last poll.
    pub fn poll(&mut self) -> Reload {
        let now = fingerprint(&self.dir);
        if now == self.seen {
            return Reload::Unchanged;
        }
        self.seen = now;
        match policy_files::load(&self.dir, None) {
            Ok(loaded) => {
                self.current = loaded;
                self.loaded_at = SystemTime::now();
                Reload::Reloaded
            }
            Err(e) => Reload::Failed(e),
        }
    }

    pub fn policies(&self) -> &LoadedPolicies {
        &self.current
    }

    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, port: u16) -> String {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
             metadata: {{name: {name}, namespace: ns}}\n\
             spec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  \
             egress: [{{ports: [{{port: {port}}}]}}]\n"
        )
    }

    fn names(d: &PolicyDir) -> Vec<String> {
        d.policies()
            .policies
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_changed_directory_is_reloaded_and_a_broken_one_keeps_the_previous_set() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a.yaml"), policy("a", 80)).unwrap();
        let mut d = PolicyDir::load(tmp.path()).unwrap();
        assert_eq!(names(&d), ["a"]);
        assert!(matches!(d.poll(), Reload::Unchanged));

        std::fs::write(tmp.path().join("b.yaml"), policy("b", 443)).unwrap();
        assert!(matches!(d.poll(), Reload::Reloaded));
        assert_eq!(names(&d), ["a", "b"]);
        let loaded_at = d.loaded_at();

        // A malformed file: the error names it, the previous set stays, reported once.
        let bad = tmp.path().join("c.yaml");
        std::fs::write(&bad, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: c, namespace: ns}\nspec: {podSelector: {}, egress: [{ports: [{port: 1, protocol: ICMP}]}]}\n").unwrap();
        match d.poll() {
            Reload::Failed(e) => {
                assert_eq!(e.path, bad.display().to_string(), "{e}");
                assert!(e.to_string().contains("unknown protocol"), "{e}");
            }
            other => panic!("expected a failed reload, got {other:?}"),
        }
        assert_eq!(names(&d), ["a", "b"]);
        assert_eq!(d.loaded_at(), loaded_at);
        assert!(matches!(d.poll(), Reload::Unchanged));

        // Fixed: the new set loads.
        std::fs::remove_file(&bad).unwrap();
        assert!(matches!(d.poll(), Reload::Reloaded));
        assert_eq!(names(&d), ["a", "b"]);
    }

    #[test]
    fn the_first_load_fails_on_a_missing_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let e = PolicyDir::load(&missing).unwrap_err();
        assert_eq!(e.path, missing.display().to_string());
    }
}
