//! Journal tests: replay, torn lines, compaction crashes, linear bytes, group commit.

use std::collections::BTreeMap;
use std::fs;

use phoenix_core::state::{Intent, IntentOp};

use super::*;
use crate::testing::{addr, info, put, resource, store};
use crate::{LocalStore, StateLock};

fn start(store: &LocalStore) -> (StateLock, Arc<FileJournal>) {
    let lock = store.lock(info("up")).unwrap();
    let base = store.load("dev", None).unwrap();
    let journal = store.journal(&lock, base).unwrap();
    (lock, journal)
}

/// Records every record from its own task, all at once.
async fn record_concurrently(journal: &Arc<FileJournal>, records: impl IntoIterator<Item = JournalRecord>) {
    let mut tasks = tokio::task::JoinSet::new();
    for record in records {
        let journal = journal.clone();
        tasks.spawn(async move { journal.record(record).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
}

fn journal_path(store: &LocalStore) -> PathBuf {
    store.dir().join("journal.log")
}

#[tokio::test]
async fn replay_after_a_run_that_never_finished_gives_every_change() {
    let (_tmp, store) = store();
    let (lock, journal) = start(&store);
    let intent = Intent { op: IntentOp::Create, type_name: "metal.machine".into(), inputs: BTreeMap::new(), at: Utc::now() };
    let records = vec![
        put(0),
        put(1),
        put(2),
        JournalRecord::Intent { addr: addr(3), intent },
        JournalRecord::Depose { addr: addr(1) },
        put(1),
        JournalRecord::Remove { addr: addr(2) },
        JournalRecord::Outputs { outputs: BTreeMap::from([("url".to_string(), "http://x".into())]) },
    ];
    for r in records {
        journal.record(r).await.unwrap();
    }
    let expected = journal.current();
    assert_eq!(expected.serial, 1);
    drop(journal);
    drop(lock);

    let loaded = store.load("dev", None).unwrap();
    assert_eq!(loaded, expected);
    assert_eq!(loaded.resources.keys().cloned().collect::<Vec<_>>(), vec![addr(0), addr(1)]);
    assert!(loaded.deposed.contains_key(&addr(1)) && loaded.pending.contains_key(&addr(3)));
    assert!(!store.dir().join("state.json").exists(), "load writes nothing");

    let lock = store.lock(info("up")).unwrap();
    let (recovered, replayed) = store.recover(&lock, "dev", None).unwrap();
    assert_eq!(replayed, 8);
    assert_eq!(recovered.resources, expected.resources);
    assert_eq!(recovered.serial, 1, "recovery commits the serial load showed");
    assert_eq!(fs::metadata(journal_path(&store)).unwrap().len(), 0);
    assert_eq!(store.recover(&lock, "dev", None).unwrap(), (recovered.clone(), 0));
    assert_eq!(store.load("dev", None).unwrap(), recovered);
}

#[tokio::test]
async fn a_torn_last_line_is_ignored() {
    let (_tmp, store) = store();
    let (lock, journal) = start(&store);
    for i in 0..3 {
        journal.record(put(i)).await.unwrap();
    }
    drop(journal);
    let mut bytes = fs::read(journal_path(&store)).unwrap();
    bytes.extend_from_slice(b"5e0b11d0 {\"seq\":4,\"rec\":{\"op\":\"put\",\"addr\":\"web-");
    fs::write(journal_path(&store), &bytes).unwrap();

    let doc = store.load("dev", None).unwrap();
    assert_eq!(doc.resources.len(), 3);
    // The next run folds the journal in, drops the torn tail, and goes on.
    let journal = store.journal(&lock, doc).unwrap();
    journal.record(put(3)).await.unwrap();
    drop(journal);
    assert_eq!(store.load("dev", None).unwrap().resources.len(), 4);
}

#[tokio::test]
async fn finish_compacts_and_a_run_without_records_writes_nothing() {
    let (_tmp, store) = store();
    let (lock, journal) = start(&store);
    record_concurrently(&journal, (0..10).map(put)).await;
    let done = journal.finish().unwrap();
    assert_eq!((done.serial, done.resources.len()), (1, 10));
    assert_eq!(fs::metadata(journal_path(&store)).unwrap().len(), 0);
    assert_eq!(store.load("dev", None).unwrap(), done);
    let bytes = journal.bytes_written();
    assert_eq!(journal.finish().unwrap(), done);
    assert_eq!(journal.bytes_written(), bytes);
    drop(journal);

    let journal = store.journal(&lock, done.clone()).unwrap();
    assert_eq!(journal.finish().unwrap(), done);
    assert_eq!(journal.bytes_written(), 0);
    // Records after a finish start a new generation.
    journal.record(JournalRecord::Remove { addr: addr(0) }).await.unwrap();
    assert_eq!(journal.current().serial, 2);
    assert_eq!(journal.finish().unwrap().resources.len(), 9);
    assert_eq!(store.history().unwrap().iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1]);
}

#[tokio::test]
async fn a_crash_between_compaction_and_truncation_applies_nothing_twice() {
    let (_tmp, store) = store();
    let (lock, journal) = start(&store);
    record_concurrently(&journal, (0..5).map(put)).await;
    journal.finish().unwrap();
    // Second generation: remove what the first put, then put it back differently.
    journal.record(JournalRecord::Remove { addr: addr(0) }).await.unwrap();
    journal.record(JournalRecord::Depose { addr: addr(1) }).await.unwrap();
    let stale_journal = fs::read(journal_path(&store)).unwrap();
    let done = journal.finish().unwrap();
    assert_eq!(done.serial, 2);
    drop(journal);

    // As if the process died right after renaming state.json into place.
    fs::write(journal_path(&store), &stale_journal).unwrap();
    let loaded = store.load("dev", None).unwrap();
    assert_eq!(loaded, done, "replaying an already-included journal changes nothing, serial included");
    assert_eq!(store.recover(&lock, "dev", None).unwrap().1, 0);
    assert_eq!(store.load("dev", None).unwrap(), done);
}

#[tokio::test]
async fn the_journal_continues_a_state_written_in_between() {
    let (_tmp, store) = store();
    let lock = store.lock(info("up")).unwrap();
    let mut doc = store.load("dev", None).unwrap();
    doc.apply_record(&put(0));
    let doc = store.write(&lock, &doc).unwrap();
    let journal = store.journal(&lock, doc).unwrap();
    journal.record(put(1)).await.unwrap();
    drop(journal);
    let loaded = store.load("dev", None).unwrap();
    assert_eq!((loaded.serial, loaded.resources.len()), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_run_compactions_keep_every_record() {
    let (_tmp, store) = store();
    let store = store.with_compaction_floor(16 * 1024).with_history(100);
    let (_lock, journal) = start(&store);
    for chunk in (0..1000).collect::<Vec<_>>().chunks(50) {
        record_concurrently(&journal, chunk.iter().map(|&i| put(i))).await;
    }
    let compactions = store.history().unwrap().len();
    assert!(compactions >= 2, "expected mid-run compactions, got {compactions}");
    let current = journal.current();
    drop(journal);
    let loaded = store.load("dev", None).unwrap();
    assert_eq!(loaded.resources.len(), 1000);
    assert_eq!(loaded.serial, current.serial);
    assert_eq!(loaded.resources, current.resources);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_during_a_run_see_consistent_growing_state() {
    let (_tmp, store) = store();
    let store = store.with_compaction_floor(8 * 1024);
    let (_lock, journal) = start(&store);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut reads, mut last) = (0, (0, 0));
            while !done.load(Ordering::Relaxed) {
                let doc = store.load("dev", None).expect("a reader must never see a broken state");
                let seen = (doc.serial, doc.resources.len());
                assert!(seen >= last, "went back from {last:?} to {seen:?}");
                (reads, last) = (reads + 1, seen);
            }
            reads
        })
    };
    for chunk in (0..800).collect::<Vec<_>>().chunks(20) {
        record_concurrently(&journal, chunk.iter().map(|&i| put(i))).await;
    }
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert!(store.history().unwrap().len() >= 2, "the reader should have raced compactions");
}

/// Bytes written by an apply of `n` new resources, and the final state.json size.
async fn apply_bytes(n: usize) -> (u64, u64) {
    let (_tmp, store) = store();
    let (_lock, journal) = start(&store);
    record_concurrently(&journal, (0..n).map(put)).await;
    let done = journal.finish().unwrap();
    assert_eq!(done.resources.len(), n);
    (journal.bytes_written(), fs::metadata(store.dir().join("state.json")).unwrap().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_written_grow_linearly_with_resources() {
    let (small, small_state) = apply_bytes(1_000).await;
    let (large, large_state) = apply_bytes(10_000).await;
    eprintln!("1k: {small} bytes (state.json {small_state}); 10k: {large} bytes (state.json {large_state})");
    let ratio = large as f64 / small as f64;
    assert!(ratio < 15.0, "10x the resources cost {ratio:.1}x the bytes");
    assert!(large < 10 * large_state, "{large} bytes written for a {large_state}-byte state");
    assert!(small < 10 * small_state, "{small} bytes written for a {small_state}-byte state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_stay_linear_with_mid_run_compactions() {
    // A tiny floor forces the geometric compaction schedule to matter.
    let (_tmp, store) = store();
    let store = store.with_compaction_floor(4096);
    let (_lock, journal) = start(&store);
    for chunk in (0..3000).collect::<Vec<_>>().chunks(100) {
        record_concurrently(&journal, chunk.iter().map(|&i| put(i))).await;
    }
    journal.finish().unwrap();
    let state = fs::metadata(store.dir().join("state.json")).unwrap().len();
    let bytes = journal.bytes_written();
    assert!(bytes < 10 * state, "{bytes} bytes written for a {state}-byte state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_are_group_committed() {
    let (_tmp, store) = store();
    let (_lock, journal) = start(&store);
    record_concurrently(&journal, (0..2_000).map(put)).await;
    let syncs = journal.syncs();
    eprintln!("2000 records, {syncs} syncs");
    assert!(syncs < 2_000);
    drop(journal);
    assert_eq!(store.load("dev", None).unwrap().resources.len(), 2_000);
}

fn writer_on(file: File, store: &LocalStore) -> (Writer, Arc<Shared>) {
    let base = store.load("dev", None).unwrap();
    let shared = Arc::new(Shared { doc: Mutex::new(base.clone()), bytes_written: AtomicU64::new(0), syncs: AtomicU64::new(0) });
    let start = Start {
        layout: Layout { dir: store.dir().to_path_buf(), keep_history: 10, key: Ok(None) },
        file,
        base,
        last_seq: 0,
        state_exists: false,
        state_len: 0,
        compaction_floor: crate::DEFAULT_COMPACTION_FLOOR,
        bytes_written: 0,
    };
    (Writer::new(start, shared.clone()), shared)
}

fn queue(n: usize) -> (Vec<Msg>, Vec<oneshot::Receiver<Result<(), String>>>) {
    (0..n)
        .map(|i| {
            let (ack, acked) = oneshot::channel();
            let record = put(i);
            (Msg::Record(Pending { json: serde_json::to_vec(&record).unwrap(), record, ack }), acked)
        })
        .unzip()
}

#[test]
fn records_queued_together_share_one_sync() {
    let (_tmp, store) = store();
    crate::fsio::ensure_dir(store.dir()).unwrap();
    let (file, _) = crate::fsio::open_append(&journal_path(&store)).unwrap();
    let (mut writer, shared) = writer_on(file, &store);
    let (msgs, mut acks) = queue(100);
    writer.handle(msgs);
    assert_eq!(shared.syncs.load(Ordering::Relaxed), 1);
    assert!(acks.iter_mut().all(|a| a.try_recv() == Ok(Ok(()))));
    assert_eq!(shared.doc().resources.len(), 100);
    assert_eq!(store.load("dev", None).unwrap().resources.len(), 100);
}

#[test]
fn a_failed_write_refuses_this_and_every_later_record() {
    let (_tmp, store) = store();
    let full = File::options().append(true).open("/dev/full").unwrap();
    let (mut writer, shared) = writer_on(full, &store);
    let (msgs, mut acks) = queue(2);
    writer.handle(msgs);
    assert!(acks.iter_mut().all(|a| matches!(a.try_recv(), Ok(Err(_)))));
    assert!(shared.doc().resources.is_empty(), "records that are not durable are not applied");
    let (msgs, mut acks) = queue(1);
    writer.handle(msgs);
    assert!(matches!(acks[0].try_recv(), Ok(Err(e)) if e.contains("journal.log")));
    assert!(matches!(writer.finish(), Err(StateError::JournalFailed(_))));
}

#[tokio::test]
async fn whole_document_writes_wait_for_the_journal() {
    let (_tmp, store) = store();
    let (lock, journal) = start(&store);
    journal.record(put(0)).await.unwrap();
    let doc = journal.current();
    assert!(matches!(store.write(&lock, &doc), Err(StateError::JournalActive { .. })));
    assert!(matches!(store.recover(&lock, "dev", None), Err(StateError::JournalActive { .. })));
    assert!(matches!(store.journal(&lock, doc.clone()), Err(StateError::JournalActive { .. })));
    let done = journal.finish().unwrap();
    drop(journal);
    store.write(&lock, &done).unwrap();
}

#[tokio::test]
async fn a_stale_base_is_refused() {
    let (_tmp, store) = store();
    let (lock, journal) = start(&store);
    let stale = store.load("dev", None).unwrap();
    journal.record(put(0)).await.unwrap();
    journal.finish().unwrap();
    drop(journal);
    let err = store.journal(&lock, stale).unwrap_err();
    assert!(matches!(err, StateError::LineageMismatch { .. } | StateError::SerialConflict { .. }), "{err}");
}

#[tokio::test]
async fn the_journal_keeps_the_lock_until_it_is_dropped() {
    let (_tmp, store) = store();
    let (lock, journal) = start(&store);
    drop(lock);
    assert!(matches!(LocalStore::new(store.dir()).lock(info("down")), Err(StateError::Locked(_))));
    journal.record(put(0)).await.unwrap();
    drop(journal);
    LocalStore::new(store.dir()).lock(info("down")).unwrap();
    assert_eq!(resource(0), store.load("dev", None).unwrap().resources[&addr(0)]);
}
