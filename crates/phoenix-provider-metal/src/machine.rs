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

use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, LogSink, Observed, ProviderError, RefreshItem};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;
use tokio::time::Instant;

use crate::claim::{self, Claim, Outcome};
use crate::config::MetalConfig;
use crate::inventory::Machine;
use crate::transport::{ExecSpec, OutputStream, Transport};
use crate::{int, opt_str};

const DEFAULT_WAIT_SSH_SECS: i64 = 300;
const DEFAULT_POWER_TIMEOUT_SECS: i64 = 120;

fn labels(inputs: &Attrs) -> Result<BTreeMap<String, String>, ProviderError> {
    match inputs.get("labels") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(ProviderError::permanent(format!("`labels.{k}` must be a string, found {other}"))),
            })
            .collect(),
        Some(other) => Err(ProviderError::permanent(format!("`labels` must be a table of strings, found {other}"))),
    }
}

fn commands(inputs: &Attrs, name: &str) -> Result<Vec<String>, ProviderError> {
    match inputs.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|c| c.as_str().map(str::to_string).ok_or_else(|| ProviderError::permanent(format!("`{name}` must be a list of strings"))))
            .collect(),
        Some(other) => Err(ProviderError::permanent(format!("`{name}` must be a list of strings, found {other}"))),
    }
}

fn secs(inputs: &Attrs, name: &str, default: i64) -> Result<Duration, ProviderError> {
    Ok(Duration::from_secs(int(inputs, name, default)?.max(1) as u64))
}

fn describe_labels(l: &BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "{}".into();
    }
    let parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

/// Inventory machines a definition may take, in name order.
fn candidates(cfg: &MetalConfig, inputs: &Attrs) -> Result<Vec<Arc<Machine>>, ProviderError> {
    let wanted = labels(inputs)?;
    let only = opt_str(inputs, "machine")?;
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

fn outputs(m: &Machine, owner: &str, power: &str, boot_target: Option<&str>) -> Attrs {
    let mut o = Attrs::new();
    o.insert("name".into(), json!(m.name));
    o.insert("address".into(), json!(m.ssh.address));
    o.insert("ssh_user".into(), json!(m.ssh.user));
    o.insert("root".into(), json!(m.root.display().to_string()));
    o.insert("claim".into(), json!(owner));
    o.insert("bmc_url".into(), json!(m.bmc.as_ref().map(|b| b.url().to_string()).unwrap_or_default()));
    o.insert("power_state".into(), json!(power));
    o.insert("boot_target".into(), json!(boot_target.unwrap_or_default()));
    o
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
pub async fn create(cfg: &MetalConfig, req: &CreateRequest) -> Result<Attrs, ProviderError> {
    let inputs = &req.inputs;
    let wait_ssh_for = secs(inputs, "wait_ssh_secs", DEFAULT_WAIT_SSH_SECS)?;
    let power_timeout = secs(inputs, "power_timeout_secs", DEFAULT_POWER_TIMEOUT_SECS)?;
    let boot = opt_str(inputs, "boot_override")?;
    let image = opt_str(inputs, "image")?;
    let claim = Claim::new(&req.ownership);
    let mut refused = Vec::new();
    for m in candidates(cfg, inputs)? {
        if (boot.is_some() || image.is_some()) && m.bmc.is_none() {
            refused.push(format!("{}: no bmc to set the boot device with", m.name));
            continue;
        }
        let t = cfg.transport(&m.name)?;
        if let Some(bmc) = &m.bmc {
            // A machine must run to be asked for its claim; an Off one is free or idle.
            (req.log)(&req.addr, &format!("{}: powering on through the BMC at {} (if off)", m.name, bmc.url()));
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
        (req.log)(&req.addr, &format!("claimed machine {} ({})", m.name, m.ssh.describe()));
        let mut out = outputs(&m, &claim.owner, if m.bmc.is_some() { "On" } else { "unmanaged" }, None);
        // From here the claim exists: a failure records it (tainted) rather than leaking it.
        if let Err(e) = boot_as_asked(&m, t.as_ref(), req, boot, image, power_timeout, wait_ssh_for, &mut out).await {
            return Err(e.with_created(out));
        }
        return Ok(out);
    }
    Err(ProviderError::permanent(format!(
        "`{}`: no free machine matches labels {}:\n  {}",
        req.addr,
        describe_labels(&labels(inputs)?),
        refused.join("\n  ")
    )))
}

/// Optional re-image: insert the image, set a one-time boot override, restart, wait for SSH.
#[allow(clippy::too_many_arguments)]
async fn boot_as_asked(
    m: &Machine,
    t: &dyn Transport,
    req: &CreateRequest,
    boot: Option<&str>,
    image: Option<&str>,
    power_timeout: Duration,
    wait_ssh_for: Duration,
    out: &mut Attrs,
) -> Result<(), ProviderError> {
    let Some(bmc) = &m.bmc else { return Ok(()) };
    let target = match (boot, image) {
        (None, None) => {
            out.insert("boot_target".into(), json!(bmc.info().await?.boot_target.unwrap_or_default()));
            return Ok(());
        }
        (Some(b), _) => b,
        (None, Some(_)) => "Cd",
    };
    if let Some(url) = image {
        (req.log)(&req.addr, &format!("{}: inserting virtual media {url}", m.name));
        bmc.insert_media(url).await?;
    }
    (req.log)(&req.addr, &format!("{}: one-time boot from {target}, restarting", m.name));
    bmc.boot_once(target).await?;
    bmc.reset("ForceRestart").await?;
    bmc.wait_power("On", power_timeout).await?;
    wait_ssh(t, m, wait_ssh_for).await?;
    let info = bmc.info().await?;
    out.insert("power_state".into(), json!(info.power));
    out.insert("boot_target".into(), json!(info.boot_target.unwrap_or_default()));
    Ok(())
}

/// Still ours: powered on (per its BMC) and its claim file names us. A lost
/// claim or a machine found off reads as gone, so the plan claims again.
pub async fn refresh(cfg: &MetalConfig, item: &RefreshItem) -> Result<Option<Observed>, ProviderError> {
    let (Some(name), Some(owner)) = (item.outputs.get("name").and_then(Value::as_str), item.outputs.get("claim").and_then(Value::as_str))
    else {
        return Ok(None);
    };
    let m = cfg.machine(name)?;
    let mut out = item.outputs.clone();
    if let Some(bmc) = &m.bmc {
        let info = bmc.info().await?;
        if info.power != "On" {
            tracing::info!(machine = name, power = %info.power, "a claimed machine is not powered on");
            return Ok(None);
        }
        out.insert("power_state".into(), json!(info.power));
        out.insert("boot_target".into(), json!(info.boot_target.unwrap_or_default()));
    }
    let t = cfg.transport(name)?;
    match claim::holder_of(t.as_ref(), &m.claim_path()).await? {
        Some(h) if h == owner => Ok(Some(Observed { inputs: item.inputs.clone(), outputs: out })),
        other => {
            tracing::warn!(machine = name, holder = ?other, "the claim on a machine is gone or someone else's");
            Ok(None)
        }
    }
}

/// Finds the machine an interrupted create claimed: its claim file names this resource's owner.
pub async fn adopt(cfg: &MetalConfig, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
    let owner = req.ownership.key();
    for m in candidates(cfg, &req.inputs)? {
        let t = cfg.transport(&m.name)?;
        match claim::holder_of(t.as_ref(), &m.claim_path()).await {
            Ok(Some(h)) if h == owner => {
                let power = match &m.bmc {
                    Some(b) => b.info().await?.power,
                    None => "unmanaged".into(),
                };
                return Ok(Some(Observed { inputs: req.inputs.clone(), outputs: outputs(&m, &owner, &power, None) }));
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
pub async fn delete(cfg: &MetalConfig, req: &DeleteRequest) -> Result<(), ProviderError> {
    let Some(name) = req.outputs.get("name").and_then(Value::as_str) else { return Ok(()) };
    let owner = req.outputs.get("claim").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| req.ownership.key());
    let m = cfg.machine(name)?;
    let t = cfg.transport(name)?;
    release(&m, t.as_ref(), req, &owner).await
}

async fn release(m: &Machine, t: &dyn Transport, req: &DeleteRequest, owner: &str) -> Result<(), ProviderError> {
    let power_timeout = secs(&req.inputs, "power_timeout_secs", DEFAULT_POWER_TIMEOUT_SECS)?;
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
                &req.addr,
                &format!(
                    "machine {} is not claimed by this environment (claim: {}); leaving it untouched",
                    m.name,
                    other.as_deref().unwrap_or("none")
                ),
            );
            return Ok(());
        }
    }
    for c in m.wipe.iter().chain(commands(&req.inputs, "wipe_commands")?.iter()) {
        (req.log)(&req.addr, &format!("{}: wiping: {c}", m.name));
        run(t, &req.addr, &req.log, "wipe command", c).await?;
    }
    claim::release(t, &m.claim_path(), owner).await?;
    t.remove_empty_dirs(std::slice::from_ref(&m.root)).await?;
    (req.log)(&req.addr, &format!("released machine {}", m.name));
    if m.power_off_on_release
        && let Some(bmc) = &m.bmc
    {
        if bmc.inserted_media().await?.is_some() {
            bmc.eject_media().await?;
        }
        (req.log)(&req.addr, &format!("{}: powering off through the BMC", m.name));
        bmc.ensure_power(false, power_timeout).await?;
    }
    Ok(())
}
