//! Detection rules: pure functions of (observation, ready profile) -> findings. No I/O, no
//! clocks; the caller adds the pod, the process and the sequence number (see `model::Anomaly`).
//!
//! | rule                         | severity                  | Kubescape      | MITRE ATT&CK                          |
//! |------------------------------|---------------------------|----------------|---------------------------------------|
//! | `unexpected-exec`            | medium                    | R0001 (R0007 for kubectl) | -                          |
//! | `shell-spawned`              | high                      | -              | T1059 (.004 shell, .006 Python, .007 JS, .001 pwsh) |
//! | `unexpected-syscall`         | medium; high for escape/injection/module syscalls and for compat use without a compat baseline | R0003 | T1055.008 / T1547.006 / T1611 for those few |
//! | `unexpected-egress`          | medium                    | R0011          | T1071                                 |
//! | `cloud-metadata-access`      | critical                  | -              | T1552.005                             |
//! | `unexpected-dns`             | medium                    | R0005          | T1071.004                             |
//! | `service-account-token-read` | high                      | R0006          | T1528                                 |
//! | `sensitive-file-read`        | high (shadow, credentials), medium (environ, other) | R0010 (R0008 for environ) | T1003.008 / T1552.001 / T1552 |
//! | `egress-volume-spike`        | high                      | -              | T1041                                 |
//! | `large-payload`              | high                      | -              | T1041                                 |
//!
//! Kubescape ids are those of kubescape/node-agent (`pkg/ruleengine/v1`, e.g.
//! `r0006_unexpected_service_account_token_access.go`) and kubescape/rulelibrary
//! (`pkg/rules/r00xx-*`): R0001 Unexpected process launched, R0003 Unexpected system call,
//! R0005 Unexpected domain request, R0006 Unexpected service account token access, R0007
//! Kubernetes client executed, R0008 Read environment variables from procfs, R0010 Unexpected
//! sensitive file access, R0011 Unexpected egress network traffic. Kubescape has no rule for a
//! shell spawn against a baseline, IMDS access, or traffic volume: those carry none.
//!
//! Matching follows the profile builder exactly (exec: literal-or-glob path, then
//! `normalize_args` and `args_match`; flows: (ip, port, protocol); DNS: the question), with two
//! tolerances that only remove false positives: DNS names compare case-insensitively without
//! the trailing dot, and file paths compare after folding `/var/run` into `/run`, kubelet's
//! `..<timestamp>` atomic-writer directories into `..data` (projected tokens rotate) and
//! `/proc/<pid>` into `/proc/*` (pids change with every restart).

use std::{collections::BTreeMap, net::IpAddr};

use serde::{Deserialize, Serialize};

use super::model::{Evidence, Finding, Mitre, RuleId, Severity};
use crate::{
    attribution::event::{Detail, Event},
    profile::{
        builder::{Direction, FlowDelta, FlowId},
        model::{ApplicationProfile, ExecEntry, Flow, Protocol, Status},
        normalize::{args_match, glob, normalize_args},
        runtime,
    },
};

/// Thresholds of the volume rules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RuleConfig {
    /// A window is a spike when its connections or bytes sent exceed this many times the
    /// baseline's busiest window (scaled to the window length). Default 4.0.
    pub spike_factor: f64,
    /// ...and the window has at least this many connections (so an idle baseline does not page
    /// on a small burst). Default 20.
    pub min_spike_connections: u64,
    /// ...or at least this many bytes sent. Default 1 MiB.
    pub min_spike_bytes: u64,
    /// Bytes sent per connection in a window above this many times the baseline's bytes per
    /// connection is a large payload. Default 8.0.
    pub large_payload_factor: f64,
    /// ...when at least this many bytes per connection. Default 256 KiB.
    pub min_large_payload_bytes: u64,
    /// To a model API, bytes sent per connection above this many times the baseline's is a
    /// prompt-size spike (it replaces the large-payload rule there). Default 4.0.
    pub prompt_factor: f64,
    /// ...when at least this many bytes per connection. Default 64 KiB.
    pub min_prompt_bytes: u64,
}

impl Default for RuleConfig {
    fn default() -> Self {
        Self {
            spike_factor: 4.0,
            min_spike_connections: 20,
            min_spike_bytes: 1 << 20,
            large_payload_factor: 8.0,
            min_large_payload_bytes: 256 << 10,
            prompt_factor: 4.0,
            min_prompt_bytes: 64 << 10,
        }
    }
}

/// Findings for one attributed event of a container whose profile is READY (the caller checks
/// readiness; a profile that is not ready yields nothing here too). A `syscalls` event goes
/// through [`on_syscalls`]; flow summaries, exits and accepts yield nothing (volume is judged
/// per window by [`on_flow_window`]).
pub fn on_event(event: &Event, profile: &ApplicationProfile, cfg: &RuleConfig) -> Vec<Finding> {
    let _ = cfg;
    if !ready(profile) {
        return Vec::new();
    }
    match &event.detail {
        Detail::Exec {
            path,
            exe,
            args,
            args_truncated,
            path_truncated,
            uid,
            ..
        } => exec_rules(
            profile,
            path,
            exe.as_deref(),
            args,
            *args_truncated || *path_truncated,
            *uid,
        ),
        Detail::Connect {
            protocol,
            remote_ip,
            remote_port,
            origin,
            remote_names,
        } => connect_rules(
            profile,
            protocol,
            *remote_ip,
            *remote_port,
            origin,
            remote_names,
        )
        .into_iter()
        .collect(),
        Detail::Dns {
            question,
            qtype,
            rcode,
            server_ip,
            answers,
            ..
        } => {
            let answers: Vec<String> = answers.iter().map(|a| a.ip.to_string()).collect();
            dns_rule(profile, question, qtype, rcode, *server_ip, &answers)
                .into_iter()
                .collect()
        }
        Detail::File {
            path,
            requested,
            pattern,
            open_flags,
            ..
        } => file_rules(profile, path, requested.as_deref(), pattern, *open_flags)
            .into_iter()
            .collect(),
        Detail::Syscalls { native, compat, .. } => on_syscalls(native, compat, profile),
        Detail::Exit { .. } | Detail::Accept { .. } | Detail::Flow { .. } => Vec::new(),
    }
}

/// Syscalls seen (names, per ABI) vs the baseline: one finding per name outside it.
pub fn on_syscalls(
    native: &[String],
    compat: &[String],
    profile: &ApplicationProfile,
) -> Vec<Finding> {
    if !ready(profile) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (abi, seen, baseline) in [
        (Abi::Native, native, &profile.syscalls.native),
        (Abi::Compat, compat, &profile.syscalls.compat),
    ] {
        let mut new: Vec<&str> = seen
            .iter()
            .map(String::as_str)
            .filter(|s| !baseline.iter().any(|b| b == s) && !runtime::is_floor_syscall(s))
            .collect();
        new.sort_unstable();
        new.dedup();
        for name in &new {
            out.push(syscall_finding(abi, name, baseline, &new, profile));
        }
    }
    out
}

/// What one flow did during one rate window vs the baseline's rate stats for that flow. Only
/// egress flows present in the baseline are judged (a new peer is `unexpected-egress`, from its
/// connect event).
pub fn on_flow_window(
    id: FlowId,
    window: FlowDelta,
    window_seconds: u64,
    profile: &ApplicationProfile,
    cfg: &RuleConfig,
) -> Vec<Finding> {
    if !ready(profile) || id.direction != Direction::Egress || window.is_zero() {
        return Vec::new();
    }
    let Some(flow) = profile
        .egress
        .iter()
        .find(|f| same_ip(f.ip, id.ip) && f.port == id.port && f.protocol == id.protocol)
    else {
        return Vec::new();
    };
    let subject = peer_subject(id.ip, id.port, proto_name(id.protocol));
    let mut out = Vec::new();
    out.extend(spike_rule(flow, window, window_seconds, cfg, &subject));
    let catalogue = crate::ai::Catalogue::embedded();
    if super::agent_rules::is_model_api(flow, catalogue) {
        out.extend(super::agent_rules::prompt_rule(
            flow,
            window,
            window_seconds,
            cfg,
            &subject,
            catalogue,
        ));
    } else {
        out.extend(large_payload_rule(
            flow,
            window,
            window_seconds,
            cfg,
            &subject,
        ));
    }
    out
}

fn ready(profile: &ApplicationProfile) -> bool {
    profile.status == Status::Ready
}

// ---- exec ----------------------------------------------------------------------------------

fn exec_rules(
    profile: &ApplicationProfile,
    path: &str,
    exe: Option<&str>,
    args: &[String],
    truncated: bool,
    uid: u32,
) -> Vec<Finding> {
    if runtime::is_runtime_reexec(path, exe, args) {
        return Vec::new();
    }
    let nargs = normalize_args(args);
    let known = profile
        .execs
        .iter()
        .any(|e| glob(&e.path, path) && args_match(&e.args, &nargs));
    if known {
        // Matching a baseline entry means the baseline has this very program: if it is a
        // shell, the baseline has a shell.
        return Vec::new();
    }
    let subject = truncate(&exec_subject(path, &nargs), 512);
    let mut observed = BTreeMap::from([
        ("path".to_string(), truncate(path, 160)),
        ("args".to_string(), truncate(&nargs.join(" "), 160)),
        ("uid".to_string(), uid.to_string()),
    ]);
    if let Some(exe) = exe.filter(|x| *x != path) {
        observed.insert("exe".into(), truncate(exe, 160));
    }
    if truncated {
        observed.insert(
            "truncated".into(),
            "path or arguments were cut by the kernel".into(),
        );
    }
    let mut baseline = BTreeMap::from([("programs".to_string(), programs_summary(&profile.execs))]);
    let same_path: Vec<String> = profile
        .execs
        .iter()
        .filter(|e| glob(&e.path, path))
        .map(|e| e.args.join(" "))
        .collect();
    if !same_path.is_empty() {
        baseline.insert(
            "samePathArgs".into(),
            summary(
                same_path.len(),
                same_path.iter().map(|a| truncate(a, 60)),
                3,
            ),
        );
    }
    add_completeness(&mut baseline, profile, profile.overflow.execs, "execs");

    let mut out = Vec::new();
    let kubectl = basename(path) == "kubectl";
    out.push(Finding {
        rule: RuleId::UnexpectedExec,
        // R0007 is Kubescape's more specific rule for a Kubernetes client run.
        kubescape_rule: Some(if kubectl { "R0007" } else { "R0001" }.into()),
        severity: Severity::Medium,
        // Running an unknown program is no technique by itself; the shell rule carries T1059.
        mitre: None,
        message: if kubectl {
            format!("Kubernetes client {path} ran, which the baseline never ran.")
        } else if same_path.is_empty() {
            format!("Program {path} ran, which the baseline never ran.")
        } else {
            format!("Program {path} ran with arguments the baseline never used.")
        },
        subject: subject.clone(),
        evidence: Evidence {
            baseline: baseline.clone(),
            observed: observed.clone(),
        },
    });

    // The executable actually run counts too: `ln -s /bin/sh x; ./x` is a shell.
    if let Some(kind) = interpreter(path, args).or_else(|| exe.and_then(|x| interpreter(x, args)))
        && !profile
            .execs
            .iter()
            .any(|e| interpreter(&e.path, &e.args).is_some())
    {
        let (technique, name) = kind.mitre();
        let mut baseline = baseline;
        baseline.insert("interpreters".into(), "none".into());
        observed.insert("interpreter".into(), kind.label().into());
        out.push(Finding {
            rule: RuleId::ShellSpawned,
            kubescape_rule: None,
            severity: Severity::High,
            // T1059 Command and Scripting Interpreter, by interpreter family.
            mitre: mitre(technique, name, "Execution"),
            message: format!(
                "{} {path} was spawned in a workload whose baseline runs no shell or interpreter.",
                kind.label_capitalised()
            ),
            subject,
            evidence: Evidence { baseline, observed },
        });
    }
    out
}

fn exec_subject(path: &str, nargs: &[String]) -> String {
    if nargs.is_empty() {
        path.to_string()
    } else {
        format!("{path} {}", nargs.join(" "))
    }
}

fn programs_summary(execs: &[ExecEntry]) -> String {
    let mut paths: Vec<&str> = execs.iter().map(|e| e.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    summary(paths.len(), paths.iter().map(|p| truncate(p, 60)), 4)
}

/// Interpreter families, for the MITRE sub-technique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Interpreter {
    Shell,
    Python,
    JavaScript,
    PowerShell,
    Other,
}

impl Interpreter {
    pub(super) fn mitre(self) -> (&'static str, &'static str) {
        match self {
            Interpreter::Shell => ("T1059.004", "Command and Scripting Interpreter: Unix Shell"),
            Interpreter::Python => ("T1059.006", "Command and Scripting Interpreter: Python"),
            Interpreter::JavaScript => {
                ("T1059.007", "Command and Scripting Interpreter: JavaScript")
            }
            Interpreter::PowerShell => {
                ("T1059.001", "Command and Scripting Interpreter: PowerShell")
            }
            Interpreter::Other => ("T1059", "Command and Scripting Interpreter"),
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Interpreter::Shell => "shell",
            Interpreter::Python => "python interpreter",
            Interpreter::JavaScript => "javascript runtime",
            Interpreter::PowerShell => "powershell",
            Interpreter::Other => "script interpreter",
        }
    }

    fn label_capitalised(self) -> String {
        let l = self.label();
        let mut c = l.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    }
}

/// Shells and interpreters by basename, versioned names included (`python3.11`, `perl5.36`).
fn interpreter_name(name: &str) -> Option<Interpreter> {
    let name = name.trim_start_matches('-'); // login shells: argv[0] `-bash`
    let stem = name
        .trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
        .trim_end_matches('-');
    let known = |n: &str| -> Option<Interpreter> {
        Some(match n {
            "sh" | "bash" | "dash" | "ash" | "zsh" | "ksh" | "mksh" | "pdksh" | "csh" | "tcsh"
            | "fish" | "hush" | "rbash" => Interpreter::Shell,
            "python" | "pypy" => Interpreter::Python,
            "node" | "nodejs" | "deno" | "bun" => Interpreter::JavaScript,
            "pwsh" => Interpreter::PowerShell,
            "perl" | "ruby" | "irb" | "php" | "lua" | "luajit" | "tclsh" => Interpreter::Other,
            _ => return None,
        })
    };
    known(name).or_else(|| known(stem))
}

/// Whether an exec (path, argv) is a shell or interpreter: by the program's basename, or a
/// multi-call binary (busybox, toybox, or busybox re-executing itself through `/proc/self/exe`)
/// invoked as a shell by argv[0] (`sh -c ...`) or by its first argument (`busybox sh`).
pub(super) fn interpreter(path: &str, args: &[String]) -> Option<Interpreter> {
    if let Some(k) = interpreter_name(basename(path)) {
        return Some(k);
    }
    let multicall =
        matches!(basename(path), "busybox" | "toybox") || path.ends_with("/proc/self/exe");
    if !multicall {
        return None;
    }
    let applet = |a: Option<&String>| {
        a.and_then(|a| interpreter_name(basename(a)))
            .filter(|k| *k == Interpreter::Shell)
    };
    applet(args.first()).or_else(|| {
        args.first()
            .is_some_and(|a0| matches!(basename(a0), "busybox" | "toybox"))
            .then(|| applet(args.get(1)))
            .flatten()
    })
}

pub(super) fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

// ---- syscalls ------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abi {
    Native,
    Compat,
}

/// Syscalls that are exploitation or escape primitives rather than ordinary behaviour, with
/// the technique where one fits.
fn dangerous_syscall(name: &str) -> Option<Option<Mitre>> {
    Some(match name {
        "ptrace" | "process_vm_readv" | "process_vm_writev" => mitre(
            "T1055.008",
            "Process Injection: Ptrace System Calls",
            "Defense Evasion",
        ),
        "init_module" | "finit_module" | "delete_module" => mitre(
            "T1547.006",
            "Boot or Logon Autostart Execution: Kernel Modules and Extensions",
            "Persistence",
        ),
        "unshare" | "setns" | "mount" | "fsmount" | "move_mount" | "pivot_root" | "chroot"
        | "open_by_handle_at" => mitre("T1611", "Escape to Host", "Privilege Escalation"),
        "bpf" | "kexec_load" | "kexec_file_load" | "userfaultfd" | "keyctl" | "add_key"
        | "request_key" | "perf_event_open" => None,
        _ => return None,
    })
}

/// Prefix of a compat syscall's subject (`compat:read`).
const COMPAT_SUBJECT: &str = "compat:";

/// The syscall an `unexpected-syscall` subject names, and whether it is the compat ABI's.
pub fn syscall_of_subject(subject: &str) -> (&str, bool) {
    match subject.strip_prefix(COMPAT_SUBJECT) {
        Some(name) => (name, true),
        None => (subject, false),
    }
}

fn syscall_finding(
    abi: Abi,
    name: &str,
    baseline: &[String],
    all_new: &[&str],
    profile: &ApplicationProfile,
) -> Finding {
    let dangerous = dangerous_syscall(name);
    let no_compat_baseline = abi == Abi::Compat && baseline.is_empty();
    let severity = if dangerous.is_some() || no_compat_baseline {
        Severity::High
    } else {
        Severity::Medium
    };
    let message = match abi {
        Abi::Native => format!("System call {name} used, which the baseline never used."),
        Abi::Compat if no_compat_baseline => format!(
            "32-bit compat system call {name} used in a workload whose baseline has no compat \
             system calls at all (a 32-bit program, or an attempt to slip past native-only \
             seccomp filters)."
        ),
        Abi::Compat => {
            format!("32-bit compat system call {name} used, which the baseline never used.")
        }
    };
    let (abi_name, subject) = match abi {
        Abi::Native => ("native", name.to_string()),
        Abi::Compat => ("compat (32-bit)", format!("{COMPAT_SUBJECT}{name}")),
    };
    let mut baseline_ev = BTreeMap::from([
        (
            "native".to_string(),
            count_label(profile.syscalls.native.len(), "syscall"),
        ),
        (
            "compat".to_string(),
            count_label(profile.syscalls.compat.len(), "syscall"),
        ),
    ]);
    add_completeness(&mut baseline_ev, profile, false, "");
    let observed = BTreeMap::from([
        ("syscall".to_string(), name.to_string()),
        ("abi".to_string(), abi_name.to_string()),
        (
            "newInThisSet".to_string(),
            summary(all_new.len(), all_new.iter().map(|s| s.to_string()), 5),
        ),
    ]);
    Finding {
        rule: RuleId::UnexpectedSyscall,
        kubescape_rule: Some("R0003".into()),
        severity,
        mitre: dangerous.flatten(),
        message,
        subject,
        evidence: Evidence {
            baseline: baseline_ev,
            observed,
        },
    }
}

// ---- network -------------------------------------------------------------------------------

/// The cloud instance metadata service: EC2 IMDS over IPv4 (also GCP's and Azure's address)
/// and IPv6.
pub(super) fn is_metadata_service(ip: IpAddr) -> bool {
    const V4: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 169, 254));
    const V6: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254));
    let ip = ip.to_canonical();
    ip == V4 || ip == V6
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

pub(super) fn protocol_from_name(p: &str) -> Option<Protocol> {
    match p {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// `10.0.0.1:443/tcp`, `[fd00:ec2::254]:80/tcp`.
pub(super) fn peer_subject(ip: IpAddr, port: u16, proto: &str) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("{v4}:{port}/{proto}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}/{proto}"),
    }
}

fn flow_subject(f: &Flow) -> String {
    peer_subject(f.ip, f.port, proto_name(f.protocol))
}

fn connect_rules(
    profile: &ApplicationProfile,
    protocol: &str,
    ip: IpAddr,
    port: u16,
    origin: &str,
    names: &[String],
) -> Option<Finding> {
    let proto = protocol_from_name(protocol);
    let known = proto.is_some_and(|p| {
        profile
            .egress
            .iter()
            .any(|f| same_ip(f.ip, ip) && f.port == port && f.protocol == p)
    });
    if known {
        return None;
    }
    let imds = is_metadata_service(ip);
    // A known service at a new address (DNS rotation, CDNs): the container resolved this
    // address from a name the baseline already reaches on this port.
    let same_service = proto.is_some_and(|p| {
        profile.egress.iter().any(|f| {
            f.port == port
                && f.protocol == p
                && f.dns_names
                    .iter()
                    .any(|known| names.iter().any(|n| n.eq_ignore_ascii_case(known)))
        })
    });
    if same_service && !imds {
        return None;
    }
    if proto.is_none() && !imds {
        // The profile only records TCP and UDP: another protocol cannot be judged.
        return None;
    }
    let subject = peer_subject(ip, port, protocol);
    let same_ip_flows: Vec<String> = profile
        .egress
        .iter()
        .filter(|f| same_ip(f.ip, ip))
        .map(flow_subject)
        .collect();
    let mut baseline = BTreeMap::from([(
        "egressPeers".to_string(),
        summary(
            profile.egress.len(),
            profile.egress.iter().map(flow_subject),
            4,
        ),
    )]);
    if !same_ip_flows.is_empty() {
        baseline.insert(
            "sameAddress".into(),
            summary(same_ip_flows.len(), same_ip_flows.iter().cloned(), 4),
        );
    }
    add_completeness(&mut baseline, profile, profile.overflow.egress, "egress");
    let mut observed = BTreeMap::from([
        ("peer".to_string(), subject.clone()),
        ("origin".to_string(), origin.to_string()),
    ]);
    if !names.is_empty() {
        observed.insert(
            "names".into(),
            summary(names.len(), names.iter().map(|n| truncate(n, 80)), 3),
        );
    }
    let loopback = ip.to_canonical().is_loopback();
    if loopback {
        observed.insert("scope".into(), "loopback".into());
    }
    let evidence = Evidence { baseline, observed };
    if imds {
        return Some(Finding {
            rule: RuleId::CloudMetadataAccess,
            kubescape_rule: None,
            severity: Severity::Critical,
            mitre: mitre(
                "T1552.005",
                "Unsecured Credentials: Cloud Instance Metadata API",
                "Credential Access",
            ),
            message: if same_ip_flows.is_empty() {
                format!(
                    "Connection to the cloud instance metadata service ({subject}), which the \
                     baseline never contacted: node credentials may be being harvested."
                )
            } else {
                format!(
                    "Connection to the cloud instance metadata service on {subject}, a port or \
                     protocol the baseline never used there."
                )
            },
            subject,
            evidence,
        });
    }
    let what = match (loopback, origin) {
        (true, _) => "Loopback connection",
        (false, "udp-send") => "UDP traffic",
        _ => "Connection",
    };
    Some(Finding {
        rule: RuleId::UnexpectedEgress,
        kubescape_rule: Some("R0011".into()),
        severity: Severity::Medium,
        // T1071 Application Layer Protocol (Command and Control): a peer outside the baseline is
        // first of all a possible C2 channel; what leaves over it is judged by the volume rules
        // (Kubescape tags R0011 with T1041).
        mitre: mitre("T1071", "Application Layer Protocol", "Command and Control"),
        message: if same_ip_flows.is_empty() {
            format!("{what} to {subject}, a peer the baseline never contacted.")
        } else {
            format!(
                "{what} to {subject}, a port or protocol the baseline never used with that address."
            )
        },
        subject,
        evidence,
    })
}

// ---- dns -----------------------------------------------------------------------------------

/// Whether the baseline resolved `key` (a [`dns_key`]) or reached a peer under that name.
pub(super) fn knows_name(profile: &ApplicationProfile, key: &str) -> bool {
    profile.dns.iter().any(|d| dns_key(&d.name) == key)
        || profile
            .egress
            .iter()
            .any(|f| f.dns_names.iter().any(|n| dns_key(n) == key))
}

pub(super) fn dns_key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn dns_rule(
    profile: &ApplicationProfile,
    question: &str,
    qtype: &str,
    rcode: &str,
    server: IpAddr,
    answers: &[String],
) -> Option<Finding> {
    let key = dns_key(question);
    if key.is_empty() {
        return None;
    }
    if knows_name(profile, &key) {
        return None;
    }
    let mut baseline = BTreeMap::from([(
        "dnsNames".to_string(),
        summary(
            profile.dns.len(),
            profile.dns.iter().map(|d| truncate(&d.name, 60)),
            4,
        ),
    )]);
    add_completeness(&mut baseline, profile, profile.overflow.dns, "dns");
    let mut observed = BTreeMap::from([
        ("name".to_string(), truncate(question, 160)),
        ("qtype".to_string(), qtype.to_string()),
        ("rcode".to_string(), rcode.to_string()),
        ("server".to_string(), server.to_string()),
    ]);
    if !answers.is_empty() {
        observed.insert(
            "answers".into(),
            summary(answers.len(), answers.iter().cloned(), 3),
        );
    }
    Some(Finding {
        rule: RuleId::UnexpectedDns,
        kubescape_rule: Some("R0005".into()),
        severity: Severity::Medium,
        // T1071.004 Application Layer Protocol: DNS: names outside the baseline are how DNS
        // tunnelling and new C2 domains show up.
        mitre: mitre(
            "T1071.004",
            "Application Layer Protocol: DNS",
            "Command and Control",
        ),
        message: format!(
            "DNS lookup of {}, a name the baseline never resolved.",
            truncate(question, 120)
        ),
        subject: key,
        evidence: Evidence { baseline, observed },
    })
}

// ---- files ---------------------------------------------------------------------------------

/// A path in a form stable across restarts and token rotations, for comparison only.
fn canonical_path(path: &str) -> String {
    let path = match path.strip_prefix("/var/run/") {
        Some(rest) => format!("/run/{rest}"),
        None => path.to_string(),
    };
    let in_proc = path.starts_with("/proc/");
    path.split('/')
        .map(|c| {
            if c.len() > 2 && c.starts_with("..") && c.as_bytes()[2].is_ascii_digit() {
                // kubelet's atomic writer: `..2026_11_26_00_00_00.123456789` behind `..data`.
                "..data"
            } else if in_proc
                && (c == "self"
                    || c == "thread-self"
                    || (!c.is_empty() && c.bytes().all(|b| b.is_ascii_digit())))
            {
                "*"
            } else {
                c
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The service-account token volumes: (directory in canonical form, what it holds).
const TOKEN_DIRS: &[(&str, &str)] = &[
    // Before `eks.amazonaws.com`, which is a suffix of it.
    (
        "/run/secrets/pods.eks.amazonaws.com/serviceaccount",
        "EKS Pod Identity token",
    ),
    (
        "/run/secrets/eks.amazonaws.com/serviceaccount",
        "EKS IRSA (IAM Roles for Service Accounts) token",
    ),
    (
        "/run/secrets/kubernetes.io/serviceaccount",
        "Kubernetes service-account token",
    ),
];

fn token_dir(canonical: &str) -> Option<(&'static str, &'static str)> {
    TOKEN_DIRS.iter().copied().find(|(dir, _)| {
        canonical
            .strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Sensitive file kinds: (severity, Kubescape id, technique, short name).
fn file_kind(canonical: &str) -> (Severity, &'static str, Option<Mitre>, &'static str) {
    let credentials = || {
        mitre(
            "T1552.001",
            "Unsecured Credentials: Credentials In Files",
            "Credential Access",
        )
    };
    if canonical == "/etc/shadow" || canonical == "/etc/gshadow" {
        (
            Severity::High,
            "R0010",
            mitre(
                "T1003.008",
                "OS Credential Dumping: /etc/passwd and /etc/shadow",
                "Credential Access",
            ),
            "password hashes",
        )
    } else if canonical.starts_with("/proc/") && canonical.ends_with("/environ") {
        (
            Severity::Medium,
            "R0008",
            // Secrets passed as environment variables: T1552 Unsecured Credentials (no
            // sub-technique covers the process environment).
            mitre("T1552", "Unsecured Credentials", "Credential Access"),
            "process environment",
        )
    } else if canonical.ends_with("/.aws/credentials")
        || canonical.ends_with("/gcloud/application_default_credentials.json")
        || canonical.ends_with("/.azure/msal_token_cache.json")
    {
        (Severity::High, "R0010", credentials(), "cloud credentials")
    } else if canonical.ends_with("/.kube/config") {
        (
            Severity::High,
            "R0010",
            credentials(),
            "cluster credentials",
        )
    } else if canonical.ends_with("/.docker/config.json") {
        (
            Severity::High,
            "R0010",
            credentials(),
            "registry credentials",
        )
    } else {
        (Severity::Medium, "R0010", None, "sensitive file")
    }
}

fn access_mode(flags: u32) -> &'static str {
    match flags & 0o3 {
        0 => "read",
        1 => "write",
        _ => "read-write",
    }
}

fn file_rules(
    profile: &ApplicationProfile,
    path: &str,
    requested: Option<&str>,
    pattern: &str,
    open_flags: u32,
) -> Option<Finding> {
    let canonical = canonical_path(path);
    if profile
        .files
        .iter()
        .any(|f| f.path == path || canonical_path(&f.path) == canonical)
    {
        return None;
    }
    let access = access_mode(open_flags);
    let mut observed = BTreeMap::from([
        ("path".to_string(), truncate(path, 160)),
        ("pattern".to_string(), pattern.to_string()),
        ("access".to_string(), access.to_string()),
    ]);
    if let Some(r) = requested.filter(|r| *r != path) {
        observed.insert("requested".into(), truncate(r, 160));
    }
    let mut baseline = BTreeMap::new();
    add_completeness(&mut baseline, profile, profile.overflow.files, "files");
    let opened = if access == "read" {
        "read"
    } else {
        "opened for writing"
    };
    let file = basename(path);

    if let Some((dir, what)) = token_dir(&canonical) {
        let same_dir: Vec<&str> = profile
            .files
            .iter()
            .filter(|f| token_dir(&canonical_path(&f.path)).is_some_and(|(d, _)| d == dir))
            .map(|f| f.path.as_str())
            .collect();
        baseline.insert(
            "tokenFiles".into(),
            summary(same_dir.len(), same_dir.iter().map(|p| truncate(p, 80)), 3),
        );
        observed.insert("token".into(), what.into());
        return Some(Finding {
            rule: RuleId::ServiceAccountTokenRead,
            kubescape_rule: Some("R0006".into()),
            severity: Severity::High,
            mitre: mitre(
                "T1528",
                "Steal Application Access Token",
                "Credential Access",
            ),
            message: if same_dir.is_empty() {
                format!(
                    "{what} volume {opened} ({file}) by a workload whose baseline never reads it."
                )
            } else {
                format!("{what} volume file {file} {opened}, which the baseline never touched.")
            },
            subject: path.to_string(),
            evidence: Evidence { baseline, observed },
        });
    }

    let (severity, kubescape, technique, kind) = file_kind(&canonical);
    baseline.insert(
        "files".into(),
        summary(
            profile.files.len(),
            profile.files.iter().map(|f| truncate(&f.path, 60)),
            3,
        ),
    );
    observed.insert("kind".into(), kind.into());
    Some(Finding {
        rule: RuleId::SensitiveFileRead,
        kubescape_rule: Some(kubescape.into()),
        severity,
        mitre: technique,
        message: format!(
            "{} {path} {opened}, which the baseline never opened.",
            capitalise(kind)
        ),
        subject: path.to_string(),
        evidence: Evidence { baseline, observed },
    })
}

// ---- volume --------------------------------------------------------------------------------

/// How much more the current window may hold than the baseline's busiest window: the ratio of
/// window lengths, never below 1 (a window shorter than the baseline's could hold that
/// window's whole burst; the baseline cannot tell where in its window the burst was).
fn window_scale(window_seconds: u64, baseline_window_seconds: u64) -> f64 {
    if window_seconds == 0 || baseline_window_seconds == 0 {
        return 1.0;
    }
    (window_seconds as f64 / baseline_window_seconds as f64).max(1.0)
}

/// The baseline's busiest window for a flow: (connections, bytes sent, window length, label).
/// Without closed windows, the learning totals bound any window.
pub(super) fn baseline_max(flow: &Flow) -> (u64, u64, u64, String) {
    let r = &flow.rate;
    if r.windows > 0 {
        (
            r.max_connections_per_window,
            r.max_bytes_sent_per_window,
            r.window_seconds,
            format!("{} windows of {}s", r.windows, r.window_seconds),
        )
    } else {
        (
            flow.connections,
            flow.bytes_sent,
            0,
            "no closed window; learning totals".to_string(),
        )
    }
}

fn spike_rule(
    flow: &Flow,
    window: FlowDelta,
    window_seconds: u64,
    cfg: &RuleConfig,
    subject: &str,
) -> Option<Finding> {
    let (max_conn, max_bytes, base_secs, label) = baseline_max(flow);
    let scale = window_scale(window_seconds, base_secs);
    let allowed_conn = cfg.spike_factor * max_conn as f64 * scale;
    let allowed_bytes = cfg.spike_factor * max_bytes as f64 * scale;
    let conn_spike =
        window.connections >= cfg.min_spike_connections && window.connections as f64 > allowed_conn;
    let bytes_spike =
        window.bytes_sent >= cfg.min_spike_bytes && window.bytes_sent as f64 > allowed_bytes;
    if !conn_spike && !bytes_spike {
        return None;
    }
    let ratio = |seen: u64, max: u64| {
        let base = max as f64 * scale;
        if base == 0.0 {
            "baseline max 0".to_string()
        } else {
            format!("{:.1}x", seen as f64 / base)
        }
    };
    let what = match (conn_spike, bytes_spike) {
        (true, true) => "connections and bytes sent",
        (true, false) => "connections",
        _ => "bytes sent",
    };
    let baseline = BTreeMap::from([
        ("maxConnectionsPerWindow".to_string(), max_conn.to_string()),
        ("maxBytesSentPerWindow".to_string(), fmt_bytes(max_bytes)),
        ("windows".to_string(), label),
    ]);
    let observed = BTreeMap::from([
        (
            "connections".to_string(),
            format!(
                "{} in {window_seconds}s ({})",
                window.connections,
                ratio(window.connections, max_conn)
            ),
        ),
        (
            "bytesSent".to_string(),
            format!(
                "{} in {window_seconds}s ({})",
                fmt_bytes(window.bytes_sent),
                ratio(window.bytes_sent, max_bytes)
            ),
        ),
    ]);
    Some(Finding {
        rule: RuleId::EgressVolumeSpike,
        kubescape_rule: None,
        severity: Severity::High,
        // T1041 Exfiltration Over C2 Channel: data leaves over a channel the workload already
        // has open (a known peer, no new protocol); T1048 would need another protocol.
        mitre: mitre("T1041", "Exfiltration Over C2 Channel", "Exfiltration"),
        message: format!(
            "Egress {what} to {subject} far above the baseline's busiest window (more than \
             {}x).",
            cfg.spike_factor
        ),
        subject: subject.to_string(),
        evidence: Evidence { baseline, observed },
    })
}

/// The baseline's bytes sent per connection on a flow.
pub(super) fn baseline_per_connection(flow: &Flow) -> u64 {
    let r = &flow.rate;
    if r.windows > 0 {
        (r.max_bytes_sent_per_window / r.max_connections_per_window.max(1))
            .max(r.max_bytes_sent_per_connection)
    } else {
        flow.bytes_sent / flow.connections.max(1)
    }
}

fn large_payload_rule(
    flow: &Flow,
    window: FlowDelta,
    window_seconds: u64,
    cfg: &RuleConfig,
    subject: &str,
) -> Option<Finding> {
    let (per_conn, base, evidence) = payload_excess(
        flow,
        window,
        window_seconds,
        cfg.large_payload_factor,
        cfg.min_large_payload_bytes,
    )?;
    Some(Finding {
        rule: RuleId::LargePayload,
        kubescape_rule: None,
        severity: Severity::High,
        // Same reasoning as the spike: exfiltration over an already established channel.
        mitre: mitre("T1041", "Exfiltration Over C2 Channel", "Exfiltration"),
        message: format!(
            "{} sent per connection to {subject}, more than {}x the baseline's {}.",
            fmt_bytes(per_conn),
            cfg.large_payload_factor,
            fmt_bytes(base)
        ),
        subject: subject.to_string(),
        evidence,
    })
}

/// Bytes sent per connection in a window vs the baseline's, when above `factor` times it and
/// at least `min` bytes: (per connection, the baseline's per connection, the evidence).
pub(super) fn payload_excess(
    flow: &Flow,
    window: FlowDelta,
    window_seconds: u64,
    factor: f64,
    min: u64,
) -> Option<(u64, u64, Evidence)> {
    let per_conn = window.bytes_sent / window.connections.max(1);
    let base = baseline_per_connection(flow);
    if per_conn < min || per_conn as f64 <= factor * base as f64 {
        return None;
    }
    let baseline = BTreeMap::from([
        ("bytesSentPerConnection".to_string(), fmt_bytes(base)),
        ("windows".to_string(), baseline_max(flow).3),
    ]);
    let observed = BTreeMap::from([
        ("bytesSentPerConnection".to_string(), fmt_bytes(per_conn)),
        (
            "window".to_string(),
            format!(
                "{} over {} connection(s) in {window_seconds}s",
                fmt_bytes(window.bytes_sent),
                window.connections
            ),
        ),
        (
            "factor".to_string(),
            if base == 0 {
                "baseline sent nothing".to_string()
            } else {
                format!("{:.1}x", per_conn as f64 / base as f64)
            },
        ),
    ]);
    Some((per_conn, base, Evidence { baseline, observed }))
}

// ---- helpers -------------------------------------------------------------------------------

pub(super) fn mitre(technique: &str, name: &str, tactic: &str) -> Option<Mitre> {
    Some(Mitre {
        technique: technique.into(),
        name: name.into(),
        tactic: tactic.into(),
    })
}

/// Notes that the baseline may be missing entries: partial profile, or the cap of the
/// category was hit.
pub(super) fn add_completeness(
    baseline: &mut BTreeMap<String, String>,
    profile: &ApplicationProfile,
    overflowed: bool,
    category: &str,
) {
    if !profile.partial_reasons.is_empty() {
        baseline.insert(
            "partial".into(),
            truncate(&profile.partial_reasons.join("; "), 160),
        );
    }
    if overflowed {
        baseline.insert(
            "overflow".into(),
            format!("the {category} cap was reached while learning: entries are missing"),
        );
    }
}

/// `none`, or `N: a, b, c, ...` with at most `max` examples.
pub(super) fn summary(total: usize, items: impl Iterator<Item = String>, max: usize) -> String {
    if total == 0 {
        return "none".into();
    }
    let shown: Vec<String> = items.take(max).collect();
    let more = if total > shown.len() { ", ..." } else { "" };
    format!("{total}: {}{more}", shown.join(", "))
}

fn count_label(n: usize, what: &str) -> String {
    match n {
        0 => "none".into(),
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

pub(super) use crate::text::truncate;

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

pub(super) fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use std::{net::IpAddr, sync::Arc};

    use proptest::prelude::*;

    use super::*;
    use crate::{
        attribution::event::DnsAnswerRecord,
        attribution::{Attribution, Scope, workload::WorkloadKind},
        profile::model::{ProfileKey, Resolver, Timestamp},
    };

    const T0: Timestamp = Timestamp::lit("2026-11-26T00:00:00Z");
    const T1: Timestamp = Timestamp::lit("2026-11-26T00:00:30Z");
    const T2: Timestamp = Timestamp::lit("2026-11-26T00:02:00Z");

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn learning() -> ApplicationProfile {
        let key = ProfileKey {
            namespace: "ns".into(),
            workload: "api".into(),
            container: "app".into(),
        };
        ApplicationProfile::new(key, WorkloadKind::Deployment, 60, T0)
    }

    fn make_ready(mut p: ApplicationProfile) -> ApplicationProfile {
        assert!(p.advance(T2));
        p
    }

    fn egress(addr: &str, port: u16, protocol: Protocol) -> FlowId {
        FlowId {
            direction: Direction::Egress,
            ip: ip(addr),
            port,
            protocol,
        }
    }

    fn delta(connections: u64, bytes_sent: u64) -> FlowDelta {
        FlowDelta {
            connections,
            bytes_sent,
            bytes_recv: 0,
        }
    }

    /// A ready web API: runs its server and `kill <pid>`, talks to a database, an HTTPS API and
    /// the cluster DNS, reads its service-account token through `..data`.
    fn api_profile() -> ApplicationProfile {
        let mut p = learning();
        p.record_syscalls(&s(&["read", "write", "openat", "connect"]), &[], T1);
        p.record_exec("/app/server", &s(&["/app/server", "--port=8080"]), T1);
        p.record_exec("/bin/kill", &s(&["kill", "41233"]), T1);
        p.record_file(
            "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_26_00_00_00.1/token",
            "/var/run/secrets/kubernetes.io/serviceaccount/",
            T1,
        );
        p.record_file("/proc/1/environ", "/proc/*/environ", T1);
        let resolver = Resolver {
            ip: ip("10.96.0.10"),
            cluster_dns: true,
        };
        p.record_dns(
            "api.example.com",
            &[ip("203.0.113.7")],
            resolver.clone(),
            T1,
        );
        p.record_dns("db.data.svc.cluster.local", &[ip("10.0.0.5")], resolver, T1);
        for (id, windows) in [
            (
                egress("10.0.0.5", 5432, Protocol::Tcp),
                vec![delta(100, 1 << 20), delta(40, 300 << 10)],
            ),
            (
                egress("203.0.113.7", 443, Protocol::Tcp),
                vec![delta(2, 20 << 10)],
            ),
            (egress("10.96.0.10", 53, Protocol::Udp), vec![delta(5, 500)]),
        ] {
            let mut total = FlowDelta::default();
            for w in &windows {
                total.add(*w);
            }
            p.record_flow(id, total, &[], T1);
            for w in windows {
                p.record_window(id, w, 60, T1);
            }
        }
        make_ready(p)
    }

    fn attribution() -> Attribution {
        Attribution {
            scope: Scope::Container,
            namespace: Some("ns".into()),
            pod: Some("api-7d9f8b6c4d-x2x9k".into()),
            pod_uid: None,
            container: Some("app".into()),
            container_id: None,
            workload: Some("api".into()),
            workload_kind: Some(WorkloadKind::Deployment),
            workload_from_api: false,
            labels: None,
            service_account: None,
            cgroup_id: 7,
            cgroup: None,
        }
    }

    fn event(detail: Detail) -> Event {
        Event {
            time: T2.into(),
            kind: detail.kind(),
            node: Arc::from("node-1"),
            who: Arc::new(attribution()),
            pid: Some(4242),
            ppid: Some(1),
            comm: Some("x".into()),
            detail,
        }
    }

    fn exec(path: &str, args: &[&str]) -> Event {
        event(Detail::Exec {
            exe: None,
            path: path.into(),
            args: s(args),
            args_truncated: false,
            workload_start: false,
            path_truncated: false,
            uid: 1000,
        })
    }

    fn connect(addr: &str, port: u16, protocol: &'static str) -> Event {
        event(Detail::Connect {
            protocol,
            remote_ip: ip(addr),
            remote_port: port,
            origin: if protocol == "udp" {
                "udp-send"
            } else {
                "connect"
            },
            remote_names: Vec::new(),
        })
    }

    fn dns(name: &str) -> Event {
        event(Detail::Dns {
            question: name.into(),
            qtype: "A".into(),
            rcode: "NOERROR".into(),
            server_ip: ip("10.96.0.10"),
            transport: "udp",
            answers: vec![DnsAnswerRecord {
                ip: ip("198.51.100.9"),
                names: vec![name.into()],
                ttl: 30,
            }],
        })
    }

    fn file(path: &str, pattern: &str) -> Event {
        event(Detail::sample_file(path, pattern))
    }

    fn rules_of(findings: &[Finding]) -> Vec<RuleId> {
        findings.iter().map(|f| f.rule).collect()
    }

    fn run(p: &ApplicationProfile, e: &Event) -> Vec<Finding> {
        on_event(e, p, &RuleConfig::default())
    }

    // ---- exec ----

    #[test]
    fn exec_matches_through_normalised_args() {
        let p = api_profile();
        assert!(run(&p, &exec("/bin/kill", &["kill", "99812"])).is_empty());
        assert!(run(&p, &exec("/app/server", &["/app/server", "--port=8080"])).is_empty());

        let f = run(&p, &exec("/bin/kill", &["kill", "-9", "41233"]));
        assert_eq!(rules_of(&f), [RuleId::UnexpectedExec]);
        assert_eq!(f[0].subject, "/bin/kill kill -9 *");
        assert_eq!(f[0].kubescape_rule.as_deref(), Some("R0001"));
        assert_eq!(f[0].severity, Severity::Medium);
        assert_eq!(f[0].evidence.baseline["samePathArgs"], "1: kill *");
        assert!(f[0].message.contains("arguments"), "{}", f[0].message);

        let f = run(&p, &exec("/usr/bin/curl", &["curl", "-s", "http://x"]));
        assert_eq!(rules_of(&f), [RuleId::UnexpectedExec]);
        assert_eq!(
            f[0].evidence.baseline["programs"],
            "2: /app/server, /bin/kill"
        );
        assert_eq!(f[0].evidence.observed["path"], "/usr/bin/curl");

        let f = run(
            &p,
            &exec("/usr/local/bin/kubectl", &["kubectl", "get", "secrets"]),
        );
        assert_eq!(f[0].kubescape_rule.as_deref(), Some("R0007"));
    }

    #[test]
    fn baseline_path_globs_match_like_the_builder() {
        let mut p = learning();
        p.execs.push(ExecEntry {
            path: "/tmp/tmp.*/run.sh".into(),
            args: s(&["run.sh"]),
            count: 1,
            first_seen: T1,
            last_seen: T1,
        });
        let p = make_ready(p);
        assert!(run(&p, &exec("/tmp/tmp.Xk3j9QpZ/run.sh", &["run.sh"])).is_empty());
        assert_eq!(
            rules_of(&run(&p, &exec("/tmp/evil/run.sh", &["run.sh"]))),
            [RuleId::UnexpectedExec]
        );
    }

    #[test]
    fn shells_and_interpreters_are_recognised() {
        let p = api_profile();
        let cases: &[(&str, &[&str], &str)] = &[
            ("/bin/bash", &["bash", "-i"], "T1059.004"),
            ("/bin/sh", &["/bin/sh", "-c", "id"], "T1059.004"),
            ("/usr/bin/dash", &["dash"], "T1059.004"),
            ("/bin/ash", &["-ash"], "T1059.004"),
            ("/usr/bin/zsh", &["zsh"], "T1059.004"),
            ("/usr/bin/python3", &["python3", "-c", "1"], "T1059.006"),
            ("/usr/local/bin/python3.11", &["python3.11"], "T1059.006"),
            ("/usr/bin/python3.12", &["python3.12", "x.py"], "T1059.006"),
            ("/usr/bin/node", &["node", "-e", "1"], "T1059.007"),
            ("/usr/local/bin/nodejs18", &["nodejs18"], "T1059.007"),
            ("/usr/bin/perl5.36", &["perl"], "T1059"),
            ("/usr/bin/ruby3.2", &["ruby"], "T1059"),
            ("/usr/bin/php8.2", &["php"], "T1059"),
            ("/usr/bin/pwsh", &["pwsh"], "T1059.001"),
            ("/bin/busybox", &["sh", "-c", "wget x"], "T1059.004"),
            ("/bin/busybox", &["busybox", "ash"], "T1059.004"),
            ("/proc/self/exe", &["sh", "-c", "id"], "T1059.004"),
        ];
        for (path, args, technique) in cases {
            let f = run(&p, &exec(path, args));
            assert_eq!(
                rules_of(&f),
                [RuleId::UnexpectedExec, RuleId::ShellSpawned],
                "{path} {args:?}"
            );
            let shell = &f[1];
            assert_eq!(shell.severity, Severity::High);
            assert_eq!(shell.kubescape_rule, None);
            assert_eq!(
                shell.mitre.as_ref().unwrap().technique,
                *technique,
                "{path}"
            );
            assert_eq!(shell.subject, f[0].subject);
        }
        // Not shells: look-alike names, multi-call binaries running other applets, runc's
        // re-exec.
        let not_shells: &[(&str, &[&str])] = &[
            ("/usr/bin/shasum", &["shasum"]),
            ("/usr/bin/sha256sum", &["sha256sum", "f"]),
            ("/usr/bin/bashbug", &["bashbug"]),
            ("/usr/sbin/php-fpm8.2", &["php-fpm"]),
            ("/usr/bin/pythonista", &["pythonista"]),
            ("/bin/busybox", &["wget", "x"]),
            ("/bin/busybox", &["busybox", "ls"]),
            ("/proc/self/exe", &["runc", "init", "--not-the-runtime"]),
            ("/app/sh-helper", &["sh"]),
        ];
        for (path, args) in not_shells {
            assert_eq!(
                rules_of(&run(&p, &exec(path, args))),
                [RuleId::UnexpectedExec],
                "{path} {args:?}"
            );
        }
    }

    #[test]
    fn no_shell_finding_when_the_baseline_runs_a_shell() {
        let mut p = learning();
        p.record_exec("/bin/sh", &s(&["/bin/sh", "-c", "echo ready"]), T1);
        let p = make_ready(p);
        // Any script through the same shell is baseline (the code collapses to `*`).
        assert!(run(&p, &exec("/bin/sh", &["/bin/sh", "-c", "curl x | sh"])).is_empty());
        // Another interpreter is a new program, but the workload already runs a shell.
        assert_eq!(
            rules_of(&run(&p, &exec("/usr/bin/python3", &["python3"]))),
            [RuleId::UnexpectedExec]
        );
        // Busybox as the baseline shell counts too.
        let mut p = learning();
        p.record_exec("/bin/busybox", &s(&["sh", "-c", "true"]), T1);
        let p = make_ready(p);
        assert_eq!(
            rules_of(&run(&p, &exec("/bin/bash", &["bash"]))),
            [RuleId::UnexpectedExec]
        );
    }

    // ---- syscalls ----

    #[test]
    fn syscalls_outside_the_baseline_per_abi() {
        let p = api_profile();
        assert!(on_syscalls(&s(&["read", "write"]), &[], &p).is_empty());

        // The container runtime's start-up noise is never a finding.
        assert!(on_syscalls(&s(&["tgkill", "sched_yield", "execveat"]), &[], &p).is_empty());
        assert!(run(&p, &exec("/dev/fd/6", &["/usr/sbin/runc", "init"])).is_empty());

        let f = on_syscalls(&s(&["read", "ptrace", "mlock", "mlock", "tgkill"]), &[], &p);
        assert_eq!(f.len(), 2, "one per new name: {f:?}");
        assert_eq!(
            (f[0].subject.as_str(), f[0].severity),
            ("mlock", Severity::Medium)
        );
        assert_eq!(f[0].mitre, None);
        assert_eq!(
            (f[1].subject.as_str(), f[1].severity),
            ("ptrace", Severity::High)
        );
        assert_eq!(f[1].mitre.as_ref().unwrap().technique, "T1055.008");
        assert_eq!(f[1].kubescape_rule.as_deref(), Some("R0003"));
        assert_eq!(f[1].evidence.observed["newInThisSet"], "2: mlock, ptrace");
        assert_eq!(f[1].evidence.baseline["native"], "4 syscalls");

        // A native name in the baseline does not cover its compat use, and a workload with no
        // compat baseline at all says so.
        let f = on_syscalls(&[], &s(&["connect"]), &p);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].subject, "compat:connect");
        assert_eq!(f[0].severity, Severity::High);
        assert!(f[0].message.contains("no compat"), "{}", f[0].message);
        assert_eq!(f[0].evidence.baseline["compat"], "none");

        let mut p = learning();
        p.record_syscalls(&s(&["read"]), &s(&["read"]), T1);
        let p = make_ready(p);
        assert!(on_syscalls(&s(&["read"]), &s(&["read"]), &p).is_empty());
        let f = on_syscalls(&[], &s(&["connect"]), &p);
        assert_eq!(f[0].severity, Severity::Medium);
        assert!(!f[0].message.contains("no compat"));

        // The same through a syscalls event.
        let e = event(Detail::Syscalls {
            native: s(&["setns"]),
            compat: vec![],
            setup_native: vec![],
            setup_compat: vec![],
            is_final: false,
        });
        let f = run(&p, &e);
        assert_eq!(rules_of(&f), [RuleId::UnexpectedSyscall]);
        assert_eq!(f[0].mitre.as_ref().unwrap().technique, "T1611");
    }

    // ---- network ----

    #[test]
    fn egress_peers_outside_the_baseline() {
        let p = api_profile();
        assert!(run(&p, &connect("10.0.0.5", 5432, "tcp")).is_empty());
        assert!(run(&p, &connect("::ffff:10.0.0.5", 5432, "tcp")).is_empty());
        assert!(run(&p, &connect("10.96.0.10", 53, "udp")).is_empty());

        let f = run(&p, &connect("198.51.100.1", 4444, "tcp"));
        assert_eq!(rules_of(&f), [RuleId::UnexpectedEgress]);
        assert_eq!(f[0].subject, "198.51.100.1:4444/tcp");
        assert_eq!(f[0].kubescape_rule.as_deref(), Some("R0011"));
        assert_eq!(f[0].mitre.as_ref().unwrap().technique, "T1071");

        // Known address, other port or protocol.
        let f = run(&p, &connect("10.0.0.5", 22, "tcp"));
        assert_eq!(rules_of(&f), [RuleId::UnexpectedEgress]);
        assert_eq!(
            f[0].evidence.baseline["sameAddress"],
            "1: 10.0.0.5:5432/tcp"
        );
        let f = run(&p, &connect("10.96.0.10", 53, "tcp"));
        assert_eq!(f[0].subject, "10.96.0.10:53/tcp");

        // UDP sends and loopback count too; IPv6 subjects are bracketed.
        let f = run(&p, &connect("198.51.100.1", 53, "udp"));
        assert_eq!(f[0].evidence.observed["origin"], "udp-send");
        let f = run(&p, &connect("127.0.0.1", 9000, "tcp"));
        assert_eq!(rules_of(&f), [RuleId::UnexpectedEgress]);
        assert_eq!(f[0].evidence.observed["scope"], "loopback");
        let f = run(&p, &connect("2001:db8::1", 443, "tcp"));
        assert_eq!(f[0].subject, "[2001:db8::1]:443/tcp");
    }

    #[test]
    fn metadata_service_takes_precedence_over_egress() {
        let p = api_profile();
        for (addr, port, subject) in [
            ("169.254.169.254", 80, "169.254.169.254:80/tcp"),
            ("::ffff:169.254.169.254", 80, "169.254.169.254:80/tcp"),
            ("fd00:ec2::254", 80, "[fd00:ec2::254]:80/tcp"),
        ] {
            let f = run(&p, &connect(addr, port, "tcp"));
            assert_eq!(rules_of(&f), [RuleId::CloudMetadataAccess], "{addr}");
            assert_eq!(f[0].severity, Severity::Critical);
            assert_eq!(f[0].subject, subject);
            assert_eq!(f[0].kubescape_rule, None);
            let m = f[0].mitre.as_ref().unwrap();
            assert_eq!(
                (m.technique.as_str(), m.tactic.as_str()),
                ("T1552.005", "Credential Access")
            );
        }
        // Not the metadata service: a neighbour address is plain egress.
        assert_eq!(
            rules_of(&run(&p, &connect("169.254.169.253", 80, "tcp"))),
            [RuleId::UnexpectedEgress]
        );

        // A baseline that uses IMDS on :80 is quiet there, and still critical elsewhere.
        let mut p = learning();
        p.record_flow(
            egress("169.254.169.254", 80, Protocol::Tcp),
            delta(1, 100),
            &[],
            T1,
        );
        let p = make_ready(p);
        assert!(run(&p, &connect("169.254.169.254", 80, "tcp")).is_empty());
        let f = run(&p, &connect("169.254.169.254", 443, "tcp"));
        assert_eq!(rules_of(&f), [RuleId::CloudMetadataAccess]);
        assert!(f[0].message.contains("port"), "{}", f[0].message);
    }

    #[test]
    fn dns_names_outside_the_baseline() {
        let p = api_profile();
        assert!(run(&p, &dns("api.example.com")).is_empty());
        assert!(run(&p, &dns("API.Example.com.")).is_empty());
        assert!(run(&p, &dns("db.data.svc.cluster.local")).is_empty());
        let f = run(&p, &dns("x7f3k.evil.example"));
        assert_eq!(rules_of(&f), [RuleId::UnexpectedDns]);
        assert_eq!(f[0].subject, "x7f3k.evil.example");
        assert_eq!(f[0].kubescape_rule.as_deref(), Some("R0005"));
        assert_eq!(f[0].mitre.as_ref().unwrap().technique, "T1071.004");
        assert_eq!(f[0].evidence.observed["answers"], "1: 198.51.100.9");
        assert!(
            f[0].evidence.baseline["dnsNames"].starts_with("2: "),
            "{:?}",
            f[0].evidence
        );
    }

    // ---- files ----

    #[test]
    fn service_account_tokens_name_the_token() {
        let p = api_profile();
        // The baseline's token, after a rotation and through the other spelling.
        for path in [
            "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_26_00_00_00.1/token",
            "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_27_09_13_44.42/token",
            "/run/secrets/kubernetes.io/serviceaccount/..data/token",
        ] {
            assert!(
                run(
                    &p,
                    &file(path, "/var/run/secrets/kubernetes.io/serviceaccount/")
                )
                .is_empty(),
                "{path}"
            );
        }
        let cases = [
            (
                "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_26_00_00_00.1/namespace",
                "Kubernetes service-account token",
                false,
            ),
            (
                "/var/run/secrets/eks.amazonaws.com/serviceaccount/..2026_11_26_00_00_00.1/token",
                "EKS IRSA",
                true,
            ),
            (
                "/run/secrets/eks.amazonaws.com/serviceaccount/token",
                "EKS IRSA",
                true,
            ),
            (
                "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
                "EKS Pod Identity",
                true,
            ),
            (
                "/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
                "EKS Pod Identity",
                true,
            ),
        ];
        for (path, token, never) in cases {
            let f = run(&p, &file(path, "x"));
            assert_eq!(rules_of(&f), [RuleId::ServiceAccountTokenRead], "{path}");
            let f = &f[0];
            assert_eq!(f.severity, Severity::High);
            assert_eq!(f.kubescape_rule.as_deref(), Some("R0006"));
            assert_eq!(f.mitre.as_ref().unwrap().technique, "T1528");
            assert!(f.message.starts_with(token), "{path}: {}", f.message);
            assert_eq!(f.subject, path);
            assert_eq!(f.evidence.baseline["tokenFiles"] == "none", never, "{path}");
        }
        // Not a Pod Identity token merely because the name contains the IRSA directory.
        let f = run(
            &p,
            &file("/run/secrets/pods.eks.amazonaws.com/serviceaccount/x", "x"),
        );
        assert!(!f[0].message.contains("IRSA"));
    }

    #[test]
    fn sensitive_files_by_kind() {
        let p = api_profile();
        // The baseline read /proc/1/environ: another pid's environ is the same behaviour.
        assert!(run(&p, &file("/proc/77/environ", "/proc/*/environ")).is_empty());
        assert!(run(&p, &file("/proc/1/environ", "/proc/*/environ")).is_empty());

        let cases = [
            ("/etc/shadow", Severity::High, "R0010", Some("T1003.008")),
            ("/etc/gshadow", Severity::High, "R0010", Some("T1003.008")),
            (
                "/root/.aws/credentials",
                Severity::High,
                "R0010",
                Some("T1552.001"),
            ),
            (
                "/home/app/.config/gcloud/application_default_credentials.json",
                Severity::High,
                "R0010",
                Some("T1552.001"),
            ),
            (
                "/root/.kube/config",
                Severity::High,
                "R0010",
                Some("T1552.001"),
            ),
            (
                "/root/.docker/config.json",
                Severity::High,
                "R0010",
                Some("T1552.001"),
            ),
            ("/etc/custom-secret", Severity::Medium, "R0010", None),
        ];
        for (path, severity, kubescape, technique) in cases {
            let f = run(&p, &file(path, path));
            assert_eq!(rules_of(&f), [RuleId::SensitiveFileRead], "{path}");
            assert_eq!(f[0].severity, severity, "{path}");
            assert_eq!(f[0].kubescape_rule.as_deref(), Some(kubescape), "{path}");
            assert_eq!(
                f[0].mitre.as_ref().map(|m| m.technique.as_str()),
                technique,
                "{path}"
            );
            assert_eq!(f[0].subject, path);
        }

        // Environ in a workload that never read one.
        let fresh = make_ready(learning());
        let f = run(&fresh, &file("/proc/1/environ", "/proc/*/environ"));
        assert_eq!(rules_of(&f), [RuleId::SensitiveFileRead]);
        assert_eq!(f[0].severity, Severity::Medium);
        assert_eq!(f[0].kubescape_rule.as_deref(), Some("R0008"));

        // Opening for writing is said so.
        let mut e = file("/etc/shadow", "/etc/shadow");
        if let Detail::File { open_flags, .. } = &mut e.detail {
            *open_flags = 0o1 | 0o1000;
        }
        let f = run(&p, &e);
        assert_eq!(f[0].evidence.observed["access"], "write");
        assert!(f[0].message.contains("writing"), "{}", f[0].message);
    }

    // ---- volume ----

    fn window(p: &ApplicationProfile, id: FlowId, d: FlowDelta, secs: u64) -> Vec<Finding> {
        on_flow_window(id, d, secs, p, &RuleConfig::default())
    }

    #[test]
    fn volume_spikes_scale_with_the_window_and_respect_minimums() {
        let p = api_profile();
        let db = egress("10.0.0.5", 5432, Protocol::Tcp); // max 100 conns, 1 MiB per 60s
        assert!(window(&p, db, delta(100, 1 << 20), 60).is_empty());
        assert!(
            window(&p, db, delta(400, 1 << 20), 60).is_empty(),
            "4x is not above 4x"
        );

        let f = window(&p, db, delta(401, 1 << 20), 60);
        assert_eq!(rules_of(&f), [RuleId::EgressVolumeSpike]);
        assert_eq!(f[0].subject, "10.0.0.5:5432/tcp");
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].mitre.as_ref().unwrap().technique, "T1041");
        assert!(f[0].message.contains("connections"), "{}", f[0].message);
        assert_eq!(f[0].evidence.observed["connections"], "401 in 60s (4.0x)");
        assert_eq!(f[0].evidence.baseline["maxConnectionsPerWindow"], "100");

        // Bytes: 5 MiB over 100 connections in a minute (50 KiB each: not a large payload).
        let f = window(&p, db, delta(100, 5 << 20), 60);
        assert_eq!(rules_of(&f), [RuleId::EgressVolumeSpike]);
        assert!(f[0].message.contains("bytes sent"), "{}", f[0].message);

        // A 5-minute window may hold 5 baseline windows.
        assert!(window(&p, db, delta(1000, 1 << 20), 300).is_empty());
        assert_eq!(
            rules_of(&window(&p, db, delta(2001, 1 << 20), 300)),
            [RuleId::EgressVolumeSpike]
        );
        // A shorter window is not scaled down: the baseline's burst may fit in it.
        assert!(window(&p, db, delta(400, 1 << 20), 10).is_empty());

        // An idle baseline (5 DNS packets a minute) does not page on a small burst...
        let dns = egress("10.96.0.10", 53, Protocol::Udp);
        // (19 is more than 4x 5, but fewer than 20 connections)...
        assert!(window(&p, dns, delta(19, 1900), 60).is_empty());
        // ...but does on a real one.
        assert_eq!(
            rules_of(&window(&p, dns, delta(21, 2100), 60)),
            [RuleId::EgressVolumeSpike]
        );
    }

    #[test]
    fn large_payloads_per_connection() {
        let p = api_profile();
        // 203.0.113.7:443: 2 connections, 20 KiB in the busiest window: 10 KiB each.
        let api = egress("203.0.113.7", 443, Protocol::Tcp);
        assert!(
            window(&p, api, delta(1, 80 << 10), 60).is_empty(),
            "8x, below 256 KiB"
        );
        let f = window(&p, api, delta(1, 300 << 10), 60);
        assert_eq!(rules_of(&f), [RuleId::LargePayload]);
        assert_eq!(f[0].subject, "203.0.113.7:443/tcp");
        assert_eq!(f[0].evidence.baseline["bytesSentPerConnection"], "10.0 KiB");
        assert_eq!(
            f[0].evidence.observed["bytesSentPerConnection"],
            "300.0 KiB"
        );
        // Bytes on a connection opened in an earlier window count against one connection.
        assert_eq!(
            rules_of(&window(&p, api, delta(0, 300 << 10), 60)),
            [RuleId::LargePayload]
        );
        // Many connections sharing the bytes are not a large payload.
        assert!(window(&p, api, delta(2, 300 << 10), 60).is_empty());

        // Both at once: a 2 MiB upload in one connection to a peer that gets 10 KiB requests.
        let f = window(&p, api, delta(1, 2 << 20), 60);
        assert_eq!(
            rules_of(&f),
            [RuleId::EgressVolumeSpike, RuleId::LargePayload]
        );

        // Without closed windows the learning totals stand in.
        let mut q = learning();
        let id = egress("198.51.100.4", 443, Protocol::Tcp);
        q.record_flow(id, delta(10, 100 << 10), &[], T1);
        let q = make_ready(q);
        assert_eq!(q.egress[0].rate.windows, 0);
        assert!(window(&q, id, delta(1, 80 << 10), 60).is_empty());
        assert_eq!(
            rules_of(&window(&q, id, delta(1, 300 << 10), 60)),
            [RuleId::LargePayload]
        );
    }

    #[test]
    fn windows_of_unknown_peers_and_ingress_are_not_judged() {
        let p = api_profile();
        assert!(
            window(
                &p,
                egress("198.51.100.1", 443, Protocol::Tcp),
                delta(10_000, 1 << 30),
                60
            )
            .is_empty()
        );
        let ingress = FlowId {
            direction: Direction::Ingress,
            ..egress("10.0.0.5", 5432, Protocol::Tcp)
        };
        assert!(window(&p, ingress, delta(10_000, 1 << 30), 60).is_empty());
        // Same address and port, other protocol: not that flow.
        assert!(
            window(
                &p,
                egress("10.0.0.5", 5432, Protocol::Udp),
                delta(10_000, 1 << 30),
                60
            )
            .is_empty()
        );
    }

    #[test]
    fn a_profile_that_is_not_ready_yields_nothing() {
        let mut p = api_profile();
        p.status = Status::Learning;
        for e in [
            exec("/bin/bash", &["bash"]),
            connect("169.254.169.254", 80, "tcp"),
            dns("evil.example"),
            file("/etc/shadow", "/etc/shadow"),
        ] {
            assert!(run(&p, &e).is_empty());
        }
        assert!(on_syscalls(&s(&["ptrace"]), &s(&["read"]), &p).is_empty());
        assert!(
            window(
                &p,
                egress("10.0.0.5", 5432, Protocol::Tcp),
                delta(10_000, 1 << 30),
                60
            )
            .is_empty()
        );
    }

    #[test]
    fn rule_config_defaults_and_partial_config() {
        let c = RuleConfig::default();
        assert_eq!(c.spike_factor, 4.0);
        assert_eq!(c.min_spike_connections, 20);
        assert_eq!(c.min_spike_bytes, 1024 * 1024);
        assert_eq!(c.large_payload_factor, 8.0);
        assert_eq!(c.min_large_payload_bytes, 256 * 1024);
        let c: RuleConfig = serde_json::from_str(r#"{"spikeFactor": 10}"#).unwrap();
        assert_eq!((c.spike_factor, c.min_spike_connections), (10.0, 20));
    }

    #[test]
    fn evidence_stays_short() {
        let mut p = learning();
        for i in 0..200 {
            p.record_exec(&format!("/opt/tool{i}"), &s(&["t"]), T1);
        }
        let p = make_ready(p);
        let long = "a".repeat(5000);
        let f = run(&p, &exec("/usr/bin/x", &["x", &long]));
        for v in f[0]
            .evidence
            .baseline
            .values()
            .chain(f[0].evidence.observed.values())
        {
            assert!(v.len() <= 300, "{v}");
        }
        assert!(f[0].evidence.baseline["programs"].starts_with("200: "));
        assert!(f[0].evidence.baseline["programs"].ends_with(", ..."));
    }

    // ---- property: normal behaviour of a ready workload is silent ----

    /// Parts of an argument: written text, or something generated that normalisation collapses.
    #[derive(Debug, Clone, Copy)]
    enum Piece {
        Lit(&'static str),
        Pid,
        Uuid,
        Mixed,
        Code,
    }

    const TEMPLATES: &[(&str, &[&[Piece]])] = {
        use Piece::*;
        &[
            ("/bin/kill", &[&[Lit("kill")], &[Pid]]),
            (
                "/app/server",
                &[
                    &[Lit("/app/server")],
                    &[Lit("--port=8080")],
                    &[Lit("--id="), Uuid],
                ],
            ),
            ("/bin/sh", &[&[Lit("/bin/sh")], &[Lit("-c")], &[Code]]),
            ("/bin/busybox", &[&[Lit("sh")], &[Lit("-c")], &[Code]]),
            (
                "/usr/local/bin/python3.11",
                &[
                    &[Lit("python3.11")],
                    &[Lit("/tmp/tmp."), Mixed, Lit("/job.py")],
                    &[Lit("--batch="), Pid],
                ],
            ),
            ("/usr/bin/node", &[&[Lit("node")], &[Lit("-e")], &[Code]]),
            (
                "/usr/bin/curl",
                &[
                    &[Lit("curl")],
                    &[Lit("-s")],
                    &[Lit("http://10.0.0.5:8080/healthz")],
                ],
            ),
            (
                "/app/worker",
                &[&[Lit("worker")], &[Lit("--shard")], &[Lit("3")]],
            ),
        ]
    };

    /// Concrete argv for a template from a seed: dynamic parts differ between seeds.
    fn instantiate(template: &[&[Piece]], seed: u64) -> Vec<String> {
        let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        template
            .iter()
            .map(|arg| {
                arg.iter()
                    .map(|piece| match piece {
                        Piece::Lit(s) => s.to_string(),
                        Piece::Pid => (10_000 + next() % 4_000_000).to_string(),
                        Piece::Uuid => {
                            let a = next();
                            let b = next();
                            format!(
                                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                                a >> 32,
                                (a >> 16) & 0xffff,
                                a & 0xffff,
                                b >> 48,
                                b & 0xffff_ffff_ffff
                            )
                        }
                        Piece::Mixed => {
                            let letters: String = (0..3)
                                .map(|_| (b'a' + (next() % 26) as u8) as char)
                                .collect();
                            format!("{letters}{:06}", next() % 1_000_000)
                        }
                        Piece::Code => {
                            let cmds = ["echo ok", "ls /tmp", "id; uname -a", "1+1", "print(1)"];
                            cmds[(next() % cmds.len() as u64) as usize].to_string()
                        }
                    })
                    .collect()
            })
            .collect()
    }

    const SYSCALLS: &[&str] = &[
        "read",
        "write",
        "openat",
        "close",
        "mmap",
        "futex",
        "epoll_wait",
        "connect",
        "accept4",
        "sendto",
        "recvfrom",
        "clone3",
        "execve",
        "ptrace",
        "mount",
        "setns",
    ];
    const NAMES: &[&str] = &[
        "api.example.com",
        "db.data.svc.cluster.local",
        "s3.eu-west-1.amazonaws.com",
        "metadata.google.internal",
    ];
    const FILES: &[&str] = &[
        "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_26_00_00_00.1/token",
        "/run/secrets/eks.amazonaws.com/serviceaccount/token",
        "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
        "/etc/shadow",
        "/proc/1/environ",
        "/root/.aws/credentials",
    ];
    const IPS: &[&str] = &[
        "10.0.0.5",
        "10.96.0.10",
        "203.0.113.7",
        "127.0.0.1",
        "169.254.169.254",
        "fd00:ec2::254",
        "2001:db8::10",
        "::1",
    ];

    #[derive(Debug, Clone)]
    struct FlowPlan {
        ip: IpAddr,
        port: u16,
        protocol: Protocol,
        windows: Vec<(u64, u64)>,
        window_seconds: u64,
    }

    #[derive(Debug, Clone)]
    struct Plan {
        native: Vec<&'static str>,
        compat: Vec<&'static str>,
        execs: Vec<(usize, Vec<u64>)>,
        names: Vec<&'static str>,
        files: Vec<&'static str>,
        egress: Vec<FlowPlan>,
    }

    fn arb_flow_plan() -> impl Strategy<Value = FlowPlan> {
        (
            prop::sample::select(IPS),
            prop::sample::select(vec![53u16, 80, 443, 5432]),
            prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp)],
            prop::collection::vec((0u64..500, 0u64..(64 << 20)), 0..4),
            prop::sample::select(vec![30u64, 60, 300]),
        )
            .prop_map(|(ip, port, protocol, windows, window_seconds)| FlowPlan {
                ip: ip.parse().unwrap(),
                port,
                protocol,
                windows,
                window_seconds,
            })
    }

    fn arb_plan() -> impl Strategy<Value = Plan> {
        (
            prop::sample::subsequence(SYSCALLS, 0..SYSCALLS.len()),
            prop::sample::subsequence(SYSCALLS, 0..4),
            prop::collection::vec(
                (
                    0..TEMPLATES.len(),
                    prop::collection::vec(any::<u64>(), 1..3),
                ),
                0..5,
            ),
            prop::sample::subsequence(NAMES, 0..NAMES.len()),
            prop::sample::subsequence(FILES, 0..FILES.len()),
            prop::collection::vec(arb_flow_plan(), 0..5),
        )
            .prop_map(|(native, compat, execs, names, files, egress)| Plan {
                native,
                compat,
                execs,
                names,
                files,
                egress,
            })
    }

    /// Learns a profile from the plan with the real builder, then freezes it.
    fn learn(plan: &Plan) -> ApplicationProfile {
        let mut p = learning();
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        p.record_syscalls(&own(&plan.native), &own(&plan.compat), T1);
        for (t, seeds) in &plan.execs {
            let (path, template) = TEMPLATES[*t];
            for seed in seeds {
                p.record_exec(path, &instantiate(template, *seed), T1);
            }
        }
        for name in &plan.names {
            let resolver = Resolver {
                ip: ip("10.96.0.10"),
                cluster_dns: true,
            };
            p.record_dns(name, &[ip("203.0.113.7")], resolver, T1);
        }
        for f in &plan.files {
            p.record_file(f, "pattern", T1);
        }
        for f in &plan.egress {
            let id = FlowId {
                direction: Direction::Egress,
                ip: f.ip,
                port: f.port,
                protocol: f.protocol,
            };
            let mut total = delta(1, 0);
            for (c, b) in &f.windows {
                total.add(delta(*c, *b));
            }
            p.record_flow(id, total, &[], T1);
            for (c, b) in &f.windows {
                p.record_window(id, delta(*c, *b), f.window_seconds, T1);
            }
        }
        make_ready(p)
    }

    /// A window within a flow's rate stats: no more connections, bytes, or bytes per
    /// connection than the baseline's busiest window (or its totals, without windows).
    fn window_within(flow: &Flow, a: u64, b: u64) -> FlowDelta {
        // The brief's formulas, written out independently of the rule's helpers.
        let r = &flow.rate;
        let (max_conn, max_bytes, per_conn) = if r.windows > 0 {
            (
                r.max_connections_per_window,
                r.max_bytes_sent_per_window,
                r.max_bytes_sent_per_window / r.max_connections_per_window.max(1),
            )
        } else {
            (
                flow.connections,
                flow.bytes_sent,
                flow.bytes_sent / flow.connections.max(1),
            )
        };
        let connections = if max_conn == 0 { 0 } else { a % (max_conn + 1) };
        let cap = max_bytes.min(per_conn.saturating_mul(connections.max(1)));
        let bytes_sent = if cap == 0 { 0 } else { b % (cap + 1) };
        FlowDelta {
            connections,
            bytes_sent,
            bytes_recv: b,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn normal_behaviour_of_a_ready_workload_is_silent(
            plan in arb_plan(),
            replay_seeds in prop::collection::vec(any::<u64>(), 8),
            picks in prop::collection::vec(any::<u64>(), 8),
            secs in 1u64..900,
        ) {
            let p = learn(&plan);
            let cfg = RuleConfig::default();
            let mut events = Vec::new();
            // Its programs, with fresh dynamic arguments.
            for (i, (t, _)) in plan.execs.iter().enumerate() {
                let (path, template) = TEMPLATES[*t];
                let seed = replay_seeds[i % replay_seeds.len()] ^ i as u64;
                events.push(exec(path, &instantiate(template, seed).iter().map(String::as_str).collect::<Vec<_>>()));
            }
            // Its peers, names and files, and events no rule judges.
            for f in &p.egress {
                let proto = proto_name(f.protocol);
                events.push(connect(&f.ip.to_string(), f.port, proto));
            }
            for d in &p.dns {
                events.push(dns(&d.name));
            }
            for f in &p.files {
                events.push(file(&f.path, &f.pattern));
            }
            events.push(event(Detail::Exit { exit_code: Some(0), signal: None }));
            events.push(event(Detail::Accept {
                protocol: "tcp",
                remote_ip: ip("198.51.100.1"),
                local_ip: ip("10.0.0.9"),
                local_port: 8080,
            }));
            // Subsets of its syscalls, as sets and as an event.
            let subset = |v: &[String], pick: u64| -> Vec<String> {
                v.iter().enumerate().filter(|(i, _)| pick >> (i % 64) & 1 == 1).map(|(_, s)| s.clone()).collect()
            };
            let native = subset(&p.syscalls.native, picks[0]);
            let compat = subset(&p.syscalls.compat, picks[1]);
            prop_assert!(on_syscalls(&native, &compat, &p).is_empty());
            events.push(event(Detail::Syscalls {
                native,
                compat,
                setup_native: vec![],
                setup_compat: vec![],
                is_final: true,
            }));

            for e in &events {
                let f = on_event(e, &p, &cfg);
                prop_assert!(f.is_empty(), "{:?} -> {:?}", e.detail, f);
            }

            // Windows within each flow's rate stats, over any window length.
            for (i, f) in p.egress.iter().enumerate() {
                let id = FlowId { direction: Direction::Egress, ip: f.ip, port: f.port, protocol: f.protocol };
                let w = window_within(f, picks[(i + 2) % 8], picks[(i + 3) % 8]);
                let found = on_flow_window(id, w, secs, &p, &cfg);
                prop_assert!(found.is_empty(), "{f:?} window {w:?} over {secs}s -> {found:?}");
                let w = window_within(f, u64::MAX, u64::MAX);
                let found = on_flow_window(id, w, f.rate.window_seconds, &p, &cfg);
                prop_assert!(found.is_empty(), "{f:?} busiest window {w:?} -> {found:?}");
            }
        }

        /// Whatever happens, a profile that is not ready yields nothing.
        #[test]
        fn nothing_before_ready(plan in arb_plan(), t in 0..TEMPLATES.len(), seed in any::<u64>()) {
            let mut p = learn(&plan);
            p.status = Status::Learning;
            let cfg = RuleConfig::default();
            let (path, template) = TEMPLATES[t];
            let argv = instantiate(template, seed);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            for e in [
                exec("/bin/bash", &["bash"]),
                exec(path, &argv),
                connect("169.254.169.254", 80, "tcp"),
                connect("198.51.100.1", 4444, "tcp"),
                dns("evil.example"),
                file("/etc/shadow", "/etc/shadow"),
            ] {
                prop_assert!(on_event(&e, &p, &cfg).is_empty());
            }
            prop_assert!(on_syscalls(&s(&["kexec_load"]), &s(&["read"]), &p).is_empty());
            let id = egress("10.0.0.5", 5432, Protocol::Tcp);
            prop_assert!(on_flow_window(id, delta(1 << 20, 1 << 40), 60, &p, &cfg).is_empty());
        }
    }

    #[test]
    fn a_known_service_at_a_new_address_is_not_unexpected() {
        let mut p = learning();
        p.record_flow(
            egress("203.0.113.7", 443, Protocol::Tcp),
            delta(1, 10),
            &s(&["api.example.com"]),
            T1,
        );
        let p = make_ready(p);
        let connect = |addr: &str, port: u16, names: &[&str]| {
            event(Detail::Connect {
                protocol: "tcp",
                remote_ip: ip(addr),
                remote_port: port,
                origin: "connect",
                remote_names: s(names),
            })
        };
        let cfg = RuleConfig::default();
        assert!(
            on_event(
                &connect("203.0.113.99", 443, &["API.example.com"]),
                &p,
                &cfg
            )
            .is_empty()
        );
        let new_name = on_event(&connect("203.0.113.99", 443, &["evil.example"]), &p, &cfg);
        assert_eq!(new_name.len(), 1);
        assert_eq!(new_name[0].rule, RuleId::UnexpectedEgress);
        let new_port = on_event(
            &connect("203.0.113.99", 8443, &["api.example.com"]),
            &p,
            &cfg,
        );
        assert_eq!(new_port.len(), 1, "same name, other port: a new service");
    }
}
