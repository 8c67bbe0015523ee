//! Every `gcp.*` type against the Compute Engine test server, through the
//! real SDK; what exists is checked through the server's API.

mod support;

use phoenix_core::provider::Provider;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn network_subnetwork_firewall_lifecycle_marks_refresh_patch_and_delete() {
    let gce = GceServer::start();
    let p = provider(&gce);
    let net_in = json!({"name": "t-net", "routing_mode": "REGIONAL", "description": "front"});
    let net = p.create(create_req("gcp.network", "net", net_in.clone())).await.unwrap();
    let seen = gce.get(&path(&net["self_link"]));
    assert_eq!(seen["description"], "phoenix: environment=test resource=net lineage=lineage-test\nfront", "marks in the description");
    assert_eq!(seen["id"], net["id"]);

    let sub_in = json!({"name": "t-sub", "network": net["self_link"], "ip_cidr_range": "10.9.0.0/24"});
    let sub = p.create(create_req("gcp.subnetwork", "sub", sub_in.clone())).await.unwrap();
    assert_eq!(sub["gateway_address"], "10.9.0.1");
    let fw_in = json!({"name": "t-fw", "network": net["self_link"], "allow": [{"protocol": "tcp", "ports": ["22"]}], "source_ranges": ["10.0.0.0/8"]});
    let fw = p.create(create_req("gcp.firewall", "fw", fw_in.clone())).await.unwrap();

    // One batched refresh: no drift.
    let seen = p
        .refresh(vec![
            refresh_item("gcp.network", "net", &attrs(net_in.clone()), &net),
            refresh_item("gcp.subnetwork", "sub", &attrs(sub_in.clone()), &sub),
            refresh_item("gcp.firewall", "fw", &attrs(fw_in.clone()), &fw),
        ])
        .await;
    let obs: Vec<_> = seen.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert_eq!(obs[0].inputs["description"], "front");
    assert_eq!(obs[1].inputs["network"], net["self_link"]);
    assert_eq!(obs[2].inputs["allow"], fw_in["allow"]);
    assert_eq!(obs[2].inputs["source_ranges"], json!(["10.0.0.0/8"]));

    // Firewall rules change in place (PATCH).
    let fw_new = json!({"name": "t-fw", "network": net["self_link"], "allow": [{"protocol": "tcp", "ports": ["22", "2222"]}], "source_ranges": ["10.0.0.0/8"]});
    p.update(update_req("gcp.firewall", "fw", &attrs(fw_in.clone()), &fw, fw_new, &["allow"])).await.unwrap();
    assert_eq!(gce.get(&path(&fw["self_link"]))["allowed"][0]["ports"], json!(["22", "2222"]));
    assert_eq!(gce.calls()["compute.firewalls.patch"], 1);

    // Adoption by name and marks; someone else's object of that name is not adopted.
    assert!(p.adopt(adopt_req("gcp.network", "net", net_in.clone())).await.unwrap().is_some());
    let (code, _) = gce.request(
        "POST",
        &format!("projects/{PROJECT}/global/networks"),
        Some(&json!({"name": "other", "autoCreateSubnetworks": false})),
    );
    assert_eq!(code, 200);
    assert!(p.adopt(adopt_req("gcp.network", "net", json!({"name": "other"}))).await.unwrap().is_none());

    // Delete in dependency order works; the network waits for nothing left.
    p.delete(delete_req("gcp.firewall", "fw", &attrs(fw_in.clone()), &fw)).await.unwrap();
    p.delete(delete_req("gcp.subnetwork", "sub", &attrs(sub_in.clone()), &sub)).await.unwrap();
    p.delete(delete_req("gcp.network", "net", &attrs(net_in.clone()), &net)).await.unwrap();
    p.delete(delete_req("gcp.network", "net", &attrs(net_in.clone()), &net)).await.unwrap();
    let gone = p.refresh(vec![refresh_item("gcp.network", "net", &attrs(net_in), &net)]).await;
    assert!(gone[0].as_ref().unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn address_disk_snapshot_image_labels_in_place_and_sources() {
    let gce = GceServer::start();
    let p = provider(&gce);
    let addr_in = json!({"name": "t-ip", "labels": {"team": "web"}});
    let addr = p.create(create_req("gcp.address", "ip", addr_in.clone())).await.unwrap();
    assert!(addr["address"].as_str().unwrap().contains('.'));
    let seen = gce.get(&path(&addr["self_link"]));
    assert_eq!(
        seen["labels"],
        json!({"team": "web", "phoenix-environment": "test", "phoenix-resource": "ip", "phoenix-lineage": "lineage-test"})
    );

    // Labels in place.
    p.update(update_req(
        "gcp.address",
        "ip",
        &attrs(addr_in.clone()),
        &addr,
        json!({"name": "t-ip", "labels": {"team": "api"}}),
        &["labels"],
    ))
    .await
    .unwrap();
    assert_eq!(gce.get(&path(&addr["self_link"]))["labels"]["team"], "api");

    // A disk from an image family, a snapshot of it, a disk from the snapshot, an image from the disk.
    let disk_in = json!({"name": "t-disk", "image": "debian-cloud/debian-12", "size_gb": 20});
    let disk = p.create(create_req("gcp.disk", "disk", disk_in.clone())).await.unwrap();
    let d = gce.get(&path(&disk["self_link"]));
    assert!(d["sourceImage"].as_str().unwrap().ends_with("debian-12-bookworm-v20251014"), "the family's newest image");
    assert_eq!((d["sizeGb"].as_str(), d["status"].as_str()), (Some("20"), Some("READY")));
    let snap_in = json!({"name": "t-snap", "source_disk": disk["self_link"]});
    let snap = p.create(create_req("gcp.snapshot", "snap", snap_in.clone())).await.unwrap();
    assert_eq!(snap["disk_size_gb"], 20);
    let restored_in = json!({"name": "t-restored", "snapshot": snap["self_link"]});
    let restored = p.create(create_req("gcp.disk", "restored", restored_in.clone())).await.unwrap();
    assert_eq!(gce.get(&path(&restored["self_link"]))["sourceSnapshotId"], snap["id"]);
    let image_in = json!({"name": "t-img", "source_disk": disk["self_link"], "family": "t"});
    let image = p.create(create_req("gcp.image", "img", image_in.clone())).await.unwrap();
    assert_eq!(gce.get(&path(&image["self_link"]))["status"], "READY");

    // The disk grows in place; batched refresh reads all labelled types with one list each.
    p.update(update_req(
        "gcp.disk",
        "disk",
        &attrs(disk_in.clone()),
        &disk,
        json!({"name": "t-disk", "image": "debian-cloud/debian-12", "size_gb": 30}),
        &["size_gb"],
    ))
    .await
    .unwrap();
    let before = gce.total_calls();
    let seen = p
        .refresh(vec![
            refresh_item("gcp.disk", "disk", &attrs(disk_in.clone()), &disk),
            refresh_item("gcp.disk", "restored", &attrs(json!({"name": "t-restored"})), &restored),
            refresh_item("gcp.address", "ip", &attrs(addr_in.clone()), &addr),
        ])
        .await;
    assert_eq!(gce.total_calls() - before, 2, "one aggregatedList per type");
    assert_eq!(seen[0].as_ref().unwrap().as_ref().unwrap().inputs["size_gb"], 30);

    // Deletes get the inputs state recorded, as the engine passes them.
    for (ty, name, inputs, out) in [
        ("gcp.image", "img", image_in, &image),
        ("gcp.disk", "restored", restored_in, &restored),
        ("gcp.snapshot", "snap", snap_in, &snap),
        ("gcp.disk", "disk", disk_in, &disk),
        ("gcp.address", "ip", addr_in, &addr),
    ] {
        p.delete(delete_req(ty, name, &attrs(inputs), out)).await.unwrap();
    }
    assert!(gce.list_all(&format!("projects/{PROJECT}/aggregated/disks"), Some("labels.phoenix-environment = test")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_machine_type_metadata_disks_in_place_and_delete_releases_disks() {
    let gce = GceServer::start();
    let p = provider(&gce);
    let net = p.create(create_req("gcp.network", "net", json!({"name": "i-net"}))).await.unwrap();
    let sub = p
        .create(create_req("gcp.subnetwork", "sub", json!({"name": "i-sub", "network": net["self_link"], "ip_cidr_range": "10.5.0.0/24"})))
        .await
        .unwrap();
    let data_in = json!({"name": "i-data", "size_gb": 10});
    let data = p.create(create_req("gcp.disk", "data", data_in.clone())).await.unwrap();
    let vm_in = json!({"name": "i-vm", "machine_type": "e2-small", "image": "debian-cloud/debian-12", "subnetwork": sub["self_link"],
        "external_ip": true, "startup_script": "#!/bin/sh\necho secret", "metadata": {"role": "web"},
        "attached_disks": [{"source": data["self_link"], "device_name": "data"}], "service_account": "web@phoenix-test.iam.gserviceaccount.com",
        "network_tags": ["web"], "labels": {"role": "web"}});
    let vm = p.create(create_req("gcp.instance", "vm", vm_in.clone())).await.unwrap();
    assert_eq!(vm["status"], "RUNNING");
    assert!(vm["internal_ip"].as_str().unwrap().starts_with("10.5.0."));
    assert!(!vm["external_ip"].as_str().unwrap().is_empty());
    let i = gce.get(&path(&vm["self_link"]));
    assert_eq!(i["serviceAccounts"][0]["email"], "web@phoenix-test.iam.gserviceaccount.com");
    assert_eq!(i["tags"]["items"], json!(["web"]));
    let boot = gce.get(&path(&vm["boot_disk"]));
    assert_eq!(boot["labels"]["phoenix-resource"], "vm", "the boot disk carries the marks");

    // No drift right after create.
    let obs = p.refresh(vec![refresh_item("gcp.instance", "vm", &attrs(vm_in.clone()), &vm)]).await.remove(0).unwrap().unwrap();
    for k in ["machine_type", "metadata", "attached_disks", "labels", "subnetwork", "service_account", "network_tags"] {
        assert_eq!(obs.inputs[k], vm_in[k], "{k}");
    }
    // Not observed (null): the engine keeps the sealed value state holds.
    assert!(obs.inputs.get("startup_script").is_none_or(|s| s.is_null()), "the sensitive script is never read back");

    // Machine type in place: stop, setMachineType, start; metadata and disks in place too.
    let mut new_in = vm_in.clone();
    new_in["machine_type"] = json!("e2-medium");
    new_in["metadata"] = json!({"role": "api"});
    new_in["attached_disks"] = json!([]);
    let out = p
        .update(update_req("gcp.instance", "vm", &attrs(vm_in.clone()), &vm, new_in, &["machine_type", "metadata", "attached_disks"]))
        .await
        .unwrap();
    assert_eq!(out["id"], vm["id"]);
    let i = gce.get(&path(&vm["self_link"]));
    assert!(i["machineType"].as_str().unwrap().ends_with("/e2-medium"));
    assert_eq!(i["status"], "RUNNING");
    let items = i["metadata"]["items"].as_array().unwrap();
    assert!(items.iter().any(|m| m["key"] == "role" && m["value"] == "api"));
    assert!(items.iter().any(|m| m["key"] == "startup-script"), "the script is kept");
    assert_eq!(i["disks"].as_array().unwrap().len(), 1, "the data disk was detached");
    let calls = gce.calls();
    assert_eq!((calls["compute.instances.stop"], calls["compute.instances.setMachineType"], calls["compute.instances.start"]), (1, 1, 1));

    // Delete: the instance goes with its boot disk; the data disk can go after it.
    p.delete(delete_req("gcp.instance", "vm", &attrs(vm_in.clone()), &vm)).await.unwrap();
    let (code, _) = gce.request("GET", &path(&vm["boot_disk"]), None);
    assert_eq!(code, 404, "autoDelete boot disk");
    p.delete(delete_req("gcp.disk", "data", &attrs(data_in), &data)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_and_5xx_are_retried_and_counted_and_failed_operations_are_errors() {
    let gce = GceServer::start();
    let p = provider(&gce);
    gce.fail_next("networks.insert", Fault::RateLimited, 2);
    gce.fail_next("globalOperations.get", Fault::Unavailable, 1);
    let net = p.create(create_req("gcp.network", "net", json!({"name": "r-net"}))).await.unwrap();
    assert_eq!(gce.list_all(&format!("projects/{PROJECT}/global/networks"), None).len(), 1, "retried, not duplicated");
    assert_eq!(p.api_calls(), gce.total_calls() - 1, "every request counted (the test's own list excluded)");

    // An instance whose boot image does not exist: a 404 surfaced with the reason.
    let sub = p
        .create(create_req("gcp.subnetwork", "sub", json!({"name": "r-sub", "network": net["self_link"], "ip_cidr_range": "10.6.0.0/24"})))
        .await
        .unwrap();
    let err = p
        .create(create_req(
            "gcp.instance",
            "vm",
            json!({"name": "r-vm", "machine_type": "e2-small", "image": "debian-cloud/no-such-family", "subnetwork": sub["self_link"]}),
        ))
        .await
        .unwrap_err();
    assert!(err.message.contains("notFound"), "{}", err.message);

    // A create interrupted after the insert: the next run's create adopts the object (409 → ours).
    let req = create_req("gcp.disk", "disk", json!({"name": "r-disk", "size_gb": 10}));
    let first = p.create(req).await.unwrap();
    let again = p.create(create_req("gcp.disk", "disk", json!({"name": "r-disk", "size_gb": 10}))).await.unwrap();
    assert_eq!(first["id"], again["id"]);
    // …but a name taken by an object Phoenix does not own here is an error.
    let mut foreign = create_req("gcp.disk", "other", json!({"name": "r-disk", "size_gb": 10}));
    foreign.ownership.lineage = "someone-else".into();
    assert!(p.create(foreign).await.unwrap_err().message.contains("does not own"));
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_operations_are_waited_for() {
    let gce = GceServer::start();
    gce.set_operation_delay(std::time::Duration::from_millis(700));
    let p = provider(&gce);
    let started = std::time::Instant::now();
    let net_in = json!({"name": "s-net"});
    let net = p.create(create_req("gcp.network", "net", net_in.clone())).await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(700));
    assert!(gce.calls()["compute.globalOperations.get"] >= 2, "polled with backoff: {:?}", gce.calls());
    p.delete(delete_req("gcp.network", "net", &attrs(net_in), &net)).await.unwrap();
}
