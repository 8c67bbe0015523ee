//! `aws.db_parameter_group`: engine settings for RDS instances
//! (`max_connections`, `slow_query_log` …).
//!
//! Parameters change in place (ModifyDBParameterGroup; removed ones are reset
//! to the engine default); name, family and description replace it. Changes
//! apply at the instances' next reboot (`pending-reboot`), which works for
//! static and dynamic parameters alike.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_rds::types::{ApplyMethod, DbParameterGroup as RdsDbParameterGroup, Parameter};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update, output_attrs};
use phoenix_core::provider::ProviderError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::db_subnet_group::managed;
use crate::client::Aws;
use crate::ec2::UserTags;
use crate::error::{is_not_found, sdk};
use crate::rds::{self, RdsGroup};

pub struct DbParameterGroup;

/// Parameter name = value.
pub type Parameters = BTreeMap<String, String>;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbParameterGroupSpec {
    /// unique in the region (lower case)
    #[schemars(extend("force_new" = true, "format" = "aws-db-parameter-group-name"))]
    pub name: String,
    /// the engine family, e.g. mysql8.0, postgres16
    #[schemars(extend("force_new" = true))]
    pub family: String,
    /// what it is for
    #[serde(default = "managed")]
    #[schemars(extend("force_new" = true))]
    pub description: String,
    /// name = value (in place; applied at reboot)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DbParameterGroupOutputs {
    /// the group's name
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the group's ARN
    #[schemars(extend("stable" = true))]
    pub arn: String,
}

fn outputs(g: &RdsDbParameterGroup) -> DbParameterGroupOutputs {
    DbParameterGroupOutputs {
        id: g.db_parameter_group_name().unwrap_or_default().to_string(),
        arn: g.db_parameter_group_arn().unwrap_or_default().to_string(),
    }
}

/// The parameters set on the group (Source=user), over all pages.
async fn user_params(aws: &Aws, name: &str) -> Result<Parameters, ProviderError> {
    let pages = aws.rds.describe_db_parameters().db_parameter_group_name(name).source("user").into_paginator().send();
    let mut m = Parameters::new();
    for page in super::all_pages("DescribeDBParameters", pages).await? {
        for p in page.parameters() {
            if let (Some(k), Some(v)) = (p.parameter_name(), p.parameter_value()) {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    Ok(m)
}

async fn set(aws: &Aws, name: &str, values: &Parameters) -> Result<(), ProviderError> {
    let values: Vec<(&String, &String)> = values.iter().collect();
    // ModifyDBParameterGroup takes at most 20 parameters per call.
    for chunk in values.chunks(20) {
        let ps: Vec<Parameter> = chunk
            .iter()
            .map(|(k, v)| Parameter::builder().parameter_name(*k).parameter_value(*v).apply_method(ApplyMethod::PendingReboot).build())
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
impl RdsGroup for DbParameterGroup {
    type Object = RdsDbParameterGroup;
    const OBJECT: &'static str = "DB parameter group";

    async fn list(aws: &Aws) -> Result<Vec<RdsDbParameterGroup>, ProviderError> {
        let pages = aws.rds.describe_db_parameter_groups().into_paginator().send();
        Ok(super::all_pages("DescribeDBParameterGroups", pages).await?.iter().flat_map(|p| p.db_parameter_groups().to_vec()).collect())
    }
    async fn one(aws: &Aws, name: &str) -> Result<Option<RdsDbParameterGroup>, ProviderError> {
        match aws.rds.describe_db_parameter_groups().db_parameter_group_name(name).send().await {
            Ok(out) => Ok(out.db_parameter_groups().first().cloned()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(sdk("DescribeDBParameterGroups", e)),
        }
    }
    fn name(g: &RdsDbParameterGroup) -> &str {
        g.db_parameter_group_name().unwrap_or_default()
    }
    fn arn(g: &RdsDbParameterGroup) -> &str {
        g.db_parameter_group_arn().unwrap_or_default()
    }
    fn id_of(outputs: &DbParameterGroupOutputs) -> &str {
        &outputs.id
    }
    fn name_of(spec: &DbParameterGroupSpec) -> &str {
        &spec.name
    }
    fn listed(g: &RdsDbParameterGroup) -> bool {
        // RDS's own `default.*` groups are never Phoenix's: no tag call for them.
        !Self::name(g).starts_with("default.")
    }
    fn manages_tags(spec: &DbParameterGroupSpec) -> bool {
        spec.tags.is_some()
    }
    async fn observe(
        aws: &Aws,
        g: &RdsDbParameterGroup,
        prior: Option<&DbParameterGroupSpec>,
        tags: Option<&[(String, String)]>,
        full: bool,
    ) -> Result<Observed<Self>, ProviderError> {
        let prior_params = prior.and_then(|p| p.parameters.clone());
        // One call per group (RDS has no batch form): only when the definition sets parameters, or on import.
        let parameters = if full || prior_params.is_some() { Some(user_params(aws, Self::name(g)).await?) } else { prior_params };
        let spec = DbParameterGroupSpec {
            name: Self::name(g).to_string(),
            family: g.db_parameter_group_family().unwrap_or_default().to_string(),
            description: g.description().unwrap_or_default().to_string(),
            parameters,
            tags: tags.map_or_else(|| prior.and_then(|p| p.tags.clone()), rds::user_tags),
        };
        Ok(Observed { spec, outputs: outputs(g) })
    }
}

#[async_trait]
impl Kind for DbParameterGroup {
    const TYPE: &'static str = "aws.db_parameter_group";
    const DESCRIPTION: &'static str = "An RDS DB parameter group";
    type Client = Aws;
    type Spec = DbParameterGroupSpec;
    type Outputs = DbParameterGroupOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        rds::read_groups(aws, items).await
    }

    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        rds::import_group(aws, id).await
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        rds::find_group(aws, req.spec, req.ownership).await
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        rds::list_owned_groups(aws).await
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<DbParameterGroupOutputs, ProviderError> {
        let spec = req.spec;
        let out = {
            aws.rds
                .create_db_parameter_group()
                .db_parameter_group_name(&spec.name)
                .db_parameter_group_family(&spec.family)
                .description(&spec.description)
                .set_tags(Some(rds::rds_tags(req.ownership, spec.tags.as_ref())))
                .send()
                .await
                .map_err(|e| sdk("CreateDBParameterGroup", e))?
        };
        let g = out.db_parameter_group().ok_or_else(|| ProviderError::permanent("CreateDBParameterGroup returned no group"))?;
        let made = outputs(g);
        set(aws, &spec.name, &spec.parameters.clone().unwrap_or_default()).await.map_err(|e| e.with_created(output_attrs(&made)))?;
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<DbParameterGroupOutputs, ProviderError> {
        let name = &req.outputs.id;
        if req.changed("parameters") {
            let now = req.spec.parameters.clone().unwrap_or_default();
            let removed: Vec<Parameter> = req
                .prior
                .parameters
                .iter()
                .flat_map(BTreeMap::keys)
                .filter(|k| !now.contains_key(*k))
                .map(|k| Parameter::builder().parameter_name(k).apply_method(ApplyMethod::PendingReboot).build())
                .collect();
            if !removed.is_empty() {
                aws.rds
                    .reset_db_parameter_group()
                    .db_parameter_group_name(name)
                    .set_parameters(Some(removed))
                    .send()
                    .await
                    .map_err(|e| sdk("ResetDBParameterGroup", e))?;
            }
            set(aws, name, &now).await?;
        }
        rds::retag(aws, &req.outputs.arn, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        Ok(req.outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let name = &req.outputs.id;
        // In use while an instance still refers to it.
        rds::delete_group::<Self, _, _, _, _>(aws, name, "DeleteDBParameterGroup", "InvalidDBParameterGroupState", || {
            let call = aws.rds.delete_db_parameter_group().db_parameter_group_name(name);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
