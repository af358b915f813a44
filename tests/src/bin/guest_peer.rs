//! The network peers of the QEMU guest (tests/tests/kernel_61.rs): a DNS server and a TCP
//! server on one address, for the guest workload to query and connect to.
//!
//! Why a binary: the guest initramfs has busybox and no Python, and busybox has no DNS server;
//! this runs there with the same shared libraries as the sensor.
//!
//! `guest_peer <ip> <tcp port> <name>=<ipv4>...`: answers UDP DNS queries on `<ip>:53` (type A
//! for the listed names, TTL 60; NXDOMAIN for any other name), and on `<ip>:<tcp port>` reads
//! each connection to EOF and replies `received <n>\n`. Prints `ready` once both listen.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

use sensor_tests::dns_client::TYPE_A;

/// TTL of every answer (the capture test checks 0 < ttl <= 300).
const TTL: u32 = 60;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ip, port, records @ ..] = args.as_slice() else {
        eprintln!("usage: guest_peer <ip> <tcp port> <name>=<ipv4>...");
        std::process::exit(2);
    };
    let zone: HashMap<String, Ipv4Addr> = records
        .iter()
        .map(|r| {
            let (name, addr) = r.split_once('=').expect("record is <name>=<ipv4>");
            (
                name.to_ascii_lowercase(),
                addr.parse().expect("record address is an IPv4 address"),
            )
        })
        .collect();
    let udp = UdpSocket::bind((ip.as_str(), 53)).expect("bind DNS port 53");
    let tcp = TcpListener::bind(format!("{ip}:{port}")).expect("bind the TCP port");
    std::thread::spawn(move || serve_tcp(tcp));
    println!("ready");
    serve_dns(&udp, &zone);
}

fn serve_tcp(listener: TcpListener) {
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let mut buf = Vec::new();
        if s.read_to_end(&mut buf).is_ok() {
            let _ = s.write_all(format!("received {}\n", buf.len()).as_bytes());
        }
    }
}

fn serve_dns(udp: &UdpSocket, zone: &HashMap<String, Ipv4Addr>) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = answer(&buf[..n], zone) {
            let _ = udp.send_to(&reply, from);
        }
    }
}

/// The reply to one query: the question echoed, then an A record or NXDOMAIN. `None` for a
/// message that is not a one-question query.
fn answer(query: &[u8], zone: &HashMap<String, Ipv4Addr>) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    let (name, end) = question_name(query)?;
    let question = query.get(12..end + 4)?;
    let qtype = u16::from_be_bytes([query[end], query[end + 1]]);
    let found = zone.get(&name.to_ascii_lowercase());
    let answer = found.filter(|_| qtype == TYPE_A);
    // QR, opcode 0, AA, RD copied; RA; rcode 3 (NXDOMAIN) for an unknown name.
    let rcode = if found.is_some() { 0 } else { 3 };
    let mut m = vec![query[0], query[1], 0x84 | (query[2] & 0x01), 0x80 | rcode];
    m.extend_from_slice(&[0, 1, 0, u8::from(answer.is_some()), 0, 0, 0, 0]);
    m.extend_from_slice(question);
    if let Some(addr) = answer {
        m.extend_from_slice(&[0xc0, 12]); // the name: a pointer to the question's
        m.extend_from_slice(&TYPE_A.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes()); // class IN
        m.extend_from_slice(&TTL.to_be_bytes());
        m.extend_from_slice(&4u16.to_be_bytes());
        m.extend_from_slice(&addr.octets());
    }
    Some(m)
}

/// The question's name (dotted) and the offset just past it (where QTYPE starts).
fn question_name(m: &[u8]) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut pos = 12;
    loop {
        let len = *m.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // a compression pointer never appears in a query's question
        }
        labels.push(String::from_utf8_lossy(m.get(pos..pos + len)?).into_owned());
        pos += len;
    }
    (m.len() >= pos + 4).then(|| (labels.join("."), pos))
}
