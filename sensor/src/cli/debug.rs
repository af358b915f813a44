//! Hidden developer commands used by the benchmark.

use std::{path::PathBuf, time::Instant};

use anyhow::Result;
use clap::Subcommand;

use crate::{
    attribution::workload::WorkloadKind,
    drafts::{
        netpol,
        seccomp::{self, NodeArch, SeccompMode},
    },
    profile::{
        builder::{Direction, FlowDelta, FlowId},
        model::{ApplicationProfile, ProfileKey, Protocol, Resolver},
        persist::StateDir,
    },
};

#[derive(Subcommand, Debug)]
pub enum DebugCommand {
    /// Attach only an empty `sys_enter` program (the benchmark floor), print `attached`, and
    /// hold it until SIGINT/SIGTERM.
    EmptyHook,
    /// Write `count` realistic learned profiles (2 containers per workload) into a state dir.
    SynthProfiles {
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long, default_value_t = 500)]
        count: usize,
    },
    /// Time the draft generators (seccomp enforce + audit JSON, NetworkPolicy YAML) over the
    /// profiles of a state dir; prints one JSON line.
    BenchDrafts {
        #[arg(long)]
        state_dir: PathBuf,
    },
}

const T: &str = "2026-11-26T00:00:00Z";

/// A profile shaped like a busy agent workload: ~90 syscalls, 24 execs, 40 egress peers with
/// names, 8 ingress peers, 30 DNS names, 6 sensitive files.
pub fn synthetic_profile(i: usize, container: &str) -> ApplicationProfile {
    let key = ProfileKey {
        namespace: format!("team-{}", i % 10),
        workload: format!("agent-{i}"),
        container: container.to_string(),
    };
    let mut p = ApplicationProfile::new(key, WorkloadKind::Deployment, 24 * 3600, T);
    let syscalls: Vec<String> = (0..90)
        .map(|n| crate::syscall_names::name(crate::syscall_names::Abi::Native, n))
        .collect();
    p.record_syscalls(&syscalls, &[], T);
    for e in 0..24 {
        let args = vec![
            format!("tool{e}"),
            "--config".into(),
            format!("/etc/tool{e}.yaml"),
        ];
        p.record_exec(&format!("/usr/bin/tool{e}"), &args, T);
    }
    let resolver = Resolver {
        ip: "10.100.0.10".parse().expect("ip"),
        cluster_dns: true,
    };
    for f in 0..40u32 {
        let ip = std::net::IpAddr::from([10, 20, (f / 200) as u8, (f % 200) as u8 + 1]);
        let name = format!("svc{f}.example.com");
        p.record_dns(&name, &[ip], resolver.clone(), T);
        let id = FlowId {
            direction: Direction::Egress,
            ip,
            port: 443,
            protocol: Protocol::Tcp,
        };
        p.record_flow(
            id,
            FlowDelta {
                connections: 10,
                bytes_sent: 4096,
                bytes_recv: 65536,
            },
            &[name],
            T,
        );
        p.record_window(
            id,
            FlowDelta {
                connections: 10,
                bytes_sent: 4096,
                bytes_recv: 65536,
            },
            60,
            T,
        );
    }
    for f in 0..8u8 {
        let id = FlowId {
            direction: Direction::Ingress,
            ip: std::net::IpAddr::from([10, 30, 0, f + 1]),
            port: 8080,
            protocol: Protocol::Tcp,
        };
        p.record_flow(
            id,
            FlowDelta {
                connections: 5,
                bytes_sent: 1000,
                bytes_recv: 2000,
            },
            &[],
            T,
        );
    }
    for f in 0..6 {
        p.record_file(
            &format!("/var/run/secrets/kubernetes.io/serviceaccount/file{f}"),
            "/var/run/secrets/kubernetes.io/serviceaccount/",
            T,
        );
    }
    p.add_pod(&format!("agent-{i}-7d9f8b6c4d-x2x9k"), "node-1", T);
    p
}

pub fn run(cmd: DebugCommand) -> Result<Option<()>> {
    match cmd {
        DebugCommand::EmptyHook => Ok(None),
        DebugCommand::SynthProfiles { state_dir, count } => {
            let state = StateDir::new(&state_dir);
            state.create()?;
            for n in 0..count {
                let container = if n % 2 == 0 { "app" } else { "sidecar" };
                state.write_profile(&synthetic_profile(n / 2, container))?;
            }
            println!("{{\"profiles\":{count}}}");
            Ok(Some(()))
        }
        DebugCommand::BenchDrafts { state_dir } => {
            let (profiles, _) = StateDir::new(&state_dir).load_profiles();
            let mut workloads: std::collections::BTreeMap<
                (String, String),
                Vec<&ApplicationProfile>,
            > = Default::default();
            for p in &profiles {
                workloads
                    .entry((p.key.namespace.clone(), p.key.workload.clone()))
                    .or_default()
                    .push(p);
            }
            let arch = NodeArch::current();
            let mut times = Vec::with_capacity(workloads.len());
            let mut bytes = 0usize;
            for members in workloads.values() {
                let t = Instant::now();
                for p in members {
                    for mode in [SeccompMode::Enforce, SeccompMode::Audit] {
                        bytes += seccomp::to_json(&seccomp::seccomp_draft(p, mode, arch)).len();
                    }
                }
                bytes += netpol::to_yaml(&netpol::network_policy_for_workload(members)).len();
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(|a, b| a.total_cmp(b));
            let n = times.len().max(1);
            let mean = times.iter().sum::<f64>() / n as f64;
            let p99 = times
                .get((n * 99).div_ceil(100).saturating_sub(1))
                .copied()
                .unwrap_or(0.0);
            let max = times.last().copied().unwrap_or(0.0);
            println!(
                "{{\"workloads\":{},\"profiles\":{},\"mean_ms\":{mean:.3},\"p99_ms\":{p99:.3},\"max_ms\":{max:.3},\"bytes\":{bytes}}}",
                workloads.len(),
                profiles.len()
            );
            Ok(Some(()))
        }
    }
}
