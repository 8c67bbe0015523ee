//! `gcp.snapshot`: a snapshot of a disk (global). Labels change in place.

use async_trait::async_trait;
use phoenix_core::provider::{Observed, ProviderError};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::{Map, json};

use super::{Kind, common_inputs, common_outputs, req_str, schema};
use crate::gce::{Coll, Gce, Loc, Scope};

pub struct Snapshot;

#[async_trait]
impl Kind for Snapshot {
    fn schema(&self) -> ResourceSchema {
        schema(
            "gcp.snapshot",
            "A snapshot of a persistent disk",
            true,
            vec![
                AttrSchema::required("source_disk", AttrType::String, "the disk's self_link").force_new(),
                AttrSchema::computed("disk_size_gb", AttrType::Int, "the size of the disk it was taken from").stable(),
            ],
        )
    }
    fn coll(&self) -> Coll {
        Coll::Snapshots
    }
    fn scope(&self, _: &Gce, _: &Attrs) -> Result<Scope, ProviderError> {
        Ok(Scope::Global)
    }
    async fn body(&self, _: &Gce, inputs: &Attrs) -> Result<Map<String, Value>, ProviderError> {
        let mut b = Map::new();
        b.insert("sourceDisk".into(), json!(req_str(inputs, "source_disk")?));
        Ok(b)
    }
    fn observe(&self, o: &Value, prior: &Attrs) -> Observed {
        let mut inputs = common_inputs(o, prior);
        // The disk may be deleted after the snapshot: its link is not re-read.
        if let Some(v) = prior.get("source_disk") {
            inputs.insert("source_disk".into(), v.clone());
        }
        let mut outputs = common_outputs(o);
        outputs.insert("disk_size_gb".into(), json!(o["diskSizeGb"].as_str().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0)));
        Observed { inputs, outputs }
    }
    async fn settle(&self, gce: &Gce, loc: &Loc, object: Value) -> Result<Value, ProviderError> {
        if object["status"] == "READY" {
            return Ok(object);
        }
        super::wait_until(gce, &format!("snapshot {} to be READY", loc.name), || async {
            Ok(gce.get(Coll::Snapshots, loc).await?.filter(|s| s["status"] == "READY"))
        })
        .await
    }
}
