//! AI-agent awareness end to end: a pod resolves catalogued provider names (served by a test DNS
//! server, pointing at test peers) and calls them; its profile and NetworkPolicy draft say which
//! model API and vector store it calls, and nothing else; `sensor agents` adds the framework
//! and MCP packages found in its filesystem.

use std::time::Duration;

use sensor_tests::util::{self, TempDir};
use sensor_tests::{
    ContainerConfig, Daemon, DaemonConfig, DnsZone, Kubelet, Peer, Pod, Runc, runc,
};

const RUN: Duration = runc::DEFAULT_TIMEOUT;
const LEARN: Duration = Duration::from_secs(20);

#[test]
fn egress_to_catalogued_providers_is_classified() {
    let dir = TempDir::new("ai");
    let ns = util::unique_name("ai");
    let pod = Pod::deployment_replica(&ns, "assistant").with_container("agent");
    let kubelet = Kubelet::new();
    kubelet.add_pod(&pod);
    // Two peers with their own addresses: the "model API" and the "vector store".
    let mut model = Peer::new();
    let mut store = Peer::new();
    model.start_tcp_server(443);
    store.start_tcp_server(443);
    let bedrock = "bedrock-runtime.us-east-1.amazonaws.com";
    let pinecone = format!(
        "idx-{}.svc.aped-4627.pinecone.io",
        util::random_k8s_suffix(6)
    );
    model.start_dns_server(&DnsZone::new().a(bedrock, model.peer_ip(), 60).a(
        &pinecone,
        store.peer_ip(),
        60,
    ));
    let agent = Daemon::start(DaemonConfig::new(dir.path(), &kubelet));
    let key = (ns.as_str(), "assistant", "agent");

    let dns = model.peer_ip();
    let script = format!(
        "for n in {bedrock} {pinecone}; do \
           ip=$(nslookup $n {dns} | awk '/^Address/ {{a=$NF}} END {{print a}}'); \
           [ -n \"$ip\" ] || exit 11; \
           echo prompt | nc $ip 443 || exit 12; \
         done"
    );
    // The image's Python environment, as a framework and an MCP SDK would install it.
    let usr = TempDir::new("ai-usr");
    for d in [
        "local/lib/python3.12/site-packages/langchain_core-0.3.15.dist-info",
        "local/lib/python3.12/site-packages/requests-2.32.3.dist-info",
        "lib/python3/dist-packages/mcp-1.2.0.dist-info",
    ] {
        std::fs::create_dir_all(usr.path().join(d)).unwrap();
    }
    // A stdio MCP server it starts (busybox under that name: the exec is what counts).
    std::fs::create_dir_all(usr.path().join("local/bin")).unwrap();
    std::os::unix::fs::symlink(
        "/bin/busybox",
        usr.path().join("local/bin/mcp-server-fetch"),
    )
    .unwrap();
    // Alive for a moment after its calls: the sensor reads its filesystem through /proc.
    let script = format!("{script}; /usr/local/bin/mcp-server-fetch 2>/dev/null; sleep 1");
    let out = Runc::new().run(
        &ContainerConfig::sh(&pod, "agent", &script).bind_mount(usr.path(), "/usr", true),
        RUN,
    );
    out.assert_success();
    assert_eq!(out.stdout.matches("received 7").count(), 2, "{out:?}");

    let (model_ip, store_ip) = (model.peer_ip().to_string(), store.peer_ip().to_string());
    let profile = agent.wait_profile(key, "showing both calls and the packages", LEARN, |p| {
        let has = |ip: &str| {
            p["egress"]
                .as_array()
                .is_some_and(|fs| fs.iter().any(|f| f["ip"] == ip && f["port"] == 443))
        };
        has(&model_ip)
            && has(&store_ip)
            && p["packages"].as_array().is_some_and(|p| p.len() == 2)
            && p["execs"].as_array().is_some_and(|e| {
                e.iter()
                    .any(|e| e["path"] == "/usr/local/bin/mcp-server-fetch")
            })
    });
    let packages: Vec<(&str, &str, &str)> = profile["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        packages,
        [
            ("langchain_core", "0.3.15", "framework"),
            ("mcp", "1.2.0", "mcp")
        ],
        "requests is not catalogued and must not appear"
    );

    let expected = "Amazon Bedrock (model API), Pinecone (vector store), nothing else";
    let show = agent.client(&["profiles", "show", "-n", key.0, "-w", key.1, "-c", key.2]);
    let show = show.ok();
    assert!(
        show.stdout.contains(&format!("calls {expected}")),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("[model API: Amazon Bedrock]")
            && show.stdout.contains("[vector store: Pinecone]"),
        "{}",
        show.stdout
    );
    let policy = agent.client(&["netpol", "-n", key.0, "-w", key.1, "--format", "json"]);
    let policy = policy.ok().json();
    assert_eq!(
        policy["metadata"]["annotations"]["sensor.io/egress-classes"], expected,
        "{policy:#}"
    );

    // The runtime AI-BOM.
    let agents = agent.client(&["agents", "--json", "-n", key.0]);
    let agents = agents.ok();
    let lines: Vec<serde_json::Value> = agents
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{}", agents.stdout);
    let inv = &lines[0];
    assert_eq!(inv["isAgent"], true);
    assert_eq!(inv["modelApis"], serde_json::json!(["Amazon Bedrock"]));
    assert_eq!(inv["vectorStores"], serde_json::json!(["Pinecone"]));
    assert_eq!(
        inv["frameworks"],
        serde_json::json!(["langchain_core 0.3.15 (python)"])
    );
    assert_eq!(inv["mcp"], serde_json::json!(["mcp 1.2.0 (python)"]));
    assert_eq!(
        inv["mcpServers"],
        serde_json::json!(["/usr/local/bin/mcp-server-fetch"])
    );
    let text = agent.client(&["agents", "-n", key.0]);
    let text = text.ok();
    eprintln!("sensor agents:\n{}", text.stdout);
    assert!(
        text.stdout
            .starts_with(&format!("{}/assistant/agent  (agent)\n", key.0)),
        "{}",
        text.stdout
    );
}
