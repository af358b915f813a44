//! A successful exec with the new image's arguments, from `sched_process_exec`.

pub use sensor_common::ExecEvent as Record;
use sensor_common::{EventKind, limits::MAX_PATH_DEPTH};

use super::raw::{DecodeError, c_str, join_components, read};

pub(crate) fn decode(bytes: &[u8]) -> Result<Box<Record>, DecodeError> {
    let e: Record = read(bytes);
    if e.filename_len as usize > e.filename.len()
        || e.args_len as usize > e.args.len()
        || e.exe_depth as usize > MAX_PATH_DEPTH
    {
        return Err(DecodeError::BadField {
            kind: EventKind::Exec,
        });
    }
    Ok(Box::new(e))
}

/// The path given to execve.
pub fn filename(e: &Record) -> String {
    c_str(&e.filename[..e.filename_len as usize])
}

/// The new image's arguments.
pub fn args(e: &Record) -> Vec<String> {
    split_args(&e.args[..e.args_len as usize])
}

/// The task's name (`comm`).
pub fn comm(e: &Record) -> String {
    c_str(&e.comm)
}

/// The executable an exec ran (symlinks resolved), when the kernel could walk its path.
pub fn exe(e: &Record) -> Option<String> {
    (e.exe_depth > 0).then(|| join_components(&e.exe, e.exe_depth))
}

/// Splits the kernel's NUL-separated argument area into arguments.
pub fn split_args(area: &[u8]) -> Vec<String> {
    let area = area.strip_suffix(&[0]).unwrap_or(area);
    if area.is_empty() {
        return Vec::new();
    }
    area.split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Runs every reader above over a checked record (what the fuzz target does to each one).
pub fn read_fields(e: &Record) {
    let _ = (filename(e), args(e), comm(e), exe(e));
}
