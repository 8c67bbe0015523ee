//! Recovery-point snapshots of persistent disks on the Compute Engine test
//! server: taken labelled and READY, idempotent per point, recorded for other
//! regions without a copy, restorable into a new disk, deleted. Every claim is
//! checked through the server's own API.

mod support;

use std::sync::Arc;
use std::time::Duration;

use phoenix_core::ResourceAddr;
use phoenix_core::provider::*;
use phoenix_core::recovery::SnapshotRef;
use serde_json::json;
use support::*;

fn snapshot_req(name: &str, inputs: serde_json::Value, outputs: &phoenix_core::value::Attrs, point: &str) -> SnapshotRequest {
    SnapshotRequest {
        addr: ResourceAddr::parse(name).unwrap(),
        type_name: "gcp.disk".into(),
        inputs: attrs(inputs),
        outputs: outputs.clone(),
        ownership: ownership(name),
        point: point.into(),
        log: Arc::new(|_, _| {}),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_snapshot_is_labelled_ready_idempotent_restorable_and_deletable() {
    let gce = GceServer::start();
    let p = provider(&gce);
    assert_eq!(p.restore_attr("gcp.disk"), Some("snapshot"));
    assert_eq!(p.restore_attr("gcp.instance"), None);

    let disk_in = json!({"name": "t-data", "size_gb": 20});
    let disk = p.create(create_req("gcp.disk", "data", disk_in.clone())).await.unwrap();
    // Slow operations: the snapshot is returned only once it is READY.
    gce.set_operation_delay(Duration::from_millis(300));
    let lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let l = lines.clone();
    let mut req = snapshot_req("data", disk_in.clone(), &disk, "rp-20261124-050000-00ab");
    req.log = Arc::new(move |_, line| l.lock().unwrap().push(line.to_string()));
    let snap = p.snapshot(req).await.unwrap();
    assert_eq!(snap.region, None, "GCE snapshots are global");
    assert!(lines.lock().unwrap().iter().any(|l| l.contains("t-data-rp-20261124-050000-00ab")), "progress names the snapshot");

    // Checked independently: READY, from the disk, labelled with its owner and the point.
    let s = gce.get(&path(&json!(snap.id)));
    assert_eq!(s["name"], "t-data-rp-20261124-050000-00ab");
    assert_eq!(s["status"], "READY");
    assert_eq!(s["sourceDiskId"], disk["id"]);
    assert_eq!(
        s["labels"],
        json!({
            "phoenix-environment": "test", "phoenix-resource": "data", "phoenix-lineage": "lineage-test",
            "phoenix-recovery-point": "rp-20261124-050000-00ab",
        })
    );
    let by_point =
        gce.list_all(&format!("projects/{PROJECT}/global/snapshots"), Some("labels.phoenix-recovery-point = \"rp-20261124-050000-00ab\""));
    assert_eq!(by_point.len(), 1);

    // Taking it again for the same point (an attempt whose answer was lost) gives the same snapshot, not a second one.
    let again = p.snapshot(snapshot_req("data", disk_in.clone(), &disk, "rp-20261124-050000-00ab")).await.unwrap();
    assert_eq!(again, snap);
    assert_eq!(gce.list_all(&format!("projects/{PROJECT}/global/snapshots"), None).len(), 1);
    gce.set_operation_delay(Duration::ZERO);

    // "Copying" to a region records the same global snapshot there, with no new object.
    let before = gce.calls().get("compute.snapshots.insert").copied().unwrap_or(0);
    let copy = p.copy_snapshot("gcp.disk", &snap, "europe-west1").await.unwrap();
    assert_eq!(copy, SnapshotRef { id: snap.id.clone(), region: Some("europe-west1".into()) });
    assert_eq!(gce.calls().get("compute.snapshots.insert").copied().unwrap_or(0), before);

    // Restorable: a disk from it through the `snapshot` input, in another zone.
    let restored =
        p.create(create_req("gcp.disk", "data2", json!({"name": "t-data2", "zone": "us-central1-b", "snapshot": snap.id}))).await.unwrap();
    let d = gce.get(&path(&restored["self_link"]));
    assert_eq!((d["sourceSnapshot"].as_str(), &d["sourceSnapshotId"]), (Some(snap.id.as_str()), &s["id"]));
    assert_eq!(d["sizeGb"], "20", "the snapshot's size");

    // A disk first made from an image comes back from the snapshot when both are set (what a restore does).
    let both = p
        .create(create_req("gcp.disk", "data3", json!({"name": "t-data3", "image": "debian-cloud/debian-12", "snapshot": snap.id})))
        .await
        .unwrap();
    let d3 = gce.get(&path(&both["self_link"]));
    assert_eq!(d3["sourceSnapshotId"], s["id"]);
    assert!(d3.get("sourceImage").is_none_or(|v| v.is_null()), "not from the image: {d3}");

    // Deleted; deleting again is fine; a gone snapshot cannot be recorded for a region.
    p.delete_snapshot("gcp.disk", &snap).await.unwrap();
    p.delete_snapshot("gcp.disk", &snap).await.unwrap();
    assert_eq!(gce.request("GET", &path(&json!(snap.id)), None).0, 404);
    assert!(p.copy_snapshot("gcp.disk", &snap, "europe-west1").await.is_err());

    // A name taken by a snapshot that is not this point's (made out of band) is an error naming it, not adopted.
    let (code, op) = gce.request(
        "POST",
        &format!("projects/{PROJECT}/global/snapshots"),
        Some(&json!({"name": "t-data-rp-3", "sourceDisk": disk["self_link"]})),
    );
    assert_eq!(code, 200, "{op}");
    gce.wait(&op);
    let err = p.snapshot(snapshot_req("data", disk_in.clone(), &disk, "rp-3")).await.unwrap_err();
    assert!(err.message.contains("t-data-rp-3") && err.message.contains("taken"), "{}", err.message);
    let (_, op) = gce.request("DELETE", &format!("projects/{PROJECT}/global/snapshots/t-data-rp-3"), None);
    gce.wait(&op);

    // Types without data, and disks that are not there, are errors.
    let mut net = snapshot_req("net", json!({}), &disk, "rp-1");
    net.type_name = "gcp.network".into();
    assert!(p.snapshot(net).await.unwrap_err().message.contains("holds no data"));
    p.delete(delete_req("gcp.disk", "data", &attrs(disk_in.clone()), &disk)).await.unwrap();
    let err = p.snapshot(snapshot_req("data", disk_in, &disk, "rp-2")).await.unwrap_err();
    assert!(err.message.contains("t-data"), "the error names the disk: {}", err.message);
    assert!(gce.list_all(&format!("projects/{PROJECT}/global/snapshots"), None).is_empty(), "no snapshot of a missing disk");
}
