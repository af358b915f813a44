//! `sensor audit netpol --from-cluster`: the NetworkPolicies and Namespace labels as the API
//! server has them (list, paginated), instead of files. Needs `list` on
//! `networking.k8s.io/networkpolicies` and on `namespaces`, which the DaemonSet's ClusterRole
//! does not grant (the agent never needs them): run it with your own credentials through
//! `kubectl proxy` and `--kubernetes-api-url`, or grant them.

use k8s_openapi::api::{core::v1::Namespace, networking::v1::NetworkPolicy};
use kube::{Api, api::ListParams};

use super::policy_files::LoadedPolicies;
use crate::{
    attribution::kube::{Endpoint, client},
    audit::netpol_eval::{Namespaces, PolicySet},
};

#[derive(Debug, thiserror::Error)]
#[error("reading NetworkPolicies from the Kubernetes API: {0}")]
pub struct ClusterError(String);

const PAGE: u32 = 500;

/// Every object of `api`, following `continue` tokens.
async fn list_all<K>(api: Api<K>, what: &str) -> Result<Vec<K>, ClusterError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = api
            .list(&params)
            .await
            .map_err(|e| ClusterError(format!("listing {what}: {e}")))?;
        items.extend(page.items);
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(items);
        }
    }
}

/// The policies (of `namespace`, or all) and every namespace's labels.
pub async fn load(
    endpoint: &Endpoint,
    namespace: Option<&str>,
) -> Result<LoadedPolicies, ClusterError> {
    let client = client(endpoint).map_err(ClusterError)?;
    let policies_api: Api<NetworkPolicy> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let policies = list_all(policies_api, "networkpolicies").await?;
    let mut namespaces = Namespaces::default();
    for ns in list_all(Api::<Namespace>::all(client), "namespaces").await? {
        if let Some(name) = ns.metadata.name {
            namespaces.insert(&name, ns.metadata.labels.unwrap_or_default());
        }
    }
    let set = PolicySet::new(&policies).map_err(|e| ClusterError(e.to_string()))?;
    Ok(LoadedPolicies {
        policies,
        set,
        namespaces,
        notes: Vec::new(),
        files: 0,
    })
}
