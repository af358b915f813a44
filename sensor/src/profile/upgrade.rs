//! Reading a persisted profile of any supported format version: the current one as it is, an
//! older one upgraded. Pure: the caller reads and writes files.
//!
//! Version 1 (before the kernel told the container runtime's setup apart from the workload)
//! has runc's or crun's setup syscalls mixed into the workload's set, so its drafts allow
//! `mount`, `unshare`, `pivot_root`... Which of its syscalls the workload made cannot be known
//! afterwards; the upgrade moves exactly the setup primitives of
//! [`runtime::UPGRADE_SETUP_ONLY`] into `syscalls.runtimeSetup`, marked `inferred`, and keeps
//! the rest. Relearning (`sensor profiles relearn`) replaces the inference with observation.

use super::{
    model::{ApplicationProfile, PROFILE_VERSION},
    runtime,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UpgradeError {
    #[error("not a profile: {0}")]
    NotAProfile(String),
    #[error("profile version {0} (this sensor reads versions 1 to {PROFILE_VERSION})")]
    UnknownVersion(u64),
}

/// A profile parsed from its persisted JSON, and whether it was upgraded from an older version
/// (then it should be written back, with its drafts).
pub fn parse(text: &str) -> Result<(ApplicationProfile, bool), UpgradeError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| UpgradeError::NotAProfile(e.to_string()))?;
    let version = value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| UpgradeError::NotAProfile("no `version` number".to_string()))?;
    if version == 0 || version > u64::from(PROFILE_VERSION) {
        return Err(UpgradeError::UnknownVersion(version));
    }
    let mut profile: ApplicationProfile =
        serde_json::from_value(value).map_err(|e| UpgradeError::NotAProfile(e.to_string()))?;
    let upgraded = version < u64::from(PROFILE_VERSION);
    if version == 1 {
        from_v1(&mut profile);
    }
    profile.version = PROFILE_VERSION;
    Ok((profile, upgraded))
}

/// Version 1 -> 2: the setup primitives leave the workload's set.
fn from_v1(p: &mut ApplicationProfile) {
    let setup = &mut p.syscalls.runtime_setup;
    for (workload, moved) in [
        (&mut p.syscalls.native, &mut setup.native),
        (&mut p.syscalls.compat, &mut setup.compat),
    ] {
        let (out, keep): (Vec<String>, Vec<String>) = std::mem::take(workload)
            .into_iter()
            .partition(|s| runtime::UPGRADE_SETUP_ONLY.contains(&s.as_str()));
        *workload = keep;
        moved.extend(out);
        moved.sort_unstable();
        moved.dedup();
    }
    setup.inferred = !setup.is_empty();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(native: &[&str], compat: &[&str]) -> String {
        serde_json::json!({
            "version": 1,
            "namespace": "shop", "workload": "web", "container": "app",
            "workloadKind": "deployment", "status": "ready", "completeness": "full",
            "learningStarted": "2026-11-01T00:00:00Z", "learningPeriodSeconds": 60,
            "updated": "2026-11-01T00:01:00Z",
            "syscalls": {"native": native, "compat": compat},
        })
        .to_string()
    }

    #[test]
    fn a_v1_profile_loses_the_setup_primitives_and_says_so() {
        let (p, upgraded) = parse(&v1(
            &[
                "execve",
                "keyctl",
                "mount",
                "openat",
                "pivot_root",
                "read",
                "unshare",
            ],
            &["mount", "read"],
        ))
        .unwrap();
        assert!(upgraded);
        assert_eq!(p.version, PROFILE_VERSION);
        assert_eq!(p.syscalls.native, ["execve", "openat", "read"]);
        assert_eq!(p.syscalls.compat, ["read"]);
        let setup = &p.syscalls.runtime_setup;
        assert_eq!(setup.native, ["keyctl", "mount", "pivot_root", "unshare"]);
        assert_eq!(setup.compat, ["mount"]);
        assert!(setup.inferred);
    }

    #[test]
    fn a_v1_profile_without_setup_primitives_infers_nothing() {
        let (p, upgraded) = parse(&v1(&["read", "write"], &[])).unwrap();
        assert!(upgraded);
        assert!(p.syscalls.runtime_setup.is_empty() && !p.syscalls.runtime_setup.inferred);
    }

    #[test]
    fn the_current_version_is_read_as_it_is() {
        let text = v1(&["mount", "read"], &[]).replace("\"version\":1", "\"version\":2");
        let (p, upgraded) = parse(&text).unwrap();
        assert!(!upgraded);
        assert_eq!(
            p.syscalls.native,
            ["mount", "read"],
            "observed, not inferred"
        );
    }

    #[test]
    fn unknown_versions_and_garbage_are_refused() {
        let future = v1(&[], &[]).replace("\"version\":1", "\"version\":3");
        assert_eq!(parse(&future).unwrap_err(), UpgradeError::UnknownVersion(3));
        let zero = v1(&[], &[]).replace("\"version\":1", "\"version\":0");
        assert_eq!(parse(&zero).unwrap_err(), UpgradeError::UnknownVersion(0));
        assert!(matches!(parse("{"), Err(UpgradeError::NotAProfile(_))));
        assert!(matches!(parse("{}"), Err(UpgradeError::NotAProfile(_))));
    }
}
