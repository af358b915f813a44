//! A node's profile as its [`ProfilePieceSpec`]: names, labels, the size cap and its recorded
//! collapse, and the fingerprints that decide when a piece is worth writing. Pure functions.

use std::collections::BTreeMap;

use super::crd::{ProfilePieceSpec, Summary};
use crate::{
    drafts::{dns1123_subdomain, seccomp::NodeArch},
    profile::{
        merge::canonical,
        model::{ApplicationProfile, ProfileKey},
    },
    text::{fit_with_hash, fnv1a, with_hash},
};

/// A piece's serialised spec stays under this: the API server refuses bodies over 3 MiB and
/// etcd values over 1.5 MiB; a quarter MiB leaves room for metadata, managed fields and
/// many pieces per list page.
pub const MAX_PIECE_BYTES: usize = 256 * 1024;

/// Labels every piece and merged profile carries, for `kubectl get -l`.
pub const LABEL_WORKLOAD: &str = "sensor.io/workload";
pub const LABEL_CONTAINER: &str = "sensor.io/container";
pub const LABEL_NODE: &str = "sensor.io/node";

const MAX_NAME: usize = 253;
const MAX_LABEL_VALUE: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PieceError {
    #[error(
        "the profile of {key} does not fit in {max} bytes even with every list cut to one entry"
    )]
    TooLarge { key: ProfileKey, max: usize },
}

/// The piece of `key` from `node`: `<workload>.<container>.<node>`. Container names have no
/// dots, so with a dot-free workload name the parts are unambiguous; a workload name with dots
/// (or a name too long) gets a hash of the whole instead.
pub fn piece_name(key: &ProfileKey, node: &str) -> String {
    let name = format!(
        "{}.{}.{}",
        dns1123_subdomain(&key.workload),
        dns1123_subdomain(&key.container),
        dns1123_subdomain(node)
    );
    if key.workload.contains('.') {
        return with_hash(&name, MAX_NAME);
    }
    fit_with_hash(&name, MAX_NAME)
}

/// The merged profile of `key`: `<workload>.<container>` (unambiguous: the last dot splits).
pub fn merged_name(key: &ProfileKey) -> String {
    fit_with_hash(
        &format!(
            "{}.{}",
            dns1123_subdomain(&key.workload),
            dns1123_subdomain(&key.container)
        ),
        MAX_NAME,
    )
}

/// The labels of a piece (`node` given) or of a merged profile.
pub fn labels(key: &ProfileKey, node: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([
        (LABEL_WORKLOAD.to_string(), label_value(&key.workload)),
        (LABEL_CONTAINER.to_string(), label_value(&key.container)),
    ]);
    if let Some(node) = node {
        out.insert(LABEL_NODE.to_string(), label_value(node));
    }
    out
}

/// A valid label value: at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn label_value(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = clean.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    fit_with_hash(trimmed, MAX_LABEL_VALUE)
}

/// The piece `node` (of architecture `arch`) writes for `profile`: the profile in canonical
/// form (sets sorted and deduplicated, as the resource's list types require), cut to
/// `max_bytes` by halving its largest list until it fits; each cut is named in `collapsed`
/// and flagged in the profile's `overflow` like a builder cap.
pub fn piece_spec(
    profile: &ApplicationProfile,
    node: &str,
    arch: NodeArch,
    max_bytes: usize,
) -> Result<ProfilePieceSpec, PieceError> {
    let mut profile = canonical(profile);
    let mut collapsed: BTreeMap<Section, (usize, usize)> = BTreeMap::new();
    loop {
        let spec = spec_of(&profile, node, arch, &collapsed);
        let size = serde_json::to_vec(&spec)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size <= max_bytes {
            return Ok(spec);
        }
        let largest = Section::ALL
            .iter()
            .copied()
            .filter(|s| s.len(&profile) > 1)
            .max_by_key(|s| s.bytes(&profile));
        let Some(section) = largest else {
            return Err(PieceError::TooLarge {
                key: profile.key.clone(),
                max: max_bytes,
            });
        };
        let before = section.len(&profile);
        let keep = before / 2;
        section.cut(&mut profile, keep);
        collapsed
            .entry(section)
            .and_modify(|(kept, _)| *kept = keep)
            .or_insert((keep, before));
    }
}

fn spec_of(
    profile: &ApplicationProfile,
    node: &str,
    arch: NodeArch,
    collapsed: &BTreeMap<Section, (usize, usize)>,
) -> ProfilePieceSpec {
    let syscalls = profile.syscalls.native.len() + profile.syscalls.compat.len();
    ProfilePieceSpec {
        node: node.to_string(),
        architecture: arch.machine().to_string(),
        summary: Summary::of(profile, 1, syscalls),
        collapsed: collapsed
            .iter()
            .map(|(s, (kept, of))| format!("{}: kept {kept} of {of}", s.name()))
            .collect(),
        profile: profile.clone(),
    }
}

/// The lists a piece can be cut in (the bounded ones of the profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Execs,
    Tools,
    Egress,
    Ingress,
    Dns,
    Files,
    Packages,
    Pods,
}

impl Section {
    const ALL: [Section; 8] = [
        Section::Execs,
        Section::Tools,
        Section::Egress,
        Section::Ingress,
        Section::Dns,
        Section::Files,
        Section::Packages,
        Section::Pods,
    ];

    fn name(self) -> &'static str {
        match self {
            Section::Execs => "execs",
            Section::Tools => "tools",
            Section::Egress => "egress",
            Section::Ingress => "ingress",
            Section::Dns => "dns",
            Section::Files => "files",
            Section::Packages => "packages",
            Section::Pods => "pods",
        }
    }

    fn len(self, p: &ApplicationProfile) -> usize {
        match self {
            Section::Execs => p.execs.len(),
            Section::Tools => p.tools.len(),
            Section::Egress => p.egress.len(),
            Section::Ingress => p.ingress.len(),
            Section::Dns => p.dns.len(),
            Section::Files => p.files.len(),
            Section::Packages => p.packages.len(),
            Section::Pods => p.pods.len(),
        }
    }

    fn bytes(self, p: &ApplicationProfile) -> usize {
        let size = |v: Result<Vec<u8>, _>| v.map(|v| v.len()).unwrap_or(0);
        match self {
            Section::Execs => size(serde_json::to_vec(&p.execs)),
            Section::Tools => size(serde_json::to_vec(&p.tools)),
            Section::Egress => size(serde_json::to_vec(&p.egress)),
            Section::Ingress => size(serde_json::to_vec(&p.ingress)),
            Section::Dns => size(serde_json::to_vec(&p.dns)),
            Section::Files => size(serde_json::to_vec(&p.files)),
            Section::Packages => size(serde_json::to_vec(&p.packages)),
            Section::Pods => size(serde_json::to_vec(&p.pods)),
        }
    }

    /// Keeps the first `keep` entries (identity order: the canonical form's, as merge's caps)
    /// and flags the overflow where the profile has a flag for it.
    fn cut(self, p: &mut ApplicationProfile, keep: usize) {
        match self {
            Section::Execs => {
                p.execs.truncate(keep);
                p.overflow.execs = true;
            }
            Section::Tools => {
                p.tools.truncate(keep);
                p.overflow.tools = true;
            }
            Section::Egress => {
                p.egress.truncate(keep);
                p.overflow.egress = true;
            }
            Section::Ingress => {
                p.ingress.truncate(keep);
                p.overflow.ingress = true;
            }
            Section::Dns => {
                p.dns.truncate(keep);
                p.overflow.dns = true;
            }
            Section::Files => {
                p.files.truncate(keep);
                p.overflow.files = true;
            }
            Section::Packages => p.packages.truncate(keep),
            Section::Pods => p.pods.truncate(keep),
        }
    }
}

/// What a piece says, in two grains: `shape` changes when the baseline gains or loses
/// something (a syscall, an exec, a peer, a name, a file, a state), `content` with any counter
/// too. Timestamps that move on every snapshot (`updated`) are left out of both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub shape: u64,
    pub content: u64,
}

impl Fingerprint {
    pub fn of(spec: &ProfilePieceSpec) -> Fingerprint {
        let p = &spec.profile;
        let mut shape = String::new();
        let mut push = |s: &str| {
            shape.push_str(s);
            shape.push('\n');
        };
        push(&format!("{:?} {:?}", p.status, p.completeness));
        push(&spec.architecture);
        push(&spec.collapsed.join(","));
        push(&p.partial_reasons.join(","));
        push(&p.syscalls.native.join(","));
        push(&p.syscalls.compat.join(","));
        push(&p.pods.join(","));
        for e in &p.execs {
            push(&format!("x {} {}", e.path, e.args.join(" ")));
        }
        for t in &p.tools {
            push(&format!("t {} {}", t.path, t.args.join(" ")));
        }
        for f in p.egress.iter().chain(&p.ingress) {
            push(&format!(
                "f {} {} {:?} {}",
                f.ip,
                f.port,
                f.protocol,
                f.dns_names.join(",")
            ));
        }
        for d in &p.dns {
            push(&format!("d {}", d.name));
        }
        for f in &p.files {
            push(&format!("o {}", f.path));
        }
        for k in &p.packages {
            push(&format!("k {} {}", k.ecosystem, k.name));
        }
        let mut timeless = spec.clone();
        timeless.profile.updated = p.learning_started;
        let content = serde_json::to_vec(&timeless)
            .map(|v| fnv1a(&v))
            .unwrap_or_default();
        Fingerprint {
            shape: fnv1a(shape.as_bytes()),
            content,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        attribution::workload::WorkloadKind,
        profile::model::{ExecEntry, Timestamp},
    };

    fn key(workload: &str) -> ProfileKey {
        ProfileKey {
            namespace: "shop".into(),
            workload: workload.into(),
            container: "app".into(),
        }
    }

    fn profile(execs: usize, args: usize) -> ApplicationProfile {
        let mut p = ApplicationProfile::new(
            key("web"),
            WorkloadKind::Deployment,
            60,
            Timestamp::UNIX_EPOCH,
        );
        p.syscalls.native = vec!["read".into(), "write".into()];
        p.execs = (0..execs)
            .map(|i| ExecEntry {
                path: format!("/bin/tool-{i:04}"),
                args: (0..args).map(|a| format!("{a:0>200}")).collect(),
                count: 1,
                first_seen: Timestamp::UNIX_EPOCH,
                last_seen: Timestamp::UNIX_EPOCH,
            })
            .collect();
        p
    }

    #[test]
    fn names_are_unambiguous_and_valid() {
        assert_eq!(
            piece_name(&key("web"), "ip-10-0-1-2.ec2.internal"),
            "web.app.ip-10-0-1-2.ec2.internal"
        );
        assert_eq!(merged_name(&key("web")), "web.app");
        // A dotted workload would make `a.b` + node `c.d` read like `a` + node `b.c.d`.
        let dotted = piece_name(&key("a.b"), "c.d");
        assert_ne!(dotted, piece_name(&key("a"), "b.c.d"));
        assert!(dotted.len() <= MAX_NAME);
        let long = piece_name(&key(&"w".repeat(250)), "node");
        assert!(long.len() <= MAX_NAME, "{long}");
        assert_ne!(long, piece_name(&key(&"w".repeat(251)), "node"));
        let labels = labels(&key(&"w".repeat(100)), Some("n"));
        assert!(labels.values().all(|v| v.len() <= MAX_LABEL_VALUE));
    }

    #[test]
    fn a_small_profile_is_kept_whole() {
        let p = profile(3, 2);
        let spec = piece_spec(&p, "node-a", NodeArch::X86_64, MAX_PIECE_BYTES).unwrap();
        assert!(spec.collapsed.is_empty());
        assert_eq!(spec.profile, canonical(&p));
        assert_eq!(spec.summary.execs, 3);
        assert_eq!(spec.summary.syscalls, 2);
        assert_eq!(spec.architecture, "x86_64");
    }

    #[test]
    fn an_oversized_profile_is_cut_and_says_so() {
        // 256 execs x 32 args x 200 bytes: ~1.7 MB, the builder's caps allow it.
        let p = profile(256, 32);
        assert!(serde_json::to_vec(&p).unwrap().len() > 1_000_000);
        let spec = piece_spec(&p, "node-a", NodeArch::X86_64, MAX_PIECE_BYTES).unwrap();
        let size = serde_json::to_vec(&spec).unwrap().len();
        assert!(size <= MAX_PIECE_BYTES, "{size}");
        assert_eq!(spec.collapsed, vec!["execs: kept 32 of 256".to_string()]);
        assert!(spec.profile.overflow.execs);
        assert_eq!(spec.profile.execs.len(), 32);
        // The entries kept are the first in identity order (as a merge's caps keep them).
        assert_eq!(spec.profile.execs[0].path, "/bin/tool-0000");
    }

    #[test]
    fn a_profile_that_cannot_fit_is_an_error_not_a_loop() {
        let p = profile(1, 32);
        assert_eq!(
            piece_spec(&p, "n", NodeArch::X86_64, 1000),
            Err(PieceError::TooLarge {
                key: key("web"),
                max: 1000
            })
        );
    }

    #[test]
    fn fingerprints_tell_new_behaviour_from_new_counts() {
        let p = profile(2, 1);
        let a = Fingerprint::of(&piece_spec(&p, "n", NodeArch::X86_64, MAX_PIECE_BYTES).unwrap());
        let mut busier = p.clone();
        busier.execs[0].count += 5;
        busier.updated = Timestamp::lit("2026-12-08T00:00:00Z");
        let b =
            Fingerprint::of(&piece_spec(&busier, "n", NodeArch::X86_64, MAX_PIECE_BYTES).unwrap());
        assert_eq!(a.shape, b.shape);
        assert_ne!(a.content, b.content);
        let mut only_later = p.clone();
        only_later.updated = Timestamp::lit("2026-12-08T00:00:00Z");
        let c = Fingerprint::of(
            &piece_spec(&only_later, "n", NodeArch::X86_64, MAX_PIECE_BYTES).unwrap(),
        );
        assert_eq!(a, c, "a newer snapshot time alone is not a change");
        let mut new_syscall = p;
        new_syscall.syscalls.native.push("openat".into());
        let d = Fingerprint::of(
            &piece_spec(&new_syscall, "n", NodeArch::X86_64, MAX_PIECE_BYTES).unwrap(),
        );
        assert_ne!(a.shape, d.shape);
    }
}
