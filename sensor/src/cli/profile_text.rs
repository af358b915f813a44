//! Profiles for people: the summary table, the text of one profile, graduation lines; and the
//! JSON summary rows.

use std::fmt::Write as _;

use crate::ai::{self, PeerClass};
use crate::api::{convert, proto};
use crate::profile::model::Protocol;

pub(super) fn summary_json(s: &proto::ProfileSummary) -> serde_json::Value {
    let o = s.overflow.unwrap_or_default();
    serde_json::json!({
        "namespace": s.namespace,
        "workload": s.workload,
        "container": s.container,
        "workloadKind": convert::workload_kind_name(s.workload_kind),
        "status": convert::status_name(s.status),
        "completeness": convert::completeness_name(s.completeness),
        "learningStarted": convert::rfc3339(s.learning_started.as_ref()),
        "readyAt": s.ready_at.as_ref().map(|t| convert::rfc3339(Some(t))),
        "updated": convert::rfc3339(s.updated.as_ref()),
        "syscalls": s.syscalls,
        "execs": s.execs,
        "egress": s.egress,
        "ingress": s.ingress,
        "files": s.files,
        "dnsNames": s.dns_names,
        "overflow": {
            "execs": o.execs, "egress": o.egress, "ingress": o.ingress,
            "files": o.files, "dns": o.dns,
        },
        "graduation": s.graduation.as_ref().map(|g| serde_json::json!({
            "evaluated": g.evaluated,
            "readyToEnforce": g.ready_to_enforce,
            "reasons": g.reasons,
            "network": g.network.as_ref().map(|n| serde_json::json!({
                "audited": n.audited,
                "readyToEnforce": n.ready_to_enforce,
                "summary": n.summary,
            })),
        })),
    })
}

/// NAMESPACE WORKLOAD CONTAINER STATUS COMPLETENESS SYSCALLS EXECS EGRESS INGRESS FILES; a
/// count whose list overflowed gets a `+`.
pub fn summary_table(rows: &[proto::ProfileSummary]) -> String {
    let header = [
        "NAMESPACE",
        "WORKLOAD",
        "CONTAINER",
        "STATUS",
        "COMPLETENESS",
        "SYSCALLS",
        "EXECS",
        "EGRESS",
        "INGRESS",
        "FILES",
    ];
    let capped = |n: u32, hit: bool| if hit { format!("{n}+") } else { n.to_string() };
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for s in rows {
        let o = s.overflow.unwrap_or_default();
        table.push(vec![
            s.namespace.clone(),
            s.workload.clone(),
            s.container.clone(),
            convert::status_name(s.status).to_string(),
            convert::completeness_name(s.completeness).to_string(),
            s.syscalls.to_string(),
            capped(s.execs, o.execs),
            capped(s.egress, o.egress),
            capped(s.ingress, o.ingress),
            capped(s.files, o.files),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The readable form of `sensor profiles show`.
/// The class of an egress flow against the embedded AI catalogue.
pub(super) fn egress_class(f: &proto::Flow) -> PeerClass {
    let protocol = match proto::Protocol::try_from(f.protocol) {
        Ok(proto::Protocol::Udp) => Protocol::Udp,
        _ => Protocol::Tcp,
    };
    ai::classify::classify_peer(
        &f.dns_names,
        u16::try_from(f.port).unwrap_or_default(),
        protocol,
        f.peer.as_ref().is_some_and(|p| !p.pod.is_empty()),
        ai::Catalogue::embedded(),
    )
}

pub fn profile_text(p: &proto::Profile) -> String {
    let mut o = String::new();
    let ts = |t: &Option<prost_types::Timestamp>| convert::rfc3339(t.as_ref());
    let _ = writeln!(
        o,
        "{}/{}/{} ({})",
        p.namespace,
        p.workload,
        p.container,
        convert::workload_kind_name(p.workload_kind)
    );
    let period = p
        .learning_period
        .and_then(|d| std::time::Duration::try_from(d).ok())
        .map(|d| humantime::format_duration(d).to_string())
        .unwrap_or_default();
    let status = convert::status_name(p.status);
    let _ = match &p.ready_at {
        Some(_) => writeln!(
            o,
            "status:        {status} since {} (learning started {}, period {period})",
            ts(&p.ready_at),
            ts(&p.learning_started)
        ),
        None => writeln!(
            o,
            "status:        {status} (started {}, period {period})",
            ts(&p.learning_started)
        ),
    };
    let completeness = convert::completeness_name(p.completeness);
    if p.partial_reasons.is_empty() {
        let _ = writeln!(o, "completeness:  {completeness}");
    } else {
        let _ = writeln!(
            o,
            "completeness:  {completeness}: {}",
            p.partial_reasons.join("; ")
        );
    }
    if let Some(g) = &p.graduation {
        let _ = writeln!(o, "enforce:       {}", graduation_text(g));
        // The network draft's own graduation (live NetworkPolicy audit).
        if let Some(n) = &g.network {
            let _ = writeln!(o, "network:       {}", n.summary);
        }
    }
    let _ = writeln!(o, "updated:       {}", ts(&p.updated));
    let _ = writeln!(o, "pods:          {}", list_or_none(&p.pods));
    let _ = writeln!(o, "nodes:         {}", list_or_none(&p.nodes));
    if !p.labels.is_empty() {
        let mut labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let _ = writeln!(o, "labels:        {}", labels.join(", "));
    }
    let overflow = convert::overflow_names(p.overflow.as_ref());
    if overflow.is_empty() {
        let _ = writeln!(o, "overflow:      none");
    } else {
        let _ = writeln!(
            o,
            "overflow:      {} (entries beyond the caps were not recorded)",
            overflow.join(", ")
        );
    }

    let sys = p.syscalls.clone().unwrap_or_default();
    let _ = writeln!(
        o,
        "\nsyscalls ({} native, {} compat):",
        sys.native.len(),
        sys.compat.len()
    );
    syscall_lists(&mut o, &sys.native, &sys.compat);
    if let Some(setup) = sys
        .runtime_setup
        .filter(|s| !s.native.is_empty() || !s.compat.is_empty())
    {
        let how = if setup.inferred {
            "inferred by name when the profile was upgraded"
        } else {
            "observed"
        };
        let _ = writeln!(
            o,
            "runtime setup before the first exec ({} native, {} compat; {how}; not in the drafts):",
            setup.native.len(),
            setup.compat.len()
        );
        syscall_lists(&mut o, &setup.native, &setup.compat);
    }

    let _ = writeln!(o, "\nexecs ({}):", p.execs.len());
    for e in &p.execs {
        let mut cmd = e.path.clone();
        for a in &e.args {
            cmd.push(' ');
            cmd.push_str(a);
        }
        let _ = writeln!(o, "  {cmd}  ({})", plural(e.count, "run"));
    }

    let _ = writeln!(o, "\negress ({}):", p.egress.len());
    let classes: Vec<PeerClass> = p.egress.iter().map(egress_class).collect();
    if !p.egress.is_empty() {
        let _ = writeln!(o, "  calls {}", ai::classify::summary(&classes));
    }
    for (f, class) in p.egress.iter().zip(&classes) {
        let _ = writeln!(
            o,
            "  {}:{}/{}{}{}  {}  [{}]",
            host(&f.ip),
            f.port,
            convert::protocol_name(f.protocol),
            names(&f.dns_names),
            peer(f.peer.as_ref()),
            flow_counts(f),
            match &class.name {
                Some(name) => format!("{}: {name}", class.class.label()),
                None => class.class.label().to_string(),
            }
        );
    }
    let _ = writeln!(o, "\ningress ({}):", p.ingress.len());
    for f in &p.ingress {
        let _ = writeln!(
            o,
            "  from {} to port {}/{}{}  {}",
            f.ip,
            f.port,
            convert::protocol_name(f.protocol),
            peer(f.peer.as_ref()),
            flow_counts(f)
        );
    }

    let _ = writeln!(o, "\ndns ({}):", p.dns.len());
    for d in &p.dns {
        let _ = writeln!(
            o,
            "  {} -> {}  ({})",
            d.name,
            list_or_none(&d.addresses),
            plural(d.count, "answer")
        );
    }
    if !p.resolvers.is_empty() {
        let resolvers: Vec<String> = p
            .resolvers
            .iter()
            .map(|r| {
                if r.cluster_dns {
                    format!("{} (cluster DNS)", r.ip)
                } else {
                    r.ip.clone()
                }
            })
            .collect();
        let _ = writeln!(o, "  resolvers: {}", resolvers.join(", "));
    }

    let _ = writeln!(o, "\nfiles ({}):", p.files.len());
    for f in &p.files {
        let _ = writeln!(
            o,
            "  {}  (pattern {}, {})",
            f.path,
            f.pattern,
            plural(f.count, "open")
        );
    }
    o
}

/// `ready`, `not ready: <reasons>`, or `unknown (...)`.
pub fn graduation_text(g: &proto::Graduation) -> String {
    if !g.evaluated {
        return "unknown (the agent does not evaluate graduation)".to_string();
    }
    if g.ready_to_enforce {
        return "ready (drafts can be enforced)".to_string();
    }
    if g.reasons.is_empty() {
        "not ready".to_string()
    } else {
        format!("not ready: {}", g.reasons.join("; "))
    }
}

pub(super) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// IPv6 addresses in brackets before `:port`.
pub(super) fn host(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

pub(super) fn names(dns_names: &[String]) -> String {
    if dns_names.is_empty() {
        String::new()
    } else {
        format!("  {}", dns_names.join(", "))
    }
}

pub(super) fn peer(p: Option<&proto::Peer>) -> String {
    let Some(p) = p else {
        return String::new();
    };
    let mut s = format!("  peer {}", p.namespace);
    if !p.workload.is_empty() {
        s.push('/');
        s.push_str(&p.workload);
    }
    if !p.pod.is_empty() {
        let _ = write!(s, " (pod {})", p.pod);
    }
    s
}

pub(super) fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub(super) fn flow_counts(f: &proto::Flow) -> String {
    format!(
        "{}, {} sent, {} received",
        plural(f.connections, "conn"),
        bytes(f.bytes_sent),
        bytes(f.bytes_recv)
    )
}

pub(super) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Native names, then compat ones under their own heading when there are any.
pub(super) fn syscall_lists(o: &mut String, native: &[String], compat: &[String]) {
    wrap_words(o, native, "  ");
    if !compat.is_empty() {
        let _ = writeln!(o, "  compat:");
        wrap_words(o, compat, "    ");
    }
}

/// Words on lines of at most ~100 columns.
pub(super) fn wrap_words(out: &mut String, words: &[String], indent: &str) {
    if words.is_empty() {
        let _ = writeln!(out, "{indent}-");
        return;
    }
    let mut line = String::from(indent);
    for w in words {
        if line.len() > indent.len() && line.len() + 1 + w.len() > 100 {
            let _ = writeln!(out, "{line}");
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(w);
    }
    let _ = writeln!(out, "{line}");
}
