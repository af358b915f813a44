//! Attributed events: what `sensor trace` prints, what the agent feeds its learner and anomaly
//! rules, and what its `StreamEvents` call streams (typed, and as this JSON). One JSON object per
//! event, with the pod/container it belongs to flattened in.

use std::{net::IpAddr, sync::Arc};

use serde::Serialize;

use crate::attribution::Attribution;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// RFC 3339 UTC.
    pub time: String,
    pub kind: &'static str,
    pub node: Arc<str>,
    #[serde(flatten)]
    pub who: Arc<Attribution>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    #[serde(flatten)]
    pub detail: Detail,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Detail {
    Exec {
        /// The path given to execve.
        path: String,
        /// The executable actually run, symlinks resolved, when it differs from `path`.
        #[serde(skip_serializing_if = "Option::is_none")]
        exe: Option<String>,
        args: Vec<String>,
        args_truncated: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        path_truncated: bool,
        uid: u32,
        /// The first exec of the workload in a container started after the sensor: what the
        /// cgroup did before it was the container runtime's setup.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        workload_start: bool,
    },
    Exit {
        exit_code: Option<u32>,
        signal: Option<u32>,
    },
    Connect {
        protocol: &'static str,
        remote_ip: IpAddr,
        remote_port: u16,
        origin: &'static str,
        /// Names this container resolved to that address (from DNS answers it received).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        remote_names: Vec<String>,
    },
    Accept {
        protocol: &'static str,
        remote_ip: IpAddr,
        local_ip: IpAddr,
        local_port: u16,
    },
    Dns {
        question: String,
        qtype: String,
        rcode: String,
        server_ip: IpAddr,
        transport: &'static str,
        answers: Vec<DnsAnswerRecord>,
    },
    /// A successful open of a sensitive file, judged on the file the kernel opened.
    File {
        /// The opened file's path in the opener's mount namespace, symlinks, `..`, mounts and
        /// `/proc/*/root` resolved (kubelet's timestamped data directory dropped).
        path: String,
        /// The path as passed to the syscall, when it differs (a symlink, a relative path,
        /// `/proc/self/root/...`); absent when it could not be read (or for
        /// `open_by_handle_at`, which takes none).
        #[serde(skip_serializing_if = "Option::is_none")]
        requested: Option<String>,
        pattern: String,
        /// The opened file's path was deeper than the kernel walks: its top is cut.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        path_truncated: bool,
        /// Opened through the 32-bit compat ABI.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        compat: bool,
        /// `O_*` flags of the opened file.
        open_flags: u32,
    },
    Syscalls {
        /// The workload's: everything since its first exec (for a container older than the
        /// sensor, everything seen).
        native: Vec<String>,
        compat: Vec<String>,
        /// The container runtime's setup in the cgroup before the workload's first exec.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        setup_native: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        setup_compat: Vec<String>,
        /// True when emitted because the cgroup was removed (the set is complete).
        #[serde(rename = "final")]
        is_final: bool,
    },
    Flow {
        protocol: &'static str,
        direction: &'static str,
        remote_ip: IpAddr,
        remote_port: u16,
        local_port: u16,
        connections: u64,
        bytes_sent: u64,
        bytes_recv: u64,
        packets_sent: u64,
        packets_recv: u64,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        remote_names: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DnsAnswerRecord {
    pub ip: IpAddr,
    pub names: Vec<String>,
    pub ttl: u32,
}

#[cfg(test)]
impl Detail {
    /// A file event for unit tests: the requested path is the opened one, nothing truncated.
    pub fn sample_file(path: &str, pattern: &str) -> Detail {
        Detail::File {
            path: path.into(),
            requested: None,
            pattern: pattern.into(),
            path_truncated: false,
            compat: false,
            open_flags: 0,
        }
    }
}

impl Detail {
    pub fn kind(&self) -> &'static str {
        match self {
            Detail::Exec { .. } => "exec",
            Detail::Exit { .. } => "exit",
            Detail::Connect { .. } => "connect",
            Detail::Accept { .. } => "accept",
            Detail::Dns { .. } => "dns",
            Detail::File { .. } => "file",
            Detail::Syscalls { .. } => "syscalls",
            Detail::Flow { .. } => "flow",
        }
    }
}

/// An address from the kernel's 16-byte form (IPv4 as `::ffff:a.b.c.d`) as the natural IpAddr.
pub fn ip_from_mapped(bytes: [u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

pub fn protocol_name(protocol: u8) -> &'static str {
    match protocol {
        6 => "tcp",
        17 => "udp",
        _ => "other",
    }
}

/// A command line as people read it: the path run, then the arguments after argv[0].
pub fn command_label(path: &str, args: &[String]) -> String {
    let mut s = path.to_string();
    for a in args.iter().skip(1) {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// `10.0.0.1:443/tcp` or `[fd00::1]:80/tcp`, followed by the first name the container resolved
/// the address to when there is one: `10.0.0.1:443/tcp (api.example.com)`.
pub fn peer_label(ip: IpAddr, port: u16, protocol: &str, names: &[String]) -> String {
    let peer = match ip.to_canonical() {
        IpAddr::V4(v4) => format!("{v4}:{port}/{protocol}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}/{protocol}"),
    };
    match names.first() {
        Some(n) => format!("{peer} ({n})"),
        None => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_become_ipv4() {
        let mut b = [0u8; 16];
        b[10] = 0xff;
        b[11] = 0xff;
        b[12..].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(ip_from_mapped(b).to_string(), "10.0.0.1");
        let v6: [u8; 16] = "fd00:ec2::254"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets();
        assert_eq!(ip_from_mapped(v6).to_string(), "fd00:ec2::254");
    }
}
