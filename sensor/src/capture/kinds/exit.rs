//! The last thread of a process exited, from `sched_process_exit`.

pub use sensor_common::ExitEvent as Record;

use super::raw::{DecodeError, read};

pub(crate) fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    Ok(read(bytes))
}

/// Nothing to read beyond the record's fixed fields (the fuzz target calls every kind's).
pub fn read_fields(_: &Record) {}
