//! The state directory:
//!
//! ```text
//! <state>/profiles/<namespace>/<workload>/<container>.json
//! <state>/seccomp/<namespace>/<workload>/<container>.json        (+ .audit.json)
//! <state>/netpol/<namespace>/<workload>.yaml
//! ```
//!
//! Every file is written atomically (temp file in the same directory, fsync, rename, fsync of
//! the directory), so a `kill -9` leaves either the old or the new version, never a torn one.
//! A file that does not parse is moved aside as `.corrupt` with a warning, never fatal.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use super::{
    model::{ApplicationProfile, ProfileKey},
    upgrade,
};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("`{0}` cannot be used as a file name in the state directory")]
    BadName(String),
}

/// A profile file that could not be used and was moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub original: PathBuf,
    pub moved_to: PathBuf,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// A path component taken from Kubernetes names: never empty, `.`/`..`, or containing `/`.
fn component(name: &str) -> Result<&str, StateError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(StateError::BadName(name.to_string()));
    }
    Ok(name)
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the directory tree, failing with the path when it cannot.
    pub fn create(&self) -> Result<(), StateError> {
        for sub in ["profiles", "seccomp", "netpol"] {
            let dir = self.root.join(sub);
            fs::create_dir_all(&dir).map_err(|source| StateError::Io { path: dir, source })?;
        }
        Ok(())
    }

    pub fn profile_path(&self, key: &ProfileKey) -> Result<PathBuf, StateError> {
        Ok(self
            .root
            .join("profiles")
            .join(component(&key.namespace)?)
            .join(component(&key.workload)?)
            .join(format!("{}.json", component(&key.container)?)))
    }

    /// `audit`: the `.audit.json` variant.
    pub fn seccomp_path(&self, key: &ProfileKey, audit: bool) -> Result<PathBuf, StateError> {
        let ext = if audit { "audit.json" } else { "json" };
        Ok(self
            .root
            .join("seccomp")
            .join(component(&key.namespace)?)
            .join(component(&key.workload)?)
            .join(format!("{}.{ext}", component(&key.container)?)))
    }

    pub fn netpol_path(&self, namespace: &str, workload: &str) -> Result<PathBuf, StateError> {
        Ok(self
            .root
            .join("netpol")
            .join(component(namespace)?)
            .join(format!("{}.yaml", component(workload)?)))
    }

    pub fn write_profile(&self, profile: &ApplicationProfile) -> Result<(), StateError> {
        let path = self.profile_path(&profile.key)?;
        let mut json = serde_json::to_vec_pretty(profile).expect("profiles serialise");
        json.push(b'\n');
        write_atomic(&path, &json)
    }

    /// Every profile under `profiles/`; unusable files are quarantined and reported, stale temp
    /// files from an interrupted write are removed, profiles of an older format version are
    /// upgraded (`upgraded`: they should be written back, with their drafts).
    pub fn load_profiles(&self) -> Loaded {
        let mut profiles = Vec::new();
        let mut quarantined = Vec::new();
        let mut upgraded = Vec::new();
        for dir in ["profiles", "seccomp", "netpol"] {
            remove_stale_temp_files(&self.root.join(dir));
        }
        for path in files_under(&self.root.join("profiles")) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if !name.ends_with(".json") {
                continue;
            }
            match self.read_profile(&path) {
                Ok((p, was_upgraded)) => {
                    if was_upgraded {
                        upgraded.push(p.key.clone());
                    }
                    profiles.push(p)
                }
                Err(reason) => {
                    let moved_to = quarantine(&path);
                    tracing::warn!(file = %path.display(), moved_to = %moved_to.display(), "quarantined a state file: {reason}");
                    quarantined.push(Quarantined {
                        original: path,
                        moved_to,
                        reason,
                    });
                }
            }
        }
        profiles.sort_by(|a, b| a.key.cmp(&b.key));
        upgraded.sort();
        Loaded {
            profiles,
            quarantined,
            upgraded,
        }
    }

    fn read_profile(&self, path: &Path) -> Result<(ApplicationProfile, bool), String> {
        let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
        let (profile, upgraded) = upgrade::parse(&text).map_err(|e| e.to_string())?;
        let expected = self.profile_path(&profile.key).map_err(|e| e.to_string())?;
        if expected != path {
            return Err(format!("its key {} does not match its path", profile.key));
        }
        Ok((profile, upgraded))
    }
}

/// What [`StateDir::load_profiles`] found.
#[derive(Debug)]
pub struct Loaded {
    pub profiles: Vec<ApplicationProfile>,
    pub quarantined: Vec<Quarantined>,
    /// Profiles read from an older format version and upgraded in memory.
    pub upgraded: Vec<ProfileKey>,
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let io_err = |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .ok_or_else(|| StateError::BadName(path.display().to_string()))?;
    fs::create_dir_all(dir).map_err(io_err)?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err)
}

/// Removes the temp files an interrupted [`write_atomic`] left (`.<name>.<pid>.tmp`) under `dir`.
pub fn remove_stale_temp_files(dir: &Path) -> usize {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"))
        })
        .filter(|p| fs::remove_file(p).is_ok())
        .count()
}

/// Moves a bad file aside as `<name>.corrupt` (or `<name>.corrupt.N` if taken).
fn quarantine(path: &Path) -> PathBuf {
    let base = path.with_extension("json.corrupt");
    let mut target = base.clone();
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{}.{n}", base.display()));
        n += 1;
    }
    if fs::rename(path, &target).is_err() {
        // Could not move it: leave it, it is ignored this run anyway.
        return path.to_path_buf();
    }
    target
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::workload::WorkloadKind;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sensor-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn profile(container: &str) -> ApplicationProfile {
        let key = ProfileKey {
            namespace: "team-a".into(),
            workload: "agent".into(),
            container: container.into(),
        };
        ApplicationProfile::new(
            key,
            WorkloadKind::Deployment,
            3600,
            crate::profile::time::Timestamp::lit("2026-11-26T00:00:00Z"),
        )
    }

    #[test]
    fn profiles_round_trip_through_the_layout() {
        let root = tempdir("rt");
        let state = StateDir::new(&root);
        state.create().unwrap();
        let p = profile("app");
        state.write_profile(&p).unwrap();
        assert!(root.join("profiles/team-a/agent/app.json").is_file());
        let loaded = state.load_profiles();
        assert_eq!(loaded.profiles, vec![p]);
        assert!(loaded.quarantined.is_empty() && loaded.upgraded.is_empty());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn corrupt_files_are_quarantined_and_temp_files_removed() {
        let root = tempdir("bad");
        let state = StateDir::new(&root);
        state.write_profile(&profile("good")).unwrap();
        let dir = root.join("profiles/team-a/agent");
        fs::write(dir.join("torn.json"), "{\"version\": 1, \"names").unwrap();
        fs::write(dir.join(".x.json.1.tmp"), "partial").unwrap();
        let drafts = root.join("netpol/team-a");
        fs::create_dir_all(&drafts).unwrap();
        fs::write(drafts.join(".agent.yaml.1.tmp"), "partial").unwrap();
        // A valid profile filed under the wrong name is not trusted either.
        let mut other = profile("elsewhere");
        other.key.container = "elsewhere".into();
        fs::write(
            dir.join("misfiled.json"),
            serde_json::to_vec(&other).unwrap(),
        )
        .unwrap();
        let Loaded {
            profiles: loaded,
            quarantined: bad,
            ..
        } = state.load_profiles();
        assert_eq!(loaded.len(), 1);
        assert_eq!(bad.len(), 2);
        assert!(dir.join("torn.json.corrupt").is_file());
        assert!(dir.join("misfiled.json.corrupt").is_file());
        assert!(!dir.join(".x.json.1.tmp").exists());
        assert!(
            !drafts.join(".agent.yaml.1.tmp").exists(),
            "draft temp files are cleaned too"
        );
        // A second corruption of the same name does not overwrite the first quarantine.
        fs::write(dir.join("torn.json"), "again").unwrap();
        let bad = state.load_profiles().quarantined;
        assert_eq!(bad[0].moved_to, dir.join("torn.json.corrupt.1"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_profile_with_an_unreadable_time_is_quarantined() {
        let root = tempdir("time");
        let state = StateDir::new(&root);
        state.write_profile(&profile("good")).unwrap();
        let path = root.join("profiles/team-a/agent/app.json");
        let mut json = serde_json::to_value(profile("app")).unwrap();
        json["updated"] = "yesterday".into();
        fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let loaded = state.load_profiles();
        assert_eq!(loaded.profiles.len(), 1);
        assert_eq!(loaded.quarantined.len(), 1);
        let bad = &loaded.quarantined[0];
        assert_eq!(bad.original, path);
        assert!(bad.reason.contains("time `yesterday`"), "{}", bad.reason);
        assert!(
            root.join("profiles/team-a/agent/app.json.corrupt")
                .is_file()
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_persisted_form_is_kept_byte_for_byte() {
        // Daemon times (whole seconds) and kernel event times (nanoseconds) side by side, as an
        // earlier sensor wrote them.
        let root = tempdir("bytes");
        let state = StateDir::new(&root);
        state.write_profile(&profile("app")).unwrap();
        let path = root.join("profiles/team-a/agent/app.json");
        let written = fs::read_to_string(&path).unwrap();
        let text = written.replacen(
            "\"updated\": \"2026-11-26T00:00:00Z\"",
            "\"updated\": \"2026-11-26T00:16:17.123456789Z\"",
            1,
        );
        assert_ne!(text, written);
        fs::write(&path, &text).unwrap();
        let loaded = state.load_profiles();
        assert!(loaded.quarantined.is_empty());
        state.write_profile(&loaded.profiles[0]).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn unsafe_names_are_refused() {
        let state = StateDir::new("/tmp/x");
        let mut key = profile("app").key;
        key.workload = "..".into();
        assert!(matches!(
            state.profile_path(&key),
            Err(StateError::BadName(_))
        ));
        key.workload = "a/b".into();
        assert!(state.profile_path(&key).is_err());
        assert!(state.netpol_path("", "w").is_err());
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let root = tempdir("atomic");
        let path = root.join("a/b/c.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::read_dir(root.join("a/b")).unwrap().count(),
            1,
            "no temp file left"
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
