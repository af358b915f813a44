//! `sensor agents`: the runtime AI-BOM of the node's workloads - which containers behave like
//! AI agents, the model APIs, vector stores and cloud APIs they call, and the agent frameworks,
//! SDKs and MCP packages installed in them, the tools their agent processes ran and the recent
//! tool calls. Read from the agent over gRPC (`GetAgents`).

use anyhow::{Context, Result};
use clap::Args;

use super::remote::{ServerArg, out, status_error};
use crate::ai::inventory::{self, AgentInventory};
use crate::api::proto;

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
    let response = client
        .get_agents(proto::GetAgentsRequest {
            namespace: args.namespace.clone().unwrap_or_default(),
            all: args.all,
        })
        .await
        .map_err(|s| status_error(addr, s))?
        .into_inner();
    let mut text = String::new();
    for entry in response.agents {
        if args.json {
            text.push_str(&entry.json);
            text.push('\n');
        } else {
            let inv: AgentInventory = serde_json::from_str(&entry.json).with_context(|| {
                format!(
                    "agent entry {}/{}/{} from the agent",
                    entry.namespace, entry.workload, entry.container
                )
            })?;
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
