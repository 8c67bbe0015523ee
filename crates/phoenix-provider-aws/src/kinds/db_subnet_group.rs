//! `aws.db_subnet_group`: the subnets (in at least two zones) an RDS instance
//! may be placed in. Its subnets and description change in place
//! (ModifyDBSubnetGroup); the name replaces it. The RDS tag helpers shared by
//! the `aws.db_*` types live here.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_rds::types::{DbSubnetGroup as RdsDbSubnetGroup, Tag};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::state::Ownership;
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::lb::same_set;
use super::{Kind, id_attr, id_of, in_item_order, opt_str, priors, req_str, str_list, tags_attr};
use crate::client::Aws;
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct DbSubnetGroup;

pub(crate) fn rds_tags(o: &Ownership, user: Option<&Value>) -> Vec<Tag> {
    tags::pairs(o, user).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

pub(crate) fn pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect()
}

/// Tags of one RDS resource (groups do not carry them in their descriptions).
pub(crate) async fn tags_of(aws: &Aws, arn: &str) -> Result<Vec<(String, String)>, ProviderError> {
    match aws.rds.list_tags_for_resource().resource_name(arn).send().await {
        Ok(out) => Ok(pairs(out.tag_list())),
        Err(e) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(sdk("ListTagsForResource", e)),
    }
}

/// Rewrites an RDS resource's tags after a change of `tags` (and restores the ownership tags).
pub(crate) async fn retag(aws: &Aws, arn: &str, req: &UpdateRequest) -> Result<(), ProviderError> {
    let removed = tags::removed_keys(&req.prior_inputs, &req.inputs);
    if !removed.is_empty() {
        aws.rds
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(|e| sdk("RemoveTagsFromResource", e))?;
    }
    aws.rds
        .add_tags_to_resource()
        .resource_name(arn)
        .set_tags(Some(rds_tags(&req.ownership, req.inputs.get("tags"))))
        .send()
        .await
        .map_err(|e| sdk("AddTagsToResource", e))?;
    Ok(())
}

fn outputs(g: &RdsDbSubnetGroup) -> Attrs {
    let mut o = Attrs::new();
    o.insert("id".into(), json!(g.db_subnet_group_name().unwrap_or_default()));
    o.insert("arn".into(), json!(g.db_subnet_group_arn().unwrap_or_default()));
    o.insert("vpc_id".into(), json!(g.vpc_id().unwrap_or_default()));
    o
}

fn observed(g: &RdsDbSubnetGroup, tag_pairs: &[(String, String)], prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    inputs.insert("name".into(), json!(g.db_subnet_group_name().unwrap_or_default()));
    inputs.insert("description".into(), json!(g.db_subnet_group_description().unwrap_or_default()));
    let subnets = g.subnets().iter().filter_map(|s| s.subnet_identifier().map(str::to_string)).collect();
    inputs.insert("subnet_ids".into(), same_set(prior, "subnet_ids", subnets));
    tags::observe_pairs(&mut inputs, prior, tag_pairs);
    Observed { inputs, outputs: outputs(g) }
}

/// Every subnet group of the account and region, over all pages: DescribeDBSubnetGroups
/// takes one name or none, so a batch is one listing rather than N calls.
async fn list(aws: &Aws) -> Result<Vec<RdsDbSubnetGroup>, ProviderError> {
    let pages = aws.rds.describe_db_subnet_groups().into_paginator().send();
    Ok(super::all_pages("DescribeDBSubnetGroups", pages).await?.iter().flat_map(|p| p.db_subnet_groups().to_vec()).collect())
}

async fn one(aws: &Aws, name: &str) -> Result<Option<RdsDbSubnetGroup>, ProviderError> {
    match aws.rds.describe_db_subnet_groups().db_subnet_group_name(name).send().await {
        Ok(out) => Ok(out.db_subnet_groups().first().cloned()),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(sdk("DescribeDBSubnetGroups", e)),
    }
}

#[async_trait]
impl Kind for DbSubnetGroup {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.db_subnet_group",
            description: "An RDS DB subnet group",
            attrs: vec![
                AttrSchema::required("name", AttrType::String, "unique in the region (lower case)")
                    .force_new()
                    .format("aws-db-subnet-group-name"),
                AttrSchema::optional("description", AttrType::String, "what it is for").default(json!("Managed by Phoenix")),
                AttrSchema::required("subnet_ids", AttrType::List(Box::new(AttrType::String)), "subnets in at least two zones (in place)"),
                tags_attr(),
                id_attr("the group's name"),
                AttrSchema::computed("arn", AttrType::String, "the group's ARN").stable(),
                AttrSchema::computed("vpc_id", AttrType::String, "the VPC of its subnets").stable(),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let mut found = HashMap::new();
        for g in list(aws).await? {
            let name = g.db_subnet_group_name().unwrap_or_default().to_string();
            let Some(p) = prior.get(name.as_str()) else { continue };
            // Tags cost a call each: read only when the definition manages them.
            let tag_pairs =
                if p.contains_key("tags") { tags_of(aws, g.db_subnet_group_arn().unwrap_or_default()).await? } else { Vec::new() };
            found.insert(name, observed(&g, &tag_pairs, p));
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        // Groups carry no tags in their descriptions: one ListTagsForResource each.
        let mut found = Vec::new();
        for g in list(aws).await? {
            let tag_pairs = tags_of(aws, g.db_subnet_group_arn().unwrap_or_default()).await?;
            found.extend(super::owned_pairs(self, &tag_pairs, observed(&g, &tag_pairs, &Attrs::new())));
        }
        Ok(Some(found))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let Some(g) = one(aws, req_str(&req.inputs, "name")?).await? else { return Ok(None) };
        let tag_pairs = tags_of(aws, g.db_subnet_group_arn().unwrap_or_default()).await?;
        Ok(tags::owned_by(&tag_pairs, &req.ownership).then(|| observed(&g, &tag_pairs, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let out = aws
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(req_str(&req.inputs, "name")?)
            .db_subnet_group_description(opt_str(&req.inputs, "description").unwrap_or("Managed by Phoenix"))
            .set_subnet_ids(Some(str_list(&req.inputs, "subnet_ids")))
            .set_tags(Some(rds_tags(&req.ownership, req.inputs.get("tags"))))
            .send()
            .await
            .map_err(|e| sdk("CreateDBSubnetGroup", e))?;
        Ok(outputs(out.db_subnet_group().ok_or_else(|| ProviderError::permanent("CreateDBSubnetGroup returned no group"))?))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let name = id_of(&req.prior_outputs)?;
        let g = if req.changed.iter().any(|c| c == "subnet_ids" || c == "description") {
            aws.rds
                .modify_db_subnet_group()
                .db_subnet_group_name(name)
                .set_db_subnet_group_description(opt_str(&req.inputs, "description").map(str::to_string))
                .set_subnet_ids(Some(str_list(&req.inputs, "subnet_ids")))
                .send()
                .await
                .map_err(|e| sdk("ModifyDBSubnetGroup", e))?
                .db_subnet_group()
                .cloned()
        } else {
            one(aws, name).await?
        };
        let g = g.ok_or_else(|| ProviderError::permanent(format!("DB subnet group {name} no longer exists")))?;
        retag(aws, g.db_subnet_group_arn().unwrap_or_default(), req).await?;
        Ok(outputs(&g))
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let name = id_of(&req.outputs)?;
        // In use until the instances in it are deleted (InvalidDBSubnetGroupStateFault).
        crate::wait::until(&format!("DB subnet group {name} to be deletable"), aws.wait_timeout, || async move {
            match aws.rds.delete_db_subnet_group().db_subnet_group_name(name).send().await {
                Ok(_) => Ok(Some(())),
                Err(e) if is_not_found(&e) => Ok(Some(())),
                Err(e) if code(&e) == Some("InvalidDBSubnetGroupStateFault") => Ok(None),
                Err(e) => Err(sdk("DeleteDBSubnetGroup", e)),
            }
        })
        .await
    }
}
