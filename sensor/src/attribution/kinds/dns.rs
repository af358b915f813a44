//! DNS answers delivered to a container: parsed (`attribution/dns.rs`; TCP segments reassembled
//! first) into `dns` events, and remembered per container as address -> names for its flows.
//! A payload that cannot be used is counted as a loss, in total at once and by workload once
//! the container is named (as its held events are).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use sensor_common::dns_flags;

use super::Context;
use crate::{
    attribution::{
        dns::{self as parser, TcpReassembler, TcpStreamKey},
        event::{Detail, DnsAnswerRecord, Event, ip_from_mapped},
        workload_losses::{PendingLosses, WorkloadCounter},
    },
    capture::kinds::dns::{Record, payload},
};

/// DNS-learned names kept per container (address -> names), bounded.
const NAMES_PER_CGROUP: usize = 4096;
/// Partial DNS-over-TCP messages held at once.
const TCP_DNS_STREAMS: usize = 256;

/// What DNS keeps between records.
pub struct State {
    tcp: TcpReassembler,
    /// Per cgroup: address -> the names its answers gave it.
    names: HashMap<u64, HashMap<IpAddr, Vec<String>>>,
    /// Unparsable DNS payloads by workload (metrics); bumped on that loss path only.
    unparsed_by_workload: Arc<WorkloadCounter>,
    /// Those losses whose container is not named yet.
    unparsed_pending: PendingLosses,
}

impl Default for State {
    fn default() -> Self {
        Self {
            tcp: TcpReassembler::new(TCP_DNS_STREAMS),
            names: HashMap::new(),
            unparsed_by_workload: Arc::default(),
            unparsed_pending: Default::default(),
        }
    }
}

impl State {
    /// Names the container of `cgroup_id` resolved `ip` to (from the DNS answers it received).
    pub fn remote_names(&self, cgroup_id: u64, ip: &IpAddr) -> Vec<String> {
        self.names
            .get(&cgroup_id)
            .and_then(|m| m.get(ip))
            .cloned()
            .unwrap_or_default()
    }

    /// The unparsable payloads counted by workload (the metrics endpoint reads it).
    pub fn unparsed_by_workload(&self) -> &Arc<WorkloadCounter> {
        &self.unparsed_by_workload
    }

    /// Drops a removed cgroup's names.
    pub fn forget(&mut self, cgroup_id: u64) {
        self.names.remove(&cgroup_id);
    }
}

pub fn attribute(d: &Record, cx: &mut Context<'_>, out: &mut Vec<Event>) {
    let payload = payload(d);
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
            cx.dns.tcp.remove(&key);
            unparsed(cx, cgroup_id, d.header.pid);
            return;
        }
        cx.dns.tcp.push(key, payload)
    } else {
        vec![payload.to_vec()]
    };
    for msg in messages {
        match parser::parse_answer(&msg) {
            Ok(answer) => {
                let by_address = parser::names_by_address(&answer);
                let names = cx.dns.names.entry(cgroup_id).or_default();
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
                out.push(cx.event(d.header.ts_ns, cgroup_id, d.header.pid, detail));
            }
            Err(parser::DnsError::NotAResponse) => {}
            Err(_) => unparsed(cx, cgroup_id, d.header.pid),
        }
    }
}

/// A DNS payload that cannot be used: counted in total now, and for its workload once the
/// container is named (as its held events are).
fn unparsed(cx: &mut Context<'_>, cgroup_id: u64, pid: u32) {
    cx.collector
        .counters
        .dns_unparsed
        .fetch_add(1, Ordering::Relaxed);
    if !cx.dns.unparsed_pending.push(cgroup_id, pid) {
        let who = cx.attributor.attribute(cgroup_id, pid);
        cx.dns.unparsed_by_workload.add(&who, 1);
    }
}

/// Counts pending losses by workload: named ones, those older than `hold`, and those of removed
/// cgroups (before their state is forgotten) or all with `force`.
pub fn settle_losses(cx: &mut Context<'_>, hold: Duration, force: bool) {
    let dns = &mut *cx.dns;
    if dns.unparsed_pending.is_empty() {
        return;
    }
    let (removed, attributor) = (&*cx.removed, &mut *cx.attributor);
    dns.unparsed_pending.settle(
        hold,
        |cgroup_id| force || removed.contains(&cgroup_id),
        |cgroup_id, pid| attributor.attribute(cgroup_id, pid),
        &dns.unparsed_by_workload,
    );
}
