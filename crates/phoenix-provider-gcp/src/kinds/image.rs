//! `gcp.image`: a custom image from a disk, a snapshot or another image (global). Labels change in place.

use async_trait::async_trait;
use phoenix_core::provider::{Observed, ProviderError};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::{Map, json};

use super::{Kind, common_inputs, common_outputs, opt_str, schema};
use crate::gce::{Coll, Gce, Loc, Scope};

pub struct Image;

#[async_trait]
impl Kind for Image {
    fn schema(&self) -> ResourceSchema {
        schema(
            "gcp.image",
            "A custom image",
            true,
            vec![
                AttrSchema::optional("source_disk", AttrType::String, "a disk's self_link").force_new(),
                AttrSchema::optional("source_snapshot", AttrType::String, "a snapshot's self_link").force_new(),
                AttrSchema::optional("source_image", AttrType::String, "an image's self_link, or project/family").force_new(),
                AttrSchema::optional("family", AttrType::String, "the image family it joins").force_new(),
            ],
        )
    }
    fn coll(&self) -> Coll {
        Coll::Images
    }
    fn scope(&self, _: &Gce, _: &Attrs) -> Result<Scope, ProviderError> {
        Ok(Scope::Global)
    }
    async fn body(&self, _: &Gce, inputs: &Attrs) -> Result<Map<String, Value>, ProviderError> {
        let mut b = Map::new();
        let sources: Vec<(&str, &str)> =
            [("source_disk", "sourceDisk"), ("source_snapshot", "sourceSnapshot"), ("source_image", "sourceImage")]
                .into_iter()
                .filter(|(k, _)| inputs.contains_key(*k))
                .collect();
        let [(attr, field)] = sources.as_slice() else {
            return Err(ProviderError::permanent("set exactly one of `source_disk`, `source_snapshot`, `source_image`"));
        };
        let v = opt_str(inputs, attr).unwrap_or_default();
        b.insert((*field).into(), json!(if *attr == "source_image" { super::disk::image_ref(v) } else { v.to_string() }));
        if let Some(f) = opt_str(inputs, "family") {
            b.insert("family".into(), json!(f));
        }
        Ok(b)
    }
    fn observe(&self, o: &Value, prior: &Attrs) -> Observed {
        let mut inputs = common_inputs(o, prior);
        for k in ["source_disk", "source_snapshot", "source_image"] {
            if let Some(v) = prior.get(k) {
                inputs.insert(k.into(), v.clone());
            }
        }
        if prior.contains_key("family") {
            inputs.insert("family".into(), o.get("family").cloned().unwrap_or(Value::Null));
        }
        Observed { inputs, outputs: common_outputs(o) }
    }
    async fn settle(&self, gce: &Gce, loc: &Loc, object: Value) -> Result<Value, ProviderError> {
        if object["status"] == "READY" {
            return Ok(object);
        }
        super::wait_until(gce, &format!("image {} to be READY", loc.name), || async {
            Ok(gce.get(Coll::Images, loc).await?.filter(|i| i["status"] == "READY"))
        })
        .await
    }
}
