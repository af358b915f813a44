//! The catalogue: which DNS names and ports are which AI provider, vector store or cloud API,
//! and which package names are agent frameworks and SDKs. Parsed and checked once; lookups are
//! allocation-free per label.

use std::{
    collections::{HashMap, HashSet},
    sync::OnceLock,
};

use serde::{Deserialize, Serialize};

use crate::profile::model::Protocol;

/// The catalogue shipped with the sensor.
pub const EMBEDDED: &str = include_str!("../../catalogue/ai.yaml");

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("AI catalogue: {0}")]
    Parse(String),
    #[error("AI catalogue entry `{id}`: {message}")]
    Invalid { id: String, message: String },
}

/// What a catalogued endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndpointClass {
    ModelApi,
    VectorStore,
    CloudApi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    Python,
    Node,
}

impl Ecosystem {
    /// The catalogue's (and profile's) name.
    pub fn name(self) -> &'static str {
        match self {
            Ecosystem::Python => "python",
            Ecosystem::Node => "node",
        }
    }
}

/// What a catalogued package is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageKind {
    Framework,
    Mcp,
    ModelSdk,
    ModelRuntime,
    VectorStoreSdk,
}

impl PackageKind {
    /// The catalogue's (and profile's) name.
    pub fn name(self) -> &'static str {
        match self {
            PackageKind::Framework => "framework",
            PackageKind::Mcp => "mcp",
            PackageKind::ModelSdk => "model-sdk",
            PackageKind::ModelRuntime => "model-runtime",
            PackageKind::VectorStoreSdk => "vector-store-sdk",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    endpoints: Vec<EndpointEntry>,
    #[serde(default)]
    packages: Vec<PackageEntry>,
    #[serde(default, rename = "mcpServers")]
    mcp_servers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointEntry {
    id: String,
    name: String,
    class: EndpointClass,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    ports: Vec<PortEntry>,
    #[serde(default)]
    lookalikes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortEntry {
    pub port: u16,
    pub protocol: Protocol,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageEntry {
    name: String,
    ecosystem: Ecosystem,
    kind: PackageKind,
}

/// One label of a domain pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    /// `*`: exactly one label.
    Any,
    /// `*suffix`: one label ending with `suffix`.
    EndsWith(String),
    Exact(String),
}

impl Label {
    fn matches(&self, label: &str) -> bool {
        match self {
            Label::Any => true,
            Label::EndsWith(suffix) => {
                label.len() > suffix.len() && label.ends_with(suffix.as_str())
            }
            Label::Exact(l) => l == label,
        }
    }
}

/// A domain pattern: `*.example.com` (any name below), `a.*.example.com` (one label), exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    /// A leading `*.`: one or more labels before `labels`.
    below: bool,
    labels: Vec<Label>,
}

impl DomainPattern {
    pub fn parse(pattern: &str) -> Result<DomainPattern, String> {
        let lower = pattern.trim_end_matches('.').to_ascii_lowercase();
        let (below, rest) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let labels = rest
            .split('.')
            .map(|l| match l {
                "" => Err(format!("empty label in `{pattern}`")),
                "*" => Ok(Label::Any),
                l if l[1..].contains('*') => Err(format!(
                    "`{pattern}`: `*` is a whole label or a label's start"
                )),
                l => Ok(match l.strip_prefix('*') {
                    Some(suffix) => Label::EndsWith(suffix.to_string()),
                    None => Label::Exact(l.to_string()),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if labels.len() < 2 || labels.iter().rev().take(2).any(|l| *l == Label::Any) {
            return Err(format!(
                "`{pattern}` is too broad (the last two labels must be given)"
            ));
        }
        Ok(DomainPattern { below, labels })
    }

    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.');
        let n = name.split('.').count();
        if n < self.labels.len() + usize::from(self.below)
            || (!self.below && n != self.labels.len())
        {
            return false;
        }
        name.split('.')
            .skip(n - self.labels.len())
            .zip(&self.labels)
            .all(|(label, pattern)| {
                // Names from DNS answers are compared case-insensitively.
                if label.bytes().any(|b| b.is_ascii_uppercase()) {
                    pattern.matches(&label.to_ascii_lowercase())
                } else {
                    pattern.matches(label)
                }
            })
    }
}

/// One catalogued endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub name: String,
    pub class: EndpointClass,
    domains: Vec<DomainPattern>,
    pub ports: Vec<PortEntry>,
    /// Name tokens that only this provider's domains should carry (`openai`, `anthropic`): a
    /// name with one that is not one of its domains imitates it.
    pub lookalikes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Catalogue {
    pub version: u32,
    endpoints: Vec<Endpoint>,
    packages: HashMap<(Ecosystem, String), PackageKind>,
    mcp_servers: Vec<String>,
}

impl Catalogue {
    /// Parses and checks a catalogue: unique ids, each endpoint with a domain or a port, valid
    /// patterns, no package listed twice.
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let file: File =
            serde_yaml_ng::from_str(text).map_err(|e| CatalogueError::Parse(e.to_string()))?;
        let mut ids = HashSet::new();
        let mut endpoints = Vec::with_capacity(file.endpoints.len());
        for e in file.endpoints {
            let invalid = |message: String| CatalogueError::Invalid {
                id: e.id.clone(),
                message,
            };
            if !ids.insert(e.id.clone()) {
                return Err(invalid("listed twice".into()));
            }
            if e.domains.is_empty() && e.ports.is_empty() {
                return Err(invalid("needs `domains` or `ports`".into()));
            }
            if e.lookalikes.iter().any(|t| {
                t.len() < 4
                    || !t
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            }) {
                return Err(invalid(
                    "lookalike tokens are lowercase letters and digits, at least 4".into(),
                ));
            }
            if e.ports.iter().any(|p| p.port == 0) {
                return Err(invalid("port 0".into()));
            }
            let domains = e
                .domains
                .iter()
                .map(|d| DomainPattern::parse(d))
                .collect::<Result<Vec<_>, _>>()
                .map_err(invalid)?;
            endpoints.push(Endpoint {
                id: e.id,
                name: e.name,
                class: e.class,
                domains,
                ports: e.ports,
                lookalikes: e.lookalikes,
            });
        }
        let mut packages = HashMap::new();
        for p in file.packages {
            let key = (p.ecosystem, normalise(p.ecosystem, &p.name));
            if packages.insert(key, p.kind).is_some() {
                return Err(CatalogueError::Invalid {
                    id: p.name,
                    message: "package listed twice".into(),
                });
            }
        }
        for pattern in &file.mcp_servers {
            if pattern.trim_matches('*').len() < 4 {
                return Err(CatalogueError::Invalid {
                    id: pattern.clone(),
                    message: "MCP server pattern too broad (at least 4 literal characters)".into(),
                });
            }
        }
        Ok(Catalogue {
            version: file.version,
            endpoints,
            packages,
            mcp_servers: file.mcp_servers,
        })
    }

    /// The catalogue shipped with the sensor (checked by a unit test, so never fails).
    pub fn embedded() -> &'static Catalogue {
        static EMBEDDED_CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        EMBEDDED_CATALOGUE
            .get_or_init(|| Catalogue::parse(EMBEDDED).expect("the embedded AI catalogue is valid"))
    }

    /// The first endpoint (in file order: specific entries before broad cloud ones) whose
    /// domains match `name`.
    pub fn endpoint_by_name(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| e.domains.iter().any(|d| d.matches(name)))
    }

    /// The endpoint a service-specific port identifies.
    pub fn endpoint_by_port(&self, port: u16, protocol: Protocol) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| {
            e.ports
                .iter()
                .any(|p| p.port == port && p.protocol == protocol)
        })
    }

    /// The catalogued endpoint a name imitates: the name carries one of the endpoint's
    /// look-alike tokens (as a whole label or a `-`/`_`-separated part of one) yet matches no
    /// catalogued domain, e.g. `api-openai.com.example.net`.
    pub fn look_alike(&self, name: &str) -> Option<&Endpoint> {
        if self.endpoint_by_name(name).is_some() {
            return None;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let tokens: Vec<&str> = name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|t| !t.is_empty())
            .collect();
        self.endpoints
            .iter()
            .find(|e| e.lookalikes.iter().any(|l| tokens.contains(&l.as_str())))
    }

    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.id == id)
    }

    /// What a package found in a container is, if catalogued.
    pub fn package(&self, ecosystem: Ecosystem, name: &str) -> Option<PackageKind> {
        self.packages
            .get(&(ecosystem, normalise(ecosystem, name)))
            .copied()
    }
}

impl Catalogue {
    /// The argument of a command line that names a catalogued MCP server, if any: the whole
    /// argument or, for a path, its last component.
    pub fn mcp_server<'a>(&self, args: &'a [String]) -> Option<&'a str> {
        args.iter().map(String::as_str).find(|arg| {
            let last = arg.rsplit('/').next().unwrap_or(arg);
            self.mcp_servers
                .iter()
                .any(|p| wildcard_match(p, arg) || wildcard_match(p, last))
        })
    }
}

/// `*` matches any run of characters (including none); everything else literally.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == text;
    }
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Python distribution names compare normalised (PEP 503: case, `-`, `_`, `.` alike); Node
/// package names are exact.
fn normalise(ecosystem: Ecosystem, name: &str) -> String {
    match ecosystem {
        Ecosystem::Python => name.to_ascii_lowercase().replace(['_', '.'], "-"),
        Ecosystem::Node => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalogue_is_valid() {
        let c = Catalogue::parse(EMBEDDED).unwrap();
        assert!(c.version >= 1);
        assert!(c.endpoints.len() > 10);
    }

    #[test]
    fn domain_patterns() {
        let p = |s| DomainPattern::parse(s).unwrap();
        let below = p("*.pinecone.io");
        assert!(below.matches("idx-1a2b.svc.us-east1-gcp.pinecone.io"));
        assert!(below.matches("x.pinecone.io."));
        assert!(!below.matches("pinecone.io"), "below means strictly below");
        assert!(!below.matches("evilpinecone.io"));
        assert!(!below.matches("pinecone.io.evil.com"));
        let one = p("bedrock-runtime.*.amazonaws.com");
        assert!(one.matches("bedrock-runtime.us-east-1.amazonaws.com"));
        assert!(one.matches("Bedrock-Runtime.EU-West-1.amazonaws.com"));
        assert!(!one.matches("bedrock-runtime.amazonaws.com"));
        assert!(!one.matches("bedrock-runtime.a.b.amazonaws.com"));
        let suffix = p("*-aiplatform.googleapis.com");
        assert!(suffix.matches("us-central1-aiplatform.googleapis.com"));
        assert!(!suffix.matches("-aiplatform.googleapis.com"));
        assert!(!suffix.matches("aiplatform.googleapis.com"));
        let exact = p("api.openai.com");
        assert!(exact.matches("api.openai.com") && !exact.matches("x.api.openai.com"));
        for bad in ["*.com", "a.*", "a..b", "a.b*c.com", "*"] {
            assert!(DomainPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn specific_entries_win_over_their_cloud() {
        let c = Catalogue::embedded();
        let id = |name| c.endpoint_by_name(name).map(|e| e.id.as_str());
        assert_eq!(
            id("bedrock-runtime.us-west-2.amazonaws.com"),
            Some("amazon-bedrock")
        );
        assert_eq!(id("s3.us-west-2.amazonaws.com"), Some("aws"));
        assert_eq!(
            id("europe-west4-aiplatform.googleapis.com"),
            Some("google-vertex-ai")
        );
        assert_eq!(id("storage.googleapis.com"), Some("gcp"));
        assert_eq!(id("my-res.openai.azure.com"), Some("azure-openai"));
        assert_eq!(id("api.anthropic.com"), Some("anthropic"));
        assert_eq!(id("api.anthropic.com.attacker.net"), None);
        assert_eq!(id("example.com"), None);
        let port = |p| c.endpoint_by_port(p, Protocol::Tcp).map(|e| e.id.as_str());
        assert_eq!(port(11434), Some("ollama"));
        assert_eq!(port(6333), Some("qdrant"));
        assert_eq!(port(443), None);
        assert_eq!(
            c.endpoint_by_port(11434, Protocol::Udp).map(|e| &e.id),
            None
        );
    }

    #[test]
    fn packages_by_ecosystem_with_python_normalisation() {
        let c = Catalogue::embedded();
        assert_eq!(
            c.package(Ecosystem::Python, "LangChain_Core"),
            Some(PackageKind::Framework)
        );
        assert_eq!(
            c.package(Ecosystem::Python, "llama_index.core"),
            Some(PackageKind::Framework)
        );
        assert_eq!(
            c.package(Ecosystem::Node, "@modelcontextprotocol/sdk"),
            Some(PackageKind::Mcp)
        );
        assert_eq!(c.package(Ecosystem::Node, "requests"), None);
        assert_eq!(c.package(Ecosystem::Python, "requests"), None);
    }

    #[test]
    fn names_are_the_serialized_forms() {
        for e in [Ecosystem::Python, Ecosystem::Node] {
            assert_eq!(serde_json::to_value(e).unwrap(), e.name());
        }
        for k in [
            PackageKind::Framework,
            PackageKind::Mcp,
            PackageKind::ModelSdk,
            PackageKind::ModelRuntime,
            PackageKind::VectorStoreSdk,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
    }

    #[test]
    fn mcp_servers_by_command_line() {
        let c = Catalogue::embedded();
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let npx = args(&[
            "npx",
            "-y",
            "@modelcontextprotocol/server-filesystem",
            "/data",
        ]);
        assert_eq!(
            c.mcp_server(&npx),
            Some("@modelcontextprotocol/server-filesystem")
        );
        let uvx = args(&["uvx", "mcp-server-git", "--repository", "."]);
        assert_eq!(c.mcp_server(&uvx), Some("mcp-server-git"));
        let path = args(&["/usr/local/bin/github-mcp-server", "stdio"]);
        assert_eq!(
            c.mcp_server(&path),
            Some("/usr/local/bin/github-mcp-server")
        );
        let module = args(&["python", "-m", "mcp_server_fetch"]);
        assert_eq!(c.mcp_server(&module), Some("mcp_server_fetch"));
        assert_eq!(c.mcp_server(&args(&["python", "app.py"])), None);
        assert_eq!(
            c.mcp_server(&args(&["mcp-server"])),
            None,
            "a prefix needs its suffix"
        );
        assert!(wildcard_match("a*b*c", "aXbYc") && !wildcard_match("a*b*c", "aXc"));
        assert!(wildcard_match("ab*", "ab") && !wildcard_match("*ab*ab", "ab"));
    }

    #[test]
    fn look_alikes_carry_a_token_and_match_no_domain() {
        let c = Catalogue::embedded();
        let imitated = |n: &str| c.look_alike(n).map(|e| e.id.as_str());
        assert_eq!(imitated("api-openai.com.example.net"), Some("openai"));
        assert_eq!(imitated("claude.example.org"), Some("anthropic"));
        assert_eq!(imitated("API.OPENAI.COM."), None, "the real one");
        assert_eq!(imitated("bedrock-runtime.eu-west-1.amazonaws.com"), None);
        assert_eq!(
            imitated("openaiproxy.example.net"),
            None,
            "whole tokens only"
        );
        assert_eq!(imitated("example.net"), None);
    }

    #[test]
    fn bad_catalogues_are_refused_with_the_entry() {
        let err = |text: &str| Catalogue::parse(text).unwrap_err().to_string();
        assert!(
            err("version: 1\nendpoints:\n  - {id: a, name: A, class: model-api}\n")
                .contains("`a`: needs")
        );
        assert!(err("version: 1\nendpoints:\n  - {id: a, name: A, class: model-api, domains: [\"*.com\"]}\n").contains("too broad"));
        assert!(err("version: 1\nendpoints:\n  - {id: a, name: A, class: model-api, domains: [x.io]}\n  - {id: a, name: B, class: cloud-api, domains: [y.io]}\n").contains("listed twice"));
        assert!(err("version: 1\nendpoints: []\nextra: 1\n").contains("unknown field"));
        assert!(err("version: 1\nendpoints:\n  - {id: a, name: A, class: model-api, domains: [x.io], lookalikes: [ai]}\n").contains("lookalike tokens"));
        assert!(
            err("version: 1\nendpoints:\n  - {id: a, name: A, class: llm, domains: [x.io]}\n")
                .contains("unknown variant")
        );
    }
}
