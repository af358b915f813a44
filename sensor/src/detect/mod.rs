//! Detection: rules over (event, profile) that turn deviations of ready workloads into
//! anomalies, the anomaly log, and aggregation of repeats.

pub mod aggregate;
pub mod engine;
pub mod fold;
pub mod log;
pub mod model;
pub mod rules;
