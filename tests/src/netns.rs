//! Network peers: a network namespace joined to the host by a veth pair, with services in it.
//!
//! Why: connect/accept/flow/DNS capture must be tested with real traffic that never leaves the
//! machine. A peer lives in its own netns on `10.231.X.0/24` (host side `.1`, peer `.2`);
//! containers share the host netns and reach it through the host's connected route.
//!
//! `X` is unique per live peer on the machine: each peer holds a lock file
//! (`/tmp/sensor-testbed/locks/net-X`, containing its pid; stale locks of dead pids are taken
//! over) and skips any `X` whose subnet is already configured on the host. Interface and netns
//! names derive from `X`, so leftovers from a crashed run holding the same `X` are deleted first.
//!
//! IPv6 is opt-in ([`Peer::enable_ipv6`]): `fd00:231:X::1` (host) and `fd00:231:X::2` (peer) on
//! the same veth, `nodad` so they are usable at once.
//!
//! Services (started with `ip netns exec`): a TCP server ([`Peer::start_tcp_server`]) and a DNS
//! server on port 53 ([`Peer::start_dns_server`], `dns_server.py`). Everything (processes,
//! veth, netns, lock) is torn down on drop.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::util::{self, TempDir};

const DNS_SERVER_PY: &str = include_str!("dns_server.py");
const PEER_TOOLS_PY: &str = include_str!("peer_tools.py");

/// DNS record data.
#[derive(Debug, Clone)]
pub enum Rdata {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
}

/// The names a peer's DNS server answers.
#[derive(Debug, Clone, Default)]
pub struct DnsZone {
    records: Vec<(String, Rdata, u32)>,
}

impl DnsZone {
    pub fn new() -> DnsZone {
        DnsZone::default()
    }

    pub fn a(mut self, name: &str, ip: Ipv4Addr, ttl: u32) -> Self {
        self.records.push((name.to_string(), Rdata::A(ip), ttl));
        self
    }

    pub fn aaaa(mut self, name: &str, ip: Ipv6Addr, ttl: u32) -> Self {
        self.records.push((name.to_string(), Rdata::Aaaa(ip), ttl));
        self
    }

    pub fn cname(mut self, name: &str, target: &str, ttl: u32) -> Self {
        self.records
            .push((name.to_string(), Rdata::Cname(target.to_string()), ttl));
        self
    }

    fn to_json(&self) -> serde_json::Value {
        let records: Vec<_> = self
            .records
            .iter()
            .map(|(name, rdata, ttl)| {
                let (t, v) = match rdata {
                    Rdata::A(ip) => ("A", ip.to_string()),
                    Rdata::Aaaa(ip) => ("AAAA", ip.to_string()),
                    Rdata::Cname(target) => ("CNAME", target.clone()),
                };
                json!({ "name": name, "type": t, "value": v, "ttl": ttl })
            })
            .collect();
        json!({ "records": records })
    }
}

struct Service {
    what: String,
    child: Child,
    log: PathBuf,
}

/// A network namespace peer. See the module docs.
pub struct Peer {
    x: u8,
    ns: String,
    host_if: String,
    peer_if: String,
    lock: PathBuf,
    dir: TempDir,
    services: Vec<Service>,
}

impl Default for Peer {
    fn default() -> Self {
        Self::new()
    }
}

impl Peer {
    pub fn new() -> Peer {
        util::require_root();
        let ip = util::require_tool("ip", "iproute2");
        let x = claim_subnet();
        let ns = format!("stb-{x}");
        let (host_if, peer_if) = (format!("stb{x}h"), format!("stb{x}p"));
        // We hold X: anything named after it is a leftover of a dead run.
        util::run_quiet(Command::new(&ip).args(["link", "del", &host_if]));
        util::run_quiet(Command::new(&ip).args(["netns", "del", &ns]));
        let peer = Peer {
            x,
            ns: ns.clone(),
            host_if: host_if.clone(),
            peer_if: peer_if.clone(),
            lock: lock_path(x),
            dir: TempDir::new("peer"),
            services: Vec::new(),
        };
        let host_cidr = format!("{}/24", peer.host_ip());
        let peer_cidr = format!("{}/24", peer.peer_ip());
        let steps: &[&[&str]] = &[
            &["netns", "add", &ns],
            &[
                "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
            ],
            &["link", "set", &peer_if, "netns", &ns],
            &["addr", "add", &host_cidr, "dev", &host_if],
            &["link", "set", &host_if, "up"],
            &["-n", &ns, "addr", "add", &peer_cidr, "dev", &peer_if],
            &["-n", &ns, "link", "set", &peer_if, "up"],
            &["-n", &ns, "link", "set", "lo", "up"],
        ];
        for step in steps {
            util::run_ok(Command::new(&ip).args(*step));
        }
        for (py, name) in [
            (DNS_SERVER_PY, "dns_server.py"),
            (PEER_TOOLS_PY, "peer_tools.py"),
        ] {
            fs::write(peer.dir.path().join(name), py).expect("write peer script");
        }
        peer
    }

    /// The network namespace name (`ip netns` name).
    pub fn netns(&self) -> &str {
        &self.ns
    }

    /// `/var/run/netns/<name>`, for joining the namespace (e.g. a container's `Network::Join`).
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.ns)
    }

    /// The host end of the veth (`10.231.X.1`).
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.x, 1)
    }

    /// The peer's address (`10.231.X.2`).
    pub fn peer_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.x, 2)
    }

    /// The host end of the veth over IPv6 (`fd00:231:X::1`), once [`Peer::enable_ipv6`] ran.
    pub fn host_ip6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x231, self.x as u16, 0, 0, 0, 0, 1)
    }

    /// The peer's IPv6 address (`fd00:231:X::2`), once [`Peer::enable_ipv6`] ran.
    pub fn peer_ip6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x231, self.x as u16, 0, 0, 0, 0, 2)
    }

    /// Adds the ULA addresses [`Peer::host_ip6`] and [`Peer::peer_ip6`] (`/64`, `nodad`: usable
    /// at once, no duplicate-address detection to wait for).
    pub fn enable_ipv6(&self) {
        let ip = util::require_tool("ip", "iproute2");
        // Interfaces inherit `default.disable_ipv6`; make sure it is off on both ends.
        let _ = fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", self.host_if),
            "0",
        );
        util::run_quiet(self.command("sh").args([
            "-c",
            &format!(
                "echo 0 > /proc/sys/net/ipv6/conf/{}/disable_ipv6",
                self.peer_if
            ),
        ]));
        let host_cidr = format!("{}/64", self.host_ip6());
        let peer_cidr = format!("{}/64", self.peer_ip6());
        let steps: &[&[&str]] = &[
            &["addr", "add", &host_cidr, "dev", &self.host_if, "nodad"],
            &[
                "-n",
                &self.ns,
                "addr",
                "add",
                &peer_cidr,
                "dev",
                &self.peer_if,
                "nodad",
            ],
        ];
        for step in steps {
            util::run_ok(Command::new(&ip).args(*step));
        }
    }

    /// Adds `ip` (/32, or /128 for IPv6) to the loopback interface inside the peer's netns: an
    /// address only the peer has, reachable from processes in that netns (e.g. a container that
    /// joins it with `Network::Join`). The host's routing table is not touched, so the host
    /// itself still does not know the address.
    pub fn add_local_address(&self, ip: IpAddr) {
        let ip_tool = util::require_tool("ip", "iproute2");
        let cidr = match ip {
            IpAddr::V4(v4) => format!("{v4}/32"),
            IpAddr::V6(v6) => format!("{v6}/128"),
        };
        util::run_ok(
            Command::new(&ip_tool).args(["-n", &self.ns, "addr", "add", &cidr, "dev", "lo"]),
        );
    }

    /// `ip -n <ns> route get <ip>`: how the peer's netns routes `ip` (`local ...` for its own
    /// addresses).
    pub fn route_get(&self, ip: IpAddr) -> String {
        let ip_tool = util::require_tool("ip", "iproute2");
        util::run_ok(Command::new(&ip_tool).args(["-n", &self.ns, "route", "get", &ip.to_string()]))
    }

    /// The host-side veth interface name.
    pub fn host_interface(&self) -> &str {
        &self.host_if
    }

    /// The peer-side veth interface name (inside the netns).
    pub fn peer_interface(&self) -> &str {
        &self.peer_if
    }

    /// `ip netns exec <ns> <program>`: a command to run inside the peer.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
    }

    /// Starts the TCP server on `peer_ip():port` (reads until EOF, replies `received N\n`).
    pub fn start_tcp_server(&mut self, port: u16) {
        self.start_tcp_server_on(self.peer_ip().into(), port);
    }

    /// [`Peer::start_tcp_server`] on another of the peer's addresses (e.g. [`Peer::peer_ip6`]).
    pub fn start_tcp_server_on(&mut self, ip: IpAddr, port: u16) {
        let script = self.dir.path().join("peer_tools.py");
        let ip = ip.to_string();
        let port = port.to_string();
        self.start_service(
            &format!("tcp server :{port}"),
            &[script.to_str().unwrap(), "serve", &ip, &port],
        );
    }

    /// Starts the DNS server on `peer_ip():53`, UDP and TCP, answering `zone`.
    pub fn start_dns_server(&mut self, zone: &DnsZone) {
        let zone_file = self
            .dir
            .path()
            .join(format!("zone-{}.json", self.services.len()));
        fs::write(
            &zone_file,
            serde_json::to_vec_pretty(&zone.to_json()).unwrap(),
        )
        .expect("write zone");
        let script = self.dir.path().join("dns_server.py");
        let ip = self.peer_ip().to_string();
        self.start_service(
            "dns server",
            &[
                script.to_str().unwrap(),
                &ip,
                "53",
                zone_file.to_str().unwrap(),
            ],
        );
    }

    /// From inside the peer: connect to `ip:port` (retrying while refused, up to `timeout`),
    /// send `nbytes`, half-close, and return the reply. Panics if it never connects.
    pub fn send_tcp(
        &self,
        ip: impl Into<IpAddr>,
        port: u16,
        nbytes: usize,
        timeout: Duration,
    ) -> String {
        let ip: IpAddr = ip.into();
        let script = self.dir.path().join("peer_tools.py");
        util::run_ok(
            self.command(util::python3())
                .arg(script)
                .args([
                    "send",
                    &ip.to_string(),
                    &port.to_string(),
                    &nbytes.to_string(),
                ])
                .arg(format!("{}", timeout.as_secs_f64())),
        )
    }

    fn start_service(&mut self, what: &str, args: &[&str]) {
        let log = self
            .dir
            .path()
            .join(format!("service-{}.log", self.services.len()));
        let log_file = fs::File::create(&log).expect("create service log");
        let mut child = self
            .command(util::python3())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what} in {}: {e}", self.ns));
        let lines = util::line_channel(child.stdout.take().unwrap());
        let ready = lines.recv_timeout(Duration::from_secs(10));
        if ready.as_deref() != Ok("ready") {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} in netns {} did not become ready ({ready:?}); log:\n{}",
                self.ns,
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        self.services.push(Service {
            what: what.to_string(),
            child,
            log,
        });
    }

    /// The stderr logs of the peer's services (for diagnostics).
    pub fn service_logs(&self) -> String {
        self.services
            .iter()
            .map(|s| {
                format!(
                    "--- {}:\n{}",
                    s.what,
                    fs::read_to_string(&s.log).unwrap_or_default()
                )
            })
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.services.is_empty() {
            eprintln!("peer {} service logs:\n{}", self.ns, self.service_logs());
        }
        for s in &mut self.services {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        util::run_quiet(Command::new("ip").args(["link", "del", &self.host_if]));
        util::run_quiet(Command::new("ip").args(["netns", "del", &self.ns]));
        let _ = fs::remove_file(&self.lock);
    }
}

fn lock_dir() -> PathBuf {
    Path::new(util::BASE_DIR).join("locks")
}

fn lock_path(x: u8) -> PathBuf {
    lock_dir().join(format!("net-{x}"))
}

/// Picks a free `X` for `10.231.X.0/24` and takes its lock.
fn claim_subnet() -> u8 {
    fs::create_dir_all(lock_dir()).expect("create lock dir");
    let in_use = util::run_ok(Command::new("ip").args(["-o", "-4", "addr", "show"]));
    let start = (std::process::id() as usize * 7 + util::random_bytes(1)[0] as usize) % 254;
    for i in 0..254 {
        let x = ((start + i) % 254 + 1) as u8;
        if in_use.contains(&format!(" 10.231.{x}.")) {
            continue;
        }
        let path = lock_path(x);
        for _attempt in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return x;
                }
                Err(_) => {
                    // Taken: by a live process, or stale (holder died, or mid-write: empty).
                    let holder = fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if !util::pid_alive(pid) => {
                            let _ = fs::remove_file(&path);
                        }
                        _ => break,
                    }
                }
            }
        }
    }
    panic!(
        "no free 10.231.X.0/24 subnet for a test network peer (locks in {})",
        lock_dir().display()
    );
}
