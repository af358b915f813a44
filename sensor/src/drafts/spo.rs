//! The seccomp draft as a Security Profiles Operator (SPO) `SeccompProfile` object.
//!
//! Written for SPO v1.0.0 and later: `security-profiles-operator.x-k8s.io/v1` (the storage
//! version since v1.0.0), a cluster-scoped object. SPO made `SeccompProfile` cluster-scoped in
//! v0.9.0, so the object carries no namespace and its name must be unique across namespaces;
//! v0.9.x and v0.10.x serve only `v1beta1`, whose spec has the same fields for what the draft
//! sets (change `apiVersion` for them). Releases before v0.9.0 are namespaced and not targeted.
//!
//! SPO's daemon writes a cluster-scoped profile to `<kubelet seccomp dir>/operator/<name>.json`
//! on every node, so a pod references it as `localhostProfile: operator/<name>.json`
//! ([`localhost_profile`]).
//!
//! The tests (`crd_schema.rs`) check the drafts against SPO's CRD as kopium generates it
//! (crate `kcr_security_profiles_operator_x_k8s_io`): as written against `v1` (SPO main when `v1`
//! was added, the same fields and types as v1.0.0), and with `apiVersion` changed as the notes
//! say against the `v1beta1` of SPO v0.9.0 to v0.10.1; both cluster-scoped.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::seccomp::{NodeArch, ScmpArch, SeccompAction, SeccompMode, SyscallRule};
use super::{ANNOTATION_PREFIX, draft_notes, seccomp};
use crate::profile::model::{ApplicationProfile, ProfileKey};

pub const API_VERSION: &str = "security-profiles-operator.x-k8s.io/v1";
/// The SPO releases the object is written for (see the module docs).
pub const FITS: &str = "Security Profiles Operator v1.0.0 and later";
/// SPO's directory under kubelet's seccomp directory.
pub const OPERATOR_DIR: &str = "operator";
/// Longest name: SPO writes `<name>.json`, and a file name has at most 255 bytes.
const MAX_NAME: usize = 250;

/// `SeccompProfile` with the field names of SPO's `api/seccompprofile/v1` types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoSeccompProfile {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: SpoSeccompSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoSeccompSpec {
    pub default_action: SeccompAction,
    pub architectures: Vec<ScmpArch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<SyscallRule>,
}

/// The object's name, `<namespace>.<workload>.<container>.<mode>`: unique across namespaces and
/// modes (enforce and audit can coexist). Namespace and container names have no dots, so the
/// first and the last two dot-separated parts are unambiguous and different keys give
/// different names. Each part is made a valid name part; a name longer than [`MAX_NAME`] is cut
/// and ends with a hash of the whole name.
pub fn profile_name(key: &ProfileKey, mode: SeccompMode) -> String {
    let label = |s: &str| super::dns1123_subdomain(&s.replace('.', "-"));
    let name = format!(
        "{}.{}.{}.{}",
        label(&key.namespace),
        super::dns1123_subdomain(&key.workload),
        label(&key.container),
        mode.as_str()
    );
    crate::text::fit_with_hash(&name, MAX_NAME)
}

/// What a pod sets as `securityContext.seccompProfile.localhostProfile` once SPO has installed
/// the object: `operator/<name>.json`.
pub fn localhost_profile(key: &ProfileKey, mode: SeccompMode) -> String {
    format!("{OPERATOR_DIR}/{}.json", profile_name(key, mode))
}

/// What to know before applying the object: the SPO releases it fits and the pod's
/// `localhostProfile`. Printed next to the draft by the CLI and the gRPC API.
pub fn usage_notes(key: &ProfileKey, mode: SeccompMode) -> Vec<String> {
    vec![
        format!(
            "{API_VERSION} SeccompProfile, cluster-scoped: for {FITS} (v0.9.x-v0.10.x serve only \
             v1beta1: change apiVersion to security-profiles-operator.x-k8s.io/v1beta1, the spec \
             is the same; releases before v0.9.0 are not supported)"
        ),
        format!(
            "SPO installs it on every node under /var/lib/kubelet/seccomp/; pods reference it as \
             localhostProfile: {}",
            localhost_profile(key, mode)
        ),
    ]
}

/// The draft of `profile` as an SPO object (see [`profile_name`]). SPO has no
/// `defaultErrnoRet`: its `SCMP_ACT_ERRNO` returns EPERM, as the Localhost JSON does.
/// Annotations: `sensor.io/profile`, `sensor.io/mode`, `sensor.io/status`,
/// `sensor.io/completeness`, `sensor.io/localhost-profile`, and when there are any
/// `sensor.io/notes` (one per line) and `sensor.io/unknown-syscalls` (comma-separated).
pub fn spo_seccomp_profile(
    profile: &ApplicationProfile,
    mode: SeccompMode,
    arch: NodeArch,
) -> SpoSeccompProfile {
    let draft = seccomp::seccomp_draft(profile, mode, arch);
    let key = &profile.key;
    let mut annotations = BTreeMap::new();
    let mut annotate = |k: &str, v: String| {
        annotations.insert(format!("{ANNOTATION_PREFIX}{k}"), v);
    };
    annotate("profile", key.to_string());
    annotate("mode", mode.as_str().to_string());
    annotate("status", enum_str(&profile.status));
    annotate("completeness", enum_str(&profile.completeness));
    annotate("localhost-profile", localhost_profile(key, mode));
    let notes = draft_notes(profile);
    if !notes.is_empty() {
        annotate("notes", notes.join("\n"));
    }
    let unknown = seccomp::unknown_syscalls(profile, arch);
    if !unknown.is_empty() {
        annotate("unknown-syscalls", unknown.join(","));
    }
    SpoSeccompProfile {
        api_version: API_VERSION.to_string(),
        kind: "SeccompProfile".to_string(),
        metadata: ObjectMeta {
            name: Some(profile_name(key, mode)),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: SpoSeccompSpec {
            default_action: draft.default_action,
            architectures: draft.architectures,
            syscalls: draft.syscalls,
        },
    }
}

/// The SPO object as YAML.
pub fn to_yaml(profile: &SpoSeccompProfile) -> Result<String, super::DraftError> {
    super::yaml_string(profile)
}

/// The serde name of a unit enum variant (`ready`, `partial`...).
fn enum_str<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::drafts::is_dns1123_subdomain;
    use crate::drafts::testutil::{golden, profile, proptest_config};

    fn key(namespace: &str, workload: &str, container: &str) -> ProfileKey {
        ProfileKey {
            namespace: namespace.into(),
            workload: workload.into(),
            container: container.into(),
        }
    }

    // The golden files were read and checked by hand: v1, no namespace, the name with the
    // namespace and the mode, the operator/ localhostProfile annotation, notes in the
    // annotations. Regenerate with UPDATE_GOLDEN=1 and review the diff before committing.
    #[test]
    fn golden_spo_objects() {
        golden(
            "agent.spo.audit.yaml",
            &to_yaml(&spo_seccomp_profile(
                &profile("agent"),
                SeccompMode::Audit,
                NodeArch::X86_64,
            ))
            .unwrap(),
        );
        golden(
            "partial.spo.yaml",
            &to_yaml(&spo_seccomp_profile(
                &profile("partial"),
                SeccompMode::Enforce,
                NodeArch::X86_64,
            ))
            .unwrap(),
        );
    }

    #[test]
    fn object_is_cluster_scoped_v1_with_the_localhost_profile() {
        let v = serde_json::to_value(spo_seccomp_profile(
            &profile("agent"),
            SeccompMode::Enforce,
            NodeArch::X86_64,
        ))
        .unwrap();
        assert_eq!(v["apiVersion"], "security-profiles-operator.x-k8s.io/v1");
        assert_eq!(v["kind"], "SeccompProfile");
        assert!(v["metadata"].get("namespace").is_none(), "{v}");
        assert_eq!(v["metadata"]["name"], "agents.research-agent.agent.enforce");
        assert_eq!(
            v["metadata"]["annotations"]["sensor.io/localhost-profile"],
            "operator/agents.research-agent.agent.enforce.json"
        );
        assert_eq!(v["spec"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(v["spec"].get("defaultErrnoRet").is_none());
        assert_eq!(v["spec"]["syscalls"][0]["action"], "SCMP_ACT_ALLOW");
        assert_eq!(
            v["metadata"]["annotations"]["sensor.io/unknown-syscalls"],
            "syscall_511"
        );
    }

    // The collision the namespaced `<workload>-<container>` name had once SPO went
    // cluster-scoped: the same workload and container in two namespaces.
    #[test]
    fn same_workload_in_two_namespaces_gets_two_names() {
        let a = key("team-a", "api", "app");
        let b = key("team-b", "api", "app");
        assert_ne!(
            profile_name(&a, SeccompMode::Enforce),
            profile_name(&b, SeccompMode::Enforce)
        );
        assert_eq!(
            localhost_profile(&a, SeccompMode::Audit),
            "operator/team-a.api.app.audit.json"
        );
        // Dashes do not make two keys meet: `a-b`/`c` and `a`/`b-c`.
        assert_ne!(
            profile_name(&key("a-b", "c", "d"), SeccompMode::Enforce),
            profile_name(&key("a", "b-c", "d"), SeccompMode::Enforce)
        );
    }

    #[test]
    fn notes_name_the_spo_versions_and_the_localhost_profile() {
        let notes = usage_notes(&key("shop", "checkout", "app"), SeccompMode::Enforce);
        assert!(notes[0].contains("v1.0.0 and later"), "{notes:?}");
        assert!(notes[0].contains("v1beta1"), "{notes:?}");
        assert!(
            notes[1].ends_with("localhostProfile: operator/shop.checkout.app.enforce.json"),
            "{notes:?}"
        );
    }

    #[test]
    fn long_names_are_cut_with_a_hash() {
        let long = "w".repeat(253);
        let a = profile_name(&key("ns", &long, "app"), SeccompMode::Enforce);
        let b = profile_name(&key("ns", &long, "app2"), SeccompMode::Enforce);
        assert!(a.len() <= MAX_NAME && is_dns1123_subdomain(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(
            a,
            profile_name(&key("ns", &long, "app"), SeccompMode::Enforce)
        );
    }

    /// Namespace and container names are DNS-1123 labels, workload names DNS-1123 subdomains.
    fn arb_key() -> impl Strategy<Value = ProfileKey> {
        let label = "[a-z0-9]([-a-z]{0,4}[a-z0-9])?";
        (
            label,
            "[a-z0-9]([-a-z]{0,4}[a-z0-9])?(\\.[a-z0-9]([-a-z]{0,3}[a-z0-9])?){0,2}",
            label,
        )
            .prop_map(|(n, w, c)| key(&n, &w, &c))
    }

    proptest! {
        #![proptest_config(proptest_config(512))]

        #[test]
        fn different_keys_or_modes_never_share_a_name(
            a in arb_key(),
            b in arb_key(),
            audit_a in any::<bool>(),
            audit_b in any::<bool>(),
        ) {
            let mode = |audit| if audit { SeccompMode::Audit } else { SeccompMode::Enforce };
            let (na, nb) = (profile_name(&a, mode(audit_a)), profile_name(&b, mode(audit_b)));
            prop_assert!(is_dns1123_subdomain(&na) && na.len() <= MAX_NAME, "{}", na);
            prop_assert_eq!(na == nb, a == b && audit_a == audit_b, "{} {}", na, nb);
        }
    }
}
