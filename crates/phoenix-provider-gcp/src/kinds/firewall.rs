//! `gcp.firewall`: a VPC firewall rule. No labels: marks go in `description`.
//! Ports, ranges, tags and priority change in place (PATCH).

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::gce::{Coll, Gce, Loc, Scope, request_id};
use crate::gce_kind::{self as gk, GceKind, ObjectIds};

pub struct Firewall;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirewallSpec {
    /// the object's name (RFC 1035: lowercase letter, then [-a-z0-9], at most 63)
    #[schemars(extend("force_new" = true, "format" = "gce-name"))]
    pub name: String,
    /// the network's self_link
    #[schemars(extend("force_new" = true))]
    pub network: String,
    /// allowed traffic: [{ protocol = "tcp", ports = ["80"] }]; changed in place
    #[schemars(with = "Vec<Value>", extend("format" = "gce-allow-rules"))]
    pub allow: Vec<AllowRule>,
    /// source CIDR ranges; changed in place
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "ipv4-cidr-list"))]
    pub source_ranges: Option<Vec<String>>,
    /// instances it applies to (network tags); all if empty
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_tags: Option<Vec<String>>,
    /// 0–65535, lower wins; changed in place
    #[serde(default = "default_priority")]
    pub priority: i64,
    /// free text (after Phoenix's ownership line)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub description: Option<String>,
}

/// `{ protocol = "tcp", ports = ["80", "443"] }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllowRule {
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<Port>>,
}

/// A port or range, as the definition spells it (a number or a string).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Port {
    Number(i64),
    Text(String),
}

impl Port {
    fn text(&self) -> String {
        match self {
            Port::Number(n) => n.to_string(),
            Port::Text(s) => s.clone(),
        }
    }
}

impl AllowRule {
    /// The API's form: `{ IPProtocol, ports }` with ports as strings.
    fn api(&self) -> Value {
        let mut rule = json!({"IPProtocol": self.protocol});
        if let Some(ports) = &self.ports {
            rule["ports"] = json!(ports.iter().map(Port::text).collect::<Vec<_>>());
        }
        rule
    }
}

fn default_priority() -> i64 {
    1000
}

/// What a PATCH changes.
fn fields(spec: &FirewallSpec) -> Map<String, Value> {
    let mut b = Map::new();
    b.insert("allowed".into(), json!(spec.allow.iter().map(AllowRule::api).collect::<Vec<_>>()));
    b.insert("sourceRanges".into(), json!(spec.source_ranges.clone().unwrap_or_default()));
    b.insert("targetTags".into(), json!(spec.target_tags.clone().unwrap_or_default()));
    b.insert("priority".into(), json!(spec.priority));
    b
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
}

#[async_trait]
impl GceKind for Firewall {
    const COLL: Coll = Coll::Firewalls;
    const LABELLED: bool = false;

    fn name(spec: &FirewallSpec) -> &str {
        &spec.name
    }
    fn user_description(spec: &FirewallSpec) -> Option<&str> {
        spec.description.as_deref()
    }
    fn ids(outputs: &ObjectIds) -> &ObjectIds {
        outputs
    }
    fn scope(_: &Gce, _: &FirewallSpec) -> Result<Scope, ProviderError> {
        Ok(Scope::Global)
    }
    async fn body(_: &Gce, spec: &FirewallSpec) -> Result<Map<String, Value>, ProviderError> {
        let mut b = fields(spec);
        b.insert("network".into(), json!(spec.network));
        b.insert("direction".into(), json!("INGRESS"));
        Ok(b)
    }
    fn observe(o: &Value, prior: Option<&FirewallSpec>) -> Observed<Self> {
        let allow: Vec<AllowRule> = o["allowed"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| AllowRule {
                protocol: gk::text(&a["IPProtocol"]),
                ports: Some(strings(&a["ports"]).into_iter().map(Port::Text).collect::<Vec<_>>()).filter(|p| !p.is_empty()),
            })
            .collect();
        // The definition's spelling of ports (numbers or strings) is kept when the values agree.
        let allow = match prior {
            Some(p) if p.allow.iter().map(AllowRule::api).eq(allow.iter().map(AllowRule::api)) => p.allow.clone(),
            _ => allow,
        };
        let spec = FirewallSpec {
            name: gk::text(&o["name"]),
            network: gk::link_as_spelled(&o["network"], prior.map(|p| p.network.as_str())),
            allow,
            source_ranges: Some(strings(&o["sourceRanges"])),
            target_tags: Some(strings(&o["targetTags"])),
            priority: o["priority"].as_i64().unwrap_or(default_priority()),
            description: gk::observed_description(o),
        };
        Observed { spec, outputs: ObjectIds::of(o) }
    }
    async fn update_fields(gce: &Gce, req: &Update<'_, Self>, loc: &Loc, _: &Value) -> Result<(), ProviderError> {
        if ["allow", "source_ranges", "target_tags", "priority"].iter().any(|c| req.changed(c)) {
            // The discovery document requires `name` in a firewall PATCH body.
            let mut body = fields(req.spec);
            body.insert("name".into(), json!(loc.name));
            gce.patch(Coll::Firewalls, loc, json!(body), &request_id()).await.map_err(|e| e.into_provider("update gcp.firewall"))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Kind for Firewall {
    const TYPE: &'static str = "gcp.firewall";
    const DESCRIPTION: &'static str = "A VPC firewall rule (ingress allow rules)";
    const FORMATS: &'static [(&'static str, Validator)] = gk::FORMATS;
    type Client = Gce;
    type Spec = FirewallSpec;
    type Outputs = ObjectIds;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }
    async fn read(&self, gce: &Gce, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        gk::read(gce, items).await
    }
    async fn import(&self, gce: &Gce, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        gk::import(gce, id).await
    }
    async fn find(&self, gce: &Gce, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        gk::find(gce, req.spec, req.ownership).await
    }
    async fn create(&self, gce: &Gce, req: Create<'_, Self>) -> Result<ObjectIds, ProviderError> {
        gk::create(gce, req).await
    }
    async fn update(&self, gce: &Gce, req: Update<'_, Self>) -> Result<ObjectIds, ProviderError> {
        gk::update(gce, req).await
    }
    async fn delete(&self, gce: &Gce, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        gk::delete(gce, req).await
    }
    async fn list_owned(&self, gce: &Gce) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        gk::list_owned(gce).await
    }
}
