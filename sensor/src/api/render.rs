//! Drafts as the API and the CLI hand them out: the pure generators of [`crate::drafts`] plus
//! the requested format and the notes to print next to the draft. Shared by the server and the
//! offline CLI (`--profile FILE`), so both give the same bytes.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::lookup::RequestError;
use super::proto::{NetworkPolicyFlavor, PolicyFormat, SeccompFormat, SeccompMode};
use crate::drafts::{self, ANNOTATION_PREFIX, cilium, netpol, seccomp, spo};
use crate::profile::model::ApplicationProfile;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompDraft {
    pub content: String,
    pub notes: Vec<String>,
    /// Relative to kubelet's seccomp root: the pod's `localhostProfile` (where SPO installs the
    /// object, for the SPO format).
    pub localhost_profile: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDraft {
    pub content: String,
    pub notes: Vec<String>,
    /// The containers whose profiles were merged.
    pub containers: Vec<String>,
}

/// The seccomp draft of `profile` for this node's architecture. UNSPECIFIED mode/format mean
/// enforce/OCI JSON.
pub fn seccomp(
    profile: &ApplicationProfile,
    mode: SeccompMode,
    format: SeccompFormat,
) -> Result<SeccompDraft, RequestError> {
    let arch = seccomp::NodeArch::current();
    let mode = match mode {
        SeccompMode::Unspecified | SeccompMode::Enforce => seccomp::SeccompMode::Enforce,
        SeccompMode::Audit => seccomp::SeccompMode::Audit,
    };
    let content = generate("seccomp", || match format {
        SeccompFormat::Unspecified | SeccompFormat::OciJson => {
            seccomp::to_json(&seccomp::seccomp_draft(profile, mode, arch))
        }
        SeccompFormat::SpoYaml => spo::to_yaml(&spo::spo_seccomp_profile(profile, mode, arch)),
    })?;
    let mut notes = drafts::draft_notes(profile);
    let floor = seccomp::floor_added(profile, arch);
    if !floor.is_empty() {
        notes.push(format!(
            "allows {} syscalls the workload was not seen making, for the container runtime \
             after it installs the filter (the runtime floor, docs/profiles.md): {}",
            floor.len(),
            floor.join(", ")
        ));
    }
    let unknown = seccomp::unknown_syscalls(profile, arch);
    if !unknown.is_empty() {
        notes.push(format!(
            "left out of the draft, unknown to the {} syscall tables: {}",
            match arch {
                seccomp::NodeArch::X86_64 => "x86_64",
                seccomp::NodeArch::Aarch64 => "aarch64",
            },
            unknown.join(", ")
        ));
    }
    // SPO installs its objects under its own directory, with its own file names.
    let localhost_profile = if format == SeccompFormat::SpoYaml {
        notes.extend(spo::usage_notes(&profile.key, mode));
        spo::localhost_profile(&profile.key, mode)
    } else {
        seccomp::localhost_path(&profile.key, mode)
    };
    Ok(SeccompDraft {
        content,
        notes,
        localhost_profile,
    })
}

/// The policy of one workload from the profiles of its containers (at least one, all of the
/// same namespace and workload). UNSPECIFIED flavor/format mean Kubernetes/YAML. The notes are
/// the profiles' caveats and the generator's review lines (the policy's `sensor.io/notes` and
/// `sensor.io/review` annotations).
pub fn network_policy(
    profiles: &[&ApplicationProfile],
    flavor: NetworkPolicyFlavor,
    format: PolicyFormat,
) -> Result<PolicyDraft, RequestError> {
    let Some(first) = profiles.first() else {
        return Err(RequestError::Missing { field: "profile" });
    };
    if let Some(other) = profiles
        .iter()
        .find(|p| p.key.namespace != first.key.namespace || p.key.workload != first.key.workload)
    {
        return Err(RequestError::Invalid {
            field: "profile",
            value: other.key.to_string(),
            reason: "a policy is made from the containers of one workload",
        });
    }
    let json = format == PolicyFormat::Json;
    let (content, annotations) = generate("network policy", || match flavor {
        NetworkPolicyFlavor::Unspecified | NetworkPolicyFlavor::Kubernetes => {
            let policy = netpol::network_policy_for_workload(profiles);
            let text = if json {
                netpol::to_json(&policy)
            } else {
                netpol::to_yaml(&policy)
            };
            (text, policy.metadata.annotations.unwrap_or_default())
        }
        NetworkPolicyFlavor::Cilium => {
            let policy = cilium::cilium_network_policy_for_workload(profiles);
            let text = if json {
                drafts::json_string(&policy)
            } else {
                cilium::to_yaml(&policy)
            };
            (text, policy.metadata.annotations.unwrap_or_default())
        }
    })?;
    let lines = |key: &str| {
        annotations
            .get(&format!("{ANNOTATION_PREFIX}{key}"))
            .map(|v| v.lines().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let mut notes = lines("notes");
    notes.extend(lines("review").into_iter().map(|l| format!("review: {l}")));
    Ok(PolicyDraft {
        content,
        notes,
        containers: profiles.iter().map(|p| p.key.container.clone()).collect(),
    })
}

/// Runs a generator; a panic (a generator bug) becomes INTERNAL instead of a dropped
/// connection.
fn generate<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, RequestError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("panic");
        RequestError::Internal(format!("generating the {what} draft failed: {msg}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::testutil::{partial, sample_profile};
    use crate::profile::model::ProfileKey;

    fn key(c: &str) -> ProfileKey {
        ProfileKey {
            namespace: "shop".into(),
            workload: "checkout".into(),
            container: c.into(),
        }
    }

    #[test]
    fn seccomp_modes_and_formats() {
        let p = sample_profile(key("app"));
        let enforce = seccomp(&p, SeccompMode::Unspecified, SeccompFormat::Unspecified).unwrap();
        assert!(
            enforce.content.contains("SCMP_ACT_ERRNO"),
            "{}",
            enforce.content
        );
        assert_eq!(enforce.localhost_profile, "sensor/shop/checkout/app.json");
        // Only the runtime floor's line: the profile is ready, full and uncapped.
        assert_eq!(enforce.notes.len(), 1, "{:?}", enforce.notes);
        assert!(
            enforce.notes[0].contains("runtime floor") && enforce.notes[0].contains("capset"),
            "{:?}",
            enforce.notes
        );
        assert!(
            !enforce.notes[0].contains(" read,"),
            "read is the workload's own: {:?}",
            enforce.notes
        );
        let audit = seccomp(&p, SeccompMode::Audit, SeccompFormat::OciJson).unwrap();
        assert!(audit.content.contains("SCMP_ACT_LOG"));
        assert_eq!(
            audit.localhost_profile,
            "sensor/shop/checkout/app.audit.json"
        );
        let spo = seccomp(&p, SeccompMode::Enforce, SeccompFormat::SpoYaml).unwrap();
        assert!(
            spo.content.contains("kind: SeccompProfile"),
            "{}",
            spo.content
        );
        assert_eq!(
            spo.localhost_profile,
            "operator/shop.checkout.app.enforce.json"
        );
        let usage = spo::usage_notes(&p.key, seccomp::SeccompMode::Enforce);
        assert!(spo.notes.ends_with(&usage), "{:?}", spo.notes);
    }

    #[test]
    fn seccomp_notes_of_a_partial_profile() {
        let mut p = partial(sample_profile(key("app")));
        p.syscalls.native.push("syscall_999".into());
        let d = seccomp(&p, SeccompMode::Enforce, SeccompFormat::OciJson).unwrap();
        assert!(
            d.notes.iter().any(|n| n.contains("partial")),
            "{:?}",
            d.notes
        );
        assert!(
            d.notes.iter().any(|n| n.contains("syscall_999")),
            "{:?}",
            d.notes
        );
    }

    #[test]
    fn policy_merges_containers_and_rejects_mixed_workloads() {
        let a = sample_profile(key("app"));
        let b = sample_profile(key("envoy"));
        let d = network_policy(
            &[&a, &b],
            NetworkPolicyFlavor::Kubernetes,
            PolicyFormat::Unspecified,
        )
        .unwrap();
        assert_eq!(d.containers, ["app", "envoy"]);
        assert!(d.content.contains("kind: NetworkPolicy"), "{}", d.content);
        let json = network_policy(&[&a], NetworkPolicyFlavor::Cilium, PolicyFormat::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json.content).unwrap();
        assert_eq!(v["kind"], "CiliumNetworkPolicy");

        let mut other = sample_profile(key("app"));
        other.key.workload = "cart".into();
        let e = network_policy(
            &[&a, &other],
            NetworkPolicyFlavor::Kubernetes,
            PolicyFormat::Yaml,
        )
        .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e =
            network_policy(&[], NetworkPolicyFlavor::Kubernetes, PolicyFormat::Yaml).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }
}
