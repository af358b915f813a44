//! The Kubernetes drafts checked against the CRDs of the versions they are written for.
//!
//! The CRDs come as Rust types that metio/kube-custom-resources-rs generates with kopium from the
//! upstream CRD files and publishes on crates.io (dev-dependencies, pinned in the root
//! `Cargo.toml`): no CRD file is kept in this repository and nothing is downloaded at test time.
//! For SPO and Cilium, metio's catalog takes the CRD files from the upstream **main branch**
//! (every week), not from releases; the versions were matched to upstream by comparing metio's
//! copy of each CRD (its `crd-catalog/`, at the commit each crate was published from) with the
//! upstream files:
//!
//! - `kcr_security_profiles_operator_x_k8s_io` 2.20250926.143352 (metio 626f353, 2025-09-26):
//!   `SeccompProfile` `v1beta1`, `scope: Cluster`. Its schema is, descriptions included,
//!   identical to the `v1beta1` of SPO v0.9.0, v0.9.1, v0.10.0 and v0.10.1: exactly the releases
//!   the draft's notes send to `v1beta1`. It is the last release on kube 2 / k8s-openapi 0.26;
//!   it has no `v1` (SPO added `v1` on 2026-06-12).
//! - The same crate, 3.20260612.171712 (renamed `kcr_security_profiles_operator_x_k8s_io_v1`,
//!   built on kube 3 / k8s-openapi 0.27 and used for nothing else): `SeccompProfile` `v1`, the
//!   version the draft is written in, from SPO main at 544f34a (2026-06-12, the commit that added
//!   `v1`). Its `v1` schema differs from SPO v1.0.0's (2026-06-22) only in where the enums of
//!   `defaultAction`, `syscalls[].action` and `args[].op` stand (inside `allOf` there, on the
//!   field in v1.0.0; the same values), so kopium types those three as plain strings: the `v1`
//!   check covers field names, types, required fields and the scope, and the enum values are
//!   checked by the `v1beta1` type, whose lists are the same as v1.0.0's `v1`. No crate has
//!   v1.0.0's `v1` itself (3.20260612.171712 is the newest release).
//! - `kcr_cilium_io` 2.20251226.70155 (metio bbab8b3, 2025-12-19): `CiliumNetworkPolicy` `v2`,
//!   namespaced, as on Cilium's main branch from 2025-11-14 (metio's copy did not change from
//!   then to 2025-12-19): v1.19 development, not a release. It could not be compared with
//!   Cilium's release tags here (the repository is too large to fetch); metio's copy of main
//!   changed on 2025-11-14 and 2026-01-16 in `fromRequires`/`toRequires`, which the draft does
//!   not use, and the parts the draft writes (`endpointSelector`, `toEndpoints`, `toCIDR`,
//!   `toFQDNs`, `toPorts` with `ports` and `rules.dns`, `fromEndpoints`, `fromCIDR`) are the same
//!   in all of metio's copies from 2025-07-04 to 2026-01-16. The newest kube-2 release.
//!
//! For each draft, [`check`]:
//! 1. reads it into the CRD's type: a wrong JSON type, an enum value the CRD does not list or a
//!    missing required field fails;
//! 2. writes that value back and compares it with the draft ([`first_difference`]): serde drops
//!    fields a type does not have, so a field the CRD does not define fails, and so do an
//!    `apiVersion` or `kind` other than the CRD's (the types write their own);
//! 3. checks `metadata.namespace` against the scope the type declares
//!    (`kube::Resource::Scope`): none for a cluster-scoped CRD, one for a namespaced CRD.
//!
//! SPO drafts go through [`check_spo`]: as written against `v1`, and with the `apiVersion`
//! changed to `v1beta1` (as the draft's notes tell v0.9.x-v0.10.x users) against `v1beta1`.
//!
//! Not checked, because kopium's types do not carry it: patterns, lengths, `maxItems`, formats,
//! `oneOf`/`anyOf` and CEL rules, and enums on array items (`architectures` of a
//! `SeccompProfile` is a list of strings in the type). `toFQDNs` names are kept to the CRD's
//! `matchName` pattern by `cilium::fqdn_name` and its tests.

use std::any::{TypeId, type_name};

use kcr_cilium_io::v2::ciliumnetworkpolicies::CiliumNetworkPolicy as CrdCiliumNetworkPolicy;
use kcr_security_profiles_operator_x_k8s_io::v1beta1::seccompprofiles::SeccompProfile as CrdSeccompProfileV1beta1;
use kcr_security_profiles_operator_x_k8s_io_v1::v1::seccompprofiles::SeccompProfile as CrdSeccompProfileV1;
use kube::Resource;
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use proptest::prelude::*;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::seccomp::{NodeArch, SeccompMode};
use super::testutil::{arb_workload, profile, proptest_config, testdata};
use super::{cilium, spo};
use crate::ai::Catalogue;
use crate::profile::model::{ApplicationProfile, Resolver};

const SPO_V1BETA1: &str = "security-profiles-operator.x-k8s.io/v1beta1";

#[derive(Debug, PartialEq)]
enum Scope {
    Cluster,
    Namespaced,
}

/// The scope `K`'s CRD declares, from its `kube::Resource` implementation.
fn scope<K: Resource>() -> Scope
where
    K::Scope: 'static,
{
    scope_of::<K, K::Scope, ClusterResourceScope, NamespaceResourceScope>()
}

/// [`scope`] for a type built on kube 3 (the SPO `v1` crate).
fn scope_kube3<K: kube_core_3::Resource>() -> Scope
where
    K::Scope: 'static,
{
    scope_of::<K, K::Scope, kube_core_3::ClusterResourceScope, kube_core_3::NamespaceResourceScope>(
    )
}

/// `Scope` is `K`'s scope type, `C` and `N` kube's cluster and namespace scopes.
fn scope_of<K, S: 'static, C: 'static, N: 'static>() -> Scope {
    if TypeId::of::<S>() == TypeId::of::<C>() {
        Scope::Cluster
    } else if TypeId::of::<S>() == TypeId::of::<N>() {
        Scope::Namespaced
    } else {
        panic!(
            "{} is neither cluster-scoped nor namespaced",
            type_name::<K>()
        )
    }
}

/// Where `draft` and `typed` (the draft read into a CRD type and written back) differ, if they
/// do. Every field of the draft must be in `typed` with the same value. The only tolerated
/// difference is one of representation: an empty value (`null`, `[]`, `{}`) that the type writes
/// for a field the draft leaves out. A field only the draft has is never tolerated, empty or not:
/// that is a field the type dropped, one the CRD does not define.
fn first_difference(draft: &Value, typed: &Value, path: &str) -> Option<String> {
    match (draft, typed) {
        (Value::Object(d), Value::Object(t)) => {
            for (k, dv) in d {
                let p = format!("{path}.{k}");
                match t.get(k) {
                    None => {
                        return Some(format!(
                            "{p}: not in the CRD's type (a field the CRD does not define); \
                             the draft has {dv}"
                        ));
                    }
                    Some(tv) => {
                        if let Some(diff) = first_difference(dv, tv, &p) {
                            return Some(diff);
                        }
                    }
                }
            }
            let is_empty = |v: &Value| match v {
                Value::Null => true,
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            };
            t.iter()
                .find(|(k, tv)| !d.contains_key(*k) && !is_empty(tv))
                .map(|(k, tv)| format!("{path}.{k}: the type writes {tv}, the draft has nothing"))
        }
        (Value::Array(d), Value::Array(t)) if d.len() == t.len() => d
            .iter()
            .zip(t)
            .enumerate()
            .find_map(|(i, (dv, tv))| first_difference(dv, tv, &format!("{path}[{i}]"))),
        // 1 and 1.0 are the same number in JSON.
        (Value::Number(d), Value::Number(t)) if d.as_f64() == t.as_f64() => None,
        _ if draft == typed => None,
        _ => Some(format!(
            "{path}: the draft has {draft}, the type writes {typed}"
        )),
    }
}

/// Checks `draft` against the CRD type `K` (see the module docs); the error says what and where.
fn check<K>(draft: &Value) -> Result<(), String>
where
    K: Resource + Serialize + DeserializeOwned,
    K::Scope: 'static,
{
    check_as::<K>(draft, scope::<K>())
}

/// [`check`] with the scope `K` declares given.
fn check_as<K: Serialize + DeserializeOwned>(draft: &Value, scope: Scope) -> Result<(), String> {
    let typed: K = serde_json::from_value(draft.clone())
        .map_err(|e| format!("not a valid {}: {e}", type_name::<K>()))?;
    let back = serde_json::to_value(&typed).map_err(|e| format!("writing it back: {e}"))?;
    if let Some(diff) = first_difference(draft, &back, "") {
        return Err(diff);
    }
    match (scope, draft.pointer("/metadata/namespace")) {
        (Scope::Cluster, None) => Ok(()),
        (Scope::Cluster, Some(ns)) => Err(format!(
            "the CRD is cluster-scoped but the draft has metadata.namespace {ns}"
        )),
        (Scope::Namespaced, Some(Value::String(ns))) if !ns.is_empty() => Ok(()),
        (Scope::Namespaced, ns) => Err(format!(
            "the CRD is namespaced but the draft's metadata.namespace is {ns:?}"
        )),
    }
}

#[track_caller]
fn assert_fits<K>(what: &str, draft: &Value)
where
    K: Resource + Serialize + DeserializeOwned,
    K::Scope: 'static,
{
    if let Err(e) = check::<K>(draft) {
        panic!("{what} does not fit {}: {e}\n{draft:#}", type_name::<K>());
    }
}

/// The SPO draft checked as written against the `v1` CRD, and with the `apiVersion` the notes
/// give v0.9.x-v0.10.x users against the `v1beta1` CRD (which also checks the enum values the
/// `v1` type has as strings).
fn check_spo(draft: &Value) -> Result<(), String> {
    check_as::<CrdSeccompProfileV1>(draft, scope_kube3::<CrdSeccompProfileV1>())
        .map_err(|e| format!("v1: {e}"))?;
    check::<CrdSeccompProfileV1beta1>(&as_v1beta1(draft)).map_err(|e| format!("v1beta1: {e}"))
}

#[track_caller]
fn assert_spo_fits(what: &str, draft: &Value) {
    if let Err(e) = check_spo(draft) {
        panic!("{what} does not fit SPO's CRD: {e}\n{draft:#}");
    }
}

fn yaml_value(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("a draft is valid YAML")
}

fn golden_value(file: &str) -> Value {
    let path = testdata(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    yaml_value(&text)
}

/// The SPO draft as a v0.9.x/v0.10.x user applies it: with the `apiVersion` the notes say.
fn as_v1beta1(draft: &Value) -> Value {
    let mut d = draft.clone();
    d["apiVersion"] = json!(SPO_V1BETA1);
    d
}

/// The SPO draft as JSON, both as the generator's value and as its YAML text.
fn spo_forms(p: &ApplicationProfile, mode: SeccompMode, arch: NodeArch) -> [Value; 2] {
    let draft = spo::spo_seccomp_profile(p, mode, arch);
    [
        serde_json::to_value(&draft).unwrap(),
        yaml_value(&spo::to_yaml(&draft).unwrap()),
    ]
}

/// The Cilium draft as its JSON and its YAML text.
fn cilium_forms(profiles: &[&ApplicationProfile]) -> [Value; 2] {
    let draft =
        cilium::cilium_network_policy_for_workload(profiles, Catalogue::embedded()).unwrap();
    [
        serde_json::from_str(&cilium::to_json(&draft).unwrap()).unwrap(),
        yaml_value(&cilium::to_yaml(&draft).unwrap()),
    ]
}

const SPO_GOLDEN: &[&str] = &["agent.spo.audit.yaml", "partial.spo.yaml"];
const CILIUM_GOLDEN: &[&str] = &["agent.cilium.yaml", "ipv6.cilium.yaml"];
const PROFILES: &[&str] = &["agent", "partial", "ipv6"];

#[test]
fn the_crd_types_are_the_versions_and_scopes_the_drafts_name() {
    assert_eq!(scope::<CrdSeccompProfileV1beta1>(), Scope::Cluster);
    assert_eq!(CrdSeccompProfileV1beta1::api_version(&()), SPO_V1BETA1);
    assert_eq!(
        SPO_V1BETA1.rsplit_once('/').unwrap().0,
        spo::API_VERSION.rsplit_once('/').unwrap().0,
        "the same group"
    );
    assert_eq!(CrdSeccompProfileV1beta1::kind(&()), "SeccompProfile");
    assert_eq!(scope_kube3::<CrdSeccompProfileV1>(), Scope::Cluster);
    assert_eq!(
        <CrdSeccompProfileV1 as kube_core_3::Resource>::api_version(&()),
        spo::API_VERSION
    );
    assert_eq!(
        <CrdSeccompProfileV1 as kube_core_3::Resource>::kind(&()),
        "SeccompProfile"
    );

    assert_eq!(scope::<CrdCiliumNetworkPolicy>(), Scope::Namespaced);
    assert_eq!(
        CrdCiliumNetworkPolicy::api_version(&()),
        cilium::API_VERSION
    );
    assert_eq!(CrdCiliumNetworkPolicy::kind(&()), "CiliumNetworkPolicy");
}

#[test]
fn golden_spo_drafts_fit_the_v1_and_v1beta1_crds() {
    for file in SPO_GOLDEN {
        assert_spo_fits(file, &golden_value(file));
    }
}

#[test]
fn spo_drafts_of_every_profile_mode_and_arch_fit_the_v1_and_v1beta1_crds() {
    let mut no_syscalls = profile("agent");
    no_syscalls.syscalls.native.clear();
    no_syscalls.syscalls.compat.clear();
    let profiles: Vec<(String, ApplicationProfile)> = PROFILES
        .iter()
        .map(|n| (n.to_string(), profile(n)))
        .chain([("no syscalls".to_string(), no_syscalls)])
        .collect();
    for (name, p) in &profiles {
        for mode in [SeccompMode::Enforce, SeccompMode::Audit] {
            for arch in [NodeArch::X86_64, NodeArch::Aarch64] {
                for draft in spo_forms(p, mode, arch) {
                    let what = format!("{name} {mode:?} {arch:?}");
                    assert_spo_fits(&what, &draft);
                }
            }
        }
    }
}

#[test]
fn golden_cilium_drafts_fit_the_v2_crd() {
    for file in CILIUM_GOLDEN {
        assert_fits::<CrdCiliumNetworkPolicy>(file, &golden_value(file));
    }
}

#[test]
fn cilium_drafts_of_varied_profiles_fit_the_v2_crd() {
    let mut cases: Vec<(&str, Vec<ApplicationProfile>)> =
        PROFILES.iter().map(|n| (*n, vec![profile(n)])).collect();
    // No traffic: the empty rules `{}` that turn on default-deny.
    let mut silent = profile("agent");
    silent.egress.clear();
    silent.ingress.clear();
    silent.resolvers.clear();
    cases.push(("no traffic", vec![silent]));
    // Names without a recorded lookup: the added cluster DNS rule with `rules.dns`.
    let mut unresolved = profile("agent");
    unresolved.resolvers.clear();
    unresolved.egress.retain(|f| f.port != 53);
    cases.push(("names without a resolver", vec![unresolved.clone()]));
    // A resolver outside the cluster: `toCIDR` with `rules.dns`.
    let mut outside = unresolved;
    outside.resolvers.push(Resolver {
        ip: "192.0.2.53".parse().unwrap(),
        cluster_dns: false,
    });
    cases.push(("resolver outside the cluster", vec![outside]));
    // Two containers of one workload.
    let mut sidecar = profile("agent");
    sidecar.key.container = "sidecar".into();
    sidecar.labels.clear();
    cases.push(("two containers", vec![profile("agent"), sidecar]));

    for (name, profiles) in &cases {
        let refs: Vec<&ApplicationProfile> = profiles.iter().collect();
        for draft in cilium_forms(&refs) {
            assert_fits::<CrdCiliumNetworkPolicy>(name, &draft);
        }
    }
}

// ---- the check itself: it fails on what the CRDs do not allow ----

#[test]
fn check_rejects_what_the_spo_crds_do_not_allow() {
    let good = golden_value("partial.spo.yaml");
    check_spo(&good).unwrap();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut d = good.clone();
        f(&mut d);
        check_spo(&d).expect_err("must fail")
    };
    // The Localhost JSON's field, which SPO does not have.
    let e = broken(&|d| d["spec"]["defaultErrnoRet"] = json!(1));
    assert!(
        e.contains("v1: .spec.defaultErrnoRet: not in the CRD's type"),
        "{e}"
    );
    let e = broken(&|d| d["metadata"]["namespace"] = json!("tools"));
    assert!(e.contains("v1: the CRD is cluster-scoped"), "{e}");
    // v1 has the action as a string: v1beta1's enum rejects it.
    let e = broken(&|d| d["spec"]["syscalls"][0]["action"] = json!("SCMP_ACT_ALLOW_ALL"));
    assert!(
        e.starts_with("v1beta1: ") && e.contains("unknown variant `SCMP_ACT_ALLOW_ALL`"),
        "{e}"
    );
    let e = broken(&|d| d["spec"]["defaultAction"] = json!(1));
    assert!(e.contains("v1: not a valid"), "{e}");
    let e = broken(&|d| {
        d["spec"].as_object_mut().unwrap().remove("defaultAction");
    });
    assert!(
        e.contains("v1: not a valid") && e.contains("missing field `defaultAction`"),
        "{e}"
    );
    let e = broken(&|d| {
        d["spec"]["syscalls"][0]
            .as_object_mut()
            .unwrap()
            .remove("names");
    });
    assert!(e.contains("missing field `names`"), "{e}");
    // v1's field that v1beta1 does not have: the draft would not fit v0.9-v0.10.
    let e = broken(&|d| d["spec"]["state"] = json!("Enabled"));
    assert!(
        e.contains("v1beta1: .spec.state: not in the CRD's type"),
        "{e}"
    );
    // An apiVersion other than v1 (v1beta1 is set by the check itself).
    let e = broken(&|d| d["apiVersion"] = json!(SPO_V1BETA1));
    assert!(e.contains("v1: .apiVersion"), "{e}");
    // An empty unknown field is still unknown.
    let e = broken(&|d| d["spec"]["syscallz"] = json!([]));
    assert!(e.contains(".spec.syscallz: not in the CRD's type"), "{e}");
}

#[test]
fn check_rejects_what_the_cilium_crd_does_not_allow() {
    let good = golden_value("agent.cilium.yaml");
    check::<CrdCiliumNetworkPolicy>(&good).unwrap();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut d = good.clone();
        f(&mut d);
        check::<CrdCiliumNetworkPolicy>(&d).expect_err("must fail")
    };
    let e = broken(&|d| d["spec"]["egress"][1]["toFQDNs"][0]["matchNames"] = json!("x.example"));
    assert!(
        e.contains(".spec.egress[1].toFQDNs[0].matchNames: not in the CRD's type"),
        "{e}"
    );
    let e =
        broken(&|d| d["spec"]["egress"][0]["toPorts"][0]["ports"][0]["protocol"] = json!("DNS"));
    assert!(e.contains("unknown variant `DNS`"), "{e}");
    // A port is a string in the CRD.
    let e = broken(&|d| d["spec"]["egress"][0]["toPorts"][0]["ports"][0]["port"] = json!(53));
    assert!(
        e.contains("invalid type: integer `53`, expected a string"),
        "{e}"
    );
    let e = broken(&|d| {
        d["metadata"].as_object_mut().unwrap().remove("namespace");
    });
    assert!(e.contains("namespaced"), "{e}");
    let e = broken(&|d| {
        d.as_object_mut().unwrap().remove("spec");
    });
    assert!(e.contains("missing field `spec`"), "{e}");
    let e = broken(&|d| d["kind"] = json!("CiliumClusterwideNetworkPolicy"));
    assert!(e.contains(".kind"), "{e}");
    let e = broken(&|d| d["metadata"]["labelz"] = json!({"a": "b"}));
    assert!(e.contains(".metadata.labelz: not in the CRD's type"), "{e}");
}

#[test]
fn only_empty_values_the_type_adds_are_tolerated() {
    let d = json!({"a": 1, "b": {"c": "x"}});
    assert_eq!(first_difference(&d, &d, ""), None);
    let t = json!({"a": 1.0, "b": {"c": "x", "e": [], "f": {}, "g": null}});
    assert_eq!(first_difference(&d, &t, ""), None);
    let t = json!({"a": 1, "b": {"c": "x", "e": ["y"]}});
    assert!(first_difference(&d, &t, "").is_some());
    let t = json!({"a": 1, "b": {}});
    assert!(
        first_difference(&d, &t, "")
            .unwrap()
            .starts_with(".b.c: not in")
    );
    let d = json!({"a": [1, 2]});
    assert!(first_difference(&d, &json!({"a": [1]}), "").is_some());
    assert!(first_difference(&d, &json!({"a": [1, 3]}), "").is_some());
}

/// Syscall names from the tables and outside them, native and 32-bit.
fn arb_spo_profile() -> impl Strategy<Value = (ApplicationProfile, SeccompMode, NodeArch)> {
    let pool = vec![
        "read",
        "write",
        "openat",
        "clone3",
        "io_uring_setup",
        "socketcall",
        "_llseek",
        "syscall_511",
        "not_a_syscall",
    ];
    (
        prop::sample::subsequence(pool.clone(), 0..=pool.len()),
        prop::sample::subsequence(pool.clone(), 0..=pool.len()),
        prop::sample::select(vec!["agent", "partial"]),
        "[a-z0-9]([-a-z]{0,4}[a-z0-9])?",
        "[a-z0-9]([-a-z.]{0,8}[a-z0-9])?",
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(native, compat, base, ns, workload, audit, arm)| {
            let mut p = profile(base);
            p.syscalls.native = native.into_iter().map(String::from).collect();
            p.syscalls.compat = compat.into_iter().map(String::from).collect();
            p.key.namespace = ns;
            p.key.workload = workload;
            let mode = if audit {
                SeccompMode::Audit
            } else {
                SeccompMode::Enforce
            };
            let arch = if arm {
                NodeArch::Aarch64
            } else {
                NodeArch::X86_64
            };
            (p, mode, arch)
        })
}

proptest! {
    #![proptest_config(proptest_config(128))]

    #[test]
    fn random_spo_drafts_fit_the_v1_and_v1beta1_crds((p, mode, arch) in arb_spo_profile()) {
        for draft in spo_forms(&p, mode, arch) {
            let r = check_spo(&draft);
            prop_assert!(r.is_ok(), "{}\n{:#}", r.unwrap_err(), draft);
        }
    }

    #[test]
    fn random_cilium_drafts_fit_the_v2_crd(workload in arb_workload()) {
        let profiles: Vec<&ApplicationProfile> = workload.iter().collect();
        for draft in cilium_forms(&profiles) {
            let r = check::<CrdCiliumNetworkPolicy>(&draft);
            prop_assert!(r.is_ok(), "{}\n{:#}", r.unwrap_err(), draft);
        }
    }
}
