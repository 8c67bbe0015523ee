//! The builtin `data` resource: values and triggers with no remote object
//! (like Terraform's `terraform_data`). Templates use it to compute and pass
//! values; tests and benchmarks use it to build large graphs with no cloud.

use async_trait::async_trait;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, Provider, ProviderContext, ProviderError, RefreshItem, UpdateRequest,
};
use crate::schema::{AttrSchema, AttrType, ResourceSchema};
use crate::value::{Attrs, Value};

pub const PROVIDER_NAME: &str = "builtin";

pub struct BuiltinProvider;

fn outputs_for(inputs: &Attrs, id: String) -> Attrs {
    let mut out = Attrs::new();
    out.insert("id".into(), Value::String(id));
    out.insert("output".into(), inputs.get("input").cloned().unwrap_or(Value::Null));
    out
}

#[async_trait]
impl Provider for BuiltinProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn schemas(&self) -> Vec<ResourceSchema> {
        vec![ResourceSchema {
            type_name: "data",
            description: "Holds a value and triggers; no remote object",
            attrs: vec![
                AttrSchema::optional("input", AttrType::Any, "any value; copied to `output`"),
                AttrSchema::optional("triggers", AttrType::Map(Box::new(AttrType::Any)), "a change replaces the resource").force_new(),
                AttrSchema::optional("secret", AttrType::String, "a value kept out of state and output").sensitive(),
                AttrSchema::computed("id", AttrType::String, "a unique id, new on every replacement").stable(),
                AttrSchema::computed("output", AttrType::Any, "the value of `input`"),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: false,
        }]
    }

    fn configure(&self, _cx: &ProviderContext) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>> {
        items.into_iter().map(|i| Ok(Some(Observed { inputs: i.inputs, outputs: i.outputs }))).collect()
    }

    async fn adopt(&self, _req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        // Nothing exists outside state, so nothing can have been left behind.
        Ok(None)
    }

    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        let mut h = Sha256::new();
        h.update(req.ownership.key().as_bytes());
        h.update(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default().to_le_bytes());
        let id: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
        Ok(outputs_for(&req.inputs, id))
    }

    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = req.prior_outputs.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(outputs_for(&req.inputs, id))
    }

    async fn delete(&self, _req: DeleteRequest) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// A `data` resource's attributes for tests: `{"input": input}`.
pub fn data_inputs(input: Value) -> Attrs {
    let mut a = Attrs::new();
    a.insert("input".into(), json!(input));
    a
}
