//! Recovery points: a snapshot of every stateful object of an environment,
//! plus the definition it was built from, so that `phoenix restore` can
//! rebuild the whole environment — network, compute, load balancers, DNS —
//! with each stateful object created from its snapshot, even when the old
//! environment and its state are gone.
//!
//! ```text
//!  state ──stateful()──► [volume a, db b]  ──take() (parallel)──► RecoveryPoint
//!                                                                     │ stored by the state backend
//!  restore: point.definition ─restore_definition(existing)──► Definition with
//!           snapshot_id / snapshot_identifier set on what is missing ──► plan ──► apply
//! ```
//!
//! Which types are stateful, how they are snapshotted and which input a new
//! object restores from is each provider's business
//! ([`Recovery::restore_attr`](crate::provider::Recovery::restore_attr)).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::addr::ResourceAddr;
use crate::definition::{Definition, ResourceConfig};
use crate::plan::seal_sensitive;
use crate::provider::{LogSink, ProviderError, Registry, SnapshotRequest};
use crate::state::{Ownership, StateDoc};
use crate::value::{Value, is_sealed, seal};

/// A snapshot a provider took (or copied), as it names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// `snap-…` for EBS, the DB snapshot identifier for RDS.
    pub id: String,
    /// Where it lives, for providers with regions. `None`: a global snapshot
    /// (GCE's), usable in every region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// One stateful object of a recovery point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub addr: ResourceAddr,
    #[serde(rename = "type")]
    pub type_name: String,
    /// The object's id when the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// The input a new object is created from it with (`snapshot_id`...).
    pub restore_attr: String,
    pub snapshot: SnapshotRef,
    /// Copies in other regions (`--copy-to-region`), by region.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub copies: BTreeMap<String, SnapshotRef>,
}

impl SnapshotRecord {
    /// The snapshot to restore from in `region` (`None`: where it was taken).
    /// A global snapshot serves every region.
    pub fn in_region(&self, region: Option<&str>) -> Option<&SnapshotRef> {
        match region {
            None => Some(&self.snapshot),
            Some(r) if self.snapshot.region.as_deref().is_none_or(|here| here == r) => Some(&self.snapshot),
            Some(r) => self.copies.get(r),
        }
    }
}

/// Everything needed to rebuild an environment: its definition as rendered
/// (sensitive values sealed: a restore takes them from the environment as it
/// is rendered then), its variables, and a snapshot of every stateful object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    pub id: String,
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub created_at: DateTime<Utc>,
    /// How long taking it took, snapshots complete.
    pub took_ms: u64,
    /// The state it was taken from.
    pub lineage: String,
    pub serial: u64,
    pub variables: BTreeMap<String, Value>,
    pub definition: Definition,
    pub snapshots: Vec<SnapshotRecord>,
}

impl RecoveryPoint {
    /// `rp-YYYYMMDD-HHMMSS-xxxx`: sorts by time, unique enough across concurrent takers.
    pub fn new_id(now: DateTime<Utc>) -> String {
        format!("rp-{}-{:04x}", now.format("%Y%m%d-%H%M%S"), rand_u16())
    }

    /// The regions every snapshot has a copy in (besides where it was taken).
    pub fn copied_regions(&self) -> BTreeSet<String> {
        let mut all: Option<BTreeSet<String>> = None;
        for s in &self.snapshots {
            let here: BTreeSet<String> = s.copies.keys().cloned().collect();
            all = Some(match all {
                None => here,
                Some(a) => a.intersection(&here).cloned().collect(),
            });
        }
        all.unwrap_or_default()
    }
}

fn rand_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish() as u16
}

/// The definition as a recovery point keeps it: sensitive attributes and
/// literal values of sensitive outputs sealed (never stored in clear).
pub fn sealed_definition(def: &Definition, registry: &Registry, salt: &str) -> Definition {
    let mut out = def.clone();
    for r in out.resources.values_mut() {
        r.attrs = seal_sensitive(registry.schema(&r.type_name), &r.attrs, salt);
    }
    for o in out.outputs.values_mut() {
        if o.sensitive {
            o.value = seal(&o.value, salt);
        }
    }
    out
}

/// A stateful object of a state: (address, type, the input it restores from).
pub fn stateful(state: &StateDoc, registry: &Registry) -> Vec<(ResourceAddr, String, &'static str)> {
    state
        .resources
        .iter()
        .filter_map(|(addr, r)| {
            let recovery = registry.recovery_for(&r.type_name)?;
            let attr = recovery.restore_attr(&r.type_name)?;
            recovery.is_stateful(&r.type_name, &r.inputs).then(|| (addr.clone(), r.type_name.clone(), attr))
        })
        .collect()
}

/// Snapshots every stateful object of `state`, at most `parallelism` at a
/// time, each waited on until complete. All or nothing: on any failure, the
/// snapshots that were taken are returned too so the caller can delete them.
pub async fn take(
    state: &StateDoc,
    registry: &Registry,
    point: &str,
    parallelism: usize,
    log: LogSink,
) -> Result<Vec<SnapshotRecord>, (Vec<SnapshotRecord>, Vec<(ResourceAddr, ProviderError)>)> {
    use futures::stream::{self, StreamExt};
    let jobs = stateful(state, registry).into_iter().map(|(addr, type_name, attr)| {
        let r = &state.resources[&addr];
        let provider = registry.provider_for(&type_name).cloned();
        let req = SnapshotRequest {
            addr: addr.clone(),
            type_name: type_name.clone(),
            inputs: r.inputs.clone(),
            outputs: r.outputs.clone(),
            ownership: Ownership {
                environment: state.environment.clone(),
                instance: state.instance.clone(),
                resource: addr.clone(),
                lineage: state.lineage.clone(),
                expires_at: state.expires_at,
            },
            point: point.to_string(),
            log: log.clone(),
        };
        let source_id = r.outputs.get("id").and_then(Value::as_str).map(str::to_string);
        async move {
            let Some(recovery) = provider.as_ref().and_then(|p| p.recovery()) else {
                return Err((addr, ProviderError::permanent(format!("no provider snapshots `{type_name}`"))));
            };
            match recovery.snapshot(req).await {
                Ok(snapshot) => {
                    Ok(SnapshotRecord { addr, type_name, source_id, restore_attr: attr.to_string(), snapshot, copies: BTreeMap::new() })
                }
                Err(e) => Err((addr, e)),
            }
        }
    });
    let results: Vec<_> = stream::iter(jobs).buffer_unordered(parallelism.max(1)).collect().await;
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for r in results {
        match r {
            Ok(rec) => ok.push(rec),
            Err(e) => failed.push(e),
        }
    }
    ok.sort_by(|a, b| a.addr.cmp(&b.addr));
    if failed.is_empty() { Ok(ok) } else { Err((ok, failed)) }
}

/// What a restore does with one stateful object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    pub addr: ResourceAddr,
    pub restore_attr: String,
    pub snapshot: SnapshotRef,
}

/// Why a recovery point cannot be restored as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "`{addr}.{attr}` is sensitive, so the recovery point holds only its digest, and the environment as rendered now does not declare it; set it (e.g. through the variable or env() it came from) and run again"
    )]
    MissingSecret { addr: ResourceAddr, attr: String },
    #[error(
        "recovery point {point} has no copy of `{addr}`'s snapshot in region {region} (copied regions: {copied}); take one with `phoenix snapshot --copy-to-region {region}`"
    )]
    NotInRegion { point: String, addr: ResourceAddr, region: String, copied: String },
}

/// The definition a restore plans with: the recovery point's own, with
///  - each sealed (sensitive) value taken from `current`, the environment as
///    rendered now (same resource, same attribute), and
///  - each stateful object that does not exist (`existing` lacks it) set to
///    be created from its snapshot (in `region`'s copy when restoring
///    elsewhere). Objects that exist are left as declared, so a partial loss
///    keeps what survived.
pub fn restore_definition(
    point: &RecoveryPoint,
    current: &Definition,
    existing: &BTreeSet<ResourceAddr>,
    region: Option<&str>,
) -> Result<(Definition, Vec<Restored>), Vec<RestoreError>> {
    let mut def = point.definition.clone();
    let mut errors = Vec::new();
    for (addr, r) in def.resources.iter_mut() {
        unseal(addr, r, current.resources.get(addr), &mut errors);
    }
    for (name, o) in def.outputs.iter_mut() {
        if is_sealed(&o.value)
            && let Some(now) = current.outputs.get(name)
        {
            o.value = now.value.clone();
        }
    }
    let mut restored = Vec::new();
    for s in &point.snapshots {
        if existing.contains(&s.addr) {
            continue;
        }
        let Some(r) = def.resources.get_mut(&s.addr) else { continue };
        let Some(snap) = s.in_region(region) else {
            errors.push(RestoreError::NotInRegion {
                point: point.id.clone(),
                addr: s.addr.clone(),
                region: region.unwrap_or_default().to_string(),
                copied: s.copies.keys().cloned().collect::<Vec<_>>().join(", "),
            });
            continue;
        };
        r.attrs.insert(s.restore_attr.clone(), Value::String(snap.id.clone()));
        restored.push(Restored { addr: s.addr.clone(), restore_attr: s.restore_attr.clone(), snapshot: snap.clone() });
    }
    if errors.is_empty() { Ok((def, restored)) } else { Err(errors) }
}

fn unseal(addr: &ResourceAddr, r: &mut ResourceConfig, now: Option<&ResourceConfig>, errors: &mut Vec<RestoreError>) {
    for (attr, v) in r.attrs.iter_mut() {
        if !is_sealed(v) {
            continue;
        }
        match now.and_then(|n| n.attrs.get(attr)) {
            Some(clear) if !is_sealed(clear) => *v = clear.clone(),
            _ => errors.push(RestoreError::MissingSecret { addr: addr.clone(), attr: attr.clone() }),
        }
    }
}

#[cfg(test)]
mod tests;
