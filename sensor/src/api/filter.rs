//! Stream filters (`AnomalyFilter`, `EventFilter` and their deny lists), checked once per
//! stream and compiled: a bad value is INVALID_ARGUMENT naming its field
//! (e.g. `filter.pod_regex[1]`), matching is then cheap enough to run on the publisher's
//! thread (see [`super::hub::Subscription::set_filter`]).
//!
//! Semantics (as Tetragon's allow/deny lists): every field set must match (AND), any value of a
//! repeated field may (OR); a message passes when it matches the filter and none of the deny
//! filters.

use regex::{Regex, RegexBuilder};

use super::lookup::{self, RequestError};
use super::message::kind_name;
use super::proto;
use crate::attribution::event::Event;
use crate::attribution::selector::Selector;
use crate::detect::model::{Anomaly, RuleId, Severity};

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
    labels: Selector,
    rules: Vec<RuleId>,
    min_severity: Option<Severity>,
}

impl AnomalyRule {
    fn compile(field: &str, f: &proto::AnomalyFilter) -> Result<AnomalyRule, RequestError> {
        let who = Who::compile(field, &f.namespace, &f.workload, &f.pod_regex, &f.container)?;
        let labels = Selector::parse(&f.label_selector).map_err(|reason| {
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
    use std::collections::BTreeMap;

    use tonic::Code;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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
