//! `unexpected-exec` and `shell-spawned`: a program (path, normalised arguments) outside the
//! baseline, and shells or interpreters started by a workload that never started them.

use std::collections::BTreeMap;

use super::helpers::{add_completeness, mitre, summary, truncate};
use crate::detect::model::{Evidence, Finding, RuleId, Severity};
use crate::profile::{
    model::{ApplicationProfile, ExecEntry},
    normalize::{args_match, glob, normalize_args},
    runtime,
};

pub(super) fn exec_rules(
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

pub(super) fn exec_subject(path: &str, nargs: &[String]) -> String {
    if nargs.is_empty() {
        path.to_string()
    } else {
        format!("{path} {}", nargs.join(" "))
    }
}

pub(super) fn programs_summary(execs: &[ExecEntry]) -> String {
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
pub(super) fn interpreter_name(name: &str) -> Option<Interpreter> {
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
