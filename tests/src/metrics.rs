//! The agent's metrics and health endpoint seen from outside (`sensor run --metrics-listen`):
//! plain HTTP requests for `/healthz` and `/readyz` ([`get`]), and scrapes of `/metrics`
//! parsed by the Prometheus project's Python parser ([`scrape`], `tests/python/scrape.py`,
//! `prometheus_client` from PyPI in `SENSOR_TEST_PYTHON`, installed by `cargo xtask test`).
//!
//! Why: the endpoint's users are Prometheus and kubelet. A reference parser catches any
//! exposition that Prometheus would reject; the health paths are checked by status code, as
//! kubelet does.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::daemon::Daemon;

/// The agent's log line once the endpoint listens (its `addr=` field is the bound address).
pub const LISTENING_TEXT: &str = "metrics endpoint listening";

const SCRAPE_PY: &str = include_str!("../python/scrape.py");

/// Waits for the agent to log [`LISTENING_TEXT`] and returns the address it bound.
#[track_caller]
pub fn listening_addr(agent: &Daemon, timeout: Duration) -> SocketAddr {
    assert!(
        agent.wait_stderr(LISTENING_TEXT, timeout),
        "the agent did not log {LISTENING_TEXT:?} within {timeout:?}\n{}",
        agent.diagnostics()
    );
    let stderr = agent.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains(LISTENING_TEXT))
        .expect("line seen");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line:?}"));
    addr.parse()
        .unwrap_or_else(|e| panic!("addr={addr} in {line:?}: {e}"))
}

/// A finished HTTP exchange.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `METHOD path` over HTTP/1.1 (one connection, `Connection: close`); `None` if the
/// connection fails (not listening yet, or gone).
pub fn request(addr: SocketAddr, method: &str, path: &str) -> Option<HttpResponse> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: sensor-tests\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(HttpResponse {
        status,
        headers,
        body: body.to_string(),
    })
}

/// `GET path`; panics if the endpoint does not answer.
#[track_caller]
pub fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    request(addr, "GET", path).unwrap_or_else(|| panic!("GET http://{addr}{path}: no answer"))
}

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One family as the reference parser saw it.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// A parsed scrape of `/metrics`.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub status: u16,
    pub content_type: String,
    pub families: Vec<Family>,
}

impl Scrape {
    /// Every sample named `name` (`_total` included for counters).
    pub fn samples(&self, name: &str) -> Vec<&Sample> {
        self.families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name == name)
            .collect()
    }

    /// The value of the sample `name` whose labels include every pair of `labels`; `None` if
    /// there is none. Panics if several match (the query is ambiguous).
    #[track_caller]
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<&Sample> = self
            .samples(name)
            .into_iter()
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .collect();
        assert!(
            matching.len() <= 1,
            "{name}{labels:?} matches several samples: {matching:?}"
        );
        matching.first().map(|s| s.value)
    }

    /// [`Scrape::value`], panicking with the family if there is no such sample.
    #[track_caller]
    pub fn must(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| {
            panic!(
                "no sample {name}{labels:?}; samples of that name: {:?}",
                self.samples(name)
            )
        })
    }

    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }
}

/// The Python interpreter with `prometheus_client`: `$SENSOR_TEST_PYTHON` (set by `cargo xtask
/// test`). Panics with instructions when missing: the test is never skipped.
pub fn python() -> PathBuf {
    let p = std::env::var_os("SENSOR_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "SENSOR_TEST_PYTHON is not set: this test parses /metrics with the Prometheus Python \
             parser (prometheus-client from PyPI). Run `cargo xtask test` (it installs it into \
             target/pytools and sets SENSOR_TEST_PYTHON), or set \
             SENSOR_TEST_PYTHON=<abs path>/target/pytools/bin/python"
        )
    });
    let ok = Command::new(&p)
        .args(["-c", "import prometheus_client.parser"])
        .output()
        .unwrap_or_else(|e| panic!("running SENSOR_TEST_PYTHON={}: {e}", p.display()));
    assert!(
        ok.status.success(),
        "SENSOR_TEST_PYTHON={} cannot import prometheus_client (pip install prometheus-client; \
         `cargo xtask test` does): {}",
        p.display(),
        String::from_utf8_lossy(&ok.stderr)
    );
    p
}

/// GET `/metrics` with Python's urllib, parsed with `prometheus_client.parser`. Panics if the
/// request fails or the parser rejects the text.
#[track_caller]
pub fn scrape(addr: SocketAddr) -> Scrape {
    let out = Command::new(python())
        .args(["-c", SCRAPE_PY, &format!("http://{addr}/metrics")])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run the scrape script");
    assert!(
        out.status.success(),
        "scraping http://{addr}/metrics failed:\n{}",
        crate::util::tail(&String::from_utf8_lossy(&out.stderr), 8000)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("scrape.py prints JSON");
    let families = v["families"]
        .as_array()
        .expect("families")
        .iter()
        .map(|f| Family {
            name: f["name"].as_str().unwrap_or_default().to_string(),
            kind: f["type"].as_str().unwrap_or_default().to_string(),
            help: f["help"].as_str().unwrap_or_default().to_string(),
            samples: f["samples"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Sample {
                    name: s["name"].as_str().unwrap_or_default().to_string(),
                    labels: s["labels"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect(),
                    value: s["value"].as_f64().expect("numeric sample value"),
                })
                .collect(),
        })
        .collect();
    Scrape {
        status: v["status"].as_u64().unwrap_or(0) as u16,
        content_type: v["contentType"].as_str().unwrap_or_default().to_string(),
        families,
    }
}
