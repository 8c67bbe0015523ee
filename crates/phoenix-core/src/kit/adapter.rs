//! The generic adapter: typed kinds behind the untyped provider contract.
//!
//! Everything here is written once for every kind of every provider: the
//! conversion between state's JSON attributes and a kind's structs,
//! dispatch by type, refresh batched per type (types in parallel), and the
//! per-type answers the engine asks for (restore input, unique names, `gc`
//! listing).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::kind::{Create, Delete, Found, Kind, Observed, Prior, Snapshot, Update};
use crate::provider::{
    self, AdoptRequest, CreateRequest, DeleteRequest, OwnedListing, OwnedObject, ProviderError, RefreshItem, SnapshotRequest, UpdateRequest,
};
use crate::recovery::SnapshotRef;
use crate::schema::ResourceSchema;
use crate::value::{Attrs, Value};

/// The kinds of one provider, all sharing its client `C`.
/// A provider's kinds, in the order they were registered: `gc` deletes
/// leaked objects type by type in reverse of it, so a kind is registered
/// after the kinds its objects depend on.
pub struct KindSet<C> {
    kinds: Vec<(&'static str, Box<dyn Erased<C>>)>,
}

impl<C> Default for KindSet<C> {
    fn default() -> Self {
        Self { kinds: Vec::new() }
    }
}

impl<C: Send + Sync + 'static> KindSet<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a kind: its one line in the provider.
    pub fn with<K: Kind<Client = C>>(mut self, kind: K) -> Self {
        let schema = super::schema::of(&kind);
        assert!(!self.contains(K::TYPE), "`{}` registered twice", K::TYPE);
        self.kinds.push((K::TYPE, Box::new(Typed { kind, schema })));
        self
    }

    pub fn contains(&self, type_name: &str) -> bool {
        self.get(type_name).is_some()
    }

    pub fn type_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.iter().map(|(t, _)| *t)
    }

    /// In registration order.
    pub fn schemas(&self) -> Vec<ResourceSchema> {
        self.kinds.iter().map(|(_, k)| k.schema().clone()).collect()
    }

    fn get(&self, type_name: &str) -> Option<&dyn Erased<C>> {
        self.kinds.iter().find(|(t, _)| *t == type_name).map(|(_, k)| &**k)
    }

    fn kind(&self, type_name: &str) -> Result<&dyn Erased<C>, ProviderError> {
        self.get(type_name).ok_or_else(|| ProviderError::unsupported(format!("no resource type `{type_name}` in this provider")))
    }

    /// Reads every item: one batch per type, the types in parallel.
    pub async fn refresh(&self, client: &C, items: &[RefreshItem]) -> Vec<Result<Option<provider::Observed>, ProviderError>> {
        let mut by_type: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            by_type.entry(item.type_name.as_str()).or_default().push(i);
        }
        let batches = by_type.into_iter().map(|(type_name, indices)| async move {
            let batch: Vec<&RefreshItem> = indices.iter().map(|i| &items[*i]).collect();
            let found = match self.kind(type_name) {
                Ok(k) => k.read(client, &batch).await,
                Err(e) => Err(e),
            };
            (indices, found)
        });
        let mut out: Vec<Option<Result<Option<provider::Observed>, ProviderError>>> = items.iter().map(|_| None).collect();
        for (indices, found) in futures::future::join_all(batches).await {
            match found {
                Ok(found) if found.len() == indices.len() => {
                    for (i, f) in indices.into_iter().zip(found) {
                        out[i] = Some(Ok(f));
                    }
                }
                Ok(_) => {
                    let e = ProviderError::unexpected("a read returned a different number of results than it was given");
                    indices.into_iter().for_each(|i| out[i] = Some(Err(e.clone())));
                }
                Err(e) => indices.into_iter().for_each(|i| out[i] = Some(Err(e.clone()))),
            }
        }
        out.into_iter().map(|r| r.unwrap_or_else(|| Err(ProviderError::unexpected("an item was not read")))).collect()
    }

    pub async fn import(&self, client: &C, type_name: &str, id: &str) -> Result<Option<provider::Observed>, ProviderError> {
        self.kind(type_name)?.import(client, id).await
    }

    pub async fn adopt(&self, client: &C, req: &AdoptRequest) -> Result<Option<provider::Observed>, ProviderError> {
        self.kind(&req.type_name)?.adopt(client, req).await
    }

    pub async fn create(&self, client: &C, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        self.kind(&req.type_name)?.create(client, req).await
    }

    pub async fn update(&self, client: &C, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        self.kind(&req.type_name)?.update(client, req).await
    }

    pub async fn delete(&self, client: &C, req: &DeleteRequest) -> Result<(), ProviderError> {
        self.kind(&req.type_name)?.delete(client, req).await
    }

    /// Every kind's owned objects; kinds that cannot list are named as not swept.
    pub async fn list_owned(&self, client: &C) -> Result<OwnedListing, ProviderError> {
        let listed = futures::future::join_all(self.kinds.iter().map(|(t, k)| async move { (*t, k.list_owned(client).await) })).await;
        let mut listing = OwnedListing::default();
        for (type_name, found) in listed {
            match found? {
                Some(objects) => listing.objects.extend(objects),
                None => listing.unsupported.push(type_name.to_string()),
            }
        }
        Ok(listing)
    }

    pub async fn snapshot(&self, client: &C, req: &SnapshotRequest) -> Result<SnapshotRef, ProviderError> {
        self.stateful_kind(&req.type_name)?.snapshot(client, req).await
    }

    pub async fn copy_snapshot(
        &self,
        client: &C,
        type_name: &str,
        snapshot: &SnapshotRef,
        to_region: &str,
    ) -> Result<SnapshotRef, ProviderError> {
        self.stateful_kind(type_name)?.copy_snapshot(client, snapshot, to_region).await
    }

    pub async fn delete_snapshot(&self, client: &C, type_name: &str, snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        self.stateful_kind(type_name)?.delete_snapshot(client, snapshot).await
    }

    /// A kind without [`super::Capabilities::stateful`] is refused before its inputs are read.
    fn stateful_kind(&self, type_name: &str) -> Result<&dyn Erased<C>, ProviderError> {
        let kind = self.kind(type_name)?;
        match kind.capabilities().stateful {
            Some(_) => Ok(kind),
            None => Err(ProviderError::unsupported(format!("`{type_name}` holds no data Phoenix snapshots"))),
        }
    }

    /// The input a stateful kind's objects are restored through.
    pub fn restore_attr(&self, type_name: &str) -> Option<&'static str> {
        self.get(type_name)?.capabilities().stateful.map(|s| s.restore_input)
    }

    /// Whether this object is snapshotted in recovery points.
    pub fn is_stateful(&self, type_name: &str, inputs: &Attrs) -> bool {
        self.get(type_name).and_then(|k| k.capabilities().stateful).is_some_and(|s| s.holds_data(inputs))
    }

    /// `(type, input)` pairs whose values must be unique in the provider's namespace.
    pub fn unique_names(&self) -> Vec<(&'static str, &'static str)> {
        self.kinds.iter().flat_map(|(t, k)| k.capabilities().unique_names.iter().map(move |a| (*t, *a))).collect()
    }
}

/// A kind with its types erased: what [`KindSet`] dispatches to.
#[async_trait]
trait Erased<C>: Send + Sync {
    fn schema(&self) -> &ResourceSchema;
    fn capabilities(&self) -> super::Capabilities;
    async fn read(&self, client: &C, items: &[&RefreshItem]) -> Result<Vec<Option<provider::Observed>>, ProviderError>;
    async fn import(&self, client: &C, id: &str) -> Result<Option<provider::Observed>, ProviderError>;
    async fn adopt(&self, client: &C, req: &AdoptRequest) -> Result<Option<provider::Observed>, ProviderError>;
    async fn create(&self, client: &C, req: &CreateRequest) -> Result<Attrs, ProviderError>;
    async fn update(&self, client: &C, req: &UpdateRequest) -> Result<Attrs, ProviderError>;
    async fn delete(&self, client: &C, req: &DeleteRequest) -> Result<(), ProviderError>;
    async fn list_owned(&self, client: &C) -> Result<Option<Vec<OwnedObject>>, ProviderError>;
    async fn snapshot(&self, client: &C, req: &SnapshotRequest) -> Result<SnapshotRef, ProviderError>;
    async fn copy_snapshot(&self, client: &C, snapshot: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError>;
    async fn delete_snapshot(&self, client: &C, snapshot: &SnapshotRef) -> Result<(), ProviderError>;
}

struct Typed<K> {
    kind: K,
    schema: ResourceSchema,
}

#[async_trait]
impl<K: Kind> Erased<K::Client> for Typed<K> {
    fn schema(&self) -> &ResourceSchema {
        &self.schema
    }

    fn capabilities(&self) -> super::Capabilities {
        self.kind.capabilities()
    }

    async fn read(&self, client: &K::Client, items: &[&RefreshItem]) -> Result<Vec<Option<provider::Observed>>, ProviderError> {
        let priors = items
            .iter()
            .map(|i| {
                Ok(Prior::<K> {
                    addr: i.addr.clone(),
                    spec: from_attrs(K::TYPE, "inputs", &i.inputs)?,
                    outputs: from_attrs(K::TYPE, "outputs", &i.outputs)?,
                })
            })
            .collect::<Result<Vec<_>, ProviderError>>()?;
        let found = self.kind.read(client, &priors).await?;
        Ok(found.into_iter().zip(items).map(|(f, item)| f.map(|o| without_sensitive(&self.schema, untyped(o, &item.inputs)))).collect())
    }

    async fn import(&self, client: &K::Client, id: &str) -> Result<Option<provider::Observed>, ProviderError> {
        let found = self.kind.import(client, id).await?;
        Ok(found.map(|o| provider::Observed { inputs: to_attrs(&o.spec), outputs: output_attrs(&o.outputs) }))
    }

    async fn adopt(&self, client: &K::Client, req: &AdoptRequest) -> Result<Option<provider::Observed>, ProviderError> {
        let spec = from_attrs::<K::Spec>(K::TYPE, "inputs", &req.inputs)?;
        let found = self.kind.find(client, Found { addr: &req.addr, spec: &spec, ownership: &req.ownership }).await?;
        Ok(found.map(|o| without_sensitive(&self.schema, untyped(o, &req.inputs))))
    }

    async fn create(&self, client: &K::Client, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let spec = from_attrs(K::TYPE, "inputs", &req.inputs)?;
        let create =
            Create { addr: &req.addr, spec: &spec, ownership: &req.ownership, idempotency_token: &req.idempotency_token, log: &req.log };
        self.kind.create(client, create).await.map(|o| output_attrs(&o))
    }

    async fn update(&self, client: &K::Client, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let prior = from_attrs(K::TYPE, "inputs", &req.prior_inputs)?;
        let outputs = from_attrs(K::TYPE, "outputs", &req.prior_outputs)?;
        let spec = from_attrs(K::TYPE, "inputs", &req.inputs)?;
        let update = Update {
            addr: &req.addr,
            prior: &prior,
            outputs: &outputs,
            spec: &spec,
            changed: &req.changed,
            ownership: &req.ownership,
            log: &req.log,
        };
        self.kind.update(client, update).await.map(|o| output_attrs(&o))
    }

    async fn delete(&self, client: &K::Client, req: &DeleteRequest) -> Result<(), ProviderError> {
        let spec = from_attrs(K::TYPE, "inputs", &req.inputs)?;
        let outputs = from_attrs(K::TYPE, "outputs", &req.outputs)?;
        let delete = Delete { addr: &req.addr, spec: &spec, outputs: &outputs, ownership: &req.ownership, log: &req.log };
        self.kind.delete(client, delete).await
    }

    async fn snapshot(&self, client: &K::Client, req: &SnapshotRequest) -> Result<SnapshotRef, ProviderError> {
        let spec = from_attrs(K::TYPE, "inputs", &req.inputs)?;
        let outputs = from_attrs(K::TYPE, "outputs", &req.outputs)?;
        let snapshot =
            Snapshot { addr: &req.addr, spec: &spec, outputs: &outputs, ownership: &req.ownership, point: &req.point, log: &req.log };
        self.kind.snapshot(client, snapshot).await
    }

    async fn copy_snapshot(&self, client: &K::Client, snapshot: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        self.kind.copy_snapshot(client, snapshot, to_region).await
    }

    async fn delete_snapshot(&self, client: &K::Client, snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        self.kind.delete_snapshot(client, snapshot).await
    }

    async fn list_owned(&self, client: &K::Client) -> Result<Option<Vec<OwnedObject>>, ProviderError> {
        let Some(owned) = self.kind.list_owned(client).await? else { return Ok(None) };
        Ok(Some(
            owned
                .into_iter()
                .map(|o| OwnedObject {
                    type_name: K::TYPE.to_string(),
                    ownership: o.ownership,
                    inputs: to_attrs(&o.observed.spec),
                    outputs: output_attrs(&o.observed.outputs),
                    container: o.container,
                })
                .collect(),
        ))
    }
}

/// A struct from state's attributes (nulls are absent values).
pub(crate) fn from_attrs<T: DeserializeOwned>(type_name: &str, what: &str, attrs: &Attrs) -> Result<T, ProviderError> {
    let object = attrs.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect();
    serde_json::from_value(Value::Object(object))
        .map_err(|e| ProviderError::invalid_input(format!("`{type_name}` {what} do not match its schema: {e}")))
}

/// A spec as state's attributes, absent values left out.
pub(crate) fn to_attrs<T: Serialize>(value: &T) -> Attrs {
    let mut attrs = output_attrs(value);
    attrs.retain(|_, v| !v.is_null());
    attrs
}

/// Outputs as state's attributes. A null output stays: it is a known value
/// that references resolve to.
pub fn output_attrs<T: Serialize>(value: &T) -> Attrs {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map.into_iter().collect(),
        _ => Attrs::new(),
    }
}

/// What a read found, as the planner compares it: the attributes the
/// definition had when last applied, each as observed now (an optional one
/// that disappeared reads as null). Attributes never set are not compared,
/// so a provider-side default never reads as drift.
fn untyped<K: Kind + ?Sized>(observed: Observed<K>, prior: &Attrs) -> provider::Observed {
    let now = to_attrs(&observed.spec);
    let inputs = prior.keys().map(|k| (k.clone(), now.get(k).cloned().unwrap_or(Value::Null))).collect();
    provider::Observed { inputs, outputs: output_attrs(&observed.outputs) }
}

/// A read never reports a sensitive input: no API gives one back, and state
/// keeps its sealed digest (the planner compares that with the definition).
fn without_sensitive(schema: &ResourceSchema, mut observed: provider::Observed) -> provider::Observed {
    observed.inputs.retain(|k, _| !schema.attr(k).is_some_and(|a| a.sensitive));
    observed
}
