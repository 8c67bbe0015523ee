//! The `[providers.metal]` table: hosts (local, ssh), the machine inventory,
//! and where paths land on each host.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use phoenix_core::provider::{ProviderContext, ProviderError};
use phoenix_core::schema::Invalid;
use phoenix_core::value::Value;

use crate::init::{self, InitSettings};
use crate::inventory::{self, Machine, SshDefaults};
use crate::local::LocalTransport;
use crate::ssh::SshTransport;
use crate::transport::Transport;

pub const DEFAULT_HOST: &str = "local";
/// Under the root: pid files and service logs.
pub const BOOKKEEPING_DIR: &str = ".phoenix-metal";

/// A host resources can live on, and the root their relative paths resolve under.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub transport: Arc<dyn Transport>,
    /// Every relative path of every resource on this host lives under it.
    pub root: PathBuf,
    /// How `metal.service` runs here.
    pub init: InitSettings,
}

impl Host {
    pub fn bookkeeping(&self) -> PathBuf {
        self.root.join(BOOKKEEPING_DIR)
    }

    pub fn log_path(&self, resource: &str) -> PathBuf {
        self.bookkeeping().join("logs").join(format!("{resource}.log"))
    }

    pub fn pid_path(&self, resource: &str) -> PathBuf {
        self.bookkeeping().join("run").join(format!("{resource}.pid"))
    }

    /// A systemd service's `EnvironmentFile` (0600: it may hold secrets).
    pub fn env_path(&self, resource: &str) -> PathBuf {
        self.bookkeeping().join("env").join(format!("{resource}.env"))
    }

    /// What a delete prunes when it leaves them empty, deepest first, root last.
    pub fn prunable_dirs(&self) -> Vec<PathBuf> {
        let b = self.bookkeeping();
        vec![b.join("logs"), b.join("run"), b.join("env"), b, self.root.clone()]
    }

    /// A resource path (`path`, `workdir`): relative ones land under the root
    /// and may not climb out of it; absolute ones are taken as they are.
    pub fn resolve(&self, attr: &str, path: &str) -> Result<PathBuf, ProviderError> {
        resolve_under(&self.root, path).map_err(|e| ProviderError::permanent(format!("`{attr}`: {e}")))
    }
}

/// The checked provider configuration.
#[derive(Debug, Clone)]
pub struct MetalConfig {
    /// The root of the `local` host(s).
    pub root: PathBuf,
    /// Every host by name: `local` ones, `ssh` ones and the inventory's machines.
    pub hosts: BTreeMap<String, Arc<Host>>,
    /// The inventory: machines `metal.machine` claims from.
    pub machines: BTreeMap<String, Arc<Machine>>,
}

const KNOWN: [&str; 5] = ["root", "hosts", "machines", "known_hosts", "host_key_check"];

impl MetalConfig {
    pub fn from_context(cx: &ProviderContext) -> Result<Self, ProviderError> {
        let mut root = cx.data_dir.join("work");
        let ssh_defaults = SshDefaults::from_block(&cx.config, &cx.project_dir)?;
        let mut host_tables = None;
        let mut machines = BTreeMap::new();
        for (key, value) in &cx.config {
            match key.as_str() {
                "root" => {
                    let s = value.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
                        ProviderError::permanent(format!("providers.metal.root must be a non-empty string (a directory), found {value}"))
                    })?;
                    root = normalize(&cx.project_dir.join(s));
                }
                "hosts" => {
                    host_tables = Some(value.as_object().ok_or_else(|| {
                        ProviderError::permanent(format!(
                            "providers.metal.hosts must be a table of host name -> {{ transport = \"local\" }}, found {value}"
                        ))
                    })?);
                }
                "machines" => {
                    let table = value.as_object().ok_or_else(|| {
                        ProviderError::permanent(format!(
                            "providers.metal.machines must be a table of machine name -> table, found {value}"
                        ))
                    })?;
                    for (name, m) in table {
                        machines.insert(name.clone(), Arc::new(inventory::machine(name, m, &ssh_defaults, &cx.project_dir)?));
                    }
                }
                "known_hosts" | "host_key_check" => {}
                other => {
                    let message = format!("unknown key `{other}` in [providers.metal] (known keys: {})", KNOWN.join(", "));
                    return Err(ProviderError::permanent(message).about_key(other, &KNOWN));
                }
            }
        }
        let mut hosts = BTreeMap::new();
        match host_tables {
            Some(table) => {
                for (name, host) in table {
                    hosts.insert(name.clone(), Arc::new(host_entry(name, host, &root, &ssh_defaults, &cx.project_dir)?));
                }
            }
            None => {
                let local = Host {
                    name: DEFAULT_HOST.into(),
                    transport: Arc::new(LocalTransport::new()),
                    root: root.clone(),
                    init: InitSettings::default(),
                };
                hosts.insert(DEFAULT_HOST.to_string(), Arc::new(local));
            }
        }
        for (name, m) in &machines {
            if hosts.contains_key(name) {
                return Err(ProviderError::permanent(format!(
                    "`{name}` is both a host and a machine under [providers.metal]; give them different names"
                )));
            }
            let transport: Arc<dyn Transport> = Arc::new(SshTransport::new(m.ssh.clone()));
            hosts.insert(name.clone(), Arc::new(Host { name: name.clone(), transport, root: m.root.clone(), init: m.init.clone() }));
        }
        Ok(Self { root, hosts, machines })
    }

    /// The host of a resource's `host` attribute.
    pub fn host(&self, host: &str) -> Result<Arc<Host>, ProviderError> {
        self.hosts.get(host).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.hosts.keys().map(String::as_str).collect();
            ProviderError::permanent(format!(
                "host `{host}` is not declared under [providers.metal.hosts] or [providers.metal.machines] (declared: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))
        })
    }

    /// The transport of a resource's `host` attribute.
    pub fn transport(&self, host: &str) -> Result<Arc<dyn Transport>, ProviderError> {
        Ok(self.host(host)?.transport.clone())
    }

    pub fn machine(&self, name: &str) -> Result<Arc<Machine>, ProviderError> {
        self.machines
            .get(name)
            .cloned()
            .ok_or_else(|| ProviderError::permanent(format!("machine `{name}` is not in the inventory ([providers.metal.machines])")))
    }
}

fn host_entry(name: &str, host: &Value, local_root: &Path, ssh: &SshDefaults, project_dir: &Path) -> Result<Host, ProviderError> {
    let at = format!("providers.metal.hosts.{name}");
    let table = host
        .as_object()
        .ok_or_else(|| ProviderError::permanent(format!("{at} must be a table like {{ transport = \"local\" }}, found {host}")))?;
    match table.get("transport").map(|v| v.as_str()) {
        Some(Some("local")) => {
            if let Some(other) = table.keys().find(|k| *k != "transport" && !init::KEYS.contains(&k.as_str())) {
                return Err(ProviderError::permanent(format!(
                    "unknown key `{other}` in {at} (known keys: transport, {})",
                    init::KEYS.join(", ")
                )));
            }
            let init = InitSettings::from_table(&at, table)?;
            Ok(Host { name: name.into(), transport: Arc::new(LocalTransport::new()), root: local_root.to_path_buf(), init })
        }
        Some(Some("ssh")) => {
            let mut extra = vec!["transport", "root"];
            extra.extend_from_slice(init::KEYS);
            let target = inventory::ssh_target(name, &at, table, ssh, project_dir, &extra)?;
            let root = inventory::remote_root(&format!("{at}.root"), table.get("root"))?;
            let init = InitSettings::from_table(&at, table)?;
            Ok(Host { name: name.into(), transport: Arc::new(SshTransport::new(target)), root, init })
        }
        Some(Some(other)) => {
            Err(ProviderError::permanent(format!("unknown transport `{other}` for {at}.transport (supported: local, ssh)")))
        }
        Some(None) => Err(ProviderError::permanent(format!("{at}.transport must be a string such as \"local\" or \"ssh\""))),
        None => Err(ProviderError::permanent(format!("{at} needs `transport` (supported: local, ssh)"))),
    }
}

/// Removes `.` and resolves `..` lexically.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The relative part of a resource path, checked: empty and climbing out are errors.
pub fn relative_parts(path: &str) -> Result<PathBuf, Invalid> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(Invalid(format!("`{path}` escapes the root directory (`..` climbs above it)")));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(Invalid(format!("`{path}` is not relative")));
            }
        }
    }
    Ok(out)
}

pub fn resolve_under(root: &Path, path: &str) -> Result<PathBuf, Invalid> {
    if path.is_empty() {
        return Err(Invalid::from("the path is empty"));
    }
    if Path::new(path).is_absolute() {
        return Ok(normalize(Path::new(path)));
    }
    Ok(root.join(relative_parts(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_under_root() {
        let root = Path::new("/srv/w");
        assert_eq!(resolve_under(root, "a/./b/../c").unwrap(), PathBuf::from("/srv/w/a/c"));
        assert_eq!(resolve_under(root, "/etc/x/../y").unwrap(), PathBuf::from("/etc/y"));
        assert!(resolve_under(root, "../x").unwrap_err().0.contains("escapes"));
        assert!(resolve_under(root, "a/../../x").unwrap_err().0.contains("escapes"));
        assert!(resolve_under(root, "").is_err());
    }
}
