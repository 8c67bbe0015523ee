//! `gcp.address`: a reserved static IP address (regional). Labels change in place.

use async_trait::async_trait;
use phoenix_core::provider::{Observed, ProviderError};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::{Map, json};

use super::{Kind, common_inputs, common_outputs, last, opt_str, schema};
use crate::gce::{Coll, Gce, Scope};

pub struct Address;

#[async_trait]
impl Kind for Address {
    fn schema(&self) -> ResourceSchema {
        schema(
            "gcp.address",
            "A reserved static IP address",
            true,
            vec![
                AttrSchema::optional("region", AttrType::String, "default: the provider's region").force_new().format("gcp-region"),
                AttrSchema::optional("address_type", AttrType::String, "EXTERNAL or INTERNAL")
                    .default(json!("EXTERNAL"))
                    .force_new()
                    .validate_with(|v| match v.as_str() {
                        Some("EXTERNAL" | "INTERNAL") => Ok(()),
                        _ => Err("must be EXTERNAL or INTERNAL".into()),
                    }),
                AttrSchema::optional("subnetwork", AttrType::String, "for INTERNAL addresses: the subnetwork's self_link").force_new(),
                AttrSchema::computed("address", AttrType::String, "the reserved IP address").stable(),
            ],
        )
    }
    fn coll(&self) -> Coll {
        Coll::Addresses
    }
    fn scope(&self, gce: &Gce, inputs: &Attrs) -> Result<Scope, ProviderError> {
        Ok(Scope::Region(gce.region_or_default(opt_str(inputs, "region"))?))
    }
    async fn body(&self, _: &Gce, inputs: &Attrs) -> Result<Map<String, Value>, ProviderError> {
        let mut b = Map::new();
        b.insert("addressType".into(), json!(opt_str(inputs, "address_type").unwrap_or("EXTERNAL")));
        if let Some(s) = opt_str(inputs, "subnetwork") {
            b.insert("subnetwork".into(), json!(s));
        }
        Ok(b)
    }
    fn observe(&self, o: &Value, prior: &Attrs) -> Observed {
        let mut inputs = common_inputs(o, prior);
        inputs.insert("address_type".into(), json!(o["addressType"].as_str().unwrap_or("EXTERNAL")));
        if prior.contains_key("region") {
            inputs.insert("region".into(), json!(last(&o["region"])));
        }
        if let Some(s) = opt_str(prior, "subnetwork") {
            inputs.insert("subnetwork".into(), json!(s));
        }
        let mut outputs = common_outputs(o);
        outputs.insert("address".into(), json!(o["address"].as_str().unwrap_or_default()));
        Observed { inputs, outputs }
    }
}
