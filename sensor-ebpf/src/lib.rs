//! Empty on purpose: the kernel programs are the `sensor` binary target of this crate (built for
//! the BPF target by `sensor/build.rs`). This library target exists so `sensor` can list this
//! crate as a build-dependency and be rebuilt when it, or `sensor-common`, changes.
#![no_std]
