//! Checks of the settings against the machine, before anything starts: a path flag that cannot
//! work is one [`ConfigError`] (exit code 2) naming the flag, not an agent that created its
//! state directory and loaded half its probes first.

use std::path::Path;

use super::{config::Settings, config_error::ConfigError};
use crate::audit::live::PolicyDir;

/// The paths `sensor run` reads or writes first are usable: the state directory is a directory
/// (or does not exist yet), the BTF file is readable, the proc root is a directory.
pub fn check(settings: &Settings) -> Result<(), ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        origin: "host paths".into(),
        key,
        message,
    };
    let state = &settings.state_dir;
    if state.exists() && !state.is_dir() {
        return Err(invalid(
            "--state-dir (stateDir)",
            format!("{} exists and is not a directory", state.display()),
        ));
    }
    if let Err(e) = std::fs::File::open(&settings.btf) {
        return Err(invalid(
            "--btf (btf)",
            format!(
                "{}: {e} (kernel BTF is needed to load the probes)",
                settings.btf.display()
            ),
        ));
    }
    if !is_dir(&settings.proc_root) {
        return Err(invalid(
            "--proc-root (procRoot)",
            format!("{} is not a directory", settings.proc_root.display()),
        ));
    }
    Ok(())
}

/// `--audit-netpol DIR` at start: a directory whose policy files all load, else one
/// [`ConfigError`] (exit code 2) naming the file and what is wrong with it.
pub fn check_audit_dir(dir: &Path) -> Result<(), ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        origin: "audit policies".into(),
        key: "--audit-netpol (auditNetpol)",
        message,
    };
    if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Err(invalid(format!("{} is not a directory", dir.display())));
    }
    PolicyDir::load(dir)
        .map(drop)
        .map_err(|e| invalid(e.to_string()))
}

fn is_dir(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_dir())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::config::{self, Overrides};
    use super::*;

    #[test]
    fn the_config_key_names_the_directory_and_the_flag_wins() {
        let file = config::parse("auditNetpol: /etc/sensor/netpol\n").unwrap();
        let s =
            config::settings(file, "config file c.yaml", Overrides::default(), "n".into()).unwrap();
        assert_eq!(s.audit_netpol, Some(PathBuf::from("/etc/sensor/netpol")));
        let file = config::parse("auditNetpol: /etc/sensor/netpol\n").unwrap();
        let flags = Overrides {
            audit_netpol: Some(PathBuf::from("/tmp/p")),
            ..Default::default()
        };
        let s = config::settings(file, "config file c.yaml", flags, "n".into()).unwrap();
        assert_eq!(s.audit_netpol, Some(PathBuf::from("/tmp/p")));
    }

    #[test]
    fn check_wants_a_directory_of_valid_policies() {
        let tmp = tempfile::tempdir().unwrap();
        let e = check_audit_dir(&tmp.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("audit policies: `--audit-netpol (auditNetpol)`: ")
                && e.ends_with("missing is not a directory"),
            "{e}"
        );
        // An empty directory holds no policy file: an error, not an audit of nothing.
        let e = check_audit_dir(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("no .yaml, .yml or .json file"), "{e}");
        let file = tmp.path().join("p.yaml");
        std::fs::write(
            &file,
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\n\
             spec: {podSelector: {}}\n",
        )
        .unwrap();
        let e = check_audit_dir(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains(&file.display().to_string()) && e.contains("no metadata.namespace"),
            "{e}"
        );
        let e = check_audit_dir(&file).unwrap_err().to_string();
        assert!(e.ends_with("p.yaml is not a directory"), "{e}");
        std::fs::write(
            &file,
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
             metadata: {name: p, namespace: ns}\nspec: {podSelector: {}}\n",
        )
        .unwrap();
        check_audit_dir(tmp.path()).unwrap();
    }
}
