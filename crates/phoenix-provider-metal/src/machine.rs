//! `metal.machine`: claims a machine of the inventory by labels, powers it on
//! (and optionally re-images it) through its BMC, and on destroy wipes it,
//! releases the claim and powers it off when the inventory says so.
//!
//! Resources are deployed onto a claimed machine with `host = "${web-box.name}"`:
//! the reference orders them after the claim on create and before the
//! release on destroy, so a machine is wiped only once Phoenix's files and
//! services on it are gone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Prior, Update};
use phoenix_core::provider::{LogSink, ProviderError};
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::Metal;
use crate::claim::{self, Claim, Outcome};
use crate::config::MetalConfig;
use crate::inventory::Machine;
use crate::transport::{ExecSpec, OutputStream, Transport};

/// The `metal.machine` kind (`Machine` is a machine of the inventory).
pub struct MachineKind;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    /// labels the machine must carry, all of them (e.g. { role = "web" })
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub labels: Option<BTreeMap<String, String>>,
    /// a specific machine of the inventory, by name
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub machine: Option<String>,
    /// re-image: a one-time boot source (Pxe, Cd...) set through the BMC, then a restart
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true, "format" = "boot-target"))]
    pub boot_override: Option<String>,
    /// re-image: an ISO URL inserted as virtual media (boots from Cd unless boot_override says otherwise)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true, "format" = "image-url"))]
    pub image: Option<String>,
    /// commands run over SSH on release, after the inventory's `wipe`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wipe_commands: Option<Vec<String>>,
    /// how long to wait for SSH after a power-on or restart
    #[serde(default = "default_wait_ssh")]
    #[schemars(extend("format" = "positive"))]
    pub wait_ssh_secs: i64,
    /// how long to wait for the BMC to report a power change
    #[serde(default = "default_power_timeout")]
    #[schemars(extend("format" = "positive"))]
    pub power_timeout_secs: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct MachineOutputs {
    /// the claimed machine: use it as `host` of the resources deployed on it
    #[serde(default)]
    #[schemars(extend("stable" = true))]
    pub name: String,
    /// its SSH address
    #[serde(default)]
    #[schemars(extend("stable" = true))]
    pub address: String,
    /// the user Phoenix logs in as
    #[serde(default)]
    #[schemars(extend("stable" = true))]
    pub ssh_user: String,
    /// where relative paths of resources on it live
    #[serde(default)]
    #[schemars(extend("stable" = true))]
    pub root: String,
    /// the owner recorded in the machine's claim file
    #[serde(default)]
    #[schemars(extend("stable" = true))]
    pub claim: String,
    /// its BMC, empty when it has none
    #[serde(default)]
    #[schemars(extend("stable" = true))]
    pub bmc_url: String,
    /// as the BMC reports it (`unmanaged` without a BMC)
    #[serde(default)]
    pub power_state: String,
    /// the boot override the BMC reports
    #[serde(default)]
    pub boot_target: String,
}

fn default_wait_ssh() -> i64 {
    300
}

fn default_power_timeout() -> i64 {
    120
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(n.max(1) as u64)
}

fn describe_labels(l: &BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "{}".into();
    }
    let parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// Inventory machines a definition may take, in name order.
fn candidates(cfg: &MetalConfig, spec: &MachineSpec) -> Result<Vec<Arc<Machine>>, ProviderError> {
    let wanted = spec.labels.clone().unwrap_or_default();
    let only = spec.machine.as_deref();
    if let Some(name) = only {
        cfg.machine(name)?;
    }
    let found: Vec<Arc<Machine>> =
        cfg.machines.values().filter(|m| only.is_none_or(|n| n == m.name) && m.matches(&wanted)).cloned().collect();
    if found.is_empty() {
        let pool: Vec<String> = cfg.machines.values().map(|m| format!("{} {}", m.name, describe_labels(&m.labels))).collect();
        return Err(ProviderError::permanent(format!(
            "no machine in the inventory matches labels {}{} (inventory: {})",
            describe_labels(&wanted),
            only.map(|n| format!(" and machine = \"{n}\"")).unwrap_or_default(),
            if pool.is_empty() { "empty".to_string() } else { pool.join("; ") }
        )));
    }
    Ok(found)
}

fn outputs(m: &Machine, owner: &str, power: &str) -> MachineOutputs {
    MachineOutputs {
        name: m.name.clone(),
        address: m.ssh.address.clone(),
        ssh_user: m.ssh.user.clone(),
        root: m.root.display().to_string(),
        claim: owner.to_string(),
        bmc_url: m.bmc.as_ref().map(|b| b.url().to_string()).unwrap_or_default(),
        power_state: power.to_string(),
        boot_target: String::new(),
    }
}

/// Runs a command on the machine to completion, streaming its lines to the log; a failure carries its stderr tail.
async fn run(t: &dyn Transport, addr: &phoenix_core::ResourceAddr, log: &LogSink, what: &str, command: &str) -> Result<(), ProviderError> {
    let spec = ExecSpec { command: command.into(), workdir: "/".into(), env: Vec::new(), timeout: Some(Duration::from_secs(600)) };
    let stderr = std::sync::Mutex::new(std::collections::VecDeque::new());
    let on_line = |s: OutputStream, l: &str| {
        log(addr, l);
        if s == OutputStream::Stderr {
            let mut q = stderr.lock().unwrap_or_else(|e| e.into_inner());
            if q.len() == 20 {
                q.pop_front();
            }
            q.push_back(l.to_string());
        }
    };
    let exit = t.exec(&spec, &on_line).await?;
    if exit.success() {
        return Ok(());
    }
    let tail: Vec<String> = stderr.into_inner().unwrap_or_else(|e| e.into_inner()).into();
    Err(ProviderError::permanent(format!(
        "{what} `{command}` of `{addr}` failed with {exit}\nlast lines of stderr:\n  {}",
        if tail.is_empty() { "(none)".to_string() } else { tail.join("\n  ") }
    )))
}

/// Polls until a command runs over SSH (after a power-on or a reboot).
async fn wait_ssh(t: &dyn Transport, m: &Machine, timeout: Duration) -> Result<(), ProviderError> {
    let deadline = Instant::now() + timeout;
    let spec = ExecSpec { command: "true".into(), workdir: "/".into(), env: Vec::new(), timeout: Some(Duration::from_secs(30)) };
    loop {
        match t.exec(&spec, &|_, _| {}).await {
            Ok(e) if e.success() => return Ok(()),
            Ok(e) => {
                return Err(ProviderError::permanent(format!("machine `{}`: `true` failed with {e} over SSH", m.name)));
            }
            Err(e @ crate::transport::TransportError::Unreachable(_)) if Instant::now() < deadline => {
                tracing::debug!(machine = %m.name, error = %e, "waiting for SSH");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(ProviderError::from(e)),
        }
    }
}

/// Claims the first free matching machine, then boots it as asked.
async fn create(cfg: &MetalConfig, req: &Create<'_, MachineKind>) -> Result<MachineOutputs, ProviderError> {
    let spec = req.spec;
    let wait_ssh_for = secs(spec.wait_ssh_secs);
    let power_timeout = secs(spec.power_timeout_secs);
    let reimage = spec.boot_override.is_some() || spec.image.is_some();
    let claim = Claim::new(req.ownership);
    let mut refused = Vec::new();
    for m in candidates(cfg, spec)? {
        if reimage && m.bmc.is_none() {
            refused.push(format!("{}: no bmc to set the boot device with", m.name));
            continue;
        }
        let t = cfg.transport(&m.name)?;
        if let Some(bmc) = &m.bmc {
            // A machine must run to be asked for its claim; an Off one is free or idle.
            (req.log)(req.addr, &format!("{}: powering on through the BMC at {} (if off)", m.name, bmc.url()));
            if let Err(e) = bmc.ensure_power(true, power_timeout).await {
                refused.push(format!("{}: {}", m.name, e.message));
                continue;
            }
            if let Err(e) = wait_ssh(t.as_ref(), &m, wait_ssh_for).await {
                refused.push(format!("{}: {}", m.name, e.message));
                continue;
            }
        }
        match claim::claim(t.as_ref(), &m.claim_path(), &claim).await {
            Ok(Outcome::Ours) => {}
            Ok(Outcome::Taken(by)) => {
                refused.push(format!("{}: claimed by {by}", m.name));
                continue;
            }
            Err(e) => {
                refused.push(format!("{}: {}", m.name, e.message));
                continue;
            }
        }
        (req.log)(req.addr, &format!("claimed machine {} ({})", m.name, m.ssh.describe()));
        let mut out = outputs(&m, &claim.owner, if m.bmc.is_some() { "On" } else { "unmanaged" });
        // From here the claim exists: a failure records it (tainted) rather than leaking it.
        if let Err(e) = boot_as_asked(&m, t.as_ref(), req, power_timeout, wait_ssh_for, &mut out).await {
            return Err(e.with_created(phoenix_core::kit::output_attrs(&out)));
        }
        return Ok(out);
    }
    Err(ProviderError::permanent(format!(
        "`{}`: no free machine matches labels {}:\n  {}",
        req.addr,
        describe_labels(&spec.labels.clone().unwrap_or_default()),
        refused.join("\n  ")
    )))
}

/// Optional re-image: insert the image, set a one-time boot override, restart, wait for SSH.
async fn boot_as_asked(
    m: &Machine,
    t: &dyn Transport,
    req: &Create<'_, MachineKind>,
    power_timeout: Duration,
    wait_ssh_for: Duration,
    out: &mut MachineOutputs,
) -> Result<(), ProviderError> {
    let Some(bmc) = &m.bmc else { return Ok(()) };
    let (boot, image) = (req.spec.boot_override.as_deref(), req.spec.image.as_deref());
    let target = match (boot, image) {
        (None, None) => {
            out.boot_target = bmc.info().await?.boot_target.unwrap_or_default();
            return Ok(());
        }
        (Some(b), _) => b,
        (None, Some(_)) => "Cd",
    };
    if let Some(url) = image {
        (req.log)(req.addr, &format!("{}: inserting virtual media {url}", m.name));
        bmc.insert_media(url).await?;
    }
    (req.log)(req.addr, &format!("{}: one-time boot from {target}, restarting", m.name));
    bmc.boot_once(target).await?;
    bmc.reset("ForceRestart").await?;
    bmc.wait_power("On", power_timeout).await?;
    wait_ssh(t, m, wait_ssh_for).await?;
    let info = bmc.info().await?;
    out.power_state = info.power;
    out.boot_target = info.boot_target.unwrap_or_default();
    Ok(())
}

/// Still ours: powered on (per its BMC) and its claim file names us. A lost
/// claim or a machine found off reads as gone, so the plan claims again.
async fn refresh(cfg: &MetalConfig, recorded: &MachineOutputs) -> Result<Option<MachineOutputs>, ProviderError> {
    let (name, owner) = (recorded.name.as_str(), recorded.claim.as_str());
    if name.is_empty() || owner.is_empty() {
        return Ok(None);
    }
    let m = cfg.machine(name)?;
    let mut out = recorded.clone();
    if let Some(bmc) = &m.bmc {
        let info = bmc.info().await?;
        if info.power != "On" {
            tracing::info!(machine = name, power = %info.power, "a claimed machine is not powered on");
            return Ok(None);
        }
        out.power_state = info.power;
        out.boot_target = info.boot_target.unwrap_or_default();
    }
    let t = cfg.transport(name)?;
    match claim::holder_of(t.as_ref(), &m.claim_path()).await? {
        Some(h) if h == owner => Ok(Some(out)),
        other => {
            tracing::warn!(machine = name, holder = ?other, "the claim on a machine is gone or someone else's");
            Ok(None)
        }
    }
}

/// Finds the machine an interrupted create claimed: its claim file names this resource's owner.
async fn adopt(cfg: &MetalConfig, req: &Found<'_, MachineKind>) -> Result<Option<MachineOutputs>, ProviderError> {
    let owner = req.ownership.key();
    for m in candidates(cfg, req.spec)? {
        let t = cfg.transport(&m.name)?;
        match claim::holder_of(t.as_ref(), &m.claim_path()).await {
            Ok(Some(h)) if h == owner => {
                let power = match &m.bmc {
                    Some(b) => b.info().await?.power,
                    None => "unmanaged".into(),
                };
                return Ok(Some(outputs(&m, &owner, &power)));
            }
            Ok(_) => {}
            // Off or unreachable: an interrupted create had not got as far as claiming it.
            Err(e) => {
                tracing::debug!(machine = %m.name, error = %e.message, "cannot read the claim while adopting")
            }
        }
    }
    Ok(None)
}

/// Release: wipe (inventory's `wipe`, then `wipe_commands`), remove the claim,
/// eject media and power off when the inventory says so. A machine whose claim
/// is no longer ours is left untouched.
async fn delete(cfg: &MetalConfig, req: &Delete<'_, MachineKind>) -> Result<(), ProviderError> {
    let name = req.outputs.name.as_str();
    if name.is_empty() {
        return Ok(());
    }
    let owner = if req.outputs.claim.is_empty() { req.ownership.key() } else { req.outputs.claim.clone() };
    let m = cfg.machine(name)?;
    let t = cfg.transport(name)?;
    release(&m, t.as_ref(), req, &owner).await
}

async fn release(m: &Machine, t: &dyn Transport, req: &Delete<'_, MachineKind>, owner: &str) -> Result<(), ProviderError> {
    let power_timeout = secs(req.spec.power_timeout_secs);
    if let Some(bmc) = &m.bmc
        && bmc.info().await?.power != "On"
    {
        // Nothing can be wiped on a machine that is off; its claim file stays until it can be.
        return Err(ProviderError::permanent(format!(
            "machine `{}` is powered off, so it cannot be wiped and released; power it on (or `phoenix state rm` it) and run again",
            m.name
        )));
    }
    match claim::holder_of(t, &m.claim_path()).await? {
        Some(h) if h == owner => {}
        other => {
            (req.log)(
                req.addr,
                &format!(
                    "machine {} is not claimed by this environment (claim: {}); leaving it untouched",
                    m.name,
                    other.as_deref().unwrap_or("none")
                ),
            );
            return Ok(());
        }
    }
    for c in m.wipe.iter().chain(req.spec.wipe_commands.iter().flatten()) {
        (req.log)(req.addr, &format!("{}: wiping: {c}", m.name));
        run(t, req.addr, req.log, "wipe command", c).await?;
    }
    claim::release(t, &m.claim_path(), owner).await?;
    t.remove_empty_dirs(std::slice::from_ref(&m.root)).await?;
    (req.log)(req.addr, &format!("released machine {}", m.name));
    if m.power_off_on_release
        && let Some(bmc) = &m.bmc
    {
        if bmc.inserted_media().await?.is_some() {
            bmc.eject_media().await?;
        }
        (req.log)(req.addr, &format!("{}: powering off through the BMC", m.name));
        bmc.ensure_power(false, power_timeout).await?;
    }
    Ok(())
}

#[async_trait]
impl Kind for MachineKind {
    const TYPE: &'static str = "metal.machine";
    const DESCRIPTION: &'static str = "Claims a machine of the inventory by labels (a claim file on the machine keeps other environments off it), powers it on through its BMC and optionally re-images it; destroy wipes and releases it";
    const FORMATS: &'static [(&'static str, Validator)] = crate::schemas::FORMATS;
    type Client = Metal;
    type Spec = MachineSpec;
    type Outputs = MachineOutputs;

    fn capabilities(&self) -> Capabilities {
        // Only the wipe commands and timeouts change in place; anything else is
        // another claim. An interrupted create leaves a claim file naming this resource.
        Capabilities::managed()
    }

    async fn read(&self, client: &Metal, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        let cfg = client.config()?;
        futures_util::future::try_join_all(
            items.iter().map(|i| async { Ok(refresh(&cfg, &i.outputs).await?.map(|outputs| Observed { spec: i.spec.clone(), outputs })) }),
        )
        .await
    }

    async fn find(&self, client: &Metal, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        let found = adopt(&*client.config()?, &req).await?;
        Ok(found.map(|outputs| Observed { spec: req.spec.clone(), outputs }))
    }

    async fn create(&self, client: &Metal, req: Create<'_, Self>) -> Result<MachineOutputs, ProviderError> {
        create(&*client.config()?, &req).await
    }

    /// Only wipe commands and timeouts are not force-new: they matter on release and nothing changes now.
    async fn update(&self, _: &Metal, req: Update<'_, Self>) -> Result<MachineOutputs, ProviderError> {
        Ok(req.outputs.clone())
    }

    async fn delete(&self, client: &Metal, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        delete(&*client.config()?, &req).await
    }
}
