//! The typed kind template: what one resource type implements.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::addr::ResourceAddr;
use crate::provider::{LogSink, ProviderError};
use crate::recovery::SnapshotRef;
use crate::schema::Validator;
use crate::state::Ownership;

/// What a kind can do, as data: the engine and the conformance suite read
/// it instead of asking the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// A change to an attribute that is not `force_new` is applied in place.
    pub update_in_place: bool,
    /// A replacement creates the new object before deleting the old one.
    pub create_before_destroy: bool,
    /// An interrupted create leaves an object [`Kind::find`] can find by its
    /// ownership marks, so the executor journals an intent before creating.
    pub adoptable: bool,
    /// The kind holds data that recovery points snapshot.
    pub stateful: Option<Stateful>,
    /// Inputs whose values must be unique in the provider's namespace (a
    /// region, a VPC, a project): `--instance` copies must set them apart.
    pub unique_names: &'static [&'static str],
}

impl Capabilities {
    /// The common case: updated in place, replaced delete-first, adoptable.
    pub const fn managed() -> Self {
        Self { update_in_place: true, create_before_destroy: false, adoptable: true, stateful: None, unique_names: &[] }
    }
    pub const fn replace_only(mut self) -> Self {
        self.update_in_place = false;
        self
    }
    pub const fn create_before_destroy(mut self) -> Self {
        self.create_before_destroy = true;
        self
    }
    /// Leaves nothing to find after an interrupted create (values, commands, checks).
    pub const fn not_adoptable(mut self) -> Self {
        self.adoptable = false;
        self
    }
    /// Every object holds data, restored through `restore_input`.
    pub const fn stateful(mut self, restore_input: &'static str) -> Self {
        self.stateful = Some(Stateful { restore_input, which: WhichObjects::Every });
        self
    }
    /// Only objects whose boolean `input` is true hold data (`aws.instance`'s `stateful`).
    pub const fn stateful_if(mut self, restore_input: &'static str, input: &'static str) -> Self {
        self.stateful = Some(Stateful { restore_input, which: WhichObjects::OptedIn(input) });
        self
    }
    /// Objects with `input` set keep their data elsewhere (an Aurora
    /// instance's, in its cluster): the others hold data.
    pub const fn stateful_unless(mut self, restore_input: &'static str, input: &'static str) -> Self {
        self.stateful = Some(Stateful { restore_input, which: WhichObjects::Unless(input) });
        self
    }
    pub const fn unique_names(mut self, inputs: &'static [&'static str]) -> Self {
        self.unique_names = inputs;
        self
    }
}

/// A kind whose objects hold data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stateful {
    /// The input a new object is made from a snapshot with (`snapshot_id`).
    pub restore_input: &'static str,
    pub which: WhichObjects,
}

/// Which objects of a stateful kind hold data, as data: decided on the
/// inputs as written, so it holds for partial inputs and is said in the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhichObjects {
    Every,
    /// Those whose boolean input is true.
    OptedIn(&'static str),
    /// Those without this input set.
    Unless(&'static str),
}

impl Stateful {
    pub fn holds_data(&self, inputs: &crate::value::Attrs) -> bool {
        match self.which {
            WhichObjects::Every => true,
            WhichObjects::OptedIn(input) => inputs.get(input).and_then(serde_json::Value::as_bool) == Some(true),
            WhichObjects::Unless(input) => inputs.get(input).is_none_or(serde_json::Value::is_null),
        }
    }
}

/// One object to read back: its inputs as last applied (sensitive ones
/// sealed) and the outputs state recorded.
pub struct Prior<K: Kind + ?Sized> {
    pub addr: ResourceAddr,
    pub spec: K::Spec,
    pub outputs: K::Outputs,
}

/// What a read found. `spec` is the object as it is: a kind starts from the
/// prior spec and overwrites what it can read back, so anything it cannot
/// read is never reported as drift.
pub struct Observed<K: Kind + ?Sized> {
    pub spec: K::Spec,
    pub outputs: K::Outputs,
}

/// An object carrying Phoenix's ownership marks, found by [`Kind::list_owned`].
pub struct Owned<K: Kind + ?Sized> {
    pub ownership: Ownership,
    pub observed: Observed<K>,
    /// See [`crate::provider::OwnedObject::container`].
    pub container: Option<String>,
}

/// Arguments of [`Kind::find`]: the object an interrupted create may have made.
pub struct Found<'a, K: Kind + ?Sized> {
    pub addr: &'a ResourceAddr,
    pub spec: &'a K::Spec,
    pub ownership: &'a Ownership,
}

/// Arguments of [`Kind::create`].
pub struct Create<'a, K: Kind + ?Sized> {
    pub addr: &'a ResourceAddr,
    pub spec: &'a K::Spec,
    pub ownership: &'a Ownership,
    /// Unique to this create: the API's idempotency key where it has one.
    pub idempotency_token: &'a str,
    pub log: &'a LogSink,
}

/// Arguments of [`Kind::update`].
pub struct Update<'a, K: Kind + ?Sized> {
    pub addr: &'a ResourceAddr,
    /// As last applied (sensitive ones sealed).
    pub prior: &'a K::Spec,
    pub outputs: &'a K::Outputs,
    pub spec: &'a K::Spec,
    /// Names of the inputs that changed.
    pub changed: &'a [String],
    pub ownership: &'a Ownership,
    pub log: &'a LogSink,
}

impl<K: Kind + ?Sized> Update<'_, K> {
    pub fn changed(&self, input: &str) -> bool {
        self.changed.iter().any(|c| c == input)
    }
}

/// Arguments of [`Kind::delete`].
pub struct Delete<'a, K: Kind + ?Sized> {
    pub addr: &'a ResourceAddr,
    /// As last applied (sensitive ones sealed).
    pub spec: &'a K::Spec,
    pub outputs: &'a K::Outputs,
    pub ownership: &'a Ownership,
    pub log: &'a LogSink,
}

/// Arguments of [`Kind::snapshot`]: one object of a stateful kind.
pub struct Snapshot<'a, K: Kind + ?Sized> {
    pub addr: &'a ResourceAddr,
    /// As last applied (sensitive ones sealed).
    pub spec: &'a K::Spec,
    pub outputs: &'a K::Outputs,
    /// The object's owner: the snapshot is marked with it and with `point`.
    pub ownership: &'a Ownership,
    /// The recovery point's id.
    pub point: &'a str,
    pub log: &'a LogSink,
}

/// One resource type, e.g. `aws.vpc`.
///
/// # Contract
/// - `create` marks the object with `ownership`, uses the idempotency token
///   where the API has one, and returns once the object is usable. A failure
///   after the object came into being carries its outputs
///   ([`ProviderError::with_created`]) so it is tracked, never leaked.
/// - `read` reads a whole batch in a handful of calls; `None` for an object
///   that is gone.
/// - `find` finds, by ownership marks, what an interrupted create made.
/// - `delete` of an object that is already gone succeeds.
#[async_trait]
pub trait Kind: Send + Sync + 'static {
    /// `aws.vpc`.
    const TYPE: &'static str;
    /// One line for `phoenix schema` and the reference.
    const DESCRIPTION: &'static str;
    /// The provider's shared client (SDK clients, call policy, settings).
    type Client: Send + Sync + 'static;
    /// The inputs a user writes. Refuse unknown fields; defaults through serde.
    type Spec: Serialize + DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static;
    /// The computed attributes (ids, addresses).
    type Outputs: Serialize + DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static;
    /// Validators of this kind's own `format` keywords, checked before the
    /// shared ones ([`crate::schema::validators::by_format`]).
    const FORMATS: &'static [(&'static str, Validator)] = &[];

    fn capabilities(&self) -> Capabilities;

    async fn read(&self, client: &Self::Client, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError>;

    /// The object with this id as it is, for `phoenix import`: no prior spec
    /// exists, so everything comes from the API. Default: not importable.
    async fn import(&self, _client: &Self::Client, _id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        Err(ProviderError::unsupported(format!("`{}` objects cannot be imported", Self::TYPE)))
    }

    /// Default: nothing can be found (for kinds that are not adoptable).
    async fn find(&self, _client: &Self::Client, _req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        Ok(None)
    }

    async fn create(&self, client: &Self::Client, req: Create<'_, Self>) -> Result<Self::Outputs, ProviderError>;

    /// Called only when [`Capabilities::update_in_place`] holds.
    async fn update(&self, _client: &Self::Client, _req: Update<'_, Self>) -> Result<Self::Outputs, ProviderError> {
        Err(ProviderError::unsupported(format!("`{}` cannot be updated in place", Self::TYPE)))
    }

    async fn delete(&self, client: &Self::Client, req: Delete<'_, Self>) -> Result<(), ProviderError>;

    /// A snapshot of one object's data, for a recovery point; called only
    /// for kinds with [`Capabilities::stateful`] (and objects
    /// [`Stateful::holds_data`] says hold data). The snapshot must be usable as
    /// the kind's restore input.
    async fn snapshot(&self, _client: &Self::Client, _req: Snapshot<'_, Self>) -> Result<SnapshotRef, ProviderError> {
        Err(ProviderError::unsupported(format!("`{}` holds no data Phoenix snapshots", Self::TYPE)))
    }

    /// A copy of one of this kind's snapshots in another region (for a restore there).
    async fn copy_snapshot(&self, _client: &Self::Client, _snapshot: &SnapshotRef, _to_region: &str) -> Result<SnapshotRef, ProviderError> {
        Err(ProviderError::unsupported(format!("`{}` snapshots cannot be copied to another region", Self::TYPE)))
    }

    /// Deletes one of this kind's snapshots; one already gone is deleted.
    async fn delete_snapshot(&self, _client: &Self::Client, _snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        Err(ProviderError::unsupported(format!("`{}` holds no data Phoenix snapshots", Self::TYPE)))
    }

    /// Every live object of this kind carrying Phoenix's ownership marks, of
    /// any environment, for `gc`. `None` (the default): cannot be listed, and
    /// `gc` reports the kind as not swept.
    async fn list_owned(&self, _client: &Self::Client) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        Ok(None)
    }
}
