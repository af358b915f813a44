//! Application profiles: the per-workload behavioural baseline.

pub mod builder;
pub mod merge;
pub mod model;
pub mod normalize;
pub mod persist;
pub mod runtime;
pub mod time;
pub mod upgrade;
