//! Client subcommands: reach the agent over gRPC (`--server`), or work offline from a saved
//! profile (`--profile FILE`). Placeholder until the gRPC API lands.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum ProfilesCommand {
    /// One line per profile.
    List,
}

#[derive(Args, Debug)]
pub struct SeccompArgs {}

#[derive(Args, Debug)]
pub struct NetpolArgs {}

pub async fn profiles(_cmd: ProfilesCommand) -> Result<()> {
    bail!("not implemented yet")
}

pub async fn seccomp(_args: SeccompArgs) -> Result<()> {
    bail!("not implemented yet")
}

pub async fn netpol(_args: NetpolArgs) -> Result<()> {
    bail!("not implemented yet")
}
