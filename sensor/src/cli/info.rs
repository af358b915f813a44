//! `sensor info`: the running agent's version, kernel and probe status, over gRPC `GetInfo`.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::remote::{ServerArg, status_error};
use crate::api::proto;

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: InfoArgs) -> Result<()> {
    let addr = &args.server.server;
    let mut client = args.server.connect().await?;
    let info = client
        .get_info(proto::GetInfoRequest {})
        .await
        .map_err(|s| status_error(addr, s))?
        .into_inner();
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&to_json(&info))?)
    } else {
        render(&info)
    };
    super::remote::out(&text)
}

fn to_json(info: &proto::AgentInfo) -> serde_json::Value {
    json!({
        "nodeName": info.node_name,
        "version": info.version,
        "kernelRelease": info.kernel_release,
        "machine": info.machine,
        "cgroup2Mount": info.cgroup2_mount,
        "started": crate::api::convert::rfc3339(info.started.as_ref()),
        "notCaptured": info.not_captured,
        "probes": info.probes.iter().map(|p| json!({
            "program": p.program,
            "hook": p.hook,
            "captures": p.captures,
            "needs": p.needs,
            "since": p.since,
            "required": p.required,
            "attached": p.attached,
            "error": (!p.error.is_empty()).then_some(&p.error),
            "without": p.without,
            "note": (!p.note.is_empty()).then_some(&p.note),
        })).collect::<Vec<_>>(),
    })
}

/// Text form: a header, one line per probe, then what is not captured.
pub fn render(info: &proto::AgentInfo) -> String {
    let mut out = format!(
        "node {}: sensor {} on Linux {} ({}), cgroup2 at {}\n\nprobes\n",
        info.node_name, info.version, info.kernel_release, info.machine, info.cgroup2_mount
    );
    for p in &info.probes {
        out.push_str(&format!(
            "  {:<4} {:<20} {:<40} {}\n",
            if p.attached { "ok" } else { "OFF" },
            p.program,
            p.hook,
            if p.required { "required" } else { "optional" }
        ));
        if !p.attached {
            out.push_str(&format!("       {}\n", p.error));
        }
        if !p.note.is_empty() {
            out.push_str(&format!("       {}\n", p.note));
        }
    }
    if info.not_captured.is_empty() {
        out.push_str("\nevery probe is attached\n");
    } else {
        out.push_str("\nnot captured on this node\n");
        for line in &info.not_captured {
            out.push_str(&format!("  - {line}\n"));
        }
    }
    out
}
