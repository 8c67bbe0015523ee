//! `gcp.address`: a reserved static IP address (regional). Labels change in place.

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::gce::{Coll, Gce, Scope};
use crate::gce_kind::{self as gk, GceKind, ObjectIds, UserLabels};

pub struct Address;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressSpec {
    /// the object's name (RFC 1035: lowercase letter, then [-a-z0-9], at most 63)
    #[schemars(extend("force_new" = true, "format" = "gce-name"))]
    pub name: String,
    /// labels (Phoenix adds its phoenix-* ownership labels); changed in place
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<UserLabels>,
    /// default: the provider's region
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true, "format" = "gcp-region"))]
    pub region: Option<String>,
    /// EXTERNAL or INTERNAL
    #[serde(default = "external")]
    #[schemars(extend("force_new" = true, "format" = "gce-address-type"))]
    pub address_type: String,
    /// for INTERNAL addresses: the subnetwork's self_link
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub subnetwork: Option<String>,
}

fn external() -> String {
    "EXTERNAL".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct AddressOutputs {
    #[serde(flatten)]
    pub ids: ObjectIds,
    /// the reserved IP address
    #[schemars(extend("stable" = true))]
    pub address: String,
}

#[async_trait]
impl GceKind for Address {
    const COLL: Coll = Coll::Addresses;

    fn name(spec: &AddressSpec) -> &str {
        &spec.name
    }
    fn user_labels(spec: &AddressSpec) -> Option<&UserLabels> {
        spec.labels.as_ref()
    }
    fn ids(outputs: &AddressOutputs) -> &ObjectIds {
        &outputs.ids
    }
    fn scope(gce: &Gce, spec: &AddressSpec) -> Result<Scope, ProviderError> {
        Ok(Scope::Region(gce.region_or_default(spec.region.as_deref())?))
    }
    async fn body(_: &Gce, spec: &AddressSpec) -> Result<Map<String, Value>, ProviderError> {
        let mut b = Map::new();
        b.insert("addressType".into(), json!(spec.address_type));
        if let Some(s) = &spec.subnetwork {
            b.insert("subnetwork".into(), json!(s));
        }
        Ok(b)
    }
    fn observe(o: &Value, prior: Option<&AddressSpec>) -> Observed<Self> {
        let spec = AddressSpec {
            name: gk::text(&o["name"]),
            labels: gk::observed_labels(o),
            region: Some(gk::last(&o["region"])),
            address_type: o["addressType"].as_str().unwrap_or("EXTERNAL").to_string(),
            subnetwork: match prior {
                Some(p) => p.subnetwork.clone(),
                None => o["subnetwork"].as_str().map(str::to_string),
            },
        };
        Observed { spec, outputs: AddressOutputs { ids: ObjectIds::of(o), address: gk::text(&o["address"]) } }
    }
}

#[async_trait]
impl Kind for Address {
    const TYPE: &'static str = "gcp.address";
    const DESCRIPTION: &'static str = "A reserved static IP address";
    const FORMATS: &'static [(&'static str, Validator)] = gk::FORMATS;
    type Client = Gce;
    type Spec = AddressSpec;
    type Outputs = AddressOutputs;

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
    async fn create(&self, gce: &Gce, req: Create<'_, Self>) -> Result<AddressOutputs, ProviderError> {
        gk::create(gce, req).await
    }
    async fn update(&self, gce: &Gce, req: Update<'_, Self>) -> Result<AddressOutputs, ProviderError> {
        gk::update(gce, req).await
    }
    async fn delete(&self, gce: &Gce, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        gk::delete(gce, req).await
    }
    async fn list_owned(&self, gce: &Gce) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        gk::list_owned(gce).await
    }
}
