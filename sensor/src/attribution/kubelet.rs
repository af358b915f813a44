//! Pod and container names from the log files kubelet keeps on every node.
//!
//! The sensor must name what it sees even when it cannot (or may not) reach the API
//! server. Kubelet already writes everything needed to disk:
//! `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<N>.log` and the symlinks
//! `/var/log/containers/<pod>_<namespace>_<container>-<container-id>.log`.
//! All names involved are DNS-1123, which never contains '_', so '_' splits safely.
//! The files are untrusted input: nothing here panics, and unreadable or malformed
//! entries are skipped rather than failing the scan.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cgroup_path::ContainerRef;

/// A pod as named by its `/var/log/pods` directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodMeta {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A container as named by its `/var/log/containers` symlink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerMeta {
    pub pod: PodMeta,
    pub container_name: String,
    pub container_id: String,
}

/// Where kubelet keeps its logs; differs from the defaults when the host's /var/log
/// is mounted elsewhere in the sensor's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletDirs {
    pub pod_logs: PathBuf,
    pub container_logs: PathBuf,
}

impl Default for KubeletDirs {
    fn default() -> Self {
        Self {
            pod_logs: PathBuf::from("/var/log/pods"),
            container_logs: PathBuf::from("/var/log/containers"),
        }
    }
}

/// What [`KubeletIndex::resolve`] could name for a container found by cgroup path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resolved<'a> {
    pub pod: Option<&'a PodMeta>,
    pub container_name: Option<&'a str>,
}

/// A snapshot of kubelet's log directories; rescan to pick up newer pods.
#[derive(Debug, Clone, Default)]
pub struct KubeletIndex {
    pods_by_uid: HashMap<String, PodMeta>,
    /// Ordered so that a short id can be matched as a prefix with one range scan.
    containers_by_id: BTreeMap<String, ContainerMeta>,
    /// Per-container subdirectories of each pod's log dir, sorted.
    container_names_by_pod_uid: HashMap<String, Vec<String>>,
    /// Container names per pod that already have a symlink, i.e. a known id.
    linked_names_by_pod_uid: HashMap<String, Vec<String>>,
}

/// Shortest id accepted for a prefix lookup; what `crictl ps` and `docker ps` print.
const MIN_ID_PREFIX_LEN: usize = 12;

impl KubeletIndex {
    /// Reads both directories. A missing or unreadable directory yields an empty part
    /// of the index, never an error: names are a nicety, not a reason to stop the sensor.
    pub fn scan(dirs: &KubeletDirs) -> KubeletIndex {
        let mut index = KubeletIndex::default();
        for (pod, container_names) in scan_pod_log_dirs(&dirs.pod_logs) {
            index
                .container_names_by_pod_uid
                .insert(pod.uid.clone(), container_names);
            index.pods_by_uid.insert(pod.uid.clone(), pod);
        }
        for container in scan_container_log_links(&dirs.container_logs, &index.pods_by_uid) {
            index.add_linked_container(container);
        }
        for names in index.linked_names_by_pod_uid.values_mut() {
            names.sort();
            names.dedup();
        }
        index
    }

    /// The pod with this uid (dashed, or 32 hex for static pods).
    pub fn pod(&self, uid: &str) -> Option<&PodMeta> {
        self.pods_by_uid.get(uid)
    }

    /// The container with this id, or the only one whose id starts with it when at
    /// least 12 chars are given (short ids are what humans and some tools pass around).
    pub fn container(&self, container_id: &str) -> Option<&ContainerMeta> {
        if let Some(container) = self.containers_by_id.get(container_id) {
            return Some(container);
        }
        if container_id.len() < MIN_ID_PREFIX_LEN {
            return None;
        }
        let mut matches = self
            .containers_by_id
            .range::<str, _>((Bound::Included(container_id), Bound::Unbounded))
            .take_while(|(id, _)| id.starts_with(container_id));
        let (_, first) = matches.next()?;
        matches.next().is_none().then_some(first)
    }

    /// Container names kubelet created log directories for in this pod, sorted.
    pub fn container_names(&self, pod_uid: &str) -> &[String] {
        self.container_names_by_pod_uid
            .get(pod_uid)
            .map_or(&[], Vec::as_slice)
    }

    /// Names a container found by cgroup path. The name comes from its symlink when
    /// the id is known. Otherwise, if the pod has exactly one container directory, that
    /// name is used: kubelet creates the directory before starting the container but
    /// the symlink only after, so a brand-new container is briefly known only this way.
    /// That fallback is skipped once the sole container already has a symlink under
    /// another id, because the unknown id is then the pod's sandbox (pause) container
    /// rather than the app, and naming it after the app would pollute that profile.
    pub fn resolve(&self, container: &ContainerRef) -> Resolved<'_> {
        let by_id = self
            .container(&container.container_id)
            .filter(|known| known.pod.uid == container.pod_uid);
        let pod = self
            .pod(&container.pod_uid)
            .or_else(|| by_id.map(|known| &known.pod));
        let container_name = match by_id {
            Some(known) => Some(known.container_name.as_str()),
            None => self.sole_unlinked_container_name(&container.pod_uid),
        };
        Resolved {
            pod,
            container_name,
        }
    }

    fn sole_unlinked_container_name(&self, pod_uid: &str) -> Option<&str> {
        let [name] = self.container_names(pod_uid) else {
            return None;
        };
        let already_linked = self
            .linked_names_by_pod_uid
            .get(pod_uid)
            .is_some_and(|linked| linked.contains(name));
        (!already_linked).then_some(name.as_str())
    }

    fn add_linked_container(&mut self, container: ContainerMeta) {
        let pod = &container.pod;
        self.pods_by_uid
            .entry(pod.uid.clone())
            .or_insert_with(|| pod.clone());
        self.linked_names_by_pod_uid
            .entry(pod.uid.clone())
            .or_default()
            .push(container.container_name.clone());
        self.containers_by_id
            .insert(container.container_id.clone(), container);
    }
}

/// Parses a `/var/log/pods` directory name: `<namespace>_<pod-name>_<pod-uid>`.
pub fn parse_pod_log_dir_name(name: &str) -> Option<PodMeta> {
    let mut fields = name.split('_');
    let (namespace, pod_name, uid) = (fields.next()?, fields.next()?, fields.next()?);
    let well_formed = fields.next().is_none()
        && is_dns_label(namespace)
        && is_dns_subdomain(pod_name)
        && is_pod_uid(uid);
    well_formed.then(|| PodMeta {
        namespace: namespace.to_string(),
        name: pod_name.to_string(),
        uid: uid.to_string(),
    })
}

/// Parses a `/var/log/containers` file name:
/// `<pod-name>_<namespace>_<container-name>-<container-id>.log`, returning
/// `(pod name, namespace, container name, container id)`.
pub fn parse_container_log_name(name: &str) -> Option<(String, String, String, String)> {
    let stem = name.strip_suffix(".log")?;
    let mut fields = stem.split('_');
    let (pod_name, namespace, container_and_id) = (fields.next()?, fields.next()?, fields.next()?);
    // Container names may contain '-', ids never do, so the last '-' separates them.
    let (container_name, container_id) = container_and_id.rsplit_once('-')?;
    let well_formed = fields.next().is_none()
        && is_dns_subdomain(pod_name)
        && is_dns_label(namespace)
        && is_dns_label(container_name)
        && is_container_id(container_id);
    well_formed.then(|| {
        (
            pod_name.to_string(),
            namespace.to_string(),
            container_name.to_string(),
            container_id.to_string(),
        )
    })
}

/// Each pod log directory with the container subdirectories inside it.
fn scan_pod_log_dirs(pod_logs: &Path) -> Vec<(PodMeta, Vec<String>)> {
    entry_names(pod_logs)
        .into_iter()
        .filter_map(|dir_name| {
            let pod = parse_pod_log_dir_name(&dir_name)?;
            let pod_dir = pod_logs.join(&dir_name);
            pod_dir
                .is_dir()
                .then(|| (pod, container_dir_names(&pod_dir)))
        })
        .collect()
}

fn container_dir_names(pod_dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = entry_names(pod_dir)
        .into_iter()
        .filter(|name| is_dns_label(name) && pod_dir.join(name).is_dir())
        .collect();
    names.sort();
    names
}

/// Every well-formed `/var/log/containers` entry whose pod uid can be determined.
fn scan_container_log_links(
    container_logs: &Path,
    pods_by_uid: &HashMap<String, PodMeta>,
) -> Vec<ContainerMeta> {
    entry_names(container_logs)
        .into_iter()
        .filter_map(|file_name| {
            let (pod_name, namespace, container_name, container_id) =
                parse_container_log_name(&file_name)?;
            let pod = pod_from_link_target(&container_logs.join(&file_name))
                .filter(|pod| pod.namespace == namespace && pod.name == pod_name)
                .or_else(|| unique_pod_named(pods_by_uid, &namespace, &pod_name))?;
            Some(ContainerMeta {
                pod,
                container_name,
                container_id,
            })
        })
        .collect()
}

/// The pod named by a symlink's target `.../<ns>_<pod>_<uid>/<container>/<N>.log`.
/// Only the target's text is parsed, never followed: it is a host path that may not
/// exist where the sensor runs (e.g. host /var/log mounted at /host/var/log).
fn pod_from_link_target(link: &Path) -> Option<PodMeta> {
    let target = fs::read_link(link).ok()?;
    let pod_dir_name = target.parent()?.parent()?.file_name()?.to_str()?;
    parse_pod_log_dir_name(pod_dir_name)
}

/// Fallback when the link can't be read: match by name, but only when unambiguous, since
/// a recreated pod (e.g. a StatefulSet's) reuses its name with a new uid.
fn unique_pod_named(
    pods_by_uid: &HashMap<String, PodMeta>,
    namespace: &str,
    pod_name: &str,
) -> Option<PodMeta> {
    let mut matches = pods_by_uid
        .values()
        .filter(|pod| pod.namespace == namespace && pod.name == pod_name);
    let first = matches.next()?;
    matches.next().is_none().then(|| first.clone())
}

/// UTF-8 entry names of a directory; empty when it can't be read.
fn entry_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect()
}

/// RFC 1123 label: namespaces and container names.
fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_dns_name(s, false)
}

/// RFC 1123 subdomain: pod names, which may also contain '.'.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && is_dns_name(s, true)
}

fn is_dns_name(s: &str, allow_dots: bool) -> bool {
    let is_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    is_alnum(first)
        && is_alnum(last)
        && bytes
            .iter()
            .all(|&b| is_alnum(b) || b == b'-' || (allow_dots && b == b'.'))
}

/// Dashed lowercase UUID for API pods, or 32 lowercase hex for static pods (kubelet
/// derives those from a hash of the manifest).
fn is_pod_uid(s: &str) -> bool {
    const DASH_POSITIONS: [usize; 4] = [8, 13, 18, 23];
    let bytes = s.as_bytes();
    match bytes.len() {
        32 => bytes.iter().all(|&b| is_lower_hex(b)),
        36 => bytes.iter().enumerate().all(|(i, &b)| {
            if DASH_POSITIONS.contains(&i) {
                b == b'-'
            } else {
                is_lower_hex(b)
            }
        }),
        _ => false,
    }
}

/// Runtimes write 64 hex chars; accept any id of at least 12, like the cgroup parser.
fn is_container_id(s: &str) -> bool {
    s.len() >= MIN_ID_PREFIX_LEN && s.bytes().all(is_lower_hex)
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

#[cfg(test)]
mod tests {
    use super::super::cgroup_path::{CgroupDriver, Qos, Runtime};
    use super::*;
    use std::os::unix::fs::symlink;

    const WEB_UID: &str = "0b6a4c1e-2f3d-4e5a-8b7c-9d0e1f2a3b4c";
    const COREDNS_UID: &str = "5e2f7a9c-1b3d-4c6e-a8f0-2d4b6c8e0a1f";
    const TWO_UID: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
    const ORPHAN_UID: &str = "aaaabbbb-cccc-4ddd-8eee-ffff00001111";
    const ETCD_UID: &str = "3f9c2b7a1d4e5f60718293a4b5c6d7e8";
    const WEB_CID: &str = "3b1f8c2d9e4a7b6c5d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e";
    const COREDNS_CID: &str = "9f4e2d1c0b8a7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918070f6";
    const COREDNS_PAUSE_CID: &str =
        "9f4e2d1c0b8a0c1d2e3f4a5b6c7d8e9fa0b1c2d3e4f5a6b7c8d9eaf0b1c2d3e4";
    const APP_CID: &str = "c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c";
    const ORPHAN_CID: &str = "e1d2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e";

    fn pod(namespace: &str, name: &str, uid: &str) -> PodMeta {
        PodMeta {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
        }
    }

    /// A unique directory under the system temp dir, removed on drop (also on panic).
    struct TempTree(PathBuf);

    impl TempTree {
        fn new(test_name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("sensor-kubelet-{test_name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            Self(dir)
        }

        fn dirs(&self) -> KubeletDirs {
            KubeletDirs {
                pod_logs: self.0.join("pods"),
                container_logs: self.0.join("containers"),
            }
        }

        /// Creates `pods/<pod_dir>/<container>/0.log` like kubelet does.
        fn add_container_log(&self, pod_dir: &str, container: &str) {
            let dir = self.0.join("pods").join(pod_dir).join(container);
            fs::create_dir_all(&dir).expect("create container log dir");
            fs::write(dir.join("0.log"), "").expect("write log");
        }

        fn add_link(&self, link_name: &str, target: &Path) {
            let containers = self.0.join("containers");
            fs::create_dir_all(&containers).expect("create containers dir");
            symlink(target, containers.join(link_name)).expect("create symlink");
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A node with: a StatefulSet pod linked by absolute path; a Deployment pod whose
    /// link points at the *host's* /var/log/pods (dangling here, as in a sensor that
    /// mounts the host elsewhere); a pod with two containers and a relative link for
    /// one; a static pod with no link yet; a link whose pod dir is gone; and garbage.
    fn build_node(tree: &TempTree) {
        let web_dir = format!("default_web-0_{WEB_UID}");
        let coredns_dir = format!("kube-system_coredns-5d78c9869d-8kz2t_{COREDNS_UID}");
        let two_dir = format!("default_two-containers_{TWO_UID}");
        let etcd_dir = format!("kube-system_etcd-node1_{ETCD_UID}");
        tree.add_container_log(&web_dir, "web");
        tree.add_container_log(&coredns_dir, "coredns");
        tree.add_container_log(&two_dir, "app");
        tree.add_container_log(&two_dir, "sidecar");
        tree.add_container_log(&etcd_dir, "etcd");

        let pods = tree.0.join("pods");
        tree.add_link(
            &format!("web-0_default_web-{WEB_CID}.log"),
            &pods.join(&web_dir).join("web/0.log"),
        );
        tree.add_link(
            &format!("coredns-5d78c9869d-8kz2t_kube-system_coredns-{COREDNS_CID}.log"),
            &Path::new("/var/log/pods")
                .join(&coredns_dir)
                .join("coredns/0.log"),
        );
        tree.add_link(
            &format!("two-containers_default_app-{APP_CID}.log"),
            &Path::new("../pods").join(&two_dir).join("app/0.log"),
        );
        tree.add_link(
            &format!("orphan_default_job-{ORPHAN_CID}.log"),
            &Path::new("/var/log/pods")
                .join(format!("default_orphan_{ORPHAN_UID}"))
                .join("job/0.log"),
        );

        // garbage that must be skipped
        tree.add_container_log("not-a-pod-dir", "x");
        tree.add_container_log(&format!("Default_web-0_{WEB_UID}"), "web");
        fs::write(pods.join(format!("default_file_{WEB_UID}")), "").expect("write");
        fs::write(tree.0.join("containers/garbage.log"), "").expect("write");
        tree.add_link(
            "web-0_default_web-nothex.log",
            &pods.join(&web_dir).join("web/0.log"),
        );
    }

    #[test]
    fn parses_pod_log_dir_names() {
        let cases = [
            (
                "default_web-0_0b6a4c1e-2f3d-4e5a-8b7c-9d0e1f2a3b4c",
                Some(pod("default", "web-0", WEB_UID)),
            ),
            (
                "kube-system_coredns-5d78c9869d-8kz2t_5e2f7a9c-1b3d-4c6e-a8f0-2d4b6c8e0a1f",
                Some(pod("kube-system", "coredns-5d78c9869d-8kz2t", COREDNS_UID)),
            ),
            // static pod: 32-hex uid, pod name with dots from the node's FQDN
            (
                "kube-system_etcd-node1.example.com_3f9c2b7a1d4e5f60718293a4b5c6d7e8",
                Some(pod("kube-system", "etcd-node1.example.com", ETCD_UID)),
            ),
            ("default_web-0", None),
            (
                "default_web-0_0b6a4c1e-2f3d-4e5a-8b7c-9d0e1f2a3b4c_extra",
                None,
            ),
            ("default__0b6a4c1e-2f3d-4e5a-8b7c-9d0e1f2a3b4c", None),
            ("Default_web-0_0b6a4c1e-2f3d-4e5a-8b7c-9d0e1f2a3b4c", None),
            ("default_web-0_0B6A4C1E-2F3D-4E5A-8B7C-9D0E1F2A3B4C", None),
            ("default_web-0_0b6a4c1e_2f3d_4e5a_8b7c_9d0e1f2a3b4c", None),
            ("default_web-0_not-a-uid", None),
            ("my.ns_web-0_0b6a4c1e-2f3d-4e5a-8b7c-9d0e1f2a3b4c", None),
            ("default_-web_0b6a4c1e-2f3d-4e5a-8b7c-9d0e1f2a3b4c", None),
            ("", None),
            ("__", None),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_pod_log_dir_name(name), expected, "name: {name}");
        }
    }

    #[test]
    fn parsers_never_panic_on_truncated_names() {
        let names = [
            format!("kube-system_coredns-5d78c9869d-8kz2t_{COREDNS_UID}"),
            format!("coredns-5d78c9869d-8kz2t_kube-system_coredns-{COREDNS_CID}.log"),
            "é_é_é-é.log".to_string(),
        ];
        for name in &names {
            for (end, _) in name.char_indices() {
                let _ = parse_pod_log_dir_name(&name[..end]);
                let _ = parse_container_log_name(&name[..end]);
                let _ = parse_container_log_name(&name[end..]);
            }
        }
    }

    #[test]
    fn parses_container_log_names() {
        let parsed = |pod: &str, ns: &str, container: &str, cid: &str| {
            Some((
                pod.to_string(),
                ns.to_string(),
                container.to_string(),
                cid.to_string(),
            ))
        };
        let cases = [
            (
                format!("web-0_default_web-{WEB_CID}.log"),
                parsed("web-0", "default", "web", WEB_CID),
            ),
            // dashes in pod and container names; the id is after the last dash
            (
                format!("coredns-5d78c9869d-8kz2t_kube-system_coredns-sidecar-{COREDNS_CID}.log"),
                parsed(
                    "coredns-5d78c9869d-8kz2t",
                    "kube-system",
                    "coredns-sidecar",
                    COREDNS_CID,
                ),
            ),
            (
                format!("etcd-node1.example.com_kube-system_etcd-{APP_CID}.log"),
                parsed("etcd-node1.example.com", "kube-system", "etcd", APP_CID),
            ),
            (format!("web-0_default_web-{WEB_CID}"), None),
            (format!("web-0_default_web{WEB_CID}.log"), None),
            (format!("web-0_default_-{WEB_CID}.log"), None),
            (format!("web-0_default_extra_web-{WEB_CID}.log"), None),
            (
                format!("web-0_default_web-{}.log", WEB_CID.to_uppercase()),
                None,
            ),
            ("web-0_default_web-1234.log".to_string(), None),
            ("garbage.log".to_string(), None),
            (".log".to_string(), None),
            (String::new(), None),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_container_log_name(&name), expected, "name: {name}");
        }
    }

    #[test]
    fn scan_indexes_pods_and_containers() {
        let tree = TempTree::new("scan");
        build_node(&tree);
        let index = KubeletIndex::scan(&tree.dirs());

        let pods = [
            (WEB_UID, Some(pod("default", "web-0", WEB_UID))),
            (
                COREDNS_UID,
                Some(pod("kube-system", "coredns-5d78c9869d-8kz2t", COREDNS_UID)),
            ),
            (ETCD_UID, Some(pod("kube-system", "etcd-node1", ETCD_UID))),
            // known only from its symlink target
            (ORPHAN_UID, Some(pod("default", "orphan", ORPHAN_UID))),
            ("00000000-0000-0000-0000-000000000000", None),
        ];
        for (uid, expected) in pods {
            assert_eq!(index.pod(uid), expected.as_ref(), "uid: {uid}");
        }

        let containers = [
            (WEB_CID, Some(("web", WEB_UID))),
            (COREDNS_CID, Some(("coredns", COREDNS_UID))),
            (APP_CID, Some(("app", TWO_UID))),
            (ORPHAN_CID, Some(("job", ORPHAN_UID))),
            // unique 12-char prefix
            (&WEB_CID[..12], Some(("web", WEB_UID))),
            // too short for a prefix match
            (&WEB_CID[..11], None),
            // COREDNS_PAUSE_CID shares this prefix but has no symlink, so it is unique
            (&COREDNS_CID[..12], Some(("coredns", COREDNS_UID))),
            (COREDNS_PAUSE_CID, None),
            ("", None),
        ];
        for (cid, expected) in containers {
            let found = index
                .container(cid)
                .map(|c| (c.container_name.as_str(), c.pod.uid.as_str()));
            assert_eq!(found, expected, "cid: {cid}");
        }

        let names = [
            (TWO_UID, vec!["app", "sidecar"]),
            (WEB_UID, vec!["web"]),
            (ETCD_UID, vec!["etcd"]),
            (ORPHAN_UID, vec![]),
        ];
        for (uid, expected) in names {
            assert_eq!(
                index.container_names(uid),
                expected.as_slice(),
                "uid: {uid}"
            );
        }
    }

    #[test]
    fn prefix_lookup_rejects_ambiguous_prefixes() {
        let tree = TempTree::new("prefix");
        let pod_dir = format!("default_web-0_{WEB_UID}");
        tree.add_container_log(&pod_dir, "web");
        let target = tree.0.join("pods").join(&pod_dir).join("web/0.log");
        tree.add_link(&format!("web-0_default_web-{COREDNS_CID}.log"), &target);
        tree.add_link(
            &format!("web-0_default_web-{COREDNS_PAUSE_CID}.log"),
            &target,
        );
        let index = KubeletIndex::scan(&tree.dirs());

        assert!(index.container(&COREDNS_CID[..12]).is_none());
        assert!(index.container(&COREDNS_CID[..13]).is_some());
        assert!(index.container(COREDNS_PAUSE_CID).is_some());
    }

    #[test]
    fn resolve_names_containers() {
        let tree = TempTree::new("resolve");
        build_node(&tree);
        let index = KubeletIndex::scan(&tree.dirs());
        let container = |pod_uid: &str, container_id: &str| ContainerRef {
            pod_uid: pod_uid.to_string(),
            container_id: container_id.to_string(),
            runtime: Runtime::Containerd,
            qos: Qos::Burstable,
            driver: CgroupDriver::Systemd,
        };
        let unknown_cid = "0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b";
        let unknown_uid = "12345678-1234-4234-8234-123456789abc";
        let cases = [
            // id known from the symlink
            (container(WEB_UID, WEB_CID), Some("web-0"), Some("web")),
            (
                container(TWO_UID, APP_CID),
                Some("two-containers"),
                Some("app"),
            ),
            // sole container dir, no symlink yet (just started): named by its dir
            (
                container(ETCD_UID, unknown_cid),
                Some("etcd-node1"),
                Some("etcd"),
            ),
            // sole container already linked under another id: this is the pause sandbox
            (
                container(COREDNS_UID, COREDNS_PAUSE_CID),
                Some("coredns-5d78c9869d-8kz2t"),
                None,
            ),
            // two containers, id unknown: can't tell which
            (
                container(TWO_UID, unknown_cid),
                Some("two-containers"),
                None,
            ),
            // id known but claimed by another pod: don't trust it
            (container(TWO_UID, WEB_CID), Some("two-containers"), None),
            // pod only known from a symlink
            (
                container(ORPHAN_UID, ORPHAN_CID),
                Some("orphan"),
                Some("job"),
            ),
            (container(unknown_uid, unknown_cid), None, None),
        ];
        for (container, pod_name, container_name) in cases {
            let resolved = index.resolve(&container);
            assert_eq!(
                resolved.pod.map(|p| p.name.as_str()),
                pod_name,
                "{container:?}"
            );
            assert_eq!(resolved.container_name, container_name, "{container:?}");
        }
    }

    #[test]
    fn missing_dirs_give_an_empty_index() {
        let tree = TempTree::new("missing");
        let index = KubeletIndex::scan(&tree.dirs());
        assert!(index.pod(WEB_UID).is_none());
        assert!(index.container(WEB_CID).is_none());
        assert!(index.container_names(WEB_UID).is_empty());

        // container links alone still work: the pod comes from the link target
        tree.add_link(
            &format!("web-0_default_web-{WEB_CID}.log"),
            &Path::new("/var/log/pods")
                .join(format!("default_web-0_{WEB_UID}"))
                .join("web/0.log"),
        );
        let index = KubeletIndex::scan(&tree.dirs());
        assert_eq!(index.pod(WEB_UID), Some(&pod("default", "web-0", WEB_UID)));
        assert_eq!(
            index.container(WEB_CID).map(|c| c.container_name.as_str()),
            Some("web")
        );
    }

    #[test]
    fn falls_back_to_pod_name_when_link_target_is_unparseable() {
        let tree = TempTree::new("fallback");
        let pod_dir = format!("default_web-0_{WEB_UID}");
        tree.add_container_log(&pod_dir, "web");
        tree.add_link(
            &format!("web-0_default_web-{WEB_CID}.log"),
            Path::new("/elsewhere/0.log"),
        );
        let index = KubeletIndex::scan(&tree.dirs());
        assert_eq!(
            index.container(WEB_CID).map(|c| c.pod.uid.as_str()),
            Some(WEB_UID)
        );
    }

    #[test]
    fn default_dirs_are_kubelets() {
        let dirs = KubeletDirs::default();
        assert_eq!(dirs.pod_logs, Path::new("/var/log/pods"));
        assert_eq!(dirs.container_logs, Path::new("/var/log/containers"));
    }
}
