//! The kernel-event decoder (`sensor/src/capture/decode.rs` and the per-kind modules in
//! `sensor/src/capture/kinds/`) and every reader attribution applies to a decoded record: a
//! record that passes the tag and length checks must never make the string and path readers
//! panic or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The decoder's files at the paths they have in the `sensor` crate (`crate::capture::...`);
/// the readers `decode.rs` re-exports for the crate's users are not called by name here.
#[path = "../../sensor/src/capture"]
#[allow(dead_code, unused_imports)]
mod capture {
    pub mod decode;
    pub mod kinds;
}

use capture::decode;

fuzz_target!(|data: &[u8]| {
    exercise(data);
    // The same bytes with the header's size field made consistent, so the fuzzer reaches the
    // per-kind field checks without first having to guess the size (kind u32, size u32).
    if data.len() >= 8 {
        let mut fixed = data.to_vec();
        fixed[4..8].copy_from_slice(&(data.len() as u32).to_le_bytes());
        exercise(&fixed);
    }
});

fn exercise(data: &[u8]) {
    let Ok(event) = decode::decode(data) else {
        return;
    };
    let _ = event.header();
    let _ = event.kind();
    // What attribution reads from the record: each kind module's readers
    // (`sensor/src/capture/kinds/<kind>.rs`, `read_fields`), through the kinds table.
    event.read_fields();
}
