//! Policies from files: `--policy FILE|DIR` (a directory: its `.yaml`, `.yml` and `.json` files,
//! not recursive, in name order). A file holds one JSON document or any number of YAML
//! documents; each is a `NetworkPolicy` (networking.k8s.io/v1), a `Namespace` (its labels are
//! used by `namespaceSelector`s), or a `List` (`kind: List` or `...List`) of them. Other kinds
//! are skipped with a note. Anything malformed is one [`PolicyFileError`] naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::Value;
use thiserror::Error;

use crate::audit::netpol_eval::{Labels, Namespaces, PolicyId, PolicySet};

/// Bad input: the command exits with code 2 and this one line.
#[derive(Debug, Error)]
#[error("{path}: {message}")]
pub struct PolicyFileError {
    pub path: String,
    pub message: String,
}

#[derive(Debug)]
pub struct LoadedPolicies {
    pub policies: Vec<NetworkPolicy>,
    pub set: PolicySet,
    pub namespaces: Namespaces,
    /// Documents skipped (other kinds), for the user to see.
    pub notes: Vec<String>,
    pub files: usize,
}

/// Reads `path` (file or directory). Policies without `metadata.namespace` get
/// `default_namespace` (`--namespace`), or are an error without it.
pub fn load(
    path: &Path,
    default_namespace: Option<&str>,
) -> Result<LoadedPolicies, PolicyFileError> {
    let files = policy_files(path)?;
    let mut policies: Vec<NetworkPolicy> = Vec::new();
    let mut origin: BTreeMap<PolicyId, PathBuf> = BTreeMap::new();
    let mut namespaces = Namespaces::default();
    let mut notes = Vec::new();
    for file in &files {
        let fail = |message: String| PolicyFileError {
            path: file.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(file).map_err(|e| fail(e.to_string()))?;
        for (n, doc) in documents(file, &text)
            .map_err(fail)?
            .into_iter()
            .enumerate()
        {
            let mut objects = Vec::new();
            flatten(doc, &mut objects).map_err(|e| fail(format!("document {}: {e}", n + 1)))?;
            for object in objects {
                let at = |e: String| fail(format!("document {}: {e}", n + 1));
                match kind_of(&object).map_err(at)? {
                    ("networking.k8s.io/v1", "NetworkPolicy") => {
                        let mut p: NetworkPolicy = serde_json::from_value(object)
                            .map_err(|e| at(format!("not a valid NetworkPolicy: {e}")))?;
                        let name = p.metadata.name.clone().unwrap_or_default();
                        if p.metadata.namespace.is_none() {
                            let ns = default_namespace.ok_or_else(|| {
                                at(format!(
                                    "NetworkPolicy {name:?} has no metadata.namespace: add one or \
                                     pass --namespace"
                                ))
                            })?;
                            p.metadata.namespace = Some(ns.to_string());
                        }
                        // Checked one by one so the error names its file.
                        PolicySet::new([&p]).map_err(|e| at(e.to_string()))?;
                        let id = PolicyId {
                            namespace: p.metadata.namespace.clone().unwrap_or_default(),
                            name,
                        };
                        if let Some(first) = origin.insert(id.clone(), file.clone()) {
                            return Err(at(format!(
                                "NetworkPolicy {id} is defined twice (also in {})",
                                first.display()
                            )));
                        }
                        policies.push(p);
                    }
                    ("v1", "Namespace") => {
                        let name = object["metadata"]["name"]
                            .as_str()
                            .filter(|n| !n.is_empty())
                            .ok_or_else(|| at("Namespace without metadata.name".into()))?
                            .to_string();
                        let labels: Labels = serde_json::from_value(
                            object["metadata"]["labels"].clone(),
                        )
                        .or_else(|_| {
                            if object["metadata"]["labels"].is_null() {
                                Ok(Labels::new())
                            } else {
                                Err(at(format!(
                                    "Namespace {name}: labels must map strings to strings"
                                )))
                            }
                        })?;
                        namespaces.insert(&name, labels);
                    }
                    (api, kind) => notes.push(format!(
                        "{}: document {}: skipped {kind} ({api}): only NetworkPolicy \
                         (networking.k8s.io/v1) and Namespace are read",
                        file.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    let set = PolicySet::new(&policies).map_err(|e| PolicyFileError {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(LoadedPolicies {
        policies,
        set,
        namespaces,
        notes,
        files: files.len(),
    })
}

fn policy_files(path: &Path) -> Result<Vec<PathBuf>, PolicyFileError> {
    let fail = |message: String| PolicyFileError {
        path: path.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| fail(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(fail(
            "no .yaml, .yml or .json file in this directory".into(),
        ));
    }
    Ok(files)
}

/// The documents of a file: JSON (`.json`) or YAML (every `---` document; empty ones dropped).
fn documents(file: &Path, text: &str) -> Result<Vec<Value>, String> {
    if file.extension().is_some_and(|e| e == "json") {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        return Ok(vec![v]);
    }
    let mut docs = Vec::new();
    for (n, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v: Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| format!("document {}: not valid YAML: {e}", n + 1))?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// `doc` itself, or the items of a List (nested Lists too).
fn flatten(doc: Value, out: &mut Vec<Value>) -> Result<(), String> {
    let is_list = doc["kind"].as_str().is_some_and(|k| k.ends_with("List"));
    if !is_list {
        out.push(doc);
        return Ok(());
    }
    match doc.get("items") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => {
            for item in items {
                flatten(item.clone(), out)?;
            }
            Ok(())
        }
        Some(_) => Err("a List's items must be a sequence".into()),
    }
}

/// `(apiVersion, kind)` of an object.
fn kind_of(object: &Value) -> Result<(&str, &str), String> {
    if !object.is_object() {
        return Err("not a Kubernetes object (a mapping with apiVersion and kind)".into());
    }
    let field = |f: &str| {
        object[f]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("missing {f}"))
    };
    Ok((field("apiVersion")?, field("kind")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir(files: &[(&str, &str)]) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "netpol-files-{}-{}",
            std::process::id(),
            crate::drafts::dns1123_subdomain(&format!("{:?}", std::thread::current().id()))
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for (name, text) in files {
            std::fs::write(d.join(name), text).unwrap();
        }
        Dir(d)
    }

    const POLICY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: prod}\nspec: {podSelector: {}}\n";

    #[test]
    fn multi_document_yaml_lists_json_and_namespaces() {
        let d = dir(&[
            (
                "a.yaml",
                &format!(
                    "{POLICY}---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: prod, labels: {{env: prod}}}}\n"
                ),
            ),
            (
                "b.json",
                r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"b"},"spec":{"podSelector":{}}}]}"#,
            ),
            ("notes.txt", "not read"),
        ]);
        let l = load(&d.0, Some("dev")).unwrap();
        assert_eq!(l.files, 2);
        let ids: Vec<_> = l
            .policies
            .iter()
            .map(|p| {
                (
                    p.metadata.namespace.clone().unwrap(),
                    p.metadata.name.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [("prod".into(), "a".into()), ("dev".into(), "b".into())]
        );
        assert_eq!(l.set.len(), 2);
        assert_eq!(l.namespaces.labels("prod")["env"], "prod");
        assert_eq!(l.notes.len(), 1, "{:?}", l.notes);
        assert!(l.notes[0].contains("skipped ConfigMap"), "{:?}", l.notes);
    }

    #[test]
    fn malformed_input_is_one_error_naming_the_file() {
        let cases: &[(&str, &str, &str)] = &[
            ("bad.yaml", "kind: [unclosed", "not valid YAML"),
            ("bad.json", "{", "not valid JSON"),
            ("bad.yaml", "just a string", "not a Kubernetes object"),
            (
                "bad.yaml",
                "kind: NetworkPolicy\nmetadata: {name: x}",
                "missing apiVersion",
            ),
            (
                "bad.yaml",
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: p}\nspec: {podSelector: 7}",
                "not a valid NetworkPolicy",
            ),
            (
                "bad.yaml",
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: p}\nspec: {podSelector: {}, policyTypes: [Sideways]}",
                "NetworkPolicy p/x: spec.policyTypes",
            ),
            (
                "bad.yaml",
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec: {podSelector: {}}",
                "no metadata.namespace",
            ),
            (
                "bad.yaml",
                &format!("{POLICY}---\n{POLICY}"),
                "defined twice",
            ),
        ];
        for (name, text, want) in cases {
            let d = dir(&[(name, text)]);
            let e = load(&d.0.join(name), None).unwrap_err();
            assert!(
                e.path.ends_with(name) && e.to_string().contains(want),
                "{text}: {e}"
            );
        }
        let e = load(Path::new("/nonexistent/policies"), None).unwrap_err();
        assert_eq!(e.path, "/nonexistent/policies");
        let d = dir(&[("x.txt", "")]);
        assert!(load(&d.0, None).unwrap_err().message.contains("no .yaml"));
    }
}
