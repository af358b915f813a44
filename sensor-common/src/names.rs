//! Names of maps and programs, used by both sides so a rename cannot break loading.

pub const RINGBUF_EVENTS: &str = "EVENTS";
pub const MAP_STATS: &str = "STATS";
pub const MAP_SLOT_OF_CGROUP: &str = "SLOT_OF_CGROUP";
pub const MAP_SYSCALL_SETS: &str = "SYSCALL_SETS";
pub const MAP_FREE_SLOTS: &str = "FREE_SLOTS";
pub const MAP_SLOT_CACHE: &str = "SLOT_CACHE";
pub const MAP_FLOWS: &str = "FLOWS";
pub const MAP_LISTENERS: &str = "LISTENERS";
pub const MAP_FILE_ANCHORS: &str = "FILE_ANCHORS";
pub const GLOBAL_CONFIG: &str = "CONFIG";
