//! Disaster recovery of `gcp-staging` (the GCP web stack, whose data disks are
//! its stateful objects) against the Compute Engine test server, through the
//! binary as a user runs it: a recovery point; a drill in another region
//! beside the original; a restore after losing every object and the state; a
//! restore after losing one data disk; deleting the point deletes its snapshots. Every claim is checked through the server's
//! own API, never Phoenix's state.

mod support;

use std::collections::BTreeMap;

use phoenix_gce_server::{GceServer, PROJECT};
use serde_json::Value;
use support::{Output, Project};

const ENV_FILTER: &str = "labels.phoenix-environment = \"gcp-staging\"";

fn run(project: &Project, gce: &GceServer, args: &[&str]) -> Output {
    let mut c = support::command(&project.dir, args);
    c.envs(gce.env());
    let out = c.output().expect("phoenix runs");
    Output::of(args, out)
}

fn ok(out: Output, what: &str) -> Output {
    assert_eq!(out.code, 0, "{what} failed:\n{}\n{}", out.stdout, out.stderr);
    out
}

/// The path of a selfLink, for the server's own API.
fn path(link: &str) -> String {
    link.split_once("/compute/v1/").map_or(link, |(_, p)| p).to_string()
}

/// Deletes an object through the server's API and waits for the operation.
fn delete(gce: &GceServer, link: &str) {
    let (code, op) = gce.request("DELETE", &path(link), None);
    assert_eq!(code, 200, "DELETE {link}: {op}");
    let done = gce.wait(&op);
    assert!(done["error"].is_null(), "DELETE {link}: {done}");
}

/// The environment's data disks by name (not an instance's): (id, sourceSnapshot, sourceSnapshotId).
fn data_disks(gce: &GceServer) -> BTreeMap<String, (String, String, String)> {
    gce.list_all(&format!("projects/{PROJECT}/aggregated/disks"), Some(ENV_FILTER))
        .into_iter()
        .filter(|d| d["name"].as_str().unwrap_or_default().contains("-data-") && d["labels"]["phoenix-instance"].is_null())
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            (s("name"), (s("id"), s("sourceSnapshot"), s("sourceSnapshotId")))
        })
        .collect()
}

/// The snapshots of a recovery point, found by its label.
fn point_snapshots(gce: &GceServer, point: &str) -> Vec<Value> {
    gce.list_all(&format!("projects/{PROJECT}/global/snapshots"), Some(&format!("labels.phoenix-recovery-point = \"{point}\"")))
}

/// The recovery point's snapshots by resource: (snapshot, copies by region).
fn snapshots_of(point: &Value) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    point["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let copies =
                s["copies"].as_object().map(|m| m.iter().map(|(r, c)| (r.clone(), c["id"].as_str().unwrap().to_string())).collect());
            (s["addr"].as_str().unwrap().to_string(), (s["snapshot"]["id"].as_str().unwrap().to_string(), copies.unwrap_or_default()))
        })
        .collect()
}

fn restored_of(out: &Output) -> BTreeMap<String, String> {
    let ev = out.event("restore_finished").unwrap_or_else(|| panic!("no restore report:\n{}", out.stdout));
    assert!(ev["recovery_time_ms"].as_u64().is_some(), "the recovery time is measured: {ev}");
    ev["restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["addr"].as_str().unwrap().to_string(), r["snapshot"]["id"].as_str().unwrap().to_string()))
        .collect()
}

/// Every object of the environment, deleted out of band in dependency order.
fn lose_everything(gce: &GceServer) {
    let labelled = |coll: &str| gce.list_all(&format!("projects/{PROJECT}/aggregated/{coll}"), Some(ENV_FILTER));
    let marked = |path: String| -> Vec<Value> {
        gce.list_all(&path, None)
            .into_iter()
            .filter(|v| v["description"].as_str().is_some_and(|d| d.starts_with("phoenix: environment=gcp-staging ")))
            .collect()
    };
    for coll in ["instances", "disks", "addresses"] {
        for o in labelled(coll) {
            delete(gce, o["selfLink"].as_str().unwrap());
        }
    }
    for path in [
        format!("projects/{PROJECT}/global/firewalls"),
        format!("projects/{PROJECT}/aggregated/subnetworks"),
        format!("projects/{PROJECT}/global/networks"),
    ] {
        for o in marked(path) {
            delete(gce, o["selfLink"].as_str().unwrap());
        }
    }
    for coll in ["instances", "disks", "addresses", "subnetworks"] {
        assert!(gce.list_all(&format!("projects/{PROJECT}/aggregated/{coll}"), None).is_empty(), "{coll} left");
    }
}

#[test]
fn gcp_staging_disks_come_back_from_a_recovery_point_in_a_drill_elsewhere_and_after_total_and_partial_loss() {
    let gce = GceServer::start();
    let project = Project::repo();
    ok(run(&project, &gce, &["up", "gcp-staging", "--yes"]), "up gcp-staging");
    let before = data_disks(&gce);
    assert_eq!(before.keys().collect::<Vec<_>>(), ["gcp-staging-data-0", "gcp-staging-data-1"]);

    // A recovery point: one snapshot per data disk, READY, labelled with the point;
    // "copied" to another region, which records the same global snapshots (no new object).
    let taken = ok(run(&project, &gce, &["--json", "snapshot", "gcp-staging", "--copy-to-region", "europe-west1"]), "snapshot");
    let point = taken.event("snapshot_finished").unwrap()["point"].clone();
    let id = point["id"].as_str().unwrap().to_string();
    let snaps = snapshots_of(&point);
    assert_eq!(snaps.keys().collect::<Vec<_>>(), ["gcp-data-0", "gcp-data-1"], "the data disks are the stateful objects");
    let labelled = point_snapshots(&gce, &id);
    assert_eq!(labelled.len(), 2, "one snapshot per disk, labelled with the point");
    for (addr, (snap, copies)) in &snaps {
        let s = gce.get(&path(snap));
        assert_eq!(s["status"], "READY");
        assert_eq!(s["labels"]["phoenix-resource"], addr.as_str());
        let disk = format!("gcp-staging-data-{}", &addr[addr.len() - 1..]);
        assert_eq!(s["sourceDiskId"].as_str(), Some(before[&disk].0.as_str()), "{addr}'s snapshot is of its disk");
        assert_eq!(copies.get("europe-west1"), Some(snap), "the copy is the same global snapshot");
    }
    assert_eq!(gce.list_all(&format!("projects/{PROJECT}/global/snapshots"), None).len(), 2, "no copies made");

    // A drill in another region, beside the original: `--region` with a zone of it for the GCP objects.
    // A region the point was not "copied" to: GCE snapshots are global.
    let drill = ["restore", "gcp-staging", "--from", &id, "--region", "europe-west4", "--instance", "drill", "--yes"];
    let no_zone = run(&project, &gce, &drill);
    assert_ne!(no_zone.code, 0, "{}\n{}", no_zone.stdout, no_zone.stderr);
    assert!(no_zone.stderr.contains("--zone"), "GCP objects need a zone: {}", no_zone.stderr);
    let mut args = vec!["--json"];
    args.extend(drill);
    args.extend(["--zone", "europe-west4-a"]);
    let restored = restored_of(&ok(run(&project, &gce, &args), "restore drill"));
    let expected: BTreeMap<String, String> = snaps.iter().map(|(a, (s, _))| (a.clone(), s.clone())).collect();
    assert_eq!(restored, expected);
    let drill_filter = "labels.phoenix-instance = \"drill\"";
    let zone = |v: &Value| v["zone"].as_str().unwrap_or_default().rsplit('/').next().unwrap().to_string();
    let disks = gce.list_all(&format!("projects/{PROJECT}/aggregated/disks"), Some(drill_filter));
    let data: BTreeMap<String, (String, String)> = disks
        .iter()
        .filter(|d| d["name"].as_str().unwrap().contains("-data-"))
        .map(|d| (d["name"].as_str().unwrap().to_string(), (zone(d), d["sourceSnapshot"].as_str().unwrap_or_default().to_string())))
        .collect();
    assert_eq!(
        data,
        BTreeMap::from([
            ("gcp-staging-drill-data-0".to_string(), ("europe-west4-a".to_string(), snaps["gcp-data-0"].0.clone())),
            ("gcp-staging-drill-data-1".to_string(), ("europe-west4-a".to_string(), snaps["gcp-data-1"].0.clone())),
        ]),
        "the drill's disks are made in the new zone from the point's snapshots"
    );
    let vms = gce.list_all(&format!("projects/{PROJECT}/aggregated/instances"), Some(drill_filter));
    assert_eq!(vms.iter().map(zone).collect::<Vec<_>>(), ["europe-west4-a", "europe-west4-a"]);
    gce.get(&format!("projects/{PROJECT}/regions/europe-west4/addresses/gcp-staging-drill-web-ip"));
    gce.get(&format!("projects/{PROJECT}/regions/europe-west4/subnetworks/gcp-staging-drill-web"));
    assert_eq!(data_disks(&gce), before, "the original is untouched");
    // The drill's state remembers where it is: its own variables plan clean there, and down removes it.
    let there = ["--var", "region=europe-west4", "--var", "zone=europe-west4-a"];
    let mut args = vec!["plan", "gcp-staging", "--instance", "drill", "--detailed-exitcode"];
    args.extend(there);
    let plan = run(&project, &gce, &args);
    assert_eq!(plan.code, 0, "the drill plans clean where it is:\n{}\n{}", plan.stdout, plan.stderr);
    ok(run(&project, &gce, &["down", "gcp-staging", "--instance", "drill", "--yes"]), "down drill");
    for coll in ["instances", "disks", "addresses"] {
        assert!(gce.list_all(&format!("projects/{PROJECT}/aggregated/{coll}"), Some(drill_filter)).is_empty(), "drill {coll} left");
    }
    assert_eq!(gce.list_all(&format!("projects/{PROJECT}/aggregated/subnetworks"), None).len(), 1, "only the original's subnetwork");

    // Everything is lost: every object, and the state with it.
    lose_everything(&gce);
    std::fs::remove_dir_all(project.dir.join(".phoenix/state/gcp-staging")).unwrap();

    let restore = ok(run(&project, &gce, &["--json", "restore", "gcp-staging", "--from", &id, "--yes"]), "restore");
    let restored = restored_of(&restore);
    eprintln!(
        "gcp-staging: recovery point in {} ms; total-loss restore in {} ms ({} API calls)",
        point["took_ms"],
        restore.event("restore_finished").unwrap()["recovery_time_ms"],
        restore.event("run_finished").map_or(Value::Null, |e| e["api_calls"]["gcp"].clone())
    );
    assert_eq!(restored, snaps.iter().map(|(a, (s, _))| (a.clone(), s.clone())).collect::<BTreeMap<_, _>>());
    let after = data_disks(&gce);
    for (addr, (snap, _)) in &snaps {
        let disk = format!("gcp-staging-data-{}", &addr[addr.len() - 1..]);
        let (new_id, source, source_id) = &after[&disk];
        assert_ne!(new_id, &before[&disk].0, "a new disk");
        assert_eq!(source, snap, "{disk} is made from its recovery point's snapshot");
        assert_eq!(source_id, gce.get(&path(snap))["id"].as_str().unwrap());
    }
    // The rest of the stack is back too: the instances, with the restored disks attached.
    let web = gce.list_all(&format!("projects/{PROJECT}/aggregated/instances"), Some(ENV_FILTER));
    assert_eq!(web.len(), 2);
    for i in &web {
        let n = &i["name"].as_str().unwrap()["gcp-staging-web-".len()..];
        let data = i["disks"].as_array().unwrap().iter().find(|d| d["deviceName"] == "data").expect("the data disk is attached");
        assert!(data["source"].as_str().unwrap().ends_with(&format!("/disks/gcp-staging-data-{n}")));
    }
    // The everyday definition (which names no snapshot) plans clean.
    let plan = run(&project, &gce, &["plan", "gcp-staging", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "clean after the restore:\n{}\n{}", plan.stdout, plan.stderr);

    // Part is lost: one data disk (detached, then deleted). Only it comes back, from its snapshot.
    let whole = data_disks(&gce);
    let (code, op) = gce.request(
        "POST",
        &format!("projects/{PROJECT}/zones/us-central1-a/instances/gcp-staging-web-1/detachDisk?deviceName=data"),
        None,
    );
    assert_eq!(code, 200, "{op}");
    gce.wait(&op);
    delete(&gce, &format!("projects/{PROJECT}/zones/us-central1-a/disks/gcp-staging-data-1"));
    let web0 = gce.get(&format!("projects/{PROJECT}/zones/us-central1-a/instances/gcp-staging-web-0"));
    let restore = ok(run(&project, &gce, &["--json", "restore", "gcp-staging", "--from", &id, "--yes"]), "partial restore");
    assert_eq!(restored_of(&restore), BTreeMap::from([("gcp-data-1".to_string(), snaps["gcp-data-1"].0.clone())]));
    let after = data_disks(&gce);
    assert_eq!(after["gcp-staging-data-0"], whole["gcp-staging-data-0"], "the surviving disk is kept");
    assert_ne!(after["gcp-staging-data-1"].0, whole["gcp-staging-data-1"].0);
    assert_eq!(after["gcp-staging-data-1"].1, snaps["gcp-data-1"].0, "the lost disk is made from its snapshot");
    let web1 = gce.get(&format!("projects/{PROJECT}/zones/us-central1-a/instances/gcp-staging-web-1"));
    assert!(
        web1["disks"].as_array().unwrap().iter().any(|d| d["source"].as_str().is_some_and(|s| s.ends_with("/disks/gcp-staging-data-1"))),
        "attached again: {web1}"
    );
    assert_eq!(gce.get(&format!("projects/{PROJECT}/zones/us-central1-a/instances/gcp-staging-web-0"))["id"], web0["id"], "kept");
    let plan = run(&project, &gce, &["plan", "gcp-staging", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "complete again:\n{}\n{}", plan.stdout, plan.stderr);

    // Deleting the point deletes its snapshots; then the environment goes.
    ok(run(&project, &gce, &["snapshot", "delete", "gcp-staging", &id, "--yes"]), "snapshot delete");
    assert!(point_snapshots(&gce, &id).is_empty(), "the point's snapshots are deleted");
    assert!(gce.list_all(&format!("projects/{PROJECT}/global/snapshots"), None).is_empty());
    ok(run(&project, &gce, &["down", "gcp-staging", "--yes"]), "down");
    assert!(gce.list_all(&format!("projects/{PROJECT}/aggregated/disks"), Some(ENV_FILTER)).is_empty());
    assert!(gce.list_all(&format!("projects/{PROJECT}/aggregated/instances"), Some(ENV_FILTER)).is_empty());
}
