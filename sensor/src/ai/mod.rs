//! AI-agent awareness from runtime evidence: the catalogue of model providers, vector stores,
//! cloud APIs and agent frameworks (data, `sensor/catalogue/ai.yaml`), and the classification
//! of a workload's egress peers against it.

pub mod catalogue;
pub mod classify;
pub mod inventory;
pub mod packages;
pub mod tools;

pub use catalogue::{Catalogue, CatalogueError, EndpointClass};
pub use classify::{EgressClass, PeerClass, classify};
