//! Application profiles: the per-workload behavioural baseline.

pub mod model;
