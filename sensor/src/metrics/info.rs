//! Facts for support, as `*_info` gauges of value 1 (the Prometheus convention): the build, and
//! the kernel the probes run on (release, version string, machine, where BTF was read from).

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::families::{self, labels};
pub use crate::capture::kernel::info::KernelInfo;

pub fn encode(kernel: &KernelInfo, enc: &mut DescriptorEncoder) -> fmt::Result {
    families::gauges(
        enc,
        "sensor_build_info",
        "Always 1: the sensor's version and build profile",
        [(
            labels([
                ("version", env!("CARGO_PKG_VERSION")),
                (
                    "profile",
                    if cfg!(debug_assertions) {
                        "debug"
                    } else {
                        "release"
                    },
                ),
            ]),
            1i64,
        )],
    )?;
    families::gauges(
        enc,
        "sensor_kernel_info",
        "Always 1: the running kernel (uname release, version, machine) and the BTF file the \
         probes' offsets come from",
        [(
            labels([
                ("release", kernel.release.as_str()),
                ("version", kernel.version.as_str()),
                ("machine", kernel.machine.as_str()),
                ("btf", kernel.btf.as_str()),
            ]),
            1i64,
        )],
    )?;
    families::gauge(
        enc,
        "sensor_kernel_btf_size_bytes",
        "Size of the kernel BTF file the offsets are read from (0: unreadable)",
        kernel.btf_bytes,
    )
}
