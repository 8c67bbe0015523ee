//! `metal.service`: a long-running command, as a systemd unit on hosts that
//! run systemd and as a supervised process elsewhere (see [`crate::init`]).
//! Which one a service got is recorded in its `manager` output, so refresh,
//! update and destroy keep using it whatever the host's settings say later.

mod process;
mod systemd;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Prior, Secret, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use phoenix_core::value::Value;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::Host;
use crate::init::{InitMode, Manager};
use crate::transport::{ExecSpec, Restart};
use crate::{Metal, default_host};

/// How long a new service must stay up before it counts as started.
const STARTUP_GRACE: Duration = Duration::from_millis(200);

pub struct Service;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// the host it lives on: a name under [providers.metal.hosts]
    #[serde(default = "default_host")]
    #[schemars(extend("force_new" = true))]
    pub host: String,
    /// the command line, run with `sh -c` (use `exec` to avoid an extra shell)
    pub command: String,
    /// working directory; relative to the provider root, which is the default
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "workdir"))]
    pub workdir: Option<String>,
    /// extra environment variables
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Secret<BTreeMap<String, String>>>,
    /// any change to these values restarts the service (e.g. a config file's sha256)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_on: Option<BTreeMap<String, Value>>,
    /// seconds between SIGTERM and SIGKILL when stopping
    #[serde(default = "default_stop_timeout")]
    #[schemars(extend("format" = "non-negative"))]
    pub stop_timeout_secs: i64,
    /// when the command is started again after it ends: "on-failure" (the default), "always" or "no"
    #[serde(default = "default_restart")]
    #[schemars(extend("format" = "restart-policy"))]
    pub restart: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ServiceOutputs {
    /// the main process id (for a process: also its process group id)
    #[serde(default)]
    pub pid: u64,
    /// what runs it: "systemd" or "process" (chosen by the host's `init`)
    #[serde(default)]
    #[schemars(extend("stable" = true))]
    pub manager: String,
    /// the systemd unit's name (empty for a process)
    #[serde(default)]
    #[schemars(extend("stable" = true))]
    pub unit: String,
    /// where stdout and stderr are appended
    #[serde(default)]
    #[schemars(extend("stable" = true))]
    pub log_path: String,
    /// the PHOENIX_OWNER mark in the process's environment: how Phoenix finds it again
    #[serde(default)]
    #[schemars(extend("stable" = true))]
    pub owner: String,
}

fn default_stop_timeout() -> i64 {
    10
}

fn default_restart() -> String {
    "on-failure".into()
}

impl ServiceSpec {
    fn stop_timeout(&self) -> Duration {
        Duration::from_secs(self.stop_timeout_secs.max(0) as u64)
    }

    fn restart(&self) -> Result<Restart, ProviderError> {
        Restart::parse(&self.restart)
            .ok_or_else(|| ProviderError::permanent(format!("`restart`: `{}` is not no, on-failure or always", self.restart)))
    }

    /// The environment in clear, which starting the command needs (`to` says for what).
    fn env(&self, to: &str) -> Result<Vec<(String, String)>, ProviderError> {
        match &self.environment {
            None => Ok(Vec::new()),
            Some(Secret::Clear(env)) => Ok(env.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            Some(Secret::Sealed(_)) => Err(ProviderError::permanent(format!("`environment` is sealed: its values are needed to {to}"))),
        }
    }
}

impl ServiceOutputs {
    /// The manager a recorded service runs under (services recorded before managers existed are processes).
    fn manager(&self) -> Manager {
        Manager::parse(&self.manager).unwrap_or(Manager::Process)
    }

    /// The recorded main pid; none when 0 (never a process to signal).
    fn pid(&self) -> Option<u32> {
        u32::try_from(self.pid).ok().filter(|p| *p != 0)
    }
}

/// The manager a new service gets on `h`.
async fn manager_for(h: &Host) -> Result<Manager, ProviderError> {
    match h.init.mode {
        InitMode::Systemd => Ok(Manager::Systemd),
        InitMode::Process => Ok(Manager::Process),
        InitMode::Auto => {
            let spec =
                ExecSpec { command: h.init.detect_script(), workdir: "/".into(), env: Vec::new(), timeout: Some(Duration::from_secs(30)) };
            let exit = h.transport.exec(&spec, &|_, _| {}).await?;
            Ok(if exit.success() { Manager::Systemd } else { Manager::Process })
        }
    }
}

#[async_trait]
impl Kind for Service {
    const TYPE: &'static str = "metal.service";
    const DESCRIPTION: &'static str = "A long-running command: a systemd unit (written, enabled, started) on hosts that run systemd, else a supervised process in its own process group; logged to a file and marked with PHOENIX_OWNER";
    const FORMATS: &'static [(&'static str, Validator)] = crate::schemas::FORMATS;
    type Client = Metal;
    type Spec = ServiceSpec;
    type Outputs = ServiceOutputs;

    fn capabilities(&self) -> Capabilities {
        // A started service is found by PHOENIX_OWNER.
        Capabilities::managed()
    }

    async fn read(&self, client: &Metal, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        let cfg = client.config()?;
        futures_util::future::try_join_all(items.iter().map(|i| async {
            let h = cfg.host(&i.spec.host)?;
            let outputs = match i.outputs.manager() {
                Manager::Systemd => systemd::refresh(&h, &i.outputs).await?,
                Manager::Process => process::refresh(&h, &i.outputs).await?,
            };
            Ok(outputs.map(|outputs| Observed { spec: i.spec.clone(), outputs }))
        }))
        .await
    }

    /// An interrupted create left a unit or a process, depending on the host.
    async fn find(&self, client: &Metal, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        let h = client.config()?.host(&req.spec.host)?;
        let outputs = match manager_for(&h).await? {
            Manager::Systemd => systemd::adopt(&h, req.addr, req.ownership).await?,
            Manager::Process => process::adopt(&h, req.addr, req.spec, req.ownership).await?,
        };
        Ok(outputs.map(|outputs| Observed { spec: req.spec.clone(), outputs }))
    }

    async fn create(&self, client: &Metal, req: Create<'_, Self>) -> Result<ServiceOutputs, ProviderError> {
        let h = client.config()?.host(&req.spec.host)?;
        match manager_for(&h).await? {
            Manager::Systemd => systemd::start(&h, req.addr, req.spec, req.ownership).await,
            Manager::Process => process::start(&h, req.addr, req.spec, req.ownership).await,
        }
    }

    async fn update(&self, client: &Metal, req: Update<'_, Self>) -> Result<ServiceOutputs, ProviderError> {
        let h = client.config()?.host(&req.spec.host)?;
        match req.outputs.manager() {
            Manager::Systemd => systemd::update(&h, &req).await,
            Manager::Process => process::update(&h, &req).await,
        }
    }

    async fn delete(&self, client: &Metal, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let h = client.config()?.host(&req.spec.host)?;
        match req.outputs.manager() {
            Manager::Systemd => systemd::delete(&h, &req).await,
            Manager::Process => process::delete(&h, &req).await,
        }
    }
}

/// A change of the stop timeout alone needs no restart.
fn only_stop_timeout_changed(req: &Update<'_, Service>) -> bool {
    !req.changed.is_empty() && req.changed.iter().all(|c| c == "stop_timeout_secs")
}
