//! The event checks the capture tests share: the fields every event carries, attribution to a
//! pod's container, and DNS answer shapes.
//!
//! Why shared: the host-kernel tests (tests/tests/capture.rs) and the 6.1 guest test
//! (tests/kernel_61.rs) must judge events the same way, so that a kernel layout difference
//! fails the build instead of passing a looser check.

use std::net::IpAddr;

use serde_json::Value;

use crate::expect::Expect;
use crate::kubelet::Kubelet;
use crate::pod::Pod;
use crate::sensor::{Sensor, SensorProcess};

/// `sensor trace` restricted to namespace `ns`, reading names from `kubelet`.
pub fn sensor_for(kubelet: &Kubelet, ns: &str) -> SensorProcess {
    let mut args = vec!["--namespace".to_string(), ns.to_string()];
    args.extend(kubelet.sensor_args());
    Sensor::trace(&args)
}

/// Fields every event carries.
pub fn common() -> Expect {
    Expect::any()
        .str_that("time", "is RFC3339", |t| {
            t.len() >= 20 && t.as_bytes()[4] == b'-' && t.as_bytes()[10] == b'T'
        })
        .str_that("node", "non-empty", |n| !n.is_empty())
        .num_that("cgroup_id", "> 1", |x| x > 1.0)
}

/// Fields of events observed in the context of the process that acted (syscall-level hooks:
/// exec, exit, connect, accept, file). Not required of the per-container aggregates (`flow`,
/// `syscalls`) nor of `dns`, whose answers are seen on packets, outside any process.
pub fn process_fields() -> Expect {
    Expect::any()
        .num_that("pid", "> 0", |x| x > 0.0)
        .present("comm")
}

/// An event of `kind` attributed to `container` of `pod`, with the common fields.
pub fn ev(kind: &str, pod: &Pod, container: &str) -> Expect {
    let e = Expect::kind(kind)
        .attributed(pod, container)
        .that("common fields", |v| common().matches(v));
    match kind {
        "flow" | "syscalls" => e,
        _ => e.that("pid > 0, comm present", |v| process_fields().matches(v)),
    }
}

/// A numeric field of `v`; panics naming the field if it is not a number.
pub fn num(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {v}"))
}

/// A DNS name without case and trailing dot.
pub fn norm_name(n: &str) -> String {
    n.trim_end_matches('.').to_ascii_lowercase()
}

/// `qtype` as a mnemonic ("A") or a number (1).
pub fn qtype(v: &Value, name: &str, code: u64) -> bool {
    v["qtype"]
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case(name))
        || v["qtype"].as_u64() == Some(code)
}

/// `rcode` as a mnemonic ("NOERROR", "NXDOMAIN") or a number.
pub fn rcode(v: &Value, name: &str, code: u64) -> bool {
    v["rcode"]
        .as_str()
        .is_some_and(|s| s.replace('_', "").eq_ignore_ascii_case(name))
        || v["rcode"].as_u64() == Some(code)
}

/// Whether `answers` maps `ip` to a name list containing all of `names`.
pub fn answers_map(v: &Value, ip: IpAddr, names: &[String]) -> bool {
    v["answers"].as_array().is_some_and(|answers| {
        answers.iter().any(|a| {
            let ip_ok = a["ip"].as_str().and_then(|s| s.parse::<IpAddr>().ok()) == Some(ip);
            let got: Vec<String> = a["names"]
                .as_array()
                .map(|n| n.iter().filter_map(|x| x.as_str()).map(norm_name).collect())
                .unwrap_or_default();
            let ttl_ok = a["ttl"].as_u64().is_some_and(|t| t > 0 && t <= 300);
            ip_ok && ttl_ok && names.iter().all(|n| got.contains(&norm_name(n)))
        })
    })
}

/// `question == q`, ignoring case and a trailing dot.
pub fn with_question(e: Expect, q: &str) -> Expect {
    let q = norm_name(q);
    e.str_that("question", &format!("is {q:?}"), move |s| norm_name(s) == q)
}
