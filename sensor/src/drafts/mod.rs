//! Drafts generated from application profiles: what a team applies in audit mode, then enforces.
//!
//! - [`seccomp`]: the kubelet `Localhost` seccomp JSON (OCI format), enforce and audit variants.
//! - [`spo`]: the same rules as a Security Profiles Operator `SeccompProfile` object
//!   (cluster-scoped, `security-profiles-operator.x-k8s.io/v1`, SPO v1.0.0 and later).
//! - [`netpol`]: a Kubernetes `NetworkPolicy` (networking.k8s.io/v1) per workload.
//! - [`cilium`]: a `CiliumNetworkPolicy` (cilium.io/v2) per workload, with DNS names (`toFQDNs`).
//! - [`render`]: a draft in the requested format with the notes to print next to it, as the gRPC
//!   API and the offline CLI (`--profile FILE`) hand it out.
//!
//! Every generator is a pure function of the profile(s) (plus a small context such as the node
//! architecture and the AI catalogue, passed in): no I/O, no clock, no randomness, so the same
//! profile always gives the same bytes. That is what the golden files under `testdata/` pin
//! down. Input a generator cannot draft from (no profile, profiles of different workloads) is a
//! [`DraftError`], not a panic. What a draft cannot say in its own format (the profile is partial, a selector is a guess...) is returned as notes
//! ([`draft_notes`]) or carried in annotations whose keys start with [`ANNOTATION_PREFIX`].

pub mod cilium;
#[cfg(test)]
mod crd_schema;
pub mod netpol;
pub mod render;
pub mod seccomp;
pub mod spo;
pub(crate) mod traffic;
pub mod write;

use serde::Serialize;

use crate::profile::model::{ApplicationProfile, Completeness, ProfileKey, Status};
use crate::profile::persist::StateError;

/// Why a generator made no draft.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    /// A workload's policy was asked for from no profile at all.
    #[error("a NetworkPolicy draft needs at least one profile")]
    NoProfiles,
    /// A workload's policy was asked for from the profiles of several workloads (`other` is the
    /// first profile not of `first`'s workload).
    #[error("profiles of different workloads merged into one policy: {first} and {other}")]
    MixedWorkloads {
        first: Box<ProfileKey>,
        other: Box<ProfileKey>,
    },
    #[error("writing the draft as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing the draft as YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// Storing a draft in the state directory ([`write`]).
    #[error(transparent)]
    State(#[from] StateError),
}

/// Prefix of the annotations the drafts carry (profile source, notes, things to review).
pub const ANNOTATION_PREFIX: &str = "sensor.io/";

/// Human-readable caveats about a profile that every draft made from it inherits: the CLI and the
/// gRPC API print them next to the draft, the Kubernetes objects carry them in an annotation.
/// Empty for a `ready` profile with `completeness: full` and no cap hit.
pub fn draft_notes(profile: &ApplicationProfile) -> Vec<String> {
    let mut notes = Vec::new();
    if profile.status == Status::Learning {
        notes.push(format!(
            "profile is still learning (started {}, learning period {}): behaviour not seen yet is missing",
            profile.learning_started,
            humantime::format_duration(std::time::Duration::from_secs(
                profile.learning_period_seconds
            )),
        ));
    }
    if profile.completeness == Completeness::Partial {
        if profile.partial_reasons.is_empty() {
            notes.push(
                "profile is partial; some syscalls or connections may be missing".to_string(),
            );
        }
        for reason in &profile.partial_reasons {
            notes.push(format!(
                "profile is partial: {reason}; some syscalls or connections may be missing"
            ));
        }
    }
    let o = &profile.overflow;
    let capped: Vec<&str> = [
        (o.execs, "execs"),
        (o.egress, "egress"),
        (o.ingress, "ingress"),
        (o.files, "files"),
        (o.dns, "dns"),
    ]
    .into_iter()
    .filter_map(|(hit, what)| hit.then_some(what))
    .collect();
    if !capped.is_empty() {
        notes.push(format!(
            "profile hit its size caps ({}): entries beyond them were not recorded",
            capped.join(", ")
        ));
    }
    notes
}

/// `s` made into a valid DNS-1123 subdomain (what most Kubernetes object names must be):
/// lowercase alphanumerics, `-` and `.`, each dot-separated part starting and ending with an
/// alphanumeric, at most 253 characters. Other characters become `-`; an empty result becomes
/// `unnamed`.
pub fn dns1123_subdomain(s: &str) -> String {
    const MAX: usize = 253;
    let trim = |p: &str| {
        p.trim_matches(|c: char| !c.is_ascii_alphanumeric())
            .to_string()
    };
    let parts: Vec<String> = s
        .to_ascii_lowercase()
        .split('.')
        .map(|part| {
            trim(
                &part
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect::<String>(),
            )
        })
        .filter(|p| !p.is_empty())
        .collect();
    let mut out = parts.join(".");
    if out.len() > MAX {
        // ASCII only at this point, so any byte index is a char boundary.
        out.truncate(MAX);
        out = trim(&out);
    }
    if out.is_empty() {
        "unnamed".to_string()
    } else {
        out
    }
}

/// Whether `s` is a valid DNS-1123 subdomain (see [`dns1123_subdomain`]).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && p.as_bytes()[0].is_ascii_alphanumeric()
                && p.as_bytes()[p.len() - 1].is_ascii_alphanumeric()
        })
}

/// One path element that cannot escape the directory it is joined into: characters other than
/// ASCII alphanumerics, `-`, `_` and `.` become `_`, and `.`/`..`/empty become `_`.
pub(crate) fn path_segment(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out == "." || out == ".." {
        "_".to_string()
    } else {
        out
    }
}

/// Pretty JSON with a trailing newline.
pub(crate) fn json_string<T: Serialize>(value: &T) -> Result<String, DraftError> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    Ok(s)
}

/// YAML (serde_yaml_ng), ending with a newline.
pub(crate) fn yaml_string<T: Serialize>(value: &T) -> Result<String, DraftError> {
    Ok(serde_yaml_ng::to_string(value)?)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Golden files and the hand-written profiles under `testdata/`.

    use std::collections::BTreeMap;
    use std::net::IpAddr;
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::traffic::{guessed_labels, stable_labels};
    use crate::attribution::workload::WorkloadKind;
    use crate::profile::model::{
        ApplicationProfile, Completeness, DnsName, ExecEntry, Flow, Overflow, PROFILE_VERSION,
        Peer, ProfileKey, Protocol, RateStats, Resolver, Status, Syscalls, Timestamp,
    };

    pub fn testdata(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("src/drafts/testdata")
            .join(name)
    }

    /// `cases` cases; failing cases are saved next to the test's source file
    /// (`<file>.proptest-regressions`, to commit), inside this module's folder.
    pub fn proptest_config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
            )),
            ..ProptestConfig::default()
        }
    }

    /// A profile from `testdata/<name>.profile.json`.
    pub fn profile(name: &str) -> ApplicationProfile {
        let path = testdata(&format!("{name}.profile.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        crate::profile::upgrade::parse(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
            .0
    }

    /// A realistic ready, full profile (shop/checkout, one egress flow to api.stripe.com),
    /// for the render tests and the later stages' tests.
    pub fn sample_profile(key: ProfileKey) -> ApplicationProfile {
        let t = |s: &str| Timestamp::parse(&format!("2025-06-02T{s}Z")).unwrap();
        ApplicationProfile {
            version: PROFILE_VERSION,
            key,
            workload_kind: WorkloadKind::Deployment,
            status: Status::Ready,
            completeness: Completeness::Full,
            partial_reasons: vec![],
            learning_started: t("08:00:00"),
            learning_period_seconds: 3600,
            ready_at: Some(t("09:00:00")),
            updated: t("09:30:00"),
            nodes: vec!["node-1".into()],
            pods: vec!["checkout-7d9f8b6c5d-x2x4z".into()],
            labels: BTreeMap::from([("app".to_string(), "checkout".to_string())]),
            syscalls: Syscalls {
                native: ["read", "write", "openat", "close", "connect", "exit_group"]
                    .map(String::from)
                    .to_vec(),
                compat: vec![],
                runtime_setup: Default::default(),
            },
            execs: vec![ExecEntry {
                path: "/usr/local/bin/checkout".into(),
                args: vec!["--port".into(), "8080".into()],
                count: 1,
                first_seen: t("08:00:01"),
                last_seen: t("08:00:01"),
            }],
            egress: vec![Flow {
                ip: "203.0.113.7".parse().unwrap(),
                port: 443,
                protocol: Protocol::Tcp,
                dns_names: vec!["api.stripe.com".into()],
                peer: None,
                connections: 12,
                bytes_sent: 4096,
                bytes_recv: 16384,
                rate: RateStats {
                    window_seconds: 60,
                    windows: 5,
                    max_connections_per_window: 4,
                    max_bytes_sent_per_window: 2048,
                    max_bytes_recv_per_window: 8192,
                    max_bytes_sent_per_connection: 0,
                },
                first_seen: t("08:01:00"),
                last_seen: t("09:20:00"),
            }],
            ingress: vec![],
            dns: vec![DnsName {
                name: "api.stripe.com".into(),
                addresses: vec!["203.0.113.7".parse().unwrap()],
                count: 12,
            }],
            resolvers: vec![],
            files: vec![],
            packages: vec![],
            agent_programs: vec![],
            tools: vec![],
            overflow: Overflow::default(),
        }
    }

    /// `p` made partial (started before the sensor).
    pub fn partial(mut p: ApplicationProfile) -> ApplicationProfile {
        p.completeness = Completeness::Partial;
        p.partial_reasons = vec!["container started before the sensor".into()];
        p
    }

    /// Whether `cidr` (`a.b.c.d/n` or `v6/n`) contains `ip` (compared in canonical form).
    pub fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
        let (addr, len) = cidr.split_once('/').expect("cidr has a prefix length");
        let addr: IpAddr = addr.parse().expect("cidr address parses");
        let len: u32 = len.parse().expect("prefix length parses");
        match (addr, ip.to_canonical()) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                (u32::from(a) & mask) == (u32::from(b) & mask)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                (u128::from(a) & mask) == (u128::from(b) & mask)
            }
            _ => false,
        }
    }

    /// The labels a peer pod carries, as far as a policy can know: its real labels (per-pod
    /// ones included), or the guessed workload label when they are unknown (the policy then
    /// assumes the guess is right, and says so in its review annotation).
    pub fn peer_labels(peer: &Peer) -> BTreeMap<String, String> {
        if stable_labels(&peer.labels).is_empty()
            && let Some(w) = &peer.workload
        {
            let mut l = peer.labels.clone();
            l.extend(guessed_labels(w));
            return l;
        }
        peer.labels.clone()
    }

    /// A CoreDNS pod in kube-system, where traffic to the cluster DNS Service lands.
    pub fn kube_dns_pod() -> Peer {
        Peer {
            namespace: "kube-system".into(),
            pod: Some("coredns-5d78c9869d-abcde".into()),
            workload: Some("coredns".into()),
            labels: BTreeMap::from([
                ("k8s-app".into(), "kube-dns".into()),
                ("pod-template-hash".into(), "5d78c9869d".into()),
            ]),
        }
    }

    // ---- proptest strategies: random profiles over small pools, so things collide ----

    pub fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            // A small pool, so peers, resolvers and ports collide.
            prop::sample::select(vec![
                "10.0.0.5",
                "10.0.0.10",
                "10.96.0.10",
                "169.254.20.10",
                "203.0.113.7",
                "127.0.0.1",
                "127.0.0.53",
                "0.0.0.0",
                "::1",
                "::",
                "2001:db8::10",
                "fd00::5",
                "::ffff:203.0.113.7",
                "::ffff:127.0.0.1",
            ])
            .prop_map(|s| s.parse::<IpAddr>().unwrap()),
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ]
    }

    pub fn arb_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::collection::btree_map(
            prop::sample::select(vec![
                "app",
                "app.kubernetes.io/name",
                "tier",
                "pod-template-hash",
                "controller-revision-hash",
                "statefulset.kubernetes.io/pod-name",
                "job-name",
            ])
            .prop_map(String::from),
            prop::sample::select(vec!["api", "web", "qdrant", "7d9f8b6c4d", "x-0"])
                .prop_map(String::from),
            0..4,
        )
    }

    pub fn arb_peer() -> impl Strategy<Value = Option<Peer>> {
        prop::option::of(
            (
                prop::sample::select(vec!["agents", "vectors", "kube-system", ""]),
                prop::option::of(prop::sample::select(vec![
                    "qdrant-0",
                    "web-7d9f8b6c4d-x2x9k",
                ])),
                prop::option::of(prop::sample::select(vec!["qdrant", "web", "Odd_Name"])),
                arb_labels(),
            )
                .prop_map(|(ns, pod, workload, labels)| Peer {
                    namespace: ns.into(),
                    pod: pod.map(String::from),
                    workload: workload.map(String::from),
                    labels,
                }),
        )
    }

    pub fn arb_flow() -> impl Strategy<Value = Flow> {
        (
            arb_ip(),
            prop::sample::select(vec![53u16, 80, 443, 5432, 6333, 8080]),
            prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
            prop::collection::vec(
                prop::sample::select(vec!["api.openai.com", "qdrant.vectors.svc.cluster.local"])
                    .prop_map(String::from),
                0..2,
            ),
            arb_peer(),
        )
            .prop_map(|(ip, port, protocol, dns_names, peer)| Flow {
                ip,
                port,
                protocol,
                dns_names,
                peer,
                connections: 1,
                bytes_sent: 1,
                bytes_recv: 1,
                rate: RateStats::default(),
                first_seen: Timestamp::lit("2025-06-01T00:00:00Z"),
                last_seen: Timestamp::lit("2025-06-01T00:00:00Z"),
            })
    }

    pub fn arb_profile(container: &'static str) -> impl Strategy<Value = ApplicationProfile> {
        (
            arb_labels(),
            prop::collection::vec(arb_flow(), 0..12),
            prop::collection::vec(arb_flow(), 0..6),
            prop::collection::vec(
                (arb_ip(), any::<bool>())
                    .prop_map(|(ip, cluster_dns)| Resolver { ip, cluster_dns }),
                0..3,
            ),
        )
            .prop_map(move |(labels, egress, ingress, resolvers)| {
                let mut p = profile("agent");
                p.key.container = container.into();
                p.labels = labels;
                p.egress = egress;
                p.ingress = ingress;
                p.resolvers = resolvers;
                p
            })
    }

    /// One workload's profiles: the `agent` container, and half the time a `sidecar` too.
    pub fn arb_workload() -> impl Strategy<Value = Vec<ApplicationProfile>> {
        (arb_profile("agent"), arb_profile("sidecar"), any::<bool>())
            .prop_map(|(a, b, two)| if two { vec![a, b] } else { vec![a] })
    }

    /// Compares `actual` with `testdata/<file>`. With `UPDATE_GOLDEN=1` the file is rewritten
    /// instead: review the diff (`git diff src/drafts/testdata`) before committing it.
    pub fn golden(file: &str, actual: &str) {
        let path = testdata(file);
        if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
            std::fs::write(&path, actual)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "reading {}: {e} (create it with UPDATE_GOLDEN=1, then check it by hand)",
                path.display()
            )
        });
        if expected != actual {
            let first = expected
                .lines()
                .zip(actual.lines())
                .position(|(e, a)| e != a)
                .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
            panic!(
                "{} differs from the generated output (first difference at line {}).\n\
                 --- generated ---\n{actual}\n--- end ---\n\
                 If the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff.",
                path.display(),
                first + 1
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn notes_of_a_ready_full_profile_are_empty() {
        let p = testutil::profile("agent");
        assert_eq!(draft_notes(&p), Vec::<String>::new());
    }

    #[test]
    fn notes_say_partial_learning_and_caps() {
        let p = testutil::profile("partial");
        assert_eq!(
            draft_notes(&p),
            vec![
                "profile is still learning (started 2025-06-02T09:00:00Z, learning period 1day): \
                 behaviour not seen yet is missing",
                "profile is partial: container started before the sensor; some syscalls or \
                 connections may be missing",
                "profile hit its size caps (egress): entries beyond them were not recorded",
            ]
        );
    }

    #[test]
    fn dns1123_examples() {
        for (input, want) in [
            ("agent", "agent"),
            ("Agent_Worker", "agent-worker"),
            ("-a..b-", "a.b"),
            ("sensor-my.app-", "sensor-my.app"),
            ("", "unnamed"),
            ("___", "unnamed"),
        ] {
            assert_eq!(dns1123_subdomain(input), want, "{input:?}");
        }
        let long = "a-".repeat(200);
        let out = dns1123_subdomain(&long);
        assert!(out.len() <= 253 && is_dns1123_subdomain(&out), "{out}");
    }

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(path_segment(".."), "_");
        assert_eq!(path_segment("a/b"), "a_b");
        assert_eq!(path_segment("app-1.x"), "app-1.x");
    }

    proptest! {
        #![proptest_config(testutil::proptest_config(256))]

        #[test]
        fn dns1123_output_is_always_valid(s in "\\PC{0,300}") {
            let out = dns1123_subdomain(&s);
            prop_assert!(is_dns1123_subdomain(&out), "{:?} -> {:?}", s, out);
        }

        #[test]
        fn valid_names_are_kept(s in "[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?){0,3}") {
            prop_assert_eq!(dns1123_subdomain(&s), s);
        }
    }
}
