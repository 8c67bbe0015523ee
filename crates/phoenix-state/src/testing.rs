//! Helpers shared by the tests: real directories, realistic records.

use phoenix_core::ResourceAddr;
use phoenix_core::state::{JournalRecord, ResourceState};
use serde_json::json;

use crate::{LocalStore, LockInfo};

/// A fresh temporary directory and a store in a not-yet-existing `state/dev` under it.
pub(crate) fn store() -> (tempfile::TempDir, LocalStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = LocalStore::new(tmp.path().join("state").join("dev"));
    (tmp, store)
}

pub(crate) fn info(operation: &str) -> LockInfo {
    LockInfo::new(operation, format!("run-{operation}"))
}

pub(crate) fn addr(i: usize) -> ResourceAddr {
    ResourceAddr::new_unchecked(format!("web-{i}"))
}

/// A machine-sized resource: a handful of inputs and outputs.
pub(crate) fn resource(i: usize) -> ResourceState {
    let inputs = json!({
        "image": "debian-12",
        "size": "m",
        "subnet_id": format!("subnet-{}", i % 3),
        "user_data": "sealed:sha256:6f1ed002ab5595859014ebf0951522d9",
    });
    let outputs = json!({
        "id": format!("i-{i:08x}"),
        "private_ip": format!("10.0.{}.{}", i / 250, i % 250),
    });
    ResourceState {
        type_name: "metal.machine".into(),
        inputs: serde_json::from_value(inputs).unwrap(),
        outputs: serde_json::from_value(outputs).unwrap(),
        depends_on: vec![ResourceAddr::new_unchecked(format!("subnet-{}", i % 3))],
        tainted: false,
        create_before_destroy: false,
    }
}

pub(crate) fn put(i: usize) -> JournalRecord {
    JournalRecord::Put { addr: addr(i), resource: resource(i) }
}

/// Unix permission bits of `path`.
pub(crate) fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
