use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::planner::{PlanOptions, diff, refresh};
use crate::state::StateDoc;
use crate::testing::*;

struct Run {
    provider: Arc<FakeProvider>,
    journal: Arc<MemoryJournal>,
    report: ApplyReport,
    state: StateDoc,
}

async fn run(d: &crate::definition::Definition, state: &StateDoc, destroy: bool, fail: &[&str], delay_ms: u64, parallelism: usize) -> Run {
    let journal = Arc::new(MemoryJournal::default());
    let provider = Arc::new(FakeProvider {
        delay: Duration::from_millis(delay_ms),
        journal: Some(journal.clone()),
        fail: std::sync::Mutex::new(fail.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    });
    let reg = registry(provider.clone());
    let plan = diff(d, &refresh(state, &reg).await.unwrap(), &reg, &PlanOptions { destroy, ..Default::default() });
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let report = apply(&plan, &reg, journal.clone(), Arc::new(NullReporter), ApplyOptions { parallelism, cancel: rx }).await.unwrap();
    let state = journal.replay(state);
    Run { provider, journal, report, state }
}

fn diamond() -> crate::definition::Definition {
    def(&[
        ("vpc", json!({})),
        ("subnet", json!({"name": "${vpc.id}"})),
        ("sg", json!({"name": "${vpc.id}"})),
        ("web", json!({"name": "${subnet.id}/${sg.id}"})),
        ("lonely", json!({})),
    ])
}

fn span(r: &Run, op: &str, a: &str) -> (std::time::Instant, std::time::Instant) {
    let c = r.provider.calls().into_iter().find(|c| c.op == op && c.addr == a).unwrap_or_else(|| panic!("no {op} {a}"));
    (c.start, c.end)
}

#[tokio::test]
async fn independent_operations_run_in_parallel_and_dependents_wait() {
    let r = run(&diamond(), &empty_state(), false, &[], 50, 8).await;
    assert!(r.report.is_success());
    let (_, vpc_e) = span(&r, "create", "vpc");
    let (subnet_s, subnet_e) = span(&r, "create", "subnet");
    let (sg_s, sg_e) = span(&r, "create", "sg");
    let (web_s, _) = span(&r, "create", "web");
    let (lonely_s, _) = span(&r, "create", "lonely");
    // Roots start together; subnet and sg overlap; web waits for both.
    assert!(lonely_s < vpc_e, "lonely should not wait for vpc");
    assert!(subnet_s >= vpc_e && sg_s >= vpc_e);
    assert!(subnet_s < sg_e && sg_s < subnet_e, "subnet and sg should overlap");
    assert!(web_s >= subnet_e && web_s >= sg_e);
    // References were resolved with the created ids.
    assert_eq!(r.state.resources[&addr("web")].inputs["name"], json!("id-subnet/id-sg"));
}

#[tokio::test]
async fn each_result_is_journaled_before_its_dependents_start() {
    let r = run(&diamond(), &empty_state(), false, &[], 1, 8).await;
    let records = r.journal.records();
    let put_index = |name: &str| {
        records.iter().position(|rec| matches!(rec, crate::state::JournalRecord::Put { addr, .. } if addr.as_str() == name)).unwrap()
    };
    let starts = r.provider.journal_len_at_start.lock().unwrap().clone();
    let start_len = |name: &str| starts.iter().find(|(a, _)| a == name).unwrap().1;
    assert!(start_len("subnet") > put_index("vpc"));
    assert!(start_len("web") > put_index("subnet"));
    assert!(start_len("web") > put_index("sg"));
    // Each create was announced (intent) before the provider was called.
    let intent_index =
        records.iter().position(|rec| matches!(rec, crate::state::JournalRecord::Intent { addr, .. } if addr.as_str() == "web")).unwrap();
    assert!(start_len("web") > intent_index);
    assert!(r.state.pending.is_empty());
}

#[tokio::test]
async fn destroy_walks_the_graph_in_reverse() {
    let created = run(&diamond(), &empty_state(), false, &[], 0, 8).await;
    let r = run(&diamond(), &created.state, true, &[], 20, 8).await;
    assert!(r.report.is_success());
    let (_, web_e) = span(&r, "delete", "web");
    let (subnet_s, subnet_e) = span(&r, "delete", "subnet");
    let (sg_s, sg_e) = span(&r, "delete", "sg");
    let (vpc_s, _) = span(&r, "delete", "vpc");
    assert!(subnet_s >= web_e && sg_s >= web_e);
    assert!(vpc_s >= subnet_e && vpc_s >= sg_e);
    assert!(r.state.resources.is_empty());
}

#[tokio::test]
async fn a_failure_skips_dependents_but_independent_branches_finish() {
    let r = run(&diamond(), &empty_state(), false, &["subnet"], 5, 8).await;
    assert!(!r.report.is_success());
    let outcome = |a: &str| r.report.results.iter().find(|x| x.addr.as_str() == a).unwrap().outcome.clone();
    // The provider's error kind reaches the report, typed.
    let Outcome::Failed { error } = outcome("subnet") else { panic!("subnet should have failed") };
    assert_eq!((error.kind, error.message.as_str()), (ErrorKind::PermissionDenied, "subnet failed on purpose"));
    assert!(error.hint().is_some_and(|h| h.contains("permission")));
    assert_eq!(outcome("web"), Outcome::Skipped { because: addr("subnet") });
    assert_eq!(outcome("sg"), Outcome::Succeeded);
    assert_eq!(outcome("lonely"), Outcome::Succeeded);
    assert!(!r.provider.ops().iter().any(|(_, a)| a == "web"), "web must never be attempted");
    // The failure was permanent: no intent lingers for it.
    assert!(r.state.pending.is_empty());
    assert!(r.state.resources.contains_key(&addr("sg")));
}

#[tokio::test]
async fn parallelism_bounds_operations_in_flight() {
    let many: Vec<(String, serde_json::Value)> = (0..12).map(|i| (format!("n{i}"), json!({}))).collect();
    let refs: Vec<(&str, serde_json::Value)> = many.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
    let r = run(&def(&refs), &empty_state(), false, &[], 30, 3).await;
    let calls = r.provider.calls();
    // The most calls in flight at one instant (the concurrency peaks at some call's start).
    let max_overlap = calls.iter().map(|c| calls.iter().filter(|o| o.start <= c.start && c.start < o.end).count()).max().unwrap();
    assert!(max_overlap <= 3, "at most 3 in flight, saw {max_overlap}");
    assert!(max_overlap >= 2, "operations should overlap");
}

#[tokio::test]
async fn cancellation_stops_scheduling_but_finishes_in_flight_work() {
    let d = def(&[("a", json!({})), ("b", json!({"name": "${a.id}"})), ("c", json!({"name": "${b.id}"}))]);
    let journal = Arc::new(MemoryJournal::default());
    let provider = Arc::new(FakeProvider { delay: Duration::from_millis(100), ..Default::default() });
    let reg = registry(provider.clone());
    let plan = diff(&d, &refresh(&empty_state(), &reg).await.unwrap(), &reg, &PlanOptions::default());
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        tx.send(true).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let report = apply(&plan, &reg, journal.clone(), Arc::new(NullReporter), ApplyOptions { parallelism: 4, cancel: rx }).await.unwrap();
    assert!(report.interrupted);
    // a was in flight and completed and recorded; b and c never started.
    assert_eq!(provider.ops(), vec![("create".to_string(), "a".to_string())]);
    let state = journal.replay(&empty_state());
    assert!(state.resources.contains_key(&addr("a")));
    assert_eq!(report.results.iter().filter(|r| r.outcome == Outcome::Cancelled).count(), 2);
}

#[tokio::test]
async fn replacement_destroys_dependents_first_then_recreates_in_order() {
    let before = def(&[("a", json!({"size": 1})), ("b", json!({"size": "${a.size}"}))]);
    let created = run(&before, &empty_state(), false, &[], 0, 8).await;
    let after = def(&[("a", json!({"size": 2})), ("b", json!({"size": "${a.size}"}))]);
    let r = run(&after, &created.state, false, &[], 1, 8).await;
    assert!(r.report.is_success());
    assert_eq!(
        r.provider.ops(),
        vec![("delete".into(), "b".into()), ("delete".into(), "a".into()), ("create".into(), "a".into()), ("create".into(), "b".into())]
    );
    assert_eq!(r.state.resources[&addr("b")].inputs["size"], json!(2));
}

#[tokio::test]
async fn create_before_destroy_replacement_creates_first_and_leaves_nothing_deposed() {
    let mut before = def(&[("a", json!({"size": 1}))]);
    before.resources.get_mut(&addr("a")).unwrap().create_before_destroy = Some(true);
    let created = run(&before, &empty_state(), false, &[], 0, 8).await;
    let mut after = def(&[("a", json!({"size": 2}))]);
    after.resources.get_mut(&addr("a")).unwrap().create_before_destroy = Some(true);
    let r = run(&after, &created.state, false, &[], 1, 8).await;
    assert_eq!(r.provider.ops(), vec![("create".into(), "a".into()), ("delete".into(), "a".into())]);
    assert!(r.state.deposed.is_empty());
    assert_eq!(r.state.resources[&addr("a")].inputs["size"], json!(2));
}

#[tokio::test]
async fn operation_graph_of_a_delete_waits_for_dependents_that_stop_using_it() {
    // b used a; now b no longer references a and a is removed: update b, then delete a.
    let before = def(&[("a", json!({})), ("b", json!({"name": "${a.id}"}))]);
    let created = run(&before, &empty_state(), false, &[], 0, 8).await;
    let after = def(&[("b", json!({"name": "plain"}))]);
    let r = run(&after, &created.state, false, &[], 1, 8).await;
    assert_eq!(r.provider.ops(), vec![("update".into(), "b".into()), ("delete".into(), "a".into())]);
}

#[tokio::test]
async fn replacing_an_object_that_an_updated_dependent_points_at_is_not_a_cycle() {
    // An elastic IP (b) follows an instance (a) that is replaced: destroy a, create a, then update b.
    let before = def(&[("a", json!({"size": 1})), ("b", json!({"name": "${a.id}"}))]);
    let created = run(&before, &empty_state(), false, &[], 0, 8).await;
    let mut after_state = created.state.clone();
    // The new object gets a new id, so b's reference changes.
    after_state.resources.get_mut(&addr("a")).unwrap().outputs.insert("id".into(), json!("old-id"));
    after_state.resources.get_mut(&addr("b")).unwrap().inputs.insert("name".into(), json!("old-id"));
    let after = def(&[("a", json!({"size": 2})), ("b", json!({"name": "${a.id}"}))]);
    let r = run(&after, &after_state, false, &[], 1, 8).await;
    assert!(r.report.is_success(), "{:?}", r.report);
    assert_eq!(r.provider.ops(), vec![("delete".into(), "a".into()), ("create".into(), "a".into()), ("update".into(), "b".into())]);
    assert_eq!(r.state.resources[&addr("b")].inputs["name"], json!("id-a"));
}

#[test]
fn a_failed_event_carries_the_message_and_the_kind() {
    let ev = ApplyEvent::Failed {
        addr: addr("db"),
        op: OpKind::Create,
        error: OpError::new(ErrorKind::RateLimited, "CreateDBInstance: Throttling"),
        elapsed_ms: 7,
    };
    assert_eq!(
        serde_json::to_value(&ev).unwrap(),
        json!({"event": "failed", "addr": "db", "op": "create", "error": "CreateDBInstance: Throttling", "error_kind": "rate_limited", "elapsed_ms": 7})
    );
}

/// Keeps every event, for tests of what a display is told.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<ApplyEvent>>);

impl Reporter for Recorder {
    fn event(&self, event: &ApplyEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

fn finished_ids(events: &[ApplyEvent]) -> Vec<(String, OpKind, Option<String>)> {
    let mut ids: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ApplyEvent::Finished { addr, op, id, .. } => Some((addr.to_string(), *op, id.clone())),
            _ => None,
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_finished_event_names_the_object_made_and_the_object_destroyed() {
    let d = def(&[("vpc", json!({})), ("subnet", json!({"name": "${vpc.id}"}))]);
    let provider = Arc::new(FakeProvider::default());
    let reg = registry(provider.clone());
    let journal = Arc::new(MemoryJournal::default());
    let recorder = Arc::new(Recorder::default());
    let plan = diff(&d, &refresh(&empty_state(), &reg).await.unwrap(), &reg, &PlanOptions::default());
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let report = apply(&plan, &reg, journal.clone(), recorder.clone(), ApplyOptions { parallelism: 4, cancel: rx }).await.unwrap();
    assert!(report.is_success());
    assert_eq!(
        finished_ids(&recorder.0.lock().unwrap()),
        vec![("subnet".into(), OpKind::Create, Some("id-subnet".into())), ("vpc".into(), OpKind::Create, Some("id-vpc".into()))]
    );

    let state = journal.replay(&empty_state());
    let recorder = Arc::new(Recorder::default());
    let plan = diff(&d, &refresh(&state, &reg).await.unwrap(), &reg, &PlanOptions { destroy: true, ..Default::default() });
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let journal = Arc::new(MemoryJournal::default());
    apply(&plan, &reg, journal, recorder.clone(), ApplyOptions { parallelism: 4, cancel: rx }).await.unwrap();
    assert_eq!(
        finished_ids(&recorder.0.lock().unwrap()),
        vec![("subnet".into(), OpKind::Destroy, Some("id-subnet".into())), ("vpc".into(), OpKind::Destroy, Some("id-vpc".into()))]
    );
}

#[test]
fn an_object_is_named_by_its_id_else_by_its_pid() {
    let attrs = |v: serde_json::Value| -> Attrs { serde_json::from_value(v).unwrap() };
    assert_eq!(object_id(&attrs(json!({"id": "i-0abc", "pid": 7}))), Some("i-0abc".into()));
    assert_eq!(object_id(&attrs(json!({"pid": 4242, "manager": "process"}))), Some("pid 4242".into()));
    assert_eq!(object_id(&attrs(json!({"sha256": "ab"}))), None);
    assert_eq!(object_id(&attrs(json!({"id": ""}))), None);
}
