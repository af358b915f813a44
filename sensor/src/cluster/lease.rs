//! Leader election on a `coordination.k8s.io/v1` Lease, the way client-go's leaderelection
//! does it: the holder renews `renewTime` every round; another candidate takes the lease over
//! only after it has seen the same record unchanged for a whole lease duration on its own
//! clock (never comparing clocks across nodes), and every write is a replace with the
//! resourceVersion read, so two candidates racing get one success and one 409.
//!
//! A leader acts only while its last successful renewal is younger than the lease duration
//! minus a margin: a candidate that takes over waits at least a full duration after the last
//! record change it saw, which is after the old leader's last renewal, so the old leader has
//! stopped acting by then.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    chrono::Utc,
};
use kube::{Api, api::PostParams};

/// The merger's lease, in the sensor's namespace.
pub const LEASE_NAME: &str = "sensor-profile-merger";

pub struct Elector {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
    /// The last (holder, renewTime) seen and when it was first seen.
    observed: Option<((String, String), Instant)>,
    leading_since_renewal: Option<Instant>,
    /// Leadership changes seen by this candidate.
    pub transitions_seen: u64,
}

impl Elector {
    pub fn new(api: Api<Lease>, identity: &str, duration: Duration) -> Elector {
        Elector {
            api,
            identity: identity.to_string(),
            duration,
            observed: None,
            leading_since_renewal: None,
            transitions_seen: 0,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this candidate may act as the leader now.
    pub fn is_leading(&self) -> bool {
        let margin = (self.duration / 5).max(Duration::from_millis(500));
        self.leading_since_renewal
            .is_some_and(|t| t.elapsed() + margin < self.duration)
    }

    /// One round: acquire or renew. Returns the holder as last seen (`None`: no lease).
    pub async fn round(&mut self) -> Result<Option<String>, kube::Error> {
        let now = Instant::now();
        let lease = self.api.get_opt(LEASE_NAME).await?;
        let Some(mut lease) = lease else {
            let lease = self.record(Lease::default(), 0);
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.won(now);
                    Ok(Some(self.identity.clone()))
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    self.leading_since_renewal = None;
                    Ok(None)
                }
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let renewed = spec
            .renew_time
            .as_ref()
            .map(|t| t.0.to_rfc3339())
            .unwrap_or_default();
        let record = (holder.clone(), renewed);
        match &self.observed {
            Some((seen, _)) if *seen == record => {}
            _ => self.observed = Some((record, now)),
        }
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.duration);
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|(_, seen)| now.duration_since(*seen) >= duration);
        let transitions = spec.lease_transitions.unwrap_or(0);
        if holder == self.identity || holder.is_empty() || expired {
            let transitions = if holder == self.identity {
                transitions
            } else {
                transitions.saturating_add(1)
            };
            let acquire = if holder == self.identity {
                spec.acquire_time.clone()
            } else {
                None
            };
            lease = self.record(lease, transitions);
            if let Some(t) = acquire
                && let Some(s) = lease.spec.as_mut()
            {
                s.acquire_time = Some(t);
            }
            return match self
                .api
                .replace(LEASE_NAME, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => {
                    if holder != self.identity {
                        self.transitions_seen += 1;
                    }
                    self.won(now);
                    Ok(Some(self.identity.clone()))
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    self.leading_since_renewal = None;
                    Ok(Some(holder))
                }
                Err(e) => Err(e),
            };
        }
        self.leading_since_renewal = None;
        Ok(Some(holder))
    }

    /// Gives the lease up (a clean stop), as client-go's `ReleaseOnCancel`: the holder is
    /// emptied, so the next candidate's round takes it at once instead of waiting a whole
    /// duration. Nothing happens unless this candidate holds it.
    pub async fn release(&mut self) -> Result<bool, kube::Error> {
        if self.leading_since_renewal.take().is_none() {
            return Ok(false);
        }
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            return Ok(false);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Utc::now()));
        self.api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await?;
        Ok(true)
    }

    fn won(&mut self, at: Instant) {
        self.leading_since_renewal = Some(at);
    }

    /// `lease` held by this candidate from now (its resourceVersion kept for the replace).
    fn record(&self, mut lease: Lease, transitions: i32) -> Lease {
        let now = MicroTime(Utc::now());
        lease.metadata = ObjectMeta {
            name: Some(LEASE_NAME.to_string()),
            ..lease.metadata
        };
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
        });
        lease
    }
}
