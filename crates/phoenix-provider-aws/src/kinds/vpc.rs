//! `aws.vpc`: a virtual network. The worked example of an EC2 kind on the
//! provider kit (see `crates/README.md`): typed inputs and outputs, reads
//! from the EC2 sub-template, and only what is VPC-specific written here.

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType, Tag};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::{Aws, create_call_config};
use crate::create::{Made, create_once};
use crate::ec2::{self, Ec2Kind, UserTags};
use crate::error::sdk;
use crate::tags;

pub struct Vpc;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VpcSpec {
    /// the IPv4 range, e.g. 10.0.0.0/16
    #[schemars(extend("force_new" = true, "format" = "ipv4-cidr"))]
    pub cidr_block: String,
    /// give instances DNS names
    #[serde(default = "yes")]
    pub enable_dns_hostnames: bool,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct VpcOutputs {
    /// the VPC id (vpc-…)
    #[schemars(extend("stable" = true))]
    pub id: String,
}

fn yes() -> bool {
    true
}

async fn set_dns_hostnames(aws: &Aws, id: &str, on: bool) -> Result<(), (bool, ProviderError)> {
    aws.ec2
        .modify_vpc_attribute()
        .vpc_id(id)
        .enable_dns_hostnames(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| (crate::error::is_not_found(&e), sdk("ModifyVpcAttribute", e)))
}

#[async_trait]
impl Ec2Kind for Vpc {
    type Object = aws_sdk_ec2::types::Vpc;
    const ID_FILTER: &'static str = "vpc-id";

    async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Self::Object>, ProviderError> {
        let out = aws.ec2.describe_vpcs().set_filters(Some(filters)).send().await.map_err(|e| sdk("DescribeVpcs", e))?;
        Ok(out.vpcs.unwrap_or_default())
    }
    fn id(v: &Self::Object) -> &str {
        v.vpc_id().unwrap_or_default()
    }
    fn tags(v: &Self::Object) -> &[Tag] {
        v.tags()
    }
    fn id_of(outputs: &VpcOutputs) -> &str {
        &outputs.id
    }
    fn observe(v: &Self::Object, prior: Option<&VpcSpec>) -> Observed<Self> {
        // DescribeVpcs does not say whether DNS hostnames are on (a second call per VPC would): kept as applied.
        let spec = VpcSpec {
            cidr_block: v.cidr_block().unwrap_or_default().to_string(),
            enable_dns_hostnames: prior.is_none_or(|p| p.enable_dns_hostnames),
            tags: ec2::user_tags(v.tags()),
        };
        Observed { spec, outputs: VpcOutputs { id: Self::id(v).to_string() } }
    }
}

#[async_trait]
impl Kind for Vpc {
    const TYPE: &'static str = "aws.vpc";
    const DESCRIPTION: &'static str = "A virtual private cloud";
    type Client = Aws;
    type Spec = VpcSpec;
    type Outputs = VpcOutputs;

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

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<VpcOutputs, ProviderError> {
        let tags = tags::all_tags_typed(req.ownership, req.spec.tags.as_ref());
        // No ClientToken on CreateVpc: a lost answer is found by its tags.
        let call = || {
            aws.ec2
                .create_vpc()
                .cidr_block(&req.spec.cidr_block)
                .tag_specifications(tags::spec(ResourceType::Vpc, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        };
        let find = || ec2::find::<Vpc>(aws, req.spec, req.ownership);
        let made = match create_once("CreateVpc", call, find).await? {
            Made::Answered(o) => VpcOutputs { id: o.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_string() },
            Made::Found(found) => found.outputs,
        };
        if made.id.is_empty() {
            return Err(ProviderError::unexpected("CreateVpc returned no id"));
        }
        if req.spec.enable_dns_hostnames {
            // The VPC exists now: a failure here must not leak it.
            crate::wait::consistent(|| set_dns_hostnames(aws, &made.id, true))
                .await
                .map_err(|e| e.with_created(phoenix_core::kit::output_attrs(&made)))?;
        }
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<VpcOutputs, ProviderError> {
        let id = &req.outputs.id;
        if req.changed("enable_dns_hostnames") {
            set_dns_hostnames(aws, id, req.spec.enable_dns_hostnames).await.map_err(|(_, e)| e)?;
        }
        ec2::update_tags(aws, id, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        Ok(req.outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let id = req.outputs.id.clone();
        super::delete_retrying(aws, "DeleteVpc", || {
            let call = aws.ec2.delete_vpc().vpc_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
