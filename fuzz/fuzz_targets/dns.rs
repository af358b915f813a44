//! The DNS answer parser (`sensor/src/attribution/dns.rs`): payloads of packets from port 53, which anyone
//! on the network can shape. A message must give an answer or an error, never a panic, and the
//! DNS-over-TCP reassembler must keep its bound whatever segments it is fed.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../sensor/src/attribution/dns.rs"]
#[allow(dead_code)]
mod dns;

/// Partial TCP messages the reassembler may hold (small, so eviction is exercised too).
const STREAMS: usize = 4;

fuzz_target!(|data: &[u8]| {
    // UDP: the whole payload is one message.
    if let Ok(answer) = dns::parse_answer(data) {
        let by_address = dns::names_by_address(&answer);
        assert!(by_address.len() <= answer.addresses.len());
    }
    // TCP: the payload cut into segments of up to 255 bytes (the first byte of each says how
    // long, the low bits of it which of a few connections), reassembled, each message parsed.
    let mut tcp = dns::TcpReassembler::new(STREAMS);
    let mut rest = data;
    while let Some((&head, tail)) = rest.split_first() {
        let len = (head as usize).min(tail.len());
        let (segment, next) = tail.split_at(len);
        let key = dns::TcpStreamKey {
            cgroup: u64::from(head & 3),
            client_port: 40000,
            server_addr: [0; 16],
            server_port: 53,
        };
        for message in tcp.push(key, segment) {
            assert!(message.len() <= usize::from(u16::MAX));
            let _ = dns::parse_answer(&message);
        }
        assert!(tcp.partial_streams() <= STREAMS);
        rest = next;
    }
});
