//! The few S3 requests the backend makes, with conditional headers, an error
//! mapping that tells "precondition failed" apart from real failures, and a
//! request counter.

use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use chrono::{DateTime, Utc};
use phoenix_state::StateError;

/// A write's precondition.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    /// Only if no object exists (`If-None-Match: *`).
    Absent,
    /// Only if the object is still this version (`If-Match: <etag>`).
    Matches(String),
}

/// Why a conditional request did not happen.
#[derive(Debug)]
pub(crate) struct Conflict;

/// An object as read.
#[derive(Debug)]
pub(crate) struct Object {
    pub body: Vec<u8>,
    pub etag: String,
    pub last_modified: Option<DateTime<Utc>>,
}

/// One bucket, and how many requests went to it.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub client: aws_sdk_s3::Client,
    pub name: String,
    requests: AtomicU64,
    bytes_written: AtomicU64,
}

fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// 412 Precondition Failed, or 409 ConditionalRequestConflict (AWS answers
/// that when two conditional writes to one key overlap).
fn is_conflict<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    matches!(status(e), Some(412 | 409)) || matches!(e.code(), Some("PreconditionFailed" | "ConditionalRequestConflict"))
}

fn is_missing<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    status(e) == Some(404) || matches!(e.code(), Some("NoSuchKey" | "NotFound"))
}

fn to_chrono(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

impl Bucket {
    pub fn new(client: aws_sdk_s3::Client, name: String) -> Self {
        Self { client, name, requests: AtomicU64::new(0), bytes_written: AtomicU64::new(0) }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.name)
    }

    fn remote<E: std::error::Error + Send + Sync + 'static>(&self, key: &str, op: &str, e: SdkError<E, HttpResponse>) -> StateError {
        StateError::Remote { location: self.url(key), message: format!("{op} failed: {}", DisplayErrorContext(&e)) }
    }

    /// The object, or `None` if there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Object>, StateError> {
        self.count();
        match self.client.get_object().bucket(&self.name).key(key).send().await {
            Ok(out) => {
                let etag = out.e_tag().unwrap_or_default().to_string();
                let last_modified = to_chrono(out.last_modified());
                let body = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| StateError::Remote { location: self.url(key), message: format!("reading the object failed: {e}") })?;
                Ok(Some(Object { body: body.into_bytes().to_vec(), etag, last_modified }))
            }
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(self.remote(key, "GetObject", e)),
        }
    }

    /// Writes `body` if `cond` holds; the new ETag, or `Conflict`.
    pub async fn put(&self, key: &str, body: Vec<u8>, cond: Cond) -> Result<Result<String, Conflict>, StateError> {
        self.count();
        let len = body.len() as u64;
        let mut req = self.client.put_object().bucket(&self.name).key(key).body(ByteStream::from(body)).content_type("application/json");
        req = match cond {
            Cond::Absent => req.if_none_match("*"),
            Cond::Matches(etag) => req.if_match(etag),
        };
        match req.send().await {
            Ok(out) => {
                self.bytes_written.fetch_add(len, Ordering::Relaxed);
                Ok(Ok(out.e_tag().unwrap_or_default().to_string()))
            }
            Err(e) if is_conflict(&e) => Ok(Err(Conflict)),
            // A conditional write to a key that vanished meanwhile.
            Err(e) if is_missing(&e) => Ok(Err(Conflict)),
            Err(e) => Err(self.remote(key, "PutObject", e)),
        }
    }

    /// Deletes the object if it is still `etag` (any version: `None`).
    /// A missing object counts as deleted.
    pub async fn delete(&self, key: &str, etag: Option<&str>) -> Result<Result<(), Conflict>, StateError> {
        self.count();
        let mut req = self.client.delete_object().bucket(&self.name).key(key);
        if let Some(etag) = etag {
            req = req.if_match(etag);
        }
        match req.send().await {
            Ok(_) => Ok(Ok(())),
            Err(e) if is_missing(&e) => Ok(Ok(())),
            Err(e) if is_conflict(&e) => Ok(Err(Conflict)),
            Err(e) => Err(self.remote(key, "DeleteObject", e)),
        }
    }

    /// Every key under `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            self.count();
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.name)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.remote(prefix, "ListObjectsV2", e))?;
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Versions of one key, oldest first: (version id, time).
    pub async fn versions(&self, key: &str) -> Result<Vec<(String, Option<DateTime<Utc>>)>, StateError> {
        self.count();
        let out = self
            .client
            .list_object_versions()
            .bucket(&self.name)
            .prefix(key)
            .send()
            .await
            .map_err(|e| self.remote(key, "ListObjectVersions", e))?;
        let mut v: Vec<_> = out
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .map(|v| (v.version_id().unwrap_or("null").to_string(), to_chrono(v.last_modified())))
            .collect();
        v.sort_by_key(|(_, t)| *t);
        Ok(v)
    }
}
