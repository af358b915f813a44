//! One module per event kind, kunai-style: each holds the record the kernel sends for its kind
//! (re-exported from `sensor-common` as `Record`), the checks of that record's own fields, its
//! name, the user-space readers of its variable-length fields, and `read_fields`, which runs
//! them all (the fuzz target calls it on every record that passes the checks).
//! [`super::decode`] checks the tag (`EventKind::try_from`) and the length (`EventKind::size`,
//! a `size_of` per kind) before a kind's `decode` runs.
//!
//! The table at the bottom is the only list of kinds in user-space capture: it generates
//! [`KernelEvent`], its `header`/`kind`/`read_fields` methods, the decoder dispatch and the
//! kind names. The dispatch is an exhaustive match over [`EventKind`], so a kind added to
//! `sensor-common` does not compile until it has a line here. Attribution (pod, container,
//! process) is the module of the same name in `attribution/kinds/`, which capture does not
//! import; docs/architecture.md ("Adding an event kind") lists every file a new kind touches.

pub mod cgroup;
pub mod dns;
pub mod exec;
pub mod exit;
pub mod file;
pub mod flow;
pub mod fork;
pub mod raw;

use sensor_common::{EventHeader, EventKind};

use self::raw::DecodeError;

macro_rules! kinds {
    ($($variant:ident($payload:ty) => $module:ident::$decode:ident, $name:expr;)*) => {
        /// One decoded record, by kind (each variant named after its [`EventKind`]). Large
        /// records are boxed so the enum stays small in queues.
        #[derive(Clone)]
        pub enum KernelEvent {
            $($variant($payload),)*
        }

        impl KernelEvent {
            pub fn header(&self) -> &EventHeader {
                match self {
                    $(KernelEvent::$variant(e) => &e.header,)*
                }
            }

            pub fn kind(&self) -> EventKind {
                match self {
                    $(KernelEvent::$variant(_) => EventKind::$variant,)*
                }
            }

            /// Runs every reader of the record's kind module over it (`<kind>::read_fields`).
            pub fn read_fields(&self) {
                match self {
                    $(KernelEvent::$variant(e) => $module::read_fields(e),)*
                }
            }
        }

        /// Decodes a record whose tag and length have been checked.
        pub(crate) fn decode(kind: EventKind, bytes: &[u8]) -> Result<KernelEvent, DecodeError> {
            match kind {
                $(EventKind::$variant => $module::$decode(bytes).map(KernelEvent::$variant),)*
            }
        }

        /// Name of an event kind in stats output and metric labels.
        pub const fn name(kind: EventKind) -> &'static str {
            match kind {
                $(EventKind::$variant => $name,)*
            }
        }
    };
}

kinds! {
    Fork(fork::Record) => fork::decode, "fork";
    Exec(Box<exec::Record>) => exec::decode, "exec";
    Exit(exit::Record) => exit::decode, "exit";
    CgroupMkdir(Box<cgroup::Record>) => cgroup::decode_mkdir, "cgroup_mkdir";
    CgroupRmdir(Box<cgroup::Record>) => cgroup::decode_rmdir, "cgroup_rmdir";
    Flow(flow::Record) => flow::decode, "flow";
    Dns(Box<dns::Record>) => dns::decode, "dns";
    FileOpen(Box<file::Record>) => file::decode, "file";
}
