//! `aws.instance`: an EC2 instance, its AMI resolved by id or by name pattern.
//!
//! The instance type and security groups change in place (a type change is
//! stop → modify → start); everything that EC2 fixes at launch (AMI, subnet,
//! user data, key, root volume) replaces it. With `stateful = true` its
//! disks are imaged in recovery points, and `phoenix restore` relaunches it
//! from that image through `recovery_image`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttributeValue, BlockDeviceMapping, EbsBlockDevice, Filter, Instance as Ec2Instance, InstanceStateName, InstanceType, ResourceType,
};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::create_once;
use super::{Kind, id_attr, id_chunks, id_of, in_item_order, opt_i64, opt_str, priors, req_str, str_list, tags_attr, update_tags};
use crate::client::{Aws, create_call_config};
use crate::error::{is_not_found, sdk};
use crate::tags;

pub struct Instance;

/// States in which an instance still exists for Phoenix's purposes; `shutting-down`
/// and `terminated` instances are on their way out and count as gone.
const LIVE: [&str; 4] = ["pending", "running", "stopping", "stopped"];

fn state_of(i: &Ec2Instance) -> &str {
    i.state().and_then(|s| s.name()).map_or("unknown", InstanceStateName::as_str)
}

fn is_live(i: &Ec2Instance) -> bool {
    LIVE.contains(&state_of(i))
}

fn outputs(i: &Ec2Instance) -> Attrs {
    let mut o = Attrs::new();
    o.insert("id".into(), json!(i.instance_id().unwrap_or_default()));
    o.insert("image_id".into(), json!(i.image_id().unwrap_or_default()));
    o.insert("private_ip".into(), json!(i.private_ip_address().unwrap_or_default()));
    // No public address (a private subnet, or a stopped instance) reads as "" so references stay strings.
    o.insert("public_ip".into(), json!(i.public_ip_address().unwrap_or_default()));
    o.insert("availability_zone".into(), json!(i.placement().and_then(|p| p.availability_zone()).unwrap_or_default()));
    o.insert("state".into(), json!(state_of(i)));
    o
}

/// What can be read back and compared with the definition. The AMI name
/// pattern, user data and root volume size are not reported: EC2 does not
/// return them cheaply (or at all), and they are force-new anyway.
fn observed(i: &Ec2Instance, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    if let Some(t) = i.instance_type() {
        inputs.insert("instance_type".into(), json!(t.as_str()));
    }
    if let Some(s) = i.subnet_id() {
        inputs.insert("subnet_id".into(), json!(s));
    }
    if prior.contains_key("recovery_image") {
        // Launched from a recovery point's image, not from the definition's
        // `ami`: the image is compared with `recovery_image`, and `ami` is
        // kept as declared so that the restored instance is not replaced.
        inputs.insert("recovery_image".into(), json!(i.image_id().unwrap_or_default()));
        if let Some(ami) = prior.get("ami") {
            inputs.insert("ami".into(), ami.clone());
        }
    } else if prior.contains_key("ami") {
        inputs.insert("ami".into(), json!(i.image_id().unwrap_or_default()));
    }
    if prior.contains_key("key_name") {
        inputs.insert("key_name".into(), i.key_name().map_or(Value::Null, |k| json!(k)));
    }
    // Only when the definition manages them (else the VPC's default group would read as drift),
    // and in the definition's order when the set is the same (EC2 does not keep the order).
    if prior.contains_key("security_group_ids") {
        let mut seen: Vec<String> = i.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect();
        let mut want = str_list(prior, "security_group_ids");
        seen.sort();
        want.sort();
        let value = if seen == want { prior["security_group_ids"].clone() } else { json!(seen) };
        inputs.insert("security_group_ids".into(), value);
    }
    tags::observe_tags(&mut inputs, prior, i.tags());
    Observed { inputs, outputs: outputs(i) }
}

/// Every instance matching `filters`, over all pages.
async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Ec2Instance>, ProviderError> {
    let mut found = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = aws
            .ec2
            .describe_instances()
            .set_filters(Some(filters.clone()))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| sdk("DescribeInstances", e))?;
        found.extend(out.reservations().iter().flat_map(|r| r.instances().iter().cloned()));
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(found),
        }
    }
}

/// One instance by id; `None` if EC2 does not (or does not yet) know it.
async fn one(aws: &Aws, id: &str) -> Result<Option<Ec2Instance>, ProviderError> {
    Ok(describe(aws, vec![tags::id_filter("instance-id", &[id.to_string()])]).await?.into_iter().next())
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

/// The AMI to launch and its root device name (needed only to size the root volume).
/// By name: the newest image matching the pattern among the owner's, as production
/// code does it; an id is used as given, and looked up only when its root device is needed.
pub(crate) async fn resolve_ami(aws: &Aws, inputs: &Attrs) -> Result<(String, Option<String>), ProviderError> {
    let need_root = opt_i64(inputs, "root_volume_size").is_some();
    let query = format!("{:?}|{:?}|{:?}|{need_root}", opt_str(inputs, "ami"), opt_str(inputs, "ami_name"), opt_str(inputs, "ami_owner"));
    aws.image(query, || lookup_ami(aws, inputs, need_root)).await
}

async fn lookup_ami(aws: &Aws, inputs: &Attrs, need_root: bool) -> Result<(String, Option<String>), ProviderError> {
    let request = match (opt_str(inputs, "ami"), opt_str(inputs, "ami_name")) {
        (Some(_), Some(_)) => return Err(ProviderError::permanent("set either `ami` or `ami_name`, not both")),
        (None, None) => {
            return Err(ProviderError::permanent(
                "set `ami` (an image id) or `ami_name` (a name pattern such as \"al2023-ami-2023*-x86_64\")",
            ));
        }
        (Some(id), None) if !need_root => return Ok((id.to_string(), None)),
        (Some(id), None) => aws.ec2.describe_images().image_ids(id),
        (None, Some(pattern)) => {
            let owner = opt_str(inputs, "ami_owner").unwrap_or("amazon");
            aws.ec2
                .describe_images()
                .owners(owner)
                .filters(Filter::builder().name("name").values(pattern).build())
                .filters(Filter::builder().name("state").values("available").build())
        }
    };
    let out = { request.send().await.map_err(|e| sdk("DescribeImages", e))? };
    // ISO 8601 dates of one format sort as strings; the name breaks ties (it usually embeds a date).
    let newest = out.images().iter().max_by(|a, b| (a.creation_date(), a.name()).cmp(&(b.creation_date(), b.name())));
    let Some(image) = newest else {
        return Err(ProviderError::permanent(match opt_str(inputs, "ami_name") {
            Some(p) => {
                format!("no available AMI named `{p}` owned by `{}` in {}", opt_str(inputs, "ami_owner").unwrap_or("amazon"), aws.region)
            }
            None => format!("AMI `{}` does not exist in {}", opt_str(inputs, "ami").unwrap_or_default(), aws.region),
        }));
    };
    let id = image.image_id().ok_or_else(|| ProviderError::permanent("DescribeImages returned an image without an id"))?;
    Ok((id.to_string(), image.root_device_name().map(str::to_string)))
}

/// Changes the instance type: EC2 only allows it on a stopped instance.
async fn resize(aws: &Aws, req: &UpdateRequest, id: &str, to: &str) -> Result<(), ProviderError> {
    let current = one(aws, id).await?.ok_or_else(|| ProviderError::permanent(format!("instance {id} no longer exists")))?;
    if current.instance_type().map(InstanceType::as_str) == Some(to) {
        return Ok(());
    }
    (req.log)(&req.addr, &format!("stopping {id} to change its type to {to}"));
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

#[async_trait]
impl Kind for Instance {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.instance",
            description: "An EC2 instance",
            attrs: vec![
                AttrSchema::optional("ami", AttrType::String, "the AMI id (ami-…); or set ami_name").force_new(),
                AttrSchema::optional(
                    "ami_name",
                    AttrType::String,
                    "an AMI name pattern (al2023-ami-2023*-x86_64); the newest match is used",
                )
                .force_new(),
                AttrSchema::optional("ami_owner", AttrType::String, "who owns the AMI named by ami_name: amazon, self, or an account id")
                    .default(json!("amazon"))
                    .force_new(),
                AttrSchema::required("instance_type", AttrType::String, "e.g. t3.micro; changed in place (stop, modify, start)"),
                AttrSchema::required("subnet_id", AttrType::String, "the subnet to launch in").force_new(),
                AttrSchema::optional("security_group_ids", AttrType::List(Box::new(AttrType::String)), "security groups; changed in place"),
                // Bootstrap scripts often carry secrets: kept out of state and plans.
                AttrSchema::optional("user_data", AttrType::String, "a cloud-init script or other user data (plain text)")
                    .force_new()
                    .sensitive(),
                AttrSchema::optional("key_name", AttrType::String, "the EC2 key pair for SSH").force_new(),
                AttrSchema::optional("root_volume_size", AttrType::Int, "root volume size in GiB (default: the AMI's)").force_new(),
                AttrSchema::optional(
                    "stateful",
                    AttrType::Bool,
                    "snapshot this instance's root volume as an AMI in recovery points (`phoenix snapshot`); default false",
                ),
                AttrSchema::optional(
                    "recovery_image",
                    AttrType::String,
                    "launch from this AMI of a recovery point instead of ami/ami_name (set by `phoenix restore`)",
                )
                .force_new(),
                tags_attr(),
                id_attr("the instance id (i-…)"),
                AttrSchema::computed("image_id", AttrType::String, "the AMI it was launched from").stable(),
                // A VPC instance keeps its primary private address for life, stop/start included.
                AttrSchema::computed("private_ip", AttrType::String, "the primary private IPv4 address").stable(),
                AttrSchema::computed("public_ip", AttrType::String, "the public IPv4 address (changes on stop/start), or \"\""),
                AttrSchema::computed("availability_zone", AttrType::String, "the zone of its subnet").stable(),
                AttrSchema::computed("state", AttrType::String, "pending, running, stopped …"),
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
            for i in describe(aws, vec![tags::id_filter("instance-id", &ids)]).await? {
                if !is_live(&i) {
                    continue;
                }
                let id = i.instance_id().unwrap_or_default().to_string();
                let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
                found.insert(id, observed(&i, &p));
            }
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        // Terminated instances linger in DescribeInstances for a while: not leaks.
        let live = Filter::builder().name("instance-state-name").set_values(Some(LIVE.iter().map(|s| s.to_string()).collect())).build();
        let found = describe(aws, vec![super::owned_filter(), live]).await?;
        Ok(Some(
            found
                .iter()
                .filter_map(|i| {
                    let mut o = super::owned(self, i.tags(), observed(i, &Attrs::new()))?;
                    // An auto scaling group's instances carry the group's ownership tags
                    // (propagated at launch) and no state holds their ids: they are the
                    // group's, a leak only with it, and go when it is deleted.
                    o.container = crate::tags::tag(i.tags(), "aws:autoscaling:groupName").map(str::to_string);
                    Some(o)
                })
                .collect(),
        ))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let mut filters = tags::owner_filters(&req.ownership);
        filters.push(Filter::builder().name("instance-state-name").set_values(Some(LIVE.iter().map(|s| s.to_string()).collect())).build());
        let mut live = describe(aws, filters).await?;
        // Should two exist (an API that ignored the ClientToken), adopt the first launched, deterministically.
        live.sort_by(|a, b| (a.launch_time(), a.instance_id()).cmp(&(b.launch_time(), b.instance_id())));
        let Some(mut i) = live.into_iter().next() else { return Ok(None) };
        // The interrupted create had not seen it running yet; finish that wait as create would.
        if state_of(&i) == "pending" {
            i = wait_for(aws, i.instance_id().unwrap_or_default(), InstanceStateName::Running).await?;
        }
        Ok(Some(observed(&i, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let (image, root_device) = match opt_str(&req.inputs, "recovery_image") {
            // Restored: the recovery point's image replaces whatever ami/ami_name say.
            Some(recovery) => {
                let mut from = req.inputs.clone();
                from.remove("ami_name");
                from.insert("ami".into(), json!(recovery));
                resolve_ami(aws, &from).await?
            }
            None => resolve_ami(aws, &req.inputs).await?,
        };
        let tags = tags::all_tags(&req.ownership, req.inputs.get("tags"));
        let mut run = aws
            .ec2
            .run_instances()
            .image_id(&image)
            .instance_type(InstanceType::from(req_str(&req.inputs, "instance_type")?))
            .subnet_id(req_str(&req.inputs, "subnet_id")?)
            .min_count(1)
            .max_count(1)
            // A retried call whose first response was lost gets the same instance back, not a second one.
            .client_token(&req.idempotency_token)
            .tag_specifications(tags::spec(ResourceType::Instance, tags.clone()))
            // The root volume (and any the AMI maps) carries the ownership tags too, so a sweep finds it.
            .tag_specifications(tags::spec(ResourceType::Volume, tags));
        let groups = str_list(&req.inputs, "security_group_ids");
        if !groups.is_empty() {
            run = run.set_security_group_ids(Some(groups));
        }
        if let Some(u) = opt_str(&req.inputs, "user_data") {
            run = run.user_data(aws_smithy_types::base64::encode(u));
        }
        if let Some(k) = opt_str(&req.inputs, "key_name") {
            run = run.key_name(k);
        }
        if let Some(size) = opt_i64(&req.inputs, "root_volume_size") {
            let device = root_device.ok_or_else(|| ProviderError::permanent(format!("AMI {image} names no root device to size")))?;
            let size = i32::try_from(size).map_err(|_| ProviderError::permanent(format!("root_volume_size {size} is out of range")))?;
            let ebs = EbsBlockDevice::builder().volume_size(size).delete_on_termination(true).build();
            run = run.block_device_mappings(BlockDeviceMapping::builder().device_name(device).ebs(ebs).build());
        }
        // The ClientToken covers a retried call on AWS; emulators may ignore it, so a
        // lost answer is also looked up by tags (`create_once`).
        let made =
            create_once(aws, self, req, "RunInstances", || run.clone().customize().config_override(create_call_config()).send()).await?;
        let id = made.id(|o| o.instances().first().and_then(|i| i.instance_id()), "RunInstances")?;
        // The instance exists from here on: any failure must hand it to the engine (recorded tainted), never leak it.
        let made: Attrs = [("id".to_string(), json!(id)), ("image_id".to_string(), json!(image))].into_iter().collect();
        let running = wait_for(aws, &id, InstanceStateName::Running).await.map_err(|e| e.with_created(made.clone()))?;
        Ok(outputs(&running))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = id_of(&req.prior_outputs)?;
        if req.changed.iter().any(|c| c == "instance_type") {
            resize(aws, req, id, req_str(&req.inputs, "instance_type")?).await?;
        }
        if req.changed.iter().any(|c| c == "security_group_ids") {
            let groups = str_list(&req.inputs, "security_group_ids");
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
        update_tags(aws, id, req).await?;
        let now = one(aws, id).await?.ok_or_else(|| ProviderError::permanent(format!("instance {id} disappeared during the update")))?;
        Ok(outputs(&now))
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?;
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
