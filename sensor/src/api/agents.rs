//! The runtime AI-BOM (`ai::inventory`) and tool calls (`ai::tools`) -> `GetAgents` messages.

use super::convert::timestamp;
use super::proto;
use crate::ai::{
    inventory::AgentInventory,
    tools::{ChainProcess, ToolCall},
};

pub fn entry(inv: &AgentInventory) -> proto::AgentEntry {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    proto::AgentEntry {
        namespace: inv.namespace.clone(),
        workload: inv.workload.clone(),
        container: inv.container.clone(),
        is_agent: inv.is_agent,
        model_apis: inv.model_apis.clone(),
        vector_stores: inv.vector_stores.clone(),
        cloud_apis: inv.cloud_apis.clone(),
        frameworks: inv.frameworks.clone(),
        sdks: inv.sdks.clone(),
        mcp: inv.mcp.clone(),
        mcp_servers: inv.mcp_servers.clone(),
        cluster_services: count(inv.cluster_services),
        other_peers: count(inv.other_peers),
        agent_programs: inv.agent_programs.clone(),
        tools: inv
            .tools
            .iter()
            .map(|t| proto::Tool {
                path: t.path.clone(),
                args: t.args.clone(),
                invocations: t.invocations,
                failures: t.failures,
            })
            .collect(),
        recent_calls: inv.recent_calls.iter().map(tool_call).collect(),
        json: serde_json::to_string(inv).expect("inventories serialise"),
    }
}

pub fn chain_process(p: &ChainProcess) -> proto::ChainProcess {
    proto::ChainProcess {
        pid: p.pid,
        path: p.path.clone(),
        args: p.args.clone(),
    }
}

fn tool_call(c: &ToolCall) -> proto::ToolCall {
    proto::ToolCall {
        id: c.id.clone(),
        agent: Some(chain_process(&c.agent)),
        tool: Some(chain_process(&c.tool)),
        started: timestamp(&c.started),
        ended: c.ended.as_deref().and_then(timestamp),
        exit_code: c.exit_code,
        signal: c.signal,
        execs: c.execs.clone(),
        connections: c.connections.clone(),
        files: c.files.clone(),
        actions_dropped: c.actions_dropped,
        end_lost: c.end_lost,
    }
}
