//! The error of a bad `sensor run` configuration (exit code 2, one line), and the flag each
//! config key is set by: shared by the config reader and the checks that run before anything
//! starts (listen addresses and TLS, the state directory), so none of them imports another.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // Not a `source`: the reason is part of this one-line message, and an error chain printed
    // with its causes would repeat it.
    #[error("config file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{origin}: `{key}`: {message}")]
    Invalid {
        origin: String,
        key: &'static str,
        message: String,
    },
}

/// The `sensor run` flag that sets config key `key` (errors about a flag name the flag).
pub fn flag_of(key: &'static str) -> &'static str {
    match key {
        "stateDir" => "--state-dir",
        "grpcListen" => "--grpc-listen",
        "learningPeriod" => "--learning-period",
        "flushInterval" => "--flush-interval",
        "rateWindow" => "--rate-window",
        "nodeName" => "--node-name",
        "podLogsDir" => "--pod-logs-dir",
        "containerLogsDir" => "--container-logs-dir",
        "procRoot" => "--proc-root",
        "btf" => "--btf",
        "sensitivePaths" => "--sensitive-path",
        "installSeccompDir" => "--install-seccomp-dir",
        "graduationWindow" => "--graduation-window",
        "auditNetpol" => "--audit-netpol",
        "anomalyWindow" => "--anomaly-window",
        "grpcTlsCert" => "--grpc-tls-cert",
        "grpcTlsKey" => "--grpc-tls-key",
        "grpcTlsClientCa" => "--grpc-tls-client-ca",
        "kubernetesApi" => "--kubernetes-api",
        "kubernetesApiUrl" => "--kubernetes-api-url",
        "kubernetesPeers" => "--kubernetes-peers",
        "clusterProfiles" => "--cluster-profiles",
        "clusterPieceInterval" => "--cluster-piece-interval",
        "clusterNamespace" => "--cluster-namespace",
        "clusterLeaseDuration" => "--cluster-lease-duration",
        other => other,
    }
}
