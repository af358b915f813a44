//! The agent's own process: CPU time, memory, threads, descriptors, start time, read from
//! `/proc/self` at scrape time. prometheus-client has no process collector, so this exports the
//! standard `process_*` names every Prometheus client library uses, and existing dashboards
//! work unchanged.

use std::fmt;

use procfs::process::{LimitValue, Process};
use prometheus_client::encoding::DescriptorEncoder;

use super::families;

/// One reading of `/proc/self`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: i64,
    pub open_fds: u64,
    /// `None`: unlimited.
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

/// Reads `/proc/self`; `None` (and the family is left out of the scrape) if it cannot be read.
pub fn read() -> Option<ProcessStats> {
    let me = Process::myself().ok()?;
    let stat = me.stat().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    let boot = procfs::boot_time_secs().ok()? as f64;
    Some(ProcessStats {
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        resident_bytes: stat.rss * procfs::page_size(),
        virtual_bytes: stat.vsize,
        threads: stat.num_threads,
        open_fds: me.fd_count().ok()? as u64,
        max_fds: match me.limits().ok()?.max_open_files.soft_limit {
            LimitValue::Value(v) => Some(v),
            LimitValue::Unlimited => None,
        },
        start_time_seconds: boot + stat.starttime as f64 / ticks,
    })
}

pub fn encode(p: &ProcessStats, enc: &mut DescriptorEncoder) -> fmt::Result {
    families::counter(
        enc,
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        p.cpu_seconds,
    )?;
    families::gauge(
        enc,
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        p.resident_bytes,
    )?;
    families::gauge(
        enc,
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
        p.virtual_bytes,
    )?;
    families::gauge(enc, "process_threads", "Number of OS threads", p.threads)?;
    families::gauge(
        enc,
        "process_open_fds",
        "Number of open file descriptors",
        p.open_fds,
    )?;
    if let Some(max) = p.max_fds {
        families::gauge(
            enc,
            "process_max_fds",
            "Maximum number of open file descriptors",
            max,
        )?;
    }
    families::gauge(
        enc,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
        p.start_time_seconds,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let p = read().expect("/proc/self is readable");
        assert!(p.resident_bytes > 1 << 20, "{p:?}");
        assert!(p.virtual_bytes >= p.resident_bytes, "{p:?}");
        assert!(p.threads >= 1 && p.open_fds >= 3, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            p.start_time_seconds <= now + 1.0 && p.start_time_seconds > now - 3600.0,
            "started {} s before now",
            now - p.start_time_seconds
        );
    }
}
