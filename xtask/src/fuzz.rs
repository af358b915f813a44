//! `cargo xtask fuzz` (and the fuzzing step of `cargo xtask test`): installs cargo-fuzz, builds
//! the targets of `fuzz/` with the nightly toolchain and runs each for a fixed time, starting
//! from its seed corpus (`fuzz/corpus/<target>`: real records and DNS answers captured on the
//! test bed with `sensor-dev records`). A crash fails the run; its input is kept under
//! `target/fuzz/artifacts/<target>/` and printed.

use std::{fs, path::Path, process::Command, time::Instant};

use anyhow::{Context, Result, bail};

use crate::setup;

/// cargo-fuzz release known to work with the nightly here.
const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// The targets, in `fuzz/Cargo.toml`.
pub const TARGETS: &[&str] = &["decode", "dns"];

/// Installs cargo-fuzz (pinned) unless that version is there.
pub fn ensure_cargo_fuzz() -> Result<()> {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .env("PATH", setup::path_with_cargo_bin())
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains(&format!(" {CARGO_FUZZ_VERSION}"))
        });
    if installed {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    let status = Command::new("cargo")
        .args([
            "install",
            "cargo-fuzz",
            "--locked",
            "--force",
            "--version",
            CARGO_FUZZ_VERSION,
        ])
        .status()
        .context("starting cargo install cargo-fuzz")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz {CARGO_FUZZ_VERSION} failed: {status}");
    }
    Ok(())
}

/// Builds every target, then runs each for `seconds`; fails on the first crash.
pub fn run(root: &Path, seconds: u64) -> Result<()> {
    let target_dir = root.join("target/fuzz");
    let started = Instant::now();
    let mut build = cargo_fuzz(root);
    build
        .args(["build", "--target-dir"])
        .arg(&target_dir)
        .arg("--release")
        .arg("--debug-assertions");
    crate::run(&mut build)?;
    eprintln!("xtask: fuzz targets built in {:.0?}", started.elapsed());
    for target in TARGETS {
        // New inputs go to a scratch corpus; the committed seeds are only read.
        let scratch = target_dir.join("corpus").join(target);
        let artifacts = target_dir.join("artifacts").join(target);
        fs::create_dir_all(&scratch)?;
        fs::create_dir_all(&artifacts)?;
        let seeds = root.join("fuzz/corpus").join(target);
        let mut cmd = cargo_fuzz(root);
        cmd.args(["run", "--target-dir"])
            .arg(&target_dir)
            .args(["--release", "--debug-assertions", target])
            .arg(&scratch)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1");
        let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
        if !status.success() {
            bail!(
                "fuzz target `{target}` failed ({status}): the crashing input is in {} \
                 (replay: cargo +nightly fuzz run {target} <file>)",
                artifacts.display()
            );
        }
    }
    eprintln!(
        "xtask: {} fuzz targets ran {seconds} s each, no crash ({:.0?} in all)",
        TARGETS.len(),
        started.elapsed()
    );
    Ok(())
}

fn cargo_fuzz(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .env("PATH", setup::path_with_cargo_bin())
        .args(["+nightly", "fuzz"]);
    cmd
}
