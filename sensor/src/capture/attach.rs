//! The attach manager: owns the loaded kernel object and every attachment of its programs.
//!
//! At start the loader attaches the fixed probe table through it ([`super::loader`]); while the
//! sensor runs, attachments can be added and removed one at a time (TLS uprobes come and go
//! with the container processes that map a library). Each attachment is named by an
//! [`AttachmentId`] that holds aya's link id; detaching it drops that link and nothing else.
//! A program is loaded into the kernel once, on its first attachment, and stays loaded for
//! further attachments (one uprobe program, many libraries).
//!
//! A uprobe attachment's cookie is its attachment id, and it gets a hit counter in the kernel's
//! `UPROBE_HITS` map for as long as it is attached ([`AttachManager::uprobe_hits`]); the
//! object's uprobe programs (`uprobe_hits` today, the TLS uprobes later) count their calls there.
//!
//! Every attach, detach and refusal is counted in [`AttachCounters`], which metrics reads at
//! scrape time. Dropping the manager detaches everything (aya drops the links with the object).

use std::{
    collections::BTreeMap,
    fmt,
    fs::File,
    num::NonZeroU32,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use aya::{
    Ebpf,
    maps::{HashMap, MapError},
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSockAddr, FEntry, Program, RawTracePoint,
        UProbe,
        cgroup_skb::CgroupSkbLinkId,
        cgroup_sock_addr::CgroupSockAddrLinkId,
        fentry::FEntryLinkId,
        raw_trace_point::RawTracePointLinkId,
        tp_btf::BtfTracePointLinkId,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope},
    },
};
use sensor_common::names;

use super::compat::Hook;

/// One attachment of one program, unique for the manager's lifetime (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttachmentId(u64);

impl AttachmentId {
    /// The attach cookie a uprobe attachment carries (`bpf_get_attach_cookie`), and the key of
    /// its hit counter. Never 0: ids start at 1.
    pub fn cookie(self) -> u64 {
        self.0
    }
}

impl fmt::Display for AttachmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where in a user-space object a uprobe goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UProbeLocation {
    /// A symbol of the object's symbol tables (e.g. `SSL_write`).
    Symbol(String),
    /// A file offset in the object.
    Offset(u64),
}

/// What a program is attached to.
#[derive(Debug, Clone)]
pub enum Target {
    /// A kernel hook of the probe table ([`super::compat::PROBES`]).
    Hook(Hook),
    /// A function in a user-space object (library or executable), for every process that maps
    /// it or only for one.
    UProbe {
        path: PathBuf,
        location: UProbeLocation,
        pid: Option<NonZeroU32>,
    },
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Hook(hook) => hook.describe(),
            Target::UProbe {
                path,
                location,
                pid,
            } => {
                let at = match location {
                    UProbeLocation::Symbol(s) => s.clone(),
                    UProbeLocation::Offset(o) => format!("{o:#x}"),
                };
                let scope = match pid {
                    Some(pid) => format!("pid {pid}"),
                    None => "every process".to_string(),
                };
                format!("uprobe/{}:{at} ({scope})", path.display())
            }
        }
    }
}

/// Why an attach or detach failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{text}")]
pub struct AttachError {
    /// aya's full chain, verifier log included.
    pub text: String,
    /// EPERM/EACCES: the sensor lacks a privilege, which is a deployment error, not a kernel
    /// limitation, so it is fatal even for an optional probe.
    pub permission_denied: bool,
}

impl AttachError {
    fn new(text: impl Into<String>) -> AttachError {
        AttachError {
            text: text.into(),
            permission_denied: false,
        }
    }

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

/// An error with its sources, one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Attach activity since the manager was created, shared with metrics.
#[derive(Debug, Default)]
pub struct AttachCounters {
    attached: AtomicU64,
    detached: AtomicU64,
    failed: AtomicU64,
}

/// One reading of [`AttachCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachCounts {
    /// Attachments in place now.
    pub live: u64,
    /// Attachments made (at start and since).
    pub attached: u64,
    /// Attachments removed with [`AttachManager::detach`].
    pub detached: u64,
    /// Attaches the kernel (or a wrong program type, a missing program) refused.
    pub failed: u64,
}

impl AttachCounters {
    pub fn read(&self) -> AttachCounts {
        let attached = self.attached.load(Ordering::Relaxed);
        let detached = self.detached.load(Ordering::Relaxed);
        AttachCounts {
            live: attached.saturating_sub(detached),
            attached,
            detached,
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// aya's link id, by program type.
#[derive(Debug)]
enum Link {
    RawTracepoint(RawTracePointLinkId),
    BtfTracepoint(BtfTracePointLinkId),
    FEntry(FEntryLinkId),
    CgroupSockAddr(CgroupSockAddrLinkId),
    CgroupSkb(CgroupSkbLinkId),
    UProbe(UProbeLinkId),
}

/// A live attachment.
#[derive(Debug)]
pub struct Attachment {
    pub program: String,
    pub target: String,
    link: Link,
}

/// The loaded kernel object and its live attachments.
pub struct AttachManager {
    ebpf: Ebpf,
    /// Kernel BTF, for programs typed against it (tp_btf, fentry); `None` when the object was
    /// loaded without it (the benchmark floor).
    btf: Option<aya::Btf>,
    /// The cgroup2 root the cgroup programs attach to, when there is one.
    cgroup_root: Option<File>,
    attachments: BTreeMap<AttachmentId, Attachment>,
    next_id: u64,
    counters: Arc<AttachCounters>,
}

impl AttachManager {
    /// Takes a loaded object; nothing is attached yet.
    pub fn new(ebpf: Ebpf, btf: Option<aya::Btf>, cgroup_root: Option<File>) -> AttachManager {
        AttachManager {
            ebpf,
            btf,
            cgroup_root,
            attachments: BTreeMap::new(),
            next_id: 1,
            counters: Arc::default(),
        }
    }

    /// Drops the kernel BTF once the programs typed against it are loaded: parsed, it is ~12 MiB
    /// of heap the daemon would otherwise keep for its whole life. Attaching and detaching loaded
    /// programs (and loading programs not typed against BTF, such as uprobes) still works; a
    /// tp_btf/fentry program loaded for the first time afterwards is refused ("loaded without
    /// kernel BTF").
    pub fn release_btf(&mut self) {
        self.btf = None;
    }

    /// The object, for its maps.
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// The counters, to be read at scrape time.
    pub fn counters(&self) -> Arc<AttachCounters> {
        self.counters.clone()
    }

    /// Live attachments, oldest first.
    pub fn attachments(&self) -> impl Iterator<Item = (AttachmentId, &Attachment)> {
        self.attachments.iter().map(|(id, a)| (*id, a))
    }

    /// Attaches `program` (loading it on first use) to `target`. A refusal is counted and
    /// returned with the kernel's reason; nothing else changes.
    pub fn attach(&mut self, program: &str, target: Target) -> Result<AttachmentId, AttachError> {
        // Taken for good only on success; a uprobe needs it before the link (its cookie).
        let id = AttachmentId(self.next_id);
        let uprobe = matches!(target, Target::UProbe { .. });
        let result = if uprobe {
            // The counter first, so no call after the attach returns is missed.
            self.hits_entry(id, true).and_then(|()| {
                self.attach_link(program, &target, id).inspect_err(|_| {
                    // Best effort: an entry left behind only holds a slot (ids are not reused).
                    let _ = self.hits_entry(id, false);
                })
            })
        } else {
            self.attach_link(program, &target, id)
        };
        match result {
            Ok(link) => {
                self.next_id += 1;
                self.attachments.insert(
                    id,
                    Attachment {
                        program: program.to_string(),
                        target: target.describe(),
                        link,
                    },
                );
                self.counters.attached.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(program, target = %target.describe(), %id, "attached");
                Ok(id)
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Attaches a uprobe program to `location` in the object at `path` (a library or an
    /// executable), for every process mapping it or only for `pid`.
    pub fn attach_uprobe(
        &mut self,
        program: &str,
        path: &Path,
        location: UProbeLocation,
        pid: Option<NonZeroU32>,
    ) -> Result<AttachmentId, AttachError> {
        self.attach(
            program,
            Target::UProbe {
                path: path.to_path_buf(),
                location,
                pid,
            },
        )
    }

    /// Calls counted by a live uprobe attachment since it was attached; `None` for an id that is
    /// not a live uprobe attachment (detaching removes the counter with the link).
    pub fn uprobe_hits(&self, id: AttachmentId) -> Option<u64> {
        if !matches!(self.attachments.get(&id)?.link, Link::UProbe(_)) {
            return None;
        }
        let map = self.ebpf.map(names::MAP_UPROBE_HITS)?;
        let hits = HashMap::<_, u64, u64>::try_from(map).ok()?;
        hits.get(&id.cookie(), 0).ok()
    }

    /// Creates (`true`) or removes a uprobe attachment's hit counter.
    fn hits_entry(&mut self, id: AttachmentId, create: bool) -> Result<(), AttachError> {
        let map = self
            .ebpf
            .map_mut(names::MAP_UPROBE_HITS)
            .ok_or_else(|| AttachError::new("map UPROBE_HITS missing from the kernel object"))?;
        let mut hits =
            HashMap::<_, u64, u64>::try_from(map).map_err(|e| AttachError::from_error(&e))?;
        let key = id.cookie();
        let result = if create {
            hits.insert(key, 0, 0)
        } else {
            match hits.remove(&key) {
                Err(MapError::KeyNotFound) => Ok(()),
                other => other,
            }
        };
        result.map_err(|e| {
            let mut e = AttachError::from_error(&e);
            if create {
                e.text = format!(
                    "creating the uprobe hit counter (at most {} live uprobe attachments): {}",
                    sensor_common::limits::MAX_UPROBE_ATTACHMENTS,
                    e.text
                );
            }
            e
        })
    }

    /// Removes one attachment: its link is detached, the program stays loaded. A uprobe's hit
    /// counter goes with it.
    pub fn detach(&mut self, id: AttachmentId) -> Result<(), AttachError> {
        let attachment = self
            .attachments
            .remove(&id)
            .ok_or_else(|| AttachError::new(format!("no attachment {id}")))?;
        let program = self
            .ebpf
            .program_mut(&attachment.program)
            .ok_or_else(|| AttachError::new("program missing from the kernel object"))?;
        let err = |e: &(dyn std::error::Error + 'static)| AttachError::from_error(e);
        match attachment.link {
            Link::RawTracepoint(link) => typed::<RawTracePoint>(program)?
                .detach(link)
                .map_err(|e| err(&e))?,
            Link::BtfTracepoint(link) => typed::<BtfTracePoint>(program)?
                .detach(link)
                .map_err(|e| err(&e))?,
            Link::FEntry(link) => typed::<FEntry>(program)?
                .detach(link)
                .map_err(|e| err(&e))?,
            Link::CgroupSockAddr(link) => typed::<CgroupSockAddr>(program)?
                .detach(link)
                .map_err(|e| err(&e))?,
            Link::CgroupSkb(link) => typed::<CgroupSkb>(program)?
                .detach(link)
                .map_err(|e| err(&e))?,
            Link::UProbe(link) => {
                typed::<UProbe>(program)?
                    .detach(link)
                    .map_err(|e| err(&e))?;
                // Only once the link is gone: until then its calls still count.
                if let Err(e) = self.hits_entry(id, false) {
                    tracing::warn!(%id, error = %e, "removing a uprobe hit counter");
                }
            }
        }
        self.counters.detached.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(program = attachment.program, target = attachment.target, %id, "detached");
        Ok(())
    }

    fn attach_link(
        &mut self,
        program: &str,
        target: &Target,
        id: AttachmentId,
    ) -> Result<Link, AttachError> {
        let program = self
            .ebpf
            .program_mut(program)
            .ok_or_else(|| AttachError::new("program missing from the kernel object"))?;
        let loaded = program.fd().is_ok();
        let err = |e: &(dyn std::error::Error + 'static)| AttachError::from_error(e);
        let btf = || {
            self.btf
                .as_ref()
                .ok_or_else(|| AttachError::new("loaded without kernel BTF"))
        };
        let cgroup_root = || {
            self.cgroup_root
                .as_ref()
                .ok_or_else(|| AttachError::new("loaded without a cgroup2 root"))
        };
        Ok(match target {
            Target::Hook(Hook::RawTracepoint(tp)) => {
                let p = typed::<RawTracePoint>(program)?;
                if !loaded {
                    p.load().map_err(|e| err(&e))?;
                }
                Link::RawTracepoint(p.attach(tp).map_err(|e| err(&e))?)
            }
            Target::Hook(Hook::BtfTracepoint(tp)) => {
                let p = typed::<BtfTracePoint>(program)?;
                if !loaded {
                    p.load(tp, btf()?).map_err(|e| err(&e))?;
                }
                Link::BtfTracepoint(p.attach().map_err(|e| err(&e))?)
            }
            Target::Hook(Hook::FEntry(function)) => {
                let p = typed::<FEntry>(program)?;
                if !loaded {
                    p.load(function, btf()?).map_err(|e| err(&e))?;
                }
                Link::FEntry(p.attach().map_err(|e| err(&e))?)
            }
            Target::Hook(Hook::CgroupSockAddr) => {
                let p = typed::<CgroupSockAddr>(program)?;
                if !loaded {
                    p.load().map_err(|e| err(&e))?;
                }
                // A bpf_link never replaces other programs, and the kernel refuses attach
                // flags on cgroup links: Single (no flags) is the right mode here.
                Link::CgroupSockAddr(
                    p.attach(cgroup_root()?, CgroupAttachMode::Single)
                        .map_err(|e| err(&e))?,
                )
            }
            Target::Hook(Hook::CgroupSkb(kind)) => {
                let p = typed::<CgroupSkb>(program)?;
                if !loaded {
                    p.load().map_err(|e| err(&e))?;
                }
                Link::CgroupSkb(
                    p.attach(cgroup_root()?, *kind, CgroupAttachMode::Single)
                        .map_err(|e| err(&e))?,
                )
            }
            Target::UProbe {
                path,
                location,
                pid,
            } => {
                let p = typed::<UProbe>(program)?;
                if !loaded {
                    p.load().map_err(|e| err(&e))?;
                }
                let location = match location {
                    UProbeLocation::Symbol(s) => UProbeAttachLocation::Symbol(s),
                    UProbeLocation::Offset(o) => UProbeAttachLocation::AbsoluteOffset(*o),
                };
                let scope = match pid {
                    Some(pid) => UProbeScope::OneProcess(*pid),
                    None => UProbeScope::AllProcesses,
                };
                let point = UProbeAttachPoint {
                    location,
                    cookie: Some(id.cookie()),
                };
                Link::UProbe(p.attach(point, path, scope).map_err(|e| err(&e))?)
            }
        })
    }
}

/// The program as its concrete type, or an error naming the mismatch.
fn typed<'a, T>(program: &'a mut Program) -> Result<&'a mut T, AttachError>
where
    &'a mut T: TryFrom<&'a mut Program, Error = aya::programs::ProgramError>,
{
    program
        .try_into()
        .map_err(|e: aya::programs::ProgramError| AttachError::from_error(&e))
}
