//! `cargo xtask <build|run|test|bench>`: every command first installs what it needs on a fresh
//! machine (idempotently), so the README's two commands work on a clean clone.

mod bench;
mod fuzz;
mod image;
mod kernels;
mod layers;
mod setup;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Build, run, test and benchmark the sensor")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the kernel programs, the agent (binary at target/<profile>/sensor) and the developer
    /// tools next to it (target/<profile>/sensor-dev: benchmark helpers, fuzz seed corpora).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build, then run the sensor on this host with sensible defaults.
    /// Extra arguments after `--` replace the defaults (e.g. `cargo xtask run -- trace --json`).
    Run {
        #[arg(long)]
        release: bool,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Everything: unit tests and the privileged end-to-end tests against the real kernel.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Overhead and flood benchmarks; writes docs/benchmarks.md.
    Bench {
        /// Syscalls per measurement of the getppid loop.
        #[arg(long, default_value_t = 3_000_000)]
        calls: u64,
        /// Interleaved rounds (medians are taken over rounds).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Skip writing docs/benchmarks.md (print only).
        #[arg(long)]
        no_write: bool,
    },
    /// Format and lint checks (cargo fmt --check, clippy with warnings denied).
    Lint,
    /// Container image without a Docker engine: one tar that is an OCI layout and a
    /// docker-archive (`kind load image-archive`, `ctr images import`, `docker load`).
    Image {
        /// Package the debug binary instead of a release build.
        #[arg(long)]
        debug: bool,
        /// Image reference (name:tag).
        #[arg(long, default_value = image::DEFAULT_TAG, value_parser = image::parse_reference)]
        tag: String,
        /// Output tar [default: target/node-sensor-image.tar].
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Run every fuzz target of fuzz/ for a while (cargo-fuzz, nightly); fails on a crash.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = FUZZ_SECONDS)]
        seconds: u64,
    },
    /// Internal: one benchmark workload, run by `bench` inside a pod-shaped cgroup.
    #[command(hide = true)]
    BenchWorker {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.command {
        Cmd::Build { release } => {
            setup::ensure_ebpf_toolchain()?;
            build(&root, release, Bins::WithDev)?;
        }
        Cmd::Run { release, args } => {
            require_root("run")?;
            setup::ensure_ebpf_toolchain()?;
            let bin = build(&root, release, Bins::Sensor)?;
            let args = if args.is_empty() {
                vec!["trace".to_string()]
            } else {
                args
            };
            eprintln!("running {} {}", bin.display(), args.join(" "));
            let status = Command::new(&bin)
                .args(&args)
                .status()
                .context("starting the sensor")?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Cmd::Test { args } => {
            require_root("test")?;
            setup::ensure_ebpf_toolchain()?;
            setup::ensure_packages(setup::TEST_PACKAGES)?;
            let python_tools = setup::ensure_python_tools(&root)?;
            let guest_kernel = kernels::ensure_debian_61(&root)?;
            let bin = build(&root, false, Bins::WithDev)?;
            // The image tests run the debug binary's image: a release build would add minutes.
            let image = image::build(
                &bin,
                image::DEFAULT_TAG,
                &root.join("target/node-sensor-image-debug.tar"),
            )?;
            let mut cmd = cargo(&root);
            cmd.args(["test", "--workspace"])
                .args(&args)
                .env("SENSOR_BIN", &bin)
                .env("SENSOR_IMAGE", &image.path)
                .env("KUBERNETES_VALIDATE", &python_tools.kubernetes_validate)
                .env("SENSOR_TEST_PYTHON", &python_tools.python)
                .env("SENSOR_GUEST_KERNEL", &guest_kernel);
            run(&mut cmd)?;
            // The whole suite (not a single target picked with arguments) fuzzes too.
            if args.is_empty() {
                fuzz::ensure_cargo_fuzz()?;
                fuzz::run(&root, FUZZ_SECONDS)?;
            }
        }
        Cmd::Fuzz { seconds } => {
            setup::ensure_ebpf_toolchain()?;
            fuzz::ensure_cargo_fuzz()?;
            fuzz::run(&root, seconds)?;
        }
        Cmd::Bench {
            calls,
            rounds,
            no_write,
        } => {
            require_root("bench")?;
            setup::ensure_ebpf_toolchain()?;
            setup::ensure_packages(setup::BENCH_PACKAGES)?;
            setup::ensure_tracefs()?;
            // The bench runs `sensor-dev` (empty hooks, synthetic profiles, in-process benches)
            // from next to the sensor it measures.
            let bin = build(&root, true, Bins::WithDev)?;
            bench::run(&root, &bin, calls, rounds, !no_write)?;
        }
        Cmd::BenchWorker { args } => bench::worker(&args)?,
        Cmd::Image { debug, tag, output } => {
            setup::ensure_ebpf_toolchain()?;
            let bin = build(&root, !debug, Bins::Sensor)?;
            let output = output.unwrap_or_else(|| root.join("target/node-sensor-image.tar"));
            let image = image::build(&bin, &tag, &output)?;
            eprintln!(
                "image {tag} ({}) written to {}: layer {} bytes, libraries {:?}",
                image.manifest_digest,
                image.path.display(),
                image.layer_bytes,
                image.libraries
            );
        }
        Cmd::Lint => {
            layers::check(&root.join("sensor/src"))?;
            setup::ensure_ebpf_toolchain()?;
            run(cargo(&root).args(["fmt", "--all", "--check"]))?;
            // The kernel crate only builds for the BPF target: linted by the nightly run below.
            run(cargo(&root).args([
                "clippy",
                "--workspace",
                "--exclude",
                "sensor-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))?;
            run(cargo(&root)
                .args([
                    "+nightly",
                    "clippy",
                    "-p",
                    "sensor-ebpf",
                    "--target",
                    "bpfel-unknown-none",
                    "-Z",
                    "build-std=core",
                    "--",
                    "-D",
                    "warnings",
                ])
                .current_dir(root.join("sensor-ebpf")))?;
        }
    }
    Ok(())
}

/// Seconds each fuzz target runs in `cargo xtask test`.
const FUZZ_SECONDS: u64 = 20;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// A cargo command with the eBPF toolchain on PATH (bpf-linker lives in ~/.cargo/bin).
fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .env("PATH", setup::path_with_cargo_bin());
    cmd
}

/// Which binaries of the sensor package `build` makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bins {
    /// The production binary only (what `run` and the image need).
    Sensor,
    /// Also `sensor-dev`, the developer tools (what `bench` and the tests need).
    WithDev,
}

/// The name of the developer-tools binary, built next to `sensor`.
pub const DEV_BIN: &str = "sensor-dev";

/// Builds the sensor package's binaries; returns the path of `sensor` (`sensor-dev`, when
/// built, is [`dev_bin`] of it).
fn build(root: &Path, release: bool, bins: Bins) -> Result<PathBuf> {
    let mut cmd = cargo(root);
    cmd.args(["build", "-p", "sensor", "--bin", "sensor"]);
    if bins == Bins::WithDev {
        cmd.args(["--bin", DEV_BIN]);
    }
    if release {
        cmd.arg("--release");
    }
    run(&mut cmd)?;
    let bin = root
        .join("target")
        .join(if release { "release" } else { "debug" })
        .join("sensor");
    let mut expected = vec![bin.clone()];
    if bins == Bins::WithDev {
        expected.push(dev_bin(&bin));
    }
    for path in expected {
        if !path.exists() {
            bail!("build finished but {} is missing", path.display());
        }
    }
    Ok(bin)
}

/// `sensor-dev` next to a `sensor` binary (same directory, same build profile).
pub fn dev_bin(sensor_bin: &Path) -> PathBuf {
    sensor_bin.with_file_name(DEV_BIN)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        bail!("`cargo xtask {what}` loads eBPF programs and runs containers: run it as root");
    }
    Ok(())
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
