//! The agent's side of the live NetworkPolicy audit (`--audit-netpol DIR`): polls the policy
//! directory, judges each new flow of a workload (connect, UDP send, accept events - never
//! packets) once under the current set, and reports the ones the set would deny through the
//! anomaly engine as `would-deny`.
//!
//! Judged whatever the profile's status: the audit is about the candidate policies, not the
//! baseline, so a learning workload is audited too (its drafts are what is being audited).

use std::net::IpAddr;
use std::path::Path;
use std::sync::{
    Arc, RwLock,
    atomic::{AtomicU64, Ordering},
};

use tracing::{info, warn};

use crate::learn::{
    learner::{self, Learner},
    store::ProfileStore,
};
use crate::{
    attribution::event::{Detail, Event},
    attribution::processes::ProcessTable,
    audit::netpol_eval,
    audit::{
        PolicyFileError,
        flows::Direction,
        live::{AuditStatus, FlowKey, Judged, PolicyDir, Reload, verdict},
    },
    detect::{
        engine::{Engine, Story},
        fold::Observation,
        model::Anomaly,
    },
    profile::{
        builder::{self, FlowId},
        model::{self, Flow, RateStats},
    },
};

/// The audit status the API reads (`None`: no audit set).
pub type SharedAuditStatus = Arc<RwLock<Option<AuditStatus>>>;

/// Flows remembered as judged; past it they are judged at every occurrence (and counted).
const JUDGED_CAPACITY: usize = 65_536;

pub struct LiveAudit {
    policies: PolicyDir,
    judged: Judged,
    status: SharedAuditStatus,
    /// Warned once that the judged set is full.
    warned_full: bool,
    /// Flows judged while the judged set was full (`/metrics`).
    pub overflow: Arc<AtomicU64>,
}

impl LiveAudit {
    pub fn start(dir: &Path, status: SharedAuditStatus) -> Result<Self, PolicyFileError> {
        let policies = PolicyDir::load(dir)?;
        let audit = Self {
            policies,
            judged: Judged::new(JUDGED_CAPACITY),
            status,
            warned_full: false,
            overflow: Arc::default(),
        };
        audit.publish_status("loaded");
        Ok(audit)
    }

    fn publish_status(&self, what: &str) {
        let loaded = self.policies.policies();
        info!(
            dir = %self.policies.dir().display(),
            policies = loaded.policies.len(),
            files = loaded.files,
            "audit NetworkPolicies {what}: {} policies",
            loaded.policies.len()
        );
        *self.status.write().expect("audit status lock") = Some(AuditStatus {
            policies: loaded.policies.len(),
            since: self.policies.loaded_at(),
        });
    }

    /// Reloads the set when its directory changed.
    pub fn poll(&mut self) {
        match self.policies.poll() {
            Reload::Unchanged => {}
            Reload::Reloaded => {
                self.judged.clear();
                self.publish_status("reloaded");
            }
            Reload::Failed(e) => warn!(
                "audit NetworkPolicies not reloaded, keeping the previous {} policies: {e}",
                self.policies.policies().policies.len()
            ),
        }
    }

    /// Judges `ev` when it is a flow event of a profiled container seen for the first time
    /// under the current set.
    pub fn on_event(
        &mut self,
        ev: &Event,
        store: &RwLock<ProfileStore>,
        learner: &Learner,
        engine: &mut Engine,
        processes: &ProcessTable,
        publish: &mut dyn FnMut(&Anomaly),
    ) {
        let Some((direction, ip, port, protocol, names)) = observed(&ev.detail) else {
            return;
        };
        let Some((key, _)) = learner::profile_key(&ev.who) else {
            return;
        };
        let ip = ip.to_canonical();
        let flow_key = FlowKey {
            namespace: key.namespace.clone(),
            workload: key.workload.clone(),
            direction,
            peer: ip,
            port,
            protocol: match protocol {
                model::Protocol::Tcp => netpol_eval::Protocol::Tcp,
                model::Protocol::Udp => netpol_eval::Protocol::Udp,
            },
        };
        let store = store.read().expect("profile store lock");
        // No profile yet: not judged, so the next occurrence is judged once it exists.
        let Some(profile) = store.get(&key) else {
            return;
        };
        if !self.judged.first_time(&flow_key) {
            return;
        }
        self.overflow
            .store(self.judged.overflow(), Ordering::Relaxed);
        if self.judged.overflow() > 0 && !self.warned_full {
            self.warned_full = true;
            warn!(
                "audit NetworkPolicies: {JUDGED_CAPACITY} flows judged, the set is full: further \
                 new flows are judged at every occurrence (counted in \
                 sensor_netpol_audit_judged_overflow_total)"
            );
        }
        let flow = Flow {
            ip,
            port,
            protocol,
            dns_names: names.to_vec(),
            peer: learner.peer(&ip),
            connections: 1,
            bytes_sent: 0,
            bytes_recv: 0,
            rate: RateStats::default(),
            first_seen: learner::event_time(ev),
            last_seen: learner::event_time(ev),
        };
        let Some(recorded) = verdict::recorded_flow(profile, direction, flow) else {
            return;
        };
        let dir = self.policies.dir().display().to_string();
        let Some(finding) = verdict::would_deny(&recorded, self.policies.policies(), &dir) else {
            return;
        };
        let story = Story {
            who: &ev.who,
            time: &ev.time,
            pid: ev.pid,
            processes,
            agent: None,
        };
        let observed = Observation::Flow {
            id: FlowId {
                direction: match direction {
                    Direction::Egress => builder::Direction::Egress,
                    Direction::Ingress => builder::Direction::Ingress,
                },
                ip,
                port,
                protocol,
            },
            names,
        };
        if let Err(e) = engine.report(finding, &observed, &story, profile, publish) {
            warn!("anomaly log: {e}");
        }
    }
}

/// Direction, peer address, port (remote for egress, local for ingress), protocol and the
/// names the container resolved the peer to, of a flow event.
fn observed(d: &Detail) -> Option<(Direction, IpAddr, u16, model::Protocol, &[String])> {
    let protocol = |p: &str| match p {
        "tcp" => Some(model::Protocol::Tcp),
        "udp" => Some(model::Protocol::Udp),
        _ => None,
    };
    match d {
        Detail::Connect {
            protocol: p,
            remote_ip,
            remote_port,
            remote_names,
            ..
        } => Some((
            Direction::Egress,
            *remote_ip,
            *remote_port,
            protocol(p)?,
            remote_names.as_slice(),
        )),
        Detail::Accept {
            protocol: p,
            remote_ip,
            local_port,
            ..
        } => Some((
            Direction::Ingress,
            *remote_ip,
            *local_port,
            protocol(p)?,
            &[],
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_events_give_direction_peer_and_port() {
        let connect = Detail::Connect {
            protocol: "udp",
            remote_ip: "10.0.0.1".parse().unwrap(),
            remote_port: 53,
            origin: "udp-send",
            remote_names: Vec::new(),
        };
        let (d, ip, port, p, _) = observed(&connect).unwrap();
        assert_eq!(
            (d, ip.to_string(), port, p),
            (
                Direction::Egress,
                "10.0.0.1".into(),
                53,
                model::Protocol::Udp
            )
        );
        let accept = Detail::Accept {
            protocol: "tcp",
            remote_ip: "10.0.0.2".parse().unwrap(),
            local_ip: "10.0.0.3".parse().unwrap(),
            local_port: 8080,
        };
        let (d, ip, port, p, _) = observed(&accept).unwrap();
        assert_eq!(
            (d, ip.to_string(), port, p),
            (
                Direction::Ingress,
                "10.0.0.2".into(),
                8080,
                model::Protocol::Tcp
            )
        );
    }
}
