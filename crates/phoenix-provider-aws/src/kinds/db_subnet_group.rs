//! `aws.db_subnet_group`: the subnets (in at least two zones) an RDS instance
//! may be placed in. Its subnets and description change in place
//! (ModifyDBSubnetGroup); the name replaces it.

use async_trait::async_trait;
use aws_sdk_rds::types::DbSubnetGroup as RdsDbSubnetGroup;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::Aws;
use crate::ec2::UserTags;
use crate::error::{is_not_found, sdk};
use crate::rds::{self, RdsGroup};

pub struct DbSubnetGroup;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbSubnetGroupSpec {
    /// unique in the region (lower case)
    #[schemars(extend("force_new" = true, "format" = "aws-db-subnet-group-name"))]
    pub name: String,
    /// what it is for
    #[serde(default = "managed")]
    pub description: String,
    /// subnets in at least two zones (in place)
    #[schemars(extend("spread_over_zones" = 2))]
    pub subnet_ids: Vec<String>,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DbSubnetGroupOutputs {
    /// the group's name
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the group's ARN
    #[schemars(extend("stable" = true))]
    pub arn: String,
    /// the VPC of its subnets
    #[schemars(extend("stable" = true))]
    pub vpc_id: String,
}

pub(crate) fn managed() -> String {
    "Managed by Phoenix".into()
}

fn outputs(g: &RdsDbSubnetGroup) -> DbSubnetGroupOutputs {
    DbSubnetGroupOutputs {
        id: g.db_subnet_group_name().unwrap_or_default().to_string(),
        arn: g.db_subnet_group_arn().unwrap_or_default().to_string(),
        vpc_id: g.vpc_id().unwrap_or_default().to_string(),
    }
}

#[async_trait]
impl RdsGroup for DbSubnetGroup {
    type Object = RdsDbSubnetGroup;
    const OBJECT: &'static str = "DB subnet group";

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
    fn name(g: &RdsDbSubnetGroup) -> &str {
        g.db_subnet_group_name().unwrap_or_default()
    }
    fn arn(g: &RdsDbSubnetGroup) -> &str {
        g.db_subnet_group_arn().unwrap_or_default()
    }
    fn id_of(outputs: &DbSubnetGroupOutputs) -> &str {
        &outputs.id
    }
    fn name_of(spec: &DbSubnetGroupSpec) -> &str {
        &spec.name
    }
    fn manages_tags(spec: &DbSubnetGroupSpec) -> bool {
        spec.tags.is_some()
    }
    async fn observe(
        _aws: &Aws,
        g: &RdsDbSubnetGroup,
        prior: Option<&DbSubnetGroupSpec>,
        tags: Option<&[(String, String)]>,
        _full: bool,
    ) -> Result<Observed<Self>, ProviderError> {
        let subnets = g.subnets().iter().filter_map(|s| s.subnet_identifier().map(str::to_string)).collect();
        let spec = DbSubnetGroupSpec {
            name: Self::name(g).to_string(),
            description: g.db_subnet_group_description().unwrap_or_default().to_string(),
            subnet_ids: rds::same_set(prior.map(|p| p.subnet_ids.as_slice()), subnets),
            tags: tags.map_or_else(|| prior.and_then(|p| p.tags.clone()), rds::user_tags),
        };
        Ok(Observed { spec, outputs: outputs(g) })
    }
}

#[async_trait]
impl Kind for DbSubnetGroup {
    const TYPE: &'static str = "aws.db_subnet_group";
    const DESCRIPTION: &'static str = "An RDS DB subnet group";
    type Client = Aws;
    type Spec = DbSubnetGroupSpec;
    type Outputs = DbSubnetGroupOutputs;

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

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<DbSubnetGroupOutputs, ProviderError> {
        let out = aws
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(&req.spec.name)
            .db_subnet_group_description(&req.spec.description)
            .set_subnet_ids(Some(req.spec.subnet_ids.clone()))
            .set_tags(Some(rds::rds_tags(req.ownership, req.spec.tags.as_ref())))
            .send()
            .await
            .map_err(|e| sdk("CreateDBSubnetGroup", e))?;
        Ok(outputs(out.db_subnet_group().ok_or_else(|| ProviderError::permanent("CreateDBSubnetGroup returned no group"))?))
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<DbSubnetGroupOutputs, ProviderError> {
        let name = &req.outputs.id;
        let g = if req.changed("subnet_ids") || req.changed("description") {
            aws.rds
                .modify_db_subnet_group()
                .db_subnet_group_name(name)
                .db_subnet_group_description(&req.spec.description)
                .set_subnet_ids(Some(req.spec.subnet_ids.clone()))
                .send()
                .await
                .map_err(|e| sdk("ModifyDBSubnetGroup", e))?
                .db_subnet_group()
                .cloned()
        } else {
            Self::one(aws, name).await?
        };
        let g = g.ok_or_else(|| ProviderError::permanent(format!("DB subnet group {name} no longer exists")))?;
        rds::retag(aws, Self::arn(&g), req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        Ok(outputs(&g))
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let name = &req.outputs.id;
        // In use until the instances in it are deleted.
        rds::delete_group::<Self, _, _, _, _>(aws, name, "DeleteDBSubnetGroup", "InvalidDBSubnetGroupStateFault", || {
            let call = aws.rds.delete_db_subnet_group().db_subnet_group_name(name);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
