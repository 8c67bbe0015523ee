//! `gcp.subnetwork`: a regional IPv4 range of a network. No labels: marks go in `description`.

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::gce::{Coll, Gce, Scope};
use crate::gce_kind::{self as gk, GceKind, ObjectIds};

pub struct Subnetwork;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetworkSpec {
    /// the object's name (RFC 1035: lowercase letter, then [-a-z0-9], at most 63)
    #[schemars(extend("force_new" = true, "format" = "gce-name"))]
    pub name: String,
    /// the network's self_link
    #[schemars(extend("force_new" = true))]
    pub network: String,
    /// the primary range, e.g. 10.10.0.0/24
    #[schemars(extend("force_new" = true, "format" = "ipv4-cidr"))]
    pub ip_cidr_range: String,
    /// default: the provider's region
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true, "format" = "gcp-region"))]
    pub region: Option<String>,
    /// reach Google APIs without external IPs
    #[serde(default)]
    #[schemars(extend("force_new" = true))]
    pub private_ip_google_access: bool,
    /// free text (after Phoenix's ownership line)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SubnetworkOutputs {
    #[serde(flatten)]
    pub ids: ObjectIds,
    /// the range's gateway
    #[schemars(extend("stable" = true))]
    pub gateway_address: String,
}

#[async_trait]
impl GceKind for Subnetwork {
    const COLL: Coll = Coll::Subnetworks;
    const LABELLED: bool = false;

    fn name(spec: &SubnetworkSpec) -> &str {
        &spec.name
    }
    fn user_description(spec: &SubnetworkSpec) -> Option<&str> {
        spec.description.as_deref()
    }
    fn ids(outputs: &SubnetworkOutputs) -> &ObjectIds {
        &outputs.ids
    }
    fn scope(gce: &Gce, spec: &SubnetworkSpec) -> Result<Scope, ProviderError> {
        Ok(Scope::Region(gce.region_or_default(spec.region.as_deref())?))
    }
    async fn body(_: &Gce, spec: &SubnetworkSpec) -> Result<Map<String, Value>, ProviderError> {
        let mut b = Map::new();
        b.insert("network".into(), json!(spec.network));
        b.insert("ipCidrRange".into(), json!(spec.ip_cidr_range));
        b.insert("privateIpGoogleAccess".into(), json!(spec.private_ip_google_access));
        Ok(b)
    }
    fn observe(o: &Value, prior: Option<&SubnetworkSpec>) -> Observed<Self> {
        let spec = SubnetworkSpec {
            name: gk::text(&o["name"]),
            // References to the network may be written as a full URL or a path: the prior spelling is kept when it names the same network.
            network: gk::link_as_spelled(&o["network"], prior.map(|p| p.network.as_str())),
            ip_cidr_range: gk::text(&o["ipCidrRange"]),
            region: Some(gk::last(&o["region"])),
            private_ip_google_access: o["privateIpGoogleAccess"].as_bool().unwrap_or(false),
            description: gk::observed_description(o),
        };
        Observed { spec, outputs: SubnetworkOutputs { ids: ObjectIds::of(o), gateway_address: gk::text(&o["gatewayAddress"]) } }
    }
}

#[async_trait]
impl Kind for Subnetwork {
    const TYPE: &'static str = "gcp.subnetwork";
    const DESCRIPTION: &'static str = "A subnetwork (a regional IPv4 range of a network)";
    const FORMATS: &'static [(&'static str, Validator)] = gk::FORMATS;
    type Client = Gce;
    type Spec = SubnetworkSpec;
    type Outputs = SubnetworkOutputs;

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
    async fn create(&self, gce: &Gce, req: Create<'_, Self>) -> Result<SubnetworkOutputs, ProviderError> {
        gk::create(gce, req).await
    }
    async fn update(&self, gce: &Gce, req: Update<'_, Self>) -> Result<SubnetworkOutputs, ProviderError> {
        gk::update(gce, req).await
    }
    async fn delete(&self, gce: &Gce, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        gk::delete(gce, req).await
    }
    async fn list_owned(&self, gce: &Gce) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        gk::list_owned(gce).await
    }
}
