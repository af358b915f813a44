//! The pieces of one workload container into its [`WorkloadProfileSpec`]. Pure: the elected
//! leader's task (`leader.rs`) lists the pieces and writes what this returns.
//!
//! - the profile: `profile::merge` of every piece (live or from a node that is gone: evidence
//!   stays valid), so everything any replica did is in it;
//! - syscalls per architecture: the union of that architecture's pieces (a node's drafts use
//!   its own architecture's section);
//! - status: `ready` only when every *live* piece is ready and the cluster-wide learning
//!   period (from the earliest piece's start, the longest period) has elapsed; a piece of a
//!   node that is gone no longer holds the workload back. Completeness: `partial` when any
//!   piece is.

use std::collections::{BTreeMap, BTreeSet};

use super::crd::{ArchitectureSyscalls, Contributor, ProfilePiece, Summary, WorkloadProfileSpec};
use crate::profile::{
    merge::{MergeError, merge},
    model::{ApplicationProfile, Status, Syscalls, Timestamp},
};

/// One piece as the merge takes it.
#[derive(Debug, Clone)]
pub struct Piece {
    pub node: String,
    pub architecture: String,
    pub node_gone: bool,
    pub profile: ApplicationProfile,
}

impl Piece {
    pub fn of(p: &ProfilePiece) -> Piece {
        Piece {
            node: p.spec.node.clone(),
            architecture: p.spec.architecture.clone(),
            node_gone: p.status.as_ref().is_some_and(|s| s.node_gone),
            profile: p.spec.profile.clone(),
        }
    }

    /// What the merge keeps of this piece once its evidence is in an [`Accumulator`].
    pub fn contribution(&self) -> Contribution {
        Contribution {
            node: self.node.clone(),
            architecture: self.architecture.clone(),
            node_gone: self.node_gone,
            status: self.profile.status,
            completeness: self.profile.completeness,
            updated: self.profile.updated,
            ready_at: self.profile.ready_at,
            learning_started: self.profile.learning_started,
        }
    }
}

/// A piece's state, without its evidence (small: one per node per workload container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contribution {
    pub node: String,
    pub architecture: String,
    pub node_gone: bool,
    pub status: Status,
    pub completeness: crate::profile::model::Completeness,
    pub updated: Timestamp,
    pub ready_at: Option<Timestamp>,
    /// Moves forward when the node relearned the workload (its piece shrank).
    pub learning_started: Timestamp,
}

/// The evidence of every piece added so far: their `profile::merge` and their syscalls per
/// architecture. Since `merge` is commutative, associative and idempotent, pieces can be added
/// in any order and a piece added twice (a newer snapshot of a node) changes nothing but what
/// it newly adds; a piece that *lost* evidence (a relearn) needs a fresh accumulator.
#[derive(Debug, Clone, Default)]
pub struct Accumulator {
    profile: Option<ApplicationProfile>,
    arch: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
}

impl Accumulator {
    pub fn add(&mut self, architecture: &str, p: &ApplicationProfile) -> Result<(), MergeError> {
        let merged = match &self.profile {
            None => crate::profile::merge::canonical(p),
            Some(acc) => merge(acc, p)?,
        };
        self.profile = Some(merged);
        let (native, compat) = self.arch.entry(architecture.to_string()).or_default();
        native.extend(p.syscalls.native.iter().cloned());
        compat.extend(p.syscalls.compat.iter().cloned());
        Ok(())
    }

    /// The merged spec from this evidence and the pieces' states, as of `now` (`None` before
    /// any piece was added).
    pub fn finish(
        &self,
        contributions: &[Contribution],
        merged_by: &str,
        now: Timestamp,
    ) -> Option<WorkloadProfileSpec> {
        let mut profile = self.profile.clone()?;
        let mut sorted: Vec<&Contribution> = contributions.iter().collect();
        sorted.sort_by(|a, b| a.node.cmp(&b.node));
        let live: Vec<&&Contribution> = sorted.iter().filter(|c| !c.node_gone).collect();
        let judged: Vec<&&Contribution> = if live.is_empty() {
            sorted.iter().collect()
        } else {
            live
        };
        let period_over = now.duration_since(profile.learning_started).as_secs()
            >= profile.learning_period_seconds;
        let all_ready = judged.iter().all(|c| c.status == Status::Ready);
        if all_ready && period_over {
            profile.status = Status::Ready;
            profile.ready_at = judged.iter().filter_map(|c| c.ready_at).max();
        } else {
            profile.status = Status::Learning;
            profile.ready_at = None;
        }
        let architectures: Vec<ArchitectureSyscalls> = self
            .arch
            .iter()
            .map(|(arch, (native, compat))| ArchitectureSyscalls {
                architecture: arch.clone(),
                syscalls: Syscalls {
                    native: native.iter().cloned().collect(),
                    compat: compat.iter().cloned().collect(),
                    runtime_setup: Default::default(),
                },
            })
            .collect();
        let distinct: BTreeSet<&String> = architectures
            .iter()
            .flat_map(|a| a.syscalls.native.iter().chain(&a.syscalls.compat))
            .collect();
        let contributors = sorted
            .iter()
            .map(|c| Contributor {
                node: c.node.clone(),
                architecture: c.architecture.clone(),
                status: c.status,
                completeness: c.completeness,
                node_gone: c.node_gone,
                updated: c.updated,
            })
            .collect();
        Some(WorkloadProfileSpec {
            summary: Summary::of(&profile, sorted.len(), distinct.len()),
            architectures,
            contributors,
            merged_by: merged_by.to_string(),
            merged_at: now,
            profile,
        })
    }
}

/// The merged spec of one workload container's pieces (non-empty, one key), as of `now`.
pub fn merge_pieces(
    pieces: &[Piece],
    merged_by: &str,
    now: Timestamp,
) -> Result<WorkloadProfileSpec, MergeError> {
    let mut acc = Accumulator::default();
    for p in pieces {
        acc.add(&p.architecture, &p.profile)?;
    }
    let contributions: Vec<Contribution> = pieces.iter().map(Piece::contribution).collect();
    Ok(acc
        .finish(&contributions, merged_by, now)
        .expect("merge_pieces takes at least one piece"))
}

/// Whether two merged specs say the same (who merged and when aside): a leader rewrites a
/// merged profile only when this is false.
pub fn same_content(a: &WorkloadProfileSpec, b: &WorkloadProfileSpec) -> bool {
    let strip = |s: &WorkloadProfileSpec| {
        let mut s = s.clone();
        s.merged_by.clear();
        s.merged_at = Timestamp::UNIX_EPOCH;
        s
    };
    strip(a) == strip(b)
}

/// A node's view of the merged profile: its own architecture's syscalls (the union over
/// architectures when its architecture has no section yet) in an otherwise merged profile,
/// the input of its drafts.
pub fn profile_for(spec: &WorkloadProfileSpec, architecture: &str) -> ApplicationProfile {
    let mut p = spec.profile.clone();
    if let Some(a) = spec
        .architectures
        .iter()
        .find(|a| a.architecture == architecture)
    {
        p.syscalls.native = a.syscalls.native.clone();
        p.syscalls.compat = a.syscalls.compat.clone();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        attribution::workload::WorkloadKind,
        profile::model::{ExecEntry, ProfileKey},
    };

    const T0: Timestamp = Timestamp::lit("2026-12-01T00:00:00Z");
    const LATER: Timestamp = Timestamp::lit("2026-12-02T00:00:00Z");

    fn piece(node: &str, arch: &str, status: Status, syscalls: &[&str], exec: &str) -> Piece {
        let key = ProfileKey {
            namespace: "shop".into(),
            workload: "web".into(),
            container: "app".into(),
        };
        let mut p = ApplicationProfile::new(key, WorkloadKind::Deployment, 3600, T0);
        p.status = status;
        if status == Status::Ready {
            p.ready_at = Some(Timestamp::lit("2026-12-01T01:00:00Z"));
        }
        p.nodes = vec![node.into()];
        p.syscalls.native = syscalls.iter().map(|s| s.to_string()).collect();
        p.execs = vec![ExecEntry {
            path: exec.into(),
            args: vec![exec.into()],
            count: 1,
            first_seen: T0,
            last_seen: T0,
        }];
        Piece {
            node: node.into(),
            architecture: arch.into(),
            node_gone: false,
            profile: p,
        }
    }

    #[test]
    fn the_union_of_every_replica_per_architecture() {
        let a = piece(
            "a",
            "x86_64",
            Status::Ready,
            &["read", "openat"],
            "/bin/cat",
        );
        let b = piece(
            "b",
            "aarch64",
            Status::Ready,
            &["read", "fstat"],
            "/bin/uname",
        );
        let m = merge_pieces(&[a.clone(), b.clone()], "leader", LATER).unwrap();
        let paths: Vec<&str> = m.profile.execs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/bin/cat", "/bin/uname"]);
        assert_eq!(m.architectures.len(), 2);
        assert_eq!(m.architectures[0].architecture, "aarch64");
        assert_eq!(m.architectures[0].syscalls.native, ["fstat", "read"]);
        assert_eq!(m.architectures[1].syscalls.native, ["openat", "read"]);
        assert_eq!(m.summary.nodes, 2);
        assert_eq!(m.summary.syscalls, 3);
        assert_eq!(m.profile.status, Status::Ready);
        assert_eq!(
            profile_for(&m, "x86_64").syscalls.native,
            ["openat", "read"]
        );
        // Order of the pieces does not matter.
        let swapped = merge_pieces(&[b, a], "leader", LATER).unwrap();
        assert_eq!(swapped, m);
    }

    #[test]
    fn ready_waits_for_every_live_piece_and_the_period() {
        let a = piece("a", "x86_64", Status::Ready, &["read"], "/bin/cat");
        let mut b = piece("b", "x86_64", Status::Learning, &["read"], "/bin/uname");
        let m = merge_pieces(&[a.clone(), b.clone()], "l", LATER).unwrap();
        assert_eq!(m.profile.status, Status::Learning);
        assert_eq!(m.profile.ready_at, None);
        // b's node is gone: its evidence stays, its state no longer holds the workload back.
        b.node_gone = true;
        let m = merge_pieces(&[a.clone(), b], "l", LATER).unwrap();
        assert_eq!(m.profile.status, Status::Ready);
        assert!(m.profile.execs.iter().any(|e| e.path == "/bin/uname"));
        assert!(m.contributors.iter().any(|c| c.node == "b" && c.node_gone));
        // Before the period is over (from the earliest start), nothing is ready.
        let early = merge_pieces(&[a], "l", Timestamp::lit("2026-12-01T00:30:00Z")).unwrap();
        assert_eq!(early.profile.status, Status::Learning);
    }

    #[test]
    fn content_compares_without_who_and_when() {
        let a = piece("a", "x86_64", Status::Ready, &["read"], "/bin/cat");
        let m1 = merge_pieces(std::slice::from_ref(&a), "x", LATER).unwrap();
        let m2 = merge_pieces(std::slice::from_ref(&a), "y", T0).unwrap();
        // T0: the period is not over, so the status differs: content differs.
        assert!(!same_content(&m1, &m2));
        let m3 = merge_pieces(&[a], "y", Timestamp::lit("2026-12-03T00:00:00Z")).unwrap();
        assert!(same_content(&m1, &m3));
    }
}
