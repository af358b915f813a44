//! `sensor doctor`: can the sensor run on this node, and what will it capture?
//!
//! Everything is measured on the running kernel and host: the probes are really loaded and
//! attached (then detached), features are probed with the bpf() syscall, mounts come from
//! mountinfo, container layout from the cgroup tree. The report is plain data; the CLI renders it.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use aya::{maps::MapType, programs::ProgramType};
use serde::Serialize;

use crate::{
    attribution::cgroup_path::{self, CgroupKind},
    capture::kernel::mounts,
    capture::{
        LoadOptions, ProbeStatus, Probes,
        compat::{OBJECT_NEEDS, PROBES},
        patterns::default_patterns,
    },
};

/// Where to look on this host.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    pub proc_root: PathBuf,
    pub btf: PathBuf,
    pub pod_logs: PathBuf,
    pub container_logs: PathBuf,
    pub kubelet_seccomp: PathBuf,
    pub node_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Info,
    Warn,
    Fail,
}

/// One fact about the host, judged.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub level: Level,
    pub detail: String,
}

/// Kubernetes containers found in the cgroup tree.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerLayout {
    pub pods: usize,
    pub containers: usize,
    /// Container count by runtime (`containerd`, `crio`, `docker`, `unknown`).
    pub runtimes: BTreeMap<String, usize>,
    /// Kubelet cgroup drivers seen (`systemd`, `cgroupfs`).
    pub drivers: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub node: String,
    pub kernel_release: String,
    pub machine: String,
    pub checks: Vec<Check>,
    /// Every probe, attached or why not; empty when the object itself could not load.
    pub probes: Vec<ProbeStatus>,
    pub containers: Option<ContainerLayout>,
    /// What the sensor captures on this node, and what it does not.
    pub captures: Vec<String>,
    pub does_not_capture: Vec<String>,
    /// Whether `sensor run` can start here.
    pub can_run: bool,
}

/// Examines the host. Loading the probes needs the sensor's privileges (root, or CAP_BPF,
/// CAP_PERFMON and CAP_NET_ADMIN); without them the probe checks fail and say so.
pub fn examine(opts: &DoctorOptions) -> Report {
    let mut checks = Vec::new();
    let kernel_release = read_trimmed(&opts.proc_root.join("sys/kernel/osrelease"));
    let machine = std::env::consts::ARCH.to_string();

    checks.push(btf_check(&opts.btf));
    let mountinfo =
        std::fs::read_to_string(opts.proc_root.join("self/mountinfo")).unwrap_or_default();
    let cgroup2 = mounts::find_mount(&mountinfo, "cgroup2");
    checks.push(match &cgroup2 {
        Some(m) => {
            let hybrid = mounts::find_mount(&mountinfo, "cgroup").is_some();
            Check {
                name: "cgroup v2",
                level: Level::Ok,
                detail: format!(
                    "{}{}",
                    m.mount_point.display(),
                    if hybrid {
                        " (hybrid host: cgroup v1 controllers are mounted too; v2 is what the sensor uses)"
                    } else {
                        " (cgroup2 only)"
                    }
                ),
            }
        }
        None => Check {
            name: "cgroup v2",
            level: Level::Fail,
            detail: "not mounted (no cgroup2 line in mountinfo): the network probes attach to its root and containers are found by its paths".into(),
        },
    });
    checks.push(match mounts::find_mount(&mountinfo, "tracefs") {
        Some(m) => Check {
            name: "tracefs",
            level: Level::Info,
            detail: format!(
                "{} (not needed: the probes use raw and BTF tracepoints)",
                m.mount_point.display()
            ),
        },
        None => Check {
            name: "tracefs",
            level: Level::Info,
            detail: "not mounted (not needed: the probes use raw and BTF tracepoints)".into(),
        },
    });
    checks.push(feature_check(
        "BPF ring buffer",
        aya::sys::is_map_supported(MapType::RingBuf).map_err(|e| e.to_string()),
        "Linux 5.8+; every event reaches user space through it",
    ));
    for (name, program_type) in [
        ("raw tracepoint programs", ProgramType::RawTracePoint),
        ("cgroup_skb programs", ProgramType::CgroupSkb),
        ("cgroup sock_addr programs", ProgramType::CgroupSockAddr),
    ] {
        checks.push(feature_check(
            name,
            aya::sys::is_program_supported(program_type).map_err(|e| e.to_string()),
            "program type",
        ));
    }
    checks.push(capability_check(&opts.proc_root));
    if let Some(check) = lockdown_check() {
        checks.push(check);
    }

    let probes = match &cgroup2 {
        Some(m) => load_probes(opts, &m.mount_point, &mut checks),
        None => Vec::new(),
    };
    let containers = cgroup2.as_ref().map(|m| container_layout(&m.mount_point));
    if let Some(layout) = &containers {
        checks.push(layout_check(layout));
    }
    checks.extend(kubelet_checks(opts));
    checks.push(kubernetes_api_check());

    let (captures, does_not_capture) = coverage(&probes);
    let can_run = can_run(&checks, &probes);
    Report {
        node: opts.node_name.clone(),
        kernel_release,
        machine,
        checks,
        probes,
        containers,
        captures,
        does_not_capture,
        can_run,
    }
}

/// The sensor starts when no check failed, the object loaded and every required probe attached.
pub fn can_run(checks: &[Check], probes: &[ProbeStatus]) -> bool {
    !probes.is_empty()
        && checks.iter().all(|c| c.level != Level::Fail)
        && probes.iter().all(|p| !p.blocks_start())
}

/// What the attached probes capture, and what the missing ones take away.
pub fn coverage(probes: &[ProbeStatus]) -> (Vec<String>, Vec<String>) {
    if probes.is_empty() {
        return (
            Vec::new(),
            vec!["everything: the kernel programs could not be loaded".to_string()],
        );
    }
    let captures = probes
        .iter()
        .filter(|p| p.attached)
        .map(|p| p.captures.to_string())
        .collect();
    let missing = probes
        .iter()
        .filter(|p| !p.attached)
        .map(ProbeStatus::loss)
        .collect();
    (captures, missing)
}

fn load_probes(opts: &DoctorOptions, cgroup2: &Path, checks: &mut Vec<Check>) -> Vec<ProbeStatus> {
    let load = Probes::load_available(&LoadOptions {
        btf_path: opts.btf.clone(),
        cgroup2_root: cgroup2.to_path_buf(),
        // Small: doctor only checks that it can be created.
        ring_buffer_bytes: 64 * 1024,
        file_patterns: default_patterns(),
    });
    match load {
        // Dropping the probes detaches them.
        Ok(probes) => probes.status.clone(),
        Err(e) => {
            let needs: Vec<String> = OBJECT_NEEDS
                .iter()
                .map(|(what, since)| format!("{what} (Linux {since}+)"))
                .collect();
            checks.push(Check {
                name: "kernel programs",
                level: Level::Fail,
                detail: format!(
                    "the object did not load: {e:#}; it needs {} and the sensor's privileges",
                    needs.join(", ")
                ),
            });
            Vec::new()
        }
    }
}

fn btf_check(path: &Path) -> Check {
    match std::fs::metadata(path) {
        Ok(m) => Check {
            name: "kernel BTF",
            level: Level::Ok,
            detail: format!("{} ({:.1} MiB)", path.display(), m.len() as f64 / 1048576.0),
        },
        Err(e) => Check {
            name: "kernel BTF",
            level: Level::Fail,
            detail: format!(
                "{}: {e} (the probes read kernel struct offsets from BTF; needs CONFIG_DEBUG_INFO_BTF=y)",
                path.display()
            ),
        },
    }
}

fn feature_check(name: &'static str, supported: Result<bool, String>, what: &str) -> Check {
    match supported {
        Ok(true) => Check {
            name,
            level: Level::Ok,
            detail: format!("supported ({what})"),
        },
        Ok(false) => Check {
            name,
            level: Level::Fail,
            detail: format!("not supported by this kernel ({what})"),
        },
        Err(e) => Check {
            name,
            level: Level::Warn,
            detail: format!("could not be probed: {e}"),
        },
    }
}

/// Capability bits (linux/capability.h).
const CAPS: &[(u32, &str)] = &[
    (12, "NET_ADMIN"),
    (19, "SYS_PTRACE"),
    (21, "SYS_ADMIN"),
    (24, "SYS_RESOURCE"),
    (38, "PERFMON"),
    (39, "BPF"),
];

/// Parses `CapEff:` from /proc/<pid>/status text into the names in [`CAPS`] it holds.
pub fn effective_caps(status: &str) -> Option<Vec<&'static str>> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let bits = u64::from_str_radix(hex, 16).ok()?;
    Some(
        CAPS.iter()
            .filter(|(bit, _)| bits & (1u64 << bit) != 0)
            .map(|(_, name)| *name)
            .collect(),
    )
}

fn capability_check(proc_root: &Path) -> Check {
    let status = std::fs::read_to_string(proc_root.join("self/status")).unwrap_or_default();
    let Some(caps) = effective_caps(&status) else {
        return Check {
            name: "capabilities",
            level: Level::Warn,
            detail: "could not read CapEff from /proc/self/status".into(),
        };
    };
    let has = |c: &str| caps.contains(&c);
    let bpf = has("SYS_ADMIN") || (has("BPF") && has("PERFMON"));
    let level = if !bpf || !(has("NET_ADMIN") || has("SYS_ADMIN")) {
        Level::Fail
    } else if !has("SYS_PTRACE") {
        Level::Warn
    } else {
        Level::Ok
    };
    Check {
        name: "capabilities",
        level,
        detail: format!(
            "effective: {} (needs BPF and PERFMON (or SYS_ADMIN) and NET_ADMIN; SYS_PTRACE to name the process of sockets older than the sensor)",
            if caps.is_empty() {
                "none of these".to_string()
            } else {
                caps.join(" ")
            }
        ),
    }
}

fn lockdown_check() -> Option<Check> {
    let text = std::fs::read_to_string("/sys/kernel/security/lockdown").ok()?;
    // The active mode is bracketed: "none [integrity] confidentiality".
    let active = text
        .split_whitespace()
        .find(|w| w.starts_with('['))?
        .trim_matches(['[', ']']);
    Some(if active == "confidentiality" {
        Check {
            name: "kernel lockdown",
            level: Level::Fail,
            detail:
                "confidentiality: BPF programs may not read kernel memory, which the probes need"
                    .into(),
        }
    } else {
        Check {
            name: "kernel lockdown",
            level: Level::Info,
            detail: format!(
                "{active} (kprobes and BPF LSM may be refused; the sensor uses neither)"
            ),
        }
    })
}

/// Walks the cgroup tree (bounded depth) and classifies every directory.
pub fn container_layout(cgroup2: &Path) -> ContainerLayout {
    let mut layout = ContainerLayout::default();
    let mut pods = BTreeSet::new();
    let mut stack = vec![(cgroup2.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = entry.path();
            let relative = path.strip_prefix(cgroup2).unwrap_or(&path);
            match cgroup_path::classify(&relative.to_string_lossy()) {
                CgroupKind::Container(c) => {
                    layout.containers += 1;
                    pods.insert(c.pod_uid.clone());
                    *layout
                        .runtimes
                        .entry(c.runtime.name().to_string())
                        .or_default() += 1;
                    layout.drivers.insert(c.driver.name().to_string());
                    // Nested cgroups of a container belong to it: not counted again.
                }
                CgroupKind::PodLevel { pod_uid, .. } => {
                    pods.insert(pod_uid);
                    if depth < 8 {
                        stack.push((path, depth + 1));
                    }
                }
                CgroupKind::Host if depth < 8 => stack.push((path, depth + 1)),
                CgroupKind::Host => {}
            }
        }
    }
    layout.pods = pods.len();
    layout
}

fn layout_check(layout: &ContainerLayout) -> Check {
    if layout.containers == 0 {
        return Check {
            name: "containers",
            level: Level::Info,
            detail: "no kubelet pod cgroups (kubepods) found: not a Kubernetes node yet, or no pods; host processes are captured as `host`".into(),
        };
    }
    let runtimes: Vec<String> = layout
        .runtimes
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    Check {
        name: "containers",
        level: Level::Ok,
        detail: format!(
            "{} containers in {} pods (runtime: {}; cgroup driver: {})",
            layout.containers,
            layout.pods,
            runtimes.join(", "),
            layout
                .drivers
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn kubelet_checks(opts: &DoctorOptions) -> Vec<Check> {
    let dir = |name: &'static str, path: &Path, missing: Level, role: &str| {
        let detail = match std::fs::read_dir(path) {
            Ok(entries) => format!("{} ({} entries): {role}", path.display(), entries.count()),
            Err(e) => format!("{}: {e}: {role}", path.display()),
        };
        Check {
            name,
            level: if path.is_dir() { Level::Ok } else { missing },
            detail,
        }
    };
    vec![
        dir(
            "kubelet pod logs",
            &opts.pod_logs,
            Level::Warn,
            "names pods and their namespaces without the Kubernetes API",
        ),
        dir(
            "kubelet container logs",
            &opts.container_logs,
            Level::Warn,
            "names containers by runtime id without the Kubernetes API",
        ),
        dir(
            "kubelet seccomp dir",
            &opts.kubelet_seccomp,
            Level::Info,
            "where `sensor run --install-seccomp-dir` puts drafts for `localhostProfile`",
        ),
    ]
}

fn kubernetes_api_check() -> Check {
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists();
    Check {
        name: "Kubernetes API",
        level: Level::Info,
        detail: if in_cluster {
            "in-cluster credentials found: labels, owners and peer pods come from the API".into()
        } else {
            "no in-cluster credentials: workloads are named from kubelet's files and pod names (labels and peer pods need the API)".into()
        },
    }
}

fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The compatibility table as `sensor doctor --table` prints it (also docs/kernels.md).
pub fn compat_table() -> Vec<[String; 5]> {
    PROBES
        .iter()
        .map(|p| {
            let (hook, needs) = match p.fallback {
                None => (
                    p.hook.describe(),
                    format!("{} (Linux {}+)", p.needs, p.since),
                ),
                Some(f) => (
                    format!(
                        "{}; where refused, {} ({})",
                        p.hook.describe(),
                        f.hook.describe(),
                        f.cost
                    ),
                    format!(
                        "{} (Linux {}+); the fallback: {}",
                        p.needs, p.since, f.needs
                    ),
                ),
            };
            [
                p.program.to_string(),
                hook,
                needs,
                if p.need.is_required() {
                    "required"
                } else {
                    "optional"
                }
                .to_string(),
                p.need.without().to_string(),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_capabilities_are_decoded() {
        // A DaemonSet with drop ALL + BPF, PERFMON, NET_ADMIN, SYS_PTRACE.
        let bits: u64 = (1 << 39) | (1 << 38) | (1 << 12) | (1 << 19);
        let status = format!("Name:\tsensor\nCapInh:\t0\nCapEff:\t{bits:016x}\n");
        assert_eq!(
            effective_caps(&status).unwrap(),
            ["NET_ADMIN", "SYS_PTRACE", "PERFMON", "BPF"]
        );
        assert_eq!(
            effective_caps("CapEff:\t0000000000000000\n").unwrap(),
            Vec::<&str>::new()
        );
        assert!(effective_caps("no caps here").is_none());
    }

    fn status(program: &'static str, required: bool, attached: bool) -> ProbeStatus {
        ProbeStatus {
            program,
            hook: String::new(),
            captures: "things",
            needs: "",
            since: "5.8",
            required,
            without: "no things",
            attached,
            permission_denied: false,
            error: (!attached).then(|| "EINVAL".to_string()),
            note: None,
        }
    }

    #[test]
    fn an_optional_probe_missing_still_runs_a_required_one_does_not() {
        let ok = Check {
            name: "x",
            level: Level::Ok,
            detail: String::new(),
        };
        let checks = vec![ok.clone()];
        assert!(can_run(
            &checks,
            &[status("a", true, true), status("b", false, false)]
        ));
        assert!(!can_run(
            &checks,
            &[status("a", true, false), status("b", false, true)]
        ));
        assert!(!can_run(&checks, &[]), "nothing loaded");
        let denied = ProbeStatus {
            permission_denied: true,
            ..status("b", false, false)
        };
        assert!(
            !can_run(&checks, &[status("a", true, true), denied]),
            "an optional probe refused for lack of privilege is a deployment error"
        );
        let fail = Check {
            level: Level::Fail,
            ..ok
        };
        assert!(!can_run(&[fail], &[status("a", true, true)]));
        let (captures, missing) = coverage(&[status("a", true, true), status("b", false, false)]);
        assert_eq!(captures, ["things"]);
        assert_eq!(missing, ["things (b): no things"]);
    }

    #[test]
    fn kubelet_cgroups_are_counted_by_runtime_and_driver() {
        let root = tempfile::tempdir().unwrap();
        let pod = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice";
        let id = "a".repeat(64);
        for dir in [
            format!("{pod}/cri-containerd-{id}.scope"),
            format!("{pod}/cri-containerd-{}.scope/nested", "b".repeat(64)),
            "system.slice/ssh.service".to_string(),
        ] {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        let layout = container_layout(root.path());
        assert_eq!(layout.containers, 2);
        assert_eq!(layout.pods, 1);
        assert_eq!(layout.runtimes.get("containerd"), Some(&2));
        assert_eq!(layout.drivers.iter().collect::<Vec<_>>(), ["systemd"]);
    }
}
