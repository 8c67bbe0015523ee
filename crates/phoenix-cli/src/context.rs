//! Loading an environment for a command: project, definition, providers, state.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use phoenix_config::{Diagnostics, LoadOptions, LoadedEnvironment, Project, StateSpec};
use phoenix_core::provider::{ProviderContext, Registry};
use phoenix_core::state::StateDoc;
use phoenix_state::{LocalStore, LockInfo, StateError, StateLock};

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
    let opts = LoadOptions { vars: args.vars.clone(), instance: args.instance.clone() };
    let loaded = project.load(&args.env, &opts).map_err(|d| invalid(printer, d))?;
    let registry = registry();
    let names: Vec<&str> = registry.provider_names().filter(|n| *n != phoenix_core::builtin::PROVIDER_NAME).collect();
    let problems = loaded.validate(registry.schemas(), &names);
    if !problems.is_empty() {
        return Err(invalid(printer, problems));
    }
    Ok(Env { project, loaded, registry })
}

/// Prints diagnostics and turns them into the "invalid" exit.
pub fn invalid(printer: &Printer, d: Diagnostics) -> Failure {
    printer.diagnostics(&d);
    Failure::new(Exit::Invalid, anyhow!("{d}"))
}

impl Env {
    /// Phoenix's working directory for this environment (and instance).
    pub fn data_dir(&self) -> PathBuf {
        self.project.data_dir().join("env").join(self.loaded.state_key())
    }

    /// Configures the providers the definition or the state uses (or that have a block).
    /// Reads configuration only: no API calls.
    pub fn configure_providers(&self, printer: &Printer, state: &StateDoc) -> Result<(), Failure> {
        let mut used: std::collections::BTreeSet<String> = self.loaded.providers.keys().cloned().collect();
        used.extend(self.loaded.definition.resources.values().map(|r| r.provider_name().to_string()));
        used.extend(state.resources.values().map(|r| phoenix_core::definition::provider_of(&r.type_name).to_string()));
        let mut problems = Diagnostics::default();
        for name in used {
            let Some(provider) = self.registry.provider(&name) else { continue };
            let cx = ProviderContext {
                environment: self.loaded.name.clone(),
                instance: self.loaded.instance.clone(),
                project_dir: self.project.root.clone(),
                data_dir: self.data_dir(),
                config: self.loaded.provider_config(&name),
            };
            if let Err(e) = provider.configure(&cx) {
                problems.push(self.loaded.provider_diagnostic(&name, format!("provider `{name}`: {}", e.message)));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(invalid(printer, problems)) }
    }

    /// The state store of this environment (and instance).
    pub fn store(&self) -> Result<LocalStore, Failure> {
        let key = self.loaded.state_key();
        match &self.loaded.state {
            StateSpec::Local { dir: None } => Ok(LocalStore::new(self.project.data_dir().join("state").join(key))),
            StateSpec::Local { dir: Some(d) } => Ok(LocalStore::new(self.project.root.join(d).join(key))),
            StateSpec::S3 { bucket, prefix } => Err(Failure::new(
                Exit::Error,
                anyhow!(
                    "state `s3://{bucket}/{prefix}`: the S3 state backend is not built into this phoenix yet; use the local backend (state = \"local\")"
                ),
            )),
        }
    }

    /// Reads state without locking (for read-only commands).
    pub fn read_state(&self) -> Result<StateDoc, Failure> {
        let store = self.store()?;
        store.load(&self.loaded.name, self.loaded.instance.as_deref()).map_err(state_failure)
    }

    /// Locks state for a changing command and finishes whatever a crashed run left in the journal.
    pub fn lock_state(
        &self,
        operation: &str,
        run_id: &str,
        timeout: std::time::Duration,
        printer: &Printer,
    ) -> Result<(LocalStore, StateLock, StateDoc), Failure> {
        let store = self.store()?;
        let info = LockInfo::new(operation, run_id);
        let lock = if timeout.is_zero() { store.lock(info) } else { store.lock_wait(info, timeout) }.map_err(state_failure)?;
        let (state, replayed) = store.recover(&lock, &self.loaded.name, self.loaded.instance.as_deref()).map_err(state_failure)?;
        if replayed > 0 {
            printer.note(&format!("recovered {replayed} journal record(s) from an interrupted run"));
        }
        Ok((store, lock, state))
    }
}

/// Maps state errors to exit codes (a lock held elsewhere is not a plain error).
pub fn state_failure(e: StateError) -> Failure {
    match e {
        StateError::Locked(_) => Failure::new(Exit::Locked, anyhow!("{e}")),
        other => Failure::new(Exit::Error, anyhow!("{other}")),
    }
}

/// API requests each provider has sent so far in this process.
pub fn api_calls(registry: &Registry) -> serde_json::Value {
    registry
        .provider_names()
        .filter_map(|n| registry.provider(n).map(|p| (n.to_string(), p.api_calls())))
        .filter(|(_, c)| *c > 0)
        .map(|(n, c)| (n, serde_json::Value::from(c)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}
