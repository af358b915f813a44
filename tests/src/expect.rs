//! Describable predicates over the sensor's JSON events.
//!
//! Why: when an expected event never arrives, the failure message must say what was expected
//! and, for the events that came closest, which conditions failed; a bare closure can't.

use std::fmt;

use serde_json::Value;

use crate::pod::Pod;

type Pred = Box<dyn Fn(&Value) -> bool + Send + Sync>;

/// A conjunction of named conditions on one event.
pub struct Expect {
    conds: Vec<(String, Pred)>,
}

impl Expect {
    /// No conditions (matches everything).
    pub fn any() -> Expect {
        Expect { conds: Vec::new() }
    }

    /// `kind == k`.
    pub fn kind(k: &str) -> Expect {
        Expect::any().eq("kind", k)
    }

    /// Field equality. `field` is a top-level key, or a JSON pointer if it starts with `/`.
    /// Numbers compare by value (`7` == `7.0`).
    pub fn eq(self, field: &str, expected: impl Into<Value>) -> Expect {
        let expected = expected.into();
        let f = field.to_string();
        let desc = format!("{field} == {expected}");
        self.that(&desc, move |v| {
            get(v, &f).is_some_and(|got| json_eq(got, &expected))
        })
    }

    /// The field is present and not null.
    pub fn present(self, field: &str) -> Expect {
        let f = field.to_string();
        self.that(&format!("{field} present"), move |v| {
            get(v, &f).is_some_and(|x| !x.is_null())
        })
    }

    /// The field is absent or null.
    pub fn absent(self, field: &str) -> Expect {
        let f = field.to_string();
        self.that(&format!("{field} absent/null"), move |v| {
            get(v, &f).is_none_or(Value::is_null)
        })
    }

    /// A string field satisfying `f`.
    pub fn str_that(
        self,
        field: &str,
        desc: &str,
        f: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Expect {
        let field_s = field.to_string();
        self.that(&format!("{field} {desc}"), move |v| {
            get(v, &field_s).and_then(Value::as_str).is_some_and(&f)
        })
    }

    /// A numeric field satisfying `f`.
    pub fn num_that(
        self,
        field: &str,
        desc: &str,
        f: impl Fn(f64) -> bool + Send + Sync + 'static,
    ) -> Expect {
        let field_s = field.to_string();
        self.that(&format!("{field} {desc}"), move |v| {
            get(v, &field_s).and_then(Value::as_f64).is_some_and(&f)
        })
    }

    /// An array field containing a string equal to `item`.
    pub fn contains_str(self, field: &str, item: &str) -> Expect {
        let (f, item_s) = (field.to_string(), item.to_string());
        self.that(&format!("{field} contains {item:?}"), move |v| {
            get(v, &f)
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(&item_s)))
        })
    }

    /// Any named condition.
    pub fn that(
        mut self,
        desc: &str,
        f: impl Fn(&Value) -> bool + Send + Sync + 'static,
    ) -> Expect {
        self.conds.push((desc.to_string(), Box::new(f)));
        self
    }

    /// Attributed to `container` of `pod`: scope `container`, namespace, pod, pod_uid,
    /// container, container_id, and a `cgroup` path ending in the container's kubelet cgroup.
    pub fn attributed(self, pod: &Pod, container: &str) -> Expect {
        let cgroup = pod.cgroup_path(container);
        self.eq("scope", "container")
            .eq("namespace", pod.namespace.as_str())
            .eq("pod", pod.name.as_str())
            .eq("pod_uid", pod.uid.as_str())
            .eq("container", container)
            .eq("container_id", pod.container(container).id.as_str())
            .str_that("cgroup", &format!("ends with {cgroup:?}"), move |c| {
                c.ends_with(&cgroup)
            })
    }

    pub fn matches(&self, v: &Value) -> bool {
        self.conds.iter().all(|(_, f)| f(v))
    }

    /// Descriptions of the conditions `v` fails.
    pub fn failures(&self, v: &Value) -> Vec<&str> {
        self.conds
            .iter()
            .filter(|(_, f)| !f(v))
            .map(|(d, _)| d.as_str())
            .collect()
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let descs: Vec<&str> = self.conds.iter().map(|(d, _)| d.as_str()).collect();
        write!(f, "{{ {} }}", descs.join(" && "))
    }
}

/// The events closest to matching `e` (fewest failed conditions first, at most `max`), each
/// with the conditions it failed: what a failure message shows when an event never arrived.
pub fn near_misses(e: &Expect, events: &[Value], max: usize) -> String {
    let mut near: Vec<(Vec<&str>, &Value)> = events.iter().map(|v| (e.failures(v), v)).collect();
    near.sort_by_key(|(fails, _)| fails.len());
    let mut out = String::from("closest events (failed conditions):\n");
    for (fails, v) in near.iter().take(max) {
        out.push_str(&format!("  {v}\n    failed: {}\n", fails.join("; ")));
    }
    out
}

/// `field` as a top-level key, or a JSON pointer when it starts with `/`.
pub fn get<'a>(v: &'a Value, field: &str) -> Option<&'a Value> {
    if field.starts_with('/') {
        v.pointer(field)
    } else {
        v.get(field)
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The event's `args` as strings (empty if absent).
pub fn args(v: &Value) -> Vec<String> {
    v["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The strings of a JSON array (nothing for anything else).
pub fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
