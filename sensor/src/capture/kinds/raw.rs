//! What every kind's decoder shares: the error, the unaligned read of a checked record, and
//! the string and path helpers for the kernel's fixed-size fields. Imports nothing from
//! capture, so the kind modules and `capture/decode.rs` can all use it.

use sensor_common::EventKind;

/// Why a record was refused (counted as malformed by the reader).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than an event header")]
    ShortHeader { len: usize },
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("{kind:?} record is {len} bytes, expected {expected}")]
    BadLength {
        kind: EventKind,
        len: usize,
        expected: usize,
    },
    #[error("{kind:?} header says {declared} bytes but the record is {len}")]
    SizeMismatch {
        kind: EventKind,
        declared: u32,
        len: usize,
    },
    #[error("{kind:?} record has an out-of-range length field")]
    BadField { kind: EventKind },
}

/// Reads a `T` from the start of `bytes`; the caller has checked the length.
pub(crate) fn read<T: Copy>(bytes: &[u8]) -> T {
    assert!(bytes.len() >= size_of::<T>());
    // SAFETY: length checked above; T is repr(C) plain data valid for any bit pattern, and
    // read_unaligned copes with the ring buffer's 8-byte alignment.
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) }
}

/// The text of a NUL-padded kernel string field, lossy for non-UTF-8 bytes.
pub fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// `/`-joined path from kernel path components (leaf first, one slot each).
pub(crate) fn join_components(slots: &[u8], depth: u32) -> String {
    use sensor_common::limits::PATH_NAME_SLOT;
    let mut parts: Vec<String> = slots
        .chunks(PATH_NAME_SLOT)
        .take(depth as usize)
        .map(c_str)
        .collect();
    parts.reverse();
    format!("/{}", parts.join("/"))
}
