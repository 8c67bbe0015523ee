//! Where recovery points live (`phoenix snapshot`, `phoenix restore`): beside
//! the states, in the same backend, so a team that shares state shares its
//! recovery points — and apart from them, so losing an environment's state
//! loses none of its recovery points.
//!
//! Locally: `<state dir>/@recovery/<environment>/<id>.json` (`@` cannot start
//! an environment or instance name, so no state directory collides), each
//! written once, atomically, mode 0600.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use phoenix_core::recovery::RecoveryPoint;

use crate::error::{StateError, io_at};
use crate::fsio::{ensure_dir, read_optional, replace_atomically};

/// The directory (or key prefix) under a state root that holds recovery points.
pub const RECOVERY_DIR: &str = "@recovery";

/// The recovery points of every environment under one state root.
#[async_trait]
pub trait RecoveryStore: Send + Sync {
    /// Where they live, for messages.
    fn location(&self) -> String;
    /// Stores a new point; an existing id is refused (points are never rewritten).
    async fn save(&self, point: &RecoveryPoint) -> Result<(), StateError>;
    /// One point by id; `None` if there is none.
    async fn get(&self, environment: &str, id: &str) -> Result<Option<RecoveryPoint>, StateError>;
    /// An environment's points, oldest first.
    async fn list(&self, environment: &str) -> Result<Vec<RecoveryPoint>, StateError>;
    /// Whether it was there.
    async fn delete(&self, environment: &str, id: &str) -> Result<bool, StateError>;
}

/// Checks an id before it becomes part of a path or key.
pub fn check_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StateError::Remote { location: id.to_string(), message: "not a recovery point id (like rp-20261124-020500-1a2b)".into() })
    }
}

/// Parses a stored point, naming where it came from when it does not parse.
pub fn parse_point(bytes: &[u8], location: &Path) -> Result<RecoveryPoint, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
        path: location.to_path_buf(),
        reason: format!("not a recovery point: {e}"),
        previous: None,
    })
}

/// Recovery points in a local state directory.
#[derive(Debug, Clone)]
pub struct LocalRecoveryStore {
    dir: PathBuf,
}

impl LocalRecoveryStore {
    /// The store of the state root at `state_dir` (e.g. `.phoenix/state`).
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self { dir: state_dir.into().join(RECOVERY_DIR) }
    }

    fn env_dir(&self, environment: &str) -> PathBuf {
        self.dir.join(environment)
    }
}

#[async_trait]
impl RecoveryStore for LocalRecoveryStore {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    async fn save(&self, point: &RecoveryPoint) -> Result<(), StateError> {
        check_id(&point.id)?;
        let dir = self.env_dir(&point.environment);
        ensure_dir(&dir)?;
        let path = dir.join(format!("{}.json", point.id));
        if path.exists() {
            return Err(StateError::Remote {
                location: path.display().to_string(),
                message: "a recovery point with this id exists".into(),
            });
        }
        let bytes =
            serde_json::to_vec_pretty(point).map_err(|e| StateError::Remote { location: point.id.clone(), message: e.to_string() })?;
        let temp = dir.join(format!(".{}.tmp", point.id));
        replace_atomically(&path, &temp, |f| std::io::Write::write_all(f, &bytes), || Ok(()))
    }

    async fn get(&self, environment: &str, id: &str) -> Result<Option<RecoveryPoint>, StateError> {
        check_id(id)?;
        let path = self.env_dir(environment).join(format!("{id}.json"));
        read_optional(&path)?.map(|b| parse_point(&b, &path)).transpose()
    }

    async fn list(&self, environment: &str) -> Result<Vec<RecoveryPoint>, StateError> {
        let dir = self.env_dir(environment);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at(&dir)(e)),
        };
        let mut points = Vec::new();
        for e in entries {
            let path = e.map_err(io_at(&dir))?.path();
            if path.extension().is_some_and(|x| x == "json") {
                let bytes = std::fs::read(&path).map_err(io_at(&path))?;
                points.push(parse_point(&bytes, &path)?);
            }
        }
        points.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(points)
    }

    async fn delete(&self, environment: &str, id: &str) -> Result<bool, StateError> {
        check_id(id)?;
        let path = self.env_dir(environment).join(format!("{id}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_at(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use phoenix_core::definition::Definition;

    use super::*;

    pub(crate) fn point(env: &str, id: &str, at: &str) -> RecoveryPoint {
        RecoveryPoint {
            id: id.into(),
            environment: env.into(),
            instance: None,
            created_at: at.parse().unwrap(),
            took_ms: 5,
            lineage: "l".into(),
            serial: 3,
            variables: BTreeMap::new(),
            definition: Definition::default(),
            snapshots: Vec::new(),
        }
    }

    #[tokio::test]
    async fn points_are_stored_once_listed_oldest_first_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalRecoveryStore::new(dir.path());
        let (a, b) = (point("prod", "rp-2", "2026-11-24T02:00:00Z"), point("prod", "rp-1", "2026-11-24T01:00:00Z"));
        store.save(&a).await.unwrap();
        store.save(&b).await.unwrap();
        store.save(&point("dev", "rp-3", "2026-11-24T03:00:00Z")).await.unwrap();
        assert!(store.save(&a).await.is_err(), "never rewritten");
        let ids: Vec<String> = store.list("prod").await.unwrap().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["rp-1", "rp-2"]);
        assert_eq!(store.get("prod", "rp-2").await.unwrap(), Some(a));
        assert_eq!(store.get("prod", "rp-9").await.unwrap(), None);
        assert!(store.get("prod", "../x").await.is_err(), "ids never become paths outside the store");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("@recovery/prod/rp-1.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(store.delete("prod", "rp-1").await.unwrap());
        assert!(!store.delete("prod", "rp-1").await.unwrap());
        assert_eq!(store.list("prod").await.unwrap().len(), 1);
        assert!(store.list("nowhere").await.unwrap().is_empty());
    }
}
