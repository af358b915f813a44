//! The sensor library, one folder per stage of the data flow (docs/architecture.md):
//!
//! capture -> attribution -> profile -> ai -> learn -> drafts -> cluster -> detect -> audit ->
//! api -> metrics -> daemon -> cli
//!
//! A stage imports only the stages before it (checked by `cargo xtask lint`). `clock` and
//! `text` are small helpers every stage may use. The `sensor` binary is a thin CLI over this
//! crate; the `sensor-dev` binary (benchmark helpers, fuzz seeds) is one over `devtools`.

pub mod clock;
pub mod text;

// The stages, in data-flow order (a blank line between them keeps rustfmt from sorting).
pub mod capture;

pub mod attribution;

pub mod profile;

pub mod ai;

pub mod learn;

pub mod drafts;

pub mod cluster;

pub mod detect;

pub mod audit;

pub mod api;

pub mod metrics;

pub mod daemon;

pub mod cli;

/// Developer tools behind `sensor-dev`, above every stage; not in the production binary's
/// commands.
pub mod devtools;
