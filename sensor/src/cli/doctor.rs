//! `sensor doctor`: will the sensor work on this node? One command, real checks, exit code 0
//! when `sensor run` can start here and 1 when it cannot.

use std::path::PathBuf;

use clap::Args;

use super::exit::{CommandError, CommandResult};
use crate::daemon::doctor::{self, DoctorOptions, Level, Report};

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Print the probe compatibility table (what each probe needs, what is lost without it)
    /// as Markdown and exit, without examining the host.
    #[arg(long, conflicts_with = "json")]
    pub table: bool,
    /// kubelet's seccomp profile directory.
    #[arg(long, default_value = "/var/lib/kubelet/seccomp", value_name = "DIR")]
    pub kubelet_seccomp_dir: PathBuf,
    /// Node name in the report (default: the host name).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    #[command(flatten)]
    pub host: super::HostPaths,
}

/// A FAIL is a finding (exit code 1), not an error of the command.
pub fn run(args: DoctorArgs) -> CommandResult {
    if args.table {
        print!("{}", table_markdown());
        return Ok(());
    }
    let report = doctor::examine(&DoctorOptions {
        proc_root: args.host.proc_root,
        btf: args.host.btf,
        pod_logs: args.host.pod_logs_dir,
        container_logs: args.host.container_logs_dir,
        kubelet_seccomp: args.kubelet_seccomp_dir,
        node_name: args.node_name.unwrap_or_else(super::trace::host_name),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    if report.can_run {
        Ok(())
    } else {
        Err(CommandError::findings(anyhow::anyhow!(
            "the sensor cannot run on this node (see the FAIL lines above)"
        )))
    }
}

fn tag(level: Level) -> &'static str {
    match level {
        Level::Ok => "ok",
        Level::Info => "info",
        Level::Warn => "WARN",
        Level::Fail => "FAIL",
    }
}

/// The human-readable report.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "node {}: Linux {} ({})\n\nhost\n",
        report.node, report.kernel_release, report.machine
    );
    for c in &report.checks {
        out.push_str(&format!(
            "  {:<5} {:<24} {}\n",
            tag(c.level),
            c.name,
            c.detail
        ));
    }
    out.push_str("\nprobes\n");
    for p in &report.probes {
        let level = if p.attached {
            Level::Ok
        } else if p.blocks_start() {
            Level::Fail
        } else {
            Level::Warn
        };
        out.push_str(&format!(
            "  {:<5} {:<20} {:<40} {}\n",
            tag(level),
            p.program,
            p.hook,
            if p.required { "required" } else { "optional" }
        ));
        if let Some(e) = &p.error {
            out.push_str(&format!(
                "        needs {} (Linux {}+); the kernel said: {e}\n        without it: {}\n",
                p.needs, p.since, p.without
            ));
        }
        if let Some(note) = &p.note {
            out.push_str(&format!("        {note}\n"));
        }
    }
    out.push_str("\ncaptures on this node\n");
    for c in &report.captures {
        out.push_str(&format!("  + {c}\n"));
    }
    if !report.does_not_capture.is_empty() {
        out.push_str("\ndoes not capture\n");
        for c in &report.does_not_capture {
            out.push_str(&format!("  - {c}\n"));
        }
    }
    out.push_str(&format!(
        "\nverdict: {}\n",
        if report.can_run {
            "the sensor can run on this node"
        } else {
            "the sensor cannot run on this node"
        }
    ));
    out
}

fn table_markdown() -> String {
    let mut out = String::from(
        "| program | hook | needs (upstream version) | to start | without it |\n|---|---|---|---|---|\n",
    );
    for row in doctor::compat_table() {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} |\n",
            row[0], row[1], row[2], row[3], row[4]
        ));
    }
    out
}
