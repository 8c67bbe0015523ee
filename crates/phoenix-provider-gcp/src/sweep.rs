//! `phoenix gc`'s view of a GCP project: every object carrying Phoenix's
//! ownership marks (labels, or the description's first line for networks,
//! subnetworks and firewalls), of every environment; one list call per
//! collection (aggregated over zones and regions).
//!
//! Two kinds of marked objects are not objects of their own and are left out:
//! an instance's boot disk (made with the instance, carrying its marks, and
//! deleted with it) and a recovery point's snapshot (it belongs to the point,
//! which `phoenix snapshot delete` and `--keep` manage, not to any state).

use phoenix_core::provider::{OwnedListing, OwnedObject, ProviderError};
use phoenix_core::state::Ownership;
use phoenix_core::value::{Attrs, Value};

use crate::gce::{Coll, Gce};
use crate::kinds::{self, Kind};
use crate::labels;
use crate::recovery::POINT_LABEL;

fn ownership(kind: &dyn Kind, o: &Value) -> Option<Ownership> {
    if kind.labelled() {
        labels::ownership_of_labels(&o["labels"])
    } else {
        labels::ownership_of_description(o["description"].as_str().unwrap_or_default())
    }
}

/// A disk used by an instance with the same owner: the instance's boot disk.
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

pub async fn list_owned(gce: &Gce) -> Result<OwnedListing, ProviderError> {
    let list = |coll| async move { gce.list(coll, None).await.map_err(|e| e.into_provider("gc: list owned objects")) };
    let instances = list(Coll::Instances).await?;
    let mut objects = Vec::new();
    for &kind in kinds::all() {
        let listed = if kind.coll() == Coll::Instances { instances.clone() } else { list(kind.coll()).await? };
        for o in listed.iter().filter(|o| kinds::alive(o)) {
            let Some(ownership) = ownership(kind, o) else { continue };
            if (kind.coll() == Coll::Snapshots && !o["labels"][POINT_LABEL].is_null())
                || (kind.coll() == Coll::Disks && boot_disk(o, &instances))
            {
                continue;
            }
            let seen = kind.observe(o, &Attrs::new());
            objects.push(OwnedObject {
                type_name: kind.schema().type_name.to_string(),
                ownership,
                inputs: seen.inputs,
                outputs: seen.outputs,
                container: None,
            });
        }
    }
    Ok(OwnedListing { objects, unsupported: Vec::new() })
}
