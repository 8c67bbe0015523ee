use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::testing::*;

async fn plan_of(def: &Definition, state: &StateDoc, opts: PlanOptions) -> Plan {
    let reg = registry(Arc::new(FakeProvider::default()));
    let refreshed = refresh(state, &reg).await.unwrap();
    diff(def, &refreshed, &reg, &opts)
}

fn action(plan: &Plan, name: &str) -> Action {
    plan.changes.iter().find(|c| c.addr.as_str() == name).map(|c| c.action).unwrap()
}

#[tokio::test]
async fn empty_state_creates_everything_in_dependency_order() {
    let d = def(&[("b", json!({"name": "${a.id}"})), ("a", json!({"name": "x"}))]);
    let plan = plan_of(&d, &empty_state(), PlanOptions::default()).await;
    let order: Vec<_> = plan.changes.iter().map(|c| (c.addr.to_string(), c.action)).collect();
    assert_eq!(order, vec![("a".into(), Action::Create), ("b".into(), Action::Create)]);
    // b's name depends on a's id, which is known only after apply.
    let b = &plan.changes[1];
    assert_eq!(b.desired.as_ref().unwrap()["name"], json!("${a.id}"));
    // The default was applied.
    assert_eq!(b.desired.as_ref().unwrap()["port"], json!(80));
}

#[tokio::test]
async fn unchanged_definition_is_a_no_op() {
    let d = def(&[("a", json!({"name": "x", "size": 1})), ("b", json!({"name": "${a.id}"}))]);
    let state = applied(&d, &empty_state()).await;
    let plan = plan_of(&d, &state, PlanOptions::default()).await;
    assert!(!plan.summary().has_changes(), "{:#?}", plan.changes);
    assert_eq!(plan.summary().unchanged, 2);
}

#[tokio::test]
async fn updatable_attribute_updates_in_place() {
    let state = applied(&def(&[("a", json!({"name": "x", "size": 1}))]), &empty_state()).await;
    let plan = plan_of(&def(&[("a", json!({"name": "y", "size": 1}))]), &state, PlanOptions::default()).await;
    assert_eq!(action(&plan, "a"), Action::Update);
    let c = &plan.changes[0].changes;
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].name.as_str(), c[0].before.clone(), c[0].after.clone()), ("name", Some(json!("x")), Some(json!("y"))));
}

#[tokio::test]
async fn force_new_attribute_replaces_and_propagates_unknowns() {
    let before = def(&[("a", json!({"size": 1})), ("b", json!({"size": "${a.size}", "name": "${a.id}"}))]);
    let state = applied(&before, &empty_state()).await;
    let after = def(&[("a", json!({"size": 2})), ("b", json!({"size": "${a.size}", "name": "${a.id}"}))]);
    let plan = plan_of(&after, &state, PlanOptions::default()).await;
    assert_eq!(action(&plan, "a"), Action::Replace);
    assert!(plan.changes[0].changes[0].forces_replacement);
    // b's size follows a's new (known) size and forces b's replacement too; its name waits for a's new id.
    assert_eq!(action(&plan, "b"), Action::Replace);
    let b = plan.changes.iter().find(|c| c.addr.as_str() == "b").unwrap();
    let names: Vec<_> = b.changes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["name", "size"]);
}

#[tokio::test]
async fn removed_resource_is_deleted_and_destroy_deletes_everything() {
    let d = def(&[("a", json!({})), ("b", json!({"name": "${a.id}"}))]);
    let state = applied(&d, &empty_state()).await;
    let plan = plan_of(&def(&[("a", json!({}))]), &state, PlanOptions::default()).await;
    assert_eq!(action(&plan, "b"), Action::Delete);
    assert_eq!(action(&plan, "a"), Action::NoOp);
    let destroy = plan_of(&d, &state, PlanOptions { destroy: true, ..Default::default() }).await;
    assert_eq!(destroy.summary().delete, 2);
}

#[tokio::test]
async fn vanished_object_is_recreated() {
    struct Gone;
    let d = def(&[("a", json!({}))]);
    let state = applied(&d, &empty_state()).await;
    let reg = registry(Arc::new(FakeProvider::default()));
    let mut refreshed = refresh(&state, &reg).await.unwrap();
    // What a provider's `Ok(None)` does.
    let _ = Gone;
    refreshed.state.resources.clear();
    refreshed.gone.insert(addr("a"));
    let plan = diff(&d, &refreshed, &reg, &PlanOptions::default());
    assert_eq!(action(&plan, "a"), Action::Create);
    assert!(plan.changes[0].reasons[0].contains("no longer exists"));
}

#[tokio::test]
async fn sensitive_values_are_compared_sealed_and_never_shown() {
    let d = def(&[("a", json!({"password": "hunter2"}))]);
    let state = applied(&d, &empty_state()).await;
    assert!(!serde_json::to_string(&state).unwrap().contains("hunter2"));
    let same = plan_of(&d, &state, PlanOptions::default()).await;
    assert_eq!(action(&same, "a"), Action::NoOp);
    let changed = plan_of(&def(&[("a", json!({"password": "hunter3"}))]), &state, PlanOptions::default()).await;
    assert_eq!(action(&changed, "a"), Action::Update);
    let shown = serde_json::to_string(&changed.redacted()).unwrap();
    assert!(!shown.contains("hunter3") && !shown.contains("hunter2"), "{shown}");
}

#[tokio::test]
async fn references_to_unchanged_resources_resolve_at_plan_time() {
    let d = def(&[("a", json!({"name": "x"}))]);
    let state = applied(&d, &empty_state()).await;
    let d2 = def(&[("a", json!({"name": "x"})), ("b", json!({"name": "${a.id}-b"}))]);
    let plan = plan_of(&d2, &state, PlanOptions::default()).await;
    let b = plan.changes.iter().find(|c| c.addr.as_str() == "b").unwrap();
    assert_eq!(b.desired.as_ref().unwrap()["name"], json!("id-a-b"));
}

#[tokio::test]
async fn targets_limit_the_plan_to_what_they_need() {
    let d = def(&[("a", json!({})), ("b", json!({"name": "${a.id}"})), ("c", json!({}))]);
    let plan = plan_of(&d, &empty_state(), PlanOptions { targets: vec![addr("b")], ..Default::default() }).await;
    assert_eq!(action(&plan, "a"), Action::Create);
    assert_eq!(action(&plan, "b"), Action::Create);
    assert_eq!(action(&plan, "c"), Action::NoOp);
}

#[tokio::test]
async fn a_saved_plan_fingerprint_changes_with_the_plan() {
    let d = def(&[("a", json!({"name": "x"}))]);
    let p1 = plan_of(&d, &empty_state(), PlanOptions::default()).await;
    let p2 = plan_of(&d, &empty_state(), PlanOptions::default()).await;
    assert_eq!(p1.fingerprint(), p2.fingerprint());
    let p3 = plan_of(&def(&[("a", json!({"name": "y"}))]), &empty_state(), PlanOptions::default()).await;
    assert_ne!(p1.fingerprint(), p3.fingerprint());
}

#[tokio::test]
async fn computed_attributes_of_an_updated_resource_are_known_after_apply_unless_stable() {
    let before = def(&[("a", json!({"name": "x"})), ("b", json!({"name": "${a.echo}"})), ("c", json!({"name": "${a.id}"}))]);
    let state = applied(&before, &empty_state()).await;
    let after = def(&[("a", json!({"name": "y"})), ("b", json!({"name": "${a.echo}"})), ("c", json!({"name": "${a.id}"}))]);
    let plan = plan_of(&after, &state, PlanOptions::default()).await;
    assert_eq!(action(&plan, "a"), Action::Update);
    // `echo` changes with the update, so b must follow; `id` is stable, so c stays.
    assert_eq!(action(&plan, "b"), Action::Update);
    assert_eq!(action(&plan, "c"), Action::NoOp);
    let state = applied(&after, &state).await;
    assert_eq!(state.resources[&addr("b")].inputs["name"], json!("y"));
}

#[tokio::test]
async fn deleting_or_replacing_an_object_that_holds_data_is_marked() {
    let d = def(&[("disk", json!({"size": 1})), ("cache", json!({"size": 1, "stateful": false})), ("keep", json!({"name": "x"}))]);
    let state = applied(&d, &empty_state()).await;
    // disk is replaced (force-new size), cache too but it holds nothing, keep goes.
    let after = def(&[("disk", json!({"size": 2})), ("cache", json!({"size": 2, "stateful": false}))]);
    let plan = plan_of(&after, &state, PlanOptions::default()).await;
    let lost: Vec<_> = plan.data_losses().map(|c| (c.addr.to_string(), c.action)).collect();
    assert_eq!(lost, vec![("disk".into(), Action::Replace), ("keep".into(), Action::Delete)]);
    // An update keeps the data.
    let plan = plan_of(
        &def(&[("keep", json!({"name": "y"}))]),
        &applied(&def(&[("keep", json!({"name": "x"}))]), &empty_state()).await,
        PlanOptions::default(),
    )
    .await;
    assert_eq!(plan.data_losses().count(), 0);
    // Saved plans from before the field existed still read.
    let mut doc = serde_json::to_value(&plan).unwrap();
    doc["changes"][0].as_object_mut().unwrap().remove("loses_data");
    doc.as_object_mut().unwrap().remove("prior_outputs");
    assert_eq!(serde_json::from_value::<Plan>(doc).unwrap().data_losses().count(), 0);
}

#[tokio::test]
async fn output_changes_compare_with_what_state_recorded() {
    let mut d = def(&[("a", json!({"name": "x"}))]);
    let output = |value: Value, sensitive: bool| crate::definition::OutputConfig { value, sensitive, description: None };
    d.outputs.insert("same".into(), output(json!("${a.name}"), false));
    d.outputs.insert("secret".into(), output(json!("s3cr3t"), true));
    d.outputs.insert("dropped".into(), output(json!(1), false));
    let state = applied(&d, &empty_state()).await;
    assert!(plan_of(&d, &state, PlanOptions::default()).await.output_changes().is_empty());

    let mut d2 = def(&[("a", json!({"name": "y"}))]);
    d2.outputs.insert("same".into(), output(json!("${a.name}"), false));
    d2.outputs.insert("secret".into(), output(json!("other"), true));
    d2.outputs.insert("id".into(), output(json!("${a.id}"), false));
    let plan = plan_of(&d2, &state, PlanOptions::default()).await;
    let changes: Vec<_> = plan.output_changes().into_iter().map(|c| (c.name, c.before.is_some(), c.after.is_some(), c.sensitive)).collect();
    assert_eq!(
        changes,
        vec![("dropped", true, false, false), ("id", false, true, false), ("same", true, true, false), ("secret", true, true, true)]
    );
    // The redacted plan (what is shown and saved) agrees, and holds no clear secret.
    let redacted = plan.redacted();
    assert_eq!(redacted.output_changes().len(), 4);
    assert!(!serde_json::to_string(&redacted).unwrap().contains("s3cr3t"));
    // A destroy shows every output going.
    let plan = plan_of(&d, &state, PlanOptions { destroy: true, ..Default::default() }).await;
    assert!(plan.output_changes().iter().all(|c| c.after.is_none()));
    assert_eq!(plan.output_changes().len(), 3);
}
