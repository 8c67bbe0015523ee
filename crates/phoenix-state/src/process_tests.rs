//! Tests across processes: the test binary re-executes itself as a child
//! (selected by an environment variable) that holds the lock or journals
//! records, and the parent inspects or SIGKILLs it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Lines, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use phoenix_core::state::Journal;

use crate::testing::{addr, put, store};
use crate::{LocalStore, LockInfo, StateError};

const ROLE: &str = "PHOENIX_STATE_TEST_CHILD";
const DIR: &str = "PHOENIX_STATE_TEST_DIR";
const OFFSET: &str = "PHOENIX_STATE_TEST_OFFSET";

/// The child's side. A no-op when run as an ordinary test.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let store = LocalStore::new(std::env::var(DIR).unwrap());
    match role.as_str() {
        "hold-lock" => {
            let _lock = store.lock(LockInfo::new("up", "child-run")).unwrap();
            println!("LOCKED");
            // Hold until the parent closes our stdin (or kills us), or for
            // 30 s should the parent die without doing either.
            let (closed, stdin_closed) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = std::io::stdin().read_to_end(&mut Vec::new());
                let _ = closed.send(());
            });
            let _ = stdin_closed.recv_timeout(Duration::from_secs(30));
        }
        "journal" => journal_until_killed(store),
        other => panic!("unknown child role {other}"),
    }
}

/// Records puts in concurrent groups of 8, printing `ACK n` once each is
/// acknowledged, with a tiny compaction floor so kills land mid-compaction too.
fn journal_until_killed(store: LocalStore) {
    let offset: usize = std::env::var(OFFSET).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let store = store.with_compaction_floor(8 * 1024).with_history(3);
        let lock = store.lock(LockInfo::new("up", "child-run")).unwrap();
        let base = store.load("dev", None).unwrap();
        let journal = store.journal(&lock, base).unwrap();
        // Bounded in case the parent dies without killing us.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut next = offset;
        while Instant::now() < deadline {
            let mut tasks = tokio::task::JoinSet::new();
            for n in next..next + 8 {
                let journal = journal.clone();
                tasks.spawn(async move {
                    journal.record(put(n)).await.unwrap();
                    println!("ACK {n}");
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.unwrap();
            }
            next += 8;
        }
    });
}

fn spawn(role: &str, dir: &Path, offset: usize) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "process_tests::child", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(DIR, dir)
        .env(OFFSET, offset.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// What the child printed on `line`: libtest may put its own `test … ... `
/// in front of the first line the test prints.
fn message(line: &str) -> &str {
    line.rsplit_once("... ").map_or(line, |(_, m)| m)
}

/// Parses an `ACK n` message.
fn ack(line: &str) -> Option<usize> {
    message(line).strip_prefix("ACK ").map(|n| n.parse().unwrap())
}

/// Reads the child's output until a line satisfies `done`.
fn wait_for(lines: &mut Lines<BufReader<ChildStdout>>, mut done: impl FnMut(&str) -> bool) {
    for line in lines.by_ref() {
        if done(&line.unwrap()) {
            return;
        }
    }
    panic!("the child exited early");
}

fn spawn_lock_holder(dir: &Path) -> (Child, Lines<BufReader<ChildStdout>>) {
    let (child, mut lines) = spawn("hold-lock", dir, 0);
    wait_for(&mut lines, |l| message(l) == "LOCKED");
    (child, lines)
}

#[test]
fn a_lock_held_by_another_process_is_reported_with_its_holder() {
    let (_tmp, store) = store();
    let (mut child, _lines) = spawn_lock_holder(store.dir());

    let err = store.lock(LockInfo::new("down", "parent-run")).unwrap_err();
    let StateError::Locked(holder) = &err else { panic!("{err}") };
    assert_eq!((holder.pid, holder.operation.as_str(), holder.run_id.as_str()), (child.id(), "up", "child-run"));
    assert!(err.to_string().contains(&format!("(pid {}) running `up`", child.id())), "{err}");
    assert_eq!(store.lock_holder().unwrap(), Some((holder.clone(), true)));
    let err = store.unlock().unwrap_err();
    assert!(err.to_string().contains("cannot be broken"), "{err}");

    // The holder exits normally: the lock is free and its information gone.
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(store.lock_holder().unwrap(), None);
    store.lock(LockInfo::new("down", "parent-run")).unwrap();
}

#[test]
fn a_sigkilled_holder_leaves_no_stale_lock() {
    let (_tmp, store) = store();
    let (mut child, _lines) = spawn_lock_holder(store.dir());
    let pid = child.id();
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();

    // Its information is still in the file, but nobody holds the lock.
    let (holder, live) = store.lock_holder().unwrap().unwrap();
    assert_eq!((holder.pid, live), (pid, false));
    drop(store.lock(LockInfo::new("up", "next-run")).unwrap());

    // `phoenix unlock` clears what a killed holder left.
    let (mut child, _lines) = spawn_lock_holder(store.dir());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(store.unlock().unwrap().map(|h| h.run_id), Some("child-run".to_string()));
    assert_eq!(store.lock_holder().unwrap(), None);
}

#[test]
fn a_run_sigkilled_at_any_moment_loses_no_acknowledged_record() {
    let (_tmp, store) = store();
    let mut acked = BTreeSet::new();
    // Each round is killed at a different point and the next one recovers it.
    for (round, kill_after) in [40, 150, 90, 300].into_iter().enumerate() {
        let (mut child, mut lines) = spawn("journal", store.dir(), round * 100_000);
        let mut seen = 0;
        wait_for(&mut lines, |l| {
            if let Some(n) = ack(l) {
                acked.insert(n);
                seen += 1;
            }
            seen >= kill_after
        });
        child.kill().unwrap();
        // Acknowledgements printed before the kill are still in the pipe.
        for line in lines {
            acked.extend(ack(&line.unwrap()));
        }
        child.wait().unwrap();

        let doc = store.load("dev", None).expect("state must be readable after a kill");
        let missing: Vec<_> = acked.iter().filter(|&&n| !doc.resources.contains_key(&addr(n))).collect();
        assert!(missing.is_empty(), "round {round}: acknowledged records lost: {missing:?}");
    }
    let lock = store.lock(LockInfo::new("up", "final")).unwrap();
    let (doc, _) = store.recover(&lock, "dev", None).unwrap();
    assert!(acked.iter().all(|&n| doc.resources.contains_key(&addr(n))));
    assert_eq!(store.load("dev", None).unwrap(), doc);
}
