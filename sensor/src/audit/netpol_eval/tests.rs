//! Table tests: each rule of the semantics, and the classic traps, as (policies, flow, verdict).

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Deserialize;

use super::*;

/// Policies from a multi-document YAML string (the namespace defaults to `prod`).
fn policies(yaml: &str) -> Vec<NetworkPolicy> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| serde_json::Value::deserialize(doc).expect("test YAML"))
        .filter(|v| !v.is_null())
        .map(|v| {
            let mut p: NetworkPolicy = serde_json::from_value(v).expect("test policy");
            p.metadata.namespace.get_or_insert_with(|| "prod".into());
            p
        })
        .collect()
}

fn labels(s: &str) -> Labels {
    s.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("k=v");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `ns/k=v,k=v@ip` (the `@ip` part optional) or a bare IP for an external endpoint.
fn ep(s: &str) -> Endpoint {
    if let Ok(ip) = s.parse() {
        return Endpoint::External(ip);
    }
    let (rest, ip) = match s.split_once('@') {
        Some((r, ip)) => (r, Some(ip.parse().expect("ip"))),
        None => (s, None),
    };
    let (namespace, l) = rest.split_once('/').expect("ns/labels");
    Endpoint::Pod(Pod {
        namespace: namespace.into(),
        labels: labels(l),
        ip,
    })
}

fn flow(src: &str, dst: &str, proto: Protocol, port: u16) -> Flow {
    Flow {
        source: ep(src),
        destination: ep(dst),
        protocol: proto,
        port,
        port_name: None,
    }
}

fn tcp(src: &str, dst: &str, port: u16) -> Flow {
    flow(src, dst, Protocol::Tcp, port)
}

fn namespaces() -> Namespaces {
    let mut n = Namespaces::default();
    n.insert("prod", labels("env=prod"));
    n.insert("monitoring", labels("team=ops,env=prod"));
    n.insert("dev", labels("env=dev"));
    n
}

const DENY_ALL_INGRESS: &str = "
metadata: {name: deny-all}
spec: {podSelector: {}, policyTypes: [Ingress]}
";

const DB_FROM_API: &str = "
metadata: {name: db}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: api}}}]
    ports: [{port: 5432}]
";

struct Case {
    name: &'static str,
    policies: &'static str,
    flow: Flow,
    allowed: bool,
}

fn check(cases: Vec<Case>) {
    let ns = namespaces();
    let mut failures = Vec::new();
    for c in cases {
        let set = PolicySet::new(&policies(c.policies)).expect(c.name);
        let v = set.evaluate(&c.flow, &ns);
        if v.allowed() != c.allowed {
            failures.push(format!(
                "{}: expected {}, got {v:?}",
                c.name,
                if c.allowed { "allow" } else { "deny" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn selection_and_policy_types() {
    check(vec![
        Case {
            name: "no policy: unrestricted",
            policies: "",
            flow: tcp("prod/app=api", "prod/app=db", 5432),
            allowed: true,
        },
        Case {
            name: "pod not selected by the policy: unrestricted",
            policies: DB_FROM_API,
            flow: tcp("prod/app=web", "prod/app=cache", 6379),
            allowed: true,
        },
        Case {
            name: "policy of another namespace does not select",
            policies: DENY_ALL_INGRESS,
            flow: tcp("dev/app=x", "dev/app=db", 5432),
            allowed: true,
        },
        Case {
            name: "empty podSelector selects every pod of the namespace",
            policies: DENY_ALL_INGRESS,
            flow: tcp("prod/app=x", "prod/app=anything", 80),
            allowed: false,
        },
        Case {
            name: "podSelector absent is {} too",
            policies: "metadata: {name: p}\nspec: {policyTypes: [Ingress]}",
            flow: tcp("prod/app=x", "prod/app=y", 80),
            allowed: false,
        },
        Case {
            name: "policyTypes [Egress] only leaves ingress open",
            policies: "metadata: {name: p}\nspec: {podSelector: {}, policyTypes: [Egress], egress: [{}]}",
            flow: tcp("10.0.0.1", "prod/app=db", 5432),
            allowed: true,
        },
        Case {
            name: "implicit types: ingress rules only -> egress open",
            policies: DB_FROM_API,
            flow: tcp("prod/app=db", "198.51.100.1", 443),
            allowed: true,
        },
        Case {
            name: "implicit types: egress rules present -> Egress restricted",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  egress: [{ports: [{port: 53, protocol: UDP}]}]",
            flow: tcp("prod/app=a", "198.51.100.1", 443),
            allowed: false,
        },
        Case {
            name: "implicit types: Ingress always, even with egress rules",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  egress: [{}]",
            flow: tcp("10.0.0.1", "prod/app=a", 80),
            allowed: false,
        },
        Case {
            name: "implicit types: `egress: []` does not make it an egress policy",
            policies: "metadata: {name: p}\nspec: {podSelector: {}, egress: []}",
            flow: tcp("prod/app=a", "198.51.100.1", 443),
            allowed: true,
        },
        Case {
            name: "explicit Egress with no rules denies all egress",
            policies: "metadata: {name: p}\nspec: {podSelector: {}, policyTypes: [Egress]}",
            flow: tcp("prod/app=a", "198.51.100.1", 443),
            allowed: false,
        },
        Case {
            name: "policies add up: a second policy allowing is enough",
            policies: "metadata: {name: deny-all}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n---\nmetadata: {name: allow-web}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{}]",
            flow: tcp("10.0.0.1", "prod/app=web", 80),
            allowed: true,
        },
        Case {
            name: "matchExpressions select pods",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [front]}]}\n  policyTypes: [Ingress]",
            flow: tcp("10.0.0.1", "prod/app=db,tier=back", 80),
            allowed: false,
        },
        Case {
            name: "matchExpressions NotIn: a pod without the key is selected",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [front]}]}\n  policyTypes: [Ingress]",
            flow: tcp("10.0.0.1", "prod/app=db", 80),
            allowed: false,
        },
        Case {
            name: "matchExpressions In: other value not selected",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {matchExpressions: [{key: tier, operator: In, values: [front]}]}\n  policyTypes: [Ingress]",
            flow: tcp("10.0.0.1", "prod/app=db,tier=back", 80),
            allowed: true,
        },
    ]);
}

#[test]
fn peers() {
    check(vec![
        Case {
            name: "podSelector peer: same namespace",
            policies: DB_FROM_API,
            flow: tcp("prod/app=api", "prod/app=db", 5432),
            allowed: true,
        },
        Case {
            name: "podSelector peer: same labels in another namespace do not match",
            policies: DB_FROM_API,
            flow: tcp("dev/app=api", "prod/app=db", 5432),
            allowed: false,
        },
        Case {
            name: "podSelector peer: other labels",
            policies: DB_FROM_API,
            flow: tcp("prod/app=web", "prod/app=db", 5432),
            allowed: false,
        },
        Case {
            name: "podSelector peer never matches an external address",
            policies: DB_FROM_API,
            flow: tcp("10.1.1.1", "prod/app=db", 5432),
            allowed: false,
        },
        Case {
            name: "namespaceSelector peer: every pod of the selected namespaces",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {team: ops}}}]}]",
            flow: tcp("monitoring/app=prometheus", "prod/app=db", 9100),
            allowed: true,
        },
        Case {
            name: "namespaceSelector peer: other namespace",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {team: ops}}}]}]",
            flow: tcp("dev/app=prometheus", "prod/app=db", 9100),
            allowed: false,
        },
        Case {
            name: "empty namespaceSelector: every namespace",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {}}]}]",
            flow: tcp("dev/app=x", "prod/app=db", 1),
            allowed: true,
        },
        Case {
            name: "empty namespaceSelector still excludes addresses outside the cluster",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {}}]}]",
            flow: tcp("203.0.113.5", "prod/app=db", 1),
            allowed: false,
        },
        // Combined (one peer, AND) vs separate (two peers, OR): the docs' trap.
        Case {
            name: "combined peer: pod labels AND namespace - both right",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: ops}}\n      podSelector: {matchLabels: {app: prometheus}}",
            flow: tcp("monitoring/app=prometheus", "prod/app=db", 9100),
            allowed: true,
        },
        Case {
            name: "combined peer: right namespace, other pod -> denied",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: ops}}\n      podSelector: {matchLabels: {app: prometheus}}",
            flow: tcp("monitoring/app=grafana", "prod/app=db", 9100),
            allowed: false,
        },
        Case {
            name: "combined peer: right pod, other namespace -> denied",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: ops}}\n      podSelector: {matchLabels: {app: prometheus}}",
            flow: tcp("dev/app=prometheus", "prod/app=db", 9100),
            allowed: false,
        },
        Case {
            name: "separate peers: any pod of the namespace (OR)",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: ops}}\n    - podSelector: {matchLabels: {app: prometheus}}",
            flow: tcp("monitoring/app=grafana", "prod/app=db", 9100),
            allowed: true,
        },
        Case {
            name: "separate peers: podSelector alone is the policy's namespace",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: ops}}\n    - podSelector: {matchLabels: {app: prometheus}}",
            flow: tcp("prod/app=prometheus", "prod/app=db", 9100),
            allowed: true,
        },
        Case {
            name: "separate peers: neither",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: ops}}\n    - podSelector: {matchLabels: {app: prometheus}}",
            flow: tcp("dev/app=prometheus", "prod/app=db", 9100),
            allowed: false,
        },
        // `from: []` / no `from` allow everyone; `ingress: [{}]` allows all; `ingress: []` none.
        Case {
            name: "`from: []` allows every source",
            policies: "metadata: {name: p}\nspec: {podSelector: {}, ingress: [{from: []}]}",
            flow: tcp("203.0.113.5", "prod/app=db", 22),
            allowed: true,
        },
        Case {
            name: "no `from` allows every source (ports still apply)",
            policies: "metadata: {name: p}\nspec: {podSelector: {}, ingress: [{ports: [{port: 80}]}]}",
            flow: tcp("dev/app=x", "prod/app=db", 80),
            allowed: true,
        },
        Case {
            name: "`ingress: [{}]` allows all",
            policies: "metadata: {name: p}\nspec: {podSelector: {}, ingress: [{}]}",
            flow: flow("203.0.113.5", "prod/app=db", Protocol::Sctp, 9),
            allowed: true,
        },
        Case {
            name: "`ingress: []` allows nothing",
            policies: "metadata: {name: p}\nspec: {podSelector: {}, ingress: []}",
            flow: tcp("prod/app=a", "prod/app=db", 80),
            allowed: false,
        },
        // ipBlock
        Case {
            name: "ipBlock: inside",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]}]",
            flow: tcp("prod/app=a", "10.2.3.4", 443),
            allowed: true,
        },
        Case {
            name: "ipBlock: in except",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]}]",
            flow: tcp("prod/app=a", "10.1.3.4", 443),
            allowed: false,
        },
        Case {
            name: "ipBlock: outside",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]",
            flow: tcp("prod/app=a", "192.0.2.1", 443),
            allowed: false,
        },
        Case {
            name: "ipBlock: a pod whose IP is inside is matched (our choice)",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 10.244.0.0/16}}]}]",
            flow: tcp("prod/app=a", "dev/app=b@10.244.1.7", 80),
            allowed: true,
        },
        Case {
            name: "ipBlock: a pod with an unknown IP is not matched",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]",
            flow: tcp("prod/app=a", "dev/app=b", 80),
            allowed: false,
        },
        Case {
            name: "ipBlock: IPv6",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{to: [{ipBlock: {cidr: 'fd00:231::/64'}}]}]",
            flow: tcp("prod/app=a", "fd00:231::9", 80),
            allowed: true,
        },
    ]);
}

const WEB_PORTS: &str = "
metadata: {name: web}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - ports:
    - {port: 80}
    - {port: 53, protocol: UDP}
    - {port: 30000, endPort: 30010}
    - {port: http-alt}
    - {protocol: SCTP}
";

#[test]
fn ports() {
    let named = |name: Option<&str>, port| Flow {
        port_name: name.map(str::to_string),
        ..tcp("prod/app=x", "prod/app=web", port)
    };
    check(vec![
        Case {
            name: "numeric port, default protocol TCP",
            policies: WEB_PORTS,
            flow: tcp("prod/app=x", "prod/app=web", 80),
            allowed: true,
        },
        Case {
            name: "numeric port, UDP flow against the TCP default",
            policies: WEB_PORTS,
            flow: flow("prod/app=x", "prod/app=web", Protocol::Udp, 80),
            allowed: false,
        },
        Case {
            name: "UDP port",
            policies: WEB_PORTS,
            flow: flow("prod/app=x", "prod/app=web", Protocol::Udp, 53),
            allowed: true,
        },
        Case {
            name: "UDP port, TCP flow",
            policies: WEB_PORTS,
            flow: tcp("prod/app=x", "prod/app=web", 53),
            allowed: false,
        },
        Case {
            name: "endPort: first",
            policies: WEB_PORTS,
            flow: tcp("prod/app=x", "prod/app=web", 30000),
            allowed: true,
        },
        Case {
            name: "endPort: last",
            policies: WEB_PORTS,
            flow: tcp("prod/app=x", "prod/app=web", 30010),
            allowed: true,
        },
        Case {
            name: "endPort: past the range",
            policies: WEB_PORTS,
            flow: tcp("prod/app=x", "prod/app=web", 30011),
            allowed: false,
        },
        Case {
            name: "protocol without port: every SCTP port",
            policies: WEB_PORTS,
            flow: flow("prod/app=x", "prod/app=web", Protocol::Sctp, 3868),
            allowed: true,
        },
        Case {
            name: "named port resolved",
            policies: WEB_PORTS,
            flow: named(Some("http-alt"), 8080),
            allowed: true,
        },
        Case {
            name: "named port: the destination's port has another name",
            policies: WEB_PORTS,
            flow: named(Some("metrics"), 8080),
            allowed: false,
        },
        Case {
            name: "named port not resolvable (names unknown)",
            policies: WEB_PORTS,
            flow: named(None, 8080),
            allowed: false,
        },
        Case {
            name: "named port in egress to an external address never matches",
            policies: "metadata: {name: p}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: https}]}]",
            flow: Flow {
                port_name: Some("https".into()),
                ..tcp("prod/app=a", "192.0.2.1", 443)
            },
            allowed: false,
        },
    ]);
}

#[test]
fn both_directions_must_allow_pod_to_pod() {
    let egress_only_dns = "metadata: {name: api-egress}\nspec:\n  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: 53, protocol: UDP}]}]";
    let ns = namespaces();
    // api's egress denies 5432, db's ingress allows it: denied by the source side.
    let set = PolicySet::new(&policies(&format!("{egress_only_dns}\n---{DB_FROM_API}"))).unwrap();
    let v = set.evaluate(&tcp("prod/app=api", "prod/app=db", 5432), &ns);
    assert!(!v.allowed(), "{v:?}");
    assert!(!v.egress.allows() && v.ingress.allows(), "{v:?}");
    // db's ingress allows api only: web is denied by the destination side alone.
    let set = PolicySet::new(&policies(DB_FROM_API)).unwrap();
    let v = set.evaluate(&tcp("prod/app=web", "prod/app=db", 5432), &ns);
    assert_eq!(v.egress, Side::Unrestricted);
    assert!(!v.ingress.allows());
    // An external source has no egress side.
    let v = set.evaluate(&tcp("192.0.2.1", "prod/app=db", 5432), &ns);
    assert_eq!(v.egress, Side::External);
}

#[test]
fn verdicts_name_the_policies_and_the_reason() {
    let ns = namespaces();
    let set = PolicySet::new(&policies(&format!(
        "{DENY_ALL_INGRESS}\n---{DB_FROM_API}\n---{WEB_PORTS}"
    )))
    .unwrap();
    let id = |n: &str| PolicyId {
        namespace: "prod".into(),
        name: n.into(),
    };
    let reason_of = |f: Flow| match set.evaluate(&f, &ns).ingress {
        Side::Denied {
            selected_by,
            denials,
        } => (selected_by, denials),
        other => panic!("expected a denial, got {other:?}"),
    };
    // Right peer, wrong port.
    let (selected, denials) = reason_of(tcp("prod/app=api", "prod/app=db", 5433));
    assert_eq!(selected, vec![id("deny-all"), id("db")]);
    assert_eq!(
        denials,
        vec![
            Denial {
                policy: id("deny-all"),
                reason: DenyReason::NoRules
            },
            Denial {
                policy: id("db"),
                reason: DenyReason::PortNotMatched
            },
        ]
    );
    // Wrong peer.
    let (_, denials) = reason_of(tcp("prod/app=web", "prod/app=db", 5432));
    assert_eq!(denials[1].reason, DenyReason::NoPeerMatched);
    // Unresolvable named port.
    let (_, denials) = reason_of(tcp("prod/app=x", "prod/app=web", 8080));
    assert_eq!(
        denials[1].reason,
        DenyReason::NamedPortUnresolved("http-alt".into())
    );
    // Allowed: the policies that selected it, and the one that allowed.
    let v = set.evaluate(&tcp("prod/app=api", "prod/app=db", 5432), &ns);
    assert_eq!(
        v.ingress,
        Side::Allowed {
            selected_by: vec![id("deny-all"), id("db")],
            allowed_by: id("db"),
        }
    );
}

#[test]
fn unknown_namespace_labels_are_assumed_and_reported() {
    let set = PolicySet::new(&policies(
        "metadata: {name: p}\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {team: ops}}\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: tools}}",
    ))
    .unwrap();
    let ns = namespaces();
    // `tools` is unknown: the name label alone decides, no assumption about `team` matters...
    let v = set.evaluate(&tcp("tools/app=x", "prod/app=db", 1), &ns);
    assert!(v.allowed(), "{v:?}");
    // ...but the `team: ops` selector was asked about an unknown namespace: reported.
    assert_eq!(v.assumed_namespaces, ["tools".to_string()].into());
    let v = set.evaluate(&tcp("other/app=x", "prod/app=db", 1), &ns);
    assert!(!v.allowed());
    assert_eq!(v.assumed_namespaces, ["other".to_string()].into());
    // A known namespace is not an assumption.
    let v = set.evaluate(&tcp("monitoring/app=x", "prod/app=db", 1), &ns);
    assert!(v.allowed() && v.assumed_namespaces.is_empty(), "{v:?}");
}

#[test]
fn policies_the_api_server_would_refuse_are_refused() {
    let bad = [
        (
            "spec: {podSelector: {}, policyTypes: [Both]}",
            "unknown type",
        ),
        (
            "spec: {podSelector: {}, ingress: [{from: [{}]}]}",
            "spec.ingress[0].peers[0]: a peer needs",
        ),
        (
            "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]}",
            "cannot be combined",
        ),
        (
            "spec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/40}}]}]}",
            "spec.egress[0].peers[0]: ipBlock.cidr",
        ),
        (
            "spec: {podSelector: {}, ingress: [{ports: [{port: 80, protocol: ICMP}]}]}",
            "unknown protocol",
        ),
        (
            "spec: {podSelector: {}, ingress: [{ports: [{port: http, endPort: 90}]}]}",
            "endPort needs a numeric port",
        ),
        (
            "spec: {podSelector: {}, ingress: [{ports: [{port: 90, endPort: 80}]}]}",
            "below",
        ),
        (
            "spec: {podSelector: {}, ingress: [{ports: [{port: 0}]}]}",
            "not 1 to 65535",
        ),
        (
            "spec: {podSelector: {matchExpressions: [{key: a, operator: In}]}}",
            "spec.podSelector",
        ),
    ];
    for (spec, want) in bad {
        let yaml = format!("metadata: {{name: bad}}\n{spec}");
        let e = PolicySet::new(&policies(&yaml)).unwrap_err();
        assert_eq!(e.policy, "prod/bad");
        assert!(e.to_string().contains(want), "{spec}: {e}");
    }
}

/// The examples of the Kubernetes documentation's NetworkPolicy page, with the verdicts the page
/// states for them.
#[test]
fn kubernetes_docs_examples() {
    // "The NetworkPolicy resource" example (test-network-policy in default).
    let docs_example = "
metadata: {name: test-network-policy, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
    - namespaceSelector: {matchLabels: {project: myproject}}
    - podSelector: {matchLabels: {role: frontend}}
    ports: [{protocol: TCP, port: 6379}]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
    ports: [{protocol: TCP, port: 5978}]
";
    let mut ns = Namespaces::default();
    ns.insert("default", Labels::new());
    ns.insert("myproject-ns", labels("project=myproject"));
    let set = PolicySet::new(&policies(docs_example)).unwrap();
    let cases = [
        // "pods in the default namespace with the label role=frontend" on 6379
        (tcp("default/role=frontend", "default/role=db", 6379), true),
        (tcp("default/role=frontend", "default/role=db", 6380), false),
        // "all pods in a namespace with the label project=myproject"
        (tcp("myproject-ns/app=any", "default/role=db", 6379), true),
        // "IP addresses in 172.17.0.0–172.17.0.255 and 172.17.2.0–172.17.255.255"
        (tcp("172.17.0.9", "default/role=db", 6379), true),
        (tcp("172.17.1.9", "default/role=db", 6379), false),
        (tcp("172.17.200.9", "default/role=db", 6379), true),
        // egress: "any IP within CIDR 10.0.0.0/24 on TCP port 5978"
        (tcp("default/role=db", "10.0.0.77", 5978), true),
        (tcp("default/role=db", "10.0.1.77", 5978), false),
        // a pod not selected (role=frontend) is not restricted
        (tcp("default/role=frontend", "192.0.2.1", 80), true),
    ];
    for (f, want) in cases {
        let v = set.evaluate(&f, &ns);
        assert_eq!(v.allowed(), want, "{f:?}: {v:?}");
    }
    // "Targeting a range of ports": 32000 to 32768 to 10.0.0.0/24.
    let range = "
metadata: {name: multi-port-egress, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
    ports: [{protocol: TCP, port: 32000, endPort: 32768}]
";
    let set = PolicySet::new(&policies(range)).unwrap();
    for (port, want) in [(31999, false), (32000, true), (32768, true), (32769, false)] {
        let v = set.evaluate(&tcp("default/role=db", "10.0.0.1", port), &ns);
        assert_eq!(v.allowed(), want, "port {port}: {v:?}");
    }
}
