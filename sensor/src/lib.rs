//! The sensor library: kernel capture (`collector`), attribution to pods (`attribution`), and
//! the commands built on them. The `sensor` binary is a thin CLI over this crate; the
//! `sensor-dev` binary (benchmark helpers, fuzz seeds) is one over `devtools`.

pub mod agent;
pub mod ai;
pub mod api;
pub mod attribution;
pub mod audit;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod collector;
pub mod detect;
pub mod devtools;
pub mod dns;
pub mod doctor;
pub mod drafts;
pub mod event;
pub mod kernel;
pub mod metrics;
pub mod netpol_eval;
pub mod pipeline;
pub mod profile;
pub mod syscall_names;
pub mod text;
pub mod trace;
