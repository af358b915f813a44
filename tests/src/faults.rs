//! What the fault and abuse tests (`tests/faults.rs`) observe from outside the agent: its
//! resident memory over time, the loss counters it reports, the state files a kill left, and a
//! grpcio client that abuses the API (`tests/python/abuse.py`).
//!
//! Why here: these are measurements of a process and a directory, shared by several tests, and
//! each must be able to fail (no sample, no counter line, a file that does not parse).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::anomaly::py_client;
use crate::daemon::{Daemon, files_under};
use crate::jsonl::JsonLines;

const ABUSE_PY: &str = include_str!("../python/abuse.py");

/// `abuse.py <mode> <args...>` against `agent` (see the script).
pub fn py_abuse(agent: &Daemon, work: &Path, mode_and_args: &[&str]) -> JsonLines {
    py_client(
        agent,
        work,
        ("abuse.py", ABUSE_PY),
        mode_and_args,
        "python grpcio abuse client",
    )
}

/// `VmRSS` or another `/proc/<pid>/status` field, in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples a process's `VmRSS` every `every` on a thread until stopped.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Duration, u64)>>>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    match status_kib(pid, "VmRSS") {
                        Some(kib) => samples.lock().unwrap().push((t0.elapsed(), kib)),
                        None => break, // the process is gone
                    }
                    std::thread::sleep(every);
                }
            })
        };
        RssSampler {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the samples (time since start, KiB).
    pub fn finish(mut self) -> Vec<(Duration, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The counters of the agent's last `stopped` line (`events={...} lost={...}`, printed on a
/// clean stop): `(events, lost)`. Panics with the stderr if there is none.
pub fn final_counters(stderr: &str) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains(" stopped") && l.contains("lost={"))
        .unwrap_or_else(|| {
            panic!(
                "no `stopped ... lost={{...}}` line on the agent's stderr:\n{}",
                crate::util::tail(stderr, 3000)
            )
        });
    (braces(line, "events="), braces(line, "lost="))
}

/// `name={"a": 1, "b": 2}` in `line` (Rust's `Debug` of a map) as a map.
fn braces(line: &str, name: &str) -> BTreeMap<String, u64> {
    let Some(start) = line.find(name) else {
        return BTreeMap::new();
    };
    let rest = &line[start + name.len()..];
    let body = rest
        .strip_prefix('{')
        .and_then(|r| r.split_once('}'))
        .map(|(b, _)| b)
        .unwrap_or_default();
    body.split(", ")
        .filter_map(|kv| {
            let (k, v) = kv.split_once(": ")?;
            Some((k.trim_matches('"').to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Temp files (`.<name>.<pid>.tmp`) under `dir`: what an interrupted atomic write leaves.
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"))
        })
        .collect()
}

/// Quarantined state files (`*.corrupt*`) under `dir`.
pub fn quarantined_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".corrupt"))
        .collect()
}

/// Every `*.json` under `dir` that does not parse (temp files excepted), with the error.
pub fn unparsable_json(dir: &Path) -> Vec<(PathBuf, String)> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            serde_json::from_str::<serde_json::Value>(&text)
                .err()
                .map(|e| (p, e.to_string()))
        })
        .collect()
}

/// A small deterministic generator for the tests' random moments, seeded from the clock (the
/// seed is printed so a failing schedule can be replayed with `FAULTS_SEED`).
pub struct Rng(u64);

impl Rng {
    pub fn from_env_or_clock() -> Rng {
        let seed = std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("FAULTS_SEED={seed}");
        Rng(seed.max(1))
    }

    /// xorshift64*
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[lo, hi)`.
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi - lo).as_millis().max(1) as u64;
        lo + Duration::from_millis(self.next_u64() % span)
    }
}

/// `n` as a word of lowercase letters (`0 -> a`, `26 -> ba`): unique arguments and names that
/// the profile normaliser keeps as they are (it collapses long numbers and hex runs).
pub fn letters(mut n: u64) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'a' + (n % 26) as u8);
        n /= 26;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_of_the_stopped_line() {
        let line = "2026-11-26T01:00:00Z  INFO sensor::daemon: stopped events={\"exec\": 12, \
                    \"fork\": 3} lost={\"queue_full_exec\": 0, \"ringbuf_full_exec\": 7}";
        let (events, lost) = final_counters(&format!("x\n{line}\n"));
        assert_eq!(events["exec"], 12);
        assert_eq!(lost["ringbuf_full_exec"], 7);
        assert_eq!(lost.len(), 2);
    }

    #[test]
    fn letters_are_unique_words() {
        assert_eq!(letters(0), "a");
        assert_eq!(letters(25), "z");
        assert_eq!(letters(26), "ba");
        assert_eq!(letters(27 * 26), "bba");
    }
}
