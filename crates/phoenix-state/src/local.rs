//! [`LocalStore`] as a [`StateBackend`], and [`LocalRoot`]: the directory of
//! every local state (`.phoenix/state/`).
//!
//! The store's operations are synchronous file IO (a few fsyncs); the lock
//! wait sleeps, so it runs on a blocking thread rather than stalling the
//! runtime.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use phoenix_core::state::StateDoc;

use crate::backend::{LockStatus, LockedState, RunJournal, StateBackend, StateRoot, StoredState, Version, state_key};
use crate::error::{StateError, io_at};
use crate::journal::FileJournal;
use crate::lock::{LockInfo, StateLock};
use crate::store::LocalStore;

#[async_trait]
impl StateBackend for LocalStore {
    fn location(&self) -> String {
        self.dir().display().to_string()
    }

    async fn load(&self, environment: &str, instance: Option<&str>) -> Result<StateDoc, StateError> {
        LocalStore::load(self, environment, instance)
    }

    async fn lock(&self, info: LockInfo, wait: Duration) -> Result<Box<dyn LockedState>, StateError> {
        let store = self.clone();
        let lock = if wait.is_zero() {
            LocalStore::lock(self, info)?
        } else {
            tokio::task::spawn_blocking(move || store.lock_wait(info, wait))
                .await
                .map_err(|e| StateError::JournalFailed(format!("the lock wait stopped: {e}")))??
        };
        Ok(Box::new(LocalLocked { store: self.clone(), lock }))
    }

    async fn lock_holder(&self) -> Result<Option<LockStatus>, StateError> {
        Ok(LocalStore::lock_holder(self)?.map(|(info, live)| LockStatus { info, live, lease_expires_at: None }))
    }

    async fn unlock(&self, _force: bool) -> Result<Option<LockInfo>, StateError> {
        // A kernel lock cannot be broken while its holder lives, forced or not.
        LocalStore::unlock(self)
    }

    async fn history(&self) -> Result<Vec<Version>, StateError> {
        Ok(LocalStore::history(self)?
            .into_iter()
            .map(|(serial, path)| Version { id: path.display().to_string(), serial: Some(serial), at: None })
            .collect())
    }
}

/// A local state under this process's kernel lock.
struct LocalLocked {
    store: LocalStore,
    lock: StateLock,
}

#[async_trait]
impl LockedState for LocalLocked {
    fn info(&self) -> &LockInfo {
        self.lock.info()
    }

    async fn recover(&self, environment: &str, instance: Option<&str>) -> Result<(StateDoc, usize), StateError> {
        self.store.recover(&self.lock, environment, instance)
    }

    async fn write(&self, doc: &StateDoc) -> Result<StateDoc, StateError> {
        self.store.write(&self.lock, doc)
    }

    async fn journal(&self, base: StateDoc) -> Result<Arc<dyn RunJournal>, StateError> {
        Ok(self.store.journal(&self.lock, base)?)
    }
}

#[async_trait]
impl RunJournal for FileJournal {
    async fn finish(&self) -> Result<StateDoc, StateError> {
        FileJournal::finish(self)
    }

    fn bytes_written(&self) -> u64 {
        FileJournal::bytes_written(self)
    }

    fn requests(&self) -> u64 {
        self.syncs()
    }
}

/// Every local state: one directory per environment (and instance) under `dir`.
#[derive(Debug, Clone)]
pub struct LocalRoot {
    dir: PathBuf,
}

impl LocalRoot {
    /// The root at `dir` (e.g. `.phoenix/state`); nothing is touched yet.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory holding one directory per state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The store of one environment (or instance).
    pub fn store(&self, environment: &str, instance: Option<&str>) -> LocalStore {
        LocalStore::new(self.dir.join(state_key(environment, instance)))
    }
}

#[async_trait]
impl StateRoot for LocalRoot {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn open(&self, environment: &str, instance: Option<&str>) -> Arc<dyn StateBackend> {
        Arc::new(self.store(environment, instance))
    }

    async fn list(&self, environment: Option<&str>) -> Result<Vec<StoredState>, StateError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&self.dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_at(&self.dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            if !entry.path().is_dir() {
                continue;
            }
            // `ENV` or `ENV.INSTANCE`; instance names hold no `.`.
            let (env, instance) = match name.rsplit_once('.') {
                Some((e, i)) => (e.to_string(), Some(i.to_string())),
                None => (name.clone(), None),
            };
            if environment.is_some_and(|want| want != env) {
                continue;
            }
            names.push((env, instance));
        }
        names.sort();
        let mut out = Vec::new();
        for (env, instance) in names {
            let store = self.store(&env, instance.as_deref());
            let doc = LocalStore::load(&store, &env, instance.as_deref())?;
            // A directory left with nothing in it (a `down` that removed
            // everything keeps its history and lock file) is still listed:
            // it is a state, just an empty one.
            if doc.serial == 0 && doc.is_empty() && !store.dir().join(crate::disk::STATE_FILE).exists() {
                continue;
            }
            let lock = StateBackend::lock_holder(&store).await?;
            out.push(StoredState { doc, lock });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn local_backend_passes_the_conformance_suite() {
        let tmp = tempfile::tempdir().unwrap();
        crate::conformance::suite(Arc::new(LocalRoot::new(tmp.path().join("state")))).await;
    }
}
