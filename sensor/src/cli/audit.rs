//! `sensor audit netpol`: which recorded flows would candidate NetworkPolicies deny?
//!
//! Offline: the profiles are read from the state directory's files (as `--profile` does for the
//! other commands), so no agent needs to run and nothing is written. Exit code 0 when no flow
//! would be denied, 1 when some would ([`Exit::Findings`](super::exit::Exit::Findings)) or on an
//! error reading profiles, 2 for bad input (flags, a malformed policy file).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};

use super::exit::{CommandError, CommandResult};
use super::remote::{load_profile, out};
use crate::attribution::kube::Endpoint;
use crate::audit::{cluster, policy_files, report};
use crate::daemon::config::DEFAULT_STATE_DIR;
use crate::profile::model::ApplicationProfile;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recorded flows the given NetworkPolicies would deny (exit code 1 when any).
    Netpol(NetpolAuditArgs),
}

#[derive(Args, Debug)]
pub struct NetpolAuditArgs {
    /// A policy file (YAML, multi-document YAML, JSON, `List`s) or a directory of them.
    #[arg(
        long,
        value_name = "FILE|DIR",
        required_unless_present = "from_cluster"
    )]
    pub policy: Option<PathBuf>,
    /// Read the NetworkPolicies and Namespace labels from the Kubernetes API instead (in-cluster
    /// credentials, or --kubernetes-api-url); needs list on networkpolicies and namespaces.
    #[arg(long, conflicts_with = "policy")]
    pub from_cluster: bool,
    /// With --from-cluster: this API server, reached anonymously (e.g. `kubectl proxy`).
    #[arg(long, value_name = "URL", requires = "from_cluster", value_parser = parse_api_url)]
    pub kubernetes_api_url: Option<String>,
    /// Only the profiles of this namespace; also the namespace of policies without one.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Only the profiles of this workload.
    #[arg(long, short = 'w', value_name = "W")]
    pub workload: Option<String>,
    /// The agent's state directory (profiles under `profiles/`).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// The report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_api_url(s: &str) -> Result<String, String> {
    crate::attribution::kube::settings::parse_url(s)
}

pub async fn run(cmd: AuditCommand) -> CommandResult {
    match cmd {
        AuditCommand::Netpol(args) => netpol(args).await,
    }
}

async fn netpol(args: NetpolAuditArgs) -> CommandResult {
    let (loaded, source) = match &args.policy {
        Some(path) => (
            // A malformed policy file is bad input: exit code 2.
            policy_files::load(path, args.namespace.as_deref()).map_err(CommandError::usage)?,
            path.display().to_string(),
        ),
        None => {
            let endpoint = match &args.kubernetes_api_url {
                Some(url) => Endpoint::Url(url.clone()),
                None => Endpoint::InCluster,
            };
            let loaded = cluster::load(&endpoint, args.namespace.as_deref()).await?;
            (loaded, "the cluster".to_string())
        }
    };
    for note in &loaded.notes {
        eprintln!("note: {note}");
    }
    let profiles: Vec<ApplicationProfile> = read_profiles(&args.state_dir)?
        .into_iter()
        .filter(|p| {
            args.namespace
                .as_ref()
                .is_none_or(|n| *n == p.key.namespace)
                && args.workload.as_ref().is_none_or(|w| *w == p.key.workload)
        })
        .collect();
    if profiles.is_empty() {
        return Err(anyhow!(
            "no profile{}{} under {}",
            args.namespace
                .as_ref()
                .map_or(String::new(), |n| format!(" in namespace {n}")),
            args.workload
                .as_ref()
                .map_or(String::new(), |w| format!(" of workload {w}")),
            args.state_dir.join("profiles").display()
        )
        .into());
    }
    let audit = report::audit(&profiles, &loaded.set, &loaded.namespaces);
    for note in &audit.notes {
        eprintln!("note: {note}");
    }
    if args.json {
        out(&format!("{}\n", serde_json::to_string_pretty(&audit)?))?;
    } else {
        out(&report::render_text(&audit))?;
    }
    if !audit.would_deny.is_empty() {
        return Err(CommandError::findings(anyhow!(
            "{} would be denied by the policies in {}",
            report::count(audit.would_deny.len(), "recorded flow"),
            source
        )));
    }
    Ok(())
}

/// Every profile under `<state>/profiles/<ns>/<workload>/<container>.json`, read only (quarantined
/// `.corrupt` files and temp files of the agent are not profiles). One that does not parse is an
/// error: an audit that silently left out a workload's flows would be wrong.
fn read_profiles(state_dir: &Path) -> Result<Vec<ApplicationProfile>> {
    let root = state_dir.join("profiles");
    if !root.is_dir() {
        bail!(
            "{}: no profiles directory (is --state-dir the agent's state directory?)",
            root.display()
        );
    }
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".json") && !name.starts_with('.') {
                files.push(path);
            }
        }
    }
    files.sort();
    files.iter().map(|f| load_profile(f)).collect()
}
