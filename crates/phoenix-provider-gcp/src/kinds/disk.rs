//! `gcp.disk`: a zonal persistent disk, blank or from an image or a snapshot.
//! Labels change in place; the size grows in place (disks never shrink:
//! a smaller size replaces the disk).

use async_trait::async_trait;
use phoenix_core::provider::{Observed, ProviderError, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::{Map, json};

use super::{Kind, common_inputs, common_outputs, last, opt_str, schema};
use crate::gce::{Coll, Gce, Loc, Scope, request_id};

pub struct Disk;

/// `debian-cloud/debian-12` (project/family) → the API's family path; anything else as given.
pub fn image_ref(s: &str) -> String {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() == 2 { format!("projects/{}/global/images/family/{}", parts[0], parts[1]) } else { s.to_string() }
}

#[async_trait]
impl Kind for Disk {
    fn schema(&self) -> ResourceSchema {
        schema(
            "gcp.disk",
            "A persistent disk (blank, or from an image or a snapshot)",
            true,
            vec![
                AttrSchema::optional("zone", AttrType::String, "default: the provider's zone").force_new().format("gcp-zone"),
                AttrSchema::optional("size_gb", AttrType::Int, "size in GB (default: the source's, or 500 when blank); grows in place"),
                AttrSchema::optional("type", AttrType::String, "pd-standard, pd-balanced, pd-ssd …")
                    .default(json!("pd-balanced"))
                    .force_new(),
                AttrSchema::optional(
                    "image",
                    AttrType::String,
                    "source image: a self_link, or project/family such as debian-cloud/debian-12",
                )
                .force_new(),
                AttrSchema::optional(
                    "snapshot",
                    AttrType::String,
                    "source snapshot: its self_link (wins over `image`; what `phoenix restore` sets)",
                )
                .force_new(),
                AttrSchema::computed("zone_link", AttrType::String, "the zone's URL").stable(),
            ],
        )
    }
    fn coll(&self) -> Coll {
        Coll::Disks
    }
    fn scope(&self, gce: &Gce, inputs: &Attrs) -> Result<Scope, ProviderError> {
        Ok(Scope::Zone(gce.zone_or_default(opt_str(inputs, "zone"))?))
    }
    async fn body(&self, gce: &Gce, inputs: &Attrs) -> Result<Map<String, Value>, ProviderError> {
        let zone = gce.zone_or_default(opt_str(inputs, "zone"))?;
        let mut b = Map::new();
        if let Some(s) = inputs.get("size_gb").and_then(Value::as_i64) {
            b.insert("sizeGb".into(), json!(s.to_string()));
        }
        b.insert("type".into(), json!(format!("zones/{zone}/diskTypes/{}", opt_str(inputs, "type").unwrap_or("pd-balanced"))));
        // Both set is how a restore brings back a disk first made from an image
        // (`phoenix restore` sets `snapshot`): its data is the snapshot's.
        match (opt_str(inputs, "image"), opt_str(inputs, "snapshot")) {
            (_, Some(s)) => {
                b.insert("sourceSnapshot".into(), json!(s));
            }
            (Some(i), None) => {
                b.insert("sourceImage".into(), json!(image_ref(i)));
            }
            (None, None) => {}
        }
        Ok(b)
    }
    fn observe(&self, o: &Value, prior: &Attrs) -> Observed {
        let mut inputs = common_inputs(o, prior);
        if prior.contains_key("size_gb") {
            inputs.insert("size_gb".into(), json!(o["sizeGb"].as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0)));
        }
        inputs.insert("type".into(), json!(last(&o["type"])));
        if prior.contains_key("zone") {
            inputs.insert("zone".into(), json!(last(&o["zone"])));
        }
        // The source is not reported in the definition's spelling (a family resolves to an image): not observed, and force-new anyway.
        for k in ["image", "snapshot"] {
            if let Some(v) = prior.get(k) {
                inputs.insert(k.into(), v.clone());
            }
        }
        let mut outputs = common_outputs(o);
        outputs.insert("zone_link".into(), json!(o["zone"].as_str().unwrap_or_default()));
        Observed { inputs, outputs }
    }
    async fn settle(&self, gce: &Gce, loc: &Loc, object: Value) -> Result<Value, ProviderError> {
        if object["status"] == "READY" {
            return Ok(object);
        }
        super::wait_until(gce, &format!("disk {} to be READY", loc.name), || async {
            Ok(gce.get(Coll::Disks, loc).await?.filter(|d| d["status"] == "READY"))
        })
        .await
    }
    async fn update_fields(&self, gce: &Gce, req: &UpdateRequest, loc: &Loc, object: &Value) -> Result<(), ProviderError> {
        if req.changed.iter().any(|c| c == "size_gb")
            && let Some(want) = req.inputs.get("size_gb").and_then(Value::as_i64)
        {
            let have = object["sizeGb"].as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
            if want < have {
                return Err(ProviderError::permanent(format!("disk {} is {have} GB: disks cannot shrink", loc.name)));
            }
            if want > have {
                gce.resize_disk(loc, want, &request_id()).await.map_err(|e| e.into_provider("resize gcp.disk"))?;
            }
        }
        Ok(())
    }
}
