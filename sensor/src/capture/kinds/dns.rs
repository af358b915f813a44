//! A packet from port 53 delivered to a socket (a DNS answer, or a TCP segment of one), from
//! `skb_ingress`; the payload is parsed in attribution (`attribution/dns.rs`).

pub use sensor_common::DnsEvent as Record;
use sensor_common::EventKind;

use super::raw::{DecodeError, read};

pub(crate) fn decode(bytes: &[u8]) -> Result<Box<Record>, DecodeError> {
    let e: Record = read(bytes);
    if e.payload_len as usize > e.payload.len() {
        return Err(DecodeError::BadField {
            kind: EventKind::Dns,
        });
    }
    Ok(Box::new(e))
}

/// The packet's payload (a DNS message, or a TCP segment of one).
pub fn payload(e: &Record) -> &[u8] {
    &e.payload[..e.payload_len as usize]
}

/// Runs every reader above over a checked record (what the fuzz target does to each one).
pub fn read_fields(e: &Record) {
    let _ = payload(e);
}
