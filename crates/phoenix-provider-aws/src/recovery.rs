//! Snapshots of AWS's stateful types for recovery points (see
//! `phoenix_core::recovery`): EBS volumes, restored through `aws.volume`'s
//! `snapshot_id`; RDS instances, restored through `aws.db_instance`'s
//! `snapshot_identifier`; and Aurora clusters, restored through
//! `aws.db_cluster`'s `snapshot_identifier`; and instances that opt in with
//! `stateful = true`, imaged (root volume included) by CreateImage and
//! relaunched through `aws.instance`'s `recovery_image`. Snapshots carry the source's ownership tags plus
//! `phoenix:recovery-point`, are waited on until complete, copied across
//! regions by a call in the destination region, and deleted by id in the
//! region they live in.

use aws_sdk_ec2::types::{ResourceType, SnapshotState, Tag};
use phoenix_core::ResourceAddr;
use phoenix_core::kit::{Kind, Snapshot};
use phoenix_core::provider::{LogSink, ProviderError};
use phoenix_core::recovery::SnapshotRef;
use phoenix_core::state::Ownership;

use crate::client::Aws;
use crate::error::{is_not_found, sdk};
use crate::tags::{all_tags, spec};
use crate::wait;

pub const POINT_TAG: &str = "phoenix:recovery-point";

/// One object to snapshot, as each stateful kind's `snapshot` names it.
pub struct Target<'a> {
    pub addr: &'a ResourceAddr,
    /// The object's id (volume, instance, DB instance or cluster identifier).
    pub id: &'a str,
    pub ownership: &'a Ownership,
    pub point: &'a str,
    pub log: &'a LogSink,
}

impl<'a> Target<'a> {
    pub fn of<K: Kind + ?Sized>(req: &Snapshot<'a, K>, id: &'a str) -> Self {
        Target { addr: req.addr, id, ownership: req.ownership, point: req.point, log: req.log }
    }
}

fn point_tags(req: &Target) -> Vec<Tag> {
    let mut tags = all_tags(&req.ownership, None);
    tags.retain(|t| t.key() != Some("Name"));
    tags.push(Tag::builder().key("Name").value(format!("{}-{}-{}", req.ownership.environment, req.addr, req.point)).build());
    tags.push(Tag::builder().key(POINT_TAG).value(req.point).build());
    tags
}

pub async fn ebs_snapshot(aws: &Aws, req: Target<'_>) -> Result<SnapshotRef, ProviderError> {
    let volume = req.id;
    let out = {
        aws.ec2
            .create_snapshot()
            .volume_id(volume)
            .description(format!("Phoenix recovery point {} of {}/{}", req.point, req.ownership.environment, req.addr))
            .tag_specifications(spec(ResourceType::Snapshot, point_tags(&req)))
            .send()
            .await
            .map_err(|e| sdk("CreateSnapshot", e))?
    };
    let id = out.snapshot_id().ok_or_else(|| ProviderError::permanent("CreateSnapshot returned no id"))?.to_string();
    (req.log)(req.addr, &format!("snapshot {id} of {volume} started"));
    wait_completed(aws, &aws.ec2, &id).await?;
    Ok(SnapshotRef { id, region: Some(aws.region.clone()) })
}

pub async fn ebs_copy(aws: &Aws, snap: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
    let from = snap.region.clone().unwrap_or_else(|| aws.region.clone());
    let source = { aws.ec2_in(&from).describe_snapshots().snapshot_ids(&snap.id).send().await.map_err(|e| sdk("DescribeSnapshots", e))? };
    let tags: Vec<Tag> = source.snapshots().first().map(|s| s.tags().to_vec()).unwrap_or_default();
    let ec2 = aws.ec2_in(to_region);
    let out = {
        let mut call = ec2
            .copy_snapshot()
            .source_region(&from)
            .source_snapshot_id(&snap.id)
            .description(format!("Phoenix copy of {} from {from}", snap.id));
        if !tags.is_empty() {
            call = call.tag_specifications(spec(ResourceType::Snapshot, tags));
        }
        call.send().await.map_err(|e| sdk("CopySnapshot", e))?
    };
    let id = out.snapshot_id().ok_or_else(|| ProviderError::permanent("CopySnapshot returned no id"))?.to_string();
    wait_completed(aws, &ec2, &id).await?;
    Ok(SnapshotRef { id, region: Some(to_region.to_string()) })
}

pub async fn ebs_delete(aws: &Aws, snap: &SnapshotRef) -> Result<(), ProviderError> {
    let ec2 = aws.ec2_in(snap.region.as_deref().unwrap_or(&aws.region));
    match ec2.delete_snapshot().snapshot_id(&snap.id).send().await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(sdk("DeleteSnapshot", e)),
    }
}

async fn wait_completed(aws: &Aws, ec2: &aws_sdk_ec2::Client, id: &str) -> Result<(), ProviderError> {
    wait::until(&format!("snapshot {id} to complete"), aws.wait_timeout, || async {
        let out = {
            wait::consistent(|| async {
                ec2.describe_snapshots().snapshot_ids(id).send().await.map_err(|e| (is_not_found(&e), sdk("DescribeSnapshots", e)))
            })
            .await?
        };
        match out.snapshots().first().and_then(|s| s.state()) {
            Some(SnapshotState::Completed) => Ok(Some(())),
            Some(SnapshotState::Error) => {
                let why = out.snapshots().first().and_then(|s| s.state_message()).unwrap_or("no message");
                Err(ProviderError::permanent(format!("snapshot {id} failed: {why}")))
            }
            _ => Ok(None),
        }
    })
    .await
}

/// RDS: DB snapshots named `<instance id>-<point id>`.
pub mod rds {
    use aws_sdk_rds::error::ProvideErrorMetadata;
    use aws_sdk_rds::types::Tag as RdsTag;

    use super::*;

    pub(super) fn tags(req: &Target) -> Vec<RdsTag> {
        point_tags(req).into_iter().filter_map(|t| Some(RdsTag::builder().key(t.key()?).value(t.value()?).build())).collect()
    }

    pub(super) fn not_found<E: aws_sdk_rds::error::ProvideErrorMetadata, R>(e: &aws_sdk_rds::error::SdkError<E, R>) -> bool {
        e.code().is_some_and(|c| c.contains("NotFound"))
    }

    pub async fn snapshot(aws: &Aws, req: Target<'_>) -> Result<SnapshotRef, ProviderError> {
        let instance = req.id;
        let id = format!("{instance}-{}", req.point).replace("--", "-");
        {
            aws.rds
                .create_db_snapshot()
                .db_instance_identifier(instance)
                .db_snapshot_identifier(&id)
                .set_tags(Some(tags(&req)))
                .send()
                .await
                .map_err(|e| sdk("CreateDBSnapshot", e))?;
        }
        (req.log)(req.addr, &format!("DB snapshot {id} of {instance} started"));
        wait_available(aws, &aws.rds, &id).await?;
        Ok(SnapshotRef { id, region: Some(aws.region.clone()) })
    }

    pub async fn copy(aws: &Aws, snap: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        let from = snap.region.clone().unwrap_or_else(|| aws.region.clone());
        let source = {
            aws.rds_in(&from)
                .describe_db_snapshots()
                .db_snapshot_identifier(&snap.id)
                .send()
                .await
                .map_err(|e| sdk("DescribeDBSnapshots", e))?
        };
        let arn = source
            .db_snapshots()
            .first()
            .and_then(|s| s.db_snapshot_arn())
            .ok_or_else(|| ProviderError::permanent(format!("DB snapshot {} not found in {from}", snap.id)))?
            .to_string();
        let rds = aws.rds_in(to_region);
        {
            rds.copy_db_snapshot()
                .source_db_snapshot_identifier(&arn)
                .target_db_snapshot_identifier(&snap.id)
                .copy_tags(true)
                .send()
                .await
                .map_err(|e| sdk("CopyDBSnapshot", e))?;
        }
        wait_available(aws, &rds, &snap.id).await?;
        Ok(SnapshotRef { id: snap.id.clone(), region: Some(to_region.to_string()) })
    }

    pub async fn delete(aws: &Aws, snap: &SnapshotRef) -> Result<(), ProviderError> {
        let rds = aws.rds_in(snap.region.as_deref().unwrap_or(&aws.region));
        match rds.delete_db_snapshot().db_snapshot_identifier(&snap.id).send().await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(sdk("DeleteDBSnapshot", e)),
        }
    }

    async fn wait_available(aws: &Aws, rds: &aws_sdk_rds::Client, id: &str) -> Result<(), ProviderError> {
        wait::until(&format!("DB snapshot {id} to be available"), aws.wait_timeout, || async {
            let out = { rds.describe_db_snapshots().db_snapshot_identifier(id).send().await.map_err(|e| sdk("DescribeDBSnapshots", e))? };
            match out.db_snapshots().first().and_then(|s| s.status()) {
                Some("available") => Ok(Some(())),
                Some("failed" | "error") => Err(ProviderError::permanent(format!("DB snapshot {id} failed"))),
                _ => Ok(None),
            }
        })
        .await
    }
}

/// Aurora: DB cluster snapshots named `<cluster id>-<point id>`, the same
/// calls as [`rds`] in their cluster forms.
pub mod cluster {
    use super::rds::{not_found, tags};
    use super::*;

    pub async fn snapshot(aws: &Aws, req: Target<'_>) -> Result<SnapshotRef, ProviderError> {
        let cluster = req.id;
        let id = format!("{cluster}-{}", req.point).replace("--", "-");
        {
            aws.rds
                .create_db_cluster_snapshot()
                .db_cluster_identifier(cluster)
                .db_cluster_snapshot_identifier(&id)
                .set_tags(Some(tags(&req)))
                .send()
                .await
                .map_err(|e| sdk("CreateDBClusterSnapshot", e))?;
        }
        (req.log)(req.addr, &format!("DB cluster snapshot {id} of {cluster} started"));
        wait_available(aws, &aws.rds, &id).await?;
        Ok(SnapshotRef { id, region: Some(aws.region.clone()) })
    }

    pub async fn copy(aws: &Aws, snap: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        let from = snap.region.clone().unwrap_or_else(|| aws.region.clone());
        let source = {
            aws.rds_in(&from)
                .describe_db_cluster_snapshots()
                .db_cluster_snapshot_identifier(&snap.id)
                .send()
                .await
                .map_err(|e| sdk("DescribeDBClusterSnapshots", e))?
        };
        let arn = source
            .db_cluster_snapshots()
            .first()
            .and_then(|s| s.db_cluster_snapshot_arn())
            .ok_or_else(|| ProviderError::permanent(format!("DB cluster snapshot {} not found in {from}", snap.id)))?
            .to_string();
        // Called in the destination region, naming the source by its ARN.
        let rds = aws.rds_in(to_region);
        {
            rds.copy_db_cluster_snapshot()
                .source_db_cluster_snapshot_identifier(&arn)
                .target_db_cluster_snapshot_identifier(&snap.id)
                .copy_tags(true)
                .send()
                .await
                .map_err(|e| sdk("CopyDBClusterSnapshot", e))?;
        }
        wait_available(aws, &rds, &snap.id).await?;
        Ok(SnapshotRef { id: snap.id.clone(), region: Some(to_region.to_string()) })
    }

    pub async fn delete(aws: &Aws, snap: &SnapshotRef) -> Result<(), ProviderError> {
        let rds = aws.rds_in(snap.region.as_deref().unwrap_or(&aws.region));
        match rds.delete_db_cluster_snapshot().db_cluster_snapshot_identifier(&snap.id).send().await {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(sdk("DeleteDBClusterSnapshot", e)),
        }
    }

    async fn wait_available(aws: &Aws, rds: &aws_sdk_rds::Client, id: &str) -> Result<(), ProviderError> {
        wait::until(&format!("DB cluster snapshot {id} to be available"), aws.wait_timeout, || async {
            let out = {
                rds.describe_db_cluster_snapshots()
                    .db_cluster_snapshot_identifier(id)
                    .send()
                    .await
                    .map_err(|e| sdk("DescribeDBClusterSnapshots", e))?
            };
            match out.db_cluster_snapshots().first().and_then(|s| s.status()) {
                Some("available") => Ok(Some(())),
                Some("failed" | "error") => Err(ProviderError::permanent(format!("DB cluster snapshot {id} failed"))),
                _ => Ok(None),
            }
        })
        .await
    }
}

/// Instances: AMIs taken without a reboot (crash-consistent, like an EBS
/// snapshot of a running volume), named `<env>-<addr>-<point id>`.
pub mod image {
    use aws_sdk_ec2::types::{BlockDeviceMapping, Image, ImageState};

    use super::*;

    /// AMI names: 3–128 of letters, digits and `()[] ./-'@_`.
    fn image_name(req: &Target) -> String {
        let raw = format!("{}-{}-{}", req.ownership.environment, req.addr, req.point);
        let clean: String =
            raw.chars().map(|c| if c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c) { c } else { '-' }).take(128).collect();
        clean
    }

    fn snapshots_of(image: &Image) -> Vec<String> {
        image.block_device_mappings().iter().filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string)).collect()
    }

    /// Tags the image's EBS snapshots (CreateImage's TagSpecifications for
    /// snapshots would do it at once on AWS, but moto 5.2.1 refuses them).
    async fn tag_snapshots(ec2: &aws_sdk_ec2::Client, image: &Image, tags: Vec<Tag>) -> Result<(), ProviderError> {
        let snaps = snapshots_of(image);
        if snaps.is_empty() || tags.is_empty() {
            return Ok(());
        }
        ec2.create_tags().set_resources(Some(snaps)).set_tags(Some(tags)).send().await.map_err(|e| sdk("CreateTags", e))?;
        Ok(())
    }

    /// The instance's EBS volumes other than its root: left out of the image
    /// (`NoDevice`). They are `aws.volume`s with their own snapshots; imaged
    /// too, a restored instance would come back with a second copy of each.
    async fn other_volumes(aws: &Aws, instance: &str) -> Result<Vec<BlockDeviceMapping>, ProviderError> {
        let out = { aws.ec2.describe_instances().instance_ids(instance).send().await.map_err(|e| sdk("DescribeInstances", e))? };
        let Some(i) = out.reservations().iter().flat_map(|r| r.instances()).next() else {
            return Err(ProviderError::permanent(format!("instance {instance} no longer exists")));
        };
        Ok(i.block_device_mappings()
            .iter()
            .filter_map(|m| m.device_name())
            .filter(|d| Some(*d) != i.root_device_name())
            .map(|d| BlockDeviceMapping::builder().device_name(d).no_device("").build())
            .collect())
    }

    pub async fn snapshot(aws: &Aws, req: Target<'_>) -> Result<SnapshotRef, ProviderError> {
        let instance = req.id;
        let others = other_volumes(aws, instance).await?;
        let out = {
            aws.ec2
                .create_image()
                .instance_id(instance)
                .set_block_device_mappings((!others.is_empty()).then_some(others))
                .name(image_name(&req))
                .description(format!("Phoenix recovery point {} of {}/{}", req.point, req.ownership.environment, req.addr))
                // The instance keeps serving: the image is what its disks held at this instant.
                .no_reboot(true)
                .tag_specifications(spec(ResourceType::Image, point_tags(&req)))
                .send()
                .await
                .map_err(|e| sdk("CreateImage", e))?
        };
        let id = out.image_id().ok_or_else(|| ProviderError::permanent("CreateImage returned no id"))?.to_string();
        (req.log)(req.addr, &format!("image {id} of {instance} started"));
        let image = wait_available(aws, &aws.ec2, &id).await?;
        tag_snapshots(&aws.ec2, &image, point_tags(&req)).await?;
        Ok(SnapshotRef { id, region: Some(aws.region.clone()) })
    }

    pub async fn copy(aws: &Aws, snap: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        let from = snap.region.clone().unwrap_or_else(|| aws.region.clone());
        let source = { aws.ec2_in(&from).describe_images().image_ids(&snap.id).send().await.map_err(|e| sdk("DescribeImages", e))? };
        let source =
            source.images().first().cloned().ok_or_else(|| ProviderError::permanent(format!("image {} not found in {from}", snap.id)))?;
        let ec2 = aws.ec2_in(to_region);
        let out = {
            ec2.copy_image()
                .source_region(&from)
                .source_image_id(&snap.id)
                .name(source.name().unwrap_or(&snap.id))
                .description(format!("Phoenix copy of {} from {from}", snap.id))
                .send()
                .await
                .map_err(|e| sdk("CopyImage", e))?
        };
        let id = out.image_id().ok_or_else(|| ProviderError::permanent("CopyImage returned no id"))?.to_string();
        let image = wait_available(aws, &ec2, &id).await?;
        // CopyImage does not carry the source's tags: the copy and its snapshots get them here.
        let tags = source.tags().to_vec();
        if !tags.is_empty() {
            ec2.create_tags().resources(&id).set_tags(Some(tags.clone())).send().await.map_err(|e| sdk("CreateTags", e))?;
        }
        tag_snapshots(&ec2, &image, tags).await?;
        Ok(SnapshotRef { id, region: Some(to_region.to_string()) })
    }

    /// Deregisters the image, then deletes the EBS snapshots it held (they
    /// outlive the image otherwise, and cost money).
    pub async fn delete(aws: &Aws, snap: &SnapshotRef) -> Result<(), ProviderError> {
        let ec2 = aws.ec2_in(snap.region.as_deref().unwrap_or(&aws.region));
        let found = {
            match ec2.describe_images().image_ids(&snap.id).send().await {
                Ok(out) => out.images().first().cloned(),
                Err(e) if is_not_found(&e) => None,
                Err(e) => return Err(sdk("DescribeImages", e)),
            }
        };
        let Some(image) = found else { return Ok(()) };
        {
            match ec2.deregister_image().image_id(&snap.id).send().await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(sdk("DeregisterImage", e)),
            }
        }
        for s in snapshots_of(&image) {
            match ec2.delete_snapshot().snapshot_id(&s).send().await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(sdk("DeleteSnapshot", e)),
            }
        }
        Ok(())
    }

    async fn wait_available(aws: &Aws, ec2: &aws_sdk_ec2::Client, id: &str) -> Result<Image, ProviderError> {
        wait::until(&format!("image {id} to be available"), aws.wait_timeout, || async {
            let out = {
                wait::consistent(|| async {
                    ec2.describe_images().image_ids(id).send().await.map_err(|e| (is_not_found(&e), sdk("DescribeImages", e)))
                })
                .await?
            };
            let Some(image) = out.images().first() else { return Ok(None) };
            match image.state() {
                Some(ImageState::Available) => Ok(Some(image.clone())),
                Some(ImageState::Failed | ImageState::Error | ImageState::Invalid) => {
                    let why = image.state_reason().and_then(|r| r.message()).unwrap_or("no message");
                    Err(ProviderError::permanent(format!("image {id} failed: {why}")))
                }
                _ => Ok(None),
            }
        })
        .await
    }
}
