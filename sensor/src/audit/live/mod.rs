//! Live audit of a candidate NetworkPolicy set in the agent (`sensor run --audit-netpol DIR`):
//! every new flow of a workload is judged once against the set, and a flow the set would deny
//! becomes a `would-deny` anomaly.
//!
//! - [`policy_dir`]: the set, reloaded when the directory changes (a failed reload keeps the
//!   previous set);
//! - [`judged`]: the bounded set of flows already judged under the current set;
//! - [`verdict`]: one observed flow -> evaluator flow -> a `would-deny` finding (pure);
//! - [`graduation`]: whether a workload's network draft is ready to enforce (pure).

pub mod graduation;
pub mod judged;
pub mod policy_dir;
pub mod runner;
pub mod verdict;

pub use self::graduation::{AuditStatus, NetworkGraduation, network_graduation};
pub use self::judged::{FlowKey, Judged};
pub use self::policy_dir::{PolicyDir, Reload};
