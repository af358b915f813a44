//! Listening TCP sockets that predate the sensor. The kernel learns new listeners at listen();
//! these are found once at start from /proc, so a SYN to a server started before the sensor
//! still names the listening process.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use aya::maps::{HashMap as BpfHashMap, MapData};
use sensor_common::ListenerKey;

/// TCP state LISTEN in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";

/// (socket inode, local port) of the LISTEN entries of a /proc/net/tcp or tcp6 table.
pub fn parse_listening(table: &str) -> Vec<(u64, u16)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            if f.len() < 10 || f[3] != TCP_LISTEN {
                return None;
            }
            let port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            let inode = f[9].parse().ok()?;
            Some((inode, port))
        })
        .collect()
}

/// Socket inode of an fd link target (`socket:[12345]`).
fn socket_inode(target: &Path) -> Option<u64> {
    target
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Every listening socket of every process: key (cgroup id, port) -> pid.
/// `cgroup_id_of` maps a cgroup v2 path to its id. Unreadable processes are skipped.
pub fn existing(
    proc_root: &Path,
    cgroup_id_of: impl Fn(&str) -> Option<u64>,
) -> Vec<(ListenerKey, u32)> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // Listening sockets per network namespace (containers have their own tables).
    let mut seen_netns = HashSet::new();
    let mut port_of_inode: HashMap<u64, u16> = HashMap::new();
    for pid in &pids {
        let dir = proc_root.join(pid.to_string());
        let Ok(netns) = std::fs::read_link(dir.join("ns/net")) else {
            continue;
        };
        if !seen_netns.insert(netns) {
            continue;
        }
        for table in ["net/tcp", "net/tcp6"] {
            if let Ok(text) = std::fs::read_to_string(dir.join(table)) {
                port_of_inode.extend(parse_listening(&text));
            }
        }
    }
    if port_of_inode.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut denied = 0usize;
    for pid in pids {
        let dir = proc_root.join(pid.to_string());
        let fds = match std::fs::read_dir(dir.join("fd")) {
            Ok(fds) => fds,
            Err(e) => {
                denied += usize::from(e.kind() == std::io::ErrorKind::PermissionDenied);
                continue;
            }
        };
        let mut unreadable = false;
        let ports: HashSet<u16> = fds
            .flatten()
            .filter_map(|fd| match std::fs::read_link(fd.path()) {
                Ok(target) => socket_inode(&target),
                Err(e) => {
                    unreadable |= e.kind() == std::io::ErrorKind::PermissionDenied;
                    None
                }
            })
            .filter_map(|inode| port_of_inode.get(&inode).copied())
            .collect();
        denied += usize::from(unreadable);
        if ports.is_empty() {
            continue;
        }
        let Some(cgroup_id) = std::fs::read_to_string(dir.join("cgroup"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("0::").map(str::to_string))
            })
            .and_then(|p| cgroup_id_of(&p))
        else {
            continue;
        };
        for port in ports {
            out.push((
                ListenerKey {
                    cgroup_id,
                    port,
                    _pad: [0; 6],
                },
                pid,
            ));
        }
    }
    if denied > 0 {
        // Without CAP_SYS_PTRACE the fds of processes with other capabilities (containers,
        // host daemons) are unreadable: say so rather than lose their listeners quietly.
        tracing::warn!(
            processes = denied,
            "/proc/<pid>/fd unreadable (permission denied): accepts on sockets these processes \
             listened on before the sensor started will not name the process; grant CAP_SYS_PTRACE"
        );
    }
    out
}

/// Writes the listeners found into the kernel map (without replacing newer entries).
pub fn seed(
    map: &mut BpfHashMap<MapData, ListenerKey, u32>,
    listeners: &[(ListenerKey, u32)],
) -> usize {
    listeners
        .iter()
        .filter(|(key, pid)| map.get(key, 0).is_err() && map.insert(*key, *pid, 0).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A2C4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_only_listening_entries_of_real_tables() {
        assert_eq!(parse_listening(TCP), vec![(31337, 8080)]);
        assert_eq!(parse_listening(TCP6), vec![(777, 80)]);
        assert!(parse_listening("garbage\n0: x y 0A").is_empty());
        assert!(parse_listening("").is_empty());
    }

    #[test]
    fn socket_links_are_recognised() {
        assert_eq!(socket_inode(Path::new("socket:[31337]")), Some(31337));
        assert_eq!(socket_inode(Path::new("pipe:[1]")), None);
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
    }

    #[test]
    fn finds_a_listener_of_this_process() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found = existing(Path::new("/proc"), |_| Some(7));
        assert!(
            found
                .iter()
                .any(|(k, pid)| k.port == port && *pid == std::process::id() && k.cgroup_id == 7),
            "listener on {port} not found in {found:?}"
        );
    }
}
