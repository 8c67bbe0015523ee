use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::plan::Action;
use crate::planner::{PlanOptions, diff, refresh};
use crate::testing::*;

fn no_log() -> LogSink {
    Arc::new(|_: &ResourceAddr, _: &str| {})
}

fn point(def: &Definition, state: &StateDoc, reg: &Registry, snapshots: Vec<SnapshotRecord>) -> RecoveryPoint {
    RecoveryPoint {
        id: "rp-test".into(),
        environment: state.environment.clone(),
        instance: None,
        created_at: Utc::now(),
        took_ms: 1,
        lineage: state.lineage.clone(),
        serial: state.serial,
        variables: BTreeMap::new(),
        definition: sealed_definition(def, reg, &state.lineage),
        snapshots,
    }
}

#[tokio::test]
async fn every_stateful_object_is_snapshotted_in_parallel_or_the_failures_named() {
    let d = def(&[("a", json!({"name": "x"})), ("b", json!({"name": "${a.id}"})), ("c", json!({}))]);
    let state = applied(&d, &empty_state()).await;
    let p = Arc::new(FakeProvider { delay: std::time::Duration::from_millis(50), ..Default::default() });
    let reg = registry(p.clone());
    let taken = take(&state, &reg, "rp-1", 8, no_log()).await.unwrap();
    let ids: Vec<(&str, &str)> = taken.iter().map(|s| (s.addr.as_str(), s.snapshot.id.as_str())).collect();
    assert_eq!(ids, [("a", "snap-a-rp-1"), ("b", "snap-b-rp-1"), ("c", "snap-c-rp-1")]);
    assert!(taken.iter().all(|s| s.restore_attr == "from_snapshot" && s.source_id.as_deref() == Some(&format!("id-{}", s.addr))));
    // All three ran at once: each started before any finished.
    let calls = p.calls();
    let first_end = calls.iter().map(|c| c.end).min().unwrap();
    assert!(calls.iter().all(|c| c.start < first_end), "snapshots ran one after another");

    p.fail.lock().unwrap().insert("b".into());
    let (ok, failed) = take(&state, &reg, "rp-2", 1, no_log()).await.unwrap_err();
    assert_eq!(ok.len(), 2, "the ones taken are handed back to be deleted");
    assert_eq!(failed.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["b"]);
}

#[tokio::test]
async fn an_object_whose_inputs_opt_out_is_not_snapshotted_though_its_type_could_be() {
    let d = def(&[("a", json!({"name": "x"})), ("b", json!({"stateful": false})), ("c", json!({"stateful": true}))]);
    let state = applied(&d, &empty_state()).await;
    let p = Arc::new(FakeProvider::default());
    let reg = registry(p.clone());
    let chosen: Vec<String> = stateful(&state, &reg).into_iter().map(|(a, _, _)| a.to_string()).collect();
    assert_eq!(chosen, ["a", "c"]);
    let taken = take(&state, &reg, "rp-1", 4, no_log()).await.unwrap();
    assert_eq!(taken.iter().map(|s| s.addr.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    assert!(!p.ops().contains(&("snapshot".to_string(), "b".to_string())), "{:?}", p.ops());
}

#[tokio::test]
async fn secrets_are_sealed_in_the_point_and_taken_from_the_environment_on_restore() {
    let d = def(&[("db", json!({"name": "db", "password": "hunter2"}))]);
    let state = applied(&d, &empty_state()).await;
    let reg = registry(Arc::new(FakeProvider::default()));
    let p = point(&d, &state, &reg, vec![]);
    let stored = serde_json::to_string(&p).unwrap();
    assert!(!stored.contains("hunter2"), "{stored}");

    let (restored, _) = restore_definition(&p, &d, &BTreeSet::new(), None).unwrap();
    assert_eq!(restored.resources[&addr("db")].attrs["password"], json!("hunter2"));
    let without = def(&[("db", json!({"name": "db"}))]);
    let errors = restore_definition(&p, &without, &BTreeSet::new(), None).unwrap_err();
    assert_eq!(errors, vec![RestoreError::MissingSecret { addr: addr("db"), attr: "password".into() }]);
}

#[tokio::test]
async fn only_what_is_missing_is_restored_from_its_snapshot() {
    let d = def(&[("net", json!({"name": "n"})), ("disk", json!({"name": "${net.id}"})), ("db", json!({"size": 2}))]);
    let state = applied(&d, &empty_state()).await;
    let reg = registry(Arc::new(FakeProvider::default()));
    let snaps = take(&state, &reg, "rp-1", 4, no_log()).await.unwrap();
    let p = point(&d, &state, &reg, snaps);

    // Everything lost, state included: the whole environment comes back, each stateful object from its snapshot.
    let (whole, restored) = restore_definition(&p, &d, &BTreeSet::new(), None).unwrap();
    assert_eq!(restored.len(), 3);
    let plan = diff(&whole, &refresh(&empty_state(), &reg).await.unwrap(), &reg, &PlanOptions::default());
    assert!(plan.changes.iter().all(|c| c.action == Action::Create));
    let disk = plan.changes.iter().find(|c| c.addr.as_str() == "disk").unwrap();
    assert_eq!(disk.desired.as_ref().unwrap()["from_snapshot"], json!("snap-disk-rp-1"));

    // Only the disk lost: the rest is kept as it is, the disk comes back from its snapshot.
    let mut partial = state.clone();
    partial.resources.remove(&addr("disk"));
    let existing: BTreeSet<ResourceAddr> = partial.resources.keys().cloned().collect();
    let (def2, restored) = restore_definition(&p, &d, &existing, None).unwrap();
    assert_eq!(restored.iter().map(|r| r.addr.as_str()).collect::<Vec<_>>(), ["disk"]);
    let plan = diff(&def2, &refresh(&partial, &reg).await.unwrap(), &reg, &PlanOptions::default());
    let mut acts: Vec<(&str, Action)> = plan.changes.iter().map(|c| (c.addr.as_str(), c.action)).collect();
    acts.sort();
    assert_eq!(acts, [("db", Action::NoOp), ("disk", Action::Create), ("net", Action::NoOp)]);
}

#[tokio::test]
async fn after_a_restore_the_everyday_definition_keeps_the_restored_objects() {
    let d = def(&[("disk", json!({"name": "data"}))]);
    let state = applied(&d, &empty_state()).await;
    let reg = registry(Arc::new(FakeProvider::default()));
    let p = point(&d, &state, &reg, take(&state, &reg, "rp-1", 4, no_log()).await.unwrap());
    let (restore_def, _) = restore_definition(&p, &d, &BTreeSet::new(), None).unwrap();
    let restored = applied(&restore_def, &empty_state()).await;
    assert_eq!(restored.resources[&addr("disk")].inputs["from_snapshot"], json!("snap-disk-rp-1"));
    // The environment file does not name the snapshot: nothing to replace.
    let plan = diff(&d, &refresh(&restored, &reg).await.unwrap(), &reg, &PlanOptions::default());
    assert!(!plan.summary().has_changes(), "{:#?}", plan.changes);
    // Naming another snapshot still replaces it (it is force-new).
    let other = def(&[("disk", json!({"name": "data", "from_snapshot": "snap-other"}))]);
    let plan = diff(&other, &refresh(&restored, &reg).await.unwrap(), &reg, &PlanOptions::default());
    assert_eq!(plan.changes[0].action, Action::Replace);
    // Replaced for another reason (a force-new attribute the definition
    // changes), the new object follows the definition: it is not made from
    // the old snapshot again (an instance given a new AMI gets that AMI).
    let resized = def(&[("disk", json!({"name": "data", "size": 20}))]);
    let plan = diff(&resized, &refresh(&restored, &reg).await.unwrap(), &reg, &PlanOptions::default());
    assert_eq!(plan.changes[0].action, Action::Replace);
    let desired = plan.changes[0].desired.as_ref().unwrap();
    assert_eq!(desired.get("from_snapshot"), None, "{desired:?}");
}

#[tokio::test]
async fn another_region_needs_copies_there() {
    let d = def(&[("disk", json!({}))]);
    let state = applied(&d, &empty_state()).await;
    let reg = registry(Arc::new(FakeProvider::default()));
    let mut snaps = take(&state, &reg, "rp-1", 4, no_log()).await.unwrap();
    let p = point(&d, &state, &reg, snaps.clone());
    let err = restore_definition(&p, &d, &BTreeSet::new(), Some("r2")).unwrap_err();
    assert!(matches!(&err[0], RestoreError::NotInRegion { region, .. } if region == "r2"), "{err:?}");
    assert!(err[0].to_string().contains("--copy-to-region r2"));

    snaps[0].copies.insert("r2".into(), SnapshotRef { id: "snap-copy".into(), region: Some("r2".into()) });
    let p = point(&d, &state, &reg, snaps);
    assert_eq!(p.copied_regions().into_iter().collect::<Vec<_>>(), ["r2"]);
    let (def2, _) = restore_definition(&p, &d, &BTreeSet::new(), Some("r2")).unwrap();
    assert_eq!(def2.resources[&addr("disk")].attrs["from_snapshot"], json!("snap-copy"));
    let (def1, _) = restore_definition(&p, &d, &BTreeSet::new(), Some("r1")).unwrap();
    assert_eq!(def1.resources[&addr("disk")].attrs["from_snapshot"], json!("snap-disk-rp-1"), "the original's own region");
}

#[tokio::test]
async fn a_global_snapshot_serves_every_region() {
    let d = def(&[("disk", json!({}))]);
    let state = applied(&d, &empty_state()).await;
    let reg = registry(Arc::new(FakeProvider::default()));
    let mut snaps = take(&state, &reg, "rp-1", 4, no_log()).await.unwrap();
    snaps[0].snapshot.region = None;
    let p = point(&d, &state, &reg, snaps);
    let (def2, restored) = restore_definition(&p, &d, &BTreeSet::new(), Some("r2")).unwrap();
    assert_eq!(def2.resources[&addr("disk")].attrs["from_snapshot"], json!("snap-disk-rp-1"), "no copy needed");
    assert_eq!(restored[0].snapshot.region, None);
}

#[test]
fn ids_sort_by_time() {
    let a = RecoveryPoint::new_id("2026-11-24T02:00:00Z".parse().unwrap());
    let b = RecoveryPoint::new_id("2026-11-24T02:00:01Z".parse().unwrap());
    assert!(a.starts_with("rp-20261124-020000-") && a < b, "{a} {b}");
}
