//! [`S3Journal`]: one run's records, durable on S3 before dependents start.
//!
//! ```text
//!  task ─┐                       ┌──────────────── writer task ─────────────────┐
//!  task ─┼── record (channel) ──►│ drain the queue → one object per batch:       │
//!  task ─┘                       │   PUT journal/<epoch>/<n>.jsonl If-None-Match:*│
//!    ▲                           │ apply to the document, ack the whole batch     │
//!    └──────── ack ──────────────│ finish: PUT state.json If-Match (compaction), │
//!                                │         DELETE the folded batch objects       │
//!                                └───────────────────────────────────────────────┘
//! ```
//!
//! S3 has no append, and rewriting `state.json` per operation would make a
//! run's bytes quadratic in its size. So, like the local journal file, each
//! group of records that arrived together becomes one small object, written
//! once; `state.json` is rewritten only at the end of the run (or every
//! [`COMPACT_EVERY`] batches). A crash leaves the batch objects, which the
//! next reader replays on top of `state.json` — only those of the epoch the
//! document names, in order, stopping at a gap. `If-None-Match: *` on each
//! batch means a second writer under the same epoch (which the lock already
//! excludes) could never overwrite a batch, only fail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use phoenix_core::state::{Journal, JournalError, JournalRecord, StateDoc};
use phoenix_state::{RunJournal, StateError};
use tokio::sync::{mpsc, oneshot};

use crate::client::Cond;
use crate::lease::LeaseWatch;
use crate::store::S3Store;

/// Batches after which a run folds its journal into `state.json` mid-run,
/// bounding what a crash leaves to replay.
pub const COMPACT_EVERY: u64 = 256;

enum Msg {
    Record { line: Vec<u8>, record: JournalRecord, ack: oneshot::Sender<Result<(), String>> },
    Finish(oneshot::Sender<Result<StateDoc, StateError>>),
}

struct Shared {
    doc: Mutex<StateDoc>,
}

/// Journals one run into S3. Made by the S3 backend's `LockedState::journal`.
pub struct S3Journal {
    tx: mpsc::UnboundedSender<Msg>,
    shared: Arc<Shared>,
    store: S3Store,
    requests_at_start: u64,
    bytes_at_start: u64,
    active: Arc<AtomicBool>,
}

impl S3Journal {
    pub(crate) fn start(store: S3Store, lease: LeaseWatch, active: Arc<AtomicBool>, base: StateDoc, epoch: String, etag: String) -> Self {
        let shared = Arc::new(Shared { doc: Mutex::new(base.clone()) });
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            store: store.clone(),
            lease,
            shared: shared.clone(),
            epoch,
            written: 0,
            folded: 0,
            etag,
            committed_serial: base.serial,
            dirty: false,
            failed: None,
        };
        tokio::spawn(writer.run(rx));
        let requests_at_start = store.bucket.requests();
        let bytes_at_start = store.bucket.bytes_written();
        Self { tx, shared, store, requests_at_start, bytes_at_start, active }
    }

    /// The document with every acknowledged record applied.
    pub fn current(&self) -> StateDoc {
        self.shared.doc.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for S3Journal {
    fn drop(&mut self) {
        self.active.store(false, Ordering::Release);
    }
}

#[async_trait]
impl Journal for S3Journal {
    async fn record(&self, record: JournalRecord) -> Result<(), JournalError> {
        let line = serde_json::to_vec(&record).map_err(|e| JournalError::Serialize(e.to_string()))?;
        let (ack, acked) = oneshot::channel();
        self.tx.send(Msg::Record { line, record, ack }).map_err(|_| JournalError::Closed("the writer has stopped".into()))?;
        acked
            .await
            .map_err(|_| JournalError::Closed("the writer stopped before the record was durable".into()))?
            .map_err(JournalError::NotDurable)
    }
}

#[async_trait]
impl RunJournal for S3Journal {
    async fn finish(&self) -> Result<StateDoc, StateError> {
        let stopped = || StateError::JournalFailed("the journal writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.tx.send(Msg::Finish(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    fn bytes_written(&self) -> u64 {
        self.store.bucket.bytes_written() - self.bytes_at_start
    }

    fn requests(&self) -> u64 {
        self.store.bucket.requests() - self.requests_at_start
    }
}

struct Writer {
    store: S3Store,
    lease: LeaseWatch,
    shared: Arc<Shared>,
    epoch: String,
    /// Batch objects written (numbered 1..=written).
    written: u64,
    /// Batches folded into `state.json` (their objects deleted).
    folded: u64,
    /// ETag of `state.json` as we last wrote it.
    etag: String,
    committed_serial: u64,
    dirty: bool,
    failed: Option<String>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        while let Some(first) = rx.recv().await {
            let mut msgs = vec![first];
            while let Ok(m) = rx.try_recv() {
                msgs.push(m);
            }
            let mut batch = Vec::new();
            for m in msgs {
                match m {
                    Msg::Record { line, record, ack } => batch.push((line, record, ack)),
                    Msg::Finish(reply) => {
                        self.write_batch(std::mem::take(&mut batch)).await;
                        let _ = reply.send(self.finish().await);
                    }
                }
            }
            self.write_batch(batch).await;
        }
    }

    async fn write_batch(&mut self, batch: Vec<(Vec<u8>, JournalRecord, oneshot::Sender<Result<(), String>>)>) {
        if batch.is_empty() {
            return;
        }
        if self.failed.is_none()
            && let Err(e) = self.lease.check()
        {
            self.failed = Some(e.to_string());
        }
        if let Some(reason) = &self.failed {
            for (_, _, ack) in batch {
                let _ = ack.send(Err(reason.clone()));
            }
            return;
        }
        let mut body = Vec::with_capacity(batch.iter().map(|(l, _, _)| l.len() + 1).sum());
        for (line, _, _) in &batch {
            body.extend_from_slice(line);
            body.push(b'\n');
        }
        let key = self.store.keys.journal_batch(&self.epoch, self.written + 1);
        let outcome = match self.store.bucket.put(&key, body, Cond::Absent).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(format!("s3://{}/{key} already exists: another writer is journaling this state", self.store.bucket.name)),
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = outcome {
            tracing::error!(error = %reason, "journal batch failed; refusing further records");
            self.failed = Some(reason.clone());
            for (_, _, ack) in batch {
                let _ = ack.send(Err(reason.clone()));
            }
            return;
        }
        self.written += 1;
        {
            let mut doc = self.shared.doc.lock().unwrap_or_else(|e| e.into_inner());
            if !self.dirty {
                doc.serial = self.committed_serial + 1;
                self.dirty = true;
            }
            for (_, record, _) in &batch {
                doc.apply_record(record);
            }
        }
        for (_, _, ack) in batch {
            let _ = ack.send(Ok(()));
        }
        if self.written - self.folded >= COMPACT_EVERY
            && let Err(e) = self.compact().await
        {
            tracing::warn!(error = %e, "mid-run state compaction failed; continuing with the journal");
        }
    }

    /// Writes the document (If-Match our last ETag), then deletes the batches it includes.
    async fn compact(&mut self) -> Result<(), StateError> {
        self.lease.check()?;
        let doc = {
            let mut doc = self.shared.doc.lock().unwrap_or_else(|e| e.into_inner());
            doc.updated_at = Some(Utc::now());
            doc.clone()
        };
        self.etag = self.store.put_state(Some(&self.etag), &doc, &self.epoch, self.written).await?;
        self.committed_serial = doc.serial;
        self.dirty = false;
        let folded: Vec<String> = (self.folded + 1..=self.written).map(|n| self.store.keys.journal_batch(&self.epoch, n)).collect();
        self.store.delete_journal(&folded).await;
        self.folded = self.written;
        Ok(())
    }

    async fn finish(&mut self) -> Result<StateDoc, StateError> {
        if let Some(reason) = &self.failed {
            return Err(StateError::JournalFailed(reason.clone()));
        }
        if self.dirty {
            self.compact().await?;
        }
        Ok(self.shared.doc.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}
