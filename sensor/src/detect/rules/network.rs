//! `unexpected-egress` and `cloud-metadata-access`: a connection to a peer (ip, port, protocol)
//! outside the baseline, and any to the cloud metadata service.

use std::{collections::BTreeMap, net::IpAddr};

use super::helpers::{add_completeness, mitre, summary, truncate};
use crate::detect::model::{Evidence, Finding, RuleId, Severity};
use crate::profile::model::{ApplicationProfile, Flow, Protocol};

/// The cloud instance metadata service: EC2 IMDS over IPv4 (also GCP's and Azure's address)
/// and IPv6.
pub(super) fn is_metadata_service(ip: IpAddr) -> bool {
    const V4: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(169, 254, 169, 254));
    const V6: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254));
    let ip = ip.to_canonical();
    ip == V4 || ip == V6
}

pub(super) fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

pub fn protocol_from_name(p: &str) -> Option<Protocol> {
    match p {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        _ => None,
    }
}

pub(super) fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// `10.0.0.1:443/tcp`, `[fd00:ec2::254]:80/tcp`.
pub(super) fn peer_subject(ip: IpAddr, port: u16, proto: &str) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("{v4}:{port}/{proto}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}/{proto}"),
    }
}

pub(super) fn flow_subject(f: &Flow) -> String {
    peer_subject(f.ip, f.port, proto_name(f.protocol))
}

pub(super) fn connect_rules(
    profile: &ApplicationProfile,
    protocol: &str,
    ip: IpAddr,
    port: u16,
    origin: &str,
    names: &[String],
) -> Option<Finding> {
    let proto = protocol_from_name(protocol);
    let known = proto.is_some_and(|p| {
        profile
            .egress
            .iter()
            .any(|f| same_ip(f.ip, ip) && f.port == port && f.protocol == p)
    });
    if known {
        return None;
    }
    let imds = is_metadata_service(ip);
    // A known service at a new address (DNS rotation, CDNs): the container resolved this
    // address from a name the baseline already reaches on this port.
    let same_service = proto.is_some_and(|p| {
        profile.egress.iter().any(|f| {
            f.port == port
                && f.protocol == p
                && f.dns_names
                    .iter()
                    .any(|known| names.iter().any(|n| n.eq_ignore_ascii_case(known)))
        })
    });
    if same_service && !imds {
        return None;
    }
    if proto.is_none() && !imds {
        // The profile only records TCP and UDP: another protocol cannot be judged.
        return None;
    }
    let subject = peer_subject(ip, port, protocol);
    let same_ip_flows: Vec<String> = profile
        .egress
        .iter()
        .filter(|f| same_ip(f.ip, ip))
        .map(flow_subject)
        .collect();
    let mut baseline = BTreeMap::from([(
        "egressPeers".to_string(),
        summary(
            profile.egress.len(),
            profile.egress.iter().map(flow_subject),
            4,
        ),
    )]);
    if !same_ip_flows.is_empty() {
        baseline.insert(
            "sameAddress".into(),
            summary(same_ip_flows.len(), same_ip_flows.iter().cloned(), 4),
        );
    }
    add_completeness(&mut baseline, profile, profile.overflow.egress, "egress");
    let mut observed = BTreeMap::from([
        ("peer".to_string(), subject.clone()),
        ("origin".to_string(), origin.to_string()),
    ]);
    if !names.is_empty() {
        observed.insert(
            "names".into(),
            summary(names.len(), names.iter().map(|n| truncate(n, 80)), 3),
        );
    }
    let loopback = ip.to_canonical().is_loopback();
    if loopback {
        observed.insert("scope".into(), "loopback".into());
    }
    let evidence = Evidence { baseline, observed };
    if imds {
        return Some(Finding {
            rule: RuleId::CloudMetadataAccess,
            kubescape_rule: None,
            severity: Severity::Critical,
            mitre: mitre(
                "T1552.005",
                "Unsecured Credentials: Cloud Instance Metadata API",
                "Credential Access",
            ),
            message: if same_ip_flows.is_empty() {
                format!(
                    "Connection to the cloud instance metadata service ({subject}), which the \
                     baseline never contacted: node credentials may be being harvested."
                )
            } else {
                format!(
                    "Connection to the cloud instance metadata service on {subject}, a port or \
                     protocol the baseline never used there."
                )
            },
            subject,
            evidence,
        });
    }
    let what = match (loopback, origin) {
        (true, _) => "Loopback connection",
        (false, "udp-send") => "UDP traffic",
        _ => "Connection",
    };
    Some(Finding {
        rule: RuleId::UnexpectedEgress,
        kubescape_rule: Some("R0011".into()),
        severity: Severity::Medium,
        // T1071 Application Layer Protocol (Command and Control): a peer outside the baseline is
        // first of all a possible C2 channel; what leaves over it is judged by the volume rules
        // (Kubescape tags R0011 with T1041).
        mitre: mitre("T1071", "Application Layer Protocol", "Command and Control"),
        message: if same_ip_flows.is_empty() {
            format!("{what} to {subject}, a peer the baseline never contacted.")
        } else {
            format!(
                "{what} to {subject}, a port or protocol the baseline never used with that address."
            )
        },
        subject,
        evidence,
    })
}
