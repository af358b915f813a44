//! Stream filters (`AnomalyFilter`, `EventFilter` and their deny lists), checked once per
//! stream and compiled: a bad value is INVALID_ARGUMENT naming its field
//! (e.g. `filter.pod_regex[1]`), matching is then cheap enough to run on the publisher's
//! thread (see [`super::hub::Subscription::set_filter`]).
//!
//! Semantics (as Tetragon's allow/deny lists): every field set must match (AND), any value of a
//! repeated field may (OR); a message passes when it matches the filter and none of the deny
//! filters.

use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};

use super::lookup::{self, RequestError};
use super::proto;
use crate::detect::model::{Anomaly, RuleId, Severity};
use crate::event::Event;

/// Compiled regexes are bounded (a client's regex must not eat the agent's memory).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const MAX_VALUES: usize = 256;

/// An invalid filter field: INVALID_ARGUMENT naming it.
fn invalid(field: String, value: &str, reason: String) -> RequestError {
    RequestError::Filter {
        field,
        value: value.to_string(),
        reason,
    }
}

// ---- label selectors ----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A Kubernetes label selector (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the string form; empty selects everything.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        for part in split_requirements(s)? {
            let part = part.trim();
            if part.is_empty() {
                if s.trim().is_empty() {
                    continue;
                }
                return Err("empty requirement (two commas in a row, or a trailing comma)".into());
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Kubernetes semantics: `!=` and `notin` also match when the label is absent.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => !labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// Splits at the commas outside parentheses.
fn split_requirements(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => {
                if depth > 0 {
                    return Err("nested parentheses".into());
                }
                depth += 1;
            }
            ')' => {
                if depth == 0 {
                    return Err("unbalanced `)`".into());
                }
                depth -= 1;
            }
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unclosed `(`".into());
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(Requirement::NotExists(key.to_string()));
    }
    // Set-based: `key in (a,b)` / `key notin (a,b)`.
    if let Some(open) = part.find('(') {
        let head = part[..open].trim_end();
        let (key, negated) = if let Some(k) = head.strip_suffix(" notin") {
            (k, true)
        } else if let Some(k) = head.strip_suffix(" in") {
            (k, false)
        } else {
            return Err(format!(
                "`{part}`: expected `key in (...)` or `key notin (...)`"
            ));
        };
        let key = key.trim();
        check_key(key)?;
        let rest = &part[open + 1..];
        let Some(inner) = rest.strip_suffix(')') else {
            return Err(format!("`{part}`: text after `)`"));
        };
        let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().all(String::is_empty) {
            return Err(format!("`{part}`: empty value set"));
        }
        for v in &values {
            check_value(v)?;
        }
        return Ok(if negated {
            Requirement::NotIn(key.to_string(), values)
        } else {
            Requirement::In(key.to_string(), values)
        });
    }
    for (op, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(op) {
            let (key, value) = (key.trim(), value.trim());
            check_key(key)?;
            check_value(value)?;
            return Ok(if negated {
                Requirement::NotEquals(key.into(), value.into())
            } else {
                Requirement::Equals(key.into(), value.into())
            });
        }
    }
    if part.contains(['<', '>']) {
        return Err(format!(
            "`{part}`: `<`/`>` (gt/lt) apply to node selectors only"
        ));
    }
    check_key(part)?;
    Ok(Requirement::Exists(part.to_string()))
}

/// `[prefix/]name`: prefix a DNS subdomain (<= 253), name <= 63 of `[A-Za-z0-9_.-]`, starting
/// and ending alphanumeric.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "label key `{key}`: the prefix must be a DNS subdomain (lowercase, dots)"
            ));
        }
    }
    if name.is_empty() {
        return Err(if key.is_empty() {
            "empty label key".to_string()
        } else {
            format!("label key `{key}`: empty name")
        });
    }
    check_name_chars(name).map_err(|why| format!("label key `{key}`: {why}"))
}

/// Empty, or like a key's name part.
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name_chars(value).map_err(|why| format!("label value `{value}`: {why}"))
}

fn check_name_chars(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("longer than 63 characters".into());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("only letters, digits, `-`, `_` and `.` are allowed".into());
    }
    let (first, last) = (s.as_bytes()[0], s.as_bytes()[s.len() - 1]);
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

// ---- the common part: who ----

/// Namespace, workload, pod regex, container: shared by anomaly and event filters.
#[derive(Debug, Clone, Default)]
struct Who {
    namespaces: Vec<String>,
    workloads: Vec<String>,
    pods: Vec<Regex>,
    containers: Vec<String>,
}

impl Who {
    fn compile(
        field: &str,
        namespace: &[String],
        workload: &[String],
        pod_regex: &[String],
        container: &[String],
    ) -> Result<Who, RequestError> {
        Ok(Who {
            namespaces: names(&format!("{field}.namespace"), namespace)?,
            workloads: names(&format!("{field}.workload"), workload)?,
            pods: regexes(&format!("{field}.pod_regex"), pod_regex)?,
            containers: names(&format!("{field}.container"), container)?,
        })
    }

    fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
            && self.workloads.is_empty()
            && self.pods.is_empty()
            && self.containers.is_empty()
    }

    fn matches(&self, namespace: &str, workload: &str, pod: &str, container: &str) -> bool {
        let any = |set: &[String], v: &str| set.is_empty() || set.iter().any(|s| s == v);
        any(&self.namespaces, namespace)
            && any(&self.workloads, workload)
            && any(&self.containers, container)
            && (self.pods.is_empty() || self.pods.iter().any(|r| r.is_match(pod)))
    }
}

fn too_many(field: &str, n: usize) -> Result<(), RequestError> {
    if n > MAX_VALUES {
        return Err(invalid(
            field.to_string(),
            &format!("{n} values"),
            format!("at most {MAX_VALUES} values"),
        ));
    }
    Ok(())
}

fn names(field: &str, values: &[String]) -> Result<Vec<String>, RequestError> {
    too_many(field, values.len())?;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let f = format!("{field}[{i}]");
            if v.is_empty() {
                return Err(invalid(f, v, "is empty".into()));
            }
            lookup::optional_name("name", v).map_err(|e| match e {
                RequestError::Invalid { reason, .. } => invalid(f, v, reason.to_string()),
                other => other,
            })?;
            Ok(v.clone())
        })
        .collect()
}

fn regexes(field: &str, values: &[String]) -> Result<Vec<Regex>, RequestError> {
    too_many(field, values.len())?;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let f = format!("{field}[{i}]");
            if v.is_empty() {
                return Err(invalid(f, v, "is empty".into()));
            }
            RegexBuilder::new(v)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    // The regex crate's message spans lines (a caret under the error).
                    let msg = e
                        .to_string()
                        .lines()
                        .map(str::trim_end)
                        .collect::<Vec<_>>()
                        .join(" ");
                    invalid(f, v, format!("not a valid regular expression: {msg}"))
                })
        })
        .collect()
}

// ---- anomalies ----

#[derive(Debug, Clone, Default)]
struct AnomalyRule {
    who: Who,
    labels: LabelSelector,
    rules: Vec<RuleId>,
    min_severity: Option<Severity>,
}

impl AnomalyRule {
    fn compile(field: &str, f: &proto::AnomalyFilter) -> Result<AnomalyRule, RequestError> {
        let who = Who::compile(field, &f.namespace, &f.workload, &f.pod_regex, &f.container)?;
        let labels = LabelSelector::parse(&f.label_selector).map_err(|reason| {
            invalid(format!("{field}.label_selector"), &f.label_selector, reason)
        })?;
        too_many(&format!("{field}.rule_ids"), f.rule_ids.len())?;
        let rules = f
            .rule_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                RuleId::parse(id).ok_or_else(|| {
                    let known: Vec<&str> = RuleId::ALL.iter().map(|r| r.as_str()).collect();
                    invalid(
                        format!("{field}.rule_ids[{i}]"),
                        id,
                        format!("unknown rule id (known: {})", known.join(", ")),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let min_severity = match proto::Severity::try_from(f.min_severity) {
            Ok(proto::Severity::Unspecified) => None,
            Ok(proto::Severity::Low) => Some(Severity::Low),
            Ok(proto::Severity::Medium) => Some(Severity::Medium),
            Ok(proto::Severity::High) => Some(Severity::High),
            Ok(proto::Severity::Critical) => Some(Severity::Critical),
            Err(_) => {
                return Err(invalid(
                    format!("{field}.min_severity"),
                    &f.min_severity.to_string(),
                    "unknown enum value".into(),
                ));
            }
        };
        Ok(AnomalyRule {
            who,
            labels,
            rules,
            min_severity,
        })
    }

    fn is_empty(&self) -> bool {
        self.who.is_empty()
            && self.labels.is_empty()
            && self.rules.is_empty()
            && self.min_severity.is_none()
    }

    fn matches(&self, a: &Anomaly) -> bool {
        self.min_severity
            .is_none_or(|min| a.finding.severity >= min)
            && (self.rules.is_empty() || self.rules.contains(&a.finding.rule))
            && self
                .who
                .matches(&a.namespace, &a.workload, &a.pod, &a.container)
            && self.labels.matches(&a.labels)
    }
}

/// A compiled `StreamAnomaliesRequest` filter and deny list.
#[derive(Debug, Clone, Default)]
pub struct AnomalyFilter {
    allow: AnomalyRule,
    deny: Vec<AnomalyRule>,
}

impl AnomalyFilter {
    pub fn compile(
        filter: Option<&proto::AnomalyFilter>,
        deny_list: &[proto::AnomalyFilter],
    ) -> Result<AnomalyFilter, RequestError> {
        let allow = match filter {
            Some(f) => AnomalyRule::compile("filter", f)?,
            None => AnomalyRule::default(),
        };
        too_many("deny_list", deny_list.len())?;
        let deny = deny_list
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let field = format!("deny_list[{i}]");
                let rule = AnomalyRule::compile(&field, f)?;
                if rule.is_empty() {
                    return Err(invalid(
                        field,
                        "{}",
                        "an empty deny filter denies everything".into(),
                    ));
                }
                Ok(rule)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AnomalyFilter { allow, deny })
    }

    pub fn matches(&self, a: &Anomaly) -> bool {
        self.allow.matches(a) && !self.deny.iter().any(|d| d.matches(a))
    }
}

// ---- events ----

#[derive(Debug, Clone, Default)]
struct EventRule {
    who: Who,
    kinds: Vec<&'static str>,
}

impl EventRule {
    fn compile(field: &str, f: &proto::EventFilter) -> Result<EventRule, RequestError> {
        let who = Who::compile(field, &f.namespace, &f.workload, &f.pod_regex, &f.container)?;
        too_many(&format!("{field}.kinds"), f.kinds.len())?;
        let kinds = f
            .kinds
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let bad = |reason: &str| {
                    invalid(
                        format!("{field}.kinds[{i}]"),
                        &k.to_string(),
                        reason.to_string(),
                    )
                };
                match proto::EventKind::try_from(k) {
                    Ok(proto::EventKind::Unspecified) => Err(bad("UNSPECIFIED is not a kind")),
                    Ok(kind) => Ok(kind_name(kind)),
                    Err(_) => Err(bad("unknown enum value")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EventRule { who, kinds })
    }

    fn is_empty(&self) -> bool {
        self.who.is_empty() && self.kinds.is_empty()
    }

    fn matches(&self, e: &Event) -> bool {
        let w = &e.who;
        (self.kinds.is_empty() || self.kinds.contains(&e.detail.kind()))
            && self.who.matches(
                w.namespace.as_deref().unwrap_or(""),
                w.workload.as_deref().unwrap_or(""),
                w.pod.as_deref().unwrap_or(""),
                w.container.as_deref().unwrap_or(""),
            )
    }
}

/// The `Event.kind` string of a proto kind.
pub fn kind_name(kind: proto::EventKind) -> &'static str {
    match kind {
        proto::EventKind::Unspecified => "",
        proto::EventKind::Exec => "exec",
        proto::EventKind::Exit => "exit",
        proto::EventKind::Connect => "connect",
        proto::EventKind::Accept => "accept",
        proto::EventKind::Dns => "dns",
        proto::EventKind::File => "file",
        proto::EventKind::Syscalls => "syscalls",
        proto::EventKind::Flow => "flow",
    }
}

/// A compiled `StreamEventsRequest` filter and deny list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    allow: EventRule,
    deny: Vec<EventRule>,
}

impl EventFilter {
    pub fn compile(
        filter: Option<&proto::EventFilter>,
        deny_list: &[proto::EventFilter],
    ) -> Result<EventFilter, RequestError> {
        let allow = match filter {
            Some(f) => EventRule::compile("filter", f)?,
            None => EventRule::default(),
        };
        too_many("deny_list", deny_list.len())?;
        let deny = deny_list
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let field = format!("deny_list[{i}]");
                let rule = EventRule::compile(&field, f)?;
                if rule.is_empty() {
                    return Err(invalid(
                        field,
                        "{}",
                        "an empty deny filter denies everything".into(),
                    ));
                }
                Ok(rule)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EventFilter { allow, deny })
    }

    pub fn matches(&self, e: &Event) -> bool {
        self.allow.matches(e) && !self.deny.iter().any(|d| d.matches(e))
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selectors_follow_kubernetes_semantics() {
        let l = labels(&[("app", "checkout"), ("tier", "web"), ("team", "pay")]);
        let cases = [
            ("", true),
            ("app=checkout", true),
            ("app==checkout", true),
            ("app = checkout", true),
            ("app=cart", false),
            ("app!=cart", true),
            ("missing!=x", true),
            ("tier in (web, api)", true),
            ("tier in (api)", false),
            ("tier notin (api,db)", true),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=checkout,tier in (web),!canary,team!=ops", true),
            ("app=checkout,tier=api", false),
            ("example.com/role", false),
            ("app in (checkout,)", true),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), want, "{sel:?}");
        }
        // Unknown labels (empty): only negative requirements hold.
        let none = BTreeMap::new();
        assert!(LabelSelector::parse("!app,app!=x").unwrap().matches(&none));
        assert!(!LabelSelector::parse("app=x").unwrap().matches(&none));
    }

    #[test]
    fn bad_label_selectors_say_why() {
        for (sel, why) in [
            ("app=a,", "empty requirement"),
            ("app in (a", "unclosed"),
            ("app in a)", "unbalanced"),
            ("app in ()", "empty value set"),
            ("app inn (a)", "expected `key in"),
            ("=x", "empty label key"),
            ("-app=x", "start and end"),
            ("app=x y", "only letters"),
            ("Example.COM/app=x", "DNS subdomain"),
            ("a>1", "node selectors"),
            ("app in ((a))", "nested"),
        ] {
            let e = LabelSelector::parse(sel).unwrap_err();
            assert!(e.contains(why), "{sel:?}: {e}");
        }
        let long = format!("app={}", "v".repeat(64));
        assert!(LabelSelector::parse(&long).unwrap_err().contains("63"));
    }

    fn filter(f: proto::AnomalyFilter) -> AnomalyFilter {
        AnomalyFilter::compile(Some(&f), &[]).unwrap()
    }

    #[test]
    fn anomaly_filters_match_each_field() {
        let mut a = Anomaly::sample("/usr/bin/curl");
        a.labels = labels(&[("app", "checkout")]);
        let yes = |f: proto::AnomalyFilter| assert!(filter(f.clone()).matches(&a), "{f:?}");
        let no = |f: proto::AnomalyFilter| assert!(!filter(f.clone()).matches(&a), "{f:?}");
        let f = proto::AnomalyFilter::default;
        yes(f());
        yes(proto::AnomalyFilter {
            namespace: vec!["bank".into(), "shop".into()],
            ..f()
        });
        no(proto::AnomalyFilter {
            namespace: vec!["bank".into()],
            ..f()
        });
        yes(proto::AnomalyFilter {
            workload: vec!["checkout".into()],
            ..f()
        });
        no(proto::AnomalyFilter {
            workload: vec!["cart".into()],
            ..f()
        });
        yes(proto::AnomalyFilter {
            pod_regex: vec!["^checkout-".into()],
            ..f()
        });
        yes(proto::AnomalyFilter {
            pod_regex: vec!["x2x4z".into()],
            ..f()
        });
        no(proto::AnomalyFilter {
            pod_regex: vec!["^cart-".into()],
            ..f()
        });
        yes(proto::AnomalyFilter {
            container: vec!["app".into()],
            ..f()
        });
        no(proto::AnomalyFilter {
            container: vec!["envoy".into()],
            ..f()
        });
        yes(proto::AnomalyFilter {
            label_selector: "app in (checkout)".into(),
            ..f()
        });
        no(proto::AnomalyFilter {
            label_selector: "app=cart".into(),
            ..f()
        });
        yes(proto::AnomalyFilter {
            rule_ids: vec!["unexpected-exec".into()],
            ..f()
        });
        no(proto::AnomalyFilter {
            rule_ids: vec!["unexpected-dns".into()],
            ..f()
        });
        // sample: medium
        yes(proto::AnomalyFilter {
            min_severity: proto::Severity::Medium.into(),
            ..f()
        });
        yes(proto::AnomalyFilter {
            min_severity: proto::Severity::Low.into(),
            ..f()
        });
        no(proto::AnomalyFilter {
            min_severity: proto::Severity::High.into(),
            ..f()
        });
        // AND across fields.
        no(proto::AnomalyFilter {
            namespace: vec!["shop".into()],
            container: vec!["envoy".into()],
            ..f()
        });

        let deny = AnomalyFilter::compile(
            None,
            &[proto::AnomalyFilter {
                container: vec!["app".into()],
                ..f()
            }],
        )
        .unwrap();
        assert!(!deny.matches(&a));
    }

    #[test]
    fn invalid_filters_name_the_field() {
        let f = proto::AnomalyFilter::default;
        let cases = [
            (
                proto::AnomalyFilter {
                    pod_regex: vec!["ok".into(), "(".into()],
                    ..f()
                },
                "filter.pod_regex[1]",
            ),
            (
                proto::AnomalyFilter {
                    namespace: vec!["a/b".into()],
                    ..f()
                },
                "filter.namespace[0]",
            ),
            (
                proto::AnomalyFilter {
                    workload: vec!["".into()],
                    ..f()
                },
                "filter.workload[0]",
            ),
            (
                proto::AnomalyFilter {
                    container: vec![" c".into()],
                    ..f()
                },
                "filter.container[0]",
            ),
            (
                proto::AnomalyFilter {
                    label_selector: "a in (".into(),
                    ..f()
                },
                "filter.label_selector",
            ),
            (
                proto::AnomalyFilter {
                    rule_ids: vec!["nope".into()],
                    ..f()
                },
                "filter.rule_ids[0]",
            ),
            (
                proto::AnomalyFilter {
                    min_severity: 9,
                    ..f()
                },
                "filter.min_severity",
            ),
        ];
        for (filter, field) in cases {
            let e = AnomalyFilter::compile(Some(&filter), &[]).unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{e}");
            assert!(e.to_string().starts_with(field), "{field}: {e}");
        }
        let e = AnomalyFilter::compile(
            Some(&proto::AnomalyFilter {
                rule_ids: vec!["nope".into()],
                ..f()
            }),
            &[],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("unexpected-exec"),
            "lists the known ids: {e}"
        );
        let e = AnomalyFilter::compile(None, &[f()]).unwrap_err();
        assert!(e.to_string().starts_with("deny_list[0]"), "{e}");
        // Catastrophic regexes are refused by size, not run.
        let e = AnomalyFilter::compile(
            Some(&proto::AnomalyFilter {
                pod_regex: vec!["(\\w{100}){100}".into()],
                ..f()
            }),
            &[],
        )
        .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e}");

        let e = EventFilter::compile(
            Some(&proto::EventFilter {
                kinds: vec![0],
                ..Default::default()
            }),
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("filter.kinds[0]"), "{e}");
    }
}
