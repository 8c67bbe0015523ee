//! `aws.db_parameter_group`: engine settings for RDS instances
//! (`max_connections`, `slow_query_log` …).
//!
//! Parameters change in place (ModifyDBParameterGroup; removed ones are reset
//! to the engine default); name, family and description replace it. Changes
//! apply at the instances' next reboot (`pending-reboot`), which works for
//! static and dynamic parameters alike.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_rds::types::{ApplyMethod, DbParameterGroup as RdsDbParameterGroup, Parameter};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::db_subnet_group::{rds_tags, retag, tags_of};
use super::{Kind, id_attr, id_of, in_item_order, opt_str, priors, req_str, tags_attr};
use crate::client::Aws;
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct DbParameterGroup;

fn params(inputs: &Attrs) -> Vec<(String, String)> {
    inputs
        .get("parameters")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect())
        .unwrap_or_default()
}

fn outputs(g: &RdsDbParameterGroup) -> Attrs {
    let mut o = Attrs::new();
    o.insert("id".into(), json!(g.db_parameter_group_name().unwrap_or_default()));
    o.insert("arn".into(), json!(g.db_parameter_group_arn().unwrap_or_default()));
    o
}

/// The parameters set on the group (Source=user), over all pages.
async fn user_params(aws: &Aws, name: &str) -> Result<serde_json::Map<String, Value>, ProviderError> {
    let pages = aws.rds.describe_db_parameters().db_parameter_group_name(name).source("user").into_paginator().send();
    let mut m = serde_json::Map::new();
    for page in super::all_pages("DescribeDBParameters", pages).await? {
        for p in page.parameters() {
            if let (Some(k), Some(v)) = (p.parameter_name(), p.parameter_value()) {
                m.insert(k.to_string(), json!(v));
            }
        }
    }
    Ok(m)
}

async fn observed(aws: &Aws, g: &RdsDbParameterGroup, prior: &Attrs) -> Result<Observed, ProviderError> {
    let name = g.db_parameter_group_name().unwrap_or_default();
    let mut inputs = Attrs::new();
    inputs.insert("name".into(), json!(name));
    inputs.insert("family".into(), json!(g.db_parameter_group_family().unwrap_or_default()));
    inputs.insert("description".into(), json!(g.description().unwrap_or_default()));
    // One call per group (RDS has no batch form): only when the definition sets parameters.
    if prior.contains_key("parameters") {
        inputs.insert("parameters".into(), Value::Object(user_params(aws, name).await?));
    }
    if prior.contains_key("tags") {
        tags::observe_pairs(&mut inputs, prior, &tags_of(aws, g.db_parameter_group_arn().unwrap_or_default()).await?);
    }
    Ok(Observed { inputs, outputs: outputs(g) })
}

async fn one(aws: &Aws, name: &str) -> Result<Option<RdsDbParameterGroup>, ProviderError> {
    match aws.rds.describe_db_parameter_groups().db_parameter_group_name(name).send().await {
        Ok(out) => Ok(out.db_parameter_groups().first().cloned()),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(sdk("DescribeDBParameterGroups", e)),
    }
}

async fn set(aws: &Aws, name: &str, values: Vec<(String, String)>) -> Result<(), ProviderError> {
    // ModifyDBParameterGroup takes at most 20 parameters per call.
    for chunk in values.chunks(20) {
        let ps: Vec<Parameter> = chunk
            .iter()
            .map(|(k, v)| Parameter::builder().parameter_name(k).parameter_value(v).apply_method(ApplyMethod::PendingReboot).build())
            .collect();
        aws.rds
            .modify_db_parameter_group()
            .db_parameter_group_name(name)
            .set_parameters(Some(ps))
            .send()
            .await
            .map_err(|e| sdk("ModifyDBParameterGroup", e))?;
    }
    Ok(())
}

#[async_trait]
impl Kind for DbParameterGroup {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.db_parameter_group",
            description: "An RDS DB parameter group",
            attrs: vec![
                AttrSchema::required("name", AttrType::String, "unique in the region (lower case)")
                    .force_new()
                    .format("aws-db-parameter-group-name"),
                AttrSchema::required("family", AttrType::String, "the engine family, e.g. mysql8.0, postgres16").force_new(),
                AttrSchema::optional("description", AttrType::String, "what it is for").default(json!("Managed by Phoenix")).force_new(),
                AttrSchema::optional("parameters", AttrType::Map(Box::new(AttrType::String)), "name = value (in place; applied at reboot)"),
                tags_attr(),
                id_attr("the group's name"),
                AttrSchema::computed("arn", AttrType::String, "the group's ARN").stable(),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        // One listing for the batch: DescribeDBParameterGroups takes one name or none.
        let pages = aws.rds.describe_db_parameter_groups().into_paginator().send();
        let mut found = HashMap::new();
        for page in super::all_pages("DescribeDBParameterGroups", pages).await? {
            for g in page.db_parameter_groups() {
                let name = g.db_parameter_group_name().unwrap_or_default().to_string();
                if let Some(p) = prior.get(name.as_str()) {
                    found.insert(name, observed(aws, g, p).await?);
                }
            }
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        let pages = aws.rds.describe_db_parameter_groups().into_paginator().send();
        let mut found = Vec::new();
        for page in super::all_pages("DescribeDBParameterGroups", pages).await? {
            // RDS's own `default.*` groups are never Phoenix's: skip their tag calls.
            for g in page.db_parameter_groups().iter().filter(|g| !g.db_parameter_group_name().unwrap_or_default().starts_with("default."))
            {
                let tag_pairs = tags_of(aws, g.db_parameter_group_arn().unwrap_or_default()).await?;
                found.extend(super::owned_pairs(self, &tag_pairs, observed(aws, g, &Attrs::new()).await?));
            }
        }
        Ok(Some(found))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let Some(g) = one(aws, req_str(&req.inputs, "name")?).await? else { return Ok(None) };
        if !tags::owned_by(&tags_of(aws, g.db_parameter_group_arn().unwrap_or_default()).await?, &req.ownership) {
            return Ok(None);
        }
        Ok(Some(observed(aws, &g, &req.inputs).await?))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let name = req_str(&req.inputs, "name")?;
        let out = {
            aws.rds
                .create_db_parameter_group()
                .db_parameter_group_name(name)
                .db_parameter_group_family(req_str(&req.inputs, "family")?)
                .description(opt_str(&req.inputs, "description").unwrap_or("Managed by Phoenix"))
                .set_tags(Some(rds_tags(&req.ownership, req.inputs.get("tags"))))
                .send()
                .await
                .map_err(|e| sdk("CreateDBParameterGroup", e))?
        };
        let g = out.db_parameter_group().ok_or_else(|| ProviderError::permanent("CreateDBParameterGroup returned no group"))?;
        let made = outputs(g);
        set(aws, name, params(&req.inputs)).await.map_err(|e| e.with_created(made.clone()))?;
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let name = id_of(&req.prior_outputs)?;
        if req.changed.iter().any(|c| c == "parameters") {
            let now = params(&req.inputs);
            let removed: Vec<String> =
                params(&req.prior_inputs).into_iter().map(|(k, _)| k).filter(|k| !now.iter().any(|(n, _)| n == k)).collect();
            if !removed.is_empty() {
                let ps: Vec<Parameter> = removed
                    .iter()
                    .map(|k| Parameter::builder().parameter_name(k).apply_method(ApplyMethod::PendingReboot).build())
                    .collect();
                aws.rds
                    .reset_db_parameter_group()
                    .db_parameter_group_name(name)
                    .set_parameters(Some(ps))
                    .send()
                    .await
                    .map_err(|e| sdk("ResetDBParameterGroup", e))?;
            }
            set(aws, name, now).await?;
        }
        retag(aws, req_str(&req.prior_outputs, "arn")?, req).await?;
        Ok(req.prior_outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let name = id_of(&req.outputs)?;
        // In use while an instance still refers to it (InvalidDBParameterGroupState).
        crate::wait::until(&format!("DB parameter group {name} to be deletable"), aws.wait_timeout, || async move {
            match aws.rds.delete_db_parameter_group().db_parameter_group_name(name).send().await {
                Ok(_) => Ok(Some(())),
                Err(e) if is_not_found(&e) => Ok(Some(())),
                Err(e) if code(&e) == Some("InvalidDBParameterGroupState") => Ok(None),
                Err(e) => Err(sdk("DeleteDBParameterGroup", e)),
            }
        })
        .await
    }
}
