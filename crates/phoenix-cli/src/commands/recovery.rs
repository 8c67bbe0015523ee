//! Disaster recovery: `phoenix snapshot` takes a recovery point (a snapshot of
//! every stateful object plus the definition to rebuild from), `phoenix
//! snapshot list|show|delete` manage them, and `phoenix restore` rebuilds an
//! environment from one (through `up`'s plan/confirm/apply path, see
//! `apply::restore`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use console::style;
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

use crate::args::{ApplyArgs, EnvArgs, Global, TakeArgs};
use crate::context::{self, Env};
use crate::exit::{CmdResult, Exit, Failure};
use crate::printer::Printer;
use crate::progress::json_event;

fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Error, anyhow!("{e}"))
}

/// A log line of a snapshot in progress, for people or as a JSON event.
fn log_sink(json: bool) -> LogSink {
    Arc::new(move |addr: &ResourceAddr, line: &str| {
        if json {
            json_event(serde_json::json!({"event": "log", "addr": addr, "line": line}));
        } else {
            errln!("  {} {line}", style(format!("{addr}:")).dim());
        }
    })
}

/// `phoenix snapshot ENV`.
pub async fn take(g: &Global, printer: &Printer, t: &TakeArgs) -> CmdResult {
    let started = Instant::now();
    let args = t.env_args();
    let env = context::load(g, printer, &args)?;
    let run_id = uuid::Uuid::new_v4().to_string();
    // Held while snapshotting: no `up` changes the objects half-way.
    let (lock, state) = env.lock_state("snapshot", &run_id, t.lock.lock_timeout, printer).await?;
    env.configure_providers(printer, &state)?;
    definition_matches_state(&env, &state, t.strict, printer)?;
    let store = env.recovery_store().await?;
    let now = chrono::Utc::now();
    let id = RecoveryPoint::new_id(now);
    let stateful = recovery::stateful(&state, &env.registry);
    if stateful.is_empty() {
        printer.note("no stateful objects (volumes, databases) in state: the recovery point holds the definition only");
    }
    if !printer.json {
        errln!("Taking recovery point {} of {}: {} snapshot(s)", style(&id).bold(), env.loaded.name, stateful.len());
    }
    let parallelism = t.parallelism as usize;
    let mut snapshots = match recovery::take(&state, &env.registry, &id, parallelism, log_sink(printer.json)).await {
        Ok(s) => s,
        Err((taken, failed)) => {
            discard(&env.registry, &taken, printer).await;
            let lines: Vec<String> = failed.iter().map(|(a, e)| format!("  {a}: {}", e.message)).collect();
            return Err(fail(format!("no recovery point was taken; these snapshots failed:\n{}", lines.join("\n"))));
        }
    };
    for region in &t.copy_to_region {
        if let Err(e) = copy_all(&env.registry, &mut snapshots, region, parallelism).await {
            discard(&env.registry, &snapshots, printer).await;
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
        variables: sealed_variables(&env, &state.lineage),
        definition: sealed_definition(&env.loaded.definition, &env.registry, &state.lineage),
        snapshots,
    };
    if let Err(e) = store.save(&point).await {
        discard(&env.registry, &point.snapshots, printer).await;
        return Err(fail(format!("the recovery point could not be stored at {}: {e}", store.location())));
    }
    drop(lock);
    let removed = match t.keep {
        Some(keep) => retain(&env, store.as_ref(), keep as usize, printer).await?,
        None => Vec::new(),
    };
    if printer.json {
        json_event(
            serde_json::json!({"event": "snapshot_finished", "point": summary(&point), "removed": removed, "store": store.location(),
                "api_calls": context::api_calls(&env.registry)}),
        );
    } else {
        show(&point);
        outln!("Recovery point {} taken in {:.1}s; stored at {}.", style(&id).bold(), point.took_ms as f64 / 1000.0, store.location());
        for r in &removed {
            outln!("Removed recovery point {r} (--keep {}).", t.keep.unwrap_or_default());
        }
    }
    Ok(Exit::Ok)
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
async fn discard(registry: &Registry, snapshots: &[SnapshotRecord], printer: &Printer) -> Vec<String> {
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
        printer.note(&format!("could not delete snapshot {f}; delete it by hand"));
    }
    failed
}

/// Keeps the newest `keep` points of the environment; older ones go with their snapshots.
async fn retain(env: &Env, store: &dyn RecoveryStore, keep: usize, printer: &Printer) -> Result<Vec<String>, Failure> {
    let points = store.list(&env.loaded.name).await.map_err(fail)?;
    let excess = points.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for p in points.into_iter().take(excess) {
        if discard(&env.registry, &p.snapshots, printer).await.is_empty() {
            store.delete(&p.environment, &p.id).await.map_err(fail)?;
            removed.push(p.id);
        }
    }
    Ok(removed)
}

fn summary(p: &RecoveryPoint) -> serde_json::Value {
    serde_json::json!({
        "id": p.id, "environment": p.environment, "instance": p.instance, "created_at": p.created_at,
        "took_ms": p.took_ms, "serial": p.serial, "resources": p.definition.resources.len(),
        "snapshots": p.snapshots, "regions": p.copied_regions(),
    })
}

fn show(p: &RecoveryPoint) {
    outln!(
        "{} of {} at {} (state serial {}, {} resources, {} snapshot(s))",
        style(&p.id).bold(),
        p.environment,
        p.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        p.serial,
        p.definition.resources.len(),
        p.snapshots.len()
    );
    for s in &p.snapshots {
        let copies: Vec<String> = s.copies.iter().map(|(r, c)| format!("{r}: {}", c.id)).collect();
        let copies = if copies.is_empty() { String::new() } else { format!("  (copies: {})", copies.join(", ")) };
        outln!("  {:<24} {:<18} {}{copies}", s.addr.to_string(), s.type_name, s.snapshot.id);
    }
}

/// The environment's recovery store, from its `state =` setting.
async fn store_of(g: &Global, printer: &Printer, env: &str) -> Result<(Env, Arc<dyn RecoveryStore>), Failure> {
    let args = EnvArgs::named(env, None);
    let env = context::load(g, printer, &args)?;
    let store = env.recovery_store().await?;
    Ok((env, store))
}

pub async fn list(g: &Global, printer: &Printer, env: &str) -> CmdResult {
    let (env, store) = store_of(g, printer, env).await?;
    let points = store.list(&env.loaded.name).await.map_err(fail)?;
    if printer.json {
        outln!("{}", serde_json::json!({"event": "recovery_points", "points": points.iter().map(summary).collect::<Vec<_>>()}));
    } else if points.is_empty() {
        outln!("No recovery points of {} (take one with `phoenix snapshot {}`).", env.loaded.name, env.loaded.name);
    } else {
        outln!("{:<28} {:<20} {:>9} {:>8}  regions", "ID", "TAKEN (UTC)", "SNAPSHOTS", "TOOK");
        for p in &points {
            let regions: Vec<String> = p.copied_regions().into_iter().collect();
            outln!(
                "{:<28} {:<20} {:>9} {:>7.1}s  {}",
                p.id,
                p.created_at.format("%Y-%m-%d %H:%M:%S"),
                p.snapshots.len(),
                p.took_ms as f64 / 1000.0,
                regions.join(",")
            );
        }
    }
    Ok(Exit::Ok)
}

async fn find(store: &dyn RecoveryStore, env: &str, id: &str) -> Result<RecoveryPoint, Failure> {
    store
        .get(env, id)
        .await
        .map_err(fail)?
        .ok_or_else(|| fail(format!("no recovery point `{id}` of {env} at {} (see `phoenix snapshot list {env}`)", store.location())))
}

pub async fn show_point(g: &Global, printer: &Printer, env: &str, id: &str) -> CmdResult {
    let (env, store) = store_of(g, printer, env).await?;
    let point = find(store.as_ref(), &env.loaded.name, id).await?;
    if printer.json {
        outln!("{}", serde_json::json!({"event": "recovery_point", "point": summary(&point), "variables": point.variables}));
    } else {
        show(&point);
    }
    Ok(Exit::Ok)
}

pub async fn delete(g: &Global, printer: &Printer, env: &str, id: &str, yes: bool) -> CmdResult {
    let (env, store) = store_of(g, printer, env).await?;
    let point = find(store.as_ref(), &env.loaded.name, id).await?;
    if !yes {
        let lost: Vec<String> = point.snapshots.iter().map(|s| format!("the snapshot of {} ({})", s.addr, s.type_name)).collect();
        crate::confirm::ask(&format!("delete recovery point {id} and its {} snapshot(s)", point.snapshots.len()), &lost)?;
    }
    env.configure_providers(printer, &StateDoc::new(&env.loaded.name, None, point.lineage.clone()))?;
    let failed = discard(&env.registry, &point.snapshots, printer).await;
    if !failed.is_empty() {
        return Err(fail(format!("recovery point {id} kept: {} snapshot(s) could not be deleted", failed.len())));
    }
    store.delete(&env.loaded.name, id).await.map_err(fail)?;
    if printer.json {
        outln!("{}", serde_json::json!({"event": "recovery_point_deleted", "id": id, "snapshots": point.snapshots.len()}));
    } else {
        outln!("Deleted recovery point {id} and its {} snapshot(s).", point.snapshots.len());
    }
    Ok(Exit::Ok)
}

/// A recovery point keeps the definition to rebuild from: one rendered with
/// other variables than the last `up` would rebuild something else. Compared
/// with state as recorded (no API call): a warning, or with `--strict` a refusal.
fn definition_matches_state(env: &Env, state: &StateDoc, strict: bool, printer: &Printer) -> Result<(), Failure> {
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
    printer.note(&format!("{what}\n(pass the same --var/--var-file as the last `up`; --strict refuses)"));
    Ok(())
}

/// What `up` needs to restore: the point and where.
pub struct RestoreSpec {
    pub point: RecoveryPoint,
    pub region: Option<String>,
    /// With `region`: the zone GCP objects are made in.
    pub zone: Option<String>,
}

/// `phoenix restore ENV --from ID`: finds the point, then runs `up` with it.
pub async fn restore(
    g: &Global,
    printer: &Printer,
    args: &EnvArgs,
    from: &str,
    region: Option<&str>,
    zone: Option<&str>,
    apply: &ApplyArgs,
) -> CmdResult {
    let (env, store) = store_of(g, printer, &args.env).await?;
    let point = find(store.as_ref(), &env.loaded.name, from).await?;
    if let Some(r) = region {
        check_move(&env.registry, &point, r, zone)?;
    }
    drop(env);
    let spec = RestoreSpec { point, region: region.map(str::to_string), zone: zone.map(str::to_string) };
    super::apply::restore(g, printer, args, apply, spec).await
}

/// Refuses a move to `region`/`zone` that a provider of the point's objects
/// cannot make as asked (GCE needs a zone of the region).
fn check_move(registry: &Registry, point: &RecoveryPoint, region: &str, zone: Option<&str>) -> Result<(), Failure> {
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
pub async fn plan(env: &Env, state: &StateDoc, spec: &RestoreSpec) -> Result<(Plan, Vec<Restored>), Failure> {
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

/// The final report of a restore.
pub fn report(printer: &Printer, spec: &RestoreSpec, restored: &[Restored], recovery_ms: u128, env: &Env) {
    if printer.json {
        json_event(serde_json::json!({
            "event": "restore_finished", "point": spec.point.id, "environment": env.loaded.name,
            "instance": env.loaded.instance, "region": spec.region, "recovery_time_ms": recovery_ms, "restored": restored,
        }));
        return;
    }
    outln!(
        "\n{} {}{} from recovery point {} in {} (recovery time).",
        style("Restored").green().bold(),
        env.loaded.name,
        env.loaded.instance.as_deref().map(|i| format!(" (instance {i})")).unwrap_or_default(),
        spec.point.id,
        style(format!("{:.1}s", recovery_ms as f64 / 1000.0)).bold()
    );
    for r in restored {
        outln!("  {:<24} {} = {}", r.addr.to_string(), r.restore_attr, r.snapshot.id);
    }
}
