//! One behaviour suite for every state backend (feature `testkit`).
//!
//! `phoenix-state` runs it against [`LocalRoot`](crate::LocalRoot) and
//! `phoenix-state-s3` against S3 on moto. Each check uses its own
//! environment name, so one root serves the whole suite. Run it on a
//! multi-threaded tokio runtime (leased backends release on drop by blocking).

use std::sync::Arc;
use std::time::Duration;

use phoenix_core::ResourceAddr;
use phoenix_core::state::{JournalRecord, ResourceState};
use serde_json::json;

use crate::{LockInfo, StateError, StateRoot};

/// Every check, in order; panics naming the first that fails.
pub async fn suite(root: Arc<dyn StateRoot>) {
    new_state_is_empty_and_untouched(&*root).await;
    write_round_trips_and_refuses_stale(&*root).await;
    racing_stale_writers_never_lose_an_update(root.clone()).await;
    lock_excludes_and_names_the_holder(&*root).await;
    lock_wait_gets_a_released_lock(root.clone()).await;
    journal_records_survive_a_crash(&*root).await;
    journal_finish_compacts_once(&*root).await;
    list_finds_every_instance(&*root).await;
}

/// A lock request's holder details, whatever the backend's kind of lock.
pub fn holder_of(e: &StateError) -> Option<&LockInfo> {
    match e {
        StateError::Locked(h) => Some(h),
        StateError::Leased { holder, .. } => Some(holder),
        _ => None,
    }
}

/// The address of test resource `i`.
pub fn addr(i: usize) -> ResourceAddr {
    ResourceAddr::new_unchecked(format!("web-{i}"))
}

/// A record putting test resource `i` (an `aws.instance`-like state).
pub fn put(i: usize) -> JournalRecord {
    let resource = ResourceState {
        type_name: "aws.instance".into(),
        inputs: serde_json::from_value(json!({"instance_type": "t3.micro", "subnet_id": format!("subnet-{}", i % 3)})).unwrap(),
        outputs: serde_json::from_value(json!({"id": format!("i-{i:08x}")})).unwrap(),
        depends_on: vec![],
        tainted: false,
        create_before_destroy: false,
    };
    JournalRecord::Put { addr: addr(i), resource }
}

fn info(op: &str) -> LockInfo {
    LockInfo::new(op, format!("run-{op}-{}", uuid::Uuid::new_v4()))
}

async fn new_state_is_empty_and_untouched(root: &dyn StateRoot) {
    let b = root.open("c-empty", Some("a"));
    let d1 = b.load("c-empty", Some("a")).await.unwrap();
    let d2 = b.load("c-empty", Some("a")).await.unwrap();
    assert_eq!((d1.serial, d1.instance.as_deref()), (0, Some("a")));
    assert!(d1.is_empty());
    assert_ne!(d1.lineage, d2.lineage, "every new document gets a fresh lineage");
    assert!(root.list(Some("c-empty")).await.unwrap().is_empty(), "load must not create a state");
    assert!(b.lock_holder().await.unwrap().is_none_or(|s| !s.live));
}

async fn write_round_trips_and_refuses_stale(root: &dyn StateRoot) {
    let b = root.open("c-write", None);
    let locked = b.lock(info("state-rm"), Duration::ZERO).await.unwrap();
    let (mut doc, replayed) = locked.recover("c-write", None).await.unwrap();
    assert_eq!(replayed, 0);
    doc.apply_record(&put(0));
    let first = locked.write(&doc).await.unwrap();
    assert_eq!(first.serial, 1);
    assert!(first.updated_at.is_some());
    assert_eq!(b.load("c-write", None).await.unwrap(), first);
    let mut second = first.clone();
    second.apply_record(&put(1));
    let second = locked.write(&second).await.unwrap();
    assert_eq!(second.serial, 2);
    // `first` is based on serial 1: refused, and nothing changes.
    let err = locked.write(&first).await.unwrap_err();
    assert!(matches!(err, StateError::SerialConflict { current: 2, found: 1 }), "{err}");
    assert_eq!(b.load("c-write", None).await.unwrap(), second);
    let mut foreign = second.clone();
    foreign.lineage = "another".into();
    assert!(matches!(locked.write(&foreign).await, Err(StateError::LineageMismatch { .. })));
}

async fn racing_stale_writers_never_lose_an_update(root: Arc<dyn StateRoot>) {
    const WRITERS: usize = 8;
    let b = root.open("c-race", None);
    let locked: Arc<dyn crate::LockedState> = Arc::from(b.lock(info("race"), Duration::ZERO).await.unwrap());
    let (base, _) = locked.recover("c-race", None).await.unwrap();
    let base = locked.write(&base).await.unwrap();
    for round in 0..3 {
        // Every writer starts from the same document: at most one may win.
        let current = b.load("c-race", None).await.unwrap();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let locked = locked.clone();
                let mut doc = current.clone();
                doc.apply_record(&put(round * 100 + w));
                tokio::spawn(async move { (w, locked.write(&doc).await) })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (w, result) = t.await.unwrap();
            match result {
                Ok(doc) => winners.push((w, doc)),
                Err(StateError::SerialConflict { found, .. }) => assert_eq!(found, current.serial),
                Err(e) => panic!("writer {w}: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one of {WRITERS} writes based on serial {} may succeed", current.serial);
        let (w, doc) = &winners[0];
        let stored = b.load("c-race", None).await.unwrap();
        assert_eq!(&stored, doc, "the stored document is the winner's");
        assert!(stored.resources.contains_key(&addr(round * 100 + w)));
        assert_eq!(stored.resources.len(), round + 1, "no writer's update was merged or lost silently");
        // The losers race again with their now certainly stale documents: every one is refused.
        let stale: Vec<_> = (0..WRITERS)
            .filter(|x| x != w)
            .map(|x| {
                let locked = locked.clone();
                let mut doc = current.clone();
                doc.apply_record(&put(round * 100 + x));
                tokio::spawn(async move { locked.write(&doc).await })
            })
            .collect();
        for t in stale {
            let err = t.await.unwrap().expect_err("a stale write must be refused");
            assert!(matches!(err, StateError::SerialConflict { .. }), "{err}");
        }
        assert_eq!(b.load("c-race", None).await.unwrap(), stored, "refused writes change nothing");
    }
    assert_eq!(b.load("c-race", None).await.unwrap().serial, base.serial + 3);
}

async fn lock_excludes_and_names_the_holder(root: &dyn StateRoot) {
    let b = root.open("c-lock", Some("x"));
    let first = b.lock(info("up"), Duration::ZERO).await.unwrap();
    let err = root.open("c-lock", Some("x")).lock(info("down"), Duration::ZERO).await.err().expect("a second lock is refused");
    let holder = holder_of(&err).unwrap_or_else(|| panic!("not a lock error: {err}"));
    assert_eq!(holder, first.info(), "the refusal names the holder");
    assert!(err.to_string().contains(&first.info().run_id), "{err}");
    let status = b.lock_holder().await.unwrap().expect("a holder");
    assert!(status.live);
    assert_eq!(&status.info, first.info());
    assert!(b.unlock(false).await.is_err(), "a live holder's lock is not removed without force");
    // Another instance of the same environment is independent.
    let _other = root.open("c-lock", Some("y")).lock(info("up"), Duration::ZERO).await.unwrap();
    drop(first);
    assert!(b.lock_holder().await.unwrap().is_none_or(|s| !s.live));
    let again = b.lock(info("down"), Duration::ZERO).await.unwrap();
    assert_eq!(again.info().operation, "down");
}

async fn lock_wait_gets_a_released_lock(root: Arc<dyn StateRoot>) {
    let b = root.open("c-wait", None);
    let first = b.lock(info("up"), Duration::ZERO).await.unwrap();
    let started = std::time::Instant::now();
    let err = b.lock(info("down"), Duration::from_millis(300)).await.err().expect("still held");
    assert!(holder_of(&err).is_some(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(first);
    });
    let second = b.lock(info("down"), Duration::from_secs(20)).await.unwrap();
    assert_eq!(second.info().operation, "down");
    release.await.unwrap();
}

async fn journal_records_survive_a_crash(root: &dyn StateRoot) {
    let b = root.open("c-crash", None);
    {
        let locked = b.lock(info("up"), Duration::ZERO).await.unwrap();
        let (mut doc, _) = locked.recover("c-crash", None).await.unwrap();
        doc.apply_record(&put(0));
        let base = locked.write(&doc).await.unwrap();
        let journal = locked.journal(base).await.unwrap();
        for i in 1..=3 {
            journal.record(put(i)).await.unwrap();
        }
        // No finish: as if the process died here.
    }
    let seen = b.load("c-crash", None).await.unwrap();
    assert_eq!(seen.resources.len(), 4, "acknowledged records are visible after a crash");
    assert_eq!(seen.serial, 2, "state + a journal reads as one serial past the state");
    let locked = b.lock(info("up"), Duration::ZERO).await.unwrap();
    let (recovered, replayed) = locked.recover("c-crash", None).await.unwrap();
    assert_eq!((replayed, recovered.serial, recovered.resources.len()), (3, 2, 4));
    let (again, replayed) = locked.recover("c-crash", None).await.unwrap();
    assert_eq!((replayed, again.serial), (0, 2), "recovery is idempotent");
    assert_eq!(b.load("c-crash", None).await.unwrap(), again);
}

async fn journal_finish_compacts_once(root: &dyn StateRoot) {
    let b = root.open("c-finish", None);
    let locked = b.lock(info("up"), Duration::ZERO).await.unwrap();
    let (doc, _) = locked.recover("c-finish", None).await.unwrap();
    let journal = locked.journal(doc.clone()).await.unwrap();
    let records = (0..20).map(|i| {
        let j = journal.clone();
        async move { j.record(put(i)).await }
    });
    for r in futures_join(records).await {
        r.unwrap();
    }
    journal.record(JournalRecord::Remove { addr: addr(19) }).await.unwrap();
    let done = journal.finish().await.unwrap();
    assert_eq!((done.serial, done.resources.len()), (1, 19));
    assert!(journal.bytes_written() > 0);
    assert_eq!(b.load("c-finish", None).await.unwrap(), done);
    // A finish with nothing new writes nothing.
    assert_eq!(journal.finish().await.unwrap().serial, 1);
    drop(journal);
    drop(locked);
    // The next run starts from the compacted document.
    let locked = b.lock(info("up"), Duration::ZERO).await.unwrap();
    let (next, replayed) = locked.recover("c-finish", None).await.unwrap();
    assert_eq!((replayed, next.serial, next.resources.len()), (0, 1, 19));
    let journal = locked.journal(next).await.unwrap();
    assert_eq!(journal.finish().await.unwrap().serial, 1, "an empty run does not bump the serial");
}

async fn list_finds_every_instance(root: &dyn StateRoot) {
    for (instance, n) in [(Some("job-1"), 1), (Some("job-2"), 2), (None, 3)] {
        let b = root.open("c-list", instance);
        let locked = b.lock(info("up"), Duration::ZERO).await.unwrap();
        let (mut doc, _) = locked.recover("c-list", instance).await.unwrap();
        for i in 0..n {
            doc.apply_record(&put(i));
        }
        doc.expires_at = Some(chrono::Utc::now() + chrono::Duration::hours(2));
        locked.write(&doc).await.unwrap();
    }
    let _held = root.open("c-list", Some("job-2")).lock(info("up"), Duration::ZERO).await.unwrap();
    let other = root.open("c-list-other", Some("job-1"));
    let locked = other.lock(info("up"), Duration::ZERO).await.unwrap();
    let (doc, _) = locked.recover("c-list-other", Some("job-1")).await.unwrap();
    locked.write(&doc).await.unwrap();

    let listed = root.list(Some("c-list")).await.unwrap();
    let got: Vec<(Option<&str>, usize, bool)> =
        listed.iter().map(|s| (s.doc.instance.as_deref(), s.doc.resources.len(), s.lock.as_ref().is_some_and(|l| l.live))).collect();
    assert_eq!(got, vec![(None, 3, false), (Some("job-1"), 1, false), (Some("job-2"), 2, true)]);
    assert!(listed.iter().all(|s| s.doc.environment == "c-list" && s.doc.expires_at.is_some()));
    let all = root.list(None).await.unwrap();
    assert!(all.iter().any(|s| s.doc.environment == "c-list-other"));
}

/// Runs futures concurrently (no `futures` dependency for one join).
async fn futures_join<F: std::future::Future<Output = T> + Send + 'static, T: Send + 'static>(futs: impl Iterator<Item = F>) -> Vec<T> {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
