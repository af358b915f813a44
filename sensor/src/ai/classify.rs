//! The class of an egress peer: which model API, vector store or cloud API it is, an
//! in-cluster service, or other. Evidence in order of strength: a DNS name the container
//! resolved to the address, a service-specific port, the peer being a pod, a cluster DNS name.

use serde::Serialize;

use super::catalogue::{Catalogue, EndpointClass};
use crate::profile::model::{Flow, Protocol};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EgressClass {
    ModelApi,
    VectorStore,
    CloudApi,
    ClusterService,
    Other,
}

impl EgressClass {
    pub fn label(self) -> &'static str {
        match self {
            EgressClass::ModelApi => "model API",
            EgressClass::VectorStore => "vector store",
            EgressClass::CloudApi => "cloud API",
            EgressClass::ClusterService => "cluster service",
            EgressClass::Other => "other",
        }
    }
}

impl From<EndpointClass> for EgressClass {
    fn from(c: EndpointClass) -> Self {
        match c {
            EndpointClass::ModelApi => EgressClass::ModelApi,
            EndpointClass::VectorStore => EgressClass::VectorStore,
            EndpointClass::CloudApi => EgressClass::CloudApi,
        }
    }
}

/// What an egress peer is, and why the sensor thinks so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerClass {
    pub class: EgressClass,
    /// Catalogue id (`openai`, `pinecone`, ...) when catalogued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Human name of the catalogued endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The evidence: `dns:<name>`, `port:<n>`, `peer-pod`, `cluster-dns:<name>`, or none.
    pub evidence: String,
}

/// Classifies one egress flow of a profile against the catalogue.
pub fn classify(flow: &Flow, catalogue: &Catalogue) -> PeerClass {
    classify_peer(
        &flow.dns_names,
        flow.port,
        flow.protocol,
        flow.peer.is_some(),
        catalogue,
    )
}

/// Classifies an egress peer from what is known of it: the names the container resolved to
/// its address, its port and protocol, and whether it is a known pod.
pub fn classify_peer(
    dns_names: &[String],
    port: u16,
    protocol: Protocol,
    is_pod: bool,
    catalogue: &Catalogue,
) -> PeerClass {
    for name in dns_names {
        if let Some(e) = catalogue.endpoint_by_name(name) {
            return PeerClass {
                class: e.class.into(),
                endpoint: Some(e.id.clone()),
                name: Some(e.name.clone()),
                evidence: format!("dns:{name}"),
            };
        }
    }
    if let Some(e) = catalogue.endpoint_by_port(port, protocol) {
        return PeerClass {
            class: e.class.into(),
            endpoint: Some(e.id.clone()),
            name: Some(e.name.clone()),
            evidence: format!("port:{port}"),
        };
    }
    let plain = |class, evidence: String| PeerClass {
        class,
        endpoint: None,
        name: None,
        evidence,
    };
    if is_pod {
        return plain(EgressClass::ClusterService, "peer-pod".into());
    }
    if let Some(name) = dns_names.iter().find(|n| is_cluster_name(n)) {
        return plain(EgressClass::ClusterService, format!("cluster-dns:{name}"));
    }
    plain(EgressClass::Other, String::new())
}

/// One line saying what a workload's egress peers are, catalogued ones by name, e.g.
/// `Amazon Bedrock (model API), Pinecone (vector store), 1 cluster service, nothing else`.
pub fn summary<'a>(classes: impl IntoIterator<Item = &'a PeerClass>) -> String {
    use std::collections::BTreeMap;
    let mut named: BTreeMap<(EgressClass, &str), ()> = BTreeMap::new();
    let mut unnamed: BTreeMap<EgressClass, usize> = BTreeMap::new();
    for c in classes {
        match &c.name {
            Some(name) => {
                named.insert((c.class, name.as_str()), ());
            }
            None => *unnamed.entry(c.class).or_default() += 1,
        }
    }
    if named.is_empty() && unnamed.is_empty() {
        return "no egress".to_string();
    }
    let mut parts: Vec<String> = named
        .keys()
        .map(|(class, name)| format!("{name} ({})", class.label()))
        .collect();
    for (class, n) in unnamed {
        let what = match class {
            EgressClass::ClusterService => "cluster service",
            EgressClass::Other => "other peer",
            _ => class.label(),
        };
        parts.push(format!("{n} {what}{}", if n == 1 { "" } else { "s" }));
    }
    parts.push("nothing else".to_string());
    parts.join(", ")
}

/// A Kubernetes service name: `<svc>.<ns>.svc.cluster.local`, or `<svc>.<ns>.svc` as resolved
/// through the search path. Other cluster domains are not guessed (a public name may well have
/// a `svc` label: Pinecone's do).
fn is_cluster_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name.ends_with(".svc.cluster.local") || name.ends_with(".svc")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::profile::model::{Peer, Protocol};

    fn flow(names: &[&str], port: u16, peer: bool) -> Flow {
        Flow {
            peer: peer.then(|| Peer {
                namespace: "data".into(),
                pod: Some("qdrant-0".into()),
                workload: Some("qdrant".into()),
                labels: BTreeMap::new(),
            }),
            ..Flow::sample("203.0.113.7", port, Protocol::Tcp, names)
        }
    }

    #[test]
    fn classes_by_evidence() {
        let c = Catalogue::embedded();
        let class = |f: &Flow| {
            let p = classify(f, c);
            (p.class, p.endpoint, p.evidence)
        };
        assert_eq!(
            class(&flow(
                &["bedrock-runtime.us-east-1.amazonaws.com"],
                443,
                false
            )),
            (
                EgressClass::ModelApi,
                Some("amazon-bedrock".into()),
                "dns:bedrock-runtime.us-east-1.amazonaws.com".into()
            )
        );
        assert_eq!(
            class(&flow(
                &["my-index-abc.svc.aped-4627-b74a.pinecone.io"],
                443,
                false
            ))
            .0,
            EgressClass::VectorStore
        );
        assert_eq!(
            class(&flow(&["sts.amazonaws.com"], 443, false)).0,
            EgressClass::CloudApi
        );
        // A self-hosted Qdrant in the cluster is a vector store, not just a cluster service.
        assert_eq!(
            class(&flow(&[], 6333, true)),
            (
                EgressClass::VectorStore,
                Some("qdrant".into()),
                "port:6333".into()
            )
        );
        assert_eq!(class(&flow(&[], 8080, true)).0, EgressClass::ClusterService);
        assert_eq!(
            class(&flow(&["api.shop.svc.cluster.local"], 8080, false)).0,
            EgressClass::ClusterService
        );
        assert_eq!(
            class(&flow(&["example.com"], 443, false)),
            (EgressClass::Other, None, String::new())
        );
        assert_eq!(
            class(&flow(&["db.svc.example.com"], 443, false)).0,
            EgressClass::Other
        );
        // A look-alike name is not the provider.
        let all: Vec<PeerClass> = [
            flow(&["bedrock-runtime.us-east-1.amazonaws.com"], 443, false),
            flow(&["bedrock-runtime.us-west-2.amazonaws.com"], 443, false),
            flow(&["x.svc.gcp-starter.pinecone.io"], 443, false),
            flow(&[], 8080, true),
            flow(&["example.com"], 443, false),
            flow(&["example.org"], 443, false),
        ]
        .iter()
        .map(|f| classify(f, c))
        .collect();
        assert_eq!(
            summary(&all),
            "Amazon Bedrock (model API), Pinecone (vector store), 1 cluster service, 2 other peers, nothing else"
        );
        assert_eq!(summary(&[]), "no egress");
        assert_eq!(
            class(&flow(&["api.openai.com.evil.example"], 443, false)).0,
            EgressClass::Other
        );
    }
}
