//! Agent metrics, read at scrape time: profiles by state and completeness (and the ones whose
//! bounded lists overflowed), anomalies by rule and severity, the anomaly log's last sequence
//! number, and the gRPC streams' subscribers, drops and gaps (from the hubs' own counters).

use std::{
    fmt,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use prometheus_client::encoding::DescriptorEncoder;

use super::{
    anomalies::{AnomalyCount, AnomalyCounts, severity_label},
    families::{self, Labels, labels},
};
use crate::attribution::workload_losses::MAX_WORKLOADS;
use crate::{
    ai::tools::{SharedTools, TrackerLosses},
    api::{Hub, HubStats},
    attribution::event::Event,
    detect::model::Anomaly,
    learn::store::ProfileStore,
    profile::model::{ApplicationProfile, Completeness, Status},
};

/// What the running agent exposes, set once its parts exist.
pub struct DaemonSource {
    pub store: Arc<RwLock<ProfileStore>>,
    pub last_seq: Arc<AtomicU64>,
    pub anomaly_hub: Arc<Hub<Anomaly>>,
    pub event_hub: Arc<Hub<Event>>,
    /// Flows the live NetworkPolicy audit judged while its set of judged flows was full.
    pub netpol_audit_overflow: Arc<AtomicU64>,
    /// AI agents' tool calls (what the tracker could not follow).
    pub tools: SharedTools,
}

impl fmt::Debug for DaemonSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DaemonSource").finish_non_exhaustive()
    }
}

/// One profile's overflowing list: (namespace, workload, container, list).
pub type Overflowing = (String, String, String, &'static str);

/// Profiles by (status, completeness), and the overflowing lists (at most [`MAX_WORKLOADS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileCounts {
    /// `[learning, ready] x [full, partial]`.
    pub by_state: [[u64; 2]; 2],
    pub overflowing: Vec<Overflowing>,
    /// Overflowing lists beyond the cap (counted, not labelled).
    pub overflowing_unlabelled: u64,
}

impl ProfileCounts {
    pub fn add(&mut self, p: &ApplicationProfile) {
        let s = match p.status {
            Status::Learning => 0,
            Status::Ready => 1,
        };
        let c = match p.completeness {
            Completeness::Full => 0,
            Completeness::Partial => 1,
        };
        self.by_state[s][c] += 1;
        let o = &p.overflow;
        for (list, full) in [
            ("execs", o.execs),
            ("egress", o.egress),
            ("ingress", o.ingress),
            ("files", o.files),
            ("dns", o.dns),
            ("tools", o.tools),
        ] {
            if !full {
                continue;
            }
            if self.overflowing.len() < MAX_WORKLOADS {
                self.overflowing.push((
                    p.key.namespace.clone(),
                    p.key.workload.clone(),
                    p.key.container.clone(),
                    list,
                ));
            } else {
                self.overflowing_unlabelled += 1;
            }
        }
    }
}

/// The values of one scrape.
#[derive(Debug, Clone, Default)]
pub struct DaemonCounts {
    pub profiles: ProfileCounts,
    pub anomalies: Vec<AnomalyCount>,
    pub last_seq: u64,
    pub anomaly_stream: HubStats,
    pub event_stream: HubStats,
    pub netpol_audit_overflow: u64,
    pub tool_tracker: TrackerLosses,
}

impl DaemonSource {
    pub fn counts(&self, anomalies: &AnomalyCounts) -> DaemonCounts {
        let mut profiles = ProfileCounts::default();
        self.store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .visit(&mut |p| profiles.add(p));
        DaemonCounts {
            profiles,
            anomalies: anomalies.seen(),
            last_seq: self.last_seq.load(Ordering::Acquire),
            anomaly_stream: self.anomaly_hub.stats(),
            event_stream: self.event_hub.stats(),
            netpol_audit_overflow: self.netpol_audit_overflow.load(Ordering::Relaxed),
            tool_tracker: self
                .tools
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .losses,
        }
    }
}

fn rule_labels(a: &AnomalyCount) -> Labels {
    labels([
        ("rule", a.rule.as_str()),
        ("severity", severity_label(a.severity)),
    ])
}

pub fn encode(c: &DaemonCounts, enc: &mut DescriptorEncoder) -> fmt::Result {
    let mut states = Vec::new();
    for (s, status) in ["learning", "ready"].into_iter().enumerate() {
        for (k, completeness) in ["full", "partial"].into_iter().enumerate() {
            states.push((
                labels([("status", status), ("completeness", completeness)]),
                c.profiles.by_state[s][k],
            ));
        }
    }
    families::gauges(
        enc,
        "sensor_profiles",
        "Application profiles (one per workload and container) by status and completeness",
        states,
    )?;
    families::gauges(
        enc,
        "sensor_profile_list_overflow",
        "1 for each profile list (execs, egress, ingress, files, dns) that reached its bound: \
         new entries are not recorded (at most 100 series; the rest in \
         sensor_profile_list_overflow_unlabelled)",
        c.profiles.overflowing.iter().map(|(ns, w, ctr, list)| {
            (
                labels([
                    ("namespace", ns.as_str()),
                    ("workload", w.as_str()),
                    ("container", ctr.as_str()),
                    ("list", list),
                ]),
                1i64,
            )
        }),
    )?;
    families::gauge(
        enc,
        "sensor_profile_list_overflow_unlabelled",
        "Overflowing profile lists beyond the 100 labelled series",
        c.profiles.overflowing_unlabelled,
    )?;
    families::counters(
        enc,
        "sensor_anomalies",
        "Anomaly occurrences by rule id and severity (a repeat record adds its count)",
        c.anomalies.iter().map(|a| (rule_labels(a), a.occurrences)),
    )?;
    families::counters(
        enc,
        "sensor_anomaly_records",
        "Anomaly records written to the log and streamed, by rule id and severity",
        c.anomalies.iter().map(|a| (rule_labels(a), a.records)),
    )?;
    families::gauge(
        enc,
        "sensor_anomaly_log_last_seq",
        "Sequence number of the last anomaly record logged (0: none yet); continues across \
         restarts",
        c.last_seq,
    )?;
    families::counter(
        enc,
        "sensor_netpol_audit_judged_overflow",
        "Flows the live NetworkPolicy audit judged while its set of judged flows was full \
         (judged again at every occurrence instead of once)",
        c.netpol_audit_overflow,
    )?;
    let t = c.tool_tracker;
    families::counters(
        enc,
        "sensor_tool_call_tracking_lost",
        "What AI-agent tool-call attribution could not follow, by cause: members (processes not \
         tracked, table full), calls (tool calls not tracked, too many running), unfinished \
         (calls closed without their end, the exit event was lost)",
        [
            (labels([("cause", "members")]), t.members),
            (labels([("cause", "calls")]), t.calls),
            (labels([("cause", "unfinished")]), t.unfinished),
        ],
    )?;
    let streams = [("anomalies", c.anomaly_stream), ("events", c.event_stream)];
    families::gauges(
        enc,
        "sensor_grpc_subscribers",
        "Current gRPC stream subscribers by stream (StreamAnomalies, StreamEvents)",
        streams
            .iter()
            .map(|(s, h)| (labels([("stream", s)]), h.subscribers as u64)),
    )?;
    families::counters(
        enc,
        "sensor_grpc_stream_published",
        "Messages published to the gRPC streams (each counted once whatever the subscribers)",
        streams
            .iter()
            .map(|(s, h)| (labels([("stream", s)]), h.published)),
    )?;
    families::counters(
        enc,
        "sensor_grpc_stream_dropped",
        "Messages dropped for slow subscribers (their queue was full), summed over subscribers; \
         each subscriber is told in band with a gap message",
        streams
            .iter()
            .map(|(s, h)| (labels([("stream", s)]), h.dropped)),
    )?;
    families::counters(
        enc,
        "sensor_grpc_stream_gaps",
        "Gap messages handed to slow subscribers",
        streams
            .iter()
            .map(|(s, h)| (labels([("stream", s)]), h.gaps)),
    )
}
