//! Recovery points on S3: `<prefix>/@recovery/<environment>/<id>.json`,
//! each created once with `If-None-Match: *` (an id is never overwritten).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use phoenix_core::recovery::RecoveryPoint;
use phoenix_state::StateError;
use phoenix_state::recovery::{RECOVERY_DIR, RecoveryStore, check_id, parse_point};

use crate::client::{Bucket, Cond};

/// The recovery points under one S3 state root.
#[derive(Debug, Clone)]
pub struct S3RecoveryStore {
    bucket: Arc<Bucket>,
    prefix: String,
}

impl S3RecoveryStore {
    pub(crate) fn new(bucket: Arc<Bucket>, prefix: &str) -> Self {
        let base = if prefix.is_empty() { RECOVERY_DIR.to_string() } else { format!("{prefix}/{RECOVERY_DIR}") };
        Self { bucket, prefix: base }
    }

    fn env_prefix(&self, environment: &str) -> String {
        format!("{}/{environment}/", self.prefix)
    }

    fn key(&self, environment: &str, id: &str) -> String {
        format!("{}{id}.json", self.env_prefix(environment))
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket.name)
    }
}

#[async_trait]
impl RecoveryStore for S3RecoveryStore {
    fn location(&self) -> String {
        self.url(&self.prefix)
    }

    async fn save(&self, point: &RecoveryPoint) -> Result<(), StateError> {
        check_id(&point.id)?;
        let key = self.key(&point.environment, &point.id);
        let body = serde_json::to_vec_pretty(point).map_err(|e| StateError::Remote { location: self.url(&key), message: e.to_string() })?;
        match self.bucket.put(&key, body, Cond::Absent).await? {
            Ok(_) => Ok(()),
            Err(_) => Err(StateError::Remote { location: self.url(&key), message: "a recovery point with this id exists".into() }),
        }
    }

    async fn get(&self, environment: &str, id: &str) -> Result<Option<RecoveryPoint>, StateError> {
        check_id(id)?;
        let key = self.key(environment, id);
        match self.bucket.get(&key).await? {
            None => Ok(None),
            Some(o) => parse_point(&o.body, Path::new(&self.url(&key))).map(Some),
        }
    }

    async fn list(&self, environment: &str) -> Result<Vec<RecoveryPoint>, StateError> {
        let mut points = Vec::new();
        for key in self.bucket.list(&self.env_prefix(environment)).await? {
            if !key.ends_with(".json") {
                continue;
            }
            if let Some(o) = self.bucket.get(&key).await? {
                points.push(parse_point(&o.body, Path::new(&self.url(&key)))?);
            }
        }
        points.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(points)
    }

    async fn delete(&self, environment: &str, id: &str) -> Result<bool, StateError> {
        check_id(id)?;
        let key = self.key(environment, id);
        let existed = self.bucket.get(&key).await?.is_some();
        let _ = self.bucket.delete(&key, None).await?;
        Ok(existed)
    }
}
