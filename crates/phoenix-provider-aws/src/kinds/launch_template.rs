//! `aws.launch_template`: what an auto scaling group launches (AMI, type,
//! security groups, user data, key).
//!
//! A change of the launch data is applied in place as a new template version
//! made the default; `latest_version` then changes, and an auto scaling group
//! that references it (`launch_template_version = "${lt.latest_version}"`)
//! rolls its instances onto it (instance refresh). Only the name forces a new template.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{InstanceType, LaunchTemplate as Ec2LaunchTemplate, RequestLaunchTemplateData, ResourceType};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::Attrs;
use serde_json::json;

use super::instance::resolve_ami;
use super::{Kind, id_attr, id_chunks, id_of, in_item_order, opt_str, priors, req_str, str_list, tags_attr, update_tags};
use crate::client::Aws;
use crate::error::{is_not_found, sdk};
use crate::tags;

pub struct LaunchTemplate;

/// The launch data; the AMI is resolved as `aws.instance` resolves it (the newest match of a name pattern).
async fn data(aws: &Aws, inputs: &Attrs) -> Result<(RequestLaunchTemplateData, String), ProviderError> {
    let (image, _) = resolve_ami(aws, inputs).await?;
    let groups = str_list(inputs, "security_group_ids");
    let d = RequestLaunchTemplateData::builder()
        .image_id(&image)
        .instance_type(InstanceType::from(req_str(inputs, "instance_type")?))
        .set_security_group_ids((!groups.is_empty()).then_some(groups))
        .set_key_name(opt_str(inputs, "key_name").map(str::to_string))
        .set_user_data(opt_str(inputs, "user_data").map(aws_smithy_types::base64::encode))
        .build();
    Ok((d, image))
}

fn outputs(t: &Ec2LaunchTemplate, image: Option<&str>, prior: &Attrs) -> Attrs {
    let mut o = Attrs::new();
    o.insert("id".into(), json!(t.launch_template_id().unwrap_or_default()));
    o.insert("latest_version".into(), json!(t.latest_version_number().unwrap_or(1)));
    let image = image.map(str::to_string).or_else(|| prior.get("image_id").and_then(|v| v.as_str()).map(str::to_string));
    o.insert("image_id".into(), json!(image.unwrap_or_default()));
    o
}

/// DescribeLaunchTemplates returns the name, versions and tags, not the launch data
/// (that is one DescribeLaunchTemplateVersions call per template): drift in the data
/// made outside Phoenix shows as a new `latest_version`, not attribute by attribute.
fn observed(t: &Ec2LaunchTemplate, prior_inputs: &Attrs, prior_outputs: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    inputs.insert("name".into(), json!(t.launch_template_name().unwrap_or_default()));
    tags::observe_tags(&mut inputs, prior_inputs, t.tags());
    Observed { inputs, outputs: outputs(t, None, prior_outputs) }
}

/// Templates by id. On AWS an unknown id fails the whole call (not found), so a batch
/// with a gone member is read again one id at a time.
async fn describe(aws: &Aws, ids: Vec<String>) -> Result<Vec<Ec2LaunchTemplate>, ProviderError> {
    let res = { aws.ec2.describe_launch_templates().set_launch_template_ids(Some(ids.clone())).send().await };
    match res {
        Ok(out) => Ok(out.launch_templates().to_vec()),
        Err(e) if is_not_found(&e) && ids.len() > 1 => {
            let mut found = Vec::new();
            for id in ids {
                found.extend(Box::pin(describe(aws, vec![id])).await?);
            }
            Ok(found)
        }
        Err(e) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(sdk("DescribeLaunchTemplates", e)),
    }
}

#[async_trait]
impl Kind for LaunchTemplate {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.launch_template",
            description: "An EC2 launch template (what an auto scaling group launches)",
            attrs: vec![
                AttrSchema::required("name", AttrType::String, "unique in the region").force_new(),
                AttrSchema::optional("ami", AttrType::String, "an image id (ami-…), or use ami_name"),
                AttrSchema::optional("ami_name", AttrType::String, "an image name pattern; the newest match is used"),
                AttrSchema::optional("ami_owner", AttrType::String, "owner of ami_name images (default amazon)"),
                AttrSchema::required("instance_type", AttrType::String, "e.g. t3.micro"),
                AttrSchema::optional("security_group_ids", AttrType::List(Box::new(AttrType::String)), "security groups of the instances"),
                AttrSchema::optional("user_data", AttrType::String, "a cloud-init script (plain text)").sensitive(),
                AttrSchema::optional("key_name", AttrType::String, "an EC2 key pair name"),
                tags_attr(),
                id_attr("the launch template id (lt-…)"),
                AttrSchema::computed("latest_version", AttrType::Int, "the newest (and default) version; a change makes a new one"),
                AttrSchema::computed("image_id", AttrType::String, "the AMI the latest version launches"),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let prior_out: HashMap<&str, &Attrs> = items.iter().filter_map(|i| Some((i.outputs.get("id")?.as_str()?, &i.outputs))).collect();
        let mut found = HashMap::new();
        for ids in id_chunks(items) {
            for t in describe(aws, ids).await? {
                let id = t.launch_template_id().unwrap_or_default().to_string();
                let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
                let po = prior_out.get(id.as_str()).copied().cloned().unwrap_or_default();
                found.insert(id, observed(&t, &p, &po));
            }
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        let pages = aws.ec2.describe_launch_templates().filters(super::owned_filter()).into_paginator().send();
        let mut found = Vec::new();
        for page in super::all_pages("DescribeLaunchTemplates", pages).await? {
            for t in page.launch_templates() {
                found.extend(super::owned(self, t.tags(), observed(t, &Attrs::new(), &Attrs::new())));
            }
        }
        Ok(Some(found))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let out = aws
            .ec2
            .describe_launch_templates()
            .set_filters(Some(tags::owner_filters(&req.ownership)))
            .send()
            .await
            .map_err(|e| sdk("DescribeLaunchTemplates", e))?;
        Ok(out.launch_templates().first().map(|t| observed(t, &req.inputs, &Attrs::new())))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let (d, image) = data(aws, &req.inputs).await?;
        let tags = tags::all_tags(&req.ownership, req.inputs.get("tags"));
        let out = aws
            .ec2
            .create_launch_template()
            .launch_template_name(req_str(&req.inputs, "name")?)
            .launch_template_data(d)
            // A retried call whose first response was lost gets the same template back.
            .client_token(&req.idempotency_token)
            .tag_specifications(tags::spec(ResourceType::LaunchTemplate, tags))
            .send()
            .await
            .map_err(|e| sdk("CreateLaunchTemplate", e))?;
        let t = out.launch_template().ok_or_else(|| ProviderError::permanent("CreateLaunchTemplate returned no template"))?;
        Ok(outputs(t, Some(&image), &Attrs::new()))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = id_of(&req.prior_outputs)?;
        let mut out = req.prior_outputs.clone();
        if req.changed.iter().any(|c| c != "tags") {
            let (d, image) = data(aws, &req.inputs).await?;
            let version = {
                aws.ec2
                    .create_launch_template_version()
                    .launch_template_id(id)
                    .launch_template_data(d)
                    .send()
                    .await
                    .map_err(|e| sdk("CreateLaunchTemplateVersion", e))?
                    .launch_template_version()
                    .and_then(|v| v.version_number())
                    .ok_or_else(|| ProviderError::permanent("CreateLaunchTemplateVersion returned no version"))?
            };
            {
                aws.ec2
                    .modify_launch_template()
                    .launch_template_id(id)
                    .default_version(version.to_string())
                    .send()
                    .await
                    .map_err(|e| sdk("ModifyLaunchTemplate", e))?;
            }
            out.insert("latest_version".into(), json!(version));
            out.insert("image_id".into(), json!(image));
        }
        update_tags(aws, id, req).await?;
        Ok(out)
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?;
        match aws.ec2.delete_launch_template().launch_template_id(id).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(sdk("DeleteLaunchTemplate", e)),
        }
    }
}
