//! `sensor run` flags. Defaults and the config file are merged in `agent::config`.

use std::path::PathBuf;

use clap::Args;

use super::exit::{CommandError, CommandResult};
use crate::audit::PolicyFileError;
use crate::daemon::{self, config};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Config file (YAML); flags override its values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where profiles, drafts and the anomaly log live [default: /var/lib/sensor].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// gRPC listen address: `unix:/path` (mode 0600) [default: unix:/run/sensor/sensor.sock].
    #[arg(long, value_name = "ADDR")]
    pub grpc_listen: Option<String>,
    /// Serve gRPC over plain TCP (no TLS). Only for tests on a trusted host.
    #[arg(long)]
    pub grpc_insecure: bool,
    /// How long a new profile learns before it is ready, e.g. 24h, 7d, 30s [default: 24h].
    #[arg(long, value_name = "DURATION")]
    pub learning_period: Option<String>,
    /// How often changed profiles are written [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub flush_interval: Option<String>,
    /// Rate-statistics window of flows [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub rate_window: Option<String>,
    /// Node name in profiles and messages (default: the host name).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// kubelet's pod log directory [default: /var/log/pods].
    #[arg(long, value_name = "DIR")]
    pub pod_logs_dir: Option<PathBuf>,
    /// kubelet's container log symlinks [default: /var/log/containers].
    #[arg(long, value_name = "DIR")]
    pub container_logs_dir: Option<PathBuf>,
    /// The host's /proc [default: /proc].
    #[arg(long, value_name = "DIR")]
    pub proc_root: Option<PathBuf>,
    /// Kernel BTF [default: /sys/kernel/btf/vmlinux].
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
    /// Report opens of this path pattern too; repeatable.
    #[arg(long = "sensitive-path", value_name = "PATTERN")]
    pub sensitive_paths: Vec<String>,
    /// Do not watch the default sensitive paths.
    #[arg(long)]
    pub no_default_sensitive_paths: bool,
    /// Install ready seccomp drafts under this kubelet seccomp directory (e.g.
    /// /var/lib/kubelet/seccomp), so pods can reference them as `localhostProfile`.
    #[arg(long, value_name = "DIR")]
    pub install_seccomp_dir: Option<PathBuf>,
    /// A workload is ready to enforce when no unexpected syscall or egress anomaly fired within
    /// this window [default: 24h].
    #[arg(long, value_name = "DURATION")]
    pub graduation_window: Option<String>,
    /// Audit the NetworkPolicies of this directory live: each new flow they would deny is a
    /// `would-deny` anomaly; reloaded when the directory changes.
    #[arg(long, value_name = "DIR")]
    pub audit_netpol: Option<PathBuf>,
    /// Repeats of the same anomaly are reported once per window, with a count [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub anomaly_window: Option<String>,
    /// TLS for a TCP gRPC listener: server certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub grpc_tls_cert: Option<PathBuf>,
    /// TLS: the server certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub grpc_tls_key: Option<PathBuf>,
    /// TLS: CA that client certificates must be signed by (mutual TLS).
    #[arg(long, value_name = "FILE")]
    pub grpc_tls_client_ca: Option<PathBuf>,
    /// Pod labels, owners and addresses from the Kubernetes API: `auto` (in-cluster when
    /// KUBERNETES_SERVICE_HOST and the service-account token exist) or `off` [default: auto].
    #[arg(long, value_name = "auto|off")]
    pub kubernetes_api: Option<String>,
    /// Use this API server instead of the in-cluster one, anonymously (e.g. `kubectl proxy`).
    #[arg(long, value_name = "URL")]
    pub kubernetes_api_url: Option<String>,
    /// Which pods name the peers of flows: `cluster` (a watch of every pod) or `node`
    /// [default: cluster].
    #[arg(long, value_name = "cluster|node")]
    pub kubernetes_peers: Option<String>,
    /// Cluster-wide profiles through the Kubernetes API (ProfilePiece and WorkloadProfile
    /// objects, `sensor crds`): `auto` (whenever the API is used) or `off` [default: auto].
    #[arg(long, value_name = "auto|off")]
    pub cluster_profiles: Option<String>,
    /// The shortest time between two writes of one workload's piece with new behaviour; a
    /// piece whose counters alone changed is written at most every ten of these [default: 30s].
    #[arg(long, value_name = "DURATION")]
    pub cluster_piece_interval: Option<String>,
    /// The sensor's own namespace, where the merger's Lease lives [default: POD_NAMESPACE,
    /// else the service account's namespace, else node-sensor].
    #[arg(long, value_name = "NAMESPACE")]
    pub cluster_namespace: Option<String>,
    /// The merger's Lease duration: the longest a failover takes [default: 15s].
    #[arg(long, value_name = "DURATION")]
    pub cluster_lease_duration: Option<String>,
    /// Serve Prometheus metrics on /metrics, liveness on /healthz and readiness on /readyz at
    /// this address, e.g. 0.0.0.0:9090 or 127.0.0.1:0 (a free port, logged) [default: off].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

/// Settings from defaults, the config file and these flags.
pub fn settings(args: RunArgs) -> Result<config::Settings, config::ConfigError> {
    let (file, origin) = match &args.config {
        Some(path) => (
            config::read_file(path)?,
            format!("config file {}", path.display()),
        ),
        None => (config::ConfigFile::default(), "defaults".to_string()),
    };
    let flags = config::Overrides {
        state_dir: args.state_dir,
        grpc_listen: args.grpc_listen,
        learning_period: args.learning_period,
        flush_interval: args.flush_interval,
        rate_window: args.rate_window,
        node_name: args.node_name,
        pod_logs_dir: args.pod_logs_dir,
        container_logs_dir: args.container_logs_dir,
        proc_root: args.proc_root,
        btf: args.btf,
        sensitive_paths: args.sensitive_paths,
        no_default_sensitive_paths: args.no_default_sensitive_paths,
        install_seccomp_dir: args.install_seccomp_dir,
        insecure_tcp: args.grpc_insecure,
        graduation_window: args.graduation_window,
        audit_netpol: args.audit_netpol,
        anomaly_window: args.anomaly_window,
        grpc_tls_cert: args.grpc_tls_cert,
        grpc_tls_key: args.grpc_tls_key,
        grpc_tls_client_ca: args.grpc_tls_client_ca,
        kubernetes_api: args.kubernetes_api,
        kubernetes_api_url: args.kubernetes_api_url,
        kubernetes_peers: args.kubernetes_peers,
        cluster_profiles: args.cluster_profiles,
        cluster_piece_interval: args.cluster_piece_interval,
        cluster_namespace: args.cluster_namespace,
        cluster_lease_duration: args.cluster_lease_duration,
        metrics_listen: args.metrics_listen,
    };
    let settings = config::settings(file, &origin, flags, crate::cli::trace::host_name())?;
    daemon::preflight::check(&settings)?;
    if let Some(dir) = &settings.audit_netpol {
        daemon::preflight::check_audit_dir(dir)?;
    }
    Ok(settings)
}

/// A bad setting (flag, config file, `--audit-netpol` directory) is a usage error, exit code 2.
pub async fn run(args: RunArgs) -> CommandResult {
    let settings = settings(args).map_err(CommandError::usage)?;
    daemon::run(settings).await.map_err(|e| {
        // The `--audit-netpol` directory is checked above, then loaded for good when the daemon
        // starts its audit: a policy file broken in between is still the user's input.
        if e.chain().any(|c| c.is::<PolicyFileError>()) {
            CommandError::usage(e)
        } else {
            e.into()
        }
    })
}
