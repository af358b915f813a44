//! An open of a file whose resolved path has a sensitive anchor near its leaf, from
//! `file_open` (fentry) or its fallback `sys_exit`.

pub use sensor_common::FileEvent as Record;
use sensor_common::{EventKind, file_flags, limits::MAX_PATH_DEPTH};

use super::raw::{DecodeError, c_str, join_components, read};

pub(crate) fn decode(bytes: &[u8]) -> Result<Box<Record>, DecodeError> {
    let e: Record = read(bytes);
    if e.depth as usize > MAX_PATH_DEPTH || e.path_len as usize >= e.path.len() {
        return Err(DecodeError::BadField {
            kind: EventKind::FileOpen,
        });
    }
    Ok(Box::new(e))
}

/// The path as passed to the open syscall, when the kernel could read it (evidence only).
pub fn requested_path(e: &Record) -> Option<String> {
    (e.flags & file_flags::REQUESTED_UNREADABLE == 0).then(|| c_str(&e.path[..e.path_len as usize]))
}

/// The path of the file the kernel opened (symlinks, `..` and mounts resolved), as the opener's
/// mount namespace names it. Components arrive leaf first.
pub fn opened_path(e: &Record) -> String {
    join_components(&e.resolved, e.depth)
}

/// Runs every reader above over a checked record (what the fuzz target does to each one).
pub fn read_fields(e: &Record) {
    let _ = (opened_path(e), requested_path(e));
}
