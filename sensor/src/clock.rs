//! Kernel timestamps (`bpf_ktime_get_boot_ns`, CLOCK_BOOTTIME) -> wall-clock time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Offset between CLOCK_REALTIME and CLOCK_BOOTTIME, taken once; good to the NTP slew since.
#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    realtime_minus_boot_ns: i128,
}

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl BootClock {
    pub fn new() -> Self {
        let boot = now_ns(libc::CLOCK_BOOTTIME);
        let real = now_ns(libc::CLOCK_REALTIME);
        Self {
            realtime_minus_boot_ns: real - boot,
        }
    }

    /// Current CLOCK_BOOTTIME in ns, comparable with kernel timestamps.
    pub fn boot_now_ns() -> u64 {
        now_ns(libc::CLOCK_BOOTTIME) as u64
    }

    pub fn to_system_time(&self, boot_ns: u64) -> SystemTime {
        let ns = boot_ns as i128 + self.realtime_minus_boot_ns;
        if ns <= 0 {
            return UNIX_EPOCH;
        }
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    }

    /// RFC 3339 UTC with nanoseconds, e.g. `2026-11-26T00:16:17.123456789Z`.
    pub fn rfc3339(&self, boot_ns: u64) -> String {
        humantime::format_rfc3339_nanos(self.to_system_time(boot_ns)).to_string()
    }
}

impl Default for BootClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_now_maps_to_wall_now() {
        let clock = BootClock::new();
        let wall = clock.to_system_time(BootClock::boot_now_ns());
        let diff = SystemTime::now().duration_since(wall).unwrap_or_default();
        assert!(diff < Duration::from_secs(1));
        assert!(clock.rfc3339(BootClock::boot_now_ns()).ends_with('Z'));
    }
}
