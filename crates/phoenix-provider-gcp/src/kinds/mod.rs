//! One module per resource type. Each describes its schema, how inputs become
//! an insert body, and what a read observes; the shared steps — intent-then-
//! adopt creates, batched refresh, labels in place, deletes that wait — are
//! the default methods of [`Kind`], written once here.
//!
//! # Contract of every kind
//! - `create` inserts with `requestId` derived from the engine's idempotency
//!   token (a retried create gets the same operation back), waits for the
//!   operation, and reads the object. If the name is taken by an object
//!   carrying this resource's ownership marks (a create interrupted after the
//!   insert), that object is adopted rather than failing or duplicating.
//! - `read` reads a whole batch with one paginated `list`/`aggregatedList`
//!   (labelled types: filtered by the environment's labels) and a `get` only
//!   for objects the listing did not return (imported ones); gone → `None`.
//! - `find` (adopt) gets the object by its (deterministic) name and checks its marks.
//! - `delete` succeeds when the object is already gone and retries while
//!   dependents are still going away (`resourceInUseByAnotherResource`).

use phoenix_core::schema::Invalid;
use std::collections::HashMap;

use async_trait::async_trait;
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::state::Ownership;
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use crate::gce::{Coll, Gce, GceError, Loc, Scope, request_id, uuid};
use crate::labels;

pub mod address;
pub mod disk;
pub mod firewall;
pub mod image;
pub mod instance;
pub mod network;
pub mod snapshot;
pub mod subnetwork;

/// One GCP resource type.
#[async_trait]
pub trait Kind: Send + Sync {
    fn schema(&self) -> ResourceSchema;
    fn coll(&self) -> Coll;
    /// Whether the collection has labels (else marks go in `description`).
    fn labelled(&self) -> bool {
        true
    }
    /// Where a new object goes, from its inputs.
    fn scope(&self, gce: &Gce, inputs: &Attrs) -> Result<Scope, ProviderError>;
    /// The insert body (without name, labels or description: added by `create`).
    async fn body(&self, gce: &Gce, inputs: &Attrs) -> Result<serde_json::Map<String, Value>, ProviderError>;
    /// What a read sees: configured attributes that can be read back (`prior` are the inputs last applied) and outputs.
    fn observe(&self, object: &Value, prior: &Attrs) -> Observed;
    /// Waits, after a create or an adoption, until the object is usable.
    async fn settle(&self, _gce: &Gce, _loc: &Loc, object: Value) -> Result<Value, ProviderError> {
        Ok(object)
    }
    /// Changes other than labels (which `update` handles for every labelled type).
    async fn update_fields(&self, _gce: &Gce, _req: &UpdateRequest, _loc: &Loc, _object: &Value) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn read(&self, gce: &Gce, env: &EnvMarks, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let filter = self.labelled().then(|| labels::env_filter(&env.environment, env.instance.as_deref()));
        let listed = gce.list(self.coll(), filter.as_deref()).await.map_err(|e| e.into_provider("refresh"))?;
        let by_id: HashMap<&str, &Value> = listed.iter().filter_map(|o| Some((o["id"].as_str()?, o))).collect();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let id = item.outputs.get("id").and_then(Value::as_str).unwrap_or_default();
            let object = match by_id.get(id) {
                Some(o) => Some((*o).clone()),
                // Not listed: imported without labels, or labels removed out of band, or gone.
                None => match item.outputs.get("self_link").and_then(Value::as_str).and_then(Loc::parse) {
                    Some(loc) => gce.get(self.coll(), &loc).await.map_err(|e| e.into_provider("refresh"))?.filter(|o| o["id"] == id),
                    None => None,
                },
            };
            out.push(object.filter(|o| alive(o)).map(|o| self.observe(&o, &item.inputs)));
        }
        Ok(out)
    }

    async fn find(&self, gce: &Gce, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let loc =
            Loc { project: gce.project.clone(), scope: self.scope(gce, &req.inputs)?, name: req_str(&req.inputs, "name")?.to_string() };
        let Some(object) = gce.get(self.coll(), &loc).await.map_err(|e| e.into_provider("adopt"))? else { return Ok(None) };
        if !self.owned(&object, &req.ownership) || !alive(&object) {
            return Ok(None);
        }
        let object = self.settle(gce, &loc, object).await?;
        Ok(Some(self.observe(&object, &req.inputs)))
    }

    fn owned(&self, object: &Value, o: &Ownership) -> bool {
        if self.labelled() {
            labels::owned_by(&object["labels"], o)
        } else {
            labels::description_owned_by(object["description"].as_str().unwrap_or_default(), o)
        }
    }

    async fn create(&self, gce: &Gce, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let name = req_str(&req.inputs, "name")?.to_string();
        let scope = self.scope(gce, &req.inputs)?;
        let mut body = self.body(gce, &req.inputs).await?;
        body.insert("name".into(), json!(name));
        if self.labelled() {
            let l = labels::all(&req.ownership, req.inputs.get("labels"));
            // Disks made with an instance (its boot disk) carry the marks too, so a sweep finds them.
            for d in body.get_mut("disks").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(init) = d.get_mut("initializeParams").and_then(Value::as_object_mut) {
                    init.insert("labels".into(), l.clone());
                }
            }
            body.insert("labels".into(), l);
        } else {
            body.insert("description".into(), json!(labels::description(&req.ownership, opt_str(&req.inputs, "description"))));
        }
        let loc = Loc { project: gce.project.clone(), scope: scope.clone(), name };
        let what = format!("create {} `{}`", self.schema().type_name, loc.name);
        match gce.insert(self.coll(), &scope, json!(body), &uuid(&req.idempotency_token, 0)).await {
            Ok(()) => {}
            // Taken: ours from an interrupted run (adopt it), or someone else's (an error naming it).
            Err(e) if e.is_conflict() => {
                let existing = gce.get(self.coll(), &loc).await.map_err(|e| e.into_provider(&what))?;
                if !existing.as_ref().is_some_and(|o| self.owned(o, &req.ownership)) {
                    return Err(ProviderError::permanent(format!(
                        "{what}: the name is taken by an object Phoenix does not own here; choose another `name` or import it"
                    )));
                }
            }
            Err(e) => {
                // The operation failed after the object came into being (e.g. an instance that
                // could not start): hand it to the engine so it is replaced, not leaked.
                if let Ok(Some(o)) = gce.get(self.coll(), &loc).await
                    && self.owned(&o, &req.ownership)
                {
                    return Err(e.into_provider(&what).with_created(self.observe(&o, &req.inputs).outputs));
                }
                return Err(e.into_provider(&what));
            }
        }
        let object = gce
            .get(self.coll(), &loc)
            .await
            .map_err(|e| e.into_provider(&what))?
            .ok_or_else(|| ProviderError::transient(format!("{what}: the operation finished but the object is not there")))?;
        let made = self.observe(&object, &req.inputs).outputs;
        let object = self.settle(gce, &loc, object).await.map_err(|e| e.with_created(made))?;
        Ok(self.observe(&object, &req.inputs).outputs)
    }

    async fn update(&self, gce: &Gce, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let loc = loc_of(&req.prior_outputs)?;
        let what = format!("update {} `{}`", self.schema().type_name, loc.name);
        let object = gce
            .get(self.coll(), &loc)
            .await
            .map_err(|e| e.into_provider(&what))?
            .ok_or_else(|| ProviderError::permanent(format!("{what}: it no longer exists")))?;
        self.update_fields(gce, req, &loc, &object).await?;
        if self.labelled() {
            // Every update rewrites the ownership labels too (an imported object gets them).
            let want = labels::all(&req.ownership, req.inputs.get("labels"));
            let current = gce.get(self.coll(), &loc).await.map_err(|e| e.into_provider(&what))?.unwrap_or(object);
            if current["labels"] != want && !(want.as_object().is_some_and(|w| w.is_empty()) && current["labels"].is_null()) {
                let fp = current["labelFingerprint"].as_str().unwrap_or_default();
                gce.set_labels(self.coll(), &loc, want, fp, &request_id()).await.map_err(|e| e.into_provider(&what))?;
            }
        }
        let now = gce
            .get(self.coll(), &loc)
            .await
            .map_err(|e| e.into_provider(&what))?
            .ok_or_else(|| ProviderError::permanent(format!("{what}: it disappeared")))?;
        Ok(self.observe(&now, &req.inputs).outputs)
    }

    async fn delete(&self, gce: &Gce, req: &DeleteRequest) -> Result<(), ProviderError> {
        let loc = loc_of(&req.outputs)?;
        let what = format!("delete {} `{}`", self.schema().type_name, loc.name);
        let start = std::time::Instant::now();
        let mut delay = std::time::Duration::from_millis(250);
        let rid = request_id();
        loop {
            match gce.delete(self.coll(), &loc, &rid).await {
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
}

/// The environment (and instance) whose objects a refresh lists.
#[derive(Debug, Clone, Default)]
pub struct EnvMarks {
    pub environment: String,
    pub instance: Option<String>,
}

/// Every type, in the order they usually depend on each other.
pub fn all() -> &'static [&'static dyn Kind] {
    &[
        &network::Network,
        &subnetwork::Subnetwork,
        &firewall::Firewall,
        &address::Address,
        &disk::Disk,
        &instance::Instance,
        &snapshot::Snapshot,
        &image::Image,
    ]
}

pub fn by_name(type_name: &str) -> Option<&'static dyn Kind> {
    all().iter().copied().find(|k| k.schema().type_name == type_name)
}

/// Objects on their way out count as gone.
pub(crate) fn alive(o: &Value) -> bool {
    !matches!(o["status"].as_str(), Some("DELETING" | "STOPPING_FOR_DELETE"))
}

pub fn req_str<'a>(inputs: &'a Attrs, name: &str) -> Result<&'a str, ProviderError> {
    inputs.get(name).and_then(Value::as_str).ok_or_else(|| ProviderError::permanent(format!("attribute `{name}` is missing")))
}

pub fn opt_str<'a>(inputs: &'a Attrs, name: &str) -> Option<&'a str> {
    inputs.get(name).and_then(Value::as_str)
}

pub fn str_list(inputs: &Attrs, name: &str) -> Vec<String> {
    inputs
        .get(name)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The object's location from the `self_link` its state recorded.
pub fn loc_of(outputs: &Attrs) -> Result<Loc, ProviderError> {
    outputs
        .get("self_link")
        .and_then(Value::as_str)
        .and_then(Loc::parse)
        .ok_or_else(|| ProviderError::permanent("state holds no `self_link` for this object"))
}

/// The last path segment of a URL (`…/machineTypes/e2-small` → `e2-small`).
pub fn last(v: &Value) -> String {
    v.as_str().and_then(|s| s.rsplit('/').next()).unwrap_or_default().to_string()
}

/// Outputs every type has.
pub fn common_outputs(o: &Value) -> Attrs {
    let mut out = Attrs::new();
    out.insert("id".into(), json!(o["id"].as_str().unwrap_or_default()));
    out.insert("self_link".into(), json!(o["selfLink"].as_str().unwrap_or_default()));
    out
}

/// Observed `name` and, when the definition manages them, `labels`.
pub fn common_inputs(o: &Value, prior: &Attrs) -> Attrs {
    let mut inputs = Attrs::new();
    inputs.insert("name".into(), json!(o["name"].as_str().unwrap_or_default()));
    if prior.contains_key("labels") {
        inputs.insert("labels".into(), labels::user(&o["labels"]));
    }
    inputs
}

/// `name`, `labels`, `id` and `self_link`: the attributes every type shares.
pub fn common_attrs(labelled: bool) -> Vec<AttrSchema> {
    let mut v = vec![
        AttrSchema::required("name", AttrType::String, "the object's name (RFC 1035: lowercase letter, then [-a-z0-9], at most 63)")
            .force_new()
            .validate_with(rfc1035),
        AttrSchema::computed("id", AttrType::String, "the numeric id (a decimal uint64)").stable(),
        AttrSchema::computed("self_link", AttrType::String, "the object's URL; what other resources reference").stable(),
    ];
    if labelled {
        v.push(AttrSchema::optional(
            "labels",
            AttrType::Map(Box::new(AttrType::String)),
            "labels (Phoenix adds its phoenix-* ownership labels); changed in place",
        ));
    }
    v
}

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

/// The schema shell every type uses.
pub fn schema(type_name: &'static str, description: &'static str, labelled: bool, mut attrs: Vec<AttrSchema>) -> ResourceSchema {
    let mut all = common_attrs(labelled);
    all.append(&mut attrs);
    ResourceSchema { type_name, description, attrs: all, update_in_place: true, create_before_destroy: false, adoptable: true }
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
