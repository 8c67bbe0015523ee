//! `aws.subnet`: a range of a VPC in one availability zone.
//!
//! The zone is either named (`availability_zone`) or picked by position
//! (`az_index`: the Nth zone the region reports, wrapping), so one template
//! works in every region. Only `map_public_ip_on_launch` and tags change in
//! place; EC2 cannot move a subnet or resize it.

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType, Tag};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::{Aws, create_call_config};
use crate::create::{Made, create_once};
use crate::ec2::{self, Ec2Kind, UserTags};
use crate::error::{is_not_found, sdk};
use crate::tags;

pub struct Subnet;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubnetSpec {
    /// the VPC (vpc-…)
    #[schemars(extend("force_new" = true))]
    pub vpc_id: String,
    /// the IPv4 range, inside the VPC's, e.g. 10.0.1.0/24
    #[schemars(extend("force_new" = true, "format" = "ipv4-cidr", "inside" = "vpc_id.cidr_block"))]
    pub cidr_block: String,
    /// the zone, e.g. eu-west-1a (or use az_index)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true, "format" = "aws-zone", "zone" = "named"))]
    pub availability_zone: Option<String>,
    /// the Nth availability zone of the region (0, 1, 2 …, wrapping), instead of naming it
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true, "format" = "non-negative", "zone" = "index"))]
    pub az_index: Option<i64>,
    /// give instances launched here a public IPv4 address
    #[serde(default)]
    pub map_public_ip_on_launch: bool,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SubnetOutputs {
    /// the subnet id (subnet-…)
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the zone the subnet is in (named, or picked by `az_index`); an update never moves a subnet
    #[schemars(extend("stable" = true))]
    pub availability_zone: String,
}

async fn set_public_ip(aws: &Aws, id: &str, on: bool) -> Result<(), (bool, ProviderError)> {
    aws.ec2
        .modify_subnet_attribute()
        .subnet_id(id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| (is_not_found(&e), sdk("ModifySubnetAttribute", e)))
}

#[async_trait]
impl Ec2Kind for Subnet {
    type Object = aws_sdk_ec2::types::Subnet;
    const ID_FILTER: &'static str = "subnet-id";

    async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Self::Object>, ProviderError> {
        let pages =
            super::all_pages("DescribeSubnets", aws.ec2.describe_subnets().set_filters(Some(filters)).into_paginator().send()).await?;
        Ok(pages.into_iter().flat_map(|p| p.subnets.unwrap_or_default()).collect())
    }
    fn id(s: &Self::Object) -> &str {
        s.subnet_id().unwrap_or_default()
    }
    fn tags(s: &Self::Object) -> &[Tag] {
        s.tags()
    }
    fn id_of(outputs: &SubnetOutputs) -> &str {
        &outputs.id
    }
    fn observe(s: &Self::Object, prior: Option<&SubnetSpec>) -> Observed<Self> {
        let zone = s.availability_zone().unwrap_or_default().to_string();
        // The zone is compared only where the definition names it (with `az_index` it is an
        // output); the index itself cannot be read back.
        let spec = SubnetSpec {
            vpc_id: s.vpc_id().unwrap_or_default().to_string(),
            cidr_block: s.cidr_block().unwrap_or_default().to_string(),
            availability_zone: Some(zone.clone()),
            az_index: prior.and_then(|p| p.az_index),
            map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
            tags: ec2::user_tags(s.tags()),
        };
        Observed { spec, outputs: SubnetOutputs { id: Self::id(s).to_string(), availability_zone: zone } }
    }
}

#[async_trait]
impl Kind for Subnet {
    const TYPE: &'static str = "aws.subnet";
    const DESCRIPTION: &'static str = "A subnet of a VPC in one availability zone";
    type Client = Aws;
    type Spec = SubnetSpec;
    type Outputs = SubnetOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        ec2::read(aws, items).await
    }

    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        ec2::import(aws, id).await
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        ec2::find(aws, req.spec, req.ownership).await
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        ec2::list_owned(aws).await
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<SubnetOutputs, ProviderError> {
        let spec = req.spec;
        let (name, index) = (spec.availability_zone.as_deref(), spec.az_index);
        if name.is_some() && index.is_some() {
            return Err(ProviderError::permanent("set either `availability_zone` or `az_index`, not both"));
        }
        // Without either, EC2 picks a zone (and no DescribeAvailabilityZones is spent).
        let zone = if name.is_some() || index.is_some() { Some(aws.zone(name, index).await?) } else { None };
        let tags = tags::all_tags_typed(req.ownership, spec.tags.as_ref());
        // CreateSubnet has no ClientToken; an interrupted create is adopted by its tags instead.
        // The VPC may have been created a moment ago and not be visible yet.
        let call = || {
            aws.ec2
                .create_subnet()
                .vpc_id(&spec.vpc_id)
                .cidr_block(&spec.cidr_block)
                .set_availability_zone(zone.clone())
                .tag_specifications(tags::spec(ResourceType::Subnet, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        };
        let find = || ec2::find::<Subnet>(aws, spec, req.ownership);
        let made = match create_once("CreateSubnet", call, find).await? {
            Made::Answered(o) => SubnetOutputs {
                id: o.subnet().and_then(|s| s.subnet_id()).unwrap_or_default().to_string(),
                availability_zone: o.subnet().and_then(|s| s.availability_zone()).unwrap_or_default().to_string(),
            },
            Made::Found(found) => found.outputs,
        };
        if made.id.is_empty() {
            return Err(ProviderError::permanent("CreateSubnet returned no id"));
        }
        if spec.map_public_ip_on_launch {
            // The subnet exists now: a failure here must not leak it.
            crate::wait::consistent(|| set_public_ip(aws, &made.id, true))
                .await
                .map_err(|e| e.with_created(phoenix_core::kit::output_attrs(&made)))?;
        }
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<SubnetOutputs, ProviderError> {
        let id = &req.outputs.id;
        if req.changed("map_public_ip_on_launch") {
            set_public_ip(aws, id, req.spec.map_public_ip_on_launch).await.map_err(|(_, e)| e)?;
        }
        ec2::update_tags(aws, id, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        Ok(req.outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let id = req.outputs.id.clone();
        // Instances being terminated keep network interfaces here for a while: DependencyViolation is retried.
        super::delete_retrying(aws, "DeleteSubnet", || {
            let call = aws.ec2.delete_subnet().subnet_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
