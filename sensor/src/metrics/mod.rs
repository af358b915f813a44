//! Metrics and health of the agent (`sensor run --metrics-listen ADDR`): Prometheus text on
//! `/metrics`, liveness on `/healthz`, readiness on `/readyz` (`docs/metrics.md`).
//!
//! Values are read when scraped, from what the agent keeps anyway: capture's counters and the
//! kernel's `STATS` map ([`capture`]), the profile store, anomaly log and gRPC hubs ([`agent`]),
//! `/proc/self` ([`process`]), uname ([`info`]). The only additions to the running agent are
//! atomic increments off the per-event path: one per anomaly record ([`anomalies`]), one per
//! unparsable DNS payload by workload ([`workload`]), and the event loop's heartbeat
//! ([`health`]).
//!
//! - [`listen`]: the `--metrics-listen` address;
//! - [`families`]: writing families with prometheus-client's encoder;
//! - [`http`]: the endpoint (hyper 1).

pub mod anomalies;
pub mod capture;
pub mod cluster;
pub mod daemon;
pub mod families;
pub mod health;
pub mod http;
pub mod info;
pub mod listen;
pub mod process;

use std::{
    fmt,
    net::SocketAddr,
    path::Path,
    sync::{Arc, OnceLock},
};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder, registry::Registry};

use crate::cluster::status::ClusterStatus;

pub use self::{
    anomalies::AnomalyCounts,
    capture::{CaptureSource, KernelStats},
    daemon::DaemonSource,
    health::Health,
    info::KernelInfo,
};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics endpoint: binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics: a second handle on the kernel STATS map: {0}")]
    StatsMap(#[from] aya::maps::MapError),
}

/// Everything `/metrics`, `/healthz` and `/readyz` read. The parts of the agent appear as it
/// starts; a scrape before that shows what exists (health, process, build and kernel facts).
pub struct Metrics {
    pub health: Arc<Health>,
    pub anomalies: Arc<AnomalyCounts>,
    capture: Arc<OnceLock<CaptureSource>>,
    agent: Arc<OnceLock<DaemonSource>>,
    cluster: Arc<OnceLock<Arc<ClusterStatus>>>,
    registry: Registry,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new(health: Health, kernel: KernelInfo) -> Self {
        let health = Arc::new(health);
        let anomalies = Arc::new(AnomalyCounts::default());
        let capture = Arc::new(OnceLock::new());
        let agent = Arc::new(OnceLock::new());
        let cluster = Arc::new(OnceLock::new());
        let mut registry = Registry::default();
        // Scrape order: health, capture, agent, process, facts.
        registry.register_collector(Box::new(HealthCollector(health.clone())));
        registry.register_collector(Box::new(CaptureCollector(capture.clone())));
        registry.register_collector(Box::new(DaemonCollector {
            source: agent.clone(),
            anomalies: anomalies.clone(),
        }));
        registry.register_collector(Box::new(ClusterCollector(cluster.clone())));
        registry.register_collector(Box::new(ProcessCollector));
        registry.register_collector(Box::new(InfoCollector(kernel)));
        Self {
            health,
            anomalies,
            capture,
            agent,
            cluster,
            registry,
        }
    }

    /// Facts of the running kernel, BTF read from `btf`.
    pub fn for_agent(btf: &Path) -> Self {
        Self::new(Health::default(), KernelInfo::read(btf))
    }

    /// Capture has started. Set once; later calls are ignored.
    pub fn set_capture(&self, source: CaptureSource) {
        let _ = self.capture.set(source);
    }

    /// The agent's store, log and hubs exist. Set once; later calls are ignored.
    pub fn set_agent(&self, source: DaemonSource) {
        let _ = self.agent.set(source);
    }

    /// Cluster profiles are on. Set once; later calls are ignored.
    pub fn set_cluster(&self, status: Arc<ClusterStatus>) {
        let _ = self.cluster.set(status);
    }

    /// The Prometheus text exposition (format 0.0.4) of everything.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[derive(Debug)]
struct HealthCollector(Arc<Health>);

impl Collector for HealthCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let ready = self.0.readiness();
        families::gauges(
            &mut enc,
            "sensor_ready",
            "Readiness checks of /readyz: 1 passes, 0 fails (state_loaded, probes_attached, \
             grpc_serving, not_stopping)",
            ready
                .checks()
                .into_iter()
                .map(|(check, ok)| (families::labels([("check", check)]), i64::from(ok))),
        )?;
        families::gauge(
            &mut enc,
            "sensor_event_loop_heartbeat_age_seconds",
            "Seconds since the event loop last ticked (it ticks every 100 ms; /healthz fails \
             past 30 s); 0 before the loop starts",
            self.0.since_beat().map_or(0.0, |d| d.as_secs_f64()),
        )
    }
}

#[derive(Debug)]
struct CaptureCollector(Arc<OnceLock<CaptureSource>>);

impl Collector for CaptureCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        match self.0.get() {
            Some(source) => capture::encode(&source.counts(), &mut enc),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct DaemonCollector {
    source: Arc<OnceLock<DaemonSource>>,
    anomalies: Arc<AnomalyCounts>,
}

impl Collector for DaemonCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        match self.source.get() {
            Some(source) => daemon::encode(&source.counts(&self.anomalies), &mut enc),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct ClusterCollector(Arc<OnceLock<Arc<ClusterStatus>>>);

impl Collector for ClusterCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        match self.0.get() {
            Some(status) => cluster::encode(status, &mut enc),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        match process::read() {
            Some(p) => process::encode(&p, &mut enc),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct InfoCollector(KernelInfo);

impl Collector for InfoCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        info::encode(&self.0, &mut enc)
    }
}

#[cfg(test)]
mod tests;
