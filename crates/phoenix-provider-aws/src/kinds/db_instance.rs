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

use phoenix_core::schema::Invalid;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_rds::types::{DbInstance as RdsInstance, Filter};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::db_subnet_group::{pairs, rds_tags, retag};
use super::lb::same_set;
use super::{Kind, id_attr, id_of, in_item_order, opt_i64, opt_str, priors, req_str, str_list, tags_attr};
use crate::client::Aws;
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct DbInstance;

/// Statuses an instance does not recover from by waiting.
const FAILED: [&str; 5] = ["failed", "incompatible-parameters", "incompatible-restore", "incompatible-network", "restore-error"];

/// RDS identifiers: 1–63 lower-case letters, digits and hyphens, starting with a letter.
pub(crate) fn check_identifier(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if s.contains("${") {
        return Ok(());
    }
    let ok = s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!("`{s}` is not an RDS identifier: lower-case letters, digits and single hyphens, starting with a letter")))
    }
}

fn int(inputs: &Attrs, name: &str) -> Option<i32> {
    opt_i64(inputs, name).and_then(|v| i32::try_from(v).ok())
}

fn flag(inputs: &Attrs, name: &str) -> Option<bool> {
    inputs.get(name).and_then(Value::as_bool)
}

fn status_of(d: &RdsInstance) -> &str {
    d.db_instance_status().unwrap_or("unknown")
}

fn outputs(d: &RdsInstance) -> Attrs {
    let address = d.endpoint().and_then(|e| e.address()).unwrap_or_default();
    let port = d.endpoint().and_then(|e| e.port()).unwrap_or_default();
    let mut o = Attrs::new();
    o.insert("id".into(), json!(d.db_instance_identifier().unwrap_or_default()));
    o.insert("arn".into(), json!(d.db_instance_arn().unwrap_or_default()));
    o.insert("address".into(), json!(address));
    o.insert("port".into(), json!(port));
    o.insert("endpoint".into(), json!(if address.is_empty() { String::new() } else { format!("{address}:{port}") }));
    o.insert("status".into(), json!(status_of(d)));
    o
}

fn observed(d: &RdsInstance, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    inputs.insert("identifier".into(), json!(d.db_instance_identifier().unwrap_or_default()));
    inputs.insert("engine".into(), json!(d.engine().unwrap_or_default()));
    inputs.insert("instance_class".into(), json!(d.db_instance_class().unwrap_or_default()));
    inputs.insert("multi_az".into(), json!(d.multi_az().unwrap_or(false)));
    if prior.contains_key("username") || d.db_cluster_identifier().is_none() {
        inputs.insert("username".into(), json!(d.master_username().unwrap_or_default()));
    }
    if prior.contains_key("db_cluster_identifier") {
        inputs.insert("db_cluster_identifier".into(), d.db_cluster_identifier().map_or(Value::Null, |c| json!(c)));
    }
    // `8.0` in the definition is satisfied by the 8.0.35 RDS chose.
    if let (Some(want), Some(have)) = (opt_str(prior, "engine_version"), d.engine_version()) {
        let same = have == want || have.starts_with(&format!("{want}."));
        inputs.insert("engine_version".into(), json!(if same { want } else { have }));
    }
    if prior.contains_key("allocated_storage") {
        inputs.insert("allocated_storage".into(), json!(d.allocated_storage().unwrap_or_default()));
    }
    if prior.contains_key("backup_retention_period") {
        inputs.insert("backup_retention_period".into(), json!(d.backup_retention_period().unwrap_or_default()));
    }
    if prior.contains_key("db_subnet_group_name") {
        inputs.insert("db_subnet_group_name".into(), json!(d.db_subnet_group().and_then(|g| g.db_subnet_group_name()).unwrap_or_default()));
    }
    if prior.contains_key("parameter_group_name") {
        let g = d.db_parameter_groups().first().and_then(|g| g.db_parameter_group_name()).unwrap_or_default();
        inputs.insert("parameter_group_name".into(), json!(g));
    }
    if prior.contains_key("vpc_security_group_ids") {
        let groups = d.vpc_security_groups().iter().filter_map(|g| g.vpc_security_group_id().map(str::to_string)).collect();
        inputs.insert("vpc_security_group_ids".into(), same_set(prior, "vpc_security_group_ids", groups));
    }
    tags::observe_pairs(&mut inputs, prior, &pairs(d.tag_list()));
    Observed { inputs, outputs: outputs(d) }
}

/// Instances by identifier: a filter, so identifiers that are gone are simply absent.
async fn describe(aws: &Aws, ids: &[String]) -> Result<Vec<RdsInstance>, ProviderError> {
    let mut found = Vec::new();
    for chunk in ids.chunks(100) {
        let filter = Filter::builder().name("db-instance-id").set_values(Some(chunk.to_vec())).build();
        let pages = aws.rds.describe_db_instances().filters(filter).into_paginator().send();
        for page in super::all_pages("DescribeDBInstances", pages).await? {
            found.extend(page.db_instances().iter().filter(|d| status_of(d) != "deleting").cloned());
        }
    }
    Ok(found)
}

async fn one(aws: &Aws, id: &str) -> Result<Option<RdsInstance>, ProviderError> {
    Ok(describe(aws, &[id.to_string()]).await?.into_iter().next())
}

/// Waits until the instance is `available`.
async fn wait_available(aws: &Aws, id: &str) -> Result<RdsInstance, ProviderError> {
    crate::wait::until(&format!("DB instance {id} to be available"), aws.wait_timeout, || async move {
        let Some(d) = one(aws, id).await? else { return Ok(None) };
        match status_of(&d) {
            "available" => Ok(Some(d)),
            s if FAILED.contains(&s) => Err(ProviderError::permanent(format!("DB instance {id} is `{s}`"))),
            _ => Ok(None),
        }
    })
    .await
}

fn in_cluster(inputs: &Attrs) -> Option<&str> {
    opt_str(inputs, "db_cluster_identifier")
}

fn username(inputs: &Attrs) -> Result<&str, ProviderError> {
    opt_str(inputs, "username")
        .ok_or_else(|| ProviderError::permanent("`username` and `password` are required unless `db_cluster_identifier` is set"))
}

fn password(inputs: &Attrs) -> Result<&str, ProviderError> {
    let p = opt_str(inputs, "password")
        .ok_or_else(|| ProviderError::permanent("`username` and `password` are required unless `db_cluster_identifier` is set"))?;
    if p.len() < 8 {
        // Said here without the value: it is a secret.
        return Err(ProviderError::permanent("`password` must be at least 8 characters"));
    }
    Ok(p)
}

/// One of an Aurora cluster's instances: only what is the instance's own.
async fn create_member(aws: &Aws, req: &CreateRequest, id: &str, cluster: &str) -> Result<(), ProviderError> {
    let i = &req.inputs;
    for own in ["username", "password", "allocated_storage", "storage_type", "db_name", "backup_retention_period", "snapshot_identifier"] {
        if i.get(own).is_some_and(|v| !v.is_null()) {
            return Err(ProviderError::permanent(format!(
                "`{own}` belongs to the cluster `{cluster}` (aws.db_cluster), not to one of its instances; remove it here"
            )));
        }
    }
    aws.rds
        .create_db_instance()
        .db_instance_identifier(id)
        .db_cluster_identifier(cluster)
        .engine(req_str(i, "engine")?)
        .db_instance_class(req_str(i, "instance_class")?)
        .set_db_subnet_group_name(opt_str(i, "db_subnet_group_name").map(str::to_string))
        .set_db_parameter_group_name(opt_str(i, "parameter_group_name").map(str::to_string))
        .set_publicly_accessible(flag(i, "publicly_accessible"))
        .set_tags(Some(rds_tags(&req.ownership, i.get("tags"))))
        .send()
        .await
        .map_err(|e| sdk("CreateDBInstance", e))?;
    Ok(())
}

async fn create_new(aws: &Aws, req: &CreateRequest, id: &str) -> Result<(), ProviderError> {
    let i = &req.inputs;
    let groups = str_list(i, "vpc_security_group_ids");
    aws.rds
        .create_db_instance()
        .db_instance_identifier(id)
        .engine(req_str(i, "engine")?)
        .set_engine_version(opt_str(i, "engine_version").map(str::to_string))
        .db_instance_class(req_str(i, "instance_class")?)
        .set_allocated_storage(int(i, "allocated_storage"))
        .set_storage_type(opt_str(i, "storage_type").map(str::to_string))
        .master_username(username(i)?)
        .master_user_password(password(i)?)
        .set_db_name(opt_str(i, "db_name").map(str::to_string))
        .set_multi_az(flag(i, "multi_az"))
        .set_db_subnet_group_name(opt_str(i, "db_subnet_group_name").map(str::to_string))
        .set_db_parameter_group_name(opt_str(i, "parameter_group_name").map(str::to_string))
        .set_vpc_security_group_ids((!groups.is_empty()).then_some(groups))
        .set_backup_retention_period(int(i, "backup_retention_period"))
        .set_publicly_accessible(flag(i, "publicly_accessible"))
        .copy_tags_to_snapshot(true)
        .set_tags(Some(rds_tags(&req.ownership, i.get("tags"))))
        .send()
        .await
        .map_err(|e| sdk("CreateDBInstance", e))?;
    Ok(())
}

/// Starts a restore from a snapshot. RestoreDBInstanceFromDBSnapshot takes no password:
/// [`set_password`] sets the definition's once the instance is available.
async fn restore(aws: &Aws, req: &CreateRequest, id: &str, snapshot: &str) -> Result<(), ProviderError> {
    let i = &req.inputs;
    let groups = str_list(i, "vpc_security_group_ids");
    aws.rds
        .restore_db_instance_from_db_snapshot()
        .db_instance_identifier(id)
        .db_snapshot_identifier(snapshot)
        .db_instance_class(req_str(i, "instance_class")?)
        .set_multi_az(flag(i, "multi_az"))
        .set_db_subnet_group_name(opt_str(i, "db_subnet_group_name").map(str::to_string))
        .set_db_parameter_group_name(opt_str(i, "parameter_group_name").map(str::to_string))
        .set_vpc_security_group_ids((!groups.is_empty()).then_some(groups))
        .set_publicly_accessible(flag(i, "publicly_accessible"))
        .copy_tags_to_snapshot(true)
        .set_tags(Some(rds_tags(&req.ownership, i.get("tags"))))
        .send()
        .await
        .map_err(|e| sdk("RestoreDBInstanceFromDBSnapshot", e))?;
    Ok(())
}

async fn set_password(aws: &Aws, id: &str, inputs: &Attrs) -> Result<(), ProviderError> {
    wait_available(aws, id).await?;
    aws.rds
        .modify_db_instance()
        .db_instance_identifier(id)
        .master_user_password(password(inputs)?)
        .apply_immediately(true)
        .send()
        .await
        .map_err(|e| sdk("ModifyDBInstance", e))?;
    Ok(())
}

#[async_trait]
impl Kind for DbInstance {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.db_instance",
            description: "An RDS database instance",
            attrs: vec![
                AttrSchema::required("identifier", AttrType::String, "unique in the region: lower-case letters, digits, hyphens")
                    .force_new()
                    .validate_with(check_identifier),
                AttrSchema::required("engine", AttrType::String, "mysql, postgres, mariadb …").force_new(),
                AttrSchema::optional("engine_version", AttrType::String, "e.g. 8.0 (in place: upgrades)"),
                AttrSchema::required("instance_class", AttrType::String, "e.g. db.t3.micro, db.r6g.large (in place)"),
                AttrSchema::optional("allocated_storage", AttrType::Int, "GiB (in place; grows only)")
                    .validate_with(validators::non_negative),
                AttrSchema::optional("storage_type", AttrType::String, "gp3, gp2, io1").force_new(),
                AttrSchema::optional("multi_az", AttrType::Bool, "a standby in another zone (in place)").default(json!(false)),
                AttrSchema::optional("username", AttrType::String, "the master user (required unless in a cluster)").force_new(),
                AttrSchema::optional(
                    "password",
                    AttrType::String,
                    "the master password (required unless in a cluster); take it from env(), never write it in a file",
                )
                .sensitive(),
                AttrSchema::optional(
                    "db_cluster_identifier",
                    AttrType::String,
                    "the Aurora cluster it is an instance of (${cluster.id}); storage, user and backups are the cluster's",
                )
                .force_new(),
                AttrSchema::optional("db_name", AttrType::String, "a database to create").force_new(),
                AttrSchema::optional("db_subnet_group_name", AttrType::String, "where it is placed (${subnets.id})").force_new(),
                AttrSchema::optional("parameter_group_name", AttrType::String, "engine settings (${params.id}; in place)"),
                AttrSchema::optional("vpc_security_group_ids", AttrType::List(Box::new(AttrType::String)), "security groups (in place)"),
                AttrSchema::optional("backup_retention_period", AttrType::Int, "days of automated backups (in place)")
                    .validate_with(validators::non_negative),
                AttrSchema::optional("publicly_accessible", AttrType::Bool, "a public address").default(json!(false)).force_new(),
                AttrSchema::optional("snapshot_identifier", AttrType::String, "restore from this DB snapshot instead of starting empty")
                    .force_new(),
                AttrSchema::optional(
                    "final_snapshot_identifier",
                    AttrType::String,
                    "the snapshot taken on destroy (default <identifier>-final-<time>)",
                ),
                AttrSchema::optional("skip_final_snapshot", AttrType::Bool, "destroy without a final snapshot").default(json!(false)),
                AttrSchema::optional("apply_immediately", AttrType::Bool, "apply changes now, not in the maintenance window")
                    .default(json!(true)),
                tags_attr(),
                id_attr("the instance identifier"),
                AttrSchema::computed("arn", AttrType::String, "the instance's ARN").stable(),
                AttrSchema::computed("address", AttrType::String, "the endpoint's host name").stable(),
                AttrSchema::computed("port", AttrType::Int, "the endpoint's port").stable(),
                AttrSchema::computed("endpoint", AttrType::String, "host:port").stable().highlight(),
                AttrSchema::computed("status", AttrType::String, "available, modifying, backing-up … (read on refresh)").highlight(),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let ids: Vec<String> = prior.keys().map(|s| s.to_string()).collect();
        let mut found = HashMap::new();
        for d in describe(aws, &ids).await? {
            let id = d.db_instance_identifier().unwrap_or_default().to_string();
            let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
            found.insert(id, observed(&d, &p));
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        // DescribeDBInstances filters on no tag, but carries each instance's tags.
        let pages = aws.rds.describe_db_instances().into_paginator().send();
        let mut found = Vec::new();
        for page in super::all_pages("DescribeDBInstances", pages).await? {
            for d in page.db_instances().iter().filter(|d| status_of(d) != "deleting") {
                found.extend(super::owned_pairs(self, &pairs(d.tag_list()), observed(d, &Attrs::new())));
            }
        }
        Ok(Some(found))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let id = req_str(&req.inputs, "identifier")?;
        let Some(d) = one(aws, id).await? else { return Ok(None) };
        if !tags::owned_by(&pairs(d.tag_list()), &req.ownership) {
            return Ok(None);
        }
        // The interrupted create had not seen it available yet; finish that wait as create would.
        Ok(Some(observed(&wait_available(aws, id).await?, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let id = req_str(&req.inputs, "identifier")?;
        // No client token: a second create of the same identifier fails (DBInstanceAlreadyExists)
        // rather than duplicating, and an interrupted create is adopted by identifier and tags.
        let made: Attrs = [("id".to_string(), json!(id))].into_iter().collect();
        match (in_cluster(&req.inputs), opt_str(&req.inputs, "snapshot_identifier")) {
            (Some(cluster), _) => create_member(aws, req, id, cluster).await?,
            (None, Some(snapshot)) => {
                (req.log)(&req.addr, &format!("restoring {id} from snapshot {snapshot}"));
                password(&req.inputs)?;
                restore(aws, req, id, snapshot).await?;
                // The instance exists from here on: a failure hands it to the engine, never leaks it.
                set_password(aws, id, &req.inputs).await.map_err(|e| e.with_created(made.clone()))?;
            }
            (None, None) => create_new(aws, req, id).await?,
        }
        let d = wait_available(aws, id).await.map_err(|e| e.with_created(made))?;
        Ok(outputs(&d))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = id_of(&req.prior_outputs)?;
        let i = &req.inputs;
        let changed = |n: &str| req.changed.iter().any(|c| c == n);
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
        if modify.iter().any(|m| changed(m)) {
            let groups = str_list(i, "vpc_security_group_ids");
            let pick = |n: &str| changed(n).then_some(());
            aws.rds
                .modify_db_instance()
                .db_instance_identifier(id)
                .set_db_instance_class(pick("instance_class").and(opt_str(i, "instance_class").map(str::to_string)))
                .set_allocated_storage(pick("allocated_storage").and(int(i, "allocated_storage")))
                .set_multi_az(pick("multi_az").and(flag(i, "multi_az")))
                .set_master_user_password(pick("password").map(|_| password(i).map(str::to_string)).transpose()?)
                .set_db_parameter_group_name(pick("parameter_group_name").and(opt_str(i, "parameter_group_name").map(str::to_string)))
                .set_vpc_security_group_ids(pick("vpc_security_group_ids").map(|_| groups))
                .set_backup_retention_period(pick("backup_retention_period").and(int(i, "backup_retention_period")))
                .set_engine_version(pick("engine_version").and(opt_str(i, "engine_version").map(str::to_string)))
                .allow_major_version_upgrade(changed("engine_version"))
                .apply_immediately(flag(i, "apply_immediately").unwrap_or(true))
                .send()
                .await
                .map_err(|e| sdk("ModifyDBInstance", e))?;
        }
        retag(aws, req_str(&req.prior_outputs, "arn")?, req).await?;
        Ok(outputs(&wait_available(aws, id).await?))
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?;
        // A cluster's instance has no data of its own to snapshot (RDS refuses one).
        let skip = flag(&req.inputs, "skip_final_snapshot").unwrap_or(false) || in_cluster(&req.inputs).is_some();
        let snapshot = opt_str(&req.inputs, "final_snapshot_identifier").map(str::to_string).unwrap_or_else(|| {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            format!("{id}-final-{secs}")
        });
        if !skip {
            (req.log)(&req.addr, &format!("taking final snapshot {snapshot} of {id}"));
        }
        {
            let call = aws.rds.delete_db_instance().db_instance_identifier(id).skip_final_snapshot(skip);
            let call = if skip { call } else { call.final_db_snapshot_identifier(&snapshot) };
            match call.send().await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(()),
                // Already being deleted (a previous, interrupted destroy): wait for it below.
                Err(e) if code(&e) == Some("InvalidDBInstanceState") => {}
                Err(e) if code(&e) == Some("DBSnapshotAlreadyExists") => {
                    return Err(ProviderError::permanent(format!(
                        "DB instance {id} was not deleted: its final snapshot `{snapshot}` already exists; \
                         set another `final_snapshot_identifier` (or delete the old snapshot)"
                    )));
                }
                Err(e) => return Err(sdk("DeleteDBInstance", e)),
            }
        }
        // Its subnet group and parameter group cannot go before it is gone.
        crate::wait::until(&format!("DB instance {id} to be deleted"), aws.wait_timeout, || async move {
            match aws.rds.describe_db_instances().db_instance_identifier(id).send().await {
                Ok(_) => Ok(None),
                Err(e) if is_not_found(&e) => Ok(Some(())),
                Err(e) => Err(sdk("DescribeDBInstances", e)),
            }
        })
        .await
    }
}
