//! `egress-volume-spike` and `large-payload`: a rate window of a known flow vs the busiest
//! window and the bytes per connection the baseline saw.

use std::collections::BTreeMap;

use super::{
    RuleConfig,
    helpers::{fmt_bytes, mitre},
};
use crate::detect::model::{Evidence, Finding, RuleId, Severity};
use crate::profile::{builder::FlowDelta, model::Flow};

/// How much more the current window may hold than the baseline's busiest window: the ratio of
/// window lengths, never below 1 (a window shorter than the baseline's could hold that
/// window's whole burst; the baseline cannot tell where in its window the burst was).
pub(super) fn window_scale(window_seconds: u64, baseline_window_seconds: u64) -> f64 {
    if window_seconds == 0 || baseline_window_seconds == 0 {
        return 1.0;
    }
    (window_seconds as f64 / baseline_window_seconds as f64).max(1.0)
}

/// The baseline's busiest window for a flow: (connections, bytes sent, window length, label).
/// Without closed windows, the learning totals bound any window.
pub(super) fn baseline_max(flow: &Flow) -> (u64, u64, u64, String) {
    let r = &flow.rate;
    if r.windows > 0 {
        (
            r.max_connections_per_window,
            r.max_bytes_sent_per_window,
            r.window_seconds,
            format!("{} windows of {}s", r.windows, r.window_seconds),
        )
    } else {
        (
            flow.connections,
            flow.bytes_sent,
            0,
            "no closed window; learning totals".to_string(),
        )
    }
}

pub(super) fn spike_rule(
    flow: &Flow,
    window: FlowDelta,
    window_seconds: u64,
    cfg: &RuleConfig,
    subject: &str,
) -> Option<Finding> {
    let (max_conn, max_bytes, base_secs, label) = baseline_max(flow);
    let scale = window_scale(window_seconds, base_secs);
    let allowed_conn = cfg.spike_factor * max_conn as f64 * scale;
    let allowed_bytes = cfg.spike_factor * max_bytes as f64 * scale;
    let conn_spike =
        window.connections >= cfg.min_spike_connections && window.connections as f64 > allowed_conn;
    let bytes_spike =
        window.bytes_sent >= cfg.min_spike_bytes && window.bytes_sent as f64 > allowed_bytes;
    if !conn_spike && !bytes_spike {
        return None;
    }
    let ratio = |seen: u64, max: u64| {
        let base = max as f64 * scale;
        if base == 0.0 {
            "baseline max 0".to_string()
        } else {
            format!("{:.1}x", seen as f64 / base)
        }
    };
    let what = match (conn_spike, bytes_spike) {
        (true, true) => "connections and bytes sent",
        (true, false) => "connections",
        _ => "bytes sent",
    };
    let baseline = BTreeMap::from([
        ("maxConnectionsPerWindow".to_string(), max_conn.to_string()),
        ("maxBytesSentPerWindow".to_string(), fmt_bytes(max_bytes)),
        ("windows".to_string(), label),
    ]);
    let observed = BTreeMap::from([
        (
            "connections".to_string(),
            format!(
                "{} in {window_seconds}s ({})",
                window.connections,
                ratio(window.connections, max_conn)
            ),
        ),
        (
            "bytesSent".to_string(),
            format!(
                "{} in {window_seconds}s ({})",
                fmt_bytes(window.bytes_sent),
                ratio(window.bytes_sent, max_bytes)
            ),
        ),
    ]);
    Some(Finding {
        rule: RuleId::EgressVolumeSpike,
        kubescape_rule: None,
        severity: Severity::High,
        // T1041 Exfiltration Over C2 Channel: data leaves over a channel the workload already
        // has open (a known peer, no new protocol); T1048 would need another protocol.
        mitre: mitre("T1041", "Exfiltration Over C2 Channel", "Exfiltration"),
        message: format!(
            "Egress {what} to {subject} far above the baseline's busiest window (more than \
             {}x).",
            cfg.spike_factor
        ),
        subject: subject.to_string(),
        evidence: Evidence { baseline, observed },
    })
}

/// The baseline's bytes sent per connection on a flow.
pub(super) fn baseline_per_connection(flow: &Flow) -> u64 {
    let r = &flow.rate;
    if r.windows > 0 {
        (r.max_bytes_sent_per_window / r.max_connections_per_window.max(1))
            .max(r.max_bytes_sent_per_connection)
    } else {
        flow.bytes_sent / flow.connections.max(1)
    }
}

pub(super) fn large_payload_rule(
    flow: &Flow,
    window: FlowDelta,
    window_seconds: u64,
    cfg: &RuleConfig,
    subject: &str,
) -> Option<Finding> {
    let (per_conn, base, evidence) = payload_excess(
        flow,
        window,
        window_seconds,
        cfg.large_payload_factor,
        cfg.min_large_payload_bytes,
    )?;
    Some(Finding {
        rule: RuleId::LargePayload,
        kubescape_rule: None,
        severity: Severity::High,
        // Same reasoning as the spike: exfiltration over an already established channel.
        mitre: mitre("T1041", "Exfiltration Over C2 Channel", "Exfiltration"),
        message: format!(
            "{} sent per connection to {subject}, more than {}x the baseline's {}.",
            fmt_bytes(per_conn),
            cfg.large_payload_factor,
            fmt_bytes(base)
        ),
        subject: subject.to_string(),
        evidence,
    })
}

/// Bytes sent per connection in a window vs the baseline's, when above `factor` times it and
/// at least `min` bytes: (per connection, the baseline's per connection, the evidence).
pub(super) fn payload_excess(
    flow: &Flow,
    window: FlowDelta,
    window_seconds: u64,
    factor: f64,
    min: u64,
) -> Option<(u64, u64, Evidence)> {
    let per_conn = window.bytes_sent / window.connections.max(1);
    let base = baseline_per_connection(flow);
    if per_conn < min || per_conn as f64 <= factor * base as f64 {
        return None;
    }
    let baseline = BTreeMap::from([
        ("bytesSentPerConnection".to_string(), fmt_bytes(base)),
        ("windows".to_string(), baseline_max(flow).3),
    ]);
    let observed = BTreeMap::from([
        ("bytesSentPerConnection".to_string(), fmt_bytes(per_conn)),
        (
            "window".to_string(),
            format!(
                "{} over {} connection(s) in {window_seconds}s",
                fmt_bytes(window.bytes_sent),
                window.connections
            ),
        ),
        (
            "factor".to_string(),
            if base == 0 {
                "baseline sent nothing".to_string()
            } else {
                format!("{:.1}x", per_conn as f64 / base as f64)
            },
        ),
    ]);
    Some((per_conn, base, Evidence { baseline, observed }))
}
