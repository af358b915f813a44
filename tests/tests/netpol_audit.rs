//! End to end: `sensor audit netpol` against flows a real agent learned from a real runc pod
//! talking to a peer in a test network namespace. The pod's own draft (`sensor netpol`) must
//! deny none of them (exit 0); the draft without its TCP rule must report exactly that flow,
//! with the count and last-seen time of the profile on disk (exit 1). Every policy given to
//! the audit is first validated with `kubernetes-validate`, so the audit reads what a cluster
//! would accept. Bad policy files exit 2 with one line naming the file.

use std::path::Path;
use std::time::Duration;

use sensor_tests::daemon::sensor_cmd;
use sensor_tests::util::{self, TempDir};
use sensor_tests::validate::assert_validates;
use sensor_tests::{CmdOutput, ContainerConfig, Daemon, DaemonConfig, DnsZone, Kubelet, Peer, Pod};
use sensor_tests::{Runc, runc};
use serde_json::Value;

const LEARN: Duration = Duration::from_secs(20);
const AUDIT_TIMEOUT: Duration = Duration::from_secs(30);

fn audit(policy: &Path, state: &Path, extra: &[&str]) -> CmdOutput {
    let mut args = vec![
        "audit".to_string(),
        "netpol".into(),
        "--policy".into(),
        policy.display().to_string(),
        "--state-dir".into(),
        state.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    sensor_cmd(&args, AUDIT_TIMEOUT)
}

/// The flow of the on-disk profile `p` to `ip:port/proto`, if recorded.
fn flow<'a>(p: &'a Value, ip: &str, port: u16, proto: &str) -> Option<&'a Value> {
    p["egress"]
        .as_array()?
        .iter()
        .find(|f| f["ip"] == ip && f["port"] == port && f["protocol"] == proto)
}

#[test]
fn audit_of_the_draft_passes_and_a_narrower_policy_reports_the_missing_flow() {
    let dir = TempDir::new("netpol-audit");
    let ns = util::unique_name("na");
    let pod = Pod::deployment_replica(&ns, "netclient").with_container("app");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    let mut peer = Peer::new();
    let port: u16 = 8443;
    peer.start_tcp_server(port);
    let ip = peer.peer_ip().to_string();
    let name = format!("api-{}.example.test", util::random_k8s_suffix(6));
    peer.start_dns_server(&DnsZone::new().a(&name, peer.peer_ip(), 300));
    let agent = Daemon::start(DaemonConfig::new(dir.path(), &kubelet));
    let state = agent.config.state_dir.clone();

    // DNS through the peer, then TCP to it (twice), plus loopback (never subject to policy).
    let script = format!(
        "nslookup {name} {ip} || exit 11; \
         echo one | nc {ip} {port} || exit 12; \
         echo two | nc {ip} {port} || exit 13; \
         echo local | nc 127.0.0.1 1 ; true"
    );
    let runc = Runc::new();
    let out = runc.run(
        &ContainerConfig::sh(&pod, "app", &script),
        runc::DEFAULT_TIMEOUT,
    );
    out.assert_success();

    // The audit reads the profile file: wait until it holds the pod's flows.
    let profile_path = agent.profile_path(&ns, "netclient", "app");
    let mut last = String::new();
    let profile: Value = util::poll_until(LEARN, Duration::from_millis(200), || {
        last = std::fs::read_to_string(&profile_path).unwrap_or_default();
        let p: Value = serde_json::from_str(&last).ok()?;
        let tcp = flow(&p, &ip, port, "tcp")?;
        (tcp["connections"].as_u64() >= Some(2) && flow(&p, &ip, 53, "udp").is_some()).then_some(p)
    })
    .unwrap_or_else(|| {
        panic!(
            "{} did not record the pod's DNS and 2 TCP connections within {LEARN:?}:\n{last}\n{}",
            profile_path.display(),
            agent.diagnostics()
        )
    });

    // The draft, as `sensor netpol` prints it.
    let draft_out = agent.client(&["netpol", "--namespace", &ns, "--workload", "netclient"]);
    draft_out.ok();
    let work = dir.path().join("audit");
    std::fs::create_dir_all(&work).unwrap();
    let draft_path = work.join("draft.yaml");
    std::fs::write(&draft_path, &draft_out.stdout).unwrap();
    assert_validates(&draft_path, &draft_out.stdout);

    // 1. The draft denies nothing the pod did: exit 0.
    let ok = audit(&draft_path, &state, &[]);
    ok.ok();
    assert!(
        ok.stdout.starts_with("no flow would be denied"),
        "{}\n{}",
        ok.stdout,
        ok.stderr
    );
    eprintln!(
        "draft:\n{}\naudit of the draft:\n{}",
        draft_out.stdout, ok.stdout
    );
    let report = audit(&draft_path, &state, &["--json"]);
    report.ok();
    let report = report.json();
    assert_eq!(report["wouldDeny"], serde_json::json!([]), "{report}");
    // DNS over UDP and TCP to the peer, and its TCP port: every non-loopback flow evaluated.
    let non_local = profile["egress"]
        .as_array()
        .unwrap()
        .iter()
        .chain(profile["ingress"].as_array().unwrap())
        .filter(|f| !f["ip"].as_str().unwrap().starts_with("127."))
        .count();
    assert!(non_local >= 2, "{profile}");
    assert_eq!(report["flowsEvaluated"], non_local, "{report}\n{profile}");

    // 2. The draft without the egress rule of the TCP port: that flow, and only it, would be
    // denied; exit 1.
    let mut narrow: serde_yaml_ng::Value = serde_yaml_ng::from_str(&draft_out.stdout).unwrap();
    let rules = narrow["spec"]["egress"].as_sequence_mut().unwrap();
    let before = rules.len();
    rules.retain(|r| {
        !r["ports"].as_sequence().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["port"].as_u64() == Some(u64::from(port)))
        })
    });
    assert_eq!(
        rules.len(),
        before - 1,
        "one rule allowed {port}: {}",
        draft_out.stdout
    );
    let narrow_text = serde_yaml_ng::to_string(&narrow).unwrap();
    let narrow_path = work.join("narrow.yaml");
    std::fs::write(&narrow_path, &narrow_text).unwrap();
    assert_validates(&narrow_path, &narrow_text);

    let denied = audit(&narrow_path, &state, &[]);
    assert_eq!(denied.code, Some(1), "{denied:?}");
    assert_eq!(
        denied.stderr_lines().last().copied(),
        Some(format!(
            "error: 1 recorded flow would be denied by the policies in {}",
            narrow_path.display()
        ))
        .as_deref(),
        "{denied:?}"
    );
    let expected_flow = flow(&profile, &ip, port, "tcp").unwrap();
    let header = format!("{ns}/netclient\n  egress to {ip} ({name})\n    TCP/{port}");
    assert!(
        denied.stdout.contains(&header),
        "{header:?} not in:\n{}",
        denied.stdout
    );
    eprintln!(
        "audit of the narrower policy:\n{}stderr:\n{}",
        denied.stdout, denied.stderr
    );

    let report = audit(&narrow_path, &state, &["--json"]);
    assert_eq!(report.code, Some(1));
    let report = report.json();
    let deny = report["wouldDeny"].as_array().unwrap();
    assert_eq!(deny.len(), 1, "{report}");
    let d = &deny[0];
    assert_eq!(d["namespace"], ns.as_str());
    assert_eq!(d["workload"], "netclient");
    assert_eq!(d["direction"], "egress");
    assert_eq!(d["peer"]["ip"], ip.as_str());
    assert_eq!(d["protocol"], "TCP");
    assert_eq!(d["port"], port);
    // Count and time are the profile's, as read from disk before the audit.
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(&profile_path).unwrap()).unwrap();
    let recorded = flow(&on_disk, &ip, port, "tcp").unwrap();
    assert_eq!(d["connections"], recorded["connections"], "{d}");
    assert_eq!(d["lastSeen"], recorded["lastSeen"], "{d}");
    assert!(expected_flow["connections"].as_u64() >= Some(2));
    let policy_name = narrow["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        d["verdict"]["egress"]["denials"][0]["policy"]["name"], policy_name,
        "{d}"
    );
    // The peer is still allowed for DNS by the other rule: the port is what is missing.
    assert_eq!(
        d["verdict"]["egress"]["denials"][0]["reason"], "portNotMatched",
        "{d}"
    );
    assert_eq!(d["verdict"]["ingress"]["verdict"], "external", "{d}");

    // 3. --workload narrows to nothing: an error, not a silent pass.
    let none = audit(&draft_path, &state, &["--workload", "nope"]);
    assert_eq!(none.code, Some(1), "{none:?}");
    assert!(
        none.stderr.contains("no profile of workload nope"),
        "{none:?}"
    );

    // 4. A directory: the narrow policy plus a ConfigMap (skipped with a note) -> same verdict.
    let policy_dir = work.join("dir");
    std::fs::create_dir_all(&policy_dir).unwrap();
    std::fs::write(
        policy_dir.join("all.yaml"),
        format!("{narrow_text}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n"),
    )
    .unwrap();
    let from_dir = audit(&policy_dir, &state, &["--json"]);
    assert_eq!(from_dir.code, Some(1), "{from_dir:?}");
    assert_eq!(from_dir.json()["wouldDeny"].as_array().unwrap().len(), 1);
    assert!(
        from_dir.stderr.contains("skipped ConfigMap"),
        "{from_dir:?}"
    );

    // 5. A malformed policy file: exit 2, one line naming the file.
    let bad = work.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b, namespace: x}\nspec: {podSelector: {}, ingress: [{ports: [{port: 80, protocol: ICMP}]}]}\n").unwrap();
    let out = audit(&bad, &state, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
    assert!(
        out.stderr.contains(&bad.display().to_string()) && out.stderr.contains("unknown protocol"),
        "{out:?}"
    );
}

/// `--from-cluster`: the policies and namespace labels come from the API server (the test API
/// server serving real list JSON), not from files; a namespaceSelector on a label only the
/// API's Namespace carries decides the verdict.
#[test]
fn policies_from_the_cluster_are_audited_like_files() {
    let state = TempDir::new("audit-cluster");
    let dir = state.path().join("profiles/shop/web");
    std::fs::create_dir_all(&dir).unwrap();
    let profile = serde_json::json!({
        "version": 1, "namespace": "shop", "workload": "web", "container": "app",
        "workloadKind": "deployment", "status": "ready", "completeness": "full",
        "learningStarted": "2026-01-01T00:00:00Z", "learningPeriodSeconds": 60,
        "updated": "2026-01-01T00:01:00Z", "labels": {"app": "web"},
        "syscalls": {"native": []},
        "egress": [{
            "ip": "10.1.2.3", "port": 5432, "protocol": "tcp",
            "peer": {"namespace": "data", "pod": "db-0", "workload": "db", "labels": {"app": "db"}},
            "connections": 3, "bytesSent": 10, "bytesRecv": 10,
            "rate": {"windowSeconds": 60, "windows": 1, "maxConnectionsPerWindow": 3,
                     "maxBytesSentPerWindow": 10, "maxBytesRecvPerWindow": 10},
            "firstSeen": "2026-01-01T00:00:10Z", "lastSeen": "2026-01-01T00:00:20Z"
        }]
    });
    std::fs::write(dir.join("app.json"), profile.to_string()).unwrap();

    let api = sensor_tests::kube_api::KubeApi::start();
    let policy = |ns_label: &str| {
        serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "web-egress", "namespace": "shop"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web"}},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{"namespaceSelector": {"matchLabels": {"tier": ns_label}},
                            "podSelector": {"matchLabels": {"app": "db"}}}],
                    "ports": [{"protocol": "TCP", "port": 5432}]
                }]
            }
        })
    };
    let list = |kind: &str, items: Vec<Value>| {
        serde_json::json!({"apiVersion": "v1", "kind": kind,
                           "metadata": {"resourceVersion": "7"}, "items": items})
    };
    let namespace = |name: &str, tier: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name,
                         "labels": {"kubernetes.io/metadata.name": name, "tier": tier}}})
    };
    api.put_at(
        "/api/v1/namespaces",
        list(
            "NamespaceList",
            vec![namespace("shop", "frontend"), namespace("data", "storage")],
        ),
    );
    let run = || {
        sensor_cmd(
            &[
                "audit",
                "netpol",
                "--from-cluster",
                "--kubernetes-api-url",
                &api.url(),
                "--state-dir",
                &state.path().display().to_string(),
                "--json",
            ],
            AUDIT_TIMEOUT,
        )
    };

    // The policy wants namespaces labelled tier=database: `data` is tier=storage.
    api.put_at(
        "/apis/networking.k8s.io/v1/networkpolicies",
        list("NetworkPolicyList", vec![policy("database")]),
    );
    let denied = run();
    assert_eq!(denied.code, Some(1), "{denied:?}");
    let deny = denied.json()["wouldDeny"].as_array().unwrap().clone();
    assert_eq!(deny.len(), 1, "{deny:?}");
    assert_eq!(deny[0]["port"], 5432);
    assert_eq!(deny[0]["connections"], 3);
    assert!(denied.stderr.contains("the cluster"), "{}", denied.stderr);

    // The same policy selecting the label the API's Namespace really has.
    api.put_at(
        "/apis/networking.k8s.io/v1/networkpolicies",
        list("NetworkPolicyList", vec![policy("storage")]),
    );
    let allowed = run();
    assert_eq!(allowed.code, Some(0), "{allowed:?}");
    assert_eq!(allowed.json()["wouldDeny"], serde_json::json!([]));

    // The API refusing is an error naming the API, not a clean audit.
    api.set_mode(sensor_tests::kube_api::Mode::Forbidden);
    let refused = run();
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("reading NetworkPolicies from the Kubernetes API"),
        "{}",
        refused.stderr
    );
}
