//! `gcp.network`: a VPC network (global). Networks have no labels: Phoenix's
//! marks go in `description`. The routing mode changes in place (PATCH).

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::gce::{Coll, Gce, Loc, Scope, request_id};
use crate::gce_kind::{self as gk, GceKind, ObjectIds};

pub struct Network;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// the object's name (RFC 1035: lowercase letter, then [-a-z0-9], at most 63)
    #[schemars(extend("force_new" = true, "format" = "gce-name"))]
    pub name: String,
    /// auto mode (a subnetwork per region); default custom mode
    #[serde(default)]
    #[schemars(extend("force_new" = true))]
    pub auto_create_subnetworks: bool,
    /// REGIONAL or GLOBAL; changed in place
    #[serde(default = "regional")]
    #[schemars(extend("format" = "gce-routing-mode"))]
    pub routing_mode: String,
    /// maximum transmission unit (1300–8896; GCE's default 1460)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub mtu: Option<i64>,
    /// free text (after Phoenix's ownership line)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub description: Option<String>,
}

fn regional() -> String {
    "REGIONAL".into()
}

#[async_trait]
impl GceKind for Network {
    const COLL: Coll = Coll::Networks;
    const LABELLED: bool = false;

    fn name(spec: &NetworkSpec) -> &str {
        &spec.name
    }
    fn user_description(spec: &NetworkSpec) -> Option<&str> {
        spec.description.as_deref()
    }
    fn ids(outputs: &ObjectIds) -> &ObjectIds {
        outputs
    }
    fn scope(_: &Gce, _: &NetworkSpec) -> Result<Scope, ProviderError> {
        Ok(Scope::Global)
    }
    async fn body(_: &Gce, spec: &NetworkSpec) -> Result<Map<String, Value>, ProviderError> {
        let mut b = Map::new();
        b.insert("autoCreateSubnetworks".into(), json!(spec.auto_create_subnetworks));
        b.insert("routingConfig".into(), json!({"routingMode": spec.routing_mode}));
        if let Some(m) = spec.mtu {
            b.insert("mtu".into(), json!(m));
        }
        Ok(b)
    }
    fn observe(o: &Value, prior: Option<&NetworkSpec>) -> Observed<Self> {
        let spec = NetworkSpec {
            name: gk::text(&o["name"]),
            auto_create_subnetworks: o["autoCreateSubnetworks"].as_bool().unwrap_or(false),
            routing_mode: o["routingConfig"]["routingMode"].as_str().unwrap_or("REGIONAL").to_string(),
            mtu: o["mtu"].as_i64().or_else(|| prior.and_then(|p| p.mtu)),
            description: gk::observed_description(o),
        };
        Observed { spec, outputs: ObjectIds::of(o) }
    }
    async fn update_fields(gce: &Gce, req: &Update<'_, Self>, loc: &Loc, _: &Value) -> Result<(), ProviderError> {
        if req.changed("routing_mode") {
            let body = json!({"routingConfig": {"routingMode": req.spec.routing_mode}});
            gce.patch(Coll::Networks, loc, body, &request_id()).await.map_err(|e| e.into_provider("update gcp.network"))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Kind for Network {
    const TYPE: &'static str = "gcp.network";
    const DESCRIPTION: &'static str = "A VPC network";
    const FORMATS: &'static [(&'static str, Validator)] = gk::FORMATS;
    type Client = Gce;
    type Spec = NetworkSpec;
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
