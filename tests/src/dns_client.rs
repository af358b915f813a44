//! A minimal DNS stub client (UDP and TCP), for checking the test bed's DNS server from the host.
//!
//! Why: the self-tests must show the peer's DNS server answers correctly before the sensor's
//! DNS capture is blamed for anything. Decodes compressed names, so it also reads real servers.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub name: String,
    pub rtype: u16,
    pub ttl: u32,
    /// A/AAAA: the address; CNAME: the target name; other types: hex.
    pub data: String,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub id: u16,
    pub rcode: u8,
    pub answers: Vec<Answer>,
}

/// Encodes a query for `name`/`qtype` with id `id` and RD set.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// A DNS/TCP message: `msg` behind its 2-byte big-endian length.
pub fn tcp_frame(msg: &[u8]) -> Vec<u8> {
    let mut m = (msg.len() as u16).to_be_bytes().to_vec();
    m.extend_from_slice(msg);
    m
}

/// `bytes` as a `printf` format string of octal escapes (`\ooo`), binary-safe with busybox and
/// POSIX `printf`, and free of shell metacharacters (quote it with single quotes anyway).
pub fn printf_escaped(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:03o}")).collect()
}

/// Parses `od -An -tx1` output (hex byte pairs separated by whitespace) back into bytes.
pub fn parse_od_hex(text: &str) -> Result<Vec<u8>, String> {
    text.split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).map_err(|e| format!("{h:?}: {e}")))
        .collect()
}

/// Splits a DNS/TCP byte stream into its messages (each behind a 2-byte length).
pub fn split_tcp_stream(mut stream: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while !stream.is_empty() {
        let len = stream
            .get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or("truncated length")?;
        let msg = stream.get(2..2 + len).ok_or("truncated message")?;
        out.push(msg.to_vec());
        stream = &stream[2 + len..];
    }
    Ok(out)
}

/// Sends a query over UDP and decodes the reply.
pub fn query_udp(server: SocketAddr, name: &str, qtype: u16, timeout: Duration) -> Reply {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = UdpSocket::bind(bind).expect("bind udp");
    sock.set_read_timeout(Some(timeout)).unwrap();
    let id = u16::from_be_bytes([
        crate::util::random_bytes(1)[0],
        crate::util::random_bytes(1)[0],
    ]);
    sock.send_to(&encode_query(id, name, qtype), server)
        .expect("send dns query");
    let mut buf = [0u8; 4096];
    let (n, from) = sock
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no DNS reply from {server}: {e}"));
    assert_eq!(from, server, "reply from unexpected address");
    let reply = decode(&buf[..n]).unwrap_or_else(|e| panic!("bad DNS reply: {e}"));
    assert_eq!(reply.id, id, "reply id mismatch");
    reply
}

/// Sends a query over TCP (2-byte length framing) and decodes the reply.
pub fn query_tcp(server: SocketAddr, name: &str, qtype: u16, timeout: Duration) -> Reply {
    let mut s = TcpStream::connect_timeout(&server, timeout)
        .unwrap_or_else(|e| panic!("connect {server}: {e}"));
    s.set_read_timeout(Some(timeout)).unwrap();
    let q = encode_query(0x4242, name, qtype);
    s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&q).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("read DNS/TCP length");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("read DNS/TCP message");
    decode(&buf).unwrap_or_else(|e| panic!("bad DNS reply: {e}"))
}

/// Decodes a DNS message's header and answer section.
pub fn decode(m: &[u8]) -> Result<Reply, String> {
    let be16 = |o: usize| -> Result<u16, String> {
        m.get(o..o + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated".to_string())
    };
    let id = be16(0)?;
    let rcode = (be16(2)? & 0xf) as u8;
    let (qd, an) = (be16(4)?, be16(6)?);
    let mut pos = 12;
    for _ in 0..qd {
        pos = read_name(m, pos)?.1 + 4;
    }
    let mut answers = Vec::new();
    for _ in 0..an {
        let (name, p) = read_name(m, pos)?;
        let rtype = be16(p)?;
        let ttl = u32::from(be16(p + 4)?) << 16 | u32::from(be16(p + 6)?);
        let rdlen = be16(p + 8)? as usize;
        let rd = m.get(p + 10..p + 10 + rdlen).ok_or("truncated rdata")?;
        let data = match rtype {
            TYPE_A if rdlen == 4 => Ipv4Addr::new(rd[0], rd[1], rd[2], rd[3]).to_string(),
            TYPE_AAAA if rdlen == 16 => {
                Ipv6Addr::from(<[u8; 16]>::try_from(rd).unwrap()).to_string()
            }
            TYPE_CNAME => read_name(m, p + 10)?.0,
            _ => rd.iter().map(|b| format!("{b:02x}")).collect(),
        };
        answers.push(Answer {
            name,
            rtype,
            ttl,
            data,
        });
        pos = p + 10 + rdlen;
    }
    Ok(Reply { id, rcode, answers })
}

/// Reads a (possibly compressed) name at `pos`; returns it and the position after it.
fn read_name(m: &[u8], mut pos: usize) -> Result<(String, usize), String> {
    let mut labels = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *m.get(pos).ok_or("truncated name")? as usize;
        if len & 0xc0 == 0xc0 {
            let ptr = ((len & 0x3f) << 8) | *m.get(pos + 1).ok_or("truncated pointer")? as usize;
            end.get_or_insert(pos + 2);
            pos = ptr;
            continue;
        }
        if len == 0 {
            return Ok((labels.join("."), end.unwrap_or(pos + 1)));
        }
        let label = m.get(pos + 1..pos + 1 + len).ok_or("truncated label")?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        pos += 1 + len;
    }
    Err("name pointer loop".into())
}
