//! Starting capture: probes, the ring-buffer reader and the attribution pipeline, in the order
//! that loses nothing. Shared by `sensor trace` and `sensor run`.

use std::{collections::HashSet, path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use crate::{
    attribution::pipeline::Pipeline,
    attribution::{AttributionOptions, Attributor, kubelet::KubeletDirs},
    capture::kernel::mounts::{self, Mount},
    capture::{Collector, KernelEvent, LoadOptions, listeners, patterns::SensitivePattern},
};

/// Everything capture needs from the host.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    pub kubelet: KubeletDirs,
    pub proc_root: PathBuf,
    pub btf_path: PathBuf,
    pub ring_buffer_bytes: u32,
    pub patterns: Vec<SensitivePattern>,
    pub node_name: String,
}

/// Bound of the queue between the ring-buffer reader and the pipeline (overflow is counted).
const EVENT_QUEUE: usize = 64 * 1024;

pub struct Capture {
    pub collector: Collector,
    pub events: mpsc::Receiver<KernelEvent>,
    pub pipeline: Pipeline,
    pub cgroup2: Mount,
    /// cgroups that existed when capture started: their containers' beginnings were missed.
    pub preexisting: HashSet<u64>,
}

impl Capture {
    pub fn start(opts: &CaptureOptions) -> Result<Capture> {
        let mountinfo = std::fs::read_to_string(opts.proc_root.join("self/mountinfo"))
            .with_context(|| format!("reading {}/self/mountinfo", opts.proc_root.display()))?;
        let cgroup2 = mounts::find_mount(&mountinfo, "cgroup2").context(
            "cgroup v2 is not mounted (no cgroup2 line in /proc/self/mountinfo): mount it, e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`",
        )?;

        // Probes first, state second: whatever happens while the state is being read is queued
        // in the ring buffer, not missed.
        let mut collector = Collector::start(&LoadOptions {
            btf_path: opts.btf_path.clone(),
            cgroup2_root: cgroup2.mount_point.clone(),
            ring_buffer_bytes: opts.ring_buffer_bytes,
            file_patterns: opts.patterns.clone(),
        })?;
        let events = collector.spawn_reader(EVENT_QUEUE);
        let attributor = Attributor::new(AttributionOptions {
            cgroup2_mount: cgroup2.mount_point.clone(),
            cgroup2_root: cgroup2.root.clone(),
            kubelet: opts.kubelet.clone(),
            proc_root: opts.proc_root.clone(),
            process_table_size: 65536,
        });
        let preexisting = attributor.live_cgroups();
        let existing = listeners::existing(&opts.proc_root, |p| attributor.cgroup_id_of(p));
        let seeded = listeners::seed(&mut collector.listeners, &existing);
        tracing::debug!(
            listeners = seeded,
            "listening sockets that predate the sensor"
        );
        let pipeline = Pipeline::new(
            attributor,
            Arc::from(opts.node_name.as_str()),
            opts.patterns.clone(),
        );
        release_freed_memory();
        tracing::info!(
            probes = collector.probes.status.len(),
            cgroup2 = %cgroup2.mount_point.display(),
            "capture started"
        );
        Ok(Capture {
            collector,
            events,
            pipeline,
            cgroup2,
            preexisting,
        })
    }
}

/// Loading parses the kernel's BTF twice (offsets, then aya's relocations): tens of MiB that are
/// freed right after, but glibc keeps freed heap pages mapped. Give them back so the agent's
/// resident size reflects what it holds.
pub fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory at the top of heaps and free arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}
