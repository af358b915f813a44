//! Drift commands (`AcceptAnomaly`, `Relearn`): the agent implements [`Control`] over its
//! profile store and anomaly log; [`MemoryControl`] does it in memory for tests.
//!
//! Status codes, by [`ControlError`] variant: an unknown sequence number is NOT_FOUND; an
//! anomaly that cannot be folded (a repeat record, or one without a fold) is
//! FAILED_PRECONDITION, and so is a profile that is still learning; a profile or workload the
//! agent does not hold is NOT_FOUND; a failure to persist is UNAVAILABLE.

use std::sync::{Arc, Mutex, PoisonError};

use tonic::{Code, Status};

use super::source::{MemoryAnomalies, MemorySource, ProfileSource};
use crate::detect::model::{Anomaly, Fold};
use crate::profile::model::{ProfileKey, Status as ProfileStatus};

/// What accepting an anomaly did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptOutcome {
    /// The profile whose baseline now includes the behaviour.
    pub profile: ProfileKey,
    /// What was added (the anomaly's fold).
    pub fold: Fold,
    /// False when the baseline already had it.
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// NOT_FOUND.
    #[error("no anomaly #{0} on this node (never given out, or past the log's retention)")]
    UnknownSeq(u64),
    /// FAILED_PRECONDITION: a repeat record, an anomaly without a fold, a learning profile.
    #[error("anomaly #{seq} cannot be accepted: {reason}")]
    NotFoldable { seq: u64, reason: String },
    /// NOT_FOUND.
    #[error("no profile {0} on this node")]
    NoProfile(ProfileKey),
    /// NOT_FOUND.
    #[error("no profiles of workload {namespace}/{workload} on this node")]
    NoWorkload { namespace: String, workload: String },
    /// UNAVAILABLE: the change could not be made or saved now (e.g. a full disk).
    #[error("{0}")]
    Unavailable(String),
    /// INTERNAL.
    #[error("{0}")]
    Internal(String),
}

impl ControlError {
    pub fn code(&self) -> Code {
        match self {
            ControlError::UnknownSeq(_)
            | ControlError::NoProfile(_)
            | ControlError::NoWorkload { .. } => Code::NotFound,
            ControlError::NotFoldable { .. } => Code::FailedPrecondition,
            ControlError::Unavailable(_) => Code::Unavailable,
            ControlError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ControlError> for Status {
    fn from(e: ControlError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

/// Drift commands. Calls are synchronous; the server runs them on a blocking thread.
pub trait Control: Send + Sync + 'static {
    /// Folds the behaviour anomaly `seq` observed into its profile's baseline. Use [`fold_of`]
    /// for the checks every implementation shares.
    fn accept(&self, seq: u64) -> Result<AcceptOutcome, ControlError>;
    /// Restarts learning for every container profile of the workload; returns their keys
    /// (sorted). [`ControlError::NoWorkload`] when there are none.
    fn relearn(&self, namespace: &str, workload: &str) -> Result<Vec<ProfileKey>, ControlError>;
}

/// The fold of an anomaly that can be accepted, and its profile; otherwise the precise error:
/// a repeat record names its first occurrence.
pub fn fold_of(anomaly: &Anomaly) -> Result<(ProfileKey, &Fold), ControlError> {
    if let Some(first) = anomaly.repeat_of {
        return Err(ControlError::NotFoldable {
            seq: anomaly.seq,
            reason: format!("it is a repeat record of #{first}: accept #{first}"),
        });
    }
    // Every first occurrence carries a fold now (detect/fold.rs); only records of older agents
    // lack one: `would-deny`, and `unexpected-syscall` from a container's final syscall set.
    let Some(fold) = &anomaly.fold else {
        return Err(ControlError::NotFoldable {
            seq: anomaly.seq,
            reason: format!(
                "this {} record carries no fold (it was logged by an older agent, which did not \
                 record what accepting it adds); accept the next occurrence, reported after an \
                 agent restart or an hour without one",
                anomaly.finding.rule.as_str()
            ),
        });
    };
    Ok((
        ProfileKey {
            namespace: anomaly.namespace.clone(),
            workload: anomaly.workload.clone(),
            container: anomaly.container.clone(),
        },
        fold,
    ))
}

/// A fold for people, e.g. `exec /usr/bin/curl -s *`, `egress 203.0.113.9:443/tcp`.
pub fn describe(fold: &Fold) -> String {
    let proto = |p: crate::profile::model::Protocol| match p {
        crate::profile::model::Protocol::Tcp => "tcp",
        crate::profile::model::Protocol::Udp => "udp",
    };
    let host = |ip: &std::net::IpAddr| match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    };
    match fold {
        Fold::Exec { path, args } => {
            let mut s = format!("exec {path}");
            for a in args {
                s.push(' ');
                s.push_str(a);
            }
            s
        }
        Fold::Syscall { name, compat } => {
            format!("syscall {name}{}", if *compat { " (compat)" } else { "" })
        }
        Fold::Egress {
            ip,
            port,
            protocol,
            names,
        } => {
            let mut s = format!("egress {}:{port}/{}", host(ip), proto(*protocol));
            if !names.is_empty() {
                s.push_str(&format!(" ({})", names.join(", ")));
            }
            s
        }
        Fold::Ingress { ip, port, protocol } => {
            format!(
                "ingress from {} to port {port}/{}",
                host(ip),
                proto(*protocol)
            )
        }
        Fold::Dns { name, .. } => format!("dns {name}"),
        Fold::File { path, .. } => format!("file {path}"),
        Fold::Rate {
            ip,
            port,
            protocol,
            ingress,
            connections,
            bytes_sent,
            bytes_recv,
            window_seconds,
        } => format!(
            "{} rate {}:{port}/{}: up to {connections} connections, {bytes_sent} B sent, \
             {bytes_recv} B received per {window_seconds}s",
            if *ingress { "ingress" } else { "egress" },
            host(ip),
            proto(*protocol)
        ),
    }
}

/// [`Control`] over [`MemoryAnomalies`] and [`MemorySource`]: `accept` records the fold (it
/// does not edit the profile), `relearn` sets the profiles back to learning.
pub struct MemoryControl {
    anomalies: Arc<MemoryAnomalies>,
    profiles: Arc<MemorySource>,
    accepted: Mutex<Vec<(ProfileKey, Fold)>>,
}

impl MemoryControl {
    pub fn new(anomalies: Arc<MemoryAnomalies>, profiles: Arc<MemorySource>) -> Self {
        Self {
            anomalies,
            profiles,
            accepted: Mutex::default(),
        }
    }

    /// The folds accepted so far, in order.
    pub fn accepted(&self) -> Vec<(ProfileKey, Fold)> {
        self.accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Control for MemoryControl {
    fn accept(&self, seq: u64) -> Result<AcceptOutcome, ControlError> {
        let anomaly = self
            .anomalies
            .get(seq)
            .ok_or(ControlError::UnknownSeq(seq))?;
        let (key, fold) = fold_of(&anomaly)?;
        let profile = self
            .profiles
            .profile(&key)
            .ok_or_else(|| ControlError::NoProfile(key.clone()))?;
        if profile.status == ProfileStatus::Learning {
            return Err(ControlError::NotFoldable {
                seq,
                reason: format!("profile {key} is learning again: its baseline is not frozen"),
            });
        }
        let mut accepted = self.accepted.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = (key.clone(), fold.clone());
        let changed = !accepted.contains(&entry);
        if changed {
            accepted.push(entry);
        }
        Ok(AcceptOutcome {
            profile: key,
            fold: fold.clone(),
            changed,
        })
    }

    fn relearn(&self, namespace: &str, workload: &str) -> Result<Vec<ProfileKey>, ControlError> {
        let mut keys: Vec<ProfileKey> = self
            .profiles
            .profiles()
            .into_iter()
            .filter(|p| p.key.namespace == namespace && p.key.workload == workload)
            .map(|mut p| {
                p.status = ProfileStatus::Learning;
                p.ready_at = None;
                let key = p.key.clone();
                self.profiles.upsert(p);
                key
            })
            .collect();
        if keys.is_empty() {
            return Err(ControlError::NoWorkload {
                namespace: namespace.to_string(),
                workload: workload.to_string(),
            });
        }
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::testutil::sample_profile;

    fn key() -> ProfileKey {
        ProfileKey {
            namespace: "shop".into(),
            workload: "checkout".into(),
            container: "app".into(),
        }
    }

    #[test]
    fn accept_and_relearn_with_precise_errors() {
        let anomalies = Arc::new(MemoryAnomalies::new(16));
        let profiles = Arc::new(MemorySource::with_profiles(
            "node-1",
            [sample_profile(key())],
        ));
        let control = MemoryControl::new(anomalies.clone(), profiles.clone());
        let first = anomalies.append(Anomaly::sample("/usr/bin/curl"));
        let mut repeat = Anomaly::sample("/usr/bin/curl");
        repeat.repeat_of = Some(first);
        repeat.count = 5;
        let repeat = anomalies.append(repeat);
        let mut nofold = Anomaly::sample("x");
        nofold.fold = None;
        let nofold = anomalies.append(nofold);

        let out = control.accept(first).unwrap();
        assert_eq!(out.profile, key());
        assert!(out.changed);
        assert_eq!(describe(&out.fold), "exec /usr/bin/curl -s *");
        assert!(!control.accept(first).unwrap().changed, "idempotent");

        let e = control.accept(repeat).unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(e.to_string().contains(&format!("accept #{first}")), "{e}");
        let e = control.accept(nofold).unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(
            e.to_string().contains("older agent") && e.to_string().contains("next occurrence"),
            "{e}"
        );
        assert_eq!(control.accept(99).unwrap_err().code(), Code::NotFound);

        assert_eq!(control.relearn("shop", "checkout").unwrap(), vec![key()]);
        assert_eq!(
            control.relearn("shop", "cart").unwrap_err().code(),
            Code::NotFound
        );
        // Learning again: nothing to fold into.
        assert_eq!(
            control.accept(first).unwrap_err().code(),
            Code::FailedPrecondition
        );
    }

    #[test]
    fn folds_for_people() {
        let f = Fold::Egress {
            ip: "2001:db8::1".parse().unwrap(),
            port: 443,
            protocol: crate::profile::model::Protocol::Tcp,
            names: vec!["api.example.com".into()],
        };
        assert_eq!(
            describe(&f),
            "egress [2001:db8::1]:443/tcp (api.example.com)"
        );
        let s = Fold::Syscall {
            name: "ptrace".into(),
            compat: true,
        };
        assert_eq!(describe(&s), "syscall ptrace (compat)");
    }
}
