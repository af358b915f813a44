//! The streaming API end to end: the real server on a temporary Unix socket (and TCP with mutual
//! TLS) over in-memory sources, real tonic clients, and the real `sensor` binary for
//! `sensor watch` and `sensor profiles accept|relearn`.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc as std_mpsc,
    },
    time::Duration,
};

use sensor::api::{
    self, AnomalySource, ApiError, ClientTls, ListenAddr, MemoryAnomalies, MemoryControl,
    MemoryEvents, MemorySource, ProfileSource, Services, Subscription, TlsFiles, Transport,
    client::ConnectOptions,
    proto::{
        self, AcceptAnomalyRequest, AnomalyFilter, AnomalyMessage, EventFilter, EventKind,
        ListProfilesRequest, ProfileRef, RelearnRequest, StreamAnomaliesRequest,
        StreamEventsRequest, anomaly_message::Payload, event_message, sensor_client::SensorClient,
    },
};
use sensor::attribution::event::Event;
use sensor::detect::model::Anomaly;
use sensor::profile::model::{ApplicationProfile, ProfileKey, Status};
use serde_json::json;
use tonic::{Code, Streaming, transport::Channel};

const WAIT: Duration = Duration::from_secs(10);

// ---- fixtures ----

fn profile(
    ns: &str,
    workload: &str,
    container: &str,
    status: &str,
    completeness: &str,
) -> ApplicationProfile {
    serde_json::from_value(json!({
        "version": 2,
        "namespace": ns,
        "workload": workload,
        "container": container,
        "workloadKind": "deployment",
        "status": status,
        "completeness": completeness,
        "learningStarted": "2026-05-27T08:00:00Z",
        "learningPeriodSeconds": 86400,
        "updated": "2026-05-28T08:00:00Z",
        "syscalls": {"native": ["read", "write"]}
    }))
    .expect("a valid profile")
}

fn profiles() -> Vec<ApplicationProfile> {
    vec![
        profile("shop", "checkout", "app", "ready", "full"),
        profile("shop", "checkout", "envoy", "ready", "partial"),
        profile("tools", "mcp", "server", "learning", "full"),
    ]
}

/// An anomaly of `rule` with `severity` in `ns/pod/container` of `workload` (seq 0: the log
/// numbers it): the shared fixture ([`Anomaly::sample`], an exec of curl) on node `worker-1`,
/// observed evidence the path only.
fn anomaly(
    ns: &str,
    workload: &str,
    pod: &str,
    container: &str,
    rule: &str,
    severity: &str,
) -> Anomaly {
    let mut a = Anomaly::sample("/usr/bin/curl");
    a.node = "worker-1".into();
    a.namespace = ns.into();
    a.workload = workload.into();
    a.pod = pod.into();
    a.container = container.into();
    a.finding.rule = serde_json::from_value(json!(rule)).expect("a rule id");
    a.finding.severity = serde_json::from_value(json!(severity)).expect("a severity");
    a.finding.evidence.observed.retain(|k, _| k == "path");
    a
}

fn exec_anomaly() -> Anomaly {
    anomaly(
        "shop",
        "checkout",
        "checkout-7d9f8b6c5d-x2x4z",
        "app",
        "unexpected-exec",
        "medium",
    )
}

fn event(kind: &str, ns: &str, pod: &str) -> Event {
    use sensor::attribution::event::Detail;
    use sensor::attribution::{Attribution, Scope, workload::WorkloadKind};
    let detail = match kind {
        "exit" => Detail::Exit {
            exit_code: Some(0),
            signal: None,
        },
        _ => Detail::Exec {
            exe: None,
            path: "/usr/bin/curl".into(),
            args: vec!["curl".into()],
            args_truncated: false,
            workload_start: false,
            path_truncated: false,
            uid: 0,
        },
    };
    Event {
        time: "2026-05-28T20:26:40.5Z".into(),
        kind: detail.kind(),
        node: Arc::from("worker-1"),
        who: Arc::new(Attribution {
            scope: Scope::Container,
            namespace: Some(ns.into()),
            pod: Some(pod.into()),
            pod_uid: None,
            container: Some("app".into()),
            container_id: None,
            workload: Some("checkout".into()),
            workload_kind: Some(WorkloadKind::Deployment),
            workload_from_api: false,
            labels: None,
            service_account: None,
            cgroup_id: 77,
            cgroup: None,
        }),
        pid: Some(4242),
        ppid: Some(4200),
        comm: Some("curl".into()),
        detail,
    }
}

/// Profiles with graduation: ready to enforce when ready and complete.
struct Graded(Arc<MemorySource>);

impl ProfileSource for Graded {
    fn visit(&self, f: &mut dyn FnMut(&ApplicationProfile)) {
        self.0.visit(f)
    }
    fn profile(&self, key: &ProfileKey) -> Option<ApplicationProfile> {
        self.0.profile(key)
    }
    fn node_name(&self) -> String {
        self.0.node_name()
    }
    fn graduation(&self, key: &ProfileKey) -> api::Graduation {
        let Some(p) = self.0.profile(key) else {
            return api::Graduation::unknown();
        };
        let mut reasons = Vec::new();
        if p.status != Status::Ready {
            reasons.push("still learning".to_string());
        }
        if !p.partial_reasons.is_empty()
            || p.completeness != sensor::profile::model::Completeness::Full
        {
            reasons.push("partial profile".to_string());
        }
        if reasons.is_empty() {
            api::Graduation::ready()
        } else {
            api::Graduation::not_ready(reasons)
        }
    }
}

// ---- harness ----

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), ApiError>>,
}

/// An agent's API over in-memory sources; it can stop and start again on the same socket with
/// the same sources (an agent restart).
struct Node {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    profiles: Arc<MemorySource>,
    anomalies: Arc<MemoryAnomalies>,
    events: Arc<MemoryEvents>,
    control: Arc<MemoryControl>,
    running: Option<Running>,
}

impl Node {
    async fn start(capacity: usize) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("run/sensor.sock");
        let profiles = Arc::new(MemorySource::with_profiles("worker-1", profiles()));
        let anomalies = Arc::new(MemoryAnomalies::new(capacity));
        let events = Arc::new(MemoryEvents::new(capacity));
        let control = Arc::new(MemoryControl::new(anomalies.clone(), profiles.clone()));
        let mut node = Node {
            _dir: dir,
            socket,
            profiles,
            anomalies,
            events,
            control,
            running: None,
        };
        node.serve(None).await;
        node
    }

    fn services(&self) -> Services {
        Services::new(Arc::new(Graded(self.profiles.clone())))
            .with_anomalies(self.anomalies.clone())
            .with_events(self.events.clone())
            .with_control(self.control.clone())
    }

    /// Serves `services` (default: all of this node's) on the socket.
    async fn serve(&mut self, services: Option<Services>) {
        assert!(self.running.is_none(), "already serving");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(api::serve(
            ListenAddr::Unix(self.socket.clone()),
            false,
            services.unwrap_or_else(|| self.services()),
            async {
                let _ = stopped.await;
            },
        ));
        for _ in 0..500 {
            if self.socket.exists() {
                break;
            }
            assert!(!served.is_finished(), "the server stopped before listening");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(self.socket.exists(), "no socket after 5 s");
        self.running = Some(Running { stop, served });
    }

    /// Stops the server: open streams end (UNAVAILABLE), the socket goes away.
    async fn stop(&mut self) {
        let Running { stop, served } = self.running.take().expect("running");
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(15), served)
            .await
            .expect("the server stops in time")
            .expect("no panic")
            .expect("serve returns Ok");
        assert!(!self.socket.exists(), "socket removed");
    }

    fn server_flag(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    async fn client(&self) -> SensorClient<Channel> {
        let options = ConnectOptions {
            tls: None,
            streaming: true,
        };
        api::client::connect_with(&ListenAddr::Unix(self.socket.clone()), &options)
            .await
            .unwrap_or_else(|e| panic!("connecting: {e}"))
    }
}

async fn stream(
    c: &mut SensorClient<Channel>,
    filter: Option<AnomalyFilter>,
    since_seq: Option<u64>,
) -> Streaming<AnomalyMessage> {
    c.stream_anomalies(StreamAnomaliesRequest {
        filter,
        since_seq,
        deny_list: vec![],
    })
    .await
    .unwrap_or_else(|s| panic!("StreamAnomalies: {s:?}"))
    .into_inner()
}

async fn next(s: &mut Streaming<AnomalyMessage>) -> Payload {
    let m = tokio::time::timeout(WAIT, s.message())
        .await
        .expect("a message within 10 s")
        .unwrap_or_else(|e| panic!("stream error: {e:?}"))
        .expect("the stream is open");
    assert_eq!(m.node_name, "worker-1");
    assert!(m.time.is_some());
    m.payload.expect("a payload")
}

/// What a stream says up to and including its `Live` marker: anomaly seqs and gaps.
async fn until_live(s: &mut Streaming<AnomalyMessage>) -> (Vec<u64>, Vec<proto::Gap>, u64) {
    let (mut seqs, mut gaps) = (Vec::new(), Vec::new());
    loop {
        match next(s).await {
            Payload::Anomaly(a) => seqs.push(a.seq),
            Payload::Gap(g) => gaps.push(g),
            Payload::Live(l) => return (seqs, gaps, l.last_seq),
        }
    }
}

async fn next_seq(s: &mut Streaming<AnomalyMessage>) -> u64 {
    match next(s).await {
        Payload::Anomaly(a) => a.seq,
        other => panic!("expected an anomaly, got {other:?}"),
    }
}

// ---- replay, live, resume ----

/// A log that grows while it is being read: every read of the replay publishes `per_read` new
/// anomalies (capture going on during the replay), so the stream's small queue overflows
/// before it has caught up with the replay.
struct GrowsWhileRead {
    log: Arc<MemoryAnomalies>,
    per_read: usize,
    budget: AtomicUsize,
}

impl AnomalySource for GrowsWhileRead {
    fn read_after(&self, seq: u64, limit: usize) -> Result<Vec<Anomaly>, String> {
        let page = self.log.read_after(seq, limit)?;
        for _ in 0..self.per_read {
            if self
                .budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                .is_err()
            {
                break;
            }
            self.log.append(exec_anomaly());
        }
        Ok(page)
    }
    fn last_seq(&self) -> u64 {
        self.log.last_seq()
    }
    fn subscribe(&self) -> Subscription<Anomaly> {
        self.log.subscribe()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_then_live_loses_nothing_and_duplicates_nothing_while_capture_goes_on() {
    let mut node = Node::start(16).await;
    for _ in 0..2000 {
        node.anomalies.append(exec_anomaly());
    }
    let growing = Arc::new(GrowsWhileRead {
        log: node.anomalies.clone(),
        per_read: 60,
        // Used up by the first replay (at least 5 reads: 2000 records in pages of 512).
        budget: AtomicUsize::new(300),
    });
    node.stop().await;
    node.serve(Some(node.services().with_anomalies(growing.clone())))
        .await;

    let mut c = node.client().await;
    let mut s = stream(&mut c, None, Some(0)).await;
    let (replayed, gaps, live) = until_live(&mut s).await;
    assert!(
        gaps.is_empty(),
        "gaps while catching up are healed from the log: {gaps:?}"
    );
    assert!(live >= 2000, "{live}");
    let mut seen = replayed;
    assert_eq!(
        growing.budget.load(Ordering::SeqCst),
        0,
        "capture went on during the replay"
    );
    // Then live anomalies, in bursts smaller than the queue, each read before the next.
    for _ in 0..60 {
        for _ in 0..5 {
            node.anomalies.append(exec_anomaly());
        }
        while seen.last().copied().unwrap_or(0) < node.anomalies.last_seq() {
            match next(&mut s).await {
                Payload::Anomaly(a) => seen.push(a.seq),
                other => panic!("only anomalies after the switch, got {other:?}"),
            }
        }
    }
    let total = 2000 + 300 + 300;
    assert_eq!(node.anomalies.last_seq(), total);
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<u64>>(),
        "every seq once, in order"
    );
    assert!(
        node.anomalies.hub().stats().dropped > 0,
        "the queue overflowed during the replay (and the loss was healed)"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_from_its_last_seq() {
    let mut node = Node::start(1024).await;
    for _ in 0..3 {
        node.anomalies.append(exec_anomaly());
    }
    let mut c = node.client().await;

    // Live only: starts after the head of the log.
    let mut s = stream(&mut c, None, None).await;
    let (replayed, gaps, live) = until_live(&mut s).await;
    assert!(replayed.is_empty() && gaps.is_empty());
    assert_eq!(live, 3);
    node.anomalies.append(exec_anomaly());
    node.anomalies.append(exec_anomaly());
    assert_eq!(next_seq(&mut s).await, 4);
    assert_eq!(next_seq(&mut s).await, 5);
    drop(s); // the client goes away

    for _ in 0..4 {
        node.anomalies.append(exec_anomaly()); // 6..=9 while disconnected
    }
    let mut s = stream(&mut c, None, Some(5)).await;
    let (replayed, gaps, live) = until_live(&mut s).await;
    assert_eq!(replayed, [6, 7, 8, 9]);
    assert!(gaps.is_empty());
    assert_eq!(live, 9);
    node.anomalies.append(exec_anomaly());
    assert_eq!(next_seq(&mut s).await, 10);

    // Records gone from the log (retention) are a gap, not silence.
    node.anomalies.drop_through(7);
    let mut s2 = stream(&mut c, None, Some(2)).await;
    let (replayed, gaps, _) = until_live(&mut s2).await;
    assert_eq!(replayed, [8, 9, 10]);
    assert_eq!(gaps.len(), 1);
    assert_eq!((gaps[0].missed, gaps[0].after_seq), (5, 2));
    assert_eq!(gaps[0].reason(), proto::GapReason::LogRetention);

    // A sequence number this node never gave out.
    let e = c
        .stream_anomalies(StreamAnomaliesRequest {
            since_seq: Some(11),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
    assert!(e.message().contains("#10"), "{}", e.message());

    // Stopping the server ends the stream with UNAVAILABLE (resume elsewhere).
    node.stop().await;
    let end = tokio::time::timeout(WAIT, s.message())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_gets_a_gap_with_the_right_count_and_a_fast_one_gets_everything() {
    const N: u64 = 3000;
    let mut node = Node::start(32).await;
    let mut fast_client = node.client().await;
    let mut slow_client = node.client().await;
    let mut fast = stream(&mut fast_client, None, None).await;
    let mut slow = stream(&mut slow_client, None, None).await;
    assert_eq!(until_live(&mut fast).await.2, 0);
    assert_eq!(until_live(&mut slow).await.2, 0);

    let (progress_tx, mut progress) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        while seqs.len() < N as usize + 1 {
            match next(&mut fast).await {
                Payload::Anomaly(a) => {
                    seqs.push(a.seq);
                    let _ = progress_tx.send(a.seq);
                }
                other => panic!("the fast client misses nothing: {other:?}"),
            }
        }
        seqs
    });
    // Bursts smaller than the queue, each read by the fast client before the next: it keeps
    // up; the slow one reads nothing meanwhile.
    let mut published = 0;
    while published < N {
        for _ in 0..8 {
            published = node.anomalies.append(exec_anomaly());
        }
        tokio::time::timeout(WAIT, progress.wait_for(|&seen| seen == published))
            .await
            .expect("the fast client keeps up")
            .unwrap();
    }
    let stats = node.anomalies.hub().stats();
    assert_eq!(stats.subscribers, 2);
    assert!(
        stats.dropped > 0,
        "the slow client's queue overflowed: {stats:?}"
    );

    // The slow client now reads: every anomaly is either received or counted in a gap, and
    // each gap sits exactly where its anomalies are missing.
    let (mut received, mut missed, mut gaps) = (0u64, 0u64, 0);
    let mut last = 0;
    let mut after_gap: Option<proto::Gap> = None;
    while received + missed < N {
        match next(&mut slow).await {
            Payload::Anomaly(a) => {
                match after_gap.take() {
                    Some(g) => assert_eq!(a.seq, g.after_seq + g.missed + 1, "{g:?}"),
                    None => assert_eq!(a.seq, last + 1),
                }
                last = a.seq;
                received += 1;
            }
            Payload::Gap(g) => {
                assert_eq!(g.reason(), proto::GapReason::SlowConsumer);
                assert_eq!(g.after_seq, last);
                missed += g.missed;
                gaps += 1;
                after_gap = Some(g);
            }
            Payload::Live(_) => panic!("one Live per stream"),
        }
    }
    assert_eq!(received + missed, N);
    assert!(gaps >= 1 && missed > 0, "{gaps} gaps, {missed} missed");
    assert_eq!(
        missed, stats.dropped,
        "the gap counts exactly what the hub dropped"
    );
    assert!(node.anomalies.hub().stats().gaps >= 1);

    // Both go on with the next anomaly.
    let next_one = node.anomalies.append(exec_anomaly());
    assert_eq!(next_seq(&mut slow).await, next_one);
    let fast_seqs = reader.await.unwrap();
    assert_eq!(fast_seqs, (1..=N + 1).collect::<Vec<u64>>());
    node.stop().await;
}

// ---- filters ----

async fn matching(c: &mut SensorClient<Channel>, filter: AnomalyFilter) -> Vec<u64> {
    let mut s = stream(c, Some(filter), Some(0)).await;
    let (seqs, gaps, _) = until_live(&mut s).await;
    assert!(gaps.is_empty());
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_by_every_field() {
    let mut node = Node::start(1024).await;
    let mut labelled = anomaly(
        "shop",
        "checkout",
        "checkout-7d9f8b6c5d-x2x4z",
        "app",
        "unexpected-exec",
        "medium",
    );
    labelled.labels = [("app", "checkout"), ("tier", "web")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let all = [
        labelled, // 1
        anomaly(
            "shop",
            "checkout",
            "checkout-7d9f8b6c5d-q8m7n",
            "envoy",
            "unexpected-egress",
            "high",
        ), // 2
        anomaly(
            "shop",
            "cart",
            "cart-5c6d7e8f9-abcde",
            "app",
            "unexpected-dns",
            "low",
        ), // 3
        anomaly(
            "tools",
            "mcp",
            "mcp-0",
            "server",
            "service-account-token-read",
            "critical",
        ), // 4
    ];
    for a in all {
        node.anomalies.append(a);
    }
    let mut c = node.client().await;
    let f = AnomalyFilter::default;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cases: Vec<(AnomalyFilter, Vec<u64>)> = vec![
        (f(), vec![1, 2, 3, 4]),
        (
            AnomalyFilter {
                namespace: s(&["shop"]),
                ..f()
            },
            vec![1, 2, 3],
        ),
        (
            AnomalyFilter {
                namespace: s(&["tools", "bank"]),
                ..f()
            },
            vec![4],
        ),
        (
            AnomalyFilter {
                workload: s(&["checkout"]),
                ..f()
            },
            vec![1, 2],
        ),
        (
            AnomalyFilter {
                pod_regex: s(&["^checkout-.*-q8m7n$"]),
                ..f()
            },
            vec![2],
        ),
        (
            AnomalyFilter {
                pod_regex: s(&["cart", "mcp"]),
                ..f()
            },
            vec![3, 4],
        ),
        (
            AnomalyFilter {
                container: s(&["app"]),
                ..f()
            },
            vec![1, 3],
        ),
        (
            AnomalyFilter {
                label_selector: "app=checkout,tier in (web,api)".into(),
                ..f()
            },
            vec![1],
        ),
        (
            AnomalyFilter {
                label_selector: "!app".into(),
                ..f()
            },
            vec![2, 3, 4],
        ),
        (
            AnomalyFilter {
                rule_ids: s(&["unexpected-dns", "unexpected-egress"]),
                ..f()
            },
            vec![2, 3],
        ),
        (
            AnomalyFilter {
                min_severity: proto::Severity::High.into(),
                ..f()
            },
            vec![2, 4],
        ),
        (
            AnomalyFilter {
                namespace: s(&["shop"]),
                min_severity: proto::Severity::Medium.into(),
                ..f()
            },
            vec![1, 2],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(matching(&mut c, filter.clone()).await, want, "{filter:?}");
    }

    // Deny list: everything but the envoy container.
    let mut s2 = c
        .stream_anomalies(StreamAnomaliesRequest {
            filter: None,
            since_seq: Some(0),
            deny_list: vec![AnomalyFilter {
                container: s(&["envoy"]),
                ..f()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(until_live(&mut s2).await.0, [1, 3, 4]);

    // Live anomalies go through the same filter.
    let mut live = stream(
        &mut c,
        Some(AnomalyFilter {
            namespace: s(&["tools"]),
            ..f()
        }),
        None,
    )
    .await;
    until_live(&mut live).await;
    node.anomalies.append(exec_anomaly()); // shop: filtered out
    node.anomalies.append(anomaly(
        "tools",
        "mcp",
        "mcp-0",
        "server",
        "shell-spawned",
        "high",
    ));
    assert_eq!(next_seq(&mut live).await, 6);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_are_invalid_argument_naming_the_field() {
    let mut node = Node::start(64).await;
    let mut c = node.client().await;
    let f = AnomalyFilter::default;
    let cases = [
        (
            AnomalyFilter {
                pod_regex: vec!["web".into(), "(unclosed".into()],
                ..f()
            },
            "filter.pod_regex[1]",
        ),
        (
            AnomalyFilter {
                namespace: vec!["a/b".into()],
                ..f()
            },
            "filter.namespace[0]",
        ),
        (
            AnomalyFilter {
                workload: vec![String::new()],
                ..f()
            },
            "filter.workload[0]",
        ),
        (
            AnomalyFilter {
                container: vec!["x\n".into()],
                ..f()
            },
            "filter.container[0]",
        ),
        (
            AnomalyFilter {
                label_selector: "app in (a,b".into(),
                ..f()
            },
            "filter.label_selector",
        ),
        (
            AnomalyFilter {
                rule_ids: vec!["unexpected-exec".into(), "R0001".into()],
                ..f()
            },
            "filter.rule_ids[1]",
        ),
        (
            AnomalyFilter {
                min_severity: 42,
                ..f()
            },
            "filter.min_severity",
        ),
    ];
    for (filter, field) in cases {
        let e = c
            .stream_anomalies(StreamAnomaliesRequest {
                filter: Some(filter.clone()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{filter:?}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let e = c
        .stream_anomalies(StreamAnomaliesRequest {
            deny_list: vec![f()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("deny_list[0]"), "{}", e.message());

    let e = c
        .stream_events(StreamEventsRequest {
            filter: Some(EventFilter {
                kinds: vec![EventKind::Exec.into(), 99],
                ..Default::default()
            }),
            deny_list: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("filter.kinds[1]"),
        "{}",
        e.message()
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_live_with_filters() {
    let mut node = Node::start(64).await;
    let mut c = node.client().await;
    let mut s = c
        .stream_events(StreamEventsRequest {
            filter: Some(EventFilter {
                namespace: vec!["shop".into()],
                pod_regex: vec!["^checkout-".into()],
                kinds: vec![EventKind::Exec.into()],
                ..Default::default()
            }),
            deny_list: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    node.events.publish(event("exec", "tools", "checkout-1")); // other namespace
    node.events.publish(event("exit", "shop", "checkout-1")); // other kind
    node.events.publish(event("exec", "shop", "cart-1")); // other pod
    node.events.publish(event("exec", "shop", "checkout-2"));
    let m = tokio::time::timeout(WAIT, s.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.node_name, "worker-1");
    let Some(event_message::Payload::Event(e)) = m.payload else {
        panic!("an event: {m:?}")
    };
    assert_eq!(
        (e.namespace.as_str(), e.pod.as_str()),
        ("shop", "checkout-2")
    );
    assert_eq!(e.kind(), EventKind::Exec);
    assert_eq!(e.pid, Some(4242));
    assert!(
        matches!(e.detail, Some(proto::event::Detail::Exec(ref x)) if x.path == "/usr/bin/curl")
    );
    let v: serde_json::Value = serde_json::from_str(&e.json).unwrap();
    assert_eq!(v["pod"], "checkout-2");

    // An agent without detection or events says so.
    node.stop().await;
    node.serve(Some(Services::new(node.profiles.clone()))).await;
    let mut c = node.client().await;
    let e = c
        .stream_events(StreamEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    let e = c
        .stream_anomalies(StreamAnomaliesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    let e = c
        .accept_anomaly(AcceptAnomalyRequest { seq: 1 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    let e = c.get_info(proto::GetInfoRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented);
    assert!(e.message().contains("probes"), "{}", e.message());
    node.stop().await;
}

// ---- drift and graduation ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_and_relearn_with_precise_codes() {
    let mut node = Node::start(64).await;
    let first = node.anomalies.append(exec_anomaly());
    let mut repeat = exec_anomaly();
    repeat.repeat_of = Some(first);
    repeat.count = 12;
    let repeat = node.anomalies.append(repeat);
    let mut c = node.client().await;

    let r = c
        .accept_anomaly(AcceptAnomalyRequest { seq: first })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.profile,
        Some(ProfileRef {
            namespace: "shop".into(),
            workload: "checkout".into(),
            container: "app".into()
        })
    );
    assert!(r.changed);
    assert_eq!(r.description, "exec /usr/bin/curl -s *");
    assert!(matches!(
        r.added.and_then(|f| f.kind),
        Some(proto::fold::Kind::Exec(proto::FoldExec { ref path, .. })) if path == "/usr/bin/curl"
    ));
    assert_eq!(r.node_name, "worker-1");

    let e = c
        .accept_anomaly(AcceptAnomalyRequest { seq: repeat })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains(&format!("accept #{first}")),
        "{}",
        e.message()
    );
    let e = c
        .accept_anomaly(AcceptAnomalyRequest { seq: 99 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let e = c
        .accept_anomaly(AcceptAnomalyRequest { seq: 0 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    let e = c
        .relearn(RelearnRequest {
            namespace: "shop".into(),
            workload: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .relearn(RelearnRequest {
            namespace: "shop".into(),
            workload: "cart".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // Graduation before relearning: app ready, envoy partial, mcp learning.
    let list = c
        .list_profiles(ListProfilesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let grad: Vec<(String, bool, Vec<String>)> = list
        .profiles
        .iter()
        .map(|p| {
            let g = p.graduation.clone().unwrap();
            assert!(g.evaluated);
            (p.container.clone(), g.ready_to_enforce, g.reasons)
        })
        .collect();
    assert_eq!(
        grad,
        [
            ("app".to_string(), true, vec![]),
            (
                "envoy".to_string(),
                false,
                vec!["partial profile".to_string()]
            ),
            (
                "server".to_string(),
                false,
                vec!["still learning".to_string()]
            ),
        ]
    );
    let p = c
        .get_profile(ProfileRef {
            namespace: "shop".into(),
            workload: "checkout".into(),
            container: "app".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(p.graduation.unwrap().ready_to_enforce);

    // The CLI, through the same calls.
    let server = node.server_flag();
    let out = sensor(&[
        "profiles", "show", "--server", &server, "-n", "shop", "-w", "checkout", "-c", "envoy",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("enforce:       not ready: partial profile\n"),
        "{}",
        stdout(&out)
    );
    let out = sensor(&[
        "profiles",
        "accept",
        &first.to_string(),
        "--server",
        &server,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "#{first} was already in the baseline of shop/checkout/app: exec /usr/bin/curl -s *\n"
        )
    );
    let out = sensor(&[
        "profiles",
        "accept",
        &repeat.to_string(),
        "--server",
        &server,
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("accept #{first}")),
        "{}",
        stderr(&out)
    );
    let out = sensor(&[
        "profiles", "relearn", "-n", "shop", "-w", "checkout", "--server", &server,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "learning restarted for 2 profiles: shop/checkout/app, shop/checkout/envoy\n"
    );
    let out = sensor(&[
        "profiles", "relearn", "-n", "shop", "-w", "cart", "--server", &server,
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no profiles of workload shop/cart"),
        "{}",
        stderr(&out)
    );

    // Relearning took effect: the app is learning, and its baseline cannot take an accept.
    let app = node
        .profiles
        .profile(&ProfileKey {
            namespace: "shop".into(),
            workload: "checkout".into(),
            container: "app".into(),
        })
        .unwrap();
    assert_eq!(app.status, Status::Learning);
    let e = c
        .accept_anomaly(AcceptAnomalyRequest { seq: first })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    node.stop().await;
}

// ---- TLS ----

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A CA, a server certificate (localhost, 127.0.0.1) and a client certificate signed by it;
    /// another CA with its own client certificate.
    fn new() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
        };
        let leaf = |names: Vec<String>,
                    usage: ExtendedKeyUsagePurpose,
                    issuer: &CertifiedIssuer<'_, KeyPair>| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, "sensor test");
            p.extended_key_usages = vec![usage];
            let cert = p.signed_by(&key, issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let good = ca("sensor test CA");
        write("ca.pem", &good.pem());
        let (cert, key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            &good,
        );
        write("server.pem", &cert);
        write("server.key", &key);
        let (cert, key) = leaf(
            vec!["client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            &good,
        );
        write("client.pem", &cert);
        write("client.key", &key);
        let other = ca("another CA");
        write("other-ca.pem", &other.pem());
        let (cert, key) = leaf(
            vec!["client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            &other,
        );
        write("other-client.pem", &cert);
        write("other-client.key", &key);
        Pki { dir }
    }

    fn server_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: self.path("ca.pem"),
        }
    }

    fn client(&self, ca: &str, cert: Option<(&str, &str)>) -> ConnectOptions {
        ConnectOptions {
            tls: Some(ClientTls {
                ca: self.path(ca),
                cert: cert.map(|(c, _)| self.path(c)),
                key: cert.map(|(_, k)| self.path(k)),
                server_name: None,
            }),
            streaming: false,
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A call through `options`: Ok, or the connect/call error as text.
async fn list_via(addr: &ListenAddr, options: &ConnectOptions) -> Result<usize, String> {
    let mut c = api::client::connect_with(addr, options)
        .await
        .map_err(|e| e.to_string())?;
    c.list_profiles(ListProfilesRequest::default())
        .await
        .map(|r| r.into_inner().profiles.len())
        .map_err(|s| format!("{s:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_requires_a_client_certificate_from_the_ca() {
    let pki = Pki::new();
    let node = Node::start(64).await;
    node.anomalies.append(exec_anomaly());
    let addr: ListenAddr = format!("tcp://127.0.0.1:{}", free_port()).parse().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(api::serve(
        addr.clone(),
        Transport::tls(pki.server_files()),
        node.services(),
        async {
            let _ = stopped.await;
        },
    ));
    let good = pki.client("ca.pem", Some(("client.pem", "client.key")));
    let mut ok = Err(String::new());
    for _ in 0..100 {
        ok = list_via(&addr, &good).await;
        if ok.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ok,
        Ok(3),
        "a client with a certificate from the CA is served"
    );

    // Streams work over TLS too.
    let mut c = api::client::connect_with(&addr, &good).await.unwrap();
    let mut s = stream(&mut c, None, Some(0)).await;
    assert_eq!(until_live(&mut s).await.0, [1]);

    for (what, options) in [
        ("no client certificate", pki.client("ca.pem", None)),
        (
            "a certificate from another CA",
            pki.client("ca.pem", Some(("other-client.pem", "other-client.key"))),
        ),
        (
            "a server the client's CA did not sign",
            pki.client("other-ca.pem", Some(("client.pem", "client.key"))),
        ),
        ("plaintext", ConnectOptions::default()),
    ] {
        let refused = list_via(&addr, &options).await;
        assert!(refused.is_err(), "{what}: {refused:?}");
    }

    // The CLI with --tls-*.
    let server = addr.to_string();
    let p = |n: &str| pki.path(n).display().to_string();
    let out = sensor(&[
        "profiles",
        "list",
        "--server",
        &server,
        "--tls-ca",
        &p("ca.pem"),
        "--tls-cert",
        &p("client.pem"),
        "--tls-key",
        &p("client.key"),
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("shop       checkout  app"),
        "{}",
        stdout(&out)
    );
    let out = sensor(&[
        "profiles",
        "list",
        "--server",
        &server,
        "--tls-ca",
        &p("ca.pem"),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "no client certificate: refused");
    assert!(
        stderr(&out).contains("requires mutual TLS"),
        "{}",
        stderr(&out)
    );
    let out = sensor(&[
        "profiles",
        "list",
        "--server",
        &server,
        "--tls-ca",
        &p("other-ca.pem"),
        "--tls-cert",
        &p("client.pem"),
        "--tls-key",
        &p("client.key"),
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "a server certificate from another CA"
    );
    assert!(
        stderr(&out).contains("TLS handshake with the agent at")
            && stderr(&out).contains("UnknownIssuer"),
        "{}",
        stderr(&out)
    );
    let out = sensor(&[
        "profiles",
        "list",
        "--server",
        &node.server_flag(),
        "--tls-ca",
        &p("ca.pem"),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("apply to tcp:// addresses"),
        "{}",
        stderr(&out)
    );

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

#[tokio::test]
async fn tls_settings_are_checked_before_listening() {
    let pki = Pki::new();
    let tcp: ListenAddr = "127.0.0.1:1".parse().unwrap();
    let serve = |transport: Transport| {
        api::serve(
            tcp.clone(),
            transport,
            Arc::new(MemorySource::new("n")),
            std::future::pending(),
        )
    };
    let e = serve(Transport::default()).await.unwrap_err();
    assert!(matches!(e, ApiError::TcpNeedsTls(_)), "{e}");

    let mut files = pki.server_files();
    files.key = pki.path("missing.key");
    let e = serve(Transport::tls(files)).await.unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "server private key {}: ",
            pki.path("missing.key").display()
        )),
        "{e}"
    );
    let mut files = pki.server_files();
    files.client_ca = pki.path("server.key");
    let e = serve(Transport::tls(files)).await.unwrap_err().to_string();
    assert!(
        e.contains("client CA") && e.contains("no CERTIFICATE block"),
        "{e}"
    );
    let mut files = pki.server_files();
    files.key = pki.path("client.key"); // not the key of server.pem
    let e = serve(Transport::tls(files)).await.unwrap_err().to_string();
    assert!(e.contains("TLS configuration refused"), "{e}");
}

// ---- the `sensor` binary ----

async fn sensor(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sensor"))
            .args(&args)
            .env_remove("SENSOR_SERVER")
            .output()
            .expect("running the sensor binary")
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running `sensor watch`, its stdout lines arriving on a channel.
struct Watch {
    child: Child,
    lines: std_mpsc::Receiver<String>,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Watch {
    fn spawn(args: &[&str]) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sensor"))
            .arg("watch")
            .args(args)
            .env_remove("SENSOR_SERVER")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting sensor watch");
        let (tx, lines) = std_mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        Watch {
            child,
            lines,
            stderr,
        }
    }

    /// Waits until watch has written `text` to stderr.
    async fn wait_stderr(&self, text: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !self.stderr.lock().unwrap().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "watch did not write {text:?} to stderr in 20 s; stderr:\n{}",
                self.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn line(&mut self) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            match self.lines.try_recv() {
                Ok(l) => return l,
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    let status = self.child.try_wait();
                    std::thread::sleep(Duration::from_millis(200)); // let stderr arrive
                    panic!(
                        "watch exited ({status:?}); stderr:\n{}",
                        self.stderr.lock().unwrap()
                    )
                }
                Err(std_mpsc::TryRecvError::Empty) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no line from watch in 20 s; stderr:\n{}",
                        self.stderr.lock().unwrap()
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    async fn seq(&mut self) -> u64 {
        let line = self.line().await;
        let a: Anomaly = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        a.seq
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_line(node: &Node, seq: u64) -> serde_json::Value {
    serde_json::to_value(node.anomalies.get(seq).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_json_lines_and_resumes_after_the_agent_restarts() {
    let mut node = Node::start(1024).await;
    for _ in 0..5 {
        node.anomalies.append(exec_anomaly());
    }
    let server = node.server_flag();
    let mut watch = Watch::spawn(&["--json", "--since", "2", "--server", &server]);
    for want in 3..=5 {
        let line = watch.line().await;
        let got: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(got, log_line(&node, want), "the log's own line");
    }
    node.anomalies.append(exec_anomaly()); // 6, live
    assert_eq!(watch.seq().await, 6);

    // The agent restarts; anomalies keep being logged meanwhile.
    node.stop().await;
    node.anomalies.append(exec_anomaly()); // 7
    node.anomalies.append(exec_anomaly()); // 8
    // Back once watch has seen the stream end (it says so, then retries).
    watch.wait_stderr("reconnecting").await;
    node.serve(None).await;
    assert_eq!(watch.seq().await, 7);
    assert_eq!(watch.seq().await, 8);
    node.anomalies.append(exec_anomaly());
    assert_eq!(watch.seq().await, 9, "live again, nothing twice");
    assert!(
        watch.stderr.lock().unwrap().contains("reconnecting"),
        "{}",
        watch.stderr.lock().unwrap()
    );
    drop(watch);

    // Readable lines, filtered; no colour on a pipe.
    node.anomalies.append(anomaly(
        "tools",
        "mcp",
        "mcp-0",
        "server",
        "shell-spawned",
        "critical",
    ));
    let mut watch = Watch::spawn(&[
        "--since",
        "0",
        "-n",
        "tools",
        "--min-severity",
        "high",
        "--server",
        &server,
    ]);
    assert_eq!(
        watch.line().await,
        "#10 2026-05-28T20:26:40Z critical shell-spawned tools/mcp-0/server curl(4242) \
         observed: path=/usr/bin/curl; baseline: programs=/usr/local/bin/checkout"
    );
    drop(watch);

    // Bad input: usage errors and INVALID_ARGUMENT exit at once.
    let out = sensor(&["watch", "--pod", "(", "--server", &server]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("filter.pod_regex[0]"),
        "{}",
        stderr(&out)
    );
    let out = sensor(&["watch", "--since", "99", "--server", &server]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("beyond the last anomaly"),
        "{}",
        stderr(&out)
    );
    node.stop().await;
    let out = sensor(&["watch", "--server", &server]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "no agent at the first try: an error, not a retry loop"
    );
    assert!(
        stderr(&out).contains("cannot reach the agent"),
        "{}",
        stderr(&out)
    );
}
