//! From definition and state to a [`Plan`]: refresh (read reality through the
//! providers, batched per provider), then a pure diff.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::addr::{Reference, ResourceAddr};
use crate::definition::{Definition, provider_of};
use crate::plan::{Action, AttrChange, Plan, PlannedChange, PlannedOutput};
use crate::provider::{AdoptRequest, Observed, ProviderError, RefreshItem, Registry};
use crate::state::{IntentOp, Ownership, ResourceState, StateDoc};
use crate::validate::dependency_graph;
use crate::value::{Attrs, Value, is_known, is_sealed, resolve_known, seal};

/// State as it is in reality, plus what refresh learned.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub state: StateDoc,
    /// Objects recorded in state that no longer exist.
    pub gone: BTreeSet<ResourceAddr>,
    /// Objects that differ from what was applied, with the attribute names.
    pub drifted: BTreeMap<ResourceAddr, Vec<String>>,
    /// Objects found by their ownership marks after an interrupted create.
    pub adopted: BTreeSet<ResourceAddr>,
    /// Provider calls made, by provider.
    pub calls: BTreeMap<String, usize>,
}

/// A refresh failure for one resource.
#[derive(Debug, Clone)]
pub struct RefreshError {
    pub addr: ResourceAddr,
    pub error: ProviderError,
}

/// Reads every object in `state` through its provider (one batch per provider,
/// providers in parallel) and adopts objects that interrupted creates left behind.
pub async fn refresh(state: &StateDoc, registry: &Registry) -> Result<Refreshed, Vec<RefreshError>> {
    let mut out = Refreshed {
        state: state.clone(),
        gone: BTreeSet::new(),
        drifted: BTreeMap::new(),
        adopted: BTreeSet::new(),
        calls: BTreeMap::new(),
    };
    let mut batches: BTreeMap<&str, Vec<RefreshItem>> = BTreeMap::new();
    for (addr, r) in &state.resources {
        batches.entry(provider_of(&r.type_name)).or_default().push(RefreshItem {
            addr: addr.clone(),
            type_name: r.type_name.clone(),
            inputs: r.inputs.clone(),
            outputs: r.outputs.clone(),
        });
    }
    let mut errors = Vec::new();
    let mut futures = Vec::new();
    for (name, items) in batches {
        let Some(provider) = registry.provider(name) else {
            errors.extend(items.into_iter().map(|i| RefreshError {
                addr: i.addr,
                error: ProviderError::permanent(format!("state holds a `{}` but provider `{name}` is not configured", i.type_name)),
            }));
            continue;
        };
        let provider = provider.clone();
        futures.push(async move {
            let addrs: Vec<ResourceAddr> = items.iter().map(|i| i.addr.clone()).collect();
            let results = provider.refresh(items).await;
            (name, addrs, results)
        });
    }
    for (name, addrs, results) in join_all(futures).await {
        *out.calls.entry(name.to_string()).or_default() += 1;
        for (addr, result) in addrs.into_iter().zip(results) {
            match result {
                Ok(None) => {
                    out.state.resources.remove(&addr);
                    out.gone.insert(addr);
                }
                Ok(Some(observed)) => apply_observed(&mut out, &addr, observed),
                Err(error) => errors.push(RefreshError { addr, error }),
            }
        }
    }
    // Creates that were announced but never recorded: find what they made.
    for (addr, intent) in &state.pending {
        if intent.op != IntentOp::Create || state.resources.contains_key(addr) {
            continue;
        }
        let Some(provider) = registry.provider_for(&intent.type_name) else { continue };
        let ownership = Ownership {
            environment: state.environment.clone(),
            instance: state.instance.clone(),
            resource: addr.clone(),
            lineage: state.lineage.clone(),
            expires_at: state.expires_at,
        };
        let req = AdoptRequest { addr: addr.clone(), type_name: intent.type_name.clone(), inputs: intent.inputs.clone(), ownership };
        *out.calls.entry(provider.name().to_string()).or_default() += 1;
        match provider.adopt(req).await {
            Ok(Some(observed)) => {
                out.state.resources.insert(
                    addr.clone(),
                    ResourceState {
                        type_name: intent.type_name.clone(),
                        inputs: intent.inputs.clone(),
                        outputs: observed.outputs.clone(),
                        depends_on: Vec::new(),
                        tainted: false,
                        create_before_destroy: false,
                    },
                );
                // Diff the object as it is, not as the create intended: a run killed
                // between a create and its follow-up calls (attach, attributes)
                // leaves an object that still needs them.
                apply_observed(&mut out, addr, observed);
                out.adopted.insert(addr.clone());
            }
            Ok(None) => {}
            Err(error) => errors.push(RefreshError { addr: addr.clone(), error }),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

fn apply_observed(out: &mut Refreshed, addr: &ResourceAddr, observed: Observed) {
    let Some(r) = out.state.resources.get_mut(addr) else { return };
    let mut drift = Vec::new();
    for (k, v) in observed.inputs {
        let stored = r.inputs.get(&k);
        if stored.is_some_and(is_sealed) {
            continue;
        }
        if stored != Some(&v) {
            drift.push(k.clone());
            r.inputs.insert(k, v);
        }
    }
    r.outputs = observed.outputs;
    if !drift.is_empty() {
        out.drifted.insert(addr.clone(), drift);
    }
}

async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::with_capacity(futures.len());
    // Poll all batches concurrently without spawning (providers are not 'static here).
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    set.extend(done.into_iter().flatten());
    set
}

/// What to plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Plan the destruction of everything in state.
    pub destroy: bool,
    /// Limit the plan to these resources and what they need (or, when
    /// destroying, what needs them).
    pub targets: Vec<ResourceAddr>,
    /// Leave these resources unchanged, and what needs them (or, when
    /// destroying, what they need): the complement of `targets`.
    pub excludes: Vec<ResourceAddr>,
    /// Replace these resources even where nothing differs.
    pub replace: Vec<ResourceAddr>,
}

/// The diff of a validated definition against refreshed state. Pure: no IO.
pub fn diff(def: &Definition, refreshed: &Refreshed, registry: &Registry, opts: &PlanOptions) -> Plan {
    let state = &refreshed.state;
    let salt = state.lineage.as_str();
    let mut changes: Vec<PlannedChange> = Vec::new();
    let mut planned: HashMap<ResourceAddr, Action> = HashMap::new();
    // What is known of each resource after apply: attribute -> value.
    let mut known: HashMap<ResourceAddr, Attrs> = HashMap::new();

    if !opts.destroy {
        let graph = dependency_graph(def);
        let order = graph.topo_order().unwrap_or_else(|| (0..graph.len()).collect());
        for i in order {
            let addr = graph.node(i).clone();
            let Some(config) = def.resources.get(&addr) else { continue };
            let schema = registry.schema(&config.type_name);
            let lookup = |r: &Reference| -> Option<Value> {
                known.get(&r.resource).and_then(|a| a.get(&r.attribute)).filter(|v| is_known(v) && !is_sealed(v)).cloned()
            };
            let mut desired: Attrs = config.attrs.iter().map(|(k, v)| (k.clone(), resolve_known(v, &lookup))).collect();
            if let Some(schema) = schema {
                for a in &schema.attrs {
                    if let Some(d) = &a.default
                        && !desired.contains_key(a.name)
                    {
                        desired.insert(a.name.to_string(), d.clone());
                    }
                }
            }
            let prior = state.resources.get(&addr);
            // The snapshot an object was restored from matters only when it is
            // made: a definition that no longer names it (the environment file
            // after a `phoenix restore`) keeps the object, not replaces it.
            let mut carried = None;
            if let Some(p) = prior
                && let Some(attr) = registry.recovery_for(&config.type_name).and_then(|r| r.restore_attr(&config.type_name))
                && desired.get(attr).is_none_or(Value::is_null)
                && let Some(was) = p.inputs.get(attr)
            {
                desired.insert(attr.to_string(), was.clone());
                carried = Some(attr);
            }
            // `ignore_changes`: once the object exists, the definition's value of these is not compared.
            let ignored = &config.lifecycle.ignore_changes;
            if let Some(p) = prior {
                for name in ignored {
                    match p.inputs.get(name) {
                        Some(was) if !is_sealed(was) => {
                            desired.insert(name.clone(), was.clone());
                        }
                        _ => {}
                    }
                }
            }
            let mut reasons = Vec::new();
            let mut attr_changes = Vec::new();
            let action = match prior {
                None => {
                    if refreshed.gone.contains(&addr) {
                        reasons.push("the object no longer exists (deleted outside Phoenix)".to_string());
                    }
                    Action::Create
                }
                Some(p) if p.type_name != config.type_name => {
                    reasons.push(format!("type changes from `{}` to `{}`", p.type_name, config.type_name));
                    Action::Replace
                }
                Some(p) => {
                    attr_changes = attribute_changes(schema, &p.inputs, &desired, salt);
                    attr_changes.retain(|c| !ignored.contains(&c.name));
                    if p.tainted {
                        reasons.push("tainted: its create failed part-way".to_string());
                        Action::Replace
                    } else if opts.replace.contains(&addr) {
                        reasons.push("replacement requested with --replace".to_string());
                        Action::Replace
                    } else if attr_changes.is_empty() {
                        Action::NoOp
                    } else if attr_changes.iter().any(|c| c.forces_replacement) || schema.is_some_and(|s| !s.update_in_place) {
                        Action::Replace
                    } else {
                        Action::Update
                    }
                }
            };
            // ...but an object replaced for another reason is made anew from the
            // definition, not from the old snapshot (a new AMI means that AMI).
            if action == Action::Replace
                && let Some(attr) = carried
            {
                desired.remove(attr);
            }
            if let Some(d) = refreshed.drifted.get(&addr) {
                let d: Vec<&str> = d.iter().filter(|a| !ignored.contains(a)).map(String::as_str).collect();
                if !d.is_empty() {
                    reasons.push(format!("drift: {} changed outside Phoenix", d.join(", ")));
                }
            }
            let adopt = refreshed.adopted.contains(&addr);
            if adopt {
                reasons.push("adopted: found by its ownership tags after an interrupted run".to_string());
            }
            // Record what dependents can know.
            let mut k: Attrs = desired.iter().filter(|(_, v)| is_known(v)).map(|(a, v)| (a.clone(), v.clone())).collect();
            if let Some(p) = prior {
                for (a, v) in &p.outputs {
                    // An update may change computed attributes, except those the schema calls stable.
                    let keep = match action {
                        Action::NoOp => true,
                        Action::Update => schema.and_then(|s| s.attr(a)).is_some_and(|s| s.stable),
                        _ => false,
                    };
                    if keep {
                        k.entry(a.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
            known.insert(addr.clone(), k);
            planned.insert(addr.clone(), action);
            let cbd = config.create_before_destroy.unwrap_or_else(|| schema.is_some_and(|s| s.create_before_destroy));
            changes.push(PlannedChange {
                addr: addr.clone(),
                type_name: config.type_name.clone(),
                action,
                reasons,
                changes: if action == Action::Create { creation_changes(schema, &desired) } else { attr_changes },
                desired: Some(desired),
                prior: prior.cloned(),
                depends_on: config.dependencies(),
                create_before_destroy: cbd,
                deposed: false,
                adopt,
                sensitive: sensitive_names(schema),
                loses_data: action == Action::Replace && prior.is_some_and(|p| holds_data(registry, p)),
            });
        }
    }
    // Deletions: everything in state that is no longer declared (or all of it when destroying).
    let mut deletes: Vec<PlannedChange> = Vec::new();
    for (addr, prior) in &state.resources {
        if !opts.destroy && def.resources.contains_key(addr) {
            continue;
        }
        let mut reasons = Vec::new();
        if !opts.destroy {
            reasons.push("no longer declared".to_string());
        }
        if refreshed.adopted.contains(addr) {
            reasons.push("adopted: found by its ownership tags after an interrupted run".to_string());
        }
        deletes.push(delete_change(addr, prior, registry, false, reasons));
    }
    for (addr, prior) in &state.deposed {
        deletes.push(delete_change(addr, prior, registry, true, vec!["old object of an interrupted replacement".into()]));
    }
    changes.extend(deletes);

    let stale_intents = state
        .pending
        .iter()
        .filter(|(a, i)| i.op == IntentOp::Create && !state.resources.contains_key(*a) && !planned.contains_key(*a))
        .map(|(a, _)| a.clone())
        .collect();
    let gone = refreshed.gone.iter().filter(|a| !planned.contains_key(*a)).cloned().collect();

    let mut plan = Plan {
        environment: state.environment.clone(),
        instance: state.instance.clone(),
        lineage: state.lineage.clone(),
        expires_at: state.expires_at,
        state_serial: state.serial,
        destroy: opts.destroy,
        changes,
        outputs: BTreeMap::new(),
        stale_intents,
        gone,
        prior_outputs: state.outputs.clone(),
    };
    if !opts.targets.is_empty() {
        restrict_to_targets(&mut plan, &opts.targets);
    }
    if !opts.excludes.is_empty() {
        exclude(&mut plan, &opts.excludes);
    }
    if !opts.destroy {
        let lookup =
            |r: &Reference| -> Option<Value> { known.get(&r.resource).and_then(|a| a.get(&r.attribute)).filter(|v| is_known(v)).cloned() };
        plan.outputs = def
            .outputs
            .iter()
            .map(|(name, o)| (name.clone(), PlannedOutput { value: resolve_known(&o.value, &lookup), sensitive: o.sensitive }))
            .collect();
    }
    plan
}

fn delete_change(addr: &ResourceAddr, prior: &ResourceState, registry: &Registry, deposed: bool, reasons: Vec<String>) -> PlannedChange {
    let schema = registry.schema(&prior.type_name);
    PlannedChange {
        addr: addr.clone(),
        type_name: prior.type_name.clone(),
        action: Action::Delete,
        reasons,
        changes: Vec::new(),
        desired: None,
        prior: Some(prior.clone()),
        depends_on: prior.depends_on.clone(),
        create_before_destroy: false,
        deposed,
        adopt: false,
        sensitive: sensitive_names(schema),
        // The deposed object of a replacement: its successor already exists.
        loses_data: !deposed && holds_data(registry, prior),
    }
}

/// Whether the object recorded as `prior` holds data that goes with it: what
/// a recovery point would snapshot (`recovery::stateful` decides the same).
fn holds_data(registry: &Registry, prior: &ResourceState) -> bool {
    registry
        .recovery_for(&prior.type_name)
        .is_some_and(|r| r.restore_attr(&prior.type_name).is_some() && r.is_stateful(&prior.type_name, &prior.inputs))
}

fn sensitive_names(schema: Option<&crate::schema::ResourceSchema>) -> Vec<String> {
    schema.map(|s| s.attrs.iter().filter(|a| a.sensitive).map(|a| a.name.to_string()).collect()).unwrap_or_default()
}

fn creation_changes(schema: Option<&crate::schema::ResourceSchema>, desired: &Attrs) -> Vec<AttrChange> {
    desired
        .iter()
        .map(|(k, v)| AttrChange {
            name: k.clone(),
            before: None,
            after: Some(v.clone()),
            forces_replacement: false,
            sensitive: schema.and_then(|s| s.attr(k)).is_some_and(|a| a.sensitive),
        })
        .collect()
}

/// Attribute-level differences between what was applied and what is desired.
fn attribute_changes(schema: Option<&crate::schema::ResourceSchema>, prior: &Attrs, desired: &Attrs, salt: &str) -> Vec<AttrChange> {
    let names: BTreeSet<&String> = prior.keys().chain(desired.keys()).collect();
    let mut out = Vec::new();
    for name in names {
        let attr = schema.and_then(|s| s.attr(name));
        if attr.is_some_and(|a| !a.configurable()) {
            continue;
        }
        let sensitive = attr.is_some_and(|a| a.sensitive);
        let before = prior.get(name);
        let after = desired.get(name);
        let same = match (before, after) {
            (Some(b), Some(a)) if sensitive && is_known(a) => *b == seal(a, salt),
            (Some(b), Some(a)) => is_known(a) && b == a,
            (None, None) => true,
            _ => false,
        };
        if same {
            continue;
        }
        out.push(AttrChange {
            name: name.clone(),
            before: before.cloned(),
            after: after.cloned(),
            forces_replacement: attr.is_some_and(|a| a.force_new),
            sensitive,
        });
    }
    out
}

/// Keeps the changes of the targets and what they need (when destroying: what needs them).
fn restrict_to_targets(plan: &mut Plan, targets: &[ResourceAddr]) {
    let keep = closure(plan, targets, plan.destroy);
    leave_unchanged(plan, |a| !keep.contains(a), "not targeted");
}

/// Leaves the excluded resources as they are, and with them what needs them
/// (their dependents would change against an object that does not). When
/// destroying, or when an excluded resource is itself to be deleted, what it
/// needs stays too: it cannot go while the excluded one remains.
fn exclude(plan: &mut Plan, excludes: &[ResourceAddr]) {
    let mut held = closure(plan, excludes, !plan.destroy);
    let deleted: Vec<ResourceAddr> =
        plan.changes.iter().filter(|c| held.contains(&c.addr) && c.action == Action::Delete).map(|c| c.addr.clone()).collect();
    held.extend(closure(plan, &deleted, false));
    leave_unchanged(plan, |a| held.contains(a), "excluded");
}

/// `start` and everything reachable from it: along what each change needs, or
/// (with `dependents`) along what needs it.
fn closure(plan: &Plan, start: &[ResourceAddr], dependents: bool) -> BTreeSet<ResourceAddr> {
    let mut edges: HashMap<&ResourceAddr, Vec<&ResourceAddr>> = HashMap::new();
    for c in &plan.changes {
        for d in &c.depends_on {
            if dependents {
                edges.entry(d).or_default().push(&c.addr);
            } else {
                edges.entry(&c.addr).or_default().push(d);
            }
        }
    }
    let mut seen = BTreeSet::new();
    let mut stack = start.to_vec();
    while let Some(a) = stack.pop() {
        if seen.insert(a.clone()) {
            stack.extend(edges.get(&a).into_iter().flatten().map(|x| (*x).clone()));
        }
    }
    seen
}

/// Turns the changes of `left` resources into no-ops that say why.
fn leave_unchanged(plan: &mut Plan, left: impl Fn(&ResourceAddr) -> bool, why: &str) {
    for c in &mut plan.changes {
        if left(&c.addr) && c.action != Action::NoOp {
            c.action = Action::NoOp;
            c.changes.clear();
            c.reasons = vec![why.to_string()];
            c.adopt = false;
        }
    }
    plan.changes.retain(|c| !(c.action == Action::NoOp && c.desired.is_none()));
}

/// The changes that would destroy or replace a resource declared with
/// `prevent_destroy = true`: a plan holding any of them must not be applied.
pub fn prevented_destroys<'a>(def: &Definition, plan: &'a Plan) -> Vec<&'a PlannedChange> {
    plan.changes
        .iter()
        .filter(|c| matches!(c.action, Action::Delete | Action::Replace) && !c.deposed)
        .filter(|c| def.resources.get(&c.addr).is_some_and(|r| r.lifecycle.prevent_destroy))
        .collect()
}

#[cfg(test)]
mod tests;
