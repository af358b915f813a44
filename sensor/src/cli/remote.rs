//! What the client commands share: reaching the daemon over gRPC (`--server`, with `--tls-*` for
//! a daemon on TCP) and its errors, the profile they are about (namespace/workload/container, or
//! a saved profile with `--profile FILE`, the persisted JSON), and stdout.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use clap::Args;
use tonic::{Code, Status};

use crate::api::{self, ClientTls, ListenAddr, client::ConnectOptions, proto};
use crate::profile::{
    model::{ApplicationProfile, ProfileKey},
    upgrade,
};

#[derive(Args, Debug, Clone)]
pub struct ServerArg {
    /// The agent's gRPC address: `unix:/path` or `host:port` / `tcp://host:port`.
    #[arg(long, value_name = "ADDR", default_value = api::DEFAULT_ADDR, env = "SENSOR_SERVER")]
    pub server: ListenAddr,
    /// TCP with TLS: the CA certificate (PEM) that signed the agent's certificate.
    #[arg(long, value_name = "FILE", env = "SENSOR_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// TCP with TLS: this client's certificate (PEM), signed by the agent's client CA.
    #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_key"], env = "SENSOR_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TCP with TLS: this client's private key (PEM).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "SENSOR_TLS_KEY"
    )]
    pub tls_key: Option<PathBuf>,
    /// TCP with TLS: the name the agent's certificate must carry (default: the address's IP).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub tls_server_name: Option<String>,
}

impl ServerArg {
    pub fn options(&self, streaming: bool) -> ConnectOptions {
        ConnectOptions {
            tls: self.tls_ca.as_ref().map(|ca| ClientTls {
                ca: ca.clone(),
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
                server_name: self.tls_server_name.clone(),
            }),
            streaming,
        }
    }

    /// A client for one-shot calls.
    pub async fn connect(
        &self,
    ) -> Result<proto::sensor_client::SensorClient<tonic::transport::Channel>> {
        ignore_sigpipe();
        Ok(api::client::connect_with(&self.server, &self.options(false)).await?)
    }
}

/// Which profile: from the agent by name, or a saved file.
#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// Namespace of the workload.
    #[arg(
        long,
        short = 'n',
        value_name = "NS",
        required_unless_present = "profile"
    )]
    pub namespace: Option<String>,
    /// Workload name (Deployment, StatefulSet, DaemonSet, Job, CronJob or bare pod).
    #[arg(
        long,
        short = 'w',
        value_name = "W",
        required_unless_present = "profile"
    )]
    pub workload: Option<String>,
    /// Container name.
    #[arg(
        long,
        short = 'c',
        value_name = "C",
        required_unless_present = "profile"
    )]
    pub container: Option<String>,
    /// Work offline from a saved profile (`<state>/profiles/<ns>/<workload>/<container>.json`);
    /// no agent needed.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

/// Before talking to the agent: a socket it closes (a restart, a refused TLS handshake) must
/// give an error to report, not a SIGPIPE that ends the process without a word (`main` restores
/// the default SIGPIPE for printing commands). Output then goes through [`out`], which ends
/// quietly on a closed stdout as SIGPIPE would.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: only changes the process's SIGPIPE disposition (no handler runs).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Writes to stdout; a closed stdout (`| head`) is not an error.
pub(crate) fn out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow!("writing to stdout: {e}"))
        }
        _ => Ok(()),
    }
}

pub(super) fn profile_ref(t: &ProfileArgs) -> proto::ProfileRef {
    proto::ProfileRef {
        namespace: t.namespace.clone().unwrap_or_default(),
        workload: t.workload.clone().unwrap_or_default(),
        container: t.container.clone().unwrap_or_default(),
    }
}

/// A server error as one line: the status message, with a hint where the code says more.
pub(crate) fn status_error(addr: &ListenAddr, s: Status) -> anyhow::Error {
    // A failed connection (not an answer of the agent) carries its cause as the source.
    if let Some(source) = std::error::Error::source(&s) {
        let mut cause = source.to_string();
        let mut next = source.source();
        while let Some(e) = next {
            cause = e.to_string();
            next = e.source();
        }
        let hint = match addr {
            ListenAddr::Tcp(_) => {
                " (an agent on TCP requires mutual TLS: --tls-ca with the CA of its certificate, \
                 --tls-cert and --tls-key with a client certificate signed by its client CA)"
            }
            ListenAddr::Unix(_) => "",
        };
        return anyhow!("the connection to the agent at {addr} failed: {cause}{hint}");
    }
    match s.code() {
        Code::Unavailable => anyhow!(
            "cannot reach the agent at {addr}: is `sensor run` running? ({})",
            s.message()
        ),
        Code::DeadlineExceeded => anyhow!("the agent at {addr} did not answer in time"),
        Code::Unimplemented => anyhow!(
            "the agent at {addr} does not serve this call (an older version?): {}",
            s.message()
        ),
        _ => anyhow!("{}", s.message()),
    }
}

/// A saved profile; a file that does not parse gives one error with its line and column.
pub fn load_profile(path: &Path) -> Result<ApplicationProfile> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    // Syntax first, for the line and column; then the version (an older one is upgraded).
    serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|e| {
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let msg = full.strip_suffix(&suffix).unwrap_or(&full);
        anyhow!(
            "{}:{}:{}: not a valid profile: {msg}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    let (profile, _) = upgrade::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(profile)
}

/// With `--profile`, names given as flags must be those of the file.
pub(super) fn check_key(path: &Path, p: &ApplicationProfile, t: &ProfileArgs) -> Result<()> {
    let want = ProfileKey {
        namespace: t
            .namespace
            .clone()
            .unwrap_or_else(|| p.key.namespace.clone()),
        workload: t.workload.clone().unwrap_or_else(|| p.key.workload.clone()),
        container: t
            .container
            .clone()
            .unwrap_or_else(|| p.key.container.clone()),
    };
    if want != p.key {
        bail!(
            "{}: is the profile of {}, not {want}",
            path.display(),
            p.key
        );
    }
    Ok(())
}
