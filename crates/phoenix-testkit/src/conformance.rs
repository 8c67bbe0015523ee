//! The kind conformance suite: the lifecycle the engine relies on, checked
//! for one kind against its provider's real emulator.
//!
//! A kind supplies only fixtures ([`Case`]): a valid definition, in-place
//! updates, a force-new change, and the objects it needs. The suite drives
//! the provider through the same contract the executor uses, and asks the
//! engine's own planner (refresh, adoption of pending creates, diff) what it
//! would do at each step, so a kind passes only if `phoenix` itself would see
//! it behave:
//!
//! 1. create; the read-back plans no change (nothing reported as drift);
//! 2. each update plans an in-place update of exactly the attributes it
//!    changes, is applied, and plans no change after;
//! 3. the force-new change plans a replacement, which is carried out (in the
//!    order the schema says) and plans no change after;
//! 4. `list_owned` finds the object with its owner, or under its container
//!    (as the case says);
//! 5. delete; delete again succeeds; the read says gone (for kinds that
//!    leave an object);
//! 6. a run killed after the create reached the API: the next refresh adopts
//!    the object from the announced intent, and does not make a second;
//! 7. (through the fault proxy, when the case names its create request) the
//!    create's answer is lost: the provider's retry or the next run's adoption
//!    ends with exactly one object;
//! 8. stateful kinds: a snapshot is taken and a new object restored from it.

use std::collections::BTreeMap;
use std::sync::Arc;

use phoenix_core::ResourceAddr;
use phoenix_core::definition::{Definition, Lifecycle, ResourceConfig};
use phoenix_core::plan::{Action, seal_sensitive};
use phoenix_core::planner::{self, PlanOptions, Refreshed};
use phoenix_core::provider::{CreateRequest, DeleteRequest, ErrorKind, OwnedListing, Provider, Registry, SnapshotRequest, UpdateRequest};
use phoenix_core::schema::ResourceSchema;
use phoenix_core::state::{Intent, IntentOp, Ownership, ResourceState, StateDoc};
use phoenix_core::value::{Attrs, Value};

use crate::fault_proxy::{FaultPlan, FaultProxy};

/// The environment every conformance object is owned by.
pub const ENVIRONMENT: &str = "conformance";

/// The lineage of this process's objects: its own, so a concurrent run of the
/// suite (another clone's `tests/run`) never adopts or counts them.
fn lineage() -> &'static str {
    static LINEAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINEAGE.get_or_init(|| format!("conformance-{}", std::process::id()))
}

/// One kind's fixtures.
#[derive(Debug, Clone)]
pub struct Case {
    pub type_name: &'static str,
    /// Objects the definitions refer to, made first (in order) and deleted
    /// last: `(name, type, inputs)`. Inputs of later needs and of the case
    /// refer to earlier needs' attributes as `"${name.attr}"` (a whole string).
    pub needs: Vec<(&'static str, &'static str, serde_json::Value)>,
    /// A valid definition.
    pub create: serde_json::Value,
    /// Definitions that each differ from the one before only in attributes
    /// the kind updates in place.
    pub updates: Vec<serde_json::Value>,
    /// A definition that differs in a force-new attribute.
    pub replace: Option<serde_json::Value>,
    /// How `list_owned` (for `gc`) lists this kind's objects.
    pub listed: Listed,
    /// Inputs given a new value (`name` → `name-k`) for each object the
    /// suite makes again after a delete, for APIs that keep a deleted object's
    /// name reserved for a while.
    pub fresh_names: Vec<&'static str>,
    /// The API request that makes the object (`CreateVpc`, `POST */networks`),
    /// for the lost-answer case through a [`FaultProxy`].
    pub create_request: Option<&'static str>,
}

impl Case {
    pub fn new(type_name: &'static str, create: serde_json::Value) -> Self {
        Self {
            type_name,
            needs: Vec::new(),
            create,
            updates: Vec::new(),
            replace: None,
            listed: Listed::Owned,
            fresh_names: Vec::new(),
            create_request: None,
        }
    }
    pub fn need(mut self, name: &'static str, type_name: &'static str, inputs: serde_json::Value) -> Self {
        self.needs.push((name, type_name, inputs));
        self
    }
    pub fn update(mut self, inputs: serde_json::Value) -> Self {
        self.updates.push(inputs);
        self
    }
    pub fn replace(mut self, inputs: serde_json::Value) -> Self {
        self.replace = Some(inputs);
        self
    }
    pub fn not_listable(mut self) -> Self {
        self.listed = Listed::Not;
        self
    }
    pub fn listed(mut self, listed: Listed) -> Self {
        self.listed = listed;
        self
    }
    pub fn fresh_names(mut self, inputs: &[&'static str]) -> Self {
        self.fresh_names = inputs.to_vec();
        self
    }
    /// `inputs` with the [`fresh_names`](Self::fresh_names) suffixed.
    fn renamed(&self, inputs: &serde_json::Value, suffix: &str) -> serde_json::Value {
        let mut v = inputs.clone();
        for name in &self.fresh_names {
            if let Some(serde_json::Value::String(s)) = v.get(*name) {
                v[*name] = serde_json::Value::String(format!("{s}-{suffix}"));
            }
        }
        v
    }
    pub fn lost_answer_of(mut self, request: &'static str) -> Self {
        self.create_request = Some(request);
        self
    }
}

/// How `gc` finds a kind's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// Listed with the object's own ownership marks.
    Owned,
    /// Carries no marks: listed with the ownership of the named need (its
    /// container: a DNS zone, a volume), which `container` names by id.
    Under(&'static str),
    /// Never listed on its own: it goes when the named need does (a scaling
    /// policy with its group).
    GoesWith(&'static str),
    /// The provider says it cannot list the kind (`gc` reports it as not swept).
    Not,
}

/// The provider under test: configured directly against its emulator and,
/// for the lost-answer case, a second one configured through a proxy.
pub struct Harness {
    pub provider: Arc<dyn Provider>,
    pub proxied: Option<(Arc<dyn Provider>, Arc<FaultProxy>)>,
}

/// What a run checked, for the test's own assertions and its output.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<String>,
}

impl Report {
    fn passed(&mut self, check: impl Into<String>) {
        self.checks.push(check.into());
    }
    pub fn has(&self, prefix: &str) -> bool {
        self.checks.iter().any(|c| c.starts_with(prefix))
    }
}

/// The engine's view of one environment made of the case's objects.
struct World<'a> {
    harness: &'a Harness,
    registry: Registry,
    state: StateDoc,
    def: Definition,
    /// Needs' attributes for `${name.attr}`.
    known: BTreeMap<String, Attrs>,
}

/// Runs every check of the suite for `case`; panics, naming the kind and
/// the step, on the first failure. Everything made is deleted on success.
pub async fn run(harness: &Harness, case: &Case) -> Report {
    let mut report = Report::default();
    let mut registry = Registry::new();
    registry.register(harness.provider.clone());
    let schema = registry
        .schema(case.type_name)
        .unwrap_or_else(|| panic!("provider `{}` has no kind `{}`", harness.provider.name(), case.type_name))
        .clone();
    let mut w = World {
        harness,
        registry,
        state: StateDoc::new(ENVIRONMENT, None, lineage().into()),
        def: Definition::default(),
        known: BTreeMap::new(),
    };
    let t = case.type_name;
    for (name, type_name, inputs) in &case.needs {
        let need_schema = w.registry.schema(type_name).unwrap_or_else(|| panic!("{t}: its need's kind `{type_name}` is unknown")).clone();
        let inputs = w.desired(&need_schema, inputs);
        let addr = addr(name);
        w.declare(&addr, type_name, &inputs);
        let outputs = w.create(&addr, type_name, &inputs).await.unwrap_or_else(|e| panic!("{t}: making its need `{name}`: {e}"));
        w.known.insert(name.to_string(), merged(&inputs, &outputs));
    }
    let subject = addr(&format!("{}-subject", short(t)));

    // 1. Create; read back; no change.
    let inputs = w.desired(&schema, &case.create);
    w.declare(&subject, t, &inputs);
    let outputs = w.create(&subject, t, &inputs).await.unwrap_or_else(|e| panic!("{t}: create: {e}"));
    let made_id = id_of(&outputs);
    w.record(&subject, t, &schema, &inputs, outputs);
    w.expect_no_change(&subject, "after create").await;
    report.passed("create, read back, no change");

    // 1b. `phoenix import` of its id reads the object with no prior inputs.
    if let Some(id) = made_id.as_str() {
        match w.harness.provider.import(&subject, t, id).await {
            Err(e) if e.kind == ErrorKind::Unsupported => {}
            found => {
                let found = found.unwrap_or_else(|e| panic!("{t}: import of `{id}`: {e}"));
                let found = found.unwrap_or_else(|| panic!("{t}: import of `{id}` found nothing"));
                assert_eq!(id_of(&found.outputs), made_id, "{t}: import read another object");
                for (k, v) in &found.inputs {
                    if let Some(want) = inputs.get(k).filter(|_| !schema.attr(k).is_some_and(|a| a.sensitive)) {
                        assert_eq!(v, want, "{t}: import reads `{k}` other than it was made");
                    }
                }
                report.passed("imported by id");
            }
        }
    }

    // 2. In-place updates.
    for (i, next) in case.updates.iter().enumerate() {
        let next = w.desired(&schema, next);
        w.declare(&subject, t, &next);
        let changed = w.expect_action(&subject, Action::Update, &format!("update {}", i + 1)).await;
        let prior = w.state.resources[&subject].clone();
        let out = w
            .harness
            .provider
            .update(UpdateRequest {
                addr: subject.clone(),
                type_name: t.into(),
                prior_inputs: prior.inputs.clone(),
                prior_outputs: prior.outputs.clone(),
                inputs: next.clone(),
                changed: changed.clone(),
                ownership: ownership(&subject),
                log: silent(),
            })
            .await
            .unwrap_or_else(|e| panic!("{t}: update {} of {changed:?}: {e}", i + 1));
        w.record(&subject, t, &schema, &next, out);
        w.expect_no_change(&subject, &format!("after update {} of {changed:?}", i + 1)).await;
        report.passed(format!("update in place of {changed:?}"));
    }

    // 3. A force-new change replaces.
    if let Some(next) = &case.replace {
        let next = w.desired(&schema, next);
        w.declare(&subject, t, &next);
        w.expect_action(&subject, Action::Replace, "the force-new change").await;
        let old = w.state.resources[&subject].clone();
        if schema.create_before_destroy {
            let out = w.create(&subject, t, &next).await.unwrap_or_else(|e| panic!("{t}: replacement create: {e}"));
            w.delete(&subject, t, &old).await.unwrap_or_else(|e| panic!("{t}: replacement delete of the old object: {e}"));
            w.record(&subject, t, &schema, &next, out);
        } else {
            w.delete(&subject, t, &old).await.unwrap_or_else(|e| panic!("{t}: replacement delete: {e}"));
            let out = w.create(&subject, t, &next).await.unwrap_or_else(|e| panic!("{t}: replacement create: {e}"));
            w.record(&subject, t, &schema, &next, out);
        }
        w.expect_no_change(&subject, "after the replacement").await;
        report.passed("force-new change replaces");
    }

    // 4. Listed for gc with its owner.
    w.expect_listed(&subject, t, case.listed, 1).await;
    report.passed(format!("listed for gc: {:?}", case.listed));

    // 8. Stateful: snapshot, restore into a new object.
    if let Some(recovery) = w.harness.provider.recovery()
        && let Some(restore_input) = recovery.restore_attr(t)
        && recovery.is_stateful(t, &w.state.resources[&subject].inputs)
    {
        w.snapshot_and_restore(&subject, t, &schema, restore_input).await;
        report.passed("snapshot and restore");
    }

    // 5. Delete, again, gone.
    let last = w.state.resources[&subject].clone();
    w.delete(&subject, t, &last).await.unwrap_or_else(|e| panic!("{t}: delete: {e}"));
    w.delete(&subject, t, &last).await.unwrap_or_else(|e| panic!("{t}: a second delete should succeed: {e}"));
    // Kinds that leave no object (commands, checks, values) have nothing to read back.
    if schema.adoptable {
        let refreshed = w.refresh().await;
        assert!(refreshed.gone.contains(&subject), "{t}: after delete, the read should say gone");
    }
    w.state.resources.remove(&subject);
    report.passed("delete, delete again, gone");

    // 6. A run killed after the create reached the API adopts on rerun.
    let inputs = w.desired(&schema, &case.renamed(&case.create, "k"));
    w.declare(&subject, t, &inputs);
    if schema.adoptable {
        let made = w.create(&subject, t, &inputs).await.unwrap_or_else(|e| panic!("{t}: create (killed run): {e}"));
        let adopted = w.adopt_pending(&subject, t, &schema, &inputs).await;
        let adopted = adopted.unwrap_or_else(|| panic!("{t}: the rerun should adopt what the killed run made"));
        assert_eq!(id_of(&adopted), id_of(&made), "{t}: adopted a different object than the one made");
        w.expect_listed(&subject, t, case.listed, 1).await;
        w.expect_no_change(&subject, "after adoption").await;
        let r = w.state.resources.remove(&subject).expect("adopted");
        w.delete(&subject, t, &r).await.unwrap_or_else(|e| panic!("{t}: delete after adoption: {e}"));
        report.passed("killed after create: adopted on rerun");
    } else {
        assert!(w.adopt_pending(&subject, t, &schema, &inputs).await.is_none(), "{t}: not adoptable, yet something was adopted");
    }

    // 7. The create's answer is lost.
    if let (Some(request), Some((proxied, proxy))) = (case.create_request, &w.harness.proxied) {
        let inputs = w.desired(&schema, &case.renamed(&case.create, "l"));
        w.declare(&subject, t, &inputs);
        proxy.set_plan(FaultPlan::none().with_drop_first(request));
        proxy.reset_counts();
        let result = proxied
            .create(CreateRequest {
                addr: subject.clone(),
                type_name: t.into(),
                inputs: inputs.clone(),
                ownership: ownership(&subject),
                idempotency_token: token(&subject, "lost"),
                log: silent(),
            })
            .await;
        let counts = proxy.counts();
        proxy.set_plan(FaultPlan::none());
        assert_eq!(counts.dropped_responses, 1, "{t}: no `{request}` request went through the proxy: {counts:?}");
        let adopted = w.adopt_pending(&subject, t, &schema, &inputs).await;
        let kept = match result {
            // The provider's own retry found (or re-made idempotently) the object.
            Ok(out) => {
                let adopted = adopted.unwrap_or_else(|| panic!("{t}: the object the create returned is not found by its marks"));
                assert_eq!(id_of(&adopted), id_of(&out), "{t}: a lost answer made a second object");
                out
            }
            Err(_) => adopted.unwrap_or_else(|| panic!("{t}: the create's answer was lost and the rerun adopted nothing")),
        };
        w.expect_listed(&subject, t, case.listed, 1).await;
        let r = w.state.resources.remove(&subject).unwrap_or_else(|| ResourceState {
            type_name: t.into(),
            inputs: inputs.clone(),
            outputs: kept,
            depends_on: Vec::new(),
            tainted: false,
            create_before_destroy: false,
        });
        w.delete(&subject, t, &r).await.unwrap_or_else(|e| panic!("{t}: delete after the lost answer: {e}"));
        report.passed("lost create answer: one object");
    }

    // The needs, last made first.
    for (name, type_name, _) in case.needs.iter().rev() {
        let a = addr(name);
        let r = w.state.resources.remove(&a).expect("a need is recorded");
        w.delete(&a, type_name, &r).await.unwrap_or_else(|e| panic!("{t}: deleting its need `{name}`: {e}"));
    }
    report
}

impl World<'_> {
    /// `value` with `${need.attr}` strings replaced by the needs' attributes.
    fn resolve(&self, value: &serde_json::Value) -> Attrs {
        match substitute(value, &self.known) {
            Value::Object(map) => map.into_iter().collect(),
            other => panic!("a fixture's inputs must be a table, not {other}"),
        }
    }

    /// The inputs as the planner would hand them to the provider: resolved, defaults filled in.
    fn desired(&self, schema: &ResourceSchema, value: &serde_json::Value) -> Attrs {
        let mut inputs = self.resolve(value);
        for a in &schema.attrs {
            if let Some(d) = &a.default {
                inputs.entry(a.name.to_string()).or_insert_with(|| d.clone());
            }
        }
        inputs
    }

    fn declare(&mut self, addr: &ResourceAddr, type_name: &str, inputs: &Attrs) {
        let deps = self.state.resources.keys().filter(|a| *a != addr).cloned().collect();
        self.def.resources.insert(
            addr.clone(),
            ResourceConfig {
                addr: addr.clone(),
                type_name: type_name.into(),
                attrs: inputs.clone(),
                depends_on: deps,
                create_before_destroy: None,
                lifecycle: Lifecycle::default(),
            },
        );
    }

    async fn create(&mut self, addr: &ResourceAddr, type_name: &str, inputs: &Attrs) -> Result<Attrs, String> {
        let out = self
            .harness
            .provider
            .create(CreateRequest {
                addr: addr.clone(),
                type_name: type_name.into(),
                inputs: inputs.clone(),
                ownership: ownership(addr),
                idempotency_token: token(addr, "create"),
                log: silent(),
            })
            .await
            .map_err(|e| e.to_string())?;
        if !self.state.resources.contains_key(addr) {
            let schema = self.registry.schema(type_name).cloned();
            self.state.resources.insert(
                addr.clone(),
                ResourceState {
                    type_name: type_name.into(),
                    inputs: seal_sensitive(schema.as_ref(), inputs, lineage()),
                    outputs: out.clone(),
                    depends_on: Vec::new(),
                    tainted: false,
                    create_before_destroy: false,
                },
            );
        }
        Ok(out)
    }

    fn record(&mut self, addr: &ResourceAddr, type_name: &str, schema: &ResourceSchema, inputs: &Attrs, outputs: Attrs) {
        self.state.resources.insert(
            addr.clone(),
            ResourceState {
                type_name: type_name.into(),
                inputs: seal_sensitive(Some(schema), inputs, lineage()),
                outputs,
                depends_on: Vec::new(),
                tainted: false,
                create_before_destroy: false,
            },
        );
    }

    async fn delete(&self, addr: &ResourceAddr, type_name: &str, r: &ResourceState) -> Result<(), String> {
        self.harness
            .provider
            .delete(DeleteRequest {
                addr: addr.clone(),
                type_name: type_name.into(),
                inputs: r.inputs.clone(),
                outputs: r.outputs.clone(),
                ownership: ownership(addr),
                log: silent(),
            })
            .await
            .map_err(|e| e.to_string())
    }

    async fn refresh(&self) -> Refreshed {
        match planner::refresh(&self.state, &self.registry).await {
            Ok(r) => r,
            Err(errors) => {
                panic!("refresh failed: {}", errors.iter().map(|e| format!("{}: {}", e.addr, e.error)).collect::<Vec<_>>().join("; "))
            }
        }
    }

    /// Refreshes, records what was read, and returns the planned action with the changed attributes.
    async fn plan(&mut self, subject: &ResourceAddr, step: &str) -> (Action, Vec<String>) {
        let refreshed = self.refresh().await;
        let t = &self.def.resources[subject].type_name;
        assert!(!refreshed.gone.contains(subject), "{t}: {step}: the read says the object is gone");
        if let Some(drift) = refreshed.drifted.get(subject) {
            let state = &refreshed.state.resources[subject];
            let shown: Vec<String> = drift.iter().map(|a| format!("{a} = {}", state.inputs.get(a).unwrap_or(&Value::Null))).collect();
            panic!("{t}: {step}: the read back differs from what was applied: {}", shown.join(", "));
        }
        let plan = planner::diff(&self.def, &refreshed, &self.registry, &PlanOptions::default());
        self.state = refreshed.state;
        let change = plan.changes.iter().find(|c| &c.addr == subject).expect("the subject is planned");
        for other in plan.changes.iter().filter(|c| &c.addr != subject) {
            assert_eq!(other.action, Action::NoOp, "{t}: {step}: its need `{}` changes too: {:?}", other.addr, other.changes);
        }
        (change.action, change.changes.iter().map(|a| a.name.clone()).collect())
    }

    async fn expect_no_change(&mut self, subject: &ResourceAddr, step: &str) {
        let (action, changed) = self.plan(subject, step).await;
        let t = &self.def.resources[subject].type_name;
        assert_eq!(action, Action::NoOp, "{t}: {step}: the plan is not empty: {action} of {changed:?}");
    }

    async fn expect_action(&mut self, subject: &ResourceAddr, want: Action, step: &str) -> Vec<String> {
        let (action, changed) = self.plan(subject, step).await;
        let t = &self.def.resources[subject].type_name;
        assert_eq!(action, want, "{t}: {step}: planned {action} of {changed:?}");
        assert!(!changed.is_empty(), "{t}: {step}: the fixture changes nothing");
        changed
    }

    /// Refreshes a state where `subject` was announced but never recorded;
    /// the adopted object (recorded in state) or `None`.
    async fn adopt_pending(&mut self, subject: &ResourceAddr, t: &str, schema: &ResourceSchema, inputs: &Attrs) -> Option<Attrs> {
        self.state.resources.remove(subject);
        let sealed = seal_sensitive(Some(schema), inputs, lineage());
        self.state
            .pending
            .insert(subject.clone(), Intent { op: IntentOp::Create, type_name: t.into(), inputs: sealed, at: chrono::Utc::now() });
        let refreshed = self.refresh().await;
        self.state.pending.clear();
        if !refreshed.adopted.contains(subject) {
            return None;
        }
        let r = refreshed.state.resources[subject].clone();
        self.state.resources.insert(subject.clone(), r.clone());
        Some(r.outputs)
    }

    /// Holds `list_owned` to `listed`: `count` objects of this kind found
    /// under the owner it names (so a second object made by a lost answer shows).
    async fn expect_listed(&self, subject: &ResourceAddr, t: &str, listed: Listed, count: usize) {
        // A provider without the leak-listing facet sweeps none of its kinds.
        let listing = match self.harness.provider.leaks() {
            Some(leaks) => leaks.list_owned().await.unwrap_or_else(|e| panic!("{t}: list_owned: {e}")),
            None => OwnedListing { objects: Vec::new(), unsupported: vec![t.to_string()] },
        };
        let unsupported = listing.unsupported.iter().any(|u| u == t);
        let mine = |owner: &ResourceAddr| {
            listing
                .objects
                .iter()
                .filter(|o| o.type_name == t && o.ownership.resource == *owner && o.ownership.lineage == lineage())
                .collect::<Vec<_>>()
        };
        match listed {
            Listed::Not => assert!(unsupported, "{t}: the case says it is not listed, yet the provider does not report it unsupported"),
            Listed::Owned => {
                assert!(!unsupported, "{t}: the provider cannot list it");
                assert_eq!(mine(subject).len(), count, "{t}: list_owned should find {count} object(s) owned by `{subject}`");
            }
            Listed::Under(need) => {
                assert!(!unsupported, "{t}: the provider cannot list it");
                let container = self.known[need].get("id").cloned().unwrap_or(Value::Null);
                let found = mine(&addr(need));
                assert_eq!(found.len(), count, "{t}: list_owned should find {count} object(s) under `{need}`");
                for o in found {
                    assert_eq!(o.container.as_ref().map(|c| Value::String(c.clone())), Some(container.clone()), "{t}: its container");
                }
            }
            Listed::GoesWith(need) => {
                assert!(!unsupported, "{t}: the provider cannot list it");
                assert!(self.known.contains_key(need), "{t}: no need `{need}`");
                assert!(mine(subject).is_empty() && mine(&addr(need)).is_empty(), "{t}: listed on its own, though it goes with `{need}`");
            }
        }
    }

    async fn snapshot_and_restore(&mut self, subject: &ResourceAddr, t: &str, schema: &ResourceSchema, restore_input: &str) {
        let r = self.state.resources[subject].clone();
        let p = self.harness.provider.clone();
        let recovery = p.recovery().expect("a stateful kind's provider has the recovery facet");
        let snap = recovery
            .snapshot(SnapshotRequest {
                addr: subject.clone(),
                type_name: t.into(),
                inputs: r.inputs.clone(),
                outputs: r.outputs.clone(),
                ownership: ownership(subject),
                point: "point-conformance".into(),
                log: silent(),
            })
            .await
            .unwrap_or_else(|e| panic!("{t}: snapshot: {e}"));
        let restored = addr(&format!("{}-restored", short(t)));
        let mut inputs: Attrs = self.def.resources[subject].attrs.clone();
        for (k, v) in inputs.iter_mut() {
            // Names unique per namespace: the restored copy needs its own.
            if schema.attr(k).is_some_and(|a| a.force_new)
                && let Value::String(s) = v
                && (k == "name" || k.ends_with("identifier"))
            {
                *v = Value::String(format!("{s}-r"));
            }
        }
        inputs.insert(restore_input.to_string(), Value::String(snap.id.clone()));
        let out = self.create(&restored, t, &inputs).await.unwrap_or_else(|e| panic!("{t}: restore from {}: {e}", snap.id));
        let r2 = self.state.resources.remove(&restored).expect("recorded");
        assert_eq!(r2.outputs, out);
        self.delete(&restored, t, &r2).await.unwrap_or_else(|e| panic!("{t}: delete the restored copy: {e}"));
        recovery.delete_snapshot(t, &snap).await.unwrap_or_else(|e| panic!("{t}: delete snapshot {}: {e}", snap.id));
    }
}

fn substitute(value: &serde_json::Value, known: &BTreeMap<String, Attrs>) -> Value {
    match value {
        serde_json::Value::String(s) if s.starts_with("${") && s.ends_with('}') => {
            let (name, attr) = s[2..s.len() - 1].split_once('.').unwrap_or_else(|| panic!("`{s}`: write ${{need.attr}}"));
            known
                .get(name)
                .and_then(|a| a.get(attr))
                .cloned()
                .unwrap_or_else(|| panic!("`{s}`: no need `{name}` with attribute `{attr}` made before"))
        }
        serde_json::Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, known)).collect()),
        serde_json::Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), substitute(v, known))).collect()),
        other => other.clone(),
    }
}

fn merged(inputs: &Attrs, outputs: &Attrs) -> Attrs {
    let mut all = inputs.clone();
    all.extend(outputs.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

fn id_of(outputs: &Attrs) -> Value {
    ["id", "self_link", "arn", "pid", "path", "name"]
        .iter()
        .find_map(|k| outputs.get(*k).cloned())
        .unwrap_or_else(|| Value::Object(outputs.clone().into_iter().collect()))
}

/// `aws.vpc` → `vpc`, `data` → `data`: short, valid in names of every provider.
fn short(type_name: &str) -> String {
    type_name.rsplit('.').next().unwrap_or(type_name).replace('_', "-")
}

fn addr(name: &str) -> ResourceAddr {
    ResourceAddr::parse(name).unwrap_or_else(|e| panic!("`{name}`: {e}"))
}

fn ownership(addr: &ResourceAddr) -> Ownership {
    Ownership { environment: ENVIRONMENT.into(), instance: None, resource: addr.clone(), lineage: lineage().into(), expires_at: None }
}

/// Unique to each create call, as the executor makes them: an API that
/// deduplicates by it (GCE's `requestId`) would otherwise answer a later
/// create with the first one's finished operation.
fn token(addr: &ResourceAddr, step: &str) -> String {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("conformance-{addr}-{step}-{}-{n}", std::process::id())
}

fn silent() -> phoenix_core::provider::LogSink {
    Arc::new(|_, _| {})
}
