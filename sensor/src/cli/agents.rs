//! `sensor agents`: the runtime AI-BOM of the node's workloads - which containers behave like
//! AI agents, the model APIs, vector stores and cloud APIs they call, and the agent frameworks,
//! SDKs and MCP packages installed in them. Read from the agent's profiles over gRPC.

use anyhow::{Context, Result};
use clap::Args;

use super::client::{ServerArg, out, status_error};
use crate::ai::{Catalogue, inventory};
use crate::api::proto;
use crate::profile::model::ApplicationProfile;

#[derive(Args, Debug)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// Only this namespace.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Every profile, not only those that behave like agents.
    #[arg(long)]
    pub all: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: AgentsArgs) -> Result<()> {
    let addr = &args.server.server;
    let mut client = args.server.connect().await?;
    let list = client
        .list_profiles(proto::ListProfilesRequest {
            namespace: args.namespace.clone().unwrap_or_default(),
            workload: String::new(),
        })
        .await
        .map_err(|s| status_error(addr, s))?
        .into_inner();
    let mut text = String::new();
    for summary in list.profiles {
        let profile = client
            .get_profile(proto::ProfileRef {
                namespace: summary.namespace.clone(),
                workload: summary.workload.clone(),
                container: summary.container.clone(),
            })
            .await
            .map_err(|s| status_error(addr, s))?
            .into_inner();
        let profile: ApplicationProfile =
            serde_json::from_str(&profile.json).with_context(|| {
                format!(
                    "profile {}/{}/{} from the agent",
                    summary.namespace, summary.workload, summary.container
                )
            })?;
        let inv = inventory::of_profile(&profile, Catalogue::embedded());
        if !inv.is_agent && !args.all {
            continue;
        }
        if args.json {
            text.push_str(&serde_json::to_string(&inv)?);
            text.push('\n');
        } else {
            text.push_str(&inventory::render(&inv));
        }
    }
    if text.is_empty() && !args.json {
        text = "no workload behaves like an AI agent (yet): none calls a catalogued model API or \
                has an agent framework, model SDK or MCP package installed\n"
            .to_string();
    }
    out(&text)
}
