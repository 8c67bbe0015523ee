//! `aws.instance`: an EC2 instance, its AMI resolved by id or by name pattern.
//!
//! The instance type and security groups change in place (a type change is
//! stop → modify → start); everything that EC2 fixes at launch (AMI, subnet,
//! user data, key, root volume) replaces it. With `stateful = true` its
//! disks are imaged in recovery points, and `phoenix restore` relaunches it
//! from that image through `recovery_image`.

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttributeValue, BlockDeviceMapping, EbsBlockDevice, Filter, Instance as Ec2Instance, InstanceStateName, InstanceType, ResourceType, Tag,
};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Secret, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::state::Ownership;
use phoenix_core::value::Attrs;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::{Aws, create_call_config};
use crate::create::{Made, create_once};
use crate::ec2::{self, Ec2Kind, UserTags};
use crate::error::{is_not_found, sdk};
use crate::recovery::{self, Target};
use crate::tags;
use phoenix_core::kit::Snapshot;
use phoenix_core::recovery::SnapshotRef;

pub struct Instance;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// the AMI id (ami-…); or set ami_name
    #[schemars(extend("force_new" = true))]
    pub ami: Option<String>,
    /// an AMI name pattern (al2023-ami-2023*-x86_64); the newest match is used
    #[schemars(extend("force_new" = true))]
    pub ami_name: Option<String>,
    /// who owns the AMI named by ami_name: amazon, self, or an account id
    #[serde(default = "amazon")]
    #[schemars(extend("force_new" = true))]
    pub ami_owner: String,
    /// e.g. t3.micro; changed in place (stop, modify, start)
    pub instance_type: String,
    /// the subnet to launch in
    #[schemars(extend("force_new" = true))]
    pub subnet_id: String,
    /// security groups; changed in place
    pub security_group_ids: Option<Vec<String>>,
    /// a cloud-init script or other user data (plain text)
    // Bootstrap scripts often carry secrets: kept out of state and plans.
    #[schemars(extend("force_new" = true))]
    pub user_data: Option<Secret<String>>,
    /// the EC2 key pair for SSH
    #[schemars(extend("force_new" = true))]
    pub key_name: Option<String>,
    /// root volume size in GiB (default: the AMI's)
    #[schemars(extend("force_new" = true))]
    pub root_volume_size: Option<i64>,
    /// snapshot this instance's root volume as an AMI in recovery points (`phoenix snapshot`); default false
    pub stateful: Option<bool>,
    /// launch from this AMI of a recovery point instead of ami/ami_name (set by `phoenix restore`)
    #[schemars(extend("force_new" = true))]
    pub recovery_image: Option<String>,
    /// extra tags (Phoenix adds its ownership tags and Name)
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct InstanceOutputs {
    /// the instance id (i-…)
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the AMI it was launched from
    #[schemars(extend("stable" = true))]
    pub image_id: String,
    /// the primary private IPv4 address
    // A VPC instance keeps its primary private address for life, stop/start included.
    #[schemars(extend("stable" = true))]
    pub private_ip: String,
    /// the public IPv4 address (changes on stop/start), or ""
    pub public_ip: String,
    /// the zone of its subnet
    #[schemars(extend("stable" = true))]
    pub availability_zone: String,
    /// pending, running, stopped …
    pub state: String,
}

fn amazon() -> String {
    "amazon".into()
}

/// States in which an instance still exists for Phoenix's purposes; `shutting-down`
/// and `terminated` instances are on their way out and count as gone.
const LIVE: [&str; 4] = ["pending", "running", "stopping", "stopped"];

fn state_of(i: &Ec2Instance) -> &str {
    i.state().and_then(|s| s.name()).map_or("unknown", InstanceStateName::as_str)
}

fn live_filter() -> Filter {
    Filter::builder().name("instance-state-name").set_values(Some(LIVE.iter().map(|s| s.to_string()).collect())).build()
}

fn outputs(i: &Ec2Instance) -> InstanceOutputs {
    InstanceOutputs {
        id: i.instance_id().unwrap_or_default().to_string(),
        image_id: i.image_id().unwrap_or_default().to_string(),
        private_ip: i.private_ip_address().unwrap_or_default().to_string(),
        // No public address (a private subnet, or a stopped instance) reads as "" so references stay strings.
        public_ip: i.public_ip_address().unwrap_or_default().to_string(),
        availability_zone: i.placement().and_then(|p| p.availability_zone()).unwrap_or_default().to_string(),
        state: state_of(i).to_string(),
    }
}

/// Every instance matching `filters`, over all pages, whatever its state (waits need to see `terminated`).
async fn describe_all(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Ec2Instance>, ProviderError> {
    let pages = aws.ec2.describe_instances().set_filters(Some(filters)).into_paginator().send();
    let pages = super::all_pages("DescribeInstances", pages).await?;
    Ok(pages.iter().flat_map(|p| p.reservations()).flat_map(|r| r.instances().iter().cloned()).collect())
}

/// One instance by id; `None` if EC2 does not (or does not yet) know it.
async fn one(aws: &Aws, id: &str) -> Result<Option<Ec2Instance>, ProviderError> {
    Ok(describe_all(aws, vec![tags::id_filter("instance-id", &[id.to_string()])]).await?.into_iter().next())
}

/// Waits until the instance is `want`. Right after a create EC2 may not list it yet, which is not an error;
/// an instance that terminates while we wait for it to run is (capacity, a bad AMI, a volume limit).
async fn wait_for(aws: &Aws, id: &str, want: InstanceStateName) -> Result<Ec2Instance, ProviderError> {
    let what = format!("instance {id} to be {}", want.as_str());
    crate::wait::until(&what, aws.wait_timeout, || {
        let want = want.clone();
        async move {
            let Some(i) = one(aws, id).await? else { return Ok(None) };
            let state = state_of(&i);
            if state == want.as_str() {
                return Ok(Some(i));
            }
            if !LIVE.contains(&state) {
                let reason = i.state_reason().and_then(|r| r.message()).unwrap_or("no reason given");
                return Err(ProviderError::permanent(format!("instance {id} is {state} while waiting for {}: {reason}", want.as_str())));
            }
            Ok(None)
        }
    })
    .await
}

/// Waits until the instance is terminated or unknown, so that its subnet, security group and volumes can go.
async fn wait_gone(aws: &Aws, id: &str) -> Result<(), ProviderError> {
    crate::wait::until(&format!("instance {id} to terminate"), aws.wait_timeout, || async move {
        Ok(match one(aws, id).await? {
            Some(i) if state_of(&i) != "terminated" => None,
            _ => Some(()),
        })
    })
    .await
}

/// Which image to launch: an id, or the newest match of a name pattern among an owner's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AmiQuery<'a> {
    pub ami: Option<&'a str>,
    pub ami_name: Option<&'a str>,
    pub ami_owner: Option<&'a str>,
}

/// The AMI to launch and its root device name (needed only to size the root volume).
/// By name: the newest image matching the pattern among the owner's, as production
/// code does it; an id is used as given, and looked up only when its root device is needed.
pub(crate) async fn resolve_ami(aws: &Aws, q: AmiQuery<'_>, need_root: bool) -> Result<(String, Option<String>), ProviderError> {
    let query = format!("{:?}|{:?}|{:?}|{need_root}", q.ami, q.ami_name, q.ami_owner);
    aws.image(query, || lookup_ami(aws, q, need_root)).await
}

async fn lookup_ami(aws: &Aws, q: AmiQuery<'_>, need_root: bool) -> Result<(String, Option<String>), ProviderError> {
    let owner = q.ami_owner.unwrap_or("amazon");
    let request = match (q.ami, q.ami_name) {
        (Some(_), Some(_)) => return Err(ProviderError::permanent("set either `ami` or `ami_name`, not both")),
        (None, None) => {
            return Err(ProviderError::permanent(
                "set `ami` (an image id) or `ami_name` (a name pattern such as \"al2023-ami-2023*-x86_64\")",
            ));
        }
        (Some(id), None) if !need_root => return Ok((id.to_string(), None)),
        (Some(id), None) => aws.ec2.describe_images().image_ids(id),
        (None, Some(pattern)) => aws
            .ec2
            .describe_images()
            .owners(owner)
            .filters(Filter::builder().name("name").values(pattern).build())
            .filters(Filter::builder().name("state").values("available").build()),
    };
    let out = { request.send().await.map_err(|e| sdk("DescribeImages", e))? };
    // ISO 8601 dates of one format sort as strings; the name breaks ties (it usually embeds a date).
    let newest = out.images().iter().max_by(|a, b| (a.creation_date(), a.name()).cmp(&(b.creation_date(), b.name())));
    let Some(image) = newest else {
        return Err(ProviderError::permanent(match q.ami_name {
            Some(p) => format!("no available AMI named `{p}` owned by `{owner}` in {}", aws.region),
            None => format!("AMI `{}` does not exist in {}", q.ami.unwrap_or_default(), aws.region),
        }));
    };
    let id = image.image_id().ok_or_else(|| ProviderError::permanent("DescribeImages returned an image without an id"))?;
    Ok((id.to_string(), image.root_device_name().map(str::to_string)))
}

/// Changes the instance type: EC2 only allows it on a stopped instance.
async fn resize(aws: &Aws, req: &Update<'_, Instance>, id: &str, to: &str) -> Result<(), ProviderError> {
    let current = one(aws, id).await?.ok_or_else(|| ProviderError::permanent(format!("instance {id} no longer exists")))?;
    if current.instance_type().map(InstanceType::as_str) == Some(to) {
        return Ok(());
    }
    (req.log)(req.addr, &format!("stopping {id} to change its type to {to}"));
    {
        aws.ec2.stop_instances().instance_ids(id).send().await.map_err(|e| sdk("StopInstances", e))?;
    }
    wait_for(aws, id, InstanceStateName::Stopped).await?;
    let modified = {
        aws.ec2
            .modify_instance_attribute()
            .instance_id(id)
            .instance_type(AttributeValue::builder().value(to).build())
            .send()
            .await
            .map_err(|e| sdk("ModifyInstanceAttribute", e))
    };
    // Start it again even when the modification was refused, so a bad type does not leave it stopped.
    {
        aws.ec2.start_instances().instance_ids(id).send().await.map_err(|e| sdk("StartInstances", e))?;
    }
    wait_for(aws, id, InstanceStateName::Running).await?;
    modified.map(|_| ())
}

/// The instance an interrupted create made, by its ownership tags.
async fn find_made(aws: &Aws, spec: &InstanceSpec, ownership: &Ownership) -> Result<Option<Observed<Instance>>, ProviderError> {
    let mut filters = tags::owner_filters(ownership);
    filters.push(live_filter());
    let mut live = describe_all(aws, filters).await?;
    // Should two exist (an API that ignored the ClientToken), adopt the first launched, deterministically.
    live.sort_by(|a, b| (a.launch_time(), a.instance_id()).cmp(&(b.launch_time(), b.instance_id())));
    let Some(mut i) = live.into_iter().next() else { return Ok(None) };
    // The interrupted create had not seen it running yet; finish that wait as create would.
    if state_of(&i) == "pending" {
        i = wait_for(aws, i.instance_id().unwrap_or_default(), InstanceStateName::Running).await?;
    }
    Ok(Some(Instance::observe(&i, Some(spec))))
}

#[async_trait]
impl Ec2Kind for Instance {
    type Object = Ec2Instance;
    const ID_FILTER: &'static str = "instance-id";

    async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Ec2Instance>, ProviderError> {
        let mut found = describe_all(aws, filters).await?;
        found.retain(|i| LIVE.contains(&state_of(i)));
        Ok(found)
    }
    fn id(i: &Ec2Instance) -> &str {
        i.instance_id().unwrap_or_default()
    }
    fn tags(i: &Ec2Instance) -> &[Tag] {
        i.tags()
    }
    fn id_of(outputs: &InstanceOutputs) -> &str {
        &outputs.id
    }
    /// What can be read back and compared with the definition. The AMI name
    /// pattern, user data and root volume size are not reported: EC2 does not
    /// return them cheaply (or at all), and they are force-new anyway.
    fn observe(i: &Ec2Instance, prior: Option<&InstanceSpec>) -> Observed<Self> {
        let image = i.image_id().unwrap_or_default().to_string();
        let (ami, recovery_image) = match prior {
            // Launched from a recovery point's image, not from the definition's
            // `ami`: the image is compared with `recovery_image`, and `ami` is
            // kept as declared so that the restored instance is not replaced.
            Some(p) if p.recovery_image.is_some() => (p.ami.clone(), Some(image)),
            _ => (Some(image), None),
        };
        let groups: Vec<String> = i.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect();
        let spec = InstanceSpec {
            ami,
            ami_name: prior.and_then(|p| p.ami_name.clone()),
            ami_owner: prior.map_or_else(amazon, |p| p.ami_owner.clone()),
            instance_type: i
                .instance_type()
                .map(|t| t.as_str().to_string())
                .or_else(|| prior.map(|p| p.instance_type.clone()))
                .unwrap_or_default(),
            subnet_id: i.subnet_id().map(str::to_string).or_else(|| prior.map(|p| p.subnet_id.clone())).unwrap_or_default(),
            // In the definition's order when the set is the same (EC2 does not keep the order).
            security_group_ids: Some(ec2::as_set(prior.and_then(|p| p.security_group_ids.as_deref()), groups)),
            user_data: prior.and_then(|p| p.user_data.clone()),
            key_name: i.key_name().map(str::to_string),
            root_volume_size: prior.and_then(|p| p.root_volume_size),
            stateful: prior.and_then(|p| p.stateful),
            recovery_image,
            tags: ec2::user_tags(i.tags()),
        };
        Observed { spec, outputs: outputs(i) }
    }
}

#[async_trait]
impl Kind for Instance {
    const TYPE: &'static str = "aws.instance";
    const DESCRIPTION: &'static str = "An EC2 instance";
    type Client = Aws;
    type Spec = InstanceSpec;
    type Outputs = InstanceOutputs;

    fn capabilities(&self) -> Capabilities {
        // Most instances are cattle, rebuilt from their AMI and user data:
        // only those whose definition says `stateful = true` are imaged.
        Capabilities::managed().stateful_if("recovery_image", "stateful")
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
        recovery::image::snapshot(aws, Target::of(&req, &req.outputs.id)).await
    }

    async fn copy_snapshot(&self, aws: &Aws, snapshot: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        recovery::image::copy(aws, snapshot, to_region).await
    }

    async fn delete_snapshot(&self, aws: &Aws, snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        recovery::image::delete(aws, snapshot).await
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        // Terminated instances linger in DescribeInstances for a while: not leaks.
        let found = describe_all(aws, vec![ec2::owned_filter(), live_filter()]).await?;
        Ok(Some(
            found
                .iter()
                .filter_map(|i| {
                    let ownership = Ownership::from_tags(|k| tags::tag(i.tags(), k))?;
                    // An auto scaling group's instances carry the group's ownership tags
                    // (propagated at launch) and no state holds their ids: they are the
                    // group's, a leak only with it, and go when it is deleted.
                    let container = tags::tag(i.tags(), "aws:autoscaling:groupName").map(str::to_string);
                    Some(Owned { ownership, observed: Self::observe(i, None), container })
                })
                .collect(),
        ))
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<InstanceOutputs, ProviderError> {
        let spec = req.spec;
        let need_root = spec.root_volume_size.is_some();
        let (image, root_device) = match &spec.recovery_image {
            // Restored: the recovery point's image replaces whatever ami/ami_name say.
            Some(recovery) => {
                resolve_ami(aws, AmiQuery { ami: Some(recovery), ami_name: None, ami_owner: Some(&spec.ami_owner) }, need_root).await?
            }
            None => {
                let q = AmiQuery { ami: spec.ami.as_deref(), ami_name: spec.ami_name.as_deref(), ami_owner: Some(&spec.ami_owner) };
                resolve_ami(aws, q, need_root).await?
            }
        };
        let tags = tags::all_tags_typed(req.ownership, spec.tags.as_ref());
        let mut run = aws
            .ec2
            .run_instances()
            .image_id(&image)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .subnet_id(&spec.subnet_id)
            .min_count(1)
            .max_count(1)
            // A retried call whose first response was lost gets the same instance back, not a second one.
            .client_token(req.idempotency_token)
            .tag_specifications(tags::spec(ResourceType::Instance, tags.clone()))
            // The root volume (and any the AMI maps) carries the ownership tags too, so a sweep finds it.
            .tag_specifications(tags::spec(ResourceType::Volume, tags));
        let groups = spec.security_group_ids.clone().unwrap_or_default();
        if !groups.is_empty() {
            run = run.set_security_group_ids(Some(groups));
        }
        if let Some(u) = &spec.user_data {
            run = run.user_data(aws_smithy_types::base64::encode(u.clear()?));
        }
        if let Some(k) = &spec.key_name {
            run = run.key_name(k);
        }
        if let Some(size) = spec.root_volume_size {
            let device = root_device.ok_or_else(|| ProviderError::permanent(format!("AMI {image} names no root device to size")))?;
            let size = i32::try_from(size).map_err(|_| ProviderError::permanent(format!("root_volume_size {size} is out of range")))?;
            let ebs = EbsBlockDevice::builder().volume_size(size).delete_on_termination(true).build();
            run = run.block_device_mappings(BlockDeviceMapping::builder().device_name(device).ebs(ebs).build());
        }
        // The ClientToken covers a retried call on AWS; emulators may ignore it, so a
        // lost answer is also looked up by tags (`create_once`).
        let call = || run.clone().customize().config_override(create_call_config()).send();
        let find = || find_made(aws, spec, req.ownership);
        let id = match create_once("RunInstances", call, find).await? {
            Made::Answered(o) => o.instances().first().and_then(|i| i.instance_id()).unwrap_or_default().to_string(),
            Made::Found(found) => found.outputs.id,
        };
        if id.is_empty() {
            return Err(ProviderError::permanent("RunInstances returned no id"));
        }
        // The instance exists from here on: any failure must hand it to the engine (recorded tainted), never leak it.
        let made: Attrs = [("id".to_string(), json!(id)), ("image_id".to_string(), json!(image))].into_iter().collect();
        let running = wait_for(aws, &id, InstanceStateName::Running).await.map_err(|e| e.with_created(made))?;
        Ok(outputs(&running))
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<InstanceOutputs, ProviderError> {
        let id = req.outputs.id.as_str();
        if req.changed("instance_type") {
            resize(aws, &req, id, &req.spec.instance_type).await?;
        }
        if req.changed("security_group_ids") {
            let groups = req.spec.security_group_ids.clone().unwrap_or_default();
            if groups.is_empty() {
                return Err(ProviderError::permanent(
                    "an instance in a VPC needs at least one security group; list the VPC's default group to keep only it",
                ));
            }
            aws.ec2
                .modify_instance_attribute()
                .instance_id(id)
                .set_groups(Some(groups))
                .send()
                .await
                .map_err(|e| sdk("ModifyInstanceAttribute", e))?;
        }
        ec2::update_tags(aws, id, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        let now = one(aws, id).await?.ok_or_else(|| ProviderError::permanent(format!("instance {id} disappeared during the update")))?;
        Ok(outputs(&now))
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let id = req.outputs.id.as_str();
        {
            match aws.ec2.terminate_instances().instance_ids(id).send().await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => return Err(sdk("TerminateInstances", e)),
            }
        }
        // Its security group, subnet and detached volumes can only be deleted once it is gone.
        wait_gone(aws, id).await
    }
}

#[cfg(test)]
mod tests {
    use phoenix_core::kit::KindSet;
    use serde_json::json;

    use super::*;

    #[test]
    fn only_instances_that_say_stateful_are_snapshotted_through_recovery_image() {
        let set: KindSet<Aws> = KindSet::new().with(Instance);
        assert_eq!(set.restore_attr("aws.instance"), Some("recovery_image"));
        let base = json!({"ami": "ami-1", "instance_type": "t3.micro", "subnet_id": "subnet-1"});
        for stateful in [None, Some(false), Some(true)] {
            let mut inputs: Attrs = serde_json::from_value(base.clone()).unwrap();
            if let Some(s) = stateful {
                inputs.insert("stateful".into(), json!(s));
            }
            assert_eq!(set.is_stateful("aws.instance", &inputs), stateful == Some(true), "{inputs:?}");
        }
        assert!(set.is_stateful(
            "aws.instance",
            &serde_json::from_value(json!({"stateful": true, "instance_type": "t3.micro", "subnet_id": "s"})).unwrap()
        ));
    }
}
