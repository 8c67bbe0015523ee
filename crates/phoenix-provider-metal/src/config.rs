//! The `[providers.metal]` table, and where paths land on a host.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use phoenix_core::provider::{ProviderContext, ProviderError};
use phoenix_core::value::Value;

use crate::local::LocalTransport;
use crate::transport::Transport;

pub const DEFAULT_HOST: &str = "local";
/// Under the root: pid files and service logs.
pub const BOOKKEEPING_DIR: &str = ".phoenix-metal";

/// The checked provider configuration.
#[derive(Debug, Clone)]
pub struct MetalConfig {
    /// Every relative path of every resource lives under it.
    pub root: PathBuf,
    pub hosts: BTreeMap<String, Arc<dyn Transport>>,
}

impl MetalConfig {
    pub fn from_context(cx: &ProviderContext) -> Result<Self, ProviderError> {
        let mut root = cx.data_dir.join("work");
        let mut hosts: BTreeMap<String, Arc<dyn Transport>> = BTreeMap::new();
        let mut hosts_given = false;
        for (key, value) in &cx.config {
            match key.as_str() {
                "root" => {
                    let s = value.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
                        ProviderError::permanent(format!("providers.metal.root must be a non-empty string (a directory), found {value}"))
                    })?;
                    root = normalize(&cx.project_dir.join(s));
                }
                "hosts" => {
                    hosts_given = true;
                    let table = value.as_object().ok_or_else(|| {
                        ProviderError::permanent(format!(
                            "providers.metal.hosts must be a table of host name -> {{ transport = \"local\" }}, found {value}"
                        ))
                    })?;
                    for (name, host) in table {
                        hosts.insert(name.clone(), host_transport(name, host)?);
                    }
                }
                other => {
                    return Err(ProviderError::permanent(format!("unknown key `{other}` in [providers.metal] (known keys: root, hosts)")));
                }
            }
        }
        if !hosts_given {
            hosts.insert(DEFAULT_HOST.to_string(), Arc::new(LocalTransport::new()));
        }
        Ok(Self { root, hosts })
    }

    /// The transport of a resource's `host` attribute.
    pub fn transport(&self, host: &str) -> Result<Arc<dyn Transport>, ProviderError> {
        self.hosts.get(host).cloned().ok_or_else(|| {
            let known: Vec<&str> = self.hosts.keys().map(String::as_str).collect();
            ProviderError::permanent(format!(
                "host `{host}` is not declared under [providers.metal.hosts] (declared: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))
        })
    }

    pub fn bookkeeping(&self) -> PathBuf {
        self.root.join(BOOKKEEPING_DIR)
    }

    pub fn log_path(&self, resource: &str) -> PathBuf {
        self.bookkeeping().join("logs").join(format!("{resource}.log"))
    }

    pub fn pid_path(&self, resource: &str) -> PathBuf {
        self.bookkeeping().join("run").join(format!("{resource}.pid"))
    }

    /// What a delete prunes when it leaves them empty, deepest first, root last.
    pub fn prunable_dirs(&self) -> Vec<PathBuf> {
        let b = self.bookkeeping();
        vec![b.join("logs"), b.join("run"), b, self.root.clone()]
    }

    /// A resource path (`path`, `workdir`): relative ones land under the root
    /// and may not climb out of it; absolute ones are taken as they are.
    pub fn resolve(&self, attr: &str, path: &str) -> Result<PathBuf, ProviderError> {
        resolve_under(&self.root, path).map_err(|e| ProviderError::permanent(format!("`{attr}`: {e}")))
    }
}

fn host_transport(name: &str, host: &Value) -> Result<Arc<dyn Transport>, ProviderError> {
    let table = host.as_object().ok_or_else(|| {
        ProviderError::permanent(format!("providers.metal.hosts.{name} must be a table like {{ transport = \"local\" }}, found {host}"))
    })?;
    let mut transport = None;
    for (key, value) in table {
        match key.as_str() {
            "transport" => transport = Some(value),
            other => {
                return Err(ProviderError::permanent(format!(
                    "unknown key `{other}` in providers.metal.hosts.{name} (known keys: transport)"
                )));
            }
        }
    }
    match transport.map(|v| v.as_str()) {
        Some(Some("local")) => Ok(Arc::new(LocalTransport::new())),
        Some(Some(other)) => Err(ProviderError::permanent(format!(
            "unknown transport `{other}` for providers.metal.hosts.{name}.transport (supported: local)"
        ))),
        Some(None) => Err(ProviderError::permanent(format!("providers.metal.hosts.{name}.transport must be a string such as \"local\""))),
        None => Err(ProviderError::permanent(format!("providers.metal.hosts.{name} needs `transport` (supported: local)"))),
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
pub fn relative_parts(path: &str) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(format!("`{path}` escapes the root directory (`..` climbs above it)"));
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(format!("`{path}` is not relative")),
        }
    }
    Ok(out)
}

pub fn resolve_under(root: &Path, path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("the path is empty".into());
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
        assert!(resolve_under(root, "../x").unwrap_err().contains("escapes"));
        assert!(resolve_under(root, "a/../../x").unwrap_err().contains("escapes"));
        assert!(resolve_under(root, "").is_err());
    }
}
