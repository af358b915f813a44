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
        "ProfilePiece writes that failed, by cause (unreachable, forbidden, rejected: the API \
         refused the content, which is not sent again; transient: 409/429/5xx)",
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
    )
}
