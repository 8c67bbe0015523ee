//! `aws.volume`: an EBS volume, empty or restored from a snapshot.
//!
//! Its size grows in place (ModifyVolume); everything else replaces it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, Volume as Ec2Volume, VolumeState, VolumeType};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::create_once;
use super::{Kind, id_attr, id_chunks, id_of, in_item_order, opt_i64, opt_str, priors, req_str, tags_attr, update_tags};
use crate::client::{Aws, create_call_config};
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct Volume;

/// `deleting` and `deleted` volumes are gone for Phoenix's purposes.
const LIVE: [&str; 4] = ["creating", "available", "in-use", "error"];

fn state_of(v: &Ec2Volume) -> &str {
    v.state().map_or("unknown", VolumeState::as_str)
}

fn outputs(v: &Ec2Volume) -> Attrs {
    let mut o = Attrs::new();
    o.insert("id".into(), json!(v.volume_id().unwrap_or_default()));
    o.insert("state".into(), json!(state_of(v)));
    o
}

fn observed(v: &Ec2Volume, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    if let Some(z) = v.availability_zone() {
        inputs.insert("availability_zone".into(), json!(z));
    }
    // A size left to the snapshot, or a type left unset, is not the definition's to compare.
    if prior.contains_key("size")
        && let Some(s) = v.size()
    {
        inputs.insert("size".into(), json!(s));
    }
    if prior.contains_key("volume_type")
        && let Some(t) = v.volume_type()
    {
        inputs.insert("volume_type".into(), json!(t.as_str()));
    }
    if prior.contains_key("snapshot_id") {
        inputs.insert("snapshot_id".into(), v.snapshot_id().filter(|s| !s.is_empty()).map_or(Value::Null, |s| json!(s)));
    }
    tags::observe_tags(&mut inputs, prior, v.tags());
    Observed { inputs, outputs: outputs(v) }
}

/// Every volume matching `filters`, over all pages.
pub(crate) async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Ec2Volume>, ProviderError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = aws
            .ec2
            .describe_volumes()
            .set_filters(Some(filters.clone()))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| sdk("DescribeVolumes", e))?;
        found.extend(out.volumes().iter().cloned());
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(found),
        }
    }
}

/// One volume by id (a filter, so an unknown id is `None` rather than an error).
pub(crate) async fn one(aws: &Aws, id: &str) -> Result<Option<Ec2Volume>, ProviderError> {
    Ok(describe(aws, vec![tags::id_filter("volume-id", &[id.to_string()])]).await?.into_iter().next())
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

#[async_trait]
impl Kind for Volume {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.volume",
            description: "An EBS volume",
            attrs: vec![
                AttrSchema::required(
                    "availability_zone",
                    AttrType::String,
                    "its zone, the zone of the instance it attaches to (e.g. ${web-0.availability_zone})",
                )
                .force_new()
                .format("aws-zone"),
                AttrSchema::optional("size", AttrType::Int, "size in GiB (default: the snapshot's); grows in place, never shrinks")
                    .validate_with(validators::non_negative),
                AttrSchema::optional("volume_type", AttrType::String, "gp3, gp2, st1, sc1, standard").default(json!("gp3")).force_new(),
                // Disaster recovery restores volumes from snapshots.
                AttrSchema::optional("snapshot_id", AttrType::String, "restore from this snapshot (snap-…)").force_new(),
                tags_attr(),
                id_attr("the volume id (vol-…)"),
                AttrSchema::computed("state", AttrType::String, "available, in-use …"),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let mut found = HashMap::new();
        for ids in id_chunks(items) {
            for v in describe(aws, vec![tags::id_filter("volume-id", &ids)]).await? {
                if !LIVE.contains(&state_of(&v)) {
                    continue;
                }
                let id = v.volume_id().unwrap_or_default().to_string();
                let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
                found.insert(id, observed(&v, &p));
            }
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        let live = Filter::builder().name("status").set_values(Some(LIVE.iter().map(|s| s.to_string()).collect())).build();
        let found = describe(aws, vec![super::owned_filter(), live]).await?;
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
                .filter_map(|v| super::owned(self, v.tags(), observed(v, &Attrs::new())))
                .collect(),
        ))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let mut filters = tags::owner_filters(&req.ownership);
        filters.push(
            Filter::builder().name("status").set_values(Some(["creating", "available", "in-use"].map(String::from).to_vec())).build(),
        );
        let mut live = describe(aws, filters).await?;
        live.sort_by(|a, b| (a.create_time(), a.volume_id()).cmp(&(b.create_time(), b.volume_id())));
        let Some(mut v) = live.into_iter().next() else { return Ok(None) };
        // The interrupted create had not seen it available yet; finish that wait as create would.
        if state_of(&v) == "creating" {
            v = wait_available(aws, v.volume_id().unwrap_or_default(), None).await?;
        }
        Ok(Some(observed(&v, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let size = opt_i64(&req.inputs, "size")
            .map(|s| i32::try_from(s).map_err(|_| ProviderError::permanent(format!("size {s} GiB is out of range"))))
            .transpose()?;
        let snapshot = opt_str(&req.inputs, "snapshot_id");
        if size.is_none() && snapshot.is_none() {
            return Err(ProviderError::permanent("set `size` (GiB) or `snapshot_id` to restore from"));
        }
        let volume_type = opt_str(&req.inputs, "volume_type").unwrap_or("gp3");
        let tags = tags::all_tags(&req.ownership, req.inputs.get("tags"));
        let zone = req_str(&req.inputs, "availability_zone")?;
        // The ClientToken makes a retried call return the same volume on AWS; emulators may
        // ignore it, so a lost answer is also looked up by tags (`create_once`).
        let made = create_once(aws, self, req, "CreateVolume", || {
            aws.ec2
                .create_volume()
                .availability_zone(zone)
                .set_size(size)
                .set_snapshot_id(snapshot.map(str::to_string))
                .volume_type(VolumeType::from(volume_type))
                .client_token(&req.idempotency_token)
                .tag_specifications(tags::spec(ResourceType::Volume, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        })
        .await?;
        let id = made.id(|o| o.volume_id(), "CreateVolume")?;
        // The volume exists from here on: a failure must hand it to the engine, never leak it.
        let made: Attrs = [("id".to_string(), json!(id))].into_iter().collect();
        let v = wait_available(aws, &id, None).await.map_err(|e| e.with_created(made))?;
        Ok(outputs(&v))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = id_of(&req.prior_outputs)?;
        let mut target = None;
        if req.changed.iter().any(|c| c == "size")
            && let Some(to) = opt_i64(&req.inputs, "size")
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
                let to = i32::try_from(to).map_err(|_| ProviderError::permanent(format!("size {to} GiB is out of range")))?;
                aws.ec2.modify_volume().volume_id(id).size(to).send().await.map_err(|e| sdk("ModifyVolume", e))?;
                target = Some(to);
            }
        }
        update_tags(aws, id, req).await?;
        let v = wait_available(aws, id, target).await?;
        Ok(outputs(&v))
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?;
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
