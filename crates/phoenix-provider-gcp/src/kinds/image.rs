//! `gcp.image`: a custom image from a disk, a snapshot or another image (global). Labels change in place.

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::gce::{Coll, Gce, Loc, Scope};
use crate::gce_kind::{self as gk, GceKind, ObjectIds, UserLabels};

pub struct Image;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// the object's name (RFC 1035: lowercase letter, then [-a-z0-9], at most 63)
    #[schemars(extend("force_new" = true, "format" = "gce-name"))]
    pub name: String,
    /// labels (Phoenix adds its phoenix-* ownership labels); changed in place
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<UserLabels>,
    /// a disk's self_link
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub source_disk: Option<String>,
    /// a snapshot's self_link
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub source_snapshot: Option<String>,
    /// an image's self_link, or project/family
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub source_image: Option<String>,
    /// the image family it joins
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub family: Option<String>,
}

#[async_trait]
impl GceKind for Image {
    const COLL: Coll = Coll::Images;

    fn name(spec: &ImageSpec) -> &str {
        &spec.name
    }
    fn user_labels(spec: &ImageSpec) -> Option<&UserLabels> {
        spec.labels.as_ref()
    }
    fn ids(outputs: &ObjectIds) -> &ObjectIds {
        outputs
    }
    fn scope(_: &Gce, _: &ImageSpec) -> Result<Scope, ProviderError> {
        Ok(Scope::Global)
    }
    async fn body(_: &Gce, spec: &ImageSpec) -> Result<Map<String, Value>, ProviderError> {
        let mut b = Map::new();
        let source = match (&spec.source_disk, &spec.source_snapshot, &spec.source_image) {
            (Some(d), None, None) => ("sourceDisk", d.clone()),
            (None, Some(s), None) => ("sourceSnapshot", s.clone()),
            (None, None, Some(i)) => ("sourceImage", gk::image_ref(i)),
            _ => return Err(ProviderError::permanent("set exactly one of `source_disk`, `source_snapshot`, `source_image`")),
        };
        b.insert(source.0.into(), json!(source.1));
        if let Some(f) = &spec.family {
            b.insert("family".into(), json!(f));
        }
        Ok(b)
    }
    fn observe(o: &Value, prior: Option<&ImageSpec>) -> Observed<Self> {
        // The sources are not re-read (a family resolves to an image; the source may be gone): force-new anyway.
        let source = |field: &str, from: fn(&ImageSpec) -> &Option<String>| match prior {
            Some(p) => from(p).clone(),
            None => o[field].as_str().map(str::to_string),
        };
        let spec = ImageSpec {
            name: gk::text(&o["name"]),
            labels: gk::observed_labels(o),
            source_disk: source("sourceDisk", |p| &p.source_disk),
            source_snapshot: source("sourceSnapshot", |p| &p.source_snapshot),
            source_image: prior.and_then(|p| p.source_image.clone()),
            family: o["family"].as_str().map(str::to_string),
        };
        Observed { spec, outputs: ObjectIds::of(o) }
    }
    async fn settle(gce: &Gce, loc: &Loc, object: Value) -> Result<Value, ProviderError> {
        gk::ready(gce, Coll::Images, loc, object, "image").await
    }
}

#[async_trait]
impl Kind for Image {
    const TYPE: &'static str = "gcp.image";
    const DESCRIPTION: &'static str = "A custom image";
    const FORMATS: &'static [(&'static str, Validator)] = gk::FORMATS;
    type Client = Gce;
    type Spec = ImageSpec;
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
