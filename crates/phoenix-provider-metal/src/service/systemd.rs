//! `metal.service` as a systemd unit: `<unit_dir>/phoenix-….service`,
//! enabled (so it comes back after a reboot) and started, restarted by
//! systemd by its `restart` policy. The service's environment (it may hold
//! secrets) goes to a 0600 `EnvironmentFile` beside the host's bookkeeping,
//! never into the world-readable unit; stdout and stderr are appended to the
//! same log file a supervised process would use. The command goes to a
//! script file the unit runs with `/bin/sh`, so it needs no systemd quoting
//! (`$`, `%`, quotes and newlines mean what they mean to the shell).

use std::path::{Path, PathBuf};
use std::time::Duration;

use phoenix_core::addr::ResourceAddr;
use phoenix_core::kit::{Delete, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::state::Ownership;

use super::process::log_tail;
use super::{STARTUP_GRACE, Service, ServiceOutputs, ServiceSpec as Spec, only_stop_timeout_changed};
use crate::config::Host;
use crate::init::Manager;
use crate::ssh::shell::{qpath, quote};
use crate::transport::{ExecSpec, Restart};
use crate::{LOG_HEADER, OWNER_ENV, prune, workdir};

const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(120);

/// `phoenix-<env>[-<instance>]-<resource>-<lineage prefix>.service`: one per
/// owner, so two environments (or two checkouts) on a host never share a unit.
pub fn unit_name(o: &Ownership) -> String {
    let mut parts = vec![o.environment.as_str()];
    if let Some(i) = &o.instance {
        parts.push(i);
    }
    let resource = o.resource.to_string();
    parts.push(&resource);
    let lineage: String = o.lineage.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    parts.push(&lineage);
    let slug: String =
        parts.join("-").chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' { c } else { '_' }).collect();
    format!("phoenix-{slug}.service")
}

/// One systemd word, double-quoted: C-style escapes for `\` and `"`, and
/// `$$`/`%%` so systemd neither substitutes variables nor expands specifiers.
fn unit_word(s: &str) -> Result<String, ProviderError> {
    if s.contains('\n') {
        return Err(ProviderError::permanent(format!("`{s}` cannot be written into a systemd unit (it has a newline)")));
    }
    Ok(format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "$$").replace('%', "%%")))
}

/// `KEY="value"` lines for `EnvironmentFile=` (double quotes with backslash escapes).
fn env_file(vars: &[(String, String)]) -> Result<String, ProviderError> {
    let mut out = String::new();
    for (k, v) in vars {
        if !crate::ssh::shell::valid_env_name(k) {
            return Err(ProviderError::permanent(format!("`environment.{k}`: not a valid environment variable name")));
        }
        if v.contains('\n') {
            return Err(ProviderError::permanent(format!("`environment.{k}`: a systemd environment value is one line")));
        }
        let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`");
        out.push_str(&format!("{k}=\"{escaped}\"\n"));
    }
    Ok(out)
}

/// Everything the unit file says.
struct Unit<'a> {
    addr: &'a ResourceAddr,
    owner: String,
    /// The script holding the command.
    script: &'a Path,
    workdir: &'a Path,
    env_file: &'a Path,
    log: &'a Path,
    restart: Restart,
    stop_timeout: Duration,
}

impl Unit<'_> {
    fn render(&self) -> Result<String, ProviderError> {
        let path_line = |p: &Path| -> Result<String, ProviderError> {
            let s = p.to_string_lossy();
            if s.contains('\n') {
                return Err(ProviderError::permanent(format!("`{s}` cannot be written into a systemd unit")));
            }
            Ok(s.into_owned())
        };
        Ok(format!(
            "# Written by Phoenix for `{addr}`; `phoenix down` stops and removes it.\n\
             [Unit]\n\
             Description=Phoenix service {addr}\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=simple\n\
             WorkingDirectory={workdir}\n\
             Environment={owner}\n\
             EnvironmentFile={env_file}\n\
             ExecStart=/bin/sh {script}\n\
             Restart={restart}\n\
             RestartSec=1\n\
             TimeoutStopSec={stop}\n\
             KillMode=control-group\n\
             StandardOutput=append:{log}\n\
             StandardError=append:{log}\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            addr = self.addr,
            workdir = path_line(self.workdir)?,
            owner = unit_word(&format!("{OWNER_ENV}={}", self.owner))?,
            env_file = path_line(self.env_file)?,
            script = unit_word(&self.script.to_string_lossy())?,
            restart = self.restart.as_str(),
            stop = self.stop_timeout.as_secs().max(1),
            log = path_line(self.log)?,
        ))
    }
}

fn unit_path(h: &Host, unit: &str) -> PathBuf {
    h.init.unit_dir.join(unit)
}

fn env_path(h: &Host, addr: &ResourceAddr) -> PathBuf {
    h.env_path(addr.as_str())
}

/// The script `ExecStart` runs: the service's command as written.
fn script_path(h: &Host, addr: &ResourceAddr) -> PathBuf {
    h.bookkeeping().join("run").join(format!("{}.sh", addr.as_str()))
}

/// Runs a script with `$SYSTEMCTL` set to the host's systemctl command (used
/// unquoted, so a prefix like `sudo -n systemctl` splits into its words):
/// (exit ok, stdout, stderr tail).
async fn run(h: &Host, what: &str, script: &str) -> Result<(bool, String, String), ProviderError> {
    let script = format!("SYSTEMCTL={}\n{script}", quote(&h.init.systemctl));
    let spec = ExecSpec { command: script, workdir: "/".into(), env: Vec::new(), timeout: Some(SYSTEMCTL_TIMEOUT) };
    let lines = std::sync::Mutex::new((String::new(), Vec::<String>::new()));
    let exit = h
        .transport
        .exec(&spec, &|s, l| {
            let mut g = lines.lock().unwrap_or_else(|e| e.into_inner());
            match s {
                crate::transport::OutputStream::Stdout => {
                    g.0.push_str(l);
                    g.0.push('\n');
                }
                crate::transport::OutputStream::Stderr => g.1.push(l.to_string()),
            }
        })
        .await
        .map_err(|e| {
            let mut e = ProviderError::from(e);
            e.message = format!("{what} on {}: {}", h.name, e.message);
            e
        })?;
    let (out, err) = lines.into_inner().unwrap_or_else(|e| e.into_inner());
    let tail = err[err.len().saturating_sub(10)..].join("\n  ");
    tracing::debug!(host = %h.name, what, %exit, "systemctl");
    Ok((exit.success(), out, tail))
}

fn outputs(pid: u64, log: &Path, ownership: &Ownership, unit: &str) -> ServiceOutputs {
    ServiceOutputs {
        pid,
        log_path: log.display().to_string(),
        owner: ownership.key(),
        manager: Manager::Systemd.as_str().into(),
        unit: unit.to_string(),
    }
}

/// `MainPID=123` from `systemctl show -p MainPID` (0 when not running).
fn main_pid(show: &str) -> u64 {
    show.lines().find_map(|l| l.trim().strip_prefix("MainPID=")).and_then(|p| p.trim().parse().ok()).unwrap_or(0)
}

/// Writes the environment file and the unit (both atomically).
async fn write_unit(h: &Host, addr: &ResourceAddr, inputs: &Spec, ownership: &Ownership, unit: &str) -> Result<PathBuf, ProviderError> {
    let t = &h.transport;
    let command = &inputs.command;
    let workdir = workdir(h, inputs.workdir.as_deref()).await?;
    let env = inputs.env("write the service's unit")?;
    let env_path = env_path(h, addr);
    t.write_file(&env_path, env_file(&env)?.as_bytes(), 0o600, None).await?;
    let script = script_path(h, addr);
    t.write_file(&script, format!("# Phoenix: the command of service `{addr}`\n{command}\n").as_bytes(), 0o700, None).await?;
    let log = h.log_path(addr.as_str());
    let text = Unit {
        addr,
        owner: ownership.key(),
        script: &script,
        workdir: &workdir,
        env_file: &env_path,
        log: &log,
        restart: inputs.restart()?,
        stop_timeout: inputs.stop_timeout(),
    }
    .render()?;
    t.write_file(&unit_path(h, unit), text.as_bytes(), 0o644, None).await?;
    Ok(log)
}

/// Reloads units, enables and (re)starts this one, and checks it stays up.
async fn restart_unit(
    h: &Host,
    addr: &ResourceAddr,
    ownership: &Ownership,
    unit: &str,
    log: &Path,
) -> Result<ServiceOutputs, ProviderError> {
    let u = quote(unit);
    let log_dir = log.parent().map(qpath).unwrap_or_else(|| "/".into());
    let header = quote(&format!("{LOG_HEADER}{addr} (systemd unit {unit})"));
    let script = format!(
        "mkdir -p {log_dir} && printf '%s at unix time %s\\n' {header} \"$(date +%s)\" >> {log} || exit 1\n\
         $SYSTEMCTL daemon-reload && $SYSTEMCTL enable {u} && $SYSTEMCTL restart {u}\n",
        log = qpath(log),
    );
    let (ok, _, err) = run(h, "starting a systemd unit", &script).await?;
    if !ok {
        return Err(ProviderError::permanent(format!("cannot start unit {unit} for `{addr}` on {}:\n  {err}", h.name)));
    }
    tokio::time::sleep(STARTUP_GRACE).await;
    let (_, out, _) = run(h, "checking a systemd unit", &format!("$SYSTEMCTL is-active {u}; $SYSTEMCTL show -p MainPID {u}\n")).await?;
    if out.lines().next().map(str::trim) != Some("active") {
        let tail = log_tail(h.transport.as_ref(), log).await;
        return Err(ProviderError::permanent(format!(
            "service `{addr}` (unit {unit}) is not active {} ms after starting; last lines of {}:\n{tail}",
            STARTUP_GRACE.as_millis(),
            log.display()
        )));
    }
    Ok(outputs(main_pid(&out), log, ownership, unit))
}

pub async fn start(h: &Host, addr: &ResourceAddr, inputs: &Spec, ownership: &Ownership) -> Result<ServiceOutputs, ProviderError> {
    let unit = unit_name(ownership);
    let log = write_unit(h, addr, inputs, ownership, &unit).await?;
    restart_unit(h, addr, ownership, &unit, &log).await
}

/// Rewrites the unit; restarts unless only the stop timeout changed (a reload is enough then).
pub async fn update(h: &Host, req: &Update<'_, Service>) -> Result<ServiceOutputs, ProviderError> {
    let unit = unit_name(req.ownership);
    let log = write_unit(h, req.addr, req.spec, req.ownership, &unit).await?;
    if only_stop_timeout_changed(req) {
        let (ok, _, err) = run(h, "reloading systemd units", "$SYSTEMCTL daemon-reload\n").await?;
        if !ok {
            return Err(ProviderError::permanent(format!("cannot reload systemd units on {}:\n  {err}", h.name)));
        }
        return Ok(req.outputs.clone());
    }
    restart_unit(h, req.addr, req.ownership, &unit, &log).await
}

/// Exists while its unit file names this owner and the unit is active.
pub async fn refresh(h: &Host, recorded: &ServiceOutputs) -> Result<Option<ServiceOutputs>, ProviderError> {
    let (unit, owner) = (&recorded.unit, &recorded.owner);
    if unit.is_empty() || owner.is_empty() {
        return Ok(None);
    }
    let Some(file) = h.transport.read_file(&unit_path(h, unit)).await? else { return Ok(None) };
    if !String::from_utf8_lossy(&file.content).contains(&format!("{OWNER_ENV}={owner}")) {
        return Ok(None);
    }
    let u = quote(unit);
    let (_, out, _) = run(h, "checking a systemd unit", &format!("$SYSTEMCTL is-active {u}; $SYSTEMCTL show -p MainPID {u}\n")).await?;
    if out.lines().next().map(str::trim) != Some("active") {
        return Ok(None);
    }
    Ok(Some(ServiceOutputs { pid: main_pid(&out), ..recorded.clone() }))
}

/// An interrupted create wrote this owner's unit: adopt it when it is active
/// (otherwise the create writes and starts it again).
pub async fn adopt(h: &Host, addr: &ResourceAddr, ownership: &Ownership) -> Result<Option<ServiceOutputs>, ProviderError> {
    let unit = unit_name(ownership);
    let log = h.log_path(addr.as_str());
    refresh(h, &outputs(0, &log, ownership, &unit)).await
}

/// Stops and disables the unit, then removes it, its environment file and its log.
pub async fn delete(h: &Host, req: &Delete<'_, Service>) -> Result<(), ProviderError> {
    let unit = if req.outputs.unit.is_empty() { unit_name(req.ownership) } else { req.outputs.unit.clone() };
    let path = unit_path(h, &unit);
    if h.transport.read_file(&path).await?.is_some() {
        let u = quote(&unit);
        let (ok, _, err) = run(h, "stopping a systemd unit", &format!("$SYSTEMCTL disable --now {u}\n")).await?;
        if !ok {
            return Err(ProviderError::permanent(format!("cannot stop unit {unit} for `{}` on {}:\n  {err}", req.addr, h.name)));
        }
        h.transport.remove_file(&path).await?;
        run(h, "reloading systemd units", "$SYSTEMCTL daemon-reload\n").await?;
    }
    h.transport.remove_file(&env_path(h, req.addr)).await?;
    h.transport.remove_file(&script_path(h, req.addr)).await?;
    h.transport.remove_file(&h.log_path(req.addr.as_str())).await?;
    prune(h, Vec::new()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ownership(instance: Option<&str>) -> Ownership {
        Ownership {
            environment: "prod".into(),
            instance: instance.map(String::from),
            resource: ResourceAddr::parse("api").unwrap(),
            lineage: "0f3a9c2e-77aa-4b1e".into(),
            expires_at: None,
        }
    }

    #[test]
    fn unit_names_are_per_owner_and_valid() {
        assert_eq!(unit_name(&ownership(None)), "phoenix-prod-api-0f3a9c2e.service");
        assert_eq!(unit_name(&ownership(Some("pr-7"))), "phoenix-prod-pr-7-api-0f3a9c2e.service");
    }

    #[test]
    fn commands_and_environment_survive_systemd_quoting() {
        assert_eq!(unit_word(r#"/srv/a "b" $c 100% \d"#).unwrap(), r#""/srv/a \"b\" $$c 100%% \\d""#);
        assert!(unit_word("a\nb").is_err());
        assert_eq!(env_file(&[("TOKEN".into(), r#"a"b$c`d\e"#.into())]).unwrap(), "TOKEN=\"a\\\"b\\$c\\`d\\\\e\"\n");
        assert!(env_file(&[("BAD-NAME".into(), "x".into())]).is_err());
    }

    #[test]
    fn the_unit_holds_no_environment_values() {
        let addr = ResourceAddr::parse("api").unwrap();
        let text = Unit {
            addr: &addr,
            owner: ownership(None).key(),
            script: Path::new("/srv/.phoenix-metal/run/api.sh"),
            workdir: Path::new("/srv/app"),
            env_file: Path::new("/srv/.phoenix-metal/env/api.env"),
            log: Path::new("/srv/.phoenix-metal/logs/api.log"),
            restart: Restart::OnFailure,
            stop_timeout: Duration::from_secs(10),
        }
        .render()
        .unwrap();
        assert!(text.contains("ExecStart=/bin/sh \"/srv/.phoenix-metal/run/api.sh\"\n"));
        assert!(text.contains("EnvironmentFile=/srv/.phoenix-metal/env/api.env\n"));
        assert!(text.contains(&format!("Environment=\"{OWNER_ENV}={}\"\n", ownership(None).key())));
        assert!(text.contains("Restart=on-failure\n") && text.contains("StandardOutput=append:/srv/.phoenix-metal/logs/api.log\n"));
        assert_eq!(main_pid("MainPID=4242\n"), 4242);
        assert_eq!(main_pid("garbage"), 0);
    }
}
