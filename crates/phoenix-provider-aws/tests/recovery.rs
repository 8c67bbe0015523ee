//! Recovery-point snapshots on moto — EBS volumes, RDS instances, Aurora
//! clusters and stateful instances' images: taken tagged and complete,
//! copied to another region, restored from, deleted.

mod compute;
mod support;

use std::sync::Arc;

use aws_sdk_ec2::types::Filter;
use phoenix_core::ResourceAddr;
use phoenix_core::provider::*;
use serde_json::json;
use support::*;

#[tokio::test]
async fn a_volume_snapshot_is_tagged_complete_copied_restorable_and_deletable() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    assert_eq!(p.restore_attr("aws.volume"), Some("snapshot_id"));
    assert_eq!(p.restore_attr("aws.vpc"), None);

    let out = p.create(create_req("aws.volume", "data", json!({"availability_zone": "eu-west-1a", "size": 3}))).await.unwrap();
    let volume = out["id"].as_str().unwrap().to_string();
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let l = lines.clone();
    let req = SnapshotRequest {
        addr: ResourceAddr::parse("data").unwrap(),
        type_name: "aws.volume".into(),
        inputs: attrs(json!({"availability_zone": "eu-west-1a", "size": 3})),
        outputs: out.clone(),
        ownership: ownership("data"),
        point: "rp-1".into(),
        log: Arc::new(move |_, line| l.lock().unwrap().push(line.to_string())),
    };
    let snap = p.snapshot(req).await.unwrap();
    assert_eq!(snap.region.as_deref(), Some(REGION));
    assert!(lines.lock().unwrap().iter().any(|l| l.contains(&snap.id)), "progress names the snapshot");

    // Checked independently: complete, from the volume, tagged with its owner and the point.
    let found =
        ec2.describe_snapshots().filters(Filter::builder().name("tag:phoenix:recovery-point").values("rp-1").build()).send().await.unwrap();
    let s = &found.snapshots()[0];
    assert_eq!((s.snapshot_id(), s.volume_id()), (Some(snap.id.as_str()), Some(volume.as_str())));
    assert_eq!(s.state(), Some(&aws_sdk_ec2::types::SnapshotState::Completed));
    let tag = |k: &str| s.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string);
    assert_eq!((tag("phoenix:environment"), tag("phoenix:resource")), (Some("test".into()), Some("data".into())));

    // A copy in another region, found there by an independent client.
    let copy = p.copy_snapshot("aws.volume", &snap, "us-east-2").await.unwrap();
    assert_eq!(copy.region.as_deref(), Some("us-east-2"));
    assert_ne!(copy.id, snap.id);
    let conf = ec2.config().to_builder().region(aws_sdk_ec2::config::Region::new("us-east-2")).build();
    let east = aws_sdk_ec2::Client::from_conf(conf);
    let there = east.describe_snapshots().snapshot_ids(&copy.id).send().await.unwrap();
    assert_eq!(there.snapshots().len(), 1, "the copy lives in us-east-2");

    // Restorable: a new volume from it.
    let restored = p
        .create(create_req("aws.volume", "data2", json!({"availability_zone": "eu-west-1b", "snapshot_id": snap.id, "volume_type": "gp3"})))
        .await
        .unwrap();
    let v = ec2.describe_volumes().volume_ids(restored["id"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(v.volumes()[0].snapshot_id(), Some(snap.id.as_str()));

    // Deleted in their own regions; deleting again is fine.
    p.delete_snapshot("aws.volume", &copy).await.unwrap();
    p.delete_snapshot("aws.volume", &snap).await.unwrap();
    p.delete_snapshot("aws.volume", &snap).await.unwrap();
    assert!(east.describe_snapshots().snapshot_ids(&copy.id).send().await.map(|o| o.snapshots().is_empty()).unwrap_or(true));
    let left = ec2.describe_snapshots().owner_ids("self").send().await.unwrap();
    assert!(left.snapshots().iter().all(|s| s.snapshot_id() != Some(snap.id.as_str())));
    assert!(
        p.snapshot(SnapshotRequest {
            addr: ResourceAddr::parse("net").unwrap(),
            type_name: "aws.vpc".into(),
            inputs: attrs(json!({})),
            outputs: attrs(json!({"id": "vpc-1"})),
            ownership: ownership("net"),
            point: "rp-1".into(),
            log: Arc::new(|_, _| {}),
        })
        .await
        .is_err()
    );
}

/// A provider like `moto.provider()`, but working in `region`.
fn provider_in(moto: &Moto, region: &str) -> Arc<phoenix_provider_aws::AwsProvider> {
    let p = Arc::new(phoenix_provider_aws::AwsProvider::new());
    let mut config = moto.block();
    config.insert("region".into(), json!(region));
    p.configure(&ProviderContext {
        environment: "test".into(),
        instance: None,
        project_dir: moto.dir.path().to_path_buf(),
        data_dir: moto.dir.path().join(".phoenix"),
        config,
    })
    .unwrap();
    p
}

/// An independent RDS client in `region`.
fn rds_in(moto: &Moto, region: &str) -> aws_sdk_rds::Client {
    let conf = rds(moto).config().to_builder().region(aws_sdk_rds::config::Region::new(region.to_string())).build();
    aws_sdk_rds::Client::from_conf(conf)
}

fn point_request(ty: &str, name: &str, inputs: serde_json::Value, outputs: &phoenix_core::value::Attrs) -> SnapshotRequest {
    SnapshotRequest {
        addr: ResourceAddr::parse(name).unwrap(),
        type_name: ty.into(),
        inputs: attrs(inputs),
        outputs: outputs.clone(),
        ownership: ownership(name),
        point: "rp-7".into(),
        log: Arc::new(|_, _| {}),
    }
}

#[tokio::test]
async fn a_db_snapshot_is_copied_to_another_region_and_an_instance_restored_from_the_copy_there() {
    let moto = Moto::start();
    let p = moto.provider();
    assert_eq!(p.restore_attr("aws.db_instance"), Some("snapshot_identifier"));
    let inputs = json!({
        "identifier": "orders", "engine": "postgres", "instance_class": "db.t3.micro", "allocated_storage": 20,
        "username": "app", "password": "correct-horse-battery", "skip_final_snapshot": true,
    });
    let out = p.create(create_req("aws.db_instance", "db", inputs.clone())).await.unwrap();
    let snap = p.snapshot(point_request("aws.db_instance", "db", inputs.clone(), &out)).await.unwrap();
    assert_eq!((snap.id.as_str(), snap.region.as_deref()), ("orders-rp-7", Some(REGION)));

    // CopyDBSnapshot is called in the destination region with the source's ARN.
    let copy = p.copy_snapshot("aws.db_instance", &snap, "us-east-2").await.unwrap();
    assert_eq!(copy.region.as_deref(), Some("us-east-2"));
    let east = rds_in(&moto, "us-east-2");
    let there = east.describe_db_snapshots().db_snapshot_identifier(&copy.id).send().await.unwrap();
    let s = &there.db_snapshots()[0];
    assert_eq!(s.status(), Some("available"));
    assert!(s.db_snapshot_arn().unwrap().starts_with("arn:aws:rds:us-east-2:"), "{:?}", s.db_snapshot_arn());
    assert_eq!(s.engine(), Some("postgres"));
    let tags = east.list_tags_for_resource().resource_name(s.db_snapshot_arn().unwrap()).send().await.unwrap();
    let tag = |k: &str| tags.tag_list().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string);
    assert_eq!((tag("phoenix:recovery-point"), tag("phoenix:resource")), (Some("rp-7".into()), Some("db".into())));
    // The source stays where it was.
    assert!(rds(&moto).describe_db_snapshots().db_snapshot_identifier(&snap.id).send().await.is_ok());

    // Restored there by a provider working in us-east-2, from the copy's identifier.
    let east_p = provider_in(&moto, "us-east-2");
    let mut restored_in = inputs.clone();
    restored_in["snapshot_identifier"] = json!(copy.id);
    let r = east_p.create(create_req("aws.db_instance", "db", restored_in.clone())).await.unwrap();
    assert_eq!(r["status"], json!("available"));
    let d = east.describe_db_instances().db_instance_identifier("orders").send().await.unwrap().db_instances()[0].clone();
    assert_eq!((d.engine(), d.db_instance_status()), (Some("postgres"), Some("available")));
    assert!(d.db_instance_arn().unwrap().starts_with("arn:aws:rds:us-east-2:"));

    // Deleted in their own regions; the copy's deletion leaves the source alone.
    east_p.delete(delete_req("aws.db_instance", "db", &attrs(restored_in), &r)).await.unwrap();
    p.delete_snapshot("aws.db_instance", &copy).await.unwrap();
    p.delete_snapshot("aws.db_instance", &copy).await.unwrap();
    assert!(east.describe_db_snapshots().db_snapshot_identifier(&copy.id).send().await.is_err());
    assert!(rds(&moto).describe_db_snapshots().db_snapshot_identifier(&snap.id).send().await.is_ok());
    p.delete_snapshot("aws.db_instance", &snap).await.unwrap();
    assert!(rds(&moto).describe_db_snapshots().db_snapshot_identifier(&snap.id).send().await.is_err());
    p.delete(delete_req("aws.db_instance", "db", &attrs(inputs), &out)).await.unwrap();
}

#[tokio::test]
async fn an_aurora_cluster_snapshot_is_tagged_copied_to_another_region_restored_there_and_deleted() {
    let moto = Moto::start();
    let p = moto.provider();
    assert_eq!(p.restore_attr("aws.db_cluster"), Some("snapshot_identifier"));
    let inputs = json!({
        "cluster_identifier": "ledger", "engine": "aurora-mysql", "master_username": "app",
        "master_password": "correct-horse-battery", "skip_final_snapshot": true,
    });
    let out = p.create(create_req("aws.db_cluster", "db", inputs.clone())).await.unwrap();
    let snap = p.snapshot(point_request("aws.db_cluster", "db", inputs.clone(), &out)).await.unwrap();
    assert_eq!((snap.id.as_str(), snap.region.as_deref()), ("ledger-rp-7", Some(REGION)));

    // Checked independently: available, of the cluster, tagged with its owner and the point.
    let west = rds(&moto);
    let found = west.describe_db_cluster_snapshots().db_cluster_snapshot_identifier(&snap.id).send().await.unwrap();
    let s = &found.db_cluster_snapshots()[0];
    assert_eq!((s.status(), s.db_cluster_identifier(), s.snapshot_type()), (Some("available"), Some("ledger"), Some("manual")));
    let tags = west.list_tags_for_resource().resource_name(s.db_cluster_snapshot_arn().unwrap()).send().await.unwrap();
    let tag = |k: &str| tags.tag_list().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string);
    assert_eq!((tag("phoenix:recovery-point"), tag("phoenix:environment")), (Some("rp-7".into()), Some("test".into())));

    // Copied by a call in the destination region; found there.
    let copy = p.copy_snapshot("aws.db_cluster", &snap, "us-east-2").await.unwrap();
    assert_eq!(copy.region.as_deref(), Some("us-east-2"));
    let east = rds_in(&moto, "us-east-2");
    let there = east.describe_db_cluster_snapshots().db_cluster_snapshot_identifier(&copy.id).send().await.unwrap();
    let c = &there.db_cluster_snapshots()[0];
    assert_eq!(c.status(), Some("available"));
    assert!(c.db_cluster_snapshot_arn().unwrap().starts_with("arn:aws:rds:us-east-2:"), "{:?}", c.db_cluster_snapshot_arn());

    // Restored there from the copy.
    let east_p = provider_in(&moto, "us-east-2");
    let mut restored_in = inputs.clone();
    restored_in["snapshot_identifier"] = json!(copy.id);
    let r = east_p.create(create_req("aws.db_cluster", "db", restored_in.clone())).await.unwrap();
    assert_eq!(r["status"], json!("available"));
    let d = east.describe_db_clusters().db_cluster_identifier("ledger").send().await.unwrap().db_clusters()[0].clone();
    assert_eq!(d.engine(), Some("aurora-mysql"));
    assert!(d.db_cluster_arn().unwrap().starts_with("arn:aws:rds:us-east-2:"));

    // Deleted in their own regions; again is fine.
    east_p.delete(delete_req("aws.db_cluster", "db", &attrs(restored_in), &r)).await.unwrap();
    p.delete_snapshot("aws.db_cluster", &copy).await.unwrap();
    p.delete_snapshot("aws.db_cluster", &copy).await.unwrap();
    assert!(east.describe_db_cluster_snapshots().db_cluster_snapshot_identifier(&copy.id).send().await.is_err());
    assert!(west.describe_db_cluster_snapshots().db_cluster_snapshot_identifier(&snap.id).send().await.is_ok());
    p.delete_snapshot("aws.db_cluster", &snap).await.unwrap();
    assert!(west.describe_db_cluster_snapshots().db_cluster_snapshot_identifier(&snap.id).send().await.is_err());
    p.delete(delete_req("aws.db_cluster", "db", &attrs(inputs), &out)).await.unwrap();
}

#[tokio::test]
async fn a_stateful_instance_is_imaged_copied_relaunched_from_its_image_without_drift_and_the_image_deleted_with_its_snapshots() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let (subnet, [sg, _]) = compute::network(&ec2).await;
    let ami = compute::newest_ami(&ec2, compute::AL2023, "amazon").await;
    let mut inputs = json!({"ami": ami, "instance_type": "t3.micro", "subnet_id": subnet, "security_group_ids": [sg], "stateful": true});
    // Only instances that opt in are snapshotted; the input they come back through is per type.
    assert_eq!(p.restore_attr("aws.instance"), Some("recovery_image"));
    assert!(p.is_stateful("aws.instance", &attrs(inputs.clone())));
    assert!(!p.is_stateful("aws.instance", &attrs(json!({"ami": ami}))));
    assert!(!p.is_stateful("aws.instance", &attrs(json!({"ami": ami, "stateful": false}))));
    assert!(p.is_stateful("aws.volume", &attrs(json!({}))));
    let out = compute::make_instance(&*p, "app", &inputs).await;
    // A data volume attached beside the root: left out of the image (it is snapshotted as itself).
    // moto accepts CreateImage's NoDevice mappings but ignores them, so only the call is exercised here.
    let data = ec2.create_volume().availability_zone("eu-west-1a").size(2).send().await.unwrap().volume_id().unwrap().to_string();
    ec2.attach_volume().volume_id(&data).instance_id(out["id"].as_str().unwrap()).device("/dev/sdf").send().await.unwrap();

    let snap = p.snapshot(point_request("aws.instance", "app", inputs.clone(), &out)).await.unwrap();
    assert!(snap.id.starts_with("ami-") && snap.region.as_deref() == Some(REGION), "{snap:?}");
    // Checked independently: available, named for the point, tagged, its EBS snapshots tagged too.
    let img = ec2.describe_images().image_ids(&snap.id).send().await.unwrap().images()[0].clone();
    assert_eq!(img.state(), Some(&aws_sdk_ec2::types::ImageState::Available));
    assert_eq!(img.name(), Some("test-app-rp-7"));
    assert_eq!(compute::tag(img.tags(), "phoenix:recovery-point").as_deref(), Some("rp-7"));
    assert_eq!(compute::tag(img.tags(), "phoenix:resource").as_deref(), Some("app"));
    let backing: Vec<String> =
        img.block_device_mappings().iter().filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string)).collect();
    assert!(!backing.is_empty());
    let s = ec2.describe_snapshots().set_snapshot_ids(Some(backing.clone())).send().await.unwrap();
    assert!(s.snapshots().iter().all(|s| compute::tag(s.tags(), "phoenix:recovery-point").as_deref() == Some("rp-7")), "{s:?}");

    // Copied by CopyImage in the destination region; tagged there too.
    let copy = p.copy_snapshot("aws.instance", &snap, "us-east-2").await.unwrap();
    assert_eq!(copy.region.as_deref(), Some("us-east-2"));
    assert_ne!(copy.id, snap.id);
    let east = aws_sdk_ec2::Client::from_conf(ec2.config().to_builder().region(aws_sdk_ec2::config::Region::new("us-east-2")).build());
    let there = east.describe_images().image_ids(&copy.id).send().await.unwrap().images()[0].clone();
    assert_eq!(there.state(), Some(&aws_sdk_ec2::types::ImageState::Available));
    assert_eq!(compute::tag(there.tags(), "phoenix:recovery-point").as_deref(), Some("rp-7"));
    let copy_backing: Vec<String> =
        there.block_device_mappings().iter().filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_string)).collect();

    // Relaunched from the image, the definition's `ami` untouched: no drift on refresh.
    inputs["recovery_image"] = json!(snap.id);
    let again = compute::make_instance(&*p, "app2", &inputs).await;
    let i = compute::instance(&ec2, again["id"].as_str().unwrap()).await;
    assert_eq!(i.image_id(), Some(snap.id.as_str()));
    let obs = observe(&p, "aws.instance", "app2", &attrs(inputs.clone()), &again).await.unwrap();
    assert_eq!((&obs.inputs["ami"], &obs.inputs["recovery_image"]), (&json!(ami), &json!(snap.id)));

    // Deleted: the image deregistered and its snapshots gone, in each region; again is fine.
    p.delete_snapshot("aws.instance", &copy).await.unwrap();
    p.delete_snapshot("aws.instance", &copy).await.unwrap();
    assert!(east.describe_images().image_ids(&copy.id).send().await.map(|o| o.images().is_empty()).unwrap_or(true));
    let left = east.describe_snapshots().owner_ids("self").send().await.unwrap();
    assert!(left.snapshots().iter().all(|s| !copy_backing.iter().any(|b| s.snapshot_id() == Some(b.as_str()))), "{left:?}");
    assert!(ec2.describe_images().image_ids(&snap.id).send().await.is_ok_and(|o| o.images().len() == 1), "the source stays");
    p.delete_snapshot("aws.instance", &snap).await.unwrap();
    assert!(ec2.describe_images().image_ids(&snap.id).send().await.map(|o| o.images().is_empty()).unwrap_or(true));
    let left = ec2.describe_snapshots().owner_ids("self").send().await.unwrap();
    assert!(left.snapshots().iter().all(|s| !backing.iter().any(|b| s.snapshot_id() == Some(b.as_str()))), "{left:?}");
}
