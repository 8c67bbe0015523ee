//! `metal.service` as a supervised process (hosts without systemd): started
//! detached in its own process group under [`crate::supervise`], found again
//! by its owner mark.

use std::path::PathBuf;
use std::time::Duration;

use phoenix_core::addr::ResourceAddr;
use phoenix_core::kit::{Delete, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::state::Ownership;

use super::{Service, ServiceOutputs, ServiceSpec as Spec, only_stop_timeout_changed};
use crate::config::Host;
use crate::init::Manager;
use crate::supervise::exited_within;
use crate::transport::{OwnerMark, ServiceSpec, Transport, TransportError};
use crate::{LOG_HEADER, OWNER_ENV, prune, workdir};

const LOG_TAIL_LINES: usize = 20;
/// A command that ends sooner than this after its start failed to start (a
/// bad flag, a missing file), rather than crashed while serving.
const FAILED_START_MS: u64 = 1000;

/// `PHOENIX_OWNER=<ownership key>`: finds a service again and tells it from
/// an unrelated process that got a dead service's pid. The key holds the state
/// lineage, so two checkouts of one environment never take each other's services.
fn owner_mark(key: String) -> OwnerMark {
    OwnerMark { vars: vec![(OWNER_ENV.to_string(), key)] }
}

fn outputs(pid: u32, log_path: &std::path::Path, ownership: &Ownership) -> ServiceOutputs {
    ServiceOutputs {
        pid: pid.into(),
        log_path: log_path.display().to_string(),
        owner: ownership.key(),
        manager: Manager::Process.as_str().into(),
        unit: String::new(),
    }
}

fn log_path(h: &Host, addr: &ResourceAddr, outputs: &ServiceOutputs) -> PathBuf {
    if outputs.log_path.is_empty() { h.log_path(addr.as_str()) } else { PathBuf::from(&outputs.log_path) }
}

async fn read_pid_file(t: &dyn Transport, path: &std::path::Path) -> Option<u32> {
    let f = t.read_file(path).await.ok()??;
    String::from_utf8_lossy(&f.content).trim().parse().ok()
}

/// What the latest start wrote to the log (the lines after its header).
pub(super) async fn since_start(t: &dyn Transport, path: &std::path::Path) -> Option<String> {
    let bytes = t.tail_file(path, 16 * 1024).await.ok()??;
    let text = String::from_utf8_lossy(&bytes);
    Some(text.rfind(LOG_HEADER).and_then(|i| text[i..].find('\n').map(|j| text[i + j + 1..].to_string())).unwrap_or(text.into_owned()))
}

/// The last lines the latest start wrote to the log, indented, for an error.
pub(super) async fn log_tail(t: &dyn Transport, path: &std::path::Path) -> String {
    let Some(text) = since_start(t, path).await else { return "(no log)".into() };
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n  ");
    if tail.trim().is_empty() { "(the log is empty)".into() } else { format!("  {tail}") }
}

pub async fn start(h: &Host, addr: &ResourceAddr, inputs: &Spec, ownership: &Ownership) -> Result<ServiceOutputs, ProviderError> {
    let t = h.transport.clone();
    let command = inputs.command.clone();
    let workdir = workdir(h, inputs.workdir.as_deref()).await?;
    let env = inputs.env("start the service")?;
    let log_path = h.log_path(addr.as_str());
    let spec = ServiceSpec {
        name: addr.to_string(),
        command,
        workdir,
        env,
        mark: owner_mark(ownership.key()),
        log_path: log_path.clone(),
        restart: inputs.restart()?,
    };
    let pid = match t.start_service(&spec).await {
        Err(TransportError::MissingWorkdir(d)) if d == h.root => {
            // A concurrent delete pruned the (then empty) root after it was made.
            t.create_dir_all(&h.root).await?;
            t.start_service(&spec).await?
        }
        r => r?,
    };
    tokio::time::sleep(super::STARTUP_GRACE).await;
    let running = t.service_running(pid, &owner_mark(ownership.key())).await?;
    // The supervisor keeps a crashing command alive: its exit line in the log tells.
    let exited = since_start(t.as_ref(), &log_path).await.is_some_and(|l| exited_within(&l, FAILED_START_MS));
    if !running || exited {
        let tail = log_tail(t.as_ref(), &log_path).await;
        if running {
            stop(h, t.as_ref(), addr, pid, ownership, inputs.stop_timeout()).await?;
        }
        return Err(ProviderError::permanent(format!(
            "service `{addr}` exited within {FAILED_START_MS} ms of starting; last lines of {}:\n{tail}",
            log_path.display()
        )));
    }
    let out = outputs(pid, &log_path, ownership);
    let pid_path = h.pid_path(addr.as_str());
    if let Err(e) = t.write_file(&pid_path, format!("{pid}\n").as_bytes(), 0o644, None).await {
        // It runs: record it (tainted) rather than leak it.
        return Err(ProviderError::from(e).with_created(phoenix_core::kit::output_attrs(&out)));
    }
    Ok(out)
}

async fn stop(
    h: &Host,
    t: &dyn Transport,
    addr: &ResourceAddr,
    pid: u32,
    ownership: &Ownership,
    timeout: Duration,
) -> Result<(), ProviderError> {
    let outcome = t.stop_service(pid, &owner_mark(ownership.key()), timeout).await?;
    tracing::debug!(%addr, pid, ?outcome, root = %h.root.display(), "stopped service");
    Ok(())
}

/// Any change restarts the service (stop, then start), except a change of the stop timeout alone.
pub async fn update(h: &Host, req: &Update<'_, Service>) -> Result<ServiceOutputs, ProviderError> {
    let t = h.transport.clone();
    let pid = req.outputs.pid();
    if only_stop_timeout_changed(req)
        && let Some(pid) = pid
        && t.service_running(pid, &owner_mark(req.ownership.key())).await?
    {
        return Ok(req.outputs.clone());
    }
    if let Some(pid) = pid {
        stop(h, t.as_ref(), req.addr, pid, req.ownership, req.prior.stop_timeout()).await?;
    }
    start(h, req.addr, req.spec, req.ownership).await
}

/// Running: the recorded pid is alive and carries this resource's owner mark
/// (not a dead service whose pid was reused).
pub async fn refresh(h: &Host, recorded: &ServiceOutputs) -> Result<Option<ServiceOutputs>, ProviderError> {
    let (Some(pid), false) = (recorded.pid(), recorded.owner.is_empty()) else { return Ok(None) };
    let running = h.transport.service_running(pid, &owner_mark(recorded.owner.clone())).await?;
    let mut outputs = recorded.clone();
    // Recorded before services had managers: it is a process.
    if outputs.manager.is_empty() {
        outputs.manager = Manager::Process.as_str().into();
    }
    Ok(running.then_some(outputs))
}

/// Finds the service an interrupted create started, by its owner mark. When
/// several run (more than one interrupted run), keeps one and stops the others.
pub async fn adopt(h: &Host, addr: &ResourceAddr, spec: &Spec, ownership: &Ownership) -> Result<Option<ServiceOutputs>, ProviderError> {
    let t = h.transport.clone();
    let found = t.find_services(&owner_mark(ownership.key())).await?;
    let Some(&oldest) = found.first() else { return Ok(None) };
    let pid_path = h.pid_path(addr.as_str());
    let recorded = read_pid_file(t.as_ref(), &pid_path).await;
    let keep = recorded.filter(|p| found.contains(p)).unwrap_or(oldest);
    for &other in found.iter().filter(|&&p| p != keep) {
        tracing::info!(%addr, pid = other, kept = keep, "stopping a duplicate service");
        stop(h, t.as_ref(), addr, other, ownership, spec.stop_timeout()).await?;
    }
    if recorded != Some(keep) {
        t.write_file(&pid_path, format!("{keep}\n").as_bytes(), 0o644, None).await?;
    }
    let log_path = h.log_path(addr.as_str());
    Ok(Some(outputs(keep, &log_path, ownership)))
}

/// Stops the recorded process (SIGTERM to its group, SIGKILL after
/// `stop_timeout_secs`) and removes its pid file and log. Already dead is fine.
pub async fn delete(h: &Host, req: &Delete<'_, Service>) -> Result<(), ProviderError> {
    let t = h.transport.clone();
    let pid = req.outputs.pid();
    if let Some(pid) = pid {
        stop(h, t.as_ref(), req.addr, pid, req.ownership, req.spec.stop_timeout()).await?;
    }
    // The pid file and log are shared by every process of this resource (a
    // create-before-destroy replacement runs beside the old one): keep them
    // while they belong to another live process.
    let pid_path = h.pid_path(req.addr.as_str());
    let other_live = match read_pid_file(t.as_ref(), &pid_path).await {
        Some(p) if Some(p) != pid => t.service_running(p, &owner_mark(req.ownership.key())).await?,
        _ => false,
    };
    if !other_live {
        t.remove_file(&pid_path).await?;
        t.remove_file(&log_path(h, req.addr, req.outputs)).await?;
    }
    prune(h, Vec::new()).await
}
