//! Loads the kernel programs with the running kernel's offsets and attaches each to its hook,
//! recording what every probe captures and whether it attached.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::HashMap,
    maps::{MapData, Queue},
    programs::{BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSockAddr, FEntry, RawTracePoint},
};
use sensor_common::{KernelConfig, limits, names};
use serde::Serialize;

use crate::{
    capture::kernel::{btf::Btf, offsets},
    capture::{
        compat::{Hook, PROBES},
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
    pub ebpf: Ebpf,
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
        let mut status = Vec::with_capacity(PROBES.len());
        for spec in PROBES {
            let mut hook = spec.hook;
            let mut note = None;
            let mut result = attach(&mut ebpf, spec.program, hook, &aya_btf, &cgroup_root).err();
            if let (Some(refused), Some(fallback)) = (&result, spec.fallback) {
                let why = refused.text.lines().next().unwrap_or_default().to_string();
                result = match attach(
                    &mut ebpf,
                    fallback.program,
                    fallback.hook,
                    &aya_btf,
                    &cgroup_root,
                ) {
                    Ok(()) => {
                        hook = fallback.hook;
                        note = Some(format!(
                            "{} refused ({why}); using {} instead: {}",
                            spec.hook.describe(),
                            fallback.hook.describe(),
                            fallback.cost
                        ));
                        None
                    }
                    Err(e) => Some(AttachError {
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
            status.push(ProbeStatus {
                program: spec.program,
                hook: hook.describe(),
                captures: spec.captures,
                needs: spec.needs,
                since: spec.since,
                required: spec.need.is_required(),
                without: spec.need.without(),
                attached: result.is_none(),
                permission_denied: result.as_ref().is_some_and(|e| e.permission_denied),
                error: result.map(|e| e.text),
                note,
            });
        }
        Ok(Probes {
            ebpf,
            status,
            config,
        })
    }
}

/// Loads and attaches one program; the error text carries aya's full chain (verifier log
/// included) so a failure names what the kernel refused.
/// Why a probe did not attach.
struct AttachError {
    /// aya's full chain, verifier log included.
    text: String,
    /// EPERM/EACCES: the sensor lacks a privilege, which is a deployment error, not a kernel
    /// limitation, so it is fatal even for an optional probe.
    permission_denied: bool,
}

impl AttachError {
    fn from_error(e: &(dyn std::error::Error + 'static)) -> AttachError {
        let text = error_chain(e);
        let mut denied = false;
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                denied |= matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES));
            }
            source = s.source();
        }
        // Some aya errors carry the errno only in their message.
        denied |= text.contains("Operation not permitted") || text.contains("Permission denied");
        AttachError {
            text,
            permission_denied: denied,
        }
    }
}

fn attach(
    ebpf: &mut Ebpf,
    program: &str,
    hook: Hook,
    btf: &aya::Btf,
    cgroup_root: &File,
) -> Result<(), AttachError> {
    let program = ebpf.program_mut(program).ok_or_else(|| AttachError {
        text: "program missing from the kernel object".to_string(),
        permission_denied: false,
    })?;
    let err = |e: &(dyn std::error::Error + 'static)| AttachError::from_error(e);
    match hook {
        Hook::RawTracepoint(tp) => {
            let p: &mut RawTracePoint = program.try_into().map_err(|e| err(&e))?;
            p.load().map_err(|e| err(&e))?;
            p.attach(tp).map_err(|e| err(&e))?;
        }
        Hook::BtfTracepoint(tp) => {
            let p: &mut BtfTracePoint = program.try_into().map_err(|e| err(&e))?;
            p.load(tp, btf).map_err(|e| err(&e))?;
            p.attach().map_err(|e| err(&e))?;
        }
        Hook::FEntry(function) => {
            let p: &mut FEntry = program.try_into().map_err(|e| err(&e))?;
            p.load(function, btf).map_err(|e| err(&e))?;
            p.attach().map_err(|e| err(&e))?;
        }
        Hook::CgroupSockAddr => {
            let p: &mut CgroupSockAddr = program.try_into().map_err(|e| err(&e))?;
            p.load().map_err(|e| err(&e))?;
            // A bpf_link never replaces other programs, and the kernel refuses attach flags on
            // cgroup links: Single (no flags) is the right mode here.
            p.attach(cgroup_root, CgroupAttachMode::Single)
                .map_err(|e| err(&e))?;
        }
        Hook::CgroupSkb(kind) => {
            let p: &mut CgroupSkb = program.try_into().map_err(|e| err(&e))?;
            p.load().map_err(|e| err(&e))?;
            p.attach(cgroup_root, kind, CgroupAttachMode::Single)
                .map_err(|e| err(&e))?;
        }
    }
    Ok(())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
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
pub fn attach_empty_hooks(exit: bool) -> Result<Ebpf, LoadError> {
    if KERNEL_OBJECT.is_empty() {
        return Err(LoadError::NoKernelObject);
    }
    let mut ebpf = EbpfLoader::new()
        .load(KERNEL_OBJECT)
        .map_err(LoadError::Load)?;
    let hooks: &[(&'static str, &str)] = if exit {
        &[
            ("sys_enter_empty", "sys_enter"),
            ("sys_exit_empty", "sys_exit"),
        ]
    } else {
        &[("sys_enter_empty", "sys_enter")]
    };
    for (name, tracepoint) in hooks {
        let attach_err =
            |e: &dyn std::error::Error| LoadError::Attach(format!("{name}: {}", error_chain(e)));
        let program = ebpf.program_mut(name).ok_or(LoadError::Missing(name))?;
        let p: &mut RawTracePoint = program.try_into().map_err(|e| attach_err(&e))?;
        p.load().map_err(|e| attach_err(&e))?;
        p.attach(tracepoint).map_err(|e| attach_err(&e))?;
    }
    Ok(ebpf)
}

/// Default kernel BTF location.
pub fn default_btf_path() -> &'static Path {
    Path::new("/sys/kernel/btf/vmlinux")
}
