//! The runtime AI-BOM of one profile: which model APIs, vector stores and cloud APIs the
//! container calls, and which agent frameworks, SDKs and MCP packages it has installed.

use serde::{Deserialize, Serialize};

use super::{
    catalogue::Catalogue,
    classify::{EgressClass, classify},
    tools::ToolCall,
};
use crate::profile::model::{ApplicationProfile, PackageEntry, ToolEntry};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentInventory {
    pub namespace: String,
    pub workload: String,
    pub container: String,
    /// Calls a model API or has an agent framework, model SDK or MCP package installed.
    pub is_agent: bool,
    pub model_apis: Vec<String>,
    pub vector_stores: Vec<String>,
    pub cloud_apis: Vec<String>,
    /// `name version (ecosystem)` per kind.
    pub frameworks: Vec<String>,
    pub sdks: Vec<String>,
    pub mcp: Vec<String>,
    /// MCP servers it ran as child processes (the argument that names them).
    pub mcp_servers: Vec<String>,
    pub cluster_services: usize,
    pub other_peers: usize,
    /// Programs whose processes called a model API.
    pub agent_programs: Vec<String>,
    /// Tools the agent processes ran (profile).
    pub tools: Vec<ToolEntry>,
    /// Recent tool calls on this node (live, not persisted).
    pub recent_calls: Vec<ToolCall>,
}

fn describe(p: &PackageEntry) -> String {
    match &p.version {
        Some(v) => format!("{} {v} ({})", p.name, p.ecosystem),
        None => format!("{} ({})", p.name, p.ecosystem),
    }
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The inventory of `profile` against `catalogue`.
pub fn of_profile(profile: &ApplicationProfile, catalogue: &Catalogue) -> AgentInventory {
    let mut inv = AgentInventory {
        namespace: profile.key.namespace.clone(),
        workload: profile.key.workload.clone(),
        container: profile.key.container.clone(),
        ..Default::default()
    };
    for flow in &profile.egress {
        // DNS queries to the resolvers are plumbing, not peers.
        if flow.port == 53 && profile.resolvers.iter().any(|r| r.ip == flow.ip) {
            continue;
        }
        let class = classify(flow, catalogue);
        let name = class.name.clone().unwrap_or_default();
        match class.class {
            EgressClass::ModelApi => push_unique(&mut inv.model_apis, name),
            EgressClass::VectorStore => push_unique(&mut inv.vector_stores, name),
            EgressClass::CloudApi => push_unique(&mut inv.cloud_apis, name),
            EgressClass::ClusterService => inv.cluster_services += 1,
            EgressClass::Other => inv.other_peers += 1,
        }
    }
    for p in &profile.packages {
        let list = match p.kind.as_str() {
            "framework" => &mut inv.frameworks,
            "mcp" => &mut inv.mcp,
            _ => &mut inv.sdks,
        };
        push_unique(list, describe(p));
    }
    for exec in &profile.execs {
        if let Some(server) = catalogue.mcp_server(&exec.args) {
            push_unique(&mut inv.mcp_servers, server.to_string());
        }
    }
    inv.agent_programs = profile.agent_programs.clone();
    inv.tools = profile.tools.clone();
    inv.is_agent = !inv.model_apis.is_empty()
        || !inv.agent_programs.is_empty()
        || !inv.frameworks.is_empty()
        || !inv.mcp.is_empty()
        || !inv.mcp_servers.is_empty()
        || profile
            .packages
            .iter()
            .any(|p| p.kind == "model-sdk" || p.kind == "model-runtime");
    inv
}

/// Text block for `sensor agents`.
pub fn render(inv: &AgentInventory) -> String {
    let mut out = format!(
        "{}/{}/{}{}\n",
        inv.namespace,
        inv.workload,
        inv.container,
        if inv.is_agent { "  (agent)" } else { "" }
    );
    let mut line = |label: &str, items: &[String]| {
        if !items.is_empty() {
            out.push_str(&format!("  {label:<15}{}\n", items.join(", ")));
        }
    };
    line("model APIs:", &inv.model_apis);
    line("vector stores:", &inv.vector_stores);
    line("cloud APIs:", &inv.cloud_apis);
    line("frameworks:", &inv.frameworks);
    line("SDKs:", &inv.sdks);
    line("MCP:", &inv.mcp);
    line("MCP servers:", &inv.mcp_servers);
    line("agent:", &inv.agent_programs);
    let tools: Vec<String> = inv
        .tools
        .iter()
        .map(|t| {
            let failed = if t.failures > 0 {
                format!(", {} failed", t.failures)
            } else {
                String::new()
            };
            format!("{} ({}x{failed})", t.args.join(" "), t.invocations)
        })
        .collect();
    line("tools:", &tools);
    let mut also = Vec::new();
    if inv.cluster_services > 0 {
        also.push(format!("{} cluster service(s)", inv.cluster_services));
    }
    if inv.other_peers > 0 {
        also.push(format!("{} other peer(s)", inv.other_peers));
    }
    if !also.is_empty() {
        out.push_str(&format!("  {:<15}{}\n", "also calls:", also.join(", ")));
    }
    let shown = inv.recent_calls.len().saturating_sub(RECENT_SHOWN);
    if !inv.recent_calls.is_empty() {
        out.push_str(&format!(
            "  recent tool calls ({} of {}):\n",
            inv.recent_calls.len() - shown,
            inv.recent_calls.len()
        ));
    }
    for call in &inv.recent_calls[shown..] {
        out.push_str(&format!("    {}\n", render_call(call)));
    }
    out
}

/// Tool calls `sensor agents` prints per container (`--json` has all).
const RECENT_SHOWN: usize = 5;

/// One line: `[id] started  command  -> exit 0; exec ..., connect ...`.
pub fn render_call(c: &ToolCall) -> String {
    let end = match (&c.ended, c.exit_code, c.signal) {
        (None, _, _) if c.end_lost => "end not seen (event lost)".to_string(),
        (None, _, _) => "running".to_string(),
        (Some(_), _, Some(sig)) => format!("killed by signal {sig}"),
        (Some(_), Some(code), None) => format!("exit {code}"),
        (Some(_), None, None) => "ended".to_string(),
    };
    let mut actions: Vec<String> = c.execs.iter().map(|e| format!("exec {e}")).collect();
    actions.extend(c.connections.iter().map(|p| format!("connect {p}")));
    actions.extend(c.files.iter().map(|f| format!("read {f}")));
    if c.actions_dropped > 0 {
        actions.push(format!("{} more", c.actions_dropped));
    }
    let command = crate::text::truncate(&c.tool.args.join(" "), 80);
    let mut line = format!("[{}] {}  {command}  -> {end}", c.id, c.started);
    if !actions.is_empty() {
        line.push_str("; ");
        line.push_str(&actions.join(", "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::workload::WorkloadKind;
    use crate::profile::model::{Flow, ProfileKey, Protocol, Resolver, Timestamp};

    fn flow(ip: &str, port: u16, protocol: Protocol, names: &[&str]) -> Flow {
        Flow::sample(ip, port, protocol, names)
    }

    #[test]
    fn an_agent_is_described_by_what_it_calls_and_has() {
        let key = ProfileKey {
            namespace: "shop".into(),
            workload: "assistant".into(),
            container: "agent".into(),
        };
        let t0 = Timestamp::lit("2026-11-26T00:00:00Z");
        let t1 = Timestamp::lit("2026-11-26T00:00:01Z");
        let t2 = Timestamp::lit("2026-11-26T00:00:02Z");
        let mut p = ApplicationProfile::new(key, WorkloadKind::Deployment, 60, t0);
        p.resolvers.push(Resolver {
            ip: "10.0.0.10".parse().unwrap(),
            cluster_dns: true,
        });
        p.egress = vec![
            flow("10.0.0.10", 53, Protocol::Udp, &[]),
            flow(
                "52.1.1.1",
                443,
                Protocol::Tcp,
                &["bedrock-runtime.eu-west-1.amazonaws.com"],
            ),
            flow(
                "52.1.1.2",
                443,
                Protocol::Tcp,
                &["bedrock-runtime.us-east-1.amazonaws.com"],
            ),
            flow(
                "34.1.1.1",
                443,
                Protocol::Tcp,
                &["x.svc.us-east1.pinecone.io"],
            ),
            flow("93.184.216.34", 443, Protocol::Tcp, &["example.com"]),
        ];
        let pkg = |name: &str, kind: &str| PackageEntry {
            ecosystem: "python".into(),
            name: name.into(),
            version: Some("1.0".into()),
            kind: kind.into(),
            path: String::new(),
            first_seen: Timestamp::UNIX_EPOCH,
        };
        p.record_packages(&[pkg("langchain-core", "framework"), pkg("mcp", "mcp")], t1);
        let inv = of_profile(&p, Catalogue::embedded());
        assert!(inv.is_agent);
        assert_eq!(inv.model_apis, ["Amazon Bedrock"]);
        assert_eq!(inv.vector_stores, ["Pinecone"]);
        assert_eq!(inv.frameworks, ["langchain-core 1.0 (python)"]);
        assert_eq!(inv.mcp, ["mcp 1.0 (python)"]);
        assert_eq!((inv.cluster_services, inv.other_peers), (0, 1));
        let text = render(&inv);
        assert!(
            text.starts_with("shop/assistant/agent  (agent)\n"),
            "{text}"
        );
        assert!(text.contains("model APIs:    Amazon Bedrock\n"), "{text}");

        let mut plain = ApplicationProfile::new(p.key.clone(), WorkloadKind::Deployment, 60, t0);
        plain.egress = vec![flow("93.184.216.34", 443, Protocol::Tcp, &["example.com"])];
        assert!(!of_profile(&plain, Catalogue::embedded()).is_agent);
        // Running an MCP server makes it an agent host.
        let args: Vec<String> = ["npx", "-y", "@modelcontextprotocol/server-github"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        plain.record_exec("/usr/local/bin/npx", &args, t2);
        let inv = of_profile(&plain, Catalogue::embedded());
        assert!(inv.is_agent);
        assert_eq!(inv.mcp_servers, ["@modelcontextprotocol/server-github"]);
    }
}
