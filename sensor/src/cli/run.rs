//! `sensor run`: the agent. Placeholder until the agent lands.

use anyhow::{Result, bail};
use clap::Args;

#[derive(Args, Debug)]
pub struct RunArgs {}

pub async fn run(_args: RunArgs) -> Result<()> {
    bail!("not implemented yet")
}
