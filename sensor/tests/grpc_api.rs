//! The gRPC API end to end: the real server on a temporary Unix socket over an in-memory
//! profile source, a real tonic client (plus health and reflection clients), and the real
//! `sensor` binary as a client and offline.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Arc,
    time::Duration,
};

use sensor::api::{
    self, ListenAddr, MemorySource,
    proto::{
        self, ListProfilesRequest, NetworkPolicyFlavor, NetworkPolicyRequest, PolicyFormat,
        ProfileRef, SeccompFormat, SeccompMode, SeccompRequest, sensor_client::SensorClient,
    },
};
use sensor::profile::model::ApplicationProfile;
use serde_json::json;
use tonic::{Code, transport::Channel};

// ---- fixtures: realistic profiles in their persisted form ----

fn checkout_app() -> serde_json::Value {
    json!({
        "version": 2,
        "namespace": "shop",
        "workload": "checkout",
        "container": "app",
        "workloadKind": "deployment",
        "status": "ready",
        "completeness": "full",
        "learningStarted": "2025-06-01T08:00:00Z",
        "learningPeriodSeconds": 86400,
        "readyAt": "2025-06-02T08:00:00Z",
        "updated": "2025-06-02T09:30:00.123456789Z",
        "nodes": ["worker-1", "worker-2"],
        "pods": ["checkout-7d9f8b6c5d-x2x4z", "checkout-7d9f8b6c5d-q8m7n"],
        "labels": {"app": "checkout", "pod-template-hash": "7d9f8b6c5d"},
        "syscalls": {
            "native": ["accept4", "bind", "close", "connect", "epoll_pwait", "exit_group",
                       "futex", "getsockname", "listen", "openat", "read", "recvfrom",
                       "sendto", "socket", "write"],
            "compat": []
        },
        "execs": [
            {"path": "/usr/local/bin/checkout", "args": ["--listen", ":8080"], "count": 2,
             "firstSeen": "2025-06-01T08:00:01Z", "lastSeen": "2025-06-01T20:00:01Z"}
        ],
        "egress": [
            {"ip": "10.96.0.10", "port": 53, "protocol": "udp", "connections": 340,
             "bytesSent": 27200, "bytesRecv": 61200,
             "rate": {"windowSeconds": 60, "windows": 300, "maxConnectionsPerWindow": 6,
                      "maxBytesSentPerWindow": 480, "maxBytesRecvPerWindow": 1080},
             "firstSeen": "2025-06-01T08:00:02Z", "lastSeen": "2025-06-02T09:29:00Z"},
            {"ip": "10.244.1.17", "port": 5432, "protocol": "tcp",
             "dnsNames": ["postgres.shop.svc.cluster.local"],
             "peer": {"namespace": "shop", "pod": "postgres-0", "workload": "postgres",
                      "labels": {"app": "postgres"}},
             "connections": 12, "bytesSent": 1048576, "bytesRecv": 5242880,
             "rate": {"windowSeconds": 60, "windows": 12, "maxConnectionsPerWindow": 2,
                      "maxBytesSentPerWindow": 131072, "maxBytesRecvPerWindow": 655360},
             "firstSeen": "2025-06-01T08:00:03Z", "lastSeen": "2025-06-02T09:00:00Z"},
            {"ip": "203.0.113.7", "port": 443, "protocol": "tcp",
             "dnsNames": ["api.stripe.com"],
             "connections": 170, "bytesSent": 870400, "bytesRecv": 2611200,
             "rate": {"windowSeconds": 60, "windows": 150, "maxConnectionsPerWindow": 3,
                      "maxBytesSentPerWindow": 15360, "maxBytesRecvPerWindow": 46080},
             "firstSeen": "2025-06-01T08:05:00Z", "lastSeen": "2025-06-02T09:28:00Z"}
        ],
        "ingress": [
            {"ip": "10.244.2.5", "port": 8080, "protocol": "tcp",
             "peer": {"namespace": "shop", "pod": "frontend-5f6d7c8b9-abcde",
                      "workload": "frontend", "labels": {"app": "frontend"}},
             "connections": 9000, "bytesSent": 9216000, "bytesRecv": 4608000,
             "rate": {"windowSeconds": 60, "windows": 1400, "maxConnectionsPerWindow": 40,
                      "maxBytesSentPerWindow": 40960, "maxBytesRecvPerWindow": 20480},
             "firstSeen": "2025-06-01T08:01:00Z", "lastSeen": "2025-06-02T09:30:00Z"}
        ],
        "dns": [
            {"name": "api.stripe.com", "addresses": ["203.0.113.7"], "count": 170},
            {"name": "postgres.shop.svc.cluster.local", "addresses": ["10.244.1.17"], "count": 12}
        ],
        "resolvers": [{"ip": "10.96.0.10", "clusterDns": true}],
        "files": [
            {"path": "/var/run/secrets/kubernetes.io/serviceaccount/token",
             "pattern": "/var/run/secrets/kubernetes.io/serviceaccount/", "count": 4,
             "firstSeen": "2025-06-01T08:00:02Z", "lastSeen": "2025-06-02T08:00:02Z"}
        ],
        "overflow": {"execs": false, "egress": false, "ingress": false, "files": false, "dns": false}
    })
}

fn checkout_envoy() -> serde_json::Value {
    json!({
        "version": 2,
        "namespace": "shop",
        "workload": "checkout",
        "container": "envoy",
        "workloadKind": "deployment",
        "status": "ready",
        "completeness": "full",
        "learningStarted": "2025-06-01T08:00:00Z",
        "learningPeriodSeconds": 86400,
        "readyAt": "2025-06-02T08:00:00Z",
        "updated": "2025-06-02T09:30:00Z",
        "nodes": ["worker-1"],
        "pods": ["checkout-7d9f8b6c5d-x2x4z"],
        "labels": {"app": "checkout"},
        "syscalls": {"native": ["accept4", "close", "epoll_wait", "read", "write"], "compat": []},
        "execs": [],
        "egress": [],
        "ingress": [
            {"ip": "10.244.2.9", "port": 15090, "protocol": "tcp", "connections": 1440,
             "bytesSent": 1474560, "bytesRecv": 144000,
             "rate": {"windowSeconds": 60, "windows": 1440, "maxConnectionsPerWindow": 1,
                      "maxBytesSentPerWindow": 1024, "maxBytesRecvPerWindow": 100},
             "firstSeen": "2025-06-01T08:01:00Z", "lastSeen": "2025-06-02T09:30:00Z"}
        ],
        "dns": [],
        "resolvers": [],
        "files": [],
        "overflow": {"execs": false, "egress": false, "ingress": false, "files": false, "dns": false}
    })
}

/// Still learning, partial, an unknown syscall and a cap hit: every note at once.
fn mcp_fetch() -> serde_json::Value {
    json!({
        "version": 2,
        "namespace": "tools",
        "workload": "mcp-fetch",
        "container": "server",
        "workloadKind": "deployment",
        "status": "learning",
        "completeness": "partial",
        "partialReasons": ["container started before the sensor"],
        "learningStarted": "2025-06-02T09:00:00Z",
        "learningPeriodSeconds": 86400,
        "updated": "2025-06-02T11:30:00Z",
        "nodes": ["worker-2"],
        "pods": ["mcp-fetch-59c7d8b6f-2mxkp"],
        "syscalls": {
            "native": ["read", "write", "openat", "close", "connect", "socket", "syscall_463"],
            "compat": ["socketcall", "read"]
        },
        "execs": [
            {"path": "/bin/sh", "args": ["-c", "curl -s *"], "count": 41,
             "firstSeen": "2025-06-02T09:10:00Z", "lastSeen": "2025-06-02T11:20:00Z"}
        ],
        "egress": [
            {"ip": "2001:db8::7", "port": 443, "protocol": "tcp", "dnsNames": ["example.org"],
             "connections": 41, "bytesSent": 41000, "bytesRecv": 410000,
             "rate": {"windowSeconds": 60, "windows": 30, "maxConnectionsPerWindow": 3,
                      "maxBytesSentPerWindow": 3000, "maxBytesRecvPerWindow": 30000},
             "firstSeen": "2025-06-02T09:10:00Z", "lastSeen": "2025-06-02T11:20:00Z"}
        ],
        "ingress": [],
        "dns": [{"name": "example.org", "addresses": ["2001:db8::7"], "count": 41}],
        "resolvers": [{"ip": "192.0.2.53", "clusterDns": false}],
        "files": [],
        "overflow": {"execs": false, "egress": true, "ingress": false, "files": false, "dns": false}
    })
}

fn profile(v: serde_json::Value) -> ApplicationProfile {
    serde_json::from_value(v).expect("fixture is a valid persisted profile")
}

fn all_profiles() -> Vec<ApplicationProfile> {
    vec![
        profile(mcp_fetch()),
        profile(checkout_envoy()),
        profile(checkout_app()),
    ]
}

// ---- harness ----

struct Daemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<Result<(), api::ApiError>>,
}

impl Daemon {
    async fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        // A directory that does not exist yet: the server creates it.
        let socket = dir.path().join("run/sensor.sock");
        let source = Arc::new(MemorySource::with_profiles("worker-1", all_profiles()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(api::serve(
            ListenAddr::Unix(socket.clone()),
            false,
            source,
            async {
                let _ = stopped.await;
            },
        ));
        // The socket appears at its path already listening (bound, chmod, then renamed).
        for _ in 0..500 {
            if socket.exists() {
                break;
            }
            assert!(!served.is_finished(), "the server stopped before listening");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            socket.exists(),
            "no socket at {} after 5 s",
            socket.display()
        );
        Daemon {
            _dir: dir,
            socket,
            stop: Some(stop),
            served,
        }
    }

    fn addr(&self) -> ListenAddr {
        ListenAddr::Unix(self.socket.clone())
    }

    fn server_flag(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    async fn channel(&self) -> Channel {
        api::client::channel(&self.addr())
            .await
            .unwrap_or_else(|e| panic!("connecting: {e}"))
    }

    async fn client(&self) -> SensorClient<Channel> {
        SensorClient::new(self.channel().await)
    }

    /// Stops the server and checks it exits cleanly and removes its socket.
    async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.served)
            .await
            .expect("the server stops within 10 s")
            .expect("the server task did not panic");
        result.unwrap_or_else(|e| panic!("serve returned an error: {e}"));
        assert!(!self.socket.exists(), "the socket file is removed on exit");
    }
}

fn pref(ns: &str, w: &str, c: &str) -> ProfileRef {
    ProfileRef {
        namespace: ns.into(),
        workload: w.into(),
        container: c.into(),
    }
}

fn keys(r: &proto::ListProfilesResponse) -> Vec<String> {
    r.profiles
        .iter()
        .map(|p| format!("{}/{}/{}", p.namespace, p.workload, p.container))
        .collect()
}

// ---- gRPC ----

#[tokio::test]
async fn list_profiles_with_filters() {
    let agent = Daemon::start().await;
    let mut c = agent.client().await;
    let list = |namespace: &str, workload: &str| ListProfilesRequest {
        namespace: namespace.into(),
        workload: workload.into(),
    };

    let all = c.list_profiles(list("", "")).await.unwrap().into_inner();
    assert_eq!(
        keys(&all),
        [
            "shop/checkout/app",
            "shop/checkout/envoy",
            "tools/mcp-fetch/server"
        ]
    );
    assert_eq!(all.node_name, "worker-1");
    assert!(all.time.is_some());

    let app = &all.profiles[0];
    assert_eq!(app.workload_kind(), proto::WorkloadKind::Deployment);
    let graduation = app.graduation.as_ref().expect("graduation is always set");
    assert!(!graduation.evaluated && !graduation.ready_to_enforce);
    assert_eq!(app.status(), proto::ProfileStatus::Ready);
    assert_eq!(app.completeness(), proto::Completeness::Full);
    assert_eq!(
        (
            app.syscalls,
            app.execs,
            app.egress,
            app.ingress,
            app.files,
            app.dns_names
        ),
        (15, 1, 3, 1, 1, 2)
    );
    assert_eq!(app.ready_at.unwrap().seconds, 1_748_851_200); // 2025-06-02T08:00:00Z
    let mcp = &all.profiles[2];
    assert_eq!(mcp.status(), proto::ProfileStatus::Learning);
    assert!(mcp.ready_at.is_none());
    assert!(mcp.overflow.unwrap().egress);

    let shop = c
        .list_profiles(list("shop", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys(&shop), ["shop/checkout/app", "shop/checkout/envoy"]);
    let mcp_only = c
        .list_profiles(list("", "mcp-fetch"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(keys(&mcp_only), ["tools/mcp-fetch/server"]);
    let both = c
        .list_profiles(list("tools", "checkout"))
        .await
        .unwrap()
        .into_inner();
    assert!(both.profiles.is_empty(), "filters combine");
    let none = c
        .list_profiles(list("nope", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(none.profiles.is_empty(), "an empty list, not NOT_FOUND");

    let bad = c.list_profiles(list("a/b", "")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(
        bad.message().starts_with("namespace \"a/b\" is invalid"),
        "{}",
        bad.message()
    );
    agent.stop().await;
}

#[tokio::test]
async fn get_profile_is_typed_and_carries_the_persisted_json() {
    let agent = Daemon::start().await;
    let mut c = agent.client().await;
    let p = c
        .get_profile(pref("shop", "checkout", "app"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (p.namespace.as_str(), p.container.as_str()),
        ("shop", "app")
    );
    assert_eq!(p.node_name, "worker-1");
    assert_eq!(p.version, 2);
    assert_eq!(p.learning_period.unwrap().seconds, 86_400);
    let updated = p.updated.unwrap();
    assert_eq!(updated.nanos, 123_456_789);
    assert_eq!(p.labels["app"], "checkout");
    assert_eq!(p.pods.len(), 2);
    assert_eq!(p.syscalls.as_ref().unwrap().native.len(), 15);
    assert_eq!(p.execs[0].args, ["--listen", ":8080"]);

    let pg = &p.egress[1];
    assert_eq!((pg.ip.as_str(), pg.port), ("10.244.1.17", 5432));
    assert_eq!(pg.protocol(), proto::Protocol::Tcp);
    assert_eq!(pg.dns_names, ["postgres.shop.svc.cluster.local"]);
    let peer = pg.peer.as_ref().unwrap();
    assert_eq!(
        (peer.workload.as_str(), peer.pod.as_str()),
        ("postgres", "postgres-0")
    );
    assert_eq!(peer.labels["app"], "postgres");
    let rate = pg.rate.unwrap();
    assert_eq!(
        (rate.window_seconds, rate.max_bytes_recv_per_window),
        (60, 655_360)
    );
    assert!(p.egress[2].peer.is_none());
    assert_eq!(p.ingress[0].peer.as_ref().unwrap().workload, "frontend");
    assert_eq!(p.dns[0].addresses, ["203.0.113.7"]);
    assert!(p.resolvers[0].cluster_dns);
    assert_eq!(p.files[0].count, 4);
    assert!(!p.overflow.unwrap().egress);

    let from_json: ApplicationProfile =
        serde_json::from_str(&p.json).expect("`json` is the persisted form");
    assert_eq!(from_json, profile(checkout_app()));

    let ipv6 = c
        .get_profile(pref("tools", "mcp-fetch", "server"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ipv6.egress[0].ip, "2001:db8::7");
    assert_eq!(
        ipv6.partial_reasons,
        ["container started before the sensor"]
    );
    assert_eq!(ipv6.syscalls.unwrap().compat, ["socketcall", "read"]);
    agent.stop().await;
}

#[tokio::test]
async fn unknown_names_are_not_found_and_bad_fields_invalid_argument() {
    let agent = Daemon::start().await;
    let mut c = agent.client().await;

    for (r, message) in [
        (
            pref("bank", "checkout", "app"),
            r#"no profiles in namespace "bank""#,
        ),
        (
            pref("shop", "payments", "app"),
            r#"no workload "payments" in namespace "shop" (known: checkout)"#,
        ),
        (
            pref("shop", "checkout", "db"),
            r#"workload shop/checkout has no container "db" (known: app, envoy)"#,
        ),
    ] {
        let e = c.get_profile(r.clone()).await.unwrap_err();
        assert_eq!((e.code(), e.message()), (Code::NotFound, message));
        let e = c
            .get_seccomp_profile(SeccompRequest {
                r#ref: Some(r),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!((e.code(), e.message()), (Code::NotFound, message));
    }
    let e = c
        .get_network_policy(NetworkPolicyRequest {
            namespace: "shop".into(),
            workload: "payments".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("\"payments\""), "{}", e.message());

    let invalid = [
        c.get_profile(pref("", "checkout", "app"))
            .await
            .unwrap_err(),
        c.get_profile(pref("shop", "checkout", ""))
            .await
            .unwrap_err(),
        c.get_seccomp_profile(SeccompRequest::default())
            .await
            .unwrap_err(),
        c.get_seccomp_profile(SeccompRequest {
            r#ref: Some(pref("shop", "checkout", "app")),
            mode: 7,
            format: 0,
        })
        .await
        .unwrap_err(),
        c.get_network_policy(NetworkPolicyRequest {
            namespace: "shop".into(),
            workload: "checkout".into(),
            flavor: 9,
            format: 0,
        })
        .await
        .unwrap_err(),
        c.get_network_policy(NetworkPolicyRequest {
            namespace: "shop".into(),
            ..Default::default()
        })
        .await
        .unwrap_err(),
    ];
    let messages: Vec<&str> = invalid.iter().map(|s| s.message()).collect();
    assert!(
        invalid.iter().all(|s| s.code() == Code::InvalidArgument),
        "{invalid:?}"
    );
    assert_eq!(
        messages,
        [
            "namespace is required",
            "container is required",
            "ref is required",
            "mode: unknown enum value 7",
            "flavor: unknown enum value 9",
            "workload is required",
        ]
    );
    agent.stop().await;
}

#[tokio::test]
async fn seccomp_drafts_enforce_audit_and_notes() {
    let agent = Daemon::start().await;
    let mut c = agent.client().await;
    let get = |r: ProfileRef, mode: SeccompMode, format: SeccompFormat| SeccompRequest {
        r#ref: Some(r),
        mode: mode.into(),
        format: format.into(),
    };

    let enforce = c
        .get_seccomp_profile(get(
            pref("shop", "checkout", "app"),
            SeccompMode::Unspecified,
            SeccompFormat::Unspecified,
        ))
        .await
        .unwrap()
        .into_inner();
    let json: serde_json::Value = serde_json::from_str(&enforce.content).unwrap();
    assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(json["defaultErrnoRet"], 1);
    let names: Vec<&str> = json["syscalls"][0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"accept4") && names.contains(&"write"),
        "{names:?}"
    );
    assert_eq!(json["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
    #[cfg(target_arch = "x86_64")]
    assert_eq!(json["architectures"][0], "SCMP_ARCH_X86_64");
    assert_eq!(enforce.localhost_profile, "sensor/shop/checkout/app.json");
    // A ready, full, uncapped profile: the only note names what the runtime floor adds.
    assert!(
        enforce.notes.len() == 1
            && enforce.notes[0].contains("runtime floor")
            && enforce.notes[0].contains("capset")
            && !enforce.notes[0].contains(" accept4"),
        "{:?}",
        enforce.notes
    );
    assert_eq!(enforce.status(), proto::ProfileStatus::Ready);
    assert_eq!(enforce.completeness(), proto::Completeness::Full);
    assert_eq!(enforce.node_name, "worker-1");

    let audit = c
        .get_seccomp_profile(get(
            pref("shop", "checkout", "app"),
            SeccompMode::Audit,
            SeccompFormat::OciJson,
        ))
        .await
        .unwrap()
        .into_inner();
    let json: serde_json::Value = serde_json::from_str(&audit.content).unwrap();
    assert_eq!(json["defaultAction"], "SCMP_ACT_LOG");
    assert!(json.get("defaultErrnoRet").is_none());
    assert_eq!(
        audit.localhost_profile,
        "sensor/shop/checkout/app.audit.json"
    );

    let partial = c
        .get_seccomp_profile(get(
            pref("tools", "mcp-fetch", "server"),
            SeccompMode::Enforce,
            SeccompFormat::OciJson,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(partial.completeness(), proto::Completeness::Partial);
    assert_eq!(partial.status(), proto::ProfileStatus::Learning);
    let notes = partial.notes.join("\n");
    for want in [
        "still learning",
        "container started before the sensor",
        "caps (egress)",
        "syscall_463",
    ] {
        assert!(notes.contains(want), "notes lack {want:?}:\n{notes}");
    }
    assert!(
        !partial.content.contains("syscall_463"),
        "unknown names stay out of the draft"
    );

    let spo = c
        .get_seccomp_profile(get(
            pref("shop", "checkout", "app"),
            SeccompMode::Audit,
            SeccompFormat::SpoYaml,
        ))
        .await
        .unwrap()
        .into_inner();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&spo.content).unwrap();
    assert_eq!(yaml["kind"].as_str(), Some("SeccompProfile"));
    // Cluster-scoped since SPO v0.9.0: the namespace is in the name, not in the metadata.
    assert!(
        yaml["metadata"].get("namespace").is_none(),
        "{}",
        spo.content
    );
    assert_eq!(
        yaml["metadata"]["name"].as_str(),
        Some("shop.checkout.app.audit")
    );
    assert_eq!(
        spo.localhost_profile,
        "operator/shop.checkout.app.audit.json"
    );
    assert!(
        spo.notes
            .iter()
            .any(|n| n.contains("localhostProfile: operator/shop.checkout.app.audit.json")),
        "{:?}",
        spo.notes
    );
    assert_eq!(yaml["spec"]["defaultAction"].as_str(), Some("SCMP_ACT_LOG"));
    agent.stop().await;
}

#[tokio::test]
async fn network_policy_drafts_parse_back() {
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    let agent = Daemon::start().await;
    let mut c = agent.client().await;
    let get = |flavor: NetworkPolicyFlavor, format: PolicyFormat| NetworkPolicyRequest {
        namespace: "shop".into(),
        workload: "checkout".into(),
        flavor: flavor.into(),
        format: format.into(),
    };

    let yaml = c
        .get_network_policy(get(
            NetworkPolicyFlavor::Unspecified,
            PolicyFormat::Unspecified,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(yaml.containers, ["app", "envoy"], "all containers merged");
    assert_eq!(yaml.node_name, "worker-1");
    let policy: NetworkPolicy = serde_yaml_ng::from_str(&yaml.content)
        .unwrap_or_else(|e| panic!("not a NetworkPolicy: {e}\n{}", yaml.content));
    assert_eq!(policy.metadata.namespace.as_deref(), Some("shop"));
    let spec = policy.spec.unwrap();
    let ingress_ports: Vec<String> = spec
        .ingress
        .unwrap_or_default()
        .iter()
        .flat_map(|r| r.ports.clone().unwrap_or_default())
        .filter_map(|p| p.port.map(|p| format!("{p:?}")))
        .collect();
    assert!(
        ingress_ports.iter().any(|p| p.contains("8080"))
            && ingress_ports.iter().any(|p| p.contains("15090")),
        "both containers' listening ports: {ingress_ports:?}"
    );
    let raw: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml.content).unwrap();
    assert_eq!(raw["apiVersion"].as_str(), Some("networking.k8s.io/v1"));
    assert_eq!(raw["kind"].as_str(), Some("NetworkPolicy"));

    let json = c
        .get_network_policy(get(NetworkPolicyFlavor::Kubernetes, PolicyFormat::Json))
        .await
        .unwrap()
        .into_inner();
    let from_json: NetworkPolicy = serde_json::from_str(&json.content).unwrap();
    let from_yaml: NetworkPolicy = serde_yaml_ng::from_str(&yaml.content).unwrap();
    assert_eq!(from_json, from_yaml, "YAML and JSON are the same policy");

    let cilium = c
        .get_network_policy(get(NetworkPolicyFlavor::Cilium, PolicyFormat::Yaml))
        .await
        .unwrap()
        .into_inner();
    let raw: serde_yaml_ng::Value = serde_yaml_ng::from_str(&cilium.content).unwrap();
    assert_eq!(raw["kind"].as_str(), Some("CiliumNetworkPolicy"));
    assert!(
        cilium.content.contains("api.stripe.com"),
        "{}",
        cilium.content
    );

    let partial = c
        .get_network_policy(NetworkPolicyRequest {
            namespace: "tools".into(),
            workload: "mcp-fetch".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        partial.notes.iter().any(|n| n.contains("partial")),
        "{:?}",
        partial.notes
    );
    agent.stop().await;
}

#[tokio::test]
async fn get_agents_filters_by_namespace_and_agent_behaviour() {
    let agent = Daemon::start().await;
    let mut client = agent.client().await;
    let mut get = async |namespace: &str, all: bool| {
        client
            .get_agents(proto::GetAgentsRequest {
                namespace: namespace.into(),
                all,
            })
            .await
            .map(|r| r.into_inner())
    };
    let everything = get("", true).await.expect("GetAgents all");
    let names = |r: &proto::GetAgentsResponse| -> Vec<String> {
        r.agents
            .iter()
            .map(|a| format!("{}/{}/{}", a.namespace, a.workload, a.container))
            .collect()
    };
    assert_eq!(
        names(&everything),
        [
            "shop/checkout/app",
            "shop/checkout/envoy",
            "tools/mcp-fetch/server"
        ],
        "all containers, sorted"
    );
    assert_eq!(everything.catalogue_version, 2);
    assert_eq!(everything.node_name, "worker-1");
    for a in &everything.agents {
        let json: serde_json::Value = serde_json::from_str(&a.json).expect("entry json");
        assert_eq!(json["isAgent"], a.is_agent, "{}", a.json);
        assert_eq!(json["namespace"], a.namespace.as_str());
        assert!(a.recent_calls.is_empty(), "no tool tracker here");
    }
    let agents_only = get("", false).await.expect("GetAgents");
    let expected: Vec<String> = everything
        .agents
        .iter()
        .filter(|a| a.is_agent)
        .map(|a| format!("{}/{}/{}", a.namespace, a.workload, a.container))
        .collect();
    assert_eq!(names(&agents_only), expected);
    assert_eq!(
        names(&get("shop", true).await.expect("one namespace")),
        ["shop/checkout/app", "shop/checkout/envoy"]
    );
    let bad = get("a/b", true)
        .await
        .expect_err("a namespace with a slash");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    agent.stop().await;
}

#[tokio::test]
async fn socket_mode_health_and_reflection() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::{v1, v1alpha};

    let agent = Daemon::start().await;
    let mode = std::fs::metadata(&agent.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "socket mode {mode:o}");

    let channel = agent.channel().await;
    let mut health = HealthClient::new(channel.clone());
    for service in [api::SERVICE_NAME, ""] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.status(), ServingStatus::Serving, "{service:?}");
    }

    // v1: list services, then resolve the service's file.
    let mut refl = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let requests = [
        v1::server_reflection_request::MessageRequest::ListServices(String::new()),
        v1::server_reflection_request::MessageRequest::FileContainingSymbol(
            "sensor.v1.Sensor".into(),
        ),
    ]
    .map(|m| v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    });
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let first = stream
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap();
    let v1::server_reflection_response::MessageResponse::ListServicesResponse(list) = first else {
        panic!("expected a service list, got {first:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "sensor.v1.Sensor",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    let second = stream
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap();
    let v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files) = second
    else {
        panic!("expected file descriptors, got {second:?}");
    };
    let file = prost::Message::decode(&files.file_descriptor_proto[0][..])
        .map(|f: prost_types::FileDescriptorProto| f)
        .unwrap();
    assert_eq!(file.name(), "sensor/v1/sensor.proto");
    let methods: Vec<&str> = file.service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(
        methods,
        [
            "ListProfiles",
            "GetProfile",
            "GetSeccompProfile",
            "GetNetworkPolicy",
            "StreamAnomalies",
            "StreamEvents",
            "AcceptAnomaly",
            "Relearn",
            "GetInfo",
            "GetAgents",
        ]
    );

    // v1alpha: what older grpcurl and grpcio clients ask.
    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let mut stream = alpha
        .server_reflection_info(tokio_stream::iter([v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        }]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap();
    let v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list) = resp
    else {
        panic!("expected a service list, got {resp:?}");
    };
    assert!(
        list.service.iter().any(|s| s.name == "sensor.v1.Sensor"),
        "{list:?}"
    );
    agent.stop().await;
}

#[tokio::test]
async fn plaintext_tcp_only_when_asked() {
    let source = || Arc::new(MemorySource::with_profiles("worker-1", all_profiles()));
    let refused = api::serve(
        "127.0.0.1:50051".parse().unwrap(),
        false,
        source(),
        std::future::pending(),
    )
    .await
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("TCP requires TLS with client certificates"),
        "{refused}"
    );

    // A free port (the tiny race with other processes is acceptable in a test).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: ListenAddr = format!("tcp://127.0.0.1:{port}").parse().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(api::serve(addr.clone(), true, source(), async {
        let _ = stopped.await;
    }));
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = api::client::connect(&addr).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = client.expect("the TCP server accepts connections");
    let list = client
        .list_profiles(ListProfilesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.profiles.len(), 3);
    let _ = stop.send(());
    served.await.unwrap().unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_reaches_the_agent() {
    let agent = Daemon::start().await;
    let server = agent.server_flag();

    let out = sensor(&["profiles", "list", "--server", &server]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAMESPACE",
            "WORKLOAD",
            "CONTAINER",
            "STATUS",
            "COMPLETENESS",
            "SYSCALLS",
            "EXECS",
            "EGRESS",
            "INGRESS",
            "FILES"
        ]
    );
    assert_eq!(
        lines[1],
        [
            "shop", "checkout", "app", "ready", "full", "15", "1", "3", "1", "1"
        ]
    );
    assert_eq!(
        lines[3],
        [
            "tools",
            "mcp-fetch",
            "server",
            "learning",
            "partial",
            "9",
            "1",
            "1+",
            "0",
            "0"
        ]
    );

    let out = sensor(&[
        "profiles", "list", "--server", &server, "-n", "tools", "--json",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["workload"], "mcp-fetch");
    assert_eq!(rows[0]["overflow"]["egress"], true);
    // This source does not evaluate graduation.
    assert_eq!(rows[0]["graduation"]["evaluated"], false);

    let out = sensor(&[
        "profiles", "show", "--server", &server, "-n", "shop", "-w", "checkout", "-c", "app",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "shop/checkout/app (deployment)",
        "status:        ready since 2025-06-02T08:00:00Z",
        "syscalls (15 native, 0 compat):",
        "/usr/local/bin/checkout --listen :8080  (2 runs)",
        "10.244.1.17:5432/tcp  postgres.shop.svc.cluster.local  peer shop/postgres (pod postgres-0)  12 conns, 1.0 MiB sent, 5.0 MiB received",
        "from 10.244.2.5 to port 8080/tcp  peer shop/frontend",
        "resolvers: 10.96.0.10 (cluster DNS)",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    let out = sensor(&[
        "seccomp",
        "--server",
        &server,
        "-n",
        "tools",
        "-w",
        "mcp-fetch",
        "-c",
        "server",
        "--mode",
        "audit",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["defaultAction"], "SCMP_ACT_LOG");
    assert!(
        stderr(&out).contains("note: profile is partial"),
        "{}",
        stderr(&out)
    );

    let out = sensor(&[
        "netpol", "--server", &server, "-n", "shop", "-w", "checkout",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&stdout(&out)).unwrap();
    assert_eq!(yaml["kind"].as_str(), Some("NetworkPolicy"));

    // A server error: its message, exit 1.
    let out = sensor(&[
        "seccomp", "--server", &server, "-n", "shop", "-w", "checkout", "-c", "db",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        r#"error: workload shop/checkout has no container "db" (known: app, envoy)"#
    );
    assert!(stdout(&out).is_empty());

    agent.stop().await;

    // No agent: say so.
    let out = sensor(&["profiles", "list", "--server", &server]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot reach the agent at {server}: is `sensor run` running?"
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_works_offline_from_saved_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, v: serde_json::Value| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        path
    };
    let app = write("app.json", checkout_app());
    let envoy = write("envoy.json", checkout_envoy());
    let mcp = write("server.json", mcp_fetch());
    let s = |p: &Path| p.display().to_string();
    // No agent anywhere: `--server` points at nothing.
    let nowhere = format!("unix:{}", dir.path().join("none.sock").display());

    let out = sensor(&["seccomp", "--server", &nowhere, "--profile", &s(&mcp)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["defaultAction"], "SCMP_ACT_ERRNO");
    let err = stderr(&out);
    assert!(err.contains("note: profile is still learning"), "{err}");
    assert!(err.contains("syscall_463"), "{err}");
    assert!(
        err.contains("localhostProfile: sensor/tools/mcp-fetch/server.json"),
        "{err}"
    );

    // A profile saved by an older sensor (format version 1, the runtime's setup mixed in):
    // upgraded on read, its draft leaves the setup primitives out.
    let mut old = checkout_app();
    old["version"] = serde_json::json!(1);
    old["syscalls"]["native"]
        .as_array_mut()
        .unwrap()
        .extend(["mount", "pivot_root", "unshare"].map(serde_json::Value::from));
    let old = write("old.json", old);
    let upgraded = sensor(&["seccomp", "--server", &nowhere, "--profile", &s(&old)]).await;
    assert!(upgraded.status.success(), "{}", stderr(&upgraded));
    let draft = stdout(&upgraded);
    assert!(draft.contains("\"accept4\""), "{draft}");
    for setup in ["mount", "pivot_root", "unshare"] {
        assert!(
            !draft.contains(&format!("\"{setup}\"")),
            "{setup} in {draft}"
        );
    }
    let shown = sensor(&["profiles", "show", "--profile", &s(&old)]).await;
    assert!(
        stdout(&shown).contains("inferred by name when the profile was upgraded"),
        "{}",
        stdout(&shown)
    );

    // The same bytes as the agent would serve.
    let agent = Daemon::start().await;
    let mut c = agent.client().await;
    let served = c
        .get_seccomp_profile(SeccompRequest {
            r#ref: Some(pref("tools", "mcp-fetch", "server")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(served.content, stdout(&out));
    agent.stop().await;

    let out = sensor(&["seccomp", "--profile", &s(&app), "--format", "spo"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("kind: SeccompProfile"));
    let err = stderr(&out);
    assert!(
        err.contains("localhostProfile: operator/shop.checkout.app.enforce.json"),
        "{err}"
    );
    assert!(!err.contains("localhostProfile: sensor/"), "{err}");

    let out = sensor(&[
        "netpol",
        "--profile",
        &s(&app),
        "--profile",
        &s(&envoy),
        "--format",
        "json",
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let policy: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(policy["metadata"]["namespace"], "shop");

    let out = sensor(&["netpol", "--profile", &s(&app), "--profile", &s(&mcp)]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("different workloads"),
        "{}",
        stderr(&out)
    );

    let out = sensor(&["profiles", "show", "--profile", &s(&app)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("shop/checkout/app (deployment)\n"));
    let out = sensor(&["profiles", "show", "--profile", &s(&app), "--json"]).await;
    let back: ApplicationProfile = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(back, profile(checkout_app()));

    let out = sensor(&["seccomp", "--profile", &s(&app), "-c", "envoy"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is the profile of shop/checkout/app, not shop/checkout/envoy"));

    // A broken file: one error with file, line and column.
    let broken = dir.path().join("broken.json");
    std::fs::write(
        &broken,
        "{\n  \"version\": 1,\n  \"namespace\": \"shop\"\n  \"workload\": \"x\"\n}\n",
    )
    .unwrap();
    let out = sensor(&["seccomp", "--profile", &s(&broken)]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: {}:4:3: not a valid profile: expected `,` or `}}`",
            s(&broken)
        )),
        "{err}"
    );

    // Bad flags: usage error, exit 2.
    let out = sensor(&["seccomp", "--profile", &s(&app), "--mode", "strict"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = sensor(&["netpol", "-n", "shop"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
