//! Cluster profile metrics, read at scrape time from the cluster tasks' counters.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::DescriptorEncoder;

use super::families;
use crate::cluster::status::{ClusterStatus, WriteFailure};

pub fn encode(s: &ClusterStatus, enc: &mut DescriptorEncoder) -> std::fmt::Result {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    families::counter(
        enc,
        "sensor_cluster_pieces_written",
        "ProfilePiece writes (server-side apply) the API accepted",
        load(&s.pieces_written),
    )?;
    families::counters(
        enc,
        "sensor_cluster_piece_write_failures",
        "ProfilePiece writes that failed, by cause (unreachable, forbidden, no_resource: the CRDs \
         are not installed, rejected: the API refused the content, which is not sent again; \
         transient: 409/429/5xx)",
        WriteFailure::ALL
            .iter()
            .map(|w| (families::labels([("cause", w.as_str())]), s.failures(*w))),
    )?;
    families::counter(
        enc,
        "sensor_cluster_pieces_collapsed",
        "ProfilePiece writes of a profile cut to fit the size cap (spec.collapsed says what)",
        load(&s.pieces_collapsed),
    )?;
    families::counter(
        enc,
        "sensor_cluster_pieces_too_large",
        "Profiles seen that did not fit the size cap even cut (not written)",
        load(&s.pieces_too_large),
    )?;
    families::gauge(
        enc,
        "sensor_cluster_pieces_waiting",
        "Pieces due for a write that wait for the rate limit",
        load(&s.pieces_waiting) as i64,
    )?;
    families::gauge(
        enc,
        "sensor_cluster_piece_bytes_last",
        "Size of the last ProfilePiece written (bytes of JSON)",
        load(&s.piece_bytes_last) as i64,
    )?;
    families::gauge(
        enc,
        "sensor_cluster_piece_bytes_max",
        "Size of the largest ProfilePiece written since start (bytes of JSON)",
        load(&s.piece_bytes_max) as i64,
    )?;
    let leader = s
        .leader
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default();
    families::gauges(
        enc,
        "sensor_cluster_merger_leader",
        "1 while this sensor holds the merger's Lease, 0 otherwise; `holder` is the Lease's \
         holder as last seen (empty: none or unknown)",
        [(
            families::labels([("holder", leader.as_str())]),
            i64::from(s.leading.load(Ordering::Relaxed)),
        )],
    )?;
    families::counter(
        enc,
        "sensor_cluster_merger_election_failures",
        "Lease rounds that failed (API unreachable or forbidden)",
        load(&s.election_failures),
    )?;
    families::counter(
        enc,
        "sensor_cluster_merged_profiles_written",
        "WorkloadProfiles written by this sensor as the merger (content changed)",
        load(&s.merges_written),
    )?;
    families::counter(
        enc,
        "sensor_cluster_merge_round_failures",
        "Merge rounds that failed (retried next round)",
        load(&s.merge_failures),
    )?;
    families::gauge(
        enc,
        "sensor_cluster_merge_conflicts",
        "Piece snapshots whose evidence could not be merged since this sensor became the \
         merger (e.g. no pod label shared with the other pieces of their workload)",
        load(&s.merge_conflicts) as i64,
    )?;
    families::counter(
        enc,
        "sensor_cluster_workload_rebuilds",
        "Workloads the merger re-read from the API because a piece lost evidence (a relearn, \
         a deleted piece)",
        load(&s.workload_rebuilds),
    )?;
    families::gauge(
        enc,
        "sensor_cluster_pieces_skipped",
        "ProfilePieces the merger skips: unparsable or foreign objects",
        load(&s.pieces_skipped) as i64,
    )?;
    families::gauge(
        enc,
        "sensor_cluster_merger_pieces",
        "ProfilePieces in the merger's watch cache (0 when not leading)",
        load(&s.pieces_known) as i64,
    )?;
    families::gauge(
        enc,
        "sensor_cluster_workloads_merged",
        "Merged profiles written in the last round (only workloads whose pieces changed are merged)",
        load(&s.workloads_merged) as i64,
    )?;
    families::gauge(
        enc,
        "sensor_cluster_merge_round_seconds",
        "Duration of the last merge round",
        load(&s.merge_round_ms) as f64 / 1000.0,
    )?;
    families::gauge(
        enc,
        "sensor_cluster_merge_lag_seconds",
        "From the newest piece's snapshot to its merged profile's write, last write",
        load(&s.merge_lag_ms) as f64 / 1000.0,
    )?;
    families::counters(
        enc,
        "sensor_cluster_seccomp_files",
        "Merged seccomp profiles installed under --install-seccomp-dir, removed, failed",
        [
            (
                families::labels([("op", "installed")]),
                load(&s.files_installed),
            ),
            (
                families::labels([("op", "removed")]),
                load(&s.files_removed),
            ),
            (
                families::labels([("op", "failed")]),
                load(&s.install_failures),
            ),
        ],
    )
}
