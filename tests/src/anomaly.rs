//! The agent's anomalies seen from outside: the log `<state>/anomalies.jsonl`, `sensor watch
//! --json` ([`watch`]) and a third-party gRPC consumer in Python ([`py_consumer`],
//! `tests/python/consumer.py`, grpcio from PyPI).
//!
//! Why: anomalies are the agent's output for people and for integrations. The log file is the
//! ground truth a test compares streams with (every record, numbered, in order); `sensor watch`
//! is what an operator runs; the Python consumer proves the API works for clients that are not
//! the sensor's own CLI (stubs generated at run time from `proto/` with `grpc_tools.protoc`).
//!
//! The Python interpreter with grpcio and grpcio-tools comes from `SENSOR_TEST_PYTHON`, which
//! `cargo xtask test` sets (it installs them into `target/pytools`). Tests that need it fail
//! with instructions when it is missing: they are never skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::jsonl::JsonLines;
use crate::sensor::Sensor;

pub const LOG_FILE: &str = "anomalies.jsonl";

const CONSUMER_PY: &str = include_str!("../python/consumer.py");

/// `<state>/anomalies.jsonl`
pub fn log_path(state: &Path) -> PathBuf {
    state.join(LOG_FILE)
}

/// Every record of the anomaly log (none when it does not exist yet). Panics on a line that is
/// not JSON, except a last line without its newline (a write in progress).
pub fn read_log(state: &Path) -> Vec<Value> {
    let path = log_path(state);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(e) => panic!(
                "{} line {} is not JSON ({e}): {}",
                path.display(),
                i + 1,
                crate::util::tail(line, 500)
            ),
        }
    }
    out
}

/// The records of the log for namespace `ns`.
pub fn read_log_ns(state: &Path, ns: &str) -> Vec<Value> {
    read_log(state)
        .into_iter()
        .filter(|a| a["namespace"] == ns)
        .collect()
}

/// Anomaly records among stream lines (objects with a `seq`; `sensor watch --json` prints them
/// as logged, the Python consumer as `{"kind":"anomaly","seq":...}`).
pub fn anomalies(lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l["seq"].is_u64())
        .cloned()
        .collect()
}

/// The `seq` of each record.
pub fn seqs(records: &[Value]) -> Vec<u64> {
    records.iter().filter_map(|a| a["seq"].as_u64()).collect()
}

/// Short `#seq rule pod subject` lines, for failure messages.
pub fn describe(records: &[Value]) -> String {
    records
        .iter()
        .map(|a| {
            let a = if a["json"].is_object() { &a["json"] } else { a };
            format!(
                "#{} {} {}/{}/{} {:?} count={} repeatOf={}",
                a["seq"],
                a["rule"].as_str().unwrap_or("?"),
                a["namespace"].as_str().unwrap_or("?"),
                a["pod"].as_str().unwrap_or("-"),
                a["container"].as_str().unwrap_or("?"),
                a["subject"].as_str().unwrap_or(""),
                a["count"],
                a["repeatOf"],
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `sensor watch --json --server <agent> <args...>`, running.
pub fn watch(agent: &Daemon, args: &[&str]) -> JsonLines {
    let mut cmd = Command::new(Sensor::binary());
    cmd.args(["watch", "--json", "--server", &agent.server()])
        .args(args)
        .env_remove("SENSOR_SERVER")
        .env("NO_COLOR", "1");
    JsonLines::spawn("sensor watch", cmd)
}

/// The Python interpreter with grpcio and grpcio-tools: `$SENSOR_TEST_PYTHON`. Panics with
/// instructions when it is not set, does not exist, or lacks the modules.
pub fn test_python() -> PathBuf {
    let p = std::env::var_os("SENSOR_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "SENSOR_TEST_PYTHON is not set: this test runs a Python gRPC consumer (grpcio and \
                 grpcio-tools from PyPI); run it through `cargo xtask test` (which installs them \
                 into target/pytools and sets SENSOR_TEST_PYTHON), or install them into a venv \
                 (`python3 -m venv target/pytools && target/pytools/bin/pip install \
                 grpcio==1.85.1 grpcio-tools==1.85.1`) and set \
                 SENSOR_TEST_PYTHON=target/pytools/bin/python (absolute path)"
            )
        });
    assert!(
        p.is_file(),
        "SENSOR_TEST_PYTHON={} does not exist",
        p.display()
    );
    let out = Command::new(&p)
        .args(["-c", "import grpc, grpc_tools.protoc"])
        .output()
        .unwrap_or_else(|e| panic!("running SENSOR_TEST_PYTHON={}: {e}", p.display()));
    assert!(
        out.status.success(),
        "SENSOR_TEST_PYTHON={} cannot import grpc and grpc_tools (pip install grpcio \
         grpcio-tools): {}",
        p.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

/// The repository's `proto/` directory.
pub fn proto_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("proto")
}

/// Starts `consumer.py` against `agent` (stubs generated into `work/gen`), with `args`
/// (`--namespace NS`, `--since N`, `--list-profiles`, `--pause-file F`, ...). See the script.
pub fn py_consumer(agent: &Daemon, work: &Path, args: &[&str]) -> JsonLines {
    py_client(
        agent,
        work,
        ("consumer.py", CONSUMER_PY),
        args,
        "python grpcio consumer",
    )
}

/// Writes `script` (file name, source) and `consumer.py` (its stub generator) into `work` and
/// starts it against `agent`: `--socket`, `--proto-root`, `--gen-dir`, then `args`.
pub fn py_client(
    agent: &Daemon,
    work: &Path,
    script: (&str, &str),
    args: &[&str],
    what: &str,
) -> JsonLines {
    let python = test_python();
    std::fs::create_dir_all(work).unwrap_or_else(|e| panic!("mkdir {}: {e}", work.display()));
    std::fs::write(work.join("consumer.py"), CONSUMER_PY).expect("write consumer.py");
    let path = work.join(script.0);
    std::fs::write(&path, script.1).unwrap_or_else(|e| panic!("write {}: {e}", script.0));
    let gen_dir = work.join(format!("gen-{}", crate::util::random_hex(6)));
    let mut cmd = Command::new(python);
    cmd.arg(&path)
        .arg("--socket")
        .arg(&agent.config.socket)
        .arg("--proto-root")
        .arg(proto_root())
        .arg("--gen-dir")
        .arg(&gen_dir)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    JsonLines::spawn(what, cmd)
}
