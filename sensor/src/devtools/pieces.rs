//! `sensor-dev synth-pieces`: the ProfilePieces of a simulated cluster for the scale bench,
//! built with the real writer's functions (`cluster::piece`, `cluster::writer`): every one of
//! `--workloads` realistic workloads on every one of `--nodes` nodes, each node's piece with
//! one exec of its own (so every merge has work to do). JSON lines into `--out`; one summary
//! JSON line on stdout (pieces, bytes per piece).

use std::{io::Write, path::PathBuf};

use anyhow::{Context, Result};

use super::synthetic_profile;
use crate::{
    attribution::kube::owner::OwnerRef,
    cluster::{
        piece::{MAX_PIECE_BYTES, piece_spec},
        writer::piece_object,
    },
    drafts::seccomp::NodeArch,
    profile::model::{Status, Timestamp},
};

#[derive(clap::Args, Debug)]
pub struct SynthPiecesArgs {
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    #[arg(long, default_value_t = 500)]
    pub workloads: usize,
    #[arg(long)]
    pub out: PathBuf,
}

const READY: Timestamp = Timestamp::lit("2026-11-27T00:00:00Z");

pub fn run(args: SynthPiecesArgs) -> Result<()> {
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut sizes = Vec::with_capacity(args.nodes * args.workloads);
    for w in 0..args.workloads {
        let base = synthetic_profile(w, "app");
        let owner = OwnerRef {
            kind: "Deployment".into(),
            name: base.key.workload.clone(),
            uid: format!("uid-{w}"),
        };
        for n in 0..args.nodes {
            let node = format!("node-{n:03}");
            let mut p = base.clone();
            p.nodes = vec![node.clone()];
            p.record_exec(
                &format!("/usr/bin/only-on-{node}"),
                &[format!("only-on-{node}")],
                READY,
            );
            p.status = Status::Ready;
            p.ready_at = Some(READY);
            let spec = piece_spec(&p, &node, NodeArch::current(), MAX_PIECE_BYTES)?;
            let line = serde_json::to_string(&piece_object(&p.key, spec, Some(&owner)))?;
            sizes.push(line.len());
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    sizes.sort_unstable();
    let n = sizes.len().max(1);
    let total: usize = sizes.iter().sum();
    let p99 = sizes
        .get((n * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or(0);
    println!(
        "{{\"pieces\":{},\"total_bytes\":{total},\"mean_bytes\":{},\"p99_bytes\":{p99},\"max_bytes\":{}}}",
        sizes.len(),
        total / n,
        sizes.last().copied().unwrap_or(0)
    );
    Ok(())
}
