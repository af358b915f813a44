//! Syscall numbers -> names for the node's architecture, native and 32-bit compat ABIs, from the
//! maintained `syscalls` crate tables (no hand-made tables).

/// The ABIs whose syscall sets the kernel records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    Native,
    Compat,
}

/// Name of syscall `nr` in `abi` on the architecture this binary runs on;
/// `syscall_<nr>` when the table has no name for it (newer kernel than the table).
pub fn name(abi: Abi, nr: u32) -> String {
    lookup(abi, nr).map_or_else(|| format!("syscall_{nr}"), str::to_string)
}

#[cfg(target_arch = "x86_64")]
fn lookup(abi: Abi, nr: u32) -> Option<&'static str> {
    match abi {
        Abi::Native => syscalls::x86_64::Sysno::new(nr as usize).map(|s| s.name()),
        Abi::Compat => syscalls::x86::Sysno::new(nr as usize).map(|s| s.name()),
    }
}

#[cfg(target_arch = "aarch64")]
fn lookup(abi: Abi, nr: u32) -> Option<&'static str> {
    match abi {
        Abi::Native => syscalls::aarch64::Sysno::new(nr as usize).map(|s| s.name()),
        Abi::Compat => syscalls::arm::Sysno::new(nr as usize).map(|s| s.name()),
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn lookup(_abi: Abi, _nr: u32) -> Option<&'static str> {
    None
}

/// Number of a syscall by name in `abi` (used by tests and benchmarks to pick syscalls).
#[cfg(target_arch = "x86_64")]
pub fn number(abi: Abi, name: &str) -> Option<u32> {
    match abi {
        Abi::Native => name
            .parse::<syscalls::x86_64::Sysno>()
            .ok()
            .map(|s| s.id() as u32),
        Abi::Compat => name
            .parse::<syscalls::x86::Sysno>()
            .ok()
            .map(|s| s.id() as u32),
    }
}

#[cfg(target_arch = "aarch64")]
pub fn number(abi: Abi, name: &str) -> Option<u32> {
    match abi {
        Abi::Native => name
            .parse::<syscalls::aarch64::Sysno>()
            .ok()
            .map(|s| s.id() as u32),
        Abi::Compat => name
            .parse::<syscalls::arm::Sysno>()
            .ok()
            .map(|s| s.id() as u32),
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn number(_abi: Abi, _name: &str) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_native_and_ia32_tables_differ() {
        assert_eq!(name(Abi::Native, 110), "getppid");
        assert_eq!(name(Abi::Compat, 64), "getppid");
        assert_eq!(name(Abi::Native, 59), "execve");
        assert_eq!(name(Abi::Compat, 11), "execve");
        assert_eq!(number(Abi::Native, "ioprio_get"), Some(252));
        assert_eq!(name(Abi::Native, 511), "syscall_511");
    }
}
