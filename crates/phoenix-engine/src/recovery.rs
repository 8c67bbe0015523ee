//! Disaster recovery: recovery points (a snapshot of every stateful object
//! plus the definition to rebuild from) are taken, listed and deleted here,
//! and restores are planned here and run through [`crate::run`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use futures::stream::{self, StreamExt};
use phoenix_core::definition::Definition;
use phoenix_core::plan::Plan;
use phoenix_core::planner::{PlanOptions, diff, refresh};
use phoenix_core::provider::{LogSink, ProviderError, Registry};
use phoenix_core::recovery::{self, RecoveryPoint, Restored, SnapshotRecord, restore_definition, sealed_definition};
use phoenix_core::state::StateDoc;
use phoenix_core::value::{Value, seal};
use phoenix_core::{Attrs, ResourceAddr};
use phoenix_state::RecoveryStore;

use crate::env::Env;
use crate::event::Event;
use crate::exit::{Exit, Failure};
use crate::report::Reporter;
use crate::run::{RunHooks, RunOptions, RunReport};

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Error, anyhow!("{e}"))
}

/// What `phoenix snapshot` is asked to do.
pub struct TakeOptions {
    /// Refuse when the definition differs from what state holds.
    pub strict: bool,
    pub parallelism: usize,
    /// Copy every snapshot to these regions too (all or nothing).
    pub copy_to_regions: Vec<String>,
    /// Keep only the newest N points.
    pub keep: Option<usize>,
    pub lock_timeout: std::time::Duration,
}

/// A recovery point taken.
pub struct TakeReport {
    pub point: RecoveryPoint,
    /// Older points removed by `keep`.
    pub removed: Vec<String>,
    /// Where it is stored.
    pub store: String,
    pub api_calls: std::collections::BTreeMap<String, u64>,
}

impl TakeReport {
    pub fn event(&self) -> Event {
        Event::SnapshotFinished {
            point: (&self.point).into(),
            removed: self.removed.clone(),
            store: self.store.clone(),
            api_calls: self.api_calls.clone(),
        }
    }
}

/// Log lines of a snapshot in progress, as `log` events.
fn log_sink(reporter: Arc<dyn Reporter>) -> LogSink {
    Arc::new(move |addr: &ResourceAddr, line: &str| reporter.event(&Event::Log { addr: addr.to_string(), line: line.to_string() }))
}

/// `phoenix snapshot ENV`: snapshots every stateful object under the state
/// lock and stores the point with the definition to rebuild from.
pub async fn take(env: &Env, opts: &TakeOptions, reporter: Arc<dyn Reporter>) -> Result<TakeReport, Failure> {
    let started = Instant::now();
    let run_id = uuid::Uuid::new_v4().to_string();
    // Held while snapshotting: no `up` changes the objects half-way.
    let (lock, state) = env.lock_state("snapshot", &run_id, opts.lock_timeout, reporter.as_ref()).await?;
    env.configure_providers(&state)?;
    definition_matches_state(env, &state, opts.strict, reporter.as_ref())?;
    let store = env.recovery_store().await?;
    let now = chrono::Utc::now();
    let id = RecoveryPoint::new_id(now);
    let stateful = recovery::stateful(&state, &env.registry);
    if stateful.is_empty() {
        reporter.note("no stateful objects (volumes, databases) in state: the recovery point holds the definition only");
    }
    reporter.event(&Event::SnapshotStarted { id: id.clone(), environment: env.loaded.name.clone(), snapshots: stateful.len() });
    let parallelism = opts.parallelism;
    let mut snapshots = match recovery::take(&state, &env.registry, &id, parallelism, log_sink(reporter.clone())).await {
        Ok(s) => s,
        Err((taken, failed)) => {
            discard(&env.registry, &taken, reporter.as_ref()).await;
            let lines: Vec<String> = failed.iter().map(|(a, e)| format!("  {a}: {}", e.message)).collect();
            return Err(fail(format!("no recovery point was taken; these snapshots failed:\n{}", lines.join("\n"))));
        }
    };
    for region in &opts.copy_to_regions {
        if let Err(e) = copy_all(&env.registry, &mut snapshots, region, parallelism).await {
            discard(&env.registry, &snapshots, reporter.as_ref()).await;
            return Err(fail(format!("no recovery point was taken; copying to {region} failed:\n{e}")));
        }
    }
    let point = RecoveryPoint {
        id: id.clone(),
        environment: env.loaded.name.clone(),
        instance: env.loaded.instance.clone(),
        created_at: now,
        took_ms: started.elapsed().as_millis() as u64,
        lineage: state.lineage.clone(),
        serial: state.serial,
        variables: sealed_variables(env, &state.lineage),
        definition: sealed_definition(&env.loaded.definition, &env.registry, &state.lineage),
        snapshots,
    };
    if let Err(e) = store.save(&point).await {
        discard(&env.registry, &point.snapshots, reporter.as_ref()).await;
        return Err(fail(format!("the recovery point could not be stored at {}: {e}", store.location())));
    }
    drop(lock);
    let removed = match opts.keep {
        Some(keep) => retain(env, store.as_ref(), keep, reporter.as_ref()).await?,
        None => Vec::new(),
    };
    Ok(TakeReport { point, removed, store: store.location(), api_calls: env.api_calls() })
}

/// Declared variables, with any whose value ends up in a sensitive attribute sealed.
fn sealed_variables(env: &Env, salt: &str) -> Attrs {
    let mut secrets = BTreeSet::new();
    for r in env.loaded.definition.resources.values() {
        let Some(schema) = env.registry.schema(&r.type_name) else { continue };
        for (k, v) in &r.attrs {
            if schema.attr(k).is_some_and(|a| a.sensitive) {
                secrets.insert(v.to_string());
                if let Some(s) = v.as_str() {
                    secrets.insert(Value::String(s.to_string()).to_string());
                }
            }
        }
    }
    env.loaded.vars.iter().map(|(k, v)| (k.clone(), if secrets.contains(&v.to_string()) { seal(v, salt) } else { v.clone() })).collect()
}

async fn copy_all(registry: &Registry, snapshots: &mut [SnapshotRecord], region: &str, parallelism: usize) -> Result<(), String> {
    let jobs = snapshots.iter().enumerate().map(|(i, s)| {
        let provider = registry.provider_for(&s.type_name).cloned();
        let (type_name, snap) = (s.type_name.clone(), s.snapshot.clone());
        async move {
            let recovery = provider
                .as_ref()
                .and_then(|p| p.recovery())
                .ok_or_else(|| ProviderError::permanent(format!("no provider snapshots `{type_name}`")))?;
            recovery.copy_snapshot(&type_name, &snap, region).await.map(|c| (i, c))
        }
    });
    let results: Vec<_> = stream::iter(jobs).buffer_unordered(parallelism.max(1)).collect().await;
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok((i, copy)) => {
                snapshots[i].copies.insert(region.to_string(), copy);
            }
            Err(e) => errors.push(e.message),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("\n")) }
}

/// Deletes snapshots (and their copies); failures are reported, not fatal.
async fn discard(registry: &Registry, snapshots: &[SnapshotRecord], reporter: &dyn Reporter) -> Vec<String> {
    let mut failed = Vec::new();
    for s in snapshots {
        let Some(recovery) = registry.recovery_for(&s.type_name) else { continue };
        for snap in std::iter::once(&s.snapshot).chain(s.copies.values()) {
            if let Err(e) = recovery.delete_snapshot(&s.type_name, snap).await {
                failed.push(format!("{} ({}): {}", snap.id, s.addr, e.message));
            }
        }
    }
    for f in &failed {
        reporter.note(&format!("could not delete snapshot {f}; delete it by hand"));
    }
    failed
}

/// Keeps the newest `keep` points of the environment; older ones go with their snapshots.
async fn retain(env: &Env, store: &dyn RecoveryStore, keep: usize, reporter: &dyn Reporter) -> Result<Vec<String>, Failure> {
    let points = store.list(&env.loaded.name).await.map_err(fail)?;
    let excess = points.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for p in points.into_iter().take(excess) {
        if discard(&env.registry, &p.snapshots, reporter).await.is_empty() {
            store.delete(&p.environment, &p.id).await.map_err(fail)?;
            removed.push(p.id);
        }
    }
    Ok(removed)
}

pub async fn find(store: &dyn RecoveryStore, env: &str, id: &str) -> Result<RecoveryPoint, Failure> {
    store
        .get(env, id)
        .await
        .map_err(fail)?
        .ok_or_else(|| fail(format!("no recovery point `{id}` of {env} at {} (see `phoenix snapshot list {env}`)", store.location())))
}

/// The environment's recovery points, oldest first.
pub async fn list(env: &Env) -> Result<Vec<RecoveryPoint>, Failure> {
    let store = env.recovery_store().await?;
    store.list(&env.loaded.name).await.map_err(fail)
}

/// One recovery point of the environment.
pub async fn get(env: &Env, id: &str) -> Result<RecoveryPoint, Failure> {
    let store = env.recovery_store().await?;
    find(store.as_ref(), &env.loaded.name, id).await
}

/// Deletes a recovery point and its snapshots; `approve` sees it first. A
/// point whose snapshots cannot all be deleted is kept.
pub async fn delete(
    env: &Env,
    id: &str,
    reporter: &dyn Reporter,
    approve: &dyn Fn(&RecoveryPoint) -> Result<(), Failure>,
) -> Result<RecoveryPoint, Failure> {
    let store = env.recovery_store().await?;
    let point = find(store.as_ref(), &env.loaded.name, id).await?;
    approve(&point)?;
    env.configure_providers(&StateDoc::new(&env.loaded.name, None, point.lineage.clone()))?;
    let failed = discard(&env.registry, &point.snapshots, reporter).await;
    if !failed.is_empty() {
        return Err(fail(format!("recovery point {id} kept: {} snapshot(s) could not be deleted", failed.len())));
    }
    store.delete(&env.loaded.name, id).await.map_err(fail)?;
    Ok(point)
}

/// `phoenix restore ENV --from ID`: finds the point, then runs `up` with it
/// (to `region`/`zone` when given).
pub async fn restore(
    env: &Env,
    from: &str,
    region: Option<&str>,
    zone: Option<&str>,
    opts: RunOptions,
    hooks: &dyn RunHooks,
) -> Result<RunReport, Failure> {
    let point = get(env, from).await?;
    if let Some(r) = region {
        check_move(&env.registry, &point, r, zone)?;
    }
    let spec = RestoreSpec { point, region: region.map(str::to_string), zone: zone.map(str::to_string) };
    crate::run::run(env, RunOptions { restore: Some(spec), ..opts }, hooks).await
}

/// A recovery point keeps the definition to rebuild from: one rendered with
/// other variables than the last `up` would rebuild something else. Compared
/// with state as recorded (no API call): a warning, or with `--strict` a refusal.
fn definition_matches_state(env: &Env, state: &StateDoc, strict: bool, reporter: &dyn Reporter) -> Result<(), Failure> {
    use phoenix_core::planner::Refreshed;
    let recorded = Refreshed {
        state: state.clone(),
        gone: Default::default(),
        drifted: Default::default(),
        adopted: Default::default(),
        calls: Default::default(),
    };
    let plan = diff(&env.loaded.definition, &recorded, &env.registry, &PlanOptions::default());
    let differ: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action != phoenix_core::plan::Action::NoOp)
        .map(|c| format!("{} would be {}d", c.addr, c.action))
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    let what = format!(
        "the definition (with these variables) differs from what state holds, so the recovery point would record a definition the environment does not have:\n  {}",
        differ.join("\n  ")
    );
    if strict {
        return Err(Failure::new(Exit::Error, anyhow!("{what}\nnothing was taken; pass the same --var/--var-file as the last `up`")));
    }
    reporter.note(&format!("{what}\n(pass the same --var/--var-file as the last `up`; --strict refuses)"));
    Ok(())
}

/// What `up` needs to restore: the point and where.
pub struct RestoreSpec {
    pub point: RecoveryPoint,
    pub region: Option<String>,
    /// With `region`: the zone GCP objects are made in.
    pub zone: Option<String>,
}

/// Refuses a move to `region`/`zone` that a provider of the point's objects
/// cannot make as asked (GCE needs a zone of the region).
pub fn check_move(registry: &Registry, point: &RecoveryPoint, region: &str, zone: Option<&str>) -> Result<(), Failure> {
    for name in registry.provider_names() {
        let Some(placement) = registry.provider(name).and_then(|p| p.placement()) else { continue };
        let objects: Vec<ResourceAddr> =
            point.definition.resources.iter().filter(|(_, r)| r.provider_name() == name).map(|(a, _)| a.clone()).collect();
        placement.check_move(&objects, region, zone).map_err(|e| fail(format!("recovery point {}: {}", point.id, e.message)))?;
    }
    Ok(())
}

/// Places a restore's definition: beside the original (another instance),
/// names unique across regions come from the environment as rendered now;
/// moved to `region`/`zone`, objects placed by their own attributes move.
fn place(def: &mut Definition, current: &Definition, registry: &Registry, beside_original: bool, to: Option<(&str, &str)>) {
    for (addr, r) in def.resources.iter_mut() {
        let Some(placement) = registry.provider(r.provider_name()).and_then(|p| p.placement()) else { continue };
        if beside_original {
            for attr in placement.renamed_beside_original() {
                if let Some(v @ Value::String(_)) = current.resources.get(addr).and_then(|c| c.attrs.get(*attr)) {
                    r.attrs.insert(attr.to_string(), v.clone());
                }
            }
        }
        if let Some((region, zone)) = to {
            placement.relocate(r, region, zone);
        }
    }
}

/// Records in `state` the settings that place each provider's objects in
/// `region` (and `zone`), as the providers say them. A state whose objects
/// already live elsewhere is refused: one state, one place.
pub fn override_region(state: &mut StateDoc, registry: &Registry, region: &str, zone: Option<&str>) -> Result<(), Failure> {
    let settings: Vec<(&str, Vec<(&str, String)>)> = registry
        .provider_names()
        .filter_map(|name| Some((name, registry.provider(name)?.placement()?.settings(region, zone))))
        .filter(|(_, values)| !values.is_empty())
        .collect();
    for (provider, values) in settings {
        let o = state.provider_overrides.entry(provider.to_string()).or_default();
        for (key, want) in &values {
            match o.get(*key).and_then(Value::as_str) {
                Some(have) if have != want => {
                    return Err(fail(format!(
                        "this state's {provider} objects live in {have}; restore into {want} as another instance (--instance)"
                    )));
                }
                None if !state.resources.is_empty() => {
                    return Err(fail(format!(
                        "this state already holds objects in the environment's own region; restore into {region} as another instance (--instance)"
                    )));
                }
                _ => {}
            }
        }
        for (key, want) in values {
            o.insert(key.into(), Value::String(want));
        }
    }
    Ok(())
}

fn not_restorable(spec: &RestoreSpec, errors: &[phoenix_core::recovery::RestoreError]) -> Failure {
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    Failure::new(Exit::Invalid, anyhow!("recovery point {} cannot be restored as asked:\n{}", spec.point.id, lines.join("\n")))
}

/// Refuses, before any lock or state is taken, a restore that cannot be done
/// as asked (no copies in `--region`, a secret the environment does not
/// give): planned as if everything were missing, the case that needs most.
/// Copies to a region are all or nothing, so nothing that exists changes the answer.
pub fn check_restorable(env: &Env, spec: &RestoreSpec) -> Result<(), Failure> {
    restore_definition(&spec.point, &env.loaded.definition, &BTreeSet::new(), spec.region.as_deref())
        .map(|_| ())
        .map_err(|errors| not_restorable(spec, &errors))
}

/// The plan of a restore: reality is read first, so that what still exists
/// is kept and only what is missing is created (stateful objects from their snapshots).
pub async fn plan_restore(env: &Env, state: &StateDoc, spec: &RestoreSpec) -> Result<(Plan, Vec<Restored>), Failure> {
    let refreshed = refresh(state, &env.registry).await.map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {}: {}", e.addr, e.error.message)).collect();
        fail(format!("refresh failed; nothing was changed:\n{}", lines.join("\n")))
    })?;
    let mut existing: BTreeSet<ResourceAddr> = refreshed.state.resources.keys().cloned().collect();
    let build = |existing: &BTreeSet<ResourceAddr>| {
        let (mut def, restored) = restore_definition(&spec.point, &env.loaded.definition, existing, spec.region.as_deref())
            .map_err(|errors| not_restorable(spec, &errors))?;
        let to = spec.region.as_deref().zip(spec.zone.as_deref());
        place(&mut def, &env.loaded.definition, &env.registry, spec.point.instance != env.loaded.instance, to);
        Ok::<_, Failure>((def, restored))
    };
    let (def, restored) = build(&existing)?;
    let plan = diff(&def, &refreshed, &env.registry, &PlanOptions::default());
    // A surviving stateful object that must be replaced anyway (e.g. its
    // placement depends on an instance being recreated) comes back from its
    // snapshot too, never empty.
    let replaced: Vec<ResourceAddr> = plan
        .changes
        .iter()
        .filter(|c| c.action == phoenix_core::plan::Action::Replace && spec.point.snapshots.iter().any(|s| s.addr == c.addr))
        .map(|c| c.addr.clone())
        .collect();
    if replaced.is_empty() {
        return Ok((plan, restored));
    }
    existing.retain(|a| !replaced.contains(a));
    let (def, restored) = build(&existing)?;
    Ok((diff(&def, &refreshed, &env.registry, &PlanOptions::default()), restored))
}
