//! `gcp.disk`: a zonal persistent disk, blank or from an image or a snapshot.
//! Labels change in place; the size grows in place (disks never shrink:
//! a smaller size replaces the disk). Its data is snapshotted in recovery
//! points and restored through its `snapshot` input (see `recovery`).

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Snapshot, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::recovery::SnapshotRef;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::gce::{Coll, Gce, Loc, Scope, request_id};
use crate::gce_kind::{self as gk, GceKind, ObjectIds, UserLabels};
use crate::recovery;

pub struct Disk;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskSpec {
    /// the object's name (RFC 1035: lowercase letter, then [-a-z0-9], at most 63)
    #[schemars(extend("force_new" = true, "format" = "gce-name"))]
    pub name: String,
    /// labels (Phoenix adds its phoenix-* ownership labels); changed in place
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<UserLabels>,
    /// default: the provider's zone
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true, "format" = "gcp-zone"))]
    pub zone: Option<String>,
    /// size in GB (default: the source's, or 500 when blank); grows in place
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<i64>,
    /// pd-standard, pd-balanced, pd-ssd …
    #[serde(rename = "type", default = "pd_balanced")]
    #[schemars(extend("force_new" = true))]
    pub disk_type: String,
    /// source image: a self_link, or project/family such as debian-cloud/debian-12
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub image: Option<String>,
    /// source snapshot: its self_link (wins over `image`; what `phoenix restore` sets)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub snapshot: Option<String>,
}

pub(crate) fn pd_balanced() -> String {
    "pd-balanced".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DiskOutputs {
    #[serde(flatten)]
    pub ids: ObjectIds,
    /// the zone's URL
    #[schemars(extend("stable" = true))]
    pub zone_link: String,
}

/// A disk used by an instance with the same owner: the instance's boot disk
/// (made with it, carrying its marks, deleted with it), not an object of its own.
fn boot_disk(disk: &Value, instances: &[Value]) -> bool {
    let same_owner =
        |i: &Value| ["resource", "lineage"].iter().all(|k| i["labels"][format!("phoenix-{k}")] == disk["labels"][format!("phoenix-{k}")]);
    disk["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|user| instances.iter().any(|i| i["selfLink"].as_str() == Some(user) && same_owner(i)))
}

#[async_trait]
impl GceKind for Disk {
    const COLL: Coll = Coll::Disks;

    fn name(spec: &DiskSpec) -> &str {
        &spec.name
    }
    fn user_labels(spec: &DiskSpec) -> Option<&UserLabels> {
        spec.labels.as_ref()
    }
    fn ids(outputs: &DiskOutputs) -> &ObjectIds {
        &outputs.ids
    }
    fn scope(gce: &Gce, spec: &DiskSpec) -> Result<Scope, ProviderError> {
        Ok(Scope::Zone(gce.zone_or_default(spec.zone.as_deref())?))
    }
    async fn body(gce: &Gce, spec: &DiskSpec) -> Result<Map<String, Value>, ProviderError> {
        let zone = gce.zone_or_default(spec.zone.as_deref())?;
        let mut b = Map::new();
        if let Some(s) = spec.size_gb {
            b.insert("sizeGb".into(), json!(s.to_string()));
        }
        b.insert("type".into(), json!(format!("zones/{zone}/diskTypes/{}", spec.disk_type)));
        // Both set is how a restore brings back a disk first made from an image
        // (`phoenix restore` sets `snapshot`): its data is the snapshot's.
        match (&spec.image, &spec.snapshot) {
            (_, Some(s)) => {
                b.insert("sourceSnapshot".into(), json!(s));
            }
            (Some(i), None) => {
                b.insert("sourceImage".into(), json!(gk::image_ref(i)));
            }
            (None, None) => {}
        }
        Ok(b)
    }
    fn observe(o: &Value, prior: Option<&DiskSpec>) -> Observed<Self> {
        let spec = DiskSpec {
            name: gk::text(&o["name"]),
            labels: gk::observed_labels(o),
            zone: Some(gk::last(&o["zone"])),
            size_gb: Some(gk::int64(&o["sizeGb"]).unwrap_or(0)),
            disk_type: gk::last(&o["type"]),
            // The source is not reported in the definition's spelling (a family resolves to an image): not observed, and force-new anyway.
            image: prior.and_then(|p| p.image.clone()),
            snapshot: prior.and_then(|p| p.snapshot.clone()),
        };
        Observed { spec, outputs: DiskOutputs { ids: ObjectIds::of(o), zone_link: gk::text(&o["zone"]) } }
    }
    async fn settle(gce: &Gce, loc: &Loc, object: Value) -> Result<Value, ProviderError> {
        gk::ready(gce, Coll::Disks, loc, object, "disk").await
    }
    async fn update_fields(gce: &Gce, req: &Update<'_, Self>, loc: &Loc, object: &Value) -> Result<(), ProviderError> {
        if req.changed("size_gb")
            && let Some(want) = req.spec.size_gb
        {
            let have = gk::int64(&object["sizeGb"]).unwrap_or(0);
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

#[async_trait]
impl Kind for Disk {
    const TYPE: &'static str = "gcp.disk";
    const DESCRIPTION: &'static str = "A persistent disk (blank, or from an image or a snapshot)";
    const FORMATS: &'static [(&'static str, Validator)] = gk::FORMATS;
    type Client = Gce;
    type Spec = DiskSpec;
    type Outputs = DiskOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed().stateful("snapshot")
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
    async fn create(&self, gce: &Gce, req: Create<'_, Self>) -> Result<DiskOutputs, ProviderError> {
        gk::create(gce, req).await
    }
    async fn update(&self, gce: &Gce, req: Update<'_, Self>) -> Result<DiskOutputs, ProviderError> {
        gk::update(gce, req).await
    }
    async fn delete(&self, gce: &Gce, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        gk::delete(gce, req).await
    }
    async fn snapshot(&self, gce: &Gce, req: Snapshot<'_, Self>) -> Result<SnapshotRef, ProviderError> {
        let target =
            recovery::Target { addr: req.addr, disk: &req.outputs.ids.self_link, ownership: req.ownership, point: req.point, log: req.log };
        recovery::snapshot(gce, target).await
    }

    /// Snapshots are global: a restore in another region uses the same one.
    async fn copy_snapshot(&self, gce: &Gce, snapshot: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        recovery::copy(gce, snapshot, to_region).await
    }

    async fn delete_snapshot(&self, gce: &Gce, snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        recovery::delete(gce, snapshot).await
    }

    async fn list_owned(&self, gce: &Gce) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        // Boot disks are left out: they go with their instance.
        let instances = gce.list(Coll::Instances, None).await.map_err(|e| e.into_provider("gc: list owned objects"))?;
        gk::list_owned_where(gce, |d| !boot_disk(d, &instances)).await
    }
}
