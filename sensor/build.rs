//! Builds the kernel programs (`sensor-ebpf`) with the nightly toolchain and bpf-linker, and puts
//! the object in OUT_DIR, where `src/collector/loader.rs` embeds it.
//!
//! `AYA_BUILD_SKIP=1` writes an empty stub instead (for `cargo clippy`/`cargo doc` on machines
//! without bpf-linker); a binary built that way refuses to load probes with a clear error.
fn main() {
    if std::env::var_os("AYA_BUILD_SKIP").is_some_and(|v| v == "1" || v == "true") {
        let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
        std::fs::write(out.join("sensor"), []).expect("write eBPF stub");
    }
    let package = aya_build::Package {
        name: "sensor-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../sensor-ebpf"),
        ..Default::default()
    };
    if let Err(e) = aya_build::build_ebpf([package], aya_build::Toolchain::Nightly) {
        panic!(
            "building the kernel programs failed: {e:#}\n(run `cargo xtask build`, which installs the eBPF toolchain)"
        );
    }
}
