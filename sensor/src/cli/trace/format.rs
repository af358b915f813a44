//! Output of `sensor trace`: JSON lines, or aligned columns for people.

use std::io::Write;

use crate::{
    attribution::event::{Detail, Event},
    capture::CountersSnapshot,
};

pub struct Printer {
    json: bool,
    header_done: bool,
}

impl Printer {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            header_done: false,
        }
    }

    pub fn write(&mut self, w: &mut impl Write, e: &Event) -> std::io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut *w, e)?;
            return writeln!(w);
        }
        if !self.header_done {
            writeln!(
                w,
                "{:<12} {:<48} {:>7} {:>7} {:<8} DETAILS",
                "TIME", "WHERE", "PID", "PPID", "EVENT"
            )?;
            self.header_done = true;
        }
        writeln!(w, "{}", line(e))
    }
}

/// One human-readable line.
pub fn line(e: &Event) -> String {
    let time = e.time.get(11..23).unwrap_or(&e.time);
    let num = |n: Option<u32>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
    format!(
        "{:<12} {:<48} {:>7} {:>7} {:<8} {}",
        time,
        e.who.display(),
        num(e.pid),
        num(e.ppid),
        e.kind,
        details(&e.detail)
    )
}

fn details(d: &Detail) -> String {
    match d {
        Detail::Exec {
            path,
            args,
            args_truncated,
            uid,
            workload_start,
            ..
        } => {
            // argv[0] is noise when it just repeats the program name; shown when it differs
            // (busybox applets run as /proc/self/exe with argv[0] = the applet).
            let base = path.rsplit('/').next().unwrap_or(path);
            let skip = usize::from(args.first().is_some_and(|a0| a0 == path || a0 == base));
            let argv0 = match args.first() {
                Some(a0) if skip == 0 => format!(" [{a0}]"),
                _ => String::new(),
            };
            let rest = args
                .iter()
                .skip(1)
                .map(|a| quote(a))
                .collect::<Vec<_>>()
                .join(" ");
            let more = if *args_truncated { " [truncated]" } else { "" };
            let start = if *workload_start {
                " (workload start)"
            } else {
                ""
            };
            format!("{path}{argv0} {rest}{more} uid={uid}{start}")
        }
        Detail::Exit { exit_code, signal } => match (exit_code, signal) {
            (_, Some(s)) => format!("killed by signal {s}"),
            (Some(c), None) => format!("exit code {c}"),
            (None, None) => "exit".to_string(),
        },
        Detail::Connect {
            protocol,
            remote_ip,
            remote_port,
            origin,
            remote_names,
        } => {
            let names = if remote_names.is_empty() {
                String::new()
            } else {
                format!(" ({})", remote_names.join(", "))
            };
            format!(
                "{protocol} -> {}{names} [{origin}]",
                socket(remote_ip, *remote_port)
            )
        }
        Detail::Accept {
            protocol,
            remote_ip,
            local_ip,
            local_port,
        } => {
            format!(
                "{protocol} {} <- {remote_ip}",
                socket(local_ip, *local_port)
            )
        }
        Detail::Dns {
            question,
            qtype,
            rcode,
            answers,
            ..
        } => {
            let ips: Vec<String> = answers.iter().map(|a| a.ip.to_string()).collect();
            format!("{question} {qtype} {rcode} -> [{}]", ips.join(", "))
        }
        Detail::File {
            path,
            requested,
            pattern,
            ..
        } => match requested {
            Some(r) => format!("open {path} as {} (matches {pattern})", quote(r)),
            None => format!("open {path} (matches {pattern})"),
        },
        Detail::Syscalls {
            native,
            compat,
            setup_native,
            setup_compat,
            is_final,
        } => {
            let state = if *is_final { "final" } else { "so far" };
            let compat = if compat.is_empty() {
                String::new()
            } else {
                format!(" + {} compat", compat.len())
            };
            let setup = match setup_native.len() + setup_compat.len() {
                0 => String::new(),
                n => format!(" [runtime setup before the first exec: {n}]"),
            };
            format!(
                "{} syscalls{compat} ({state}){setup}: {}",
                native.len(),
                native.join(",")
            )
        }
        Detail::Flow {
            protocol,
            direction,
            remote_ip,
            remote_port,
            local_port,
            connections,
            bytes_sent,
            bytes_recv,
            ..
        } => {
            let peer = if *direction == "ingress" {
                format!(":{local_port} <- {remote_ip}")
            } else {
                format!("-> {}", socket(remote_ip, *remote_port))
            };
            format!(
                "{protocol} {direction} {peer} conns={connections} sent={bytes_sent}B recv={bytes_recv}B"
            )
        }
    }
}

fn socket(ip: &std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        std::net::IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

fn quote(arg: &str) -> String {
    if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        format!("{arg:?}")
    } else {
        arg.to_string()
    }
}

/// The closing counters line.
pub fn stats(s: &CountersSnapshot) -> String {
    let events: Vec<String> = s
        .events
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let lost: Vec<String> = s
        .lost
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "events: {}; lost: {}",
        if events.is_empty() {
            "none".to_string()
        } else {
            events.join(" ")
        },
        if lost.is_empty() {
            "none".to_string()
        } else {
            lost.join(" ")
        }
    )
}
