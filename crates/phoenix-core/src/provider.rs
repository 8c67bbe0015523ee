//! The contract between the engine and a provider (AWS, GCP, metal, builtin).
//!
//! Providers receive fully resolved values (references substituted, sensitive
//! values in clear) and return computed attributes. They never see state files
//! or the graph; the engine never sees SDKs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::addr::ResourceAddr;
use crate::definition::provider_of;
use crate::schema::ResourceSchema;
use crate::state::Ownership;
use crate::validate::Schemas;
use crate::value::Attrs;

/// Everything a provider learns about where it runs, given once before any call.
#[derive(Debug, Clone)]
pub struct ProviderContext {
    pub environment: String,
    pub instance: Option<String>,
    /// The project directory (where `environments/` and `templates/` live).
    pub project_dir: PathBuf,
    /// Phoenix's own directory for this environment (`.phoenix/...`): scratch files, pid files.
    pub data_dir: PathBuf,
    /// The `[providers.NAME]` table of the environment file.
    pub config: Attrs,
}

/// A line of output from a long operation (a command's stdout), for progress and `--json`.
pub type LogSink = Arc<dyn Fn(&ResourceAddr, &str) + Send + Sync>;

/// Arguments of [`Provider::create`].
pub struct CreateRequest {
    pub addr: ResourceAddr,
    pub type_name: String,
    pub inputs: Attrs,
    pub ownership: Ownership,
    /// Unique to this create call: providers pass it as the API's idempotency
    /// key (EC2 `ClientToken`, GCE `requestId`) so a retried call whose first
    /// response was lost does not make a second object.
    pub idempotency_token: String,
    pub log: LogSink,
}

/// Arguments of [`Provider::update`].
pub struct UpdateRequest {
    pub addr: ResourceAddr,
    pub type_name: String,
    /// Inputs as last applied (sensitive ones sealed).
    pub prior_inputs: Attrs,
    pub prior_outputs: Attrs,
    pub inputs: Attrs,
    /// Names of the inputs that changed.
    pub changed: Vec<String>,
    pub ownership: Ownership,
    pub log: LogSink,
}

/// Arguments of [`Provider::delete`].
pub struct DeleteRequest {
    pub addr: ResourceAddr,
    pub type_name: String,
    pub inputs: Attrs,
    pub outputs: Attrs,
    pub ownership: Ownership,
    pub log: LogSink,
}

/// Arguments of [`Provider::snapshot`].
pub struct SnapshotRequest {
    pub addr: ResourceAddr,
    pub type_name: String,
    /// As last applied (sensitive ones sealed).
    pub inputs: Attrs,
    pub outputs: Attrs,
    /// The object's owner: the snapshot is tagged with it and with `point`.
    pub ownership: Ownership,
    /// The recovery point's id.
    pub point: String,
    pub log: LogSink,
}

/// One resource to refresh.
#[derive(Debug, Clone)]
pub struct RefreshItem {
    pub addr: ResourceAddr,
    pub type_name: String,
    pub inputs: Attrs,
    pub outputs: Attrs,
}

/// Arguments of [`Provider::adopt`].
#[derive(Debug, Clone)]
pub struct AdoptRequest {
    pub addr: ResourceAddr,
    pub type_name: String,
    pub inputs: Attrs,
    pub ownership: Ownership,
}

/// What a read found.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Current values of configured attributes the provider can read back;
    /// a difference from the last applied value is drift.
    pub inputs: Attrs,
    pub outputs: Attrs,
}

/// An object found at a provider carrying Phoenix's ownership marks (for `phoenix gc`).
#[derive(Debug, Clone)]
pub struct OwnedObject {
    pub type_name: String,
    /// Read back from the object's marks (tags, labels).
    pub ownership: Ownership,
    /// What a delete needs, as a read would observe it (e.g. the VPC an internet gateway is attached to).
    pub inputs: Attrs,
    /// At least `id`.
    pub outputs: Attrs,
    /// The id of the object this one lives in, for objects that carry no
    /// marks of their own (a DNS record in a hosted zone) and are listed under
    /// their container's ownership: `gc` counts one as a leak only when its
    /// container is one too, so what someone added to a live zone is never touched.
    pub container: Option<String>,
}

/// What [`Provider::list_owned`] found.
#[derive(Debug, Clone, Default)]
pub struct OwnedListing {
    pub objects: Vec<OwnedObject>,
    /// Types that cannot be listed (yet): `gc` reports them as not swept.
    pub unsupported: Vec<String>,
}

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, timeouts, 5xx: worth retrying.
    Transient,
    /// Bad input, permissions, a command that failed: retrying does not help.
    Permanent,
}

/// What went wrong, mapped once per provider from its API's error codes, so
/// nothing downstream matches on message text; also the `error_kind` of
/// `--json` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The object does not exist (or is not visible yet).
    NotFound,
    /// An object with that name or id exists already.
    AlreadyExists,
    /// The object is in use or in a state that forbids the call (dependents, a pending operation).
    Conflict,
    PermissionDenied,
    /// Credentials are missing, invalid or expired.
    Credentials,
    /// Throttled by the API.
    RateLimited,
    /// The API (or the provider) refused the values given.
    InvalidInput,
    /// The provider or the API cannot do this.
    Unsupported,
    /// Timeouts, 5xx, connection failures: a retry may pass.
    Transient,
    /// Anything else.
    Unexpected,
}

impl ErrorKind {
    /// Whether retrying the same call can help.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::RateLimited | ErrorKind::Transient)
    }

    /// What to do about it, where one sentence helps.
    pub fn hint(self) -> Option<&'static str> {
        match self {
            ErrorKind::Credentials => Some("check the provider's credentials (environment, profile or key file)"),
            ErrorKind::PermissionDenied => Some("the credentials in use lack a permission this call needs"),
            ErrorKind::RateLimited | ErrorKind::Transient => Some("run the command again; finished work is kept"),
            _ => None,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Credentials => "credentials",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Transient => "transient",
            ErrorKind::Unexpected => "unexpected",
        })
    }
}

/// A provider call that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// What failed and why, naming the API call (`CreateVpc: VpcLimitExceeded: …`).
    pub message: String,
    /// A create that failed after the object came into being: the engine records
    /// it (tainted) so it is replaced next time rather than leaked.
    pub created: Option<Attrs>,
    /// A refusal of the provider's configuration block: the key it is about,
    /// so the CLI points at that key's line (and suggests among `known`).
    pub key: Option<ConfigKey>,
}

/// The key of a provider block an error is about, and the keys the block takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigKey {
    pub key: String,
    pub known: Vec<String>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), created: None, key: None }
    }
    /// The same error, about `key` of a configuration block that takes
    /// `known` (kept only when `key` is not one of them: then they are what
    /// the user may have meant).
    pub fn about_key(mut self, key: &str, known: &[&str]) -> Self {
        let known = if known.contains(&key) { Vec::new() } else { known.iter().map(|k| k.to_string()).collect() };
        self.key = Some(ConfigKey { key: key.to_string(), known });
        self
    }
    /// A failure retrying will not fix, of no more specific kind.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unexpected, message)
    }
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }
    pub fn unexpected(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unexpected, message)
    }
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn credentials(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Credentials, message)
    }
    pub fn with_created(mut self, outputs: Attrs) -> Self {
        self.created = Some(outputs);
        self
    }
    /// The same error with `context` before its message (`delete vpc-1: …`).
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
    pub fn class(&self) -> ErrorClass {
        if self.kind.is_retryable() { ErrorClass::Transient } else { ErrorClass::Permanent }
    }
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

/// A provider. See the module docs for the division of labour.
///
/// # Behavior
/// - `create` makes one object, marks it with `ownership` and returns its computed attributes.
/// - `refresh` reads many objects at once (providers should batch: one list call per type,
///   not one call per object); `Ok(None)` for an object that no longer exists.
/// - `adopt` finds an object a previous, interrupted create may have made, by its ownership marks.
/// - `update` changes an object in place; called only for types with `update_in_place`.
/// - `delete` of an object that is already gone succeeds (it must be idempotent).
#[async_trait]
pub trait Provider: Send + Sync {
    /// The prefix of its types: `metal` for `metal.file`.
    fn name(&self) -> &'static str;
    fn schemas(&self) -> Vec<ResourceSchema>;
    /// Reads and checks the provider block. No network calls.
    fn configure(&self, cx: &ProviderContext) -> Result<(), ProviderError>;
    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>>;
    async fn adopt(&self, req: AdoptRequest) -> Result<Option<Observed>, ProviderError>;
    /// The object with this id as it is, for `phoenix import` (a kit
    /// provider asks its kind: [`crate::kit::Kind::import`]). Default: not importable.
    async fn import(&self, _addr: &ResourceAddr, type_name: &str, _id: &str) -> Result<Option<Observed>, ProviderError> {
        Err(ProviderError::unsupported(format!("`{type_name}` objects cannot be imported")))
    }
    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError>;
    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError>;
    async fn delete(&self, req: DeleteRequest) -> Result<(), ProviderError>;
    /// Attributes whose value must be unique across the provider's namespace
    /// (a region, a VPC), as `(type, attribute)`: two `--instance` copies of
    /// one environment would collide on them, so the CLI requires their
    /// values to contain the instance name. Default: none.
    fn unique_names(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
    /// The leak-listing facet, for `phoenix gc`. `None` (the default): the
    /// provider cannot list what it made, and `gc` names its types as not
    /// swept rather than calling them clean.
    fn leaks(&self) -> Option<&dyn Leaks> {
        None
    }

    /// API requests sent so far (retries included), for `--json` and `-v` reports.
    fn api_calls(&self) -> u64 {
        0
    }

    /// Before any plan: resolves credentials, account or project, region and
    /// endpoint, and says in one line where the provider will act
    /// (`project p in us-central1`), or fails once with the fix. Changes
    /// nothing. By default there is nothing to resolve.
    async fn preflight(&self) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    /// The recovery facet, for providers whose kinds hold data (volumes,
    /// disks, databases): what recovery points snapshot and how. `None` (the
    /// default): nothing of this provider's is snapshotted.
    fn recovery(&self) -> Option<&dyn Recovery> {
        None
    }

    /// The placement facet, for providers whose objects live in a region:
    /// how a restore moves them (`phoenix restore --region`). `None` (the
    /// default): the provider's objects have no region and do not move.
    fn placement(&self) -> Option<&dyn Placement> {
        None
    }
}

/// Objects a provider made, found by their ownership marks rather than by
/// any state: what `phoenix gc` sweeps.
#[async_trait]
pub trait Leaks: Send + Sync {
    /// Every live object carrying Phoenix's ownership marks, of every
    /// environment. Read-only; objects without marks are never returned;
    /// kinds that cannot be listed are named in `unsupported`.
    async fn list_owned(&self) -> Result<OwnedListing, ProviderError>;

    /// Whether an owner read back by [`list_owned`](Self::list_owned) is
    /// `environment` (and `instance`). Providers whose marks cannot hold
    /// every name as is (GCE labels are lowercased and hashed) compare their
    /// way; the default is equality.
    fn same_owner(&self, listed: &Ownership, environment: &str, instance: Option<&str>) -> bool {
        listed.environment == environment && listed.instance.as_deref() == instance
    }
}

/// Snapshots for recovery points, per kind: a provider on the kit answers
/// from its kinds' capabilities and `snapshot` methods ([`crate::kit::KindSet`]).
#[async_trait]
pub trait Recovery: Send + Sync {
    /// For a type whose objects hold data: the input a new object is created
    /// from a snapshot with (`snapshot_id`...).
    fn restore_attr(&self, type_name: &str) -> Option<&'static str>;

    /// Whether this object of a [`restore_attr`](Self::restore_attr) type is
    /// snapshotted in recovery points, given its inputs. The restore
    /// attribute itself stays per type, so the planner treats it alike
    /// whether or not the object is snapshotted now.
    fn is_stateful(&self, type_name: &str, inputs: &Attrs) -> bool;

    /// Takes a snapshot of one object, tagged with its owner and the
    /// recovery point, and waits until it is complete.
    async fn snapshot(&self, req: SnapshotRequest) -> Result<crate::recovery::SnapshotRef, ProviderError>;

    /// Copies a snapshot to another region and waits until the copy is complete.
    async fn copy_snapshot(
        &self,
        type_name: &str,
        snapshot: &crate::recovery::SnapshotRef,
        to_region: &str,
    ) -> Result<crate::recovery::SnapshotRef, ProviderError>;

    /// Deletes a snapshot; one that is already gone is fine.
    async fn delete_snapshot(&self, type_name: &str, snapshot: &crate::recovery::SnapshotRef) -> Result<(), ProviderError>;
}

/// Where a provider's objects are made, and how a restore moves them to
/// another region or makes them beside the originals. What each cloud needs
/// (a zone of the region for GCE, names unique in a project) is said here,
/// by the provider, so the CLI holds no cloud's rules.
pub trait Placement: Send + Sync {
    /// Refuses, naming what is missing, a move of this provider's `objects`
    /// to `region` (and `zone`): before any lock or state is taken.
    fn check_move(&self, objects: &[ResourceAddr], region: &str, zone: Option<&str>) -> Result<(), ProviderError>;
    /// The provider settings that place objects in `region` (and `zone`):
    /// recorded in state, so every later command finds the objects there.
    fn settings(&self, region: &str, zone: Option<&str>) -> Vec<(&'static str, String)>;
    /// Moves one object's definition to `region`/`zone`, for objects placed
    /// by their own attributes rather than by the provider's settings.
    fn relocate(&self, _config: &mut crate::definition::ResourceConfig, _region: &str, _zone: &str) {}
    /// Attributes unique in the provider's namespace across regions (GCE
    /// names in a project): a restore beside the original takes their values
    /// from the environment as rendered now, not from the point.
    fn renamed_beside_original(&self) -> &'static [&'static str] {
        &[]
    }
}

/// The providers of one run, with every resource type they declare.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<&'static str, Arc<dyn Provider>>,
    schemas: Schemas,
}

impl Registry {
    /// A registry holding the builtin provider (`data`).
    pub fn new() -> Self {
        let mut r = Self::default();
        r.register(Arc::new(crate::builtin::BuiltinProvider::default()));
        r
    }

    pub fn register(&mut self, provider: Arc<dyn Provider>) {
        for schema in provider.schemas() {
            self.schemas.insert(schema.type_name.to_string(), schema);
        }
        self.providers.insert(provider.name(), provider);
    }

    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    pub fn schema(&self, type_name: &str) -> Option<&ResourceSchema> {
        self.schemas.get(type_name)
    }

    /// The provider that owns `type_name`.
    /// The recovery facet of the provider of `type_name`, if it has one.
    pub fn recovery_for(&self, type_name: &str) -> Option<&dyn Recovery> {
        self.provider_for(type_name)?.recovery()
    }

    pub fn provider_for(&self, type_name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(provider_of(type_name))
    }

    pub fn provider(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(name)
    }

    pub fn provider_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.providers.keys().copied()
    }
}
