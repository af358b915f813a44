//! Client subcommands: reach the agent over gRPC (`--server`, with `--tls-*` for an agent on
//! TCP), or work offline from saved profiles (`--profile FILE`, the persisted JSON) with the
//! same generators the agent uses. `profiles accept|relearn` change baselines (drift).
//!
//! Drafts go to stdout, notes to stderr (so `sensor seccomp ... > draft.json` keeps the notes
//! on the terminal). A server error prints its status message and exits 1.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use tonic::{Code, Status};

use crate::ai::{self, PeerClass};
use crate::api::{self, ClientTls, ListenAddr, client::ConnectOptions, convert, proto};
use crate::drafts::{render, seccomp::SeccompMode};
use crate::profile::{
    model::{ApplicationProfile, ProfileKey, Protocol},
    upgrade,
};

#[derive(Subcommand, Debug)]
pub enum ProfilesCommand {
    /// One line per profile.
    List(ListArgs),
    /// One profile in detail (`--json`: the persisted JSON).
    Show(ShowArgs),
    /// Accept an anomaly: fold the behaviour it observed into its workload's baseline.
    Accept(AcceptArgs),
    /// Restart learning for every container of a workload (its baseline starts over).
    Relearn(RelearnArgs),
}

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

#[derive(Args, Debug)]
pub struct AcceptArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// The anomaly's sequence number (`#N` in `sensor watch`, `seq` in its JSON).
    #[arg(value_name = "SEQ", value_parser = clap::value_parser!(u64).range(1..))]
    pub seq: u64,
}

#[derive(Args, Debug)]
pub struct RelearnArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// Namespace of the workload.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: String,
    /// Workload name.
    #[arg(long, short = 'w', value_name = "W")]
    pub workload: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// Only this namespace.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Only this workload.
    #[arg(long, short = 'w', value_name = "W")]
    pub workload: Option<String>,
    /// JSON (an array of summaries) instead of a table.
    #[arg(long)]
    pub json: bool,
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

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub target: ProfileArgs,
    /// The persisted JSON form instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SeccompArgs {
    #[command(flatten)]
    pub target: ProfileArgs,
    /// enforce: unobserved syscalls fail with EPERM; audit: they are logged, not blocked.
    #[arg(long, value_enum, default_value_t = Mode::Enforce)]
    pub mode: Mode,
    /// json: the Localhost profile kubelet reads; spo: a security-profiles-operator
    /// SeccompProfile (YAML; v1, cluster-scoped, for SPO v1.0.0 and later).
    #[arg(long, value_enum, default_value_t = SeccompFormat::Json)]
    pub format: SeccompFormat,
}

#[derive(Args, Debug)]
pub struct NetpolArgs {
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
    /// Workload name; the policy covers all its containers.
    #[arg(
        long,
        short = 'w',
        value_name = "W",
        required_unless_present = "profile"
    )]
    pub workload: Option<String>,
    /// kubernetes: networking.k8s.io/v1 NetworkPolicy; cilium: CiliumNetworkPolicy (egress by
    /// DNS name).
    #[arg(long, value_enum, default_value_t = Flavor::Kubernetes)]
    pub flavor: Flavor,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PolicyFormat::Yaml)]
    pub format: PolicyFormat,
    /// Work offline from saved profiles of the workload's containers (repeat for each
    /// container); no agent needed.
    #[arg(long, value_name = "FILE")]
    pub profile: Vec<PathBuf>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Audit,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompFormat {
    Json,
    Spo,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Kubernetes,
    Cilium,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFormat {
    Yaml,
    Json,
}

impl Mode {
    fn proto(self) -> proto::SeccompMode {
        match self {
            Mode::Enforce => proto::SeccompMode::Enforce,
            Mode::Audit => proto::SeccompMode::Audit,
        }
    }

    fn draft(self) -> SeccompMode {
        match self {
            Mode::Enforce => SeccompMode::Enforce,
            Mode::Audit => SeccompMode::Audit,
        }
    }
}

impl SeccompFormat {
    fn proto(self) -> proto::SeccompFormat {
        match self {
            SeccompFormat::Json => proto::SeccompFormat::OciJson,
            SeccompFormat::Spo => proto::SeccompFormat::SpoYaml,
        }
    }

    fn draft(self) -> render::SeccompFormat {
        match self {
            SeccompFormat::Json => render::SeccompFormat::OciJson,
            SeccompFormat::Spo => render::SeccompFormat::SpoYaml,
        }
    }
}

impl Flavor {
    fn proto(self) -> proto::NetworkPolicyFlavor {
        match self {
            Flavor::Kubernetes => proto::NetworkPolicyFlavor::Kubernetes,
            Flavor::Cilium => proto::NetworkPolicyFlavor::Cilium,
        }
    }

    fn draft(self) -> render::PolicyFlavor {
        match self {
            Flavor::Kubernetes => render::PolicyFlavor::Kubernetes,
            Flavor::Cilium => render::PolicyFlavor::Cilium,
        }
    }
}

impl PolicyFormat {
    fn proto(self) -> proto::PolicyFormat {
        match self {
            PolicyFormat::Yaml => proto::PolicyFormat::Yaml,
            PolicyFormat::Json => proto::PolicyFormat::Json,
        }
    }

    fn draft(self) -> render::PolicyFormat {
        match self {
            PolicyFormat::Yaml => render::PolicyFormat::Yaml,
            PolicyFormat::Json => render::PolicyFormat::Json,
        }
    }
}

// ---- commands ----

pub async fn profiles(cmd: ProfilesCommand) -> Result<()> {
    match cmd {
        ProfilesCommand::List(args) => list(args).await,
        ProfilesCommand::Show(args) => show(args).await,
        ProfilesCommand::Accept(args) => accept(args).await,
        ProfilesCommand::Relearn(args) => relearn(args).await,
    }
}

async fn accept(args: AcceptArgs) -> Result<()> {
    let addr = &args.server.server;
    let mut client = args.server.connect().await?;
    let r = client
        .accept_anomaly(proto::AcceptAnomalyRequest { seq: args.seq })
        .await
        .map_err(|s| status_error(addr, s))?
        .into_inner();
    let p = r.profile.unwrap_or_default();
    let key = format!("{}/{}/{}", p.namespace, p.workload, p.container);
    if r.changed {
        out(&format!(
            "accepted #{} into the baseline of {key}: {}\n",
            args.seq, r.description
        ))
    } else {
        out(&format!(
            "#{} was already in the baseline of {key}: {}\n",
            args.seq, r.description
        ))
    }
}

async fn relearn(args: RelearnArgs) -> Result<()> {
    let addr = &args.server.server;
    let mut client = args.server.connect().await?;
    let r = client
        .relearn(proto::RelearnRequest {
            namespace: args.namespace.clone(),
            workload: args.workload.clone(),
        })
        .await
        .map_err(|s| status_error(addr, s))?
        .into_inner();
    let keys: Vec<String> = r
        .profiles
        .iter()
        .map(|p| format!("{}/{}/{}", p.namespace, p.workload, p.container))
        .collect();
    out(&format!(
        "learning restarted for {}: {}\n",
        plural(keys.len() as u64, "profile"),
        keys.join(", ")
    ))
}

async fn list(args: ListArgs) -> Result<()> {
    let addr = &args.server.server;
    let mut client = args.server.connect().await?;
    let resp = client
        .list_profiles(proto::ListProfilesRequest {
            namespace: args.namespace.unwrap_or_default(),
            workload: args.workload.unwrap_or_default(),
        })
        .await
        .map_err(|s| status_error(addr, s))?
        .into_inner();
    if args.json {
        let rows: Vec<serde_json::Value> = resp.profiles.iter().map(summary_json).collect();
        out(&format!("{}\n", serde_json::to_string_pretty(&rows)?))
    } else {
        out(&summary_table(&resp.profiles))
    }
}

async fn show(args: ShowArgs) -> Result<()> {
    let profile = match &args.target.profile {
        Some(path) => {
            let p = load_profile(path)?;
            check_key(path, &p, &args.target)?;
            convert::profile(&p)
        }
        None => {
            let addr = &args.target.server.server;
            let mut client = args.target.server.connect().await?;
            client
                .get_profile(profile_ref(&args.target))
                .await
                .map_err(|s| status_error(addr, s))?
                .into_inner()
        }
    };
    if args.json {
        out(&profile.json)
    } else {
        out(&profile_text(&profile))
    }
}

pub async fn seccomp(args: SeccompArgs) -> Result<()> {
    let (content, notes, localhost_profile) = match &args.target.profile {
        Some(path) => {
            let p = load_profile(path)?;
            check_key(path, &p, &args.target)?;
            // The messages the agent would answer with.
            let d = render::seccomp(&p, args.mode.draft(), args.format.draft())
                .map_err(|e| anyhow!("{}", api::lookup::RequestError::from(e)))?;
            (d.content, d.notes, d.localhost_profile)
        }
        None => {
            let addr = &args.target.server.server;
            let mut client = args.target.server.connect().await?;
            let r = client
                .get_seccomp_profile(proto::SeccompRequest {
                    r#ref: Some(profile_ref(&args.target)),
                    mode: args.mode.proto().into(),
                    format: args.format.proto().into(),
                })
                .await
                .map_err(|s| status_error(addr, s))?
                .into_inner();
            (r.content, r.notes, r.localhost_profile)
        }
    };
    out(&content)?;
    for note in notes {
        eprintln!("note: {note}");
    }
    if args.format == SeccompFormat::Json {
        eprintln!(
            "note: install under kubelet's seccomp dir (/var/lib/kubelet/seccomp/{localhost_profile}); \
             pods reference it as localhostProfile: {localhost_profile}"
        );
    }
    Ok(())
}

pub async fn netpol(args: NetpolArgs) -> Result<()> {
    let (content, notes) = if args.profile.is_empty() {
        let addr = &args.server.server;
        let mut client = args.server.connect().await?;
        let r = client
            .get_network_policy(proto::NetworkPolicyRequest {
                namespace: args.namespace.clone().unwrap_or_default(),
                workload: args.workload.clone().unwrap_or_default(),
                flavor: args.flavor.proto().into(),
                format: args.format.proto().into(),
            })
            .await
            .map_err(|s| status_error(addr, s))?
            .into_inner();
        (r.content, r.notes)
    } else {
        let profiles = args
            .profile
            .iter()
            .map(|path| {
                let p = load_profile(path)?;
                let (ns, w) = (&p.key.namespace, &p.key.workload);
                if args.namespace.as_ref().is_some_and(|n| n != ns)
                    || args.workload.as_ref().is_some_and(|x| x != w)
                {
                    bail!(
                        "{}: is a profile of workload {ns}/{w}, not {}/{}",
                        path.display(),
                        args.namespace.as_deref().unwrap_or(ns),
                        args.workload.as_deref().unwrap_or(w)
                    );
                }
                Ok((path, p))
            })
            .collect::<Result<Vec<_>>>()?;
        let (first_path, first) = &profiles[0];
        if let Some((path, other)) = profiles.iter().find(|(_, p)| {
            (&p.key.namespace, &p.key.workload) != (&first.key.namespace, &first.key.workload)
        }) {
            bail!(
                "--profile files of different workloads: {} is {}/{}, {} is {}/{} (a policy is per workload)",
                first_path.display(),
                first.key.namespace,
                first.key.workload,
                path.display(),
                other.key.namespace,
                other.key.workload
            );
        }
        let refs: Vec<&ApplicationProfile> = profiles.iter().map(|(_, p)| p).collect();
        let d = render::network_policy(
            &refs,
            args.flavor.draft(),
            args.format.draft(),
            ai::Catalogue::embedded(),
        )
        .map_err(|e| anyhow!("{}", api::lookup::RequestError::from(e)))?;
        (d.content, d.notes)
    };
    out(&content)?;
    for note in notes {
        eprintln!("note: {note}");
    }
    Ok(())
}

// ---- helpers ----

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

fn profile_ref(t: &ProfileArgs) -> proto::ProfileRef {
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
fn check_key(path: &Path, p: &ApplicationProfile, t: &ProfileArgs) -> Result<()> {
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

fn summary_json(s: &proto::ProfileSummary) -> serde_json::Value {
    let o = s.overflow.unwrap_or_default();
    serde_json::json!({
        "namespace": s.namespace,
        "workload": s.workload,
        "container": s.container,
        "workloadKind": convert::workload_kind_name(s.workload_kind),
        "status": convert::status_name(s.status),
        "completeness": convert::completeness_name(s.completeness),
        "learningStarted": convert::rfc3339(s.learning_started.as_ref()),
        "readyAt": s.ready_at.as_ref().map(|t| convert::rfc3339(Some(t))),
        "updated": convert::rfc3339(s.updated.as_ref()),
        "syscalls": s.syscalls,
        "execs": s.execs,
        "egress": s.egress,
        "ingress": s.ingress,
        "files": s.files,
        "dnsNames": s.dns_names,
        "overflow": {
            "execs": o.execs, "egress": o.egress, "ingress": o.ingress,
            "files": o.files, "dns": o.dns,
        },
        "graduation": s.graduation.as_ref().map(|g| serde_json::json!({
            "evaluated": g.evaluated,
            "readyToEnforce": g.ready_to_enforce,
            "reasons": g.reasons,
            "network": g.network.as_ref().map(|n| serde_json::json!({
                "audited": n.audited,
                "readyToEnforce": n.ready_to_enforce,
                "summary": n.summary,
            })),
        })),
    })
}

/// NAMESPACE WORKLOAD CONTAINER STATUS COMPLETENESS SYSCALLS EXECS EGRESS INGRESS FILES; a
/// count whose list overflowed gets a `+`.
pub fn summary_table(rows: &[proto::ProfileSummary]) -> String {
    let header = [
        "NAMESPACE",
        "WORKLOAD",
        "CONTAINER",
        "STATUS",
        "COMPLETENESS",
        "SYSCALLS",
        "EXECS",
        "EGRESS",
        "INGRESS",
        "FILES",
    ];
    let capped = |n: u32, hit: bool| if hit { format!("{n}+") } else { n.to_string() };
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for s in rows {
        let o = s.overflow.unwrap_or_default();
        table.push(vec![
            s.namespace.clone(),
            s.workload.clone(),
            s.container.clone(),
            convert::status_name(s.status).to_string(),
            convert::completeness_name(s.completeness).to_string(),
            s.syscalls.to_string(),
            capped(s.execs, o.execs),
            capped(s.egress, o.egress),
            capped(s.ingress, o.ingress),
            capped(s.files, o.files),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The readable form of `sensor profiles show`.
/// The class of an egress flow against the embedded AI catalogue.
fn egress_class(f: &proto::Flow) -> PeerClass {
    let protocol = match proto::Protocol::try_from(f.protocol) {
        Ok(proto::Protocol::Udp) => Protocol::Udp,
        _ => Protocol::Tcp,
    };
    ai::classify::classify_peer(
        &f.dns_names,
        u16::try_from(f.port).unwrap_or_default(),
        protocol,
        f.peer.as_ref().is_some_and(|p| !p.pod.is_empty()),
        ai::Catalogue::embedded(),
    )
}

pub fn profile_text(p: &proto::Profile) -> String {
    let mut o = String::new();
    let ts = |t: &Option<prost_types::Timestamp>| convert::rfc3339(t.as_ref());
    let _ = writeln!(
        o,
        "{}/{}/{} ({})",
        p.namespace,
        p.workload,
        p.container,
        convert::workload_kind_name(p.workload_kind)
    );
    let period = p
        .learning_period
        .and_then(|d| std::time::Duration::try_from(d).ok())
        .map(|d| humantime::format_duration(d).to_string())
        .unwrap_or_default();
    let status = convert::status_name(p.status);
    let _ = match &p.ready_at {
        Some(_) => writeln!(
            o,
            "status:        {status} since {} (learning started {}, period {period})",
            ts(&p.ready_at),
            ts(&p.learning_started)
        ),
        None => writeln!(
            o,
            "status:        {status} (started {}, period {period})",
            ts(&p.learning_started)
        ),
    };
    let completeness = convert::completeness_name(p.completeness);
    if p.partial_reasons.is_empty() {
        let _ = writeln!(o, "completeness:  {completeness}");
    } else {
        let _ = writeln!(
            o,
            "completeness:  {completeness}: {}",
            p.partial_reasons.join("; ")
        );
    }
    if let Some(g) = &p.graduation {
        let _ = writeln!(o, "enforce:       {}", graduation_text(g));
        // The network draft's own graduation (live NetworkPolicy audit).
        if let Some(n) = &g.network {
            let _ = writeln!(o, "network:       {}", n.summary);
        }
    }
    let _ = writeln!(o, "updated:       {}", ts(&p.updated));
    let _ = writeln!(o, "pods:          {}", list_or_none(&p.pods));
    let _ = writeln!(o, "nodes:         {}", list_or_none(&p.nodes));
    if !p.labels.is_empty() {
        let mut labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let _ = writeln!(o, "labels:        {}", labels.join(", "));
    }
    let overflow = convert::overflow_names(p.overflow.as_ref());
    if overflow.is_empty() {
        let _ = writeln!(o, "overflow:      none");
    } else {
        let _ = writeln!(
            o,
            "overflow:      {} (entries beyond the caps were not recorded)",
            overflow.join(", ")
        );
    }

    let sys = p.syscalls.clone().unwrap_or_default();
    let _ = writeln!(
        o,
        "\nsyscalls ({} native, {} compat):",
        sys.native.len(),
        sys.compat.len()
    );
    syscall_lists(&mut o, &sys.native, &sys.compat);
    if let Some(setup) = sys
        .runtime_setup
        .filter(|s| !s.native.is_empty() || !s.compat.is_empty())
    {
        let how = if setup.inferred {
            "inferred by name when the profile was upgraded"
        } else {
            "observed"
        };
        let _ = writeln!(
            o,
            "runtime setup before the first exec ({} native, {} compat; {how}; not in the drafts):",
            setup.native.len(),
            setup.compat.len()
        );
        syscall_lists(&mut o, &setup.native, &setup.compat);
    }

    let _ = writeln!(o, "\nexecs ({}):", p.execs.len());
    for e in &p.execs {
        let mut cmd = e.path.clone();
        for a in &e.args {
            cmd.push(' ');
            cmd.push_str(a);
        }
        let _ = writeln!(o, "  {cmd}  ({})", plural(e.count, "run"));
    }

    let _ = writeln!(o, "\negress ({}):", p.egress.len());
    let classes: Vec<PeerClass> = p.egress.iter().map(egress_class).collect();
    if !p.egress.is_empty() {
        let _ = writeln!(o, "  calls {}", ai::classify::summary(&classes));
    }
    for (f, class) in p.egress.iter().zip(&classes) {
        let _ = writeln!(
            o,
            "  {}:{}/{}{}{}  {}  [{}]",
            host(&f.ip),
            f.port,
            convert::protocol_name(f.protocol),
            names(&f.dns_names),
            peer(f.peer.as_ref()),
            flow_counts(f),
            match &class.name {
                Some(name) => format!("{}: {name}", class.class.label()),
                None => class.class.label().to_string(),
            }
        );
    }
    let _ = writeln!(o, "\ningress ({}):", p.ingress.len());
    for f in &p.ingress {
        let _ = writeln!(
            o,
            "  from {} to port {}/{}{}  {}",
            f.ip,
            f.port,
            convert::protocol_name(f.protocol),
            peer(f.peer.as_ref()),
            flow_counts(f)
        );
    }

    let _ = writeln!(o, "\ndns ({}):", p.dns.len());
    for d in &p.dns {
        let _ = writeln!(
            o,
            "  {} -> {}  ({})",
            d.name,
            list_or_none(&d.addresses),
            plural(d.count, "answer")
        );
    }
    if !p.resolvers.is_empty() {
        let resolvers: Vec<String> = p
            .resolvers
            .iter()
            .map(|r| {
                if r.cluster_dns {
                    format!("{} (cluster DNS)", r.ip)
                } else {
                    r.ip.clone()
                }
            })
            .collect();
        let _ = writeln!(o, "  resolvers: {}", resolvers.join(", "));
    }

    let _ = writeln!(o, "\nfiles ({}):", p.files.len());
    for f in &p.files {
        let _ = writeln!(
            o,
            "  {}  (pattern {}, {})",
            f.path,
            f.pattern,
            plural(f.count, "open")
        );
    }
    o
}

/// `ready`, `not ready: <reasons>`, or `unknown (...)`.
pub fn graduation_text(g: &proto::Graduation) -> String {
    if !g.evaluated {
        return "unknown (the agent does not evaluate graduation)".to_string();
    }
    if g.ready_to_enforce {
        return "ready (drafts can be enforced)".to_string();
    }
    if g.reasons.is_empty() {
        "not ready".to_string()
    } else {
        format!("not ready: {}", g.reasons.join("; "))
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// IPv6 addresses in brackets before `:port`.
fn host(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

fn names(dns_names: &[String]) -> String {
    if dns_names.is_empty() {
        String::new()
    } else {
        format!("  {}", dns_names.join(", "))
    }
}

fn peer(p: Option<&proto::Peer>) -> String {
    let Some(p) = p else {
        return String::new();
    };
    let mut s = format!("  peer {}", p.namespace);
    if !p.workload.is_empty() {
        s.push('/');
        s.push_str(&p.workload);
    }
    if !p.pod.is_empty() {
        let _ = write!(s, " (pod {})", p.pod);
    }
    s
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn flow_counts(f: &proto::Flow) -> String {
    format!(
        "{}, {} sent, {} received",
        plural(f.connections, "conn"),
        bytes(f.bytes_sent),
        bytes(f.bytes_recv)
    )
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Native names, then compat ones under their own heading when there are any.
fn syscall_lists(o: &mut String, native: &[String], compat: &[String]) {
    wrap_words(o, native, "  ");
    if !compat.is_empty() {
        let _ = writeln!(o, "  compat:");
        wrap_words(o, compat, "    ");
    }
}

/// Words on lines of at most ~100 columns.
fn wrap_words(out: &mut String, words: &[String], indent: &str) {
    if words.is_empty() {
        let _ = writeln!(out, "{indent}-");
        return;
    }
    let mut line = String::from(indent);
    for w in words {
        if line.len() > indent.len() && line.len() + 1 + w.len() > 100 {
            let _ = writeln!(out, "{line}");
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(w);
    }
    let _ = writeln!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::api::testutil::sample_profile;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sensor").chain(args.iter().copied()))
    }

    #[test]
    fn flags() {
        let cli = parse(&[
            "seccomp", "-n", "ns", "-w", "w", "-c", "c", "--mode", "audit",
        ])
        .unwrap();
        let Command::Seccomp(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.mode, Mode::Audit);
        assert_eq!(a.format, SeccompFormat::Json);
        assert_eq!(
            a.target.server.server,
            ListenAddr::Unix("/run/sensor/sensor.sock".into())
        );
        // Offline: the names are not needed.
        assert!(parse(&["seccomp", "--profile", "p.json"]).is_ok());
        assert!(parse(&["netpol", "--profile", "a.json", "--profile", "b.json"]).is_ok());
        assert!(parse(&["profiles", "show", "--profile", "p.json", "--json"]).is_ok());
    }

    #[test]
    fn drift_and_tls_flags() {
        let cli = parse(&["profiles", "accept", "17"]).unwrap();
        let Command::Profiles(ProfilesCommand::Accept(a)) = cli.command else {
            panic!()
        };
        assert_eq!(a.seq, 17);
        let cli = parse(&["profiles", "relearn", "-n", "shop", "-w", "checkout"]).unwrap();
        let Command::Profiles(ProfilesCommand::Relearn(r)) = cli.command else {
            panic!()
        };
        assert_eq!(
            (r.namespace.as_str(), r.workload.as_str()),
            ("shop", "checkout")
        );
        let cli = parse(&[
            "profiles",
            "list",
            "--server",
            "tcp://127.0.0.1:50051",
            "--tls-ca",
            "ca.pem",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-server-name",
            "agent.example",
        ])
        .unwrap();
        let Command::Profiles(ProfilesCommand::List(l)) = cli.command else {
            panic!()
        };
        let tls = l.server.options(false).tls.unwrap();
        assert_eq!(tls.ca, PathBuf::from("ca.pem"));
        assert_eq!(tls.key, Some(PathBuf::from("k.pem")));
        assert_eq!(tls.server_name.as_deref(), Some("agent.example"));
        for args in [
            &["profiles", "accept"][..],
            &["profiles", "accept", "0"],
            &["profiles", "accept", "x"],
            &["profiles", "relearn", "-n", "shop"],
            &[
                "profiles",
                "list",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
            ],
            &[
                "profiles",
                "list",
                "--tls-ca",
                "ca.pem",
                "--tls-cert",
                "c.pem",
            ],
            &["profiles", "list", "--tls-key", "k.pem"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
    }

    #[test]
    fn graduation_for_people() {
        let g = |evaluated, ready, reasons: &[&str]| proto::Graduation {
            evaluated,
            ready_to_enforce: ready,
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            network: None,
        };
        assert_eq!(
            graduation_text(&g(true, true, &[])),
            "ready (drafts can be enforced)"
        );
        assert_eq!(
            graduation_text(&g(true, false, &["still learning", "partial profile"])),
            "not ready: still learning; partial profile"
        );
        assert!(graduation_text(&g(false, false, &[])).starts_with("unknown"));
        let mut p = convert::profile(&sample_profile(ProfileKey {
            namespace: "shop".into(),
            workload: "checkout".into(),
            container: "app".into(),
        }));
        assert!(
            !profile_text(&p).contains("enforce:"),
            "offline: no judgement"
        );
        p.graduation = Some(g(true, false, &["still learning"]));
        assert!(profile_text(&p).contains("\nenforce:       not ready: still learning\n"));
        p.graduation.as_mut().unwrap().network = Some(proto::NetworkGraduation {
            audited: true,
            ready_to_enforce: false,
            summary: "not ready: would-deny 3m ago".into(),
        });
        assert!(profile_text(&p).contains(
            "\nenforce:       not ready: still learning\nnetwork:       not ready: would-deny 3m ago\n"
        ));
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            &["seccomp", "-n", "ns", "-w", "w"][..],
            &[
                "seccomp", "-n", "ns", "-w", "w", "-c", "c", "--mode", "strict",
            ],
            &["netpol", "-n", "ns"],
            &["netpol", "-n", "ns", "-w", "w", "--flavor", "calico"],
            &["profiles", "list", "--server", "http://x:1"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
        let e = parse(&["profiles", "list", "--server", "127.0.0.1"]).unwrap_err();
        assert!(e.to_string().contains("missing port"), "{e}");
    }

    #[test]
    fn table_and_text() {
        let key = |c: &str| ProfileKey {
            namespace: "shop".into(),
            workload: "checkout".into(),
            container: c.into(),
        };
        let mut p = sample_profile(key("app"));
        p.overflow.egress = true;
        let table = summary_table(&[convert::summary(&p)]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("NAMESPACE  WORKLOAD  CONTAINER  STATUS"),
            "{table}"
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "shop", "checkout", "app", "ready", "full", "6", "1", "1+", "0", "0"
            ]
        );
        let text = profile_text(&convert::profile(&p));
        assert!(
            text.starts_with("shop/checkout/app (deployment)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "203.0.113.7:443/tcp  api.stripe.com  12 conns, 4.0 KiB sent, 16.0 KiB received"
            ),
            "{text}"
        );
        assert!(text.contains("overflow:      egress"), "{text}");
        assert!(
            text.contains(
                "syscalls (6 native, 0 compat):\n  read write openat close connect exit_group\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn bad_profile_files_give_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, "{\n  \"version\": 1,\n  \"namespace\": ,\n}\n").unwrap();
        let e = load_profile(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:3:", path.display())) && e.contains("not a valid profile"),
            "{e}"
        );
        assert!(!e.contains(" at line "), "{e}");
        let missing = dir.path().join("missing.json");
        let e = load_profile(&missing).unwrap_err().to_string();
        assert!(e.starts_with(&missing.display().to_string()), "{e}");
    }
}
