//! The NetworkPolicy drafts of the hand-written profiles in `src/drafts/testdata/` validate
//! against the OpenAPI schemas of Kubernetes 1.29 and 1.34 (the supported range), strictly (no
//! unknown field), with PyPI's `kubernetes-validate`, which ships those schemas and works offline.
//!
//! The tool is found through `KUBERNETES_VALIDATE` (a path) or on `PATH`. `cargo xtask test`
//! installs a pinned version into `target/pytools` and sets `KUBERNETES_VALIDATE`; without the
//! tool these tests fail (they never skip).

use std::path::{Path, PathBuf};
use std::process::Command;

use sensor::ai::Catalogue;
use sensor::drafts::netpol::{network_policy, network_policy_for_workload, to_json, to_yaml};
use sensor::profile::model::ApplicationProfile;

/// Both ends of the supported range: NetworkPolicy v1 is the same in between.
const KUBERNETES_VERSIONS: &[&str] = &["1.29", "1.34"];

const PROFILES: &[&str] = &["agent", "partial", "ipv6"];

fn tool() -> PathBuf {
    const HOW: &str = "`cargo xtask test` installs it (pinned, into target/pytools) and sets \
                       KUBERNETES_VALIDATE; or `pip install kubernetes-validate` and put it on PATH";
    let path = match std::env::var_os("KUBERNETES_VALIDATE") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join("kubernetes-validate"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "kubernetes-validate not found (KUBERNETES_VALIDATE unset, not on PATH): {HOW}"
                )
            }),
    };
    let runs = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(runs, "{} does not run: {HOW}", path.display());
    path
}

fn profile(name: &str) -> ApplicationProfile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/drafts/testdata")
        .join(format!("{name}.profile.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn write_temp(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("netpol_validate");
    std::fs::create_dir_all(&dir).expect("creating the test's temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing the manifest");
    path
}

/// Runs `kubernetes-validate --strict -k <v>` for every supported version: (success, output).
fn validate(file: &Path, version: &str) -> (bool, String) {
    let out = Command::new(tool())
        .args(["--strict", "-k", version])
        .arg(file)
        .output()
        .expect("running kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn assert_valid(name: &str, text: &str) {
    let file = write_temp(name, text);
    for version in KUBERNETES_VERSIONS {
        let (ok, out) = validate(&file, version);
        assert!(
            ok && out.contains("passed for resource networkpolicy/")
                && out.contains(&format!("against version {version}")),
            "{name} does not validate against Kubernetes {version}:\n{out}\n--- manifest ---\n{text}"
        );
    }
}

#[test]
fn golden_profile_policies_validate_strictly_on_1_29_and_1_34() {
    for name in PROFILES {
        let np = network_policy(&profile(name), Catalogue::embedded()).unwrap();
        assert_valid(&format!("{name}.netpol.yaml"), &to_yaml(&np).unwrap());
        assert_valid(&format!("{name}.netpol.json"), &to_json(&np).unwrap());
    }
}

#[test]
fn merged_workload_policy_validates() {
    let a = profile("agent");
    let mut b = profile("agent");
    b.key.container = "sidecar".into();
    b.labels.clear();
    let np = network_policy_for_workload(&[&a, &b], Catalogue::embedded()).unwrap();
    assert_valid("merged.netpol.yaml", &to_yaml(&np).unwrap());
}

/// Control: the validator does reject a policy with an unknown field, so the passes above mean
/// something.
#[test]
fn validator_rejects_an_unknown_field() {
    let mut v =
        serde_json::to_value(network_policy(&profile("agent"), Catalogue::embedded()).unwrap())
            .unwrap();
    v["spec"]["egress"][0]["ports"][0]["portName"] = serde_json::json!("dns");
    let file = write_temp(
        "broken.netpol.json",
        &serde_json::to_string_pretty(&v).unwrap(),
    );
    for version in KUBERNETES_VERSIONS {
        let (ok, out) = validate(&file, version);
        assert!(
            !ok && out.contains("portName"),
            "an unknown field passed validation against {version}:\n{out}"
        );
    }
}

/// What the schemas do not check: object names are DNS-1123 subdomains, label keys and values
/// are valid, so the API server will accept the policies too.
#[test]
fn names_and_labels_are_valid() {
    fn label_value_ok(v: &str) -> bool {
        v.len() <= 63
            && (v.is_empty()
                || (v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    && v.as_bytes()[0].is_ascii_alphanumeric()
                    && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric()))
    }
    fn label_key_ok(k: &str) -> bool {
        let (prefix, name) = k.rsplit_once('/').map_or((None, k), |(p, n)| (Some(p), n));
        prefix.is_none_or(sensor::drafts::is_dns1123_subdomain)
            && !name.is_empty()
            && label_value_ok(name)
    }
    for name in PROFILES {
        let v =
            serde_json::to_value(network_policy(&profile(name), Catalogue::embedded()).unwrap())
                .unwrap();
        let np_name = v["metadata"]["name"].as_str().unwrap();
        assert!(sensor::drafts::is_dns1123_subdomain(np_name), "{np_name}");
        // Every matchLabels anywhere in the policy.
        let mut stack = vec![&v];
        while let Some(node) = stack.pop() {
            match node {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::Object(labels)) = map.get("matchLabels") {
                        for (k, val) in labels {
                            let val = val.as_str().unwrap();
                            assert!(label_key_ok(k) && label_value_ok(val), "{name}: {k}={val}");
                        }
                    }
                    stack.extend(map.values());
                }
                serde_json::Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
    }
}
