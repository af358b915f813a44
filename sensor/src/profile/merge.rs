//! Merging profiles: the pieces of one container's profile that different nodes (or successive
//! snapshots of one node) learned, into one baseline.
//!
//! [`merge`] is commutative, associative and idempotent: pieces can be merged in any order and
//! any grouping, and a piece merged twice changes nothing. Equalities are exact on the result's
//! canonical form ([`canonical`]): every set sorted and deduplicated, entries in identity
//! order, duplicates of one identity combined, caps applied. `merge(a, a) == canonical(a)`,
//! and a merge's result is canonical.
//!
//! # Field by field
//!
//! Counters are cumulative per piece, and one piece can reach a merge twice (a node's newer
//! snapshot after its older one, the same node through two paths). A sum would count it twice
//! and is not idempotent; the merge keeps the **maximum** instead: the busiest piece's count, a
//! lower bound of the cluster's total, exact for a single node's snapshots. The same holds for
//! every counter below.
//!
//! | Field | Merge |
//! |---|---|
//! | `key` | must be equal, else [`MergeError::Keys`] |
//! | `version` | both the current [`PROFILE_VERSION`] (older ones are upgraded when read, `profile::upgrade`), else [`MergeError::Versions`] |
//! | `workloadKind` | the most precise: kinds only the Kubernetes API names (`replicaset`, `other`, `daemonset`, `job`) over kinds read from pod names (`deployment`, `statefulset`, `cronjob`) over the ambiguous guesses (`pod`, `daemonset-or-job`); a fixed order among each group |
//! | `status` | the least advanced: `ready` only when every piece is, since a learning piece still adds to the union (recomputing it from the merged learning window would call a baseline frozen while a node still grows it) |
//! | `readyAt` | when every piece is ready, the latest `readyAt` (when the last piece froze); otherwise none |
//! | `learningStarted` / `updated` | the earliest / the latest |
//! | `learningPeriodSeconds` | the longest |
//! | `completeness` | `partial` when any piece is |
//! | `partialReasons`, `nodes` | set union |
//! | `pods`, `agentPrograms` | set union, bounded by `caps::PODS` / `caps::AGENT_PROGRAMS` (the builder drops what is beyond them without a flag; so does the merge) |
//! | `labels` | the pairs every piece has (the builder keeps the labels all pods share); a piece without labels (API unknown) adds no constraint; pieces that share no label at all are not replicas of one workload: [`MergeError::Labels`] |
//! | `syscalls` | set union of `native`, `compat`, and the runtime setup's `native` and `compat`; `inferred` when any piece's setup was inferred |
//! | `execs`, `tools` | by identity (path, normalised args, exactly: the builder's wildcard matching depends on which entry came first, which no order-free merge can reproduce); `count` / `invocations` / `failures`: maximum; `firstSeen`: earliest, `lastSeen`: latest |
//! | `egress`, `ingress` | by identity (address, port, protocol); `dnsNames`: union bounded by `caps::NAMES_PER_PEER`; `peer`: any known one over none, the greatest (namespace, pod, workload, labels) when pieces disagree (an address that changed hands); counters and every rate statistic (the busiest window): maximum; `windowSeconds`: the longest; times as execs |
//! | `dns` | by name; `addresses`: union bounded by `caps::NAMES_PER_PEER`; `count`: maximum |
//! | `resolvers` | by address; `clusterDns` when any piece says so |
//! | `files` | by path; `pattern`: the greatest (one path has one pattern in practice); `count`: maximum; times as execs |
//! | `packages` | by (ecosystem, name); `version`: the newest (numeric parts compared as numbers, `version_order`; a known version over none); `kind`, `path`: the greatest; `firstSeen`: earliest |
//! | `overflow` | a flag set on either side, or set by the merge when the union of a capped list exceeds its cap |
//!
//! # Caps
//!
//! The merge bounds every list the builder bounds, with the same caps, and flags the same
//! `overflow` field the builder flags (draft notes report it, `drafts::draft_notes`). The builder
//! keeps the entries that came first; a merge has no "first", and the entries kept are the first
//! ones in identity order instead. Keeping the earliest-seen ones would not be associative: an
//! entry's first sight moves earlier as more pieces are merged, so an entry dropped from a
//! partial merge could belong to the full one. Identity order does not move, so which entries a
//! merge keeps does not depend on how the pieces were grouped.

use std::{
    cmp::Ordering,
    collections::{BTreeMap, BTreeSet, btree_map::Entry},
    net::IpAddr,
};

use super::model::{
    ApplicationProfile, Completeness, DnsName, ExecEntry, FileEntry, Flow, Overflow,
    PROFILE_VERSION, PackageEntry, Peer, ProfileKey, Protocol, RateStats, Resolver, RuntimeSetup,
    Status, Syscalls, ToolEntry, caps,
};
use crate::attribution::workload::WorkloadKind;

/// Why two profiles cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("profiles of different containers: {a} and {b}")]
    Keys {
        a: Box<ProfileKey>,
        b: Box<ProfileKey>,
    },
    #[error(
        "profile format versions {a} and {b}: merging reads version {PROFILE_VERSION} (older files are upgraded when read)"
    )]
    Versions { a: u32, b: u32 },
    #[error("the pieces of {key} share no pod label: they are not replicas of one workload")]
    Labels { key: ProfileKey },
}

/// One baseline from two pieces of the same container's profile (see the module
/// documentation for what each field becomes).
pub fn merge(
    a: &ApplicationProfile,
    b: &ApplicationProfile,
) -> Result<ApplicationProfile, MergeError> {
    merge_with(a, b, &Caps::MODEL)
}

/// The canonical form of a profile: what merging it with itself gives. Sets sorted and
/// deduplicated, entries in identity order with duplicates combined, caps applied.
pub fn canonical(p: &ApplicationProfile) -> ApplicationProfile {
    canonical_with(p, &Caps::MODEL)
}

fn canonical_with(p: &ApplicationProfile, caps: &Caps) -> ApplicationProfile {
    combine(&[p], caps)
}

/// The bounds the merge applies: the builder's (`model::caps`), smaller in tests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub execs: usize,
    pub egress: usize,
    pub ingress: usize,
    pub files: usize,
    pub dns_names: usize,
    pub names_per_peer: usize,
    pub pods: usize,
    pub agent_programs: usize,
    pub tools: usize,
}

impl Caps {
    pub const MODEL: Caps = Caps {
        execs: caps::EXECS,
        egress: caps::EGRESS,
        ingress: caps::INGRESS,
        files: caps::FILES,
        dns_names: caps::DNS_NAMES,
        names_per_peer: caps::NAMES_PER_PEER,
        pods: caps::PODS,
        agent_programs: caps::AGENT_PROGRAMS,
        tools: caps::TOOLS,
    };
}

pub(crate) fn merge_with(
    a: &ApplicationProfile,
    b: &ApplicationProfile,
    caps: &Caps,
) -> Result<ApplicationProfile, MergeError> {
    if a.key != b.key {
        return Err(MergeError::Keys {
            a: Box::new(a.key.clone()),
            b: Box::new(b.key.clone()),
        });
    }
    if a.version != PROFILE_VERSION || b.version != PROFILE_VERSION {
        return Err(MergeError::Versions {
            a: a.version,
            b: b.version,
        });
    }
    let shared = shared_labels(&a.labels, &b.labels)
        .ok_or_else(|| MergeError::Labels { key: a.key.clone() })?;
    let mut merged = combine(&[a, b], caps);
    merged.labels = shared;
    Ok(merged)
}

/// The pairs both have; an empty side (labels unknown) constrains nothing. `None` when two
/// known sets share nothing. Associative: a merge fails exactly when all the pieces' known
/// labels together share nothing, however they are grouped.
fn shared_labels(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) -> Option<BTreeMap<String, String>> {
    if a.is_empty() {
        return Some(b.clone());
    }
    if b.is_empty() {
        return Some(a.clone());
    }
    let shared: BTreeMap<String, String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) == Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!shared.is_empty()).then_some(shared)
}

/// Everything but the checks: the pieces' union, canonical. Labels are those of the first
/// piece (the caller sets them).
fn combine(pieces: &[&ApplicationProfile], caps: &Caps) -> ApplicationProfile {
    let first = pieces[0];
    let all = || pieces.iter().copied();
    let mut overflow = all().fold(Overflow::default(), |o, p| or_overflow(o, p.overflow));

    let status = if all().all(|p| p.status == Status::Ready) {
        Status::Ready
    } else {
        Status::Learning
    };
    let ready_at = match status {
        Status::Ready => all().filter_map(|p| p.ready_at).max(),
        Status::Learning => None,
    };
    let completeness = if all().any(|p| p.completeness == Completeness::Partial) {
        Completeness::Partial
    } else {
        Completeness::Full
    };

    let (execs, over) = union_by(
        all().flat_map(|p| &p.execs),
        |e| (e.path.clone(), e.args.clone()),
        combine_exec,
        |_| {},
        caps.execs,
    );
    overflow.execs |= over;
    let (egress, over) = union_by(
        all().flat_map(|p| &p.egress),
        flow_id,
        combine_flow,
        |f| bound_sorted(&mut f.dns_names, caps.names_per_peer),
        caps.egress,
    );
    overflow.egress |= over;
    let (ingress, over) = union_by(
        all().flat_map(|p| &p.ingress),
        flow_id,
        combine_flow,
        |f| bound_sorted(&mut f.dns_names, caps.names_per_peer),
        caps.ingress,
    );
    overflow.ingress |= over;
    let (dns, over) = union_by(
        all().flat_map(|p| &p.dns),
        |d| d.name.clone(),
        combine_dns,
        |d| bound_sorted(&mut d.addresses, caps.names_per_peer),
        caps.dns_names,
    );
    overflow.dns |= over;
    let (files, over) = union_by(
        all().flat_map(|p| &p.files),
        |f| f.path.clone(),
        combine_file,
        |_| {},
        caps.files,
    );
    overflow.files |= over;
    let (tools, over) = union_by(
        all().flat_map(|p| &p.tools),
        |t| (t.path.clone(), t.args.clone()),
        combine_tool,
        |_| {},
        caps.tools,
    );
    overflow.tools |= over;
    // Not bounded by the builder (the resolvers a container uses; the catalogue's packages).
    let (resolvers, _) = union_by(
        all().flat_map(|p| &p.resolvers),
        |r| r.ip,
        |into: &mut Resolver, r| into.cluster_dns |= r.cluster_dns,
        |_| {},
        usize::MAX,
    );
    let (packages, _) = union_by(
        all().flat_map(|p| &p.packages),
        |p| (p.ecosystem.clone(), p.name.clone()),
        combine_package,
        |_| {},
        usize::MAX,
    );

    ApplicationProfile {
        version: first.version,
        key: first.key.clone(),
        workload_kind: all()
            .map(|p| p.workload_kind)
            .max_by_key(|k| kind_precision(*k))
            .unwrap_or(first.workload_kind),
        status,
        completeness,
        partial_reasons: strings(all().flat_map(|p| &p.partial_reasons), usize::MAX),
        learning_started: all()
            .map(|p| p.learning_started)
            .min()
            .unwrap_or(first.learning_started),
        learning_period_seconds: all()
            .map(|p| p.learning_period_seconds)
            .max()
            .unwrap_or_default(),
        ready_at,
        updated: all().map(|p| p.updated).max().unwrap_or(first.updated),
        nodes: strings(all().flat_map(|p| &p.nodes), usize::MAX),
        pods: strings(all().flat_map(|p| &p.pods), caps.pods),
        labels: first.labels.clone(),
        syscalls: Syscalls {
            native: strings(all().flat_map(|p| &p.syscalls.native), usize::MAX),
            compat: strings(all().flat_map(|p| &p.syscalls.compat), usize::MAX),
            runtime_setup: RuntimeSetup {
                native: strings(
                    all().flat_map(|p| &p.syscalls.runtime_setup.native),
                    usize::MAX,
                ),
                compat: strings(
                    all().flat_map(|p| &p.syscalls.runtime_setup.compat),
                    usize::MAX,
                ),
                inferred: all().any(|p| p.syscalls.runtime_setup.inferred),
            },
        },
        execs,
        egress,
        ingress,
        dns,
        resolvers,
        files,
        packages,
        agent_programs: strings(all().flat_map(|p| &p.agent_programs), caps.agent_programs),
        tools,
        overflow,
    }
}

fn or_overflow(a: Overflow, b: Overflow) -> Overflow {
    Overflow {
        execs: a.execs || b.execs,
        egress: a.egress || b.egress,
        ingress: a.ingress || b.ingress,
        files: a.files || b.files,
        dns: a.dns || b.dns,
        tools: a.tools || b.tools,
    }
}

/// Sorted, deduplicated, the first `cap` kept.
fn strings<'a>(items: impl Iterator<Item = &'a String>, cap: usize) -> Vec<String> {
    items
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(cap)
        .cloned()
        .collect()
}

/// Sorts and deduplicates `v` in place and keeps its first `cap` elements.
fn bound_sorted<T: Ord>(v: &mut Vec<T>, cap: usize) {
    v.sort_unstable();
    v.dedup();
    v.truncate(cap);
}

/// Entries by identity: equal identities combined (`combine` must be commutative,
/// associative and idempotent), each entry finished by `finish` (its own bounded sets), in
/// identity order, the first `cap` kept. Also whether entries were dropped.
fn union_by<'a, T: Clone + 'a, K: Ord>(
    entries: impl Iterator<Item = &'a T>,
    key: impl Fn(&T) -> K,
    combine: impl Fn(&mut T, &T),
    finish: impl Fn(&mut T),
    cap: usize,
) -> (Vec<T>, bool) {
    let mut by_key: BTreeMap<K, T> = BTreeMap::new();
    for e in entries {
        match by_key.entry(key(e)) {
            Entry::Vacant(v) => {
                v.insert(e.clone());
            }
            Entry::Occupied(mut o) => combine(o.get_mut(), e),
        }
    }
    let dropped = by_key.len() > cap;
    let kept = by_key
        .into_values()
        .take(cap)
        .map(|mut e| {
            finish(&mut e);
            e
        })
        .collect();
    (kept, dropped)
}

fn combine_exec(into: &mut ExecEntry, e: &ExecEntry) {
    into.count = into.count.max(e.count);
    into.first_seen = into.first_seen.min(e.first_seen);
    into.last_seen = into.last_seen.max(e.last_seen);
}

fn combine_tool(into: &mut ToolEntry, t: &ToolEntry) {
    into.invocations = into.invocations.max(t.invocations);
    into.failures = into.failures.max(t.failures);
    into.first_seen = into.first_seen.min(t.first_seen);
    into.last_seen = into.last_seen.max(t.last_seen);
}

fn flow_id(f: &Flow) -> (IpAddr, u16, Protocol) {
    (f.ip, f.port, f.protocol)
}

fn combine_flow(into: &mut Flow, f: &Flow) {
    // Sorted, deduplicated and bounded when the entry is finished.
    into.dns_names.extend(f.dns_names.iter().cloned());
    into.peer = match (into.peer.take(), &f.peer) {
        (None, other) => other.clone(),
        (Some(mine), None) => Some(mine),
        (Some(mine), Some(other)) => Some(match peer_order(&mine, other) {
            Ordering::Less => other.clone(),
            _ => mine,
        }),
    };
    into.connections = into.connections.max(f.connections);
    into.bytes_sent = into.bytes_sent.max(f.bytes_sent);
    into.bytes_recv = into.bytes_recv.max(f.bytes_recv);
    into.rate = combine_rate(into.rate, f.rate);
    into.first_seen = into.first_seen.min(f.first_seen);
    into.last_seen = into.last_seen.max(f.last_seen);
}

fn peer_order(a: &Peer, b: &Peer) -> Ordering {
    (&a.namespace, &a.pod, &a.workload, &a.labels).cmp(&(
        &b.namespace,
        &b.pod,
        &b.workload,
        &b.labels,
    ))
}

/// The busiest window of either: every statistic is a maximum already.
fn combine_rate(a: RateStats, b: RateStats) -> RateStats {
    RateStats {
        window_seconds: a.window_seconds.max(b.window_seconds),
        windows: a.windows.max(b.windows),
        max_connections_per_window: a
            .max_connections_per_window
            .max(b.max_connections_per_window),
        max_bytes_sent_per_window: a.max_bytes_sent_per_window.max(b.max_bytes_sent_per_window),
        max_bytes_recv_per_window: a.max_bytes_recv_per_window.max(b.max_bytes_recv_per_window),
        max_bytes_sent_per_connection: a
            .max_bytes_sent_per_connection
            .max(b.max_bytes_sent_per_connection),
    }
}

fn combine_dns(into: &mut DnsName, d: &DnsName) {
    into.addresses.extend(d.addresses.iter().copied());
    into.count = into.count.max(d.count);
}

fn combine_file(into: &mut FileEntry, f: &FileEntry) {
    if f.pattern > into.pattern {
        into.pattern = f.pattern.clone();
    }
    into.count = into.count.max(f.count);
    into.first_seen = into.first_seen.min(f.first_seen);
    into.last_seen = into.last_seen.max(f.last_seen);
}

fn combine_package(into: &mut PackageEntry, p: &PackageEntry) {
    let newer = match (&into.version, &p.version) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(mine), Some(other)) => version_order(mine, other) == Ordering::Less,
    };
    if newer {
        into.version = p.version.clone();
    }
    if p.kind > into.kind {
        into.kind = p.kind.clone();
    }
    if p.path > into.path {
        into.path = p.path.clone();
    }
    into.first_seen = into.first_seen.min(p.first_seen);
}

/// Versions compared part by part (split at anything but letters and digits), numeric parts as
/// numbers (`1.10` after `1.9`) and before the others, then as whole strings: a total order, so the newest of several is the same whatever their order.
fn version_order(a: &str, b: &str) -> Ordering {
    fn parts(v: &str) -> impl Iterator<Item = (u8, u64, &str)> {
        v.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|p| !p.is_empty())
            .map(|p| match p.parse::<u64>() {
                Ok(n) => (0, n, ""),
                Err(_) => (1, 0, p),
            })
    }
    parts(a).cmp(parts(b)).then_with(|| a.cmp(b))
}

/// How precisely a kind names the workload: API-only kinds over kinds read from pod names over
/// ambiguous guesses; a fixed order within each group.
fn kind_precision(k: WorkloadKind) -> u8 {
    match k {
        WorkloadKind::Pod => 0,
        WorkloadKind::DaemonSetOrJob => 1,
        WorkloadKind::Deployment => 2,
        WorkloadKind::StatefulSet => 3,
        WorkloadKind::CronJob => 4,
        WorkloadKind::ReplicaSet => 5,
        WorkloadKind::Other => 6,
        WorkloadKind::DaemonSet => 7,
        WorkloadKind::Job => 8,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use proptest::prelude::*;

    use super::*;
    use crate::profile::{
        builder::{Direction, FlowDelta, FlowId},
        model::Timestamp,
    };

    const T0: Timestamp = Timestamp::lit("2026-11-26T00:00:00Z");
    const T1: Timestamp = Timestamp::lit("2026-11-26T00:00:30Z");
    const T2: Timestamp = Timestamp::lit("2026-11-26T00:02:00Z");
    const T3: Timestamp = Timestamp::lit("2026-11-26T00:03:00.123456789Z");

    fn key() -> ProfileKey {
        ProfileKey {
            namespace: "shop".into(),
            workload: "web".into(),
            container: "app".into(),
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn profile(started: Timestamp) -> ApplicationProfile {
        ApplicationProfile::new(key(), WorkloadKind::Deployment, 60, started)
    }

    fn egress(ip: &str, port: u16) -> FlowId {
        FlowId {
            direction: Direction::Egress,
            ip: ip.parse().unwrap(),
            port,
            protocol: Protocol::Tcp,
        }
    }

    fn delta(connections: u64, bytes_sent: u64) -> FlowDelta {
        FlowDelta {
            connections,
            bytes_sent,
            bytes_recv: 2 * bytes_sent,
        }
    }

    #[test]
    fn different_containers_and_versions_are_refused() {
        let a = profile(T0);
        let mut b = profile(T0);
        b.key.container = "sidecar".into();
        assert!(matches!(merge(&a, &b), Err(MergeError::Keys { .. })));
        let mut old = profile(T0);
        old.version = 1;
        assert_eq!(
            merge(&a, &old),
            Err(MergeError::Versions {
                a: PROFILE_VERSION,
                b: 1
            })
        );
        assert!(
            merge(&old, &old).is_err(),
            "older formats are upgraded first"
        );
    }

    #[test]
    fn labels_are_those_every_piece_shares() {
        let l = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut a = profile(T0);
        a.labels = l(&[("app", "web"), ("pod-template-hash", "a1")]);
        let mut b = profile(T0);
        b.labels = l(&[("app", "web"), ("pod-template-hash", "b2")]);
        assert_eq!(merge(&a, &b).unwrap().labels, l(&[("app", "web")]));
        let unknown = profile(T0);
        assert_eq!(
            merge(&a, &unknown).unwrap().labels,
            a.labels,
            "no API: no constraint"
        );
        let mut other = profile(T0);
        other.labels = l(&[("app", "db")]);
        assert_eq!(
            merge(&a, &other),
            Err(MergeError::Labels { key: key() }),
            "nothing shared: not replicas of one workload"
        );
    }

    #[test]
    fn syscalls_and_the_runtime_setup_are_unions() {
        let mut a = profile(T0);
        a.record_syscalls(&s(&["read", "openat"]), &s(&["read"]), T1);
        a.record_runtime_setup(&s(&["mount"]), &[], T1);
        let mut b = profile(T0);
        b.record_syscalls(&s(&["write", "read"]), &[], T1);
        b.record_runtime_setup(&s(&["pivot_root"]), &s(&["mount"]), T1);
        b.syscalls.runtime_setup.inferred = true;
        let m = merge(&a, &b).unwrap();
        assert_eq!(m.syscalls.native, s(&["openat", "read", "write"]));
        assert_eq!(m.syscalls.compat, s(&["read"]));
        assert_eq!(m.syscalls.runtime_setup.native, s(&["mount", "pivot_root"]));
        assert_eq!(m.syscalls.runtime_setup.compat, s(&["mount"]));
        assert!(
            m.syscalls.runtime_setup.inferred,
            "part of the union was inferred"
        );
        assert!(!merge(&a, &a).unwrap().syscalls.runtime_setup.inferred);
    }

    #[test]
    fn counters_take_the_busiest_piece_and_times_the_widest_span() {
        let mut a = profile(T0);
        a.record_exec("/bin/kill", &s(&["kill", "41233"]), T1);
        a.record_exec("/bin/kill", &s(&["kill", "41302"]), T2);
        let mut b = profile(T1);
        b.record_exec("/bin/kill", &s(&["kill", "99999"]), T3);
        let m = merge(&a, &b).unwrap();
        assert_eq!(m.execs.len(), 1);
        let e = &m.execs[0];
        assert_eq!(e.args, s(&["kill", "*"]));
        assert_eq!(
            (e.count, e.first_seen, e.last_seen),
            (2, T1, T3),
            "count: the maximum, not the sum (a piece merged twice must not count twice)"
        );
        assert_eq!(
            merge(&m, &a).unwrap(),
            m,
            "merging a piece again adds nothing"
        );
        assert_eq!((m.learning_started, m.updated), (T0, T3));
    }

    #[test]
    fn flows_keep_the_busiest_window_and_every_name() {
        let id = egress("10.1.2.3", 443);
        let mut a = profile(T0);
        a.record_flow(id, delta(3, 100), &s(&["api.example.com"]), T1);
        a.record_window(id, delta(3, 100), 60, T1);
        let mut b = profile(T0);
        b.record_flow(id, delta(1, 900), &s(&["api2.example.com"]), T2);
        b.record_window(id, delta(1, 900), 60, T2);
        b.record_window(id, delta(1, 10), 60, T2);
        let peer = Peer {
            namespace: "models".into(),
            pod: Some("llm-0".into()),
            workload: Some("llm".into()),
            labels: Default::default(),
        };
        b.record_peer(id, &peer, T2);
        let m = merge(&a, &b).unwrap();
        let f = &m.egress[0];
        assert_eq!(f.dns_names, s(&["api.example.com", "api2.example.com"]));
        assert_eq!((f.connections, f.bytes_sent, f.bytes_recv), (3, 900, 1800));
        assert_eq!(
            (
                f.rate.windows,
                f.rate.max_connections_per_window,
                f.rate.max_bytes_sent_per_window,
                f.rate.max_bytes_recv_per_window
            ),
            (2, 3, 900, 1800)
        );
        assert_eq!(f.peer.as_ref(), Some(&peer), "a known peer over none");
        assert_eq!((f.first_seen, f.last_seen), (T1, T2));
        let mut c = b.clone();
        let other = Peer {
            pod: Some("llm-1".into()),
            ..peer.clone()
        };
        c.egress[0].peer = Some(other.clone());
        assert_eq!(
            merge(&b, &c).unwrap().egress[0].peer,
            merge(&c, &b).unwrap().egress[0].peer,
            "disagreeing peers: the same choice in either order"
        );
    }

    #[test]
    fn status_is_the_least_advanced_piece() {
        let mut a = profile(T0);
        assert!(a.advance(T2));
        let mut b = profile(T0);
        assert!(b.advance(T3));
        let ready = merge(&a, &b).unwrap();
        assert_eq!((ready.status, ready.ready_at), (Status::Ready, Some(T3)));
        let learning = profile(T1);
        let m = merge(&ready, &learning).unwrap();
        assert_eq!((m.status, m.ready_at), (Status::Learning, None));
        assert_eq!(m.learning_started, T0);
    }

    #[test]
    fn completeness_is_the_worst_and_reasons_add_up() {
        let mut a = profile(T0);
        a.mark_partial("a container started before the sensor", T1);
        let mut b = profile(T0);
        b.mark_partial("events were lost", T1);
        let m = merge(&a, &b).unwrap();
        assert_eq!(m.completeness, Completeness::Partial);
        assert_eq!(
            m.partial_reasons,
            s(&["a container started before the sensor", "events were lost"])
        );
        assert_eq!(
            merge(&profile(T0), &a).unwrap().completeness,
            Completeness::Partial
        );
        assert_eq!(
            merge(&profile(T0), &profile(T0)).unwrap().completeness,
            Completeness::Full
        );
    }

    #[test]
    fn the_most_precise_workload_kind_wins() {
        let mut guessed = profile(T0);
        guessed.workload_kind = WorkloadKind::DaemonSetOrJob;
        let mut exact = profile(T0);
        exact.workload_kind = WorkloadKind::DaemonSet;
        assert_eq!(
            merge(&guessed, &exact).unwrap().workload_kind,
            WorkloadKind::DaemonSet
        );
        assert_eq!(
            merge(&exact, &guessed).unwrap().workload_kind,
            WorkloadKind::DaemonSet
        );
    }

    #[test]
    fn packages_take_the_newest_version() {
        let pkg = |version: Option<&str>, seen| PackageEntry {
            ecosystem: "python".into(),
            name: "langchain-core".into(),
            version: version.map(String::from),
            kind: "framework".into(),
            path: "/usr/lib/python3/site-packages".into(),
            first_seen: seen,
        };
        let mut a = profile(T0);
        a.packages = vec![pkg(Some("0.9.2"), T2)];
        let mut b = profile(T0);
        b.packages = vec![pkg(Some("0.10.0"), T3)];
        let mut c = profile(T0);
        c.packages = vec![pkg(None, T1)];
        let m = merge(&merge(&a, &b).unwrap(), &c).unwrap();
        assert_eq!(m.packages, vec![pkg(Some("0.10.0"), T1)]);
        assert_eq!(version_order("1.9", "1.10"), Ordering::Less);
        assert_eq!(version_order("1.10", "1.10"), Ordering::Equal);
    }

    #[test]
    fn the_builders_caps_bound_the_union_and_are_flagged() {
        let mut a = profile(T0);
        let mut b = profile(T0);
        for i in 0..200 {
            a.record_exec(&format!("/bin/a{i:03}"), &s(&["a"]), T1);
            b.record_exec(&format!("/bin/b{i:03}"), &s(&["b"]), T1);
        }
        assert!(!a.overflow.execs && !b.overflow.execs);
        let m = merge(&a, &b).unwrap();
        assert_eq!(m.execs.len(), caps::EXECS);
        assert!(m.overflow.execs, "recorded as the builder records it");
        assert!(
            m.execs
                .iter()
                .take(200)
                .all(|e| e.path.starts_with("/bin/a"))
        );
        assert_eq!(m.execs.last().unwrap().path, "/bin/b055", "identity order");
        assert_eq!(merge(&b, &a).unwrap(), m);
        assert!(m.overflow.any() && !m.overflow.egress);

        let mut c = profile(T0);
        let mut d = profile(T0);
        let names: Vec<String> = (0..caps::NAMES_PER_PEER)
            .map(|i| format!("n{i:02}.example.com"))
            .collect();
        let id = egress("10.0.0.1", 443);
        c.record_flow(id, delta(1, 1), &names, T1);
        let others: Vec<String> = names.iter().map(|n| format!("x-{n}")).collect();
        d.record_flow(id, delta(1, 1), &others, T1);
        let m = merge(&c, &d).unwrap();
        assert_eq!(m.egress[0].dns_names, names, "the first names in order");
    }

    #[test]
    fn a_builders_profile_is_canonical_but_for_order() {
        let mut p = profile(T0);
        p.record_exec("/bin/sh", &s(&["sh", "-c", "x"]), T1);
        p.record_exec("/app/server", &s(&["server"]), T1);
        p.record_flow(egress("10.0.0.9", 80), delta(1, 1), &s(&["b", "a"]), T1);
        p.record_flow(egress("10.0.0.1", 80), delta(1, 1), &[], T1);
        p.record_file("/etc/shadow", "/etc/shadow", T1);
        p.add_pod("web-2", "node-b", T1);
        p.add_pod("web-1", "node-a", T2);
        let c = canonical(&p);
        assert_ne!(c, p, "lists are reordered");
        let mut sorted = p.clone();
        sorted
            .execs
            .sort_by(|x, y| (&x.path, &x.args).cmp(&(&y.path, &y.args)));
        sorted.egress.sort_by_key(flow_id);
        sorted.egress.iter_mut().for_each(|f| f.dns_names.sort());
        sorted.pods.sort();
        sorted.nodes.sort();
        assert_eq!(c, sorted);
        assert_eq!(merge(&p, &p).unwrap(), c);
        assert_eq!(canonical(&c), c);
    }

    #[test]
    fn a_merged_profile_round_trips_through_json() {
        let mut a = profile(T0);
        a.record_syscalls(&s(&["read"]), &[], T3);
        let mut b = profile(T1);
        b.record_exec("/bin/true", &s(&["true"]), T2);
        let m = merge(&a, &b).unwrap();
        let json = serde_json::to_string_pretty(&m).unwrap();
        assert!(json.contains("\"updated\": \"2026-11-26T00:03:00.123456789Z\""));
        let back: ApplicationProfile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    // ---- properties, over small pools (so that pieces overlap) and small caps (so that they
    // are hit) ----

    const SMALL: Caps = Caps {
        execs: 3,
        egress: 3,
        ingress: 2,
        files: 2,
        dns_names: 2,
        names_per_peer: 2,
        pods: 3,
        agent_programs: 2,
        tools: 2,
    };

    fn arb_time() -> impl Strategy<Value = Timestamp> {
        (0u64..40, any::<bool>(), 0u32..3).prop_map(|(s, nanos, n)| {
            let t = UNIX_EPOCH + Duration::new(1_795_000_000 + s, n);
            Timestamp::from_system_time(t, if nanos { 9 } else { 0 })
        })
    }

    /// (first seen, last seen), in order.
    fn arb_span() -> impl Strategy<Value = (Timestamp, Timestamp)> {
        (arb_time(), arb_time()).prop_map(|(a, b)| (a.min(b), a.max(b)))
    }

    fn pool(names: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
        prop::sample::subsequence(names, 0..=names.len())
            .prop_map(|v| v.into_iter().map(String::from).collect())
    }

    fn one(names: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::sample::select(names).prop_map(String::from)
    }

    fn arb_exec() -> impl Strategy<Value = ExecEntry> {
        (
            one(&["/bin/sh", "/bin/kill", "/app/server", "/usr/bin/curl"]),
            prop::sample::select(vec![s(&["sh", "-c", "*"]), s(&["kill", "*"]), s(&["x"])]),
            0u64..5,
            arb_span(),
        )
            .prop_map(|(path, args, count, (first_seen, last_seen))| ExecEntry {
                path,
                args,
                count,
                first_seen,
                last_seen,
            })
    }

    fn arb_tool() -> impl Strategy<Value = ToolEntry> {
        (arb_exec(), 0u64..3).prop_map(|(e, failures)| ToolEntry {
            path: e.path,
            args: e.args,
            invocations: e.count,
            failures: failures.min(e.count),
            first_seen: e.first_seen,
            last_seen: e.last_seen,
        })
    }

    fn arb_peer() -> impl Strategy<Value = Option<Peer>> {
        prop::option::of(
            (
                one(&["models", "db"]),
                prop::option::of(one(&["p-0", "p-1"])),
            )
                .prop_map(|(namespace, pod)| Peer {
                    namespace,
                    workload: pod.as_ref().map(|_| "w".to_string()),
                    pod,
                    labels: Default::default(),
                }),
        )
    }

    fn arb_rate() -> impl Strategy<Value = RateStats> {
        (
            prop::sample::select(vec![0u64, 30, 60]),
            0u64..4,
            0u64..5,
            0u64..500,
            0u64..500,
            0u64..100,
        )
            .prop_map(|(w, n, c, bs, br, bpc)| RateStats {
                window_seconds: w,
                windows: n,
                max_connections_per_window: c,
                max_bytes_sent_per_window: bs,
                max_bytes_recv_per_window: br,
                max_bytes_sent_per_connection: bpc,
            })
    }

    fn arb_flow() -> impl Strategy<Value = Flow> {
        (
            prop::sample::select(vec!["10.0.0.1", "10.0.0.2", "2001:db8::1", "10.0.0.3"]),
            prop::sample::select(vec![53u16, 443, 8080]),
            prop::sample::select(vec![Protocol::Tcp, Protocol::Udp]),
            pool(&["a.example", "b.example", "c.example"]),
            arb_peer(),
            (0u64..9, 0u64..1000, 0u64..1000),
            arb_rate(),
            arb_span(),
        )
            .prop_map(
                |(ip, port, protocol, dns_names, peer, (c, bs, br), rate, (first, last))| Flow {
                    ip: ip.parse().unwrap(),
                    port,
                    protocol,
                    dns_names,
                    peer,
                    connections: c,
                    bytes_sent: bs,
                    bytes_recv: br,
                    rate,
                    first_seen: first,
                    last_seen: last,
                },
            )
    }

    fn arb_dns() -> impl Strategy<Value = DnsName> {
        (
            one(&["a.example", "b.example", "c.example"]),
            prop::sample::subsequence(vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"], 0..=3),
            0u64..9,
        )
            .prop_map(|(name, addresses, count)| DnsName {
                name,
                addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
                count,
            })
    }

    fn arb_file() -> impl Strategy<Value = FileEntry> {
        (
            one(&["/etc/shadow", "/proc/1/environ", "/root/.aws/credentials"]),
            one(&["/etc/shadow", "/proc/*/environ"]),
            0u64..9,
            arb_span(),
        )
            .prop_map(
                |(path, pattern, count, (first_seen, last_seen))| FileEntry {
                    path,
                    pattern,
                    count,
                    first_seen,
                    last_seen,
                },
            )
    }

    fn arb_package() -> impl Strategy<Value = PackageEntry> {
        (
            one(&["python", "node"]),
            one(&["langchain-core", "openai"]),
            prop::option::of(one(&["0.9.2", "0.10.0", "1.0"])),
            one(&["framework", "model-sdk"]),
            one(&["/usr/lib", "/app/node_modules"]),
            arb_time(),
        )
            .prop_map(
                |(ecosystem, name, version, kind, path, first_seen)| PackageEntry {
                    ecosystem,
                    name,
                    version,
                    kind,
                    path,
                    first_seen,
                },
            )
    }

    /// Labels: unknown, or the controller's selector (every replica has it) and some more.
    fn arb_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::option::of(prop::collection::btree_map(
            one(&["version", "pod-template-hash", "tier"]),
            one(&["1", "2"]),
            0..3,
        ))
        .prop_map(|extra| {
            extra
                .map(|mut l| {
                    l.insert("app".into(), "web".into());
                    l
                })
                .unwrap_or_default()
        })
    }

    fn arb_overflow() -> impl Strategy<Value = Overflow> {
        prop::collection::vec(prop::bool::weighted(0.1), 6).prop_map(|f| Overflow {
            execs: f[0],
            egress: f[1],
            ingress: f[2],
            files: f[3],
            dns: f[4],
            tools: f[5],
        })
    }

    prop_compose! {
        fn arb_profile()(
            (kind, ready, partial, reasons, period) in (
                prop::sample::select(vec![
                    WorkloadKind::Deployment, WorkloadKind::StatefulSet,
                    WorkloadKind::DaemonSetOrJob, WorkloadKind::CronJob, WorkloadKind::Pod,
                    WorkloadKind::DaemonSet, WorkloadKind::Job, WorkloadKind::ReplicaSet,
                    WorkloadKind::Other,
                ]),
                any::<bool>(),
                any::<bool>(),
                pool(&["started before the sensor", "events lost"]),
                prop::sample::select(vec![60u64, 3600]),
            ),
            (started, updated, ready_at) in (arb_time(), arb_time(), arb_time()),
            (nodes, pods, labels, agent_programs) in (
                pool(&["node-a", "node-b", "node-c"]),
                pool(&["web-1", "web-2", "web-3", "web-4", "web-5"]),
                arb_labels(),
                pool(&["python3 agent.py", "node mcp.js", "sh -c *"]),
            ),
            (native, compat, setup_native, setup_compat, inferred) in (
                pool(&["read", "write", "openat", "ptrace", "mmap"]),
                pool(&["read", "socketcall"]),
                pool(&["mount", "pivot_root", "unshare"]),
                pool(&["mount"]),
                any::<bool>(),
            ),
            execs in prop::collection::vec(arb_exec(), 0..5),
            egress in prop::collection::vec(arb_flow(), 0..5),
            ingress in prop::collection::vec(arb_flow(), 0..4),
            dns in prop::collection::vec(arb_dns(), 0..4),
            resolvers in prop::collection::vec(
                (one(&["10.96.0.10", "8.8.8.8"]), any::<bool>()), 0..3),
            files in prop::collection::vec(arb_file(), 0..4),
            packages in prop::collection::vec(arb_package(), 0..3),
            tools in prop::collection::vec(arb_tool(), 0..4),
            overflow in arb_overflow(),
        ) -> ApplicationProfile {
            let status = if ready { Status::Ready } else { Status::Learning };
            ApplicationProfile {
                version: PROFILE_VERSION,
                key: key(),
                workload_kind: kind,
                status,
                completeness: if partial || !reasons.is_empty() {
                    Completeness::Partial
                } else {
                    Completeness::Full
                },
                partial_reasons: reasons,
                learning_started: started.min(updated),
                learning_period_seconds: period,
                ready_at: ready.then_some(ready_at),
                updated: started.max(updated),
                nodes,
                pods,
                labels,
                syscalls: Syscalls {
                    native,
                    compat,
                    runtime_setup: RuntimeSetup {
                        native: setup_native,
                        compat: setup_compat,
                        inferred,
                    },
                },
                execs,
                egress,
                ingress,
                dns,
                resolvers: resolvers
                    .into_iter()
                    .map(|(ip, cluster_dns)| Resolver { ip: ip.parse().unwrap(), cluster_dns })
                    .collect(),
                files,
                packages,
                agent_programs,
                tools,
                overflow,
            }
        }
    }

    fn small(a: &ApplicationProfile, b: &ApplicationProfile) -> ApplicationProfile {
        merge_with(a, b, &SMALL).expect("pieces of one workload")
    }

    /// Every entry of `piece` is in `merged` with at least its counts and at most its time
    /// span, unless the cap of its list was hit (then flagged).
    fn check_preserved(
        piece: &ApplicationProfile,
        m: &ApplicationProfile,
    ) -> Result<(), TestCaseError> {
        fn subset(
            of: &[String],
            inside: &[String],
            full: bool,
            what: &str,
        ) -> Result<(), TestCaseError> {
            for x in of {
                prop_assert!(inside.contains(x) || full, "{what}: {x} lost");
            }
            Ok(())
        }
        subset(&piece.syscalls.native, &m.syscalls.native, false, "native")?;
        subset(&piece.syscalls.compat, &m.syscalls.compat, false, "compat")?;
        let setup = (&piece.syscalls.runtime_setup, &m.syscalls.runtime_setup);
        subset(&setup.0.native, &setup.1.native, false, "setup native")?;
        subset(&setup.0.compat, &setup.1.compat, false, "setup compat")?;
        prop_assert!(!setup.0.inferred || setup.1.inferred);
        subset(&piece.nodes, &m.nodes, false, "nodes")?;
        subset(&piece.partial_reasons, &m.partial_reasons, false, "reasons")?;
        subset(&piece.pods, &m.pods, m.pods.len() == SMALL.pods, "pods")?;
        subset(
            &piece.agent_programs,
            &m.agent_programs,
            m.agent_programs.len() == SMALL.agent_programs,
            "agent programs",
        )?;
        for (k, v) in &m.labels {
            prop_assert!(piece.labels.is_empty() || piece.labels.get(k) == Some(v));
        }
        prop_assert!(m.learning_started <= piece.learning_started && m.updated >= piece.updated);
        prop_assert!(
            piece.completeness == Completeness::Full || m.completeness == Completeness::Partial
        );

        for e in &piece.execs {
            match m
                .execs
                .iter()
                .find(|x| (&x.path, &x.args) == (&e.path, &e.args))
            {
                Some(x) => prop_assert!(
                    x.count >= e.count
                        && x.first_seen <= e.first_seen
                        && x.last_seen >= e.last_seen
                ),
                None => prop_assert!(m.overflow.execs && m.execs.len() == SMALL.execs),
            }
        }
        for e in &piece.tools {
            match m
                .tools
                .iter()
                .find(|x| (&x.path, &x.args) == (&e.path, &e.args))
            {
                Some(x) => prop_assert!(
                    x.invocations >= e.invocations
                        && x.failures >= e.failures
                        && x.first_seen <= e.first_seen
                        && x.last_seen >= e.last_seen
                ),
                None => prop_assert!(m.overflow.tools && m.tools.len() == SMALL.tools),
            }
        }
        for (mine, merged, flagged, cap) in [
            (&piece.egress, &m.egress, m.overflow.egress, SMALL.egress),
            (
                &piece.ingress,
                &m.ingress,
                m.overflow.ingress,
                SMALL.ingress,
            ),
        ] {
            for f in mine {
                match merged.iter().find(|x| flow_id(x) == flow_id(f)) {
                    Some(x) => {
                        prop_assert!(
                            x.connections >= f.connections
                                && x.bytes_sent >= f.bytes_sent
                                && x.bytes_recv >= f.bytes_recv
                                && x.first_seen <= f.first_seen
                                && x.last_seen >= f.last_seen
                        );
                        let (r, q) = (&x.rate, &f.rate);
                        prop_assert!(
                            r.windows >= q.windows
                                && r.max_connections_per_window >= q.max_connections_per_window
                                && r.max_bytes_sent_per_window >= q.max_bytes_sent_per_window
                                && r.max_bytes_recv_per_window >= q.max_bytes_recv_per_window
                                && r.max_bytes_sent_per_connection
                                    >= q.max_bytes_sent_per_connection
                        );
                        prop_assert!(f.peer.is_none() || x.peer.is_some());
                        let full = x.dns_names.len() == SMALL.names_per_peer;
                        subset(&f.dns_names, &x.dns_names, full, "flow names")?;
                    }
                    None => prop_assert!(flagged && merged.len() == cap),
                }
            }
        }
        for d in &piece.dns {
            match m.dns.iter().find(|x| x.name == d.name) {
                Some(x) => {
                    prop_assert!(x.count >= d.count);
                    let full = x.addresses.len() == SMALL.names_per_peer;
                    for a in &d.addresses {
                        prop_assert!(x.addresses.contains(a) || full);
                    }
                }
                None => prop_assert!(m.overflow.dns && m.dns.len() == SMALL.dns_names),
            }
        }
        for f in &piece.files {
            match m.files.iter().find(|x| x.path == f.path) {
                Some(x) => prop_assert!(
                    x.count >= f.count
                        && x.first_seen <= f.first_seen
                        && x.last_seen >= f.last_seen
                ),
                None => prop_assert!(m.overflow.files && m.files.len() == SMALL.files),
            }
        }
        for r in &piece.resolvers {
            prop_assert!(
                m.resolvers
                    .iter()
                    .any(|x| x.ip == r.ip && (x.cluster_dns || !r.cluster_dns))
            );
        }
        for p in &piece.packages {
            prop_assert!(
                m.packages
                    .iter()
                    .any(|x| (&x.ecosystem, &x.name) == (&p.ecosystem, &p.name)
                        && x.first_seen <= p.first_seen
                        && (p.version.is_none() || x.version.is_some()))
            );
        }
        let (o, n) = (piece.overflow, m.overflow);
        prop_assert!(
            (!o.execs || n.execs)
                && (!o.egress || n.egress)
                && (!o.ingress || n.ingress)
                && (!o.files || n.files)
                && (!o.dns || n.dns)
                && (!o.tools || n.tools)
        );
        Ok(())
    }

    fn check_caps(m: &ApplicationProfile) -> Result<(), TestCaseError> {
        prop_assert!(m.execs.len() <= SMALL.execs);
        prop_assert!(m.egress.len() <= SMALL.egress);
        prop_assert!(m.ingress.len() <= SMALL.ingress);
        prop_assert!(m.files.len() <= SMALL.files);
        prop_assert!(m.dns.len() <= SMALL.dns_names);
        prop_assert!(m.tools.len() <= SMALL.tools);
        prop_assert!(m.pods.len() <= SMALL.pods);
        prop_assert!(m.agent_programs.len() <= SMALL.agent_programs);
        for f in m.egress.iter().chain(&m.ingress) {
            prop_assert!(f.dns_names.len() <= SMALL.names_per_peer);
        }
        for d in &m.dns {
            prop_assert!(d.addresses.len() <= SMALL.names_per_peer);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in arb_profile(), b in arb_profile()) {
            prop_assert_eq!(small(&a, &b), small(&b, &a));
            prop_assert_eq!(merge(&a, &b).unwrap(), merge(&b, &a).unwrap());
        }

        #[test]
        fn merge_is_associative(a in arb_profile(), b in arb_profile(), c in arb_profile()) {
            prop_assert_eq!(small(&small(&a, &b), &c), small(&a, &small(&b, &c)));
            prop_assert_eq!(
                merge(&merge(&a, &b).unwrap(), &c).unwrap(),
                merge(&a, &merge(&b, &c).unwrap()).unwrap()
            );
        }

        #[test]
        fn merge_is_idempotent_up_to_the_canonical_form(a in arb_profile(), b in arb_profile()) {
            prop_assert_eq!(small(&a, &a), canonical_with(&a, &SMALL));
            let m = small(&a, &b);
            prop_assert_eq!(canonical_with(&m, &SMALL), m.clone());
            prop_assert_eq!(small(&m, &a), m.clone(), "a piece merged again adds nothing");
            prop_assert_eq!(merge(&a, &a).unwrap(), canonical(&a));
        }

        #[test]
        fn merge_respects_the_caps(a in arb_profile(), b in arb_profile(), c in arb_profile()) {
            check_caps(&small(&a, &b))?;
            check_caps(&small(&small(&a, &b), &c))?;
        }

        #[test]
        fn merge_keeps_what_each_piece_saw(a in arb_profile(), b in arb_profile()) {
            let m = small(&a, &b);
            check_preserved(&a, &m)?;
            check_preserved(&b, &m)?;
            // Under the model's caps nothing of these small pieces is dropped.
            let m = merge(&a, &b).unwrap();
            prop_assert_eq!(
                m.execs.len(),
                a.execs.iter().chain(&b.execs)
                    .map(|e| (&e.path, &e.args))
                    .collect::<BTreeSet<_>>()
                    .len()
            );
        }
    }
}
