//! The state lock: a kernel advisory lock on `<dir>/lock`.
//!
//! `flock(2)` (through `std::fs::File::try_lock`) belongs to the open file, so
//! the kernel drops it when the holder exits for any reason, SIGKILL and OOM
//! included: a crashed run never leaves a stale lock behind. Because flock
//! locks belong to an open file description, two `LocalStore`s in one process
//! also exclude each other.
//!
//! The lock file's *content* is only information for humans: the holder
//! writes its [`LockInfo`] after acquiring and clears it on release. Content
//! left by a killed holder is therefore stale but harmless; whether a lock is
//! live is always decided by trying to take it, never by reading the file.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{StateError, io_at};
use crate::fsio;

/// Who holds (or last held) the state lock, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The user running the holder.
    pub owner: String,
    /// The holder's process id (0 when unknown).
    pub pid: u32,
    /// The host the holder runs on.
    pub host: String,
    /// The run's id, as shown in logs and `--json` output.
    pub run_id: String,
    /// The command holding the lock, e.g. `up`.
    pub operation: String,
    /// When the lock was taken.
    pub started_at: DateTime<Utc>,
}

impl LockInfo {
    /// Describes the current process: user, pid, host name and the time now.
    pub fn new(operation: impl Into<String>, run_id: impl Into<String>) -> Self {
        Self {
            owner: current_user(),
            pid: std::process::id(),
            host: nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "unknown-host".to_string()),
            run_id: run_id.into(),
            operation: operation.into(),
            started_at: Utc::now(),
        }
    }

    /// Stands in for a holder that has not written its information yet (it
    /// is between taking the lock and writing the file).
    pub fn unknown() -> Self {
        Self {
            owner: String::new(),
            pid: 0,
            host: String::new(),
            run_id: String::new(),
            operation: String::new(),
            started_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    /// Whether this is [`LockInfo::unknown`].
    pub fn is_unknown(&self) -> bool {
        self.pid == 0 && self.owner.is_empty()
    }
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unknown() {
            return f.write_str("held by a process that has not recorded who it is yet");
        }
        write!(
            f,
            "held by {}@{} (pid {}) running `{}` since {}",
            self.owner,
            self.host,
            self.pid,
            self.operation,
            self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )?;
        if !self.run_id.is_empty() {
            write!(f, ", run {}", self.run_id)?;
        }
        Ok(())
    }
}

fn current_user() -> String {
    let uid = nix::unistd::getuid();
    if let Ok(Some(user)) = nix::unistd::User::from_uid(uid) {
        return user.name;
    }
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| format!("uid {uid}"))
}

/// Proof that this process holds a state directory's lock.
///
/// Dropping it releases the lock (after clearing the holder information).
/// A [`FileJournal`](crate::FileJournal) started under it keeps the lock alive
/// until the journal is dropped too, so a run can never journal unlocked.
#[derive(Debug)]
pub struct StateLock {
    pub(crate) inner: Arc<LockHandle>,
}

impl StateLock {
    /// The information written into the lock file for others to read.
    pub fn info(&self) -> &LockInfo {
        &self.inner.info
    }

    /// The state directory this lock covers.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
}

#[derive(Debug)]
pub(crate) struct LockHandle {
    file: File,
    pub(crate) dir: PathBuf,
    info: LockInfo,
    /// Set while a `FileJournal` owns the journal file: whole-document writes
    /// would otherwise race the journal's writer thread.
    pub(crate) journal_active: AtomicBool,
    /// Serializes whole-document writes made under this lock (from several
    /// tasks of one process): read-check-commit must not interleave.
    pub(crate) write_guard: std::sync::Mutex<()>,
}

impl LockHandle {
    /// Claims the journal for one run; `false` if a journal is already active.
    pub(crate) fn claim_journal(&self) -> bool {
        self.journal_active.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub(crate) fn release_journal(&self) {
        self.journal_active.store(false, Ordering::Release);
    }

    pub(crate) fn journal_is_active(&self) -> bool {
        self.journal_active.load(Ordering::Acquire)
    }
}

impl Drop for LockHandle {
    fn drop(&mut self) {
        // Clear the holder information while still holding the lock, so
        // nobody reads our details after we are gone. Closing the file
        // releases the kernel lock even if the explicit unlock fails.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// How long a contender waits for a holder that has the lock but has not
/// written its information yet (or for a `lock_holder` probe to let go).
const UNKNOWN_HOLDER_GRACE: Duration = Duration::from_millis(100);

fn open_lock_file(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(create).mode(0o600).open(path)
}

/// Opens an existing lock file; `None` if there is none (never locked).
fn open_existing(path: &Path) -> Result<Option<File>, StateError> {
    match open_lock_file(path, false) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(path)(e)),
    }
}

/// Reads the holder information; `None` if the file is empty or unreadable.
fn read_info(file: &File) -> Option<LockInfo> {
    let len = file.metadata().ok()?.len();
    if len == 0 || len > 64 * 1024 {
        return None;
    }
    let mut buf = vec![0; len as usize];
    file.read_exact_at(&mut buf, 0).ok()?;
    serde_json::from_slice(&buf).ok()
}

/// Reads a live holder's information, giving it a moment to write it.
fn read_live_holder(file: &File) -> LockInfo {
    let deadline = Instant::now() + UNKNOWN_HOLDER_GRACE;
    loop {
        if let Some(info) = read_info(file) {
            return info;
        }
        if Instant::now() >= deadline {
            return LockInfo::unknown();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Tries once to take the lock. `Err(Locked)` carries the holder's information.
pub(crate) fn try_acquire(dir: &Path, info: &LockInfo) -> Result<StateLock, StateError> {
    fsio::ensure_dir(dir)?;
    let path = dir.join(crate::store::LOCK_FILE);
    let file = open_lock_file(&path, true).map_err(io_at(&path))?;
    let deadline = Instant::now() + UNKNOWN_HOLDER_GRACE;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                // Contention can be fleeting: a `lock_holder`/`unlock` probe
                // holds the lock for microseconds, and a holder that has just
                // taken it has not written its details yet. Both resolve
                // within the grace period; a real holder is still there after.
                if Instant::now() >= deadline {
                    return Err(StateError::Locked(read_info(&file).unwrap_or_else(LockInfo::unknown)));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::Error(e)) => return Err(io_at(&path)(e)),
        }
    }
    let bytes = serde_json::to_vec_pretty(info).expect("LockInfo serializes");
    file.set_len(0).map_err(io_at(&path))?;
    file.write_all_at(&bytes, 0).map_err(io_at(&path))?;
    tracing::debug!(dir = %dir.display(), "state lock acquired");
    Ok(StateLock {
        inner: Arc::new(LockHandle {
            file,
            dir: dir.to_path_buf(),
            info: info.clone(),
            journal_active: AtomicBool::new(false),
            write_guard: std::sync::Mutex::new(()),
        }),
    })
}

/// Retries [`try_acquire`] until `timeout`, backing off from 10 ms to 500 ms.
pub(crate) fn acquire_wait(dir: &Path, info: &LockInfo, timeout: Duration) -> Result<StateLock, StateError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        match try_acquire(dir, info) {
            Err(StateError::Locked(holder)) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(StateError::Locked(holder));
                }
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            other => return other,
        }
    }
}

/// The current holder's information and whether a live process holds it.
pub(crate) fn holder(dir: &Path) -> Result<Option<(LockInfo, bool)>, StateError> {
    let path = dir.join(crate::store::LOCK_FILE);
    let Some(file) = open_existing(&path)? else {
        return Ok(None);
    };
    match file.try_lock() {
        // Nobody holds it: whatever the file says was left by a holder that
        // died without clearing it. Our probe lock is released when `file`
        // is dropped.
        Ok(()) => Ok(read_info(&file).map(|info| (info, false))),
        Err(TryLockError::WouldBlock) => Ok(Some((read_live_holder(&file), true))),
        Err(TryLockError::Error(e)) => Err(io_at(&path)(e)),
    }
}

/// Clears information left by a dead holder; refuses if the holder is alive.
pub(crate) fn clear_stale(dir: &Path) -> Result<Option<LockInfo>, StateError> {
    let path = dir.join(crate::store::LOCK_FILE);
    let Some(file) = open_existing(&path)? else {
        return Ok(None);
    };
    match file.try_lock() {
        Ok(()) => {
            let info = read_info(&file);
            file.set_len(0).map_err(io_at(&path))?;
            Ok(info)
        }
        Err(TryLockError::WouldBlock) => Err(StateError::Locked(read_live_holder(&file))),
        Err(TryLockError::Error(e)) => Err(io_at(&path)(e)),
    }
}
