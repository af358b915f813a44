//! Writes a profile's drafts to the state dir (and installs ready seccomp drafts for kubelet):
//!
//! ```text
//! <state>/seccomp/<ns>/<workload>/<container>.json        enforce (SCMP_ACT_ERRNO)
//! <state>/seccomp/<ns>/<workload>/<container>.audit.json  audit (SCMP_ACT_LOG)
//! <state>/netpol/<ns>/<workload>.yaml                     all containers of the workload
//! <kubelet seccomp dir>/sensor/<ns>/<workload>/<container>{,.audit}.json   (ready only)
//! ```

use std::path::Path;

use crate::{
    ai::Catalogue,
    drafts::{
        DraftError, netpol,
        seccomp::{self, NodeArch, SeccompMode},
    },
    profile::{
        model::{ApplicationProfile, Status},
        persist::{StateDir, write_atomic},
    },
};

/// `workload`: the profiles of all containers of `profile`'s workload (its policy's input);
/// `catalogue` classifies the policy's egress peers.
pub fn write(
    state: &StateDir,
    profile: &ApplicationProfile,
    workload: &[ApplicationProfile],
    install_dir: Option<&Path>,
    catalogue: &Catalogue,
) -> Result<(), DraftError> {
    let arch = NodeArch::current();
    for (mode, audit) in [(SeccompMode::Enforce, false), (SeccompMode::Audit, true)] {
        let json = seccomp::to_json(&seccomp::seccomp_draft(profile, mode, arch))?;
        write_atomic(&state.seccomp_path(&profile.key, audit)?, json.as_bytes())?;
        if let Some(dir) = install_dir
            && profile.status == Status::Ready
        {
            write_atomic(
                &dir.join(seccomp::localhost_path(&profile.key, mode)),
                json.as_bytes(),
            )?;
        }
    }
    let refs: Vec<&ApplicationProfile> = workload.iter().collect();
    if !refs.is_empty() {
        let policy = netpol::network_policy_for_workload(&refs, catalogue)?;
        let path = state.netpol_path(&profile.key.namespace, &profile.key.workload)?;
        write_atomic(&path, netpol::to_yaml(&policy)?.as_bytes())?;
    }
    Ok(())
}
