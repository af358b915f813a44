//! Drafts as the API and the CLI hand them out: the generators of this stage plus the requested
//! format and the notes to print next to the draft. Shared by the gRPC server and the offline CLI
//! (`--profile FILE`), so both give the same bytes. The API maps its request enums onto
//! [`SeccompMode`], [`SeccompFormat`], [`PolicyFlavor`] and [`PolicyFormat`] (an unset one is
//! the `Default`), and a [`RenderError`] onto its status codes.

pub use super::seccomp::SeccompMode;
use super::seccomp::{self, NodeArch};
use super::{ANNOTATION_PREFIX, DraftError, cilium, netpol, spo};
use crate::ai::Catalogue;
use crate::profile::model::ApplicationProfile;

/// The form of a seccomp draft.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SeccompFormat {
    /// The OCI / kubelet `Localhost` JSON.
    #[default]
    OciJson,
    /// A Security Profiles Operator `SeccompProfile` object as YAML.
    SpoYaml,
}

/// The kind of network policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PolicyFlavor {
    /// `networking.k8s.io/v1` `NetworkPolicy`.
    #[default]
    Kubernetes,
    /// `cilium.io/v2` `CiliumNetworkPolicy`.
    Cilium,
}

/// How a network policy is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PolicyFormat {
    #[default]
    Yaml,
    Json,
}

/// Why no draft was rendered: what was asked for (`Missing`, `Invalid`), or a generator that
/// failed on valid input (`Generate`, a bug).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{field} is required")]
    Missing { field: &'static str },
    #[error("{field} {value:?} is invalid: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("generating the {what} draft failed: {source}")]
    Generate {
        what: &'static str,
        source: DraftError,
    },
}

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

/// The seccomp draft of `profile` for this node's architecture.
pub fn seccomp(
    profile: &ApplicationProfile,
    mode: SeccompMode,
    format: SeccompFormat,
) -> Result<SeccompDraft, RenderError> {
    let arch = NodeArch::current();
    let content = match format {
        SeccompFormat::OciJson => seccomp::to_json(&seccomp::seccomp_draft(profile, mode, arch)),
        SeccompFormat::SpoYaml => spo::to_yaml(&spo::spo_seccomp_profile(profile, mode, arch)),
    }
    .map_err(|source| RenderError::Generate {
        what: "seccomp",
        source,
    })?;
    let mut notes = super::draft_notes(profile);
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
            arch.machine(),
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
/// same namespace and workload), its egress peers classified with `catalogue`. The notes are
/// the profiles' caveats and the generator's review lines (the policy's `sensor.io/notes` and
/// `sensor.io/review` annotations).
pub fn network_policy(
    profiles: &[&ApplicationProfile],
    flavor: PolicyFlavor,
    format: PolicyFormat,
    catalogue: &Catalogue,
) -> Result<PolicyDraft, RenderError> {
    let json = format == PolicyFormat::Json;
    let generated = match flavor {
        PolicyFlavor::Kubernetes => netpol::network_policy_for_workload(profiles, catalogue)
            .and_then(|policy| {
                let text = if json {
                    netpol::to_json(&policy)?
                } else {
                    netpol::to_yaml(&policy)?
                };
                Ok((text, policy.metadata.annotations.unwrap_or_default()))
            }),
        PolicyFlavor::Cilium => cilium::cilium_network_policy_for_workload(profiles, catalogue)
            .and_then(|policy| {
                let text = if json {
                    cilium::to_json(&policy)?
                } else {
                    cilium::to_yaml(&policy)?
                };
                Ok((text, policy.metadata.annotations.unwrap_or_default()))
            }),
    };
    let (content, annotations) = generated.map_err(|e| match e {
        DraftError::NoProfiles => RenderError::Missing { field: "profile" },
        DraftError::MixedWorkloads { other, .. } => RenderError::Invalid {
            field: "profile",
            value: other.to_string(),
            reason: "a policy is made from the containers of one workload",
        },
        source => RenderError::Generate {
            what: "network policy",
            source,
        },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drafts::testutil::{partial, sample_profile};
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
        let enforce = seccomp(&p, SeccompMode::Enforce, SeccompFormat::default()).unwrap();
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
        let usage = spo::usage_notes(&p.key, SeccompMode::Enforce);
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
        let catalogue = Catalogue::embedded();
        let d = network_policy(
            &[&a, &b],
            PolicyFlavor::Kubernetes,
            PolicyFormat::default(),
            catalogue,
        )
        .unwrap();
        assert_eq!(d.containers, ["app", "envoy"]);
        assert!(d.content.contains("kind: NetworkPolicy"), "{}", d.content);
        let json =
            network_policy(&[&a], PolicyFlavor::Cilium, PolicyFormat::Json, catalogue).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json.content).unwrap();
        assert_eq!(v["kind"], "CiliumNetworkPolicy");

        let mut other = sample_profile(key("app"));
        other.key.workload = "cart".into();
        // The API answers both with INVALID_ARGUMENT (api::lookup's tests).
        let e = network_policy(
            &[&a, &other],
            PolicyFlavor::Kubernetes,
            PolicyFormat::Yaml,
            catalogue,
        )
        .unwrap_err();
        assert!(
            matches!(&e, RenderError::Invalid { field: "profile", value, .. } if *value == other.key.to_string()),
            "{e:?}"
        );
        let e = network_policy(&[], PolicyFlavor::Kubernetes, PolicyFormat::Yaml, catalogue)
            .unwrap_err();
        assert!(
            matches!(e, RenderError::Missing { field: "profile" }),
            "{e:?}"
        );
    }
}
