//! Installs what the build and the tests need, idempotently: nightly `rust-src`, and
//! `bpf-linker` linked dynamically to the nightly's own libLLVM (Debian's LLVM is too old), plus
//! Debian packages.

use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

/// bpf-linker release known to build against the nightly's LLVM here.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Packages the end-to-end tests use: runc (and crun) and a static busybox for real containers, iproute2
/// for network namespaces, python3 for the test DNS server; for the deploy tests shellcheck
/// (the kind quickstart script) and containerd (`ctr images import` and its RuntimeDefault
/// seccomp profile); their `setpriv` is in util-linux, always installed; for the 6.1 kernel test
/// QEMU and cpio (the guest's initramfs); pahole for the BTF reader's cross-check
/// (`kernel::btf` tests).
pub const TEST_PACKAGES: &[&str] = &[
    "runc",
    "crun",
    "busybox-static",
    "iproute2",
    "python3",
    "shellcheck",
    "containerd",
    "qemu-system-x86",
    "cpio",
    "pahole",
];
/// The benchmark also compares against bpftrace.
pub const BENCH_PACKAGES: &[&str] = &["runc", "busybox-static", "iproute2", "bpftrace"];

fn cargo_home() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo")
        })
}

/// PATH with `$CARGO_HOME/bin` first, where `cargo install` puts bpf-linker.
pub fn path_with_cargo_bin() -> OsString {
    let mut paths = vec![cargo_home().join("bin")];
    if let Some(p) = env::var_os("PATH") {
        paths.extend(env::split_paths(&p));
    }
    env::join_paths(paths).unwrap_or_default()
}

pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

pub fn ensure_ebpf_toolchain() -> Result<()> {
    ensure_nightly_rust_src()?;
    ensure_bpf_linker()
}

fn ensure_nightly_rust_src() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        eprintln!("xtask: installing the nightly toolchain (needed to build the kernel programs)");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: adding rust-src to nightly (for -Z build-std=core)");
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

/// The nightly's shared libLLVM and its LLVM major version.
fn nightly_llvm() -> Result<(PathBuf, String)> {
    let version = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let major = version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("`rustc +nightly -vV` printed no LLVM version")?
        .to_string();
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib = Path::new(sysroot.trim()).join("lib");
    let so = fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so"))
            }) && fs::symlink_metadata(p).is_ok_and(|m| m.len() > 1_000_000)
        })
        .with_context(|| format!("no shared libLLVM in {}", lib.display()))?;
    Ok((so, major))
}

fn ensure_bpf_linker() -> Result<()> {
    let (libllvm, major) = nightly_llvm()?;
    let prefix = cargo_home().join("bpf-llvm");
    let stamp = prefix.join("stamp");
    let wanted = format!("{BPF_LINKER_VERSION} {}", libllvm.display());
    let linker = cargo_home().join("bin/bpf-linker");
    let works = Command::new(&linker)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works && fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == wanted) {
        return Ok(());
    }
    eprintln!(
        "xtask: installing bpf-linker {BPF_LINKER_VERSION} against {} (LLVM {major})",
        libllvm.display()
    );
    let libdir = prefix.join("lib");
    fs::create_dir_all(&libdir)?;
    let soname = libllvm.file_name().context("libLLVM has no file name")?;
    // One link for the linker (`-lLLVM`), one under the SONAME for the loader at run time.
    for name in [OsString::from("libLLVM.so"), soname.to_os_string()] {
        let link = libdir.join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)?;
    }
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--force",
            "--version",
            BPF_LINKER_VERSION,
        ])
        .args([
            "--no-default-features",
            "--features",
            &format!("llvm-{major}"),
        ])
        .env("LLVM_PREFIX", &prefix))
    .or_else(|_| {
        // --locked can fail when the lock file pins crates this registry mirror lacks.
        run(Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--force",
                "--version",
                BPF_LINKER_VERSION,
            ])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .env("LLVM_PREFIX", &prefix))
    })?;
    let ok = Command::new(&linker)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        bail!(
            "bpf-linker was installed but does not run ({})",
            linker.display()
        );
    }
    fs::write(&stamp, wanted)?;
    Ok(())
}

pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    let install = |missing: &[&str]| {
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))
    };
    if install(&missing).is_err() {
        run(Command::new("apt-get").args(["update", "-q"]))?;
        install(&missing)?;
    }
    Ok(())
}

/// bpftrace's tracepoints need tracefs; mount it if the host did not.
pub fn ensure_tracefs() -> Result<()> {
    let dir = Path::new("/sys/kernel/tracing");
    if dir.join("events").exists() {
        return Ok(());
    }
    eprintln!("xtask: mounting tracefs at /sys/kernel/tracing");
    run(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"]))
}

/// `kubernetes-validate` release the NetworkPolicy draft tests run (sensor/tests/netpol_validate.rs):
/// its wheel ships the OpenAPI schemas of Kubernetes 1.25 to 1.34, so validation against 1.29
/// and 1.34 works offline.
const KUBERNETES_VALIDATE_VERSION: &str = "1.34.1";
/// grpcio and grpcio-tools releases the Python gRPC consumer of the end-to-end tests uses
/// (tests/python/consumer.py: stubs generated from proto/ with `grpc_tools.protoc`, then
/// `StreamAnomalies` and `ListProfiles` over the agent's unix socket). Wheels for CPython 3.9+.
const GRPCIO_VERSION: &str = "1.85.1";
/// The Prometheus project's Python client, whose text parser checks the agent's `/metrics` in
/// the end-to-end tests (tests/python/scrape.py).
const PROMETHEUS_CLIENT_VERSION: &str = "0.26.0";

/// The Python tools of the tests, in the venv at `<root>/target/pytools`.
pub struct PythonTools {
    /// `kubernetes-validate`, passed to the tests as `KUBERNETES_VALIDATE`.
    pub kubernetes_validate: PathBuf,
    /// The venv's interpreter, with grpcio and grpcio-tools: `SENSOR_TEST_PYTHON`.
    pub python: PathBuf,
}

/// Installs the Python tools the tests use into a venv at `<root>/target/pytools` (idempotent:
/// nothing happens when the pinned versions already run): `kubernetes-validate`, grpcio +
/// grpcio-tools for the Python gRPC consumer, and prometheus-client for the metrics tests.
pub fn ensure_python_tools(root: &Path) -> Result<PythonTools> {
    let venv = root.join("target/pytools");
    let bin = venv.join("bin/kubernetes-validate");
    let python = venv.join("bin/python");
    let validate_installed = || {
        Command::new(&bin).arg("--version").output().is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).trim() == KUBERNETES_VALIDATE_VERSION
        })
    };
    let grpc_installed = || {
        Command::new(&python)
            .args([
                "-c",
                "import grpc, grpc_tools.protoc, importlib.metadata as m; \
                 print(grpc.__version__, m.version('grpcio-tools'))",
            ])
            .output()
            .is_ok_and(|o| {
                o.status.success()
                    && String::from_utf8_lossy(&o.stdout).trim()
                        == format!("{GRPCIO_VERSION} {GRPCIO_VERSION}")
            })
    };
    let prometheus_installed = || {
        Command::new(&python)
            .args([
                "-c",
                "import prometheus_client.parser, importlib.metadata as m; \
                 print(m.version('prometheus-client'))",
            ])
            .output()
            .is_ok_and(|o| {
                o.status.success()
                    && String::from_utf8_lossy(&o.stdout).trim() == PROMETHEUS_CLIENT_VERSION
            })
    };
    let tools = PythonTools {
        kubernetes_validate: bin.clone(),
        python: python.clone(),
    };
    if validate_installed() && grpc_installed() && prometheus_installed() {
        return Ok(tools);
    }
    eprintln!(
        "xtask: installing kubernetes-validate {KUBERNETES_VALIDATE_VERSION}, grpcio and \
         grpcio-tools {GRPCIO_VERSION}, prometheus-client {PROMETHEUS_CLIENT_VERSION} into {}",
        venv.display()
    );
    let make_venv = || {
        let _ = fs::remove_dir_all(&venv);
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
    };
    // An existing, working venv is kept (only what is missing or at another version is
    // installed); a broken one (e.g. its interpreter was removed) is made again.
    let venv_works = Command::new(&python)
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !venv_works && make_venv().is_err() {
        // Debian's python3 needs python3-venv (ensurepip) for `-m venv`.
        ensure_packages(&["python3-venv"])?;
        make_venv()?;
    }
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}"),
        &format!("grpcio=={GRPCIO_VERSION}"),
        &format!("grpcio-tools=={GRPCIO_VERSION}"),
        &format!("prometheus-client=={PROMETHEUS_CLIENT_VERSION}"),
    ]))?;
    if !validate_installed() {
        bail!(
            "kubernetes-validate {KUBERNETES_VALIDATE_VERSION} was installed but does not run ({})",
            bin.display()
        );
    }
    if !grpc_installed() {
        bail!(
            "grpcio and grpcio-tools {GRPCIO_VERSION} were installed but do not import in {}",
            python.display()
        );
    }
    if !prometheus_installed() {
        bail!(
            "prometheus-client {PROMETHEUS_CLIENT_VERSION} was installed but does not import in {}",
            python.display()
        );
    }
    Ok(tools)
}
