//! `aws.internet_gateway`: a gateway to the internet, attached to one VPC.
//!
//! Attaching is part of creating (a gateway without a VPC serves nothing), so
//! a different `vpc_id` replaces the gateway. Delete detaches from whatever
//! VPC it is really attached to (read first, not taken from state), then deletes.

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::{Aws, create_call_config};
use crate::create::{Made, create_once};
use crate::ec2::{self, Ec2Kind, UserTags};
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct InternetGateway;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = phoenix_core::kit::schema::required(&["vpc_id"]))]
pub struct InternetGatewaySpec {
    /// the VPC to attach to (vpc-…)
    // Detached behind Phoenix's back reads as empty, left out, so the drift
    // shows as `null` and the plan repairs it (state then holds it as null:
    // the default lets that state be replaced and deleted).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(extend("force_new" = true))]
    pub vpc_id: String,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct InternetGatewayOutputs {
    /// the internet gateway id (igw-…)
    #[schemars(extend("stable" = true))]
    pub id: String,
}

fn attached_vpcs(g: &aws_sdk_ec2::types::InternetGateway) -> Vec<String> {
    g.attachments().iter().filter_map(|a| a.vpc_id().map(str::to_string)).collect()
}

#[async_trait]
impl Ec2Kind for InternetGateway {
    type Object = aws_sdk_ec2::types::InternetGateway;
    const ID_FILTER: &'static str = "internet-gateway-id";

    async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Self::Object>, ProviderError> {
        let pages = super::all_pages(
            "DescribeInternetGateways",
            aws.ec2.describe_internet_gateways().set_filters(Some(filters)).into_paginator().send(),
        )
        .await?;
        Ok(pages.into_iter().flat_map(|p| p.internet_gateways.unwrap_or_default()).collect())
    }
    fn id(g: &Self::Object) -> &str {
        g.internet_gateway_id().unwrap_or_default()
    }
    fn tags(g: &Self::Object) -> &[Tag] {
        g.tags()
    }
    fn id_of(outputs: &InternetGatewayOutputs) -> &str {
        &outputs.id
    }
    fn observe(g: &Self::Object, _prior: Option<&InternetGatewaySpec>) -> Observed<Self> {
        let spec = InternetGatewaySpec { vpc_id: attached_vpcs(g).into_iter().next().unwrap_or_default(), tags: ec2::user_tags(g.tags()) };
        Observed { spec, outputs: InternetGatewayOutputs { id: Self::id(g).to_string() } }
    }
}

#[async_trait]
impl Kind for InternetGateway {
    const TYPE: &'static str = "aws.internet_gateway";
    const DESCRIPTION: &'static str = "An internet gateway attached to a VPC";
    type Client = Aws;
    type Spec = InternetGatewaySpec;
    type Outputs = InternetGatewayOutputs;

    /// Tags only change in place: everything else forces a new gateway.
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

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<InternetGatewayOutputs, ProviderError> {
        let tags = tags::all_tags_typed(req.ownership, req.spec.tags.as_ref());
        // No ClientToken on CreateInternetGateway: an interrupted create is adopted by its tags.
        let call = || {
            aws.ec2
                .create_internet_gateway()
                .tag_specifications(tags::spec(ResourceType::InternetGateway, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        };
        let find = || ec2::find::<InternetGateway>(aws, req.spec, req.ownership);
        let made = match create_once("CreateInternetGateway", call, find).await? {
            Made::Answered(o) => {
                InternetGatewayOutputs { id: o.internet_gateway().and_then(|g| g.internet_gateway_id()).unwrap_or_default().to_string() }
            }
            Made::Found(found) => found.outputs,
        };
        if made.id.is_empty() {
            return Err(ProviderError::permanent("CreateInternetGateway returned no id"));
        }
        let (id, vpc) = (&made.id, &req.spec.vpc_id);
        // The gateway exists now: a failed attach must not leak it. Either side
        // may be too new to be visible yet (NotFound is retried for a while).
        crate::wait::consistent(|| async {
            match aws.ec2.attach_internet_gateway().internet_gateway_id(id).vpc_id(vpc).send().await {
                Ok(_) => Ok(()),
                // A retried attach whose first response was lost.
                Err(e) if code(&e) == Some("Resource.AlreadyAssociated") => Ok(()),
                Err(e) => Err((is_not_found(&e), sdk("AttachInternetGateway", e))),
            }
        })
        .await
        .map_err(|e| e.with_created(phoenix_core::kit::output_attrs(&made)))?;
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<InternetGatewayOutputs, ProviderError> {
        ec2::update_tags(aws, &req.outputs.id, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        Ok(req.outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let id = req.outputs.id.clone();
        let Some(g) = ec2::describe_one::<Self>(aws, &id).await? else { return Ok(()) };
        for vpc in attached_vpcs(&g) {
            // AWS refuses to detach while the VPC still has mapped public addresses
            // (instances and EIPs going away): DependencyViolation, retried.
            super::delete_retrying(aws, "DetachInternetGateway", || {
                let call = aws.ec2.detach_internet_gateway().internet_gateway_id(&id).vpc_id(&vpc);
                async move {
                    match call.send().await {
                        Err(e) if code(&e) == Some("Gateway.NotAttached") => Ok(()),
                        r => r.map(|_| ()),
                    }
                }
            })
            .await?;
        }
        super::delete_retrying(aws, "DeleteInternetGateway", || {
            let call = aws.ec2.delete_internet_gateway().internet_gateway_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
