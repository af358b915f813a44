//! Names under which user space (`sensor/src/collector`) finds maps and the load-time
//! configuration global in the eBPF object. Only user space uses these constants: aya-ebpf names
//! a map or global after its `static` (`sensor-ebpf/src/maps.rs`), so each value here must be
//! that static's identifier, and renaming one side alone fails at load time with the missing
//! name. `MAP_SLOT_CACHE` is kernel-only (user space never opens it). Programs are not named
//! here: the loader finds them by their function names.

pub const RINGBUF_EVENTS: &str = "EVENTS";
pub const MAP_STATS: &str = "STATS";
pub const MAP_SLOT_OF_CGROUP: &str = "SLOT_OF_CGROUP";
pub const MAP_SYSCALL_SETS: &str = "SYSCALL_SETS";
pub const MAP_FREE_SLOTS: &str = "FREE_SLOTS";
pub const MAP_SLOT_CACHE: &str = "SLOT_CACHE";
pub const MAP_FLOWS: &str = "FLOWS";
pub const MAP_LISTENERS: &str = "LISTENERS";
pub const MAP_FILE_ANCHORS: &str = "FILE_ANCHORS";
pub const MAP_UPROBE_HITS: &str = "UPROBE_HITS";
pub const GLOBAL_CONFIG: &str = "CONFIG";
