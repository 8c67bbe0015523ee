//! `aws.subnet`: a range of a VPC in one availability zone.
//!
//! The zone is either named (`availability_zone`) or picked by position
//! (`az_index`: the Nth zone the region reports, wrapping), so one template
//! works in every region. Only `map_public_ip_on_launch` and tags change in
//! place; EC2 cannot move a subnet or resize it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::{
    Kind, all_pages, delete_retrying, id_attr, id_chunks, id_of, in_item_order, opt_i64, opt_str, priors, req_str, tags_attr, update_tags,
};
use super::{Made, create_once};
use crate::client::{Aws, create_call_config};
use crate::error::{is_not_found, sdk};
use crate::tags;

pub struct Subnet;

fn observed(s: &aws_sdk_ec2::types::Subnet, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    if let Some(v) = s.vpc_id() {
        inputs.insert("vpc_id".into(), json!(v));
    }
    if let Some(c) = s.cidr_block() {
        inputs.insert("cidr_block".into(), json!(c));
    }
    // Only when the definition names the zone: with `az_index` the zone is an output.
    if prior.contains_key("availability_zone")
        && let Some(z) = s.availability_zone()
    {
        inputs.insert("availability_zone".into(), json!(z));
    }
    inputs.insert("map_public_ip_on_launch".into(), json!(s.map_public_ip_on_launch().unwrap_or(false)));
    tags::observe_tags(&mut inputs, prior, s.tags());
    Observed { inputs, outputs: outputs(s.subnet_id().unwrap_or_default(), s.availability_zone().unwrap_or_default()) }
}

fn outputs(id: &str, zone: &str) -> Attrs {
    [("id".to_string(), json!(id)), ("availability_zone".to_string(), json!(zone))].into_iter().collect()
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
impl Kind for Subnet {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.subnet",
            description: "A subnet of a VPC in one availability zone",
            attrs: vec![
                AttrSchema::required("vpc_id", AttrType::String, "the VPC (vpc-…)").force_new(),
                AttrSchema::required("cidr_block", AttrType::String, "the IPv4 range, inside the VPC's, e.g. 10.0.1.0/24")
                    .force_new()
                    .validate_with(validators::ipv4_cidr),
                // Configurable, and an output when `az_index` picked it; an update never moves a subnet.
                AttrSchema {
                    computed: true,
                    ..AttrSchema::optional("availability_zone", AttrType::String, "the zone, e.g. eu-west-1a (or use az_index)")
                        .force_new()
                        .stable()
                        .format("aws-zone")
                },
                AttrSchema::optional(
                    "az_index",
                    AttrType::Int,
                    "the Nth availability zone of the region (0, 1, 2 …, wrapping), instead of naming it",
                )
                .force_new()
                .validate_with(validators::non_negative),
                AttrSchema::optional("map_public_ip_on_launch", AttrType::Bool, "give instances launched here a public IPv4 address")
                    .default(json!(false)),
                tags_attr(),
                id_attr("the subnet id (subnet-…)"),
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
            let pages = all_pages(
                "DescribeSubnets",
                aws.ec2.describe_subnets().filters(tags::id_filter("subnet-id", &ids)).into_paginator().send(),
            )
            .await?;
            for s in pages.iter().flat_map(|p| p.subnets()) {
                let id = s.subnet_id().unwrap_or_default().to_string();
                let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
                found.insert(id, observed(s, &p));
            }
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        let out = aws.ec2.describe_subnets().filters(super::owned_filter()).send().await.map_err(|e| sdk("DescribeSubnets", e))?;
        Ok(Some(out.subnets().iter().filter_map(|o| super::owned(self, o.tags(), observed(o, &Attrs::new()))).collect()))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let out = aws
            .ec2
            .describe_subnets()
            .set_filters(Some(tags::owner_filters(&req.ownership)))
            .send()
            .await
            .map_err(|e| sdk("DescribeSubnets", e))?;
        Ok(out.subnets().first().map(|s| observed(s, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let vpc = req_str(&req.inputs, "vpc_id")?;
        let cidr = req_str(&req.inputs, "cidr_block")?;
        let (name, index) = (opt_str(&req.inputs, "availability_zone"), opt_i64(&req.inputs, "az_index"));
        if name.is_some() && index.is_some() {
            return Err(ProviderError::permanent("set either `availability_zone` or `az_index`, not both"));
        }
        // Without either, EC2 picks a zone (and no DescribeAvailabilityZones is spent).
        let zone = if name.is_some() || index.is_some() { Some(aws.zone(name, index).await?) } else { None };
        let tags = tags::all_tags(&req.ownership, req.inputs.get("tags"));
        // CreateSubnet has no ClientToken; an interrupted create is adopted by its tags instead.
        // The VPC may have been created a moment ago and not be visible yet.
        let made = create_once(aws, self, req, "CreateSubnet", || {
            aws.ec2
                .create_subnet()
                .vpc_id(vpc)
                .cidr_block(cidr)
                .set_availability_zone(zone.clone())
                .tag_specifications(tags::spec(ResourceType::Subnet, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        })
        .await?;
        let id = made.id(|o| o.subnet().and_then(|s| s.subnet_id()), "CreateSubnet")?;
        let zone = match &made {
            Made::Answered(o) => o.subnet().and_then(|s| s.availability_zone()).map(str::to_string),
            Made::Found(obs) => obs.outputs.get("availability_zone").and_then(Value::as_str).map(str::to_string),
        };
        let made = outputs(&id, &zone.unwrap_or_default());
        if req.inputs.get("map_public_ip_on_launch").and_then(Value::as_bool).unwrap_or(false) {
            // The subnet exists now: a failure here must not leak it.
            crate::wait::consistent(|| set_public_ip(aws, &id, true)).await.map_err(|e| e.with_created(made.clone()))?;
        }
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = id_of(&req.prior_outputs)?;
        if req.changed.iter().any(|c| c == "map_public_ip_on_launch") {
            let on = req.inputs.get("map_public_ip_on_launch").and_then(Value::as_bool).unwrap_or(false);
            set_public_ip(aws, id, on).await.map_err(|(_, e)| e)?;
        }
        update_tags(aws, id, req).await?;
        Ok(req.prior_outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?.to_string();
        // Instances being terminated keep network interfaces here for a while: DependencyViolation is retried.
        delete_retrying(aws, "DeleteSubnet", || {
            let call = aws.ec2.delete_subnet().subnet_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
