//! `sensor watch`: anomalies from the agent as they happen (after replaying the log with
//! `--since`), as readable lines or JSON lines.
//!
//! Readable lines (colour when stdout is a terminal and NO_COLOR is unset):
//! `#SEQ TIME SEVERITY RULE NS/POD/CONTAINER COMM(PID) EVIDENCE`; gap notices go to stderr.
//! `--json`: one JSON object per line, exactly the anomaly log's lines; a gap is a `{"gap":N}`
//! line.
//!
//! Once connected, a lost connection (the agent restarting, a network cut) is retried with
//! backoff, resuming after the last sequence number printed: nothing is printed twice, and
//! nothing the log still holds is lost.

use std::{
    fmt::Write as _,
    io::{self, IsTerminal, Write},
    time::Duration,
};

use anyhow::{Result, anyhow};
use clap::Args;
use tokio_stream::StreamExt;
use tonic::Code;

use super::remote::{ServerArg, ignore_sigpipe, status_error};
use crate::api::{
    convert, message,
    proto::{self, anomaly_message::Payload},
};
use crate::detect::model::{RuleId, Severity};

const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Longest evidence value shown on a readable line.
const VALUE_MAX: usize = 80;

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub server: ServerArg,
    /// One JSON object per line (the anomaly log format); a gap is a `{"gap":N}` line.
    #[arg(long)]
    pub json: bool,
    /// Only this namespace.
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Only this workload.
    #[arg(long, short = 'w', value_name = "W")]
    pub workload: Option<String>,
    /// Only pods whose name matches this regular expression (unanchored: `^web-` for a prefix).
    #[arg(long, value_name = "REGEX")]
    pub pod: Option<String>,
    /// Only this container.
    #[arg(long, short = 'c', value_name = "C")]
    pub container: Option<String>,
    /// Only pods whose labels match this Kubernetes label selector (`app=web,tier!=db`).
    #[arg(long, short = 'l', value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Only this rule (repeatable), e.g. `unexpected-exec`.
    #[arg(long = "rule", value_name = "ID", value_parser = parse_rule)]
    pub rules: Vec<RuleId>,
    /// Only anomalies of at least this severity: low, medium, high, critical.
    #[arg(long, value_name = "S", value_parser = parse_severity)]
    pub min_severity: Option<Severity>,
    /// Replay the logged anomalies after sequence number SEQ first (0: all the log holds).
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u64>,
}

fn parse_rule(s: &str) -> Result<RuleId, String> {
    RuleId::parse(s).ok_or_else(|| {
        let known: Vec<&str> = RuleId::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown rule `{s}` (known: {})", known.join(", "))
    })
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s)
        .ok_or_else(|| format!("unknown severity `{s}` (low, medium, high, critical)"))
}

impl WatchArgs {
    fn filter(&self) -> proto::AnomalyFilter {
        let one = |o: &Option<String>| o.iter().cloned().collect::<Vec<_>>();
        proto::AnomalyFilter {
            namespace: one(&self.namespace),
            workload: one(&self.workload),
            pod_regex: one(&self.pod),
            container: one(&self.container),
            label_selector: self.selector.clone().unwrap_or_default(),
            rule_ids: self.rules.iter().map(|r| r.as_str().to_string()).collect(),
            min_severity: self
                .min_severity
                .map_or(proto::Severity::Unspecified, message::severity)
                .into(),
        }
    }
}

/// Why one connection ended.
enum End {
    /// Give up (bad filter, refused, first connection failed ...).
    Fatal(anyhow::Error),
    /// Try again.
    Retry(String),
    /// stdout is closed (`| head`): stop quietly.
    OutputClosed,
}

struct Watch {
    args: WatchArgs,
    /// Where to resume: the last sequence number printed, or the stream's `Live.last_seq`.
    resume: Option<u64>,
    connected: bool,
    colour: bool,
    replay_reported: bool,
}

pub async fn run(args: WatchArgs) -> Result<()> {
    // A restarting agent closes the socket under a write: reconnect, do not die of SIGPIPE (a
    // closed stdout is seen as EPIPE by `print`).
    ignore_sigpipe();
    let colour = !args.json
        && io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut watch = Watch {
        resume: args.since,
        args,
        connected: false,
        colour,
        replay_reported: false,
    };
    let mut backoff = BACKOFF_START;
    loop {
        let printed_before = watch.resume;
        match watch.once().await {
            End::Fatal(e) => return Err(e),
            End::OutputClosed => return Ok(()),
            End::Retry(reason) => {
                if watch.resume != printed_before {
                    backoff = BACKOFF_START;
                }
                let after = watch
                    .resume
                    .map_or_else(String::new, |s| format!(", resuming after #{s}"));
                eprintln!(
                    "watch: {reason}; reconnecting in {}{after}",
                    humantime::format_duration(backoff)
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

impl Watch {
    async fn once(&mut self) -> End {
        let addr = &self.args.server.server;
        let connected =
            crate::api::client::connect_with(addr, &self.args.server.options(true)).await;
        let mut client = match connected {
            Ok(c) => c,
            Err(e) if self.connected => return End::Retry(e.to_string()),
            Err(e) => return End::Fatal(e.into()),
        };
        let request = proto::StreamAnomaliesRequest {
            filter: Some(self.args.filter()),
            since_seq: self.resume,
            deny_list: Vec::new(),
        };
        let mut stream = match client.stream_anomalies(request).await {
            Ok(r) => r.into_inner(),
            Err(s) => return self.status_end(s),
        };
        self.connected = true;
        loop {
            let msg = match stream.next().await {
                Some(Ok(m)) => m,
                Some(Err(s)) => return self.status_end(s),
                None => return End::Retry("the agent ended the stream".into()),
            };
            if let Err(e) = self.print(msg) {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    return End::OutputClosed;
                }
                return End::Fatal(anyhow!("writing to stdout: {e}"));
            }
        }
    }

    fn status_end(&self, s: tonic::Status) -> End {
        match s.code() {
            // The agent going away, a connection cut, a proxy hiccup: worth another try once we
            // know the agent and the request are fine.
            Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::Aborted
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Internal
                if self.connected =>
            {
                End::Retry(format!("stream ended: {}", s.message()))
            }
            _ => End::Fatal(status_error(&self.args.server.server, s)),
        }
    }

    fn print(&mut self, msg: proto::AnomalyMessage) -> io::Result<()> {
        let mut out = io::stdout().lock();
        match msg.payload {
            Some(Payload::Anomaly(a)) => {
                // Never twice: a resumed stream starts after `resume`, this guards the rest.
                if self.resume.is_some_and(|r| a.seq <= r) {
                    return Ok(());
                }
                self.resume = Some(a.seq);
                if self.args.json {
                    writeln!(out, "{}", a.json)?;
                } else {
                    writeln!(out, "{}", line(&a, self.colour))?;
                }
                out.flush()
            }
            Some(Payload::Gap(g)) => {
                if self.args.json {
                    writeln!(out, "{}", serde_json::json!({ "gap": g.missed }))?;
                    out.flush()
                } else {
                    let why = match proto::GapReason::try_from(g.reason) {
                        Ok(proto::GapReason::LogRetention) => {
                            "no longer in the agent's log (retention)".to_string()
                        }
                        _ => format!(
                            "dropped: this terminal read too slowly (replay them with --since {})",
                            g.after_seq
                        ),
                    };
                    eprintln!(
                        "watch: gap: {} after #{}, {why}",
                        plural(g.missed, "anomaly", "anomalies"),
                        g.after_seq
                    );
                    Ok(())
                }
            }
            Some(Payload::Live(l)) => {
                self.resume = Some(self.resume.map_or(l.last_seq, |r| r.max(l.last_seq)));
                if !self.args.json && self.args.since.is_some() && !self.replay_reported {
                    eprintln!("watch: replayed the log through #{}, now live", l.last_seq);
                }
                self.replay_reported = true;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// One readable line: `#SEQ TIME SEVERITY RULE NS/POD/CONTAINER COMM(PID) EVIDENCE`.
pub fn line(a: &proto::Anomaly, colour: bool) -> String {
    let paint = |code: &str, text: &str| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    let severity = message::severity_name(a.severity);
    let severity_code = match severity {
        "critical" => "1;31",
        "high" => "31",
        "medium" => "33",
        _ => "36",
    };
    let time = a
        .time
        .as_ref()
        .and_then(|t| std::time::SystemTime::try_from(*t).ok())
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| convert::rfc3339(a.time.as_ref()));
    let pod = if a.pod.is_empty() { "-" } else { &a.pod };
    let process = a.process.as_ref().map_or_else(
        || "-".to_string(),
        |p| {
            let name = if p.comm.is_empty() {
                p.path.rsplit('/').next().unwrap_or("?")
            } else {
                &p.comm
            };
            format!("{name}({})", p.pid)
        },
    );
    let mut s = format!(
        "{} {time} {} {} {}/{pod}/{} {process} {}",
        paint("2", &format!("#{}", a.seq)),
        paint(severity_code, &format!("{severity:<8}")),
        paint("1", &a.rule_id),
        a.namespace,
        a.container,
        evidence(a)
    );
    if a.repeat_of != 0 {
        let _ = write!(s, " (x{}, repeat of #{})", a.count, a.repeat_of);
    } else if a.count > 1 {
        let _ = write!(s, " (x{})", a.count);
    }
    if let Some(chain) = &a.agent_chain {
        let _ = write!(s, " | {}", agent_chain(chain));
    }
    s
}

/// `agent: python3 agent.py(10) -> tool 10.1: sh -c curl ...(20) -> connect ...`.
fn agent_chain(c: &proto::AgentChain) -> String {
    let cmd = |p: &proto::ChainProcess| {
        let text = if p.args.is_empty() {
            p.path.clone()
        } else {
            p.args.join(" ")
        };
        format!("{}({})", cut(&text), p.pid)
    };
    let mut s = format!(
        "agent: {}",
        c.agent.as_ref().map_or_else(|| "?".to_string(), cmd)
    );
    if let Some(t) = &c.tool {
        let _ = write!(
            s,
            " -> tool {}: {}",
            t.id,
            t.process.as_ref().map_or_else(|| "?".to_string(), cmd)
        );
    }
    let _ = write!(s, " -> {}", cut(&c.action));
    s
}

/// `observed: k=v, k=v; baseline: k=v` on one line (values cut at 80 characters), or the
/// message when there is no evidence.
fn evidence(a: &proto::Anomaly) -> String {
    let Some(e) = a
        .evidence
        .as_ref()
        .filter(|e| !e.observed.is_empty() || !e.baseline.is_empty())
    else {
        return a.message.clone();
    };
    let pairs = |m: &std::collections::HashMap<String, String>| {
        let mut v: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", cut(v))).collect();
        v.sort();
        v.join(", ")
    };
    let mut s = String::new();
    if !e.observed.is_empty() {
        let _ = write!(s, "observed: {}", pairs(&e.observed));
    }
    if !e.baseline.is_empty() {
        if !s.is_empty() {
            s.push_str("; ");
        }
        let _ = write!(s, "baseline: {}", pairs(&e.baseline));
    }
    s
}

fn cut(v: &str) -> String {
    let one_line = v.replace(['\n', '\r', '\t'], " ");
    if one_line.chars().count() <= VALUE_MAX {
        return one_line;
    }
    let mut s: String = one_line.chars().take(VALUE_MAX - 1).collect();
    s.push('…');
    s
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::detect::model::Anomaly;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sensor").chain(args.iter().copied()))
    }

    #[test]
    fn flags_make_the_filter() {
        let cli = parse(&[
            "watch",
            "--json",
            "-n",
            "shop",
            "--pod",
            "^checkout-",
            "--rule",
            "unexpected-exec",
            "--rule",
            "shell-spawned",
            "--min-severity",
            "HIGH",
            "--since",
            "7",
            "-l",
            "app=web",
        ])
        .unwrap();
        let Command::Watch(w) = cli.command else {
            panic!()
        };
        assert!(w.json);
        assert_eq!(w.since, Some(7));
        let f = w.filter();
        assert_eq!(f.namespace, ["shop"]);
        assert_eq!(f.pod_regex, ["^checkout-"]);
        assert_eq!(f.rule_ids, ["unexpected-exec", "shell-spawned"]);
        assert_eq!(f.min_severity, proto::Severity::High as i32);
        assert_eq!(f.label_selector, "app=web");
        assert!(f.workload.is_empty() && f.container.is_empty());

        for bad in [
            &["watch", "--rule", "nope"][..],
            &["watch", "--min-severity", "urgent"],
            &["watch", "--since", "-1"],
            &["watch", "--tls-cert", "c.pem"],
        ] {
            assert_eq!(parse(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        let e = parse(&["watch", "--rule", "nope"]).unwrap_err().to_string();
        assert!(e.contains("unexpected-exec"), "{e}");
    }

    #[test]
    fn readable_lines() {
        let mut a = Anomaly::sample("/usr/bin/curl");
        a.seq = 17;
        let m = message::anomaly(&a);
        assert_eq!(
            line(&m, false),
            "#17 2026-05-28T20:26:40Z medium   unexpected-exec shop/checkout-7d9f8b6c5d-x2x4z/app \
             curl(4242) observed: args=-s *, path=/usr/bin/curl; baseline: programs=/usr/local/bin/checkout"
        );
        let coloured = line(&m, true);
        assert!(coloured.contains("\x1b[33mmedium"), "{coloured:?}");
        let mut r = a.clone();
        r.repeat_of = Some(12);
        r.count = 40;
        r.finding.evidence = Default::default();
        r.process = None;
        let l = line(&message::anomaly(&r), false);
        assert!(
            l.ends_with(
                "/app - /usr/bin/curl was run, which the baseline never did (x40, repeat of #12)"
            ),
            "{l}"
        );
        assert_eq!(cut(&"x".repeat(200)).chars().count(), VALUE_MAX);
    }
}
