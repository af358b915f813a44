//! Request validation and profile lookup, with the precise gRPC code of every failure:
//! INVALID_ARGUMENT for a missing or invalid field, NOT_FOUND (naming what is unknown) for a
//! namespace, workload or container the agent has no profile of, INTERNAL for a generator bug.

use tonic::{Code, Status};

use super::proto;
use super::source::ProfileSource;
use crate::drafts::render::{PolicyFlavor, PolicyFormat, RenderError, SeccompFormat};
use crate::drafts::seccomp::SeccompMode;
use crate::profile::model::{ApplicationProfile, ProfileKey};

/// How many known names a NOT_FOUND message lists.
const KNOWN_IN_MESSAGE: usize = 10;
/// How much of a client's value an error message repeats. The message travels in an HTTP/2
/// header (`grpc-message`): clients refuse headers past 8-16 KiB, so echoing a large request
/// back would turn a precise INVALID_ARGUMENT into an opaque transport error.
const ECHO_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{field} is required")]
    Missing { field: &'static str },
    #[error("{field} {} is invalid: {reason}", echo(.value))]
    Invalid {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("{field}: unknown enum value {value}")]
    BadEnum { field: &'static str, value: i32 },
    /// A stream filter field, named with its path (`filter.pod_regex[1]`).
    #[error("{field} {} is invalid: {}", echo(.value), echo_text(.reason))]
    Filter {
        field: String,
        value: String,
        reason: String,
    },
    #[error("no profiles in namespace {namespace:?}")]
    NoNamespace { namespace: String },
    #[error("no workload {workload:?} in namespace {namespace:?}{}", known_list(.known))]
    NoWorkload {
        namespace: String,
        workload: String,
        known: Vec<String>,
    },
    #[error("workload {namespace}/{workload} has no container {container:?}{}", known_list(.known))]
    NoContainer {
        namespace: String,
        workload: String,
        container: String,
        known: Vec<String>,
    },
    #[error("{0}")]
    Internal(String),
}

/// `value` quoted, cut to [`ECHO_BYTES`] with its full length when longer.
fn echo(value: &str) -> String {
    if value.len() <= ECHO_BYTES {
        return format!("{value:?}");
    }
    let mut end = ECHO_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &value[..end], value.len())
}

/// A reason that may quote the client's value (a regex parser's message): bounded too.
fn echo_text(text: &str) -> String {
    const MAX: usize = 512;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = known
        .iter()
        .take(KNOWN_IN_MESSAGE)
        .map(String::as_str)
        .collect();
    let more = known.len().saturating_sub(KNOWN_IN_MESSAGE);
    if more > 0 {
        format!(" (known: {}, and {more} more)", shown.join(", "))
    } else {
        format!(" (known: {})", shown.join(", "))
    }
}

impl RequestError {
    pub fn code(&self) -> Code {
        match self {
            RequestError::Missing { .. }
            | RequestError::Invalid { .. }
            | RequestError::BadEnum { .. }
            | RequestError::Filter { .. } => Code::InvalidArgument,
            RequestError::NoNamespace { .. }
            | RequestError::NoWorkload { .. }
            | RequestError::NoContainer { .. } => Code::NotFound,
            RequestError::Internal(_) => Code::Internal,
        }
    }
}

/// A draft that could not be rendered: what the request asked for is missing or invalid, or
/// the generator failed (INTERNAL).
impl From<RenderError> for RequestError {
    fn from(e: RenderError) -> RequestError {
        match e {
            RenderError::Missing { field } => RequestError::Missing { field },
            RenderError::Invalid {
                field,
                value,
                reason,
            } => RequestError::Invalid {
                field,
                value,
                reason,
            },
            e @ RenderError::Generate { .. } => RequestError::Internal(e.to_string()),
        }
    }
}

// The request enums as the drafts know them; UNSPECIFIED is the drafts' default.

impl From<proto::SeccompMode> for SeccompMode {
    fn from(m: proto::SeccompMode) -> SeccompMode {
        match m {
            proto::SeccompMode::Unspecified | proto::SeccompMode::Enforce => SeccompMode::Enforce,
            proto::SeccompMode::Audit => SeccompMode::Audit,
        }
    }
}

impl From<proto::SeccompFormat> for SeccompFormat {
    fn from(f: proto::SeccompFormat) -> SeccompFormat {
        match f {
            proto::SeccompFormat::Unspecified => SeccompFormat::default(),
            proto::SeccompFormat::OciJson => SeccompFormat::OciJson,
            proto::SeccompFormat::SpoYaml => SeccompFormat::SpoYaml,
        }
    }
}

impl From<proto::NetworkPolicyFlavor> for PolicyFlavor {
    fn from(f: proto::NetworkPolicyFlavor) -> PolicyFlavor {
        match f {
            proto::NetworkPolicyFlavor::Unspecified => PolicyFlavor::default(),
            proto::NetworkPolicyFlavor::Kubernetes => PolicyFlavor::Kubernetes,
            proto::NetworkPolicyFlavor::Cilium => PolicyFlavor::Cilium,
        }
    }
}

impl From<proto::PolicyFormat> for PolicyFormat {
    fn from(f: proto::PolicyFormat) -> PolicyFormat {
        match f {
            proto::PolicyFormat::Unspecified => PolicyFormat::default(),
            proto::PolicyFormat::Yaml => PolicyFormat::Yaml,
            proto::PolicyFormat::Json => PolicyFormat::Json,
        }
    }
}

impl From<RequestError> for Status {
    fn from(e: RequestError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

/// A Kubernetes name from a request: required, at most 253 bytes, no `/` or control
/// characters (names are path elements in the state dir).
pub fn name<'a>(field: &'static str, value: &'a str) -> Result<&'a str, RequestError> {
    if value.is_empty() {
        return Err(RequestError::Missing { field });
    }
    optional_name(field, value)
}

/// Like [`name`], but empty is allowed (a filter that is not set).
pub fn optional_name<'a>(field: &'static str, value: &'a str) -> Result<&'a str, RequestError> {
    let invalid = |reason| RequestError::Invalid {
        field,
        value: value.to_string(),
        reason,
    };
    if value.len() > 253 {
        return Err(invalid("longer than 253 bytes"));
    }
    if value.contains('/') {
        return Err(invalid("contains `/`"));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("contains control characters"));
    }
    if value.trim() != value {
        return Err(invalid("has leading or trailing spaces"));
    }
    Ok(value)
}

/// An enum field: `T::try_from(i32)` or INVALID_ARGUMENT.
pub fn enum_value<T: TryFrom<i32>>(field: &'static str, value: i32) -> Result<T, RequestError> {
    T::try_from(value).map_err(|_| RequestError::BadEnum { field, value })
}

/// The profile of `key`, or NOT_FOUND naming the first unknown part (namespace, workload,
/// container) and what is known there.
pub fn profile(
    source: &dyn ProfileSource,
    key: &ProfileKey,
) -> Result<ApplicationProfile, RequestError> {
    if let Some(p) = source.profile(key) {
        return Ok(p);
    }
    let keys = keys_of(source);
    let in_workload = workload_of(&keys, &key.namespace, &key.workload)?;
    Err(RequestError::NoContainer {
        namespace: key.namespace.clone(),
        workload: key.workload.clone(),
        container: key.container.clone(),
        known: sorted_unique(in_workload.iter().map(|k| k.container.clone())),
    })
}

/// All profiles (containers) of one workload, sorted by container; NOT_FOUND when there are
/// none.
pub fn workload(
    source: &dyn ProfileSource,
    namespace: &str,
    workload: &str,
) -> Result<Vec<ApplicationProfile>, RequestError> {
    let keys = keys_of(source);
    workload_of(&keys, namespace, workload)?;
    let mut found = Vec::new();
    source.visit(&mut |p| {
        if p.key.namespace == namespace && p.key.workload == workload {
            found.push(p.clone());
        }
    });
    found.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(found)
}

/// The keys of every profile (what NOT_FOUND messages list).
fn keys_of(source: &dyn ProfileSource) -> Vec<ProfileKey> {
    let mut keys = Vec::new();
    source.visit(&mut |p| keys.push(p.key.clone()));
    keys
}

fn workload_of<'a>(
    all: &'a [ProfileKey],
    namespace: &str,
    workload: &str,
) -> Result<Vec<&'a ProfileKey>, RequestError> {
    let in_ns: Vec<&ProfileKey> = all.iter().filter(|k| k.namespace == namespace).collect();
    if in_ns.is_empty() {
        return Err(RequestError::NoNamespace {
            namespace: namespace.to_string(),
        });
    }
    let in_workload: Vec<&ProfileKey> = in_ns
        .iter()
        .copied()
        .filter(|k| k.workload == workload)
        .collect();
    if in_workload.is_empty() {
        return Err(RequestError::NoWorkload {
            namespace: namespace.to_string(),
            workload: workload.to_string(),
            known: sorted_unique(in_ns.iter().map(|k| k.workload.clone())),
        });
    }
    Ok(in_workload)
}

fn sorted_unique(names: impl Iterator<Item = String>) -> Vec<String> {
    let set: std::collections::BTreeSet<String> = names.collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto;
    use crate::api::source::MemorySource;
    use crate::api::testutil::sample_profile;

    /// UNSPECIFIED asks for the defaults: enforce, OCI JSON, Kubernetes, YAML.
    #[test]
    fn unspecified_draft_enums_are_the_defaults() {
        assert_eq!(
            SeccompMode::from(proto::SeccompMode::Unspecified),
            SeccompMode::Enforce
        );
        assert_eq!(
            SeccompFormat::from(proto::SeccompFormat::Unspecified),
            SeccompFormat::OciJson
        );
        assert_eq!(
            PolicyFlavor::from(proto::NetworkPolicyFlavor::Unspecified),
            PolicyFlavor::Kubernetes
        );
        assert_eq!(
            PolicyFormat::from(proto::PolicyFormat::Unspecified),
            PolicyFormat::Yaml
        );
        let p = sample_profile(key("shop", "checkout", "app"));
        let unspecified = crate::drafts::render::seccomp(
            &p,
            proto::SeccompMode::Unspecified.into(),
            proto::SeccompFormat::Unspecified.into(),
        )
        .unwrap();
        assert!(
            unspecified.content.contains("SCMP_ACT_ERRNO"),
            "{}",
            unspecified.content
        );
        assert_eq!(
            unspecified.localhost_profile,
            "sensor/shop/checkout/app.json"
        );
    }

    /// A policy of no profile or of two workloads is INVALID_ARGUMENT, a generator failure
    /// INTERNAL.
    #[test]
    fn render_errors_keep_their_codes() {
        let a = sample_profile(key("shop", "checkout", "app"));
        let other = sample_profile(key("shop", "cart", "app"));
        let catalogue = crate::ai::Catalogue::embedded();
        let policy = |profiles: &[&ApplicationProfile]| {
            crate::drafts::render::network_policy(
                profiles,
                proto::NetworkPolicyFlavor::Kubernetes.into(),
                proto::PolicyFormat::Unspecified.into(),
                catalogue,
            )
            .map_err(RequestError::from)
        };
        let ok = policy(&[&a]).unwrap();
        assert!(ok.content.contains("kind: NetworkPolicy"), "{}", ok.content);
        let e = policy(&[&a, &other]).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(
            e.to_string(),
            "profile \"shop/cart/app\" is invalid: a policy is made from the containers of one \
             workload"
        );
        let e = policy(&[]).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.to_string(), "profile is required");
        let generate = RequestError::from(RenderError::Generate {
            what: "network policy",
            source: crate::drafts::DraftError::NoProfiles,
        });
        assert_eq!(generate.code(), Code::Internal);
        assert!(
            generate
                .to_string()
                .starts_with("generating the network policy draft failed: "),
            "{generate}"
        );
    }

    fn key(ns: &str, w: &str, c: &str) -> ProfileKey {
        ProfileKey {
            namespace: ns.into(),
            workload: w.into(),
            container: c.into(),
        }
    }

    fn source() -> MemorySource {
        let src = MemorySource::new("node-1");
        src.upsert(sample_profile(key("shop", "checkout", "app")));
        src.upsert(sample_profile(key("shop", "checkout", "envoy")));
        src.upsert(sample_profile(key("shop", "cart", "app")));
        src
    }

    #[test]
    fn found() {
        let p = profile(&source(), &key("shop", "checkout", "envoy")).unwrap();
        assert_eq!(p.key.container, "envoy");
        let w = workload(&source(), "shop", "checkout").unwrap();
        let containers: Vec<&str> = w.iter().map(|p| p.key.container.as_str()).collect();
        assert_eq!(containers, ["app", "envoy"]);
    }

    #[test]
    fn not_found_names_what_is_unknown() {
        let src = source();
        let e = profile(&src, &key("bank", "checkout", "app")).unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        assert_eq!(e.to_string(), r#"no profiles in namespace "bank""#);

        let e = profile(&src, &key("shop", "payments", "app")).unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        assert_eq!(
            e.to_string(),
            r#"no workload "payments" in namespace "shop" (known: cart, checkout)"#
        );

        let e = profile(&src, &key("shop", "checkout", "db")).unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        assert_eq!(
            e.to_string(),
            r#"workload shop/checkout has no container "db" (known: app, envoy)"#
        );

        let e = workload(&src, "shop", "payments").unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    }

    #[test]
    fn status_codes() {
        let cases: [(RequestError, Code); 5] = [
            (
                RequestError::Missing { field: "namespace" },
                Code::InvalidArgument,
            ),
            (
                RequestError::BadEnum {
                    field: "mode",
                    value: 9,
                },
                Code::InvalidArgument,
            ),
            (
                RequestError::NoNamespace {
                    namespace: "x".into(),
                },
                Code::NotFound,
            ),
            (
                RequestError::NoContainer {
                    namespace: "a".into(),
                    workload: "b".into(),
                    container: "c".into(),
                    known: vec![],
                },
                Code::NotFound,
            ),
            (RequestError::Internal("bug".into()), Code::Internal),
        ];
        for (err, code) in cases {
            let message = err.to_string();
            let status = Status::from(err);
            assert_eq!(status.code(), code, "{message}");
            assert_eq!(status.message(), message);
        }
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(name("namespace", "shop"), Ok("shop"));
        assert_eq!(
            name("namespace", ""),
            Err(RequestError::Missing { field: "namespace" })
        );
        assert_eq!(
            name("namespace", "").unwrap_err().to_string(),
            "namespace is required"
        );
        assert_eq!(optional_name("workload", ""), Ok(""));
        for bad in ["a/b", "a\nb", " a", &"x".repeat(254)] {
            let e = name("workload", bad).unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn enums_are_validated() {
        let mode: proto::SeccompMode = enum_value("mode", 2).unwrap();
        assert_eq!(mode, proto::SeccompMode::Audit);
        let e = enum_value::<proto::SeccompMode>("mode", 7).unwrap_err();
        assert_eq!(e.to_string(), "mode: unknown enum value 7");
        assert_eq!(e.code(), Code::InvalidArgument);
    }

    #[test]
    fn long_known_lists_are_cut() {
        let known: Vec<String> = (0..12).map(|i| format!("w{i:02}")).collect();
        let e = RequestError::NoWorkload {
            namespace: "ns".into(),
            workload: "x".into(),
            known,
        };
        assert!(e.to_string().ends_with("w09, and 2 more)"), "{e}");
    }

    #[test]
    fn errors_echo_a_bounded_part_of_the_value() {
        let huge = "n".repeat(512 * 1024);
        let e = name("namespace", &huge).unwrap_err().to_string();
        assert!(e.len() < 200, "{} bytes", e.len());
        assert!(
            e.starts_with("namespace \"nnnn") && e.contains("... (524288 bytes) is invalid"),
            "{e}"
        );
        let e = name("namespace", "a/b").unwrap_err().to_string();
        assert_eq!(e, "namespace \"a/b\" is invalid: contains `/`");
    }
}
