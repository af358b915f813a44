//! Sensitive path patterns: which file opens are reported. A pattern is a path prefix, or
//! `prefix*/suffix` where `*` matches any run of characters (including `/`):
//! `/proc/*/environ`, `*/.aws/credentials`.
//!
//! Each pattern has an *anchor*: one path component the kernel looks for near the opened file
//! (within [`MAX_ANCHOR_DEPTH`] components of the leaf) before it copies the path out - the
//! first component after `*`, or the last component of a plain prefix. The exact match is made
//! here, on the full resolved path.

use std::fmt;

use sensor_common::limits::MAX_ANCHOR_DEPTH;

/// Longest pattern accepted.
const MAX_PATTERN_LEN: usize = 256;

/// Paths a workload rarely has a reason to open, and an attacker often does. Both `/var/run` and
/// `/run` spellings: in many images `/var/run` is a symlink to `/run`, and the kernel reports
/// the resolved path.
pub const DEFAULT_PATTERNS: &[&str] = &[
    // Kubernetes service-account token, CA and namespace.
    "/var/run/secrets/kubernetes.io/serviceaccount/",
    "/run/secrets/kubernetes.io/serviceaccount/",
    // EKS IAM Roles for Service Accounts (IRSA) web-identity token.
    "/var/run/secrets/eks.amazonaws.com/serviceaccount/",
    "/run/secrets/eks.amazonaws.com/serviceaccount/",
    // EKS Pod Identity token.
    "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/",
    "/run/secrets/pods.eks.amazonaws.com/serviceaccount/",
    "/etc/shadow",
    "/etc/gshadow",
    // Another process's environment (secrets passed as env vars).
    "/proc/*/environ",
    // Cloud and cluster credential files in any home directory.
    "*/.aws/credentials",
    "*/gcloud/application_default_credentials.json",
    "*/.azure/msal_token_cache.json",
    "*/.kube/config",
    "*/.docker/config.json",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensitivePattern {
    pub text: String,
    pub prefix: String,
    pub suffix: String,
    /// Component the kernel looks for, and how far from the leaf it may be (0 = the leaf).
    pub anchor: String,
    pub anchor_depth: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("sensitive path pattern `{0}` must start with `/` or `*`")]
    NotAbsolute(String),
    #[error("sensitive path pattern `{0}` has more than one `*`")]
    TooManyWildcards(String),
    #[error(
        "sensitive path pattern `{0}`: `*` must be followed by `/` (it stands for whole path components)"
    )]
    PartialWildcard(String),
    #[error("sensitive path pattern `{0}` names no path component to look for")]
    NoComponent(String),
    #[error("sensitive path pattern `{0}`: at most {max} components may follow `*`", max = MAX_ANCHOR_DEPTH)]
    TooDeep(String),
    #[error("sensitive path pattern `{pattern}` is longer than {max} bytes")]
    TooLong { pattern: String, max: usize },
    #[error("sensitive path pattern is empty")]
    Empty,
}

impl SensitivePattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong {
                pattern: text.to_string(),
                max: MAX_PATTERN_LEN,
            });
        }
        if !text.starts_with('/') && !text.starts_with('*') {
            return Err(PatternError::NotAbsolute(text.to_string()));
        }
        let (prefix, suffix) = text.split_once('*').unwrap_or((text, ""));
        if suffix.contains('*') {
            return Err(PatternError::TooManyWildcards(text.to_string()));
        }
        let has_wildcard = text.contains('*');
        if has_wildcard && !suffix.is_empty() && !suffix.starts_with('/') {
            return Err(PatternError::PartialWildcard(text.to_string()));
        }
        let components = |s: &str| {
            s.split('/')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let suffix_parts = components(suffix);
        let (anchor, anchor_depth) = match suffix_parts.first() {
            // `*/.aws/credentials`: `.aws` sits exactly one above the leaf.
            Some(first) => (first.clone(), suffix_parts.len() as u32 - 1),
            // A directory prefix: files anywhere in the last few levels below it.
            None => match components(prefix).last() {
                Some(last) => (last.clone(), MAX_ANCHOR_DEPTH as u32 - 1),
                None => return Err(PatternError::NoComponent(text.to_string())),
            },
        };
        if anchor_depth as usize >= MAX_ANCHOR_DEPTH {
            return Err(PatternError::TooDeep(text.to_string()));
        }
        Ok(Self {
            text: text.to_string(),
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
            anchor,
            anchor_depth,
        })
    }

    /// The same test the kernel makes, for user-space checks and tests.
    pub fn matches(&self, path: &str) -> bool {
        path.len() >= self.prefix.len() + self.suffix.len()
            && path.starts_with(&self.prefix)
            && path.ends_with(&self.suffix)
    }

    /// Key of this pattern's anchor in the kernel map.
    pub fn anchor_hash(&self) -> u32 {
        sensor_common::anchor_hash(self.anchor.as_bytes())
    }
}

/// A resolved path as profiles and rules name it: kubelet's atomic-writer data directories
/// (`..2026_12_07_21_15_31.123456789`, which `..data` and each key's symlink point into, renamed
/// at every token rotation) are dropped, so `/var/run/secrets/.../serviceaccount/token` stays
/// one path across rotations.
pub fn canonical_path(resolved: &str) -> String {
    if !resolved.contains("/..") {
        return resolved.to_string();
    }
    let kept: Vec<&str> = resolved
        .split('/')
        .filter(|c| !is_atomic_writer_dir(c))
        .collect();
    kept.join("/")
}

/// `..YYYY_MM_DD_HH_MM_SS.<digits>`: the name kubelet's atomic writer gives a projected
/// volume's data directory (`os.MkdirTemp` with the prefix `..2006_01_02_15_04_05.`).
fn is_atomic_writer_dir(c: &str) -> bool {
    let Some(rest) = c.strip_prefix("..") else {
        return false;
    };
    let b = rest.as_bytes();
    let shape = b"dddd_dd_dd_dd_dd_dd.";
    b.len() > shape.len()
        && shape.iter().zip(b).all(|(want, got)| match want {
            b'd' => got.is_ascii_digit(),
            w => w == got,
        })
        && b[shape.len()..].iter().all(u8::is_ascii_digit)
}

/// The first pattern matching a resolved path.
pub fn match_path<'a>(
    patterns: &'a [SensitivePattern],
    path: &str,
) -> Option<&'a SensitivePattern> {
    patterns.iter().find(|p| p.matches(path))
}

/// Anchor hash -> deepest position any pattern allows it at.
pub fn anchors(patterns: &[SensitivePattern]) -> std::collections::HashMap<u32, u32> {
    let mut out = std::collections::HashMap::new();
    for p in patterns {
        let depth = out.entry(p.anchor_hash()).or_insert(0);
        *depth = (*depth).max(p.anchor_depth);
    }
    out
}

impl fmt::Display for SensitivePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

pub fn default_patterns() -> Vec<SensitivePattern> {
    DEFAULT_PATTERNS
        .iter()
        .map(|p| SensitivePattern::parse(p).expect("default patterns are valid"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_fit_the_kernel_tables() {
        let all = default_patterns();
        assert!(all.len() as u32 <= sensor_common::limits::MAX_FILE_PATTERNS);
        assert!(anchors(&all).len() as u32 <= sensor_common::limits::MAX_FILE_ANCHORS);
    }

    #[test]
    fn prefix_and_wildcard_matching() {
        let token =
            SensitivePattern::parse("/var/run/secrets/kubernetes.io/serviceaccount/").unwrap();
        assert!(token.matches(
            "/var/run/secrets/kubernetes.io/serviceaccount/..2026_11_26_00_00_00.1/token"
        ));
        assert!(!token.matches("/var/run/secrets/kubernetes.io/other"));
        let environ = SensitivePattern::parse("/proc/*/environ").unwrap();
        assert!(environ.matches("/proc/1/environ"));
        assert!(environ.matches("/proc/1/task/7/environ"));
        assert!(!environ.matches("/proc/1/cmdline"));
        assert!(!environ.matches("/proc/environ"));
        let aws = SensitivePattern::parse("*/.aws/credentials").unwrap();
        assert!(aws.matches("/root/.aws/credentials"));
        assert!(aws.matches("/home/app/.aws/credentials"));
        assert!(!aws.matches("/root/.aws/config"));
        let all = default_patterns();
        assert_eq!(match_path(&all, "/etc/shadow").unwrap().text, "/etc/shadow");
        assert!(match_path(&all, "/etc/passwd").is_none());
    }

    #[test]
    fn kubelets_data_directories_are_dropped_from_resolved_paths() {
        assert_eq!(
            canonical_path(
                "/var/run/secrets/kubernetes.io/serviceaccount/..2026_12_07_21_15_31.3141592653/token"
            ),
            "/var/run/secrets/kubernetes.io/serviceaccount/token"
        );
        for kept in [
            "/etc/shadow",
            "/data/..hidden/token",
            "/x/..2026_12_07_21_15_31./token",
            "/x/..2026_12_07_21_15_31.12a/token",
            "/x/..data/token",
        ] {
            assert_eq!(canonical_path(kept), kept);
        }
    }

    #[test]
    fn anchors_are_the_component_nearest_the_wildcard_or_the_last_of_a_prefix() {
        let p = |t: &str| SensitivePattern::parse(t).unwrap();
        assert_eq!(
            (
                p("/proc/*/environ").anchor.as_str(),
                p("/proc/*/environ").anchor_depth
            ),
            ("environ", 0)
        );
        assert_eq!(
            (
                p("*/.aws/credentials").anchor.as_str(),
                p("*/.aws/credentials").anchor_depth
            ),
            (".aws", 1)
        );
        let token = p("/var/run/secrets/kubernetes.io/serviceaccount/");
        assert_eq!(token.anchor, "serviceaccount");
        assert_eq!(token.anchor_depth, MAX_ANCHOR_DEPTH as u32 - 1);
        assert_eq!(p("/etc/shadow").anchor, "shadow");
        assert_eq!(
            p("/etc/shadow").anchor_hash(),
            sensor_common::anchor_hash(b"shadow")
        );
        // Two patterns sharing an anchor keep the deeper allowance.
        let both = anchors(&[p("/a/x/y/z"), p("*/z")]);
        assert_eq!(
            both.get(&sensor_common::anchor_hash(b"z")),
            Some(&(MAX_ANCHOR_DEPTH as u32 - 1))
        );
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        assert_eq!(SensitivePattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(
            SensitivePattern::parse("etc/shadow"),
            Err(PatternError::NotAbsolute(_))
        ));
        assert!(matches!(
            SensitivePattern::parse("/a/*/b/*"),
            Err(PatternError::TooManyWildcards(_))
        ));
        assert!(matches!(
            SensitivePattern::parse("/etc/*shadow"),
            Err(PatternError::PartialWildcard(_))
        ));
        assert!(matches!(
            SensitivePattern::parse("/"),
            Err(PatternError::NoComponent(_))
        ));
        assert!(matches!(
            SensitivePattern::parse("*"),
            Err(PatternError::NoComponent(_))
        ));
        assert!(matches!(
            SensitivePattern::parse("*/a/b/c/d/e"),
            Err(PatternError::TooDeep(_))
        ));
        let long = format!("/{}", "x".repeat(300));
        assert!(matches!(
            SensitivePattern::parse(&long),
            Err(PatternError::TooLong { .. })
        ));
    }
}
