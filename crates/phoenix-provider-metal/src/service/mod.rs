//! `metal.service`: a long-running command, as a systemd unit on hosts that
//! run systemd and as a supervised process elsewhere (see [`crate::init`]).
//! Which one a service got is recorded in its `manager` output, so refresh,
//! update and destroy keep using it whatever the host's settings say later.

mod process;
mod systemd;

use std::time::Duration;

use phoenix_core::addr::ResourceAddr;
use phoenix_core::provider::{AdoptRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::state::Ownership;
use phoenix_core::value::{Attrs, Value};

use crate::config::{Host, MetalConfig};
use crate::init::{InitMode, Manager};
use crate::transport::{ExecSpec, Restart};
use crate::{host, int, opt_str};

/// How long a new service must stay up before it counts as started.
const STARTUP_GRACE: Duration = Duration::from_millis(200);
const DEFAULT_STOP_TIMEOUT: i64 = 10;

fn stop_timeout(inputs: &Attrs) -> Duration {
    Duration::from_secs(int(inputs, "stop_timeout_secs", DEFAULT_STOP_TIMEOUT).unwrap_or(DEFAULT_STOP_TIMEOUT).max(0) as u64)
}

fn restart(inputs: &Attrs) -> Result<Restart, ProviderError> {
    match opt_str(inputs, "restart")? {
        None => Ok(Restart::default()),
        Some(s) => Restart::parse(s).ok_or_else(|| ProviderError::permanent(format!("`restart`: `{s}` is not no, on-failure or always"))),
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

/// The manager a recorded service runs under (services recorded before managers existed are processes).
fn recorded(outputs: &Attrs) -> Manager {
    outputs.get("manager").and_then(Value::as_str).and_then(Manager::parse).unwrap_or(Manager::Process)
}

pub async fn start(cfg: &MetalConfig, addr: &ResourceAddr, inputs: &Attrs, ownership: &Ownership) -> Result<Attrs, ProviderError> {
    let h = cfg.host(host(inputs))?;
    match manager_for(&h).await? {
        Manager::Systemd => systemd::start(&h, addr, inputs, ownership).await,
        Manager::Process => process::start(&h, addr, inputs, ownership).await,
    }
}

pub async fn update(cfg: &MetalConfig, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
    let h = cfg.host(host(&req.inputs))?;
    match recorded(&req.prior_outputs) {
        Manager::Systemd => systemd::update(&h, req).await,
        Manager::Process => process::update(&h, req).await,
    }
}

pub async fn refresh(cfg: &MetalConfig, item: &RefreshItem) -> Result<Option<Observed>, ProviderError> {
    let h = cfg.host(host(&item.inputs))?;
    match recorded(&item.outputs) {
        Manager::Systemd => systemd::refresh(&h, item).await,
        Manager::Process => process::refresh(&h, item).await,
    }
}

/// An interrupted create left a unit or a process, depending on the host.
pub async fn adopt(cfg: &MetalConfig, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
    let h = cfg.host(host(&req.inputs))?;
    match manager_for(&h).await? {
        Manager::Systemd => systemd::adopt(&h, req).await,
        Manager::Process => process::adopt(&h, req).await,
    }
}

pub async fn delete(cfg: &MetalConfig, req: &DeleteRequest) -> Result<(), ProviderError> {
    let h = cfg.host(host(&req.inputs))?;
    match recorded(&req.outputs) {
        Manager::Systemd => systemd::delete(&h, req).await,
        Manager::Process => process::delete(&h, req).await,
    }
}
