//! `aws.db_subnet_group`, `aws.db_parameter_group` and `aws.db_instance` against moto through
//! the real SDK; every claim checked with an independent RDS client.

mod support;

use phoenix_core::provider::Provider;
use serde_json::json;
use support::*;

fn tag(tags: &[aws_sdk_rds::types::Tag], k: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string)
}

#[tokio::test]
async fn subnet_and_parameter_groups_create_refresh_change_in_place_and_delete() {
    let moto = Moto::start();
    let p = moto.provider();
    let rds = rds(&moto);
    let (_, subnets) = three_zone_network(&moto.ec2().await).await;

    let sg_in = json!({"name": "app-db", "description": "app database", "subnet_ids": subnets.clone(), "tags": {"tier": "db"}});
    let sg = p.create(create_req("aws.db_subnet_group", "db-subnets", sg_in.clone())).await.unwrap();
    assert_eq!(sg["id"], json!("app-db"));
    let got = rds.describe_db_subnet_groups().db_subnet_group_name("app-db").send().await.unwrap().db_subnet_groups()[0].clone();
    assert_eq!(got.subnets().len(), 3);
    let tags = rds.list_tags_for_resource().resource_name(sg["arn"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(tag(tags.tag_list(), "phoenix:resource").as_deref(), Some("db-subnets"));
    assert_eq!(tag(tags.tag_list(), "tier").as_deref(), Some("db"));
    let obs = observe(&p, "aws.db_subnet_group", "db-subnets", &attrs(sg_in.clone()), &sg).await.unwrap();
    for k in ["name", "description", "subnet_ids", "tags"] {
        assert_eq!(obs.inputs[k], sg_in[k], "{k}");
    }
    assert!(p.adopt(adopt_request("aws.db_subnet_group", "db-subnets", sg_in.clone())).await.unwrap().is_some());
    assert!(p.adopt(adopt_request("aws.db_subnet_group", "other", sg_in.clone())).await.unwrap().is_none());
    // Tags change in place. (The subnets would too, by ModifyDBSubnetGroup, but moto 5.2.1 loses
    // the group on that call — `modify_db_subnet_group` pops it and never puts it back — so
    // that path cannot be checked against moto.)
    let mut two = sg_in.clone();
    two["tags"] = json!({"tier": "data"});
    p.update(update_req("aws.db_subnet_group", "db-subnets", &attrs(sg_in.clone()), &sg, two.clone(), &["tags"])).await.unwrap();
    let tags = rds.list_tags_for_resource().resource_name(sg["arn"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(tag(tags.tag_list(), "tier").as_deref(), Some("data"));
    assert_eq!(tag(tags.tag_list(), "phoenix:lineage").as_deref(), Some("lineage-test"));

    let pg_in = json!({"name": "app-mysql", "family": "mysql8.0", "description": "tuned", "parameters": {"max_connections": "200"}});
    let pg = p.create(create_req("aws.db_parameter_group", "db-params", pg_in.clone())).await.unwrap();
    let user = rds.describe_db_parameters().db_parameter_group_name("app-mysql").source("user").send().await.unwrap();
    assert_eq!(user.parameters().len(), 1);
    assert_eq!(user.parameters()[0].parameter_value(), Some("200"));
    let obs = observe(&p, "aws.db_parameter_group", "db-params", &attrs(pg_in.clone()), &pg).await.unwrap();
    for k in ["name", "family", "description", "parameters"] {
        assert_eq!(obs.inputs[k], pg_in[k], "{k}");
    }
    let mut more = pg_in.clone();
    more["parameters"] = json!({"max_connections": "500", "slow_query_log": "1"});
    p.update(update_req("aws.db_parameter_group", "db-params", &attrs(pg_in.clone()), &pg, more.clone(), &["parameters"])).await.unwrap();
    let obs = observe(&p, "aws.db_parameter_group", "db-params", &attrs(more.clone()), &pg).await.unwrap();
    assert_eq!(obs.inputs["parameters"], more["parameters"]);

    for (ty, name, inputs, outputs) in [("aws.db_parameter_group", "db-params", more, pg), ("aws.db_subnet_group", "db-subnets", two, sg)] {
        p.delete(delete_req(ty, name, &attrs(inputs.clone()), &outputs)).await.unwrap();
        p.delete(delete_req(ty, name, &attrs(inputs.clone()), &outputs)).await.unwrap();
        assert!(observe(&p, ty, name, &attrs(inputs), &outputs).await.is_none(), "{ty}");
    }
}

#[tokio::test]
async fn db_instance_multi_az_resizes_in_place_leaves_a_named_final_snapshot_and_restores_from_it() {
    let moto = Moto::start();
    let p = moto.provider();
    let rds = rds(&moto);
    let (_, subnets) = three_zone_network(&moto.ec2().await).await;
    p.create(create_req("aws.db_subnet_group", "db-subnets", json!({"name": "app-db", "subnet_ids": subnets}))).await.unwrap();

    let inputs = json!({
        "identifier": "app-db-1", "engine": "mysql", "engine_version": "8.0", "instance_class": "db.t3.micro",
        "allocated_storage": 20, "multi_az": true, "username": "admin", "password": "correct-horse-battery",
        "db_subnet_group_name": "app-db", "backup_retention_period": 7,
        "final_snapshot_identifier": "app-db-1-final", "tags": {"tier": "db"},
    });
    let out = p.create(create_req("aws.db_instance", "db", inputs.clone())).await.unwrap();
    assert_eq!(out["status"], json!("available"));
    assert!(out["endpoint"].as_str().unwrap().ends_with(":3306"), "{out:?}");
    // Nothing the provider returns holds the password.
    assert!(!serde_json::to_string(&out).unwrap().contains("correct-horse"));

    let d = rds.describe_db_instances().db_instance_identifier("app-db-1").send().await.unwrap().db_instances()[0].clone();
    assert_eq!((d.engine(), d.db_instance_class(), d.multi_az()), (Some("mysql"), Some("db.t3.micro"), Some(true)));
    assert_eq!(d.db_instance_status(), Some("available"));
    assert_eq!(d.db_subnet_group().unwrap().db_subnet_group_name(), Some("app-db"));
    assert_eq!(tag(d.tag_list(), "phoenix:resource").as_deref(), Some("db"));

    let obs = observe(&p, "aws.db_instance", "db", &attrs(inputs.clone()), &out).await.unwrap();
    for k in [
        "identifier",
        "engine",
        "engine_version",
        "instance_class",
        "allocated_storage",
        "multi_az",
        "username",
        "db_subnet_group_name",
        "backup_retention_period",
        "tags",
    ] {
        assert_eq!(obs.inputs[k], inputs[k], "{k}");
    }
    assert!(!obs.inputs.contains_key("password"), "the password is never read back");
    assert!(p.adopt(adopt_request("aws.db_instance", "db", inputs.clone())).await.unwrap().is_some());
    assert!(p.adopt(adopt_request("aws.db_instance", "not-ours", inputs.clone())).await.unwrap().is_none());

    // A larger class in place; same instance.
    let mut bigger = inputs.clone();
    bigger["instance_class"] = json!("db.t3.small");
    let new =
        p.update(update_req("aws.db_instance", "db", &attrs(inputs.clone()), &out, bigger.clone(), &["instance_class"])).await.unwrap();
    assert_eq!(new["arn"], out["arn"]);
    let d = rds.describe_db_instances().db_instance_identifier("app-db-1").send().await.unwrap().db_instances()[0].clone();
    assert_eq!(d.db_instance_class(), Some("db.t3.small"));

    // Destroy leaves the named final snapshot.
    p.delete(delete_req("aws.db_instance", "db", &attrs(bigger.clone()), &new)).await.unwrap();
    assert!(rds.describe_db_instances().db_instance_identifier("app-db-1").send().await.is_err());
    let snap = rds.describe_db_snapshots().db_snapshot_identifier("app-db-1-final").send().await.unwrap().db_snapshots()[0].clone();
    assert_eq!(snap.db_instance_identifier(), Some("app-db-1"));
    p.delete(delete_req("aws.db_instance", "db", &attrs(bigger.clone()), &new)).await.unwrap();

    // Restore from it: a new instance, with the definition's tags.
    let mut restored_in = inputs.clone();
    restored_in["identifier"] = json!("app-db-2");
    restored_in["snapshot_identifier"] = json!("app-db-1-final");
    restored_in["final_snapshot_identifier"] = json!("app-db-2-final");
    let r = p.create(create_req("aws.db_instance", "db2", restored_in.clone())).await.unwrap();
    assert_eq!(r["status"], json!("available"));
    let d = rds.describe_db_instances().db_instance_identifier("app-db-2").send().await.unwrap().db_instances()[0].clone();
    assert_eq!((d.engine(), d.db_instance_status()), (Some("mysql"), Some("available")));
    assert_eq!(tag(d.tag_list(), "phoenix:resource").as_deref(), Some("db2"));

    // skip_final_snapshot: no snapshot.
    let mut skip = restored_in.clone();
    skip["skip_final_snapshot"] = json!(true);
    p.delete(delete_req("aws.db_instance", "db2", &attrs(skip), &r)).await.unwrap();
    assert!(rds.describe_db_snapshots().db_snapshot_identifier("app-db-2-final").send().await.is_err());

    // A short password is refused before any call, without echoing it.
    let mut weak = inputs.clone();
    weak["identifier"] = json!("app-db-3");
    weak["password"] = json!("hunter2");
    let e = p.create(create_req("aws.db_instance", "db3", weak)).await.unwrap_err();
    assert!(e.message.contains("at least 8") && !e.message.contains("hunter2"), "{}", e.message);
}
