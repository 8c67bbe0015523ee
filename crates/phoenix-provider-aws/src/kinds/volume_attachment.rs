//! `aws.volume_attachment`: an EBS volume attached to an instance as a device.
//!
//! EC2 has no attachment object (nothing to tag): an attachment is named by
//! its volume and instance, `vol-…:i-…`, and read from the volume.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Volume as Ec2Volume, VolumeAttachment as Ec2Attachment, VolumeAttachmentState};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior};
use phoenix_core::provider::ProviderError;
use phoenix_core::state::Ownership;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::volume::{describe_all as describe_volumes, one as one_volume};
use crate::client::Aws;
use crate::ec2;
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct VolumeAttachment;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeAttachmentSpec {
    /// the volume (vol-…)
    #[schemars(extend("force_new" = true))]
    pub volume_id: String,
    /// the instance (i-…), in the volume's zone
    #[schemars(extend("force_new" = true))]
    pub instance_id: String,
    /// the device it appears as, e.g. /dev/sdf
    #[schemars(extend("force_new" = true))]
    pub device_name: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct VolumeAttachmentOutputs {
    /// volume-id:instance-id
    #[schemars(extend("stable" = true))]
    pub id: String,
}

fn id(volume: &str, instance: &str) -> String {
    format!("{volume}:{instance}")
}

/// The volume and instance an id names.
fn parts(id: &str) -> Result<(&str, &str), ProviderError> {
    id.split_once(':').ok_or_else(|| ProviderError::permanent(format!("`{id}` is not an attachment id (volume-id:instance-id)")))
}

fn is_attached(a: &Ec2Attachment) -> bool {
    matches!(a.state(), Some(VolumeAttachmentState::Attaching | VolumeAttachmentState::Attached))
}

/// The volume's attachment to `instance`, while it is attaching or attached (detaching counts as gone).
fn attachment<'a>(v: &'a Ec2Volume, instance: &str) -> Option<&'a Ec2Attachment> {
    v.attachments().iter().find(|a| a.instance_id() == Some(instance) && is_attached(a))
}

/// What a read sees. The device is the attachment's; a device EC2 does not
/// report (it always does) is kept as applied.
fn observe(volume: &str, instance: &str, a: &Ec2Attachment, prior: Option<&VolumeAttachmentSpec>) -> Observed<VolumeAttachment> {
    let device_name = a.device().map(str::to_string).or_else(|| prior.map(|p| p.device_name.clone())).unwrap_or_default();
    Observed {
        spec: VolumeAttachmentSpec { volume_id: volume.to_string(), instance_id: instance.to_string(), device_name },
        outputs: VolumeAttachmentOutputs { id: id(volume, instance) },
    }
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
    const TYPE: &'static str = "aws.volume_attachment";
    const DESCRIPTION: &'static str = "An EBS volume attached to an instance";
    type Client = Aws;
    type Spec = VolumeAttachmentSpec;
    type Outputs = VolumeAttachmentOutputs;

    /// Every input is force-new: a different volume, instance or device is a new attachment.
    fn capabilities(&self) -> Capabilities {
        Capabilities::managed().replace_only()
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        let pairs: Vec<Option<(&str, &str)>> = items.iter().map(|i| parts(&i.outputs.id).ok()).collect();
        let mut volumes: Vec<String> = pairs.iter().flatten().map(|(v, _)| v.to_string()).collect();
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
            .zip(items)
            .map(|(p, item)| {
                let (volume, instance) = p?;
                let a = attachment(by_id.get(volume)?, instance)?;
                Some(observe(volume, instance, a, Some(&item.spec)))
            })
            .collect())
    }

    /// By its id, `vol-…:i-…`: one read of the volume.
    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        let (volume, instance) = parts(id)?;
        let Some(v) = one_volume(aws, volume).await? else { return Ok(None) };
        Ok(attachment(&v, instance).map(|a| observe(volume, instance, a, None)))
    }

    /// Attachments carry no tags: those of Phoenix's volumes are listed under
    /// their volume's ownership with the volume as container, so `gc` detaches
    /// one only from a leaked volume (which cannot be deleted while in use).
    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        let in_use = Filter::builder().name("status").values("in-use").build();
        let mut found = Vec::new();
        for v in describe_volumes(aws, vec![ec2::owned_filter(), in_use]).await? {
            let volume = v.volume_id().unwrap_or_default();
            let Some(ownership) = Ownership::from_tags(|k| tags::tag(v.tags(), k)) else { continue };
            for a in v.attachments().iter().filter(|a| is_attached(a)) {
                let Some(instance) = a.instance_id() else { continue };
                found.push(Owned {
                    ownership: ownership.clone(),
                    observed: observe(volume, instance, a, None),
                    container: Some(volume.to_string()),
                });
            }
        }
        Ok(Some(found))
    }

    /// An attachment is identified by its volume and instance, so adoption reads them rather than tags.
    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        let (volume, instance) = (req.spec.volume_id.as_str(), req.spec.instance_id.as_str());
        let Some(v) = one_volume(aws, volume).await? else { return Ok(None) };
        Ok(attachment(&v, instance).map(|a| observe(volume, instance, a, Some(req.spec))))
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<VolumeAttachmentOutputs, ProviderError> {
        let (volume, instance, device) = (req.spec.volume_id.as_str(), req.spec.instance_id.as_str(), req.spec.device_name.as_str());
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
        let made = VolumeAttachmentOutputs { id: id(volume, instance) };
        wait_attached(aws, volume, instance).await.map_err(|e| e.with_created(phoenix_core::kit::output_attrs(&made)))?;
        Ok(made)
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let (volume, instance) = parts(&req.outputs.id)?;
        // Always name the instance (moto answers an HTML 500 without it; harmless on AWS) and the device when known.
        let mut detach = aws.ec2.detach_volume().volume_id(volume).instance_id(instance);
        if !req.spec.device_name.is_empty() {
            detach = detach.device(&req.spec.device_name);
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
