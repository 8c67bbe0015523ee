//! Realises a [`Plan`]: walks the operation graph on tokio with bounded
//! parallelism, starting each operation the moment everything it needs is done.
//!
//! Every outcome is journaled (durably) before any dependent starts, so a run
//! killed at any point leaves state that the next run can finish from. A failed
//! operation skips its dependents; independent branches carry on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::addr::{Reference, ResourceAddr};
use crate::graph::Dag;
use crate::plan::{Action, Plan, PlannedChange, seal_sensitive};
use crate::provider::{CreateRequest, DeleteRequest, ErrorClass, ErrorKind, LogSink, ProviderError, Registry, UpdateRequest};
use crate::state::{Intent, IntentOp, Journal, JournalError, JournalRecord, Ownership, ResourceState};
use crate::value::{Attrs, Value, is_known, is_sealed, resolve_known, seal, unescape};

/// One provider operation in the apply graph. A replacement is two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Create,
    Update,
    /// Destroys the old object (of a delete, or of a replacement).
    Destroy,
    /// Records an object found by its ownership marks.
    Adopt,
}

impl std::fmt::Display for OpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OpKind::Create => "create",
            OpKind::Update => "update",
            OpKind::Destroy => "destroy",
            OpKind::Adopt => "adopt",
        })
    }
}

/// A node of the operation graph: an operation on a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpNode {
    pub addr: ResourceAddr,
    pub kind: OpKind,
}

impl std::fmt::Display for OpNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.addr, self.kind)
    }
}

/// Why an operation failed, kept typed from the provider to the printer:
/// `--json` carries `error` (the message) and `error_kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpError {
    #[serde(rename = "error")]
    pub message: String,
    #[serde(rename = "error_kind")]
    pub kind: ErrorKind,
}

impl OpError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { message: message.into(), kind }
    }
    /// What to do about it, where the kind says (credentials, throttling…).
    pub fn hint(&self) -> Option<&'static str> {
        self.kind.hint()
    }
}

impl From<ProviderError> for OpError {
    fn from(e: ProviderError) -> Self {
        Self { message: e.message, kind: e.kind }
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What happened to an operation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed {
        #[serde(flatten)]
        error: OpError,
    },
    /// Not run because something it needs failed.
    Skipped {
        because: ResourceAddr,
    },
    /// Not started because the run was interrupted.
    Cancelled,
}

/// Events for progress displays and `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ApplyEvent {
    Started {
        addr: ResourceAddr,
        op: OpKind,
        #[serde(rename = "type")]
        type_name: String,
    },
    Finished {
        addr: ResourceAddr,
        op: OpKind,
        elapsed_ms: u64,
        /// What names the object to a person (see [`object_id`]): the one made,
        /// updated or adopted, or the one destroyed. Absent when it has none.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    Failed {
        addr: ResourceAddr,
        op: OpKind,
        #[serde(flatten)]
        error: OpError,
        elapsed_ms: u64,
    },
    Skipped {
        addr: ResourceAddr,
        op: OpKind,
        because: ResourceAddr,
    },
    Log {
        addr: ResourceAddr,
        line: String,
    },
    Interrupted {
        in_flight: usize,
    },
}

/// Receives [`ApplyEvent`]s. The executor never prints.
pub trait Reporter: Send + Sync {
    fn event(&self, event: &ApplyEvent);
}

/// A reporter that drops everything.
pub struct NullReporter;
impl Reporter for NullReporter {
    fn event(&self, _event: &ApplyEvent) {}
}

pub struct ApplyOptions {
    /// Operations in flight at once.
    pub parallelism: usize,
    /// Becomes `true` to stop scheduling; in-flight operations finish and are recorded.
    pub cancel: watch::Receiver<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpResult {
    pub addr: ResourceAddr,
    pub op: OpKind,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub results: Vec<OpResult>,
    pub interrupted: bool,
    /// Output values (sensitive ones sealed).
    pub outputs: std::collections::BTreeMap<String, Value>,
    pub elapsed_ms: u64,
}

impl ApplyReport {
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| matches!(r.outcome, Outcome::Failed { .. })).count()
    }
    pub fn skipped(&self) -> usize {
        self.results.iter().filter(|r| matches!(r.outcome, Outcome::Skipped { .. } | Outcome::Cancelled)).count()
    }
    pub fn succeeded(&self) -> usize {
        self.results.iter().filter(|r| r.outcome == Outcome::Succeeded).count()
    }
    pub fn is_success(&self) -> bool {
        !self.interrupted && self.results.iter().all(|r| r.outcome == Outcome::Succeeded)
    }
}

/// A plan that cannot be executed as given.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the plan's operations form a cycle: {0}")]
    Cycle(String),
    #[error("could not record to state: {0}")]
    Journal(JournalError),
    #[error("an operation panicked: {0}")]
    Panicked(String),
}

/// Builds the operation graph of a plan (edges point at what an operation needs).
///
/// - creates and updates come after the creates and updates of what they need;
/// - a destroy comes after the destroys of what needed the old object, and
///   after updates that stop using it;
/// - a delete-before-create replacement destroys, then creates; a
///   create-before-destroy one creates, moves dependents over, then destroys.
pub fn operation_graph(plan: &Plan) -> Dag<OpNode> {
    let mut dag = Dag::new();
    let mut ops: HashMap<&ResourceAddr, Vec<OpKind>> = HashMap::new();
    let node = |addr: &ResourceAddr, kind| OpNode { addr: addr.clone(), kind };
    for c in &plan.changes {
        let kinds = match (c.action, c.adopt) {
            (Action::Create, _) => vec![OpKind::Create],
            (Action::Update, _) => vec![OpKind::Update],
            (Action::Replace, _) => vec![OpKind::Destroy, OpKind::Create],
            (Action::Delete, _) => vec![OpKind::Destroy],
            (Action::NoOp, true) => vec![OpKind::Adopt],
            (Action::NoOp, false) => vec![],
        };
        for k in &kinds {
            // Deposed objects share their resource's address: keep them apart.
            dag.add_node(node(&deposed_key(c, *k), *k));
        }
        ops.entry(&c.addr).or_default().extend(kinds);
    }
    let has = |addr: &ResourceAddr, kind: OpKind| ops.get(addr).is_some_and(|k| k.contains(&kind));
    // Who (in the old state) needed each address, for destroy ordering.
    let mut old_dependents: HashMap<&ResourceAddr, Vec<&PlannedChange>> = HashMap::new();
    let mut new_dependents: HashMap<&ResourceAddr, Vec<&PlannedChange>> = HashMap::new();
    for c in &plan.changes {
        if let Some(p) = &c.prior {
            for d in &p.depends_on {
                old_dependents.entry(d).or_default().push(c);
            }
        }
        if c.desired.is_some() {
            for d in &c.depends_on {
                new_dependents.entry(d).or_default().push(c);
            }
        }
    }
    for c in &plan.changes {
        let builds = [OpKind::Create, OpKind::Update, OpKind::Adopt];
        for kind in builds {
            if !has(&c.addr, kind) || c.deposed {
                continue;
            }
            for d in &c.depends_on {
                for dk in builds {
                    if has(d, dk) {
                        dag.add_edge(&node(&c.addr, kind), &node(d, dk));
                    }
                }
            }
        }
        if has(&c.addr, OpKind::Destroy) {
            let me = node(&deposed_key(c, OpKind::Destroy), OpKind::Destroy);
            for dep in old_dependents.get(&c.addr).into_iter().flatten() {
                if dep.addr == c.addr && !c.deposed && !dep.deposed {
                    continue;
                }
                if matches!(dep.action, Action::Delete | Action::Replace) && has(&dep.addr, OpKind::Destroy) {
                    let other = node(&deposed_key(dep, OpKind::Destroy), OpKind::Destroy);
                    if other != me {
                        dag.add_edge(&me, &other);
                    }
                }
                // A deleted object goes after dependents stop using it. A replaced one does
                // not wait: its dependents are updated to the new object after it is created.
                if dep.action == Action::Update && c.action == Action::Delete {
                    dag.add_edge(&me, &node(&dep.addr, OpKind::Update));
                }
            }
            if c.action == Action::Replace {
                if c.create_before_destroy {
                    dag.add_edge(&me, &node(&c.addr, OpKind::Create));
                    for dep in new_dependents.get(&c.addr).into_iter().flatten() {
                        for dk in [OpKind::Create, OpKind::Update] {
                            if has(&dep.addr, dk) && dep.addr != c.addr {
                                dag.add_edge(&me, &node(&dep.addr, dk));
                            }
                        }
                    }
                } else {
                    dag.add_edge(&node(&c.addr, OpKind::Create), &me);
                }
            }
        }
    }
    dag
}

/// Deposed objects are destroyed under a distinct address so that they never
/// collide with the current object of the same name.
fn deposed_key(c: &PlannedChange, kind: OpKind) -> ResourceAddr {
    if c.deposed && kind == OpKind::Destroy { ResourceAddr::new_unchecked(format!("{}~deposed", c.addr)) } else { c.addr.clone() }
}

fn real_addr(op_addr: &ResourceAddr) -> ResourceAddr {
    ResourceAddr::new_unchecked(op_addr.as_str().trim_end_matches("~deposed"))
}

struct Shared {
    registry: Registry,
    journal: Arc<dyn Journal>,
    reporter: Arc<dyn Reporter>,
    environment: String,
    instance: Option<String>,
    salt: String,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a finished operation hands to its dependents: the resource's attributes.
type Produced = Option<Attrs>;

/// Applies `plan`. Returns `Err` only when the plan cannot be walked at all or
/// state cannot be recorded; provider failures are reported per operation.
pub async fn apply(
    plan: &Plan,
    registry: &Registry,
    journal: Arc<dyn Journal>,
    reporter: Arc<dyn Reporter>,
    mut opts: ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let started = Instant::now();
    let dag = operation_graph(plan);
    if let Some(cycle) = dag.find_cycle() {
        return Err(ApplyError::Cycle(cycle.iter().map(ToString::to_string).collect::<Vec<_>>().join(" -> ")));
    }
    for addr in &plan.stale_intents {
        journal.record(JournalRecord::ClearIntent { addr: addr.clone() }).await.map_err(ApplyError::Journal)?;
    }
    for addr in &plan.gone {
        journal.record(JournalRecord::Remove { addr: addr.clone() }).await.map_err(ApplyError::Journal)?;
    }
    let shared = Arc::new(Shared {
        registry: registry.clone(),
        journal: journal.clone(),
        reporter: reporter.clone(),
        environment: plan.environment.clone(),
        instance: plan.instance.clone(),
        salt: plan.lineage.clone(),
        expires_at: plan.expires_at,
    });
    let changes: HashMap<&ResourceAddr, &PlannedChange> = plan.changes.iter().filter(|c| !c.deposed).map(|c| (&c.addr, c)).collect();
    let deposed: HashMap<&ResourceAddr, &PlannedChange> = plan.changes.iter().filter(|c| c.deposed).map(|c| (&c.addr, c)).collect();

    // Attribute values of every resource, for resolving references: unchanged
    // resources are known now, the others as their operations finish.
    let mut values: HashMap<ResourceAddr, Attrs> = HashMap::new();
    for c in &plan.changes {
        if c.deposed {
            continue;
        }
        if let (Action::NoOp | Action::Update, Some(p)) = (c.action, &c.prior) {
            let mut v = p.outputs.clone();
            for (k, x) in c.desired.iter().flatten() {
                if is_known(x) {
                    v.insert(k.clone(), x.clone());
                }
            }
            for (k, x) in &p.inputs {
                v.entry(k.clone()).or_insert_with(|| x.clone());
            }
            values.insert(c.addr.clone(), v);
        }
    }

    let n = dag.len();
    let mut waiting: Vec<usize> = (0..n).map(|i| dag.needs(i).len()).collect();
    let mut ready: std::collections::VecDeque<usize> = (0..n).filter(|i| waiting[*i] == 0).collect();
    let mut results: Vec<Option<OpResult>> = vec![None; n];
    let mut failed_root: Vec<Option<ResourceAddr>> = vec![None; n];
    let mut in_flight = JoinSet::new();
    let mut interrupted = *opts.cancel.borrow();
    let parallelism = opts.parallelism.max(1);
    let mut journal_error: Option<JournalError> = None;

    loop {
        while !interrupted && journal_error.is_none() && in_flight.len() < parallelism {
            let Some(i) = ready.pop_front() else { break };
            let op = dag.node(i).clone();
            if let Some(root) = failed_root[i].clone() {
                let ev = ApplyEvent::Skipped { addr: real_addr(&op.addr), op: op.kind, because: root.clone() };
                reporter.event(&ev);
                results[i] = Some(OpResult {
                    addr: real_addr(&op.addr),
                    op: op.kind,
                    outcome: Outcome::Skipped { because: root.clone() },
                    elapsed_ms: 0,
                });
                release(&dag, i, &mut waiting, &mut ready, &mut failed_root, Some(root));
                continue;
            }
            let change = if op.addr.as_str().ends_with("~deposed") { deposed[&real_addr(&op.addr)] } else { changes[&op.addr] };
            let task = prepare(change, op.kind, &values);
            let shared = shared.clone();
            // A destroy produces nothing: what it destroyed is named by its prior state.
            let prior_id = task.prior.as_ref().and_then(|p| object_id(&p.outputs));
            in_flight.spawn(async move {
                let t = Instant::now();
                let r = run_op(&shared, task).await;
                (i, r, t.elapsed(), prior_id)
            });
        }
        if in_flight.is_empty() {
            break;
        }
        tokio::select! {
            joined = in_flight.join_next() => {
                let Some(joined) = joined else { break };
                let (i, result, elapsed, prior_id) = match joined {
                    Ok(x) => x,
                    Err(e) => return Err(ApplyError::Panicked(e.to_string())),
                };
                let op = dag.node(i).clone();
                let addr = real_addr(&op.addr);
                let elapsed_ms = elapsed.as_millis() as u64;
                match result {
                    Ok(produced) => {
                        let id = produced.as_ref().and_then(object_id).or(prior_id);
                        if let Some(attrs) = produced { values.insert(addr.clone(), attrs); }
                        reporter.event(&ApplyEvent::Finished { addr: addr.clone(), op: op.kind, elapsed_ms, id });
                        results[i] = Some(OpResult { addr, op: op.kind, outcome: Outcome::Succeeded, elapsed_ms });
                        release(&dag, i, &mut waiting, &mut ready, &mut failed_root, None);
                    }
                    Err(OpFailure::Provider(error)) => {
                        reporter.event(&ApplyEvent::Failed { addr: addr.clone(), op: op.kind, error: error.clone(), elapsed_ms });
                        results[i] = Some(OpResult { addr: addr.clone(), op: op.kind, outcome: Outcome::Failed { error }, elapsed_ms });
                        release(&dag, i, &mut waiting, &mut ready, &mut failed_root, Some(addr));
                    }
                    Err(OpFailure::Journal(error)) => {
                        // State can no longer be recorded: start nothing more.
                        let failed = OpError::new(ErrorKind::Unexpected, format!("could not record to state: {error}"));
                        results[i] = Some(OpResult { addr, op: op.kind, outcome: Outcome::Failed { error: failed }, elapsed_ms });
                        journal_error = Some(error);
                    }
                }
            }
            changed = opts.cancel.changed(), if !interrupted => {
                if changed.is_err() || *opts.cancel.borrow() {
                    interrupted = true;
                    reporter.event(&ApplyEvent::Interrupted { in_flight: in_flight.len() });
                }
            }
        }
    }
    if let Some(e) = journal_error {
        return Err(ApplyError::Journal(e));
    }
    let results: Vec<OpResult> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                let op = dag.node(i);
                OpResult { addr: real_addr(&op.addr), op: op.kind, outcome: Outcome::Cancelled, elapsed_ms: 0 }
            })
        })
        .collect();
    let complete = results.iter().all(|r| r.outcome == Outcome::Succeeded) && !interrupted;
    let mut outputs = std::collections::BTreeMap::new();
    if complete && !plan.destroy {
        let lookup = |r: &Reference| values.get(&r.resource).and_then(|a| a.get(&r.attribute)).cloned();
        for (name, o) in &plan.outputs {
            let v = unescape(&resolve_known(&o.value, &lookup));
            outputs.insert(name.clone(), if o.sensitive { seal(&v, &plan.lineage) } else { v });
        }
    }
    if complete || plan.destroy {
        journal.record(JournalRecord::Outputs { outputs: outputs.clone() }).await.map_err(ApplyError::Journal)?;
    }
    Ok(ApplyReport { results, interrupted, outputs, elapsed_ms: started.elapsed().as_millis() as u64 })
}

/// Marks node `i` done and readies what was waiting on it, carrying failures downstream.
fn release(
    dag: &Dag<OpNode>,
    i: usize,
    waiting: &mut [usize],
    ready: &mut std::collections::VecDeque<usize>,
    failed_root: &mut [Option<ResourceAddr>],
    failure: Option<ResourceAddr>,
) {
    for &d in dag.needed_by(i) {
        if let Some(root) = &failure {
            failed_root[d].get_or_insert_with(|| root.clone());
        }
        waiting[d] -= 1;
        if waiting[d] == 0 {
            ready.push_back(d);
        }
    }
}

/// An operation with its inputs resolved, ready to run without the graph.
struct Task {
    addr: ResourceAddr,
    kind: OpKind,
    type_name: String,
    inputs: Result<Attrs, OpError>,
    prior: Option<ResourceState>,
    depends_on: Vec<ResourceAddr>,
    create_before_destroy: bool,
    deposed: bool,
    replacing: bool,
    changed: Vec<String>,
}

fn prepare(change: &PlannedChange, kind: OpKind, values: &HashMap<ResourceAddr, Attrs>) -> Task {
    let lookup = |r: &Reference| values.get(&r.resource).and_then(|a| a.get(&r.attribute)).filter(|v| !is_sealed(v)).cloned();
    let inputs = match &change.desired {
        Some(d) if matches!(kind, OpKind::Create | OpKind::Update) => {
            let resolved: Attrs = d.iter().map(|(k, v)| (k.clone(), resolve_known(v, &lookup))).collect();
            match resolved.iter().find(|(_, v)| !is_known(v)) {
                Some((k, v)) => Err(OpError::new(
                    ErrorKind::InvalidInput,
                    format!("attribute `{k}` is still unknown after its dependencies finished: {v}"),
                )),
                None => Ok(resolved.iter().map(|(k, v)| (k.clone(), unescape(v))).collect()),
            }
        }
        _ => Ok(Attrs::new()),
    };
    Task {
        addr: change.addr.clone(),
        kind,
        type_name: change.type_name.clone(),
        inputs,
        prior: change.prior.clone(),
        depends_on: change.depends_on.clone(),
        create_before_destroy: change.create_before_destroy,
        deposed: change.deposed,
        replacing: change.action == Action::Replace,
        changed: change.changes.iter().map(|c| c.name.clone()).collect(),
    }
}

enum OpFailure {
    Provider(OpError),
    Journal(JournalError),
}

impl From<ProviderError> for OpFailure {
    fn from(e: ProviderError) -> Self {
        OpFailure::Provider(e.into())
    }
}

async fn record(shared: &Shared, rec: JournalRecord) -> Result<(), OpFailure> {
    shared.journal.record(rec).await.map_err(OpFailure::Journal)
}

async fn run_op(shared: &Shared, task: Task) -> Result<Produced, OpFailure> {
    let Some(provider) = shared.registry.provider_for(&task.type_name).cloned() else {
        return Err(OpFailure::Provider(OpError::new(ErrorKind::Unsupported, format!("no provider for `{}`", task.type_name))));
    };
    let ownership = Ownership {
        environment: shared.environment.clone(),
        instance: shared.instance.clone(),
        resource: task.addr.clone(),
        lineage: shared.salt.clone(),
        expires_at: shared.expires_at,
    };
    let reporter = shared.reporter.clone();
    let log: LogSink = Arc::new(move |addr: &ResourceAddr, line: &str| {
        reporter.event(&ApplyEvent::Log { addr: addr.clone(), line: line.to_string() });
    });
    let schema = shared.registry.schema(&task.type_name);
    shared.reporter.event(&ApplyEvent::Started { addr: task.addr.clone(), op: task.kind, type_name: task.type_name.clone() });
    match task.kind {
        OpKind::Adopt => {
            let prior = task.prior.clone().expect("an adopted object has a prior state");
            let merged = merged(&prior.inputs, &prior.outputs);
            let resource = ResourceState { depends_on: task.depends_on.clone(), ..prior };
            record(shared, JournalRecord::Put { addr: task.addr.clone(), resource }).await?;
            Ok(Some(merged))
        }
        OpKind::Create => {
            let inputs = task.inputs.map_err(OpFailure::Provider)?;
            let sealed = seal_sensitive(schema, &inputs, &shared.salt);
            if task.replacing && task.create_before_destroy {
                record(shared, JournalRecord::Depose { addr: task.addr.clone() }).await?;
            }
            let adoptable = schema.is_none_or(|s| s.adoptable);
            if adoptable {
                let intent =
                    Intent { op: IntentOp::Create, type_name: task.type_name.clone(), inputs: sealed.clone(), at: chrono::Utc::now() };
                record(shared, JournalRecord::Intent { addr: task.addr.clone(), intent }).await?;
            }
            let idempotency_token = idempotency_token(&ownership);
            let req = CreateRequest {
                addr: task.addr.clone(),
                type_name: task.type_name.clone(),
                inputs: inputs.clone(),
                ownership,
                idempotency_token,
                log,
            };
            let state = |outputs: Attrs, tainted: bool| ResourceState {
                type_name: task.type_name.clone(),
                inputs: sealed.clone(),
                outputs,
                depends_on: task.depends_on.clone(),
                tainted,
                create_before_destroy: task.create_before_destroy,
            };
            match provider.create(req).await {
                Ok(outputs) => {
                    let merged = merged(&inputs, &outputs);
                    record(shared, JournalRecord::Put { addr: task.addr.clone(), resource: state(outputs, false) }).await?;
                    Ok(Some(merged))
                }
                Err(e) => {
                    if let Some(outputs) = e.created.clone() {
                        record(shared, JournalRecord::Put { addr: task.addr.clone(), resource: state(outputs, true) }).await?;
                    } else if adoptable && e.class() == ErrorClass::Permanent {
                        // The provider is sure nothing was made: nothing to adopt later.
                        record(shared, JournalRecord::ClearIntent { addr: task.addr.clone() }).await?;
                    }
                    Err(OpFailure::from(e))
                }
            }
        }
        OpKind::Update => {
            let inputs = task.inputs.map_err(OpFailure::Provider)?;
            let prior = task.prior.clone().expect("an update has a prior state");
            let req = UpdateRequest {
                addr: task.addr.clone(),
                type_name: task.type_name.clone(),
                prior_inputs: prior.inputs.clone(),
                prior_outputs: prior.outputs.clone(),
                inputs: inputs.clone(),
                changed: task.changed.clone(),
                ownership,
                log,
            };
            let outputs = provider.update(req).await.map_err(OpFailure::from)?;
            let resource = ResourceState {
                type_name: task.type_name.clone(),
                inputs: seal_sensitive(schema, &inputs, &shared.salt),
                outputs: outputs.clone(),
                depends_on: task.depends_on.clone(),
                tainted: false,
                create_before_destroy: prior.create_before_destroy,
            };
            record(shared, JournalRecord::Put { addr: task.addr.clone(), resource }).await?;
            Ok(Some(merged(&inputs, &outputs)))
        }
        OpKind::Destroy => {
            let prior = task.prior.clone().expect("a destroy has a prior state");
            let req = DeleteRequest {
                addr: task.addr.clone(),
                type_name: prior.type_name.clone(),
                inputs: prior.inputs.clone(),
                outputs: prior.outputs.clone(),
                ownership,
                log,
            };
            provider.delete(req).await.map_err(OpFailure::from)?;
            let deposed_now = task.deposed || (task.replacing && task.create_before_destroy);
            let rec = if deposed_now {
                JournalRecord::RemoveDeposed { addr: task.addr.clone() }
            } else {
                JournalRecord::Remove { addr: task.addr.clone() }
            };
            record(shared, rec).await?;
            Ok(None)
        }
    }
}

/// A token unique to one create call (64 hex characters fit every API's limit).
fn idempotency_token(ownership: &Ownership) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(ownership.key().as_bytes());
    h.update(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.finalize().iter().take(24).map(|b| format!("{b:02x}")).collect()
}

/// What names an object to a person, from its attributes: its `id` (an EC2
/// instance id, a GCE resource id), else a process's `pid` as `pid 4242`; the
/// same choice `phoenix status` makes for its id column.
pub fn object_id(attrs: &Attrs) -> Option<String> {
    let shown = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let id = attrs.get("id").filter(|v| is_known(v) && !is_sealed(v)).and_then(shown);
    id.or_else(|| attrs.get("pid").filter(|v| is_known(v)).and_then(shown).filter(|p| p != "0").map(|p| format!("pid {p}")))
}

fn merged(inputs: &Attrs, outputs: &Attrs) -> Attrs {
    let mut m = inputs.clone();
    m.extend(outputs.iter().map(|(k, v)| (k.clone(), v.clone())));
    m
}

/// Elapsed time helper for reports.
pub fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
