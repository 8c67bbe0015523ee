//! Everything that can go wrong reading, writing or locking state.
//!
//! Every variant names the file or the holder involved, because the person
//! reading the message is usually deciding whether it is safe to retry.

use std::io;
use std::path::{Path, PathBuf};

use crate::lock::LockInfo;

/// Errors of the local state backend.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another live process holds the state lock.
    ///
    /// The lock is a kernel advisory lock: it disappears the moment its holder
    /// exits (even on SIGKILL), and it cannot be broken while the holder lives.
    #[error(
        "state is locked: {0}; the lock is released as soon as that process exits and cannot be broken while it runs: wait for it (`--lock-timeout`) or stop it"
    )]
    Locked(LockInfo),

    /// A leased lock (remote backends) is held and its lease has not run out.
    ///
    /// The holder renews the lease while it runs; a holder that died stops
    /// renewing, and the lock can be taken over once `expires_at` has passed.
    #[error(
        "state is locked: {holder}; its lease runs until {}: wait for it (`--lock-timeout`), or if that run is dead, `phoenix unlock` after the lease expires",
        expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )]
    Leased {
        /// Who holds it.
        holder: LockInfo,
        /// When the lease runs out unless renewed.
        expires_at: chrono::DateTime<chrono::Utc>,
    },

    /// This process's lease was taken over (it stopped renewing in time, or
    /// `phoenix unlock --force` removed it): it must stop writing.
    #[error("the state lock at {location} is no longer ours: {reason}")]
    LockLost {
        /// Where the state lives.
        location: String,
        /// What happened.
        reason: String,
    },

    /// A request to a remote backend failed.
    #[error("{location}: {message}")]
    Remote {
        /// The object or URL involved.
        location: String,
        /// What failed, with the service's error code.
        message: String,
    },

    /// A state file failed its integrity check or could not be parsed. It is
    /// never overwritten automatically.
    #[error("`{}` is corrupt: {reason}{}", path.display(), previous_hint(previous.as_deref()))]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The newest version in `history/` that still verifies, if any.
        previous: Option<PathBuf>,
    },

    /// A state file is encrypted and cannot be opened (no key, another key,
    /// or altered), or `PHOENIX_STATE_KEY` is unusable. Nothing is written.
    #[error("`{}`: {reason}; nothing was read or written", path.display())]
    Encryption {
        /// The file (or the state directory, for a bad key).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A state file was written by a newer Phoenix.
    #[error("`{}` uses state format {found}, this Phoenix reads up to format {supported}; upgrade Phoenix", path.display())]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format version it declares.
        found: u32,
        /// The newest format this build understands.
        supported: u32,
    },

    /// The directory holds the state of another environment or instance.
    #[error("`{}` holds the state of `{found}`, not `{expected}`", path.display())]
    WrongEnvironment {
        /// The state file.
        path: PathBuf,
        /// `environment[/instance]` the caller asked for.
        expected: String,
        /// `environment[/instance]` the file belongs to.
        found: String,
    },

    /// The document to write is not based on the current state (someone else
    /// changed it since it was read).
    #[error("state changed since it was read: it is at serial {current}, the document to write is based on serial {found}; read it again")]
    SerialConflict {
        /// The serial of the state on disk (with any journal replayed).
        current: u64,
        /// The serial of the document offered.
        found: u64,
    },

    /// The document to write belongs to another state history.
    #[error("the document belongs to lineage {found}, the state on disk to lineage {current}")]
    LineageMismatch {
        /// The lineage on disk.
        current: String,
        /// The lineage of the document offered.
        found: String,
    },

    /// The lock passed in was taken on another state directory.
    #[error("the lock passed in is for `{}`, not `{}`", lock_dir.display(), store_dir.display())]
    WrongLock {
        /// Directory the lock belongs to.
        lock_dir: PathBuf,
        /// Directory of the store it was used with.
        store_dir: PathBuf,
    },

    /// A run is journaling under this lock; whole-document writes would race it.
    #[error("a run is journaling into `{}`; finish or drop its journal first", dir.display())]
    JournalActive {
        /// The state directory.
        dir: PathBuf,
    },

    /// The journal's writer failed earlier in this run; no further record is
    /// accepted. Everything acknowledged before is on disk and the next run
    /// recovers it.
    #[error("the state journal stopped accepting records: {0}")]
    JournalFailed(String),

    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn previous_hint(previous: Option<&Path>) -> String {
    match previous {
        Some(p) => format!("; the newest intact previous version is `{}`", p.display()),
        None => "; no intact previous version was found in history/".to_string(),
    }
}

/// Maps an `io::Error` to [`StateError::Io`] naming `path`.
pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.to_path_buf(), source }
}
