//! Tool-call attribution: which processes are AI agents and which process subtrees are the
//! tool invocations they make.
//!
//! An agent process is one that called a catalogued model API (or runs a program the profile
//! already knows as its agent). A program executed by a child of an agent process starts a
//! tool invocation; everything that child and its descendants do (execs, connections, file
//! opens) belongs to that invocation until the child exits (its exit code closes the call). A
//! forked agent child that never execs is the agent's own code (a worker), not a tool.
//!
//! Fed the attributed event stream in order; bounded everywhere (members, open calls, recent
//! calls per container, actions per call), with what did not fit counted.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{
    catalogue::Catalogue,
    classify::{EgressClass, classify_peer},
};
use crate::{
    attribution::event::{Detail, Event, command_label, peer_label},
    attribution::processes::ProcessTable,
    profile::{
        model::{ProfileKey, Protocol},
        normalize::normalize_args,
    },
    text::truncate,
};

/// Processes tracked as agents or tool members.
const MAX_MEMBERS: usize = 65_536;
/// Tool invocations still running.
const MAX_OPEN_CALLS: usize = 4096;
/// Finished invocations kept per container.
const RECENT_PER_CONTAINER: usize = 32;
/// Containers with recent invocations kept.
const MAX_CONTAINERS: usize = 4096;
/// Actions of each kind kept per invocation (the rest are counted).
const ACTIONS_PER_CALL: usize = 16;
/// How far up the process tree membership is looked for.
const ANCESTRY: usize = 16;

/// A process of a chain, as anomalies and `sensor agents` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainProcess {
    pub pid: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// One tool invocation: the subtree of one exec'ing child of an agent process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    /// Node-unique id (`<agent pid>.<n>`: the nth call of that agent process seen).
    pub id: String,
    pub agent: ChainProcess,
    /// The child's first program: what the agent asked to run.
    pub tool: ChainProcess,
    /// RFC 3339.
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<u32>,
    /// Programs run inside the call after the first (`path args`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub execs: Vec<String>,
    /// Peers contacted (`ip:port/proto`, with the name when known).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
    /// Sensitive files opened.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Actions beyond the per-kind bound.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub actions_dropped: u64,
    /// The call's process went away without its exit being seen (a lost event).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end_lost: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The agent -> tool context of one process, for an anomaly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub agent: ChainProcess,
    /// `None` when the agent process acted itself.
    pub tool: Option<ChainTool>,
}

/// The tool call of a chain, as anomalies carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainTool {
    /// The call id (as `sensor agents` lists it).
    pub id: String,
    #[serde(flatten)]
    pub process: ChainProcess,
    /// RFC 3339.
    pub started: String,
}

/// What the tracker learned from one event, for the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A process running this command (see [`agent_command`]) called a model API: it is the
    /// agent.
    AgentProgram { command: String },
    /// A tool invocation began (the child's program, its arguments).
    ToolStarted { path: String, args: Vec<String> },
    /// A tool invocation ended.
    ToolEnded {
        path: String,
        args: Vec<String>,
        exit_code: Option<u32>,
        signal: Option<u32>,
    },
}

#[derive(Debug, Clone)]
enum Member {
    /// Shared: resolving a member clones it for every event of an agent.
    Agent(std::sync::Arc<ChainProcess>),
    /// In the open call with this id.
    Tool(u64),
}

struct OpenCall {
    key: ProfileKey,
    root_pid: u32,
    call: ToolCall,
}

/// Counters of what did not fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackerLosses {
    /// Processes not tracked because the member table was full.
    pub members: u64,
    /// Tool invocations not tracked because too many were running.
    pub calls: u64,
    /// Calls whose end was never seen (the root's exit event was lost).
    pub unfinished: u64,
}

/// The tracker as the agent loop and the API share it.
pub type SharedTools = std::sync::Arc<std::sync::Mutex<ToolTracker>>;

#[derive(Default)]
pub struct ToolTracker {
    members: HashMap<u32, Member>,
    open: HashMap<u64, OpenCall>,
    recent: HashMap<ProfileKey, VecDeque<ToolCall>>,
    /// Calls started per agent pid, for ids.
    started_by_agent: HashMap<u32, u64>,
    next_call: u64,
    pub losses: TrackerLosses,
}

impl ToolTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one attributed event of the container `key`. `agent_programs` are the programs
    /// the profile knows as agents; `processes` resolves pids the tracker has not seen exec.
    pub fn on_event(
        &mut self,
        ev: &Event,
        key: &ProfileKey,
        agent_programs: &[String],
        processes: &ProcessTable,
        catalogue: &Catalogue,
    ) -> Vec<Observation> {
        let Some(pid) = ev.pid else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match &ev.detail {
            Detail::Exec { path, args, .. } => self.on_exec(
                ev,
                key,
                pid,
                path,
                args,
                agent_programs,
                processes,
                &mut out,
            ),
            Detail::Exit { exit_code, signal } => {
                self.on_exit(pid, &ev.time, *exit_code, *signal, &mut out)
            }
            Detail::Connect {
                protocol,
                remote_ip,
                remote_port,
                remote_names,
                ..
            } => {
                let member = self.resolve(pid, processes);
                let peer = peer_label(*remote_ip, *remote_port, protocol, remote_names);
                match member {
                    Some(Member::Tool(id)) => self.record(id, |c| &mut c.connections, peer),
                    Some(Member::Agent(_)) => {}
                    None => {
                        let proto = if *protocol == "udp" {
                            Protocol::Udp
                        } else {
                            Protocol::Tcp
                        };
                        let class =
                            classify_peer(remote_names, *remote_port, proto, false, catalogue);
                        if class.class == EgressClass::ModelApi
                            && let Some(p) = processes.get(pid)
                        {
                            let me = ChainProcess {
                                pid,
                                path: p.path.clone(),
                                args: p.args.clone(),
                            };
                            if !me.path.is_empty() {
                                out.push(Observation::AgentProgram {
                                    command: agent_command(&me.path, &me.args),
                                });
                            }
                            self.insert_member(pid, Member::Agent(me.into()), processes);
                        }
                    }
                }
            }
            Detail::File { path, .. } => {
                if let Some(Member::Tool(id)) = self.resolve(pid, processes) {
                    self.record(id, |c| &mut c.files, path.clone());
                }
            }
            _ => {}
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn on_exec(
        &mut self,
        ev: &Event,
        key: &ProfileKey,
        pid: u32,
        path: &str,
        args: &[String],
        agent_programs: &[String],
        processes: &ProcessTable,
        out: &mut Vec<Observation>,
    ) {
        // Already in a call (`sh -c 'exec x'`, or a later program of the same child).
        if let Some(Member::Tool(id)) = self.members.get(&pid).cloned() {
            self.record(id, |c| &mut c.execs, exec_label(path, args));
            return;
        }
        let parent = ev
            .ppid
            .or_else(|| processes.get(pid).map(|p| p.ppid))
            .and_then(|ppid| self.resolve(ppid, processes));
        match parent {
            Some(Member::Tool(id)) => {
                self.insert_member(pid, Member::Tool(id), processes);
                self.record(id, |c| &mut c.execs, exec_label(path, args));
            }
            Some(Member::Agent(agent)) if !self.members.contains_key(&pid) => {
                let agent = (*agent).clone();
                self.start_call(key, pid, agent, (path, args), &ev.time, processes, out);
            }
            _ => {
                let command = agent_command(path, args);
                if agent_programs.contains(&command) {
                    self.insert_member(
                        pid,
                        Member::Agent(
                            ChainProcess {
                                pid,
                                path: path.to_string(),
                                args: args.to_vec(),
                            }
                            .into(),
                        ),
                        processes,
                    );
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_call(
        &mut self,
        key: &ProfileKey,
        pid: u32,
        agent: ChainProcess,
        (path, args): (&str, &[String]),
        time: &str,
        processes: &ProcessTable,
        out: &mut Vec<Observation>,
    ) {
        if self.open.len() >= MAX_OPEN_CALLS {
            self.sweep(processes);
        }
        if self.open.len() >= MAX_OPEN_CALLS {
            self.losses.calls += 1;
            return;
        }
        let n = self.started_by_agent.entry(agent.pid).or_default();
        *n += 1;
        let id = format!("{}.{}", agent.pid, n);
        self.next_call += 1;
        let call_id = self.next_call;
        self.open.insert(
            call_id,
            OpenCall {
                key: key.clone(),
                root_pid: pid,
                call: ToolCall {
                    id,
                    agent,
                    tool: ChainProcess {
                        pid,
                        path: path.to_string(),
                        args: args.to_vec(),
                    },
                    started: time.to_string(),
                    ..Default::default()
                },
            },
        );
        self.insert_member(pid, Member::Tool(call_id), processes);
        out.push(Observation::ToolStarted {
            path: path.to_string(),
            args: args.to_vec(),
        });
    }

    fn on_exit(
        &mut self,
        pid: u32,
        time: &str,
        exit_code: Option<u32>,
        signal: Option<u32>,
        out: &mut Vec<Observation>,
    ) {
        match self.members.remove(&pid) {
            Some(Member::Tool(id)) => {
                if self.open.get(&id).is_some_and(|c| c.root_pid == pid)
                    && let Some(mut open) = self.open.remove(&id)
                {
                    open.call.ended = Some(time.to_string());
                    open.call.exit_code = exit_code;
                    open.call.signal = signal;
                    out.push(Observation::ToolEnded {
                        path: open.call.tool.path.clone(),
                        args: open.call.tool.args.clone(),
                        exit_code,
                        signal,
                    });
                    self.finish(open);
                }
            }
            Some(Member::Agent(_)) => {
                self.started_by_agent.remove(&pid);
            }
            None => {}
        }
    }

    fn finish(&mut self, open: OpenCall) {
        if !self.recent.contains_key(&open.key) && self.recent.len() >= MAX_CONTAINERS {
            // Forget the container whose newest call is oldest.
            if let Some(oldest) = self
                .recent
                .iter()
                .min_by(|a, b| {
                    let last = |q: &VecDeque<ToolCall>| q.back().map(|c| c.started.clone());
                    last(a.1).cmp(&last(b.1))
                })
                .map(|(k, _)| k.clone())
            {
                self.recent.remove(&oldest);
            }
        }
        let q = self.recent.entry(open.key).or_default();
        if q.len() >= RECENT_PER_CONTAINER {
            q.pop_front();
        }
        q.push_back(open.call);
    }

    fn insert_member(&mut self, pid: u32, m: Member, processes: &ProcessTable) {
        if self.members.len() >= MAX_MEMBERS && !self.members.contains_key(&pid) {
            self.sweep(processes);
            if self.members.len() >= MAX_MEMBERS {
                self.losses.members += 1;
                return;
            }
        }
        self.members.insert(pid, m);
    }

    /// Forgets processes the process table no longer knows alive: their exit was lost (a full
    /// ring buffer) or evicted. Their calls are closed without an exit code.
    fn sweep(&mut self, processes: &ProcessTable) {
        let alive = |pid: &u32| processes.get(*pid).is_some_and(|p| !p.exited);
        self.members.retain(|pid, _| alive(pid));
        let gone: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, o)| !alive(&o.root_pid))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(mut open) = self.open.remove(&id) {
                self.losses.unfinished += 1;
                open.call.end_lost = true;
                self.finish(open);
            }
        }
    }

    fn record(&mut self, id: u64, list: impl Fn(&mut ToolCall) -> &mut Vec<String>, item: String) {
        let Some(open) = self.open.get_mut(&id) else {
            return;
        };
        let call = &mut open.call;
        let l = list(call);
        if l.contains(&item) {
            return;
        }
        if l.len() >= ACTIONS_PER_CALL {
            call.actions_dropped += 1;
        } else {
            l.push(item);
        }
    }

    /// The membership of `pid`: its own, or that of its nearest tracked ancestor (a forked
    /// child that has not exec'd yet acts for its parent).
    fn resolve(&self, pid: u32, processes: &ProcessTable) -> Option<Member> {
        if self.members.is_empty() {
            // A node without agents pays one check per event.
            return None;
        }
        // Walked without allocating: this runs for every event of a node with agents.
        let mut current = pid;
        for _ in 0..=ANCESTRY {
            if let Some(m) = self.members.get(&current) {
                return Some(m.clone());
            }
            match processes.get(current) {
                Some(p) if p.ppid != 0 && p.ppid != current => current = p.ppid,
                _ => return None,
            }
        }
        None
    }

    /// The agent -> tool context of `pid`, if it is an agent or inside a tool call.
    pub fn chain(&self, pid: u32, processes: &ProcessTable) -> Option<Chain> {
        match self.resolve(pid, processes)? {
            Member::Agent(agent) => Some(Chain {
                agent: (*agent).clone(),
                tool: None,
            }),
            Member::Tool(id) => {
                let open = self.open.get(&id)?;
                Some(Chain {
                    agent: open.call.agent.clone(),
                    tool: Some(ChainTool {
                        id: open.call.id.clone(),
                        process: open.call.tool.clone(),
                        started: open.call.started.clone(),
                    }),
                })
            }
        }
    }

    /// Tool invocations of a container: the finished ones kept (oldest first), then the
    /// running ones.
    pub fn calls(&self, key: &ProfileKey) -> Vec<ToolCall> {
        let mut out: Vec<ToolCall> = self
            .recent
            .get(key)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default();
        let mut running: Vec<&OpenCall> = self.open.values().filter(|o| &o.key == key).collect();
        running.sort_by(|a, b| a.call.started.cmp(&b.call.started));
        out.extend(running.into_iter().map(|o| o.call.clone()));
        out
    }

    /// Every container with tool invocations.
    pub fn containers(&self) -> Vec<ProfileKey> {
        let mut keys: Vec<ProfileKey> = self.recent.keys().cloned().collect();
        keys.extend(self.open.values().map(|o| o.key.clone()));
        keys.sort();
        keys.dedup();
        keys
    }
}

/// How a profile remembers an agent program: the path and the normalised arguments after
/// argv[0] (`/usr/bin/python3 /app/agent.py`), so another program run with the same
/// interpreter is not taken for the agent.
pub fn agent_command(path: &str, args: &[String]) -> String {
    let mut s = path.to_string();
    for a in normalize_args(args).iter().skip(1) {
        s.push(' ');
        s.push_str(a);
    }
    s
}

fn exec_label(path: &str, args: &[String]) -> String {
    truncate(&command_label(path, args), 200)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::attribution::processes::ProcessInfo;

    const BEDROCK: &str = "bedrock-runtime.us-east-1.amazonaws.com";

    struct World {
        tracker: ToolTracker,
        processes: ProcessTable,
        key: ProfileKey,
        t: u32,
    }

    impl World {
        fn new() -> Self {
            Self {
                tracker: ToolTracker::new(),
                processes: ProcessTable::new(1024),
                key: ProfileKey {
                    namespace: "ai".into(),
                    workload: "assistant".into(),
                    container: "agent".into(),
                },
                t: 0,
            }
        }

        fn feed(&mut self, pid: u32, detail: Detail, programs: &[String]) -> Vec<Observation> {
            self.t += 1;
            let ev = Event {
                time: format!("2026-11-26T00:00:{:02}Z", self.t),
                kind: detail.kind(),
                node: Arc::from("n"),
                who: Arc::new(
                    self.key
                        .attribution(crate::attribution::workload::WorkloadKind::Deployment),
                ),
                pid: Some(pid),
                ppid: self.processes.get(pid).map(|p| p.ppid),
                comm: None,
                detail,
            };
            let obs = self.tracker.on_event(
                &ev,
                &self.key,
                programs,
                &self.processes,
                Catalogue::embedded(),
            );
            if let Detail::Exit { .. } = ev.detail {
                self.processes.exit(pid);
            }
            obs
        }

        fn exec(&mut self, pid: u32, ppid: u32, path: &str, args: &[&str]) -> Vec<Observation> {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            self.processes.exec(ProcessInfo {
                pid,
                ppid,
                comm: String::new(),
                path: path.into(),
                args: args.clone(),
                cgroup_id: 7,
                exited: false,
            });
            self.feed(
                pid,
                Detail::Exec {
                    path: path.into(),
                    exe: None,
                    args,
                    args_truncated: false,
                    workload_start: false,
                    path_truncated: false,
                    uid: 0,
                },
                &[],
            )
        }

        fn connect(&mut self, pid: u32, ip: &str, port: u16, names: &[&str]) -> Vec<Observation> {
            self.feed(
                pid,
                Detail::Connect {
                    protocol: "tcp",
                    remote_ip: ip.parse().unwrap(),
                    remote_port: port,
                    origin: "connect",
                    remote_names: names.iter().map(|s| s.to_string()).collect(),
                },
                &[],
            )
        }

        fn exit(&mut self, pid: u32, code: u32) -> Vec<Observation> {
            self.feed(
                pid,
                Detail::Exit {
                    exit_code: Some(code),
                    signal: None,
                },
                &[],
            )
        }
    }

    #[test]
    fn a_child_subtree_of_an_agent_is_one_tool_call() {
        let mut w = World::new();
        w.exec(10, 1, "/usr/bin/python3", &["python3", "agent.py"]);
        let obs = w.connect(10, "10.0.0.5", 443, &[BEDROCK]);
        assert_eq!(
            obs,
            [Observation::AgentProgram {
                command: "/usr/bin/python3 agent.py".into()
            }]
        );
        // The tool: sh -c, which runs curl, which connects somewhere.
        let obs = w.exec(20, 10, "/bin/sh", &["sh", "-c", "curl x"]);
        assert!(matches!(&obs[..], [Observation::ToolStarted { path, .. }] if path == "/bin/sh"));
        assert!(w.exec(21, 20, "/usr/bin/curl", &["curl", "x"]).is_empty());
        w.processes.fork(21, 22, 7); // a forked helper that does not exec
        w.connect(22, "203.0.113.9", 80, &["x"]);
        let chain = w.tracker.chain(22, &w.processes).expect("in the call");
        assert_eq!(chain.agent.pid, 10);
        let tool = chain.tool.expect("a tool");
        assert_eq!((tool.id.as_str(), tool.process.pid), ("10.1", 20));
        assert!(w.exit(21, 0).is_empty(), "not the root");
        let obs = w.exit(20, 7);
        assert!(
            matches!(
                &obs[..],
                [Observation::ToolEnded {
                    exit_code: Some(7),
                    ..
                }]
            ),
            "{obs:?}"
        );
        let calls = w.tracker.calls(&w.key);
        assert_eq!(calls.len(), 1);
        let c = &calls[0];
        assert_eq!(c.tool.args, ["sh", "-c", "curl x"]);
        assert_eq!(c.execs, ["/usr/bin/curl x"]);
        assert_eq!(c.connections, ["203.0.113.9:80/tcp (x)"]);
        assert_eq!(c.exit_code, Some(7));
        assert!(c.ended.is_some());
        // The agent itself: a chain without a tool.
        assert!(w.tracker.chain(10, &w.processes).unwrap().tool.is_none());
    }

    #[test]
    fn a_process_that_never_called_a_model_spawns_no_tools() {
        let mut w = World::new();
        w.exec(10, 1, "/usr/bin/python3", &["python3", "server.py"]);
        w.connect(10, "93.184.216.34", 443, &["example.com"]);
        assert!(w.exec(20, 10, "/bin/ls", &["ls"]).is_empty());
        assert!(w.tracker.chain(20, &w.processes).is_none());
        assert!(w.tracker.calls(&w.key).is_empty());
    }

    #[test]
    fn a_known_agent_program_is_an_agent_from_its_exec() {
        let mut w = World::new();
        let programs = vec!["/usr/bin/python3 agent.py".to_string()];
        w.processes.exec(ProcessInfo {
            pid: 10,
            ppid: 1,
            comm: String::new(),
            path: "/usr/bin/python3".into(),
            args: vec![],
            cgroup_id: 7,
            exited: false,
        });
        w.feed(
            10,
            Detail::Exec {
                path: "/usr/bin/python3".into(),
                exe: None,
                args: vec!["python3".into(), "agent.py".into()],
                args_truncated: false,
                workload_start: false,
                path_truncated: false,
                uid: 0,
            },
            &programs,
        );
        let obs = w.exec(20, 10, "/bin/ls", &["ls", "/data"]);
        assert!(matches!(&obs[..], [Observation::ToolStarted { .. }]));
        // The same interpreter running something else is not the agent.
        w.exec(30, 1, "/usr/bin/python3", &["python3", "manage.py"]);
        assert!(w.exec(31, 30, "/bin/ls", &["ls"]).is_empty());
        // Forked workers of the agent act as the agent.
        w.processes.fork(10, 11, 7);
        let chain = w.tracker.chain(11, &w.processes).unwrap();
        assert_eq!((chain.agent.pid, chain.tool), (10, None));
    }

    #[test]
    fn a_call_whose_exit_was_lost_is_closed_by_a_sweep() {
        let mut w = World::new();
        w.exec(10, 1, "/usr/bin/python3", &["python3", "agent.py"]);
        w.connect(10, "10.0.0.5", 443, &[BEDROCK]);
        w.exec(20, 10, "/bin/sh", &["sh"]);
        w.exec(30, 10, "/bin/ls", &["ls"]);
        // The table saw 20 go; its exit event never reached the tracker.
        w.processes.exit(20);
        w.tracker.sweep(&w.processes);
        let calls = w.tracker.calls(&w.key);
        assert_eq!(calls.len(), 2);
        assert!(calls[0].end_lost && calls[0].tool.pid == 20, "{calls:?}");
        assert!(
            !calls[1].end_lost && calls[1].ended.is_none(),
            "30 still runs"
        );
        assert_eq!(w.tracker.losses.unfinished, 1);
    }

    #[test]
    fn long_non_ascii_commands_are_cut_on_a_char_boundary() {
        let mut w = World::new();
        w.exec(10, 1, "/usr/bin/node", &["node", "agent.js"]);
        w.connect(10, "10.0.0.5", 443, &["api.openai.com"]);
        w.exec(20, 10, "/bin/sh", &["sh"]);
        let long = "é".repeat(300);
        // `/bin/cat ` is 9 bytes: byte 200 falls inside an `é` (2 bytes each).
        w.exec(21, 20, "/bin/cat", &["cat", &long]);
        let c = &w.tracker.calls(&w.key)[0];
        assert!(c.execs[0].starts_with("/bin/cat é") && c.execs[0].ends_with("..."));
        assert!(c.execs[0].len() <= 203, "{}", c.execs[0].len());
    }

    #[test]
    fn actions_per_call_are_bounded_and_counted() {
        let mut w = World::new();
        w.exec(10, 1, "/usr/bin/node", &["node", "agent.js"]);
        w.connect(10, "10.0.0.5", 443, &["api.openai.com"]);
        w.exec(20, 10, "/bin/sh", &["sh"]);
        for i in 0..40u32 {
            w.connect(20, &format!("10.1.0.{i}"), 80, &[]);
        }
        let c = &w.tracker.calls(&w.key)[0];
        assert_eq!(c.connections.len(), ACTIONS_PER_CALL);
        assert_eq!(c.actions_dropped, 40 - ACTIONS_PER_CALL as u64);
        assert!(c.ended.is_none(), "still running");
    }
}
