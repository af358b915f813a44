//! The deployment as the tests see it: `deploy/daemonset.yaml` parsed (never a copy of its
//! values), and the agent's privileges reproduced outside a cluster.
//!
//! Why: the capability set, the mounts and the security settings of the manifest are what a
//! node runs; the tests read them from the file so that a wrong edit of the file fails a test.
//! [`setpriv_wrapper`] gives a process exactly what containerd gives the container: uid 0,
//! `no_new_privs` (`allowPrivilegeEscalation: false`), bounding = permitted = effective = the
//! added capabilities, nothing inheritable or ambient.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util;

/// `<workspace>/deploy/daemonset.yaml`.
pub fn manifest_path() -> PathBuf {
    workspace().join("deploy/daemonset.yaml")
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Every document of the manifest, as JSON values.
pub fn documents() -> Vec<Value> {
    let path = manifest_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse_documents(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Multi-document YAML -> JSON values (empty documents skipped).
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// The one object of `kind` (panics if there is not exactly one).
pub fn object<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind} in the manifest");
    found[0]
}

/// The DaemonSet's `sensor` container.
pub fn sensor_container(docs: &[Value]) -> &Value {
    object(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == "sensor")
        .expect("a container named sensor")
}

/// `securityContext.capabilities.add` of the sensor container, e.g. `["BPF", "PERFMON"]`.
pub fn added_capabilities(docs: &[Value]) -> Vec<String> {
    sensor_container(docs)["securityContext"]["capabilities"]["add"]
        .as_array()
        .expect("capabilities.add")
        .iter()
        .map(|c| c.as_str().expect("capability name").to_string())
        .collect()
}

/// The config file the ConfigMap gives the agent (`config.yaml`).
pub fn agent_config(docs: &[Value]) -> String {
    object(docs, "ConfigMap")["data"]["config.yaml"]
        .as_str()
        .expect("ConfigMap data config.yaml")
        .to_string()
}

/// (mountPath, hostPath, readOnly) of every hostPath volume the sensor container mounts.
pub fn host_mounts(docs: &[Value]) -> Vec<(String, String, bool)> {
    let spec = &object(docs, "DaemonSet")["spec"]["template"]["spec"];
    let volumes = spec["volumes"].as_array().expect("volumes");
    sensor_container(docs)["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .filter_map(|m| {
            let volume = volumes.iter().find(|v| v["name"] == m["name"])?;
            let host = volume["hostPath"]["path"].as_str()?;
            Some((
                m["mountPath"].as_str()?.to_string(),
                host.to_string(),
                m["readOnly"].as_bool().unwrap_or(false),
            ))
        })
        .collect()
}

/// One volume of the sensor container as a test mounts it: (host source, mount path, read-only).
pub type Volume = (PathBuf, String, bool);

/// The sensor container's volumes with test sources: the cgroup and BTF hostPaths from this
/// host, kubelet's log dirs from `kubelet`, writable node dirs (state, socket, kubelet
/// seccomp) as fresh dirs under `scratch`, the ConfigMap as a dir holding its `config.yaml`.
pub fn test_volumes(docs: &[Value], kubelet: &crate::Kubelet, scratch: &Path) -> Vec<Volume> {
    let mut volumes: Vec<Volume> = host_mounts(docs)
        .into_iter()
        .map(|(inside, host, readonly)| {
            let source = match inside.as_str() {
                "/var/log/pods" => kubelet.pods_dir(),
                "/var/log/containers" => kubelet.containers_dir(),
                "/sys/fs/cgroup" | "/sys/kernel/btf" => PathBuf::from(&host),
                _ => {
                    let dir = scratch.join(host.trim_start_matches('/'));
                    std::fs::create_dir_all(&dir).expect("scratch volume dir");
                    dir
                }
            };
            (source, inside, readonly)
        })
        .collect();
    let config = scratch.join("configmap");
    std::fs::create_dir_all(&config).expect("configmap dir");
    std::fs::write(config.join("config.yaml"), agent_config(docs)).expect("config.yaml");
    let mount = sensor_container(docs)["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == "config")
        .and_then(|m| m["mountPath"].as_str())
        .expect("config volume mount")
        .to_string();
    volumes.push((config, mount, true));
    volumes
}

/// The memory limit of the sensor container, in bytes (`Mi`/`Gi` suffixes).
pub fn memory_limit_bytes(docs: &[Value]) -> u64 {
    let text = sensor_container(docs)["resources"]["limits"]["memory"]
        .as_str()
        .expect("resources.limits.memory");
    let (num, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = num.parse().expect("memory limit number");
    n * match unit {
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "" => 1,
        other => panic!("unsupported memory unit {other} in {text}"),
    }
}

/// Capability numbers (linux/capability.h), for reading `/proc/<pid>/status`.
const CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Bit mask of Kubernetes capability names (`BPF`, `CAP_BPF` also accepted).
pub fn capability_mask(names: &[String]) -> u64 {
    names
        .iter()
        .map(|n| {
            let n = n.trim_start_matches("CAP_");
            let bit = CAPABILITIES
                .iter()
                .position(|c| *c == n)
                .unwrap_or_else(|| panic!("unknown capability {n}"));
            1u64 << bit
        })
        .fold(0, |a, b| a | b)
}

/// Names of the capabilities in `mask`.
pub fn capability_names(mask: u64) -> Vec<String> {
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1 << bit) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// `setpriv` and its arguments, to be followed by the program: uid/gid 0, no supplementary
/// groups, no_new_privs, and only `capabilities` in the bounding set (so, for uid 0 after exec,
/// in the permitted and effective sets), nothing inheritable or ambient.
pub fn setpriv_wrapper(capabilities: &[String]) -> Vec<String> {
    let setpriv = util::require_tool("setpriv", "util-linux");
    let bounding: String = capabilities
        .iter()
        .map(|c| format!(",+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    vec![
        setpriv.display().to_string(),
        "--reuid=0".into(),
        "--regid=0".into(),
        "--clear-groups".into(),
        "--inh-caps=-all".into(),
        "--ambient-caps=-all".into(),
        format!("--bounding-set=-all{bounding}"),
        "--no-new-privs".into(),
        "--".into(),
    ]
}

/// The capability sets and no_new_privs of a running process (`/proc/<pid>/status`).
#[derive(Debug, PartialEq, Eq)]
pub struct ProcessPrivileges {
    pub effective: u64,
    pub permitted: u64,
    pub bounding: u64,
    pub inheritable: u64,
    pub ambient: u64,
    pub no_new_privs: bool,
}

pub fn process_privileges(pid: u32) -> ProcessPrivileges {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} missing in /proc/{pid}/status"));
        u64::from_str_radix(line.trim(), 16)
            .or_else(|_| line.trim().parse())
            .unwrap_or_else(|e| panic!("{name} {line}: {e}"))
    };
    ProcessPrivileges {
        effective: field("CapEff:"),
        permitted: field("CapPrm:"),
        bounding: field("CapBnd:"),
        inheritable: field("CapInh:"),
        ambient: field("CapAmb:"),
        no_new_privs: field("NoNewPrivs:") == 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_masks_match_the_kernel_numbers() {
        // CAP_NET_ADMIN = 12, CAP_SYS_PTRACE = 19, CAP_PERFMON = 38, CAP_BPF = 39.
        let names: Vec<String> = ["BPF", "PERFMON", "NET_ADMIN", "CAP_SYS_PTRACE"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            capability_mask(&names),
            (1 << 12) | (1 << 19) | (1 << 38) | (1 << 39)
        );
        assert_eq!(
            capability_names(1 << 39 | 1 << 12),
            vec!["NET_ADMIN".to_string(), "BPF".into()]
        );
    }

    #[test]
    fn documents_are_split_and_empty_ones_dropped() {
        let docs = parse_documents("a: 1\n---\n---\nkind: X\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["kind"], "X");
        assert!(parse_documents("a: [1\n").is_err());
    }
}
