//! The bench's pass/fail verdicts: the targets' thresholds and pure functions of the measured
//! numbers. `report` renders them (goals, measured values, tables, docs/benchmarks.md) and
//! decides nothing itself.

use super::{
    detect::{Latency, StreamBench, StreamClient},
    overhead::Config,
};

/// Syscall overhead: sensor added / bpftrace added.
pub const MAX_RATIO_BPFTRACE: f64 = 0.5;
/// Syscall overhead: sensor (or agent) added / the floor of its hooks added.
pub const MAX_RATIO_FLOOR: f64 = 1.5;
pub const MIN_CONNECT_PROCESSED: f64 = 0.99;
pub const MAX_IDLE_RSS_MIB: f64 = 50.0;
/// Issue 3: agent RSS with 500 learned profiles.
pub const MAX_AGENT_RSS_MIB: f64 = 64.0;
/// Issue 3: draft generation per workload.
pub const MAX_DRAFT_P99_MS: f64 = 10.0;
/// Issue 4: detection latency from the syscall to the message at a gRPC client.
pub const MAX_DETECT_P50_MS: f64 = 100.0;
pub const MAX_DETECT_P99_MS: f64 = 500.0;
/// Issue 4: 10k anomalies/s through the stream without stalling capture: the publisher keeps
/// the rate, its publish call stays short while a client lags, the fast client gets nearly all.
pub const MIN_STREAM_RATE_SHARE: f64 = 0.99;
pub const MAX_PUBLISH_P99_US: f64 = 1000.0;
pub const MIN_FAST_SHARE: f64 = 0.99;

/// `added / baseline added`; NaN (which passes no target) when the baseline added nothing.
pub fn ratio(added: f64, baseline_added: f64) -> f64 {
    if baseline_added > 0.0 {
        added / baseline_added
    } else {
        f64::NAN
    }
}

/// `part / whole`; 0 when there is no whole.
pub fn share(part: u64, whole: u64) -> f64 {
    if whole > 0 {
        part as f64 / whole as f64
    } else {
        0.0
    }
}

/// The floor of the hooks the sensor attached on this kernel: an empty `sys_enter` program,
/// plus an empty `sys_exit` one where the sensitive-file probe (`file_hook`) fell back to
/// `sys_exit`.
pub fn floor(file_hook: &str) -> Config {
    if file_hook.contains("sys_exit") {
        Config::EmptyHooks
    } else {
        Config::EmptyHook
    }
}

/// Sensor added / bpftrace added.
pub fn overhead_vs_bpftrace(ratio: f64) -> bool {
    ratio <= MAX_RATIO_BPFTRACE
}

/// Sensor (or agent) added / floor added.
pub fn overhead_vs_floor(ratio: f64) -> bool {
    ratio <= MAX_RATIO_FLOOR
}

/// A flood's events: processed + dropped == generated.
pub fn flood_accounted(unaccounted: i64) -> bool {
    unaccounted == 0
}

pub fn connect_processed(processed: u64, generated: u64) -> bool {
    share(processed, generated) >= MIN_CONNECT_PROCESSED
}

pub fn idle_rss(mib: f64) -> bool {
    mib < MAX_IDLE_RSS_MIB
}

pub fn agent_rss(mib: f64) -> bool {
    mib <= MAX_AGENT_RSS_MIB
}

pub fn drafts(p99_ms: f64) -> bool {
    p99_ms < MAX_DRAFT_P99_MS
}

/// Profile updates stay off the per-syscall path: the agent costs no more than the floor
/// allows, and it did learn the loop's syscall.
pub fn off_syscall_path(agent_ratio: f64, getppid_learned: bool) -> bool {
    overhead_vs_floor(agent_ratio) && getppid_learned
}

/// Every trigger exec'd and its anomaly reached the client.
pub fn all_delivered(d: &Latency) -> bool {
    d.matched == d.triggers && d.exec_ok == d.triggers as u64
}

pub fn detect_p50(d: &Latency) -> bool {
    d.pct(0.5) < MAX_DETECT_P50_MS && all_delivered(d)
}

pub fn detect_p99(d: &Latency) -> bool {
    d.pct(0.99) < MAX_DETECT_P99_MS && all_delivered(d)
}

/// Share of the published anomalies the fast client received.
pub fn fast_share(st: &StreamBench) -> f64 {
    share(st.fast.received, st.published)
}

/// The publisher published the whole run and kept the rate.
pub fn stream_rate(st: &StreamBench) -> bool {
    st.published >= st.rate * st.seconds
        && st.achieved_rate >= st.rate as f64 * MIN_STREAM_RATE_SHARE
}

/// The rate kept, and the fast client got nearly everything.
pub fn stream_throughput(st: &StreamBench) -> bool {
    stream_rate(st) && fast_share(st) >= MIN_FAST_SHARE
}

/// The publish call (the capture loop's) stays short while a client lags: the slow client
/// did lag (it got gaps).
pub fn stream_no_stall(st: &StreamBench) -> bool {
    st.publish_us.p99 < MAX_PUBLISH_P99_US && st.slow.gaps > 0
}

/// Received + missed == published for a client, reached in time (the per-client cell).
pub fn client_exact(c: &StreamClient, published: u64) -> bool {
    c.accounted() == published && c.complete
}

/// Both clients accounted for every anomaly, in order, without an error.
pub fn stream_accounting(st: &StreamBench) -> bool {
    st.published > 0
        && [&st.fast, &st.slow].iter().all(|c| {
            c.complete && c.accounted() == st.published && c.out_of_order == 0 && c.error.is_none()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pass_up_to_their_limit_and_never_without_a_baseline() {
        assert_eq!(ratio(3.0, 2.0), 1.5);
        assert!(ratio(1.0, 0.0).is_nan() && ratio(1.0, -1.0).is_nan());
        for (check, max) in [
            (overhead_vs_bpftrace as fn(f64) -> bool, MAX_RATIO_BPFTRACE),
            (overhead_vs_floor, MAX_RATIO_FLOOR),
        ] {
            assert!(check(max) && check(max / 2.0));
            assert!(!check(max * 1.01));
            assert!(!check(f64::NAN), "no baseline is no pass");
        }
        assert!(off_syscall_path(MAX_RATIO_FLOOR, true));
        assert!(!off_syscall_path(MAX_RATIO_FLOOR, false));
        assert!(!off_syscall_path(MAX_RATIO_FLOOR * 1.01, true));
    }

    #[test]
    fn the_floor_follows_the_file_hook() {
        assert_eq!(floor("tp_btf/sys_exit"), Config::EmptyHooks);
        assert_eq!(floor("fentry/security_file_open"), Config::EmptyHook);
    }

    #[test]
    fn floods_and_memory() {
        assert!(flood_accounted(0));
        assert!(!flood_accounted(1) && !flood_accounted(-1));
        assert_eq!(share(5, 0), 0.0);
        assert!(connect_processed(99, 100) && connect_processed(100, 100));
        assert!(!connect_processed(98, 100) && !connect_processed(0, 0));
        // Idle RSS and draft time are strict bounds, agent RSS an inclusive one.
        assert!(!idle_rss(MAX_IDLE_RSS_MIB) && idle_rss(MAX_IDLE_RSS_MIB - 0.1));
        assert!(agent_rss(MAX_AGENT_RSS_MIB) && !agent_rss(MAX_AGENT_RSS_MIB + 0.1));
        assert!(!drafts(MAX_DRAFT_P99_MS) && drafts(MAX_DRAFT_P99_MS - 0.001));
    }

    fn latency(ms: &[f64], triggers: usize, matched: usize, exec_ok: u64) -> Latency {
        let mut ms = ms.to_vec();
        ms.sort_by(f64::total_cmp);
        Latency {
            triggers,
            matched,
            exec_ok,
            ms,
            ..Default::default()
        }
    }

    #[test]
    fn detection_needs_fast_and_complete_delivery() {
        let fast = [MAX_DETECT_P50_MS / 10.0; 10];
        let d = latency(&fast, 10, 10, 10);
        assert!(all_delivered(&d) && detect_p50(&d) && detect_p99(&d));
        // One anomaly lost, or one trigger that did not exec: both latency targets fail.
        for d in [latency(&fast, 10, 9, 10), latency(&fast, 10, 10, 9)] {
            assert!(!all_delivered(&d) && !detect_p50(&d) && !detect_p99(&d));
        }
        // A slow tail fails p99 only.
        let mut tail = vec![MAX_DETECT_P50_MS / 10.0; 98];
        tail.extend([MAX_DETECT_P99_MS * 2.0; 2]);
        let d = latency(&tail, 100, 100, 100);
        assert!(detect_p50(&d) && !detect_p99(&d));
    }

    fn stream(published: u64) -> StreamBench {
        let client = |received: u64| StreamClient {
            received,
            missed: published - received,
            complete: true,
            ..Default::default()
        };
        let mut st = StreamBench {
            rate: 1000,
            seconds: 2,
            published,
            achieved_rate: published as f64 / 2.0,
            fast: client(published),
            slow: client(published / 2),
            ..Default::default()
        };
        st.slow.gaps = 3;
        st.publish_us.p99 = MAX_PUBLISH_P99_US / 10.0;
        st
    }

    #[test]
    fn the_stream_keeps_the_rate_accounts_for_everything_and_does_not_stall() {
        let st = stream(2000);
        assert!(stream_rate(&st) && stream_throughput(&st));
        assert!(stream_accounting(&st) && stream_no_stall(&st));
        assert!(client_exact(&st.fast, 2000) && client_exact(&st.slow, 2000));

        let mut short = stream(1999);
        short.achieved_rate = 1000.0;
        assert!(!stream_rate(&short), "fewer than rate x seconds");
        let mut slow = stream(2000);
        slow.achieved_rate = 1000.0 * MIN_STREAM_RATE_SHARE - 1.0;
        assert!(!stream_rate(&slow));

        let mut starved = stream(2000);
        starved.fast.received = 1000;
        starved.fast.missed = 1000;
        assert!(stream_rate(&starved) && !stream_throughput(&starved));
        assert!(stream_accounting(&starved), "missed anomalies are counted");

        let mut lost = stream(2000);
        lost.slow.missed -= 1;
        assert!(!stream_accounting(&lost) && !client_exact(&lost.slow, 2000));
        let mut reordered = stream(2000);
        reordered.fast.out_of_order = 1;
        assert!(!stream_accounting(&reordered));
        let mut failed = stream(2000);
        failed.slow.error = Some("reset".into());
        assert!(!stream_accounting(&failed));
        let mut late = stream(2000);
        late.fast.complete = false;
        assert!(!stream_accounting(&late) && !client_exact(&late.fast, 2000));
        assert!(!stream_accounting(&stream(0)));

        let mut stalled = stream(2000);
        stalled.publish_us.p99 = MAX_PUBLISH_P99_US;
        assert!(!stream_no_stall(&stalled));
        let mut no_lag = stream(2000);
        no_lag.slow.gaps = 0;
        assert!(
            !stream_no_stall(&no_lag),
            "the slow client must have lagged"
        );
    }
}
