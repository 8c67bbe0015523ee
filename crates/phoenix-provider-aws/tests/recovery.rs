//! Recovery-point snapshots of EBS volumes on moto: taken tagged and complete,
//! copied to another region, restored into a new volume, deleted.

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
