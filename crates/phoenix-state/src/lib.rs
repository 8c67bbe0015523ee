//! Phoenix's local state backend.
//!
//! One directory per environment (or instance), e.g. `.phoenix/state/dev`
//! or `.phoenix/state/dev.pr-12`:
//!
//! ```text
//! <dir>/                  mode 0700
//! ├── state.json          the compacted StateDoc in a checksummed envelope   (0600)
//! ├── journal.log         records since the last compaction, one CRC'd line each (0600)
//! ├── history/            state.<serial>.json: the last N versions (hard links)
//! └── lock                kernel advisory lock + the holder's LockInfo (0600)
//! ```
//!
//! A run never rewrites `state.json` per resource. The executor's records go
//! to the journal through [`FileJournal`], which group-commits concurrent
//! records into one `fdatasync`, and the journal is folded into `state.json`
//! at the end of the run (or mid-run once it outgrows twice the last
//! `state.json`), so the bytes written by a run grow linearly with the
//! number of resources.
//!
//! ```text
//!  LocalStore::lock ─► load / recover ─► journal(base) ─► record … record ─► finish
//!                        state.json             journal.log (append, fdatasync)   │
//!                        + journal replay                                         ▼
//!                                                   state.json rewritten (compaction)
//! ```
//!
//! # Crash consistency
//! - `state.json` is only ever replaced by rename of a fully synced temp file,
//!   so it is always the old or the new version, never a mix.
//! - `state.json` records the last journal sequence number it includes.
//!   Compaction makes the new `state.json` durable *before* truncating the
//!   journal; a journal that survives a crash in between only holds records
//!   replay skips, so nothing is applied twice and the serial never goes back.
//! - A crash mid-append tears at most the last batch, none of which was
//!   acknowledged; replay stops at the first torn line.
//! - Damage that a crash cannot cause (checksum mismatch, a truncated
//!   `state.json`) is reported as [`StateError::Corrupt`], never repaired by
//!   overwriting.
//!
//! The backend is Unix-only: it relies on `flock(2)`, file modes, hard
//! links and fsync of directories.
//!
//! With `PHOENIX_STATE_KEY` set, `state.json`, its history and every journal
//! line are encrypted (AES-256-GCM, see [`crypt`]).
//!
//! The byte-level formats are documented in the `state_file` and
//! `journal_log` modules.
// Only the CLI prints; libraries report through return values, events and tracing.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

mod backend;
#[cfg(any(test, feature = "testkit"))]
pub mod conformance;
pub mod crypt;
mod disk;
mod error;
mod fsio;
mod history;
mod journal;
mod journal_log;
mod local;
mod lock;
pub mod recovery;
mod state_file;
mod store;

pub use backend::{LockStatus, LockedState, RunJournal, StateBackend, StateRoot, StoredState, Version, state_key};
pub use error::StateError;
pub use journal::FileJournal;
pub use local::LocalRoot;
pub use lock::{LockInfo, StateLock};
pub use recovery::{LocalRecoveryStore, RecoveryStore};
pub use store::{DEFAULT_COMPACTION_FLOOR, DEFAULT_HISTORY, LocalStore};

#[cfg(test)]
mod process_tests;
#[cfg(test)]
mod testing;
