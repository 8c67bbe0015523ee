//! State surgery: `state rm`, `state mv` and `import`. Each locks state,
//! changes only the record, and never touches an object.

use anyhow::anyhow;
use phoenix_core::ResourceAddr;
use phoenix_core::schema::closest;
use phoenix_core::state::{JournalRecord, ResourceState};

use crate::env::{Env, state_failure};
use crate::event::Event;
use crate::exit::{Exit, Failure};
use crate::report::Reporter;

/// Resources forgotten by `state rm`.
pub struct RemovedReport {
    pub removed: Vec<ResourceAddr>,
    pub serial: u64,
}

impl RemovedReport {
    pub fn event(&self) -> Event {
        Event::StateRemoved { removed: self.removed.iter().map(ToString::to_string).collect(), serial: self.serial }
    }
}

/// Forgets `resources` (the objects keep existing, unmanaged). `approve` is
/// asked once every name is known to be in state, before anything is written.
pub async fn state_rm(
    env: &Env,
    resources: &[String],
    lock_timeout: std::time::Duration,
    reporter: &dyn Reporter,
    approve: &dyn Fn(&[ResourceAddr]) -> Result<(), Failure>,
) -> Result<RemovedReport, Failure> {
    let (guard, mut state) = env.lock_state("state rm", &uuid::Uuid::new_v4().to_string(), lock_timeout, reporter).await?;
    let mut removed = Vec::new();
    for r in resources {
        let addr = ResourceAddr::new_unchecked(r.as_str());
        if state.resources.remove(&addr).is_none() {
            return Err(Failure::new(Exit::Usage, anyhow!("`{r}` is not in the state of {}; nothing was changed", env.loaded.state_key())));
        }
        removed.push(addr);
    }
    approve(&removed)?;
    let written = guard.write(&state).await.map_err(state_failure)?;
    Ok(RemovedReport { removed, serial: written.serial })
}

/// A resource renamed in state by `state mv`.
pub struct MovedReport {
    pub from: ResourceAddr,
    pub to: ResourceAddr,
    /// The state key (environment and instance) it was moved in.
    pub state_key: String,
    pub serial: u64,
}

impl MovedReport {
    pub fn event(&self) -> Event {
        Event::StateMoved { from: self.from.to_string(), to: self.to.to_string(), serial: self.serial }
    }
}

/// Renames `source` to `destination` in state (following a rename in the definition).
pub async fn state_mv(
    env: &Env,
    source: &str,
    destination: &str,
    lock_timeout: std::time::Duration,
    reporter: &dyn Reporter,
) -> Result<MovedReport, Failure> {
    let to = ResourceAddr::parse(destination).map_err(|e| Failure::new(Exit::Usage, anyhow!("`{destination}`: {e}")))?;
    let from = ResourceAddr::new_unchecked(source);
    let (guard, mut state) = env.lock_state("state mv", &uuid::Uuid::new_v4().to_string(), lock_timeout, reporter).await?;
    let key = env.loaded.state_key();
    if state.pending.contains_key(&from) || state.deposed.contains_key(&from) {
        return Err(Failure::new(
            Exit::Error,
            anyhow!("`{source}` has an interrupted operation in the state of {key}; run `phoenix up` to finish it first"),
        ));
    }
    if state.resources.contains_key(&to) {
        return Err(Failure::new(Exit::Error, anyhow!("`{destination}` is already in the state of {key}; nothing was changed")));
    }
    let Some(resource) = state.resources.remove(&from) else {
        let hint = closest(source, state.resources.keys().map(ResourceAddr::as_str)).map(|s| format!("; did you mean `{s}`?"));
        return Err(Failure::new(Exit::Usage, anyhow!("`{source}` is not in the state of {key}{}", hint.unwrap_or_default())));
    };
    match env.loaded.definition.resources.get(&to) {
        None => reporter.note(&format!("`{destination}` is not declared in {}: the next plan will delete it", env.loaded.source.name)),
        Some(c) if c.type_name != resource.type_name => reporter.note(&format!(
            "`{destination}` is declared as a `{}`, not a `{}`: the next plan will replace it",
            c.type_name, resource.type_name
        )),
        Some(_) => {}
    }
    state.resources.insert(to.clone(), resource);
    for r in state.resources.values_mut() {
        for d in &mut r.depends_on {
            if *d == from {
                *d = to.clone();
            }
        }
    }
    let written = guard.write(&state).await.map_err(state_failure)?;
    Ok(MovedReport { from, to, state_key: key, serial: written.serial })
}

/// An existing object recorded as a declared resource.
pub struct ImportReport {
    pub addr: ResourceAddr,
    pub resource_type: String,
    pub id: String,
    pub serial: u64,
}

impl ImportReport {
    pub fn event(&self) -> Event {
        Event::Imported { addr: self.addr.to_string(), resource_type: self.resource_type.clone(), id: self.id.clone(), serial: self.serial }
    }
}

/// Reads the object `id` through the provider of `resource`'s type and records it as `resource`.
pub async fn import(
    env: &Env,
    resource: &str,
    id: &str,
    lock_timeout: std::time::Duration,
    reporter: &dyn Reporter,
) -> Result<ImportReport, Failure> {
    let addr = ResourceAddr::new_unchecked(resource);
    let config = env.loaded.definition.resources.get(&addr).ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            anyhow!("`{resource}` is not declared in {}; declare it first, then import the object as it", env.loaded.source.name),
        )
    })?;
    let (guard, state) = env.lock_state("import", &uuid::Uuid::new_v4().to_string(), lock_timeout, reporter).await?;
    if state.resources.contains_key(&addr) {
        return Err(Failure::new(
            Exit::Error,
            anyhow!("`{resource}` is already managed; `phoenix state rm` it first to import another object"),
        ));
    }
    env.configure_providers(&state)?;
    let provider = env.registry.provider_for(&config.type_name).ok_or_else(|| anyhow!("no provider for `{}`", config.type_name))?;
    let observed = provider.import(&addr, &config.type_name, id).await.map_err(|e| anyhow!("reading `{id}`: {}", e.message))?;
    let Some(observed) = observed else {
        return Err(Failure::new(Exit::Error, anyhow!("no `{}` with id `{id}` exists; nothing was recorded", config.type_name)));
    };
    let resource_state = ResourceState {
        type_name: config.type_name.clone(),
        inputs: observed.inputs,
        outputs: observed.outputs,
        depends_on: config.dependencies(),
        tainted: false,
        create_before_destroy: false,
    };
    let journal = guard.journal(state).await.map_err(state_failure)?;
    journal.record(JournalRecord::Put { addr: addr.clone(), resource: resource_state }).await.map_err(|e| anyhow!("{e}"))?;
    let written = journal.finish().await.map_err(state_failure)?;
    Ok(ImportReport { addr, resource_type: config.type_name.clone(), id: id.to_string(), serial: written.serial })
}
