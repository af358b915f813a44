//! Liveness and readiness of the agent, for `/healthz` and `/readyz`.
//!
//! Liveness is a heartbeat: the event loop's 100 ms sweep tick stores the time (one atomic
//! store), and a heartbeat older than [`STALE_AFTER`] means the loop is stuck. The endpoint is
//! served by other tasks on the runtime's worker threads, so it still answers (503) when the
//! loop is not. Readiness is three facts set once by the start-up sequence (state loaded, probes
//! attached, gRPC listening), cleared again when the agent stops.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// The loop ticks every 100 ms and hands slow work (fsync) to blocking threads: thirty seconds
/// without a tick is a stuck agent, not a busy one.
pub const STALE_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Health {
    started: Instant,
    stale_after: Duration,
    /// Milliseconds since `started` of the last beat, plus one (0: the loop has not run yet).
    last_beat: AtomicU64,
    state_loaded: AtomicBool,
    probes_attached: AtomicBool,
    grpc_serving: AtomicBool,
    stopping: AtomicBool,
}

/// `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// The event loop has not started yet (loading state and probes): alive.
    Starting,
    Alive {
        since_beat: Duration,
    },
    Stalled {
        since_beat: Duration,
    },
}

impl Liveness {
    pub fn is_ok(self) -> bool {
        !matches!(self, Liveness::Stalled { .. })
    }
}

/// Whether the loop is alive, given the age of its last beat (`None`: no beat yet).
pub fn liveness(since_beat: Option<Duration>, stale_after: Duration) -> Liveness {
    match since_beat {
        None => Liveness::Starting,
        Some(age) if age > stale_after => Liveness::Stalled { since_beat: age },
        Some(age) => Liveness::Alive { since_beat: age },
    }
}

/// `/readyz`: each check and whether it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub state_loaded: bool,
    pub probes_attached: bool,
    pub grpc_serving: bool,
    pub stopping: bool,
}

impl Readiness {
    /// The checks in a fixed order, as (name, passes): also the `check` label of `sensor_ready`.
    pub fn checks(&self) -> [(&'static str, bool); 4] {
        [
            ("state_loaded", self.state_loaded),
            ("probes_attached", self.probes_attached),
            ("grpc_serving", self.grpc_serving),
            ("not_stopping", !self.stopping),
        ]
    }

    /// The names of the failing checks (empty: ready).
    pub fn missing(&self) -> Vec<&'static str> {
        self.checks()
            .into_iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| name)
            .collect()
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::new(STALE_AFTER)
    }
}

impl Health {
    pub fn new(stale_after: Duration) -> Self {
        Self {
            started: Instant::now(),
            stale_after,
            last_beat: AtomicU64::new(0),
            state_loaded: AtomicBool::new(false),
            probes_attached: AtomicBool::new(false),
            grpc_serving: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        }
    }

    /// The event loop is alive now.
    pub fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_beat.store(ms + 1, Ordering::Relaxed);
    }

    /// Age of the last beat; `None` before the first.
    pub fn since_beat(&self) -> Option<Duration> {
        match self.last_beat.load(Ordering::Relaxed) {
            0 => None,
            beat => Some(
                self.started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(beat - 1)),
            ),
        }
    }

    pub fn liveness(&self) -> Liveness {
        liveness(self.since_beat(), self.stale_after)
    }

    pub fn readiness(&self) -> Readiness {
        Readiness {
            state_loaded: self.state_loaded.load(Ordering::Relaxed),
            probes_attached: self.probes_attached.load(Ordering::Relaxed),
            grpc_serving: self.grpc_serving.load(Ordering::Relaxed),
            stopping: self.stopping.load(Ordering::Relaxed),
        }
    }

    pub fn set_state_loaded(&self) {
        self.state_loaded.store(true, Ordering::Relaxed);
    }

    pub fn set_probes_attached(&self, attached: bool) {
        self.probes_attached.store(attached, Ordering::Relaxed);
    }

    pub fn set_grpc_serving(&self, serving: bool) {
        self.grpc_serving.store(serving, Ordering::Relaxed);
    }

    /// The agent is shutting down: no longer ready (a load balancer stops sending work).
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_is_starting_then_alive_then_stalled() {
        let stale = Duration::from_secs(30);
        assert_eq!(liveness(None, stale), Liveness::Starting);
        assert!(liveness(None, stale).is_ok());
        let fresh = liveness(Some(Duration::from_millis(100)), stale);
        assert!(matches!(fresh, Liveness::Alive { .. }) && fresh.is_ok());
        let old = liveness(Some(Duration::from_secs(31)), stale);
        assert!(matches!(old, Liveness::Stalled { .. }) && !old.is_ok());
    }

    #[test]
    fn a_beat_ages_and_goes_stale() {
        let h = Health::new(Duration::from_millis(50));
        assert_eq!(h.liveness(), Liveness::Starting);
        h.beat();
        assert!(matches!(h.liveness(), Liveness::Alive { .. }));
        std::thread::sleep(Duration::from_millis(80));
        assert!(
            matches!(h.liveness(), Liveness::Stalled { since_beat } if since_beat >= Duration::from_millis(80))
        );
        h.beat();
        assert!(h.liveness().is_ok());
    }

    #[test]
    fn ready_only_when_every_check_passes() {
        let h = Health::default();
        assert_eq!(
            h.readiness().missing(),
            ["state_loaded", "probes_attached", "grpc_serving"]
        );
        h.set_state_loaded();
        h.set_probes_attached(true);
        assert_eq!(h.readiness().missing(), ["grpc_serving"]);
        h.set_grpc_serving(true);
        assert!(h.readiness().missing().is_empty());
        h.set_stopping();
        assert_eq!(h.readiness().missing(), ["not_stopping"]);
    }
}
