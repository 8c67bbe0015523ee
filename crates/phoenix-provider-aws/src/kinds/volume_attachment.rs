//! `aws.volume_attachment`: an EBS volume attached to an instance as a device.
//!
//! EC2 has no attachment object (nothing to tag): an attachment is named by
//! its volume and instance, `vol-…:i-…`, and read from the volume.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Volume as Ec2Volume, VolumeAttachment as Ec2Attachment, VolumeAttachmentState};
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, OwnedObject, ProviderError, RefreshItem, UpdateRequest,
};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::volume::{describe as describe_volumes, one as one_volume};
use super::{Kind, id_attr, id_of, req_str};
use crate::client::Aws;
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct VolumeAttachment;

fn id(volume: &str, instance: &str) -> String {
    format!("{volume}:{instance}")
}

/// The volume and instance an id names.
fn parts(id: &str) -> Result<(&str, &str), ProviderError> {
    id.split_once(':').ok_or_else(|| ProviderError::permanent(format!("`{id}` is not an attachment id (volume-id:instance-id)")))
}

/// The volume's attachment to `instance`, while it is attaching or attached (detaching counts as gone).
fn attachment<'a>(v: &'a Ec2Volume, instance: &str) -> Option<&'a Ec2Attachment> {
    v.attachments().iter().find(|a| {
        a.instance_id() == Some(instance) && matches!(a.state(), Some(VolumeAttachmentState::Attaching | VolumeAttachmentState::Attached))
    })
}

fn observed(volume: &str, instance: &str, a: &Ec2Attachment) -> Observed {
    let mut inputs = Attrs::new();
    inputs.insert("volume_id".into(), json!(volume));
    inputs.insert("instance_id".into(), json!(instance));
    if let Some(d) = a.device() {
        inputs.insert("device_name".into(), json!(d));
    }
    let outputs: Attrs = [("id".to_string(), json!(id(volume, instance)))].into_iter().collect();
    Observed { inputs, outputs }
}

/// Waits until the volume's attachment to `instance` is `attached` (the volume `in-use`).
async fn wait_attached(aws: &Aws, volume: &str, instance: &str) -> Result<Ec2Attachment, ProviderError> {
    crate::wait::until(&format!("volume {volume} to attach to {instance}"), aws.wait_timeout, || async move {
        let Some(v) = one_volume(aws, volume).await? else {
            return Err(ProviderError::permanent(format!("volume {volume} disappeared while attaching")));
        };
        Ok(attachment(&v, instance).filter(|a| a.state() == Some(&VolumeAttachmentState::Attached)).cloned())
    })
    .await
}

#[async_trait]
impl Kind for VolumeAttachment {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.volume_attachment",
            description: "An EBS volume attached to an instance",
            attrs: vec![
                AttrSchema::required("volume_id", AttrType::String, "the volume (vol-…)").force_new(),
                AttrSchema::required("instance_id", AttrType::String, "the instance (i-…), in the volume's zone").force_new(),
                AttrSchema::required("device_name", AttrType::String, "the device it appears as, e.g. /dev/sdf").force_new(),
                id_attr("volume-id:instance-id"),
            ],
            // Every attribute is force-new: a different volume, instance or device is a new attachment.
            update_in_place: false,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let pairs: Vec<Option<(String, String)>> = items
            .iter()
            .map(|i| i.outputs.get("id").and_then(Value::as_str).and_then(|id| parts(id).ok()).map(|(v, i)| (v.to_string(), i.to_string())))
            .collect();
        let mut volumes: Vec<String> = pairs.iter().flatten().map(|(v, _)| v.clone()).collect();
        volumes.sort();
        volumes.dedup();
        let mut by_id: HashMap<String, Ec2Volume> = HashMap::new();
        for chunk in volumes.chunks(200) {
            for v in describe_volumes(aws, vec![tags::id_filter("volume-id", chunk)]).await? {
                by_id.insert(v.volume_id().unwrap_or_default().to_string(), v);
            }
        }
        Ok(pairs
            .into_iter()
            .map(|p| {
                let (volume, instance) = p?;
                let a = attachment(by_id.get(&volume)?, &instance)?;
                Some(observed(&volume, &instance, a))
            })
            .collect())
    }

    /// Attachments carry no tags: those of Phoenix's volumes are listed under
    /// their volume's ownership with the volume as container, so `gc` detaches
    /// one only from a leaked volume (which cannot be deleted while in use).
    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<OwnedObject>>, ProviderError> {
        let in_use = aws_sdk_ec2::types::Filter::builder().name("status").values("in-use").build();
        let mut found = Vec::new();
        for v in describe_volumes(aws, vec![super::owned_filter(), in_use]).await? {
            let volume = v.volume_id().unwrap_or_default();
            let Some(ownership) = phoenix_core::state::Ownership::from_tags(|k| tags::tag(v.tags(), k)) else { continue };
            for a in v.attachments() {
                let Some(instance) = a.instance_id() else { continue };
                if !matches!(a.state(), Some(VolumeAttachmentState::Attaching | VolumeAttachmentState::Attached)) {
                    continue;
                }
                let o = observed(volume, instance, a);
                found.push(OwnedObject {
                    type_name: "aws.volume_attachment".into(),
                    ownership: ownership.clone(),
                    inputs: o.inputs,
                    outputs: o.outputs,
                    container: Some(volume.to_string()),
                });
            }
        }
        Ok(Some(found))
    }

    /// An attachment is identified by its volume and instance, so adoption reads them rather than tags.
    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let volume = req_str(&req.inputs, "volume_id")?;
        let instance = req_str(&req.inputs, "instance_id")?;
        let Some(v) = one_volume(aws, volume).await? else { return Ok(None) };
        Ok(attachment(&v, instance).map(|a| observed(volume, instance, a)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let volume = req_str(&req.inputs, "volume_id")?;
        let instance = req_str(&req.inputs, "instance_id")?;
        let device = req_str(&req.inputs, "device_name")?;
        // Just after their creates EC2 may not know the volume or instance yet, or the instance may still be pending.
        crate::wait::consistent(|| async move {
            let sent = { aws.ec2.attach_volume().volume_id(volume).instance_id(instance).device(device).send().await };
            match sent {
                Ok(_) => Ok(()),
                Err(e) if is_not_found(&e) || code(&e) == Some("IncorrectState") => Err((true, sdk("AttachVolume", e))),
                // Already attached here: a retry after a lost response. AttachVolume has no ClientToken.
                Err(e) if code(&e) == Some("VolumeInUse") => match one_volume(aws, volume).await {
                    Ok(Some(v)) if attachment(&v, instance).is_some() => Ok(()),
                    _ => Err((false, sdk("AttachVolume", e))),
                },
                Err(e) => Err((false, sdk("AttachVolume", e))),
            }
        })
        .await?;
        let made: Attrs = [("id".to_string(), json!(id(volume, instance)))].into_iter().collect();
        wait_attached(aws, volume, instance).await.map_err(|e| e.with_created(made.clone()))?;
        Ok(made)
    }

    async fn update(&self, _aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        Err(ProviderError::permanent(format!("{}: an attachment cannot change in place; it is replaced", req.addr)))
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let (volume, instance) = parts(id_of(&req.outputs)?)?;
        let mut detach = aws.ec2.detach_volume().volume_id(volume).instance_id(instance);
        // Always name the instance (moto answers an HTML 500 without it; harmless on AWS) and the device when known.
        if let Some(d) = req.inputs.get("device_name").and_then(Value::as_str) {
            detach = detach.device(d);
        }
        {
            match detach.send().await {
                Ok(_) => {}
                // The volume, the instance or the attachment is gone already (a terminated instance detaches everything).
                Err(e) if is_not_found(&e) => return Ok(()),
                // The volume is not attached (`available`).
                Err(e) if code(&e) == Some("IncorrectState") => {}
                Err(e) => return Err(sdk("DetachVolume", e)),
            }
        }
        // The volume can be deleted, or attached elsewhere, only once it is free.
        crate::wait::until(&format!("volume {volume} to detach from {instance}"), aws.wait_timeout, || async move {
            Ok(match one_volume(aws, volume).await? {
                Some(v)
                    if v.attachments()
                        .iter()
                        .any(|a| a.instance_id() == Some(instance) && a.state() != Some(&VolumeAttachmentState::Detached)) =>
                {
                    None
                }
                _ => Some(()),
            })
        })
        .await
    }
}
