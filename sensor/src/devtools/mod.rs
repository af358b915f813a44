//! The developer tools of the `sensor-dev` binary (`sensor/src/bin/sensor-dev.rs`): the helpers
//! `cargo xtask bench` runs (the empty-hook floor, synthetic profiles, the in-process
//! benchmarks) and the capture of fuzz seed corpora. Not part of the production `sensor` CLI:
//! only the dev binary reaches this module.

pub mod pieces;
pub mod records;
pub mod stream;

use std::{path::PathBuf, time::Instant};

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{
    attribution::workload::WorkloadKind,
    drafts::{
        netpol,
        seccomp::{self, NodeArch, SeccompMode},
    },
    profile::{
        builder::{Direction, FlowDelta, FlowId},
        model::{ApplicationProfile, ProfileKey, Protocol, Resolver, Timestamp},
        persist::StateDir,
    },
};

/// `sensor-dev`: developer tools over the sensor library (benchmark helpers, fuzz seeds).
#[derive(Parser, Debug)]
#[command(
    name = "sensor-dev",
    version,
    about = "Developer tools of the node sensor: benchmark helpers and fuzz seed corpora"
)]
pub struct DevCli {
    #[command(subcommand)]
    pub command: DevCommand,
}

#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Attach only an empty `sys_enter` program (the benchmark floor), print `attached`, and
    /// hold it until SIGINT/SIGTERM.
    EmptyHook {
        /// Also an empty `sys_exit` program: the floor of hooking both.
        #[arg(long)]
        exit: bool,
    },
    /// Write `count` realistic learned profiles (2 containers per workload) into a state dir.
    SynthProfiles {
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long, default_value_t = 500)]
        count: usize,
    },
    /// Write the ProfilePieces of a simulated cluster (every workload on every node) as JSON
    /// lines, for the cluster scale bench.
    SynthPieces(pieces::SynthPiecesArgs),
    /// Write raw ring-buffer records of the real probes to files (fuzz seed corpora).
    Records(records::RecordsArgs),
    /// The in-process benchmarks, each its own `sensor-dev` subcommand (`bench-drafts`,
    /// `bench-stream`).
    #[command(flatten)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time the draft generators (seccomp enforce + audit JSON, NetworkPolicy YAML) over the
    /// profiles of a state dir; prints one JSON line.
    BenchDrafts {
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Time the anomaly stream under load (hub + gRPC, a fast and a slow client); prints one
    /// JSON line.
    ///
    /// The real gRPC server on a Unix socket, the agent's anomaly source (the anomaly log in
    /// `--state-dir`, then the hub), a publisher thread appending and publishing synthetic
    /// anomalies at `--rate` per second for `--seconds`, and two clients on the socket, one
    /// reading as fast as it can, one sleeping between messages.
    BenchStream(stream::StreamArgs),
}

const T: Timestamp = Timestamp::lit("2026-11-26T00:00:00Z");

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
        .map(|n| crate::capture::syscall_names::name(crate::capture::syscall_names::Abi::Native, n))
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

pub async fn run(cmd: DevCommand) -> Result<()> {
    match cmd {
        DevCommand::EmptyHook { exit } => {
            let _hooks = crate::capture::loader::attach_empty_hooks(exit)?;
            println!("attached");
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            Ok(())
        }
        DevCommand::SynthProfiles { state_dir, count } => {
            let state = StateDir::new(&state_dir);
            state.create()?;
            for n in 0..count {
                let container = if n % 2 == 0 { "app" } else { "sidecar" };
                state.write_profile(&synthetic_profile(n / 2, container))?;
            }
            println!("{{\"profiles\":{count}}}");
            Ok(())
        }
        DevCommand::Records(args) => records::run(args).await,
        DevCommand::SynthPieces(args) => pieces::run(args),
        DevCommand::Bench(BenchCommand::BenchStream(args)) => stream::run(args),
        DevCommand::Bench(BenchCommand::BenchDrafts { state_dir }) => {
            let profiles = StateDir::new(&state_dir).load_profiles().profiles;
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
            let catalogue = crate::ai::Catalogue::embedded();
            let mut times = Vec::with_capacity(workloads.len());
            let mut bytes = 0usize;
            for members in workloads.values() {
                let t = Instant::now();
                for p in members {
                    for mode in [SeccompMode::Enforce, SeccompMode::Audit] {
                        bytes += seccomp::to_json(&seccomp::seccomp_draft(p, mode, arch))?.len();
                    }
                }
                let policy = netpol::network_policy_for_workload(members, catalogue)?;
                bytes += netpol::to_yaml(&policy)?.len();
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
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> DevCommand {
        DevCli::try_parse_from(["sensor-dev"].iter().chain(args.iter()).copied())
            .unwrap()
            .command
    }

    #[test]
    fn bench_subcommands_keep_their_names() {
        assert!(matches!(
            parse(&["bench-drafts", "--state-dir", "/s"]),
            DevCommand::Bench(BenchCommand::BenchDrafts { .. })
        ));
        let DevCommand::Bench(BenchCommand::BenchStream(a)) =
            parse(&["bench-stream", "--socket", "/s.sock", "--state-dir", "/s"])
        else {
            panic!("bench-stream")
        };
        assert_eq!((a.rate, a.seconds, a.queue), (10_000, 5, 4096));
        assert!(matches!(
            parse(&["empty-hook"]),
            DevCommand::EmptyHook { exit: false }
        ));
        assert!(matches!(
            parse(&["empty-hook", "--exit"]),
            DevCommand::EmptyHook { exit: true }
        ));
        assert!(matches!(
            parse(&["synth-profiles", "--state-dir", "/s"]),
            DevCommand::SynthProfiles { count: 500, .. }
        ));
    }

    #[test]
    fn the_production_cli_has_no_dev_commands() {
        for name in [
            "debug",
            "empty-hook",
            "synth-profiles",
            "records",
            "bench-drafts",
            "bench-stream",
        ] {
            let e = crate::cli::Cli::try_parse_from(["sensor", name]).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::InvalidSubcommand,
                "sensor {name}"
            );
        }
    }

    #[test]
    fn a_short_stream_run_accounts_for_every_anomaly_in_both_clients() {
        let dir = tempfile::tempdir().unwrap();
        let v = stream::measure(stream::StreamArgs {
            socket: dir.path().join("s.sock"),
            state_dir: dir.path().join("state"),
            rate: 2000,
            seconds: 1,
            queue: 64,
            slow_pause_us: 2000,
            drain_timeout: 30,
        })
        .unwrap();
        assert_eq!(v["published"], 2000, "{v}");
        for client in ["fast", "slow"] {
            let c = &v[client];
            assert_eq!(c["complete"], true, "{client}: {v}");
            assert_eq!(c["accounted"], 2000, "{client}: {v}");
            assert_eq!(c["out_of_order"], 0, "{client}: {v}");
        }
        assert!(v["slow"]["gaps"].as_u64().unwrap() > 0, "{v}");
        assert_eq!(
            v["hub"]["dropped"],
            v["fast"]["missed"].as_u64().unwrap() + v["slow"]["missed"].as_u64().unwrap(),
            "{v}"
        );
    }
}
