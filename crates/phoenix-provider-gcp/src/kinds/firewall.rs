//! `gcp.firewall`: a VPC firewall rule. No labels: marks go in `description`.
//! Ports, ranges, tags and priority change in place (PATCH).

use async_trait::async_trait;
use phoenix_core::provider::{Observed, ProviderError, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::{Attrs, Value};
use serde_json::{Map, json};

use super::{Kind, common_inputs, common_outputs, opt_str, req_str, schema, str_list};
use crate::gce::{Coll, Gce, Loc, Scope, request_id};
use crate::labels;

pub struct Firewall;

/// `allow = [{ protocol = "tcp", ports = ["80", "443"] }]` → the API's `allowed`.
fn allowed(inputs: &Attrs) -> Result<Value, ProviderError> {
    let rules = inputs.get("allow").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let protocol = r["protocol"]
            .as_str()
            .ok_or_else(|| ProviderError::permanent(format!("allow[{i}] needs `protocol` (tcp, udp, icmp, all …)")))?;
        let mut rule = json!({"IPProtocol": protocol});
        if let Some(ports) = r.get("ports").and_then(Value::as_array) {
            let ports: Vec<String> = ports.iter().map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string)).collect();
            rule["ports"] = json!(ports);
        }
        out.push(rule);
    }
    Ok(json!(out))
}

fn fields(inputs: &Attrs) -> Result<Map<String, Value>, ProviderError> {
    let mut b = Map::new();
    b.insert("allowed".into(), allowed(inputs)?);
    b.insert("sourceRanges".into(), json!(str_list(inputs, "source_ranges")));
    b.insert("targetTags".into(), json!(str_list(inputs, "target_tags")));
    b.insert("priority".into(), json!(inputs.get("priority").and_then(Value::as_i64).unwrap_or(1000)));
    Ok(b)
}

#[async_trait]
impl Kind for Firewall {
    fn schema(&self) -> ResourceSchema {
        schema(
            "gcp.firewall",
            "A VPC firewall rule (ingress allow rules)",
            false,
            vec![
                AttrSchema::required("network", AttrType::String, "the network's self_link").force_new(),
                AttrSchema::required(
                    "allow",
                    AttrType::List(Box::new(AttrType::Any)),
                    "allowed traffic: [{ protocol = \"tcp\", ports = [\"80\"] }]; changed in place",
                )
                .validate_with(validators::allow_rules),
                AttrSchema::optional("source_ranges", AttrType::List(Box::new(AttrType::String)), "source CIDR ranges; changed in place")
                    .validate_with(validators::ipv4_cidr_list),
                AttrSchema::optional(
                    "target_tags",
                    AttrType::List(Box::new(AttrType::String)),
                    "instances it applies to (network tags); all if empty",
                ),
                AttrSchema::optional("priority", AttrType::Int, "0–65535, lower wins; changed in place").default(json!(1000)),
                AttrSchema::optional("description", AttrType::String, "free text (after Phoenix's ownership line)").force_new(),
            ],
        )
    }
    fn coll(&self) -> Coll {
        Coll::Firewalls
    }
    fn labelled(&self) -> bool {
        false
    }
    fn scope(&self, _: &Gce, _: &Attrs) -> Result<Scope, ProviderError> {
        Ok(Scope::Global)
    }
    async fn body(&self, _: &Gce, inputs: &Attrs) -> Result<Map<String, Value>, ProviderError> {
        let mut b = fields(inputs)?;
        b.insert("network".into(), json!(req_str(inputs, "network")?));
        b.insert("direction".into(), json!("INGRESS"));
        Ok(b)
    }
    fn observe(&self, o: &Value, prior: &Attrs) -> Observed {
        let mut inputs = common_inputs(o, prior);
        let net = o["network"].as_str().unwrap_or_default();
        let same = opt_str(prior, "network").is_some_and(|p| {
            p.rsplit_once("/compute/v1/").map_or(p, |(_, r)| r) == net.rsplit_once("/compute/v1/").map_or(net, |(_, r)| r)
        });
        inputs.insert("network".into(), if same { prior["network"].clone() } else { json!(net) });
        let allow: Vec<Value> = o["allowed"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let mut r = json!({"protocol": a["IPProtocol"]});
                if let Some(p) = a.get("ports").filter(|p| p.as_array().is_some_and(|x| !x.is_empty())) {
                    r["ports"] = p.clone();
                }
                r
            })
            .collect();
        // The definition's spelling of ports (numbers or strings) is kept when the values agree.
        let prior_allow = prior.get("allow").map(|a| allowed(&[("allow".to_string(), a.clone())].into_iter().collect()).ok());
        let same_allow = prior_allow.flatten().is_some_and(|p| {
            p.as_array().map(|x| x.len()) == Some(allow.len())
                && p.as_array().into_iter().flatten().zip(&allow).all(|(a, b)| {
                    a["IPProtocol"] == b["protocol"]
                        && a.get("ports").cloned().unwrap_or(json!(null)) == b.get("ports").cloned().unwrap_or(json!(null))
                })
        });
        inputs.insert("allow".into(), if same_allow { prior["allow"].clone() } else { json!(allow) });
        if prior.contains_key("source_ranges") {
            inputs.insert("source_ranges".into(), o.get("sourceRanges").cloned().unwrap_or(json!([])));
        }
        if prior.contains_key("target_tags") {
            inputs.insert("target_tags".into(), o.get("targetTags").cloned().unwrap_or(json!([])));
        }
        inputs.insert("priority".into(), o["priority"].clone());
        if prior.contains_key("description") {
            inputs.insert("description".into(), json!(labels::user_description(o["description"].as_str().unwrap_or_default())));
        }
        Observed { inputs, outputs: common_outputs(o) }
    }
    async fn update_fields(&self, gce: &Gce, req: &UpdateRequest, loc: &Loc, _: &Value) -> Result<(), ProviderError> {
        if req.changed.iter().any(|c| matches!(c.as_str(), "allow" | "source_ranges" | "target_tags" | "priority")) {
            // The discovery document requires `name` in a firewall PATCH body.
            let mut body = fields(&req.inputs)?;
            body.insert("name".into(), json!(loc.name));
            gce.patch(Coll::Firewalls, loc, json!(body), &request_id()).await.map_err(|e| e.into_provider("update gcp.firewall"))?;
        }
        Ok(())
    }
}
