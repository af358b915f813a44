//! Checks of the settings against the machine, before anything starts: a path flag that cannot
//! work is one [`ConfigError`] (exit code 2) naming the flag, not an agent that created its
//! state directory and loaded half its probes first.

use std::path::Path;

use super::{config::Settings, config_error::ConfigError};

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

fn is_dir(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_dir())
}
