//! The user-space pipeline: decoded kernel events in, attributed [`Event`]s out. Keeps the
//! attribution state current (cgroups, processes, DNS names per container) and flushes a
//! container's syscall set and flows when its cgroup is removed.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::IpAddr,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use sensor_common::{
    CgroupEvent, DnsEvent, ExecEvent, FileEvent, FlowEvent, FlowKey, FlowOrigin, FlowStats,
    SyscallSet, dns_flags, exec_flags, file_flags, flow_direction,
};

use crate::{
    attribution::dns::{self, TcpReassembler, TcpStreamKey},
    attribution::event::{
        Detail, DnsAnswerRecord, Event, ip_from_mapped, protocol_name, wait_status,
    },
    attribution::{Attribution, Attributor, Scope, processes::ProcessInfo},
    capture::{
        Collector, KernelEvent,
        decode::{c_str, exec_exe, opened_path, requested_path, split_args},
        kinds,
        patterns::{SensitivePattern, canonical_path, match_path},
        syscall_sets::named,
    },
    clock::BootClock,
};

/// How long events of a container whose names are not known yet are held back: kubelet writes
/// the container-log symlink only after the container started.
const HOLD: Duration = Duration::from_secs(2);
/// Events held at once (beyond that they go out with what is known).
const MAX_HELD: usize = 16 * 1024;

/// DNS-learned names kept per container (address -> names), bounded.
const NAMES_PER_CGROUP: usize = 4096;
/// Partial DNS-over-TCP messages held at once.
const TCP_DNS_STREAMS: usize = 256;

pub struct Pipeline {
    pub attributor: Attributor,
    clock: BootClock,
    node: Arc<str>,
    patterns: Vec<SensitivePattern>,
    tcp_dns: TcpReassembler,
    names: HashMap<u64, HashMap<IpAddr, Vec<String>>>,
    /// Removed cgroups whose flows are drained at the next sweep.
    removed: HashSet<u64>,
    /// Events of cgroups whose names are incomplete, per cgroup, oldest first.
    held: HashMap<u64, VecDeque<(Instant, Event)>>,
    held_count: usize,
    /// Unparsable DNS payloads by workload (metrics); bumped on that loss path only.
    pub dns_unparsed_by_workload: Arc<crate::attribution::workload_losses::WorkloadCounter>,
    /// Those losses whose container is not named yet.
    dns_unparsed_pending: crate::attribution::workload_losses::PendingLosses,
}

impl Pipeline {
    pub fn new(attributor: Attributor, node: Arc<str>, patterns: Vec<SensitivePattern>) -> Self {
        Self {
            attributor,
            clock: BootClock::new(),
            node,
            patterns,
            tcp_dns: TcpReassembler::new(TCP_DNS_STREAMS),
            names: HashMap::new(),
            removed: HashSet::new(),
            held: HashMap::new(),
            held_count: 0,
            dns_unparsed_by_workload: Arc::default(),
            dns_unparsed_pending: Default::default(),
        }
    }

    /// Sends an event out, or holds it while its container's names may still appear. Events of
    /// a cgroup with held events are held too, so per-cgroup order is kept.
    fn route(&mut self, ev: Event, out: &mut Vec<Event>) {
        let cgroup_id = ev.who.cgroup_id;
        if (!ev.who.is_complete() || self.held.contains_key(&cgroup_id))
            && self.held_count < MAX_HELD
        {
            self.held
                .entry(cgroup_id)
                .or_default()
                .push_back((Instant::now(), ev));
            self.held_count += 1;
        } else {
            out.push(ev);
        }
    }

    /// Re-resolves held cgroups; releases their events once the names are known or the hold
    /// expired (or always, with `force`).
    pub fn release_held(&mut self, out: &mut Vec<Event>, force: bool) {
        if self.held.is_empty() {
            return;
        }
        let cgroups: Vec<u64> = self.held.keys().copied().collect();
        for cgroup_id in cgroups {
            let Some(queue) = self.held.get(&cgroup_id) else {
                continue;
            };
            let oldest = queue.front().map(|(t, _)| *t);
            let pid = queue.iter().find_map(|(_, e)| e.pid).unwrap_or(0);
            let who = self.attributor.attribute(cgroup_id, pid);
            let expired = oldest.is_some_and(|t| t.elapsed() >= HOLD);
            if who.is_complete() || expired || force {
                let queue = self.held.remove(&cgroup_id).unwrap_or_default();
                self.held_count -= queue.len();
                out.extend(queue.into_iter().map(|(_, mut e)| {
                    e.who = who.clone();
                    e
                }));
            }
        }
    }

    fn event(&mut self, ts_ns: u64, cgroup_id: u64, pid: u32, detail: Detail) -> Event {
        let who = self.attributor.attribute(cgroup_id, pid);
        self.event_for(ts_ns, who, pid, detail)
    }

    fn event_for(&self, ts_ns: u64, who: Arc<Attribution>, pid: u32, detail: Detail) -> Event {
        let (ppid, comm) = match self.attributor.processes.get(pid) {
            Some(p) if pid != 0 => (Some(p.ppid), Some(p.comm.clone())),
            _ => (None, None),
        };
        Event {
            time: self.clock.rfc3339(ts_ns),
            kind: detail.kind(),
            node: self.node.clone(),
            who,
            pid: (pid != 0).then_some(pid),
            ppid,
            comm,
            detail,
        }
    }

    pub fn handle(&mut self, event: KernelEvent, collector: &mut Collector, out: &mut Vec<Event>) {
        let mut fresh = Vec::new();
        self.decode_event(event, collector, &mut fresh);
        for ev in fresh {
            self.route(ev, out);
        }
    }

    fn decode_event(
        &mut self,
        event: KernelEvent,
        collector: &mut Collector,
        out: &mut Vec<Event>,
    ) {
        match event {
            KernelEvent::Fork(f) => {
                self.attributor
                    .processes
                    .fork(f.header.pid, f.child_pid, f.header.cgroup_id);
            }
            KernelEvent::Exec(e) => out.push(self.exec(&e)),
            KernelEvent::Exit(x) => {
                let pid = x.header.pid;
                let (exit_code, signal) = wait_status(x.exit_code);
                let ev = self.event(
                    x.header.ts_ns,
                    x.header.cgroup_id,
                    pid,
                    Detail::Exit { exit_code, signal },
                );
                self.attributor.processes.exit(pid);
                out.push(ev);
            }
            KernelEvent::CgroupMkdir(c) => self.cgroup_created(&c),
            KernelEvent::CgroupRmdir(c) => self.cgroup_removed(&c, collector, out),
            KernelEvent::Flow(f) => out.push(self.flow_opened(&f)),
            KernelEvent::Dns(d) => self.dns(&d, collector, out),
            KernelEvent::FileOpen(f) => out.extend(self.file(&f)),
        }
    }

    fn exec(&mut self, e: &ExecEvent) -> Event {
        let h = e.header;
        let path = c_str(&e.filename[..e.filename_len as usize]);
        let args = split_args(&e.args[..e.args_len as usize]);
        let comm = c_str(&e.comm);
        self.attributor.processes.exec(ProcessInfo {
            pid: h.pid,
            ppid: e.ppid,
            comm,
            path: path.clone(),
            args: args.clone(),
            cgroup_id: h.cgroup_id,
            exited: false,
        });
        let exe = exec_exe(e).filter(|x| *x != path);
        let detail = Detail::Exec {
            path,
            exe,
            args,
            args_truncated: e.flags & (exec_flags::ARGS_TRUNCATED | exec_flags::ARGS_UNREADABLE)
                != 0,
            path_truncated: e.flags & exec_flags::FILENAME_TRUNCATED != 0,
            uid: e.uid,
            workload_start: e.flags & exec_flags::WORKLOAD_START != 0,
        };
        self.event(h.ts_ns, h.cgroup_id, h.pid, detail)
    }

    fn cgroup_created(&mut self, c: &CgroupEvent) {
        let path = kinds::cgroup::path(c);
        self.attributor.cgroup_created(c.id, path);
    }

    fn cgroup_removed(&mut self, c: &CgroupEvent, collector: &mut Collector, out: &mut Vec<Event>) {
        if let Some(set) = collector.syscall_sets.drain(c.id) {
            out.push(self.syscalls_event(c.header.ts_ns, c.id, &set, true));
        }
        self.removed.insert(c.id);
        self.attributor.cgroup_removed(c.id);
    }

    fn syscalls_event(
        &mut self,
        ts_ns: u64,
        cgroup_id: u64,
        set: &SyscallSet,
        is_final: bool,
    ) -> Event {
        let n = named(set);
        self.event(
            ts_ns,
            cgroup_id,
            0,
            Detail::Syscalls {
                native: n.native,
                compat: n.compat,
                setup_native: n.setup_native,
                setup_compat: n.setup_compat,
                is_final,
            },
        )
    }

    /// Names the container of `cgroup_id` resolved `ip` to (from the DNS answers it received).
    pub fn remote_names_of(&self, cgroup_id: u64, ip: &IpAddr) -> Vec<String> {
        self.remote_names(cgroup_id, ip)
    }

    fn remote_names(&self, cgroup_id: u64, ip: &IpAddr) -> Vec<String> {
        self.names
            .get(&cgroup_id)
            .and_then(|m| m.get(ip))
            .cloned()
            .unwrap_or_default()
    }

    fn flow_opened(&mut self, f: &FlowEvent) -> Event {
        let k = f.key;
        let remote_ip = ip_from_mapped(k.remote_addr);
        let protocol = protocol_name(k.protocol);
        let detail = match FlowOrigin::try_from(f.origin) {
            Ok(FlowOrigin::Accept) => Detail::Accept {
                protocol,
                remote_ip,
                local_ip: ip_from_mapped(f.local_addr),
                local_port: k.local_port,
            },
            origin => Detail::Connect {
                protocol,
                remote_ip,
                remote_port: k.remote_port,
                origin: if origin == Ok(FlowOrigin::UdpSend) {
                    "udp-send"
                } else {
                    "connect"
                },
                remote_names: self.remote_names(k.cgroup_id, &remote_ip),
            },
        };
        self.event(f.header.ts_ns, k.cgroup_id, f.header.pid, detail)
    }

    fn flow_summary(&mut self, key: &FlowKey, stats: &FlowStats) -> Event {
        let remote_ip = ip_from_mapped(key.remote_addr);
        let detail = Detail::Flow {
            protocol: protocol_name(key.protocol),
            direction: if key.direction == flow_direction::INGRESS {
                "ingress"
            } else {
                "egress"
            },
            remote_ip,
            remote_port: key.remote_port,
            local_port: key.local_port,
            connections: stats.connections,
            bytes_sent: stats.bytes_sent,
            bytes_recv: stats.bytes_recv,
            packets_sent: stats.packets_sent,
            packets_recv: stats.packets_recv,
            remote_names: self.remote_names(key.cgroup_id, &remote_ip),
        };
        self.event(stats.last_seen_ns, key.cgroup_id, stats.pid, detail)
    }

    fn dns(&mut self, d: &DnsEvent, collector: &Collector, out: &mut Vec<Event>) {
        let payload = &d.payload[..d.payload_len as usize];
        let cgroup_id = d.header.cgroup_id;
        let tcp = d.flags & dns_flags::TCP != 0;
        let messages = if tcp {
            let key = TcpStreamKey {
                cgroup: cgroup_id,
                client_port: d.client_port,
                server_addr: d.server_addr,
                server_port: d.server_port,
            };
            if d.flags & dns_flags::TRUNCATED != 0 {
                // The stream's framing can no longer be trusted past a cut segment.
                self.tcp_dns.remove(&key);
                self.dns_unparsed(collector, cgroup_id, d.header.pid);
                return;
            }
            self.tcp_dns.push(key, payload)
        } else {
            vec![payload.to_vec()]
        };
        for msg in messages {
            match dns::parse_answer(&msg) {
                Ok(answer) => {
                    let by_address = dns::names_by_address(&answer);
                    let names = self.names.entry(cgroup_id).or_default();
                    for (ip, n) in &by_address {
                        if names.len() < NAMES_PER_CGROUP || names.contains_key(ip) {
                            names.insert(*ip, n.clone());
                        }
                    }
                    let ttl_of = |ip: &IpAddr| {
                        answer
                            .addresses
                            .iter()
                            .find(|(a, _)| a == ip)
                            .map(|(_, t)| *t)
                            .unwrap_or(0)
                    };
                    let answers = by_address
                        .into_iter()
                        .map(|(ip, names)| DnsAnswerRecord {
                            ttl: ttl_of(&ip),
                            ip,
                            names,
                        })
                        .collect();
                    let detail = Detail::Dns {
                        question: answer.question,
                        qtype: answer.qtype,
                        rcode: answer.rcode,
                        server_ip: ip_from_mapped(d.server_addr),
                        transport: if tcp { "tcp" } else { "udp" },
                        answers,
                    };
                    out.push(self.event(d.header.ts_ns, cgroup_id, d.header.pid, detail));
                }
                Err(dns::DnsError::NotAResponse) => {}
                Err(_) => self.dns_unparsed(collector, cgroup_id, d.header.pid),
            }
        }
    }

    /// A DNS payload that cannot be used: counted in total now, and for its workload once the
    /// container is named (as its held events are).
    fn dns_unparsed(&mut self, collector: &Collector, cgroup_id: u64, pid: u32) {
        collector
            .counters
            .dns_unparsed
            .fetch_add(1, Ordering::Relaxed);
        if !self.dns_unparsed_pending.push(cgroup_id, pid) {
            let who = self.attributor.attribute(cgroup_id, pid);
            self.dns_unparsed_by_workload.add(&who, 1);
        }
    }

    /// Counts pending DNS losses by workload: named ones, expired ones, and those of removed
    /// cgroups (before their state is forgotten) or all with `force`.
    fn settle_dns_losses(&mut self, force: bool) {
        if self.dns_unparsed_pending.is_empty() {
            return;
        }
        let (removed, attributor) = (&self.removed, &mut self.attributor);
        self.dns_unparsed_pending.settle(
            HOLD,
            |cgroup_id| force || removed.contains(&cgroup_id),
            |cgroup_id, pid| attributor.attribute(cgroup_id, pid),
            &self.dns_unparsed_by_workload,
        );
    }

    /// A candidate open (an anchor matched in the kernel): reported if a pattern matches the
    /// full path.
    fn file(&mut self, f: &FileEvent) -> Option<Event> {
        let h = f.header;
        let path = canonical_path(&opened_path(f));
        let pattern = match_path(&self.patterns, &path)?.text.clone();
        let requested = requested_path(f).filter(|r| *r != path);
        let detail = Detail::File {
            requested,
            path,
            pattern,
            path_truncated: f.flags & file_flags::RESOLVED_TRUNCATED != 0,
            compat: f.flags & file_flags::COMPAT != 0,
            open_flags: f.open_flags,
        };
        Some(self.event(h.ts_ns, h.cgroup_id, h.pid, detail))
    }

    /// Drains syscall sets whose cgroup is gone although its removal event never arrived
    /// (ring buffer full): without this their slots would leak. Call now and then.
    pub fn collect_orphans(&mut self, collector: &mut Collector, out: &mut Vec<Event>) {
        // Slots first, then the walk: a cgroup that had a slot and is missing from a later walk
        // is really gone (ids are never reused); the other order could drain a newborn cgroup.
        let with_slots = collector.syscall_sets.read_all();
        let live = self.attributor.live_cgroups();
        if live.is_empty() {
            return; // could not walk the cgroup fs: never drain on no information
        }
        let now = BootClock::boot_now_ns();
        for (cgroup_id, _) in with_slots {
            if !live.contains(&cgroup_id)
                && let Some(set) = collector.syscall_sets.drain(cgroup_id)
            {
                let ev = self.syscalls_event(now, cgroup_id, &set, true);
                self.route(ev, out);
                self.removed.insert(cgroup_id);
            }
        }
    }

    /// Periodic work: held events, and final flow summaries of removed cgroups (then their
    /// state is dropped).
    pub fn sweep(&mut self, collector: &mut Collector, out: &mut Vec<Event>) {
        self.release_held(out, false);
        self.settle_dns_losses(false);
        if self.removed.is_empty() {
            return;
        }
        let removed = std::mem::take(&mut self.removed);
        for (key, stats) in collector.flows.drain_cgroups(&removed) {
            let ev = self.flow_summary(&key, &stats);
            self.route(ev, out);
        }
        for id in removed {
            self.names.remove(&id);
            self.attributor.forget(id);
        }
    }

    /// At exit: syscall sets and flows of everything still alive (not final: they may grow).
    pub fn finish(&mut self, collector: &mut Collector, out: &mut Vec<Event>) {
        self.sweep(collector, out);
        self.release_held(out, true);
        self.settle_dns_losses(true);
        let now = BootClock::boot_now_ns();
        for (cgroup_id, set) in collector.syscall_sets.read_all() {
            let ev = self.syscalls_event(now, cgroup_id, &set, false);
            if ev.who.scope != Scope::Unknown {
                out.push(ev);
            }
        }
        for (key, stats) in collector.flows.read_all() {
            out.push(self.flow_summary(&key, &stats));
        }
    }
}
