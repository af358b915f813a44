//! The client commands' flags and their text output.

use clap::Parser;

use std::path::PathBuf;

use super::{drafts::*, profile_text::*, profiles::*, remote::*};
use crate::api::testutil::sample_profile;
use crate::api::{ListenAddr, convert, proto};
use crate::cli::{Cli, Command};
use crate::profile::model::ProfileKey;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("sensor").chain(args.iter().copied()))
}

#[test]
fn flags() {
    let cli = parse(&[
        "seccomp", "-n", "ns", "-w", "w", "-c", "c", "--mode", "audit",
    ])
    .unwrap();
    let Command::Seccomp(a) = cli.command else {
        panic!()
    };
    assert_eq!(a.mode, Mode::Audit);
    assert_eq!(a.format, SeccompFormat::Json);
    assert_eq!(
        a.target.server.server,
        ListenAddr::Unix("/run/sensor/sensor.sock".into())
    );
    // Offline: the names are not needed.
    assert!(parse(&["seccomp", "--profile", "p.json"]).is_ok());
    assert!(parse(&["netpol", "--profile", "a.json", "--profile", "b.json"]).is_ok());
    assert!(parse(&["profiles", "show", "--profile", "p.json", "--json"]).is_ok());
}

#[test]
fn drift_and_tls_flags() {
    let cli = parse(&["profiles", "accept", "17"]).unwrap();
    let Command::Profiles(ProfilesCommand::Accept(a)) = cli.command else {
        panic!()
    };
    assert_eq!(a.seq, 17);
    let cli = parse(&["profiles", "relearn", "-n", "shop", "-w", "checkout"]).unwrap();
    let Command::Profiles(ProfilesCommand::Relearn(r)) = cli.command else {
        panic!()
    };
    assert_eq!(
        (r.namespace.as_str(), r.workload.as_str()),
        ("shop", "checkout")
    );
    let cli = parse(&[
        "profiles",
        "list",
        "--server",
        "tcp://127.0.0.1:50051",
        "--tls-ca",
        "ca.pem",
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
        "--tls-server-name",
        "agent.example",
    ])
    .unwrap();
    let Command::Profiles(ProfilesCommand::List(l)) = cli.command else {
        panic!()
    };
    let tls = l.server.options(false).tls.unwrap();
    assert_eq!(tls.ca, PathBuf::from("ca.pem"));
    assert_eq!(tls.key, Some(PathBuf::from("k.pem")));
    assert_eq!(tls.server_name.as_deref(), Some("agent.example"));
    for args in [
        &["profiles", "accept"][..],
        &["profiles", "accept", "0"],
        &["profiles", "accept", "x"],
        &["profiles", "relearn", "-n", "shop"],
        &[
            "profiles",
            "list",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ],
        &[
            "profiles",
            "list",
            "--tls-ca",
            "ca.pem",
            "--tls-cert",
            "c.pem",
        ],
        &["profiles", "list", "--tls-key", "k.pem"],
    ] {
        let e = parse(args).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
    }
}

#[test]
fn graduation_for_people() {
    let g = |evaluated, ready, reasons: &[&str]| proto::Graduation {
        evaluated,
        ready_to_enforce: ready,
        reasons: reasons.iter().map(|r| r.to_string()).collect(),
        network: None,
    };
    assert_eq!(
        graduation_text(&g(true, true, &[])),
        "ready (drafts can be enforced)"
    );
    assert_eq!(
        graduation_text(&g(true, false, &["still learning", "partial profile"])),
        "not ready: still learning; partial profile"
    );
    assert!(graduation_text(&g(false, false, &[])).starts_with("unknown"));
    let mut p = convert::profile(&sample_profile(ProfileKey {
        namespace: "shop".into(),
        workload: "checkout".into(),
        container: "app".into(),
    }));
    assert!(
        !profile_text(&p).contains("enforce:"),
        "offline: no judgement"
    );
    p.graduation = Some(g(true, false, &["still learning"]));
    assert!(profile_text(&p).contains("\nenforce:       not ready: still learning\n"));
    p.graduation.as_mut().unwrap().network = Some(proto::NetworkGraduation {
        audited: true,
        ready_to_enforce: false,
        summary: "not ready: would-deny 3m ago".into(),
    });
    assert!(profile_text(&p).contains(
        "\nenforce:       not ready: still learning\nnetwork:       not ready: would-deny 3m ago\n"
    ));
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["seccomp", "-n", "ns", "-w", "w"][..],
        &[
            "seccomp", "-n", "ns", "-w", "w", "-c", "c", "--mode", "strict",
        ],
        &["netpol", "-n", "ns"],
        &["netpol", "-n", "ns", "-w", "w", "--flavor", "calico"],
        &["profiles", "list", "--server", "http://x:1"],
    ] {
        let e = parse(args).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
    }
    let e = parse(&["profiles", "list", "--server", "127.0.0.1"]).unwrap_err();
    assert!(e.to_string().contains("missing port"), "{e}");
}

#[test]
fn table_and_text() {
    let key = |c: &str| ProfileKey {
        namespace: "shop".into(),
        workload: "checkout".into(),
        container: c.into(),
    };
    let mut p = sample_profile(key("app"));
    p.overflow.egress = true;
    let table = summary_table(&[convert::summary(&p)]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAMESPACE  WORKLOAD  CONTAINER  STATUS"),
        "{table}"
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        [
            "shop", "checkout", "app", "ready", "full", "6", "1", "1+", "0", "0"
        ]
    );
    let text = profile_text(&convert::profile(&p));
    assert!(
        text.starts_with("shop/checkout/app (deployment)\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "203.0.113.7:443/tcp  api.stripe.com  12 conns, 4.0 KiB sent, 16.0 KiB received"
        ),
        "{text}"
    );
    assert!(text.contains("overflow:      egress"), "{text}");
    assert!(
        text.contains(
            "syscalls (6 native, 0 compat):\n  read write openat close connect exit_group\n"
        ),
        "{text}"
    );
}

#[test]
fn bad_profile_files_give_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    std::fs::write(&path, "{\n  \"version\": 1,\n  \"namespace\": ,\n}\n").unwrap();
    let e = load_profile(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:3:", path.display())) && e.contains("not a valid profile"),
        "{e}"
    );
    assert!(!e.contains(" at line "), "{e}");
    let missing = dir.path().join("missing.json");
    let e = load_profile(&missing).unwrap_err().to_string();
    assert!(e.starts_with(&missing.display().to_string()), "{e}");
}
