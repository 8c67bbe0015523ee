//! The inventory: machines (and plain SSH hosts) declared in `[providers.metal]`.
//!
//! ```toml
//! [providers.metal]
//! known_hosts = "~/.ssh/known_hosts"        # default; relative paths are under the project
//! host_key_check = "strict"                 # or "accept-new" (trust on first use)
//! [providers.metal.machines.node-1]
//! address = "10.0.0.11"
//! user = "deploy"
//! key = "~/.ssh/id_ed25519"
//! key_passphrase_env = "NODE_KEY_PASSPHRASE" # optional; the passphrase itself never goes in the file
//! labels = { rack = "r1", role = "web", size = "small" }
//! root = "/var/lib/phoenix"                  # where relative paths and the claim file live
//! wipe = ["rm -rf /srv/app"]                 # run when the machine is released
//! power_off_on_release = true
//! bmc = { url = "https://10.0.1.11", username = "admin", password_env = "NODE1_BMC_PASSWORD" }
//! ```
//!
//! Nothing here connects anywhere: `phoenix validate` stays offline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use phoenix_core::provider::ProviderError;
use phoenix_core::value::{Attrs, Value};

use crate::init::InitSettings;
use crate::redfish::{Bmc, BmcConfig};
use crate::ssh::{HostKeyCheck, SshTarget};

pub const DEFAULT_MACHINE_ROOT: &str = "/var/lib/phoenix";
/// Keys that would put a secret in the file: refused with a pointer to the `_env` form.
const SECRET_KEYS: &[(&str, &str)] =
    &[("password", "password_env"), ("passphrase", "key_passphrase_env"), ("key_passphrase", "key_passphrase_env")];

/// A machine of the pool.
#[derive(Debug)]
pub struct Machine {
    pub name: String,
    pub ssh: SshTarget,
    pub labels: BTreeMap<String, String>,
    pub bmc: Option<Arc<Bmc>>,
    /// Absolute, on the machine.
    pub root: PathBuf,
    pub wipe: Vec<String>,
    pub power_off_on_release: bool,
    /// How services run on it.
    pub init: InitSettings,
}

impl Machine {
    /// Where the claim lives on the machine.
    pub fn claim_path(&self) -> PathBuf {
        self.root.join(".phoenix-claim.json")
    }

    pub fn matches(&self, wanted: &BTreeMap<String, String>) -> bool {
        wanted.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }
}

/// Settings shared by every SSH host of the provider block.
#[derive(Debug, Clone)]
pub struct SshDefaults {
    pub known_hosts: PathBuf,
    pub host_key_check: HostKeyCheck,
}

impl SshDefaults {
    pub fn from_block(block: &Attrs, project_dir: &Path) -> Result<Self, ProviderError> {
        let known_hosts = match block.get("known_hosts") {
            Some(v) => path_value(project_dir, "providers.metal.known_hosts", v)?,
            None => home()?.join(".ssh/known_hosts"),
        };
        let host_key_check = match block.get("host_key_check") {
            Some(v) => key_check("providers.metal.host_key_check", v)?,
            None => HostKeyCheck::Strict,
        };
        Ok(Self { known_hosts, host_key_check })
    }
}

fn err(msg: String) -> ProviderError {
    ProviderError::permanent(msg)
}

fn home() -> Result<PathBuf, ProviderError> {
    std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| err("HOME is not set: give providers.metal.known_hosts".into()))
}

fn string(at: &str, v: &Value) -> Result<String, ProviderError> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string).ok_or_else(|| err(format!("{at} must be a non-empty string, found {v}")))
}

fn path_value(project_dir: &Path, at: &str, v: &Value) -> Result<PathBuf, ProviderError> {
    let s = string(at, v)?;
    Ok(match s.strip_prefix("~/") {
        Some(rest) => home()?.join(rest),
        None => crate::config::normalize(&project_dir.join(s)),
    })
}

fn key_check(at: &str, v: &Value) -> Result<HostKeyCheck, ProviderError> {
    v.as_str().and_then(HostKeyCheck::parse).ok_or_else(|| err(format!("{at} must be \"strict\" or \"accept-new\", found {v}")))
}

fn boolean(at: &str, v: &Value) -> Result<bool, ProviderError> {
    v.as_bool().ok_or_else(|| err(format!("{at} must be true or false, found {v}")))
}

fn table<'a>(at: &str, v: &'a Value) -> Result<&'a serde_json::Map<String, Value>, ProviderError> {
    v.as_object().ok_or_else(|| err(format!("{at} must be a table, found {v}")))
}

fn refuse_secret(at: &str, key: &str) -> Result<(), ProviderError> {
    match SECRET_KEYS.iter().find(|(k, _)| *k == key) {
        Some((_, instead)) => Err(err(format!(
            "{at}.{key}: secrets are never read from the environment file; name the environment variable that holds it with `{instead}`"
        ))),
        None => Ok(()),
    }
}

/// The SSH part of a machine or host table. `extra` names the other keys the caller reads.
pub fn ssh_target(
    name: &str,
    at: &str,
    t: &serde_json::Map<String, Value>,
    defaults: &SshDefaults,
    project_dir: &Path,
    extra: &[&str],
) -> Result<SshTarget, ProviderError> {
    const KNOWN: &[&str] = &["address", "port", "user", "key", "key_passphrase_env", "host_key_check", "connect_attempts"];
    for key in t.keys() {
        refuse_secret(at, key)?;
        if !KNOWN.contains(&key.as_str()) && !extra.contains(&key.as_str()) {
            let mut all: Vec<&str> = KNOWN.to_vec();
            all.extend_from_slice(extra);
            return Err(err(format!("unknown key `{key}` in {at} (known keys: {})", all.join(", "))));
        }
    }
    let need = |k: &str| t.get(k).ok_or_else(|| err(format!("{at} needs `{k}` to be reached over `ssh`")));
    let port = match t.get("port") {
        None => 22,
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| err(format!("{at}.port must be a port number, found {v}")))?,
    };
    let connect_attempts = match t.get("connect_attempts") {
        None => 3,
        Some(v) => {
            v.as_u64().filter(|n| (1..=20).contains(n)).ok_or_else(|| err(format!("{at}.connect_attempts must be 1-20, found {v}")))? as u32
        }
    };
    Ok(SshTarget {
        name: name.to_string(),
        address: string(&format!("{at}.address"), need("address")?)?,
        port,
        user: string(&format!("{at}.user"), need("user")?)?,
        key_path: path_value(project_dir, &format!("{at}.key"), need("key")?)?,
        key_passphrase_env: t.get("key_passphrase_env").map(|v| string(&format!("{at}.key_passphrase_env"), v)).transpose()?,
        known_hosts: defaults.known_hosts.clone(),
        host_key_check: match t.get("host_key_check") {
            Some(v) => key_check(&format!("{at}.host_key_check"), v)?,
            None => defaults.host_key_check,
        },
        connect_timeout: Duration::from_secs(10),
        connect_attempts,
    })
}

/// An absolute path on a host (`root`).
pub fn remote_root(at: &str, v: Option<&Value>) -> Result<PathBuf, ProviderError> {
    let Some(v) = v else { return Ok(PathBuf::from(DEFAULT_MACHINE_ROOT)) };
    let s = string(at, v)?;
    if !s.starts_with('/') || s == "/" {
        return Err(err(format!("{at} must be an absolute directory on the host other than `/`, found `{s}`")));
    }
    Ok(crate::config::normalize(Path::new(&s)))
}

pub fn machine(name: &str, v: &Value, defaults: &SshDefaults, project_dir: &Path) -> Result<Machine, ProviderError> {
    let at = format!("providers.metal.machines.{name}");
    let t = table(&at, v)?;
    let mut extra = vec!["labels", "bmc", "root", "wipe", "power_off_on_release"];
    extra.extend_from_slice(crate::init::KEYS);
    let ssh = ssh_target(name, &at, t, defaults, project_dir, &extra)?;
    let mut labels = BTreeMap::new();
    if let Some(l) = t.get("labels") {
        for (k, v) in table(&format!("{at}.labels"), l)? {
            labels.insert(k.clone(), string(&format!("{at}.labels.{k}"), v)?);
        }
    }
    let wipe = match t.get("wipe") {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            items.iter().enumerate().map(|(i, c)| string(&format!("{at}.wipe[{i}]"), c)).collect::<Result<_, _>>()?
        }
        Some(other) => {
            return Err(err(format!("{at}.wipe must be a list of commands, found {other}")));
        }
    };
    let bmc = t.get("bmc").map(|b| bmc(name, &format!("{at}.bmc"), b, project_dir)).transpose()?;
    if let Some(b) = &bmc
        && b.url.is_empty()
    {
        return Err(err(format!("{at}.bmc needs `url`")));
    }
    let bmc = bmc.map(|cfg| Bmc::new(name, cfg).map(Arc::new)).transpose()?;
    let power_off_on_release =
        t.get("power_off_on_release").map(|v| boolean(&format!("{at}.power_off_on_release"), v)).transpose()?.unwrap_or(false);
    if power_off_on_release && bmc.is_none() {
        return Err(err(format!("{at}.power_off_on_release needs a `bmc` to power the machine off with")));
    }
    Ok(Machine {
        name: name.to_string(),
        ssh,
        labels,
        bmc,
        root: remote_root(&format!("{at}.root"), t.get("root"))?,
        wipe,
        power_off_on_release,
        init: InitSettings::from_table(&at, t)?,
    })
}

fn bmc(machine: &str, at: &str, v: &Value, project_dir: &Path) -> Result<BmcConfig, ProviderError> {
    let t = table(at, v)?;
    let mut cfg =
        BmcConfig { url: String::new(), system: None, username: None, password_env: None, tls_verify: true, ca_file: None, attempts: 4 };
    for (k, v) in t {
        refuse_secret(at, k)?;
        let here = format!("{at}.{k}");
        match k.as_str() {
            "url" => {
                let u = string(&here, v)?;
                if !(u.starts_with("https://") || u.starts_with("http://")) {
                    return Err(err(format!("{here} must start with https:// (or http:// for an emulator), found `{u}`")));
                }
                cfg.url = u;
            }
            "system" => cfg.system = Some(string(&here, v)?),
            "username" => cfg.username = Some(string(&here, v)?),
            "password_env" => cfg.password_env = Some(string(&here, v)?),
            "tls_verify" => cfg.tls_verify = boolean(&here, v)?,
            "ca_file" => cfg.ca_file = Some(path_value(project_dir, &here, v)?),
            "attempts" => {
                cfg.attempts =
                    v.as_u64().filter(|n| (1..=20).contains(n)).ok_or_else(|| err(format!("{here} must be 1-20, found {v}")))? as u32
            }
            other => {
                return Err(err(format!(
                    "unknown key `{other}` in {at} of machine `{machine}` (known keys: url, system, username, password_env, tls_verify, ca_file, attempts)"
                )));
            }
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn defaults() -> SshDefaults {
        SshDefaults { known_hosts: "/k".into(), host_key_check: HostKeyCheck::Strict }
    }

    #[test]
    fn a_machine_parses_and_secrets_are_refused() {
        let v = json!({"address": "127.0.0.1", "port": 2222, "user": "u", "key": "keys/id", "labels": {"role": "web"},
            "bmc": {"url": "http://127.0.0.1:8000", "password_env": "PW", "tls_verify": false}, "power_off_on_release": true});
        let m = machine("n1", &v, &defaults(), Path::new("/proj")).unwrap();
        assert_eq!(m.ssh.port, 2222);
        assert_eq!(m.ssh.key_path, PathBuf::from("/proj/keys/id"));
        assert_eq!(m.root, PathBuf::from(DEFAULT_MACHINE_ROOT));
        assert!(m.matches(&[("role".to_string(), "web".to_string())].into()));
        assert!(!m.matches(&[("role".to_string(), "db".to_string())].into()));

        let v = json!({"address": "a", "user": "u", "key": "k", "bmc": {"url": "https://b", "password": "hunter2"}});
        let e = machine("n1", &v, &defaults(), Path::new("/p")).unwrap_err().message;
        assert!(e.contains("password_env") && !e.contains("hunter2"), "{e}");
        let v = json!({"address": "a", "user": "u", "key": "k", "passphrase": "x"});
        assert!(machine("n1", &v, &defaults(), Path::new("/p")).unwrap_err().message.contains("key_passphrase_env"));
        let v = json!({"address": "a", "user": "u", "key": "k", "power_off_on_release": true});
        assert!(machine("n1", &v, &defaults(), Path::new("/p")).unwrap_err().message.contains("bmc"));
        let v = json!({"address": "a", "user": "u", "key": "k", "root": "relative"});
        assert!(machine("n1", &v, &defaults(), Path::new("/p")).is_err());
    }
}
