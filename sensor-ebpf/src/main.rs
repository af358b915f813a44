//! Kernel programs of the sensor. Each module holds the programs for one kind of fact; all of
//! them aggregate in the kernel or emit rare events, never one event per syscall or packet.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod atomic;
mod cgroups;
mod files;
mod kernel;
mod maps;
mod network;
mod path;
mod process;
mod syscalls;
mod uprobes;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects any path that could get here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
