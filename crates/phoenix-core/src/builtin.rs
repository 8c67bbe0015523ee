//! The builtin `data` resource: values and triggers with no remote object
//! (like Terraform's `terraform_data`). Templates use it to compute and pass
//! values; tests and benchmarks use it to build large graphs with no cloud.

use std::collections::BTreeMap;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::kit::{self, Capabilities, Create, Delete, KindSet, Observed as Seen, Prior, Secret, Update};
use crate::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, Provider, ProviderContext, ProviderError, RefreshItem, UpdateRequest,
};
use crate::schema::ResourceSchema;
use crate::value::{Attrs, Value};

pub const PROVIDER_NAME: &str = "builtin";

/// The `data` kind.
pub struct Data;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// any value; copied to `output`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// a change replaces the resource
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub triggers: Option<BTreeMap<String, Value>>,
    /// a value kept out of state and output
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DataOutputs {
    /// a unique id, new on every replacement
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the value of `input`
    #[serde(default)]
    pub output: Value,
}

#[async_trait]
impl kit::Kind for Data {
    const TYPE: &'static str = "data";
    const DESCRIPTION: &'static str = "Holds a value and triggers; no remote object";
    type Client = ();
    type Spec = DataSpec;
    type Outputs = DataOutputs;

    fn capabilities(&self) -> Capabilities {
        // Nothing exists outside state, so nothing can have been left behind.
        Capabilities::managed().not_adoptable()
    }

    async fn read(&self, _: &(), items: &[Prior<Self>]) -> Result<Vec<Option<Seen<Self>>>, ProviderError> {
        Ok(items.iter().map(|i| Some(Seen { spec: i.spec.clone(), outputs: i.outputs.clone() })).collect())
    }

    async fn create(&self, _: &(), req: Create<'_, Self>) -> Result<DataOutputs, ProviderError> {
        let mut h = Sha256::new();
        h.update(req.ownership.key().as_bytes());
        h.update(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default().to_le_bytes());
        let id: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
        Ok(DataOutputs { id, output: req.spec.input.clone().unwrap_or(Value::Null) })
    }

    async fn update(&self, _: &(), req: Update<'_, Self>) -> Result<DataOutputs, ProviderError> {
        Ok(DataOutputs { id: req.outputs.id.clone(), output: req.spec.input.clone().unwrap_or(Value::Null) })
    }

    async fn delete(&self, _: &(), _: Delete<'_, Self>) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// The builtin provider: the `data` kind.
pub struct BuiltinProvider {
    kinds: KindSet<()>,
}

impl Default for BuiltinProvider {
    fn default() -> Self {
        Self { kinds: KindSet::new().with(Data) }
    }
}

#[async_trait]
impl Provider for BuiltinProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn schemas(&self) -> Vec<ResourceSchema> {
        self.kinds.schemas()
    }

    fn configure(&self, _cx: &ProviderContext) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>> {
        self.kinds.refresh(&(), &items).await
    }

    async fn adopt(&self, req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        self.kinds.adopt(&(), &req).await
    }

    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        self.kinds.create(&(), &req).await
    }

    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        self.kinds.update(&(), &req).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), ProviderError> {
        self.kinds.delete(&(), &req).await
    }
}

/// A `data` resource's attributes for tests: `{"input": input}`.
pub fn data_inputs(input: Value) -> Attrs {
    let mut a = Attrs::new();
    a.insert("input".into(), json!(input));
    a
}
