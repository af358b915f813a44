//! Label selectors with the Kubernetes semantics, one implementation for both of their forms:
//!
//! - the API object (`matchLabels` and `matchExpressions` with `In`, `NotIn`, `Exists`,
//!   `DoesNotExist`) of NetworkPolicies ([`Selector::compile`], used by `netpol_eval`), checked
//!   once when a policy is loaded so matching cannot fail;
//! - the string form of `kubectl -l` and the API's `labelSelector` (`a=b,c!=d,e in (x,y),
//!   f notin (z),g,!h`) of the stream filters ([`Selector::parse`], used by `api::filter`).
//!
//! All terms are ANDed; a selector without terms selects everything. `!=` and `notin` also
//! match when the label is absent, as upstream.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    terms: Vec<Term>,
}

impl Selector {
    /// The selector that selects everything (`{}`, or the empty string).
    pub fn everything() -> Selector {
        Selector { terms: Vec::new() }
    }

    /// The API object: checks the operators and their values as the API server does.
    pub fn compile(s: &LabelSelector) -> Result<Selector, String> {
        let mut terms: Vec<Term> = s
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| Term::Equals(k.clone(), v.clone()))
            .collect();
        for e in s.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let term = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!(
                        "matchExpressions key {:?}: operator {} needs values",
                        e.key, e.operator
                    ));
                }
                "In" => Term::In(e.key.clone(), values),
                "NotIn" => Term::NotIn(e.key.clone(), values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!(
                        "matchExpressions key {:?}: operator {} takes no values",
                        e.key, e.operator
                    ));
                }
                "Exists" => Term::Exists(e.key.clone()),
                "DoesNotExist" => Term::DoesNotExist(e.key.clone()),
                other => {
                    return Err(format!(
                        "matchExpressions key {:?}: unknown operator {other:?} \
                         (In, NotIn, Exists, DoesNotExist)",
                        e.key
                    ));
                }
            };
            terms.push(term);
        }
        Ok(Selector { terms })
    }

    /// The string form; empty selects everything.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut terms = Vec::new();
        for part in split_requirements(s)? {
            let part = part.trim();
            if part.is_empty() {
                if s.trim().is_empty() {
                    continue;
                }
                return Err("empty requirement (two commas in a row, or a trailing comma)".into());
            }
            terms.push(parse_requirement(part)?);
        }
        Ok(Selector { terms })
    }

    /// Whether it selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Equals(k, v) => labels.get(k) == Some(v),
            // A missing key is "not equal" and "not in" the set, as upstream.
            Term::NotEquals(k, v) => labels.get(k) != Some(v),
            Term::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Term::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Term::Exists(k) => labels.contains_key(k),
            Term::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// Label keys the selector looks at (to tell whether assumed labels were consulted).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| match t {
            Term::Equals(k, _)
            | Term::NotEquals(k, _)
            | Term::In(k, _)
            | Term::NotIn(k, _)
            | Term::Exists(k)
            | Term::DoesNotExist(k) => k.as_str(),
        })
    }
}

// ---- the string form ----

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

fn parse_requirement(part: &str) -> Result<Term, String> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(Term::DoesNotExist(key.to_string()));
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
            Term::NotIn(key.to_string(), values)
        } else {
            Term::In(key.to_string(), values)
        });
    }
    for (op, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = part.split_once(op) {
            let (key, value) = (key.trim(), value.trim());
            check_key(key)?;
            check_value(value)?;
            return Ok(if negated {
                Term::NotEquals(key.into(), value.into())
            } else {
                Term::Equals(key.into(), value.into())
            });
        }
    }
    if part.contains(['<', '>']) {
        return Err(format!(
            "`{part}`: `<`/`>` (gt/lt) apply to node selectors only"
        ));
    }
    check_key(part)?;
    Ok(Term::Exists(part.to_string()))
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

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: (!values.is_empty())
                    .then(|| values.iter().map(|v| v.to_string()).collect()),
            }]),
        }
    }

    #[test]
    fn operators() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let bare = labels(&[]);
        let cases: Vec<(LabelSelector, &Labels, bool)> = vec![
            (LabelSelector::default(), &bare, true),
            (LabelSelector::default(), &web, true),
            (expr("app", "In", &["web", "api"]), &web, true),
            (expr("app", "In", &["api"]), &web, false),
            (expr("app", "In", &["web"]), &bare, false),
            (expr("app", "NotIn", &["api"]), &web, true),
            (expr("app", "NotIn", &["web"]), &web, false),
            (expr("app", "NotIn", &["web"]), &bare, true),
            (expr("tier", "Exists", &[]), &web, true),
            (expr("tier", "Exists", &[]), &bare, false),
            (expr("tier", "DoesNotExist", &[]), &web, false),
            (expr("tier", "DoesNotExist", &[]), &bare, true),
            (
                LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    ..expr("tier", "In", &["back"])
                },
                &web,
                false, // matchLabels AND matchExpressions
            ),
        ];
        for (sel, l, want) in cases {
            assert_eq!(
                Selector::compile(&sel).unwrap().matches(l),
                want,
                "{sel:?} on {l:?}"
            );
        }
    }

    #[test]
    fn invalid_expressions_are_refused() {
        for (op, values) in [
            ("In", &[][..]),
            ("NotIn", &[][..]),
            ("Exists", &["x"][..]),
            ("DoesNotExist", &["x"][..]),
            ("Equals", &["x"][..]),
        ] {
            let e = Selector::compile(&expr("k", op, values)).unwrap_err();
            assert!(e.contains("\"k\""), "{e}");
        }
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
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), want, "{sel:?}");
        }
        // Unknown labels (empty): only negative requirements hold.
        let none = Labels::new();
        assert!(Selector::parse("!app,app!=x").unwrap().matches(&none));
        assert!(!Selector::parse("app=x").unwrap().matches(&none));
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
            let e = Selector::parse(sel).unwrap_err();
            assert!(e.contains(why), "{sel:?}: {e}");
        }
        let long = format!("app={}", "v".repeat(64));
        assert!(Selector::parse(&long).unwrap_err().contains("63"));
    }
}
