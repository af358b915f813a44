//! Audits of candidate NetworkPolicies against the traffic the profiles recorded: which flows
//! would the policies deny, before anything is enforced (`sensor audit netpol`).
//!
//! - [`policy_files`]: reads the policies (and Namespace objects, for their labels) from files;
//! - [`flows`]: turns a profile's egress and ingress into evaluator flows (pure);
//! - [`report`]: evaluates them with [`crate::audit::netpol_eval`] and groups what would be denied
//!   by workload and peer (pure), as text or JSON.

pub mod cluster;
pub mod flows;
pub mod live;
pub mod netpol_eval;
pub mod policy_files;
pub mod report;

pub use self::policy_files::PolicyFileError;
