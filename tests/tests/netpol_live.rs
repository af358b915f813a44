//! End to end: the live NetworkPolicy audit of a real agent (`sensor run --audit-netpol DIR`).
//! A runc pod resolves a name through a DNS server in a test network namespace and connects
//! twice to a TCP peer there; the audited policy allows the pod's DNS but not the TCP peer:
//! exactly one `would-deny` anomaly (the TCP flow, judged once), on `sensor watch --json` and
//! in the anomaly log, none for DNS. A broken file in the directory keeps the previous set; a
//! policy allowing the peer is then added, and after the reload a new pod doing the same gets
//! no new `would-deny`. `sensor profiles show` reports the network graduation all along. A bad
//! directory at start is exit code 2 with one line naming the file.

use std::path::Path;
use std::time::Duration;

use sensor_tests::anomaly::{self, read_log};
use sensor_tests::daemon::sensor_cmd;
use sensor_tests::util::{self, TempDir};
use sensor_tests::{ContainerConfig, Daemon, DaemonConfig, DnsZone, Kubelet, Peer, Pod};
use sensor_tests::{Runc, runc};
use serde_json::Value;

const PORT: u16 = 8443;
/// Short, so the test sees the network draft graduate.
const WINDOW: &str = "20s";
const WAIT: Duration = Duration::from_secs(30);
const RELOAD: Duration = Duration::from_secs(15);

/// Egress of `netclient` (its guessed labels: no Kubernetes API on the test bed) allowed to
/// port 53 only.
fn dns_only(ns: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: dns-only, namespace: {ns}}}\n\
         spec:\n  podSelector: {{matchLabels: {{app.kubernetes.io/name: netclient}}}}\n  \
         policyTypes: [Egress]\n  \
         egress:\n  - ports: [{{port: 53, protocol: UDP}}, {{port: 53, protocol: TCP}}]\n"
    )
}

fn allow_peer(ns: &str, ip: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: allow-api, namespace: {ns}}}\n\
         spec:\n  podSelector: {{matchLabels: {{app.kubernetes.io/name: netclient}}}}\n  \
         policyTypes: [Egress]\n  \
         egress:\n  - to: [{{ipBlock: {{cidr: {ip}/32}}}}]\n    ports: [{{port: {PORT}}}]\n"
    )
}

fn would_deny(records: &[Value], ns: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|a| a["rule"] == "would-deny" && a["namespace"] == ns)
        .cloned()
        .collect()
}

/// The `network:` line of `sensor profiles show`.
fn network_line(agent: &Daemon, ns: &str) -> String {
    let out = agent.client(&[
        "profiles",
        "show",
        "--namespace",
        ns,
        "--workload",
        "netclient",
        "--container",
        "app",
    ]);
    out.ok();
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("network:"))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| panic!("no network: line in\n{}", out.stdout))
}

fn run_pod(runc: &Runc, kubelet: &Kubelet, ns: &str, script: &str) {
    let pod = Pod::deployment_replica(ns, "netclient").with_container("app");
    kubelet.add_pod(&pod);
    runc.run(
        &ContainerConfig::sh(&pod, "app", script),
        runc::DEFAULT_TIMEOUT,
    )
    .assert_success();
}

#[test]
fn live_audit_reports_the_denied_flow_once_and_follows_the_policy_directory() {
    let dir = TempDir::new("netpol-live");
    let ns = util::unique_name("nl");
    let kubelet = Kubelet::new();
    let mut peer = Peer::new();
    peer.start_tcp_server(PORT);
    let ip = peer.peer_ip().to_string();
    let name = format!("api-{}.example.test", util::random_k8s_suffix(6));
    peer.start_dns_server(&DnsZone::new().a(&name, peer.peer_ip(), 300));
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("dns.yaml"), dns_only(&ns)).unwrap();

    let agent = Daemon::start(
        DaemonConfig::new(dir.path(), &kubelet)
            .arg("--audit-netpol")
            .arg(&policies.display().to_string())
            .arg("--graduation-window")
            .arg(WINDOW),
    );
    assert!(
        agent.wait_stderr("audit NetworkPolicies loaded: 1 policies", WAIT),
        "{}",
        agent.diagnostics()
    );
    let watcher = anomaly::watch(&agent, &["--namespace", &ns, "--since", "0"]);
    let script = format!(
        "nslookup {name} {ip} || exit 11; \
         echo one | nc {ip} {PORT} || exit 12; \
         echo two | nc {ip} {PORT} || exit 13"
    );
    let runc = Runc::new();

    // 1. DNS allowed, TCP/8443 denied: one would-deny, for the TCP flow, judged once.
    run_pod(&runc, &kubelet, &ns, &script);
    let first = watcher.wait_for(WAIT, "a would-deny anomaly", |lines| {
        would_deny(&anomaly::anomalies(lines), &ns)
            .into_iter()
            .next()
    });
    let line = network_line(&agent, &ns);
    assert!(
        line.starts_with("not ready: would-deny ") && line.contains("under 1 audited policy"),
        "{line}"
    );
    // Flows are judged as their connect events are handled: once the agent has handled every
    // event of the run, nothing more is coming.
    agent.sync_events(&runc, &kubelet);
    let streamed = would_deny(&anomaly::anomalies(&watcher.lines()), &ns);
    assert_eq!(streamed.len(), 1, "{streamed:#?}");
    assert_eq!(first["severity"], "medium");
    assert_eq!(
        first["subject"],
        format!("egress {ip}:{PORT}/TCP"),
        "{first}"
    );
    assert_eq!(first["workload"], "netclient");
    assert_eq!(first["container"], "app");
    assert_eq!(first["count"], 1);
    assert!(
        first["pod"].as_str().unwrap().starts_with("netclient-"),
        "{first}"
    );
    assert!(first["process"]["pid"].as_u64().is_some(), "{first}");
    // What `profiles accept` would add: the flow, for the next NetworkPolicy draft.
    assert_eq!(
        (
            &first["fold"]["kind"],
            &first["fold"]["ip"],
            &first["fold"]["port"]
        ),
        (
            &Value::from("egress"),
            &Value::from(ip.as_str()),
            &Value::from(PORT)
        ),
        "{first}"
    );
    let observed = &first["evidence"]["observed"];
    assert_eq!(observed["selectedBy"], format!("{ns}/dns-only"), "{first}");
    let verdict: Value = serde_json::from_str(observed["verdict"].as_str().unwrap()).unwrap();
    assert_eq!(
        verdict["egress"]["denials"][0]["reason"], "portNotMatched",
        "{verdict}"
    );
    assert_eq!(verdict["ingress"]["verdict"], "external", "{verdict}");
    // The log holds the same record (same seq), and nothing else of this rule and namespace.
    let logged = would_deny(&read_log(agent.state_dir()), &ns);
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert_eq!(logged[0]["seq"], first["seq"]);
    // Every anomaly of the namespace: no other would-deny (DNS) slipped in under another rule.
    assert!(
        anomaly::anomalies(&watcher.lines())
            .iter()
            .all(|a| a["rule"] != "would-deny" || a["subject"] == first["subject"]),
    );

    // 2. A malformed file: the previous set stays, one warning names the file.
    let bad = policies.join("zz-bad.yaml");
    std::fs::write(&bad, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b, namespace: x}\nspec: {podSelector: {}, egress: [{ports: [{port: 1, protocol: ICMP}]}]}\n").unwrap();
    assert!(
        agent.wait_stderr(
            &format!("keeping the previous 1 policies: {}", bad.display()),
            RELOAD
        ),
        "{}",
        agent.diagnostics()
    );
    std::fs::remove_file(&bad).unwrap();

    // 3. The peer allowed: after the reload a new pod doing the same gets no would-deny.
    std::fs::write(policies.join("api.yaml"), allow_peer(&ns, &ip)).unwrap();
    assert!(
        agent.wait_stderr("audit NetworkPolicies reloaded: 2 policies", RELOAD),
        "{}",
        agent.diagnostics()
    );
    let before = agent
        .show(&ns, "netclient", "app")
        .and_then(|p| {
            p["egress"].as_array().and_then(|f| {
                f.iter()
                    .find(|f| f["ip"] == ip.as_str() && f["port"] == PORT)
                    .and_then(|f| f["connections"].as_u64())
            })
        })
        .unwrap_or(0);
    run_pod(&runc, &kubelet, &ns, &script);
    // The agent saw the second pod's connections ...
    agent.wait_profile(
        (ns.as_str(), "netclient", "app"),
        "counting the second pod's connections",
        WAIT,
        |p| {
            p["egress"].as_array().is_some_and(|f| {
                f.iter().any(|f| {
                    f["ip"] == ip.as_str()
                        && f["port"] == PORT
                        && f["connections"].as_u64() >= Some(before + 2)
                })
            })
        },
    );
    // ... and judged them allowed (every event of the run handled).
    agent.sync_events(&runc, &kubelet);
    let streamed = would_deny(&anomaly::anomalies(&watcher.lines()), &ns);
    assert_eq!(streamed.len(), 1, "{streamed:#?}");
    assert_eq!(would_deny(&read_log(agent.state_dir()), &ns).len(), 1);

    // 4. Graduation: no would-deny for the window under the current set.
    let ready = util::poll_until(Duration::from_secs(60), Duration::from_secs(1), || {
        let line = network_line(&agent, &ns);
        line.starts_with("ready to enforce").then_some(line)
    })
    .unwrap_or_else(|| panic!("never ready: {}", network_line(&agent, &ns)));
    assert_eq!(
        ready,
        "ready to enforce (no would-deny for 20s under 2 audited policies)"
    );
    // The same over gRPC, as `profiles list --json` shows it.
    let listed = agent.list(Some(&ns));
    let network = &listed
        .iter()
        .find(|p| p["workload"] == "netclient" && p["container"] == "app")
        .unwrap_or_else(|| panic!("{listed:#?}"))["graduation"]["network"];
    assert_eq!(network["readyToEnforce"], true, "{network}");
    assert_eq!(network["audited"], true, "{network}");
    assert_eq!(network["summary"], ready.as_str(), "{network}");
}

#[test]
fn a_bad_policy_directory_is_exit_code_2_at_start() {
    let dir = TempDir::new("netpol-live-bad");
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let bad = policies.join("bad.yaml");
    std::fs::write(&bad, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b, namespace: x}\nspec: {podSelector: {}, egress: [{ports: [{port: 1, protocol: ICMP}]}]}\n").unwrap();
    let state = dir.path().join("state");
    let run = |policies: &Path| {
        sensor_cmd(
            &[
                "run",
                "--state-dir",
                &state.display().to_string(),
                "--grpc-listen",
                &format!("unix:{}", dir.path().join("s.sock").display()),
                "--audit-netpol",
                &policies.display().to_string(),
            ],
            WAIT,
        )
    };
    let out = run(&policies);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
    assert!(
        out.stderr.contains(&bad.display().to_string()) && out.stderr.contains("unknown protocol"),
        "{out:?}"
    );
    let missing = dir.path().join("missing");
    let out = run(&missing);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
    assert!(
        out.stderr.contains("--audit-netpol") && out.stderr.contains("is not a directory"),
        "{out:?}"
    );
    // Nothing started: no state directory was created.
    assert!(!state.exists());
}
