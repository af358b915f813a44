//! Loads the kernel programs with the running kernel's offsets and attaches the probe table
//! ([`super::compat::PROBES`]) through the attach manager ([`super::attach`]), recording what
//! every probe captures and whether it attached.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::HashMap,
    maps::{MapData, Queue},
};
use sensor_common::{KernelConfig, limits, names};
use serde::Serialize;

use crate::{
    capture::kernel::{btf::Btf, offsets},
    capture::{
        attach::{AttachError, AttachManager, AttachmentId, Target},
        compat::{Hook, PROBES, ProbeSpec},
        patterns::{SensitivePattern, anchors},
    },
};

/// The compiled kernel programs, embedded at build time by `build.rs`.
static KERNEL_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor"));

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "this binary was built without its kernel programs (AYA_BUILD_SKIP was set); rebuild with `cargo xtask build`"
    )]
    NoKernelObject,
    #[error(
        "kernel BTF not found at {path} (needs a kernel built with CONFIG_DEBUG_INFO_BTF=y; every EKS AMI has it)"
    )]
    NoBtf { path: PathBuf },
    #[error("reading kernel BTF at {path}: {source}")]
    Btf {
        path: PathBuf,
        source: crate::capture::kernel::btf::BtfError,
    },
    #[error("reading kernel BTF at {path} (aya): {source}")]
    AyaBtf {
        path: PathBuf,
        source: aya::BtfError,
    },
    #[error(
        "cgroup v2 is not mounted (no cgroup2 line in /proc/self/mountinfo); the network probes attach to the cgroup2 root"
    )]
    NoCgroup2,
    #[error("opening the cgroup2 root {path}: {source}")]
    Cgroup2Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("loading the kernel programs: {0}")]
    Load(#[source] aya::EbpfError),
    #[error("kernel program or map `{0}` missing from the object (build mismatch)")]
    Missing(&'static str),
    #[error("map `{name}`: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("too many sensitive file patterns: {count} (at most {max})")]
    TooManyPatterns { count: usize, max: u32 },
    #[error("probes failed to attach:\n{0}")]
    Attach(String),
    #[error("this kernel does not support {0}")]
    Unsupported(&'static str),
}

/// Attach result of one probe, for logs, `doctor`, metrics and `GetInfo`.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeStatus {
    pub program: &'static str,
    pub hook: String,
    pub captures: &'static str,
    /// Program type and kernel features it relies on.
    pub needs: &'static str,
    /// Upstream kernel version that introduced them.
    pub since: &'static str,
    pub required: bool,
    /// What is not captured (or why the sensor cannot run) without it.
    pub without: &'static str,
    pub attached: bool,
    /// It failed for lack of privilege (EPERM/EACCES), not for lack of kernel support.
    pub permission_denied: bool,
    pub error: Option<String>,
    /// Attached through its fallback: why, and what that costs.
    pub note: Option<String>,
}

impl ProbeStatus {
    /// What the node does not capture without this probe, as one line.
    pub fn loss(&self) -> String {
        format!("{} ({}): {}", self.captures, self.program, self.without)
    }

    /// Whether the sensor refuses to start because of this probe.
    pub fn blocks_start(&self) -> bool {
        !self.attached && (self.required || self.permission_denied)
    }
}

/// What the loader needs from the host.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub btf_path: PathBuf,
    /// cgroup2 mount point (the network programs attach to its root).
    pub cgroup2_root: PathBuf,
    pub ring_buffer_bytes: u32,
    pub file_patterns: Vec<SensitivePattern>,
}

/// Loaded and attached programs. Dropping it detaches everything.
pub struct Probes {
    /// The loaded object and its attachments (the table's, and any made while running).
    pub manager: AttachManager,
    pub status: Vec<ProbeStatus>,
    pub config: KernelConfig,
}

impl Probes {
    /// Loads and attaches every probe; an optional probe the kernel does not support is skipped
    /// with one warning, a required one (or any refused for lack of privilege) fails the load
    /// with the kernel's reason.
    pub fn load(opts: &LoadOptions) -> Result<Probes, LoadError> {
        let probes = Probes::load_available(opts)?;
        let failed: Vec<String> = probes
            .missing()
            .filter(|s| s.blocks_start())
            .map(|s| {
                format!(
                    "  {} ({}; captures {}; needs {}, Linux {}+): {}",
                    s.program,
                    s.hook,
                    s.captures,
                    s.needs,
                    s.since,
                    s.error.as_deref().unwrap_or_default()
                )
            })
            .collect();
        if !failed.is_empty() {
            return Err(LoadError::Attach(failed.join("\n")));
        }
        for s in &probes.status {
            if let Some(note) = &s.note {
                tracing::info!(program = s.program, hook = %s.hook, "{}: {note}", s.captures);
            }
        }
        for s in probes.missing() {
            tracing::warn!(
                program = s.program,
                hook = %s.hook,
                needs = s.needs,
                error = s.error.as_deref().unwrap_or_default(),
                "probe not attached, running without it: {}",
                s.without
            );
        }
        Ok(probes)
    }

    /// Probes that did not attach.
    pub fn missing(&self) -> impl Iterator<Item = &ProbeStatus> {
        self.status.iter().filter(|s| !s.attached)
    }

    /// Loads the object and attaches every probe the kernel accepts, recording each failure in
    /// `status` instead of failing (what `sensor doctor` reports). Errors only when nothing can
    /// load: no BTF, no ring buffer, the object refused.
    pub fn load_available(opts: &LoadOptions) -> Result<Probes, LoadError> {
        let mut probes = Probes::load_unattached(opts)?;
        for spec in PROBES {
            let (status, _) = attach_spec(&mut probes.manager, spec);
            probes.status.push(status);
        }
        // Every BTF-typed program of the table is loaded now (the daemon's idle RSS: 12 MiB).
        probes.manager.release_btf();
        Ok(probes)
    }

    /// Loads the object (kernel offsets, maps filled) and attaches nothing: `status` is empty.
    /// For attaching one program at a time ([`attach_spec`], [`AttachManager::attach`]).
    pub fn load_unattached(opts: &LoadOptions) -> Result<Probes, LoadError> {
        if KERNEL_OBJECT.is_empty() {
            return Err(LoadError::NoKernelObject);
        }
        if !opts.btf_path.exists() {
            return Err(LoadError::NoBtf {
                path: opts.btf_path.clone(),
            });
        }
        let btf = Btf::from_file(&opts.btf_path).map_err(|source| LoadError::Btf {
            path: opts.btf_path.clone(),
            source,
        })?;
        let mut config = offsets::kernel_config(&btf).map_err(|source| LoadError::Btf {
            path: opts.btf_path.clone(),
            source,
        })?;
        let max = limits::MAX_FILE_PATTERNS;
        if opts.file_patterns.len() > max as usize {
            return Err(LoadError::TooManyPatterns {
                count: opts.file_patterns.len(),
                max,
            });
        }
        config.file_anchors = u32::from(!opts.file_patterns.is_empty());
        tracing::debug!(?config, "kernel offsets from BTF");
        // Probed, not guessed from the version: distribution kernels backport features.
        if let Ok(false) = aya::sys::is_map_supported(aya::maps::MapType::RingBuf) {
            return Err(LoadError::Unsupported(
                "BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8+)",
            ));
        }

        let aya_btf =
            aya::Btf::parse_file(&opts.btf_path, aya::Endianness::default()).map_err(|source| {
                LoadError::AyaBtf {
                    path: opts.btf_path.clone(),
                    source,
                }
            })?;
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&aya_btf))
            .override_global(names::GLOBAL_CONFIG, &config, true)
            .map_max_entries(names::RINGBUF_EVENTS, opts.ring_buffer_bytes)
            .load(KERNEL_OBJECT)
            .map_err(LoadError::Load)?;

        fill_free_slots(&mut ebpf)?;
        write_anchors(&mut ebpf, &opts.file_patterns)?;

        let cgroup_root =
            File::open(&opts.cgroup2_root).map_err(|source| LoadError::Cgroup2Root {
                path: opts.cgroup2_root.clone(),
                source,
            })?;
        Ok(Probes {
            manager: AttachManager::new(ebpf, Some(aya_btf), Some(cgroup_root)),
            status: Vec::with_capacity(PROBES.len()),
            config,
        })
    }
}

/// Attaches one program of the table, or its fallback when the kernel refuses it, and says how
/// that went; the attachment, when there is one, stays with the manager.
pub fn attach_spec(
    manager: &mut AttachManager,
    spec: &ProbeSpec,
) -> (ProbeStatus, Option<AttachmentId>) {
    let mut hook = spec.hook;
    let mut note = None;
    let mut result = manager.attach(spec.program, Target::Hook(hook));
    if let (Err(refused), Some(fallback)) = (&result, spec.fallback) {
        let why = refused.text.lines().next().unwrap_or_default().to_string();
        result = match manager.attach(fallback.program, Target::Hook(fallback.hook)) {
            Ok(id) => {
                hook = fallback.hook;
                note = Some(format!(
                    "{} refused ({why}); using {} instead: {}",
                    spec.hook.describe(),
                    fallback.hook.describe(),
                    fallback.cost
                ));
                Ok(id)
            }
            Err(e) => Err(AttachError {
                text: format!(
                    "{} refused ({why}); fallback {} refused too: {}",
                    spec.hook.describe(),
                    fallback.hook.describe(),
                    e.text
                ),
                permission_denied: e.permission_denied,
            }),
        };
    }
    let status = ProbeStatus {
        program: spec.program,
        hook: hook.describe(),
        captures: spec.captures,
        needs: spec.needs,
        since: spec.since,
        required: spec.need.is_required(),
        without: spec.need.without(),
        attached: result.is_ok(),
        permission_denied: result.as_ref().is_err_and(|e| e.permission_denied),
        error: result.as_ref().err().map(|e| e.text.clone()),
        note,
    };
    (status, result.ok())
}

/// Every syscall-set slot starts free; the kernel takes one per new cgroup.
fn fill_free_slots(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    let map = ebpf
        .map_mut(names::MAP_FREE_SLOTS)
        .ok_or(LoadError::Missing(names::MAP_FREE_SLOTS))?;
    let mut queue: Queue<&mut MapData, u32> =
        Queue::try_from(map).map_err(|source| LoadError::Map {
            name: names::MAP_FREE_SLOTS,
            source,
        })?;
    for slot in 0..limits::MAX_CGROUP_SLOTS {
        queue.push(slot, 0).map_err(|source| LoadError::Map {
            name: names::MAP_FREE_SLOTS,
            source,
        })?;
    }
    Ok(())
}

fn write_anchors(ebpf: &mut Ebpf, patterns: &[SensitivePattern]) -> Result<(), LoadError> {
    let map = ebpf
        .map_mut(names::MAP_FILE_ANCHORS)
        .ok_or(LoadError::Missing(names::MAP_FILE_ANCHORS))?;
    let mut anchor_map: HashMap<&mut MapData, u32, u32> =
        HashMap::try_from(map).map_err(|source| LoadError::Map {
            name: names::MAP_FILE_ANCHORS,
            source,
        })?;
    for (hash, depth) in anchors(patterns) {
        anchor_map
            .insert(hash, depth, 0)
            .map_err(|source| LoadError::Map {
                name: names::MAP_FILE_ANCHORS,
                source,
            })?;
    }
    Ok(())
}

/// Loads the kernel object and attaches only the empty `sys_enter` program (and with `exit`,
/// the empty `sys_exit` one too): the floor the benchmark compares the sensor against.
/// Dropping the returned value detaches them.
pub fn attach_empty_hooks(exit: bool) -> Result<AttachManager, LoadError> {
    if KERNEL_OBJECT.is_empty() {
        return Err(LoadError::NoKernelObject);
    }
    let ebpf = EbpfLoader::new()
        .load(KERNEL_OBJECT)
        .map_err(LoadError::Load)?;
    let mut manager = AttachManager::new(ebpf, None, None);
    let hooks: &[(&'static str, &'static str)] = if exit {
        &[
            ("sys_enter_empty", "sys_enter"),
            ("sys_exit_empty", "sys_exit"),
        ]
    } else {
        &[("sys_enter_empty", "sys_enter")]
    };
    for (name, tracepoint) in hooks {
        manager
            .attach(name, Target::Hook(Hook::RawTracepoint(tracepoint)))
            .map_err(|e| LoadError::Attach(format!("{name}: {}", e.text)))?;
    }
    Ok(manager)
}

/// Default kernel BTF location.
pub fn default_btf_path() -> &'static Path {
    Path::new("/sys/kernel/btf/vmlinux")
}
