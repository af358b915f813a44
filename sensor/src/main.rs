//! `sensor`: thin binary over the library.

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = match sensor::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return sensor::cli::usage::parse_failure(&e).into(),
    };
    if !matches!(cli.command, sensor::cli::Command::Run(_)) {
        // Printing commands behave like Unix tools in a pipe (`sensor trace | head`): a closed
        // stdout ends them quietly instead of a panic. The agent keeps ignoring SIGPIPE.
        // SAFETY: setting a signal disposition before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            // kube-runtime's watcher warns on every retry of a forbidden request; the agent
            // logs the Kubernetes API's state changes itself, once.
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,kube_runtime::watcher=error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return sensor::cli::exit::Exit::Failure.into();
        }
    };
    // The exit code is the command's (sensor::cli::exit): 0, 1 (failure or findings), 2 (usage).
    runtime.block_on(sensor::cli::run(cli)).into()
}
