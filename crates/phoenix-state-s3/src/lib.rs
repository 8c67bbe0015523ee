//! Phoenix's S3 state backend: team and CI state on a bucket many machines share.
//!
//! ```text
//! s3://bucket/prefix/
//! └── <env>[.<instance>]/
//!     ├── state.json                       {format_version, journal_epoch, journal_applied, state}
//!     ├── lock.json                        {holder: user, host, pid, run id, operation, start; lease}
//!     └── journal/<epoch>/<n>.jsonl        one object per group-committed batch of records
//! └── @recovery/<env>/<id>.json            recovery points (`phoenix snapshot`), created once
//! ```
//!
//! - **No lost update.** Every write of `state.json` is conditional on the
//!   ETag it replaces (`If-Match`, or `If-None-Match: *` for the first), so a
//!   writer holding a stale copy is refused ([`StateError::SerialConflict`])
//!   even if it wrongly believes it holds the lock.
//! - **Lock with a lease** (`lease.rs`): `lock.json` is created with
//!   `If-None-Match: *`, renewed by its holder every third of the lease, and
//!   taken over once the lease has run out — so a SIGKILLed CI job blocks
//!   the next one for at most one lease.
//! - **Journal** (`journal.rs`): each operation is durable before its
//!   dependents start, as one small object per batch; `state.json` is
//!   rewritten once at the end of the run.
//! - **History**: on a versioned bucket every version of `state.json` is
//!   kept by S3 itself; [`StateBackend::history`](phoenix_state::StateBackend::history) lists them.
//!
//! [`StateError::SerialConflict`]: phoenix_state::StateError::SerialConflict
// Only the CLI prints; libraries report through return values, events and tracing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod client;
mod journal;
mod lease;
mod recovery;
mod store;

pub use journal::{COMPACT_EVERY, S3Journal};
pub use recovery::S3RecoveryStore;
pub use store::{DEFAULT_LEASE, S3Root, S3Store};
