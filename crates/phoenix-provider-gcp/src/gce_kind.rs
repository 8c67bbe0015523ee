//! The Compute Engine sub-template: what every `gcp.*` kind does the same way.
//!
//! A kind says where its objects live ([`GceKind::scope`]), what its insert
//! body is, what a read observes, and what it changes in place besides
//! labels; the steps below are written once here and each kind's
//! [`Kind`] impl delegates to them.
//!
//! # Contract of every kind
//! - [`create`] inserts with `requestId` derived from the engine's
//!   idempotency token (a retried create gets the same operation back), waits
//!   for the operation, and reads the object. If the name is taken by an
//!   object carrying this resource's ownership marks (a create interrupted
//!   after the insert), that object is adopted rather than failing or duplicating.
//! - [`read`] reads a whole batch with one paginated `list`/`aggregatedList`
//!   (labelled types: filtered by the environment's labels) and a `get` only
//!   for objects the listing did not return (imported ones); gone → `None`.
//! - [`import`] gets an object by its self_link, or lists by its numeric id or name.
//! - [`find`] (adopt) gets the object by its (deterministic) name and checks its marks.
//! - [`delete`] succeeds when the object is already gone and retries while
//!   dependents are still going away (`resourceInUseByAnotherResource`).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use phoenix_core::kit::{Create, Delete, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::{Invalid, Validator, validators};
use phoenix_core::state::Ownership;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::gce::{Coll, Gce, GceError, Loc, Scope, request_id, uuid};
use crate::labels;

/// The user's `labels` input: extra labels beside Phoenix's ownership labels.
pub type UserLabels = BTreeMap<String, String>;

/// The outputs every kind has.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ObjectIds {
    /// the numeric id (a decimal uint64)
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the object's URL; what other resources reference
    #[schemars(extend("stable" = true))]
    pub self_link: String,
}

impl ObjectIds {
    pub fn of(o: &Value) -> Self {
        Self { id: text(&o["id"]), self_link: text(&o["selfLink"]) }
    }
}

/// The validators of the `gcp.*` kinds' own `format` keywords.
pub const FORMATS: &[(&str, Validator)] = &[
    ("gce-name", rfc1035),
    ("gce-routing-mode", routing_mode),
    ("gce-address-type", address_type),
    ("gce-machine-type", machine_type),
    ("gce-allow-rules", validators::allow_rules),
    ("ipv4-cidr-list", validators::ipv4_cidr_list),
];

fn rfc1035(v: &Value) -> Result<(), Invalid> {
    let s = v.as_str().unwrap_or_default();
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(())
    } else {
        Err(Invalid(format!(
            "`{s}` is not a GCE name: a lowercase letter, then lowercase letters, digits or `-`, at most 63, not ending in `-`"
        )))
    }
}

fn routing_mode(v: &Value) -> Result<(), Invalid> {
    match v.as_str() {
        Some("REGIONAL" | "GLOBAL") => Ok(()),
        _ => Err("must be REGIONAL or GLOBAL".into()),
    }
}

fn address_type(v: &Value) -> Result<(), Invalid> {
    match v.as_str() {
        Some("EXTERNAL" | "INTERNAL") => Ok(()),
        _ => Err("must be EXTERNAL or INTERNAL".into()),
    }
}

fn machine_type(v: &Value) -> Result<(), Invalid> {
    match v.as_str() {
        Some(s) if !s.is_empty() && !s.contains('/') => Ok(()),
        _ => Err("a machine type name such as e2-small (not a URL)".into()),
    }
}

/// A Compute Engine kind: what the shared steps below need to know of it.
#[async_trait]
pub trait GceKind: Kind<Client = Gce> {
    const COLL: Coll;
    /// Whether the collection has labels (else marks go in `description`).
    const LABELLED: bool = true;

    fn name(spec: &Self::Spec) -> &str;
    /// The user's labels (labelled kinds).
    fn user_labels(_spec: &Self::Spec) -> Option<&UserLabels> {
        None
    }
    /// The user's description (unlabelled kinds: it follows Phoenix's mark).
    fn user_description(_spec: &Self::Spec) -> Option<&str> {
        None
    }
    fn ids(outputs: &Self::Outputs) -> &ObjectIds;
    /// Where a new object goes.
    fn scope(gce: &Gce, spec: &Self::Spec) -> Result<Scope, ProviderError>;
    /// The insert body (without name, labels or description: added by [`create`]).
    async fn body(gce: &Gce, spec: &Self::Spec) -> Result<Map<String, Value>, ProviderError>;
    /// What a read sees. `prior` is the spec last applied (`None` for an
    /// import or a `gc` listing): what cannot be read back is taken from it.
    fn observe(object: &Value, prior: Option<&Self::Spec>) -> Observed<Self>;
    /// Waits, after a create or an adoption, until the object is usable.
    async fn settle(_gce: &Gce, _loc: &Loc, object: Value) -> Result<Value, ProviderError> {
        Ok(object)
    }
    /// Changes other than labels (which [`update`] handles for every labelled kind).
    async fn update_fields(_gce: &Gce, _req: &Update<'_, Self>, _loc: &Loc, _object: &Value) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// Reads a batch: one listing, a `get` for what it did not return; gone → `None`.
pub async fn read<K: GceKind>(gce: &Gce, items: &[Prior<K>]) -> Result<Vec<Option<Observed<K>>>, ProviderError> {
    let filter = K::LABELLED.then(|| labels::env_filter(&gce.marks.environment, gce.marks.instance.as_deref()));
    let listed = gce.list(K::COLL, filter.as_deref()).await.map_err(|e| e.into_provider("refresh"))?;
    let by_id: HashMap<&str, &Value> = listed.iter().filter_map(|o| Some((o["id"].as_str()?, o))).collect();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let ids = K::ids(&item.outputs);
        let object = match by_id.get(ids.id.as_str()) {
            Some(o) => Some((*o).clone()),
            // Not listed: imported without labels, or labels removed out of band, or gone.
            None => match Loc::parse(&ids.self_link) {
                Some(loc) => gce.get(K::COLL, &loc).await.map_err(|e| e.into_provider("refresh"))?.filter(|o| o["id"] == ids.id.as_str()),
                None => None,
            },
        };
        out.push(object.filter(alive).map(|o| K::observe(&o, Some(&item.spec))));
    }
    Ok(out)
}

/// One object for `phoenix import`, by its self_link, its numeric id or its name.
pub async fn import<K: GceKind>(gce: &Gce, id: &str) -> Result<Option<Observed<K>>, ProviderError> {
    let what = format!("import {} `{id}`", K::TYPE);
    let object = match Loc::parse(id) {
        Some(loc) => gce.get(K::COLL, &loc).await.map_err(|e| e.into_provider(&what))?,
        None => {
            let filter =
                if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) { format!("id = {id}") } else { format!("name = \"{id}\"") };
            let mut found = gce.list(K::COLL, Some(&filter)).await.map_err(|e| e.into_provider(&what))?;
            if found.len() > 1 {
                return Err(ProviderError::permanent(format!(
                    "{what}: {} objects have that name (in different regions or zones); import it by its self_link",
                    found.len()
                )));
            }
            found.pop()
        }
    };
    Ok(object.filter(alive).map(|o| K::observe(&o, None)))
}

/// The object an interrupted create made: by its name, if it carries the marks.
pub async fn find<K: GceKind>(gce: &Gce, spec: &K::Spec, ownership: &Ownership) -> Result<Option<Observed<K>>, ProviderError> {
    let loc = Loc { project: gce.project.clone(), scope: K::scope(gce, spec)?, name: K::name(spec).to_string() };
    let Some(object) = gce.get(K::COLL, &loc).await.map_err(|e| e.into_provider("adopt"))? else { return Ok(None) };
    if !owned::<K>(&object, ownership) || !alive(&object) {
        return Ok(None);
    }
    let object = K::settle(gce, &loc, object).await?;
    Ok(Some(K::observe(&object, Some(spec))))
}

fn owned<K: GceKind>(object: &Value, o: &Ownership) -> bool {
    if K::LABELLED {
        labels::owned_by(&object["labels"], o)
    } else {
        labels::description_owned_by(object["description"].as_str().unwrap_or_default(), o)
    }
}

/// Phoenix's labels plus the user's.
fn all_labels<K: GceKind>(spec: &K::Spec, ownership: &Ownership) -> Value {
    labels::all(ownership, K::user_labels(spec).map(|l| json!(l)).as_ref())
}

pub async fn create<K: GceKind>(gce: &Gce, req: Create<'_, K>) -> Result<K::Outputs, ProviderError> {
    let name = K::name(req.spec).to_string();
    let scope = K::scope(gce, req.spec)?;
    let mut body = K::body(gce, req.spec).await?;
    body.insert("name".into(), json!(name));
    if K::LABELLED {
        let l = all_labels::<K>(req.spec, req.ownership);
        // Disks made with an instance (its boot disk) carry the marks too, so a sweep finds them.
        for d in body.get_mut("disks").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(init) = d.get_mut("initializeParams").and_then(Value::as_object_mut) {
                init.insert("labels".into(), l.clone());
            }
        }
        body.insert("labels".into(), l);
    } else {
        body.insert("description".into(), json!(labels::description(req.ownership, K::user_description(req.spec))));
    }
    let loc = Loc { project: gce.project.clone(), scope: scope.clone(), name };
    let what = format!("create {} `{}`", K::TYPE, loc.name);
    match gce.insert(K::COLL, &scope, json!(body), &uuid(req.idempotency_token, 0)).await {
        Ok(()) => {}
        // Taken: ours from an interrupted run (adopt it), or someone else's (an error naming it).
        Err(e) if e.is_conflict() => {
            let existing = gce.get(K::COLL, &loc).await.map_err(|e| e.into_provider(&what))?;
            if !existing.as_ref().is_some_and(|o| owned::<K>(o, req.ownership)) {
                return Err(ProviderError::permanent(format!(
                    "{what}: the name is taken by an object Phoenix does not own here; choose another `name` or import it"
                )));
            }
        }
        Err(e) => {
            // The operation failed after the object came into being (e.g. an instance that
            // could not start): hand it to the engine so it is replaced, not leaked.
            if let Ok(Some(o)) = gce.get(K::COLL, &loc).await
                && owned::<K>(&o, req.ownership)
            {
                return Err(e.into_provider(&what).with_created(made::<K>(&o, req.spec)));
            }
            return Err(e.into_provider(&what));
        }
    }
    let object = gce
        .get(K::COLL, &loc)
        .await
        .map_err(|e| e.into_provider(&what))?
        .ok_or_else(|| ProviderError::transient(format!("{what}: the operation finished but the object is not there")))?;
    let made = made::<K>(&object, req.spec);
    let object = K::settle(gce, &loc, object).await.map_err(|e| e.with_created(made))?;
    Ok(K::observe(&object, Some(req.spec)).outputs)
}

/// The outputs of an object that exists, as state records them.
fn made<K: GceKind>(object: &Value, spec: &K::Spec) -> phoenix_core::value::Attrs {
    phoenix_core::kit::output_attrs(&K::observe(object, Some(spec)).outputs)
}

pub async fn update<K: GceKind>(gce: &Gce, req: Update<'_, K>) -> Result<K::Outputs, ProviderError> {
    let loc = loc_of(K::ids(req.outputs))?;
    let what = format!("update {} `{}`", K::TYPE, loc.name);
    let object = gce
        .get(K::COLL, &loc)
        .await
        .map_err(|e| e.into_provider(&what))?
        .ok_or_else(|| ProviderError::permanent(format!("{what}: it no longer exists")))?;
    K::update_fields(gce, &req, &loc, &object).await?;
    if K::LABELLED {
        // Every update rewrites the ownership labels too (an imported object gets them).
        let want = all_labels::<K>(req.spec, req.ownership);
        let current = gce.get(K::COLL, &loc).await.map_err(|e| e.into_provider(&what))?.unwrap_or(object);
        if current["labels"] != want && !(want.as_object().is_some_and(|w| w.is_empty()) && current["labels"].is_null()) {
            let fp = current["labelFingerprint"].as_str().unwrap_or_default();
            gce.set_labels(K::COLL, &loc, want, fp, &request_id()).await.map_err(|e| e.into_provider(&what))?;
        }
    }
    let now = gce
        .get(K::COLL, &loc)
        .await
        .map_err(|e| e.into_provider(&what))?
        .ok_or_else(|| ProviderError::permanent(format!("{what}: it disappeared")))?;
    Ok(K::observe(&now, Some(req.spec)).outputs)
}

pub async fn delete<K: GceKind>(gce: &Gce, req: Delete<'_, K>) -> Result<(), ProviderError> {
    let loc = loc_of(K::ids(req.outputs))?;
    let what = format!("delete {} `{}`", K::TYPE, loc.name);
    let start = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(250);
    let rid = request_id();
    loop {
        match gce.delete(K::COLL, &loc, &rid).await {
            Ok(()) => return Ok(()),
            // Dependents (an instance using a disk, subnetworks in a network) are still going away.
            Err(e) if e.is_in_use() && start.elapsed() < gce.wait_timeout => {
                tokio::time::sleep(crate::gce::jitter(delay)).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e.into_provider(&what)),
        }
    }
}

/// Every live object of the kind carrying Phoenix's marks, whoever's: one listing.
pub async fn list_owned<K: GceKind>(gce: &Gce) -> Result<Option<Vec<Owned<K>>>, ProviderError> {
    list_owned_where::<K>(gce, |_| true).await
}

/// [`list_owned`] of the objects `keep` says are objects of their own.
pub async fn list_owned_where<K: GceKind>(gce: &Gce, keep: impl Fn(&Value) -> bool + Send) -> Result<Option<Vec<Owned<K>>>, ProviderError> {
    let listed = gce.list(K::COLL, None).await.map_err(|e| e.into_provider("gc: list owned objects"))?;
    Ok(Some(
        listed
            .iter()
            .filter(|o| alive(o) && keep(o))
            .filter_map(|o| {
                let ownership = if K::LABELLED {
                    labels::ownership_of_labels(&o["labels"])
                } else {
                    labels::ownership_of_description(o["description"].as_str().unwrap_or_default())
                }?;
                Some(Owned { ownership, observed: K::observe(o, None), container: None })
            })
            .collect(),
    ))
}

/// Objects on their way out count as gone.
pub fn alive(o: &Value) -> bool {
    !matches!(o["status"].as_str(), Some("DELETING" | "STOPPING_FOR_DELETE"))
}

/// The object's location from the `self_link` its state recorded.
pub fn loc_of(ids: &ObjectIds) -> Result<Loc, ProviderError> {
    Loc::parse(&ids.self_link).ok_or_else(|| ProviderError::permanent("state holds no `self_link` for this object"))
}

/// A string field, `""` when absent.
pub fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The last path segment of a URL (`…/machineTypes/e2-small` → `e2-small`).
pub fn last(v: &Value) -> String {
    v.as_str().and_then(|s| s.rsplit('/').next()).unwrap_or_default().to_string()
}

/// Same object whatever the spelling (full URL, `projects/…` path).
pub fn same_link(a: &str, b: &str) -> bool {
    let rel = |s: &str| s.rsplit_once("/compute/v1/").map_or(s, |(_, r)| r).to_string();
    rel(a) == rel(b)
}

/// A reference as the definition spelled it when it names the object seen, else as seen.
pub fn link_as_spelled(seen: &Value, prior: Option<&str>) -> String {
    let seen = seen.as_str().unwrap_or_default();
    match prior {
        Some(p) if same_link(p, seen) => p.to_string(),
        _ => seen.to_string(),
    }
}

/// The user's labels as read back (Phoenix's own left out).
pub fn observed_labels(o: &Value) -> Option<UserLabels> {
    serde_json::from_value(labels::user(&o["labels"])).ok()
}

/// The user's part of the description as read back.
pub fn observed_description(o: &Value) -> Option<String> {
    Some(labels::user_description(o["description"].as_str().unwrap_or_default()).to_string()).filter(|d| !d.is_empty())
}

/// An int64 the API writes as a decimal string (`sizeGb`).
pub fn int64(v: &Value) -> Option<i64> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// `debian-cloud/debian-12` (project/family) → the API's family path; anything else as given.
pub fn image_ref(s: &str) -> String {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() == 2 { format!("projects/{}/global/images/family/{}", parts[0], parts[1]) } else { s.to_string() }
}

/// Polls `check` until it yields, for up to the provider's wait timeout.
pub async fn wait_until<F, Fut>(gce: &Gce, what: &str, mut check: F) -> Result<Value, ProviderError>
where
    F: FnMut() -> Fut + Send,
    Fut: std::future::Future<Output = Result<Option<Value>, GceError>> + Send,
{
    let start = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        if let Some(v) = check().await.map_err(|e| e.into_provider(what))? {
            return Ok(v);
        }
        if start.elapsed() > gce.wait_timeout {
            return Err(ProviderError::transient(format!("timed out after {}s waiting for {what}", gce.wait_timeout.as_secs())));
        }
        tokio::time::sleep(crate::gce::jitter(delay)).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
}

/// Waits until the object is `READY` (disks, snapshots, images).
pub async fn ready(gce: &Gce, coll: Coll, loc: &Loc, object: Value, noun: &str) -> Result<Value, ProviderError> {
    if object["status"] == "READY" {
        return Ok(object);
    }
    wait_until(gce, &format!("{noun} {} to be READY", loc.name), || async {
        Ok(gce.get(coll, loc).await?.filter(|o| o["status"] == "READY"))
    })
    .await
}
