//! A new process (not a thread), from `sched_process_fork`.

pub use sensor_common::ForkEvent as Record;

use super::raw::{DecodeError, read};

pub(crate) fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    Ok(read(bytes))
}

/// Nothing to read beyond the record's fixed fields (the fuzz target calls every kind's).
pub fn read_fields(_: &Record) {}
