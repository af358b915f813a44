//! Flows: a new aggregate's first sighting (`connect` or `accept`, from its record), and the
//! aggregate's counters as a `flow` summary (read from the flow map by the pipeline's sweeps).
//! Remote addresses are named from the DNS answers the container received (`dns.rs`).

use sensor_common::{FlowKey, FlowOrigin, FlowStats, flow_direction};

use super::Context;
use crate::{
    attribution::event::{Detail, Event, ip_from_mapped, protocol_name},
    capture::kinds::flow::Record,
};

pub fn attribute(f: &Record, cx: &mut Context<'_>, out: &mut Vec<Event>) {
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
            remote_names: cx.dns.remote_names(k.cgroup_id, &remote_ip),
        },
    };
    out.push(cx.event(f.header.ts_ns, k.cgroup_id, f.header.pid, detail));
}

/// A flow aggregate's counters as a `flow` event.
pub fn summary(cx: &mut Context<'_>, key: &FlowKey, stats: &FlowStats) -> Event {
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
        remote_names: cx.dns.remote_names(key.cgroup_id, &remote_ip),
    };
    cx.event(stats.last_seen_ns, key.cgroup_id, stats.pid, detail)
}
