//! Phoenix's bare-metal provider (`metal`): machines claimed from an
//! inventory, and files, long-running services, deployment commands and HTTP
//! checks on hosts.
//!
//! ```text
//!   metal.file / .service / .exec / .http_check        metal.machine
//!                     |                                 |        |
//!              Transport (trait)                   claim file   redfish::Bmc
//!               /            \                     (over SSH)   (reqwest, rustls)
//!     LocalTransport      SshTransport (russh)
//!     this machine        one connection per host, a sh script per operation
//! ```
//!
//! Every host operation goes through a [`transport::Transport`]: `local` (the
//! machine Phoenix runs on) or `ssh` (a host, or a machine of the inventory,
//! see [`inventory`]). Relative paths of every resource live under its
//! host's root; Phoenix's own bookkeeping (pid files, service logs) lives in
//! `<root>/.phoenix-metal/`, and deleting the last resource removes both when
//! they are left empty.
//!
//! ```toml
//! [providers.metal]
//! root = "build/metal"                      # the local root; default: <data dir>/work
//! hosts = { local = { transport = "local" } } # the default
//! [providers.metal.machines.node-1]         # the inventory (see `inventory`)
//! address = "10.0.0.11"
//! user = "deploy"
//! key = "~/.ssh/id_ed25519"
//! labels = { role = "web" }
//! ```

use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, Provider, ProviderContext, ProviderError, RefreshItem, UpdateRequest,
};
use phoenix_core::schema::ResourceSchema;
use phoenix_core::value::{Attrs, Value, is_sealed};

mod claim;
mod config;
mod exec;
mod file;
mod http_check;
pub mod init;
pub mod inventory;
pub mod local;
mod machine;
pub mod redfish;
pub mod schemas;
mod service;
pub mod ssh;
mod supervise;
mod tls;
pub mod transport;

pub use config::{BOOKKEEPING_DIR, Host, MetalConfig};
pub use local::LocalTransport;
pub use ssh::{HostKeyCheck, SshTarget, SshTransport};
pub use transport::{OwnerMark, Transport};

pub const PROVIDER_NAME: &str = "metal";
/// The environment variable that marks a process with its owner (`Ownership::key()`).
pub const OWNER_ENV: &str = "PHOENIX_OWNER";
/// Starts the line written to a service log before each start.
pub const LOG_HEADER: &str = "--- phoenix: starting service ";

/// The `metal` provider.
#[derive(Default)]
pub struct MetalProvider {
    config: RwLock<Option<Arc<MetalConfig>>>,
    http: OnceLock<reqwest::Client>,
}

impl MetalProvider {
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration given by [`Provider::configure`].
    pub fn config(&self) -> Result<Arc<MetalConfig>, ProviderError> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| ProviderError::permanent("the metal provider was used before it was configured"))
    }

    fn http(&self) -> Result<&reqwest::Client, ProviderError> {
        if let Some(c) = self.http.get() {
            return Ok(c);
        }
        let client = http_check::client()?;
        Ok(self.http.get_or_init(|| client))
    }

    async fn refresh_one(&self, item: RefreshItem) -> Result<Option<Observed>, ProviderError> {
        let cfg = self.config()?;
        match item.type_name.as_str() {
            schemas::FILE => file::refresh(&cfg, &item).await,
            schemas::SERVICE => service::refresh(&cfg, &item).await,
            schemas::EXEC => {
                // A command has run; nothing of it stays to be read back.
                cfg.transport(host(&item.inputs))?;
                Ok(Some(Observed { inputs: item.inputs, outputs: item.outputs }))
            }
            schemas::HTTP_CHECK => http_check::refresh(self.http()?, &cfg, &item).await,
            schemas::MACHINE => machine::refresh(&cfg, &item).await,
            other => Err(unknown_type(other)),
        }
    }
}

fn unknown_type(t: &str) -> ProviderError {
    ProviderError::permanent(format!("the metal provider has no resource type `{t}`"))
}

#[async_trait]
impl Provider for MetalProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn schemas(&self) -> Vec<ResourceSchema> {
        schemas::all()
    }

    fn configure(&self, cx: &ProviderContext) -> Result<(), ProviderError> {
        let cfg = MetalConfig::from_context(cx)?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(cfg));
        Ok(())
    }

    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>> {
        futures_util::future::join_all(items.into_iter().map(|i| self.refresh_one(i))).await
    }

    async fn adopt(&self, req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let cfg = self.config()?;
        match req.type_name.as_str() {
            schemas::FILE => file::adopt(&cfg, &req).await,
            schemas::SERVICE => service::adopt(&cfg, &req).await,
            // Commands and checks leave nothing to find: they simply run again.
            schemas::EXEC | schemas::HTTP_CHECK => Ok(None),
            schemas::MACHINE => machine::adopt(&cfg, &req).await,
            other => Err(unknown_type(other)),
        }
    }

    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        let cfg = self.config()?;
        match req.type_name.as_str() {
            schemas::FILE => file::write(&cfg, &req.inputs).await,
            schemas::SERVICE => service::start(&cfg, &req.addr, &req.inputs, &req.ownership).await,
            schemas::EXEC => exec::run(&cfg, &req.addr, &req.inputs, &req.ownership, &req.log, exec::Phase::Create).await,
            schemas::HTTP_CHECK => http_check::wait(self.http()?, &cfg, &req.addr, &req.inputs, &req.log).await,
            schemas::MACHINE => machine::create(&cfg, &req).await,
            other => Err(unknown_type(other)),
        }
    }

    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        let cfg = self.config()?;
        match req.type_name.as_str() {
            schemas::FILE => file::write(&cfg, &req.inputs).await,
            schemas::SERVICE => service::update(&cfg, &req).await,
            schemas::EXEC => exec::update(&cfg, &req).await,
            schemas::HTTP_CHECK => http_check::wait(self.http()?, &cfg, &req.addr, &req.inputs, &req.log).await,
            // Only wipe commands and timeouts are not force-new: they matter on release and nothing changes now.
            schemas::MACHINE => Ok(req.prior_outputs.clone()),
            other => Err(unknown_type(other)),
        }
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), ProviderError> {
        let cfg = self.config()?;
        match req.type_name.as_str() {
            schemas::FILE => file::delete(&cfg, &req).await,
            schemas::SERVICE => service::delete(&cfg, &req).await,
            schemas::EXEC => exec::delete(&cfg, &req).await,
            schemas::HTTP_CHECK => Ok(()),
            schemas::MACHINE => machine::delete(&cfg, &req).await,
            other => Err(unknown_type(other)),
        }
    }
}

// ---- attribute access ----

pub(crate) fn host(inputs: &Attrs) -> &str {
    inputs.get("host").and_then(Value::as_str).unwrap_or(config::DEFAULT_HOST)
}

pub(crate) fn req_str<'a>(inputs: &'a Attrs, name: &str) -> Result<&'a str, ProviderError> {
    match inputs.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ProviderError::permanent(format!("`{name}` must be a string, found {other}"))),
        None => Err(ProviderError::permanent(format!("`{name}` is required"))),
    }
}

pub(crate) fn opt_str<'a>(inputs: &'a Attrs, name: &str) -> Result<Option<&'a str>, ProviderError> {
    match inputs.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => req_str(inputs, name).map(Some),
    }
}

pub(crate) fn int(inputs: &Attrs, name: &str, default: i64) -> Result<i64, ProviderError> {
    match inputs.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_i64().ok_or_else(|| ProviderError::permanent(format!("`{name}` must be an integer, found {v}"))),
    }
}

/// `Ok(None)` when the table is sealed (state never holds sensitive values).
pub(crate) fn env_vars(inputs: &Attrs, name: &str) -> Result<Option<Vec<(String, String)>>, ProviderError> {
    match inputs.get(name) {
        None | Some(Value::Null) => Ok(Some(Vec::new())),
        Some(v) if is_sealed(v) => Ok(None),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(ProviderError::permanent(format!("`{name}.{k}` must be a string, found {other}"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ProviderError::permanent(format!("`{name}` must be a table of strings, found a {}", kind(other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "table",
    }
}

/// The working directory of a service or command: `workdir` under the root, or the root (created if missing).
pub(crate) async fn workdir(h: &Host, inputs: &Attrs) -> Result<std::path::PathBuf, ProviderError> {
    match opt_str(inputs, "workdir")? {
        Some(w) => {
            let dir = h.resolve("workdir", w)?;
            if dir == h.root {
                h.transport.create_dir_all(&dir).await?;
            }
            Ok(dir)
        }
        None => {
            h.transport.create_dir_all(&h.root).await?;
            Ok(h.root.clone())
        }
    }
}

/// Removes the bookkeeping directories and the root when they are empty.
pub(crate) async fn prune(h: &Host, mut deeper: Vec<std::path::PathBuf>) -> Result<(), ProviderError> {
    deeper.extend(h.prunable_dirs());
    h.transport.remove_empty_dirs(&deeper).await?;
    Ok(())
}
