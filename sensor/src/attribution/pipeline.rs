//! The user-space pipeline: decoded kernel events in, attributed [`Event`]s out. Each record
//! goes to its kind's handler (`attribution/kinds/`); what is left here is not per kind:
//! events of containers whose names are not known yet are held back, and the sweeps flush a
//! removed container's flows and drop its state, drain syscall sets of cgroups gone unseen,
//! and flush everything at exit.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    attribution::{
        Attributor, Scope,
        event::Event,
        kinds::{self, cgroup, dns, flow},
        workload_losses::WorkloadCounter,
    },
    capture::{Collector, KernelEvent, patterns::SensitivePattern},
    clock::BootClock,
};

/// How long events of a container whose names are not known yet are held back: kubelet writes
/// the container-log symlink only after the container started.
const HOLD: Duration = Duration::from_secs(2);
/// Events held at once (beyond that they go out with what is known).
const MAX_HELD: usize = 16 * 1024;

pub struct Pipeline {
    pub attributor: Attributor,
    /// What the kinds' handlers keep between records.
    kinds: kinds::State,
    held: Held,
}

/// Events of cgroups whose names are incomplete.
#[derive(Default)]
struct Held {
    /// Per cgroup, oldest first.
    by_cgroup: HashMap<u64, VecDeque<(Instant, Event)>>,
    count: usize,
}

impl Held {
    /// Sends an event out, or holds it while its container's names may still appear. Events of
    /// a cgroup with held events are held too, so per-cgroup order is kept.
    fn route(&mut self, ev: Event, out: &mut Vec<Event>) {
        let cgroup_id = ev.who.cgroup_id;
        if (!ev.who.is_complete() || self.by_cgroup.contains_key(&cgroup_id))
            && self.count < MAX_HELD
        {
            self.by_cgroup
                .entry(cgroup_id)
                .or_default()
                .push_back((Instant::now(), ev));
            self.count += 1;
        } else {
            out.push(ev);
        }
    }
}

impl Pipeline {
    pub fn new(attributor: Attributor, node: Arc<str>, patterns: Vec<SensitivePattern>) -> Self {
        Self {
            attributor,
            kinds: kinds::State::new(node, patterns),
            held: Held::default(),
        }
    }

    /// Unparsable DNS payloads counted by workload (for the metrics endpoint).
    pub fn dns_unparsed_by_workload(&self) -> &Arc<WorkloadCounter> {
        self.kinds.dns.unparsed_by_workload()
    }

    /// Re-resolves held cgroups; releases their events once the names are known or the hold
    /// expired (or always, with `force`).
    pub fn release_held(&mut self, out: &mut Vec<Event>, force: bool) {
        let held = &mut self.held;
        if held.by_cgroup.is_empty() {
            return;
        }
        let cgroups: Vec<u64> = held.by_cgroup.keys().copied().collect();
        for cgroup_id in cgroups {
            let Some(queue) = held.by_cgroup.get(&cgroup_id) else {
                continue;
            };
            let oldest = queue.front().map(|(t, _)| *t);
            let pid = queue.iter().find_map(|(_, e)| e.pid).unwrap_or(0);
            let who = self.attributor.attribute(cgroup_id, pid);
            let expired = oldest.is_some_and(|t| t.elapsed() >= HOLD);
            if who.is_complete() || expired || force {
                let queue = held.by_cgroup.remove(&cgroup_id).unwrap_or_default();
                held.count -= queue.len();
                out.extend(queue.into_iter().map(|(_, mut e)| {
                    e.who = who.clone();
                    e
                }));
            }
        }
    }

    pub fn handle(&mut self, event: KernelEvent, collector: &mut Collector, out: &mut Vec<Event>) {
        let mut fresh = Vec::new();
        let mut cx = self.kinds.context(&mut self.attributor, collector);
        kinds::attribute(event, &mut cx, &mut fresh);
        for ev in fresh {
            self.held.route(ev, out);
        }
    }

    /// Names the container of `cgroup_id` resolved `ip` to (from the DNS answers it received).
    pub fn remote_names_of(&self, cgroup_id: u64, ip: &IpAddr) -> Vec<String> {
        self.kinds.dns.remote_names(cgroup_id, ip)
    }

    /// Drains syscall sets whose cgroup is gone although its removal event never arrived
    /// (ring buffer full): without this their slots would leak. Call now and then.
    pub fn collect_orphans(&mut self, collector: &mut Collector, out: &mut Vec<Event>) {
        // Slots first, then the walk: a cgroup that had a slot and is missing from a later walk
        // is really gone (ids are never reused); the other order could drain a newborn cgroup.
        let with_slots = collector.syscall_sets.read_all();
        let live = self.attributor.live_cgroups();
        if live.is_empty() {
            return; // could not walk the cgroup fs: never drain on no information
        }
        let now = BootClock::boot_now_ns();
        let mut cx = self.kinds.context(&mut self.attributor, collector);
        for (cgroup_id, _) in with_slots {
            if !live.contains(&cgroup_id)
                && let Some(set) = cx.collector.syscall_sets.drain(cgroup_id)
            {
                let ev = cgroup::syscalls(&mut cx, now, cgroup_id, &set, true);
                self.held.route(ev, out);
                cx.removed.insert(cgroup_id);
            }
        }
    }

    /// Periodic work: held events, and final flow summaries of removed cgroups (then their
    /// state is dropped).
    pub fn sweep(&mut self, collector: &mut Collector, out: &mut Vec<Event>) {
        self.release_held(out, false);
        let mut cx = self.kinds.context(&mut self.attributor, collector);
        dns::settle_losses(&mut cx, HOLD, false);
        if cx.removed.is_empty() {
            return;
        }
        let removed = std::mem::take(cx.removed);
        for (key, stats) in cx.collector.flows.drain_cgroups(&removed) {
            let ev = flow::summary(&mut cx, &key, &stats);
            self.held.route(ev, out);
        }
        for id in removed {
            cx.dns.forget(id);
            cx.attributor.forget(id);
        }
    }

    /// At exit: syscall sets and flows of everything still alive (not final: they may grow).
    pub fn finish(&mut self, collector: &mut Collector, out: &mut Vec<Event>) {
        self.sweep(collector, out);
        self.release_held(out, true);
        let mut cx = self.kinds.context(&mut self.attributor, collector);
        dns::settle_losses(&mut cx, HOLD, true);
        let now = BootClock::boot_now_ns();
        for (cgroup_id, set) in cx.collector.syscall_sets.read_all() {
            let ev = cgroup::syscalls(&mut cx, now, cgroup_id, &set, false);
            if ev.who.scope != Scope::Unknown {
                out.push(ev);
            }
        }
        for (key, stats) in cx.collector.flows.read_all() {
            out.push(flow::summary(&mut cx, &key, &stats));
        }
    }
}
