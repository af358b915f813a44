//! `sensor-dev records`: raw ring-buffer records of the real probes, one file each, as seed
//! corpora of the fuzz targets (`fuzz/corpus/`): what the kernel really sends rather than
//! hand-made bytes. DNS records also give their payload (a real DNS answer) to the DNS corpus.

use std::{
    collections::{BTreeMap, HashSet},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Args;
use sensor_common::EventKind;

use crate::{
    capture::kernel::mounts,
    capture::{
        Collector, LoadOptions,
        counters::kind_name,
        decode::{KernelEvent, decode},
        patterns::default_patterns,
    },
};

#[derive(Args, Debug)]
pub struct RecordsArgs {
    /// Where to write: `<out>/decode/<kind>-<n>.bin` and `<out>/dns/<n>.bin`.
    #[arg(long)]
    pub out: PathBuf,
    /// How long to capture.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Records kept per event kind (DNS payloads: distinct ones, up to the same number).
    #[arg(long, default_value_t = 12)]
    pub per_kind: usize,
}

pub async fn run(args: RecordsArgs) -> Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let cgroup2 = mounts::find_mount(&mountinfo, "cgroup2").context("cgroup v2 is not mounted")?;
    let mut collector = Collector::start(&LoadOptions {
        btf_path: "/sys/kernel/btf/vmlinux".into(),
        cgroup2_root: cgroup2.mount_point.clone(),
        ring_buffer_bytes: crate::daemon::config::DEFAULT_RING_BUFFER_BYTES,
        file_patterns: default_patterns(),
    })?;
    let mut ring = collector
        .take_ring()
        .context("the ring buffer is already taken")?;
    let decode_dir = args.out.join("decode");
    let dns_dir = args.out.join("dns");
    std::fs::create_dir_all(&decode_dir)?;
    std::fs::create_dir_all(&dns_dir)?;

    let mut kept: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut payloads: HashSet<Vec<u8>> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    while Instant::now() < deadline {
        while let Some(item) = ring.next() {
            let bytes = item.to_vec();
            drop(item);
            let Ok(event) = decode(&bytes) else { continue };
            let name = kind_name(event.kind());
            let n = kept.entry(name).or_default();
            if *n < args.per_kind {
                std::fs::write(decode_dir.join(format!("{name}-{n}.bin")), &bytes)?;
                *n += 1;
            }
            if let KernelEvent::Dns(d) = &event {
                let payload = d.payload[..d.payload_len as usize].to_vec();
                if payloads.len() < args.per_kind && payloads.insert(payload.clone()) {
                    std::fs::write(dns_dir.join(format!("{}.bin", payloads.len())), &payload)?;
                }
            }
        }
        let full = EventKind::ALL
            .iter()
            .all(|k| kept.get(kind_name(*k)).copied().unwrap_or(0) >= args.per_kind);
        if full && payloads.len() >= args.per_kind {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "{}",
        serde_json::json!({ "records": kept, "dns_payloads": payloads.len() })
    );
    Ok(())
}
