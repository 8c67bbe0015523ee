//! `aws.internet_gateway`: a gateway to the internet, attached to one VPC.
//!
//! Attaching is part of creating (a gateway without a VPC serves nothing), so
//! a different `vpc_id` replaces the gateway. Delete detaches from whatever
//! VPC it is really attached to (read first, not taken from state), then deletes.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::create_once;
use super::{Kind, all_pages, delete_retrying, id_attr, id_chunks, id_of, in_item_order, priors, req_str, tags_attr, update_tags};
use crate::client::{Aws, create_call_config};
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct InternetGateway;

fn attached_vpcs(g: &aws_sdk_ec2::types::InternetGateway) -> Vec<String> {
    g.attachments().iter().filter_map(|a| a.vpc_id().map(str::to_string)).collect()
}

fn observed(g: &aws_sdk_ec2::types::InternetGateway, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    // Detached behind Phoenix's back: `null`, so the drift shows and the plan repairs it.
    inputs.insert("vpc_id".into(), attached_vpcs(g).into_iter().next().map_or(Value::Null, Value::String));
    tags::observe_tags(&mut inputs, prior, g.tags());
    let outputs = [("id".to_string(), json!(g.internet_gateway_id().unwrap_or_default()))].into_iter().collect();
    Observed { inputs, outputs }
}

/// The gateway as EC2 has it now, or `None` when it is gone.
async fn describe(aws: &Aws, id: &str) -> Result<Option<aws_sdk_ec2::types::InternetGateway>, ProviderError> {
    let out = aws
        .ec2
        .describe_internet_gateways()
        .filters(tags::id_filter("internet-gateway-id", &[id.to_string()]))
        .send()
        .await
        .map_err(|e| sdk("DescribeInternetGateways", e))?;
    Ok(out.internet_gateways().first().cloned())
}

#[async_trait]
impl Kind for InternetGateway {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.internet_gateway",
            description: "An internet gateway attached to a VPC",
            attrs: vec![
                AttrSchema::required("vpc_id", AttrType::String, "the VPC to attach to (vpc-…)").force_new(),
                tags_attr(),
                id_attr("the internet gateway id (igw-…)"),
            ],
            // Tags only: everything else forces a new gateway.
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let mut found = HashMap::new();
        for ids in id_chunks(items) {
            let pages = all_pages(
                "DescribeInternetGateways",
                aws.ec2.describe_internet_gateways().filters(tags::id_filter("internet-gateway-id", &ids)).into_paginator().send(),
            )
            .await?;
            for g in pages.iter().flat_map(|p| p.internet_gateways()) {
                let id = g.internet_gateway_id().unwrap_or_default().to_string();
                let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
                found.insert(id, observed(g, &p));
            }
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        let out = aws
            .ec2
            .describe_internet_gateways()
            .filters(super::owned_filter())
            .send()
            .await
            .map_err(|e| sdk("DescribeInternetGateways", e))?;
        Ok(Some(out.internet_gateways().iter().filter_map(|o| super::owned(self, o.tags(), observed(o, &Attrs::new()))).collect()))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let out = aws
            .ec2
            .describe_internet_gateways()
            .set_filters(Some(tags::owner_filters(&req.ownership)))
            .send()
            .await
            .map_err(|e| sdk("DescribeInternetGateways", e))?;
        Ok(out.internet_gateways().first().map(|g| observed(g, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let vpc = req_str(&req.inputs, "vpc_id")?;
        let tags = tags::all_tags(&req.ownership, req.inputs.get("tags"));
        // No ClientToken on CreateInternetGateway: an interrupted create is adopted by its tags.
        let made = create_once(aws, self, req, "CreateInternetGateway", || {
            aws.ec2
                .create_internet_gateway()
                .tag_specifications(tags::spec(ResourceType::InternetGateway, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        })
        .await?;
        let id = made.id(|o| o.internet_gateway().and_then(|g| g.internet_gateway_id()), "CreateInternetGateway")?;
        let made: Attrs = [("id".to_string(), json!(id))].into_iter().collect();
        // The gateway exists now: a failed attach must not leak it. Either side
        // may be too new to be visible yet (NotFound is retried for a while).
        crate::wait::consistent(|| async {
            match aws.ec2.attach_internet_gateway().internet_gateway_id(&id).vpc_id(vpc).send().await {
                Ok(_) => Ok(()),
                // A retried attach whose first response was lost.
                Err(e) if code(&e) == Some("Resource.AlreadyAssociated") => Ok(()),
                Err(e) => Err((is_not_found(&e), sdk("AttachInternetGateway", e))),
            }
        })
        .await
        .map_err(|e| e.with_created(made.clone()))?;
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        update_tags(aws, id_of(&req.prior_outputs)?, req).await?;
        Ok(req.prior_outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?.to_string();
        let Some(g) = describe(aws, &id).await? else { return Ok(()) };
        for vpc in attached_vpcs(&g) {
            // AWS refuses to detach while the VPC still has mapped public addresses
            // (instances and EIPs going away): DependencyViolation, retried.
            delete_retrying(aws, "DetachInternetGateway", || {
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
        delete_retrying(aws, "DeleteInternetGateway", || {
            let call = aws.ec2.delete_internet_gateway().internet_gateway_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
