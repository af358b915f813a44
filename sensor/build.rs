//! Builds the kernel programs (`sensor-ebpf`) with the nightly toolchain and bpf-linker, and puts
//! the object in OUT_DIR, where `src/capture/loader.rs` embeds it.
//!
//! `AYA_BUILD_SKIP=1` writes an empty stub instead (for `cargo clippy`/`cargo doc` on machines
//! without bpf-linker); a binary built that way refuses to load probes with a clear error.
//!
//! It also compiles the gRPC API (`proto/sensor/v1/sensor.proto`) in pure Rust - protox parses
//! it, tonic-prost-build generates the code - so no system `protoc` is needed; the encoded file
//! descriptor set (`sensor_v1_descriptor.bin`, with its imports) feeds server reflection.
fn main() {
    compile_protos();
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

fn compile_protos() {
    let proto_root = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let proto = "sensor/v1/sensor.proto";
    println!("cargo:rerun-if-changed={proto_root}/{proto}");
    let compiler = protox::Compiler::new([proto_root])
        .and_then(|mut compiler| {
            compiler.include_imports(true).open_file(proto)?;
            Ok(compiler)
        })
        .unwrap_or_else(|e| panic!("compiling {proto_root}/{proto}: {e}"));
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(
        out.join("sensor_v1_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )
    .expect("write the file descriptor set");
    let fds = compiler.file_descriptor_set();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating code for {proto}: {e}"));
}
