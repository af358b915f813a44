//! `sensor trace`: loads its own probes and prints live attributed events, like execsnoop +
//! tcpconnect + a DNS sniffer, per pod. Human columns by default, JSON lines with `--json`.

use super::format;

use std::{io::Write, path::PathBuf, time::Duration};

use anyhow::Result;
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    attribution::event::Event,
    attribution::kubelet::KubeletDirs,
    capture::{CountersSnapshot, patterns::SensitivePattern},
    daemon::capture::{Capture, CaptureOptions},
};

/// Which events to print.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub container: Option<String>,
}

impl Filter {
    pub fn matches(&self, e: &Event) -> bool {
        let field = |want: &Option<String>, have: &Option<String>| match want {
            None => true,
            Some(w) => have.as_deref() == Some(w.as_str()),
        };
        field(&self.namespace, &e.who.namespace)
            && field(&self.pod, &e.who.pod)
            && field(&self.container, &e.who.container)
    }
}

pub struct TraceOptions {
    pub json: bool,
    pub filter: Filter,
    pub kubelet: KubeletDirs,
    pub proc_root: PathBuf,
    pub btf_path: PathBuf,
    pub ring_buffer_bytes: u32,
    pub patterns: Vec<SensitivePattern>,
    pub node_name: String,
}

#[derive(Serialize)]
struct StatsLine<'a> {
    kind: &'static str,
    node: &'a str,
    #[serde(flatten)]
    counters: &'a CountersSnapshot,
}

pub async fn run(opts: TraceOptions) -> Result<()> {
    let Capture {
        mut collector,
        mut events,
        mut pipeline,
        ..
    } = Capture::start(&CaptureOptions {
        kubelet: opts.kubelet.clone(),
        proc_root: opts.proc_root.clone(),
        btf_path: opts.btf_path.clone(),
        ring_buffer_bytes: opts.ring_buffer_bytes,
        patterns: opts.patterns.clone(),
        node_name: opts.node_name.clone(),
    })?;
    let node = opts.node_name.clone();

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    // Frequent: it also releases events held while a new container's names appear.
    let mut sweep = tokio::time::interval(Duration::from_millis(100));
    let mut orphans = tokio::time::interval(Duration::from_secs(60));
    let stdout = std::io::stdout();
    let mut out = Vec::new();
    let mut printer = format::Printer::new(opts.json);
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                pipeline.handle(ev, &mut collector, &mut out);
                // Drain what is already queued before writing, to batch the writes.
                while out.len() < 1024 {
                    match events.try_recv() {
                        Ok(ev) => pipeline.handle(ev, &mut collector, &mut out),
                        Err(_) => break,
                    }
                }
            }
            _ = sweep.tick() => pipeline.sweep(&mut collector, &mut out),
            _ = orphans.tick() => pipeline.collect_orphans(&mut collector, &mut out),
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
        write_events(&stdout, &mut printer, &opts.filter, &mut out)?;
    }
    // Let the reader hand over what the kernel already produced, then flush summaries.
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Ok(ev) = events.try_recv() {
        pipeline.handle(ev, &mut collector, &mut out);
    }
    pipeline.finish(&mut collector, &mut out);
    write_events(&stdout, &mut printer, &opts.filter, &mut out)?;

    let snapshot = collector.snapshot();
    let mut lock = stdout.lock();
    if opts.json {
        let line = StatsLine {
            kind: "stats",
            node: &node,
            counters: &snapshot,
        };
        serde_json::to_writer(&mut lock, &line)?;
        writeln!(lock)?;
    } else {
        writeln!(lock, "{}", format::stats(&snapshot))?;
    }
    lock.flush()?;
    Ok(())
}

fn write_events(
    stdout: &std::io::Stdout,
    printer: &mut format::Printer,
    filter: &Filter,
    out: &mut Vec<Event>,
) -> Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let mut lock = stdout.lock();
    for e in out.drain(..) {
        if filter.matches(&e) {
            printer.write(&mut lock, &e)?;
        }
    }
    lock.flush()?;
    Ok(())
}
