//! `aws.db_cluster`: an Aurora DB cluster (aurora-mysql, aurora-postgresql),
//! new or restored from a cluster snapshot — the disaster-recovery path.
//!
//! The cluster is the storage and the endpoints; its DB instances
//! (`aws.db_instance` with `db_cluster_identifier`) are the compute.
//! Engine version, password, security groups, port, backup retention and
//! deletion protection change in place (ModifyDBCluster, applied immediately
//! unless `apply_immediately = false`); identifier, engine, user, database
//! name, subnet group and the snapshot to restore from replace it. Destroy
//! takes a final snapshot (named by `final_snapshot_identifier`) unless
//! `skip_final_snapshot = true`. The master password is sensitive: sealed in
//! state, never printed, never read back (RDS does not return it).

use async_trait::async_trait;
use aws_sdk_rds::types::{DbCluster as RdsCluster, Filter, Tag};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Secret, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::Aws;
use crate::ec2::UserTags;
use crate::error::{code, is_not_found, sdk};
use crate::rds::{self, Deleting, RdsDb};
use crate::recovery::{self, Target};
use phoenix_core::kit::Snapshot;
use phoenix_core::recovery::SnapshotRef;

pub struct DbCluster;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbClusterSpec {
    /// unique in the region: lower-case letters, digits, hyphens
    #[schemars(extend("force_new" = true, "format" = "aws-rds-identifier"))]
    pub cluster_identifier: String,
    /// aurora-mysql or aurora-postgresql
    #[schemars(extend("force_new" = true))]
    pub engine: String,
    /// e.g. 8.0.mysql_aurora.3.05.2 (in place: upgrades)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// the master user
    #[schemars(extend("force_new" = true))]
    pub master_username: String,
    /// the master password; take it from env(), never write it in a file (in place)
    pub master_password: Secret<String>,
    /// a database to create
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub database_name: Option<String>,
    /// where it is placed (${subnets.id})
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub db_subnet_group_name: Option<String>,
    /// security groups (in place)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_security_group_ids: Option<Vec<String>>,
    /// the port its endpoints listen on (in place)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "non-negative"))]
    pub port: Option<i64>,
    /// days of automated backups, 1–35 (in place)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "non-negative"))]
    pub backup_retention_period: Option<i64>,
    /// refuse deletion while set (in place)
    #[serde(default)]
    pub deletion_protection: bool,
    /// restore from this cluster snapshot instead of starting empty
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub snapshot_identifier: Option<String>,
    /// the cluster snapshot taken on destroy (default <cluster_identifier>-final-<time>)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_snapshot_identifier: Option<String>,
    /// destroy without a final snapshot
    // Optional in the struct so that an import, which cannot read it, leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub skip_final_snapshot: Option<bool>,
    /// apply changes now, not in the maintenance window
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub apply_immediately: Option<bool>,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DbClusterOutputs {
    /// the cluster identifier
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the cluster's ARN
    #[schemars(extend("stable" = true))]
    pub arn: String,
    /// the writer endpoint's host name
    #[schemars(extend("stable" = true, "highlight" = true))]
    pub endpoint: String,
    /// the reader endpoint's host name
    #[schemars(extend("stable" = true))]
    pub reader_endpoint: String,
    /// the port its endpoints listen on
    pub port: i64,
    /// available, modifying, backing-up … (read on refresh)
    #[schemars(extend("highlight" = true))]
    pub status: String,
}

#[async_trait]
impl RdsDb for DbCluster {
    type Object = RdsCluster;
    const OBJECT: &'static str = "DB cluster";
    const IN_LOG: &'static str = "cluster ";
    const ID_FILTER: &'static str = "db-cluster-id";
    const FAILED: &'static [&'static str] = &["failed", "inaccessible-encryption-credentials", "incompatible-restore"];

    async fn describe(aws: &Aws, filter: Option<Filter>) -> Result<Vec<RdsCluster>, ProviderError> {
        let pages = aws.rds.describe_db_clusters().set_filters(filter.map(|f| vec![f])).into_paginator().send();
        Ok(super::all_pages("DescribeDBClusters", pages).await?.iter().flat_map(|p| p.db_clusters().to_vec()).collect())
    }
    fn id(c: &RdsCluster) -> &str {
        c.db_cluster_identifier().unwrap_or_default()
    }
    fn status(c: &RdsCluster) -> &str {
        c.status().unwrap_or("unknown")
    }
    fn tags(c: &RdsCluster) -> &[Tag] {
        c.tag_list()
    }
    fn id_of(outputs: &DbClusterOutputs) -> &str {
        &outputs.id
    }
    fn identifier(spec: &DbClusterSpec) -> &str {
        &spec.cluster_identifier
    }
    fn outputs(c: &RdsCluster) -> DbClusterOutputs {
        DbClusterOutputs {
            id: Self::id(c).to_string(),
            arn: c.db_cluster_arn().unwrap_or_default().to_string(),
            endpoint: c.endpoint().unwrap_or_default().to_string(),
            reader_endpoint: c.reader_endpoint().unwrap_or_default().to_string(),
            port: c.port().unwrap_or_default().into(),
            status: Self::status(c).to_string(),
        }
    }
    fn observe(c: &RdsCluster, prior: Option<&DbClusterSpec>) -> Observed<Self> {
        let groups: Vec<String> = c.vpc_security_groups().iter().filter_map(|g| g.vpc_security_group_id().map(str::to_string)).collect();
        let prior_groups = prior.and_then(|p| p.vpc_security_group_ids.as_deref());
        let spec = DbClusterSpec {
            cluster_identifier: Self::id(c).to_string(),
            engine: c.engine().unwrap_or_default().to_string(),
            engine_version: rds::engine_version(prior.and_then(|p| p.engine_version.as_deref()), c.engine_version()),
            master_username: c.master_username().unwrap_or_default().to_string(),
            // Never returned by RDS: kept as state sealed it; unknown (null, left out) on import.
            master_password: prior.map_or(Secret::Sealed(serde_json::Value::Null), |p| p.master_password.clone()),
            database_name: c.database_name().map(str::to_string),
            db_subnet_group_name: c.db_subnet_group().map(str::to_string),
            vpc_security_group_ids: (prior_groups.is_some() || !groups.is_empty()).then(|| rds::same_set(prior_groups, groups)),
            port: c.port().map(i64::from),
            backup_retention_period: c.backup_retention_period().map(i64::from),
            deletion_protection: c.deletion_protection().unwrap_or(false),
            // What only the definition says (how it was made, how it goes) is kept as applied.
            snapshot_identifier: prior.and_then(|p| p.snapshot_identifier.clone()),
            final_snapshot_identifier: prior.and_then(|p| p.final_snapshot_identifier.clone()),
            skip_final_snapshot: prior.and_then(|p| p.skip_final_snapshot),
            apply_immediately: prior.and_then(|p| p.apply_immediately),
            tags: rds::user_tags(&rds::pairs(c.tag_list())),
        };
        Observed { spec, outputs: Self::outputs(c) }
    }

    async fn start_delete(aws: &Aws, spec: &DbClusterSpec, id: &str, final_snapshot: Option<&str>) -> Deleting {
        let call = aws.rds.delete_db_cluster().db_cluster_identifier(id).skip_final_snapshot(final_snapshot.is_none());
        match call.set_final_db_snapshot_identifier(final_snapshot.map(str::to_string)).send().await {
            Ok(_) => Deleting::Started,
            Err(e) if is_not_found(&e) => Deleting::Gone,
            Err(e) if code(&e) == Some("InvalidDBClusterStateFault") => Deleting::InProgress,
            Err(e) if code(&e) == Some("DBClusterSnapshotAlreadyExistsFault") => Deleting::SnapshotExists,
            Err(e) if spec.deletion_protection => Deleting::Failed(ProviderError::permanent(format!(
                "DB cluster {id} has deletion_protection = true: set it to false and apply before destroying it ({})",
                sdk("DeleteDBCluster", e).message
            ))),
            Err(e) => Deleting::Failed(sdk("DeleteDBCluster", e)),
        }
    }
    async fn still_there(aws: &Aws, id: &str) -> Result<bool, ProviderError> {
        match aws.rds.describe_db_clusters().db_cluster_identifier(id).send().await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(sdk("DescribeDBClusters", e)),
        }
    }
}

async fn create_new(aws: &Aws, req: &Create<'_, DbCluster>) -> Result<(), ProviderError> {
    let s = req.spec;
    aws.rds
        .create_db_cluster()
        .db_cluster_identifier(&s.cluster_identifier)
        .engine(&s.engine)
        .set_engine_version(s.engine_version.clone())
        .master_username(&s.master_username)
        .master_user_password(rds::password("master_password", &s.master_password)?)
        .set_database_name(s.database_name.clone())
        .set_db_subnet_group_name(s.db_subnet_group_name.clone())
        .set_vpc_security_group_ids(rds::groups(&s.vpc_security_group_ids))
        .set_port(rds::int(s.port))
        .set_backup_retention_period(rds::int(s.backup_retention_period))
        .deletion_protection(s.deletion_protection)
        .copy_tags_to_snapshot(true)
        .set_tags(Some(rds::rds_tags(req.ownership, s.tags.as_ref())))
        .send()
        .await
        .map_err(|e| sdk("CreateDBCluster", e))?;
    Ok(())
}

/// Starts a restore from a cluster snapshot. RestoreDBClusterFromSnapshot takes
/// no password (nor backup retention): [`finish_restore`] sets the definition's
/// once the cluster is available.
async fn restore(aws: &Aws, req: &Create<'_, DbCluster>, snapshot: &str) -> Result<(), ProviderError> {
    let s = req.spec;
    aws.rds
        .restore_db_cluster_from_snapshot()
        .db_cluster_identifier(&s.cluster_identifier)
        .snapshot_identifier(snapshot)
        .engine(&s.engine)
        .set_engine_version(s.engine_version.clone())
        .set_database_name(s.database_name.clone())
        .set_db_subnet_group_name(s.db_subnet_group_name.clone())
        .set_vpc_security_group_ids(rds::groups(&s.vpc_security_group_ids))
        .set_port(rds::int(s.port))
        .deletion_protection(s.deletion_protection)
        .copy_tags_to_snapshot(true)
        .set_tags(Some(rds::rds_tags(req.ownership, s.tags.as_ref())))
        .send()
        .await
        .map_err(|e| sdk("RestoreDBClusterFromSnapshot", e))?;
    Ok(())
}

async fn finish_restore(aws: &Aws, s: &DbClusterSpec) -> Result<(), ProviderError> {
    let id = &s.cluster_identifier;
    rds::wait_available::<DbCluster>(aws, id).await?;
    aws.rds
        .modify_db_cluster()
        .db_cluster_identifier(id)
        .master_user_password(rds::password("master_password", &s.master_password)?)
        .set_backup_retention_period(rds::int(s.backup_retention_period))
        .apply_immediately(true)
        .send()
        .await
        .map_err(|e| sdk("ModifyDBCluster", e))?;
    Ok(())
}

#[async_trait]
impl Kind for DbCluster {
    const TYPE: &'static str = "aws.db_cluster";
    const DESCRIPTION: &'static str = "An Aurora DB cluster (its instances are aws.db_instance with db_cluster_identifier)";
    type Client = Aws;
    type Spec = DbClusterSpec;
    type Outputs = DbClusterOutputs;
    const FORMATS: &'static [(&'static str, Validator)] = &[rds::IDENTIFIER_FORMAT];

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed().stateful("snapshot_identifier")
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        rds::read(aws, items).await
    }

    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        rds::import(aws, id).await
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        rds::find(aws, req.spec, req.ownership).await
    }

    async fn snapshot(&self, aws: &Aws, req: Snapshot<'_, Self>) -> Result<SnapshotRef, ProviderError> {
        recovery::cluster::snapshot(aws, Target::of(&req, &req.outputs.id)).await
    }

    async fn copy_snapshot(&self, aws: &Aws, snapshot: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        recovery::cluster::copy(aws, snapshot, to_region).await
    }

    async fn delete_snapshot(&self, aws: &Aws, snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        recovery::cluster::delete(aws, snapshot).await
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        rds::list_owned(aws).await
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<DbClusterOutputs, ProviderError> {
        let id = &req.spec.cluster_identifier;
        // No client token: a second create of the same identifier fails (DBClusterAlreadyExistsFault)
        // rather than duplicating, and an interrupted create is adopted by identifier and tags.
        match &req.spec.snapshot_identifier {
            Some(snapshot) => {
                (req.log)(req.addr, &format!("restoring cluster {id} from snapshot {snapshot}"));
                rds::password("master_password", &req.spec.master_password)?;
                restore(aws, &req, snapshot).await?;
                // The cluster exists from here on: a failure hands it to the engine, never leaks it.
                finish_restore(aws, req.spec).await.map_err(|e| e.with_created(rds::made(id)))?;
            }
            None => create_new(aws, &req).await?,
        }
        let c = rds::wait_available::<Self>(aws, id).await.map_err(|e| e.with_created(rds::made(id)))?;
        Ok(Self::outputs(&c))
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<DbClusterOutputs, ProviderError> {
        let id = &req.outputs.id;
        let s = req.spec;
        let modify =
            ["engine_version", "master_password", "vpc_security_group_ids", "port", "backup_retention_period", "deletion_protection"];
        if modify.iter().any(|m| req.changed(m)) {
            let pick = |n: &str| req.changed(n).then_some(());
            let password = pick("master_password").map(|_| rds::password("master_password", &s.master_password)).transpose()?;
            aws.rds
                .modify_db_cluster()
                .db_cluster_identifier(id)
                .set_engine_version(pick("engine_version").and(s.engine_version.clone()))
                .allow_major_version_upgrade(req.changed("engine_version"))
                .set_master_user_password(password.map(str::to_string))
                .set_vpc_security_group_ids(pick("vpc_security_group_ids").map(|_| s.vpc_security_group_ids.clone().unwrap_or_default()))
                .set_port(pick("port").and(rds::int(s.port)))
                .set_backup_retention_period(pick("backup_retention_period").and(rds::int(s.backup_retention_period)))
                .set_deletion_protection(pick("deletion_protection").map(|_| s.deletion_protection))
                .apply_immediately(s.apply_immediately.unwrap_or(true))
                .send()
                .await
                .map_err(|e| sdk("ModifyDBCluster", e))?;
        }
        rds::retag(aws, &req.outputs.arn, req.prior.tags.as_ref(), s.tags.as_ref(), req.ownership).await?;
        Ok(Self::outputs(&rds::wait_available::<Self>(aws, id).await?))
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let skip = req.spec.skip_final_snapshot.unwrap_or(false);
        rds::delete(aws, &req, skip, req.spec.final_snapshot_identifier.as_deref()).await
    }
}
