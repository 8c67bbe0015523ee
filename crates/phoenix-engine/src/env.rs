//! An environment ready for a workflow: project, rendered and validated
//! definition, providers, and where its state and recovery points live.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use phoenix_config::{Diagnostics, LoadOptions, LoadedEnvironment, Project, StateSpec};
use phoenix_core::provider::{ProviderContext, Registry};
use phoenix_core::state::StateDoc;
use phoenix_state::{LockInfo, LockedState, RecoveryStore, StateBackend, StateError, StateRoot};

use crate::exit::{Exit, Failure};
use crate::report::Reporter;

/// What only the composition root knows: which providers and state backends
/// this binary has. The engine names none of them.
#[async_trait::async_trait]
pub trait Host: Send + Sync {
    /// A fresh, unconfigured registry of every provider compiled in.
    fn registry(&self) -> Registry;
    /// The state root a `state =` setting names.
    async fn state_root(&self, project: &Project, spec: &StateSpec) -> Result<Arc<dyn StateRoot>, Failure>;
    /// Where an environment's recovery points live: beside its states, in the same backend.
    async fn recovery_store(&self, project: &Project, spec: &StateSpec) -> Result<Arc<dyn RecoveryStore>, Failure>;
}

/// A loaded environment with its own provider registry.
pub struct Env {
    pub project: Project,
    pub loaded: LoadedEnvironment,
    pub registry: Registry,
    pub host: Arc<dyn Host>,
}

/// Loads and validates an environment, and checks its provider blocks on
/// throw-away providers (before any state is read or locked).
pub fn load(host: &Arc<dyn Host>, project: Project, name: &str, opts: &LoadOptions) -> Result<Env, Failure> {
    let loaded = load_definition(&project, name, opts)?;
    let registry = host.registry();
    let names: Vec<&str> = registry.provider_names().filter(|n| *n != phoenix_core::builtin::PROVIDER_NAME).collect();
    let mut problems = loaded.validate(registry.schemas(), &names);
    if problems.is_empty() {
        problems = instance_names(&loaded, &registry);
    }
    let env = Env { project, loaded, registry, host: host.clone() };
    if problems.is_empty() {
        // The real providers are configured once, later, with state's overrides.
        problems = env.provider_problems(&host.registry(), &StateDoc::new(&env.loaded.name, env.loaded.instance.as_deref(), String::new()));
    }
    if !problems.is_empty() {
        return Err(Failure::invalid(problems));
    }
    Ok(env)
}

/// Loads without validating (commands that only read state or render).
pub fn load_unchecked(host: &Arc<dyn Host>, project: Project, name: &str, opts: &LoadOptions) -> Result<Env, Failure> {
    let loaded = load_definition(&project, name, opts)?;
    Ok(Env { project, loaded, registry: host.registry(), host: host.clone() })
}

/// Loads and renders an environment's definition: an environment that does
/// not exist is bad usage (the command line names something that is not
/// there), a broken one is invalid.
pub fn load_definition(project: &Project, name: &str, opts: &LoadOptions) -> Result<LoadedEnvironment, Failure> {
    project.load(name, opts).map_err(|d| {
        let failure = Failure::invalid(d);
        if project.environment_file(name).is_file() { failure } else { Failure { code: Exit::Usage, ..failure } }
    })
}

/// With `--instance`, every name the provider needs unique must contain the
/// instance name: otherwise two CI jobs' copies would fight over one name
/// (the second create fails, or worse, a delete hits the other's object).
fn instance_names(loaded: &LoadedEnvironment, registry: &Registry) -> Diagnostics {
    let mut out = Diagnostics::default();
    let Some(instance) = &loaded.instance else { return out };
    for r in loaded.definition.resources.values() {
        let Some(provider) = registry.provider_for(&r.type_name) else { continue };
        for (type_name, attr) in provider.unique_names() {
            if type_name != r.type_name {
                continue;
            }
            // A reference takes its value from something else in this instance.
            let Some(value) = r.attrs.get(attr).and_then(|v| v.as_str()) else { continue };
            if value.contains("${") || value.contains(instance.as_str()) {
                continue;
            }
            let d = phoenix_config::Diagnostic::new(
                phoenix_core::validate::ErrorKind::InvalidValue,
                format!("`{attr}` = \"{value}\" is the same in every instance, so concurrent instances would collide on it"),
            )
            .with_help(Some(format!(
                "put the instance in the name, e.g. `{attr} = \"{{{{ environment }}}}-{{{{ instance }}}}-...\"` (the template context has `instance`)"
            )))
            .about(r.addr.to_string(), Some(attr.to_string()));
            out.push(loaded.sources.locate(d, loaded.sources.resources.get(&r.addr), Some(attr)));
        }
    }
    out
}

impl Env {
    /// Phoenix's working directory for this environment (and instance).
    pub fn data_dir(&self) -> PathBuf {
        self.project.data_dir().join("env").join(self.loaded.state_key())
    }

    /// Configures the providers the definition or the state uses (or that have a block).
    /// Reads configuration only: no API calls.
    pub fn configure_providers(&self, state: &StateDoc) -> Result<(), Failure> {
        let problems = self.provider_problems(&self.registry, state);
        if problems.is_empty() { Ok(()) } else { Err(Failure::invalid(problems)) }
    }

    /// The providers the definition or state uses, or that have a block.
    fn used_providers(&self, state: &StateDoc) -> BTreeSet<String> {
        let mut used: BTreeSet<String> = self.loaded.providers.keys().cloned().collect();
        used.extend(self.loaded.definition.resources.values().map(|r| r.provider_name().to_string()));
        used.extend(state.resources.values().map(|r| phoenix_core::definition::provider_of(&r.type_name).to_string()));
        used
    }

    /// Resolves every used provider's credentials and place before any plan,
    /// noting one line per provider; a provider that cannot work fails here,
    /// once, with its fix. Call after [`Env::configure_providers`].
    pub async fn preflight(&self, reporter: &dyn Reporter, state: &StateDoc) -> Result<(), Failure> {
        let checks = self.used_providers(state).into_iter().filter_map(|name| {
            let provider = self.registry.provider(&name)?.clone();
            Some(async move { (name, provider.preflight().await) })
        });
        let mut failed = Vec::new();
        for (name, result) in futures::future::join_all(checks).await {
            match result {
                Ok(Some(line)) => reporter.note(&format!("{name}: {line}")),
                Ok(None) => {}
                Err(e) => failed.push(format!("  {name}: {}", e.message)),
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        Err(Failure::new(Exit::Error, anyhow!("a provider cannot work here; nothing was locked or changed:\n{}", failed.join("\n"))))
    }

    /// Configures `registry`'s providers that the definition or state uses, or that have a block.
    fn provider_problems(&self, registry: &Registry, state: &StateDoc) -> Diagnostics {
        let mut problems = Diagnostics::default();
        for name in self.used_providers(state) {
            let Some(provider) = registry.provider(&name) else { continue };
            let cx = ProviderContext {
                environment: self.loaded.name.clone(),
                instance: self.loaded.instance.clone(),
                project_dir: self.project.root.clone(),
                data_dir: self.data_dir(),
                config: {
                    let mut config = self.loaded.provider_config(&name);
                    if let Some(overrides) = state.provider_overrides.get(&name) {
                        config.extend(overrides.clone());
                    }
                    config
                },
            };
            if let Err(e) = provider.configure(&cx) {
                problems.push(self.loaded.provider_diagnostic(&name, format!("provider `{name}`: {}", e.message), e.key.as_ref()));
            }
        }
        problems
    }

    /// The directory of this environment's (and instance's) state, when it is local.
    pub fn local_state_dir(&self) -> Option<PathBuf> {
        let root = match &self.loaded.state {
            StateSpec::Local { dir: None } => self.project.data_dir().join("state"),
            StateSpec::Local { dir: Some(d) } => self.project.root.join(d),
            StateSpec::S3 { .. } => return None,
        };
        Some(root.join(self.loaded.state_key()))
    }

    /// Where this environment's states live (every instance's).
    pub async fn root(&self) -> Result<Arc<dyn StateRoot>, Failure> {
        self.host.state_root(&self.project, &self.loaded.state).await
    }

    /// Where this environment's recovery points live.
    pub async fn recovery_store(&self) -> Result<Arc<dyn RecoveryStore>, Failure> {
        self.host.recovery_store(&self.project, &self.loaded.state).await
    }

    /// The state store of this environment (and instance).
    pub async fn store(&self) -> Result<Arc<dyn StateBackend>, Failure> {
        Ok(self.root().await?.open(&self.loaded.name, self.loaded.instance.as_deref()))
    }

    /// Reads state without locking (for read-only commands).
    pub async fn read_state(&self) -> Result<StateDoc, Failure> {
        let store = self.store().await?;
        store.load(&self.loaded.name, self.loaded.instance.as_deref()).await.map_err(state_failure)
    }

    /// Locks state for a changing workflow and finishes whatever a crashed run left in the journal.
    pub async fn lock_state(
        &self,
        operation: &str,
        run_id: &str,
        timeout: std::time::Duration,
        reporter: &dyn Reporter,
    ) -> Result<(Box<dyn LockedState>, StateDoc), Failure> {
        let store = self.store().await?;
        let info = LockInfo::new(operation, run_id);
        let lock = store.lock(info, timeout).await.map_err(state_failure)?;
        let (state, replayed) = lock.recover(&self.loaded.name, self.loaded.instance.as_deref()).await.map_err(state_failure)?;
        if replayed > 0 {
            reporter.note(&format!("recovered {replayed} journal record(s) from an interrupted run"));
        }
        Ok((lock, state))
    }

    /// API requests each provider of this environment has sent so far.
    pub fn api_calls(&self) -> BTreeMap<String, u64> {
        api_calls(&self.registry)
    }
}

/// Maps state errors to exit codes (a lock held elsewhere is not a plain error).
pub fn state_failure(e: StateError) -> Failure {
    match e {
        StateError::Locked(_) | StateError::Leased { .. } => Failure::new(Exit::Locked, anyhow!("{e}")),
        other => Failure::new(Exit::Error, anyhow!("{other}")),
    }
}

/// API requests each provider of `registry` has sent so far in this process.
pub fn api_calls(registry: &Registry) -> BTreeMap<String, u64> {
    registry.provider_names().filter_map(|n| registry.provider(n).map(|p| (n.to_string(), p.api_calls()))).filter(|(_, c)| *c > 0).collect()
}
