//! [`S3Root`] and the per-state [`StateBackend`]: the state document, its
//! recovery from journal objects, and conditional whole-document writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use phoenix_core::state::{JournalRecord, STATE_FORMAT_VERSION, StateDoc};
use phoenix_state::{LockInfo, LockStatus, LockedState, RunJournal, StateBackend, StateError, StateRoot, StoredState, Version, state_key};
use serde::{Deserialize, Serialize};

use crate::client::{Bucket, Cond};
use crate::journal::S3Journal;
use crate::lease::{self, Lease};

/// How long a lock's lease lasts without renewal by default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// `state.json` on S3: the document plus which journal may extend it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope {
    pub format_version: u32,
    /// The run whose journal objects (`journal/<epoch>/…`) may extend this
    /// document; objects of any other epoch are left-overs and ignored.
    pub journal_epoch: String,
    /// Batches of that epoch already folded into `state`.
    pub journal_applied: u64,
    pub state: StateDoc,
}

/// Object keys of one state.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub base: String,
}

impl Keys {
    fn new(prefix: &str, environment: &str, instance: Option<&str>) -> Self {
        let key = state_key(environment, instance);
        Self { base: if prefix.is_empty() { key } else { format!("{prefix}/{key}") } }
    }
    pub fn state(&self) -> String {
        format!("{}/state.json", self.base)
    }
    pub fn lock(&self) -> String {
        format!("{}/lock.json", self.base)
    }
    pub fn journal_dir(&self) -> String {
        format!("{}/journal/", self.base)
    }
    pub fn journal_batch(&self, epoch: &str, seq: u64) -> String {
        format!("{}/journal/{epoch}/{seq:012}.jsonl", self.base)
    }
}

/// Every state under `s3://bucket/prefix`.
#[derive(Debug, Clone)]
pub struct S3Root {
    bucket: Arc<Bucket>,
    prefix: String,
    lease: Duration,
}

impl S3Root {
    /// A root on `bucket`/`prefix` with a client from the standard AWS
    /// configuration (environment, profiles, `AWS_ENDPOINT_URL`). A custom
    /// endpoint gets path-style addressing, which loopback emulators and
    /// most private S3 services need.
    pub async fn connect(bucket: &str, prefix: &str) -> Self {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let path_style = conf.endpoint_url().is_some();
        let s3 = aws_sdk_s3::config::Builder::from(&conf).force_path_style(path_style).build();
        Self::with_client(aws_sdk_s3::Client::from_conf(s3), bucket, prefix)
    }

    /// A root using `client` as configured.
    pub fn with_client(client: aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Self {
        Self {
            bucket: Arc::new(Bucket::new(client, bucket.to_string())),
            prefix: prefix.trim_matches('/').to_string(),
            lease: DEFAULT_LEASE,
        }
    }

    /// Sets the lock lease (default [`DEFAULT_LEASE`]); the holder renews every third of it.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// The recovery points under this root.
    pub fn recovery_store(&self) -> crate::S3RecoveryStore {
        crate::S3RecoveryStore::new(self.bucket.clone(), &self.prefix)
    }

    /// The store of one environment (or instance).
    pub fn store(&self, environment: &str, instance: Option<&str>) -> S3Store {
        S3Store { bucket: self.bucket.clone(), keys: Keys::new(&self.prefix, environment, instance), lease: self.lease }
    }

    /// Requests sent to S3 so far by everything made from this root.
    pub fn requests(&self) -> u64 {
        self.bucket.requests()
    }

    /// Bytes of object bodies written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bucket.bytes_written()
    }
}

#[async_trait]
impl StateRoot for S3Root {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket.name, self.prefix)
    }

    fn open(&self, environment: &str, instance: Option<&str>) -> Arc<dyn StateBackend> {
        Arc::new(self.store(environment, instance))
    }

    async fn list(&self, environment: Option<&str>) -> Result<Vec<StoredState>, StateError> {
        let prefix = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let mut found = Vec::new();
        for key in self.bucket.list(&prefix).await? {
            let Some(name) = key.strip_prefix(&prefix).and_then(|k| k.strip_suffix("/state.json")) else { continue };
            if name.contains('/') {
                continue;
            }
            let (env, instance) = match name.rsplit_once('.') {
                Some((e, i)) => (e.to_string(), Some(i.to_string())),
                None => (name.to_string(), None),
            };
            if environment.is_some_and(|want| want != env) {
                continue;
            }
            found.push((env, instance));
        }
        found.sort();
        let mut out = Vec::new();
        for (env, instance) in found {
            let store = self.store(&env, instance.as_deref());
            let doc = store.load(&env, instance.as_deref()).await?;
            let lock = store.lock_holder().await?;
            out.push(StoredState { doc, lock });
        }
        Ok(out)
    }
}

/// One state on S3. See the crate docs for the layout.
#[derive(Debug, Clone)]
pub struct S3Store {
    pub(crate) bucket: Arc<Bucket>,
    pub(crate) keys: Keys,
    lease: Duration,
}

/// The state as stored: envelope, its ETag, and the journal applied on top.
pub(crate) struct Current {
    /// `None`: no `state.json` yet.
    pub etag: Option<String>,
    pub epoch: String,
    /// Batches of `epoch` included in `doc` (stored + replayed).
    pub applied: u64,
    /// Batches replayed from journal objects (not yet in `state.json`).
    pub replayed_batches: u64,
    pub replayed_records: usize,
    pub doc: StateDoc,
    /// Every journal object found (all epochs), for cleanup.
    pub journal_keys: Vec<String>,
}

impl S3Store {
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket.name)
    }

    fn corrupt(&self, key: &str, reason: String) -> StateError {
        StateError::Corrupt { path: self.url(key).into(), reason, previous: None }
    }

    /// Reads `state.json` and replays its epoch's journal objects in memory.
    pub(crate) async fn read(&self, environment: &str, instance: Option<&str>) -> Result<Current, StateError> {
        let state_key = self.keys.state();
        // List the journal before reading the document: a compaction between
        // the two then only means the document already includes what was
        // listed (replay skips it), never a document older than its journal.
        let journal_keys = self.bucket.list(&self.keys.journal_dir()).await?;
        let stored = self.bucket.get(&state_key).await?;
        let (etag, env) = match stored {
            None => (None, None),
            Some(obj) => {
                let env: Envelope = serde_json::from_slice(&obj.body).map_err(|e| self.corrupt(&state_key, e.to_string()))?;
                if env.format_version > STATE_FORMAT_VERSION {
                    return Err(StateError::UnsupportedFormat {
                        path: self.url(&state_key).into(),
                        found: env.format_version,
                        supported: STATE_FORMAT_VERSION,
                    });
                }
                (Some(obj.etag), Some(env))
            }
        };
        let Some(env) = env else {
            return Ok(Current {
                etag: None,
                epoch: String::new(),
                applied: 0,
                replayed_batches: 0,
                replayed_records: 0,
                doc: StateDoc::new(environment, instance, uuid::Uuid::new_v4().to_string()),
                journal_keys,
            });
        };
        if env.state.environment != environment || env.state.instance.as_deref() != instance {
            return Err(StateError::WrongEnvironment {
                path: self.url(&state_key).into(),
                expected: state_key_display(environment, instance),
                found: state_key_display(&env.state.environment, env.state.instance.as_deref()),
            });
        }
        let mut doc = env.state;
        let mut applied = env.journal_applied;
        let mut replayed_batches = 0;
        let mut replayed_records = 0;
        if !env.journal_epoch.is_empty() {
            let dir = format!("{}{}/", self.keys.journal_dir(), env.journal_epoch);
            // Batches are numbered 1, 2, …; replay continues from the first
            // one not yet folded in and stops at a gap.
            let mut batches: Vec<(u64, &String)> = journal_keys
                .iter()
                .filter_map(|k| Some((k.strip_prefix(&dir)?.strip_suffix(".jsonl")?.parse::<u64>().ok()?, k)))
                .filter(|(seq, _)| *seq > applied)
                .collect();
            batches.sort();
            for (seq, key) in batches {
                if seq != applied + 1 {
                    break;
                }
                let Some(obj) = self.bucket.get(key).await? else { break };
                let text = String::from_utf8(obj.body).map_err(|e| self.corrupt(key, e.to_string()))?;
                for line in text.lines().filter(|l| !l.is_empty()) {
                    let rec: JournalRecord = serde_json::from_str(line).map_err(|e| self.corrupt(key, e.to_string()))?;
                    doc.apply_record(&rec);
                    replayed_records += 1;
                }
                applied = seq;
                replayed_batches += 1;
            }
            if replayed_batches > 0 {
                // Same rule as the local backend: a document with a
                // non-empty journal reads as one serial past the document.
                doc.serial += 1;
            }
        }
        Ok(Current { etag, epoch: env.journal_epoch, applied, replayed_batches, replayed_records, doc, journal_keys })
    }

    /// Writes an envelope if `state.json` is still `etag`; `SerialConflict` otherwise.
    pub(crate) async fn put_state(&self, etag: Option<&str>, doc: &StateDoc, epoch: &str, applied: u64) -> Result<String, StateError> {
        let env = Envelope {
            format_version: STATE_FORMAT_VERSION,
            journal_epoch: epoch.to_string(),
            journal_applied: applied,
            state: doc.clone(),
        };
        let body = serde_json::to_vec(&env).expect("a state envelope serializes");
        let cond = match etag {
            Some(e) => Cond::Matches(e.to_string()),
            None => Cond::Absent,
        };
        match self.bucket.put(&self.keys.state(), body, cond).await? {
            Ok(etag) => Ok(etag),
            Err(_) => {
                // Someone wrote since we read: report what is there now.
                let now = self.read(&doc.environment, doc.instance.as_deref()).await.map(|c| c.doc.serial).unwrap_or(doc.serial + 1);
                Err(StateError::SerialConflict { current: now, found: doc.serial })
            }
        }
    }

    /// Deletes journal objects that the stored document includes or ignores.
    pub(crate) async fn delete_journal(&self, keys: &[String]) {
        for k in keys {
            if let Err(e) = self.bucket.delete(k, None).await {
                tracing::warn!(error = %e, "could not delete a folded journal object; the next compaction retries");
            }
        }
    }
}

fn state_key_display(environment: &str, instance: Option<&str>) -> String {
    match instance {
        Some(i) => format!("{environment}/{i}"),
        None => environment.to_string(),
    }
}

/// Refuses a document not based on the current one.
fn check_base(current: &Current, base: &StateDoc) -> Result<(), StateError> {
    if current.etag.is_none() && current.replayed_records == 0 {
        return Ok(());
    }
    if current.doc.lineage != base.lineage {
        return Err(StateError::LineageMismatch { current: current.doc.lineage.clone(), found: base.lineage.clone() });
    }
    if current.doc.serial != base.serial {
        return Err(StateError::SerialConflict { current: current.doc.serial, found: base.serial });
    }
    Ok(())
}

#[async_trait]
impl StateBackend for S3Store {
    fn location(&self) -> String {
        self.url(&self.keys.base)
    }

    async fn load(&self, environment: &str, instance: Option<&str>) -> Result<StateDoc, StateError> {
        Ok(self.read(environment, instance).await?.doc)
    }

    async fn lock(&self, info: LockInfo, wait: Duration) -> Result<Box<dyn LockedState>, StateError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(100);
        loop {
            match Lease::try_acquire(self.bucket.clone(), &self.keys.lock(), &info, self.lease).await {
                Ok(lease) => {
                    return Ok(Box::new(S3Locked {
                        store: self.clone(),
                        writes: tokio::sync::Mutex::new(()),
                        lease: Arc::new(lease),
                        journal_active: Arc::new(AtomicBool::new(false)),
                    }));
                }
                Err(e @ StateError::Leased { .. }) => {
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(pause.min(deadline - now)).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn lock_holder(&self) -> Result<Option<LockStatus>, StateError> {
        Ok(lease::read(&self.bucket, &self.keys.lock()).await?.map(|s| lease::status(&s)))
    }

    async fn unlock(&self, force: bool) -> Result<Option<LockInfo>, StateError> {
        let Some(seen) = lease::read(&self.bucket, &self.keys.lock()).await? else { return Ok(None) };
        if seen.expires_at > Utc::now() && !force {
            return Err(StateError::Leased { holder: seen.doc.holder, expires_at: seen.expires_at });
        }
        // Conditional: if the holder renewed meanwhile, it is alive after all.
        match self.bucket.delete(&self.keys.lock(), Some(&seen.etag)).await? {
            Ok(()) => Ok(Some(seen.doc.holder)),
            Err(_) => Err(StateError::Remote {
                location: self.url(&self.keys.lock()),
                message: "the lock changed while it was being removed (its holder renewed it); look again with `phoenix status`".into(),
            }),
        }
    }

    async fn history(&self) -> Result<Vec<Version>, StateError> {
        Ok(self.bucket.versions(&self.keys.state()).await?.into_iter().map(|(id, at)| Version { id, serial: None, at }).collect())
    }
}

/// A state under our lease.
struct S3Locked {
    store: S3Store,
    /// Serializes this process's whole-document writes. Conditional requests
    /// already refuse every stale write between processes; this only keeps
    /// one process's concurrent writes from each doing a useless round trip.
    writes: tokio::sync::Mutex<()>,
    lease: Arc<Lease>,
    journal_active: Arc<AtomicBool>,
}

impl S3Locked {
    fn check(&self) -> Result<(), StateError> {
        self.lease.check()?;
        if self.journal_active.load(Ordering::Acquire) {
            return Err(StateError::JournalActive { dir: self.store.location().into() });
        }
        Ok(())
    }
}

#[async_trait]
impl LockedState for S3Locked {
    fn info(&self) -> &LockInfo {
        self.lease.info()
    }

    async fn recover(&self, environment: &str, instance: Option<&str>) -> Result<(StateDoc, usize), StateError> {
        self.check()?;
        let mut current = self.store.read(environment, instance).await?;
        if current.replayed_batches == 0 {
            return Ok((current.doc, 0));
        }
        current.doc.updated_at = Some(Utc::now());
        self.store.put_state(current.etag.as_deref(), &current.doc, &current.epoch, current.applied).await?;
        tracing::info!(records = current.replayed_records, serial = current.doc.serial, "recovered an interrupted run's journal");
        self.store.delete_journal(&current.journal_keys).await;
        Ok((current.doc, current.replayed_records))
    }

    async fn write(&self, doc: &StateDoc) -> Result<StateDoc, StateError> {
        self.check()?;
        let _one_at_a_time = self.writes.lock().await;
        let current = self.store.read(&doc.environment, doc.instance.as_deref()).await?;
        check_base(&current, doc)?;
        let mut new = doc.clone();
        new.serial += 1;
        new.updated_at = Some(Utc::now());
        // A whole document includes any journal it was based on: no epoch.
        self.store.put_state(current.etag.as_deref(), &new, "", 0).await?;
        if !current.journal_keys.is_empty() {
            self.store.delete_journal(&current.journal_keys).await;
        }
        Ok(new)
    }

    async fn journal(&self, base: StateDoc) -> Result<Arc<dyn RunJournal>, StateError> {
        self.check()?;
        let current = self.store.read(&base.environment, base.instance.as_deref()).await?;
        let mut base = base;
        let mut etag = current.etag.clone();
        if current.replayed_batches > 0 {
            // An interrupted run's journal: fold it in first (as `recover` does).
            check_base(&current, &base)?;
            etag = Some(self.store.put_state(current.etag.as_deref(), &current.doc, &current.epoch, current.applied).await?);
            base = current.doc.clone();
        } else {
            check_base(&current, &base)?;
        }
        // Claim a fresh epoch in the document before the first batch, so only
        // this run's batch objects can ever extend it.
        let epoch = uuid::Uuid::new_v4().simple().to_string();
        let etag = self.store.put_state(etag.as_deref(), &base, &epoch, 0).await?;
        if !current.journal_keys.is_empty() {
            self.store.delete_journal(&current.journal_keys).await;
        }
        if self.journal_active.swap(true, Ordering::AcqRel) {
            return Err(StateError::JournalActive { dir: self.store.location().into() });
        }
        Ok(Arc::new(S3Journal::start(self.store.clone(), self.lease.watch(), self.journal_active.clone(), base, epoch, etag)))
    }
}
