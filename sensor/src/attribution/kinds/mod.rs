//! One module per ring-buffer event kind, named as in `capture/kinds/`: each holds that kind's
//! attribution, the handler turning its decoded record into attributed [`Event`]s, with the
//! helpers and tests that are its own. [`attribute`] below is the dispatch, one line per kind:
//! an exhaustive match over [`KernelEvent`], so a kind added to capture's table does not
//! compile until it has a handler here. `pipeline.rs` keeps what is not per kind: holding
//! events back until their container is named, and the sweeps (flows of removed cgroups,
//! orphaned syscall sets, the final flush), which call the `cgroup`, `flow` and `dns` modules.
//!
//! Process lifecycle is three modules (`fork`, `exec`, `exit`), not one: the names match
//! capture's one to one, and the three share no state of their own (the process table they feed
//! is `attribution/processes.rs`).
//!
//! Every handler has one shape, `fn(&Record, &mut Context, &mut Vec<Event>)`: plain functions,
//! called directly (no trait objects, nothing allocated per record but the events). A trait
//! keyed by record type would not fit: `cgroup_mkdir` and `cgroup_rmdir` share one record.
//! What a kind keeps between records is a field of [`State`] (and of [`Context`], which lends
//! it to the handler); its events' [`Detail`](crate::attribution::event::Detail) variant is in
//! `attribution/event.rs`, shared by every consumer.

pub mod cgroup;
pub mod dns;
pub mod exec;
pub mod exit;
pub mod file;
pub mod flow;
pub mod fork;

use std::{collections::HashSet, sync::Arc};

use crate::{
    attribution::{Attributor, event::Detail, event::Event},
    capture::{Collector, KernelEvent, patterns::SensitivePattern},
    clock::BootClock,
};

/// Attributes one decoded record: its kind's handler, one line per kind.
pub fn attribute(event: KernelEvent, cx: &mut Context<'_>, out: &mut Vec<Event>) {
    match event {
        KernelEvent::Fork(r) => fork::attribute(&r, cx, out),
        KernelEvent::Exec(r) => exec::attribute(&r, cx, out),
        KernelEvent::Exit(r) => exit::attribute(&r, cx, out),
        KernelEvent::CgroupMkdir(r) => cgroup::created(&r, cx, out),
        KernelEvent::CgroupRmdir(r) => cgroup::removed(&r, cx, out),
        KernelEvent::Flow(r) => flow::attribute(&r, cx, out),
        KernelEvent::Dns(r) => dns::attribute(&r, cx, out),
        KernelEvent::FileOpen(r) => file::attribute(&r, cx, out),
    }
}

/// What the handlers keep between records (the pipeline owns it).
pub struct State {
    clock: BootClock,
    node: Arc<str>,
    /// Removed cgroups whose flows are drained at the next sweep.
    pub removed: HashSet<u64>,
    pub dns: dns::State,
    /// The sensitive-file patterns candidate opens are matched against.
    patterns: Vec<SensitivePattern>,
}

impl State {
    pub fn new(node: Arc<str>, patterns: Vec<SensitivePattern>) -> Self {
        Self {
            clock: BootClock::new(),
            node,
            removed: HashSet::new(),
            dns: dns::State::default(),
            patterns,
        }
    }

    /// Lends the state, with the attribution tables and the collector, to the handlers.
    pub fn context<'a>(
        &'a mut self,
        attributor: &'a mut Attributor,
        collector: &'a mut Collector,
    ) -> Context<'a> {
        Context {
            attributor,
            collector,
            clock: &self.clock,
            node: &self.node,
            removed: &mut self.removed,
            dns: &mut self.dns,
            patterns: &self.patterns,
        }
    }
}

/// What a handler works with: the attribution tables, the collector (its maps and counters),
/// and the handlers' [`State`].
pub struct Context<'a> {
    pub attributor: &'a mut Attributor,
    pub collector: &'a mut Collector,
    clock: &'a BootClock,
    node: &'a Arc<str>,
    pub removed: &'a mut HashSet<u64>,
    pub dns: &'a mut dns::State,
    pub patterns: &'a [SensitivePattern],
}

impl Context<'_> {
    /// An event of the container of `cgroup_id` (process `pid`, 0 for none), with who it
    /// belongs to and the process's parent and name when the process table knows them.
    pub fn event(&mut self, ts_ns: u64, cgroup_id: u64, pid: u32, detail: Detail) -> Event {
        let who = self.attributor.attribute(cgroup_id, pid);
        let (ppid, comm) = match self.attributor.processes.get(pid) {
            Some(p) if pid != 0 => (Some(p.ppid), Some(p.comm.clone())),
            _ => (None, None),
        };
        Event {
            time: self.clock.rfc3339(ts_ns),
            kind: detail.kind(),
            node: self.node.clone(),
            who,
            pid: (pid != 0).then_some(pid),
            ppid,
            comm,
            detail,
        }
    }
}
