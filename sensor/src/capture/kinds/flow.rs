//! First sighting of a flow aggregate (connect, accept, first UDP send), from the cgroup
//! sock_addr and skb programs. The aggregate's counters are read from the flow map
//! (`capture/flows.rs`), not from records.

pub use sensor_common::FlowEvent as Record;

use super::raw::{DecodeError, read};

pub(crate) fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    Ok(read(bytes))
}

/// Nothing to read beyond the record's fixed fields (the fuzz target calls every kind's).
pub fn read_fields(_: &Record) {}
