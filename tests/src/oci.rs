//! Unpacking a container image archive the way a runtime does (OCI image spec): `oci-layout`,
//! `index.json` -> manifest -> config and layers, every blob checked against its digest and
//! size, layers applied in order (whiteouts honoured) into a root filesystem that runc can run.
//!
//! Why: the image test must run what `cargo xtask image` wrote, read through the spec, not a
//! directory it happens to know; a wrong digest, media type or layer order fails here.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// An image unpacked into `rootfs`.
#[derive(Debug)]
pub struct UnpackedImage {
    pub rootfs: PathBuf,
    /// The image config (`config.Entrypoint`, `config.Cmd`, `config.Env`, ...).
    pub config: Value,
    /// `io.containerd.image.name` of the index entry.
    pub name: String,
    /// `RepoTags` of the docker-archive `manifest.json`.
    pub repo_tags: Vec<String>,
    pub manifest_digest: String,
}

/// `sha256:<hex>`.
pub fn digest(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Unpacks `archive` (an OCI layout in a tar) into `<dest>/rootfs`. Panics with the reason if
/// the archive does not follow the spec.
pub fn unpack(archive: &Path, dest: &Path) -> UnpackedImage {
    let files = read_tar(archive);
    let get = |path: &str| -> &Vec<u8> {
        files
            .get(path)
            .unwrap_or_else(|| panic!("{} has no {path}", archive.display()))
    };
    let layout: Value = json(get("oci-layout"), "oci-layout");
    assert_eq!(layout["imageLayoutVersion"], "1.0.0", "oci-layout version");
    let index: Value = json(get("index.json"), "index.json");
    assert_eq!(index["schemaVersion"], 2, "index.json schemaVersion");
    assert_eq!(index["mediaType"], MEDIA_INDEX, "index.json mediaType");
    let entries = index["manifests"].as_array().expect("index.json manifests");
    assert_eq!(entries.len(), 1, "one image in the archive");
    let entry = &entries[0];
    assert_eq!(entry["mediaType"], MEDIA_MANIFEST, "index entry mediaType");
    let manifest_bytes = blob(&files, entry);
    let manifest: Value = json(manifest_bytes, "manifest");
    assert_eq!(manifest["schemaVersion"], 2, "manifest schemaVersion");
    assert_eq!(
        manifest["config"]["mediaType"], MEDIA_CONFIG,
        "config mediaType"
    );
    let config: Value = json(blob(&files, &manifest["config"]), "image config");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let layers = manifest["layers"].as_array().expect("manifest layers");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().expect("diff_ids");
    assert_eq!(layers.len(), diff_ids.len(), "one diff id per layer");

    let rootfs = dest.join("rootfs");
    fs::create_dir_all(&rootfs).expect("create rootfs");
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        assert_eq!(
            layer["mediaType"], MEDIA_LAYER_TAR,
            "only uncompressed layers are written by xtask image"
        );
        let bytes = blob(&files, layer);
        // Uncompressed: the diff id is the digest of the layer itself.
        assert_eq!(diff_id.as_str(), Some(digest(bytes).as_str()), "diff id");
        apply_layer(bytes, &rootfs);
    }

    let docker: Value = json(get("manifest.json"), "manifest.json");
    let docker = &docker[0];
    let blob_path = |d: &Value| format!("blobs/{}", d.as_str().unwrap().replacen(':', "/", 1));
    assert_eq!(
        docker["Config"].as_str(),
        Some(blob_path(&manifest["config"]["digest"]).as_str()),
        "manifest.json Config is the OCI config blob"
    );
    let docker_layers: Vec<String> = docker["Layers"]
        .as_array()
        .expect("manifest.json Layers")
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    let oci_layers: Vec<String> = layers.iter().map(|l| blob_path(&l["digest"])).collect();
    assert_eq!(
        docker_layers, oci_layers,
        "manifest.json Layers are the OCI layers"
    );
    UnpackedImage {
        rootfs,
        config,
        name: entry["annotations"]["io.containerd.image.name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        repo_tags: docker["RepoTags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        manifest_digest: entry["digest"].as_str().unwrap_or_default().to_string(),
    }
}

fn json(bytes: &[u8], what: &str) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{what} is not JSON: {e}"))
}

/// The blob a descriptor names, checked against its digest and size.
fn blob<'a>(files: &'a HashMap<String, Vec<u8>>, descriptor: &Value) -> &'a [u8] {
    let d = descriptor["digest"].as_str().expect("descriptor digest");
    let hex = d
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("unsupported digest algorithm in {d}"));
    let bytes = files
        .get(&format!("blobs/sha256/{hex}"))
        .unwrap_or_else(|| panic!("blob {d} missing"));
    assert_eq!(digest(bytes), d, "blob content does not match its digest");
    assert_eq!(
        descriptor["size"].as_u64(),
        Some(bytes.len() as u64),
        "size of {d}"
    );
    bytes
}

fn read_tar(path: &Path) -> HashMap<String, Vec<u8>> {
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut archive = tar::Archive::new(file);
    let mut files = HashMap::new();
    for entry in archive.entries().expect("read archive") {
        let mut entry = entry.expect("archive entry");
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path().expect("entry path").display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read entry");
        files.insert(name.trim_start_matches("./").to_string(), bytes);
    }
    files
}

/// Applies one layer: `.wh.<name>` deletes `<name>`, `.wh..wh..opq` empties its directory,
/// everything else is extracted (paths cannot leave the rootfs).
fn apply_layer(bytes: &[u8], rootfs: &Path) {
    let mut archive = tar::Archive::new(bytes);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    for entry in archive.entries().expect("read layer") {
        let mut entry = entry.expect("layer entry");
        let path = entry.path().expect("layer entry path").into_owned();
        assert!(
            path.components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir)),
            "layer entry {} leaves the rootfs",
            path.display()
        );
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let dir = rootfs.join(path.parent().unwrap_or(Path::new("")));
        if name == ".wh..wh..opq" {
            if let Ok(children) = fs::read_dir(&dir) {
                for child in children.flatten() {
                    remove(&child.path());
                }
            }
        } else if let Some(target) = name.strip_prefix(".wh.") {
            remove(&dir.join(target));
        } else {
            entry
                .unpack_in(rootfs)
                .unwrap_or_else(|e| panic!("unpack {}: {e}", path.display()));
        }
    }
}

fn remove(path: &Path) {
    let _ = fs::remove_dir_all(path).or_else(|_| fs::remove_file(path));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_ustar();
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, *d).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, std::io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_delete_and_opaque_dirs_empty() {
        let dir = crate::util::TempDir::new("oci-unit");
        let root = dir.path();
        apply_layer(
            &layer(&[
                ("a/", None),
                ("a/keep", Some(b"1")),
                ("a/gone", Some(b"2")),
                ("b/", None),
                ("b/old", Some(b"3")),
            ]),
            root,
        );
        apply_layer(
            &layer(&[
                ("a/.wh.gone", Some(b"")),
                ("b/.wh..wh..opq", Some(b"")),
                ("b/new", Some(b"4")),
            ]),
            root,
        );
        assert!(root.join("a/keep").exists());
        assert!(!root.join("a/gone").exists());
        assert!(!root.join("b/old").exists());
        assert_eq!(fs::read(root.join("b/new")).unwrap(), b"4");
    }
}
