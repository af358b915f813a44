//! AI-agent awareness end to end: a pod resolves catalogued provider names (served by a test DNS
//! server, pointing at test peers) and calls them; its profile and NetworkPolicy draft say which
//! model API and vector store it calls, and nothing else.

use std::time::Duration;

use sensor_tests::util::{self, TempDir};
use sensor_tests::{Agent, AgentConfig, ContainerConfig, DnsZone, Kubelet, Peer, Pod, Runc, runc};

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
    let agent = Agent::start(AgentConfig::new(dir.path(), &kubelet));
    let key = (ns.as_str(), "assistant", "agent");

    let dns = model.peer_ip();
    let script = format!(
        "for n in {bedrock} {pinecone}; do \
           ip=$(nslookup $n {dns} | awk '/^Address/ {{a=$NF}} END {{print a}}'); \
           [ -n \"$ip\" ] || exit 11; \
           echo prompt | nc $ip 443 || exit 12; \
         done"
    );
    let out = Runc::new().run(&ContainerConfig::sh(&pod, "agent", &script), RUN);
    out.assert_success();
    assert_eq!(out.stdout.matches("received 7").count(), 2, "{out:?}");

    let (model_ip, store_ip) = (model.peer_ip().to_string(), store.peer_ip().to_string());
    agent.wait_profile(key, "showing both calls", LEARN, |p| {
        let has = |ip: &str| {
            p["egress"]
                .as_array()
                .is_some_and(|fs| fs.iter().any(|f| f["ip"] == ip && f["port"] == 443))
        };
        has(&model_ip) && has(&store_ip)
    });

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
}
