//! Provider requests as a provider's own tests build them: one object of
//! environment `test` (lineage `lineage-test`) per resource name, inputs as JSON.

use std::sync::Arc;

use phoenix_core::ResourceAddr;
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, RefreshItem, UpdateRequest};
use phoenix_core::state::Ownership;
use phoenix_core::value::Attrs;

pub fn ownership(name: &str) -> Ownership {
    Ownership {
        environment: "test".into(),
        instance: None,
        resource: ResourceAddr::parse(name).unwrap(),
        lineage: "lineage-test".into(),
        expires_at: None,
    }
}

pub fn attrs(v: serde_json::Value) -> Attrs {
    serde_json::from_value(v).unwrap()
}

pub fn create_req(ty: &str, name: &str, inputs: serde_json::Value) -> CreateRequest {
    CreateRequest {
        addr: ResourceAddr::parse(name).unwrap(),
        type_name: ty.into(),
        inputs: attrs(inputs),
        ownership: ownership(name),
        idempotency_token: format!("token-{name}-{}", std::process::id()),
        log: Arc::new(|_, _| {}),
    }
}

pub fn delete_req(ty: &str, name: &str, inputs: &Attrs, outputs: &Attrs) -> DeleteRequest {
    DeleteRequest {
        addr: ResourceAddr::parse(name).unwrap(),
        type_name: ty.into(),
        inputs: inputs.clone(),
        outputs: outputs.clone(),
        ownership: ownership(name),
        log: Arc::new(|_, _| {}),
    }
}

pub fn update_req(
    ty: &str,
    name: &str,
    prior_inputs: &Attrs,
    prior_outputs: &Attrs,
    inputs: serde_json::Value,
    changed: &[&str],
) -> UpdateRequest {
    UpdateRequest {
        addr: ResourceAddr::parse(name).unwrap(),
        type_name: ty.into(),
        prior_inputs: prior_inputs.clone(),
        prior_outputs: prior_outputs.clone(),
        inputs: attrs(inputs),
        changed: changed.iter().map(|s| s.to_string()).collect(),
        ownership: ownership(name),
        log: Arc::new(|_, _| {}),
    }
}

pub fn refresh_item(ty: &str, name: &str, inputs: &Attrs, outputs: &Attrs) -> RefreshItem {
    RefreshItem { addr: ResourceAddr::parse(name).unwrap(), type_name: ty.into(), inputs: inputs.clone(), outputs: outputs.clone() }
}

pub fn adopt_req(ty: &str, name: &str, inputs: serde_json::Value) -> AdoptRequest {
    AdoptRequest { addr: ResourceAddr::parse(name).unwrap(), type_name: ty.into(), inputs: attrs(inputs), ownership: ownership(name) }
}
