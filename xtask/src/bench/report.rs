//! Tables for the terminal and docs/benchmarks.md (numbers, method, machine, targets). The
//! pass/fail verdicts and their thresholds are `verdict`'s; this module only words them.

use std::{collections::BTreeSet, fmt::Write as _};

use super::{
    agent::{self, AgentBench, AgentRun, Mem},
    detect::{self, Latency, StreamBench},
    flood::{
        CONNECT_PORTS, CONNECT_SECS, CONNECT_THREADS, ConnectFlood, EXEC_COUNT, ExecFlood,
        IDLE_SECS,
    },
    overhead::{BPFTRACE_PROGRAM, CONFIGS, Config, MAX_ATTEMPTS, NOISY_CORES, Overhead, median},
    system::Machine,
    verdict::{
        self, MAX_AGENT_RSS_MIB, MAX_DETECT_P50_MS, MAX_DETECT_P99_MS, MAX_DRAFT_P99_MS,
        MAX_IDLE_RSS_MIB, MAX_PUBLISH_P99_US, MAX_RATIO_BPFTRACE, MAX_RATIO_FLOOR,
        MIN_CONNECT_PROCESSED, MIN_FAST_SHARE, MIN_STREAM_RATE_SHARE,
    },
};

pub struct Report<'a> {
    pub machine: &'a Machine,
    pub sensor_version: String,
    /// The hook of the sensitive-file probe on this kernel.
    pub file_hook: String,
    pub overhead: &'a Overhead,
    pub rounds: usize,
    pub exec: &'a ExecFlood,
    pub connect: &'a ConnectFlood,
    pub agent: &'a AgentBench,
    pub detect: &'a Latency,
    pub stream: &'a StreamBench,
    pub neighbours: &'a BTreeSet<String>,
    pub foreign: &'a BTreeSet<String>,
    pub minutes: f64,
}

pub struct Target {
    pub what: String,
    pub goal: String,
    pub value: String,
    pub pass: bool,
}

/// A Markdown table with padded columns (readable as plain text too).
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(head.iter().map(|h| h.to_string()).collect());
    out.push_str(&line(width.iter().map(|w| "-".repeat(*w)).collect()));
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn signed(v: f64) -> String {
    // No "-0.0" for a difference that rounds to nothing.
    let v = if v.abs() < 0.05 { 0.0 } else { v };
    format!("{v:+.1}")
}

fn mib_diff(a: u64, b: u64) -> String {
    signed(mib(a) - mib(b)) + " MiB"
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

impl Report<'_> {
    /// Sensor added / `of` added.
    fn ratio(&self, of: Config) -> f64 {
        verdict::ratio(
            self.overhead.added_ns(Config::Sensor),
            self.overhead.added_ns(of),
        )
    }

    /// The floor of the hooks the sensor attached on this kernel ([`verdict::floor`]).
    fn floor(&self) -> Config {
        verdict::floor(&self.file_hook)
    }

    /// Agent added / floor added.
    fn agent_ratio(&self) -> f64 {
        verdict::ratio(
            self.overhead.added_ns(Config::Agent),
            self.overhead.added_ns(self.floor()),
        )
    }

    /// Median over rounds of (agent - sensor trace), both timed in the same round.
    fn agent_minus_trace(&self) -> f64 {
        let o = self.overhead;
        let mut d: Vec<f64> = o.samples[Config::Agent as usize]
            .iter()
            .zip(&o.samples[Config::Sensor as usize])
            .map(|(a, t)| a.ns_per_call - t.ns_per_call)
            .collect();
        median(&mut d)
    }

    fn agent_rss_mib(&self) -> f64 {
        mib(self.agent.loaded.idle.vm_rss)
    }

    pub fn targets(&self) -> Vec<Target> {
        let o = self.overhead;
        let (d, st) = (self.detect, self.stream);
        let (e, c) = (self.exec, self.connect);
        let r_bpf = self.ratio(Config::Bpftrace);
        let floor = self.floor();
        let r_floor = self.ratio(floor);
        let share = verdict::share(c.processed, c.generated);
        let idle = mib(e.idle_rss_kib);
        vec![
            Target {
                what: "syscall overhead vs bpftrace".into(),
                goal: format!("sensor added / bpftrace added <= {MAX_RATIO_BPFTRACE}"),
                value: format!(
                    "{:.1} / {:.1} ns = {r_bpf:.2}",
                    o.added_ns(Config::Sensor),
                    o.added_ns(Config::Bpftrace)
                ),
                pass: verdict::overhead_vs_bpftrace(r_bpf),
            },
            Target {
                what: "syscall overhead vs empty hooks".into(),
                goal: format!("sensor added / floor of its hooks added <= {MAX_RATIO_FLOOR}"),
                value: format!(
                    "{:.1} / {:.1} ns = {r_floor:.2} ({})",
                    o.added_ns(Config::Sensor),
                    o.added_ns(floor),
                    floor.label()
                ),
                pass: verdict::overhead_vs_floor(r_floor),
            },
            Target {
                what: "exec flood accounting".into(),
                goal: "processed + dropped == generated".into(),
                value: format!(
                    "{} + {} vs {} (unaccounted {})",
                    e.processed,
                    e.dropped(),
                    e.generated,
                    e.unaccounted()
                ),
                pass: verdict::flood_accounted(e.unaccounted()),
            },
            Target {
                what: "connect flood processed".into(),
                goal: format!(">= {:.0}% of generated", MIN_CONNECT_PROCESSED * 100.0),
                value: format!("{} of {} = {:.2}%", c.processed, c.generated, share * 100.0),
                pass: verdict::connect_processed(c.processed, c.generated),
            },
            Target {
                what: "connect flood accounting".into(),
                goal: "processed + dropped == generated".into(),
                value: format!(
                    "{} + {} vs {} (unaccounted {})",
                    c.processed,
                    c.dropped(),
                    c.generated,
                    c.unaccounted()
                ),
                pass: verdict::flood_accounted(c.unaccounted()),
            },
            Target {
                what: "idle RSS".into(),
                goal: format!("< {MAX_IDLE_RSS_MIB} MiB"),
                value: format!("{idle:.1} MiB"),
                pass: verdict::idle_rss(idle),
            },
            Target {
                what: "agent RSS, 500 learned profiles".into(),
                goal: format!("VmRSS <= {MAX_AGENT_RSS_MIB} MiB"),
                value: format!(
                    "{:.1} MiB (empty state {:.1} MiB)",
                    self.agent_rss_mib(),
                    mib(self.agent.empty.idle.vm_rss)
                ),
                pass: verdict::agent_rss(self.agent_rss_mib()),
            },
            Target {
                what: "draft generation per workload".into(),
                goal: format!("p99 < {MAX_DRAFT_P99_MS} ms"),
                value: format!(
                    "p99 {:.3} ms (mean {:.3}, max {:.3}; {} workloads)",
                    self.agent.drafts.p99_ms,
                    self.agent.drafts.mean_ms,
                    self.agent.drafts.max_ms,
                    self.agent.drafts.workloads
                ),
                pass: verdict::drafts(self.agent.drafts.p99_ms),
            },
            Target {
                what: "profile updates off the per-syscall path".into(),
                goal: format!(
                    "agent added / floor added <= {MAX_RATIO_FLOOR}, loop's syscalls learned"
                ),
                value: format!(
                    "{:.1} / {:.1} ns = {:.2} (trace {:.1} ns); getppid learned: {}",
                    o.added_ns(Config::Agent),
                    o.added_ns(floor),
                    self.agent_ratio(),
                    o.added_ns(Config::Sensor),
                    if o.agent_learned.getppid { "yes" } else { "no" }
                ),
                pass: verdict::off_syscall_path(self.agent_ratio(), o.agent_learned.getppid),
            },
            Target {
                what: "detection latency p50 (execve -> gRPC client)".into(),
                goal: format!("< {MAX_DETECT_P50_MS} ms, every trigger delivered"),
                value: format!(
                    "{:.1} ms ({} of {} delivered)",
                    d.pct(0.5),
                    d.matched,
                    d.triggers
                ),
                pass: verdict::detect_p50(d),
            },
            Target {
                what: "detection latency p99".into(),
                goal: format!("< {MAX_DETECT_P99_MS} ms"),
                value: format!(
                    "{:.1} ms (p90 {:.1}, max {:.1})",
                    d.pct(0.99),
                    d.pct(0.9),
                    d.max()
                ),
                pass: verdict::detect_p99(d),
            },
            Target {
                what: format!("anomaly stream {}/s for {} s", st.rate, st.seconds),
                goal: format!(
                    ">= {:.0}% of the rate kept; fast client >= {:.0}% received",
                    MIN_STREAM_RATE_SHARE * 100.0,
                    MIN_FAST_SHARE * 100.0
                ),
                value: format!(
                    "{} in {:.2} s = {:.0}/s; fast client {} = {:.2}%",
                    st.published,
                    st.publish_secs,
                    st.achieved_rate,
                    st.fast.received,
                    verdict::fast_share(st) * 100.0
                ),
                pass: verdict::stream_throughput(st),
            },
            Target {
                what: "stream does not stall the publisher (capture)".into(),
                goal: format!(
                    "publish call p99 < {:.0} ms while a client lags (gets gaps)",
                    MAX_PUBLISH_P99_US / 1000.0
                ),
                value: format!(
                    "p99 {:.1} µs, max {:.1} µs; slow client: {} gaps",
                    st.publish_us.p99, st.publish_us.max, st.slow.gaps
                ),
                pass: verdict::stream_no_stall(st),
            },
            Target {
                what: "stream accounting".into(),
                goal: "received + gap counts == published, both clients, in order".into(),
                value: format!(
                    "fast {} + {}, slow {} + {}, of {}",
                    st.fast.received,
                    st.fast.missed,
                    st.slow.received,
                    st.slow.missed,
                    st.published
                ),
                pass: verdict::stream_accounting(st),
            },
        ]
    }

    fn detect_table(&self) -> String {
        let d = self.detect;
        let rows = vec![
            vec![
                "agent".into(),
                format!(
                    "`sensor run --learning-period {} --flush-interval {}`, gRPC on a Unix socket",
                    detect::LEARNING_PERIOD,
                    detect::FLUSH_INTERVAL
                ),
            ],
            vec![
                "workload".into(),
                format!(
                    "pod `{}/{}`, container `{}` (kubepods cgroup + kubelet files)",
                    detect::NAMESPACE,
                    detect::POD,
                    detect::CONTAINER
                ),
            ],
            vec![
                "baseline".into(),
                format!(
                    "{} x fork+exec /bin/true; profile `ready` {:.1} s after the first exec",
                    detect::LEARN_EXECS,
                    d.ready_secs
                ),
            ],
            vec![
                "triggers".into(),
                format!(
                    "{} distinct execs (symlinks to /bin/true) at {}/s, {} exec'd in {:.2} s",
                    d.triggers,
                    detect::TRIGGER_RATE,
                    d.exec_ok,
                    d.trigger_secs
                ),
            ],
            vec![
                "delivered to `sensor watch --json`".into(),
                format!(
                    "{} of {} ({} duplicates)",
                    d.matched, d.triggers, d.duplicates
                ),
            ],
            vec![
                "latency p50 / p90 / p99".into(),
                format!(
                    "{:.2} / {:.2} / {:.2} ms (targets p50 < {MAX_DETECT_P50_MS} ms: {}, p99 < {MAX_DETECT_P99_MS} ms: {})",
                    d.pct(0.5),
                    d.pct(0.9),
                    d.pct(0.99),
                    pass(verdict::detect_p50(d)),
                    pass(verdict::detect_p99(d))
                ),
            ],
            vec![
                "latency min / max".into(),
                format!("{:.2} / {:.2} ms", d.min(), d.max()),
            ],
            vec![
                "canary (first anomaly after connecting)".into(),
                format!("{:.2} ms", d.canary_ms),
            ],
            vec![
                "attribution".into(),
                format!(
                    "{} of {} `unexpected-exec` with namespace, pod, container and the process's path; {} with ancestry",
                    d.attributed, d.matched, d.with_ancestry
                ),
            ],
            vec![
                "other anomalies".into(),
                if d.other.is_empty() {
                    "none".into()
                } else {
                    d.other
                        .iter()
                        .map(|(r, n)| format!("{r}: {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ],
            vec![
                "agent exit status after SIGINT".into(),
                d.agent_exit
                    .map_or("killed by a signal".to_string(), |c| c.to_string()),
            ],
        ];
        table(&["detection latency", "value"], &rows)
    }

    fn stream_table(&self) -> String {
        let st = self.stream;
        let us = |p: &detect::Pcts| {
            format!(
                "p50 {:.1}, p90 {:.1}, p99 {:.1}, p99.9 {:.1}, max {:.1} µs",
                p.p50, p.p90, p.p99, p.p999, p.max
            )
        };
        let rows = vec![
            vec![
                "publisher".into(),
                format!(
                    "{} anomalies, target {}/s for {} s: achieved {:.0}/s ({:.2} s); at most {:.1} ms behind schedule; {:.2} s CPU",
                    st.published,
                    st.rate,
                    st.seconds,
                    st.achieved_rate,
                    st.publish_secs,
                    st.behind_max_ms,
                    st.publisher_cpu_secs
                ),
            ],
            vec!["log append (before publishing)".into(), us(&st.append_us)],
            vec![
                "publish call (hub, 2 subscribers)".into(),
                format!(
                    "{} (target p99 < {:.0} ms: {})",
                    us(&st.publish_us),
                    MAX_PUBLISH_P99_US / 1000.0,
                    pass(verdict::stream_no_stall(st))
                ),
            ],
            vec![
                "log fsync after the run".into(),
                format!(
                    "{:.1} ms for {:.1} MB (the agent runs it on a blocking thread, off its event loop)",
                    st.log_sync_ms,
                    st.log_bytes as f64 / 1e6
                ),
            ],
            vec![
                "hub".into(),
                format!(
                    "queue {} per subscriber; {} dropped (all for the slow client), {} gap notices",
                    st.queue, st.hub_dropped, st.hub_gaps
                ),
            ],
        ];
        let mut out = table(&["anomaly stream", "value"], &rows);
        out.push('\n');
        let c = |f: &dyn Fn(&detect::StreamClient) -> String| vec![f(&st.fast), f(&st.slow)];
        let row = |what: &str, f: &dyn Fn(&detect::StreamClient) -> String| {
            let mut r = vec![what.to_string()];
            r.extend(c(f));
            r
        };
        let published = st.published;
        let rows = vec![
            row("reads", &|cl| {
                if cl.latency_ms.is_some() {
                    "as fast as it can".into()
                } else {
                    format!(
                        "sleeps {} µs after each message while the publisher runs",
                        st.slow_pause_us
                    )
                }
            }),
            row("received", &|cl| {
                format!(
                    "{} ({:.2}%)",
                    cl.received,
                    cl.received as f64 * 100.0 / published.max(1) as f64
                )
            }),
            row("gap messages / anomalies they count", &|cl| {
                format!("{} / {}", cl.gaps, cl.missed)
            }),
            row("received + missed vs published", &|cl| {
                format!(
                    "{} vs {}: {}",
                    cl.accounted(),
                    published,
                    if verdict::client_exact(cl, published) {
                        "exact"
                    } else {
                        "MISMATCH"
                    }
                )
            }),
            row("out of order or duplicated", &|cl| {
                cl.out_of_order.to_string()
            }),
            row("publish -> received", &|cl| {
                cl.latency_ms.map_or("-".into(), |p| {
                    format!("p50 {:.2}, p99 {:.2}, max {:.2} ms", p.p50, p.p99, p.max)
                })
            }),
            row("accounted for after the publisher stopped", &|cl| {
                format!("{:.2} s", cl.drain_secs)
            }),
            row("error", &|cl| {
                cl.error.clone().unwrap_or_else(|| "none".into())
            }),
        ];
        out.push_str(&table(&["client", "fast client", "slow client"], &rows));
        out
    }

    fn targets_table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .targets()
            .into_iter()
            .map(|t| vec![t.what, t.goal, t.value, pass(t.pass).to_string()])
            .collect();
        table(&["target", "goal", "measured", "result"], &rows)
    }

    fn overhead_table(&self) -> String {
        let o = self.overhead;
        let rows: Vec<Vec<String>> = Config::ALL
            .iter()
            .map(|&c| {
                let (bg_med, bg_max) = o.background(c);
                let samples = &o.samples[c as usize];
                let rounds: Vec<String> = samples
                    .iter()
                    .map(|s| format!("{:.1}", s.ns_per_call))
                    .collect();
                let repeated: usize = samples.iter().map(|s| s.attempts - 1).sum();
                let foreign = samples.iter().filter(|s| s.foreign_probe).count();
                vec![
                    c.label().to_string(),
                    format!("{:.1}", o.median_ns(c)),
                    if c == Config::NoProbe {
                        "-".into()
                    } else {
                        signed(o.added_ns(c))
                    },
                    rounds.join(" "),
                    format!("{bg_med:.2} / {bg_max:.2}"),
                    repeated.to_string(),
                    foreign.to_string(),
                ]
            })
            .collect();
        table(
            &[
                "configuration",
                "median ns/call",
                "added ns/call",
                "per round (ns/call)",
                "background cores (median / max)",
                "loops repeated",
                "kept with a foreign probe",
            ],
            &rows,
        )
    }

    fn flood_table(&self) -> String {
        let (e, c) = (self.exec, self.connect);
        let row = |what: &str, exec: String, connect: String| vec![what.to_string(), exec, connect];
        let rows = vec![
            row(
                "workload",
                format!(
                    "{} x fork+exec /bin/true, {} in parallel",
                    e.requested, e.parallel
                ),
                format!(
                    "TCP connect 127.0.0.1, {CONNECT_PORTS} ports, target {}/s",
                    c.target_rate
                ),
            ),
            row(
                "duration",
                format!("{:.2} s", e.secs),
                format!("{:.2} s", c.secs),
            ),
            row(
                "achieved rate",
                format!("{:.0} exec/s", e.rate),
                format!("{:.0} connects/s", c.rate),
            ),
            row(
                "generated",
                format!("{} (exited 0; {} failed)", e.generated, e.failed),
                format!(
                    "{} (of {} attempted, {} failed; listeners accepted {})",
                    c.generated, c.attempted, c.failed, c.accepted
                ),
            ),
            row(
                "processed",
                format!(
                    "{} exec lines in the cgroup ({} with the pod name)",
                    e.processed, e.named
                ),
                format!(
                    "{} = sum of `connections` over {} egress flow lines ({} connect lines)",
                    c.processed, c.aggregates, c.connect_lines
                ),
            ),
            row(
                "dropped",
                format!(
                    "{} (ringbuf_full_exec {} + queue_full_exec {})",
                    e.dropped(),
                    e.dropped_ringbuf,
                    e.dropped_queue
                ),
                format!(
                    "{} (ringbuf_full_flow {} + queue_full_flow {} + flow_map_full {})",
                    c.dropped(),
                    c.dropped_ringbuf,
                    c.dropped_queue,
                    c.dropped_map_full
                ),
            ),
            row(
                "malformed records (all kinds)",
                e.malformed.to_string(),
                c.malformed.to_string(),
            ),
            row(
                "unaccounted (generated - processed - dropped)",
                e.unaccounted().to_string(),
                c.unaccounted().to_string(),
            ),
            row(
                "agent CPU during the flood (% of one core)",
                format!("{:.1}%", e.agent_cpu_pct),
                format!("{:.1}%", c.agent_cpu_pct),
            ),
            row(
                "agent peak RSS (VmHWM)",
                format!("{:.1} MiB", mib(e.peak_rss_kib)),
                format!("{:.1} MiB", mib(c.peak_rss_kib)),
            ),
        ];
        table(&["", "exec flood", "connect flood"], &rows)
    }

    fn idle_table(&self) -> String {
        let idle = mib(self.exec.idle_rss_kib);
        table(
            &["measure", "value", "target", "result"],
            &[
                vec![
                    format!("VmRSS after {IDLE_SECS} s idle"),
                    format!("{idle:.1} MiB"),
                    format!("< {MAX_IDLE_RSS_MIB} MiB"),
                    pass(verdict::idle_rss(idle)).into(),
                ],
                vec![
                    "VmHWM at that point (start-up peak)".into(),
                    format!("{:.1} MiB", mib(self.exec.idle_hwm_kib)),
                    "-".into(),
                    "-".into(),
                ],
            ],
        )
    }

    fn drafts_table(&self) -> String {
        let (a, d) = (self.agent, &self.agent.drafts);
        let rows = vec![
            vec![
                "input".into(),
                format!(
                    "{} profiles of {} workloads ({} files, {:.1} MB of JSON on disk, written in {:.2} s)",
                    d.profiles,
                    d.workloads,
                    a.state_files,
                    a.state_bytes as f64 / 1e6,
                    a.synth_secs
                ),
            ],
            vec![
                "per workload".into(),
                "seccomp enforce + audit JSON of each container, NetworkPolicy YAML of the workload".into(),
            ],
            vec!["mean".into(), format!("{:.3} ms", d.mean_ms)],
            vec![
                "p99".into(),
                format!(
                    "{:.3} ms (target < {MAX_DRAFT_P99_MS} ms: {})",
                    d.p99_ms,
                    pass(verdict::drafts(d.p99_ms))
                ),
            ],
            vec!["max".into(), format!("{:.3} ms", d.max_ms)],
            vec![
                "drafts written".into(),
                format!(
                    "{:.1} MB ({:.1} KB per workload)",
                    d.bytes as f64 / 1e6,
                    d.bytes as f64 / 1e3 / d.workloads.max(1) as f64
                ),
            ],
        ];
        table(&["draft generation", "value"], &rows)
    }

    fn agent_memory_table(&self) -> String {
        let (l, e) = (&self.agent.loaded, &self.agent.empty);
        let row = |what: String, f: &dyn Fn(&Mem) -> u64| {
            vec![
                what,
                format!("{:.1} MiB", mib(f(&l.idle))),
                format!("{:.1} MiB", mib(f(&e.idle))),
                mib_diff(f(&l.idle), f(&e.idle)),
            ]
        };
        let ready = |what: String, f: &dyn Fn(&Mem) -> u64| {
            vec![
                what,
                format!("{:.1} MiB", mib(f(&l.at_ready))),
                format!("{:.1} MiB", mib(f(&e.at_ready))),
                mib_diff(f(&l.at_ready), f(&e.at_ready)),
            ]
        };
        let exit = |r: &AgentRun| match r.exit_code {
            Some(c) => format!("{c}"),
            None => "killed by a signal".into(),
        };
        let rows = vec![
            {
                let mut r = row(
                    format!(
                        "VmRSS, {} s idle after the list call (target <= {MAX_AGENT_RSS_MIB} MiB)",
                        agent::IDLE_SECS
                    ),
                    &|m| m.vm_rss,
                );
                r[1] = format!(
                    "{} {}",
                    r[1],
                    pass(verdict::agent_rss(self.agent_rss_mib()))
                );
                r
            },
            row("  RssAnon (heap: profiles, caches)".into(), &|m| m.rss_anon),
            row("  RssFile (binary pages, BPF ring buffer)".into(), &|m| {
                m.rss_file
            }),
            row("    of which BPF ring buffer mappings".into(), &|m| {
                m.bpf_map
            }),
            row("VmHWM (peak since start)".into(), &|m| m.vm_hwm),
            ready(
                "VmRSS at `agent running`, before any API call".into(),
                &|m| m.vm_rss,
            ),
            ready("  RssAnon at `agent running`".into(), &|m| m.rss_anon),
            {
                let f = |r: &AgentRun| format!("{:.1} MiB", mib(r.second_list.vm_rss));
                vec![
                    "VmRSS after a second list call".into(),
                    f(l),
                    f(e),
                    mib_diff(l.second_list.vm_rss, e.second_list.vm_rss),
                ]
            },
            vec![
                "profiles restored / listed (workloads)".into(),
                format!("{} / {} ({})", l.restored, l.listed, l.workloads),
                format!("{} / {} ({})", e.restored, e.listed, e.workloads),
                "-".into(),
            ],
            vec![
                "start to `agent running` / to the full list".into(),
                format!("{:.2} s / {:.2} s", l.ready_secs, l.listed_secs),
                format!("{:.2} s / {:.2} s", e.ready_secs, e.listed_secs),
                format!("{:+.2} s", {
                    let d = l.ready_secs - e.ready_secs;
                    if d.abs() < 0.005 { 0.0 } else { d }
                }),
            ],
            vec![
                "exit status after SIGINT".into(),
                exit(l),
                exit(e),
                "-".into(),
            ],
        ];
        table(
            &[
                "agent memory",
                "500 profiles",
                "empty state dir",
                "difference (the profiles)",
            ],
            &rows,
        )
    }

    fn syscall_path_table(&self) -> String {
        let o = self.overhead;
        let lp = &o.agent_learned;
        let rows = vec![
            vec![
                "empty hook (floor)".into(),
                signed(o.added_ns(Config::EmptyHook)),
                "1.00".into(),
            ],
            vec![
                "empty hooks, enter + exit".into(),
                signed(o.added_ns(Config::EmptyHooks)),
                format!(
                    "{:.2}",
                    verdict::ratio(
                        o.added_ns(Config::EmptyHooks),
                        o.added_ns(Config::EmptyHook)
                    )
                ),
            ],
            vec![
                "sensor trace".into(),
                signed(o.added_ns(Config::Sensor)),
                format!("{:.2}", self.ratio(Config::EmptyHook)),
            ],
            vec![
                "sensor run (agent, 500 profiles, learning the loop's pod)".into(),
                signed(o.added_ns(Config::Agent)),
                format!("{:.2}", self.agent_ratio()),
            ],
            vec![
                "agent - trace, median of per-round differences".into(),
                signed(self.agent_minus_trace()),
                "-".into(),
            ],
            vec![
                format!("profile the agent learned for the loop (`{}`)", lp.path),
                if lp.found {
                    format!(
                        "{} syscalls, getppid {}",
                        lp.syscalls,
                        if lp.getppid { "included" } else { "MISSING" }
                    )
                } else {
                    "not written".into()
                },
                "-".into(),
            ],
        ];
        table(&["per-syscall path", "added ns/call", "/ floor"], &rows)
    }

    /// Section 4 of the document.
    fn agent_section(&self, s: &mut String) {
        let (a, l, e) = (self.agent, &self.agent.loaded, &self.agent.empty);
        let o = self.overhead;
        let _ = writeln!(s, "\n## 4. Agent with learned profiles\n");
        let _ = writeln!(
            s,
            "Targets of issue 3: agent RSS <= {MAX_AGENT_RSS_MIB} MiB with {} learned profiles; draft generation \
             < {MAX_DRAFT_P99_MS} ms per workload; profile updates never on the per-syscall path.\n",
            agent::PROFILES
        );
        s.push_str(&self.drafts_table());
        s.push('\n');
        s.push_str(&self.agent_memory_table());
        s.push('\n');
        s.push_str(&self.syscall_path_table());
        let shape = l.shape.as_ref().map_or_else(
            || "(no profile listed)".to_string(),
            |p| {
                format!(
                    "{} syscalls, {} executables, {} egress peers, {} ingress peers, {} DNS names, {} sensitive \
                     files{}",
                    p.syscalls,
                    p.execs,
                    p.egress,
                    p.ingress,
                    p.dns_names,
                    p.files,
                    if p.uniform { " each" } else { " (first profile; they differ)" }
                )
            },
        );
        let _ = writeln!(s, "\nHow it was measured:\n");
        let _ = writeln!(
            s,
            "- Profiles: `sensor-dev synth-profiles --state-dir <tmp> --count {}` writes {} realistic learned \
             profiles ({} workloads x 2 containers, app and sidecar) into a fresh temp dir, as the agent persists \
             them; per `sensor profiles list --json` of the running agent: {shape}.",
            agent::PROFILES,
            l.listed,
            l.workloads
        );
        let _ = writeln!(
            s,
            "- Drafts: `sensor-dev bench-drafts --state-dir <tmp>` loads those profiles, groups them by \
             workload and times, per workload, what the agent generates when a profile changes: the seccomp \
             draft of each container in enforce and audit mode (JSON) and the workload's NetworkPolicy draft \
             (YAML), rendered to text. Mean, p99 and max over the {} workloads; release build, one thread.",
            a.drafts.workloads
        );
        let _ = writeln!(
            s,
            "- Memory: `sensor run --state-dir <tmp> --grpc-listen unix:<tmp>/s.sock` (kubelet dirs pointed at \
             empty temp dirs, so only the synthetic profiles are in it) is started; the bench waits for \
             `agent running` on stderr, checks `state loaded ... restored={}`, reads the memory (the `at agent \
             running` rows), then calls `sensor profiles list --server unix:<tmp>/s.sock --json` until it \
             returns all {} entries, idles {} s and reads `VmRSS`, `RssAnon`, `RssFile` and `VmHWM` from \
             `/proc/<pid>/status` (and the resident size of the `anon_inode:bpf-map` mappings from \
             `/proc/<pid>/smaps`). The agent is stopped with SIGINT and must exit 0. The same is done with an \
             empty state dir (0 profiles): the difference is what the profiles cost.",
            agent::PROFILES,
            agent::PROFILES,
            agent::IDLE_SECS
        );
        let _ = writeln!(
            s,
            "- RssFile includes the kernel's BPF ring buffer: its 8 MiB of data pages are mapped twice, back to \
             back, into the agent (so a record that wraps around reads contiguously), about 16 MiB of RSS here \
             ({:.1} MiB measured) that is kernel memory shared with the BPF map, not memory the agent allocated, \
             and the same with or without profiles. The rest of RssFile is pages of the sensor binary and the C library. RssAnon is \
             the agent's own heap: {:.1} MiB with an empty state, {:.1} MiB with {} profiles.",
            mib(l.idle.bpf_map),
            mib(e.idle.rss_anon),
            mib(l.idle.rss_anon),
            agent::PROFILES
        );
        let _ = writeln!(
            s,
            "- VmHWM is the start-up peak: the kernel BTF (`/sys/kernel/btf/vmlinux`) is parsed while the probes \
             are loaded, and that memory is freed once they are attached ({:.1} MiB with an empty state, {:.1} MiB \
             with the profiles, which are loaded first). It is not the steady state.",
            mib(e.idle.vm_hwm),
            mib(l.idle.vm_hwm)
        );
        let api = l.idle.vm_rss as i64 - l.at_ready.vm_rss as i64;
        let _ = writeln!(
            s,
            "- The list call itself: VmRSS went from {:.1} MiB at `agent running` to {:.1} MiB after the \
             `profiles list` call and {} s of idling ({:+.1} MiB; with an empty state {:+.1} MiB), and to \
             {:.1} MiB after a second call ({:+.1} MiB). `ListProfiles` builds its summaries from a copy of \
             every full profile; what the allocator keeps after that copy is freed stays in RSS.",
            mib(l.at_ready.vm_rss),
            mib(l.idle.vm_rss),
            agent::IDLE_SECS,
            api as f64 / 1024.0,
            (e.idle.vm_rss as i64 - e.at_ready.vm_rss as i64) as f64 / 1024.0,
            mib(l.second_list.vm_rss),
            (l.second_list.vm_rss as i64 - l.idle.vm_rss as i64) as f64 / 1024.0
        );
        let _ = writeln!(
            s,
            "- Profile updates are not on the per-syscall path, by design: the only per-syscall work is the \
             `sys_enter` program, which sets one bit per syscall number in the calling cgroup's bitmap (a plain \
             read first, an atomic OR only the first time; open and listen calls also get the sensitive-path \
             and listener checks), the same program for `sensor trace` and `sensor run`. \
             The agent reads the bitmaps every 2 s (and drains a cgroup's bitmap when it is removed) and merges \
             them into the profiles in user space; profiles and drafts are written every 5 s when changed. \
             Evidence: the getppid loop of section 1 timed with the agent attached ({} profiles loaded, learning \
             the loop pod's own profile) costs {} ns/call against {} ns/call with `sensor trace` (median per-round \
             difference {} ns), and the profile the agent persisted for the loop's pod (`{}`) {}.",
            agent::PROFILES,
            signed(o.added_ns(Config::Agent)),
            signed(o.added_ns(Config::Sensor)),
            signed(self.agent_minus_trace()),
            o.agent_learned.path,
            if o.agent_learned.getppid {
                format!("holds getppid among {} syscalls", o.agent_learned.syscalls)
            } else if o.agent_learned.found {
                "lacks getppid".to_string()
            } else {
                "was not written".to_string()
            }
        );
    }

    /// Section 5 of the document.
    fn detect_section(&self, s: &mut String) {
        let d = self.detect;
        let _ = writeln!(s, "\n## 5. Detection latency\n");
        let _ = writeln!(
            s,
            "Target of issue 4: from the syscall to the message at a gRPC client, p50 < {MAX_DETECT_P50_MS} ms, \
             p99 < {MAX_DETECT_P99_MS} ms.\n"
        );
        s.push_str(&self.detect_table());
        let _ = writeln!(s, "\nHow it was measured:\n");
        let _ = writeln!(
            s,
            "- The real path: `sensor run` (release build, all probes) with `--learning-period {lp} \
             --flush-interval {fi}`, its gRPC API on a Unix socket, kubelet dirs in a temp dir. A pod-shaped \
             cgroup (`<cgroup2>/kubepods/besteffort/pod<uid>/<64-hex id>`) is created after the agent runs, \
             with kubelet's `/var/log/pods`-style files naming it `{ns}/{pod}`, container `{c}` (a bare pod: \
             workload = pod).",
            lp = detect::LEARNING_PERIOD,
            fi = detect::FLUSH_INTERVAL,
            ns = detect::NAMESPACE,
            pod = detect::POD,
            c = detect::CONTAINER
        );
        let _ = writeln!(
            s,
            "- Baseline: `xtask bench-worker` joins that cgroup and fork+execs `/bin/true` {} times at {}/s; the \
             bench polls `sensor profiles list --json` until the profile is `ready` ({:.1} s after the first \
             exec). The triggers later run the very same worker code, so nothing but the exec paths is new.",
            detect::LEARN_EXECS,
            detect::LEARN_RATE,
            d.ready_secs
        );
        let _ = writeln!(
            s,
            "- Client: `sensor watch --json --server unix:<state>/s.sock` is started; a thread of the bench reads \
             its stdout line by line and stamps each line with `CLOCK_REALTIME` as it is read. A canary exec \
             (one more distinct path) proves the stream is live before anything is timed."
        );
        let _ = writeln!(
            s,
            "- Triggers: the worker, in the same cgroup, fork+execs {n} distinct paths `<tmp>/detect-exec/x-<i>`, \
             symlinks to `/bin/true`, at {r}/s, one child at a time. The kernel reports the path as exec'd \
             (the symlink's name), so each is an `unexpected-exec` (R0001) of its own subject and none is \
             aggregated into a repeat. Each child stamps `CLOCK_REALTIME` into memory shared with the worker \
             (an anonymous `MAP_SHARED` mapping, no syscall) right before its `execve`.",
            n = d.triggers,
            r = detect::TRIGGER_RATE
        );
        let _ = writeln!(
            s,
            "- Latency = arrival stamp - trigger stamp, matched by the exec path in the anomaly JSON \
             (`evidence.observed.path`). It covers the exec tracepoint, the ring buffer, attribution, the \
             rules, the anomaly log append, the hub, the gRPC stream over the Unix socket, and watch's \
             decoding and printing. Both stamps are taken on the same host clock. Percentiles are nearest-rank \
             over the {} delivered triggers. The agent is stopped with SIGINT, the cgroup and the symlinks are \
             removed afterwards.",
            d.matched
        );
    }

    /// Section 6 of the document.
    fn stream_section(&self, s: &mut String) {
        let st = self.stream;
        let _ = writeln!(s, "\n## 6. Anomaly stream throughput\n");
        let _ = writeln!(
            s,
            "Target of issue 4: 10k anomalies/s through the stream without stalling capture.\n"
        );
        s.push_str(&self.stream_table());
        let _ = writeln!(s, "\nHow it was measured:\n");
        let _ = writeln!(
            s,
            "- `sensor-dev bench-stream --rate {} --seconds {} --queue {} --slow-pause-us {}` (the developer \
             binary, `sensor/src/devtools/stream.rs`) runs, in one process: the real gRPC server (`api::serve`) on a Unix \
             socket, serving the agent's own anomaly source (`agent::services::Anomalies`: the anomaly log in a \
             temp state dir, and a `Hub` with the agent's per-subscriber queue of {}); a publisher thread that \
             does what the agent's event loop does for each anomaly, `AnomalyLog::append` (which numbers it) \
             then the agent's `publisher` (store the last seq, `Hub::publish`), at {}/s paced by the clock, \
             with realistic unexpected-exec anomalies ({:.0} bytes of JSON each, distinct subjects and seqs); \
             and two clients, each on its own thread and runtime, calling `StreamAnomalies` over the socket.",
            st.rate,
            st.seconds,
            st.queue,
            st.slow_pause_us,
            detect::STREAM_QUEUE,
            st.rate,
            st.log_bytes as f64 / st.published.max(1) as f64
        );
        let _ = writeln!(
            s,
            "- The publisher starts once both clients are subscribed (their stream said `Live`). The fast \
             client reads as fast as it can and measures publish -> received from a per-seq stamp the publisher \
             takes just before `Hub::publish`. The slow client sleeps {} µs after every message while the \
             publisher runs (about 1000 messages/s, a tenth of the rate), then reads on until it has accounted \
             for everything. Each client counts anomalies, gap messages and the anomalies the gaps say it missed, \
             and checks that seqs only increase; a client is complete when received + missed == published.",
            st.slow_pause_us
        );
        let _ = writeln!(
            s,
            "- Publish-call latency is the time of the `publisher` call (store + clone + `Hub::publish`) per \
             anomaly, the log append timed separately. The publisher's rate is published / time from the first \
             to the last publish."
        );
        let _ = writeln!(
            s,
            "- Why capture does not stall: the hub decouples it from the clients. `Hub::publish` pushes into \
             each subscriber's bounded queue ({} entries) under a mutex held only for that push (a consumer holds \
             it only for one pop), and never waits: when a subscriber's queue is full the anomaly is dropped for \
             that subscriber only, counted, and delivered to it in band as a gap message with the exact count, \
             at the place of the loss. Each stream has its own task moving anomalies from its queue to gRPC, so a \
             slow client backs up only its own queue. Above: the slow client missed {} anomalies in {} gaps \
             while the publish call stayed at p99 {:.1} µs (max {:.1} µs) and the fast client got {:.2}%.",
            st.queue,
            st.slow.missed,
            st.slow.gaps,
            st.publish_us.p99,
            st.publish_us.max,
            verdict::fast_share(st) * 100.0
        );
        let _ = writeln!(
            s,
            "- What the hub does not cover: the anomaly log is written on the agent's event loop, before \
             publishing (append p99 {:.1} µs here: a write to the page cache). Its fsync ({:.1} ms here for \
             the {:.1} MB that {} s at {}/s wrote) runs on a blocking thread at each flush tick (every 5 s by \
             default) and for the generation a rotation (at 64 MiB) renames away, so it never holds the loop \
             that drains capture's queue.",
            st.append_us.p99,
            st.log_sync_ms,
            st.log_bytes as f64 / 1e6,
            st.seconds,
            st.rate
        );
    }

    fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let o = self.overhead;
        let max_bg = Config::ALL
            .iter()
            .map(|&c| o.background(c).1)
            .fold(0.0, f64::max);
        if !self.neighbours.is_empty() || max_bg > 0.25 {
            w.push(format!(
                "The machine was not fully quiet: other processes seen running during the bench: {}; \
                 the most CPU used by the rest of the machine during one timed loop was {max_bg:.2} cores. \
                 Interleaved rounds and medians are the mitigation; the per-round values show the spread.",
                if self.neighbours.is_empty() {
                    "none of the watched names".to_string()
                } else {
                    self.neighbours.iter().cloned().collect::<Vec<_>>().join(", ")
                }
            ));
        }
        if self.neighbours.is_empty() && max_bg <= 0.25 && self.foreign.is_empty() {
            w.push(format!(
                "The machine was quiet: no compiler, container runtime, other sensor or bpftrace was seen \
                 running, no other process held a tracing BPF program, and the rest of the machine used at \
                 most {max_bg:.2} cores during any timed loop."
            ));
        }
        if !self.foreign.is_empty() {
            let kept: usize = self
                .overhead
                .samples
                .iter()
                .flatten()
                .filter(|s| s.foreign_probe)
                .count();
            let lost = self.exec.dropped() + self.connect.dropped();
            w.push(format!(
                "Other processes held tracing BPF programs at some point during the bench: {}. Such a probe \
                 (e.g. a test run of the sensor) slows every syscall in every configuration; loops timed while \
                 one was loaded were repeated, and {kept} of the kept measurements still had one around them. \
                 Its events also count in the global loss counters{}.",
                self.foreign.iter().cloned().collect::<Vec<_>>().join(", "),
                if lost == 0 { " (all relevant ones were 0 here)" } else { "" }
            ));
        }
        if !self.exec.removal_seen {
            w.push("The sensor never reported the exec-flood cgroup's removal (no final `syscalls` line for it).".into());
        }
        if !self.connect.flows_seen {
            w.push("No `flow` line for the connect-flood cgroup appeared after its removal (only at the sensor's exit, if at all).".into());
        }
        if self.connect.failed > 0 {
            w.push(format!(
                "{} connects failed (first error: {}); only successful connects count as generated.",
                self.connect.failed,
                self.connect.first_error.as_deref().unwrap_or("?")
            ));
        }
        for (what, r) in [
            ("with 500 profiles", &self.agent.loaded),
            ("with an empty state dir", &self.agent.empty),
        ] {
            if r.exit_code != Some(0) {
                w.push(format!(
                    "The agent {what} did not exit 0 after SIGINT ({}).",
                    r.exit_code
                        .map_or("killed by a signal".to_string(), |c| format!(
                            "exit code {c}"
                        ))
                ));
            }
        }
        if !self.overhead.agent_learned.getppid {
            w.push(format!(
                "The agent attached to the getppid loop did not persist `getppid` in the loop pod's profile \
                 (`{}`: {}).",
                self.overhead.agent_learned.path,
                if self.overhead.agent_learned.found { "found, without getppid" } else { "not written" }
            ));
        }
        let d = self.detect;
        if !d.other.is_empty() {
            w.push(format!(
                "The detection-latency run produced anomalies besides the triggers: {}.",
                d.other
                    .iter()
                    .map(|(r, n)| format!("{r}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if d.matched < d.triggers {
            w.push(format!(
                "Only {} of {} trigger anomalies reached `sensor watch` within {} s after the last trigger.",
                d.matched,
                d.triggers,
                detect::ARRIVAL_WAIT.as_secs()
            ));
        }
        if d.attributed < d.matched {
            w.push(format!(
                "{} of {} trigger anomalies lacked the rule, the pod's names or the process's path.",
                d.matched - d.attributed,
                d.matched
            ));
        }
        if d.agent_exit != Some(0) {
            w.push("The agent of the detection-latency run did not exit 0 after SIGINT.".into());
        }
        for (name, c) in [("fast", &self.stream.fast), ("slow", &self.stream.slow)] {
            if let Some(e) = &c.error {
                w.push(format!("bench-stream's {name} client: {e}."));
            }
        }
        if self.exec.named != self.exec.processed {
            w.push(format!(
                "{} of {} exec lines of the flood cgroup lacked the pod name from the kubelet metadata.",
                self.exec.processed - self.exec.named.min(self.exec.processed),
                self.exec.processed
            ));
        }
        w
    }

    /// What the terminal shows.
    pub fn terminal(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n== per-syscall overhead (getppid, {} calls, medians of {} interleaved rounds) ==",
            self.overhead.calls, self.rounds
        );
        s.push_str(&self.overhead_table());
        let _ = writeln!(s, "\n== floods with accounting ==");
        s.push_str(&self.flood_table());
        let _ = writeln!(s, "\n== idle ==");
        s.push_str(&self.idle_table());
        let _ = writeln!(s, "\n== agent with learned profiles ==");
        s.push_str(&self.drafts_table());
        s.push('\n');
        s.push_str(&self.agent_memory_table());
        s.push('\n');
        s.push_str(&self.syscall_path_table());
        let _ = writeln!(s, "\n== detection latency (execve -> sensor watch) ==");
        s.push_str(&self.detect_table());
        let _ = writeln!(s, "\n== anomaly stream throughput ==");
        s.push_str(&self.stream_table());
        let _ = writeln!(s, "\n== targets ==");
        s.push_str(&self.targets_table());
        for w in self.warnings() {
            let _ = writeln!(s, "\nnote: {w}");
        }
        s
    }

    /// docs/benchmarks.md
    pub fn document(&self) -> String {
        let m = self.machine;
        let o = self.overhead;
        let mut s = String::new();
        let _ = writeln!(s, "# Benchmarks\n");
        let _ = writeln!(
            s,
            "Written by `cargo xtask bench` (source: `xtask/src/bench.rs` and `xtask/src/bench/`); rerun it to \
             refresh this page. Every number below comes from one run of {:.1} minutes.\n",
            self.minutes
        );
        let _ = writeln!(s, "## Machine\n");
        let rows = vec![
            vec!["date".into(), m.date.clone()],
            vec!["kernel".into(), m.kernel.clone()],
            vec!["CPU".into(), format!("{} ({} cores)", m.cpu_model, m.cores)],
            vec!["cgroup2".into(), format!("`{}`", m.cgroup2)],
            vec!["sensor".into(), self.sensor_version.clone()],
            vec![
                "sensitive-file hook".into(),
                format!("`{}`", self.file_hook),
            ],
            vec!["bpftrace".into(), m.bpftrace.clone()],
        ];
        s.push_str(&table(&["", ""], &rows));
        let _ = writeln!(s, "\n## Targets\n");
        s.push_str(&self.targets_table());

        let _ = writeln!(s, "\n## 1. Per-syscall overhead\n");
        s.push_str(&self.overhead_table());
        let _ = writeln!(
            s,
            "\nSensor / bpftrace added: {:.2} (target <= {MAX_RATIO_BPFTRACE}). Sensor / empty hook added: {:.2}; \
             sensor / empty hooks on enter + exit added: {:.2}; the floor of the hooks it attached here is the \
             {} (target <= {MAX_RATIO_FLOOR}).\n",
            self.ratio(Config::Bpftrace),
            self.ratio(Config::EmptyHook),
            self.ratio(Config::EmptyHooks),
            self.floor().label()
        );
        let _ = writeln!(s, "How it was measured:\n");
        let _ = writeln!(
            s,
            "- Workload: {calls} `syscall(SYS_getppid)` in a tight loop (after a warm-up of a tenth as many), timed \
             with `CLOCK_MONOTONIC`; ns/call = elapsed / {calls}. It runs as `xtask bench-worker`, which first pins \
             itself to CPU {cpu} with `sched_setaffinity` (less migration noise) and moves itself into a fresh \
             pod-shaped cgroup2 leaf, `<cgroup2>/kubepods/besteffort/pod<uid>/<64-hex id>` (kubelet's cgroupfs \
             layout, so the sensor treats it as a container), before timing starts. The leaf is removed after each \
             run.",
            calls = o.calls,
            cpu = o.cpu
        );
        let _ = writeln!(
            s,
            "- Configurations: **no probe**; **empty hook** = `sensor-dev empty-hook`, one empty raw tracepoint on \
             `sys_enter`, the floor any syscall hook pays; **empty hooks, enter + exit** = `sensor-dev empty-hook \
             --exit`, empty programs on `sys_enter` and `sys_exit`, the floor of a sensor that hooks both; **sensor trace** = `sensor trace --json` with all its \
             probes (output to a file, discarded) - its sensitive-file probe here is `{file_hook}`: where the \
             kernel refuses trampolines (fentry) that is the `sys_exit` fallback, a second program on every \
             syscall, while `fentry/security_file_open` runs per open only; **sensor run** = the agent (`sensor run`) on a state dir \
             with {profiles} learned profiles, its kubelet dirs naming the loop's cgroup as pod \
             `{ns}/{pod}`, container `{c}`, so it is learning that pod's profile while the loop is timed (see \
             section 4); **bpftrace** = `bpftrace -e '{BPFTRACE_PROGRAM}'` (per-cgroup \
             syscall counts, the nearest off-the-shelf equivalent). Each tool is started fresh for every \
             measurement; the loop starts 0.5 s after the tool says it is attached (`attached`, `capture started`, \
             `agent running`, `Attaching 1 probe...`); the tool is stopped with SIGINT afterwards.",
            file_hook = self.file_hook,
            profiles = agent::PROFILES,
            ns = agent::LOOP_NAMESPACE,
            pod = agent::LOOP_POD,
            c = agent::LOOP_CONTAINER,
        );
        let _ = writeln!(
            s,
            "- Interleaved: each of the {rounds} rounds runs all {CONFIGS} configurations, the order rotated by one per \
             round, so slow drifts (a build running next to the bench, caches, frequency) hit every configuration \
             alike. The table gives the median over rounds and every round's value; added = median(configuration) \
             - median(no probe).",
            rounds = self.rounds
        );
        let _ = writeln!(
            s,
            "- Disturbances: `background cores` is the CPU time the rest of the machine used while a loop was \
             timed (`/proc/stat` busy time minus the loop's own), in cores; it includes the tool's own user space. \
             On this VM a busy second CPU slows the pinned loop as well (shared physical core or host contention). \
             Worse, someone else's tracing BPF program (e.g. a test run of the sensor) slows every syscall; the \
             bench looks for one before and after each loop (processes holding a BPF program of a tracing type, \
             from `/proc/*/fdinfo`). A loop timed with a foreign probe around it, or while the rest of the machine \
             used more than {NOISY_CORES} cores, is run again with the tool still attached, up to {MAX_ATTEMPTS} \
             loops, and the least disturbed is kept (`loops repeated` counts the extra loops; `kept with a \
             foreign probe` the kept ones that still had one)."
        );
        let _ = writeln!(
            s,
            "- Reference (design notes, same kind of machine): no probe ~186 ns/call, empty hook +74..97 ns, \
             bpftrace +310 ns."
        );

        let _ = writeln!(s, "\n## 2. Floods with accounting\n");
        s.push_str(&self.flood_table());
        let _ = writeln!(s, "\nHow it was measured:\n");
        let _ = writeln!(
            s,
            "- `sensor trace --json` runs with its output in a file and kubelet metadata dirs in a temp dir; each \
             flood runs in its own pod-shaped cgroup (with its `/var/log/pods`-style files, so events carry \
             namespace `bench` and the pod name). Events are matched to the flood by `cgroup_id` (the cgroup \
             directory's inode)."
        );
        let _ = writeln!(
            s,
            "- Exec flood: one process forks and `execve`s `/bin/true` {EXEC_COUNT} times, as fast as it can with \
             one child per CPU in flight. generated = children that exited 0 (each exec'd); processed = `exec` \
             lines of the flood cgroup; dropped = `ringbuf_full_exec` + `queue_full_exec` from the final `stats` \
             line."
        );
        let _ = writeln!(
            s,
            "- Connect flood: {CONNECT_THREADS} threads connect to 127.0.0.1, round-robin over {CONNECT_PORTS} \
             listening ports (listeners in the bench process, outside the flood cgroup), paced at \
             {}/s for {CONNECT_SECS} s, closing each connection at once. generated = successful connects; the \
             sensor aggregates flows in the kernel (one `connect` line per cgroup, address, port and protocol, \
             later connects bump a counter), so processed = sum of `connections` over the flood cgroup's egress \
             `flow` lines; dropped = `ringbuf_full_flow` + `queue_full_flow` + `flow_map_full`.",
            self.connect.target_rate
        );
        let _ = writeln!(
            s,
            "- Before stopping the sensor, the bench removes the flood cgroup and waits until the sensor has \
             reported the removal (final `syscalls` line, or the flow summaries at the next sweep), so nothing \
             is still in flight; the sensor is then stopped with SIGINT and prints its `stats` line."
        );
        let _ = writeln!(
            s,
            "- The loss counters are global, not per cgroup: host processes could add to them on a busy machine. \
             The bench runs on a machine where nothing else is expected to flood (see the notes below for what \
             was seen running)."
        );
        let _ = writeln!(
            s,
            "- Agent CPU: utime + stime of the sensor from `/proc/<pid>/stat` over the flood window (worker start \
             to exit), as % of one core (resolution: one clock tick, 10 ms, over the window); the probes' own cost runs in the flooding process's context and is \
             not in this number. Peak RSS: `VmHWM` from `/proc/<pid>/status` just before stopping it (a peak \
             since start: compare with the start-up peak in section 3)."
        );

        let _ = writeln!(s, "\n## 3. Idle RSS\n");
        s.push_str(&self.idle_table());
        let _ = writeln!(
            s,
            "\n`sensor trace --json` started, then {IDLE_SECS} s with no workload, then `VmRSS` from \
             `/proc/<pid>/status` (the exec flood then runs on the same sensor process)."
        );

        self.agent_section(&mut s);
        self.detect_section(&mut s);
        self.stream_section(&mut s);

        let _ = writeln!(s, "\n## Notes\n");
        let _ = writeln!(
            s,
            "- RLIMIT_MEMLOCK cannot be raised on this VM (no CAP_SYS_RESOURCE); bpftrace warns about it and works \
             (the kernel accounts BPF memory to the memory cgroup)."
        );
        for w in self.warnings() {
            let _ = writeln!(s, "- {w}");
        }
        s
    }
}
