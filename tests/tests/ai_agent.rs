//! A tool-using AI agent end to end (`tests/src/fake_agent.py`, the host's python3 in a runc
//! pod): it calls a "model API" and a "vector store" (test peers under catalogue names served by
//! a test DNS server) and runs tools as child processes. The sensor must find the agent, its
//! tools and each tool call (argv, exit code, what the call did); once the baseline is ready,
//! the agent's misbehaviour must arrive over gRPC (`sensor watch --json`) as agent rules with
//! the agent -> tool -> action chain: inline code run by a tool and its connection to an
//! unknown host, a service-account token read by a tool, a new model provider, an oversized
//! prompt.

use std::time::Duration;

use sensor_tests::anomaly;
use sensor_tests::runc::CONTAINER_PYTHON;
use sensor_tests::util::{self, TempDir};
use sensor_tests::{
    ContainerConfig, Daemon, DaemonConfig, DnsZone, Kubelet, Peer, Pod, Runc, runc,
};
use serde_json::Value;

const FAKE_AGENT_PY: &str = include_str!("../src/fake_agent.py");
const RUN: Duration = runc::DEFAULT_TIMEOUT;
const READY: Duration = Duration::from_secs(30);
/// Flows are polled every 2 s and judged per 3 s window.
const DETECT: Duration = Duration::from_secs(20);

const BEDROCK: &str = "bedrock-runtime.us-east-1.amazonaws.com";
const OPENAI: &str = "api.openai.com";

/// The anomaly of `rule` whose `pred` holds, from the streamed lines.
fn find<'a>(lines: &'a [Value], rule: &str, pred: impl Fn(&Value) -> bool) -> Option<&'a Value> {
    lines.iter().find(|a| a["rule"] == rule && pred(a))
}

fn args(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn an_agent_its_tool_calls_and_its_misbehaviour_with_the_chain() {
    let dir = TempDir::new("ai-agent");
    let ns = util::unique_name("aia");
    let hash = util::random_k8s_suffix(10);
    let replica = || {
        Pod::new(
            &ns,
            &format!("assistant-{hash}-{}", util::random_k8s_suffix(5)),
        )
        .with_container("agent")
    };
    let kubelet = Kubelet::new();
    let (mut model, mut store, mut openai, mut exfil) =
        (Peer::new(), Peer::new(), Peer::new(), Peer::new());
    model.start_tcp_server(443);
    store.start_tcp_server(443);
    openai.start_tcp_server(443);
    exfil.start_tcp_server(8443);
    let pinecone = format!(
        "idx-{}.svc.aped-4627.pinecone.io",
        util::random_k8s_suffix(6)
    );
    model.start_dns_server(
        &DnsZone::new()
            .a(BEDROCK, model.peer_ip(), 60)
            .a(&pinecone, store.peer_ip(), 60)
            .a(OPENAI, openai.peer_ip(), 60),
    );
    let agent = Daemon::start(
        DaemonConfig::new(dir.path(), &kubelet)
            .learning_period("8s")
            .flush_interval("1s")
            .arg("--rate-window")
            .arg("3s")
            .arg("--anomaly-window")
            .arg("2s"),
    );
    let scripts = TempDir::new("ai-agent-scripts");
    std::fs::write(scripts.path().join("agent.py"), FAKE_AGENT_PY).unwrap();
    let dns = model.peer_ip().to_string();
    let exfil_ip = exfil.peer_ip().to_string();
    let run = |pod: &Pod, phase: &str| {
        kubelet.add_pod(pod);
        let cfg = ContainerConfig::for_pod(pod, "agent", &[CONTAINER_PYTHON, "/data/agent.py"])
            .host_usr()
            .bind_mount(scripts.path(), "/data", true)
            .env(&format!("PHASE={phase}"))
            .env(&format!("DNS={dns}"))
            .env(&format!("BEDROCK={BEDROCK}"))
            .env(&format!("PINECONE={pinecone}"))
            .env(&format!("OPENAI={OPENAI}"))
            .env(&format!("EXFIL={exfil_ip}"));
        let out = Runc::new().run(&cfg, RUN);
        out.assert_success();
        out
    };
    let key = (ns.as_str(), "assistant", "agent");

    // 1. Learning: the agent, its providers, its tools.
    let out = run(&replica(), "learn");
    assert!(out.stdout.contains("tool /bin/sh exit 3"), "{out:?}");
    // Tools are recorded as they run, flows at the next counter poll (every 2 s).
    let (model_ip, store_ip) = (model.peer_ip().to_string(), store.peer_ip().to_string());
    let profile = agent.wait_profile(key, "with the agent, its tools, both calls", READY, |p| {
        let calls = |ip: &str| {
            p["egress"]
                .as_array()
                .is_some_and(|fs| fs.iter().any(|f| f["ip"] == ip && f["port"] == 443))
        };
        p["agentPrograms"].as_array().is_some_and(|a| !a.is_empty())
            && p["tools"].as_array().is_some_and(|t| t.len() == 2)
            && calls(&model_ip)
            && calls(&store_ip)
    });
    assert_eq!(
        profile["agentPrograms"],
        serde_json::json!([format!("{CONTAINER_PYTHON} /data/agent.py")]),
        "the command that called the model, not every python3"
    );
    let tools: Vec<(&str, Vec<&str>, u64)> = profile["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["path"].as_str().unwrap(),
                args(&t["args"]),
                t["failures"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        tools.contains(&("/bin/ls", vec!["/bin/ls", "/data"], 0)),
        "{tools:?}"
    );
    assert!(
        tools
            .iter()
            .any(|(path, args, failures)| *path == "/bin/sh" && args[1] == "-c" && *failures == 1),
        "sh -c ... exited 3: one failure; {tools:?}"
    );

    // The runtime AI-BOM with the tool calls, over gRPC (GetAgents).
    let agents = agent.client(&["agents", "--json", "-n", &ns]);
    let agents = agents.ok();
    let inv: Value = serde_json::from_str(agents.stdout.lines().next().unwrap_or("null")).unwrap();
    assert_eq!(inv["isAgent"], true, "{inv:#}");
    assert_eq!(inv["modelApis"], serde_json::json!(["Amazon Bedrock"]));
    assert_eq!(inv["vectorStores"], serde_json::json!(["Pinecone"]));
    let calls = inv["recentCalls"].as_array().cloned().unwrap_or_default();
    let shell_call = calls
        .iter()
        .find(|c| c["tool"]["path"] == "/bin/sh")
        .unwrap_or_else(|| panic!("no sh tool call in {inv:#}"));
    assert_eq!(shell_call["exitCode"], 3, "{shell_call:#}");
    assert!(shell_call["ended"].is_string(), "{shell_call:#}");
    assert_eq!(
        args(&shell_call["agent"]["args"]),
        [CONTAINER_PYTHON, "/data/agent.py"],
        "{shell_call:#}"
    );
    let text = agent.client(&["agents", "-n", &ns]).ok().stdout.clone();
    eprintln!("sensor agents:\n{text}");
    assert!(
        text.contains("tools:") && text.contains("recent tool calls"),
        "{text}"
    );

    agent.wait_profile(key, "ready", READY, |p| p["status"] == "ready");

    // 2. The misbehaving run, watched over gRPC.
    // From the log's last record on: what the run causes is replayed or live, however late the
    // subscription lands.
    let last = anomaly::seqs(&anomaly::read_log(agent.state_dir()))
        .into_iter()
        .max()
        .unwrap_or(0);
    let watcher = anomaly::watch(&agent, &["--namespace", &ns, "--since", &last.to_string()]);
    let out = run(&replica(), "misbehave");
    assert!(
        out.stdout.contains("call api.openai.com received 1024"),
        "{out:?}"
    );

    let is_agent =
        |a: &Value| args(&a["agentChain"]["agent"]["args"]) == [CONTAINER_PYTHON, "/data/agent.py"];
    let tool_arg1 = |a: &Value| a["agentChain"]["tool"]["args"][1].clone();

    // a) Inline Python run by a tool: code execution, and the tool's connection.
    let code = watcher.wait_for(DETECT, "agent-code-execution", |l| {
        find(l, "agent-code-execution", |a| {
            a["evidence"]["observed"]["kind"] == "inline python interpreter code"
        })
        .cloned()
    });
    assert_eq!(code["severity"], "high", "{code:#}");
    assert!(is_agent(&code), "{code:#}");
    assert_eq!(tool_arg1(&code), "-c", "{code:#}");
    let call_id = code["agentChain"]["tool"]["id"].clone();
    assert!(
        code["agentChain"]["action"]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("exec {CONTAINER_PYTHON} -c import socket")))
    );
    let egress = watcher.wait_for(DETECT, "the tool's unexpected egress", |l| {
        find(l, "unexpected-egress", |a| {
            a["subject"] == format!("{exfil_ip}:8443/tcp").as_str()
        })
        .cloned()
    });
    assert!(is_agent(&egress), "{egress:#}");
    assert_eq!(
        egress["agentChain"]["tool"]["id"], call_id,
        "the connection belongs to the same tool call: {egress:#}"
    );
    assert_eq!(
        egress["agentChain"]["action"],
        format!("connect {exfil_ip}:8443/tcp").as_str()
    );

    // b) The token, read by a tool.
    let cred = watcher.wait_for(DETECT, "agent-credential-access", |l| {
        find(l, "agent-credential-access", |_| true).cloned()
    });
    assert_eq!(cred["severity"], "critical", "{cred:#}");
    assert!(is_agent(&cred), "{cred:#}");
    assert_eq!(cred["agentChain"]["tool"]["path"], "/bin/cat", "{cred:#}");
    assert!(
        cred["agentChain"]["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("read /") && a.ends_with("/serviceaccount/token")),
        "{cred:#}"
    );

    // c) A provider the baseline never used, called by the agent itself.
    let provider = watcher.wait_for(DETECT, "new-ai-provider", |l| {
        find(l, "new-ai-provider", |_| true).cloned()
    });
    assert_eq!(provider["subject"], "provider:openai", "{provider:#}");
    assert_eq!(
        provider["evidence"]["baseline"]["providers"], "2: Amazon Bedrock, Pinecone",
        "{provider:#}"
    );
    assert!(is_agent(&provider), "{provider:#}");
    assert!(
        provider["agentChain"]["tool"].is_null(),
        "the agent called it, not a tool: {provider:#}"
    );

    // d) The 512 KiB prompt.
    let prompt = watcher.wait_for(DETECT, "prompt-size-spike", |l| {
        find(l, "prompt-size-spike", |_| true).cloned()
    });
    assert_eq!(
        prompt["subject"],
        format!("{model_ip}:443/tcp").as_str(),
        "{prompt:#}"
    );
    assert_eq!(prompt["evidence"]["baseline"]["provider"], "Amazon Bedrock");
    assert!(
        find(&watcher.lines(), "large-payload", |_| true).is_none(),
        "a model API's payload is judged as a prompt, not twice"
    );

    for a in [&code, &egress, &cred, &provider, &prompt] {
        eprintln!("streamed: {a}");
    }

    // The finished calls of the misbehaving run, with what each did.
    let agents = agent
        .client(&["agents", "--json", "-n", &ns])
        .ok()
        .stdout
        .clone();
    let inv: Value = serde_json::from_str(agents.lines().next().unwrap()).unwrap();
    let calls = inv["recentCalls"].as_array().cloned().unwrap_or_default();
    let python_call = calls
        .iter()
        .find(|c| c["id"] == call_id)
        .unwrap_or_else(|| panic!("call {call_id} not listed: {inv:#}"));
    assert_eq!(python_call["exitCode"], 0);
    assert_eq!(
        python_call["connections"],
        serde_json::json!([format!("{exfil_ip}:8443/tcp")])
    );
    let cat_call = calls
        .iter()
        .find(|c| c["tool"]["path"] == "/bin/cat")
        .unwrap_or_else(|| panic!("no cat call: {inv:#}"));
    assert!(
        cat_call["files"][0]
            .as_str()
            .is_some_and(|f| f.ends_with("/serviceaccount/token")),
        "{cat_call:#}"
    );
    eprintln!(
        "sensor agents after the misbehaving run:\n{}",
        agent.client(&["agents", "-n", &ns]).ok().stdout
    );
}
