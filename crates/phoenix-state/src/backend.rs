//! The state backend contract: what a command needs from wherever state lives.
//!
//! ```text
//!  StateRoot (".phoenix/state", "s3://bucket/prefix")
//!     │ open(env, instance)            list(env): every instance's document
//!     ▼
//!  StateBackend  ── load (no lock) · lock_holder · unlock · history
//!     │ lock(info, wait)
//!     ▼
//!  LockedState   ── recover · write (whole document, conditional) · journal(base)
//!     │                                                            │
//!     ▼ dropped: lock released                                     ▼
//!                                                  RunJournal: record … record, finish
//! ```
//!
//! [`LocalStore`](crate::LocalStore) implements it with a kernel lock and an
//! fsynced journal file; `phoenix-state-s3` with conditional requests, a
//! leased lock object and one journal object per batch. The same
//! [`conformance`](crate::conformance) suite (feature `testkit`) runs against both.
//!
//! # Contract
//! - `load` never writes and needs no lock; a missing state is a new empty
//!   document (serial 0, fresh lineage).
//! - Every write is conditional on the document it replaces: a document not
//!   based on the current serial is refused with [`StateError::SerialConflict`],
//!   never merged or overwritten (no lost update, even between two writers
//!   that both believe they hold the lock).
//! - A record acknowledged by [`RunJournal`] survives a crash of the process
//!   (SIGKILL included) and is replayed by the next `load`/`recover`.
//! - The lock of a holder that died is never a permanent obstacle: a kernel
//!   lock disappears with its process, a lease expires.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use phoenix_core::state::{Journal, StateDoc};

use crate::error::StateError;
use crate::lock::LockInfo;

/// Who holds a state's lock, as [`StateBackend::lock_holder`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStatus {
    /// The holder's details.
    pub info: LockInfo,
    /// `false`: left by a holder that is gone (a dead process, an expired lease).
    pub live: bool,
    /// When a lease runs out unless renewed (leased backends only).
    pub lease_expires_at: Option<DateTime<Utc>>,
}

/// One stored previous version of a state document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// A local history file path, or an S3 version id.
    pub id: String,
    /// The document's serial, when the backend knows it without reading the version.
    pub serial: Option<u64>,
    /// When it was written, when the backend records that.
    pub at: Option<DateTime<Utc>>,
}

/// One environment's (or instance's) state, wherever it lives.
#[async_trait]
pub trait StateBackend: Send + Sync + fmt::Debug {
    /// Where the state lives, for messages: a directory or an `s3://` URL.
    fn location(&self) -> String;

    /// Reads the state with an interrupted run's journal applied in memory.
    /// Writes nothing, takes no lock.
    async fn load(&self, environment: &str, instance: Option<&str>) -> Result<StateDoc, StateError>;

    /// Takes the exclusive lock, retrying until `wait` has passed (zero: one
    /// attempt). A holder elsewhere gives [`StateError::Locked`] or
    /// [`StateError::Leased`] carrying its details.
    async fn lock(&self, info: LockInfo, wait: Duration) -> Result<Box<dyn LockedState>, StateError>;

    /// Who holds the lock, if anyone.
    async fn lock_holder(&self) -> Result<Option<LockStatus>, StateError>;

    /// `phoenix unlock`: removes a lock whose holder is gone and returns who
    /// held it. A live holder is refused unless `force` (leased backends: the
    /// holder then fails its next renewal and stops writing).
    async fn unlock(&self, force: bool) -> Result<Option<LockInfo>, StateError>;

    /// Previous versions, oldest first.
    async fn history(&self) -> Result<Vec<Version>, StateError>;
}

/// A state under this process's lock. Dropping it releases the lock.
#[async_trait]
pub trait LockedState: Send + Sync {
    /// The details others see while this lock is held.
    fn info(&self) -> &LockInfo;

    /// Folds an interrupted run's journal into the document; returns it and
    /// how many records were replayed (0 and no write if none).
    async fn recover(&self, environment: &str, instance: Option<&str>) -> Result<(StateDoc, usize), StateError>;

    /// Writes a whole document based on the current serial; returns it as
    /// written (serial + 1). A stale document is [`StateError::SerialConflict`].
    async fn write(&self, doc: &StateDoc) -> Result<StateDoc, StateError>;

    /// Starts journaling a run on top of `base` (what `recover` returned or
    /// `write` wrote).
    async fn journal(&self, base: StateDoc) -> Result<Arc<dyn RunJournal>, StateError>;
}

/// One run's journal: every `record` is durable when it returns.
#[async_trait]
pub trait RunJournal: Journal {
    /// Folds the journal into the state document and returns it. Writes
    /// nothing if no record arrived.
    async fn finish(&self) -> Result<StateDoc, StateError>;
    /// Bytes this journal wrote to the backend.
    fn bytes_written(&self) -> u64;
    /// Requests (or syncs) it made: fsyncs locally, PUT/DELETE/GET on S3.
    fn requests(&self) -> u64;
}

/// One stored state found by [`StateRoot::list`].
#[derive(Debug, Clone)]
pub struct StoredState {
    /// The document (with an interrupted run's journal applied).
    pub doc: StateDoc,
    /// Who holds its lock, if anyone.
    pub lock: Option<LockStatus>,
}

/// Where many states live: `.phoenix/state/` or `s3://bucket/prefix`.
#[async_trait]
pub trait StateRoot: Send + Sync + fmt::Debug {
    /// Where the states live, for messages.
    fn location(&self) -> String;
    /// The state of one environment (or instance).
    fn open(&self, environment: &str, instance: Option<&str>) -> Arc<dyn StateBackend>;
    /// Every stored state of `environment` (every environment: `None`),
    /// ordered by environment then instance. States that exist but cannot be
    /// read are errors, not silently skipped: `gc` must not miss one.
    async fn list(&self, environment: Option<&str>) -> Result<Vec<StoredState>, StateError>;
}

/// The key of one state under a root: `ENV` or `ENV.INSTANCE` (instance names
/// contain no `.`, so the split is unambiguous from the right).
pub fn state_key(environment: &str, instance: Option<&str>) -> String {
    match instance {
        Some(i) => format!("{environment}.{i}"),
        None => environment.to_string(),
    }
}
