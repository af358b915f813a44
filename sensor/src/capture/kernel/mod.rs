//! Facts about the running kernel: its BTF (struct offsets for the programs) and where its
//! filesystems are mounted.

pub mod btf;
pub mod info;
pub mod mounts;
pub mod offsets;
