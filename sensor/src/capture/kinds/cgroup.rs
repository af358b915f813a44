//! cgroup v2 directories created and removed (`cgroup_mkdir`, `cgroup_rmdir`): two kinds, one
//! record.

pub use sensor_common::CgroupEvent as Record;
use sensor_common::EventKind;

use super::raw::{DecodeError, c_str, read};

fn checked(bytes: &[u8], kind: EventKind) -> Result<Box<Record>, DecodeError> {
    let e: Record = read(bytes);
    if e.path_len as usize > e.path.len() {
        return Err(DecodeError::BadField { kind });
    }
    Ok(Box::new(e))
}

pub(crate) fn decode_mkdir(bytes: &[u8]) -> Result<Box<Record>, DecodeError> {
    checked(bytes, EventKind::CgroupMkdir)
}

pub(crate) fn decode_rmdir(bytes: &[u8]) -> Result<Box<Record>, DecodeError> {
    checked(bytes, EventKind::CgroupRmdir)
}

/// The cgroup's path relative to the cgroup2 mount.
pub fn path(e: &Record) -> String {
    c_str(&e.path[..e.path_len as usize])
}

/// Runs every reader above over a checked record (what the fuzz target does to each one).
pub fn read_fields(e: &Record) {
    let _ = path(e);
}
