//! The composition root: the providers and state backends this binary has,
//! and loading an environment for a command through the engine.

use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use phoenix_config::{LoadedEnvironment, Project, StateSpec};
use phoenix_core::provider::Registry;
use phoenix_state::{LocalRoot, StateRoot};

use crate::args::{EnvArgs, Global};
use crate::exit::{Exit, Failure};

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

pub use phoenix_engine::env::{Env, state_failure};

/// This binary's providers and state backends, for the engine.
struct CliHost;

#[async_trait::async_trait]
impl phoenix_engine::env::Host for CliHost {
    fn registry(&self) -> Registry {
        registry()
    }
    async fn state_root(&self, project: &Project, spec: &StateSpec) -> Result<Arc<dyn StateRoot>, Failure> {
        state_root(project, spec).await
    }
    async fn recovery_store(&self, project: &Project, spec: &StateSpec) -> Result<Arc<dyn phoenix_state::RecoveryStore>, Failure> {
        recovery_store(project, spec).await
    }
}

pub fn host() -> Arc<dyn phoenix_engine::env::Host> {
    Arc::new(CliHost)
}

/// Loads and validates an environment (invalid definitions end the command).
pub fn load(global: &Global, args: &EnvArgs) -> Result<Env, Failure> {
    phoenix_engine::env::load(&host(), project(global)?, &args.env, &args.load_options())
}

/// Loads and renders an environment's definition without validating it.
pub fn load_definition(project: &Project, name: &str, opts: &phoenix_config::LoadOptions) -> Result<LoadedEnvironment, Failure> {
    phoenix_engine::env::load_definition(project, name, opts)
}

/// An environment of a definition loaded without validation.
pub fn env_of(project: Project, loaded: LoadedEnvironment) -> Env {
    Env { project, loaded, registry: registry(), host: host() }
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

/// API request counts as people read them with `-v`: `{"aws":12}`.
pub fn show_calls(calls: &std::collections::BTreeMap<String, u64>) -> String {
    serde_json::to_string(calls).unwrap_or_default()
}
