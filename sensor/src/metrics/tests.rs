//! The registry and its encoding on plain data, and the HTTP endpoint over a real socket.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock, atomic::AtomicU64},
    time::Duration,
};

use sensor_common::{EventKind, Stat};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    capture::{self, CaptureCounts},
    *,
};
use crate::{
    api::{
        Hub,
        testutil::{partial, sample_profile},
    },
    detect::model::{Anomaly, RuleId, Severity},
    learn::store::ProfileStore,
    profile::model::{ProfileKey, Status},
};

/// `series -> value` and `family -> (help, type)` of an exposition, line by line.
#[derive(Debug, Default)]
struct Exposition {
    samples: BTreeMap<String, String>,
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    order: Vec<String>,
}

fn parse(text: &str) -> Exposition {
    let mut e = Exposition::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("help text");
            assert!(
                e.help.insert(name.into(), help.into()).is_none(),
                "family {name} twice"
            );
            e.order.push(name.into());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("type");
            e.types.insert(name.into(), ty.into());
        } else {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            assert!(
                e.samples.insert(series.into(), value.into()).is_none(),
                "sample {series} twice"
            );
        }
    }
    e
}

fn key(ns: &str, workload: &str) -> ProfileKey {
    ProfileKey {
        namespace: ns.into(),
        workload: workload.into(),
        container: "app".into(),
    }
}

fn kernel() -> KernelInfo {
    KernelInfo {
        release: "6.18.0".into(),
        version: "#1 SMP".into(),
        machine: "x86_64".into(),
        btf: "/sys/kernel/btf/vmlinux".into(),
        btf_bytes: 6_000_000,
    }
}

/// An agent with three profiles (ready full, ready partial with an overflowing exec list,
/// learning full), one subscriber per stream (the anomaly one slow: 2 drops, 1 gap), and three
/// anomaly records.
fn agent_metrics() -> (
    Metrics,
    crate::api::Subscription<crate::detect::model::Anomaly>,
    crate::api::Subscription<crate::attribution::event::Event>,
) {
    let metrics = Metrics::new(Health::default(), kernel());
    let mut overflowing = partial(sample_profile(key("shop", "cart")));
    overflowing.overflow.execs = true;
    let mut learning = sample_profile(key("shop", "web"));
    learning.status = Status::Learning;
    let store = ProfileStore::new(
        3600,
        vec![
            sample_profile(key("shop", "checkout")),
            overflowing,
            learning,
        ],
    );
    let anomaly_hub = Arc::new(Hub::new(8));
    let mut slow = anomaly_hub.subscribe_with_capacity(1);
    let event_hub = Arc::new(Hub::new(8));
    let events = event_hub.subscribe();
    metrics.set_agent(DaemonSource {
        store: Arc::new(RwLock::new(store)),
        last_seq: Arc::new(AtomicU64::new(3)),
        anomaly_hub: anomaly_hub.clone(),
        event_hub,
        netpol_audit_overflow: Arc::new(AtomicU64::new(2)),
        tools: Default::default(),
    });
    let mut a = Anomaly::sample("/usr/bin/curl");
    for seq in 1..=3 {
        a.seq = seq;
        if seq == 3 {
            a.finding.rule = RuleId::CloudMetadataAccess;
            a.finding.severity = Severity::Critical;
            a.count = 4;
        }
        metrics.anomalies.record(&a);
        anomaly_hub.publish(a.clone());
    }
    // The slow subscriber got 1 and missed 2: its next receive is the gap notice.
    assert!(slow.try_recv().is_ok());
    assert!(matches!(slow.try_recv(), Ok(crate::api::Delivery::Gap(2))));
    (metrics, slow, events)
}

#[test]
fn an_agent_scrape_has_help_type_and_the_agents_numbers() {
    let (metrics, _slow, _events) = agent_metrics();
    let text = metrics.encode().unwrap();
    let e = parse(&text);

    for (family, help) in &e.help {
        assert!(
            family.starts_with("sensor_") || family.starts_with("process_"),
            "{family}"
        );
        assert!(help.len() > 10, "{family}: {help:?}");
        let ty = &e.types[family];
        assert!(ty == "counter" || ty == "gauge", "{family}: {ty}");
        assert_eq!(
            ty == "counter",
            family.ends_with("_total"),
            "{family}: counters, and only counters, end in _total"
        );
    }
    let s = |series: &str| -> &str {
        e.samples
            .get(series)
            .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
    };
    assert_eq!(
        s(r#"sensor_profiles{status="ready",completeness="full"}"#),
        "1"
    );
    assert_eq!(
        s(r#"sensor_profiles{status="ready",completeness="partial"}"#),
        "1"
    );
    assert_eq!(
        s(r#"sensor_profiles{status="learning",completeness="full"}"#),
        "1"
    );
    assert_eq!(
        s(r#"sensor_profiles{status="learning",completeness="partial"}"#),
        "0"
    );
    assert_eq!(
        s(
            r#"sensor_profile_list_overflow{namespace="shop",workload="cart",container="app",list="execs"}"#
        ),
        "1"
    );
    assert_eq!(
        s(r#"sensor_anomalies_total{rule="unexpected-exec",severity="medium"}"#),
        "2"
    );
    assert_eq!(
        s(r#"sensor_anomalies_total{rule="cloud-metadata-access",severity="critical"}"#),
        "4",
        "a repeat record adds its count"
    );
    assert_eq!(
        s(r#"sensor_anomaly_records_total{rule="cloud-metadata-access",severity="critical"}"#),
        "1"
    );
    assert_eq!(s("sensor_anomaly_log_last_seq"), "3");
    assert_eq!(s("sensor_netpol_audit_judged_overflow_total"), "2");
    assert_eq!(s(r#"sensor_grpc_subscribers{stream="anomalies"}"#), "1");
    assert_eq!(s(r#"sensor_grpc_subscribers{stream="events"}"#), "1");
    assert_eq!(
        s(r#"sensor_grpc_stream_published_total{stream="anomalies"}"#),
        "3"
    );
    assert_eq!(
        s(r#"sensor_grpc_stream_dropped_total{stream="anomalies"}"#),
        "2"
    );
    assert_eq!(
        s(r#"sensor_grpc_stream_gaps_total{stream="anomalies"}"#),
        "1"
    );
    assert_eq!(
        s(r#"sensor_grpc_stream_dropped_total{stream="events"}"#),
        "0"
    );
    assert_eq!(
        s(
            r##"sensor_kernel_info{release="6.18.0",version="#1 SMP",machine="x86_64",btf="/sys/kernel/btf/vmlinux"}"##
        ),
        "1"
    );
    assert_eq!(s(r#"sensor_ready{check="state_loaded"}"#), "0");
    assert!(s("process_resident_memory_bytes").parse::<u64>().unwrap() > 1 << 20);
    assert!(s("process_cpu_seconds_total").parse::<f64>().unwrap() >= 0.0);
    // Capture has not started: none of its families yet.
    assert!(!text.contains("sensor_events_decoded"), "{text}");
    // Families come in a fixed order: health, agent, process, facts.
    let pos = |f: &str| e.order.iter().position(|x| x == f).unwrap();
    assert!(pos("sensor_ready") < pos("sensor_profiles"));
    assert!(pos("sensor_profiles") < pos("process_cpu_seconds_total"));
    assert!(pos("process_cpu_seconds_total") < pos("sensor_build_info"));
}

#[test]
fn capture_counts_every_kernel_and_user_counter_once() {
    let counts = CaptureCounts {
        decoded: EventKind::ALL
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, 100 + i as u64))
            .collect(),
        queue_full: EventKind::ALL.iter().map(|k| (*k, 0)).collect(),
        // Each kernel counter a distinct value, so a misplaced one shows.
        kernel: Stat::ALL
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, 1000 + i as u64))
            .collect(),
        malformed: 7,
        dns_unparsed: 3,
        dns_unparsed_by_workload: vec![(("shop".into(), "checkout".into()), 3)],
        probes: vec![
            ("sys_enter".into(), "tp_btf/sys_enter".into(), true),
            ("connect4".into(), "cgroup sock_addr".into(), false),
        ],
        attachments: crate::capture::AttachCounts {
            live: 12,
            attached: 14,
            detached: 2,
            failed: 1,
        },
        ring_buffer_bytes: 8 << 20,
    };
    let mut registry = prometheus_client::registry::Registry::default();
    #[derive(Debug)]
    struct Fixed(CaptureCounts);
    impl prometheus_client::collector::Collector for Fixed {
        fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
            capture::encode(&self.0, &mut enc)
        }
    }
    registry.register_collector(Box::new(Fixed(counts)));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
    let e = parse(&text);
    let s = |series: &str| -> u64 {
        e.samples
            .get(series)
            .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(s(r#"sensor_events_decoded_total{kind="exec"}"#), 101);
    assert_eq!(s(r#"sensor_events_decoded_total{kind="file"}"#), 107);
    assert_eq!(
        s(r#"sensor_events_lost_total{cause="ring_buffer_full",kind="fork"}"#),
        1000
    );
    assert_eq!(
        s(r#"sensor_events_lost_total{cause="ring_buffer_full",kind="file"}"#),
        1006
    );
    assert_eq!(
        s(r#"sensor_events_lost_total{cause="queue_full",kind="cgroup_rmdir"}"#),
        0
    );
    assert_eq!(
        s(r#"sensor_events_lost_total{cause="malformed",kind="unknown"}"#),
        7
    );
    assert_eq!(
        s(r#"sensor_syscalls_unrecorded_total{cause="slots_exhausted"}"#),
        1007
    );
    assert_eq!(
        s(r#"sensor_syscalls_unrecorded_total{cause="out_of_range"}"#),
        1008
    );
    assert_eq!(s("sensor_flow_map_full_total"), 1009);
    assert_eq!(s("sensor_syscall_slots_assigned_total"), 1010);
    assert_eq!(s("sensor_file_opens_checked_total"), 1011);
    assert_eq!(s("sensor_file_paths_unresolved_total"), 1012);
    assert_eq!(s("sensor_dns_answers_unparsed_total"), 3);
    assert_eq!(
        s(r#"sensor_workload_dns_answers_unparsed_total{namespace="shop",workload="checkout"}"#),
        3
    );
    assert_eq!(
        s(r#"sensor_probe_attached{program="connect4",hook="cgroup sock_addr"}"#),
        0
    );
    assert_eq!(s("sensor_ring_buffer_size_bytes"), 8 << 20);
    assert_eq!(s("sensor_probe_attachments"), 12);
    assert_eq!(
        s(r#"sensor_probe_attach_operations_total{result="attached"}"#),
        14
    );
    assert_eq!(
        s(r#"sensor_probe_attach_operations_total{result="detached"}"#),
        2
    );
    assert_eq!(
        s(r#"sensor_probe_attach_operations_total{result="failed"}"#),
        1
    );
    // Every kernel counter appears exactly once (13 distinct values 1000..=1012).
    let kernel_values: Vec<u64> = e
        .samples
        .values()
        .filter_map(|v| v.parse::<u64>().ok())
        .filter(|v| (1000..1000 + Stat::ALL.len() as u64).contains(v))
        .collect();
    assert_eq!(kernel_values.len(), Stat::ALL.len(), "{text}");
}

/// `METHOD path` over a real TCP connection; (status, headers, body).
async fn http(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn the_endpoint_serves_metrics_health_and_readiness() {
    let metrics = Arc::new(Metrics::new(
        Health::new(Duration::from_millis(200)),
        kernel(),
    ));
    let running = http::start("127.0.0.1:0".parse().unwrap(), metrics.clone())
        .await
        .unwrap();
    let addr = running.addr;
    assert_ne!(addr.port(), 0, "the real port is reported");

    let (status, head, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    assert!(body.contains("# TYPE sensor_build_info gauge"), "{body}");

    // Liveness: starting, alive after a beat, stalled once the beat is older than allowed.
    let (status, _, body) = http(addr, "GET", "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok: starting\n"));
    metrics.health.beat();
    let (status, _, body) = http(addr, "GET", "/healthz").await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = http(addr, "GET", "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("event loop stalled: no tick for"),
        "{body}"
    );
    let scraped = metrics.encode().unwrap();
    let age: f64 = parse(&scraped).samples["sensor_event_loop_heartbeat_age_seconds"]
        .parse()
        .unwrap();
    assert!(age >= 0.3, "heartbeat age {age}");

    // Readiness: what is missing, until everything is up; not ready again when stopping.
    let (status, _, body) = http(addr, "GET", "/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        "not ready: state_loaded, probes_attached, grpc_serving\n"
    );
    metrics.health.set_state_loaded();
    metrics.health.set_probes_attached(true);
    metrics.health.set_grpc_serving(true);
    let (status, _, body) = http(addr, "GET", "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    metrics.health.set_stopping();
    let (status, _, body) = http(addr, "GET", "/readyz").await;
    assert_eq!((status, body.as_str()), (503, "not ready: not_stopping\n"));

    // HEAD: headers only; other methods and paths refused.
    let (status, _, body) = http(addr, "HEAD", "/metrics").await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, head, _) = http(addr, "POST", "/metrics").await;
    assert_eq!(status, 405);
    assert!(head.contains("allow: get, head"), "{head}");
    let (status, _, _) = http(addr, "GET", "/").await;
    assert_eq!(status, 404);

    // Dropping the handle stops the endpoint: the aborted task closes the listener when the
    // runtime next runs it, so connecting fails from then on (polled, with a deadline).
    drop(running);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the endpoint still accepts connections 5 s after its handle was dropped"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_taken_port_is_a_bind_error_naming_the_address() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let metrics = Arc::new(Metrics::new(Health::default(), kernel()));
    let e = http::start(addr, metrics).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("metrics endpoint: binding {addr}: ")),
        "{e}"
    );
}
