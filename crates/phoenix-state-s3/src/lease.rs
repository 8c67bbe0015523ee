//! The lock: one object, `<state>/lock.json`, holding the holder and a lease.
//!
//! ```text
//!  acquire   PUT lock.json  If-None-Match: *          exactly one creator wins
//!  renew     PUT lock.json  If-Match: <our etag>      every lease/3; 412 = taken from us
//!  take over PUT lock.json  If-Match: <expired etag>  only after the lease ran out; one wins
//!  release   DELETE lock.json If-Match: <our etag>    never deletes a successor's lock
//! ```
//!
//! A holder killed with SIGKILL stops renewing; once its lease has run out
//! (judged by the later of the holder's own `expires_at` and the object's
//! `Last-Modified` + lease, so a holder's slow clock cannot shorten it), the
//! next run takes the lock over atomically. Renewal, release and takeover
//! are all conditional on the ETag, so at most one process ever believes it
//! holds the lock — and one that lost it learns so at its next renewal and
//! refuses further journal records.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use phoenix_state::{LockInfo, LockStatus, StateError};
use serde::{Deserialize, Serialize};

use crate::client::{Bucket, Cond};

/// What `lock.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LockDoc {
    pub holder: LockInfo,
    pub lease_ms: u64,
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl LockDoc {
    fn new(holder: LockInfo, lease: Duration) -> Self {
        let now = Utc::now();
        Self { holder, lease_ms: lease.as_millis() as u64, renewed_at: now, expires_at: now + lease }
    }

    /// When the lease runs out: the later of what the holder wrote and what
    /// the server's clock says the last renewal was plus the lease.
    pub fn effective_expiry(&self, last_modified: Option<DateTime<Utc>>) -> DateTime<Utc> {
        let server = last_modified.map(|t| t + Duration::from_millis(self.lease_ms));
        server.map_or(self.expires_at, |s| s.max(self.expires_at))
    }
}

/// The lock object as read: its content, ETag and effective expiry.
pub(crate) struct Seen {
    pub doc: LockDoc,
    pub etag: String,
    pub expires_at: DateTime<Utc>,
}

pub(crate) async fn read(bucket: &Bucket, key: &str) -> Result<Option<Seen>, StateError> {
    let Some(obj) = bucket.get(key).await? else { return Ok(None) };
    let doc: LockDoc = serde_json::from_slice(&obj.body).map_err(|e| StateError::Corrupt {
        path: format!("s3://{}/{key}", bucket.name).into(),
        reason: format!("not a Phoenix lock object: {e}"),
        previous: None,
    })?;
    let expires_at = doc.effective_expiry(obj.last_modified);
    Ok(Some(Seen { doc, etag: obj.etag, expires_at }))
}

pub(crate) fn status(seen: &Seen) -> LockStatus {
    LockStatus { info: seen.doc.holder.clone(), live: seen.expires_at > Utc::now(), lease_expires_at: Some(seen.expires_at) }
}

/// A held lease, renewed in the background until dropped.
pub(crate) struct Lease {
    shared: Arc<Shared>,
    renewer: Option<tokio::task::JoinHandle<()>>,
    info: LockInfo,
}

struct Shared {
    bucket: Arc<Bucket>,
    key: String,
    lease: Duration,
    /// Our current ETag of the lock object; `None` once released.
    etag: tokio::sync::Mutex<Option<String>>,
    lost: AtomicBool,
    released: AtomicBool,
}

impl Lease {
    /// One attempt to take the lock: create it, or take over an expired one.
    pub async fn try_acquire(bucket: Arc<Bucket>, key: &str, info: &LockInfo, lease: Duration) -> Result<Lease, StateError> {
        let body = serde_json::to_vec_pretty(&LockDoc::new(info.clone(), lease)).expect("a lock document serializes");
        // Two rounds: the lock may be released between our failed create
        // and our read.
        for _ in 0..3 {
            if let Ok(etag) = bucket.put(key, body.clone(), Cond::Absent).await? {
                return Ok(Self::start(bucket, key, info, lease, etag));
            }
            let Some(seen) = read(&bucket, key).await? else { continue };
            if seen.expires_at > Utc::now() {
                return Err(StateError::Leased { holder: seen.doc.holder, expires_at: seen.expires_at });
            }
            if let Ok(etag) = bucket.put(key, body.clone(), Cond::Matches(seen.etag)).await? {
                tracing::warn!(previous = %seen.doc.holder, "took over a state lock whose lease had expired");
                return Ok(Self::start(bucket, key, info, lease, etag));
            }
            // Someone else took it over (or renewed) first: look again.
        }
        match read(&bucket, key).await? {
            Some(seen) => Err(StateError::Leased { holder: seen.doc.holder, expires_at: seen.expires_at }),
            None => Err(StateError::Remote {
                location: format!("s3://{}/{key}", bucket.name),
                message: "the lock kept changing while it was being taken; try again".into(),
            }),
        }
    }

    fn start(bucket: Arc<Bucket>, key: &str, info: &LockInfo, lease: Duration, etag: String) -> Lease {
        let shared = Arc::new(Shared {
            bucket,
            key: key.to_string(),
            lease,
            etag: tokio::sync::Mutex::new(Some(etag)),
            lost: AtomicBool::new(false),
            released: AtomicBool::new(false),
        });
        let renewer = tokio::spawn(renew(shared.clone(), info.clone()));
        Lease { shared, renewer: Some(renewer), info: info.clone() }
    }

    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// A handle that tells whether the lease is still ours without keeping
    /// it alive (the journal's writer task holds one: the lease must be
    /// released when the lock is dropped, not when a task happens to end).
    pub fn watch(&self) -> LeaseWatch {
        LeaseWatch { shared: self.shared.clone() }
    }

    /// `Err(LockLost)` once a renewal found the lock taken from us.
    pub fn check(&self) -> Result<(), StateError> {
        self.watch().check()
    }

    async fn release(shared: Arc<Shared>) {
        let mut etag = shared.etag.lock().await;
        if let Some(e) = etag.take() {
            match shared.bucket.delete(&shared.key, Some(&e)).await {
                Ok(Ok(())) => tracing::debug!(key = %shared.key, "state lock released"),
                Ok(Err(_)) => tracing::warn!(key = %shared.key, "the state lock was no longer ours at release; left it to its holder"),
                Err(e) => tracing::warn!(error = %e, "could not release the state lock; it expires with its lease"),
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(renewer) = self.renewer.take() else { return };
        renewer.abort();
        self.shared.released.store(true, Ordering::Release);
        if self.shared.lost.load(Ordering::Acquire) {
            return;
        }
        let shared = self.shared.clone();
        // Release before returning, so the next run finds the lock free
        // rather than waiting out the lease. Drop cannot be async: block this
        // worker (multi-threaded runtime) or, elsewhere, a helper thread.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| h.block_on(Lease::release(shared)));
            }
            _ => {
                let _ = std::thread::spawn(move || {
                    if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        rt.block_on(Lease::release(shared));
                    }
                })
                .join();
            }
        }
    }
}

/// Whether a lease is still ours; see [`Lease::watch`].
#[derive(Clone)]
pub(crate) struct LeaseWatch {
    shared: Arc<Shared>,
}

impl LeaseWatch {
    pub fn check(&self) -> Result<(), StateError> {
        if self.shared.lost.load(Ordering::Acquire) || self.shared.released.load(Ordering::Acquire) {
            return Err(StateError::LockLost {
                location: format!("s3://{}/{}", self.shared.bucket.name, self.shared.key),
                reason: "another run took the lock over (our lease expired before it was renewed, or `phoenix unlock --force`), or it was released".into(),
            });
        }
        Ok(())
    }
}

/// Renews the lease every third of its duration until released or lost.
async fn renew(shared: Arc<Shared>, info: LockInfo) {
    let every = shared.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let mut etag = shared.etag.lock().await;
        let Some(current) = etag.clone() else { return };
        let body = serde_json::to_vec_pretty(&LockDoc::new(info.clone(), shared.lease)).expect("a lock document serializes");
        match shared.bucket.put(&shared.key, body, Cond::Matches(current)).await {
            Ok(Ok(new)) => *etag = Some(new),
            Ok(Err(_)) => {
                tracing::error!(key = %shared.key, "the state lock was taken over; stopping");
                shared.lost.store(true, Ordering::Release);
                *etag = None;
                return;
            }
            // A failed request is retried at the next tick; the lease still
            // has two thirds of its time left.
            Err(e) => tracing::warn!(error = %e, "could not renew the state lock's lease; retrying"),
        }
    }
}
