//! `cargo xtask image`: the container image, without a Docker engine.
//!
//! One uncompressed layer holds the sensor binary at `/usr/local/bin/sensor` and the shared
//! libraries `ldd` says it loads (glibc, libgcc_s, the dynamic loader) at the same paths, so the
//! image runs exactly the binary that was tested and benchmarked (glibc's allocator included).
//! The output is one tar that is both an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/...`) and a docker-archive (`manifest.json` with `RepoTags`), the form
//! `docker save` writes: `ctr images import`, `kind load image-archive` (which reads the tags
//! from `manifest.json`) and `docker load` all accept it. Every entry has mtime 0 and uid/gid 0,
//! in a fixed order: the same binary gives the same digests.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Where the binary lives in the image (the manifest's command runs it by this path).
pub const BINARY_PATH: &str = "usr/local/bin/sensor";
/// Default image reference, as the DaemonSet names it.
pub const DEFAULT_TAG: &str = "node-sensor:dev";

const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// What was written.
#[derive(Debug)]
pub struct Image {
    pub path: PathBuf,
    pub manifest_digest: String,
    pub layer_bytes: usize,
    pub libraries: Vec<PathBuf>,
}

/// A content-addressed blob.
struct Blob {
    digest: String,
    bytes: Vec<u8>,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Blob {
        Blob {
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    fn descriptor(&self, media_type: &str) -> Value {
        json!({ "mediaType": media_type, "digest": self.digest, "size": self.bytes.len() })
    }

    /// `blobs/sha256/<hex>`.
    fn path(&self) -> String {
        format!("blobs/{}", self.digest.replacen(':', "/", 1))
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Writes the image of `binary` to `output`, tagged `tag` (`name:tag`).
pub fn build(binary: &Path, tag: &str, output: &Path) -> Result<Image> {
    let (name, version) = split_tag(tag)?;
    let ldd = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd (Debian package libc-bin)")?;
    let libraries = parse_ldd(&String::from_utf8_lossy(&ldd.stdout))
        .with_context(|| format!("ldd {}", binary.display()))?;
    let layer = Blob::new(layer_tar(binary, &libraries)?);
    let config = Blob::new(to_bytes(&config_json(&layer.digest))?);
    let manifest = Blob::new(to_bytes(&manifest_json(
        config.descriptor(MEDIA_CONFIG),
        layer.descriptor(MEDIA_LAYER),
    ))?);
    let index = index_json(manifest.descriptor(MEDIA_MANIFEST), name, version);
    let docker = docker_manifest_json(tag, &config.path(), &layer.path());

    let mut out = tar::Builder::new(Vec::new());
    append_file(
        &mut out,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        0o644,
    )?;
    append_file(&mut out, "index.json", &to_bytes(&index)?, 0o644)?;
    append_file(&mut out, "manifest.json", &to_bytes(&docker)?, 0o644)?;
    for dir in ["blobs", "blobs/sha256"] {
        append_dir(&mut out, dir, 0o755)?;
    }
    for blob in [&config, &manifest, &layer] {
        append_file(&mut out, &blob.path(), &blob.bytes, 0o644)?;
    }
    let bytes = out.into_inner().context("finishing the image tar")?;
    if let Some(dir) = output.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(output, bytes).with_context(|| format!("writing {}", output.display()))?;
    Ok(Image {
        path: output.to_path_buf(),
        manifest_digest: manifest.digest,
        layer_bytes: layer.bytes.len(),
        libraries,
    })
}

/// `name:tag` -> (name, tag); a reference without a tag is refused (the DaemonSet names one).
pub fn split_tag(reference: &str) -> Result<(&str, &str)> {
    match reference.rsplit_once(':') {
        Some((name, tag)) if !name.is_empty() && !tag.is_empty() && !tag.contains('/') => {
            Ok((name, tag))
        }
        _ => bail!("image reference `{reference}` needs a tag, e.g. {DEFAULT_TAG}"),
    }
}

/// clap value parser of `--tag`: a bad reference is a usage error (exit code 2).
pub fn parse_reference(reference: &str) -> Result<String, String> {
    split_tag(reference)
        .map(|_| reference.to_string())
        .map_err(|e| e.to_string())
}

/// The libraries in `ldd` output: `name => /path (0x...)` and the loader's `/path (0x...)`.
/// The vDSO has no file and is skipped; a library ldd could not find is an error.
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("statically linked") {
            continue;
        }
        let target = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("library {} not found", name.trim());
                }
                rest
            }
            None => line,
        };
        let path = target.split_whitespace().next().unwrap_or_default();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    libs.sort();
    libs.dedup();
    Ok(libs)
}

/// The image config: what to run, and the layer's diff id (uncompressed: its digest).
pub fn config_json(layer_digest: &str) -> Value {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": [format!("/{BINARY_PATH}")],
            "Cmd": ["run"],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "WorkingDir": "/",
            "Labels": { "org.opencontainers.image.title": "node-sensor" }
        },
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        "history": [{ "created_by": "cargo xtask image" }]
    })
}

pub fn manifest_json(config: Value, layer: Value) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config,
        "layers": [layer]
    })
}

/// `index.json`: containerd names the image from `io.containerd.image.name`.
pub fn index_json(mut manifest: Value, name: &str, tag: &str) -> Value {
    manifest["annotations"] = json!({
        "io.containerd.image.name": qualified(name, tag),
        "org.opencontainers.image.ref.name": tag
    });
    json!({ "schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [manifest] })
}

/// docker-archive `manifest.json` (`docker load`, and the tags `kind load image-archive` reads).
pub fn docker_manifest_json(tag: &str, config_path: &str, layer_path: &str) -> Value {
    json!([{ "Config": config_path, "RepoTags": [tag], "Layers": [layer_path] }])
}

/// `node-sensor`, `dev` -> `docker.io/library/node-sensor:dev`, the name kubelet asks for.
fn qualified(name: &str, tag: &str) -> String {
    let first = name.split('/').next().unwrap_or_default();
    let has_registry = name.contains('/') && (first.contains('.') || first.contains(':'));
    match (has_registry, name.contains('/')) {
        (true, _) => format!("{name}:{tag}"),
        (false, true) => format!("docker.io/{name}:{tag}"),
        (false, false) => format!("docker.io/library/{name}:{tag}"),
    }
}

/// The root filesystem: the binary, its libraries, and empty `/tmp` and mount points.
fn layer_tar(binary: &Path, libraries: &[PathBuf]) -> Result<Vec<u8>> {
    let mut files: Vec<(String, PathBuf, u32)> = vec![(BINARY_PATH.into(), binary.into(), 0o755)];
    for lib in libraries {
        let inside = lib
            .to_str()
            .context("library path is not UTF-8")?
            .trim_start_matches('/')
            .to_string();
        // Copy the file a symlink (e.g. /lib64/ld-linux-x86-64.so.2) points to.
        let real = fs::canonicalize(lib).with_context(|| format!("resolving {}", lib.display()))?;
        files.push((inside, real, 0o755));
    }
    let mut dirs: Vec<String> = ["proc", "sys", "dev", "run", "etc", "var/lib", "var/log"]
        .iter()
        .map(|d| d.to_string())
        .collect();
    for (inside, _, _) in &files {
        let mut parent = Path::new(inside).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.push(p.to_str().unwrap_or_default().to_string());
            parent = p.parent();
        }
    }
    // Parents before children, every directory once.
    let mut all_dirs: Vec<String> = dirs.into_iter().flat_map(|d| ancestors(&d)).collect();
    all_dirs.sort();
    all_dirs.dedup();
    files.sort();

    let mut tar = tar::Builder::new(Vec::new());
    for dir in &all_dirs {
        append_dir(&mut tar, dir, 0o755)?;
    }
    append_dir(&mut tar, "tmp", 0o1777)?;
    for (inside, source, mode) in &files {
        let bytes = fs::read(source).with_context(|| format!("reading {}", source.display()))?;
        append_file(&mut tar, inside, &bytes, *mode)?;
    }
    tar.into_inner().context("finishing the layer tar")
}

/// `a/b/c` -> `a`, `a/b`, `a/b/c`.
fn ancestors(dir: &str) -> Vec<String> {
    let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    (1..=parts.len()).map(|n| parts[..n].join("/")).collect()
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_file(tar: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8], mode: u32) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, bytes.len() as u64, mode);
    tar.append_data(&mut h, path, bytes)
        .with_context(|| format!("adding {path} to the tar"))
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> Result<()> {
    let mut h = header(tar::EntryType::Directory, 0, mode);
    tar.append_data(&mut h, format!("{path}/"), std::io::empty())
        .with_context(|| format!("adding {path}/ to the tar"))
}

fn to_bytes(v: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(v).context("serialising JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LDD: &str = "\
\tlinux-vdso.so.1 (0x00007ffd5b3f5000)
\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0c1c2a0000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0c1c0bf000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f0c1e5c8000)
";

    #[test]
    fn ldd_output_gives_every_file_but_the_vdso() {
        assert_eq!(
            parse_ldd(LDD).unwrap(),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
        let e = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(e.to_string().contains("libfoo.so.1 not found"), "{e}");
    }

    #[test]
    fn references_need_a_tag_and_are_qualified_like_kubelet_does() {
        assert_eq!(
            split_tag("node-sensor:dev").unwrap(),
            ("node-sensor", "dev")
        );
        assert_eq!(
            split_tag("localhost:5000/x/node-sensor:v1").unwrap(),
            ("localhost:5000/x/node-sensor", "v1")
        );
        assert!(split_tag("node-sensor").is_err());
        assert!(split_tag("localhost:5000/node-sensor").is_err());
        assert_eq!(
            qualified("node-sensor", "dev"),
            "docker.io/library/node-sensor:dev"
        );
        assert_eq!(qualified("acme/sensor", "1"), "docker.io/acme/sensor:1");
        assert_eq!(
            qualified("registry.local:5000/sensor", "1"),
            "registry.local:5000/sensor:1"
        );
    }

    #[test]
    fn digests_are_sha256_of_the_bytes() {
        // sha256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            sha256_digest(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn layer_lists_parents_before_children() {
        assert_eq!(
            ancestors("usr/local/bin"),
            ["usr", "usr/local", "usr/local/bin"]
        );
    }
}
