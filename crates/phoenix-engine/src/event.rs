//! The one event type of Phoenix: every `--json` line the CLI writes is an
//! [`Event`] serialized by [`Event::to_line`], and nothing else.
//!
//! The contract, for scripts and CI:
//! - every line is one JSON object with `type` (the variant, snake_case),
//!   `schema_version` ([`SCHEMA_VERSION`]) and `ts` (RFC 3339, UTC, milliseconds);
//! - one verb set for plans and operations: `create`, `update`, `replace`,
//!   `delete` (and `adopt`, recording an object found by its ownership marks);
//!   past tense (`created`, `deleted`…) only in results;
//! - the JSON Schema generated from these types is committed as
//!   `docs/events.schema.json` (a test fails when it differs).
//!
//! Versioning: adding an event type or an optional field keeps the version;
//! removing or renaming a field or a type, or changing a field's meaning or
//! type, bumps [`SCHEMA_VERSION`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use phoenix_core::executor::{ApplyEvent, OpKind};
use phoenix_core::provider::ErrorKind;
use schemars::JsonSchema;
use serde::Serialize;

/// The version of the event contract every line carries.
pub const SCHEMA_VERSION: u32 = 1;

/// A JSON value as Phoenix shows it: sensitive values are sealed or `"(sensitive)"`.
pub type Json = serde_json::Value;

/// What is done to an object, in plans and in operations alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    Create,
    Update,
    /// Plans only: an apply replaces with a `delete` and a `create` operation.
    Replace,
    Delete,
    /// Records an object found by its ownership marks (an interrupted create).
    Adopt,
}

impl From<OpKind> for Verb {
    fn from(op: OpKind) -> Self {
        match op {
            OpKind::Create => Verb::Create,
            OpKind::Update => Verb::Update,
            OpKind::Destroy => Verb::Delete,
            OpKind::Adopt => Verb::Adopt,
        }
    }
}

impl Verb {
    /// The verb of a planned change; `None` for a no-op that records nothing.
    pub fn of_change(action: phoenix_core::plan::Action, adopt: bool) -> Option<Self> {
        use phoenix_core::plan::Action;
        match action {
            Action::Create => Some(Verb::Create),
            Action::Update => Some(Verb::Update),
            Action::Replace => Some(Verb::Replace),
            Action::Delete => Some(Verb::Delete),
            Action::NoOp if adopt => Some(Verb::Adopt),
            Action::NoOp => None,
        }
    }
}

/// Planned changes by verb.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PlanSummary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl From<phoenix_core::plan::Summary> for PlanSummary {
    fn from(s: phoenix_core::plan::Summary) -> Self {
        Self { create: s.create, update: s.update, replace: s.replace, delete: s.delete, unchanged: s.unchanged }
    }
}

/// One planned change that does something (no-ops are left out).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PlannedChange {
    pub addr: String,
    pub resource_type: String,
    pub action: Verb,
}

/// An operation that failed, in a run's result.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FailedOperation {
    pub addr: String,
    pub action: Verb,
    pub error: String,
    pub error_kind: ErrorKind,
}

/// A snapshot, as its provider names it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SnapshotId {
    pub id: String,
    /// Where it lives; absent for a global snapshot (GCE's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl From<&phoenix_core::recovery::SnapshotRef> for SnapshotId {
    fn from(s: &phoenix_core::recovery::SnapshotRef) -> Self {
        Self { id: s.id.clone(), region: s.region.clone() }
    }
}

/// One stateful object of a recovery point.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PointSnapshot {
    pub addr: String,
    pub resource_type: String,
    /// The object's id when the snapshot was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// The input a new object is created from it with.
    pub restore_attr: String,
    pub snapshot: SnapshotId,
    /// Copies in other regions, by region.
    pub copies: BTreeMap<String, SnapshotId>,
}

/// A recovery point, without its definition.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PointSummary {
    pub id: String,
    pub environment: String,
    pub instance: Option<String>,
    pub created_at: DateTime<Utc>,
    pub took_ms: u64,
    pub serial: u64,
    pub resources: usize,
    pub snapshots: Vec<PointSnapshot>,
    pub regions: Vec<String>,
}

impl From<&phoenix_core::recovery::RecoveryPoint> for PointSummary {
    fn from(p: &phoenix_core::recovery::RecoveryPoint) -> Self {
        Self {
            id: p.id.clone(),
            environment: p.environment.clone(),
            instance: p.instance.clone(),
            created_at: p.created_at,
            took_ms: p.took_ms,
            serial: p.serial,
            resources: p.definition.resources.len(),
            snapshots: p
                .snapshots
                .iter()
                .map(|s| PointSnapshot {
                    addr: s.addr.to_string(),
                    resource_type: s.type_name.clone(),
                    source_id: s.source_id.clone(),
                    restore_attr: s.restore_attr.clone(),
                    snapshot: (&s.snapshot).into(),
                    copies: s.copies.iter().map(|(r, c)| (r.clone(), c.into())).collect(),
                })
                .collect(),
            regions: p.copied_regions().into_iter().collect(),
        }
    }
}

/// What a restore made from a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RestoredObject {
    pub addr: String,
    pub restore_attr: String,
    pub snapshot: SnapshotId,
}

impl From<&phoenix_core::recovery::Restored> for RestoredObject {
    fn from(r: &phoenix_core::recovery::Restored) -> Self {
        Self { addr: r.addr.to_string(), restore_attr: r.restore_attr.clone(), snapshot: (&r.snapshot).into() }
    }
}

/// A resource as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StatusResource {
    pub addr: String,
    pub resource_type: String,
    /// The object's id, as its provider names it.
    pub id: Option<Json>,
    pub tainted: bool,
    /// With `--refresh`: `in sync`, `missing`, `not created`, `not declared` or `differs`.
    pub status: Option<String>,
    /// The attributes its type marks as worth seeing at a glance (never sensitive ones).
    pub highlights: BTreeMap<String, Json>,
}

/// An instance (a state) of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct InstanceInfo {
    /// `null`: the environment's default instance.
    pub instance: Option<String>,
    pub resources: usize,
    pub serial: u64,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub expired: bool,
    pub age_secs: Option<i64>,
    /// Interrupted operations the next run finishes.
    pub pending: usize,
    /// Who holds its lock now, if anyone.
    pub locked_by: Option<String>,
}

/// One attribute that reality changed.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DriftedAttr {
    pub before: Json,
    pub after: Json,
}

/// One rendered template.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RenderedTemplate {
    pub template: String,
    pub output: String,
}

/// A resource in state, by address.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StateEntry {
    pub addr: String,
    pub resource_type: String,
}

/// Everything Phoenix reports on `--json`, one variant per kind of line.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    // --- up, down, restore ---
    /// The lock is held and state read.
    RunStarted {
        run_id: String,
        /// `up`, `down` or `restore`.
        operation: String,
        environment: String,
        instance: Option<String>,
        /// Where the state lives.
        state: String,
        /// Set by `--ttl`.
        expires_at: Option<DateTime<Utc>>,
    },
    /// A plan: `phoenix plan`, `phoenix show PLANFILE`, and `up`/`down`/`restore` after refresh.
    Plan {
        summary: PlanSummary,
        /// The changes that do something.
        changes: Vec<PlannedChange>,
        /// The whole plan, attribute by attribute, sensitive values sealed.
        plan: Json,
        /// API requests by provider so far (the refresh's).
        api_calls: BTreeMap<String, u64>,
    },
    /// An operation starts.
    OperationStarted {
        addr: String,
        action: Verb,
        resource_type: String,
    },
    /// It succeeded.
    OperationFinished {
        addr: String,
        action: Verb,
        elapsed_ms: u64,
        /// The object's id (`i-0abc…`, `pid 5950`), when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// It failed.
    OperationFailed {
        addr: String,
        action: Verb,
        error: String,
        error_kind: ErrorKind,
        elapsed_ms: u64,
    },
    /// Not run, because something it needs failed.
    OperationSkipped {
        addr: String,
        action: Verb,
        /// The failed resource it needs.
        because: String,
    },
    /// A line of a command's output, or a provider's step.
    Log {
        addr: String,
        line: String,
    },
    /// The first Ctrl-C or SIGTERM: in-flight operations finish, nothing new starts.
    Interrupted {
        in_flight: usize,
    },
    /// The end of `up`, `down` or `restore`, with or without work.
    RunFinished {
        run_id: String,
        success: bool,
        interrupted: bool,
        created: usize,
        updated: usize,
        deleted: usize,
        failed: Vec<FailedOperation>,
        /// Operations not started (a dependency failed, or interrupted).
        skipped: usize,
        elapsed_ms: u64,
        /// Outputs, sensitive ones as `"(sensitive)"`.
        outputs: BTreeMap<String, Json>,
        state_serial: u64,
        state_bytes_written: u64,
        state_requests: u64,
        /// Resources in state now.
        resources: usize,
        api_calls: BTreeMap<String, u64>,
        refresh_api_calls: BTreeMap<String, u64>,
    },
    /// After a restore's `run_finished`.
    RestoreFinished {
        point: String,
        environment: String,
        instance: Option<String>,
        region: Option<String>,
        recovery_time_ms: u64,
        restored: Vec<RestoredObject>,
    },

    // --- snapshots ---
    /// `phoenix snapshot` starts taking a point of `snapshots` objects (`log` lines follow).
    SnapshotStarted {
        id: String,
        environment: String,
        snapshots: usize,
    },
    SnapshotFinished {
        point: PointSummary,
        /// Points removed by `--keep`.
        removed: Vec<String>,
        store: String,
        api_calls: BTreeMap<String, u64>,
    },
    RecoveryPoints {
        points: Vec<PointSummary>,
    },
    RecoveryPoint {
        point: PointSummary,
        /// The variables it was taken with, sensitive ones sealed.
        variables: BTreeMap<String, Json>,
    },
    RecoveryPointDeleted {
        id: String,
        snapshots: usize,
    },

    // --- gc and instances ---
    Instances {
        environment: String,
        state: String,
        instances: Vec<InstanceInfo>,
    },
    /// An expired instance, destroyed through `down` unless `dry_run`.
    GcExpired {
        environment: String,
        instance: Option<String>,
        expires_at: Option<DateTime<Utc>>,
        resources: usize,
        dry_run: bool,
    },
    /// An object carrying Phoenix's ownership marks that no state knows.
    GcLeak {
        resource_type: String,
        id: String,
        environment: String,
        instance: Option<String>,
        /// The resource address it was made for.
        resource: String,
        lineage: String,
        expires_at: Option<DateTime<Utc>>,
        /// `true`: it is only reported.
        dry_run: bool,
    },
    GcLeakDeleted {
        resource_type: String,
        id: String,
    },
    GcLeakDeleteFailed {
        resource_type: String,
        id: String,
        error: String,
    },
    GcFinished {
        expired: usize,
        leaks: usize,
        deleted_leaks: usize,
        /// Tagged objects of runs in progress or of environments not scanned.
        left_alone: usize,
        /// Types the providers cannot list yet.
        unsupported_types: Vec<String>,
        failures: usize,
        dry_run: bool,
    },

    // --- reading commands ---
    Valid {
        resources: usize,
        outputs: usize,
    },
    /// An invalid definition (any command).
    Invalid {
        /// Each with its file, line and column.
        diagnostics: Json,
    },
    /// Any other failure (any command).
    Error {
        error: String,
    },
    Rendered {
        templates: Vec<RenderedTemplate>,
    },
    Status {
        environment: String,
        instance: Option<String>,
        serial: u64,
        lineage: String,
        updated_at: Option<DateTime<Utc>>,
        resources: Vec<StatusResource>,
        /// Resources the definition declares.
        declared: usize,
        /// Addresses with an interrupted operation.
        pending: Vec<String>,
        locked_by: Option<String>,
    },
    Refreshed {
        environment: String,
        instance: Option<String>,
        resources: usize,
        /// Inputs reality changed, by address and attribute.
        drifted: BTreeMap<String, BTreeMap<String, DriftedAttr>>,
        /// Objects that no longer exist (forgotten).
        gone: Vec<String>,
        /// Objects found by their ownership marks (recorded).
        adopted: Vec<String>,
        state_changed: bool,
        serial: u64,
        api_calls: BTreeMap<String, u64>,
    },
    /// `phoenix output ENV` (all of them, sensitive ones as `"(sensitive)"`).
    Outputs {
        outputs: BTreeMap<String, Json>,
    },
    /// `phoenix output ENV NAME`.
    Output {
        name: String,
        value: Json,
    },
    StateList {
        resources: Vec<StateEntry>,
    },
    StateResource {
        addr: String,
        /// As state records it (sensitive values sealed).
        resource: Json,
    },
    StateRemoved {
        removed: Vec<String>,
        serial: u64,
    },
    StateMoved {
        from: String,
        to: String,
        serial: u64,
    },
    Imported {
        addr: String,
        resource_type: String,
        id: String,
        serial: u64,
    },
    Unlocked {
        /// Who held the lock that was released; `null` if it was not locked.
        released: Option<String>,
    },
    /// A saved plan was written by `plan --out`.
    PlanSaved {
        path: String,
    },
    Version {
        version: String,
        providers: Vec<String>,
        state_backends: Vec<String>,
    },
}

/// An event as one line carries it: the event, its version and its time.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(title = "Phoenix event", description = "One line of `phoenix --json` output (NDJSON).")]
pub struct EventLine<'a> {
    #[serde(flatten)]
    pub event: &'a Event,
    /// The version of this contract (see `SCHEMA_VERSION`).
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    /// When it happened: RFC 3339, UTC, milliseconds.
    #[schemars(extend("format" = "date-time"))]
    pub ts: String,
}

impl Event {
    /// The event as one NDJSON line (no newline), stamped now.
    pub fn to_line(&self) -> String {
        self.to_line_at(Utc::now())
    }

    /// The event as one line, stamped `at`.
    pub fn to_line_at(&self, at: DateTime<Utc>) -> String {
        let line = EventLine { event: self, schema_version: SCHEMA_VERSION, ts: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) };
        // Every field is a plain tree of strings, numbers and maps with string keys.
        serde_json::to_string(&line).expect("events serialize")
    }

    /// The `plan` event of a plan (sensitive values sealed).
    pub fn plan(plan: &phoenix_core::plan::Plan, api_calls: BTreeMap<String, u64>) -> Self {
        let redacted = plan.redacted();
        Event::Plan {
            summary: redacted.summary().into(),
            changes: redacted
                .changes
                .iter()
                .filter_map(|c| {
                    Verb::of_change(c.action, c.adopt).map(|action| PlannedChange {
                        addr: c.addr.to_string(),
                        resource_type: c.type_name.clone(),
                        action,
                    })
                })
                .collect(),
            plan: serde_json::to_value(&redacted).unwrap_or_default(),
            api_calls,
        }
    }

    /// The `type` of this event.
    pub fn kind(&self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v["type"].as_str().map(str::to_string)).unwrap_or_default()
    }
}

impl From<&ApplyEvent> for Event {
    fn from(e: &ApplyEvent) -> Self {
        match e {
            ApplyEvent::Started { addr, op, type_name } => {
                Event::OperationStarted { addr: addr.to_string(), action: (*op).into(), resource_type: type_name.clone() }
            }
            ApplyEvent::Finished { addr, op, elapsed_ms, id } => {
                Event::OperationFinished { addr: addr.to_string(), action: (*op).into(), elapsed_ms: *elapsed_ms, id: id.clone() }
            }
            ApplyEvent::Failed { addr, op, error, elapsed_ms } => Event::OperationFailed {
                addr: addr.to_string(),
                action: (*op).into(),
                error: error.message.clone(),
                error_kind: error.kind,
                elapsed_ms: *elapsed_ms,
            },
            ApplyEvent::Skipped { addr, op, because } => {
                Event::OperationSkipped { addr: addr.to_string(), action: (*op).into(), because: because.to_string() }
            }
            ApplyEvent::Log { addr, line } => Event::Log { addr: addr.to_string(), line: line.clone() },
            ApplyEvent::Interrupted { in_flight } => Event::Interrupted { in_flight: *in_flight },
        }
    }
}

/// The JSON Schema of one line, as committed in `docs/events.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(EventLine<'static>);
    let mut text = serde_json::to_string_pretty(&schema).expect("schemas serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
