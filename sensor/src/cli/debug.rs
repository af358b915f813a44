//! Hidden developer commands used by the benchmark.

use std::{path::PathBuf, time::Instant};

use anyhow::Result;
use clap::Subcommand;

use crate::{
    attribution::workload::WorkloadKind,
    drafts::{
        netpol,
        seccomp::{self, NodeArch, SeccompMode},
    },
    profile::{
        builder::{Direction, FlowDelta, FlowId},
        model::{ApplicationProfile, ProfileKey, Protocol, Resolver, Timestamp},
        persist::StateDir,
    },
};

#[derive(Subcommand, Debug)]
pub enum DebugCommand {
    /// Attach only an empty `sys_enter` program (the benchmark floor), print `attached`, and
    /// hold it until SIGINT/SIGTERM.
    EmptyHook {
        /// Also an empty `sys_exit` program: the floor of hooking both.
        #[arg(long)]
        exit: bool,
    },
    /// Write `count` realistic learned profiles (2 containers per workload) into a state dir.
    SynthProfiles {
        #[arg(long)]
        state_dir: PathBuf,
        #[arg(long, default_value_t = 500)]
        count: usize,
    },
    /// Write raw ring-buffer records of the real probes to files (fuzz seed corpora).
    Records(super::debug_records::RecordsArgs),
    /// The in-process benchmarks, each its own `sensor debug` subcommand (`bench-drafts`,
    /// `bench-stream`).
    #[command(flatten)]
    Bench(BenchCommand),
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Time the draft generators (seccomp enforce + audit JSON, NetworkPolicy YAML) over the
    /// profiles of a state dir; prints one JSON line.
    BenchDrafts {
        #[arg(long)]
        state_dir: PathBuf,
    },
    /// Time the anomaly stream under load (hub + gRPC, a fast and a slow client); prints one
    /// JSON line.
    ///
    /// The real gRPC server on a Unix socket, the agent's anomaly source (the anomaly log in
    /// `--state-dir`, then the hub), a publisher thread appending and publishing synthetic
    /// anomalies at `--rate` per second for `--seconds`, and two clients on the socket, one
    /// reading as fast as it can, one sleeping between messages.
    BenchStream(bench_stream::StreamArgs),
}

const T: Timestamp = Timestamp::lit("2026-11-26T00:00:00Z");

/// A profile shaped like a busy agent workload: ~90 syscalls, 24 execs, 40 egress peers with
/// names, 8 ingress peers, 30 DNS names, 6 sensitive files.
pub fn synthetic_profile(i: usize, container: &str) -> ApplicationProfile {
    let key = ProfileKey {
        namespace: format!("team-{}", i % 10),
        workload: format!("agent-{i}"),
        container: container.to_string(),
    };
    let mut p = ApplicationProfile::new(key, WorkloadKind::Deployment, 24 * 3600, T);
    let syscalls: Vec<String> = (0..90)
        .map(|n| crate::capture::syscall_names::name(crate::capture::syscall_names::Abi::Native, n))
        .collect();
    p.record_syscalls(&syscalls, &[], T);
    for e in 0..24 {
        let args = vec![
            format!("tool{e}"),
            "--config".into(),
            format!("/etc/tool{e}.yaml"),
        ];
        p.record_exec(&format!("/usr/bin/tool{e}"), &args, T);
    }
    let resolver = Resolver {
        ip: "10.100.0.10".parse().expect("ip"),
        cluster_dns: true,
    };
    for f in 0..40u32 {
        let ip = std::net::IpAddr::from([10, 20, (f / 200) as u8, (f % 200) as u8 + 1]);
        let name = format!("svc{f}.example.com");
        p.record_dns(&name, &[ip], resolver.clone(), T);
        let id = FlowId {
            direction: Direction::Egress,
            ip,
            port: 443,
            protocol: Protocol::Tcp,
        };
        p.record_flow(
            id,
            FlowDelta {
                connections: 10,
                bytes_sent: 4096,
                bytes_recv: 65536,
            },
            &[name],
            T,
        );
        p.record_window(
            id,
            FlowDelta {
                connections: 10,
                bytes_sent: 4096,
                bytes_recv: 65536,
            },
            60,
            T,
        );
    }
    for f in 0..8u8 {
        let id = FlowId {
            direction: Direction::Ingress,
            ip: std::net::IpAddr::from([10, 30, 0, f + 1]),
            port: 8080,
            protocol: Protocol::Tcp,
        };
        p.record_flow(
            id,
            FlowDelta {
                connections: 5,
                bytes_sent: 1000,
                bytes_recv: 2000,
            },
            &[],
            T,
        );
    }
    for f in 0..6 {
        p.record_file(
            &format!("/var/run/secrets/kubernetes.io/serviceaccount/file{f}"),
            "/var/run/secrets/kubernetes.io/serviceaccount/",
            T,
        );
    }
    p.add_pod(&format!("agent-{i}-7d9f8b6c4d-x2x9k"), "node-1", T);
    p
}

pub async fn run(cmd: DebugCommand) -> Result<()> {
    match cmd {
        DebugCommand::EmptyHook { exit } => {
            let _hooks = crate::capture::loader::attach_empty_hooks(exit)?;
            println!("attached");
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            Ok(())
        }
        DebugCommand::SynthProfiles { state_dir, count } => {
            let state = StateDir::new(&state_dir);
            state.create()?;
            for n in 0..count {
                let container = if n % 2 == 0 { "app" } else { "sidecar" };
                state.write_profile(&synthetic_profile(n / 2, container))?;
            }
            println!("{{\"profiles\":{count}}}");
            Ok(())
        }
        DebugCommand::Records(args) => super::debug_records::run(args).await,
        DebugCommand::Bench(BenchCommand::BenchStream(args)) => bench_stream::run(args),
        DebugCommand::Bench(BenchCommand::BenchDrafts { state_dir }) => {
            let profiles = StateDir::new(&state_dir).load_profiles().profiles;
            let mut workloads: std::collections::BTreeMap<
                (String, String),
                Vec<&ApplicationProfile>,
            > = Default::default();
            for p in &profiles {
                workloads
                    .entry((p.key.namespace.clone(), p.key.workload.clone()))
                    .or_default()
                    .push(p);
            }
            let arch = NodeArch::current();
            let mut times = Vec::with_capacity(workloads.len());
            let mut bytes = 0usize;
            for members in workloads.values() {
                let t = Instant::now();
                for p in members {
                    for mode in [SeccompMode::Enforce, SeccompMode::Audit] {
                        bytes += seccomp::to_json(&seccomp::seccomp_draft(p, mode, arch)).len();
                    }
                }
                bytes += netpol::to_yaml(&netpol::network_policy_for_workload(members)).len();
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(|a, b| a.total_cmp(b));
            let n = times.len().max(1);
            let mean = times.iter().sum::<f64>() / n as f64;
            let p99 = times
                .get((n * 99).div_ceil(100).saturating_sub(1))
                .copied()
                .unwrap_or(0.0);
            let max = times.last().copied().unwrap_or(0.0);
            println!(
                "{{\"workloads\":{},\"profiles\":{},\"mean_ms\":{mean:.3},\"p99_ms\":{p99:.3},\"max_ms\":{max:.3},\"bytes\":{bytes}}}",
                workloads.len(),
                profiles.len()
            );
            Ok(())
        }
    }
}

/// `sensor debug bench-stream`: 10k anomalies/s through the gRPC stream, measured in one
/// process. What runs is the agent's own path from the rules onwards: the anomaly log
/// ([`AnomalyLog`](crate::detect::log::AnomalyLog)) numbers and appends each record, then the
/// record is published to the [`Hub`](crate::api::Hub) (the agent's `publisher`), and the real
/// server ([`crate::api::serve`]) streams it to the clients through
/// [`services::Anomalies`](crate::daemon::services::Anomalies), the agent's anomaly source.
/// The publisher thread stands for the agent's capture loop: how long its calls take shows
/// whether a client can stall capture.
mod bench_stream {
    use std::{
        path::PathBuf,
        sync::{
            Arc, Mutex,
            atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        },
        time::{Duration, Instant},
    };

    use anyhow::{Context, Result, bail};
    use clap::Args;
    use serde_json::{Value, json};
    use tokio_stream::StreamExt;

    use crate::{
        api::{
            Hub, ListenAddr, MemorySource, Services, Transport,
            client::{ConnectOptions, connect_with},
            proto::{self, anomaly_message::Payload},
            serve,
        },
        attribution::workload::WorkloadKind,
        daemon::services,
        detect::{
            log::{AnomalyLog, Retention},
            model::{Ancestor, Anomaly, Evidence, Finding, Fold, ProcessRef, RuleId, Severity},
        },
    };

    #[derive(Args, Debug)]
    pub struct StreamArgs {
        /// Unix socket the server listens on.
        #[arg(long)]
        pub socket: PathBuf,
        /// State dir of the anomaly log (created if missing).
        #[arg(long)]
        pub state_dir: PathBuf,
        /// Anomalies published per second.
        #[arg(long, default_value_t = 10_000)]
        pub rate: u64,
        /// How long the publisher runs.
        #[arg(long, default_value_t = 5)]
        pub seconds: u64,
        /// Per-subscriber queue of the hub (the agent's is 4096).
        #[arg(long, default_value_t = 4096)]
        pub queue: usize,
        /// The slow client's pause after each message while the publisher runs, microseconds.
        #[arg(long, default_value_t = 1000)]
        pub slow_pause_us: u64,
        /// How long the clients may take, once the publisher stopped, to account for every
        /// anomaly (received, or counted in a gap), in seconds.
        #[arg(long, default_value_t = 30)]
        pub drain_timeout: u64,
    }

    /// What the publisher and the clients share.
    struct Shared {
        base: Instant,
        /// Sequence number of the first anomaly published.
        first_seq: u64,
        /// Nanoseconds after `base` at which each anomaly was handed to the hub (by seq).
        published_at: Vec<AtomicU64>,
        published: AtomicU64,
        done: AtomicBool,
        done_at: Mutex<Option<Instant>>,
        /// Clients subscribed (their stream said `Live`).
        live: AtomicUsize,
        drain_timeout: Duration,
    }

    impl Shared {
        fn now_ns(&self) -> u64 {
            self.base.elapsed().as_nanos() as u64
        }
    }

    #[derive(Default)]
    struct ClientResult {
        received: u64,
        gaps: u64,
        missed: u64,
        /// Anomalies whose seq was not above the previous one (duplicates, reordering).
        out_of_order: u64,
        /// Publish -> received in this client, nanoseconds (fast client only).
        latency_ns: Vec<u64>,
        /// received + missed == published, reached before the drain timeout.
        complete: bool,
        /// Seconds from the publisher's end until complete.
        drain_secs: f64,
        error: Option<String>,
    }

    #[derive(Default)]
    struct PublisherResult {
        published: u64,
        secs: f64,
        append_ns: Vec<u64>,
        publish_ns: Vec<u64>,
        /// Longest time the publisher was behind its schedule.
        behind_max_ns: u64,
        cpu_secs: f64,
        /// The log's fsync after the run (what the agent's flush tick does on its loop).
        sync_ms: f64,
        log_bytes: u64,
    }

    pub fn run(args: StreamArgs) -> Result<()> {
        println!("{}", measure(args)?);
        Ok(())
    }

    /// The whole measurement, as the JSON line `run` prints.
    pub fn measure(args: StreamArgs) -> Result<Value> {
        anyhow::ensure!(
            args.rate > 0 && args.seconds > 0,
            "--rate and --seconds must be > 0"
        );
        // A runtime of our own on a thread of our own (the caller's runtime is busy running us).
        let handle = std::thread::Builder::new()
            .name("bench-stream".into())
            .spawn(move || -> Result<Value> {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .context("starting the server runtime")?;
                rt.block_on(bench(args))
            })
            .context("starting the bench thread")?;
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("the bench thread panicked"))?
    }

    /// A realistic unexpected-exec anomaly (the size of what the agent streams); distinct
    /// subject per `i`.
    fn synthetic(i: u64) -> Anomaly {
        let time = crate::daemon::now_rfc3339();
        let path = format!("/usr/local/bin/tool-{i}");
        Anomaly {
            seq: 0,
            time: time.clone(),
            node: "bench-node".into(),
            namespace: "shop".into(),
            pod: "checkout-7d9f8b6c5d-x2x4z".into(),
            pod_uid: "0b7f4a4e-2f4c-4c39-9f3e-0d0c6c2b1a11".into(),
            container: "app".into(),
            container_id: "3f2a9c0d1e5b7a8c".repeat(4),
            workload: "checkout".into(),
            workload_kind: WorkloadKind::Deployment,
            labels: [("app", "checkout"), ("tier", "web")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            finding: Finding {
                rule: RuleId::UnexpectedExec,
                kubescape_rule: Some("R0001".into()),
                severity: Severity::Medium,
                mitre: None,
                message: format!("Program {path} ran, which the baseline never ran."),
                subject: format!("{path} --serve *"),
                evidence: Evidence {
                    baseline: [
                        ("programs", "2: /usr/local/bin/checkout, /bin/sh"),
                        ("completeness", "full"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                    observed: [
                        ("path", path.as_str()),
                        ("args", "tool --serve *"),
                        ("uid", "0"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                },
            },
            agent_chain: None,
            process: Some(ProcessRef {
                pid: 40_000 + (i % 20_000) as u32,
                ppid: Some(4200),
                comm: "tool".into(),
                path: path.clone(),
                args: vec!["tool".into(), "--serve".into(), "8080".into()],
                ancestry: vec![
                    Ancestor {
                        pid: 4200,
                        comm: "sh".into(),
                        path: "/bin/sh".into(),
                        args: vec!["sh".into(), "-c".into(), "tool --serve 8080".into()],
                    },
                    Ancestor {
                        pid: 1,
                        comm: "checkout".into(),
                        path: "/usr/local/bin/checkout".into(),
                        args: vec!["/usr/local/bin/checkout".into(), "--port=8080".into()],
                    },
                ],
            }),
            count: 1,
            repeat_of: None,
            last_seen: time,
            fold: Some(Fold::Exec {
                path,
                args: vec!["tool".into(), "--serve".into(), "*".into()],
            }),
        }
    }

    fn thread_cpu_secs() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid out-pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    }

    /// The agent's capture loop, as far as anomalies go: append to the log, then publish (what
    /// `agent::publisher` does), paced at `rate`.
    fn log_path(dir: &std::path::Path) -> PathBuf {
        dir.join(crate::detect::log::LOG_FILE)
    }

    fn publish(
        mut log: AnomalyLog,
        log_dir: PathBuf,
        hub: Arc<Hub<Anomaly>>,
        last_seq: Arc<AtomicU64>,
        shared: Arc<Shared>,
        rate: u64,
        total: u64,
    ) -> Result<PublisherResult> {
        let mut r = PublisherResult {
            append_ns: Vec::with_capacity(total as usize),
            publish_ns: Vec::with_capacity(total as usize),
            ..Default::default()
        };
        let cpu0 = thread_cpu_secs();
        let t0 = Instant::now();
        for i in 0..total {
            let due = t0 + Duration::from_nanos(i * 1_000_000_000 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            } else {
                r.behind_max_ns = r.behind_max_ns.max((now - due).as_nanos() as u64);
            }
            let anomaly = synthetic(i);
            let ta = Instant::now();
            let logged = log
                .append(anomaly)
                .context("appending to the anomaly log")?;
            let tb = Instant::now();
            if let Some(slot) = logged
                .seq
                .checked_sub(shared.first_seq)
                .and_then(|k| shared.published_at.get(k as usize))
            {
                slot.store(shared.now_ns(), Ordering::Relaxed);
            }
            // agent::publisher
            last_seq.store(logged.seq, Ordering::Release);
            hub.publish(logged.clone());
            let tc = Instant::now();
            shared.published.store(i + 1, Ordering::Release);
            r.append_ns.push((tb - ta).as_nanos() as u64);
            r.publish_ns.push((tc - tb).as_nanos() as u64);
        }
        r.secs = t0.elapsed().as_secs_f64();
        r.published = total;
        r.cpu_secs = thread_cpu_secs() - cpu0;
        r.log_bytes = std::fs::metadata(log_path(&log_dir))
            .map(|m| m.len())
            .unwrap_or(0);
        let ts = Instant::now();
        log.sync().context("syncing the anomaly log")?;
        r.sync_ms = ts.elapsed().as_secs_f64() * 1e3;
        Ok(r)
    }

    async fn client(
        addr: ListenAddr,
        slow_pause: Option<Duration>,
        shared: Arc<Shared>,
    ) -> ClientResult {
        let mut r = ClientResult::default();
        let options = ConnectOptions {
            tls: None,
            streaming: true,
        };
        let start = Instant::now();
        let mut client = loop {
            match connect_with(&addr, &options).await {
                Ok(c) => break c,
                Err(e) if start.elapsed() > Duration::from_secs(10) => {
                    r.error = Some(format!("connecting: {e}"));
                    return r;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let request = proto::StreamAnomaliesRequest {
            filter: None,
            since_seq: None,
            deny_list: Vec::new(),
        };
        let mut stream = match client.stream_anomalies(request).await {
            Ok(s) => s.into_inner(),
            Err(s) => {
                r.error = Some(format!("StreamAnomalies: {s}"));
                return r;
            }
        };
        let mut last_seq = 0u64;
        loop {
            let done = shared.done.load(Ordering::Acquire);
            let done_at = *shared.done_at.lock().expect("done_at lock");
            if done {
                let published = shared.published.load(Ordering::Acquire);
                if r.received + r.missed >= published {
                    r.complete = r.received + r.missed == published;
                    r.drain_secs = done_at.map_or(0.0, |t| t.elapsed().as_secs_f64());
                    if !r.complete {
                        r.error = Some(format!(
                            "received {} + missed {} > published {published}",
                            r.received, r.missed
                        ));
                    }
                    return r;
                }
                if done_at.is_some_and(|t| t.elapsed() > shared.drain_timeout) {
                    r.error = Some(format!(
                        "after {:?}: received {} + missed {} < published {published}",
                        shared.drain_timeout, r.received, r.missed
                    ));
                    return r;
                }
            }
            let msg = match tokio::time::timeout(Duration::from_millis(100), stream.next()).await {
                Err(_) => continue,
                Ok(None) => {
                    r.error = Some("the server ended the stream".into());
                    return r;
                }
                Ok(Some(Err(s))) => {
                    r.error = Some(format!("stream error: {s}"));
                    return r;
                }
                Ok(Some(Ok(m))) => m,
            };
            match msg.payload {
                Some(Payload::Live(_)) => {
                    shared.live.fetch_add(1, Ordering::AcqRel);
                }
                Some(Payload::Anomaly(a)) => {
                    r.received += 1;
                    if a.seq <= last_seq {
                        r.out_of_order += 1;
                    }
                    last_seq = last_seq.max(a.seq);
                    if slow_pause.is_none()
                        && let Some(at) = a
                            .seq
                            .checked_sub(shared.first_seq)
                            .and_then(|k| shared.published_at.get(k as usize))
                    {
                        let at = at.load(Ordering::Relaxed);
                        r.latency_ns.push(shared.now_ns().saturating_sub(at));
                    }
                    if let Some(pause) = slow_pause
                        && !shared.done.load(Ordering::Acquire)
                    {
                        tokio::time::sleep(pause).await;
                    }
                }
                Some(Payload::Gap(g)) => {
                    r.gaps += 1;
                    r.missed += g.missed;
                }
                None => {}
            }
        }
    }

    /// Nearest-rank percentiles of nanosecond samples, in the unit `div` gives.
    fn percentiles(samples: &mut [u64], div: f64) -> Value {
        if samples.is_empty() {
            return json!(null);
        }
        samples.sort_unstable();
        let n = samples.len();
        let at = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1] as f64 / div;
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        json!({
            "p50": round(at(0.50)),
            "p90": round(at(0.90)),
            "p99": round(at(0.99)),
            "p999": round(at(0.999)),
            "max": round(samples[n - 1] as f64 / div),
        })
    }

    fn client_json(r: &mut ClientResult, published: u64) -> Value {
        json!({
            "received": r.received,
            "gaps": r.gaps,
            "missed": r.missed,
            "accounted": r.received + r.missed,
            "received_share": if published > 0 { r.received as f64 / published as f64 } else { 0.0 },
            "out_of_order": r.out_of_order,
            "complete": r.complete,
            "drain_secs": (r.drain_secs * 1000.0).round() / 1000.0,
            "latency_ms": percentiles(&mut r.latency_ns, 1e6),
            "error": r.error,
        })
    }

    fn spawn_client(
        name: &str,
        addr: ListenAddr,
        slow_pause: Option<Duration>,
        shared: Arc<Shared>,
    ) -> Result<std::thread::JoinHandle<ClientResult>> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        return ClientResult {
                            error: Some(format!("client runtime: {e}")),
                            ..Default::default()
                        };
                    }
                };
                rt.block_on(client(addr, slow_pause, shared))
            })
            .with_context(|| format!("starting the {name} thread"))
    }

    async fn bench(args: StreamArgs) -> Result<Value> {
        let log = AnomalyLog::open(&args.state_dir, Retention::default())
            .context("opening the anomaly log")?;
        let total = args.rate * args.seconds;
        let shared = Arc::new(Shared {
            base: Instant::now(),
            first_seq: log.next_seq(),
            published_at: (0..total).map(|_| AtomicU64::new(0)).collect(),
            published: AtomicU64::new(0),
            done: AtomicBool::new(false),
            done_at: Mutex::new(None),
            live: AtomicUsize::new(0),
            drain_timeout: Duration::from_secs(args.drain_timeout),
        });
        let hub = Arc::new(Hub::new(args.queue));
        let last_seq = Arc::new(AtomicU64::new(log.last_seq()));
        let services = Services::new(Arc::new(MemorySource::new("bench-node"))).with_anomalies(
            Arc::new(services::Anomalies {
                state_dir: args.state_dir.clone(),
                last_seq: last_seq.clone(),
                hub: hub.clone(),
            }),
        );
        let addr = ListenAddr::Unix(args.socket.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            addr.clone(),
            Transport::default(),
            services,
            async move {
                let _ = stopped.await;
            },
        ));

        let fast = spawn_client("fast-client", addr.clone(), None, shared.clone())?;
        let slow = spawn_client(
            "slow-client",
            addr,
            Some(Duration::from_micros(args.slow_pause_us)),
            shared.clone(),
        )?;
        let waited = Instant::now();
        while shared.live.load(Ordering::Acquire) < 2 || hub.stats().subscribers < 2 {
            if server.is_finished() {
                bail!("the gRPC server stopped before the clients subscribed");
            }
            if waited.elapsed() > Duration::from_secs(15) {
                bail!(
                    "the clients did not subscribe within 15 s ({} live, {} subscribers)",
                    shared.live.load(Ordering::Acquire),
                    hub.stats().subscribers
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let publisher = {
            let (hub, last_seq, shared) = (hub.clone(), last_seq.clone(), shared.clone());
            let log_dir = args.state_dir.clone();
            let rate = args.rate;
            std::thread::Builder::new()
                .name("publisher".into())
                .spawn(move || publish(log, log_dir, hub, last_seq, shared, rate, total))
                .context("starting the publisher")?
        };
        let p = tokio::task::spawn_blocking(move || publisher.join())
            .await
            .context("waiting for the publisher")?
            .map_err(|_| anyhow::anyhow!("the publisher panicked"));
        *shared.done_at.lock().expect("done_at lock") = Some(Instant::now());
        shared.done.store(true, Ordering::Release);
        let mut p = p??;
        let (fast, slow) = tokio::task::spawn_blocking(move || (fast.join(), slow.join()))
            .await
            .context("waiting for the clients")?;
        let mut fast = fast.map_err(|_| anyhow::anyhow!("the fast client panicked"))?;
        let mut slow = slow.map_err(|_| anyhow::anyhow!("the slow client panicked"))?;
        let stats = hub.stats();
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;

        Ok(json!({
            "rate": args.rate,
            "seconds": args.seconds,
            "queue": args.queue,
            "slow_pause_us": args.slow_pause_us,
            "published": p.published,
            "publish_secs": (p.secs * 1000.0).round() / 1000.0,
            "achieved_rate": (p.published as f64 / p.secs).round(),
            "behind_max_ms": p.behind_max_ns as f64 / 1e6,
            "publisher_cpu_secs": (p.cpu_secs * 1000.0).round() / 1000.0,
            "log_bytes": p.log_bytes,
            "log_sync_ms": (p.sync_ms * 1000.0).round() / 1000.0,
            "publish_us": percentiles(&mut p.publish_ns, 1e3),
            "append_us": percentiles(&mut p.append_ns, 1e3),
            "hub": { "published": stats.published, "dropped": stats.dropped, "gaps": stats.gaps },
            "fast": client_json(&mut fast, p.published),
            "slow": client_json(&mut slow, p.published),
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> DebugCommand {
        let cli =
            Cli::try_parse_from(["sensor", "debug"].iter().chain(args.iter()).copied()).unwrap();
        let Command::Debug(cmd) = cli.command else {
            panic!("not a debug command")
        };
        cmd
    }

    #[test]
    fn bench_subcommands_keep_their_names() {
        assert!(matches!(
            parse(&["bench-drafts", "--state-dir", "/s"]),
            DebugCommand::Bench(BenchCommand::BenchDrafts { .. })
        ));
        let DebugCommand::Bench(BenchCommand::BenchStream(a)) =
            parse(&["bench-stream", "--socket", "/s.sock", "--state-dir", "/s"])
        else {
            panic!("bench-stream")
        };
        assert_eq!((a.rate, a.seconds, a.queue), (10_000, 5, 4096));
        assert!(matches!(
            parse(&["empty-hook"]),
            DebugCommand::EmptyHook { exit: false }
        ));
        assert!(matches!(
            parse(&["empty-hook", "--exit"]),
            DebugCommand::EmptyHook { exit: true }
        ));
        assert!(matches!(
            parse(&["synth-profiles", "--state-dir", "/s"]),
            DebugCommand::SynthProfiles { count: 500, .. }
        ));
    }

    #[test]
    fn a_short_stream_run_accounts_for_every_anomaly_in_both_clients() {
        let dir = tempfile::tempdir().unwrap();
        let v = bench_stream::measure(bench_stream::StreamArgs {
            socket: dir.path().join("s.sock"),
            state_dir: dir.path().join("state"),
            rate: 2000,
            seconds: 1,
            queue: 64,
            slow_pause_us: 2000,
            drain_timeout: 30,
        })
        .unwrap();
        assert_eq!(v["published"], 2000, "{v}");
        for client in ["fast", "slow"] {
            let c = &v[client];
            assert_eq!(c["complete"], true, "{client}: {v}");
            assert_eq!(c["accounted"], 2000, "{client}: {v}");
            assert_eq!(c["out_of_order"], 0, "{client}: {v}");
        }
        assert!(v["slow"]["gaps"].as_u64().unwrap() > 0, "{v}");
        assert_eq!(
            v["hub"]["dropped"],
            v["fast"]["missed"].as_u64().unwrap() + v["slow"]["missed"].as_u64().unwrap(),
            "{v}"
        );
    }
}
