//! Learning profiles from attributed events while the daemon runs: the learner (events ->
//! per-container profile builders, learning windows, readiness), the store (the profiles in
//! memory and on disk) and the package scanner (the AI packages installed in a container).

pub mod learner;
pub mod package_scan;
pub mod store;
