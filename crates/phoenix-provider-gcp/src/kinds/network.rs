//! `gcp.network`: a VPC network (global). Networks have no labels: Phoenix's
//! marks go in `description`. The routing mode changes in place (PATCH).

use async_trait::async_trait;
use phoenix_core::provider::{Observed, ProviderError, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::{Map, json};

use super::{Kind, common_inputs, common_outputs, opt_str, schema};
use crate::gce::{Coll, Gce, Loc, Scope, request_id};
use crate::labels;

pub struct Network;

#[async_trait]
impl Kind for Network {
    fn schema(&self) -> ResourceSchema {
        schema(
            "gcp.network",
            "A VPC network",
            false,
            vec![
                AttrSchema::optional("auto_create_subnetworks", AttrType::Bool, "auto mode (a subnetwork per region); default custom mode")
                    .default(json!(false))
                    .force_new(),
                AttrSchema::optional("routing_mode", AttrType::String, "REGIONAL or GLOBAL; changed in place")
                    .default(json!("REGIONAL"))
                    .validate_with(|v| match v.as_str() {
                        Some("REGIONAL" | "GLOBAL") => Ok(()),
                        _ => Err("must be REGIONAL or GLOBAL".into()),
                    }),
                AttrSchema::optional("mtu", AttrType::Int, "maximum transmission unit (1300–8896; GCE's default 1460)").force_new(),
                AttrSchema::optional("description", AttrType::String, "free text (after Phoenix's ownership line)").force_new(),
            ],
        )
    }
    fn coll(&self) -> Coll {
        Coll::Networks
    }
    fn labelled(&self) -> bool {
        false
    }
    fn scope(&self, _: &Gce, _: &Attrs) -> Result<Scope, ProviderError> {
        Ok(Scope::Global)
    }
    async fn body(&self, _: &Gce, inputs: &Attrs) -> Result<Map<String, Value>, ProviderError> {
        let mut b = Map::new();
        b.insert("autoCreateSubnetworks".into(), json!(inputs.get("auto_create_subnetworks").and_then(Value::as_bool).unwrap_or(false)));
        b.insert("routingConfig".into(), json!({"routingMode": opt_str(inputs, "routing_mode").unwrap_or("REGIONAL")}));
        if let Some(m) = inputs.get("mtu").and_then(Value::as_i64) {
            b.insert("mtu".into(), json!(m));
        }
        Ok(b)
    }
    fn observe(&self, o: &Value, prior: &Attrs) -> Observed {
        let mut inputs = common_inputs(o, prior);
        inputs.insert("auto_create_subnetworks".into(), json!(o["autoCreateSubnetworks"].as_bool().unwrap_or(false)));
        inputs.insert("routing_mode".into(), json!(o["routingConfig"]["routingMode"].as_str().unwrap_or("REGIONAL")));
        if prior.contains_key("mtu") {
            inputs.insert("mtu".into(), o["mtu"].clone());
        }
        if prior.contains_key("description") {
            inputs.insert("description".into(), json!(labels::user_description(o["description"].as_str().unwrap_or_default())));
        }
        Observed { inputs, outputs: common_outputs(o) }
    }
    async fn update_fields(&self, gce: &Gce, req: &UpdateRequest, loc: &Loc, _: &Value) -> Result<(), ProviderError> {
        if req.changed.iter().any(|c| c == "routing_mode") {
            let body = json!({"routingConfig": {"routingMode": opt_str(&req.inputs, "routing_mode").unwrap_or("REGIONAL")}});
            gce.patch(Coll::Networks, loc, body, &request_id()).await.map_err(|e| e.into_provider("update gcp.network"))?;
        }
        Ok(())
    }
}
