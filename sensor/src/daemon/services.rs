//! What the agent gives the gRPC API: its profiles (and their graduation), the anomaly log and
//! live anomalies, live events, and the drift controls (accept an anomaly, relearn a workload).

use std::{
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use crate::learn::store::ProfileStore;
use crate::{
    api::{
        AcceptOutcome, AnomalySource, Control, ControlError, EventSource, Graduation, Hub,
        ProfileSource, Subscription, control::fold_of,
    },
    attribution::event::Event,
    audit::live,
    detect::{
        engine::{LastFired, allowed_behaviour, fold_into},
        log,
        model::{Anomaly, RuleId},
    },
    profile::model::{ApplicationProfile, Completeness, ProfileKey, Status, Timestamp},
};

/// Rules whose recent firing keeps a workload from graduating to enforcement: the drafts would
/// break something it does.
const BLOCKING_RULES: [RuleId; 2] = [RuleId::UnexpectedSyscall, RuleId::UnexpectedEgress];

pub struct Profiles {
    pub store: Arc<RwLock<ProfileStore>>,
    pub node: String,
    pub last_fired: LastFired,
    pub graduation_window: Duration,
    /// The live NetworkPolicy audit, for the network draft's graduation.
    pub netpol_audit: crate::audit::live::runner::SharedAuditStatus,
}

impl ProfileSource for Profiles {
    fn visit(&self, f: &mut dyn FnMut(&ApplicationProfile)) {
        self.store.read().expect("profile store lock").visit(f);
    }

    fn profile(&self, key: &ProfileKey) -> Option<ApplicationProfile> {
        self.store
            .read()
            .expect("profile store lock")
            .get(key)
            .cloned()
    }

    fn node_name(&self) -> String {
        self.node.clone()
    }

    fn graduation(&self, key: &ProfileKey) -> Graduation {
        let store = self.store.read().expect("profile store lock");
        let Some(p) = store.get(key) else {
            return Graduation::unknown();
        };
        let fired = self.last_fired.lock().expect("last-fired lock");
        let now = SystemTime::now();
        let mut g = graduation(p, &fired, self.graduation_window, now);
        let audit = self.netpol_audit.read().expect("audit status lock").clone();
        g.network = Some(live::network_graduation(
            audit.as_ref(),
            live::graduation::last_would_deny(&fired, &key.namespace, &key.workload),
            self.graduation_window,
            now,
        ));
        g
    }
}

/// Whether a workload's drafts are ready to enforce: profile ready, complete, and no unexpected
/// syscall or egress anomaly within the window.
pub fn graduation(
    p: &ApplicationProfile,
    last_fired: &std::collections::HashMap<(ProfileKey, RuleId), SystemTime>,
    window: Duration,
    now: SystemTime,
) -> Graduation {
    let mut reasons = Vec::new();
    if p.status != Status::Ready {
        reasons.push(format!(
            "still learning (started {}, learning period {})",
            p.learning_started,
            humantime::format_duration(Duration::from_secs(p.learning_period_seconds))
        ));
    }
    if p.completeness == Completeness::Partial {
        reasons.push(format!(
            "profile is partial: {}",
            p.partial_reasons.join("; ")
        ));
    }
    for rule in BLOCKING_RULES {
        if let Some(t) = last_fired.get(&(p.key.clone(), rule)) {
            let ago = now.duration_since(*t).unwrap_or_default();
            if ago < window {
                reasons.push(format!(
                    "{} anomaly {} ago (within the {} window)",
                    rule.as_str(),
                    humantime::format_duration(Duration::from_secs(ago.as_secs())),
                    humantime::format_duration(window)
                ));
            }
        }
    }
    Graduation {
        evaluated: true,
        ready_to_enforce: reasons.is_empty(),
        reasons,
        network: None,
    }
}

/// The anomaly log and the live anomalies.
pub struct Anomalies {
    pub state_dir: PathBuf,
    /// Last sequence number appended (updated before each publish).
    pub last_seq: Arc<AtomicU64>,
    pub hub: Arc<Hub<Anomaly>>,
}

impl AnomalySource for Anomalies {
    fn read_after(&self, seq: u64, limit: usize) -> Result<Vec<Anomaly>, String> {
        let last = self.last_seq.load(Ordering::Acquire);
        let mut records =
            log::read_after(&self.state_dir, seq, limit).map_err(|e| e.to_string())?;
        // Only what was published: a record being appended right now is delivered live.
        records.retain(|a| a.seq <= last);
        Ok(records)
    }

    fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    fn subscribe(&self) -> Subscription<Anomaly> {
        self.hub.subscribe()
    }
}

pub struct Events {
    pub hub: Arc<Hub<Event>>,
}

impl EventSource for Events {
    fn subscribe(&self) -> Subscription<Event> {
        self.hub.subscribe()
    }
}

/// Drift controls.
pub struct Controls {
    pub store: Arc<RwLock<ProfileStore>>,
    pub state_dir: PathBuf,
}

impl Control for Controls {
    fn accept(&self, seq: u64) -> Result<AcceptOutcome, ControlError> {
        let anomaly = log::get(&self.state_dir, seq)
            .map_err(|e| ControlError::Internal(e.to_string()))?
            .ok_or(ControlError::UnknownSeq(seq))?;
        let (key, fold) = fold_of(&anomaly)?;
        let fold = fold.clone();
        let now = Timestamp::now();
        let mut store = self.store.write().expect("profile store lock");
        let changed = store
            .with_profile(&key, |p| {
                let before = allowed_behaviour(p);
                fold_into(p, &fold, now);
                let changed = allowed_behaviour(p) != before;
                (changed, changed)
            })
            .ok_or_else(|| ControlError::NoProfile(key.clone()))?;
        tracing::info!(seq, profile = %key, changed, "anomaly accepted into the baseline");
        Ok(AcceptOutcome {
            profile: key,
            fold,
            changed,
        })
    }

    fn relearn(&self, namespace: &str, workload: &str) -> Result<Vec<ProfileKey>, ControlError> {
        let keys = self.store.write().expect("profile store lock").relearn(
            namespace,
            workload,
            Timestamp::now(),
        );
        if keys.is_empty() {
            return Err(ControlError::NoWorkload {
                namespace: namespace.to_string(),
                workload: workload.to_string(),
            });
        }
        tracing::info!(
            namespace,
            workload,
            profiles = keys.len(),
            "learning restarted"
        );
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::workload::WorkloadKind;

    #[test]
    fn graduation_needs_ready_full_and_quiet() {
        let key = ProfileKey {
            namespace: "ns".into(),
            workload: "w".into(),
            container: "c".into(),
        };
        let mut p = ApplicationProfile::new(
            key.clone(),
            WorkloadKind::Deployment,
            60,
            Timestamp::lit("2026-11-26T00:00:00Z"),
        );
        let now = SystemTime::now();
        let day = Duration::from_secs(86400);
        let mut fired = std::collections::HashMap::new();
        let g = graduation(&p, &fired, day, now);
        assert!(!g.ready_to_enforce);
        assert!(g.reasons[0].contains("still learning"));
        p.advance(Timestamp::lit("2026-11-26T00:01:00Z"));
        assert!(graduation(&p, &fired, day, now).ready_to_enforce);
        fired.insert(
            (key.clone(), RuleId::UnexpectedEgress),
            now - Duration::from_secs(300),
        );
        let g = graduation(&p, &fired, day, now);
        assert!(!g.ready_to_enforce);
        assert!(
            g.reasons[0].contains("unexpected-egress anomaly 5m ago"),
            "{:?}",
            g.reasons
        );
        fired.insert((key.clone(), RuleId::UnexpectedEgress), now - 2 * day);
        fired.insert((key.clone(), RuleId::UnexpectedDns), now);
        assert!(
            graduation(&p, &fired, day, now).ready_to_enforce,
            "old, or not blocking"
        );
        p.mark_partial(
            "started before the sensor",
            Timestamp::lit("2026-11-26T00:02:00Z"),
        );
        assert!(!graduation(&p, &fired, day, now).ready_to_enforce);
    }
}
