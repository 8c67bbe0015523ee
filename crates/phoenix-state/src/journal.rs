//! [`FileJournal`]: durable, group-committed journaling of one run.
//!
//! ```text
//!  task ─┐  (record JSON, oneshot) ┌──────────── writer thread ─────────────┐
//!  task ─┼──────── channel ───────►│ drain queue → one write → fdatasync    │
//!  task ─┘                         │ apply records to the doc, in order     │
//!    ▲                             │ ack every record of the batch          │
//!    └──────────── ack ────────────│ journal > max(4 MiB, 2×state)? compact │
//!                                  └────────────────────────────────────────┘
//! ```
//!
//! A dedicated OS thread owns the journal file. While it syncs one batch,
//! new records queue up and go out together in the next: N concurrent
//! operations cost far fewer than N syncs, and every `record` still returns
//! only once its record is on disk.
//!
//! Bytes written grow linearly with the records: a record is written once to
//! the journal, and `state.json` is rewritten only when the journal outgrows
//! twice the last `state.json` (or 4 MiB), so the rewrites form a geometric
//! series bounded by a constant times the journal bytes.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::Utc;
use phoenix_core::state::{Journal, JournalError, JournalRecord, StateDoc};
use tokio::sync::oneshot;

use crate::disk::{self, Layout};
use crate::error::StateError;
use crate::journal_log::{self, Header};
use crate::lock::LockHandle;
use crate::state_file;

/// Journals one run's records into a state directory.
///
/// Made by [`LocalStore::journal`](crate::LocalStore::journal). It implements
/// [`Journal`] for the executor; call [`FileJournal::finish`] at the end of the
/// run to fold the journal into `state.json`. Dropping it without `finish`
/// leaves the journal on disk, exactly as a crash would, and the next
/// [`LocalStore::load`](crate::LocalStore::load) replays it.
///
/// It keeps the state lock held until it is dropped, even if the
/// [`StateLock`](crate::StateLock) it was made under is dropped first.
pub struct FileJournal {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    _claim: JournalClaim,
}

/// What the writer thread and the handle share.
struct Shared {
    doc: Mutex<StateDoc>,
    bytes_written: AtomicU64,
    syncs: AtomicU64,
}

impl Shared {
    fn doc(&self) -> MutexGuard<'_, StateDoc> {
        // A panic elsewhere cannot leave the document half-updated in a way
        // that matters more than losing it, so recover from poisoning.
        self.doc.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Marks the lock's journal slot as taken while the journal lives; also keeps
/// the kernel lock alive.
pub(crate) struct JournalClaim(Arc<LockHandle>);

impl JournalClaim {
    pub(crate) fn take(lock: &Arc<LockHandle>) -> Option<Self> {
        lock.claim_journal().then(|| Self(lock.clone()))
    }
}

impl Drop for JournalClaim {
    fn drop(&mut self) {
        self.0.release_journal();
    }
}

enum Msg {
    Record(Pending),
    Finish(mpsc::SyncSender<Result<StateDoc, StateError>>),
}

struct Pending {
    json: Vec<u8>,
    record: JournalRecord,
    ack: oneshot::Sender<Result<(), String>>,
}

/// Where the journal starts: filled by the store after recovery and checks.
pub(crate) struct Start {
    pub layout: Layout,
    pub file: File,
    pub base: StateDoc,
    /// Last journal sequence number already used (included in `state.json`).
    pub last_seq: u64,
    /// Whether `state.json` exists (its version then goes to history on compaction).
    pub state_exists: bool,
    pub state_len: u64,
    pub compaction_floor: u64,
    /// Bytes already written while starting (a recovery compaction).
    pub bytes_written: u64,
}

impl FileJournal {
    pub(crate) fn start(start: Start, claim: JournalClaim) -> Result<Self, StateError> {
        let shared = Arc::new(Shared {
            doc: Mutex::new(start.base.clone()),
            bytes_written: AtomicU64::new(start.bytes_written),
            syncs: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer::new(start, shared.clone());
        let dir = writer.layout.dir.clone();
        let thread =
            std::thread::Builder::new().name("phoenix-journal".into()).spawn(move || writer.run(rx)).map_err(crate::error::io_at(&dir))?;
        Ok(Self { tx: Some(tx), thread: Some(thread), shared, _claim: claim })
    }

    /// Folds the journal into `state.json` (a compaction) and returns the
    /// final document. Records acknowledged before the call are included.
    ///
    /// # Behavior
    /// - Writes nothing if no record arrived since the last compaction (a run
    ///   that changed nothing does not bump the serial).
    /// - The journal stays usable: later records start a new generation and
    ///   need another `finish`.
    /// - After a write failure it returns [`StateError::JournalFailed`]; the
    ///   records already acknowledged are on disk and the next run recovers them.
    /// - It blocks the calling thread for the compaction (a write and a few
    ///   fsyncs); from async code, `spawn_blocking` if that matters.
    pub fn finish(&self) -> Result<StateDoc, StateError> {
        let stopped = || StateError::JournalFailed("the journal writer thread has stopped".into());
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx.as_ref().ok_or_else(stopped)?.send(Msg::Finish(reply)).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// The document with every acknowledged record applied.
    pub fn current(&self) -> StateDoc {
        self.shared.doc().clone()
    }

    /// Every byte this journal wrote: journal lines and `state.json`
    /// compactions, including a recovery compaction made when it started.
    pub fn bytes_written(&self) -> u64 {
        self.shared.bytes_written.load(Ordering::Relaxed)
    }

    /// How many `fdatasync` calls the journal made (one per group commit).
    pub fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for FileJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileJournal").field("bytes_written", &self.bytes_written()).finish_non_exhaustive()
    }
}

impl Drop for FileJournal {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it has handled (and made
        // durable) everything already queued.
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[async_trait]
impl Journal for FileJournal {
    async fn record(&self, record: JournalRecord) -> Result<(), JournalError> {
        // Serialize here, on the caller's task, so concurrent records are
        // serialized in parallel; the writer only frames and writes bytes.
        let json = serde_json::to_vec(&record).map_err(|e| JournalError::Serialize(e.to_string()))?;
        let (ack, acked) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or_else(|| JournalError::Closed("closed after the run".into()))?;
        tx.send(Msg::Record(Pending { json, record, ack })).map_err(|_| JournalError::Closed("the writer has stopped".into()))?;
        acked
            .await
            .map_err(|_| JournalError::Closed("the writer stopped before the record was durable".into()))?
            .map_err(JournalError::NotDurable)
    }
}

/// The writer thread's state.
struct Writer {
    layout: Layout,
    path: PathBuf,
    file: File,
    shared: Arc<Shared>,
    lineage: String,
    /// Last sequence number written (or included in `state.json`).
    seq: u64,
    /// Whether this journal generation's header line is on disk.
    header_written: bool,
    /// Serial of `state.json` (or of the base, before the first compaction).
    committed_serial: u64,
    state_exists: bool,
    /// Records arrived since the last compaction.
    dirty: bool,
    journal_len: u64,
    compaction_floor: u64,
    compact_at: u64,
    /// Set after a write failed: later records are refused, since what the
    /// file holds after a failed write or sync is unknown.
    failed: Option<String>,
}

impl Writer {
    fn new(start: Start, shared: Arc<Shared>) -> Self {
        let path = start.layout.journal();
        Self {
            path,
            file: start.file,
            shared,
            lineage: start.base.lineage.clone(),
            seq: start.last_seq,
            header_written: false,
            committed_serial: start.base.serial,
            state_exists: start.state_exists,
            dirty: false,
            journal_len: 0,
            compaction_floor: start.compaction_floor,
            compact_at: compaction_threshold(start.compaction_floor, start.state_len),
            failed: None,
            layout: start.layout,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        while let Ok(first) = rx.recv() {
            let mut msgs = vec![first];
            // Everything that queued up while the last batch was syncing.
            msgs.extend(rx.try_iter());
            self.handle(msgs);
        }
    }

    /// Handles queued messages in order: records are written in batches, a
    /// `Finish` sees every record queued before it.
    fn handle(&mut self, msgs: Vec<Msg>) {
        let mut batch = Vec::new();
        for msg in msgs {
            match msg {
                Msg::Record(p) => batch.push(p),
                Msg::Finish(reply) => {
                    self.write_batch(std::mem::take(&mut batch));
                    let _ = reply.send(self.finish());
                }
            }
        }
        self.write_batch(batch);
    }

    fn write_batch(&mut self, batch: Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        if let Some(reason) = &self.failed {
            for p in batch {
                let _ = p.ack.send(Err(reason.clone()));
            }
            return;
        }
        let mut buf = Vec::with_capacity(batch.iter().map(|p| p.json.len() + 40).sum::<usize>() + 80);
        if !self.header_written {
            journal_log::push_header(
                &mut buf,
                &Header { lineage: self.lineage.clone(), after_seq: self.seq },
                self.layout.key.as_ref().ok().and_then(Option::as_ref),
            );
        }
        for (i, p) in batch.iter().enumerate() {
            journal_log::push_entry(&mut buf, self.seq + 1 + i as u64, &p.json, self.layout.key.as_ref().ok().and_then(Option::as_ref));
        }
        let result = self.file.write_all(&buf).and_then(|()| self.file.sync_data());
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = result {
            let reason = format!("{}: {e}", self.path.display());
            tracing::error!(error = %reason, "journal write failed; refusing further records");
            // Best effort: cut off a partly written batch. Its records were
            // never acknowledged, so losing them is allowed either way.
            let _ = self.file.set_len(self.journal_len);
            self.failed = Some(reason.clone());
            for p in batch {
                let _ = p.ack.send(Err(reason.clone()));
            }
            return;
        }
        self.header_written = true;
        self.journal_len += buf.len() as u64;
        self.shared.bytes_written.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.seq += batch.len() as u64;
        {
            let mut doc = self.shared.doc();
            if !self.dirty {
                // See the serial rule in `disk`: state.json + a non-empty
                // journal is one serial past state.json.
                doc.serial = self.committed_serial + 1;
                self.dirty = true;
            }
            for p in &batch {
                doc.apply_record(&p.record);
            }
        }
        tracing::trace!(records = batch.len(), bytes = buf.len(), "journal batch durable");
        for p in batch {
            let _ = p.ack.send(Ok(()));
        }
        if self.journal_len >= self.compact_at
            && let Err(e) = self.compact()
        {
            // The journal still holds everything; try again once it has
            // doubled rather than after every batch.
            tracing::warn!(error = %e, "mid-run state compaction failed; continuing with the journal");
            self.compact_at = self.journal_len.saturating_mul(2);
        }
    }

    /// Writes the current document as `state.json`, then empties the journal.
    ///
    /// The order is what makes a crash harmless: the new `state.json` (with
    /// the journal sequence it includes) is durable before the journal is
    /// truncated, and a journal surviving next to it only holds records that
    /// replay skips.
    fn compact(&mut self) -> Result<(), StateError> {
        let (bytes, serial) = {
            let mut doc = self.shared.doc();
            doc.updated_at = Some(Utc::now());
            (state_file::encode(&doc, self.seq), doc.serial)
        };
        let replaced = self.state_exists.then_some(self.committed_serial);
        let written = disk::commit(&self.layout, &bytes, replaced)?;
        self.shared.bytes_written.fetch_add(written, Ordering::Relaxed);
        self.committed_serial = serial;
        self.state_exists = true;
        self.dirty = false;
        if let Err(e) = self.file.set_len(0).and_then(|()| self.file.sync_all()) {
            // state.json is safe, but the journal's length is now unknown, so
            // appending could put new records behind stale bytes.
            let reason = format!("{}: cannot truncate after compaction: {e}", self.path.display());
            self.failed = Some(reason.clone());
            return Err(StateError::JournalFailed(reason));
        }
        self.journal_len = 0;
        self.header_written = false;
        self.compact_at = compaction_threshold(self.compaction_floor, written);
        tracing::debug!(serial, state_bytes = written, "state compacted");
        Ok(())
    }

    fn finish(&mut self) -> Result<StateDoc, StateError> {
        if let Some(reason) = &self.failed {
            return Err(StateError::JournalFailed(reason.clone()));
        }
        if self.dirty {
            self.compact()?;
        }
        Ok(self.shared.doc().clone())
    }
}

/// Journal size that triggers a mid-run compaction.
fn compaction_threshold(floor: u64, state_len: u64) -> u64 {
    floor.max(state_len.saturating_mul(2))
}

#[cfg(test)]
mod tests;
