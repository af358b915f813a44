//! The kernel-event decoder (`sensor/src/capture/decode.rs` and the per-kind modules in
//! `sensor/src/capture/kinds/`) and everything the pipeline reads from a decoded record: a
//! record that passes the tag and length checks must never make the string and path helpers
//! panic or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The decoder's files at the paths they have in the `sensor` crate (`crate::capture::...`).
#[path = "../../sensor/src/capture"]
#[allow(dead_code)]
mod capture {
    pub mod decode;
    pub mod kinds;
}

use capture::decode::{self, KernelEvent};

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
    // What the pipeline reads from each kind (see sensor/src/attribution/pipeline.rs).
    match &event {
        KernelEvent::Exec(e) => {
            let _ = decode::c_str(&e.filename[..e.filename_len as usize]);
            let _ = decode::split_args(&e.args[..e.args_len as usize]);
            let _ = decode::c_str(&e.comm);
            let _ = decode::exec_exe(e);
        }
        KernelEvent::CgroupMkdir(c) | KernelEvent::CgroupRmdir(c) => {
            let _ = capture::kinds::cgroup::path(c);
        }
        KernelEvent::Dns(d) => {
            let _ = &d.payload[..d.payload_len as usize];
        }
        KernelEvent::FileOpen(f) => {
            let _ = decode::opened_path(f);
            let _ = decode::requested_path(f);
        }
        KernelEvent::Fork(_) | KernelEvent::Exit(_) | KernelEvent::Flow(_) => {}
    }
}
