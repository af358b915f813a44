//! Classifies a cgroup v2 path into "which Kubernetes container (or pod) owns it".
//!
//! The eBPF side only knows a cgroup id; userspace maps that id to a path (from the
//! `cgroup_mkdir` tracepoint or `/proc/<pid>/cgroup`) and this module turns the path
//! into a pod uid and container id, without talking to the API server or the runtime.
//! Paths are untrusted input: every function here is total and never panics.

use serde::Serialize;

/// What a cgroup belongs to, as far as the path alone can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CgroupKind {
    /// A container's cgroup, or any cgroup nested below it.
    Container(ContainerRef),
    /// The pod's own cgroup or a non-container child of it (e.g. CRI-O's conmon).
    PodLevel { pod_uid: String, qos: Qos },
    /// Everything outside a pod: system services, user sessions, kubepods' own slices.
    Host,
}

/// A container located by its cgroup path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerRef {
    /// Lowercase; dashed 8-4-4-4-12 for API pods, 32 plain hex for static pods.
    pub pod_uid: String,
    /// Lowercase hex id exactly as the runtime used it (normally 64 chars).
    pub container_id: String,
    pub runtime: Runtime,
    pub qos: Qos,
    pub driver: CgroupDriver,
}

/// Container runtime, when the cgroup name reveals it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
    /// Plain hex ids (cgroupfs driver) are used by several runtimes, so we don't guess.
    Unknown,
}

impl Runtime {
    /// The serialized name (`containerd`, `crio`, `docker`, `unknown`).
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "crio",
            Runtime::Docker => "docker",
            Runtime::Unknown => "unknown",
        }
    }
}

/// Pod QoS class, taken from the kubepods sub-hierarchy the pod lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// Kubelet cgroup driver, inferred from the naming style of the pod cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

impl CgroupDriver {
    /// The serialized name (`cgroupfs`, `systemd`).
    pub fn name(self) -> &'static str {
        match self {
            CgroupDriver::Cgroupfs => "cgroupfs",
            CgroupDriver::Systemd => "systemd",
        }
    }
}

/// Classifies a cgroup path relative to the cgroup2 mount (a leading `0::` from
/// `/proc/<pid>/cgroup` is tolerated). The kubepods hierarchy may sit below any
/// prefix (kind nodes, custom `--cgroup-root`), so it is searched for anywhere.
pub fn classify(path: &str) -> CgroupKind {
    let path = path.strip_prefix("0::").unwrap_or(path);
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let Some(root) = components.iter().position(|c| is_kubepods_root(c)) else {
        return CgroupKind::Host;
    };
    classify_below_kubepods(&components[root + 1..])
}

/// Returns the first 12 characters of an id, the form `docker ps` and `crictl` print.
pub fn short_id(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

/// Classifies the components that follow the kubepods root: `[qos] pod [container ...]`.
fn classify_below_kubepods(components: &[&str]) -> CgroupKind {
    let (qos, rest) = match components.split_first() {
        Some((first, rest)) => match qos_from_component(first) {
            Some(qos) => (qos, rest),
            None => (Qos::Guaranteed, components),
        },
        None => return CgroupKind::Host,
    };
    let Some((pod_component, below_pod)) = rest.split_first() else {
        return CgroupKind::Host;
    };
    let Some((pod_uid, driver)) = pod_uid_from_component(pod_component) else {
        return CgroupKind::Host;
    };
    // Only the first level below the pod names the container; deeper levels are
    // sub-cgroups the container created itself, so they belong to that container.
    match below_pod.first().and_then(|c| container_from_component(c)) {
        Some((container_id, runtime)) => CgroupKind::Container(ContainerRef {
            pod_uid,
            container_id,
            runtime,
            qos,
            driver,
        }),
        None => CgroupKind::PodLevel { pod_uid, qos },
    }
}

/// `kubepods` (cgroupfs), `kubepods.slice` (systemd) or a prefixed slice such as kind's
/// `kubelet-kubepods.slice` (systemd encodes the parent in the name).
fn is_kubepods_root(component: &str) -> bool {
    component == "kubepods"
        || component == "kubepods.slice"
        || component.ends_with("-kubepods.slice")
}

/// Guaranteed pods have no QoS level of their own, so only the other two appear here.
fn qos_from_component(component: &str) -> Option<Qos> {
    match component {
        "burstable" => Some(Qos::Burstable),
        "besteffort" => Some(Qos::BestEffort),
        c if c.ends_with("-burstable.slice") => Some(Qos::Burstable),
        c if c.ends_with("-besteffort.slice") => Some(Qos::BestEffort),
        _ => None,
    }
}

/// `pod<uid>` (cgroupfs) or `<parent>-pod<uid_with_underscores>.slice` (systemd).
fn pod_uid_from_component(component: &str) -> Option<(String, CgroupDriver)> {
    if let Some(slice) = component.strip_suffix(".slice") {
        // The uid itself holds no '-' (systemd form) and no 'o', so the last "-pod" is ours.
        let (_, raw_uid) = slice.rsplit_once("-pod")?;
        return canonical_pod_uid(raw_uid).map(|uid| (uid, CgroupDriver::Systemd));
    }
    let raw_uid = component.strip_prefix("pod")?;
    canonical_pod_uid(raw_uid).map(|uid| (uid, CgroupDriver::Cgroupfs))
}

/// Normalizes a pod uid to lowercase, with dashes where the input had dashes or
/// underscores (systemd escapes '-' as '_'). A 32-hex uid without separators is
/// kept as is: kubelet derives static pod uids from a hash and writes them that way,
/// also in /var/log/pods, so dashing it would break the join with kubelet's files.
fn canonical_pod_uid(raw: &str) -> Option<String> {
    const DASH_POSITIONS: [usize; 4] = [8, 13, 18, 23];
    let bytes = raw.as_bytes();
    let well_formed = match bytes.len() {
        32 => bytes.iter().all(u8::is_ascii_hexdigit),
        36 => bytes.iter().enumerate().all(|(i, b)| {
            if DASH_POSITIONS.contains(&i) {
                *b == b'-' || *b == b'_'
            } else {
                b.is_ascii_hexdigit()
            }
        }),
        _ => false,
    };
    well_formed.then(|| raw.to_ascii_lowercase().replace('_', "-"))
}

/// Recognizes a container cgroup name and the runtime its prefix reveals.
/// CRI-O's `crio-conmon-<id>` is the monitor process, not the container.
fn container_from_component(component: &str) -> Option<(String, Runtime)> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    if name.starts_with("crio-conmon-") {
        return None;
    }
    let (raw_id, runtime) = if let Some(id) = name.strip_prefix("cri-containerd-") {
        (id, Runtime::Containerd)
    } else if let Some(id) = name.strip_prefix("crio-") {
        (id, Runtime::CriO)
    } else if let Some(id) = name.strip_prefix("docker-") {
        (id, Runtime::Docker)
    } else {
        (name, Runtime::Unknown)
    };
    is_container_id(raw_id).then(|| (raw_id.to_ascii_lowercase(), runtime))
}

/// Runtimes use 64 hex chars; 12 is the shortest id anyone prints, so anything shorter
/// is more likely a name (e.g. `init`) than an id.
fn is_container_id(id: &str) -> bool {
    id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b";
    const UID_SYSTEMD: &str = "1f2e3d4c_5b6a_4978_8a9b_0c1d2e3f4a5b";
    const STATIC_UID: &str = "7a1b2c3d4e5f60718293a4b5c6d7e8f9";
    const CID: &str = "8c5f0b7e9a1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b";

    fn container(runtime: Runtime, qos: Qos, driver: CgroupDriver) -> CgroupKind {
        container_with_uid(UID, runtime, qos, driver)
    }

    fn container_with_uid(
        uid: &str,
        runtime: Runtime,
        qos: Qos,
        driver: CgroupDriver,
    ) -> CgroupKind {
        CgroupKind::Container(ContainerRef {
            pod_uid: uid.to_string(),
            container_id: CID.to_string(),
            runtime,
            qos,
            driver,
        })
    }

    fn pod_level(qos: Qos) -> CgroupKind {
        CgroupKind::PodLevel {
            pod_uid: UID.to_string(),
            qos,
        }
    }

    /// Expands `{uid}`, `{suid}` (systemd underscores), `{static}` and `{cid}`.
    fn expand(template: &str) -> String {
        template
            .replace("{uid}", UID)
            .replace("{suid}", UID_SYSTEMD)
            .replace("{static}", STATIC_UID)
            .replace("{cid}", CID)
    }

    #[test]
    fn classifies_container_paths() {
        use CgroupDriver::{Cgroupfs, Systemd};
        use Qos::{BestEffort, Burstable, Guaranteed};
        use Runtime::{Containerd, CriO, Docker, Unknown};
        let cases = [
            // cgroupfs driver
            (
                "/kubepods/burstable/pod{uid}/{cid}",
                container(Unknown, Burstable, Cgroupfs),
            ),
            (
                "/kubepods/besteffort/pod{uid}/{cid}",
                container(Unknown, BestEffort, Cgroupfs),
            ),
            (
                "/kubepods/pod{uid}/{cid}",
                container(Unknown, Guaranteed, Cgroupfs),
            ),
            (
                "/kubepods/burstable/pod{uid}/crio-{cid}",
                container(CriO, Burstable, Cgroupfs),
            ),
            (
                "/kubepods/pod{uid}/cri-containerd-{cid}",
                container(Containerd, Guaranteed, Cgroupfs),
            ),
            // systemd driver
            (
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{suid}.slice/cri-containerd-{cid}.scope",
                container(Containerd, Burstable, Systemd),
            ),
            (
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{suid}.slice/crio-{cid}.scope",
                container(CriO, BestEffort, Systemd),
            ),
            (
                "/kubepods.slice/kubepods-pod{suid}.slice/docker-{cid}.scope",
                container(Docker, Guaranteed, Systemd),
            ),
            // kind node, cgroupfs driver, seen from the host
            (
                "/system.slice/docker-{cid}.scope/kubepods/besteffort/pod{uid}/{cid}",
                container(Unknown, BestEffort, Cgroupfs),
            ),
            // kind node, systemd driver with cgroup root /kubelet
            (
                "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod{suid}.slice/cri-containerd-{cid}.scope",
                container(Containerd, Burstable, Systemd),
            ),
            // the same, as the host sees the kind node's cgroup namespace
            (
                "/system.slice/docker-{cid}.scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{suid}.slice/cri-containerd-{cid}.scope",
                container(Containerd, Guaranteed, Systemd),
            ),
            // sub-cgroups created by the container belong to it
            (
                "/kubepods/burstable/pod{uid}/{cid}/init",
                container(Unknown, Burstable, Cgroupfs),
            ),
            (
                "/kubepods.slice/kubepods-pod{suid}.slice/cri-containerd-{cid}.scope/system.slice/dbus.service",
                container(Containerd, Guaranteed, Systemd),
            ),
            // /proc/<pid>/cgroup line form, and trailing slash
            (
                "0::/kubepods/pod{uid}/{cid}",
                container(Unknown, Guaranteed, Cgroupfs),
            ),
            (
                "/kubepods/pod{uid}/{cid}/",
                container(Unknown, Guaranteed, Cgroupfs),
            ),
            // relative path (no leading slash) parses the same
            (
                "kubepods/pod{uid}/{cid}",
                container(Unknown, Guaranteed, Cgroupfs),
            ),
            // static pod: kubelet's hash uid has no dashes and is kept verbatim
            (
                "/kubepods/burstable/pod{static}/{cid}",
                container_with_uid(STATIC_UID, Unknown, Burstable, Cgroupfs),
            ),
            (
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{static}.slice/cri-containerd-{cid}.scope",
                container_with_uid(STATIC_UID, Containerd, Burstable, Systemd),
            ),
        ];
        for (template, expected) in cases {
            let path = expand(template);
            assert_eq!(classify(&path), expected, "path: {path}");
        }
    }

    #[test]
    fn normalizes_case_of_ids() {
        let path = format!("/kubepods/pod{}/{}", UID.to_uppercase(), CID.to_uppercase());
        assert_eq!(
            classify(&path),
            container(Runtime::Unknown, Qos::Guaranteed, CgroupDriver::Cgroupfs)
        );
    }

    #[test]
    fn classifies_pod_level_paths() {
        use Qos::{BestEffort, Burstable, Guaranteed};
        let cases = [
            ("/kubepods/burstable/pod{uid}", pod_level(Burstable)),
            ("/kubepods/pod{uid}", pod_level(Guaranteed)),
            (
                "/kubepods.slice/kubepods-pod{suid}.slice",
                pod_level(Guaranteed),
            ),
            (
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{suid}.slice",
                pod_level(BestEffort),
            ),
            // CRI-O's conmon monitor lives beside the container
            (
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{suid}.slice/crio-conmon-{cid}.scope",
                pod_level(Burstable),
            ),
            (
                "/kubepods/burstable/pod{uid}/crio-conmon-{cid}",
                pod_level(Burstable),
            ),
            // not a container id: too short, not hex, unknown prefix
            ("/kubepods/pod{uid}/abc123", pod_level(Guaranteed)),
            ("/kubepods/pod{uid}/init", pod_level(Guaranteed)),
            (
                "/kubepods/pod{uid}/cri-containerd-zz{cid}",
                pod_level(Guaranteed),
            ),
            (
                "/kubepods/pod{uid}/libpod-{cid}.scope",
                pod_level(Guaranteed),
            ),
            ("/kubepods/pod{uid}/crio-", pod_level(Guaranteed)),
        ];
        for (template, expected) in cases {
            let path = expand(template);
            assert_eq!(classify(&path), expected, "path: {path}");
        }
    }

    #[test]
    fn classifies_host_paths() {
        let cases = [
            "",
            "/",
            "0::/",
            "//",
            "/kubepods",
            "/kubepods/burstable",
            "/kubepods/besteffort/",
            "/kubepods.slice",
            "/kubepods.slice/kubepods-burstable.slice",
            "/system.slice/containerd.service",
            "/system.slice/kubelet.service",
            "/user.slice/user-1000.slice/session-3.scope",
            "/init.scope",
            "/system.slice/docker-{cid}.scope",
            // garbage pod components
            "/kubepods/pod",
            "/kubepods/podnot-a-uid/{cid}",
            "/kubepods/burstable/pod1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5/{cid}",
            "/kubepods/burstable/pod1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5bb/{cid}",
            "/kubepods/pod1f2e3d4c5b6a-4978-8a9b-0c1d2e3f4a5b-/{cid}",
            "/kubepods/podzz2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b/{cid}",
            "/kubepods.slice/kubepods-pod.slice/{cid}",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podé.slice",
            "/kubepods/burstable/burstable/pod{uid}/{cid}",
            "kubepods",
            "🦀/kubepods/pod🦀",
        ];
        for template in cases {
            let path = expand(template);
            assert_eq!(classify(&path), CgroupKind::Host, "path: {path}");
        }
    }

    #[test]
    fn never_panics_on_truncated_or_mangled_paths() {
        let path = expand(
            "/system.slice/docker-{cid}.scope/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{suid}.slice/crio-{cid}.scope/init",
        );
        let mangled = [
            path.clone(),
            path.replace('/', "//"),
            path.replace('-', "é"),
        ];
        for candidate in &mangled {
            for (end, _) in candidate.char_indices() {
                let _ = classify(&candidate[..end]);
                let _ = classify(&candidate[end..]);
            }
        }
    }

    #[test]
    fn short_id_takes_twelve_chars_without_panicking() {
        let cases = [
            (CID, "8c5f0b7e9a1d"),
            ("8c5f0b7e9a1d", "8c5f0b7e9a1d"),
            ("abc", "abc"),
            ("", ""),
            ("éééééééééééééé", "éééééééééééé"),
        ];
        for (id, expected) in cases {
            assert_eq!(short_id(id), expected, "id: {id}");
        }
    }
}
