//! `sensor-dev`: the developer tools over the sensor library (`sensor::devtools`), kept out of
//! the production `sensor` binary and its image. `cargo xtask bench` runs it from next to the
//! `sensor` binary it measures (`sensor-dev empty-hook`, `synth-profiles`, `bench-drafts`,
//! `bench-stream`); `sensor-dev records` captures the fuzz seed corpora (docs/operations.md).

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = match sensor::devtools::DevCli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return sensor::cli::usage::parse_failure(&e).into(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sensor::devtools::run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
