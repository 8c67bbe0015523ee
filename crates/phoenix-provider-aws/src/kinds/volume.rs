//! `aws.volume`: an EBS volume, empty or restored from a snapshot.
//!
//! Its size grows in place (ModifyVolume); everything else replaces it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, Volume as Ec2Volume, VolumeState, VolumeType};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::state::Ownership;
use phoenix_core::value::Attrs;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::{Aws, create_call_config};
use crate::create::{Made, create_once};
use crate::ec2::{self, Ec2Kind, UserTags};
use crate::error::{code, is_not_found, sdk};
use crate::recovery::{self, Target};
use crate::tags;
use phoenix_core::kit::Snapshot;
use phoenix_core::recovery::SnapshotRef;

pub struct Volume;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {
    /// its zone, the zone of the instance it attaches to (e.g. ${web-0.availability_zone})
    #[schemars(extend("force_new" = true, "format" = "aws-zone"))]
    pub availability_zone: String,
    /// size in GiB (default: the snapshot's); grows in place, never shrinks
    #[schemars(extend("format" = "non-negative"))]
    pub size: Option<i64>,
    /// gp3, gp2, st1, sc1, standard
    #[serde(default = "gp3")]
    #[schemars(extend("force_new" = true))]
    pub volume_type: String,
    /// restore from this snapshot (snap-…)
    // Disaster recovery restores volumes from snapshots.
    #[schemars(extend("force_new" = true))]
    pub snapshot_id: Option<String>,
    /// extra tags (Phoenix adds its ownership tags and Name)
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct VolumeOutputs {
    /// the volume id (vol-…)
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// available, in-use …
    pub state: String,
}

fn gp3() -> String {
    "gp3".into()
}

/// `deleting` and `deleted` volumes are gone for Phoenix's purposes.
const LIVE: [&str; 4] = ["creating", "available", "in-use", "error"];

fn state_of(v: &Ec2Volume) -> &str {
    v.state().map_or("unknown", VolumeState::as_str)
}

fn outputs(v: &Ec2Volume) -> VolumeOutputs {
    VolumeOutputs { id: v.volume_id().unwrap_or_default().to_string(), state: state_of(v).to_string() }
}

/// Every volume matching `filters`, over all pages, whatever its state.
pub(crate) async fn describe_all(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Ec2Volume>, ProviderError> {
    let pages = aws.ec2.describe_volumes().set_filters(Some(filters)).into_paginator().send();
    let pages = super::all_pages("DescribeVolumes", pages).await?;
    Ok(pages.iter().flat_map(|p| p.volumes().iter().cloned()).collect())
}

/// One volume by id (a filter, so an unknown id is `None` rather than an error).
pub(crate) async fn one(aws: &Aws, id: &str) -> Result<Option<Ec2Volume>, ProviderError> {
    Ok(describe_all(aws, vec![tags::id_filter("volume-id", &[id.to_string()])]).await?.into_iter().next())
}

/// Waits until the volume is `available` (and, with `size`, that size). Right after a create
/// EC2 may not list it yet; a volume that fails to create (`error`) will not recover.
async fn wait_available(aws: &Aws, id: &str, size: Option<i32>) -> Result<Ec2Volume, ProviderError> {
    crate::wait::until(&format!("volume {id} to be available"), aws.wait_timeout, || async move {
        let Some(v) = one(aws, id).await? else { return Ok(None) };
        match state_of(&v) {
            "error" => Err(ProviderError::permanent(format!("volume {id} failed to create (state `error`)"))),
            "available" | "in-use" if size.is_none_or(|s| v.size() == Some(s)) => Ok(Some(v)),
            _ => Ok(None),
        }
    })
    .await
}

/// The volume an interrupted create made, by its ownership tags.
async fn find_made(aws: &Aws, spec: &VolumeSpec, ownership: &Ownership) -> Result<Option<Observed<Volume>>, ProviderError> {
    let mut filters = tags::owner_filters(ownership);
    filters.push(Filter::builder().name("status").set_values(Some(["creating", "available", "in-use"].map(String::from).to_vec())).build());
    let mut live = describe_all(aws, filters).await?;
    live.sort_by(|a, b| (a.create_time(), a.volume_id()).cmp(&(b.create_time(), b.volume_id())));
    let Some(mut v) = live.into_iter().next() else { return Ok(None) };
    // The interrupted create had not seen it available yet; finish that wait as create would.
    if state_of(&v) == "creating" {
        v = wait_available(aws, v.volume_id().unwrap_or_default(), None).await?;
    }
    Ok(Some(Volume::observe(&v, Some(spec))))
}

fn size_i32(size: i64) -> Result<i32, ProviderError> {
    i32::try_from(size).map_err(|_| ProviderError::permanent(format!("size {size} GiB is out of range")))
}

#[async_trait]
impl Ec2Kind for Volume {
    type Object = Ec2Volume;
    const ID_FILTER: &'static str = "volume-id";

    async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Ec2Volume>, ProviderError> {
        let mut found = describe_all(aws, filters).await?;
        found.retain(|v| LIVE.contains(&state_of(v)));
        Ok(found)
    }
    fn id(v: &Ec2Volume) -> &str {
        v.volume_id().unwrap_or_default()
    }
    fn tags(v: &Ec2Volume) -> &[Tag] {
        v.tags()
    }
    fn id_of(outputs: &VolumeOutputs) -> &str {
        &outputs.id
    }
    fn observe(v: &Ec2Volume, prior: Option<&VolumeSpec>) -> Observed<Self> {
        let spec = VolumeSpec {
            availability_zone: v
                .availability_zone()
                .map(str::to_string)
                .or_else(|| prior.map(|p| p.availability_zone.clone()))
                .unwrap_or_default(),
            // A size left to the snapshot, or a type left unset, is not the definition's to compare
            // (the read compares only what the definition set).
            size: v.size().map(i64::from).or_else(|| prior.and_then(|p| p.size)),
            volume_type: v
                .volume_type()
                .map(|t| t.as_str().to_string())
                .or_else(|| prior.map(|p| p.volume_type.clone()))
                .unwrap_or_else(gp3),
            snapshot_id: v.snapshot_id().filter(|s| !s.is_empty()).map(str::to_string),
            tags: ec2::user_tags(v.tags()),
        };
        Observed { spec, outputs: outputs(v) }
    }
}

#[async_trait]
impl Kind for Volume {
    const TYPE: &'static str = "aws.volume";
    const DESCRIPTION: &'static str = "An EBS volume";
    type Client = Aws;
    type Spec = VolumeSpec;
    type Outputs = VolumeOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed().stateful("snapshot_id")
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        ec2::read(aws, items).await
    }

    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        ec2::import(aws, id).await
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        find_made(aws, req.spec, req.ownership).await
    }

    async fn snapshot(&self, aws: &Aws, req: Snapshot<'_, Self>) -> Result<SnapshotRef, ProviderError> {
        recovery::ebs_snapshot(aws, Target::of(&req, &req.outputs.id)).await
    }

    async fn copy_snapshot(&self, aws: &Aws, snapshot: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        recovery::ebs_copy(aws, snapshot, to_region).await
    }

    async fn delete_snapshot(&self, aws: &Aws, snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        recovery::ebs_delete(aws, snapshot).await
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        let live = Filter::builder().name("status").set_values(Some(LIVE.iter().map(|s| s.to_string()).collect())).build();
        let found = describe_all(aws, vec![ec2::owned_filter(), live]).await?;
        // An instance's root volume carries the instance's ownership tags
        // (RunInstances tags its volumes) but is part of the instance and goes
        // with it: not an `aws.volume` of its own, never a leak. It is told
        // apart by being attached to an instance with the same owner (moto,
        // unlike EC2, does not report DeleteOnTermination).
        let attached: Vec<String> =
            found.iter().flat_map(|v| v.attachments()).filter_map(|a| a.instance_id().map(str::to_string)).collect();
        let mut owners = HashMap::new();
        for ids in attached.chunks(200).filter(|c| !c.is_empty()) {
            let out = {
                aws.ec2
                    .describe_instances()
                    .filters(tags::id_filter("instance-id", ids))
                    .send()
                    .await
                    .map_err(|e| sdk("DescribeInstances", e))?
            };
            for i in out.reservations().iter().flat_map(|r| r.instances()) {
                let owner = (
                    tags::tag(i.tags(), "phoenix:lineage").map(str::to_string),
                    tags::tag(i.tags(), "phoenix:resource").map(str::to_string),
                );
                owners.insert(i.instance_id().unwrap_or_default().to_string(), owner);
            }
        }
        let part_of_an_instance = |v: &Ec2Volume| {
            let own =
                (tags::tag(v.tags(), "phoenix:lineage").map(str::to_string), tags::tag(v.tags(), "phoenix:resource").map(str::to_string));
            v.attachments()
                .iter()
                .any(|a| a.delete_on_termination() == Some(true) || a.instance_id().and_then(|i| owners.get(i)).is_some_and(|o| *o == own))
        };
        Ok(Some(
            found
                .iter()
                .filter(|v| !part_of_an_instance(v))
                .filter_map(|v| {
                    let ownership = Ownership::from_tags(|k| tags::tag(v.tags(), k))?;
                    Some(Owned { ownership, observed: Self::observe(v, None), container: None })
                })
                .collect(),
        ))
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<VolumeOutputs, ProviderError> {
        let spec = req.spec;
        let size = spec.size.map(size_i32).transpose()?;
        if size.is_none() && spec.snapshot_id.is_none() {
            return Err(ProviderError::permanent("set `size` (GiB) or `snapshot_id` to restore from"));
        }
        let tags = tags::all_tags_typed(req.ownership, spec.tags.as_ref());
        // The ClientToken makes a retried call return the same volume on AWS; emulators may
        // ignore it, so a lost answer is also looked up by tags (`create_once`).
        let call = || {
            aws.ec2
                .create_volume()
                .availability_zone(&spec.availability_zone)
                .set_size(size)
                .set_snapshot_id(spec.snapshot_id.clone())
                .volume_type(VolumeType::from(spec.volume_type.as_str()))
                .client_token(req.idempotency_token)
                .tag_specifications(tags::spec(ResourceType::Volume, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        };
        let find = || find_made(aws, spec, req.ownership);
        let id = match create_once("CreateVolume", call, find).await? {
            Made::Answered(o) => o.volume_id().unwrap_or_default().to_string(),
            Made::Found(found) => found.outputs.id,
        };
        if id.is_empty() {
            return Err(ProviderError::permanent("CreateVolume returned no id"));
        }
        // The volume exists from here on: a failure must hand it to the engine, never leak it.
        let made: Attrs = [("id".to_string(), json!(id))].into_iter().collect();
        let v = wait_available(aws, &id, None).await.map_err(|e| e.with_created(made))?;
        Ok(outputs(&v))
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<VolumeOutputs, ProviderError> {
        let id = req.outputs.id.as_str();
        let mut target = None;
        if req.changed("size")
            && let Some(to) = req.spec.size
        {
            let current = one(aws, id).await?.ok_or_else(|| ProviderError::permanent(format!("volume {id} no longer exists")))?;
            let from = i64::from(current.size().unwrap_or_default());
            if to < from {
                // EBS cannot shrink a volume; say so rather than let EC2 answer with a bare error.
                return Err(ProviderError::permanent(format!(
                    "volume {id} is {from} GiB and EBS volumes cannot shrink to {to} GiB; make a new volume (change its name or snapshot) instead"
                )));
            }
            if to > from {
                let to = size_i32(to)?;
                aws.ec2.modify_volume().volume_id(id).size(to).send().await.map_err(|e| sdk("ModifyVolume", e))?;
                target = Some(to);
            }
        }
        ec2::update_tags(aws, id, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        let v = wait_available(aws, id, target).await?;
        Ok(outputs(&v))
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let id = req.outputs.id.as_str();
        // A volume still detaching from its instance (VolumeInUse, IncorrectState) is retried until it is free.
        crate::wait::until(&format!("volume {id} to be deletable"), aws.wait_timeout, || async move {
            match aws.ec2.delete_volume().volume_id(id).send().await {
                Ok(_) => Ok(Some(())),
                Err(e) if is_not_found(&e) => Ok(Some(())),
                Err(e) if matches!(code(&e), Some("VolumeInUse" | "IncorrectState")) => Ok(None),
                Err(e) => Err(sdk("DeleteVolume", e)),
            }
        })
        .await?;
        crate::wait::until(&format!("volume {id} to be deleted"), aws.wait_timeout, || async move {
            Ok(match one(aws, id).await? {
                Some(v) if LIVE.contains(&state_of(&v)) || state_of(&v) == "deleting" => None,
                _ => Some(()),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use phoenix_core::kit::KindSet;

    use super::*;

    #[test]
    fn every_volume_is_snapshotted_and_restored_through_snapshot_id() {
        let set: KindSet<Aws> = KindSet::new().with(Volume);
        assert_eq!(set.restore_attr("aws.volume"), Some("snapshot_id"));
        let inputs: Attrs = serde_json::from_value(json!({"availability_zone": "eu-west-1a", "size": 3})).unwrap();
        assert!(set.is_stateful("aws.volume", &inputs));
    }
}
