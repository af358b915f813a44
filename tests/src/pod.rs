//! A test pod: identity (namespace, name, UID), QoS class, cgroup driver, runtime, containers,
//! and the kubelet-shaped cgroup path of each container.
//!
//! Why: the sensor attributes events by mapping a cgroup path to (pod UID, container ID) and
//! then to names via kubelet's on-node metadata. Reproducing kubelet's exact cgroup names for
//! both drivers (cgroupfs and systemd) and the runtimes' prefixes exercises that mapping on a
//! real kernel. runc's cgroupfs manager accepts either shape as a plain path.
//!
//! The pod's cgroup directories (and any container leftovers) are removed on drop, best effort,
//! in every hierarchy. Shared parents (`/kubepods/besteffort`, `kubepods.slice`...) are kept:
//! concurrently running tests use them too.

use crate::cgroup;
use crate::util;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "guaranteed",
            Qos::Burstable => "burstable",
            Qos::BestEffort => "besteffort",
        }
    }
}

/// kubelet's `--cgroup-driver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    /// `/kubepods/<qos>/pod<uid>/<container>`
    Cgroupfs,
    /// `/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/<prefix>-<id>.scope`
    Systemd,
}

/// The container runtime whose naming the container cgroup follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    Containerd,
    Crio,
    Docker,
}

impl Runtime {
    /// Prefix of the systemd scope unit (`<prefix>-<id>.scope`).
    fn scope_prefix(self) -> &'static str {
        match self {
            Runtime::Containerd => "cri-containerd",
            Runtime::Crio => "crio",
            Runtime::Docker => "docker",
        }
    }

    /// Leaf name under the pod cgroup with the cgroupfs driver.
    fn cgroupfs_leaf(self, id: &str) -> String {
        match self {
            Runtime::Crio => format!("crio-{id}"),
            Runtime::Containerd | Runtime::Docker => id.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    /// 64 lowercase hex digits, like containerd/CRI-O/docker ids. Also used as the runc id.
    pub id: String,
}

#[derive(Debug)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub qos: Qos,
    pub driver: CgroupDriver,
    pub runtime: Runtime,
    pub containers: Vec<Container>,
}

impl Pod {
    /// A BestEffort, cgroupfs, containerd pod with no containers yet.
    pub fn new(namespace: &str, name: &str) -> Pod {
        Pod {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: util::random_uuid(),
            qos: Qos::BestEffort,
            driver: CgroupDriver::Cgroupfs,
            runtime: Runtime::Containerd,
            containers: Vec::new(),
        }
    }

    /// A pod named like a Deployment's replica: `<deployment>-<rs hash>-<suffix>`, e.g.
    /// `agent-7d9f8b6c4d-x2x9k` (workload `agent`, kind `deployment`).
    pub fn deployment_replica(namespace: &str, deployment: &str) -> Pod {
        let name = format!(
            "{deployment}-{}-{}",
            util::random_k8s_suffix(10),
            util::random_k8s_suffix(5)
        );
        Pod::new(namespace, &name)
    }

    pub fn qos(mut self, qos: Qos) -> Pod {
        self.qos = qos;
        self
    }

    pub fn driver(mut self, driver: CgroupDriver) -> Pod {
        self.driver = driver;
        self
    }

    pub fn runtime(mut self, runtime: Runtime) -> Pod {
        self.runtime = runtime;
        self
    }

    /// Adds a container with a random id.
    pub fn with_container(mut self, name: &str) -> Pod {
        self.containers.push(Container {
            name: name.to_string(),
            id: util::random_hex(64),
        });
        self
    }

    pub fn container(&self, name: &str) -> &Container {
        self.containers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("pod {} has no container {name}", self.name))
    }

    /// The pod-level cgroup path (relative to a hierarchy root).
    pub fn pod_cgroup_path(&self) -> String {
        match self.driver {
            CgroupDriver::Cgroupfs => match self.qos {
                Qos::Guaranteed => format!("/kubepods/pod{}", self.uid),
                q => format!("/kubepods/{}/pod{}", q.as_str(), self.uid),
            },
            CgroupDriver::Systemd => {
                let uid = self.uid.replace('-', "_");
                match self.qos {
                    Qos::Guaranteed => format!("/kubepods.slice/kubepods-pod{uid}.slice"),
                    q => {
                        let q = q.as_str();
                        format!("/kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{uid}.slice")
                    }
                }
            }
        }
    }

    /// The container's cgroup path (relative to a hierarchy root), usable as runc's
    /// `linux.cgroupsPath`.
    pub fn cgroup_path(&self, container: &str) -> String {
        let id = &self.container(container).id;
        let leaf = match self.driver {
            CgroupDriver::Cgroupfs => self.runtime.cgroupfs_leaf(id),
            CgroupDriver::Systemd => format!("{}-{id}.scope", self.runtime.scope_prefix()),
        };
        format!("{}/{leaf}", self.pod_cgroup_path())
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for c in &self.containers {
            cgroup::remove_everywhere(&self.cgroup_path(&c.name));
        }
        cgroup::remove_everywhere(&self.pod_cgroup_path());
    }
}
