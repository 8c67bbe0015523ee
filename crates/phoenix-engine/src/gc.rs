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
use std::sync::Arc;

use anyhow::anyhow;
use phoenix_config::{LoadOptions, Project};
use phoenix_core::provider::{DeleteRequest, OwnedObject, ProviderContext};
use phoenix_core::value::Value;
use phoenix_state::StoredState;

use crate::env::{Env, Host, state_failure};
use crate::event::{Event, InstanceInfo};
use crate::exit::{Exit, Failure};
use crate::report::Reporter;
use crate::run::{RunHooks, RunOptions};

/// What `gc` is asked to do.
pub struct GcOptions {
    /// Destroy without asking.
    pub yes: bool,
    /// Only list what would go.
    pub dry_run: bool,
    pub lock_timeout: std::time::Duration,
}

/// What the caller does for `gc`: everything a run needs (the expired
/// instances' `down`), and a question per destruction without `--yes`.
pub trait GcHooks: RunHooks {
    /// Whether to go ahead with `what`; `false` leaves it.
    fn confirm(&self, what: &str) -> Result<bool, Failure>;
}

/// What `gc` found and did.
pub struct GcReport {
    pub expired: usize,
    pub leaks: usize,
    pub deleted_leaks: usize,
    pub left_alone: usize,
    pub unsupported_types: Vec<String>,
    pub failures: usize,
    pub dry_run: bool,
}

impl GcReport {
    pub fn event(&self) -> Event {
        Event::GcFinished {
            expired: self.expired,
            leaks: self.leaks,
            deleted_leaks: self.deleted_leaks,
            left_alone: self.left_alone,
            unsupported_types: self.unsupported_types.clone(),
            failures: self.failures,
            dry_run: self.dry_run,
        }
    }
}

/// The instances (states) of an environment, as `phoenix instances` lists them.
pub async fn instances(env: &Env) -> Result<(String, Vec<StoredState>), Failure> {
    let root = env.root().await?;
    let states = root.list(Some(&env.loaded.name)).await.map_err(state_failure)?;
    Ok((root.location(), states))
}

/// The `instances` event of an environment's states, at `now`.
pub fn instances_event(environment: &str, location: String, states: &[StoredState], now: chrono::DateTime<chrono::Utc>) -> Event {
    let instances = states
        .iter()
        .map(|s| InstanceInfo {
            instance: s.doc.instance.clone(),
            resources: s.doc.resources.len(),
            serial: s.doc.serial,
            created_at: s.doc.created_at,
            updated_at: s.doc.updated_at,
            expires_at: s.doc.expires_at,
            expired: s.doc.expires_at.is_some_and(|t| t <= now),
            age_secs: s.doc.created_at.map(|c| (now - c).num_seconds()),
            pending: s.doc.pending.len(),
            locked_by: s.lock.as_ref().filter(|l| l.live).map(|l| l.info.to_string()),
        })
        .collect();
    Event::Instances { environment: environment.to_string(), state: location, instances }
}

/// A leaked object and why it counts as one.
struct Leak {
    environment: String,
    object: OwnedObject,
}

/// Destroys expired instances (through [`crate::run`]), then leaked objects.
pub async fn gc(
    host: &Arc<dyn Host>,
    project: &Project,
    names: &[String],
    opts: &GcOptions,
    hooks: &dyn GcHooks,
) -> Result<GcReport, Failure> {
    let (yes, dry_run) = (opts.yes, opts.dry_run);
    let mut loaded = Vec::new();
    for n in names {
        loaded.push(crate::env::load_unchecked(host, project.clone(), n, &LoadOptions::default())?);
    }
    let now = chrono::Utc::now();
    let mut failures = 0usize;

    // Pass 1: expired instances, through `down`.
    let mut expired = Vec::new();
    for env in &loaded {
        let root = env.root().await?;
        for s in root.list(Some(&env.loaded.name)).await.map_err(state_failure)? {
            if s.doc.expires_at.is_some_and(|t| t <= now) && !s.doc.is_empty() {
                expired.push((env.loaded.name.clone(), s));
            }
        }
    }
    for (env_name, s) in &expired {
        let who = context_key(env_name, s.doc.instance.as_deref());
        hooks.event(&Event::GcExpired {
            environment: env_name.clone(),
            instance: s.doc.instance.clone(),
            expires_at: s.doc.expires_at,
            resources: s.doc.resources.len(),
            dry_run,
        });
        if dry_run {
            continue;
        }
        if !yes && !hooks.confirm(&format!("destroy {who}"))? {
            continue;
        }
        // The normal `down` of that instance: its lock, reverse graph order, journal.
        let load = LoadOptions { instance: s.doc.instance.clone(), ..LoadOptions::default() };
        let down = RunOptions { destroy: true, parallelism: 64, lock_timeout: opts.lock_timeout, ..RunOptions::default() };
        let result = match crate::env::load(host, project.clone(), env_name, &load) {
            Ok(env) => Box::pin(crate::run::run(&env, down, hooks)).await,
            Err(f) => Err(f),
        };
        match result {
            Ok(report) if report.exit() == Exit::Ok => {}
            Ok(report) => {
                failures += 1;
                hooks.event(&Event::Error { error: format!("gc: {who}: down exited with {:?}", report.exit()) });
            }
            Err(f) => {
                failures += 1;
                hooks.event(&Event::Error { error: format!("{:#}", f.error) });
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
        for s in env.root().await?.list(Some(&env.loaded.name)).await.map_err(state_failure)? {
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
        hooks.event(&Event::GcLeak {
            resource_type: o.type_name.clone(),
            id: id.to_string(),
            environment: l.environment.clone(),
            instance: o.ownership.instance.clone(),
            resource: o.ownership.resource.to_string(),
            lineage: o.ownership.lineage.clone(),
            expires_at: o.ownership.expires_at,
            dry_run: dry_run || !yes,
        });
    }
    let mut destroyed = 0usize;
    if !leaks.is_empty() && !dry_run && (yes || hooks.confirm(&format!("destroy {} leaked object(s)", leaks.len()))?) {
        let (ok, failed) = destroy_leaks(&leaks, &registries, hooks).await;
        destroyed = ok;
        failures += failed;
    }
    let report = GcReport {
        expired: expired.len(),
        leaks: leaks.len(),
        deleted_leaks: destroyed,
        left_alone,
        unsupported_types: unsupported.into_iter().collect(),
        failures,
        dry_run,
    };
    hooks.event(&report.event());
    Ok(report)
}

fn context_key(env: &str, instance: Option<&str>) -> String {
    match instance {
        Some(i) => format!("{env} --instance {i}"),
        None => env.to_string(),
    }
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
        let registry = env.host.registry();
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
async fn destroy_leaks(
    leaks: &[Leak],
    registries: &BTreeMap<String, Arc<phoenix_core::provider::Registry>>,
    reporter: &dyn Reporter,
) -> (usize, usize) {
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
                    reporter.event(&Event::GcLeakDeleted { resource_type: t, id });
                }
                Err(e) => {
                    failed += 1;
                    reporter.event(&Event::GcLeakDeleteFailed { resource_type: t, id, error: e.message });
                }
            }
        }
    }
    (ok, failed)
}
