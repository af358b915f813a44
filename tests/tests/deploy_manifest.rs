//! `deploy/daemonset.yaml` against the Kubernetes API schemas of every supported version, its
//! security settings, and the kind quickstart script (bash -n, shellcheck).
//!
//! The schemas are PyPI's `kubernetes-validate` (offline OpenAPI schemas), found through
//! `KUBERNETES_VALIDATE` or on `PATH`; `cargo xtask test` installs it into `target/pytools`.
//! These tests fail without it (they never skip).

use std::path::{Path, PathBuf};
use std::process::Command;

use sensor_tests::{deploy, util};
use serde_json::{Value, json};

/// Every minor version the project supports.
const KUBERNETES_VERSIONS: &[&str] = &["1.29", "1.30", "1.31", "1.32", "1.33", "1.34"];

fn kubernetes_validate() -> PathBuf {
    const HOW: &str = "`cargo xtask test` installs it (pinned, into target/pytools) and sets \
                       KUBERNETES_VALIDATE; or `pip install kubernetes-validate`";
    let path = std::env::var_os("KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .map(|d| d.join("kubernetes-validate"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("kubernetes-validate not found: {HOW}"));
    assert!(path.is_file(), "{} does not exist: {HOW}", path.display());
    path
}

/// `kubernetes-validate --strict -k <version> <file>`: (success, output).
fn validate(file: &Path, version: &str) -> (bool, String) {
    let out = Command::new(kubernetes_validate())
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

#[test]
fn manifest_is_valid_for_kubernetes_1_29_to_1_34() {
    let file = deploy::manifest_path();
    let kinds: Vec<String> = deploy::documents()
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "ConfigMap",
            "DaemonSet"
        ]
    );
    assert_valid_everywhere(&file, kinds.len());
}

/// `file` validates for every Kubernetes version, each of its `documents` checked against a
/// schema (none skipped as unknown).
fn assert_valid_everywhere(file: &Path, documents: usize) {
    for version in KUBERNETES_VERSIONS {
        let (ok, out) = validate(file, version);
        assert!(
            ok,
            "{} is invalid for Kubernetes {version}:\n{out}",
            file.display()
        );
        assert_eq!(
            out.matches(" passed for resource ").count(),
            documents,
            "one `passed` line per document for {version}:\n{out}"
        );
    }
}

/// The CRDs (`sensor crds`) validate as CustomResourceDefinitions for every version.
#[test]
fn crds_are_valid_for_kubernetes_1_29_to_1_34() {
    assert_valid_everywhere(&deploy::workspace().join("deploy/crds.yaml"), 2);
}

/// The validator really checks: a field that does not exist in the API makes it fail.
#[test]
fn validator_rejects_a_wrong_field_in_the_manifest() {
    let text = std::fs::read_to_string(deploy::manifest_path()).unwrap();
    let broken = text.replacen(
        "readOnlyRootFilesystem: true",
        "readOnlyRootFilesystem: true\n            readOnlyRootFileSystem: true",
        1,
    );
    assert_ne!(broken, text);
    let dir = util::TempDir::new("manifest");
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let (ok, out) = validate(&file, "1.34");
    assert!(!ok, "a misspelt securityContext field must fail:\n{out}");
    assert!(out.contains("readOnlyRootFileSystem"), "{out}");
}

#[test]
fn rbac_is_read_only_metadata_plus_the_cluster_profiles_and_one_lease() {
    let docs = deploy::documents();
    let role = deploy::object(&docs, "ClusterRole");
    let verbs = json!(["get", "list", "watch"]);
    assert_eq!(
        role["rules"],
        json!([
            { "apiGroups": [""], "resources": ["pods"], "verbs": verbs },
            { "apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get"] },
            { "apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"] },
            { "apiGroups": [""], "resources": ["nodes"], "verbs": ["list"] },
            { "apiGroups": ["sensor.io"], "resources": ["profilepieces"],
              "verbs": ["create", "list", "patch"] },
            { "apiGroups": ["sensor.io"], "resources": ["profilepieces/status"],
              "verbs": ["patch"] },
            { "apiGroups": ["sensor.io"], "resources": ["workloadprofiles"],
              "verbs": ["create", "get", "list", "watch", "patch"] },
        ])
    );
    // No delete anywhere: profiles go with their workload (owner references).
    assert!(!serde_json::to_string(&docs).unwrap().contains("\"delete\""));
    let lease_role = deploy::object(&docs, "Role");
    assert_eq!(lease_role["metadata"]["namespace"], "node-sensor");
    assert_eq!(
        lease_role["rules"],
        json!([
            { "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"] },
            { "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
              "resourceNames": ["sensor-profile-merger"], "verbs": ["get", "update"] },
        ])
    );
    let lease_binding = deploy::object(&docs, "RoleBinding");
    assert_eq!(
        lease_binding["roleRef"]["name"],
        lease_role["metadata"]["name"]
    );
    let binding = deploy::object(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let sa = deploy::object(&docs, "ServiceAccount");
    assert_eq!(
        binding["subjects"],
        json!([{ "kind": "ServiceAccount", "name": sa["metadata"]["name"],
                 "namespace": sa["metadata"]["namespace"] }])
    );
    let pod = &deploy::object(&docs, "DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
}

#[test]
fn container_is_hardened_without_privileged() {
    let docs = deploy::documents();
    let c = deploy::sensor_container(&docs);
    let sc = &c["securityContext"];
    assert_ne!(sc["privileged"], true, "no privileged: true");
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    let caps = deploy::added_capabilities(&docs);
    assert!(
        !caps.iter().any(|c| c == "SYS_ADMIN"),
        "SYS_ADMIN is never needed on Linux >= 5.8"
    );
    let pod = &deploy::object(&docs, "DaemonSet")["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["container.apparmor.security.beta.kubernetes.io/sensor"],
        "runtime/default"
    );
    let spec = &pod["spec"];
    assert_eq!(spec["hostPID"], true);
    assert_ne!(spec["hostNetwork"], true, "no host network");
    assert_ne!(spec["hostIPC"], true, "no host IPC");
}

#[test]
fn daemonset_runs_the_agent_on_every_node_with_probes_and_metrics() {
    let docs = deploy::documents();
    let ds = deploy::object(&docs, "DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["priorityClassName"], "system-node-critical");
    assert_eq!(spec["tolerations"], json!([{ "operator": "Exists" }]));
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    assert!(ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"].is_number());
    let c = deploy::sensor_container(&docs);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--metrics-listen=0.0.0.0:9090"), "{args:?}");
    let config = args
        .iter()
        .find_map(|a| a.strip_prefix("--config="))
        .expect("--config");
    let config_mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "config")
        .expect("config mount");
    assert_eq!(
        Path::new(config).parent().unwrap(),
        Path::new(config_mount["mountPath"].as_str().unwrap()),
        "--config points into the ConfigMap mount"
    );
    assert_eq!(
        c["env"],
        json!([
            { "name": "NODE_NAME", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } },
            { "name": "POD_NAMESPACE",
              "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
        ])
    );
    assert_eq!(
        c["ports"],
        json!([{ "name": "metrics", "containerPort": 9090, "protocol": "TCP" }])
    );
    let probe = |name: &str| -> (Value, Value) {
        let p = &c[name]["httpGet"];
        (p["path"].clone(), p["port"].clone())
    };
    assert_eq!(
        probe("livenessProbe"),
        (json!("/healthz"), json!("metrics"))
    );
    assert_eq!(probe("startupProbe"), (json!("/healthz"), json!("metrics")));
    assert_eq!(
        probe("readinessProbe"),
        (json!("/readyz"), json!("metrics"))
    );
    let annotations = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9090");
    let limits = &c["resources"]["limits"];
    assert!(
        limits["memory"].is_string() && limits.get("cpu").is_none(),
        "{limits}"
    );
    assert!(c["resources"]["requests"]["memory"].is_string());
}

#[test]
fn host_paths_are_the_ones_the_agent_reads_and_writes() {
    let mounts = deploy::host_mounts(&deploy::documents());
    let expected = [
        ("/sys/fs/cgroup", "/sys/fs/cgroup", true),
        ("/sys/kernel/btf", "/sys/kernel/btf", true),
        ("/var/log/pods", "/var/log/pods", true),
        ("/var/log/containers", "/var/log/containers", true),
        (
            "/var/lib/kubelet/seccomp",
            "/var/lib/kubelet/seccomp",
            false,
        ),
        ("/var/lib/sensor", "/var/lib/sensor", false),
        ("/run/sensor", "/run/sensor", false),
    ];
    let expected: Vec<(String, String, bool)> = expected
        .iter()
        .map(|(m, h, ro)| (m.to_string(), h.to_string(), *ro))
        .collect();
    assert_eq!(mounts, expected);
    // The config file names the same places the volumes are mounted at.
    let config = deploy::agent_config(&deploy::documents());
    for key in [
        "stateDir: /var/lib/sensor",
        "grpcListen: unix:/run/sensor/sensor.sock",
        "podLogsDir: /var/log/pods",
        "containerLogsDir: /var/log/containers",
        "installSeccompDir: /var/lib/kubelet/seccomp",
        "btf: /sys/kernel/btf/vmlinux",
    ] {
        assert!(config.contains(key), "config.yaml lacks `{key}`:\n{config}");
    }
}

#[test]
fn kind_quickstart_script_passes_bash_n_and_shellcheck() {
    let script = deploy::workspace().join("deploy/kind/quickstart.sh");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shellcheck = util::require_tool("shellcheck", "shellcheck");
    let out = Command::new(shellcheck)
        .args(["--shell=bash", "--severity=style"])
        .arg(&script)
        .output()
        .expect("shellcheck");
    assert!(
        out.status.success(),
        "shellcheck {}:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    // The manifest names the image the script builds and loads.
    let text = std::fs::read_to_string(&script).unwrap();
    let image = deploy::sensor_container(&deploy::documents())["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains(&format!("IMAGE:-{image}")),
        "default IMAGE is {image}"
    );
}
