//! The sensor library, one folder per stage of the data flow (docs/architecture.md):
//!
//! capture -> attribution -> profile -> ai -> learn -> drafts -> detect -> audit -> api ->
//! metrics -> daemon -> cli
//!
//! A stage imports only the stages before it (checked by `cargo xtask lint`). `clock` and
//! `text` are small helpers every stage may use. The `sensor` binary is a thin CLI over this
//! crate.

pub mod clock;
pub mod text;

pub mod ai;
pub mod api;
pub mod attribution;
pub mod audit;
pub mod capture;
pub mod cli;
pub mod daemon;
pub mod detect;
pub mod drafts;
pub mod learn;
pub mod metrics;
pub mod profile;
