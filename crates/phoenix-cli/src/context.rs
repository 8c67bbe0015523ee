//! Loading an environment for a command: project, definition, providers, state.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use phoenix_config::{Diagnostics, LoadedEnvironment, Project, StateSpec};
use phoenix_core::provider::{ProviderContext, Registry};
use phoenix_core::state::StateDoc;
use phoenix_state::{LocalRoot, LockInfo, LockedState, StateBackend, StateError, StateRoot};

use crate::args::{EnvArgs, Global};
use crate::exit::{Exit, Failure};
use crate::printer::Printer;

/// Every provider compiled into this binary.
pub fn registry() -> Registry {
    #[allow(unused_mut)]
    let mut r = Registry::new();
    #[cfg(feature = "metal")]
    r.register(Arc::new(phoenix_provider_metal::MetalProvider::new()));
    #[cfg(feature = "aws")]
    r.register(Arc::new(phoenix_provider_aws::AwsProvider::new()));
    #[cfg(feature = "gcp")]
    r.register(Arc::new(phoenix_provider_gcp::GcpProvider::new()));
    r
}

/// The project directory: `--chdir` or the current directory.
pub fn project(global: &Global) -> Result<Project, Failure> {
    let root = match &global.chdir {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let root = root.canonicalize().with_context(|| format!("cannot open project directory {}", root.display()))?;
    Ok(Project::new(root))
}

/// A loaded, validated environment with configured providers.
pub struct Env {
    pub project: Project,
    pub loaded: LoadedEnvironment,
    pub registry: Registry,
}

/// Loads and validates an environment; invalid definitions are printed and end the command.
pub fn load(global: &Global, printer: &Printer, args: &EnvArgs) -> Result<Env, Failure> {
    let project = project(global)?;
    let opts = args.load_options();
    let loaded = load_definition(&project, printer, &args.env, &opts)?;
    let registry = registry();
    let names: Vec<&str> = registry.provider_names().filter(|n| *n != phoenix_core::builtin::PROVIDER_NAME).collect();
    let mut problems = loaded.validate(registry.schemas(), &names);
    if problems.is_empty() {
        problems = instance_names(&loaded, &registry);
    }
    let env = Env { project, loaded, registry };
    if problems.is_empty() {
        // Provider blocks are checked now, before any state is read or locked, on
        // throw-away providers: the real ones are configured once, with state's overrides.
        problems = env.provider_problems(
            &crate::context::registry(),
            &StateDoc::new(&env.loaded.name, env.loaded.instance.as_deref(), String::new()),
        );
    }
    if !problems.is_empty() {
        return Err(invalid(printer, problems));
    }
    Ok(env)
}

/// Loads and renders an environment's definition, printing its problems: an
/// environment that does not exist is bad usage (the command line names
/// something that is not there), a broken one is invalid.
pub fn load_definition(
    project: &Project,
    printer: &Printer,
    name: &str,
    opts: &phoenix_config::LoadOptions,
) -> Result<LoadedEnvironment, Failure> {
    project.load(name, opts).map_err(|d| {
        let failure = invalid(printer, d);
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

/// Prints diagnostics and turns them into the "invalid" exit.
pub fn invalid(printer: &Printer, d: Diagnostics) -> Failure {
    printer.diagnostics(&d);
    Failure::new(Exit::Invalid, crate::exit::AlreadyShown(d.to_string()))
}

impl Env {
    /// Phoenix's working directory for this environment (and instance).
    pub fn data_dir(&self) -> PathBuf {
        self.project.data_dir().join("env").join(self.loaded.state_key())
    }

    /// Configures the providers the definition or the state uses (or that have a block).
    /// Reads configuration only: no API calls.
    pub fn configure_providers(&self, printer: &Printer, state: &StateDoc) -> Result<(), Failure> {
        let problems = self.provider_problems(&self.registry, state);
        if problems.is_empty() { Ok(()) } else { Err(invalid(printer, problems)) }
    }

    /// The providers the definition or state uses, or that have a block.
    fn used_providers(&self, state: &StateDoc) -> std::collections::BTreeSet<String> {
        let mut used: std::collections::BTreeSet<String> = self.loaded.providers.keys().cloned().collect();
        used.extend(self.loaded.definition.resources.values().map(|r| r.provider_name().to_string()));
        used.extend(state.resources.values().map(|r| phoenix_core::definition::provider_of(&r.type_name).to_string()));
        used
    }

    /// Resolves every used provider's credentials and place before any plan,
    /// printing one line per provider; a provider that cannot work fails here,
    /// once, with its fix. Call after [`Env::configure_providers`].
    pub async fn preflight(&self, printer: &Printer, state: &StateDoc) -> Result<(), Failure> {
        let checks = self.used_providers(state).into_iter().filter_map(|name| {
            let provider = self.registry.provider(&name)?.clone();
            Some(async move { (name, provider.preflight().await) })
        });
        let mut failed = Vec::new();
        for (name, result) in futures::future::join_all(checks).await {
            match result {
                Ok(Some(line)) => printer.note(&format!("{name}: {line}")),
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
                problems.push(self.loaded.provider_diagnostic(&name, format!("provider `{name}`: {}", e.message)));
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
        state_root(&self.project, &self.loaded.state).await
    }

    /// Where this environment's recovery points live.
    pub async fn recovery_store(&self) -> Result<Arc<dyn phoenix_state::RecoveryStore>, Failure> {
        recovery_store(&self.project, &self.loaded.state).await
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

    /// Locks state for a changing command and finishes whatever a crashed run left in the journal.
    pub async fn lock_state(
        &self,
        operation: &str,
        run_id: &str,
        timeout: std::time::Duration,
        printer: &Printer,
    ) -> Result<(Box<dyn LockedState>, StateDoc), Failure> {
        let store = self.store().await?;
        let info = LockInfo::new(operation, run_id);
        let lock = store.lock(info, timeout).await.map_err(state_failure)?;
        let (state, replayed) = lock.recover(&self.loaded.name, self.loaded.instance.as_deref()).await.map_err(state_failure)?;
        if replayed > 0 {
            printer.note(&format!("recovered {replayed} journal record(s) from an interrupted run"));
        }
        Ok((lock, state))
    }
}

/// The state root a `state =` setting names. Only this function names backends.
pub async fn state_root(project: &Project, spec: &StateSpec) -> Result<Arc<dyn StateRoot>, Failure> {
    match spec {
        StateSpec::Local { dir: None } => Ok(Arc::new(LocalRoot::new(project.data_dir().join("state")))),
        StateSpec::Local { dir: Some(d) } => Ok(Arc::new(LocalRoot::new(project.root.join(d)))),
        #[cfg(feature = "s3")]
        StateSpec::S3 { bucket, prefix } => {
            let mut root = phoenix_state_s3::S3Root::connect(bucket, prefix).await;
            if let Ok(lease) = std::env::var("PHOENIX_LOCK_LEASE") {
                let lease =
                    crate::args::parse_duration(&lease).map_err(|e| Failure::new(Exit::Error, anyhow!("PHOENIX_LOCK_LEASE: {e}")))?;
                root = root.with_lease(lease);
            }
            Ok(Arc::new(root))
        }
        #[cfg(not(feature = "s3"))]
        StateSpec::S3 { bucket, prefix } => Err(Failure::new(
            Exit::Error,
            anyhow!(
                "state `s3://{bucket}/{prefix}`: this phoenix was built without the `s3` feature; rebuild with it or use state = \"local\""
            ),
        )),
    }
}

/// Where an environment's recovery points live: beside its states, in the same backend.
pub async fn recovery_store(project: &Project, spec: &StateSpec) -> Result<Arc<dyn phoenix_state::RecoveryStore>, Failure> {
    match spec {
        StateSpec::Local { dir: None } => Ok(Arc::new(phoenix_state::LocalRecoveryStore::new(project.data_dir().join("state")))),
        StateSpec::Local { dir: Some(d) } => Ok(Arc::new(phoenix_state::LocalRecoveryStore::new(project.root.join(d)))),
        #[cfg(feature = "s3")]
        StateSpec::S3 { bucket, prefix } => Ok(Arc::new(phoenix_state_s3::S3Root::connect(bucket, prefix).await.recovery_store())),
        #[cfg(not(feature = "s3"))]
        StateSpec::S3 { .. } => state_root(project, spec).await.map(|_| unreachable!("state_root refuses S3 without the feature")),
    }
}

/// Maps state errors to exit codes (a lock held elsewhere is not a plain error).
pub fn state_failure(e: StateError) -> Failure {
    match e {
        StateError::Locked(_) | StateError::Leased { .. } => Failure::new(Exit::Locked, anyhow!("{e}")),
        other => Failure::new(Exit::Error, anyhow!("{other}")),
    }
}

/// API requests each provider has sent so far in this process.
pub fn api_calls(registry: &Registry) -> std::collections::BTreeMap<String, u64> {
    registry.provider_names().filter_map(|n| registry.provider(n).map(|p| (n.to_string(), p.api_calls()))).filter(|(_, c)| *c > 0).collect()
}

/// API request counts as people read them with `-v`: `{"aws":12}`.
pub fn show_calls(calls: &std::collections::BTreeMap<String, u64>) -> String {
    serde_json::to_string(calls).unwrap_or_default()
}
