//! Atomic read-modify-write on map memory. The BPF target has no compare-and-swap, so
//! `core::sync::atomic` offers no `fetch_*`; the intrinsics lower to BPF atomic instructions
//! (add since the first eBPF ISA, or since 5.12), and with the result unused LLVM emits the
//! non-fetching forms.

use core::intrinsics::{AtomicOrdering, atomic_or, atomic_xadd, atomic_xchg};

#[inline(always)]
pub unsafe fn add(dst: *mut u64, v: u64) {
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(dst, v) };
}

#[inline(always)]
pub unsafe fn or(dst: *mut u64, v: u64) {
    unsafe { atomic_or::<u64, u64, { AtomicOrdering::Relaxed }>(dst, v) };
}

/// Sets `*dst` to 1 and returns the previous value: exactly one caller sees 0.
#[inline(always)]
pub unsafe fn test_and_set(dst: *mut u64) -> u64 {
    unsafe { atomic_xchg::<u64, { AtomicOrdering::Relaxed }>(dst, 1) }
}

/// Sets `*dst` to 0 and returns what it held, atomically against concurrent `or`s.
#[inline(always)]
pub unsafe fn take(dst: *mut u64) -> u64 {
    unsafe { atomic_xchg::<u64, { AtomicOrdering::Relaxed }>(dst, 0) }
}
