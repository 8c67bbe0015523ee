//! Snapshots of GCP's stateful type for recovery points (see
//! `phoenix_core::recovery`): persistent disks (`gcp.disk`), restored through
//! the disk's `snapshot` input (a snapshot's self_link).
//!
//! - **Taking** one is a `snapshots.insert` with `sourceDisk`, named
//!   [`snapshot_name`] (the disk's name and the point's id), labelled with the
//!   disk's ownership labels plus `phoenix-recovery-point` (the point's id as
//!   a label value, see [`point_label`]). Its `requestId` is derived from the
//!   point, the resource and the disk, so a retried insert gets the first
//!   operation back; a name already taken by this point's snapshot of this disk
//!   (an earlier attempt whose answer was lost) is taken as the result. The
//!   operation is waited on (its `error` is an error), then the snapshot until
//!   its `status` is `READY`.
//! - **Where it lives**: a GCE snapshot is a global resource, stored
//!   multi-regionally and usable to create a disk in any region of the project
//!   (Google charges the transfer). So the [`SnapshotRef`] has no region, its
//!   id is the snapshot's self_link, and "copying" it to a region makes no API
//!   object: [`copy`] checks the snapshot is there and `READY` and records the
//!   same snapshot for that region.
//! - **Deleting** is `snapshots.delete`; a snapshot already gone is fine.

use phoenix_core::ResourceAddr;
use phoenix_core::provider::{LogSink, ProviderError};
use phoenix_core::recovery::SnapshotRef;
use phoenix_core::state::Ownership;
use phoenix_core::value::Value;
use serde_json::{Map, json};

use crate::gce::{Coll, Gce, Loc, Scope, request_id, uuid};
use crate::gce_kind::wait_until;
use crate::labels;

/// The label naming the recovery point a snapshot belongs to.
pub const POINT_LABEL: &str = "phoenix-recovery-point";

/// The input a new object is created from a snapshot with.
/// One disk to snapshot, as `gcp.disk`'s `snapshot` names it.
pub struct Target<'a> {
    pub addr: &'a ResourceAddr,
    /// The disk's self_link.
    pub disk: &'a str,
    pub ownership: &'a Ownership,
    pub point: &'a str,
    pub log: &'a LogSink,
}

/// The point's id as a label value. Phoenix's ids (`rp-20261124-020500-1a2b`)
/// are valid label values and are kept as they are; any other id goes through
/// [`labels::sanitize`] (lowercased, other characters `_`, cut, plus a hash of
/// the original so two ids never share a value).
pub fn point_label(point: &str) -> String {
    labels::sanitize(point)
}

/// The snapshot's name: `<disk>-<point>`, a valid GCE name (lowercase letter,
/// then `[-a-z0-9]`, at most 63, no trailing `-`). Characters a name cannot
/// hold become `-`; when the whole is too long, the disk's part is cut and
/// followed by a hash of the disk's name, so two disks of one point never share a name.
pub fn snapshot_name(disk: &str, point: &str) -> String {
    let clean = |s: &str| -> String {
        let mapped: String = s.to_lowercase().chars().map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' }).collect();
        mapped.trim_matches('-').to_string()
    };
    let (d, p) = (clean(disk), clean(point));
    let p: String = p.chars().take(40).collect::<String>().trim_end_matches('-').to_string();
    let mut name = format!("{d}-{p}");
    if name.len() > 63 || d != disk {
        let keep = 63 - p.len() - 10;
        let cut: String = d.chars().take(keep).collect::<String>().trim_end_matches('-').to_string();
        name = format!("{cut}-{}-{p}", hash8(disk));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name = format!("s{}", &name[..name.len().min(62)]);
    }
    name.trim_end_matches('-').to_string()
}

fn hash8(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes()).iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The labels of a recovery-point snapshot: the disk's owner, and the point.
pub fn point_labels(req: &Target) -> Value {
    let mut m = Map::new();
    for (k, v) in labels::ownership(&req.ownership) {
        m.insert(k, json!(v));
    }
    m.insert(POINT_LABEL.into(), json!(point_label(req.point)));
    Value::Object(m)
}

pub async fn snapshot(gce: &Gce, req: Target<'_>) -> Result<SnapshotRef, ProviderError> {
    let disk = Loc::parse(req.disk).ok_or_else(|| ProviderError::permanent("state holds no `self_link` for this object"))?;
    let disk_link = req.disk.to_string();
    let loc = Loc { project: gce.project.clone(), scope: Scope::Global, name: snapshot_name(&disk.name, req.point) };
    let what = format!("snapshot of gcp.disk `{}` for recovery point {}", disk.name, req.point);
    let wanted = point_labels(&req);
    let body = json!({
        "name": loc.name,
        "sourceDisk": disk_link,
        "labels": wanted,
        "description": format!("Phoenix recovery point {} of {}/{}", req.point, req.ownership.environment, req.addr),
    });
    // The same point, resource and disk always send the same requestId.
    let rid = uuid(&format!("{}|{}|{disk_link}", req.point, req.addr), 0);
    match gce.insert(Coll::Snapshots, &Scope::Global, body, &rid).await {
        Ok(()) => {}
        Err(e) if e.is_conflict() => {
            // Ours from an earlier attempt (same point, same disk), or someone else's.
            let existing = gce.get(Coll::Snapshots, &loc).await.map_err(|e| e.into_provider(&what))?;
            let ours = existing.as_ref().is_some_and(|s| {
                s["labels"][POINT_LABEL] == wanted[POINT_LABEL]
                    && Loc::parse(s["sourceDisk"].as_str().unwrap_or_default()) == Some(disk.clone())
            });
            if !ours {
                return Err(ProviderError::permanent(format!("{what}: the name `{}` is taken by another snapshot", loc.name)));
            }
        }
        Err(e) => return Err(e.into_provider(&what)),
    }
    (req.log)(req.addr, &format!("snapshot {} of disk {} started", loc.name, disk.name));
    let ready = wait_ready(gce, &loc).await?;
    let link = ready["selfLink"]
        .as_str()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ProviderError::permanent(format!("{what}: snapshot {} has no selfLink", loc.name)))?;
    Ok(SnapshotRef { id: link.to_string(), region: None })
}

/// Waits until the snapshot is `READY`; `FAILED` (or gone) is an error.
async fn wait_ready(gce: &Gce, loc: &Loc) -> Result<Value, ProviderError> {
    let name = &loc.name;
    wait_until(gce, &format!("snapshot {name} to be READY"), || async move {
        match gce.get(Coll::Snapshots, loc).await? {
            Some(s) if s["status"] == "READY" => Ok(Some(s)),
            Some(s) if s["status"] == "FAILED" => {
                Err(crate::gce::GceError { http: Some(400), reason: "snapshotFailed".into(), message: format!("snapshot {name} failed") })
            }
            Some(_) => Ok(None),
            None => Err(crate::gce::GceError { http: Some(404), reason: "notFound".into(), message: format!("snapshot {name} is gone") }),
        }
    })
    .await
}

fn snapshot_loc(snap: &SnapshotRef) -> Result<Loc, ProviderError> {
    Loc::parse(&snap.id).ok_or_else(|| ProviderError::permanent(format!("`{}` is not a GCE snapshot's self_link", snap.id)))
}

/// Records the snapshot for `to_region` (see the module docs: snapshots are
/// global), after checking it exists and is `READY`. No object is made.
pub async fn copy(gce: &Gce, snap: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
    let loc = snapshot_loc(snap)?;
    let what = format!("use snapshot {} in {to_region}", loc.name);
    match gce.get(Coll::Snapshots, &loc).await.map_err(|e| e.into_provider(&what))? {
        Some(s) if s["status"] == "READY" => Ok(SnapshotRef { id: snap.id.clone(), region: Some(to_region.to_string()) }),
        Some(s) => Err(ProviderError::permanent(format!("{what}: it is {}", s["status"].as_str().unwrap_or("in no known status")))),
        None => Err(ProviderError::permanent(format!("{what}: it does not exist"))),
    }
}

pub async fn delete(gce: &Gce, snap: &SnapshotRef) -> Result<(), ProviderError> {
    let loc = snapshot_loc(snap)?;
    gce.delete(Coll::Snapshots, &loc, &request_id()).await.map_err(|e| e.into_provider(&format!("delete snapshot {}", loc.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_name(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_lowercase()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[b.len() - 1] != b'-'
    }

    #[test]
    fn snapshot_names_are_valid_readable_and_distinct() {
        assert_eq!(snapshot_name("gcp-staging-data-0", "rp-20261124-020500-1a2b"), "gcp-staging-data-0-rp-20261124-020500-1a2b");
        let long = "d".repeat(60);
        let (a, b) = (
            snapshot_name(&format!("{long}-a"), "rp-20261124-020500-1a2b"),
            snapshot_name(&format!("{long}-b"), "rp-20261124-020500-1a2b"),
        );
        assert!(valid_name(&a) && valid_name(&b), "{a} {b}");
        assert_ne!(a, b, "two disks of one point never share a name");
        assert!(a.ends_with("-rp-20261124-020500-1a2b"), "the point stays readable: {a}");
        for (disk, point) in [("x", "RP_Weird.Id!"), ("9disk", "rp-1"), ("d", "-"), ("d", &"p".repeat(100))] {
            let n = snapshot_name(disk, point);
            assert!(valid_name(&n), "{disk} {point} -> {n}");
        }
    }

    #[test]
    fn point_ids_become_label_values() {
        assert_eq!(point_label("rp-20261124-020500-1a2b"), "rp-20261124-020500-1a2b", "Phoenix's ids are kept");
        let odd = point_label("RP:2026/11");
        assert!(odd.len() <= 63 && odd.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'), "{odd}");
        assert_ne!(odd, point_label("rp_2026_11"));
    }

    #[test]
    fn only_disks_are_stateful() {
        let p = crate::GcpProvider::default();
        let r = phoenix_core::provider::Provider::recovery(&p).unwrap();
        assert_eq!(r.restore_attr("gcp.disk"), Some("snapshot"));
        assert_eq!(r.restore_attr("gcp.snapshot"), None);
        assert_eq!(r.restore_attr("gcp.instance"), None);
    }
}
