//! `aws.launch_template`: what an auto scaling group launches (AMI, type,
//! security groups, user data, key).
//!
//! A change of the launch data is applied in place as a new template version
//! made the default; `latest_version` then changes, and an auto scaling group
//! that references it (`launch_template_version = "${lt.latest_version}"`)
//! rolls its instances onto it (instance refresh). Only the name forces a new template.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, InstanceType, LaunchTemplate as Ec2LaunchTemplate, RequestLaunchTemplateData, ResourceType, Tag};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Secret, Update};
use phoenix_core::provider::ProviderError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::instance::{AmiQuery, resolve_ami};
use crate::client::Aws;
use crate::ec2::{self, Ec2Kind, UserTags};
use crate::error::{is_not_found, sdk};
use crate::tags;

pub struct LaunchTemplate;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchTemplateSpec {
    /// unique in the region
    #[schemars(extend("force_new" = true))]
    pub name: String,
    /// an image id (ami-…), or use ami_name
    pub ami: Option<String>,
    /// an image name pattern; the newest match is used
    pub ami_name: Option<String>,
    /// owner of ami_name images (default amazon)
    pub ami_owner: Option<String>,
    /// e.g. t3.micro
    pub instance_type: String,
    /// security groups of the instances
    pub security_group_ids: Option<Vec<String>>,
    /// a cloud-init script (plain text)
    pub user_data: Option<Secret<String>>,
    /// an EC2 key pair name
    pub key_name: Option<String>,
    /// extra tags (Phoenix adds its ownership tags and Name)
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LaunchTemplateOutputs {
    /// the launch template id (lt-…)
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the newest (and default) version; a change makes a new one
    pub latest_version: i64,
    /// the AMI the latest version launches
    pub image_id: String,
}

/// The launch data; the AMI is resolved as `aws.instance` resolves it (the newest match of a name pattern).
async fn data(aws: &Aws, spec: &LaunchTemplateSpec) -> Result<(RequestLaunchTemplateData, String), ProviderError> {
    let q = AmiQuery { ami: spec.ami.as_deref(), ami_name: spec.ami_name.as_deref(), ami_owner: spec.ami_owner.as_deref() };
    let (image, _) = resolve_ami(aws, q, false).await?;
    let groups = spec.security_group_ids.clone().unwrap_or_default();
    let user_data = spec.user_data.as_ref().map(|u| u.clear().map(aws_smithy_types::base64::encode)).transpose()?;
    let d = RequestLaunchTemplateData::builder()
        .image_id(&image)
        .instance_type(InstanceType::from(spec.instance_type.as_str()))
        .set_security_group_ids((!groups.is_empty()).then_some(groups))
        .set_key_name(spec.key_name.clone())
        .set_user_data(user_data)
        .build();
    Ok((d, image))
}

fn outputs(t: &Ec2LaunchTemplate, image: &str) -> LaunchTemplateOutputs {
    LaunchTemplateOutputs {
        id: t.launch_template_id().unwrap_or_default().to_string(),
        latest_version: t.latest_version_number().unwrap_or(1),
        image_id: image.to_string(),
    }
}

/// Templates by id. On AWS an unknown id fails the whole call (not found), so a batch
/// with a gone member is read again one id at a time.
async fn describe_ids(aws: &Aws, ids: Vec<String>) -> Result<Vec<Ec2LaunchTemplate>, ProviderError> {
    let res = { aws.ec2.describe_launch_templates().set_launch_template_ids(Some(ids.clone())).send().await };
    match res {
        Ok(out) => Ok(out.launch_templates().to_vec()),
        Err(e) if is_not_found(&e) && ids.len() > 1 => {
            let mut found = Vec::new();
            for id in ids {
                found.extend(Box::pin(describe_ids(aws, vec![id])).await?);
            }
            Ok(found)
        }
        Err(e) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(sdk("DescribeLaunchTemplates", e)),
    }
}

#[async_trait]
impl Ec2Kind for LaunchTemplate {
    type Object = Ec2LaunchTemplate;
    /// DescribeLaunchTemplates has no filter on ids: `describe` passes them as its `LaunchTemplateIds`.
    const ID_FILTER: &'static str = "launch-template-id";

    async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Ec2LaunchTemplate>, ProviderError> {
        if let [only] = filters.as_slice()
            && only.name() == Some(Self::ID_FILTER)
        {
            return describe_ids(aws, only.values().to_vec()).await;
        }
        let pages = aws.ec2.describe_launch_templates().set_filters(Some(filters)).into_paginator().send();
        let mut found = Vec::new();
        for page in super::all_pages("DescribeLaunchTemplates", pages).await? {
            found.extend(page.launch_templates().iter().cloned());
        }
        Ok(found)
    }
    fn id(t: &Ec2LaunchTemplate) -> &str {
        t.launch_template_id().unwrap_or_default()
    }
    fn tags(t: &Ec2LaunchTemplate) -> &[Tag] {
        t.tags()
    }
    fn id_of(outputs: &LaunchTemplateOutputs) -> &str {
        &outputs.id
    }
    /// DescribeLaunchTemplates returns the name, versions and tags, not the launch data
    /// (that is one DescribeLaunchTemplateVersions call per template): drift in the data
    /// made outside Phoenix shows as a new `latest_version`, not attribute by attribute.
    fn observe(t: &Ec2LaunchTemplate, prior: Option<&LaunchTemplateSpec>) -> Observed<Self> {
        let spec = LaunchTemplateSpec {
            name: t.launch_template_name().unwrap_or_default().to_string(),
            tags: ec2::user_tags(t.tags()),
            ..prior.cloned().unwrap_or_else(unread)
        };
        Observed { spec, outputs: outputs(t, "") }
    }
}

/// The launch data of a template never read (listed for `gc`): unknown.
fn unread() -> LaunchTemplateSpec {
    LaunchTemplateSpec {
        name: String::new(),
        ami: None,
        ami_name: None,
        ami_owner: None,
        instance_type: String::new(),
        security_group_ids: None,
        user_data: None,
        key_name: None,
        tags: None,
    }
}

#[async_trait]
impl Kind for LaunchTemplate {
    const TYPE: &'static str = "aws.launch_template";
    const DESCRIPTION: &'static str = "An EC2 launch template (what an auto scaling group launches)";
    type Client = Aws;
    type Spec = LaunchTemplateSpec;
    type Outputs = LaunchTemplateOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        let mut found = ec2::read(aws, items).await?;
        // The image is not read back (it is in the version's data): kept as recorded.
        for (f, item) in found.iter_mut().zip(items) {
            if let Some(o) = f {
                o.outputs.image_id.clone_from(&item.outputs.image_id);
            }
        }
        Ok(found)
    }

    /// Everything from the default version's launch data (one more call, for this one template).
    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        let Some(t) = describe_ids(aws, vec![id.to_string()]).await?.into_iter().next() else { return Ok(None) };
        let out = aws
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(id)
            .versions("$Default")
            .send()
            .await
            .map_err(|e| sdk("DescribeLaunchTemplateVersions", e))?;
        let data = out.launch_template_versions().first().and_then(|v| v.launch_template_data());
        let image = data.and_then(|d| d.image_id()).unwrap_or_default().to_string();
        let user_data = data
            .and_then(|d| d.user_data())
            .and_then(|u| aws_smithy_types::base64::decode(u).ok())
            .map(|b| Secret::Clear(String::from_utf8_lossy(&b).into_owned()));
        let groups = data.map(|d| d.security_group_ids().to_vec()).filter(|g| !g.is_empty());
        let spec = LaunchTemplateSpec {
            name: t.launch_template_name().unwrap_or_default().to_string(),
            ami: Some(image.clone()).filter(|i| !i.is_empty()),
            ami_name: None,
            ami_owner: None,
            instance_type: data.and_then(|d| d.instance_type()).map(|t| t.as_str().to_string()).unwrap_or_default(),
            security_group_ids: groups,
            user_data,
            key_name: data.and_then(|d| d.key_name()).map(str::to_string),
            tags: ec2::user_tags(t.tags()),
        };
        Ok(Some(Observed { spec, outputs: outputs(&t, &image) }))
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        let out = aws
            .ec2
            .describe_launch_templates()
            .set_filters(Some(tags::owner_filters(req.ownership)))
            .send()
            .await
            .map_err(|e| sdk("DescribeLaunchTemplates", e))?;
        Ok(out.launch_templates().first().map(|t| Self::observe(t, Some(req.spec))))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        ec2::list_owned(aws).await
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<LaunchTemplateOutputs, ProviderError> {
        let (d, image) = data(aws, req.spec).await?;
        let tags = tags::all_tags_typed(req.ownership, req.spec.tags.as_ref());
        let out = aws
            .ec2
            .create_launch_template()
            .launch_template_name(&req.spec.name)
            .launch_template_data(d)
            // A retried call whose first response was lost gets the same template back.
            .client_token(req.idempotency_token)
            .tag_specifications(tags::spec(ResourceType::LaunchTemplate, tags))
            .send()
            .await
            .map_err(|e| sdk("CreateLaunchTemplate", e))?;
        let t = out.launch_template().ok_or_else(|| ProviderError::permanent("CreateLaunchTemplate returned no template"))?;
        Ok(outputs(t, &image))
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<LaunchTemplateOutputs, ProviderError> {
        let id = req.outputs.id.as_str();
        let mut out = req.outputs.clone();
        if req.changed.iter().any(|c| c != "tags") {
            let (d, image) = data(aws, req.spec).await?;
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
            out.latest_version = version;
            out.image_id = image;
        }
        ec2::update_tags(aws, id, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        Ok(out)
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        match aws.ec2.delete_launch_template().launch_template_id(&req.outputs.id).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(sdk("DeleteLaunchTemplate", e)),
        }
    }
}
