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
// Only the CLI prints; libraries report through return values, events and tracing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::sync::{Arc, OnceLock, RwLock};

use async_trait::async_trait;
use phoenix_core::kit::KindSet;
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, Provider, ProviderContext, ProviderError, RefreshItem, UpdateRequest,
};
use phoenix_core::schema::ResourceSchema;
use phoenix_core::value::Attrs;

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

/// What every metal kind shares: the configuration (hosts, inventory) and
/// the HTTP client of checks.
#[derive(Default)]
pub struct Metal {
    config: RwLock<Option<Arc<MetalConfig>>>,
    http: OnceLock<reqwest::Client>,
}

impl Metal {
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
}

/// The metal kinds, one line each.
pub(crate) fn kinds() -> KindSet<Metal> {
    KindSet::new().with(file::File).with(service::Service).with(exec::Exec).with(http_check::HttpCheck).with(machine::MachineKind)
}

/// The `metal` provider.
pub struct MetalProvider {
    client: Metal,
    kinds: KindSet<Metal>,
}

impl Default for MetalProvider {
    fn default() -> Self {
        Self { client: Metal::default(), kinds: kinds() }
    }
}

impl MetalProvider {
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration given by [`Provider::configure`].
    pub fn config(&self) -> Result<Arc<MetalConfig>, ProviderError> {
        self.client.config()
    }
}

#[async_trait]
impl Provider for MetalProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn schemas(&self) -> Vec<ResourceSchema> {
        self.kinds.schemas()
    }

    fn configure(&self, cx: &ProviderContext) -> Result<(), ProviderError> {
        let cfg = MetalConfig::from_context(cx)?;
        *self.client.config.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(cfg));
        Ok(())
    }

    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>> {
        self.kinds.refresh(&self.client, &items).await
    }

    async fn adopt(&self, req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        self.kinds.adopt(&self.client, &req).await
    }

    async fn import(&self, _addr: &phoenix_core::ResourceAddr, type_name: &str, id: &str) -> Result<Option<Observed>, ProviderError> {
        self.kinds.import(&self.client, type_name, id).await
    }

    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        self.kinds.create(&self.client, &req).await
    }

    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        self.kinds.update(&self.client, &req).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), ProviderError> {
        self.kinds.delete(&self.client, &req).await
    }
}

/// The default of every `host` input.
pub(crate) fn default_host() -> String {
    config::DEFAULT_HOST.to_string()
}

/// The working directory of a service or command: `workdir` under the root, or the root (created if missing).
pub(crate) async fn workdir(h: &Host, workdir: Option<&str>) -> Result<std::path::PathBuf, ProviderError> {
    match workdir {
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
