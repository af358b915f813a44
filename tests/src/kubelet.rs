//! kubelet's on-node metadata, written under a temp root instead of `/var/log` and
//! `/var/lib/kubelet`.
//!
//! Why: without an API server, the sensor learns pod/container names the way a node agent can
//! offline: kubelet's log layout encodes them.
//! - `<root>/pods/<namespace>_<pod>_<pod-uid>/<container>/0.log`
//! - `<root>/containers/<pod>_<namespace>_<container>-<container-id>.log` -> that `0.log`
//!
//! The sensor is pointed at them with `--pod-logs-dir <root>/pods --container-logs-dir
//! <root>/containers` ([`Kubelet::sensor_args`]). Each test gets its own root, so a sensor
//! started by one test only ever sees that test's pods.
//!
//! Also builds a service-account volume shaped like kubelet's projected volume (atomic-writer
//! `..data` symlinks), for bind-mounting into a container like kubelet does.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::pod::Pod;
use crate::rootfs;
use crate::util::{self, TempDir};

pub struct Kubelet {
    root: TempDir,
}

impl Default for Kubelet {
    fn default() -> Self {
        Self::new()
    }
}

impl Kubelet {
    pub fn new() -> Kubelet {
        let root = TempDir::new("kubelet");
        for d in ["pods", "containers", "kubelet/pods"] {
            fs::create_dir_all(root.path().join(d)).expect("create kubelet dirs");
        }
        Kubelet { root }
    }

    /// `/var/log/pods` equivalent.
    pub fn pods_dir(&self) -> PathBuf {
        self.root.path().join("pods")
    }

    /// `/var/log/containers` equivalent.
    pub fn containers_dir(&self) -> PathBuf {
        self.root.path().join("containers")
    }

    /// The sensor flags pointing at this kubelet's metadata.
    pub fn sensor_args(&self) -> Vec<String> {
        vec![
            "--pod-logs-dir".into(),
            self.pods_dir().display().to_string(),
            "--container-logs-dir".into(),
            self.containers_dir().display().to_string(),
        ]
    }

    /// `<pods>/<ns>_<pod>_<uid>`.
    pub fn pod_log_dir(&self, pod: &Pod) -> PathBuf {
        self.pods_dir()
            .join(format!("{}_{}_{}", pod.namespace, pod.name, pod.uid))
    }

    /// Writes all of the pod's metadata: [`Kubelet::add_pod_dirs`] then
    /// [`Kubelet::link_container`] for every container.
    pub fn add_pod(&self, pod: &Pod) {
        self.add_pod_dirs(pod);
        for c in &pod.containers {
            self.link_container(pod, &c.name);
        }
    }

    /// The pod's log dir and each container's `<container>/0.log`: what exists before a
    /// container starts. (kubelet creates the `/var/log/containers` symlink only after
    /// StartContainer returns, so a sensor may see a container's first events before
    /// [`Kubelet::link_container`]; tests can reproduce that order.)
    pub fn add_pod_dirs(&self, pod: &Pod) {
        let pod_dir = self.pod_log_dir(pod);
        for c in &pod.containers {
            let cdir = pod_dir.join(&c.name);
            fs::create_dir_all(&cdir).unwrap_or_else(|e| panic!("mkdir {}: {e}", cdir.display()));
            let log = cdir.join("0.log");
            fs::write(
                &log,
                "2024-01-01T00:00:00.000000000Z stdout F container started\n",
            )
            .unwrap_or_else(|e| panic!("write {}: {e}", log.display()));
        }
        fs::create_dir_all(&pod_dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", pod_dir.display()));
    }

    /// `<containers>/<pod>_<ns>_<container>-<id>.log` -> `<pods>/.../<container>/0.log`.
    pub fn link_container(&self, pod: &Pod, container: &str) {
        let c = pod.container(container);
        let log = self.pod_log_dir(pod).join(&c.name).join("0.log");
        let link = self.container_log_link(pod, container);
        let _ = fs::remove_file(&link);
        symlink(&log, &link).unwrap_or_else(|e| panic!("symlink {}: {e}", link.display()));
    }

    /// Path of the container's `/var/log/containers` symlink.
    pub fn container_log_link(&self, pod: &Pod, container: &str) -> PathBuf {
        let c = pod.container(container);
        self.containers_dir().join(format!(
            "{}_{}_{}-{}.log",
            pod.name, pod.namespace, c.name, c.id
        ))
    }

    /// Removes the pod's metadata (kubelet does this when the pod is deleted).
    pub fn remove_pod(&self, pod: &Pod) {
        for c in &pod.containers {
            let _ = fs::remove_file(self.container_log_link(pod, &c.name));
        }
        let _ = fs::remove_dir_all(self.pod_log_dir(pod));
    }

    /// Creates the pod's service-account volume the way kubelet's atomic writer lays it out:
    /// `token -> ..data/token`, `..data -> ..<timestamp>/`. Returns the volume directory, to be
    /// bind-mounted at [`rootfs::SERVICE_ACCOUNT_DIR`].
    pub fn service_account_volume(&self, pod: &Pod) -> PathBuf {
        let vol = self.root.path().join(format!(
            "kubelet/pods/{}/volumes/kubernetes.io~projected/kube-api-access-{}",
            pod.uid,
            util::random_k8s_suffix(5)
        ));
        let ts = "..2024_01_01_00_00_00.000000001";
        let data = vol.join(ts);
        fs::create_dir_all(&data).unwrap_or_else(|e| panic!("mkdir {}: {e}", data.display()));
        fs::write(data.join("token"), rootfs::DUMMY_TOKEN).expect("write token");
        fs::write(
            data.join("ca.crt"),
            "-----BEGIN CERTIFICATE-----\nZHVtbXk=\n-----END CERTIFICATE-----\n",
        )
        .expect("write ca.crt");
        fs::write(data.join("namespace"), &pod.namespace).expect("write namespace");
        symlink(ts, vol.join("..data")).expect("symlink ..data");
        for f in ["token", "ca.crt", "namespace"] {
            symlink(Path::new("..data").join(f), vol.join(f)).expect("symlink volume file");
        }
        vol
    }
}
