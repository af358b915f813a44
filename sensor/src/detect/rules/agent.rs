//! Rules for AI agents: pure functions of (observation, ready profile, agent context,
//! catalogue) -> findings, run beside the generic rules (`rules/mod.rs`).
//!
//! | rule                      | severity                                   | MITRE ATT&CK |
//! |---------------------------|--------------------------------------------|--------------|
//! | `agent-code-execution`    | high                                       | T1059 (.004 shell, .006 Python, .007 JS, .001 pwsh) |
//! | `new-ai-provider`         | high                                       | T1567 |
//! | `prompt-size-spike`       | high                                       | T1567 |
//! | `agent-credential-access` | critical inside a tool call, high otherwise | T1528 / T1552.001 / T1552.005 |
//!
//! A workload is an agent when one of its processes called a model API (the profile's
//! `agentPrograms`, or the event's agent chain), or when its profile shows a model API, an
//! agent framework, a model SDK or an MCP package/server (`ai::inventory`).

use std::{collections::BTreeMap, net::IpAddr};

use super::{
    Interpreter, RuleConfig, add_completeness, basename, dns_key, fmt_bytes, interpreter,
    knows_name, mitre, payload_excess, peer_subject, protocol_from_name, summary, truncate,
};
use crate::detect::model::{Evidence, Finding, Mitre, RuleId, Severity};
use crate::{
    ai::{
        catalogue::{Catalogue, Endpoint},
        classify::{EgressClass, classify, classify_peer},
        inventory,
        tools::Chain,
    },
    attribution::event::{Detail, Event},
    profile::{
        builder::FlowDelta,
        model::{ApplicationProfile, Flow, Status},
    },
};

/// Agent findings for one event of a ready profile. `generic` are the findings the generic
/// rules made of the same event (credential findings are restated for agents).
pub fn on_event(
    event: &Event,
    profile: &ApplicationProfile,
    generic: &[Finding],
    chain: Option<&Chain>,
    catalogue: &Catalogue,
) -> Vec<Finding> {
    if profile.status != Status::Ready {
        return Vec::new();
    }
    let mut out = Vec::new();
    match &event.detail {
        Detail::Exec {
            path, exe, args, ..
        } => {
            if let Some(code) = code_execution(path, args)
                .or_else(|| exe.as_deref().and_then(|x| code_execution(x, args)))
                && is_agent(profile, chain, catalogue)
            {
                out.extend(code_rule(profile, path, args, code));
            }
        }
        Detail::Connect {
            protocol,
            remote_ip,
            remote_port,
            remote_names,
            ..
        } => out.extend(provider_rule(
            profile,
            protocol,
            *remote_ip,
            *remote_port,
            remote_names,
            catalogue,
        )),
        _ => {}
    }
    if generic.iter().any(|f| credential(f).is_some()) && is_agent(profile, chain, catalogue) {
        out.extend(generic.iter().filter_map(|f| credential_rule(f, chain)));
    }
    out
}

/// Whether judging `event` needs its agent chain even without a generic finding (code
/// execution is judged for agents only).
pub fn needs_chain(event: &Event) -> bool {
    match &event.detail {
        Detail::Exec {
            path, exe, args, ..
        } => {
            code_execution(path, args).is_some()
                || exe
                    .as_deref()
                    .is_some_and(|x| code_execution(x, args).is_some())
        }
        _ => false,
    }
}

/// Whether the workload behaves like an agent (cheap evidence first).
fn is_agent(profile: &ApplicationProfile, chain: Option<&Chain>, catalogue: &Catalogue) -> bool {
    chain.is_some()
        || !profile.agent_programs.is_empty()
        || inventory::of_profile(profile, catalogue).is_agent
}

// ---- code execution ------------------------------------------------------------------------

/// Kinds of code execution: inline (or piped) code per interpreter family, or a program (or
/// script) under a writable temporary directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CodeExecution {
    Inline(Interpreter),
    TempProgram,
}

impl CodeExecution {
    fn label(self) -> String {
        match self {
            CodeExecution::Inline(i) => format!("inline {} code", i.label()),
            CodeExecution::TempProgram => "a program from a temporary directory".into(),
        }
    }
}

/// Writable directories code gets dropped into and run from.
const TEMP_DIRS: &[&str] = &["/tmp/", "/dev/shm/", "/var/tmp/", "/run/user/"];

fn in_temp_dir(path: &str) -> bool {
    TEMP_DIRS.iter().any(|d| path.starts_with(d))
}

/// Flags after which an interpreter takes code as the next argument (or reads it from stdin).
fn inline_flag(kind: Interpreter, arg: &str) -> bool {
    match kind {
        // Combined flags too: `-lc`, `-ec`.
        Interpreter::Shell => {
            arg == "-s" || (!arg.starts_with("--") && arg.len() > 1 && arg[1..].contains('c'))
        }
        Interpreter::Python => arg == "-c",
        Interpreter::JavaScript => matches!(arg, "-e" | "--eval" | "-p" | "--print"),
        Interpreter::PowerShell => {
            matches!(
                arg.to_ascii_lowercase().as_str(),
                "-c" | "-command" | "-encodedcommand" | "-e"
            )
        }
        Interpreter::Other => matches!(arg, "-e" | "-E" | "-r"),
    }
}

/// Whether an exec runs code rather than a program: an interpreter given code inline, on
/// stdin (no script argument) or from a temporary directory, or any program from one.
pub(super) fn code_execution(path: &str, args: &[String]) -> Option<CodeExecution> {
    if in_temp_dir(path) {
        return Some(CodeExecution::TempProgram);
    }
    let kind = interpreter(path, args)?;
    // Multi-call binaries invoked as `busybox sh ...` carry the applet first.
    let skip = if args.get(1).is_some_and(|a| interpreter(a, &[]).is_some())
        && matches!(basename(path), "busybox" | "toybox")
    {
        2
    } else {
        1
    };
    // Options come before the script; what follows the script is the script's.
    for a in args.get(skip..).unwrap_or_default() {
        if !a.starts_with('-') || a == "-" {
            if a == "-" {
                return Some(CodeExecution::Inline(kind));
            }
            return in_temp_dir(a).then_some(CodeExecution::TempProgram);
        }
        if inline_flag(kind, a) {
            return Some(CodeExecution::Inline(kind));
        }
    }
    // No script: the code comes from stdin.
    Some(CodeExecution::Inline(kind))
}

fn code_rule(
    profile: &ApplicationProfile,
    path: &str,
    args: &[String],
    code: CodeExecution,
) -> Option<Finding> {
    let baseline_kinds: Vec<CodeExecution> = profile
        .execs
        .iter()
        .filter_map(|e| code_execution(&e.path, &e.args))
        .collect();
    if baseline_kinds.contains(&code) {
        return None;
    }
    let (technique, name) = match code {
        CodeExecution::Inline(kind) => kind.mitre(),
        CodeExecution::TempProgram => ("T1059", "Command and Scripting Interpreter"),
    };
    let mut kinds: Vec<String> = baseline_kinds.iter().map(|k| k.label()).collect();
    kinds.sort();
    kinds.dedup();
    let mut baseline = BTreeMap::from([(
        "codeExecution".to_string(),
        summary(kinds.len(), kinds.iter().cloned(), 4),
    )]);
    add_completeness(&mut baseline, profile, profile.overflow.execs, "execs");
    let command = truncate(&args.join(" "), 200);
    let observed = BTreeMap::from([
        ("kind".to_string(), code.label()),
        ("path".to_string(), truncate(path, 160)),
        ("command".to_string(), command.clone()),
    ]);
    Some(Finding {
        rule: RuleId::AgentCodeExecution,
        kubescape_rule: None,
        severity: Severity::High,
        mitre: mitre(technique, name, "Execution"),
        message: format!(
            "Agent ran {} ({}), which its baseline never did.",
            code.label(),
            truncate(&command, 80)
        ),
        subject: format!("{path} {}", code.label()),
        evidence: Evidence { baseline, observed },
    })
}

// ---- providers -----------------------------------------------------------------------------

fn exfiltration_over_web_service() -> Option<Mitre> {
    mitre("T1567", "Exfiltration Over Web Service", "Exfiltration")
}

/// The catalogued model APIs and vector stores a baseline calls (endpoint ids).
fn baseline_providers<'a>(
    profile: &ApplicationProfile,
    catalogue: &'a Catalogue,
) -> Vec<&'a Endpoint> {
    let mut out: Vec<&Endpoint> = Vec::new();
    for f in &profile.egress {
        let c = classify(f, catalogue);
        if let Some(e) = c.endpoint.as_deref().and_then(|id| catalogue.endpoint(id))
            && matches!(c.class, EgressClass::ModelApi | EgressClass::VectorStore)
            && !out.iter().any(|o| o.id == e.id)
        {
            out.push(e);
        }
    }
    out
}

fn provider_rule(
    profile: &ApplicationProfile,
    protocol: &str,
    ip: IpAddr,
    port: u16,
    names: &[String],
    catalogue: &Catalogue,
) -> Option<Finding> {
    let proto = protocol_from_name(protocol)?;
    let subject = peer_subject(ip, port, protocol);
    let class = classify_peer(names, port, proto, false, catalogue);
    let baseline_list = |providers: &[&Endpoint]| {
        // By name: the egress order follows addresses, which say nothing to a reader.
        let mut names: Vec<&str> = providers.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        summary(names.len(), names.into_iter().map(str::to_string), 4)
    };
    if matches!(
        class.class,
        EgressClass::ModelApi | EgressClass::VectorStore
    ) && let Some(id) = class.endpoint.as_deref()
    {
        let providers = baseline_providers(profile, catalogue);
        if providers.iter().any(|e| e.id == id) {
            return None;
        }
        let name = class.name.clone().unwrap_or_default();
        let what = class.class.label();
        let mut baseline = BTreeMap::from([("providers".to_string(), baseline_list(&providers))]);
        add_completeness(&mut baseline, profile, profile.overflow.egress, "egress");
        let observed = BTreeMap::from([
            ("provider".to_string(), format!("{name} ({what})")),
            ("peer".to_string(), subject.clone()),
            ("evidence".to_string(), class.evidence.clone()),
        ]);
        return Some(Finding {
            rule: RuleId::NewAiProvider,
            kubescape_rule: None,
            severity: Severity::High,
            mitre: exfiltration_over_web_service(),
            message: format!(
                "Call to {name} ({what}) at {subject}, a provider the baseline never used: prompts \
                 and data may be leaving for a new destination."
            ),
            subject: format!("provider:{id}"),
            evidence: Evidence { baseline, observed },
        });
    }
    let (name, imitated) = names
        .iter()
        .filter(|n| !knows_name(profile, &dns_key(n)))
        .find_map(|n| catalogue.look_alike(n).map(|e| (n, e)))?;
    let providers = baseline_providers(profile, catalogue);
    let mut baseline = BTreeMap::from([("providers".to_string(), baseline_list(&providers))]);
    add_completeness(&mut baseline, profile, profile.overflow.egress, "egress");
    let observed = BTreeMap::from([
        ("name".to_string(), truncate(name, 160)),
        ("imitates".to_string(), imitated.name.clone()),
        ("peer".to_string(), subject.clone()),
    ]);
    Some(Finding {
        rule: RuleId::NewAiProvider,
        kubescape_rule: None,
        severity: Severity::High,
        mitre: exfiltration_over_web_service(),
        message: format!(
            "Call to {} at {subject}: the name imitates {} but is none of its domains (a \
             look-alike endpoint can collect prompts and keys).",
            truncate(name, 120),
            imitated.name
        ),
        subject: format!(
            "lookalike:{}",
            name.trim_end_matches('.').to_ascii_lowercase()
        ),
        evidence: Evidence { baseline, observed },
    })
}

// ---- prompt size ---------------------------------------------------------------------------

/// Whether a baseline flow goes to a model API.
pub fn is_model_api(flow: &Flow, catalogue: &Catalogue) -> bool {
    classify(flow, catalogue).class == EgressClass::ModelApi
}

/// Bytes sent per connection to a model API in one window vs the baseline's: requests (the
/// prompt and its context) grown far beyond what the agent ever sent. Without L7, a window's
/// bytes over its new connections stand for a request: one request per connection is exact,
/// keep-alive makes it the window's volume over that connection.
pub fn prompt_rule(
    flow: &Flow,
    window: FlowDelta,
    window_seconds: u64,
    cfg: &RuleConfig,
    subject: &str,
    catalogue: &Catalogue,
) -> Option<Finding> {
    let (per_conn, base, mut evidence) = payload_excess(
        flow,
        window,
        window_seconds,
        cfg.prompt_factor,
        cfg.min_prompt_bytes,
    )?;
    let provider = classify(flow, catalogue)
        .name
        .unwrap_or_else(|| "a model API".into());
    evidence
        .baseline
        .insert("provider".to_string(), provider.clone());
    Some(Finding {
        rule: RuleId::PromptSizeSpike,
        kubescape_rule: None,
        severity: Severity::High,
        // Data stuffed into prompts leaves over the model provider's web API.
        mitre: exfiltration_over_web_service(),
        message: format!(
            "{} sent per request to {provider} ({subject}), more than {}x the baseline's {}: \
             prompts far larger than usual can carry exfiltrated data.",
            fmt_bytes(per_conn),
            cfg.prompt_factor,
            fmt_bytes(base)
        ),
        subject: subject.to_string(),
        evidence,
    })
}

// ---- credentials ---------------------------------------------------------------------------

/// What credential a generic finding is about, if any.
fn credential(f: &Finding) -> Option<String> {
    match f.rule {
        RuleId::ServiceAccountTokenRead => Some(
            f.evidence
                .observed
                .get("token")
                .cloned()
                .unwrap_or_else(|| "service-account token".into()),
        ),
        RuleId::CloudMetadataAccess => Some("cloud instance metadata (node credentials)".into()),
        RuleId::SensitiveFileRead => f
            .evidence
            .observed
            .get("kind")
            .filter(|k| k.ends_with("credentials"))
            .cloned(),
        _ => None,
    }
}

fn credential_rule(generic: &Finding, chain: Option<&Chain>) -> Option<Finding> {
    let what = credential(generic)?;
    let in_tool = chain.is_some_and(|c| c.tool.is_some());
    let mut observed = generic.evidence.observed.clone();
    observed.insert("credential".into(), what.clone());
    observed.insert("genericRule".into(), generic.rule.as_str().into());
    Some(Finding {
        rule: RuleId::AgentCredentialAccess,
        kubescape_rule: None,
        // A tool the model chose reading credentials is the prompt-injection outcome to page on.
        severity: if in_tool {
            Severity::Critical
        } else {
            Severity::High
        },
        mitre: generic.mitre.clone(),
        message: format!(
            "Agent {} {what} ({}), outside its baseline.",
            if in_tool { "tool accessed" } else { "accessed" },
            truncate(&generic.subject, 120)
        ),
        subject: generic.subject.clone(),
        evidence: Evidence {
            baseline: generic.evidence.baseline.clone(),
            observed,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        ai::tools::{ChainProcess, ChainTool},
        attribution::workload::WorkloadKind,
        profile::model::{ProfileKey, Protocol, Timestamp},
    };

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    const BEDROCK: &str = "bedrock-runtime.us-east-1.amazonaws.com";

    /// A ready agent: calls Bedrock, ran `python3 agent.py` and `sh -c ls`.
    fn agent_profile() -> ApplicationProfile {
        let key = ProfileKey {
            namespace: "ai".into(),
            workload: "assistant".into(),
            container: "agent".into(),
        };
        let t0 = Timestamp::lit("2026-11-26T00:00:00Z");
        let mut p = ApplicationProfile::new(key, WorkloadKind::Deployment, 1, t0);
        p.egress = vec![Flow::sample("10.0.0.5", 443, Protocol::Tcp, &[BEDROCK])];
        p.record_exec("/usr/bin/python3", &s(&["python3", "agent.py"]), t0);
        p.record_exec("/bin/sh", &s(&["sh", "-c", "ls /data"]), t0);
        p.advance(Timestamp::lit("2026-11-26T00:00:05Z"));
        assert_eq!(p.status, Status::Ready);
        p
    }

    fn event(detail: Detail) -> Event {
        Event {
            time: "2026-11-26T00:01:00Z".into(),
            kind: detail.kind(),
            node: Arc::from("n"),
            who: Arc::new(agent_profile().key.attribution(WorkloadKind::Deployment)),
            pid: Some(20),
            ppid: Some(10),
            comm: None,
            detail,
        }
    }

    fn exec(path: &str, args: &[&str]) -> Event {
        event(Detail::Exec {
            path: path.into(),
            exe: None,
            args: s(args),
            args_truncated: false,
            workload_start: false,
            path_truncated: false,
            uid: 0,
        })
    }

    fn connect(ip: &str, port: u16, names: &[&str]) -> Event {
        event(Detail::Connect {
            protocol: "tcp",
            remote_ip: ip.parse().unwrap(),
            remote_port: port,
            origin: "connect",
            remote_names: s(names),
        })
    }

    fn rules_of(ev: &Event, p: &ApplicationProfile, chain: Option<&Chain>) -> Vec<RuleId> {
        let generic = super::super::on_event(ev, p, &RuleConfig::default());
        on_event(ev, p, &generic, chain, Catalogue::embedded())
            .iter()
            .map(|f| f.rule)
            .collect()
    }

    #[test]
    fn code_execution_is_recognised_by_interpreter_flags_stdin_and_temp_dirs() {
        use CodeExecution::*;
        let c = |path: &str, args: &[&str]| code_execution(path, &s(args));
        assert_eq!(
            c("/usr/bin/python3", &["python3", "-c", "print(1)"]),
            Some(Inline(Interpreter::Python))
        );
        assert_eq!(
            c("/usr/bin/python3", &["python3"]),
            Some(Inline(Interpreter::Python)),
            "stdin"
        );
        assert_eq!(c("/usr/bin/python3", &["python3", "-u", "agent.py"]), None);
        assert_eq!(
            c("/usr/bin/python3", &["python3", "/tmp/x.py"]),
            Some(TempProgram)
        );
        assert_eq!(
            c("/bin/bash", &["bash", "-lc", "id"]),
            Some(Inline(Interpreter::Shell))
        );
        assert_eq!(
            c("/bin/busybox", &["sh", "-c", "id"]),
            Some(Inline(Interpreter::Shell))
        );
        assert_eq!(
            c("/bin/busybox", &["busybox", "sh", "-c", "id"]),
            Some(Inline(Interpreter::Shell))
        );
        assert_eq!(
            c("/usr/bin/node", &["node", "-e", "1"]),
            Some(Inline(Interpreter::JavaScript))
        );
        assert_eq!(c("/usr/bin/node", &["node", "server.js"]), None);
        assert_eq!(c("/dev/shm/x", &["x"]), Some(TempProgram));
        assert_eq!(
            c("/usr/bin/curl", &["curl", "-c", "jar"]),
            None,
            "not an interpreter"
        );
        assert_eq!(c("/bin/ls", &["ls"]), None);
    }

    #[test]
    fn agent_code_execution_fires_for_a_new_kind_only() {
        let p = agent_profile();
        // `sh -c` is in the baseline: another shell snippet is not new code execution.
        assert!(
            !rules_of(&exec("/bin/sh", &["sh", "-c", "cat /etc/hosts"]), &p, None)
                .contains(&RuleId::AgentCodeExecution)
        );
        let py = rules_of(
            &exec("/usr/bin/python3", &["python3", "-c", "import os"]),
            &p,
            None,
        );
        assert!(py.contains(&RuleId::AgentCodeExecution), "{py:?}");
        assert!(
            rules_of(&exec("/tmp/payload", &["payload"]), &p, None)
                .contains(&RuleId::AgentCodeExecution)
        );
        // Not an agent workload: the generic rules speak, this one does not.
        let mut plain = p.clone();
        plain.egress.clear();
        assert!(
            !rules_of(
                &exec("/usr/bin/python3", &["python3", "-c", "x"]),
                &plain,
                None
            )
            .contains(&RuleId::AgentCodeExecution)
        );
    }

    #[test]
    fn a_new_provider_or_a_look_alike_is_flagged_a_known_one_is_not() {
        let p = agent_profile();
        assert!(
            !rules_of(
                &connect(
                    "10.0.0.99",
                    443,
                    &["bedrock-runtime.eu-west-1.amazonaws.com"]
                ),
                &p,
                None
            )
            .contains(&RuleId::NewAiProvider),
            "same provider, other region"
        );
        let generic = super::super::on_event(
            &connect("10.9.0.1", 443, &["api.openai.com"]),
            &p,
            &RuleConfig::default(),
        );
        let f = on_event(
            &connect("10.9.0.1", 443, &["api.openai.com"]),
            &p,
            &generic,
            None,
            Catalogue::embedded(),
        );
        let f = f
            .iter()
            .find(|f| f.rule == RuleId::NewAiProvider)
            .expect("new provider");
        assert_eq!(f.subject, "provider:openai");
        assert_eq!(f.evidence.baseline["providers"], "1: Amazon Bedrock");
        let f = on_event(
            &connect("10.9.0.2", 443, &["api-openai.com.example.net"]),
            &p,
            &[],
            None,
            Catalogue::embedded(),
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].evidence.observed["imitates"], "OpenAI");
        assert!(
            on_event(
                &connect("10.9.0.3", 443, &["example.net"]),
                &p,
                &[],
                None,
                Catalogue::embedded()
            )
            .is_empty()
        );
    }

    #[test]
    fn credential_reads_by_an_agent_tool_are_critical() {
        let p = agent_profile();
        let token = event(Detail::sample_file(
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "sa-token",
        ));
        let chain = Chain {
            agent: ChainProcess {
                pid: 10,
                path: "/usr/bin/python3".into(),
                args: vec![],
            },
            tool: Some(ChainTool {
                id: "10.1".into(),
                ..Default::default()
            }),
        };
        let generic = super::super::on_event(&token, &p, &RuleConfig::default());
        let f = on_event(&token, &p, &generic, Some(&chain), Catalogue::embedded());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].rule, f[0].severity),
            (RuleId::AgentCredentialAccess, Severity::Critical)
        );
        let f = on_event(&token, &p, &generic, None, Catalogue::embedded());
        assert_eq!(f[0].severity, Severity::High, "the agent itself");
        // The metadata service is credentials too.
        let imds = connect("169.254.169.254", 80, &[]);
        let generic = super::super::on_event(&imds, &p, &RuleConfig::default());
        let f = on_event(&imds, &p, &generic, Some(&chain), Catalogue::embedded());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].rule, RuleId::AgentCredentialAccess);
        assert_eq!(f[0].mitre.as_ref().unwrap().technique, "T1552.005");
        // A workload that is not an agent: the generic rule only.
        let mut plain = p.clone();
        plain.egress.clear();
        assert!(on_event(&token, &plain, &generic, None, Catalogue::embedded()).is_empty());
    }

    #[test]
    fn prompt_size_is_judged_per_connection_against_the_baseline() {
        let mut flow = Flow::sample("10.0.0.5", 443, Protocol::Tcp, &[BEDROCK]);
        flow.rate.windows = 3;
        flow.rate.window_seconds = 10;
        flow.rate.max_connections_per_window = 4;
        flow.rate.max_bytes_sent_per_window = 4 * 2048;
        let cfg = RuleConfig::default();
        let cat = Catalogue::embedded();
        let w = |connections, bytes_sent| FlowDelta {
            connections,
            bytes_sent,
            bytes_recv: 0,
        };
        assert!(
            prompt_rule(&flow, w(4, 4 * 4096), 10, &cfg, "s", cat).is_none(),
            "2x"
        );
        let f = prompt_rule(&flow, w(1, 512 << 10), 10, &cfg, "s", cat).expect("256x");
        assert_eq!(f.evidence.baseline["provider"], "Amazon Bedrock");
        assert!(
            prompt_rule(&flow, w(1, 60 << 10), 10, &cfg, "s", cat).is_none(),
            "under the floor"
        );
    }
}
