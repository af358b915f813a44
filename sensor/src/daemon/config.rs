//! The agent's settings: defaults, then the config file (`--config`, YAML), then flags. Every
//! value is validated here; a bad one is one precise error naming the file, the key and why.

pub use super::config_error::{ConfigError, flag_of};
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{
    api::ListenAddr,
    attribution::{kube::KubeApiSettings, kube::settings as kube_settings, kubelet::KubeletDirs},
    capture::patterns::{SensitivePattern, default_patterns},
};

/// The config file. Every key is optional; unknown keys are errors (a typo must not be ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigFile {
    pub state_dir: Option<PathBuf>,
    pub grpc_listen: Option<String>,
    pub learning_period: Option<String>,
    pub flush_interval: Option<String>,
    pub rate_window: Option<String>,
    pub node_name: Option<String>,
    pub pod_logs_dir: Option<PathBuf>,
    pub container_logs_dir: Option<PathBuf>,
    pub proc_root: Option<PathBuf>,
    pub btf: Option<PathBuf>,
    pub sensitive_paths: Option<Vec<String>>,
    pub default_sensitive_paths: Option<bool>,
    pub ring_buffer_bytes: Option<u32>,
    pub install_seccomp_dir: Option<PathBuf>,
    pub graduation_window: Option<String>,
    pub audit_netpol: Option<PathBuf>,
    pub anomaly_window: Option<String>,
    pub anomaly_log_max_bytes: Option<u64>,
    pub anomaly_log_max_age: Option<String>,
    pub grpc_tls_cert: Option<PathBuf>,
    pub grpc_tls_key: Option<PathBuf>,
    pub grpc_tls_client_ca: Option<PathBuf>,
    pub kubernetes_api: Option<String>,
    pub kubernetes_api_url: Option<String>,
    pub kubernetes_peers: Option<String>,
    pub cluster_profiles: Option<String>,
    pub cluster_piece_interval: Option<String>,
    pub cluster_namespace: Option<String>,
    pub cluster_lease_duration: Option<String>,
    pub metrics_listen: Option<String>,
}

/// Validated settings of `sensor run`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub grpc_listen: ListenAddr,
    pub learning_period: Duration,
    pub flush_interval: Duration,
    pub rate_window: Duration,
    pub node_name: String,
    pub kubelet: KubeletDirs,
    pub proc_root: PathBuf,
    pub btf: PathBuf,
    pub patterns: Vec<SensitivePattern>,
    pub ring_buffer_bytes: u32,
    /// Where to install ready seccomp drafts for kubelet (`localhostProfile`), if at all.
    pub install_seccomp_dir: Option<PathBuf>,
    pub insecure_tcp: bool,
    /// Mutual TLS for a TCP listener.
    pub tls: Option<crate::api::TlsFiles>,
    /// A workload graduates when no unexpected syscall/egress anomaly fired within this.
    pub graduation_window: Duration,
    /// Candidate NetworkPolicies audited live (`would-deny` anomalies), if any.
    pub audit_netpol: Option<PathBuf>,
    /// Repeats of an anomaly are summarised once per window.
    pub anomaly_window: Duration,
    pub anomaly_retention: crate::detect::log::Retention,
    /// Pod metadata from the Kubernetes API (`attribution::kube`).
    pub kubernetes: KubeApiSettings,
    /// Cluster-wide profiles through the API (`cluster`): on whenever the API is used, unless
    /// `clusterProfiles: off`.
    pub cluster_profiles: bool,
    /// The shortest time between two writes of one piece with new behaviour.
    pub cluster_piece_interval: Duration,
    /// The sensor's own namespace (the merger's Lease): `POD_NAMESPACE`, else the service
    /// account's namespace file, else `node-sensor` (deploy/daemonset.yaml).
    pub cluster_namespace: String,
    /// The merger's Lease duration: a failover takes at most this long.
    pub cluster_lease_duration: Duration,
    /// `/metrics`, `/healthz`, `/readyz` (off unless set: the endpoint is unauthenticated).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

pub const DEFAULT_STATE_DIR: &str = "/var/lib/sensor";
pub const DEFAULT_GRPC_LISTEN: &str = "unix:/run/sensor/sensor.sock";
pub const DEFAULT_LEARNING_PERIOD: &str = "24h";
pub const DEFAULT_FLUSH_INTERVAL: &str = "5s";
pub const DEFAULT_RATE_WINDOW: &str = "60s";
pub const DEFAULT_RING_BUFFER_BYTES: u32 = 8 * 1024 * 1024;

/// Reads and parses a config file (YAML).
pub fn read_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text).map_err(|message| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses config text; the message says where and what (line and column from the parser).
pub fn parse(text: &str) -> Result<ConfigFile, String> {
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
        Some(at) if !e.to_string().contains(" line ") => {
            format!("line {} column {}: {e}", at.line(), at.column())
        }
        _ => e.to_string(),
    })
}

pub fn duration(
    origin: &str,
    key: &'static str,
    value: &str,
    min: Duration,
) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(value).map_err(|e| ConfigError::Invalid {
        origin: origin.to_string(),
        key,
        message: format!("`{value}` is not a duration ({e}); use e.g. 30s, 15m, 24h, 7d"),
    })?;
    if d < min {
        return Err(ConfigError::Invalid {
            origin: origin.to_string(),
            key,
            message: format!(
                "`{value}` is shorter than the minimum {}",
                humantime::format_duration(min)
            ),
        });
    }
    Ok(d)
}

/// Values given on the command line (they win over the file).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub state_dir: Option<PathBuf>,
    pub grpc_listen: Option<String>,
    pub learning_period: Option<String>,
    pub flush_interval: Option<String>,
    pub rate_window: Option<String>,
    pub node_name: Option<String>,
    pub pod_logs_dir: Option<PathBuf>,
    pub container_logs_dir: Option<PathBuf>,
    pub proc_root: Option<PathBuf>,
    pub btf: Option<PathBuf>,
    pub sensitive_paths: Vec<String>,
    pub no_default_sensitive_paths: bool,
    pub install_seccomp_dir: Option<PathBuf>,
    pub insecure_tcp: bool,
    pub graduation_window: Option<String>,
    pub audit_netpol: Option<PathBuf>,
    pub anomaly_window: Option<String>,
    pub grpc_tls_cert: Option<PathBuf>,
    pub grpc_tls_key: Option<PathBuf>,
    pub grpc_tls_client_ca: Option<PathBuf>,
    pub kubernetes_api: Option<String>,
    pub kubernetes_api_url: Option<String>,
    pub kubernetes_peers: Option<String>,
    pub cluster_profiles: Option<String>,
    pub cluster_piece_interval: Option<String>,
    pub cluster_namespace: Option<String>,
    pub cluster_lease_duration: Option<String>,
    pub metrics_listen: Option<String>,
}

/// Merges defaults, the file and the flags; validates everything.
pub fn settings(
    file: ConfigFile,
    file_origin: &str,
    flags: Overrides,
    host_name: String,
) -> Result<Settings, ConfigError> {
    // Where an error points: the flag as typed when a flag set the value, else the file's key.
    let at = |flag_set: bool, key: &'static str| -> (String, &'static str) {
        if flag_set {
            ("command line".to_string(), flag_of(key))
        } else {
            (file_origin.to_string(), key)
        }
    };
    let origin = |flag_set: bool| at(flag_set, "").0;
    let pick = |flag: Option<String>, file: Option<String>, default: &str| -> (String, bool) {
        match (flag, file) {
            (Some(v), _) => (v, true),
            (None, Some(v)) => (v, false),
            (None, None) => (default.to_string(), false),
        }
    };

    let kubernetes = kubernetes(&file, file_origin, &flags, &origin)?;
    let (cluster, from_flag) = pick(
        flags.cluster_profiles.clone(),
        file.cluster_profiles.clone(),
        "auto",
    );
    let cluster_profiles = match cluster.as_str() {
        "auto" => true,
        "off" => false,
        other => {
            let (origin, key) = at(from_flag, "clusterProfiles");
            return Err(ConfigError::Invalid {
                origin,
                key,
                message: format!("`{other}` is not one of: auto, off"),
            });
        }
    };
    let (interval, from_flag) = pick(
        flags.cluster_piece_interval.clone(),
        file.cluster_piece_interval.clone(),
        "30s",
    );
    let cluster_piece_interval = duration(
        &at(from_flag, "clusterPieceInterval").0,
        at(from_flag, "clusterPieceInterval").1,
        &interval,
        Duration::from_secs(1),
    )?;
    let (lease, from_flag) = pick(
        flags.cluster_lease_duration.clone(),
        file.cluster_lease_duration.clone(),
        "15s",
    );
    let cluster_lease_duration = duration(
        &at(from_flag, "clusterLeaseDuration").0,
        at(from_flag, "clusterLeaseDuration").1,
        &lease,
        Duration::from_secs(3),
    )?;
    let cluster_namespace = match flags
        .cluster_namespace
        .clone()
        .or(file.cluster_namespace.clone())
    {
        Some(ns) => ns,
        None => std::env::var("POD_NAMESPACE")
            .ok()
            .or_else(|| {
                std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                    .ok()
            })
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "node-sensor".to_string()),
    };

    let (learning, from_flag) = pick(
        flags.learning_period,
        file.learning_period,
        DEFAULT_LEARNING_PERIOD,
    );
    let learning_period = duration(
        &at(from_flag, "learningPeriod").0,
        at(from_flag, "learningPeriod").1,
        &learning,
        Duration::from_secs(1),
    )?;
    let (flush, from_flag) = pick(
        flags.flush_interval,
        file.flush_interval,
        DEFAULT_FLUSH_INTERVAL,
    );
    let flush_interval = duration(
        &at(from_flag, "flushInterval").0,
        at(from_flag, "flushInterval").1,
        &flush,
        Duration::from_millis(100),
    )?;
    let (window, from_flag) = pick(flags.rate_window, file.rate_window, DEFAULT_RATE_WINDOW);
    let rate_window = duration(
        &at(from_flag, "rateWindow").0,
        at(from_flag, "rateWindow").1,
        &window,
        Duration::from_secs(1),
    )?;
    let (listen, listen_from_flag) = pick(flags.grpc_listen, file.grpc_listen, DEFAULT_GRPC_LISTEN);
    let grpc_listen: ListenAddr =
        listen
            .parse()
            .map_err(|e: crate::api::ListenAddrError| ConfigError::Invalid {
                origin: origin(listen_from_flag),
                key: at(listen_from_flag, "grpcListen").1,
                message: e.to_string(),
            })?;

    let metrics_listen = match (flags.metrics_listen, file.metrics_listen) {
        (Some(v), _) => Some((v, true)),
        (None, Some(v)) => Some((v, false)),
        (None, None) => None,
    }
    .map(|(text, from_flag)| {
        crate::metrics::listen::parse(&text).map_err(|message| ConfigError::Invalid {
            origin: origin(from_flag),
            key: "metricsListen",
            message,
        })
    })
    .transpose()?;

    let defaults =
        !flags.no_default_sensitive_paths && file.default_sensitive_paths.unwrap_or(true);
    let mut patterns = if defaults {
        default_patterns()
    } else {
        Vec::new()
    };
    let from_flags = !flags.sensitive_paths.is_empty();
    for text in file
        .sensitive_paths
        .unwrap_or_default()
        .iter()
        .chain(flags.sensitive_paths.iter())
    {
        let p = SensitivePattern::parse(text).map_err(|e| ConfigError::Invalid {
            origin: origin(from_flags),
            key: at(from_flags, "sensitivePaths").1,
            message: e.to_string(),
        })?;
        patterns.push(p);
    }
    let max = sensor_common::limits::MAX_FILE_PATTERNS as usize;
    if patterns.len() > max {
        return Err(ConfigError::Invalid {
            origin: origin(from_flags),
            key: at(from_flags, "sensitivePaths").1,
            message: format!(
                "{} patterns, at most {max} (defaults included)",
                patterns.len()
            ),
        });
    }

    let (graduation, from_flag) = pick(flags.graduation_window, file.graduation_window, "24h");
    let graduation_window = duration(
        &at(from_flag, "graduationWindow").0,
        at(from_flag, "graduationWindow").1,
        &graduation,
        Duration::from_secs(1),
    )?;
    let (anomaly, from_flag) = pick(flags.anomaly_window, file.anomaly_window, "60s");
    let anomaly_window = duration(
        &at(from_flag, "anomalyWindow").0,
        at(from_flag, "anomalyWindow").1,
        &anomaly,
        Duration::from_secs(1),
    )?;
    let max_age = match &file.anomaly_log_max_age {
        Some(v) => duration(file_origin, "anomalyLogMaxAge", v, Duration::from_secs(60))?,
        None => crate::detect::log::Retention::default().max_age,
    };
    let max_bytes = file
        .anomaly_log_max_bytes
        .unwrap_or(crate::detect::log::Retention::default().max_bytes);
    if max_bytes < 64 * 1024 {
        return Err(ConfigError::Invalid {
            origin: file_origin.to_string(),
            key: "anomalyLogMaxBytes",
            message: format!("{max_bytes} is below the minimum 65536"),
        });
    }
    let tls = super::listen::transport(
        &grpc_listen,
        listen_from_flag,
        super::listen::TlsParts {
            cert: pick_path(flags.grpc_tls_cert, file.grpc_tls_cert),
            key: pick_path(flags.grpc_tls_key, file.grpc_tls_key),
            client_ca: pick_path(flags.grpc_tls_client_ca, file.grpc_tls_client_ca),
        },
        flags.insecure_tcp,
        file_origin,
    )?;

    let ring = file.ring_buffer_bytes.unwrap_or(DEFAULT_RING_BUFFER_BYTES);
    if ring < 4096 || !ring.is_power_of_two() {
        return Err(ConfigError::Invalid {
            origin: file_origin.to_string(),
            key: "ringBufferBytes",
            message: format!("{ring} must be a power of two of at least 4096"),
        });
    }

    let node_from_flag = flags.node_name.is_some();
    let node_name = flags.node_name.or(file.node_name).unwrap_or(host_name);
    if node_name.trim().is_empty() {
        let (origin, key) = at(node_from_flag, "nodeName");
        return Err(ConfigError::Invalid {
            origin,
            key,
            message: "empty".into(),
        });
    }

    Ok(Settings {
        state_dir: flags
            .state_dir
            .or(file.state_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        grpc_listen,
        learning_period,
        flush_interval,
        rate_window,
        node_name,
        kubelet: KubeletDirs {
            pod_logs: flags
                .pod_logs_dir
                .or(file.pod_logs_dir)
                .unwrap_or_else(|| PathBuf::from("/var/log/pods")),
            container_logs: flags
                .container_logs_dir
                .or(file.container_logs_dir)
                .unwrap_or_else(|| PathBuf::from("/var/log/containers")),
        },
        proc_root: flags
            .proc_root
            .or(file.proc_root)
            .unwrap_or_else(|| PathBuf::from("/proc")),
        btf: flags
            .btf
            .or(file.btf)
            .unwrap_or_else(|| PathBuf::from("/sys/kernel/btf/vmlinux")),
        patterns,
        ring_buffer_bytes: ring,
        install_seccomp_dir: flags.install_seccomp_dir.or(file.install_seccomp_dir),
        insecure_tcp: flags.insecure_tcp && tls.is_none(),
        tls,
        graduation_window,
        audit_netpol: flags.audit_netpol.or(file.audit_netpol),
        anomaly_window,
        anomaly_retention: crate::detect::log::Retention { max_bytes, max_age },
        kubernetes,
        cluster_profiles,
        cluster_piece_interval,
        cluster_namespace,
        cluster_lease_duration,
        metrics_listen,
    })
}

/// `kubernetesApi`, `kubernetesApiUrl`, `kubernetesPeers`: each parsed, then checked together.
fn kubernetes(
    file: &ConfigFile,
    file_origin: &str,
    flags: &Overrides,
    origin: &dyn Fn(bool) -> String,
) -> Result<KubeApiSettings, ConfigError> {
    let invalid = |from_flag: bool, key: &'static str, message: String| ConfigError::Invalid {
        origin: origin(from_flag),
        key,
        message,
    };
    let pick = |flag: &Option<String>, file: &Option<String>| match (flag, file) {
        (Some(v), _) => Some((v.clone(), true)),
        (None, Some(v)) => Some((v.clone(), false)),
        (None, None) => None,
    };
    let mut s = KubeApiSettings::default();
    if let Some((v, f)) = pick(&flags.kubernetes_api, &file.kubernetes_api) {
        s.mode = kube_settings::parse_mode(&v).map_err(|m| invalid(f, "kubernetesApi", m))?;
    }
    let url = pick(&flags.kubernetes_api_url, &file.kubernetes_api_url);
    if let Some((v, f)) = &url {
        s.url = Some(kube_settings::parse_url(v).map_err(|m| invalid(*f, "kubernetesApiUrl", m))?);
    }
    if let Some((v, f)) = pick(&flags.kubernetes_peers, &file.kubernetes_peers) {
        s.peers = kube_settings::parse_peers(&v).map_err(|m| invalid(f, "kubernetesPeers", m))?;
    }
    let url_from_flag = url.is_some_and(|(_, f)| f);
    kube_settings::validate(&s).map_err(|m| ConfigError::Invalid {
        origin: if url_from_flag || flags.kubernetes_api.is_some() {
            origin(true)
        } else {
            file_origin.to_string()
        },
        key: "kubernetesApiUrl",
        message: m,
    })?;
    Ok(s)
}

/// A path from the flags (which win) or the file, with whether the flag gave it.
fn pick_path(flag: Option<PathBuf>, file: Option<PathBuf>) -> Option<(PathBuf, bool)> {
    match (flag, file) {
        (Some(p), _) => Some((p, true)),
        (None, Some(p)) => Some((p, false)),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_text(text: &str, flags: Overrides) -> Result<Settings, String> {
        let file = parse(text)?;
        settings(file, "config file c.yaml", flags, "node-1".into()).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_apply_and_flags_win_over_the_file() {
        let s = from_text("", Overrides::default()).unwrap();
        assert_eq!(s.state_dir, PathBuf::from("/var/lib/sensor"));
        assert_eq!(s.learning_period, Duration::from_secs(24 * 3600));
        assert_eq!(s.node_name, "node-1");
        assert_eq!(s.metrics_listen, None, "no metrics endpoint unless asked");
        let s = from_text("metricsListen: 0.0.0.0:9090\n", Overrides::default()).unwrap();
        assert_eq!(s.metrics_listen, Some("0.0.0.0:9090".parse().unwrap()));
        let s = from_text(
            "learningPeriod: 7d\nstateDir: /data\n",
            Overrides {
                learning_period: Some("30s".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.learning_period, Duration::from_secs(30));
        assert_eq!(s.state_dir, PathBuf::from("/data"));
    }

    #[test]
    fn kubernetes_api_settings() {
        use crate::attribution::kube::{ApiMode, PeerScope};
        let s = from_text("", Overrides::default()).unwrap();
        assert_eq!(s.kubernetes, KubeApiSettings::default());
        let s = from_text(
            "kubernetesApi: off\nkubernetesPeers: node\n",
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            (s.kubernetes.mode, s.kubernetes.peers),
            (ApiMode::Off, PeerScope::Node)
        );
        let s = from_text(
            "kubernetesApi: off\n",
            Overrides {
                kubernetes_api: Some("auto".into()),
                kubernetes_api_url: Some("http://127.0.0.1:8001".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.kubernetes.url.as_deref(), Some("http://127.0.0.1:8001"));
        let cases = [
            (
                "kubernetesApi: on\n",
                Overrides::default(),
                "config file c.yaml: `kubernetesApi`",
            ),
            (
                "",
                Overrides {
                    kubernetes_api_url: Some("127.0.0.1:8001".into()),
                    ..Default::default()
                },
                "command line: `kubernetesApiUrl`",
            ),
            (
                "kubernetesPeers: all\n",
                Overrides::default(),
                "`kubernetesPeers`",
            ),
            (
                "kubernetesApi: off\n",
                Overrides {
                    kubernetes_api_url: Some("http://127.0.0.1:8001".into()),
                    ..Default::default()
                },
                "command line: `kubernetesApiUrl`: a Kubernetes API URL is given but",
            ),
        ];
        for (text, flags, expected) in cases {
            let e = from_text(text, flags).unwrap_err();
            assert!(e.starts_with(expected) || e.contains(expected), "{e}");
        }
    }

    #[test]
    fn errors_name_the_key_and_the_origin() {
        let e = from_text("learningPeriod: 2 fortnights\n", Overrides::default()).unwrap_err();
        assert!(
            e.contains("config file c.yaml")
                && e.contains("learningPeriod")
                && e.contains("2 fortnights"),
            "{e}"
        );
        let e = from_text(
            "",
            Overrides {
                learning_period: Some("x".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.starts_with("command line: `--learning-period`"), "{e}");
        let e = from_text("learnigPeriod: 1h\n", Overrides::default()).unwrap_err();
        assert!(
            e.contains("unknown field `learnigPeriod`") && e.contains("line 1"),
            "{e}"
        );
        let e = from_text("sensitivePaths: [relative/path]\n", Overrides::default()).unwrap_err();
        assert!(
            e.contains("sensitivePaths") && e.contains("must start with"),
            "{e}"
        );
        let e = from_text("ringBufferBytes: 5000\n", Overrides::default()).unwrap_err();
        assert!(e.contains("ringBufferBytes"), "{e}");
        let e = from_text("flushInterval: 1ms\n", Overrides::default()).unwrap_err();
        assert!(e.contains("shorter than the minimum"), "{e}");
        let e = from_text("grpcListen: ftp://x\n", Overrides::default()).unwrap_err();
        assert!(e.contains("grpcListen"), "{e}");
        let e = from_text("metricsListen: localhost:9090\n", Overrides::default()).unwrap_err();
        assert!(
            e.starts_with("config file c.yaml: `metricsListen`: `localhost:9090`"),
            "{e}"
        );
        let e = from_text(
            "",
            Overrides {
                metrics_listen: Some("9090".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.starts_with("command line: `metricsListen`"), "{e}");
        let e = from_text("stateDir: [1, 2]\n", Overrides::default()).unwrap_err();
        assert!(e.contains("stateDir") || e.contains("line 1"), "{e}");
    }
}
