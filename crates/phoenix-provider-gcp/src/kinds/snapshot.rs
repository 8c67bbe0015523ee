//! `gcp.snapshot`: a snapshot of a disk (global). Labels change in place.

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::gce::{Coll, Gce, Loc, Scope};
use crate::gce_kind::{self as gk, GceKind, ObjectIds, UserLabels};
use crate::recovery::POINT_LABEL;

pub struct Snapshot;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSpec {
    /// the object's name (RFC 1035: lowercase letter, then [-a-z0-9], at most 63)
    #[schemars(extend("force_new" = true, "format" = "gce-name"))]
    pub name: String,
    /// labels (Phoenix adds its phoenix-* ownership labels); changed in place
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<UserLabels>,
    /// the disk's self_link
    #[schemars(extend("force_new" = true))]
    pub source_disk: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SnapshotOutputs {
    #[serde(flatten)]
    pub ids: ObjectIds,
    /// the size of the disk it was taken from
    #[schemars(extend("stable" = true))]
    pub disk_size_gb: i64,
}

#[async_trait]
impl GceKind for Snapshot {
    const COLL: Coll = Coll::Snapshots;

    fn name(spec: &SnapshotSpec) -> &str {
        &spec.name
    }
    fn user_labels(spec: &SnapshotSpec) -> Option<&UserLabels> {
        spec.labels.as_ref()
    }
    fn ids(outputs: &SnapshotOutputs) -> &ObjectIds {
        &outputs.ids
    }
    fn scope(_: &Gce, _: &SnapshotSpec) -> Result<Scope, ProviderError> {
        Ok(Scope::Global)
    }
    async fn body(_: &Gce, spec: &SnapshotSpec) -> Result<Map<String, Value>, ProviderError> {
        let mut b = Map::new();
        b.insert("sourceDisk".into(), json!(spec.source_disk));
        Ok(b)
    }
    fn observe(o: &Value, prior: Option<&SnapshotSpec>) -> Observed<Self> {
        let spec = SnapshotSpec {
            name: gk::text(&o["name"]),
            labels: gk::observed_labels(o),
            // The disk may be deleted after the snapshot: its link is not re-read.
            source_disk: prior.map_or_else(|| gk::text(&o["sourceDisk"]), |p| p.source_disk.clone()),
        };
        Observed { spec, outputs: SnapshotOutputs { ids: ObjectIds::of(o), disk_size_gb: gk::int64(&o["diskSizeGb"]).unwrap_or(0) } }
    }
    async fn settle(gce: &Gce, loc: &Loc, object: Value) -> Result<Value, ProviderError> {
        gk::ready(gce, Coll::Snapshots, loc, object, "snapshot").await
    }
}

#[async_trait]
impl Kind for Snapshot {
    const TYPE: &'static str = "gcp.snapshot";
    const DESCRIPTION: &'static str = "A snapshot of a persistent disk";
    const FORMATS: &'static [(&'static str, Validator)] = gk::FORMATS;
    type Client = Gce;
    type Spec = SnapshotSpec;
    type Outputs = SnapshotOutputs;

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
    async fn create(&self, gce: &Gce, req: Create<'_, Self>) -> Result<SnapshotOutputs, ProviderError> {
        gk::create(gce, req).await
    }
    async fn update(&self, gce: &Gce, req: Update<'_, Self>) -> Result<SnapshotOutputs, ProviderError> {
        gk::update(gce, req).await
    }
    async fn delete(&self, gce: &Gce, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        gk::delete(gce, req).await
    }
    async fn list_owned(&self, gce: &Gce) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        // A recovery point's snapshots belong to the point (`phoenix snapshot delete`, `--keep`), not to any state.
        gk::list_owned_where(gce, |s| s["labels"][POINT_LABEL].is_null()).await
    }
}
