//! [`LocalStore`]: one environment's state directory on the local disk.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use phoenix_core::state::StateDoc;

use crate::disk::{self, DiskState, Layout};
use crate::error::{StateError, io_at};
use crate::journal::{FileJournal, JournalClaim, Start};
use crate::lock::{self, LockInfo, StateLock};
use crate::{fsio, history};

/// The lock file's name inside the state directory.
pub(crate) const LOCK_FILE: &str = "lock";

/// How many previous versions of `state.json` are kept by default.
pub const DEFAULT_HISTORY: usize = 10;

/// Journal size below which no mid-run compaction happens (4 MiB).
pub const DEFAULT_COMPACTION_FLOOR: u64 = 4 << 20;

/// The state of one environment (or instance) in a local directory, such as
/// `.phoenix/state/dev` or `.phoenix/state/dev.pr-12`.
///
/// Reading needs no lock; every write needs the [`StateLock`] from
/// [`LocalStore::lock`], which also proves the caller is the only writer.
#[derive(Debug, Clone)]
pub struct LocalStore {
    layout: Layout,
    compaction_floor: u64,
}

impl LocalStore {
    /// A store for `dir`. Nothing is touched on disk until something is
    /// locked or written.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            layout: Layout { dir: dir.into(), keep_history: DEFAULT_HISTORY, key: crate::crypt::StateKey::from_env() },
            compaction_floor: DEFAULT_COMPACTION_FLOOR,
        }
    }

    /// Keeps the last `keep` versions of `state.json` in `history/` (0 keeps none).
    pub fn with_history(mut self, keep: usize) -> Self {
        self.layout.keep_history = keep;
        self
    }

    /// Sets the journal size below which a run never compacts mid-run
    /// (default [`DEFAULT_COMPACTION_FLOOR`]). Above it, a run compacts when
    /// the journal outgrows twice the last `state.json`.
    pub fn with_compaction_floor(mut self, bytes: u64) -> Self {
        self.compaction_floor = bytes;
        self
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// Takes the exclusive lock without waiting.
    ///
    /// # Behavior
    /// Creates the directory (mode 0700) if needed, takes a kernel advisory
    /// lock on `lock` and writes `info` into it for others to read. If another
    /// process (or another `LocalStore` in this one) holds it, returns
    /// [`StateError::Locked`] with the holder's information.
    pub fn lock(&self, info: LockInfo) -> Result<StateLock, StateError> {
        lock::try_acquire(&self.layout.dir, &info)
    }

    /// Like [`LocalStore::lock`], but retries until `timeout` has passed
    /// (`--lock-timeout`).
    pub fn lock_wait(&self, info: LockInfo, timeout: Duration) -> Result<StateLock, StateError> {
        lock::acquire_wait(&self.layout.dir, &info, timeout)
    }

    /// Reads the state: `state.json` with the journal of an interrupted run
    /// replayed on top, in memory. Writes nothing and needs no lock.
    ///
    /// # Behavior
    /// - Nothing on disk: a new empty document with a fresh lineage, serial 0.
    /// - A torn last journal line (a crash mid-write) is ignored.
    /// - If journal records were replayed, the serial is one past the one in
    ///   `state.json`, which is what [`LocalStore::recover`] will commit.
    /// - A damaged `state.json` gives [`StateError::Corrupt`] naming the
    ///   newest intact version in `history/`; it is never overwritten.
    pub fn load(&self, environment: &str, instance: Option<&str>) -> Result<StateDoc, StateError> {
        Ok(disk::read(&self.layout, environment, instance)?.doc)
    }

    /// Folds the journal of an interrupted run into `state.json`.
    ///
    /// Returns the recovered document and how many records were replayed
    /// (0, and no write, if there was nothing to recover). Idempotent.
    pub fn recover(&self, lock: &StateLock, environment: &str, instance: Option<&str>) -> Result<(StateDoc, usize), StateError> {
        self.check_lock(lock)?;
        let _serial = lock.inner.write_guard.lock().unwrap_or_else(|e| e.into_inner());
        self.check_no_journal(lock)?;
        let mut disk = disk::read(&self.layout, environment, instance)?;
        self.fold_journal(&mut disk)?;
        Ok((disk.doc, disk.replayed))
    }

    /// Starts journaling a run on top of `base`.
    ///
    /// `base` must be what [`LocalStore::load`] or [`LocalStore::recover`]
    /// returned (same lineage and serial as the directory), else
    /// [`StateError::SerialConflict`] / [`StateError::LineageMismatch`]. A
    /// journal left by an interrupted run is folded in first. Only one
    /// journal can be active per lock.
    pub fn journal(&self, lock: &StateLock, base: StateDoc) -> Result<Arc<FileJournal>, StateError> {
        self.check_lock(lock)?;
        let claim = JournalClaim::take(&lock.inner).ok_or_else(|| StateError::JournalActive { dir: self.layout.dir.clone() })?;
        let mut disk = disk::read(&self.layout, &base.environment, base.instance.as_deref())?;
        let recovery_bytes = self.fold_journal(&mut disk)?;
        Self::check_base(&disk, &base)?;

        let path = self.layout.journal();
        let (file, created) = fsio::open_append(&path)?;
        if created {
            // The records synced into the file are only reachable if its
            // directory entry is durable too.
            fsio::sync_dir(&self.layout.dir)?;
        }
        let journal = FileJournal::start(
            Start {
                layout: self.layout.clone(),
                file,
                base,
                last_seq: disk.last_seq,
                state_exists: disk.state_serial.is_some(),
                state_len: disk.state_len,
                compaction_floor: self.compaction_floor,
                bytes_written: recovery_bytes,
            },
            claim,
        )?;
        Ok(Arc::new(journal))
    }

    /// Writes a whole document (state surgery such as `state rm`).
    ///
    /// # Behavior
    /// `doc` must be based on the current state (same lineage and serial as
    /// [`LocalStore::load`] returns), else [`StateError::SerialConflict`] or
    /// [`StateError::LineageMismatch`]. Writes it with serial + 1 and
    /// `updated_at` now, atomically (temp file, fsync, rename, directory
    /// fsync), after linking the previous version into history; then empties
    /// the journal. Returns the document as written.
    pub fn write(&self, lock: &StateLock, doc: &StateDoc) -> Result<StateDoc, StateError> {
        self.check_lock(lock)?;
        let _serial = lock.inner.write_guard.lock().unwrap_or_else(|e| e.into_inner());
        self.check_no_journal(lock)?;
        let disk = disk::read(&self.layout, &doc.environment, doc.instance.as_deref())?;
        Self::check_base(&disk, doc)?;
        let mut new = doc.clone();
        new.serial += 1;
        new.updated_at = Some(Utc::now());
        disk::commit_doc(&self.layout, &new, disk.last_seq, disk.state_serial)?;
        self.reset_journal(&disk)?;
        Ok(new)
    }

    /// Who holds the lock, if anyone: the information in the lock file and
    /// whether a live process holds it (`false`: left by a holder that died).
    pub fn lock_holder(&self) -> Result<Option<(LockInfo, bool)>, StateError> {
        lock::holder(&self.layout.dir)
    }

    /// For `phoenix unlock`: clears holder information left by a dead holder
    /// and returns it.
    ///
    /// A live holder's kernel lock cannot be broken: that gives
    /// [`StateError::Locked`]. Stopping the holder releases it.
    pub fn unlock(&self) -> Result<Option<LockInfo>, StateError> {
        lock::clear_stale(&self.layout.dir)
    }

    /// Previous versions of `state.json` in `history/`, oldest first.
    pub fn history(&self) -> Result<Vec<(u64, PathBuf)>, StateError> {
        history::list(&self.layout.history())
    }

    fn check_lock(&self, lock: &StateLock) -> Result<(), StateError> {
        if disk::same_dir(lock.dir(), &self.layout.dir) {
            Ok(())
        } else {
            Err(StateError::WrongLock { lock_dir: lock.dir().to_path_buf(), store_dir: self.layout.dir.clone() })
        }
    }

    fn check_no_journal(&self, lock: &StateLock) -> Result<(), StateError> {
        if lock.inner.journal_is_active() {
            return Err(StateError::JournalActive { dir: self.layout.dir.clone() });
        }
        Ok(())
    }

    /// Refuses a document not based on what is on disk.
    fn check_base(disk: &DiskState, base: &StateDoc) -> Result<(), StateError> {
        if !disk.exists {
            return Ok(());
        }
        if disk.doc.lineage != base.lineage {
            return Err(StateError::LineageMismatch { current: disk.doc.lineage.clone(), found: base.lineage.clone() });
        }
        if disk.doc.serial != base.serial {
            return Err(StateError::SerialConflict { current: disk.doc.serial, found: base.serial });
        }
        Ok(())
    }

    /// Commits replayed journal records into `state.json` and empties the
    /// journal. Updates `disk` to describe the result; returns bytes written.
    fn fold_journal(&self, disk: &mut DiskState) -> Result<u64, StateError> {
        if disk.journal_len == 0 {
            return Ok(0);
        }
        let mut written = 0;
        if disk.replayed > 0 {
            disk.doc.updated_at = Some(Utc::now());
            written = disk::commit_doc(&self.layout, &disk.doc, disk.last_seq, disk.state_serial)?;
            tracing::info!(records = disk.replayed, serial = disk.doc.serial, "recovered an interrupted run's journal");
            disk.state_serial = Some(disk.doc.serial);
            disk.state_len = written;
            disk.exists = true;
        }
        self.reset_journal(disk)?;
        disk.journal_len = 0;
        Ok(written)
    }

    /// Empties the journal once `state.json` includes everything it holds.
    /// A journal with intact lines after damage is set aside rather than
    /// emptied, so whoever investigates still has it.
    fn reset_journal(&self, disk: &DiskState) -> Result<(), StateError> {
        let path = self.layout.journal();
        if disk.journal_damaged {
            let aside = self.layout.dir.join(format!("journal.damaged.{}.log", Utc::now().format("%Y%m%dT%H%M%S%.3fZ")));
            tracing::warn!(path = %aside.display(), "kept a damaged journal aside");
            fs::rename(&path, &aside).map_err(io_at(&path))?;
            return fsio::sync_dir(&self.layout.dir);
        }
        fsio::truncate_durably(&path)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use phoenix_core::state::JournalRecord;

    use super::*;
    use crate::testing::{addr, info, mode, put, store};

    /// Writes `n` whole documents, each adding one resource.
    fn write_versions(store: &LocalStore, lock: &StateLock, n: usize) -> StateDoc {
        let mut doc = store.load("dev", None).unwrap();
        for i in 0..n {
            doc.apply_record(&put(i));
            doc = store.write(lock, &doc).unwrap();
        }
        doc
    }

    #[test]
    fn load_of_nothing_is_a_new_document_and_touches_nothing() {
        let (_tmp, store) = store();
        let a = store.load("dev", Some("pr-12")).unwrap();
        let b = store.load("dev", Some("pr-12")).unwrap();
        assert_eq!((a.serial, a.environment.as_str(), a.instance.as_deref()), (0, "dev", Some("pr-12")));
        assert!(a.is_empty());
        assert_ne!(a.lineage, b.lineage, "every new document gets a fresh lineage");
        assert!(uuid::Uuid::parse_str(&a.lineage).is_ok());
        assert!(!store.dir().exists());
    }

    #[test]
    fn write_bumps_serial_and_round_trips() {
        let (_tmp, store) = store();
        let lock = store.lock(info("state-rm")).unwrap();
        let doc = write_versions(&store, &lock, 3);
        assert_eq!(doc.serial, 3);
        assert!(doc.updated_at.is_some());
        assert_eq!(store.load("dev", None).unwrap(), doc);
    }

    #[test]
    fn files_and_directories_are_private() {
        let (tmp, store) = store();
        let lock = store.lock(info("up")).unwrap();
        write_versions(&store, &lock, 2);
        let doc = store.load("dev", None).unwrap();
        let journal = store.journal(&lock, doc).unwrap();
        drop(journal);
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&tmp.path().join("state")), 0o700);
        assert_eq!(mode(&store.dir().join("history")), 0o700);
        for file in ["state.json", "journal.log", "lock", "history/state.1.json"] {
            assert_eq!(mode(&store.dir().join(file)), 0o600, "{file}");
        }
    }

    #[test]
    fn history_keeps_only_the_newest_versions() {
        let (_tmp, store) = store();
        let store = store.with_history(3);
        let lock = store.lock(info("state-rm")).unwrap();
        write_versions(&store, &lock, 6);
        let history = store.history().unwrap();
        assert_eq!(history.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![3, 4, 5]);
        // Each version is the document as it was at that serial.
        let (serial, path) = &history[2];
        let (doc, _) = crate::state_file::decode(&fs::read(path).unwrap()).unwrap();
        assert_eq!((doc.serial, doc.resources.len()), (*serial, 5));
    }

    #[test]
    fn a_write_that_crashed_after_linking_history_is_repeated_cleanly() {
        let (_tmp, store) = store();
        let lock = store.lock(info("state-rm")).unwrap();
        let doc = write_versions(&store, &lock, 2);
        // As if a write died between linking state.json into history and its rename.
        fs::hard_link(store.dir().join("state.json"), store.dir().join("history/state.2.json")).unwrap();
        let mut next = doc.clone();
        next.apply_record(&put(9));
        store.write(&lock, &next).unwrap();
        assert_eq!(store.history().unwrap().iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(store.load("dev", None).unwrap().serial, 3);
    }

    #[test]
    fn no_history_when_keep_is_zero() {
        let (_tmp, store) = store();
        let store = store.with_history(0);
        let lock = store.lock(info("state-rm")).unwrap();
        write_versions(&store, &lock, 3);
        assert!(store.history().unwrap().is_empty());
    }

    #[test]
    fn readers_always_see_a_whole_state_file() {
        let (_tmp, store) = store();
        let lock = store.lock(info("state-rm")).unwrap();
        write_versions(&store, &lock, 1);
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut reads = 0;
                while !done.load(Ordering::Relaxed) {
                    let doc = store.load("dev", None).expect("state.json must always parse");
                    assert_eq!(doc.serial as usize, doc.resources.len());
                    reads += 1;
                }
                reads
            });
            let mut doc = store.load("dev", None).unwrap();
            for i in 1..60 {
                doc.apply_record(&put(i));
                doc = store.write(&lock, &doc).unwrap();
            }
            done.store(true, Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
    }

    #[test]
    fn a_stale_document_is_refused() {
        let (_tmp, store) = store();
        let lock = store.lock(info("state-rm")).unwrap();
        let stale = write_versions(&store, &lock, 2);
        let mut current = stale.clone();
        current.apply_record(&JournalRecord::Remove { addr: addr(0) });
        store.write(&lock, &current).unwrap();
        let err = store.write(&lock, &stale).unwrap_err();
        assert!(matches!(err, StateError::SerialConflict { current: 3, found: 2 }), "{err}");
        let mut foreign = store.load("dev", None).unwrap();
        foreign.lineage = "another".into();
        assert!(matches!(store.write(&lock, &foreign), Err(StateError::LineageMismatch { .. })));
    }

    #[test]
    fn another_environments_directory_is_refused() {
        let (_tmp, store) = store();
        let lock = store.lock(info("state-rm")).unwrap();
        write_versions(&store, &lock, 1);
        let err = store.load("prod", None).unwrap_err();
        assert!(matches!(&err, StateError::WrongEnvironment { expected, found, .. } if expected == "prod" && found == "dev"));
    }

    #[test]
    fn a_truncated_state_file_is_reported_with_the_previous_version() {
        let (_tmp, store) = store();
        let lock = store.lock(info("state-rm")).unwrap();
        write_versions(&store, &lock, 3);
        let state = store.dir().join("state.json");
        let bytes = fs::read(&state).unwrap();
        fs::write(&state, &bytes[..bytes.len() / 2]).unwrap();
        let err = store.load("dev", None).unwrap_err();
        let StateError::Corrupt { path, reason, previous } = &err else { panic!("{err}") };
        assert_eq!(path, &state);
        assert!(reason.contains("truncated"), "{reason}");
        assert_eq!(previous.as_deref(), Some(store.dir().join("history/state.2.json").as_path()));
        assert!(err.to_string().contains("history/state.2.json"), "{err}");
        // A write refuses too, so the damaged file stays for inspection.
        let attempt = StateDoc::new("dev", None, "x".into());
        assert!(matches!(store.write(&lock, &attempt), Err(StateError::Corrupt { .. })));
        assert_eq!(fs::read(&state).unwrap(), &bytes[..bytes.len() / 2]);
    }

    #[test]
    fn a_checksum_mismatch_is_reported_and_damaged_history_is_skipped() {
        let (_tmp, store) = store();
        let lock = store.lock(info("state-rm")).unwrap();
        write_versions(&store, &lock, 3);
        let state = store.dir().join("state.json");
        let text = fs::read_to_string(&state).unwrap().replace("debian-12", "debian-13");
        fs::write(&state, text).unwrap();
        // The newest history version is damaged too: the one before is offered.
        fs::write(store.dir().join("history/state.2.json"), b"{").unwrap();
        let err = store.load("dev", None).unwrap_err();
        let StateError::Corrupt { reason, previous, .. } = &err else { panic!("{err}") };
        assert!(reason.contains("checksum mismatch"), "{reason}");
        assert_eq!(previous.as_deref(), Some(store.dir().join("history/state.1.json").as_path()));
    }

    #[test]
    fn lock_excludes_a_second_store_and_is_released_on_drop() {
        let (_tmp, store) = store();
        let other = LocalStore::new(store.dir());
        let lock = store.lock(info("up")).unwrap();
        let err = other.lock(info("down")).unwrap_err();
        let StateError::Locked(holder) = &err else { panic!("{err}") };
        assert_eq!((holder.operation.as_str(), holder.pid), ("up", std::process::id()));
        assert!(err.to_string().contains("running `up`"), "{err}");
        let (holder, live) = other.lock_holder().unwrap().unwrap();
        assert!(live);
        assert_eq!(holder, *lock.info());
        assert!(matches!(other.unlock(), Err(StateError::Locked(_))));

        let started = std::time::Instant::now();
        assert!(matches!(other.lock_wait(info("down"), Duration::from_millis(150)), Err(StateError::Locked(_))));
        assert!(started.elapsed() >= Duration::from_millis(150));

        drop(lock);
        assert_eq!(other.lock_holder().unwrap(), None, "release clears the holder information");
        let lock = other.lock(info("down")).unwrap();
        assert_eq!(lock.info().operation, "down");
    }

    #[test]
    fn lock_wait_gets_the_lock_when_it_is_released() {
        let (_tmp, store) = store();
        let lock = store.lock(info("up")).unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                drop(lock);
            });
            store.lock_wait(info("down"), Duration::from_secs(5)).unwrap();
        });
    }

    #[test]
    fn a_lock_for_another_directory_is_refused() {
        let (tmp, store) = store();
        let other = LocalStore::new(tmp.path().join("state").join("prod"));
        let lock = other.lock(info("up")).unwrap();
        let doc = store.load("dev", None).unwrap();
        assert!(matches!(store.write(&lock, &doc), Err(StateError::WrongLock { .. })));
    }

    #[test]
    fn lock_info_reads_as_a_sentence() {
        let info = LockInfo {
            owner: "alice".into(),
            pid: 123,
            host: "host".into(),
            run_id: "1b2c3d".into(),
            operation: "up".into(),
            started_at: "2026-11-23T10:00:00Z".parse().unwrap(),
        };
        assert_eq!(info.to_string(), "held by alice@host (pid 123) running `up` since 2026-11-23T10:00:00Z, run 1b2c3d");
        assert_eq!(LockInfo::unknown().to_string(), "held by a process that has not recorded who it is yet");
    }
}
