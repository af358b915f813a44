//! `service-account-token-read` and `sensitive-file-read`: a watched file read that the
//! baseline does not have.

use std::collections::BTreeMap;

use super::{
    exec::basename,
    helpers::{add_completeness, capitalise, mitre, summary, truncate},
};
use crate::detect::model::{Evidence, Finding, Mitre, RuleId, Severity};
use crate::profile::model::ApplicationProfile;

/// A path in a form stable across restarts and token rotations, for comparison only.
pub(super) fn canonical_path(path: &str) -> String {
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
pub(super) const TOKEN_DIRS: &[(&str, &str)] = &[
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

pub(super) fn token_dir(canonical: &str) -> Option<(&'static str, &'static str)> {
    TOKEN_DIRS.iter().copied().find(|(dir, _)| {
        canonical
            .strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Sensitive file kinds: (severity, Kubescape id, technique, short name).
pub(super) fn file_kind(canonical: &str) -> (Severity, &'static str, Option<Mitre>, &'static str) {
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

pub(super) fn access_mode(flags: u32) -> &'static str {
    match flags & 0o3 {
        0 => "read",
        1 => "write",
        _ => "read-write",
    }
}

pub(super) fn file_rules(
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
