//! Turns what capture sees into profile updates: attributed events, periodic reads of the
//! syscall bitmaps and of the flow counters (as deltas), rate windows. Owns no I/O: the agent
//! loop feeds it and persists what it marks dirty.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::{Arc, RwLock},
};

use sensor_common::{FlowKey, FlowStats, SyscallSet, flow_direction};

use super::{package_scan::PackageScanner, store::ProfileStore};
use crate::{
    attribution::event::{Detail, Event},
    attribution::{Attribution, Scope, kube::KubeMetadata, workload::WorkloadKind},
    capture::syscall_sets::named,
    profile::{
        builder::{Direction, FlowDelta, FlowId},
        model::{ApplicationProfile, Peer, ProfileKey, Protocol, Resolver, Timestamp},
        runtime,
    },
};

/// The profile a container's attribution belongs to (containers with full names only).
pub fn profile_key(who: &Attribution) -> Option<(ProfileKey, WorkloadKind)> {
    if who.scope != Scope::Container {
        return None;
    }
    let key = ProfileKey {
        namespace: who.namespace.clone()?,
        workload: who.workload.clone()?,
        container: who.container.clone()?,
    };
    Some((key, who.workload_kind.unwrap_or(WorkloadKind::Pod)))
}

fn protocol(p: u8) -> Option<Protocol> {
    match p {
        6 => Some(Protocol::Tcp),
        17 => Some(Protocol::Udp),
        _ => None,
    }
}

fn protocol_from_name(p: &str) -> Option<Protocol> {
    match p {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    }
}

/// Flow identity in a profile from the kernel's aggregate key.
pub fn flow_id(key: &FlowKey) -> Option<FlowId> {
    let ip = crate::attribution::event::ip_from_mapped(key.remote_addr);
    let (direction, port) = if key.direction == flow_direction::INGRESS {
        (Direction::Ingress, key.local_port)
    } else {
        (Direction::Egress, key.remote_port)
    };
    Some(FlowId {
        direction,
        ip,
        port,
        protocol: protocol(key.protocol)?,
    })
}

fn delta(now: &FlowStats, before: Option<&FlowStats>) -> FlowDelta {
    let b = before.copied().unwrap_or_default();
    FlowDelta {
        connections: now.connections.saturating_sub(b.connections),
        bytes_sent: now.bytes_sent.saturating_sub(b.bytes_sent),
        bytes_recv: now.bytes_recv.saturating_sub(b.bytes_recv),
    }
}

/// Resolver facts of a container (its resolv.conf), looked up once per cgroup.
#[derive(Debug, Clone, Default)]
pub struct ResolvConf {
    pub nameservers: Vec<IpAddr>,
    /// Kubernetes cluster search domains present (`svc.cluster.local` or any `.svc.` domain).
    pub cluster_search: bool,
}

pub fn parse_resolv_conf(text: &str) -> ResolvConf {
    let mut out = ResolvConf::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => out
                .nameservers
                .extend(words.next().and_then(|w| w.parse::<IpAddr>().ok())),
            Some("search") => {
                out.cluster_search |= words.any(|d| d.starts_with("svc.") || d.contains(".svc."))
            }
            _ => {}
        }
    }
    out
}

pub struct Learner {
    pub store: Arc<RwLock<ProfileStore>>,
    /// Counters of every kernel flow aggregate at the last read (for deltas).
    last_flows: HashMap<FlowKey, FlowStats>,
    /// What each profile flow did in the current rate window.
    window: HashMap<(ProfileKey, FlowId), FlowDelta>,
    /// cgroups that existed before the sensor: their containers' start-up was missed.
    preexisting: HashSet<u64>,
    /// Resolver facts per cgroup.
    resolv: HashMap<u64, ResolvConf>,
    node: String,
    /// Pods known from the Kubernetes API: the peers of flows.
    pods: Option<KubeMetadata>,
    /// Scans containers' filesystems for agent frameworks (AI inventory).
    packages: Option<PackageScanner>,
}

/// The time of an event, for its profile. Event times are the kernel clock's, written by
/// `clock::BootClock::rfc3339`: one that does not read is a bug upstream, and the wall clock is
/// the closest stand-in.
pub fn event_time(ev: &Event) -> Timestamp {
    Timestamp::parse(&ev.time).unwrap_or_else(|e| {
        tracing::warn!(time = %ev.time, "event time: {e}");
        Timestamp::now()
    })
}

/// Labels and the exact workload kind of the event's pod, when the API knows them.
fn record_identity(p: &mut ApplicationProfile, who: &Attribution, now: Timestamp) -> bool {
    let exact_kind = who.workload_kind.filter(|_| who.workload_from_api);
    p.record_identity(who.labels.as_deref(), exact_kind, now)
}

impl Learner {
    pub fn new(store: Arc<RwLock<ProfileStore>>, preexisting: HashSet<u64>, node: String) -> Self {
        Self {
            store,
            last_flows: HashMap::new(),
            window: HashMap::new(),
            preexisting,
            resolv: HashMap::new(),
            node,
            pods: None,
            packages: None,
        }
    }

    /// Records the agent frameworks and SDKs installed in each container.
    pub fn with_package_scanner(mut self, scanner: PackageScanner) -> Self {
        self.packages = Some(scanner);
        self
    }

    /// Names the peers of flows from the Kubernetes API's pods.
    pub fn with_pod_metadata(mut self, pods: Option<KubeMetadata>) -> Self {
        self.pods = pods;
        self
    }

    pub fn peer(&self, ip: &IpAddr) -> Option<Peer> {
        self.pods.as_ref()?.peer(ip)
    }

    /// One attributed event from the pipeline.
    pub fn on_event(&mut self, ev: &Event, resolv_conf: impl FnOnce(u64) -> Option<ResolvConf>) {
        let Some((key, kind)) = profile_key(&ev.who) else {
            return;
        };
        let now = event_time(ev);
        // The container's own programs only: the runtime's processes (runc init before its
        // pivot_root) still see the host's filesystem.
        if let (
            Some(scanner),
            Some(container_id),
            Some(pid),
            Detail::Exec {
                path, exe, args, ..
            },
        ) = (&self.packages, &ev.who.container_id, ev.pid, &ev.detail)
            && !runtime::is_runtime_reexec(path, exe.as_deref(), args)
        {
            scanner.on_process(&key, container_id, pid, now);
        }
        let cgroup_id = ev.who.cgroup_id;
        let preexisting = self.preexisting.contains(&cgroup_id);
        let pod = ev.who.pod.clone().unwrap_or_default();
        if let Detail::Dns { .. } = &ev.detail {
            self.resolv
                .entry(cgroup_id)
                .or_insert_with(|| resolv_conf(cgroup_id).unwrap_or_default());
        }
        let resolv = self.resolv.get(&cgroup_id).cloned().unwrap_or_default();
        // Final counters of a flow whose cgroup is gone: only what the periodic reads have not
        // counted yet.
        let flow_final = match &ev.detail {
            Detail::Flow {
                protocol,
                direction,
                remote_ip,
                remote_port,
                local_port,
                connections,
                bytes_sent,
                bytes_recv,
                ..
            } => {
                let Some(proto) = protocol_from_name(protocol) else {
                    return;
                };
                let (dir, port) = if *direction == "ingress" {
                    (Direction::Ingress, *local_port)
                } else {
                    (Direction::Egress, *remote_port)
                };
                let id = FlowId {
                    direction: dir,
                    ip: *remote_ip,
                    port,
                    protocol: proto,
                };
                let total = FlowStats {
                    connections: *connections,
                    bytes_sent: *bytes_sent,
                    bytes_recv: *bytes_recv,
                    ..Default::default()
                };
                let before =
                    self.last_flows
                        .remove(&kernel_key(cgroup_id, &id, *remote_port, *local_port));
                let d = delta(&total, before.as_ref());
                self.window.entry((key.clone(), id)).or_default().add(d);
                Some((id, d, self.peer(remote_ip)))
            }
            _ => None,
        };
        let node = self.node.clone();
        let mut store = self.store.write().expect("profile store lock");
        store.update(&key, kind, now, preexisting, &pod, &node, |p| {
            let identity = record_identity(p, &ev.who, now);
            identity
                | match &ev.detail {
                    Detail::Exec {
                        path, exe, args, ..
                    } => {
                        !runtime::is_runtime_reexec(path, exe.as_deref(), args)
                            && p.record_exec(path, args, now)
                    }
                    Detail::File { path, pattern, .. } => p.record_file(path, pattern, now),
                    Detail::Syscalls {
                        native,
                        compat,
                        setup_native,
                        setup_compat,
                        ..
                    } => {
                        p.record_syscalls(native, compat, now)
                            | p.record_runtime_setup(setup_native, setup_compat, now)
                    }
                    Detail::Dns {
                        question,
                        server_ip,
                        answers,
                        ..
                    } => {
                        let addresses: Vec<IpAddr> = answers.iter().map(|a| a.ip).collect();
                        let resolver = Resolver {
                            ip: *server_ip,
                            cluster_dns: resolv.cluster_search
                                && resolv.nameservers.contains(server_ip),
                        };
                        p.record_dns(question, &addresses, resolver, now)
                    }
                    Detail::Flow { remote_names, .. } => match &flow_final {
                        Some((id, d, peer)) => {
                            p.record_flow(*id, *d, remote_names, now)
                                | peer
                                    .as_ref()
                                    .is_some_and(|peer| p.record_peer(*id, peer, now))
                        }
                        None => false,
                    },
                    Detail::Connect { .. } | Detail::Accept { .. } | Detail::Exit { .. } => false,
                }
        });
    }

    /// Periodic read of every syscall bitmap: live containers' sets reach their profiles long
    /// before the containers exit.
    pub fn on_syscall_sets(
        &mut self,
        sets: &[(u64, SyscallSet)],
        attribute: &mut dyn FnMut(u64) -> Arc<Attribution>,
        now: Timestamp,
    ) {
        let mut store = self.store.write().expect("profile store lock");
        for (cgroup_id, set) in sets {
            let who = attribute(*cgroup_id);
            let Some((key, kind)) = profile_key(&who) else {
                continue;
            };
            let pod = who.pod.clone().unwrap_or_default();
            let n = named(set);
            let preexisting = self.preexisting.contains(cgroup_id);
            store.update(&key, kind, now, preexisting, &pod, &self.node, |p| {
                record_identity(p, &who, now)
                    | p.record_syscalls(&n.native, &n.compat, now)
                    | p.record_runtime_setup(&n.setup_native, &n.setup_compat, now)
            });
        }
    }

    /// Periodic read of the flow counters: deltas since the last read go to the profiles.
    pub fn on_flows(
        &mut self,
        flows: &[(FlowKey, FlowStats)],
        attribute: &mut dyn FnMut(u64) -> Arc<Attribution>,
        names: &dyn Fn(u64, &IpAddr) -> Vec<String>,
        now: Timestamp,
    ) {
        let mut store = self.store.write().expect("profile store lock");
        for (kkey, stats) in flows {
            let d = delta(stats, self.last_flows.get(kkey));
            if d.is_zero() && self.last_flows.contains_key(kkey) {
                continue;
            }
            self.last_flows.insert(*kkey, *stats);
            let who = attribute(kkey.cgroup_id);
            let Some((key, kind)) = profile_key(&who) else {
                continue;
            };
            let Some(id) = flow_id(kkey) else { continue };
            let pod = who.pod.clone().unwrap_or_default();
            let names = names(kkey.cgroup_id, &id.ip);
            let preexisting = self.preexisting.contains(&kkey.cgroup_id);
            let peer = self.peer(&id.ip);
            store.update(&key, kind, now, preexisting, &pod, &self.node, |p| {
                record_identity(p, &who, now)
                    | p.record_flow(id, d, &names, now)
                    | peer
                        .as_ref()
                        .is_some_and(|peer| p.record_peer(id, peer, now))
            });
            self.window.entry((key, id)).or_default().add(d);
        }
    }

    /// Closes the current rate window; returns what each profile flow did in it (for the
    /// volume rules).
    pub fn close_window(
        &mut self,
        window_seconds: u64,
        now: Timestamp,
    ) -> Vec<(ProfileKey, FlowId, FlowDelta)> {
        let mut store = self.store.write().expect("profile store lock");
        let mut totals = Vec::with_capacity(self.window.len());
        for ((key, id), total) in self.window.drain() {
            store.update_existing(&key, |p| p.record_window(id, total, window_seconds, now));
            totals.push((key, id, total));
        }
        totals
    }

    /// A cgroup is gone: forget its per-cgroup caches.
    pub fn forget_cgroup(&mut self, cgroup_id: u64) {
        self.resolv.remove(&cgroup_id);
        self.preexisting.remove(&cgroup_id);
    }
}

/// The kernel aggregate key of a profile flow seen in a final flow event.
fn kernel_key(cgroup_id: u64, id: &FlowId, remote_port: u16, local_port: u16) -> FlowKey {
    let remote_addr = match id.ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    FlowKey {
        cgroup_id,
        remote_addr,
        remote_port,
        local_port,
        protocol: match id.protocol {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        },
        direction: match id.direction {
            Direction::Egress => flow_direction::EGRESS,
            Direction::Ingress => flow_direction::INGRESS,
        },
        _pad: [0; 2],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_tells_cluster_dns_apart() {
        let k8s = "search team-a.svc.cluster.local svc.cluster.local cluster.local ec2.internal\nnameserver 10.100.0.10\noptions ndots:5\n";
        let c = parse_resolv_conf(k8s);
        assert_eq!(
            c.nameservers,
            vec!["10.100.0.10".parse::<IpAddr>().unwrap()]
        );
        assert!(c.cluster_search);
        let host = parse_resolv_conf("nameserver 1.1.1.1\nnameserver 2606:4700:4700::1111\n");
        assert_eq!(host.nameservers.len(), 2);
        assert!(!host.cluster_search);
        assert!(
            parse_resolv_conf("garbage\nnameserver not-an-ip\n")
                .nameservers
                .is_empty()
        );
    }

    #[test]
    fn kernel_keys_round_trip_through_profile_flow_ids() {
        let id = FlowId {
            direction: Direction::Egress,
            ip: "10.1.2.3".parse().unwrap(),
            port: 443,
            protocol: Protocol::Tcp,
        };
        let k = kernel_key(7, &id, 443, 0);
        assert_eq!(flow_id(&k), Some(id));
        let id6 = FlowId {
            direction: Direction::Ingress,
            ip: "fd00::1".parse().unwrap(),
            port: 8080,
            protocol: Protocol::Tcp,
        };
        let k6 = kernel_key(7, &id6, 0, 8080);
        assert_eq!(flow_id(&k6), Some(id6));
    }

    #[test]
    fn deltas_never_go_negative() {
        let a = FlowStats {
            connections: 5,
            bytes_sent: 10,
            bytes_recv: 20,
            ..Default::default()
        };
        let b = FlowStats {
            connections: 7,
            bytes_sent: 15,
            bytes_recv: 20,
            ..Default::default()
        };
        assert_eq!(
            delta(&b, Some(&a)),
            FlowDelta {
                connections: 2,
                bytes_sent: 5,
                bytes_recv: 0
            }
        );
        assert_eq!(delta(&a, Some(&b)), FlowDelta::default());
        assert_eq!(
            delta(&a, None),
            FlowDelta {
                connections: 5,
                bytes_sent: 10,
                bytes_recv: 20
            }
        );
    }
}
