//! Label selectors (`matchLabels` and `matchExpressions` with `In`, `NotIn`, `Exists`,
//! `DoesNotExist`), checked once when a policy is loaded so matching cannot fail.
//! All terms are ANDed; a selector without terms selects everything.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    terms: Vec<Term>,
}

impl Selector {
    /// The selector that selects everything (`{}`).
    pub fn everything() -> Selector {
        Selector { terms: Vec::new() }
    }

    /// Checks the operators and their values as the API server does.
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

    pub fn matches(&self, labels: &Labels) -> bool {
        self.terms.iter().all(|t| match t {
            Term::Equals(k, v) => labels.get(k) == Some(v),
            Term::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            // A missing key is "not in" the set, as upstream.
            Term::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Term::Exists(k) => labels.contains_key(k),
            Term::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// Label keys the selector looks at (to tell whether assumed labels were consulted).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.terms.iter().map(|t| match t {
            Term::Equals(k, _)
            | Term::In(k, _)
            | Term::NotIn(k, _)
            | Term::Exists(k)
            | Term::DoesNotExist(k) => k.as_str(),
        })
    }
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
}
