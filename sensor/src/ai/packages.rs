//! Agent frameworks and SDKs installed in a container, read from its filesystem through
//! `/proc/<pid>/root`: Python distributions (`*.dist-info`, `*.egg-info` in `site-packages` /
//! `dist-packages`) and Node packages (`node_modules/<name>`, `node_modules/@scope/<name>`),
//! kept when the catalogue knows them. Meant to run once per container image, off the event
//! path: it reads directory listings only (plus a Node `package.json` for the version).
//!
//! The container's symlinks are not followed: through `/proc/<pid>/root` an absolute symlink
//! would resolve against the sensor's root, not the container's, and name host packages.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use serde::Serialize;

use super::catalogue::{Catalogue, Ecosystem, PackageKind};
use crate::profile::model::{PackageEntry, Timestamp};

/// Where images put Python environments and Node applications (relative to the root).
const PYTHON_LIB_DIRS: &[&str] = &[
    "usr/lib",
    "usr/local/lib",
    "opt/conda/lib",
    "opt/venv/lib",
    "venv/lib",
    ".venv/lib",
    "app/.venv/lib",
    "app/venv/lib",
    "root/.local/lib",
];
const NODE_MODULES_DIRS: &[&str] = &[
    "app/node_modules",
    "usr/src/app/node_modules",
    "home/node/app/node_modules",
    "opt/app/node_modules",
    "srv/node_modules",
    "usr/lib/node_modules",
    "usr/local/lib/node_modules",
];
/// Entries read per directory at most (a huge `node_modules` is cut, not walked to the end).
const MAX_ENTRIES_PER_DIR: usize = 20_000;
const MAX_PACKAGE_JSON_BYTES: u64 = 256 * 1024;

/// A catalogued package found in a container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FoundPackage {
    pub ecosystem: Ecosystem,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub kind: PackageKind,
    /// Where it was found, relative to the container's root.
    pub path: String,
}

impl FoundPackage {
    /// The profile's record of it.
    pub fn entry(&self, now: Timestamp) -> PackageEntry {
        PackageEntry {
            ecosystem: self.ecosystem.name().to_string(),
            name: self.name.clone(),
            version: self.version.clone(),
            kind: self.kind.name().to_string(),
            path: self.path.clone(),
            first_seen: now,
        }
    }
}

/// Scans the filesystem under `root` (a container's `/proc/<pid>/root`) for catalogued packages.
pub fn scan(root: &Path, catalogue: &Catalogue) -> Vec<FoundPackage> {
    let mut found = BTreeSet::new();
    for lib in PYTHON_LIB_DIRS {
        for python in subdirs(&root.join(lib)).filter(|n| n.starts_with("python3")) {
            for packages in ["site-packages", "dist-packages"] {
                let rel = format!("{lib}/{python}/{packages}");
                scan_python(root, &rel, catalogue, &mut found);
            }
        }
    }
    // Debian's system Python: /usr/lib/python3/dist-packages.
    scan_python(root, "usr/lib/python3/dist-packages", catalogue, &mut found);
    for dir in NODE_MODULES_DIRS {
        scan_node(root, dir, catalogue, &mut found);
    }
    found.into_iter().collect()
}

fn scan_python(root: &Path, rel: &str, catalogue: &Catalogue, found: &mut BTreeSet<FoundPackage>) {
    for entry in subdirs(&root.join(rel)) {
        let Some((name, version)) = python_distribution(&entry) else {
            continue;
        };
        if let Some(kind) = catalogue.package(Ecosystem::Python, name) {
            found.insert(FoundPackage {
                ecosystem: Ecosystem::Python,
                name: name.to_string(),
                version: version.map(str::to_string),
                kind,
                path: format!("/{rel}/{entry}"),
            });
        }
    }
}

fn scan_node(root: &Path, rel: &str, catalogue: &Catalogue, found: &mut BTreeSet<FoundPackage>) {
    let dir = root.join(rel);
    for entry in subdirs(&dir) {
        let names: Vec<String> = if entry.starts_with('@') {
            subdirs(&dir.join(&entry))
                .map(|n| format!("{entry}/{n}"))
                .collect()
        } else {
            vec![entry]
        };
        for name in names {
            if let Some(kind) = catalogue.package(Ecosystem::Node, &name) {
                found.insert(FoundPackage {
                    ecosystem: Ecosystem::Node,
                    version: node_version(&dir.join(&name).join("package.json")),
                    name: name.clone(),
                    kind,
                    path: format!("/{rel}/{name}"),
                });
            }
        }
    }
}

/// `langchain_core-0.3.15.dist-info` -> (`langchain_core`, `0.3.15`); `.egg-info` alike, the
/// version optional.
pub fn python_distribution(entry: &str) -> Option<(&str, Option<&str>)> {
    let stem = entry
        .strip_suffix(".dist-info")
        .or_else(|| entry.strip_suffix(".egg-info"))?;
    // Distribution names cannot contain `-` in these directory names (it is escaped to `_`),
    // so the first `-` separates the version.
    Some(match stem.split_once('-') {
        Some((name, version)) => (name, Some(version.split('-').next().unwrap_or(version))),
        None => (stem, None),
    })
    .filter(|(name, _)| !name.is_empty())
}

fn node_version(package_json: &Path) -> Option<String> {
    let meta = fs::symlink_metadata(package_json).ok()?;
    if !meta.is_file() || meta.len() > MAX_PACKAGE_JSON_BYTES {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&fs::read(package_json).ok()?).ok()?;
    v["version"].as_str().map(str::to_string)
}

/// Names of the real directories (symlinks are not followed) in `dir`, bounded.
fn subdirs(dir: &Path) -> impl Iterator<Item = String> {
    let is_real_dir = fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    is_real_dir
        .then(|| fs::read_dir(dir).ok())
        .flatten()
        .into_iter()
        .flatten()
        .take(MAX_ENTRIES_PER_DIR)
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
}

/// The root of a process's container, as seen from the sensor.
pub fn process_root(proc_root: &Path, pid: u32) -> PathBuf {
    proc_root.join(pid.to_string()).join("root")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkdirs(root: &Path, dirs: &[&str]) {
        for d in dirs {
            fs::create_dir_all(root.join(d)).unwrap();
        }
    }

    #[test]
    fn distribution_names() {
        assert_eq!(
            python_distribution("langchain_core-0.3.15.dist-info"),
            Some(("langchain_core", Some("0.3.15")))
        );
        assert_eq!(
            python_distribution("openai-1.54.0-py3.12.egg-info"),
            Some(("openai", Some("1.54.0")))
        );
        assert_eq!(python_distribution("mcp.egg-info"), Some(("mcp", None)));
        assert_eq!(
            python_distribution("langchain"),
            None,
            "the import package, not the dist"
        );
        assert_eq!(python_distribution("-1.0.dist-info"), None);
    }

    #[test]
    fn finds_catalogued_python_and_node_packages_only() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        mkdirs(
            r,
            &[
                "usr/local/lib/python3.12/site-packages/langchain_core-0.3.15.dist-info",
                "usr/local/lib/python3.12/site-packages/langchain_core",
                "usr/local/lib/python3.12/site-packages/requests-2.32.3.dist-info",
                "usr/local/lib/python3.12/site-packages/Pinecone_Client-5.0.1.dist-info",
                "usr/lib/python3/dist-packages/mcp-1.2.0.dist-info",
                "app/node_modules/@modelcontextprotocol/sdk",
                "app/node_modules/@types/node",
                "app/node_modules/express",
                "app/node_modules/openai",
            ],
        );
        fs::write(
            r.join("app/node_modules/@modelcontextprotocol/sdk/package.json"),
            r#"{"name":"@modelcontextprotocol/sdk","version":"1.0.3"}"#,
        )
        .unwrap();
        let found = scan(r, Catalogue::embedded());
        let got: Vec<(&str, Option<&str>, PackageKind)> = found
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_deref(), p.kind))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Pinecone_Client",
                    Some("5.0.1"),
                    PackageKind::VectorStoreSdk
                ),
                ("langchain_core", Some("0.3.15"), PackageKind::Framework),
                ("mcp", Some("1.2.0"), PackageKind::Mcp),
                ("@modelcontextprotocol/sdk", Some("1.0.3"), PackageKind::Mcp),
                ("openai", None, PackageKind::ModelSdk),
            ]
        );
        assert_eq!(found[3].path, "/app/node_modules/@modelcontextprotocol/sdk");
    }

    #[test]
    fn symlinks_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        mkdirs(elsewhere.path(), &["site-packages/openai-1.0.0.dist-info"]);
        mkdirs(root.path(), &["usr/local/lib/python3.12"]);
        std::os::unix::fs::symlink(
            elsewhere.path().join("site-packages"),
            root.path().join("usr/local/lib/python3.12/site-packages"),
        )
        .unwrap();
        assert_eq!(scan(root.path(), Catalogue::embedded()), []);
    }
}
