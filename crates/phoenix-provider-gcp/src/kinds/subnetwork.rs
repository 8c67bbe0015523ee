//! `gcp.subnetwork`: a regional IPv4 range of a network. No labels: marks go in `description`.

use async_trait::async_trait;
use phoenix_core::provider::{Observed, ProviderError};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::{Attrs, Value};
use serde_json::{Map, json};

use super::{Kind, common_inputs, common_outputs, last, opt_str, req_str, schema};
use crate::gce::{Coll, Gce, Scope};
use crate::labels;

pub struct Subnetwork;

#[async_trait]
impl Kind for Subnetwork {
    fn schema(&self) -> ResourceSchema {
        schema(
            "gcp.subnetwork",
            "A subnetwork (a regional IPv4 range of a network)",
            false,
            vec![
                AttrSchema::required("network", AttrType::String, "the network's self_link").force_new(),
                AttrSchema::required("ip_cidr_range", AttrType::String, "the primary range, e.g. 10.10.0.0/24")
                    .force_new()
                    .validate_with(validators::ipv4_cidr),
                AttrSchema::optional("region", AttrType::String, "default: the provider's region").force_new().format("gcp-region"),
                AttrSchema::optional("private_ip_google_access", AttrType::Bool, "reach Google APIs without external IPs")
                    .default(json!(false))
                    .force_new(),
                AttrSchema::optional("description", AttrType::String, "free text (after Phoenix's ownership line)").force_new(),
                AttrSchema::computed("gateway_address", AttrType::String, "the range's gateway").stable(),
            ],
        )
    }
    fn coll(&self) -> Coll {
        Coll::Subnetworks
    }
    fn labelled(&self) -> bool {
        false
    }
    fn scope(&self, gce: &Gce, inputs: &Attrs) -> Result<Scope, ProviderError> {
        Ok(Scope::Region(gce.region_or_default(opt_str(inputs, "region"))?))
    }
    async fn body(&self, _: &Gce, inputs: &Attrs) -> Result<Map<String, Value>, ProviderError> {
        let mut b = Map::new();
        b.insert("network".into(), json!(req_str(inputs, "network")?));
        b.insert("ipCidrRange".into(), json!(req_str(inputs, "ip_cidr_range")?));
        b.insert("privateIpGoogleAccess".into(), json!(inputs.get("private_ip_google_access").and_then(Value::as_bool).unwrap_or(false)));
        Ok(b)
    }
    fn observe(&self, o: &Value, prior: &Attrs) -> Observed {
        let mut inputs = common_inputs(o, prior);
        // References to the network may be written as a full URL or a path: keep the prior spelling when it names the same network.
        let net = o["network"].as_str().unwrap_or_default();
        let same = opt_str(prior, "network").is_some_and(|p| {
            p.rsplit_once("/compute/v1/").map_or(p, |(_, r)| r) == net.rsplit_once("/compute/v1/").map_or(net, |(_, r)| r)
        });
        inputs.insert("network".into(), if same { prior["network"].clone() } else { json!(net) });
        inputs.insert("ip_cidr_range".into(), o["ipCidrRange"].clone());
        inputs.insert("private_ip_google_access".into(), json!(o["privateIpGoogleAccess"].as_bool().unwrap_or(false)));
        if prior.contains_key("region") {
            inputs.insert("region".into(), json!(last(&o["region"])));
        }
        if prior.contains_key("description") {
            inputs.insert("description".into(), json!(labels::user_description(o["description"].as_str().unwrap_or_default())));
        }
        let mut outputs = common_outputs(o);
        outputs.insert("gateway_address".into(), json!(o["gatewayAddress"].as_str().unwrap_or_default()));
        Observed { inputs, outputs }
    }
}
