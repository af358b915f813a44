//! `sensor trace`: its flags (here), the live loop (`live`) and the output format (`format`).

pub mod format;
pub mod live;

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::{
    attribution::kubelet::KubeletDirs,
    capture::patterns::{SensitivePattern, default_patterns},
    cli::trace::live::{Filter, TraceOptions},
    daemon::config::ConfigError,
};

/// Where the host's files are (flags so the sensor can run in a container with host mounts).
#[derive(Args, Debug, Clone)]
pub struct HostPaths {
    /// kubelet's pod log directory (pod names and uids).
    #[arg(long, default_value = "/var/log/pods", value_name = "DIR")]
    pub pod_logs_dir: PathBuf,
    /// kubelet's container log symlinks (container names and ids).
    #[arg(long, default_value = "/var/log/containers", value_name = "DIR")]
    pub container_logs_dir: PathBuf,
    /// The host's /proc.
    #[arg(long, default_value = "/proc", value_name = "DIR")]
    pub proc_root: PathBuf,
    /// Kernel BTF (struct offsets for the probes).
    #[arg(long, default_value = "/sys/kernel/btf/vmlinux", value_name = "FILE")]
    pub btf: PathBuf,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// One JSON object per line instead of columns.
    #[arg(long)]
    pub json: bool,
    /// Only events of this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Only events of this pod.
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
    /// Only events of this container (name).
    #[arg(long, value_name = "NAME")]
    pub container: Option<String>,
    /// Report opens of this path pattern (`prefix`, or `prefix*suffix`); repeatable. Added to
    /// the defaults unless --no-default-sensitive-paths.
    #[arg(long = "sensitive-path", value_name = "PATTERN", value_parser = parse_pattern)]
    pub sensitive_paths: Vec<SensitivePattern>,
    /// Do not watch the default sensitive paths (service-account tokens, /etc/shadow, ...).
    #[arg(long)]
    pub no_default_sensitive_paths: bool,
    /// Kernel ring buffer size in bytes (power of two, multiple of the page size).
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_parser = parse_ring_size)]
    pub ring_buffer_bytes: u32,
    /// Node name in events (default: the host name).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    #[command(flatten)]
    pub host: HostPaths,
}

fn parse_pattern(s: &str) -> Result<SensitivePattern, String> {
    SensitivePattern::parse(s).map_err(|e| e.to_string())
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a byte count"))?;
    if v < 4096 || !v.is_power_of_two() {
        return Err(format!("{v} must be a power of two of at least 4096"));
    }
    Ok(v)
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

impl TraceArgs {
    /// The options of a run; too many patterns is a usage error (exit code 2), like the same
    /// mistake given to `sensor run`.
    pub fn into_options(self) -> Result<TraceOptions, ConfigError> {
        let mut patterns = if self.no_default_sensitive_paths {
            Vec::new()
        } else {
            default_patterns()
        };
        patterns.extend(self.sensitive_paths);
        let max = sensor_common::limits::MAX_FILE_PATTERNS as usize;
        if patterns.len() > max {
            return Err(ConfigError::Invalid {
                origin: "command line".into(),
                key: "--sensitive-path",
                message: format!(
                    "{} patterns, at most {max} (defaults included)",
                    patterns.len()
                ),
            });
        }
        Ok(TraceOptions {
            json: self.json,
            filter: Filter {
                namespace: self.namespace,
                pod: self.pod,
                container: self.container,
            },
            kubelet: KubeletDirs {
                pod_logs: self.host.pod_logs_dir,
                container_logs: self.host.container_logs_dir,
            },
            proc_root: self.host.proc_root,
            btf_path: self.host.btf,
            ring_buffer_bytes: self.ring_buffer_bytes,
            patterns,
            node_name: self.node_name.unwrap_or_else(host_name),
        })
    }
}
