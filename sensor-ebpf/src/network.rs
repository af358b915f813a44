//! Network flows, aggregated in the kernel, and DNS answers.
//!
//! - connect (TCP and UDP) and unconnected UDP sends: cgroup sock_addr hooks, in the caller's
//!   context (pid, cgroup), IPv4 and IPv6.
//! - accept: a TCP SYN delivered to a listening socket (cgroup_skb ingress, keyed by the
//!   listener's cgroup), which also means bytes sent before accept() returns are counted. No
//!   fexit of `inet_csk_accept` (not every kernel allows trampolines) and no syscall-exit
//!   tracepoint (it would slow every syscall).
//! - bytes and packets: cgroup_skb ingress/egress on the cgroup2 root, keyed by the socket's
//!   cgroup; a packet only updates counters of a flow opened by one of the hooks above.
//! - DNS: payloads of packets from port 53 delivered to a socket, copied to user space, with
//!   the process that sent the query on that socket (socket cookie, remembered at send).
//!
//! A flow aggregate is (cgroup, peer address, service port, protocol, direction); its first
//! sighting is one event, after that only counters move.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns,
        generated::{bpf_get_socket_cookie, bpf_skb_cgroup_id, bpf_skb_load_bytes},
    },
    macros::{cgroup_skb, cgroup_sock_addr},
    programs::{SkBuffContext, SockAddrContext},
};
use sensor_common::{
    DnsEvent, EventKind, FlowEvent, FlowKey, FlowOrigin, FlowStats, ListenerKey, Stat, dns_flags,
    flow_direction, limits::MAX_DNS_PAYLOAD,
};

use crate::{
    kernel::{current_file, read_at, read_ptr},
    maps::{DNS_CLIENTS, FLOWS, LISTENERS, conf, count, reserve, socket_header},
};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86DD;
const DNS_PORT: u16 = 53;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

/// Allow: these hooks observe, they never block.
const ALLOW: i32 = 1;

#[inline(always)]
fn mapped_v4(addr_be: u32) -> [u8; 16] {
    let b = addr_be.to_ne_bytes();
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, b[0], b[1], b[2], b[3],
    ]
}

#[inline(always)]
fn v6_words(words: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let b = words[i].to_ne_bytes();
        out[i * 4] = b[0];
        out[i * 4 + 1] = b[1];
        out[i * 4 + 2] = b[2];
        out[i * 4 + 3] = b[3];
        i += 1;
    }
    out
}

/// Records one more connection (or the first send) on a flow; its first sighting is reported
/// (once per aggregate). `pid_tgid` is the acting thread's (`bpf_get_current_pid_tgid` in
/// process context), or the listener's pid in both halves for an accept seen in softirq, or 0.
#[inline(always)]
fn open_flow(
    key: &FlowKey,
    origin: FlowOrigin,
    local_addr: [u8; 16],
    increment: bool,
    pid_tgid: u64,
) {
    let pid = (pid_tgid >> 32) as u32;
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let stats = match FLOWS.get_ptr_mut(key) {
        Some(stats) => stats,
        None => {
            let fresh = FlowStats {
                first_seen_ns: now,
                last_seen_ns: now,
                connections: 0,
                pid,
                ..FlowStats::default()
            };
            match FLOWS.insert(key, fresh, BPF_NOEXIST as u64) {
                Ok(()) | Err(-17) => {} // EEXIST: another CPU created it first
                Err(_) => {
                    count(Stat::FlowMapFull);
                    return;
                }
            }
            let Some(stats) = FLOWS.get_ptr_mut(key) else {
                return;
            };
            stats
        }
    };
    unsafe {
        if increment || (*stats).connections == 0 {
            crate::atomic::add(&raw mut (*stats).connections, 1);
        }
        (*stats).last_seen_ns = now;
        if crate::atomic::test_and_set(&raw mut (*stats).reported) != 0 {
            return;
        }
        (*stats).pid = pid;
    }
    let Some(mut entry) = reserve::<FlowEvent>(EventKind::Flow) else {
        return;
    };
    // Not necessarily the current task: an accept is seen in softirq and names the listener.
    let h = socket_header(EventKind::Flow, key.cgroup_id, pid, pid_tgid as u32);
    entry.write(FlowEvent {
        header: h,
        key: *key,
        origin: origin as u32,
        _pad: 0,
        local_addr,
    });
    entry.submit(0);
}

#[inline(always)]
fn egress_key(cgroup_id: u64, remote_addr: [u8; 16], remote_port: u16, protocol: u8) -> FlowKey {
    FlowKey {
        cgroup_id,
        remote_addr,
        remote_port,
        local_port: 0,
        protocol,
        direction: flow_direction::EGRESS,
        _pad: [0; 2],
    }
}

#[inline(always)]
fn ingress_key(cgroup_id: u64, remote_addr: [u8; 16], local_port: u16, protocol: u8) -> FlowKey {
    FlowKey {
        cgroup_id,
        remote_addr,
        remote_port: 0,
        local_port,
        protocol,
        direction: flow_direction::INGRESS,
        _pad: [0; 2],
    }
}

#[inline(always)]
fn sock_addr_protocol(ctx: &SockAddrContext) -> Option<u8> {
    match unsafe { (*ctx.sock_addr).protocol } as u8 {
        IPPROTO_TCP => Some(IPPROTO_TCP),
        IPPROTO_UDP => Some(IPPROTO_UDP),
        _ => None,
    }
}

#[inline(always)]
fn on_sock_addr(ctx: &SockAddrContext, v6: bool, origin: FlowOrigin) {
    let Some(protocol) = sock_addr_protocol(ctx) else {
        return;
    };
    let (addr, port_raw) = unsafe {
        let sa = &*ctx.sock_addr;
        if v6 {
            (v6_words(sa.user_ip6), sa.user_port)
        } else {
            (mapped_v4(sa.user_ip4), sa.user_port)
        }
    };
    let port = u16::from_be(port_raw as u16);
    let cgroup_id = unsafe { aya_ebpf::helpers::bpf_get_current_cgroup_id() };
    let key = egress_key(cgroup_id, addr, port, protocol);
    let pid_tgid = bpf_get_current_pid_tgid();
    let pid = (pid_tgid >> 32) as u32;
    if port == DNS_PORT {
        // The answer arrives in softirq: remember who asked, by socket.
        let cookie = unsafe { bpf_get_socket_cookie(ctx.sock_addr.cast()) };
        let _ = DNS_CLIENTS.insert(cookie, pid, 0);
    }
    open_flow(
        &key,
        origin,
        [0; 16],
        origin == FlowOrigin::Connect,
        pid_tgid,
    );
}

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, false, FlowOrigin::Connect);
    ALLOW
}

#[cgroup_sock_addr(connect6)]
pub fn connect6(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, true, FlowOrigin::Connect);
    ALLOW
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, false, FlowOrigin::UdpSend);
    ALLOW
}

#[cgroup_sock_addr(sendmsg6)]
pub fn sendmsg6(ctx: SockAddrContext) -> i32 {
    on_sock_addr(&ctx, true, FlowOrigin::UdpSend);
    ALLOW
}

/// listen(fd, backlog), from `sys_enter`: remembers which process listens on which port of
/// which cgroup, so an incoming SYN (seen in softirq) can name it.
#[inline(never)]
pub fn on_listen(regs: *const u8) {
    unsafe {
        let fd =
            core::ptr::read_volatile(regs.wrapping_add(conf!(regs_arg0) as usize) as *const u64);
        let _ = remember_listener(fd as u32);
    }
}

#[inline(always)]
unsafe fn remember_listener(fd: u32) -> Option<()> {
    unsafe {
        let file = current_file(fd)?;
        let socket = read_ptr(file, conf!(file_private_data))?;
        let sk = read_ptr(socket, conf!(socket_sk))?;
        let family: u16 = read_at(sk, conf!(skc_family))?;
        if family != AF_INET && family != AF_INET6 {
            return None;
        }
        let port: u16 = read_at(sk, conf!(skc_num))?;
        if port == 0 {
            return None; // not bound yet: listen() will pick a port we cannot know here
        }
        let key = ListenerKey {
            cgroup_id: aya_ebpf::helpers::bpf_get_current_cgroup_id(),
            port,
            _pad: [0; 6],
        };
        let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        LISTENERS.insert(key, pid, 0).ok()
    }
}

/// Addresses and ports of a packet, from its IP and transport headers.
struct Packet {
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    protocol: u8,
    /// Offset of the transport header.
    l4: u32,
}

#[inline(always)]
fn parse(skb: &SkBuffContext) -> Option<Packet> {
    let proto = unsafe { (*skb.skb.skb).protocol };
    if proto == (ETH_P_IP as u16).to_be() as u32 {
        let hdr: [u8; 20] = skb.load(0).ok()?;
        let ihl = ((hdr[0] & 0x0f) as u32) * 4;
        let protocol = hdr[9];
        if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP {
            return None;
        }
        // Not the first fragment: no transport header.
        if (u16::from_be_bytes([hdr[6], hdr[7]]) & 0x1fff) != 0 {
            return None;
        }
        let ports: [u8; 4] = skb.load(ihl as usize).ok()?;
        let s = u32::from_ne_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]);
        let d = u32::from_ne_bytes([hdr[16], hdr[17], hdr[18], hdr[19]]);
        Some(Packet {
            src: mapped_v4(s),
            dst: mapped_v4(d),
            sport: u16::from_be_bytes([ports[0], ports[1]]),
            dport: u16::from_be_bytes([ports[2], ports[3]]),
            protocol,
            l4: ihl,
        })
    } else if proto == (ETH_P_IPV6 as u16).to_be() as u32 {
        let hdr: [u8; 40] = skb.load(0).ok()?;
        // Extension headers are not followed: such packets are not counted.
        let protocol = hdr[6];
        if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP {
            return None;
        }
        let ports: [u8; 4] = skb.load(40).ok()?;
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&hdr[8..24]);
        dst.copy_from_slice(&hdr[24..40]);
        Some(Packet {
            src,
            dst,
            sport: u16::from_be_bytes([ports[0], ports[1]]),
            dport: u16::from_be_bytes([ports[2], ports[3]]),
            protocol,
            l4: 40,
        })
    } else {
        None
    }
}

#[inline(always)]
fn account(skb: &SkBuffContext, egress: bool) {
    let Some(pkt) = parse(skb) else {
        return;
    };
    let skb_ptr = skb.skb.skb;
    let cgroup_id = unsafe { bpf_skb_cgroup_id(skb_ptr) };
    let len = skb.len() as u64;
    let (remote, remote_port, local_port) = if egress {
        (pkt.dst, pkt.dport, pkt.sport)
    } else {
        (pkt.src, pkt.sport, pkt.dport)
    };
    if !egress
        && pkt.protocol == IPPROTO_TCP
        && let Ok(flags) = skb.load::<u8>(pkt.l4 as usize + 13)
        && flags & (TCP_SYN | TCP_ACK) == TCP_SYN
    {
        // A connection request reaching a listener: the accept side of a flow, keyed by the
        // listener's cgroup. Softirq context: the process is found in user space (the holder
        // of the listening socket).
        let key = ingress_key(cgroup_id, remote, local_port, IPPROTO_TCP);
        let listener = ListenerKey {
            cgroup_id,
            port: local_port,
            _pad: [0; 6],
        };
        let pid = unsafe { LISTENERS.get(listener) }.copied().unwrap_or(0) as u64;
        open_flow(&key, FlowOrigin::Accept, pkt.dst, true, (pid << 32) | pid);
    }
    let stats = FLOWS
        .get_ptr_mut(egress_key(cgroup_id, remote, remote_port, pkt.protocol))
        .or_else(|| FLOWS.get_ptr_mut(ingress_key(cgroup_id, remote, local_port, pkt.protocol)));
    if let Some(stats) = stats {
        unsafe {
            let (bytes, packets) = if egress {
                (&raw mut (*stats).bytes_sent, &raw mut (*stats).packets_sent)
            } else {
                (&raw mut (*stats).bytes_recv, &raw mut (*stats).packets_recv)
            };
            crate::atomic::add(bytes, len);
            crate::atomic::add(packets, 1);
            (*stats).last_seen_ns = bpf_ktime_get_boot_ns();
        }
    }
    if !egress && pkt.sport == DNS_PORT {
        dns_answer(skb, &pkt, cgroup_id);
    }
}

#[inline(always)]
fn dns_answer(skb: &SkBuffContext, pkt: &Packet, cgroup_id: u64) {
    let mut offset = pkt.l4;
    let mut flags = 0;
    if pkt.protocol == IPPROTO_UDP {
        offset += 8;
    } else {
        let Ok(doff) = skb.load::<u8>(pkt.l4 as usize + 12) else {
            return;
        };
        offset += ((doff >> 4) as u32) * 4;
        flags |= dns_flags::TCP;
    }
    let total = skb.len();
    if total <= offset {
        return; // no payload (bare ACK, FIN...)
    }
    let wire_len = total - offset;
    let mut len = wire_len;
    if len > MAX_DNS_PAYLOAD as u32 {
        len = MAX_DNS_PAYLOAD as u32;
        flags |= dns_flags::TRUNCATED;
    }
    let Some(mut entry) = reserve::<DnsEvent>(EventKind::Dns) else {
        return;
    };
    let ev = entry.as_mut_ptr();
    unsafe {
        // Softirq context: the current task is unrelated; the socket's cgroup is what counts.
        let cookie = bpf_get_socket_cookie(skb.skb.skb.cast());
        let pid = DNS_CLIENTS.get(cookie).copied().unwrap_or(0);
        (*ev).header = socket_header(EventKind::Dns, cgroup_id, pid, pid);
        (*ev).flags = flags;
        (*ev).wire_len = wire_len;
        (*ev).server_addr = pkt.src;
        (*ev).client_addr = pkt.dst;
        (*ev).server_port = pkt.sport;
        (*ev).client_port = pkt.dport;
        // Bound for the verifier: 1..=MAX_DNS_PAYLOAD (a power of two).
        let n = ((len - 1) & (MAX_DNS_PAYLOAD as u32 - 1)) + 1;
        let ok = bpf_skb_load_bytes(
            skb.skb.skb.cast(),
            offset,
            (&raw mut (*ev).payload).cast(),
            n,
        ) == 0;
        (*ev).payload_len = if ok { n } else { 0 };
    }
    entry.submit(0);
}

#[cgroup_skb(ingress)]
pub fn skb_ingress(ctx: SkBuffContext) -> i32 {
    account(&ctx, false);
    ALLOW
}

#[cgroup_skb(egress)]
pub fn skb_egress(ctx: SkBuffContext) -> i32 {
    account(&ctx, true);
    ALLOW
}
