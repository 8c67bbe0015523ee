//! `aws.db_instance`: an RDS database instance (MySQL, PostgreSQL, MariaDB …),
//! new or restored from a snapshot — the disaster-recovery path.
//!
//! Class, storage, multi-AZ, password, parameter group, security groups and
//! backup retention change in place (ModifyDBInstance, applied immediately
//! unless `apply_immediately = false`); identifier, engine, user, subnet group
//! and the snapshot to restore from replace it. Destroy takes a final snapshot
//! (named by `final_snapshot_identifier`) unless `skip_final_snapshot = true`.
//! The master password is sensitive: sealed in state, never printed, and never
//! read back (RDS does not return it).
//!
//! With `db_cluster_identifier` it is one of an Aurora cluster's instances
//! (`aws.db_cluster`): storage, master user, backups and placement are the
//! cluster's, so it takes no `username`/`password`, has no snapshot of its own
//! (recovery points snapshot the cluster) and is destroyed without one.

use async_trait::async_trait;
use aws_sdk_rds::types::{DbInstance as RdsInstance, Filter, Tag};
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

pub struct DbInstance;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbInstanceSpec {
    /// unique in the region: lower-case letters, digits, hyphens
    #[schemars(extend("force_new" = true, "format" = "aws-rds-identifier"))]
    pub identifier: String,
    /// mysql, postgres, mariadb …
    #[schemars(extend("force_new" = true))]
    pub engine: String,
    /// e.g. 8.0 (in place: upgrades)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_version: Option<String>,
    /// e.g. db.t3.micro, db.r6g.large (in place)
    pub instance_class: String,
    /// GiB (in place; grows only)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "non-negative"))]
    pub allocated_storage: Option<i64>,
    /// gp3, gp2, io1
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub storage_type: Option<String>,
    /// a standby in another zone (in place)
    #[serde(default)]
    pub multi_az: bool,
    /// the master user (required unless in a cluster)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub username: Option<String>,
    /// the master password (required unless in a cluster); take it from env(), never write it in a file
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret<String>>,
    /// the Aurora cluster it is an instance of (${cluster.id}); storage, user and backups are the cluster's
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub db_cluster_identifier: Option<String>,
    /// a database to create
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub db_name: Option<String>,
    /// where it is placed (${subnets.id})
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub db_subnet_group_name: Option<String>,
    /// engine settings (${params.id}; in place)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_group_name: Option<String>,
    /// security groups (in place)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_security_group_ids: Option<Vec<String>>,
    /// days of automated backups (in place)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "non-negative"))]
    pub backup_retention_period: Option<i64>,
    /// a public address
    #[serde(default)]
    #[schemars(extend("force_new" = true))]
    pub publicly_accessible: bool,
    /// restore from this DB snapshot instead of starting empty
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub snapshot_identifier: Option<String>,
    /// the snapshot taken on destroy (default <identifier>-final-<time>)
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

impl DbInstanceSpec {
    fn username(&self) -> Result<&str, ProviderError> {
        self.username.as_deref().ok_or_else(needs_user)
    }

    fn password(&self) -> Result<&str, ProviderError> {
        rds::password("password", self.password.as_ref().ok_or_else(needs_user)?)
    }
}

fn needs_user() -> ProviderError {
    ProviderError::permanent("`username` and `password` are required unless `db_cluster_identifier` is set")
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DbInstanceOutputs {
    /// the instance identifier
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the instance's ARN
    #[schemars(extend("stable" = true))]
    pub arn: String,
    /// the endpoint's host name
    #[schemars(extend("stable" = true))]
    pub address: String,
    /// the endpoint's port
    #[schemars(extend("stable" = true))]
    pub port: i64,
    /// host:port
    #[schemars(extend("stable" = true, "highlight" = true))]
    pub endpoint: String,
    /// available, modifying, backing-up … (read on refresh)
    #[schemars(extend("highlight" = true))]
    pub status: String,
}

#[async_trait]
impl RdsDb for DbInstance {
    type Object = RdsInstance;
    const OBJECT: &'static str = "DB instance";
    const IN_LOG: &'static str = "";
    const ID_FILTER: &'static str = "db-instance-id";
    const FAILED: &'static [&'static str] =
        &["failed", "incompatible-parameters", "incompatible-restore", "incompatible-network", "restore-error"];

    async fn describe(aws: &Aws, filter: Option<Filter>) -> Result<Vec<RdsInstance>, ProviderError> {
        let pages = aws.rds.describe_db_instances().set_filters(filter.map(|f| vec![f])).into_paginator().send();
        Ok(super::all_pages("DescribeDBInstances", pages).await?.iter().flat_map(|p| p.db_instances().to_vec()).collect())
    }
    fn id(d: &RdsInstance) -> &str {
        d.db_instance_identifier().unwrap_or_default()
    }
    fn status(d: &RdsInstance) -> &str {
        d.db_instance_status().unwrap_or("unknown")
    }
    fn tags(d: &RdsInstance) -> &[Tag] {
        d.tag_list()
    }
    fn id_of(outputs: &DbInstanceOutputs) -> &str {
        &outputs.id
    }
    fn identifier(spec: &DbInstanceSpec) -> &str {
        &spec.identifier
    }
    fn outputs(d: &RdsInstance) -> DbInstanceOutputs {
        let address = d.endpoint().and_then(|e| e.address()).unwrap_or_default().to_string();
        let port = d.endpoint().and_then(|e| e.port()).unwrap_or_default().into();
        DbInstanceOutputs {
            id: Self::id(d).to_string(),
            arn: d.db_instance_arn().unwrap_or_default().to_string(),
            endpoint: if address.is_empty() { String::new() } else { format!("{address}:{port}") },
            address,
            port,
            status: Self::status(d).to_string(),
        }
    }
    fn observe(d: &RdsInstance, prior: Option<&DbInstanceSpec>) -> Observed<Self> {
        let groups: Vec<String> = d.vpc_security_groups().iter().filter_map(|g| g.vpc_security_group_id().map(str::to_string)).collect();
        let prior_groups = prior.and_then(|p| p.vpc_security_group_ids.as_deref());
        // A cluster's instance has no user of its own (RDS answers with the cluster's).
        let own_user = d.db_cluster_identifier().is_none() || prior.is_some_and(|p| p.username.is_some());
        // Read back where the definition compares it; what the old reads never compared is
        // kept as applied, and read from the API only on import.
        let kept = |applied: Option<bool>, api: bool| applied.unwrap_or(api);
        let spec = DbInstanceSpec {
            identifier: Self::id(d).to_string(),
            engine: d.engine().unwrap_or_default().to_string(),
            engine_version: rds::engine_version(prior.and_then(|p| p.engine_version.as_deref()), d.engine_version()),
            instance_class: d.db_instance_class().unwrap_or_default().to_string(),
            allocated_storage: d.allocated_storage().map(i64::from),
            storage_type: prior.map_or_else(|| d.storage_type().map(str::to_string), |p| p.storage_type.clone()),
            multi_az: d.multi_az().unwrap_or(false),
            username: own_user.then(|| d.master_username().unwrap_or_default().to_string()),
            // Never returned by RDS: kept as state sealed it; unknown (left out) on import.
            password: prior.and_then(|p| p.password.clone()),
            db_cluster_identifier: d.db_cluster_identifier().map(str::to_string),
            db_name: prior.map_or_else(|| d.db_name().map(str::to_string), |p| p.db_name.clone()),
            db_subnet_group_name: d.db_subnet_group().and_then(|g| g.db_subnet_group_name()).map(str::to_string),
            parameter_group_name: d.db_parameter_groups().first().and_then(|g| g.db_parameter_group_name()).map(str::to_string),
            vpc_security_group_ids: (prior_groups.is_some() || !groups.is_empty()).then(|| rds::same_set(prior_groups, groups)),
            backup_retention_period: d.backup_retention_period().map(i64::from),
            publicly_accessible: kept(prior.map(|p| p.publicly_accessible), d.publicly_accessible().unwrap_or(false)),
            // What only the definition says (how it was made, how it goes) is kept as applied.
            snapshot_identifier: prior.and_then(|p| p.snapshot_identifier.clone()),
            final_snapshot_identifier: prior.and_then(|p| p.final_snapshot_identifier.clone()),
            skip_final_snapshot: prior.and_then(|p| p.skip_final_snapshot),
            apply_immediately: prior.and_then(|p| p.apply_immediately),
            tags: rds::user_tags(&rds::pairs(d.tag_list())),
        };
        Observed { spec, outputs: Self::outputs(d) }
    }

    async fn start_delete(aws: &Aws, _spec: &DbInstanceSpec, id: &str, final_snapshot: Option<&str>) -> Deleting {
        let call = aws.rds.delete_db_instance().db_instance_identifier(id).skip_final_snapshot(final_snapshot.is_none());
        match call.set_final_db_snapshot_identifier(final_snapshot.map(str::to_string)).send().await {
            Ok(_) => Deleting::Started,
            Err(e) if is_not_found(&e) => Deleting::Gone,
            Err(e) if code(&e) == Some("InvalidDBInstanceState") => Deleting::InProgress,
            Err(e) if code(&e) == Some("DBSnapshotAlreadyExists") => Deleting::SnapshotExists,
            Err(e) => Deleting::Failed(sdk("DeleteDBInstance", e)),
        }
    }
    async fn still_there(aws: &Aws, id: &str) -> Result<bool, ProviderError> {
        match aws.rds.describe_db_instances().db_instance_identifier(id).send().await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(sdk("DescribeDBInstances", e)),
        }
    }
}

/// One of an Aurora cluster's instances: only what is the instance's own.
async fn create_member(aws: &Aws, req: &Create<'_, DbInstance>, cluster: &str) -> Result<(), ProviderError> {
    let s = req.spec;
    let theirs = [
        ("username", s.username.is_some()),
        ("password", s.password.is_some()),
        ("allocated_storage", s.allocated_storage.is_some()),
        ("storage_type", s.storage_type.is_some()),
        ("db_name", s.db_name.is_some()),
        ("backup_retention_period", s.backup_retention_period.is_some()),
        ("snapshot_identifier", s.snapshot_identifier.is_some()),
    ];
    if let Some((own, _)) = theirs.iter().find(|(_, set)| *set) {
        return Err(ProviderError::permanent(format!(
            "`{own}` belongs to the cluster `{cluster}` (aws.db_cluster), not to one of its instances; remove it here"
        )));
    }
    aws.rds
        .create_db_instance()
        .db_instance_identifier(&s.identifier)
        .db_cluster_identifier(cluster)
        .engine(&s.engine)
        .db_instance_class(&s.instance_class)
        .set_db_subnet_group_name(s.db_subnet_group_name.clone())
        .set_db_parameter_group_name(s.parameter_group_name.clone())
        .publicly_accessible(s.publicly_accessible)
        .set_tags(Some(rds::rds_tags(req.ownership, s.tags.as_ref())))
        .send()
        .await
        .map_err(|e| sdk("CreateDBInstance", e))?;
    Ok(())
}

async fn create_new(aws: &Aws, req: &Create<'_, DbInstance>) -> Result<(), ProviderError> {
    let s = req.spec;
    aws.rds
        .create_db_instance()
        .db_instance_identifier(&s.identifier)
        .engine(&s.engine)
        .set_engine_version(s.engine_version.clone())
        .db_instance_class(&s.instance_class)
        .set_allocated_storage(rds::int(s.allocated_storage))
        .set_storage_type(s.storage_type.clone())
        .master_username(s.username()?)
        .master_user_password(s.password()?)
        .set_db_name(s.db_name.clone())
        .multi_az(s.multi_az)
        .set_db_subnet_group_name(s.db_subnet_group_name.clone())
        .set_db_parameter_group_name(s.parameter_group_name.clone())
        .set_vpc_security_group_ids(rds::groups(&s.vpc_security_group_ids))
        .set_backup_retention_period(rds::int(s.backup_retention_period))
        .publicly_accessible(s.publicly_accessible)
        .copy_tags_to_snapshot(true)
        .set_tags(Some(rds::rds_tags(req.ownership, s.tags.as_ref())))
        .send()
        .await
        .map_err(|e| sdk("CreateDBInstance", e))?;
    Ok(())
}

/// Starts a restore from a snapshot. RestoreDBInstanceFromDBSnapshot takes no password:
/// [`set_password`] sets the definition's once the instance is available.
async fn restore(aws: &Aws, req: &Create<'_, DbInstance>, snapshot: &str) -> Result<(), ProviderError> {
    let s = req.spec;
    aws.rds
        .restore_db_instance_from_db_snapshot()
        .db_instance_identifier(&s.identifier)
        .db_snapshot_identifier(snapshot)
        .db_instance_class(&s.instance_class)
        .multi_az(s.multi_az)
        .set_db_subnet_group_name(s.db_subnet_group_name.clone())
        .set_db_parameter_group_name(s.parameter_group_name.clone())
        .set_vpc_security_group_ids(rds::groups(&s.vpc_security_group_ids))
        .publicly_accessible(s.publicly_accessible)
        .copy_tags_to_snapshot(true)
        .set_tags(Some(rds::rds_tags(req.ownership, s.tags.as_ref())))
        .send()
        .await
        .map_err(|e| sdk("RestoreDBInstanceFromDBSnapshot", e))?;
    Ok(())
}

async fn set_password(aws: &Aws, s: &DbInstanceSpec) -> Result<(), ProviderError> {
    rds::wait_available::<DbInstance>(aws, &s.identifier).await?;
    aws.rds
        .modify_db_instance()
        .db_instance_identifier(&s.identifier)
        .master_user_password(s.password()?)
        .apply_immediately(true)
        .send()
        .await
        .map_err(|e| sdk("ModifyDBInstance", e))?;
    Ok(())
}

#[async_trait]
impl Kind for DbInstance {
    const TYPE: &'static str = "aws.db_instance";
    const DESCRIPTION: &'static str = "An RDS database instance";
    type Client = Aws;
    type Spec = DbInstanceSpec;
    type Outputs = DbInstanceOutputs;
    const FORMATS: &'static [(&'static str, Validator)] = &[rds::IDENTIFIER_FORMAT];

    fn capabilities(&self) -> Capabilities {
        // An Aurora cluster's instance holds no data of its own: it is snapshotted as the cluster.
        Capabilities::managed().stateful_unless("snapshot_identifier", "db_cluster_identifier")
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
        recovery::rds::snapshot(aws, Target::of(&req, &req.outputs.id)).await
    }

    async fn copy_snapshot(&self, aws: &Aws, snapshot: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        recovery::rds::copy(aws, snapshot, to_region).await
    }

    async fn delete_snapshot(&self, aws: &Aws, snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        recovery::rds::delete(aws, snapshot).await
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        rds::list_owned(aws).await
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<DbInstanceOutputs, ProviderError> {
        let s = req.spec;
        let id = &s.identifier;
        // No client token: a second create of the same identifier fails (DBInstanceAlreadyExists)
        // rather than duplicating, and an interrupted create is adopted by identifier and tags.
        match (&s.db_cluster_identifier, &s.snapshot_identifier) {
            (Some(cluster), _) => create_member(aws, &req, cluster).await?,
            (None, Some(snapshot)) => {
                (req.log)(req.addr, &format!("restoring {id} from snapshot {snapshot}"));
                s.password()?;
                restore(aws, &req, snapshot).await?;
                // The instance exists from here on: a failure hands it to the engine, never leaks it.
                set_password(aws, s).await.map_err(|e| e.with_created(rds::made(id)))?;
            }
            (None, None) => create_new(aws, &req).await?,
        }
        let d = rds::wait_available::<Self>(aws, id).await.map_err(|e| e.with_created(rds::made(id)))?;
        Ok(Self::outputs(&d))
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<DbInstanceOutputs, ProviderError> {
        let id = &req.outputs.id;
        let s = req.spec;
        let modify = [
            "instance_class",
            "allocated_storage",
            "multi_az",
            "password",
            "parameter_group_name",
            "vpc_security_group_ids",
            "backup_retention_period",
            "engine_version",
        ];
        if modify.iter().any(|m| req.changed(m)) {
            let pick = |n: &str| req.changed(n).then_some(());
            let password = pick("password").map(|_| s.password()).transpose()?;
            aws.rds
                .modify_db_instance()
                .db_instance_identifier(id)
                .set_db_instance_class(pick("instance_class").map(|_| s.instance_class.clone()))
                .set_allocated_storage(pick("allocated_storage").and(rds::int(s.allocated_storage)))
                .set_multi_az(pick("multi_az").map(|_| s.multi_az))
                .set_master_user_password(password.map(str::to_string))
                .set_db_parameter_group_name(pick("parameter_group_name").and(s.parameter_group_name.clone()))
                .set_vpc_security_group_ids(pick("vpc_security_group_ids").map(|_| s.vpc_security_group_ids.clone().unwrap_or_default()))
                .set_backup_retention_period(pick("backup_retention_period").and(rds::int(s.backup_retention_period)))
                .set_engine_version(pick("engine_version").and(s.engine_version.clone()))
                .allow_major_version_upgrade(req.changed("engine_version"))
                .apply_immediately(s.apply_immediately.unwrap_or(true))
                .send()
                .await
                .map_err(|e| sdk("ModifyDBInstance", e))?;
        }
        rds::retag(aws, &req.outputs.arn, req.prior.tags.as_ref(), s.tags.as_ref(), req.ownership).await?;
        Ok(Self::outputs(&rds::wait_available::<Self>(aws, id).await?))
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        // A cluster's instance has no data of its own to snapshot (RDS refuses one).
        let skip = req.spec.skip_final_snapshot.unwrap_or(false) || req.spec.db_cluster_identifier.is_some();
        rds::delete(aws, &req, skip, req.spec.final_snapshot_identifier.as_deref()).await
    }
}

#[cfg(test)]
mod tests {
    use phoenix_core::kit::KindSet;
    use phoenix_core::value::Attrs;
    use serde_json::json;

    use crate::kinds::db_cluster::DbCluster;

    /// A standalone instance and a cluster hold data; a cluster's instance does not.
    #[test]
    fn the_kinds_say_which_databases_hold_data() {
        let set = KindSet::new().with(super::DbInstance).with(DbCluster);
        let alone =
            json!({"identifier": "a", "engine": "mysql", "instance_class": "db.t3.micro", "username": "u", "password": "secret-enough"});
        let member = json!({"identifier": "m", "engine": "aurora-mysql", "instance_class": "db.r6g.large", "db_cluster_identifier": "c"});
        let mut unset = alone.clone();
        unset["db_cluster_identifier"] = json!(null);
        let cluster =
            json!({"cluster_identifier": "c", "engine": "aurora-mysql", "master_username": "u", "master_password": "secret-enough"});
        for (t, inputs, stateful) in [
            ("aws.db_instance", alone, true),
            ("aws.db_instance", member, false),
            ("aws.db_instance", unset, true),
            ("aws.db_cluster", cluster, true),
        ] {
            let inputs: Attrs = serde_json::from_value(inputs).unwrap();
            assert_eq!(set.is_stateful(t, &inputs), stateful, "{t}: {inputs:?}");
            assert_eq!(set.restore_attr(t), Some("snapshot_identifier"), "{t}");
        }
    }
}
