//! `sensor profiles list|show|accept|relearn`: the learned baselines, and the drift a team
//! accepts into them or relearns from scratch.

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::api::{convert, proto};

use super::{profile_text::*, remote::*};

#[derive(Subcommand, Debug)]
pub enum ProfilesCommand {
    /// One line per profile.
    List(ListArgs),
    /// One profile in detail (`--json`: the persisted JSON).
    Show(ShowArgs),
    /// Accept an anomaly: fold the behaviour it observed into its workload's baseline.
    Accept(AcceptArgs),
    /// Restart learning for every container of a workload (its baseline starts over).
    Relearn(RelearnArgs),
}

#[derive(Args, Debug)]
pub struct AcceptArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// The anomaly's sequence number (`#N` in `sensor watch`, `seq` in its JSON).
    #[arg(value_name = "SEQ", value_parser = clap::value_parser!(u64).range(1..))]
    pub seq: u64,
}

#[derive(Args, Debug)]
pub struct RelearnArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// Namespace of the workload.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: String,
    /// Workload name.
    #[arg(long, short = 'w', value_name = "W")]
    pub workload: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// Only this namespace.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Only this workload.
    #[arg(long, short = 'w', value_name = "W")]
    pub workload: Option<String>,
    /// JSON (an array of summaries) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub target: ProfileArgs,
    /// The persisted JSON form instead of the summary.
    #[arg(long)]
    pub json: bool,
}

pub async fn profiles(cmd: ProfilesCommand) -> Result<()> {
    match cmd {
        ProfilesCommand::List(args) => list(args).await,
        ProfilesCommand::Show(args) => show(args).await,
        ProfilesCommand::Accept(args) => accept(args).await,
        ProfilesCommand::Relearn(args) => relearn(args).await,
    }
}

pub(super) async fn accept(args: AcceptArgs) -> Result<()> {
    let addr = &args.server.server;
    let mut client = args.server.connect().await?;
    let r = client
        .accept_anomaly(proto::AcceptAnomalyRequest { seq: args.seq })
        .await
        .map_err(|s| status_error(addr, s))?
        .into_inner();
    let p = r.profile.unwrap_or_default();
    let key = format!("{}/{}/{}", p.namespace, p.workload, p.container);
    if r.changed {
        out(&format!(
            "accepted #{} into the baseline of {key}: {}\n",
            args.seq, r.description
        ))
    } else {
        out(&format!(
            "#{} was already in the baseline of {key}: {}\n",
            args.seq, r.description
        ))
    }
}

pub(super) async fn relearn(args: RelearnArgs) -> Result<()> {
    let addr = &args.server.server;
    let mut client = args.server.connect().await?;
    let r = client
        .relearn(proto::RelearnRequest {
            namespace: args.namespace.clone(),
            workload: args.workload.clone(),
        })
        .await
        .map_err(|s| status_error(addr, s))?
        .into_inner();
    let keys: Vec<String> = r
        .profiles
        .iter()
        .map(|p| format!("{}/{}/{}", p.namespace, p.workload, p.container))
        .collect();
    out(&format!(
        "learning restarted for {}: {}\n",
        plural(keys.len() as u64, "profile"),
        keys.join(", ")
    ))
}

pub(super) async fn list(args: ListArgs) -> Result<()> {
    let addr = &args.server.server;
    let mut client = args.server.connect().await?;
    let resp = client
        .list_profiles(proto::ListProfilesRequest {
            namespace: args.namespace.unwrap_or_default(),
            workload: args.workload.unwrap_or_default(),
        })
        .await
        .map_err(|s| status_error(addr, s))?
        .into_inner();
    if args.json {
        let rows: Vec<serde_json::Value> = resp.profiles.iter().map(summary_json).collect();
        out(&format!("{}\n", serde_json::to_string_pretty(&rows)?))
    } else {
        out(&summary_table(&resp.profiles))
    }
}

pub(super) async fn show(args: ShowArgs) -> Result<()> {
    let profile = match &args.target.profile {
        Some(path) => {
            let p = load_profile(path)?;
            check_key(path, &p, &args.target)?;
            convert::profile(&p)
        }
        None => {
            let addr = &args.target.server.server;
            let mut client = args.target.server.connect().await?;
            client
                .get_profile(profile_ref(&args.target))
                .await
                .map_err(|s| status_error(addr, s))?
                .into_inner()
        }
    };
    if args.json {
        out(&profile.json)
    } else {
        out(&profile_text(&profile))
    }
}
