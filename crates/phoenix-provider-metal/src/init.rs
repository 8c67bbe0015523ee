//! Which service manager runs a host's `metal.service` resources: systemd
//! when the host boots with it (a unit is written, enabled and started), a
//! supervised process otherwise. Chosen per host in the provider block:
//!
//! ```toml
//! [providers.metal.hosts.web-1]
//! transport = "ssh"
//! init = "auto"                    # "systemd", "process"; auto: systemd when /run/systemd/system exists
//! systemctl = "sudo systemctl"     # how to call it (default "systemctl")
//! unit_dir = "/etc/systemd/system" # where units are written (the default)
//! ```

use std::path::PathBuf;

use phoenix_core::provider::ProviderError;
use phoenix_core::value::Value;
use serde_json::Map;

/// The provider-block keys of a host (or machine) read here.
pub const KEYS: &[&str] = &["init", "systemctl", "unit_dir"];
const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";

/// What the provider block asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitMode {
    /// systemd when the host runs it (sd_booted's test: `/run/systemd/system` is a directory), else a process.
    Auto,
    Systemd,
    Process,
}

/// What a service runs under on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Systemd,
    Process,
}

impl Manager {
    pub fn as_str(self) -> &'static str {
        match self {
            Manager::Systemd => "systemd",
            Manager::Process => "process",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "systemd" => Some(Manager::Systemd),
            "process" => Some(Manager::Process),
            _ => None,
        }
    }
}

/// A host's service-manager settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSettings {
    pub mode: InitMode,
    /// A shell command prefix, e.g. `systemctl` or `sudo -n systemctl`.
    pub systemctl: String,
    /// Absolute, on the host.
    pub unit_dir: PathBuf,
}

impl Default for InitSettings {
    fn default() -> Self {
        Self { mode: InitMode::Auto, systemctl: "systemctl".into(), unit_dir: PathBuf::from(DEFAULT_UNIT_DIR) }
    }
}

impl InitSettings {
    /// Reads `init`, `systemctl` and `unit_dir` of a host's table (`at` names it in errors).
    pub fn from_table(at: &str, table: &Map<String, Value>) -> Result<Self, ProviderError> {
        let mut s = Self::default();
        let string = |key: &str| -> Result<Option<&str>, ProviderError> {
            match table.get(key) {
                None => Ok(None),
                Some(Value::String(v)) if !v.trim().is_empty() => Ok(Some(v)),
                Some(other) => Err(ProviderError::permanent(format!("{at}.{key} must be a non-empty string, found {other}"))),
            }
        };
        if let Some(mode) = string("init")? {
            s.mode = match mode {
                "auto" => InitMode::Auto,
                "systemd" => InitMode::Systemd,
                "process" => InitMode::Process,
                other => {
                    return Err(ProviderError::permanent(format!(
                        "{at}.init: `{other}` is not a service manager; use auto, systemd or process"
                    )));
                }
            };
        }
        if let Some(cmd) = string("systemctl")? {
            s.systemctl = cmd.to_string();
        }
        if let Some(dir) = string("unit_dir")? {
            if !dir.starts_with('/') {
                return Err(ProviderError::permanent(format!("{at}.unit_dir must be an absolute path on the host, found `{dir}`")));
            }
            s.unit_dir = PathBuf::from(dir);
        }
        Ok(s)
    }

    /// The shell test that picks systemd for [`InitMode::Auto`] (exit 0: systemd).
    pub fn detect_script(&self) -> String {
        let program = self.systemctl.split_whitespace().last().unwrap_or("systemctl");
        format!("[ -d /run/systemd/system ] && command -v {} >/dev/null 2>&1\n", crate::ssh::shell::quote(program))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn table(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn settings_parse_and_reject_nonsense() {
        assert_eq!(InitSettings::from_table("h", &table(json!({}))).unwrap(), InitSettings::default());
        let s = InitSettings::from_table("h", &table(json!({"init": "systemd", "systemctl": "sudo -n systemctl", "unit_dir": "/run/u"})))
            .unwrap();
        assert_eq!((s.mode, s.systemctl.as_str(), s.unit_dir.to_str()), (InitMode::Systemd, "sudo -n systemctl", Some("/run/u")));
        assert!(InitSettings::from_table("h", &table(json!({"init": "upstart"}))).unwrap_err().message.contains("upstart"));
        assert!(InitSettings::from_table("h", &table(json!({"unit_dir": "units"}))).unwrap_err().message.contains("absolute"));
        assert!(InitSettings::from_table("h", &table(json!({"systemctl": 1}))).is_err());
        assert!(s.detect_script().contains("command -v 'systemctl'"));
    }
}
