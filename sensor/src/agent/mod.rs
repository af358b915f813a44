//! `sensor run`: the agent. Capture -> attribution -> profiles (learning, then ready) ->
//! persisted state and drafts, served over gRPC. Shuts down cleanly on SIGINT/SIGTERM, flushing
//! state; a `kill -9` loses at most one flush interval.

pub mod config;
pub mod drafts_out;
pub mod learner;
pub mod store;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use self::{
    config::Settings,
    learner::{Learner, ResolvConf, parse_resolv_conf},
    store::ProfileStore,
};
use crate::{
    api::{self, ProfileSource},
    capture::{Capture, CaptureOptions},
    pipeline::Pipeline,
    profile::{
        model::{ApplicationProfile, ProfileKey},
        persist::StateDir,
    },
};

/// How often syscall bitmaps and flow counters are read into the profiles.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// RFC 3339 UTC, seconds precision: the profile timestamps.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The gRPC API's view of the store.
struct StoreSource {
    store: Arc<RwLock<ProfileStore>>,
    node: String,
}

impl ProfileSource for StoreSource {
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
}

pub async fn run(settings: Settings) -> Result<()> {
    let state = StateDir::new(&settings.state_dir);
    state.create().context("preparing the state directory")?;
    let (restored, quarantined) = state.load_profiles();
    if let Some(dir) = &settings.install_seccomp_dir {
        crate::profile::persist::remove_stale_temp_files(&dir.join("sensor"));
    }
    info!(
        state_dir = %settings.state_dir.display(),
        restored = restored.len(),
        quarantined = quarantined.len(),
        "state loaded"
    );
    let store = Arc::new(RwLock::new(ProfileStore::new(
        settings.learning_period.as_secs(),
        restored,
    )));

    let Capture {
        mut collector,
        mut events,
        mut pipeline,
        preexisting,
        ..
    } = Capture::start(&CaptureOptions {
        kubelet: settings.kubelet.clone(),
        proc_root: settings.proc_root.clone(),
        btf_path: settings.btf.clone(),
        ring_buffer_bytes: settings.ring_buffer_bytes,
        patterns: settings.patterns.clone(),
        node_name: settings.node_name.clone(),
    })?;
    let mut learner = Learner::new(store.clone(), preexisting, settings.node_name.clone());

    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let source: Arc<dyn ProfileSource> = Arc::new(StoreSource {
        store: store.clone(),
        node: settings.node_name.clone(),
    });
    let api_task = tokio::spawn(api::serve(
        settings.grpc_listen.clone(),
        settings.insecure_tcp,
        source,
        async move {
            let _ = api_stopped.await;
        },
    ));
    info!(listen = %settings.grpc_listen, "agent running");

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sweep = tokio::time::interval(Duration::from_millis(100));
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    let mut window = tokio::time::interval(settings.rate_window);
    window.tick().await; // the first tick is immediate: skip it, a window is a full period
    let mut flush = tokio::time::interval(settings.flush_interval);
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
            _ = sweep.tick() => pipeline.sweep(&mut collector, &mut out),
            _ = poll.tick() => poll_kernel(&mut learner, &mut pipeline, &collector),
            _ = window.tick() => learner.close_window(settings.rate_window.as_secs(), &now_rfc3339()),
            _ = flush.tick() => {
                flush_state(&state, &store, &settings);
                // Serialising profiles and serving requests allocate and free a lot; hand the
                // freed pages back so the resident size tracks what is really held.
                crate::capture::release_freed_memory();
            }
            _ = orphans.tick() => pipeline.collect_orphans(&mut collector, &mut out),
            result = async { api_task.as_mut().expect("api task").await }, if api_task.is_some() => {
                api_task = None;
                match result {
                    Ok(Ok(())) => warn!("gRPC server stopped"),
                    Ok(Err(e)) => return Err(e).context("gRPC server"),
                    Err(e) => return Err(e).context("gRPC server task"),
                }
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
        feed(&mut learner, &pipeline, &settings.proc_root, &mut out);
    }

    info!("shutting down: flushing state");
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Ok(ev) = events.try_recv() {
        pipeline.handle(ev, &mut collector, &mut out);
    }
    feed(&mut learner, &pipeline, &settings.proc_root, &mut out);
    poll_kernel(&mut learner, &mut pipeline, &collector);
    flush_state(&state, &store, &settings);
    let _ = stop_api.send(());
    if let Some(task) = api_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let snapshot = collector.snapshot();
    info!(events = ?snapshot.events, lost = ?snapshot.lost, "stopped");
    Ok(())
}

/// Attributed events to the learner.
fn feed(
    learner: &mut Learner,
    pipeline: &Pipeline,
    proc_root: &Path,
    out: &mut Vec<crate::event::Event>,
) {
    for ev in out.drain(..) {
        learner.on_event(&ev, |cgroup_id| resolv_conf(pipeline, proc_root, cgroup_id));
    }
}

/// The resolv.conf of a container, read through one of its processes' root.
fn resolv_conf(pipeline: &Pipeline, proc_root: &Path, cgroup_id: u64) -> Option<ResolvConf> {
    let pid = pipeline.attributor.processes.pid_in_cgroup(cgroup_id)?;
    let path: PathBuf = proc_root.join(pid.to_string()).join("root/etc/resolv.conf");
    std::fs::read_to_string(path)
        .ok()
        .map(|t| parse_resolv_conf(&t))
}

/// Reads the syscall bitmaps and flow counters into the profiles.
fn poll_kernel(
    learner: &mut Learner,
    pipeline: &mut Pipeline,
    collector: &crate::collector::Collector,
) {
    let now = now_rfc3339();
    let sets = collector.syscall_sets.read_all();
    let flows = collector.flows.read_all();
    let names_of = |cgroup_id: u64, ip: &IpAddr| pipeline.remote_names_of(cgroup_id, ip);
    // Attribution needs &mut (it caches); names need & - take the names first.
    let names: std::collections::HashMap<(u64, IpAddr), Vec<String>> = flows
        .iter()
        .map(|(k, _)| {
            let ip = crate::event::ip_from_mapped(k.remote_addr);
            ((k.cgroup_id, ip), names_of(k.cgroup_id, &ip))
        })
        .collect();
    let mut attribute = |cgroup_id: u64| pipeline.attributor.attribute(cgroup_id, 0);
    learner.on_syscall_sets(&sets, &mut attribute, &now);
    learner.on_flows(
        &flows,
        &mut attribute,
        &|cgroup_id, ip| names.get(&(cgroup_id, *ip)).cloned().unwrap_or_default(),
        &now,
    );
}

/// Lifecycle transitions, then every changed profile and its drafts to disk.
fn flush_state(state: &StateDir, store: &Arc<RwLock<ProfileStore>>, settings: &Settings) {
    let now = now_rfc3339();
    let dirty = {
        let mut s = store.write().expect("profile store lock");
        s.advance(&now);
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
        if let Err(e) = drafts_out::write(
            state,
            profile,
            &workload,
            settings.install_seccomp_dir.as_deref(),
        ) {
            warn!(profile = %profile.key, "could not write drafts: {e}");
        }
    }
}
