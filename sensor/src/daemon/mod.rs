//! `sensor run`: the agent. Capture -> attribution -> profiles (learning, then ready) ->
//! persisted state and drafts, served over gRPC. Shuts down cleanly on SIGINT/SIGTERM, flushing
//! state; a `kill -9` loses at most one flush interval.

#[cfg(test)]
mod accept_tests;
pub mod capture;
pub mod config;
pub mod config_error;
pub mod doctor;
pub mod listen;
pub mod losses;
pub mod preflight;
pub mod services;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use self::config::Settings;
use crate::learn::{
    learner::{self, Learner, ResolvConf, parse_resolv_conf},
    package_scan::PackageScanner,
    store::ProfileStore,
};
use crate::{
    ai::{
        Catalogue,
        tools::{Observation, SharedTools},
    },
    api::{self, Hub, Services, Transport},
    attribution::event::Event,
    attribution::kube::KubeMetadata,
    attribution::pipeline::Pipeline,
    capture::syscall_sets::{NamedSyscalls, named},
    daemon::capture::{Capture, CaptureOptions},
    detect::{
        engine::{Engine, Story},
        log::AnomalyLog,
        model::Anomaly,
    },
    metrics::{AnomalyCounts, CaptureSource, DaemonSource, Metrics},
    profile::{
        model::{PROFILE_VERSION, Timestamp},
        persist::StateDir,
    },
};

/// How often syscall bitmaps and flow counters are read into the profiles.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// RFC 3339 UTC, seconds precision: the profile timestamps.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

pub async fn run(mut settings: Settings) -> Result<()> {
    // The endpoint first: /readyz answers 503 while state and probes load, and a taken port
    // fails before anything slow.
    let metrics = Arc::new(Metrics::for_agent(&settings.btf));
    let _endpoint = match settings.metrics_listen {
        Some(addr) => Some(crate::metrics::http::start(addr, metrics.clone()).await?),
        None => None,
    };
    let state = StateDir::new(&settings.state_dir);
    state.create().context("preparing the state directory")?;
    let loaded = state.load_profiles();
    let (restored, quarantined) = (loaded.profiles, loaded.quarantined);
    for key in &loaded.upgraded {
        info!(profile = %key, "profile upgraded to format version {PROFILE_VERSION}: the runtime's setup syscalls (mount, unshare, pivot_root, ...) left the workload's set; its drafts are rewritten");
    }
    if let Some(dir) = &settings.install_seccomp_dir {
        crate::profile::persist::remove_stale_temp_files(&dir.join("sensor"));
    }
    let log = AnomalyLog::open(&settings.state_dir, settings.anomaly_retention)
        .context("opening the anomaly log")?;
    info!(
        state_dir = %settings.state_dir.display(),
        restored = restored.len(),
        quarantined = quarantined.len(),
        next_anomaly = log.next_seq(),
        "state loaded"
    );
    metrics.health.set_state_loaded();
    let store = Arc::new(RwLock::new(ProfileStore::new(
        settings.learning_period.as_secs(),
        restored,
    )));
    {
        let mut store = store.write().expect("profile store lock");
        for key in &loaded.upgraded {
            store.mark_dirty(key);
        }
    }
    // Before capture, so the first list races the probes' loading, not the first events.
    let pod_metadata = KubeMetadata::start(&settings.kubernetes, &settings.node_name);

    let Capture {
        mut collector,
        mut events,
        mut pipeline,
        preexisting,
        cgroup2,
    } = Capture::start(&CaptureOptions {
        kubelet: settings.kubelet.clone(),
        proc_root: settings.proc_root.clone(),
        btf_path: settings.btf.clone(),
        ring_buffer_bytes: settings.ring_buffer_bytes,
        patterns: settings.patterns.clone(),
        node_name: settings.node_name.clone(),
    })?;
    if let Some(m) = &pod_metadata {
        pipeline.attributor.set_pod_metadata(m.clone());
    }
    // Ready once the probes are in: a probe that blocks the start never gets here, an
    // optional one the kernel lacks is reported by sensor_probe_attached.
    metrics
        .health
        .set_probes_attached(collector.probes.status.iter().all(|p| !p.blocks_start()));
    match CaptureSource::of(
        &collector,
        pipeline.dns_unparsed_by_workload().clone(),
        settings.ring_buffer_bytes,
    ) {
        Ok(source) => metrics.set_capture(source),
        Err(e) => warn!("metrics: capture counters unavailable: {e}"),
    }
    // Cluster-wide profiles: this node's pieces to the API (docs/cluster.md).
    let mut cluster = match (&pod_metadata, settings.cluster_profiles) {
        (Some(m), true) => crate::cluster::Cluster::start(
            m,
            crate::cluster::ClusterSettings {
                writer: crate::cluster::writer::WriterSettings::with_interval(
                    &settings.node_name,
                    settings.cluster_piece_interval,
                ),
                leader: crate::cluster::leader::LeaderSettings {
                    identity: settings.node_name.clone(),
                    namespace: settings.cluster_namespace.clone(),
                    lease_duration: settings.cluster_lease_duration,
                },
                install_dir: settings.install_seccomp_dir.clone(),
            },
            store.clone(),
        ),
        _ => None,
    };
    if let Some(c) = &cluster {
        metrics.set_cluster(c.status.clone());
        // The merged profiles are installed instead of this node's own (cluster/install.rs).
        settings.install_seccomp_dir = None;
    }
    // The AI catalogue every stage classifies with (packages, peers, tools, rules, drafts).
    let catalogue = Catalogue::embedded();
    let learner = Learner::new(store.clone(), preexisting, settings.node_name.clone())
        .with_pod_metadata(pod_metadata)
        .with_package_scanner(PackageScanner::new(
            settings.proc_root.clone(),
            store.clone(),
            catalogue,
        ));
    // Quiet for an hour: the next occurrence is a new anomaly again.
    let engine = Engine::new(
        log,
        settings.node_name.clone(),
        settings.anomaly_window,
        Duration::from_secs(3600),
        catalogue,
    );
    engine.seed_last_fired(settings.graduation_window);
    let netpol_status = crate::audit::live::runner::SharedAuditStatus::default();
    let netpol = match &settings.audit_netpol {
        Some(dir) => Some(crate::audit::live::runner::LiveAudit::start(
            dir,
            netpol_status.clone(),
        )?),
        None => None,
    };
    let last_seq = Arc::new(AtomicU64::new(engine.log.last_seq()));
    let tools = SharedTools::default();
    let anomaly_hub = Arc::new(Hub::new(HUB_QUEUE));
    let event_hub = Arc::new(Hub::new(HUB_QUEUE));

    let services = Services::new(Arc::new(services::Profiles {
        store: store.clone(),
        node: settings.node_name.clone(),
        last_fired: engine.last_fired.clone(),
        graduation_window: settings.graduation_window,
        netpol_audit: netpol_status,
    }))
    .with_anomalies(Arc::new(services::Anomalies {
        state_dir: settings.state_dir.clone(),
        last_seq: last_seq.clone(),
        hub: anomaly_hub.clone(),
    }))
    .with_events(Arc::new(services::Events {
        hub: event_hub.clone(),
    }))
    .with_control(Arc::new(services::Controls {
        store: store.clone(),
        state_dir: settings.state_dir.clone(),
    }))
    .with_tools(tools.clone())
    .with_catalogue(catalogue)
    .with_info(api::info::agent_info(
        &settings.node_name,
        &crate::capture::kernel::info::KernelInfo::read(&settings.btf),
        &cgroup2.mount_point,
        &collector.probes.status,
    ));
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = metrics.health.clone();
    let api_task = tokio::spawn(api::serve_reporting(
        settings.grpc_listen.clone(),
        Transport {
            tls: settings.tls.clone(),
            insecure_tcp: settings.insecure_tcp,
        },
        services,
        async move {
            let _ = api_stopped.await;
        },
        move || serving.set_grpc_serving(true),
    ));
    let mut agent = Agent {
        settings,
        state,
        store,
        learner,
        engine,
        anomaly_hub,
        event_hub,
        last_seq,
        losses: losses::LossReporter::default(),
        anomaly_counts: metrics.anomalies.clone(),
        netpol,
        tools,
        catalogue,
    };
    metrics.set_agent(DaemonSource {
        store: agent.store.clone(),
        last_seq: agent.last_seq.clone(),
        anomaly_hub: agent.anomaly_hub.clone(),
        event_hub: agent.event_hub.clone(),
        netpol_audit_overflow: agent
            .netpol
            .as_ref()
            .map(|a| a.overflow.clone())
            .unwrap_or_default(),
        tools: agent.tools.clone(),
    });
    info!(listen = %agent.settings.grpc_listen, "agent running");

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sweep = tokio::time::interval(Duration::from_millis(100));
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    let mut window = tokio::time::interval(agent.settings.rate_window);
    window.tick().await; // the first tick is immediate: skip it, a window is a full period
    let mut flush = tokio::time::interval(agent.settings.flush_interval);
    let mut orphans = tokio::time::interval(Duration::from_secs(60));
    let mut out = Vec::new();
    let mut api_task = Some(api_task);
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                pipeline.handle(ev, &mut collector, &mut out);
                while out.len() < 1024 {
                    match events.try_recv() {
                        Ok(ev) => pipeline.handle(ev, &mut collector, &mut out),
                        Err(_) => break,
                    }
                }
            }
            _ = sweep.tick() => {
                metrics.health.beat();
                pipeline.sweep(&mut collector, &mut out);
            }
            _ = poll.tick() => {
                agent.poll_kernel(&mut pipeline, &collector);
                agent.losses.check(&collector.snapshot());
                if let Some(audit) = agent.netpol.as_mut() {
                    audit.poll();
                }
            }
            _ = window.tick() => agent.close_window(&mut pipeline),
            _ = flush.tick() => {
                agent.flush();
                // Serialising profiles and serving requests allocate and free a lot; hand the
                // freed pages back so the resident size tracks what is really held.
                crate::daemon::capture::release_freed_memory();
            }
            _ = orphans.tick() => pipeline.collect_orphans(&mut collector, &mut out),
            result = async { api_task.as_mut().expect("api task").await }, if api_task.is_some() => {
                api_task = None;
                metrics.health.set_grpc_serving(false);
                match result {
                    Ok(Ok(())) => warn!("gRPC server stopped"),
                    Ok(Err(e)) => return Err(e).context("gRPC server"),
                    Err(e) => return Err(e).context("gRPC server task"),
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
        agent.feed(&pipeline, &mut out);
    }

    metrics.health.set_stopping();
    info!("shutting down: flushing state");
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Ok(ev) = events.try_recv() {
        pipeline.handle(ev, &mut collector, &mut out);
    }
    agent.feed(&pipeline, &mut out);
    agent.poll_kernel(&mut pipeline, &collector);
    agent.flush_now();
    if let Some(c) = cluster.as_mut() {
        c.stop(Duration::from_secs(3)).await;
    }
    let _ = stop_api.send(());
    if let Some(task) = api_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let snapshot = collector.snapshot();
    info!(events = ?snapshot.events, lost = ?snapshot.lost, "stopped");
    Ok(())
}

/// Per-subscriber queue of the anomaly and event streams (a slow client gets a gap notice).
const HUB_QUEUE: usize = 4096;

struct Agent {
    settings: Settings,
    state: StateDir,
    store: Arc<RwLock<ProfileStore>>,
    learner: Learner,
    engine: Engine,
    anomaly_hub: Arc<Hub<Anomaly>>,
    event_hub: Arc<Hub<Event>>,
    /// Last anomaly sequence number published (the stream's replay stops there).
    last_seq: Arc<AtomicU64>,
    /// Losses warned about as they happen.
    losses: losses::LossReporter,
    anomaly_counts: Arc<AnomalyCounts>,
    /// The live NetworkPolicy audit (`--audit-netpol`).
    netpol: Option<crate::audit::live::runner::LiveAudit>,
    /// AI agents' tool calls (shared with the API).
    tools: SharedTools,
    catalogue: &'static Catalogue,
}

/// Logged first, then published: a stream that replays the log up to `last_seq` and then
/// follows the hub sees every record once.
fn publisher<'a>(
    hub: &'a Hub<Anomaly>,
    last_seq: &'a AtomicU64,
    counts: &'a AnomalyCounts,
) -> impl FnMut(&Anomaly) + 'a {
    move |a: &Anomaly| {
        counts.record(a);
        last_seq.store(a.seq, Ordering::Release);
        hub.publish(a.clone());
    }
}

impl Agent {
    /// Attributed events: to the event stream, the learner, and the rules of ready profiles.
    fn feed(&mut self, pipeline: &Pipeline, out: &mut Vec<Event>) {
        let proc_root = self.settings.proc_root.clone();
        for ev in out.drain(..) {
            self.event_hub.publish(ev.clone());
            let key = learner::profile_key(&ev.who).map(|(key, _)| key);
            let mut observations = Vec::new();
            // Rules first: a ready baseline must be judged as it was before this event. Tool
            // calls before the rules: an exec that starts one is already part of it.
            if let Some(key) = &key {
                let store = self.store.read().expect("profile store lock");
                let profile = store.get(key);
                let processes = &pipeline.attributor.processes;
                let mut tools = self.tools.lock().expect("tool tracker lock");
                observations = tools.on_event(
                    &ev,
                    key,
                    profile.map_or(&[][..], |p| &p.agent_programs[..]),
                    processes,
                    self.catalogue,
                );
                if let Some(profile) = profile {
                    let mut publish =
                        publisher(&self.anomaly_hub, &self.last_seq, &self.anomaly_counts);
                    let chain = || ev.pid.and_then(|pid| tools.chain(pid, processes));
                    if let Err(e) =
                        self.engine
                            .on_event(&ev, profile, processes, &chain, &mut publish)
                    {
                        warn!("anomaly log: {e}");
                    }
                }
            }
            self.learner.on_event(&ev, |cgroup_id| {
                resolv_conf(pipeline, &proc_root, cgroup_id)
            });
            if let Some(key) = &key
                && !observations.is_empty()
            {
                record_tool_observations(&self.store, key, &observations, learner::event_time(&ev));
            }
            // After the learner: the container's profile exists by now.
            if let Some(audit) = self.netpol.as_mut() {
                let mut publish =
                    publisher(&self.anomaly_hub, &self.last_seq, &self.anomaly_counts);
                audit.on_event(
                    &ev,
                    &self.store,
                    &self.learner,
                    &mut self.engine,
                    &pipeline.attributor.processes,
                    &mut publish,
                );
            }
        }
    }

    /// Syscall bitmaps and flow counters into the profiles; new syscalls of ready ones to the
    /// rules.
    fn poll_kernel(&mut self, pipeline: &mut Pipeline, collector: &crate::capture::Collector) {
        let time = Timestamp::now();
        let now = time.to_string();
        let sets = collector.syscall_sets.read_all();
        let flows = collector.flows.read_all();
        let names: std::collections::HashMap<(u64, IpAddr), Vec<String>> = flows
            .iter()
            .map(|(k, _)| {
                let ip = crate::attribution::event::ip_from_mapped(k.remote_addr);
                (
                    (k.cgroup_id, ip),
                    pipeline.remote_names_of(k.cgroup_id, &ip),
                )
            })
            .collect();
        {
            let mut attribute = |cgroup_id: u64| pipeline.attributor.attribute(cgroup_id, 0);
            self.learner.on_syscall_sets(&sets, &mut attribute, time);
            self.learner.on_flows(
                &flows,
                &mut attribute,
                &|cgroup_id, ip| names.get(&(cgroup_id, *ip)).cloned().unwrap_or_default(),
                time,
            );
        }
        for (cgroup_id, set) in &sets {
            let who = pipeline.attributor.attribute(*cgroup_id, 0);
            let Some((key, _)) = learner::profile_key(&who) else {
                continue;
            };
            let store = self.store.read().expect("profile store lock");
            let Some(profile) = store.get(&key) else {
                continue;
            };
            // The workload's syscalls only: the runtime's setup is never judged.
            let NamedSyscalls { native, compat, .. } = named(set);
            let story = Story {
                who: &who,
                time: &now,
                pid: None,
                processes: &pipeline.attributor.processes,
                agent: None,
            };
            let mut publish = publisher(&self.anomaly_hub, &self.last_seq, &self.anomaly_counts);
            if let Err(e) = self
                .engine
                .on_syscalls(&native, &compat, profile, &story, &mut publish)
            {
                warn!("anomaly log: {e}");
            }
        }
    }

    /// A rate window ends: statistics for learning profiles, volume rules for ready ones.
    fn close_window(&mut self, pipeline: &mut Pipeline) {
        let time = Timestamp::now();
        let now = time.to_string();
        let seconds = self.settings.rate_window.as_secs();
        let totals = self.learner.close_window(seconds, time);
        for (key, id, total) in totals {
            let store = self.store.read().expect("profile store lock");
            let Some(profile) = store.get(&key) else {
                continue;
            };
            let who = key.attribution(profile.workload_kind);
            let story = Story {
                who: &who,
                time: &now,
                pid: None,
                processes: &pipeline.attributor.processes,
                agent: None,
            };
            let mut publish = publisher(&self.anomaly_hub, &self.last_seq, &self.anomaly_counts);
            if let Err(e) =
                self.engine
                    .on_flow_window(id, total, seconds, profile, &story, &mut publish)
            {
                warn!("anomaly log: {e}");
            }
        }
    }

    fn tick_anomalies(&mut self, force: bool) {
        let mut publish = publisher(&self.anomaly_hub, &self.last_seq, &self.anomaly_counts);
        if let Err(e) = self.engine.tick(force, &mut publish) {
            warn!("anomaly log: {e}");
        }
    }

    /// Lifecycle, repeat summaries, then profiles, drafts and the log to disk.
    fn flush(&mut self) {
        self.tick_anomalies(false);
        // The fsync runs beside the event loop: tens of MB take tens of ms.
        if let Some(job) = self.engine.log.sync_job() {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = job.run() {
                    warn!("anomaly log: {e}");
                }
            });
        }
        flush_state(&self.state, &self.store, &self.settings, self.catalogue);
    }

    /// At exit: everything durable before returning.
    fn flush_now(&mut self) {
        self.tick_anomalies(true);
        if let Err(e) = self.engine.log.sync() {
            warn!("anomaly log: {e}");
        }
        flush_state(&self.state, &self.store, &self.settings, self.catalogue);
    }
}

/// What the tool tracker learned, into the container's profile.
fn record_tool_observations(
    store: &RwLock<ProfileStore>,
    key: &crate::profile::model::ProfileKey,
    observations: &[Observation],
    now: Timestamp,
) {
    store
        .write()
        .expect("profile store lock")
        .update_existing(key, |p| {
            let mut changed = false;
            for o in observations {
                changed |= match o {
                    Observation::AgentProgram { command } => p.record_agent_program(command, now),
                    Observation::ToolStarted { path, args } => p.record_tool(path, args, None, now),
                    Observation::ToolEnded {
                        path,
                        args,
                        exit_code,
                        signal,
                    } => {
                        let failed = signal.is_some() || exit_code.is_some_and(|c| c != 0);
                        p.record_tool(path, args, Some(failed), now)
                    }
                };
            }
            changed
        });
}

/// The resolv.conf of a container, read through one of its processes' root.
fn resolv_conf(pipeline: &Pipeline, proc_root: &Path, cgroup_id: u64) -> Option<ResolvConf> {
    let pid = pipeline.attributor.processes.pid_in_cgroup(cgroup_id)?;
    let path: PathBuf = proc_root.join(pid.to_string()).join("root/etc/resolv.conf");
    std::fs::read_to_string(path)
        .ok()
        .map(|t| parse_resolv_conf(&t))
}

/// Lifecycle transitions, then every changed profile and its drafts to disk.
fn flush_state(
    state: &StateDir,
    store: &Arc<RwLock<ProfileStore>>,
    settings: &Settings,
    catalogue: &Catalogue,
) {
    let dirty = {
        let mut s = store.write().expect("profile store lock");
        s.advance(Timestamp::now());
        s.take_dirty()
    };
    for profile in &dirty {
        if let Err(e) = state.write_profile(profile) {
            warn!(profile = %profile.key, "could not write profile: {e}");
            store
                .write()
                .expect("profile store lock")
                .mark_dirty(&profile.key);
            continue;
        }
        let workload = store
            .read()
            .expect("profile store lock")
            .workload(&profile.key.namespace, &profile.key.workload);
        if let Err(e) = crate::drafts::write::write(
            state,
            profile,
            &workload,
            settings.install_seccomp_dir.as_deref(),
            catalogue,
        ) {
            warn!(profile = %profile.key, "could not write drafts: {e}");
        }
    }
}
