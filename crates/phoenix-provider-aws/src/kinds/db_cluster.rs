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

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_rds::types::{DbCluster as RdsCluster, Filter};
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, OwnedObject, ProviderError, RefreshItem, UpdateRequest,
};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::db_instance::check_identifier;
use super::db_subnet_group::{pairs, rds_tags, retag};
use super::lb::same_set;
use super::{Kind, id_attr, id_of, in_item_order, opt_i64, opt_str, priors, req_str, str_list, tags_attr};
use crate::client::Aws;
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct DbCluster;

/// Statuses a cluster does not recover from by waiting.
const FAILED: [&str; 3] = ["failed", "inaccessible-encryption-credentials", "incompatible-restore"];

fn int(inputs: &Attrs, name: &str) -> Option<i32> {
    opt_i64(inputs, name).and_then(|v| i32::try_from(v).ok())
}

fn flag(inputs: &Attrs, name: &str) -> Option<bool> {
    inputs.get(name).and_then(Value::as_bool)
}

fn status_of(c: &RdsCluster) -> &str {
    c.status().unwrap_or("unknown")
}

fn outputs(c: &RdsCluster) -> Attrs {
    let mut o = Attrs::new();
    o.insert("id".into(), json!(c.db_cluster_identifier().unwrap_or_default()));
    o.insert("arn".into(), json!(c.db_cluster_arn().unwrap_or_default()));
    o.insert("endpoint".into(), json!(c.endpoint().unwrap_or_default()));
    o.insert("reader_endpoint".into(), json!(c.reader_endpoint().unwrap_or_default()));
    o.insert("port".into(), json!(c.port().unwrap_or_default()));
    o.insert("status".into(), json!(status_of(c)));
    o
}

fn observed(c: &RdsCluster, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    inputs.insert("cluster_identifier".into(), json!(c.db_cluster_identifier().unwrap_or_default()));
    inputs.insert("engine".into(), json!(c.engine().unwrap_or_default()));
    inputs.insert("master_username".into(), json!(c.master_username().unwrap_or_default()));
    // `8.0` in the definition is satisfied by the 8.0.mysql_aurora.3.05.2 RDS chose.
    if let (Some(want), Some(have)) = (opt_str(prior, "engine_version"), c.engine_version()) {
        let same = have == want || have.starts_with(&format!("{want}."));
        inputs.insert("engine_version".into(), json!(if same { want } else { have }));
    }
    if prior.contains_key("database_name") {
        inputs.insert("database_name".into(), c.database_name().map_or(Value::Null, |n| json!(n)));
    }
    if prior.contains_key("port") {
        inputs.insert("port".into(), json!(c.port().unwrap_or_default()));
    }
    if prior.contains_key("backup_retention_period") {
        inputs.insert("backup_retention_period".into(), json!(c.backup_retention_period().unwrap_or_default()));
    }
    if prior.contains_key("deletion_protection") {
        inputs.insert("deletion_protection".into(), json!(c.deletion_protection().unwrap_or(false)));
    }
    if prior.contains_key("db_subnet_group_name") {
        inputs.insert("db_subnet_group_name".into(), json!(c.db_subnet_group().unwrap_or_default()));
    }
    if prior.contains_key("vpc_security_group_ids") {
        let groups = c.vpc_security_groups().iter().filter_map(|g| g.vpc_security_group_id().map(str::to_string)).collect();
        inputs.insert("vpc_security_group_ids".into(), same_set(prior, "vpc_security_group_ids", groups));
    }
    tags::observe_pairs(&mut inputs, prior, &pairs(c.tag_list()));
    Observed { inputs, outputs: outputs(c) }
}

/// Clusters by identifier (a filter, so identifiers that are gone are simply
/// absent), or every cluster of the region when `ids` is `None`.
async fn describe(aws: &Aws, ids: Option<&[String]>) -> Result<Vec<RdsCluster>, ProviderError> {
    let mut found = Vec::new();
    let chunks: Vec<Option<Vec<String>>> = match ids {
        Some(ids) => ids.chunks(100).map(|c| Some(c.to_vec())).collect(),
        None => vec![None],
    };
    for chunk in chunks {
        let filter = chunk.map(|c| Filter::builder().name("db-cluster-id").set_values(Some(c)).build());
        let pages = aws.rds.describe_db_clusters().set_filters(filter.map(|f| vec![f])).into_paginator().send();
        for page in super::all_pages("DescribeDBClusters", pages).await? {
            found.extend(page.db_clusters().iter().filter(|c| status_of(c) != "deleting").cloned());
        }
    }
    Ok(found)
}

async fn one(aws: &Aws, id: &str) -> Result<Option<RdsCluster>, ProviderError> {
    Ok(describe(aws, Some(&[id.to_string()])).await?.into_iter().next())
}

/// Waits until the cluster is `available`.
async fn wait_available(aws: &Aws, id: &str) -> Result<RdsCluster, ProviderError> {
    crate::wait::until(&format!("DB cluster {id} to be available"), aws.wait_timeout, || async move {
        let Some(c) = one(aws, id).await? else { return Ok(None) };
        match status_of(&c) {
            "available" => Ok(Some(c)),
            s if FAILED.contains(&s) => Err(ProviderError::permanent(format!("DB cluster {id} is `{s}`"))),
            _ => Ok(None),
        }
    })
    .await
}

fn password(inputs: &Attrs) -> Result<&str, ProviderError> {
    let p = req_str(inputs, "master_password")?;
    if p.len() < 8 {
        // Said here without the value: it is a secret.
        return Err(ProviderError::permanent("`master_password` must be at least 8 characters"));
    }
    Ok(p)
}

fn groups(inputs: &Attrs) -> Option<Vec<String>> {
    let g = str_list(inputs, "vpc_security_group_ids");
    (!g.is_empty()).then_some(g)
}

async fn create_new(aws: &Aws, req: &CreateRequest, id: &str) -> Result<(), ProviderError> {
    let i = &req.inputs;
    aws.rds
        .create_db_cluster()
        .db_cluster_identifier(id)
        .engine(req_str(i, "engine")?)
        .set_engine_version(opt_str(i, "engine_version").map(str::to_string))
        .master_username(req_str(i, "master_username")?)
        .master_user_password(password(i)?)
        .set_database_name(opt_str(i, "database_name").map(str::to_string))
        .set_db_subnet_group_name(opt_str(i, "db_subnet_group_name").map(str::to_string))
        .set_vpc_security_group_ids(groups(i))
        .set_port(int(i, "port"))
        .set_backup_retention_period(int(i, "backup_retention_period"))
        .set_deletion_protection(flag(i, "deletion_protection"))
        .copy_tags_to_snapshot(true)
        .set_tags(Some(rds_tags(&req.ownership, i.get("tags"))))
        .send()
        .await
        .map_err(|e| sdk("CreateDBCluster", e))?;
    Ok(())
}

/// Starts a restore from a cluster snapshot. RestoreDBClusterFromSnapshot takes
/// no password (nor backup retention): [`finish_restore`] sets the definition's
/// once the cluster is available.
async fn restore(aws: &Aws, req: &CreateRequest, id: &str, snapshot: &str) -> Result<(), ProviderError> {
    let i = &req.inputs;
    aws.rds
        .restore_db_cluster_from_snapshot()
        .db_cluster_identifier(id)
        .snapshot_identifier(snapshot)
        .engine(req_str(i, "engine")?)
        .set_engine_version(opt_str(i, "engine_version").map(str::to_string))
        .set_database_name(opt_str(i, "database_name").map(str::to_string))
        .set_db_subnet_group_name(opt_str(i, "db_subnet_group_name").map(str::to_string))
        .set_vpc_security_group_ids(groups(i))
        .set_port(int(i, "port"))
        .set_deletion_protection(flag(i, "deletion_protection"))
        .copy_tags_to_snapshot(true)
        .set_tags(Some(rds_tags(&req.ownership, i.get("tags"))))
        .send()
        .await
        .map_err(|e| sdk("RestoreDBClusterFromSnapshot", e))?;
    Ok(())
}

async fn finish_restore(aws: &Aws, id: &str, inputs: &Attrs) -> Result<(), ProviderError> {
    wait_available(aws, id).await?;
    aws.rds
        .modify_db_cluster()
        .db_cluster_identifier(id)
        .master_user_password(password(inputs)?)
        .set_backup_retention_period(int(inputs, "backup_retention_period"))
        .apply_immediately(true)
        .send()
        .await
        .map_err(|e| sdk("ModifyDBCluster", e))?;
    Ok(())
}

#[async_trait]
impl Kind for DbCluster {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.db_cluster",
            description: "An Aurora DB cluster (its instances are aws.db_instance with db_cluster_identifier)",
            attrs: vec![
                AttrSchema::required("cluster_identifier", AttrType::String, "unique in the region: lower-case letters, digits, hyphens")
                    .force_new()
                    .validate_with(check_identifier),
                AttrSchema::required("engine", AttrType::String, "aurora-mysql or aurora-postgresql").force_new(),
                AttrSchema::optional("engine_version", AttrType::String, "e.g. 8.0.mysql_aurora.3.05.2 (in place: upgrades)"),
                AttrSchema::required("master_username", AttrType::String, "the master user").force_new(),
                AttrSchema::required(
                    "master_password",
                    AttrType::String,
                    "the master password; take it from env(), never write it in a file (in place)",
                )
                .sensitive(),
                AttrSchema::optional("database_name", AttrType::String, "a database to create").force_new(),
                AttrSchema::optional("db_subnet_group_name", AttrType::String, "where it is placed (${subnets.id})").force_new(),
                AttrSchema::optional("vpc_security_group_ids", AttrType::List(Box::new(AttrType::String)), "security groups (in place)"),
                AttrSchema::optional("port", AttrType::Int, "the port its endpoints listen on (in place)")
                    .validate_with(validators::non_negative),
                AttrSchema::optional("backup_retention_period", AttrType::Int, "days of automated backups, 1–35 (in place)")
                    .validate_with(validators::non_negative),
                AttrSchema::optional("deletion_protection", AttrType::Bool, "refuse deletion while set (in place)").default(json!(false)),
                AttrSchema::optional(
                    "snapshot_identifier",
                    AttrType::String,
                    "restore from this cluster snapshot instead of starting empty",
                )
                .force_new(),
                AttrSchema::optional(
                    "final_snapshot_identifier",
                    AttrType::String,
                    "the cluster snapshot taken on destroy (default <cluster_identifier>-final-<time>)",
                ),
                AttrSchema::optional("skip_final_snapshot", AttrType::Bool, "destroy without a final snapshot").default(json!(false)),
                AttrSchema::optional("apply_immediately", AttrType::Bool, "apply changes now, not in the maintenance window")
                    .default(json!(true)),
                tags_attr(),
                id_attr("the cluster identifier"),
                AttrSchema::computed("arn", AttrType::String, "the cluster's ARN").stable(),
                AttrSchema::computed("endpoint", AttrType::String, "the writer endpoint's host name").stable().highlight(),
                AttrSchema::computed("reader_endpoint", AttrType::String, "the reader endpoint's host name").stable(),
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
        for c in describe(aws, Some(&ids)).await? {
            let id = c.db_cluster_identifier().unwrap_or_default().to_string();
            let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
            found.insert(id, observed(&c, &p));
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<OwnedObject>>, ProviderError> {
        // DescribeDBClusters has no tag filter, but returns each cluster's tags.
        let found = describe(aws, None).await?;
        Ok(Some(found.iter().filter_map(|c| super::owned_pairs(self, &pairs(c.tag_list()), observed(c, &Attrs::new()))).collect()))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let id = req_str(&req.inputs, "cluster_identifier")?;
        let Some(c) = one(aws, id).await? else { return Ok(None) };
        if !tags::owned_by(&pairs(c.tag_list()), &req.ownership) {
            return Ok(None);
        }
        // The interrupted create had not seen it available yet; finish that wait as create would.
        Ok(Some(observed(&wait_available(aws, id).await?, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let id = req_str(&req.inputs, "cluster_identifier")?;
        // No client token: a second create of the same identifier fails (DBClusterAlreadyExistsFault)
        // rather than duplicating, and an interrupted create is adopted by identifier and tags.
        let made: Attrs = [("id".to_string(), json!(id))].into_iter().collect();
        match opt_str(&req.inputs, "snapshot_identifier") {
            Some(snapshot) => {
                (req.log)(&req.addr, &format!("restoring cluster {id} from snapshot {snapshot}"));
                password(&req.inputs)?;
                restore(aws, req, id, snapshot).await?;
                // The cluster exists from here on: a failure hands it to the engine, never leaks it.
                finish_restore(aws, id, &req.inputs).await.map_err(|e| e.with_created(made.clone()))?;
            }
            None => create_new(aws, req, id).await?,
        }
        let c = wait_available(aws, id).await.map_err(|e| e.with_created(made))?;
        Ok(outputs(&c))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = id_of(&req.prior_outputs)?;
        let i = &req.inputs;
        let changed = |n: &str| req.changed.iter().any(|c| c == n);
        let modify =
            ["engine_version", "master_password", "vpc_security_group_ids", "port", "backup_retention_period", "deletion_protection"];
        if modify.iter().any(|m| changed(m)) {
            let pick = |n: &str| changed(n).then_some(());
            aws.rds
                .modify_db_cluster()
                .db_cluster_identifier(id)
                .set_engine_version(pick("engine_version").and(opt_str(i, "engine_version").map(str::to_string)))
                .allow_major_version_upgrade(changed("engine_version"))
                .set_master_user_password(pick("master_password").map(|_| password(i).map(str::to_string)).transpose()?)
                .set_vpc_security_group_ids(pick("vpc_security_group_ids").map(|_| str_list(i, "vpc_security_group_ids")))
                .set_port(pick("port").and(int(i, "port")))
                .set_backup_retention_period(pick("backup_retention_period").and(int(i, "backup_retention_period")))
                .set_deletion_protection(pick("deletion_protection").map(|_| flag(i, "deletion_protection").unwrap_or(false)))
                .apply_immediately(flag(i, "apply_immediately").unwrap_or(true))
                .send()
                .await
                .map_err(|e| sdk("ModifyDBCluster", e))?;
        }
        retag(aws, req_str(&req.prior_outputs, "arn")?, req).await?;
        Ok(outputs(&wait_available(aws, id).await?))
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?;
        let skip = flag(&req.inputs, "skip_final_snapshot").unwrap_or(false);
        let snapshot = opt_str(&req.inputs, "final_snapshot_identifier").map(str::to_string).unwrap_or_else(|| {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            format!("{id}-final-{secs}")
        });
        if !skip {
            (req.log)(&req.addr, &format!("taking final snapshot {snapshot} of cluster {id}"));
        }
        {
            let call = aws.rds.delete_db_cluster().db_cluster_identifier(id).skip_final_snapshot(skip);
            let call = if skip { call } else { call.final_db_snapshot_identifier(&snapshot) };
            match call.send().await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(()),
                // Already being deleted (a previous, interrupted destroy): wait for it below.
                Err(e) if code(&e) == Some("InvalidDBClusterStateFault") => {}
                Err(e) if code(&e) == Some("DBClusterSnapshotAlreadyExistsFault") => {
                    return Err(ProviderError::permanent(format!(
                        "DB cluster {id} was not deleted: its final snapshot `{snapshot}` already exists; \
                         set another `final_snapshot_identifier` (or delete the old snapshot)"
                    )));
                }
                Err(e) if flag(&req.inputs, "deletion_protection") == Some(true) => {
                    return Err(ProviderError::permanent(format!(
                        "DB cluster {id} has deletion_protection = true: set it to false and apply before destroying it ({})",
                        sdk("DeleteDBCluster", e).message
                    )));
                }
                Err(e) => return Err(sdk("DeleteDBCluster", e)),
            }
        }
        // Its subnet group cannot go before it is gone.
        crate::wait::until(&format!("DB cluster {id} to be deleted"), aws.wait_timeout, || async move {
            match aws.rds.describe_db_clusters().db_cluster_identifier(id).send().await {
                Ok(_) => Ok(None),
                Err(e) if is_not_found(&e) => Ok(Some(())),
                Err(e) => Err(sdk("DescribeDBClusters", e)),
            }
        })
        .await
    }
}
