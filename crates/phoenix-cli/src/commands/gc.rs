//! `phoenix instances ENV` and `phoenix gc`.
//!
//! gc works in two passes:
//! 1. **Expired instances**: every state whose `expires_at` has passed and
//!    that still holds resources is destroyed through `down` — the normal
//!    path: its lock, reverse graph order, journal.
//! 2. **Leaks**: every configured provider lists the objects carrying
//!    Phoenix's ownership tags ([`Provider::list_owned`]); an object of a
//!    scanned environment whose id no state knows is a leak (a job killed
//!    between a create and its record, or whose state was deleted).
//!
//! Safety rules of the sweep: objects without complete ownership tags are
//! never returned by providers, objects of environments not scanned are left
//! alone, and objects of an instance whose lock is live (a run in progress,
//! which may not have recorded its newest object yet) or that has pending
//! intents (the next run adopts them) are skipped. States are listed *after*
//! the providers, so an object seen at a provider was either recorded by then
//! or belongs to a run still holding its lock.
//!
//! [`Provider::list_owned`]: phoenix_core::provider::Provider::list_owned

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::anyhow;
use console::style;
use phoenix_config::LoadOptions;
use phoenix_core::provider::{DeleteRequest, OwnedObject, ProviderContext};
use phoenix_core::value::Value;
use phoenix_state::StoredState;

use crate::args::{ApplyArgs, EnvArgs, Global, LockArgs};
use crate::context::{self, Env};
use crate::exit::{CmdResult, Exit, Failure};
use crate::printer::Printer;
use crate::progress::json_event;

/// Loads an environment without an instance (its state root and providers).
fn load_env(g: &Global, printer: &Printer, name: &str) -> Result<Env, Failure> {
    let project = context::project(g)?;
    let loaded = context::load_definition(&project, printer, name, &LoadOptions::default())?;
    Ok(Env { project, loaded, registry: context::registry() })
}

fn age(from: Option<chrono::DateTime<chrono::Utc>>, now: chrono::DateTime<chrono::Utc>) -> String {
    let Some(from) = from else { return "?".into() };
    human(now - from)
}

fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds().abs();
    let text = if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else if s < 172_800 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}d", s / 86400)
    };
    if d.num_seconds() < 0 { format!("{text} ago") } else { text }
}

pub async fn instances(g: &Global, printer: &Printer, env_name: &str) -> CmdResult {
    let env = load_env(g, printer, env_name)?;
    let root = env.root().await?;
    let states = root.list(Some(&env.loaded.name)).await.map_err(context::state_failure)?;
    let now = chrono::Utc::now();
    if printer.json {
        let list: Vec<_> = states
            .iter()
            .map(|s| {
                serde_json::json!({
                    "instance": s.doc.instance, "resources": s.doc.resources.len(), "serial": s.doc.serial,
                    "created_at": s.doc.created_at, "updated_at": s.doc.updated_at, "expires_at": s.doc.expires_at,
                    "expired": s.doc.expires_at.is_some_and(|t| t <= now),
                    "age_secs": s.doc.created_at.map(|c| (now - c).num_seconds()),
                    "pending": s.doc.pending.len(),
                    "locked_by": s.lock.as_ref().filter(|l| l.live).map(|l| l.info.to_string()),
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({"event": "instances", "environment": env.loaded.name, "state": root.location(), "instances": list})
        );
        return Ok(Exit::Ok);
    }
    if states.is_empty() {
        outln!("{} has no instances in {}.", env.loaded.name, root.location());
        return Ok(Exit::Ok);
    }
    let name = |s: &StoredState| s.doc.instance.clone().unwrap_or_else(|| "(default)".into());
    let width = states.iter().map(|s| name(s).len()).max().unwrap_or(8).max(8);
    outln!("{:width$}  {:>9}  {:>8}  {:24}  LOCK", "INSTANCE", "RESOURCES", "AGE", "EXPIRES");
    for s in &states {
        let expires = match s.doc.expires_at {
            None => "never".to_string(),
            Some(t) if t <= now => format!("expired {} ago", human(now - t)),
            Some(t) => format!("in {} ({})", human(t - now), t.format("%H:%M UTC")),
        };
        let lock = match &s.lock {
            Some(l) if l.live => format!("{}@{} ({})", l.info.owner, l.info.host, l.info.operation),
            _ => "-".into(),
        };
        outln!("{:width$}  {:>9}  {:>8}  {:24}  {lock}", name(s), s.doc.resources.len(), age(s.doc.created_at, now), expires);
    }
    Ok(Exit::Ok)
}

/// A leaked object and why it counts as one.
struct Leak {
    environment: String,
    object: OwnedObject,
}

pub async fn gc(g: &Global, printer: &Printer, envs: &[String], yes: bool, dry_run: bool, lock: &LockArgs) -> CmdResult {
    let names: Vec<String> = if envs.is_empty() { context::project(g)?.environments() } else { envs.to_vec() };
    if !yes && !dry_run {
        crate::confirm::require_terminal("destroy (--dry-run shows what would go)")?;
    }
    let mut loaded = Vec::new();
    for n in &names {
        loaded.push(load_env(g, printer, n)?);
    }
    let now = chrono::Utc::now();
    let mut failures = 0usize;

    // Pass 1: expired instances, through `down`.
    let mut expired = Vec::new();
    for env in &loaded {
        let root = env.root().await?;
        for s in root.list(Some(&env.loaded.name)).await.map_err(context::state_failure)? {
            if s.doc.expires_at.is_some_and(|t| t <= now) && !s.doc.is_empty() {
                expired.push((env.loaded.name.clone(), s));
            }
        }
    }
    for (env_name, s) in &expired {
        let who = context_key(env_name, s.doc.instance.as_deref());
        let due = s.doc.expires_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default();
        if printer.json {
            json_event(serde_json::json!({"event": "gc_expired", "environment": env_name, "instance": s.doc.instance,
                "expires_at": s.doc.expires_at, "resources": s.doc.resources.len(), "dry_run": dry_run}));
        } else {
            outln!(
                "{} {who}: expired at {due}, {} resource(s)",
                style(if dry_run { "would destroy" } else { "destroying" }).bold(),
                s.doc.resources.len()
            );
        }
        if dry_run {
            continue;
        }
        if !yes && !confirm(&format!("destroy {who}"))? {
            continue;
        }
        let args = EnvArgs::named(env_name.clone(), s.doc.instance.clone());
        let opts = ApplyArgs { yes: true, parallelism: 64, scope: Default::default(), lock: lock.clone() };
        match Box::pin(super::apply::down(g, printer, &args, &opts, false)).await {
            Ok(Exit::Ok) => {}
            Ok(code) => {
                failures += 1;
                errln!("{} {who}: down exited with {code:?}", style("gc:").red().bold());
            }
            Err(f) => {
                failures += 1;
                printer.error(&f.error);
            }
        }
    }

    // Pass 2: leaks. Providers first, then states (see the module docs).
    let mut objects: BTreeMap<(String, String), (String, OwnedObject)> = BTreeMap::new();
    let mut unsupported = BTreeSet::new();
    let mut registries = BTreeMap::new();
    for env in &loaded {
        for (provider, registry) in configured_providers(env)? {
            let Some(p) = registry.provider(&provider) else { continue };
            let Some(leaks) = p.leaks() else {
                unsupported.extend(p.schemas().iter().map(|s| s.type_name.to_string()));
                registries.entry(provider.clone()).or_insert(registry);
                continue;
            };
            let listing = leaks
                .list_owned()
                .await
                .map_err(|e| anyhow!("{}: listing owned objects of `{provider}` failed: {}", env.loaded.name, e.message))?;
            unsupported.extend(listing.unsupported);
            for o in listing.objects {
                let id = o.outputs.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                objects.entry((o.type_name.clone(), id)).or_insert_with(|| (env.loaded.name.clone(), o));
            }
            registries.entry(provider.clone()).or_insert(registry);
        }
    }
    let scanned: BTreeSet<&str> = loaded.iter().map(|e| e.loaded.name.as_str()).collect();
    let mut known_ids = BTreeSet::new();
    let mut busy = BTreeSet::new();
    for env in &loaded {
        for s in env.root().await?.list(Some(&env.loaded.name)).await.map_err(context::state_failure)? {
            let key = (s.doc.environment.clone(), s.doc.instance.clone());
            if s.lock.as_ref().is_some_and(|l| l.live) || !s.doc.pending.is_empty() {
                busy.insert(key);
            }
            for r in s.doc.resources.values().chain(s.doc.deposed.values()) {
                if let Some(id) = r.outputs.get("id").and_then(Value::as_str) {
                    known_ids.insert(id.to_string());
                }
            }
        }
    }
    let mut leaks = Vec::new();
    let mut left_alone = 0usize;
    for ((_, id), (_, o)) in objects {
        // Owners as the provider marks them (GCE labels hold names lowercased).
        let provider = phoenix_core::definition::provider_of(&o.type_name);
        let Some(p) = registries.get(provider).and_then(|r| r.provider(provider)).and_then(|p| p.leaks()) else { continue };
        let of_scanned = scanned.iter().any(|env| p.same_owner(&o.ownership, env, o.ownership.instance.as_deref()));
        let of_busy = busy.iter().any(|(env, inst)| p.same_owner(&o.ownership, env, inst.as_deref()));
        if !of_scanned || of_busy {
            left_alone += 1;
            continue;
        }
        if !known_ids.contains(&id) {
            leaks.push(Leak { environment: o.ownership.environment.clone(), object: o });
        }
    }
    // An object listed under its container's ownership (a DNS record in a
    // zone) is a leak only with its container: one in a live zone that no
    // state knows was added by someone else.
    let leaked: BTreeSet<String> =
        leaks.iter().filter_map(|l| l.object.outputs.get("id").and_then(Value::as_str).map(str::to_string)).collect();
    let before = leaks.len();
    leaks.retain(|l| l.object.container.as_ref().is_none_or(|c| leaked.contains(c)));
    left_alone += before - leaks.len();
    for l in &leaks {
        let o = &l.object;
        let id = o.outputs.get("id").and_then(Value::as_str).unwrap_or_default();
        if printer.json {
            json_event(serde_json::json!({"event": "gc_leak", "type": o.type_name, "id": id, "environment": l.environment,
                "instance": o.ownership.instance, "resource": o.ownership.resource, "lineage": o.ownership.lineage,
                "expires_at": o.ownership.expires_at, "dry_run": dry_run || !yes}));
        } else {
            outln!(
                "{} {} {id}  ({}, resource {}, lineage {}) is in no state",
                style("leak:").yellow().bold(),
                o.type_name,
                context_key(&l.environment, o.ownership.instance.as_deref()),
                o.ownership.resource,
                o.ownership.lineage
            );
        }
    }
    let mut destroyed = 0usize;
    if !leaks.is_empty() && !dry_run && (yes || confirm(&format!("destroy {} leaked object(s)", leaks.len()))?) {
        let (ok, failed) = destroy_leaks(&leaks, &registries).await;
        destroyed = ok;
        failures += failed;
    }
    if printer.json {
        json_event(
            serde_json::json!({"event": "gc_finished", "expired": expired.len(), "leaks": leaks.len(), "destroyed_leaks": destroyed,
            "left_alone": left_alone, "unsupported_types": unsupported, "failures": failures, "dry_run": dry_run}),
        );
    } else {
        outln!(
            "gc: {} expired instance(s), {} leaked object(s){}{}.",
            expired.len(),
            leaks.len(),
            if dry_run { " (dry run: nothing was changed)".to_string() } else { format!(", {destroyed} destroyed") },
            if left_alone > 0 {
                format!("; {left_alone} tagged object(s) of runs in progress or other environments left alone")
            } else {
                String::new()
            }
        );
        if !unsupported.is_empty() {
            outln!("not swept (the provider cannot list them yet): {}", unsupported.into_iter().collect::<Vec<_>>().join(", "));
        }
    }
    Ok(if failures > 0 { Exit::Error } else { Exit::Ok })
}

fn context_key(env: &str, instance: Option<&str>) -> String {
    match instance {
        Some(i) => format!("{env} --instance {i}"),
        None => env.to_string(),
    }
}

fn confirm(what: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    err!("{what}? Only `yes` is accepted: ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// Providers an environment configures or uses, each configured in a registry of its own
/// (two environments may point one provider at different regions or endpoints).
fn configured_providers(env: &Env) -> Result<Vec<(String, Arc<phoenix_core::provider::Registry>)>, Failure> {
    let mut used: BTreeSet<String> = env.loaded.providers.keys().cloned().collect();
    used.extend(env.loaded.definition.resources.values().map(|r| r.provider_name().to_string()));
    let mut out = Vec::new();
    for name in used {
        if name == phoenix_core::builtin::PROVIDER_NAME {
            continue;
        }
        let registry = context::registry();
        let Some(p) = registry.provider(&name) else { continue };
        let cx = ProviderContext {
            environment: env.loaded.name.clone(),
            instance: None,
            project_dir: env.project.root.clone(),
            data_dir: env.data_dir(),
            config: env.loaded.provider_config(&name),
        };
        p.configure(&cx).map_err(|e| anyhow!("{}: provider `{name}`: {}", env.loaded.name, e.message))?;
        out.push((name, Arc::new(registry)));
    }
    Ok(out)
}

/// Deletes leaks type by type, dependents first (the reverse of the order a
/// provider declares its types in), each type's objects in parallel.
async fn destroy_leaks(leaks: &[Leak], registries: &BTreeMap<String, Arc<phoenix_core::provider::Registry>>) -> (usize, usize) {
    let mut by_type: BTreeMap<&str, Vec<&Leak>> = BTreeMap::new();
    for l in leaks {
        by_type.entry(l.object.type_name.as_str()).or_default().push(l);
    }
    let mut order: Vec<(usize, &str)> = Vec::new();
    for t in by_type.keys() {
        let provider = phoenix_core::definition::provider_of(t);
        let rank = registries
            .get(provider)
            .and_then(|r| r.provider(provider))
            .and_then(|p| p.schemas().iter().position(|s| s.type_name == *t))
            .unwrap_or(usize::MAX);
        order.push((rank, t));
    }
    // Highest rank (declared last: instances, attachments, addresses) first.
    order.sort_by(|a, b| b.cmp(a));
    let (mut ok, mut failed) = (0, 0);
    for (_, t) in order {
        let provider = phoenix_core::definition::provider_of(t);
        let Some(p) = registries.get(provider).and_then(|r| r.provider(provider)).cloned() else { continue };
        let deletes = by_type[t].iter().map(|l| {
            let p = p.clone();
            let o = l.object.clone();
            async move {
                let id = o.outputs.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                let req = DeleteRequest {
                    addr: o.ownership.resource.clone(),
                    type_name: o.type_name.clone(),
                    inputs: o.inputs.clone(),
                    outputs: o.outputs.clone(),
                    ownership: o.ownership.clone(),
                    log: Arc::new(|_, _| {}),
                };
                (o.type_name, id, p.delete(req).await)
            }
        });
        for (t, id, result) in futures::future::join_all(deletes).await {
            match result {
                Ok(()) => {
                    ok += 1;
                    outln!("{} {t} {id}", style("destroyed leak").green());
                }
                Err(e) => {
                    failed += 1;
                    errln!("{} {t} {id}: {}", style("could not destroy leak").red().bold(), e.message);
                }
            }
        }
    }
    (ok, failed)
}
