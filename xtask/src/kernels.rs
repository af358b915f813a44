//! Other kernels for the QEMU test (tests/tests/kernel_61.rs): Debian bookworm's 6.1 cloud
//! kernel, the kernel line of EKS's AL2023 nodes, downloaded once and cached under
//! `target/kernels/<package>_<version>/vmlinuz`.
//!
//! Which one: the newest `linux-image-6.1.0-<N>-cloud-amd64` apt knows. Not pinned: Debian
//! keeps shipping 6.1 stable updates to bookworm, and each is a kernel nodes will run; the
//! cache key is the package version, so a new ABI downloads once and the test prints which
//! kernel it booted.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::setup::{output, run};

const PACKAGE_PREFIX: &str = "linux-image-6.1.0-";
const PACKAGE_SUFFIX: &str = "-cloud-amd64";

/// The cached `vmlinuz` of the newest Debian 6.1 cloud kernel, downloading it if needed.
pub fn ensure_debian_61(root: &Path) -> Result<PathBuf> {
    fetch(root).or_else(|e| {
        // Package lists missing or stale (naming a version the mirror no longer has).
        eprintln!("xtask: {e:#}; updating apt's package lists and retrying");
        run(Command::new("apt-get").args(["update", "-q"]))?;
        fetch(root)
    })
}

fn fetch(root: &Path) -> Result<PathBuf> {
    let package = newest_package()?.context(
        "apt knows no linux-image-6.1.0-*-cloud-amd64 package (is Debian bookworm in the apt sources?)",
    )?;
    let version = candidate_version(&package)?;
    let dir = root
        .join("target/kernels")
        .join(format!("{package}_{version}"));
    let vmlinuz = dir.join("vmlinuz");
    if vmlinuz.is_file() {
        return Ok(vmlinuz);
    }
    eprintln!("xtask: downloading {package} {version} (the QEMU test's guest kernel)");
    let staging = root
        .join("target/kernels")
        .join(format!(".staging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    run(Command::new("apt-get")
        .args(["download", "-q", &format!("{package}={version}")])
        .current_dir(&staging))?;
    let deb = fs::read_dir(&staging)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get download left no .deb")?;
    let extracted = staging.join("x");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extracted))?;
    let release = package.trim_start_matches("linux-image-");
    let image = extracted.join(format!("boot/vmlinuz-{release}"));
    if !image.is_file() {
        bail!("{} has no boot/vmlinuz-{release}", deb.display());
    }
    fs::rename(&image, staging.join("vmlinuz"))?;
    fs::remove_dir_all(&extracted)?;
    fs::remove_file(&deb)?;
    // Renaming the finished directory makes the cache entry appear whole or not at all.
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&staging, &dir).with_context(|| format!("moving into {}", dir.display()))?;
    Ok(vmlinuz)
}

/// The highest-ABI `linux-image-6.1.0-<N>-cloud-amd64` in apt's package lists.
fn newest_package() -> Result<Option<String>> {
    let out = output(Command::new("apt-cache").args([
        "search",
        "--names-only",
        "^linux-image-6\\.1\\.0-[0-9]+-cloud-amd64$",
    ]))?;
    Ok(newest_abi(&out))
}

/// Picks the package with the highest ABI number from `apt-cache search` lines.
fn newest_abi(search_output: &str) -> Option<String> {
    search_output
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|name| {
            let abi = name
                .strip_prefix(PACKAGE_PREFIX)?
                .strip_suffix(PACKAGE_SUFFIX)?;
            Some((abi.parse::<u32>().ok()?, name.to_string()))
        })
        .max()
        .map(|(_, name)| name)
}

fn candidate_version(package: &str) -> Result<String> {
    let out = output(Command::new("apt-cache").args(["policy", package]))?;
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: "))
        .filter(|v| *v != "(none)")
        .map(str::to_string)
        .with_context(|| format!("apt has no installable version of {package}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_abi_compares_numbers_not_strings() {
        let search = "linux-image-6.1.0-9-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)\n\
                      linux-image-6.1.0-56-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)\n\
                      linux-image-6.1.0-56-cloud-amd64-dbg - debug symbols\n\
                      linux-image-6.1.0-10-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)\n";
        assert_eq!(
            newest_abi(search).as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64")
        );
        assert_eq!(newest_abi(""), None);
    }
}
