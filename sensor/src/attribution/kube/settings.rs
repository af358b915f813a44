//! How `sensor run` finds the Kubernetes API: `--kubernetes-api auto|off`,
//! `--kubernetes-api-url URL` (a given API server, e.g. `kubectl proxy` or a test server) and
//! `--kubernetes-peers cluster|node` (which pods may name the peers of flows).

use std::path::Path;

/// The in-cluster service-account token kubelet mounts into the sensor's pod.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMode {
    /// In-cluster when `KUBERNETES_SERVICE_HOST` and the service-account token exist (or the
    /// given URL), else off.
    Auto,
    /// Kubelet files only.
    Off,
}

/// Which pods are watched to name the peers of flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerScope {
    /// Every pod with an address (one extra cluster-wide watch, a small projection per pod).
    Cluster,
    /// Only this node's pods (no cluster-wide watch; peers elsewhere stay addresses).
    Node,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeApiSettings {
    pub mode: ApiMode,
    /// An API server URL (`http://` or `https://`), anonymous: for `kubectl proxy` and tests.
    pub url: Option<String>,
    pub peers: PeerScope,
}

impl Default for KubeApiSettings {
    fn default() -> Self {
        Self {
            mode: ApiMode::Auto,
            url: None,
            peers: PeerScope::Cluster,
        }
    }
}

/// Where to connect, once `auto` is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    InCluster,
    Url(String),
}

pub fn parse_mode(s: &str) -> Result<ApiMode, String> {
    match s {
        "auto" => Ok(ApiMode::Auto),
        "off" => Ok(ApiMode::Off),
        _ => Err(format!("`{s}` is not one of: auto, off")),
    }
}

pub fn parse_peers(s: &str) -> Result<PeerScope, String> {
    match s {
        "cluster" => Ok(PeerScope::Cluster),
        "node" => Ok(PeerScope::Node),
        _ => Err(format!("`{s}` is not one of: cluster, node")),
    }
}

/// An `http://` or `https://` URL with a host (what the API client accepts).
pub fn parse_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| format!("`{s}` is not an http:// or https:// URL"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("`{s}` has no host"));
    }
    // The client's own URI parser has the last word.
    kube::Config::new(s.parse().map_err(|e| format!("`{s}`: {e}"))?);
    Ok(s.to_string())
}

/// Checks that the values agree: a URL with `off` is a contradiction, not a silent no-op.
pub fn validate(s: &KubeApiSettings) -> Result<(), String> {
    if s.mode == ApiMode::Off && s.url.is_some() {
        return Err("a Kubernetes API URL is given but the Kubernetes API is `off`".into());
    }
    Ok(())
}

/// The endpoint for these settings in this environment; `Err` says why there is none.
pub fn endpoint(
    s: &KubeApiSettings,
    service_host: Option<&str>,
    token: &Path,
) -> Result<Endpoint, String> {
    match (s.mode, &s.url) {
        (ApiMode::Off, _) => Err("off by configuration".into()),
        (ApiMode::Auto, Some(url)) => Ok(Endpoint::Url(url.clone())),
        (ApiMode::Auto, None) => match service_host.filter(|h| !h.is_empty()) {
            None => Err("not in a cluster (KUBERNETES_SERVICE_HOST is not set)".into()),
            Some(_) if !token.is_file() => Err(format!(
                "no service-account token at {} (automountServiceAccountToken off?)",
                token.display()
            )),
            Some(_) => Ok(Endpoint::InCluster),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_or_say_why_not() {
        assert_eq!(parse_mode("auto"), Ok(ApiMode::Auto));
        assert_eq!(parse_mode("off"), Ok(ApiMode::Off));
        assert!(parse_mode("on").unwrap_err().contains("auto, off"));
        assert_eq!(parse_peers("node"), Ok(PeerScope::Node));
        assert!(parse_peers("all").is_err());
        for ok in [
            "http://127.0.0.1:8001",
            "https://10.96.0.1:443/",
            "http://api.local",
        ] {
            assert_eq!(parse_url(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "127.0.0.1:8001",
            "ftp://x",
            "http://",
            "http:///path",
            "http://a b",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auto_needs_the_service_host_and_the_token() {
        let dir = std::env::temp_dir().join(format!("sensor-kube-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        let auto = KubeApiSettings::default();
        assert!(
            endpoint(&auto, None, &token)
                .unwrap_err()
                .contains("not in a cluster")
        );
        assert!(
            endpoint(&auto, Some("10.96.0.1"), &token)
                .unwrap_err()
                .contains("token")
        );
        std::fs::write(&token, "t").unwrap();
        assert_eq!(
            endpoint(&auto, Some("10.96.0.1"), &token),
            Ok(Endpoint::InCluster)
        );
        let url = KubeApiSettings {
            url: Some("http://127.0.0.1:1".into()),
            ..auto.clone()
        };
        assert_eq!(
            endpoint(&url, None, &token),
            Ok(Endpoint::Url("http://127.0.0.1:1".into()))
        );
        let off = KubeApiSettings {
            mode: ApiMode::Off,
            ..auto
        };
        assert!(endpoint(&off, Some("10.96.0.1"), &token).is_err());
        assert!(
            validate(&KubeApiSettings {
                url: Some("http://x".into()),
                ..off
            })
            .is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
