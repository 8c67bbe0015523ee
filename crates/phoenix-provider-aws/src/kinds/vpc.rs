//! `aws.vpc`: a virtual network.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::{Kind, create_once, delete_retrying, id_attr, id_chunks, id_of, in_item_order, priors, req_str, tags_attr, update_tags};
use crate::client::{Aws, create_call_config};
use crate::error::sdk;
use crate::tags;

pub struct Vpc;

fn observed(v: &aws_sdk_ec2::types::Vpc, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    if let Some(c) = v.cidr_block() {
        inputs.insert("cidr_block".into(), json!(c));
    }
    tags::observe_tags(&mut inputs, prior, v.tags());
    let mut outputs = Attrs::new();
    outputs.insert("id".into(), json!(v.vpc_id().unwrap_or_default()));
    Observed { inputs, outputs }
}

async fn set_dns_hostnames(aws: &Aws, id: &str, on: bool) -> Result<(), ProviderError> {
    aws.ec2
        .modify_vpc_attribute()
        .vpc_id(id)
        .enable_dns_hostnames(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .map_err(|e| sdk("ModifyVpcAttribute", e))?;
    Ok(())
}

#[async_trait]
impl Kind for Vpc {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.vpc",
            description: "A virtual private cloud",
            attrs: vec![
                AttrSchema::required("cidr_block", AttrType::String, "the IPv4 range, e.g. 10.0.0.0/16")
                    .force_new()
                    .validate_with(validators::ipv4_cidr),
                AttrSchema::optional("enable_dns_hostnames", AttrType::Bool, "give instances DNS names").default(json!(true)),
                tags_attr(),
                id_attr("the VPC id (vpc-…)"),
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
            let out = aws.ec2.describe_vpcs().filters(tags::id_filter("vpc-id", &ids)).send().await.map_err(|e| sdk("DescribeVpcs", e))?;
            for v in out.vpcs() {
                let id = v.vpc_id().unwrap_or_default().to_string();
                let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
                found.insert(id, observed(v, &p));
            }
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        let out = aws.ec2.describe_vpcs().filters(super::owned_filter()).send().await.map_err(|e| sdk("DescribeVpcs", e))?;
        Ok(Some(out.vpcs().iter().filter_map(|o| super::owned(self, o.tags(), observed(o, &Attrs::new()))).collect()))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let out = aws
            .ec2
            .describe_vpcs()
            .set_filters(Some(tags::owner_filters(&req.ownership)))
            .send()
            .await
            .map_err(|e| sdk("DescribeVpcs", e))?;
        Ok(out.vpcs().first().map(|v| observed(v, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let cidr = req_str(&req.inputs, "cidr_block")?;
        let tags = tags::all_tags(&req.ownership, req.inputs.get("tags"));
        // No ClientToken on CreateVpc: a lost answer is found by its tags (`create_once`).
        let made = create_once(aws, self, req, "CreateVpc", || {
            aws.ec2
                .create_vpc()
                .cidr_block(cidr)
                .tag_specifications(tags::spec(ResourceType::Vpc, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        })
        .await?;
        let id = made.id(|o| o.vpc().and_then(|v| v.vpc_id()), "CreateVpc")?;
        let made: Attrs = [("id".to_string(), json!(id))].into_iter().collect();
        if req.inputs.get("enable_dns_hostnames").and_then(Value::as_bool).unwrap_or(true) {
            // The VPC exists now: a failure here must not leak it.
            crate::wait::consistent(|| async { set_dns_hostnames(aws, &id, true).await.map_err(|e| (e.is_not_found(), e)) })
                .await
                .map_err(|e| e.with_created(made.clone()))?;
        }
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = id_of(&req.prior_outputs)?;
        if req.changed.iter().any(|c| c == "enable_dns_hostnames") {
            set_dns_hostnames(aws, id, req.inputs.get("enable_dns_hostnames").and_then(Value::as_bool).unwrap_or(true)).await?;
        }
        update_tags(aws, id, req).await?;
        Ok(req.prior_outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?.to_string();
        delete_retrying(aws, "DeleteVpc", || {
            let call = aws.ec2.delete_vpc().vpc_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
