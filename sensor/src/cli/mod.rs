//! Command-line interface (clap). Every flag is validated here, so bad input exits with one
//! precise message before anything is loaded. How each command ends - exit code 0, 1 or 2 - is
//! the contract of [`exit`].

pub mod agents;
pub mod audit;
pub mod doctor;
pub mod drafts;
pub mod exit;
pub mod info;
pub mod profile_text;
pub mod profiles;
pub mod remote;
pub mod run;
pub mod trace;
pub mod usage;
pub mod watch;

use clap::{Parser, Subcommand};

use self::exit::{CommandError, CommandResult, Exit};

pub use self::trace::{HostPaths, TraceArgs};

#[derive(Parser, Debug)]
#[command(
    name = "sensor",
    version,
    about = "eBPF node sensor for Kubernetes: per-pod capture, profiles, drafts, anomalies"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The agent: capture, attribute, learn profiles, write drafts, serve gRPC.
    Run(Box<run::RunArgs>),
    /// Live attributed events (exec, exit, connect, accept, dns, file), per pod.
    Trace(Box<TraceArgs>),
    /// Application profiles learned by the agent.
    #[command(subcommand)]
    Profiles(profiles::ProfilesCommand),
    /// The seccomp draft (Localhost profile JSON) of a workload's container.
    Seccomp(drafts::SeccompArgs),
    /// The NetworkPolicy draft of a workload.
    Netpol(drafts::NetpolArgs),
    /// Audits of candidate policies against the recorded traffic (`audit netpol`).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Anomalies as they happen (after replaying the log with --since), from the agent.
    Watch(Box<watch::WatchArgs>),
    /// Checks this node: kernel, BTF, cgroups, each probe (really loaded), container layout,
    /// kubelet directories; exit code 0 when the sensor can run here.
    Doctor(doctor::DoctorArgs),
    /// Workloads that behave like AI agents: model APIs and vector stores they call, agent
    /// frameworks, SDKs and MCP packages installed (the runtime AI-BOM).
    Agents(agents::AgentsArgs),
    /// The running agent: version, kernel, each probe's status and what is not captured.
    Info(info::InfoArgs),
    /// The cluster profile CustomResourceDefinitions (ProfilePiece, WorkloadProfile) as YAML,
    /// for `kubectl apply -f -` (the same as deploy/crds.yaml).
    Crds,
}

/// Runs a parsed command line to its end: a failure's message is printed on stderr (one line),
/// and the [`Exit`] says which exit code the process ends with.
pub async fn run(cli: Cli) -> Exit {
    exit::report(dispatch(cli).await)
}

pub async fn dispatch(cli: Cli) -> CommandResult {
    match cli.command {
        Command::Run(args) => run::run(*args).await.map_err(|e| e.context("sensor run")),
        Command::Trace(args) => {
            let options = args.into_options().map_err(CommandError::usage)?;
            Ok(crate::cli::trace::live::run(options)
                .await
                .map_err(|e| e.context("sensor trace"))?)
        }
        Command::Profiles(cmd) => Ok(profiles::profiles(cmd).await?),
        Command::Seccomp(args) => Ok(drafts::seccomp(args).await?),
        Command::Netpol(args) => Ok(drafts::netpol(args).await?),
        Command::Audit(cmd) => audit::run(cmd).await,
        Command::Watch(args) => Ok(watch::run(*args).await?),
        Command::Doctor(args) => doctor::run(args),
        Command::Info(args) => Ok(info::run(args).await?),
        Command::Agents(args) => Ok(agents::run(args).await?),
        Command::Crds => {
            print!("{}", crate::cluster::crd::definitions_yaml());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
