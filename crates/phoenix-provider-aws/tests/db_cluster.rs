//! `aws.db_cluster` against moto through the real SDK; every claim checked
//! with an independent RDS client.

mod support;

use phoenix_core::provider::{Leaks, Provider, Recovery};
use serde_json::json;
use support::*;

fn tag(tags: &[aws_sdk_rds::types::Tag], k: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string)
}

async fn cluster(rds: &aws_sdk_rds::Client, id: &str) -> aws_sdk_rds::types::DbCluster {
    rds.describe_db_clusters().db_cluster_identifier(id).send().await.unwrap().db_clusters()[0].clone()
}

#[tokio::test]
async fn an_aurora_cluster_is_created_read_in_one_call_changed_in_place_protected_snapshotted_on_destroy_and_restored() {
    let moto = Moto::start();
    let p = moto.provider();
    let rds = rds(&moto);
    let ec2 = moto.ec2().await;
    let (vpc, subnets) = three_zone_network(&ec2).await;
    let sg = ec2.create_security_group().group_name("db").description("db").vpc_id(&vpc).send().await.unwrap();
    let sg = sg.group_id().unwrap().to_string();
    p.create(create_req("aws.db_subnet_group", "db-subnets", json!({"name": "aurora", "subnet_ids": subnets}))).await.unwrap();

    let inputs = json!({
        "cluster_identifier": "orders", "engine": "aurora-postgresql", "engine_version": "15.4",
        "master_username": "app", "master_password": "correct-horse-battery", "database_name": "orders",
        "db_subnet_group_name": "aurora", "vpc_security_group_ids": [sg], "port": 5432, "backup_retention_period": 7,
        "final_snapshot_identifier": "orders-final", "tags": {"tier": "db"},
    });
    let out = p.create(create_req("aws.db_cluster", "db", inputs.clone())).await.unwrap();
    assert_eq!((out["id"].as_str(), out["status"].as_str()), (Some("orders"), Some("available")));
    assert!(!out["endpoint"].as_str().unwrap().is_empty() && !out["reader_endpoint"].as_str().unwrap().is_empty(), "{out:?}");
    assert_ne!(out["endpoint"], out["reader_endpoint"]);
    assert!(!serde_json::to_string(&out).unwrap().contains("correct-horse"), "nothing returned holds the password");

    let c = cluster(&rds, "orders").await;
    assert_eq!((c.engine(), c.engine_version(), c.master_username()), (Some("aurora-postgresql"), Some("15.4"), Some("app")));
    assert_eq!((c.db_subnet_group(), c.port(), c.backup_retention_period()), (Some("aurora"), Some(5432), Some(7)));
    assert_eq!(c.vpc_security_groups()[0].vpc_security_group_id(), Some(sg.as_str()));
    assert_eq!(c.endpoint(), out["endpoint"].as_str());
    assert_eq!((tag(c.tag_list(), "phoenix:resource").as_deref(), tag(c.tag_list(), "tier").as_deref()), (Some("db"), Some("db")));

    // Read back as declared; never the password.
    let obs = observe(&p, "aws.db_cluster", "db", &attrs(inputs.clone()), &out).await.unwrap();
    for k in [
        "cluster_identifier",
        "engine",
        "engine_version",
        "master_username",
        "database_name",
        "db_subnet_group_name",
        "vpc_security_group_ids",
        "port",
        "backup_retention_period",
        "tags",
    ] {
        assert_eq!(obs.inputs[k], inputs[k], "{k}");
    }
    assert!(!obs.inputs.contains_key("master_password"));
    assert!(p.adopt(adopt_request("aws.db_cluster", "db", inputs.clone())).await.unwrap().is_some());
    assert!(p.adopt(adopt_request("aws.db_cluster", "not-ours", inputs.clone())).await.unwrap().is_none());

    // A second cluster; both refreshed in one DescribeDBClusters, a gone one is absent.
    let mut second_in = inputs.clone();
    second_in["cluster_identifier"] = json!("reports");
    second_in.as_object_mut().unwrap().remove("final_snapshot_identifier");
    second_in["skip_final_snapshot"] = json!(true);
    let second = p.create(create_req("aws.db_cluster", "reports", second_in.clone())).await.unwrap();
    let gone = attrs(json!({"id": "never-made", "arn": ""}));
    let before = p.api_calls();
    let read = p
        .refresh(vec![
            refresh_item("aws.db_cluster", "db", &attrs(inputs.clone()), &out),
            refresh_item("aws.db_cluster", "reports", &attrs(second_in.clone()), &second),
            refresh_item("aws.db_cluster", "gone", &attrs(second_in.clone()), &gone),
        ])
        .await;
    assert_eq!(p.api_calls() - before, 1, "one DescribeDBClusters for the batch");
    let read: Vec<_> = read.into_iter().map(Result::unwrap).collect();
    assert_eq!(read[1].as_ref().unwrap().outputs["id"], json!("reports"));
    assert!(read[0].is_some() && read[2].is_none());

    // gc sees both as Phoenix's.
    let listed = p.list_owned().await.unwrap();
    assert!(!listed.unsupported.iter().any(|t| t == "aws.db_cluster"));
    let mut owned: Vec<_> = listed.objects.iter().filter(|o| o.type_name == "aws.db_cluster").map(|o| o.outputs["id"].clone()).collect();
    owned.sort_by_key(|v| v.to_string());
    assert_eq!(owned, vec![json!("orders"), json!("reports")]);

    // In place: retention, port, protection, password; the same cluster.
    let mut changed = inputs.clone();
    changed["backup_retention_period"] = json!(14);
    changed["port"] = json!(6432);
    changed["deletion_protection"] = json!(true);
    changed["master_password"] = json!("another-long-secret");
    let what = ["backup_retention_period", "port", "deletion_protection", "master_password"];
    let new = p.update(update_req("aws.db_cluster", "db", &attrs(inputs.clone()), &out, changed.clone(), &what)).await.unwrap();
    assert_eq!(new["arn"], out["arn"]);
    let c = cluster(&rds, "orders").await;
    assert_eq!((c.backup_retention_period(), c.port(), c.deletion_protection()), (Some(14), Some(6432), Some(true)));

    // Protected: destroy refuses, saying why; unprotected, it leaves the named final snapshot.
    let e = p.delete(delete_req("aws.db_cluster", "db", &attrs(changed.clone()), &new)).await.unwrap_err();
    assert!(e.message.contains("deletion_protection"), "{}", e.message);
    assert_eq!(cluster(&rds, "orders").await.status(), Some("available"));
    let mut open = changed.clone();
    open["deletion_protection"] = json!(false);
    p.update(update_req("aws.db_cluster", "db", &attrs(changed.clone()), &new, open.clone(), &["deletion_protection"])).await.unwrap();
    p.delete(delete_req("aws.db_cluster", "db", &attrs(open.clone()), &new)).await.unwrap();
    p.delete(delete_req("aws.db_cluster", "db", &attrs(open.clone()), &new)).await.unwrap();
    assert!(rds.describe_db_clusters().db_cluster_identifier("orders").send().await.is_err());
    let snaps = rds.describe_db_cluster_snapshots().db_cluster_snapshot_identifier("orders-final").send().await.unwrap();
    assert_eq!(snaps.db_cluster_snapshots()[0].db_cluster_identifier(), Some("orders"));

    // Restored from it: a new cluster carrying the definition's placement and tags.
    let mut restored_in = open.clone();
    restored_in["cluster_identifier"] = json!("orders-2");
    restored_in["snapshot_identifier"] = json!("orders-final");
    restored_in["skip_final_snapshot"] = json!(true);
    let r = p.create(create_req("aws.db_cluster", "db2", restored_in.clone())).await.unwrap();
    assert_eq!(r["status"], json!("available"));
    let c = cluster(&rds, "orders-2").await;
    assert_eq!((c.engine(), c.db_subnet_group(), c.backup_retention_period()), (Some("aurora-postgresql"), Some("aurora"), Some(14)));
    assert_eq!(tag(c.tag_list(), "phoenix:resource").as_deref(), Some("db2"));

    // skip_final_snapshot: none taken.
    for (name, i, o) in [("db2", restored_in, r), ("reports", second_in, second)] {
        p.delete(delete_req("aws.db_cluster", name, &attrs(i), &o)).await.unwrap();
    }
    let left = rds.describe_db_cluster_snapshots().send().await.unwrap();
    let manual: Vec<_> = left.db_cluster_snapshots().iter().filter(|s| s.snapshot_type() == Some("manual")).collect();
    assert_eq!(manual.len(), 1, "only orders-final: {manual:?}");

    // A short password is refused before any call, without echoing it.
    let mut weak = inputs.clone();
    weak["cluster_identifier"] = json!("weak");
    weak["master_password"] = json!("hunter2");
    let e = p.create(create_req("aws.db_cluster", "weak", weak)).await.unwrap_err();
    assert!(e.message.contains("at least 8") && !e.message.contains("hunter2"), "{}", e.message);
    assert!(rds.describe_db_clusters().db_cluster_identifier("weak").send().await.is_err());
}

#[tokio::test]
async fn db_instances_join_a_cluster_without_their_own_user_or_snapshots_and_leave_it_on_delete() {
    let moto = Moto::start();
    let p = moto.provider();
    let rds = rds(&moto);
    let cluster_in = json!({
        "cluster_identifier": "ledger", "engine": "aurora-mysql", "master_username": "app",
        "master_password": "correct-horse-battery", "skip_final_snapshot": true,
    });
    let c = p.create(create_req("aws.db_cluster", "ledger", cluster_in.clone())).await.unwrap();
    let member =
        |id: &str| json!({"identifier": id, "engine": "aurora-mysql", "instance_class": "db.r6g.large", "db_cluster_identifier": "ledger"});
    let mut made = Vec::new();
    for id in ["ledger-1", "ledger-2"] {
        let inputs = member(id);
        // Its data is the cluster's: recovery points snapshot the cluster, not it.
        assert!(!p.is_stateful("aws.db_instance", &attrs(inputs.clone())));
        let out = p.create(create_req("aws.db_instance", id, inputs.clone())).await.unwrap();
        assert_eq!(out["status"], json!("available"));
        made.push((id, inputs, out));
    }
    assert!(p.is_stateful("aws.db_instance", &attrs(json!({"identifier": "alone"}))));

    // Checked independently: both are the cluster's, the first its writer.
    let got = rds.describe_db_clusters().db_cluster_identifier("ledger").send().await.unwrap().db_clusters()[0].clone();
    let mut members: Vec<_> =
        got.db_cluster_members().iter().map(|m| (m.db_instance_identifier().unwrap().to_string(), m.is_cluster_writer())).collect();
    members.sort();
    assert_eq!(members, [("ledger-1".to_string(), Some(true)), ("ledger-2".to_string(), Some(false))]);
    let d = rds.describe_db_instances().db_instance_identifier("ledger-2").send().await.unwrap().db_instances()[0].clone();
    assert_eq!((d.db_cluster_identifier(), d.engine()), (Some("ledger"), Some("aurora-mysql")));
    for (id, inputs, out) in &made {
        let obs = observe(&p, "aws.db_instance", id, &attrs(inputs.clone()), out).await.unwrap();
        for k in ["identifier", "engine", "instance_class", "db_cluster_identifier"] {
            assert_eq!(obs.inputs[k], inputs[k], "{id}: {k}");
        }
        assert!(!obs.inputs.contains_key("username"), "the user is the cluster's: {:?}", obs.inputs);
    }

    // What is the cluster's is refused on an instance, naming the attribute and the cluster.
    let mut wrong = member("ledger-3");
    wrong["password"] = json!("another-long-secret");
    let e = p.create(create_req("aws.db_instance", "ledger-3", wrong)).await.unwrap_err();
    assert!(e.message.contains("`password`") && e.message.contains("ledger") && !e.message.contains("another-long"), "{}", e.message);
    // A standalone instance still needs its user.
    let e = p
        .create(create_req("aws.db_instance", "alone", json!({"identifier": "alone", "engine": "mysql", "instance_class": "db.t3.micro"})))
        .await
        .unwrap_err();
    assert!(e.message.contains("username"), "{}", e.message);

    // Destroyed without final snapshots (RDS takes none of a cluster's instance), then the cluster.
    for (id, inputs, out) in made {
        p.delete(delete_req("aws.db_instance", id, &attrs(inputs), &out)).await.unwrap();
    }
    let snaps = rds.describe_db_snapshots().snapshot_type("manual").send().await.unwrap();
    assert!(snaps.db_snapshots().is_empty(), "{:?}", snaps.db_snapshots());
    let got = rds.describe_db_clusters().db_cluster_identifier("ledger").send().await.unwrap().db_clusters()[0].clone();
    assert!(got.db_cluster_members().is_empty());
    p.delete(delete_req("aws.db_cluster", "ledger", &attrs(cluster_in), &c)).await.unwrap();
    assert!(rds.describe_db_clusters().db_cluster_identifier("ledger").send().await.is_err());
}
