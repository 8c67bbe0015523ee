//! A small DMTF Redfish client for a machine's BMC: power state, reset,
//! one-time boot override and virtual media — what `metal.machine` needs.
//!
//! Requests are plain values (`*_body`) unit-tested without a BMC. Every call
//! is retried on connection errors, timeouts, 429 and 5xx with backoff, then
//! fails with a message naming the machine and the BMC. The password is read
//! from its environment variable at each call and never logged.

use std::path::PathBuf;
use std::time::Duration;

use phoenix_core::provider::ProviderError;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::tls;

/// A BMC as the inventory describes it.
#[derive(Debug, Clone)]
pub struct BmcConfig {
    /// `https://10.0.0.5` (or `http://` for emulators): the service root's host.
    pub url: String,
    /// A system id under `/redfish/v1/Systems/`, or a full `/redfish/v1/...` path;
    /// `None`: the BMC's only system.
    pub system: Option<String>,
    pub username: Option<String>,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// Verify the BMC's certificate (default). Off only for self-signed BMCs.
    pub tls_verify: bool,
    /// Extra PEM roots (a BMC signed by a private CA).
    pub ca_file: Option<PathBuf>,
    /// Tries per request before the BMC counts as unreachable.
    pub attempts: u32,
}

/// What Phoenix reads of a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemInfo {
    /// `On`, `Off`, `PoweringOn`...
    pub power: String,
    pub boot_target: Option<String>,
    pub reset_target: String,
}

pub struct Bmc {
    machine: String,
    cfg: BmcConfig,
    client: reqwest::Client,
    system: OnceCell<String>,
}

impl std::fmt::Debug for Bmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bmc").field("machine", &self.machine).field("url", &self.cfg.url).finish()
    }
}

pub fn reset_body(kind: &str) -> Value {
    json!({ "ResetType": kind })
}

/// A one-time boot override: the next boot only, then the machine's own order.
pub fn boot_once_body(target: &str) -> Value {
    json!({ "Boot": { "BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": "Once" } })
}

pub fn insert_media_body(image: &str) -> Value {
    json!({ "Image": image, "Inserted": true, "WriteProtected": true })
}

/// The system's path from the inventory's `system`.
pub fn system_path(system: &str) -> String {
    if system.starts_with('/') { system.to_string() } else { format!("/redfish/v1/Systems/{system}") }
}

/// Reads a [`SystemInfo`] out of a `ComputerSystem` document.
pub fn parse_system(path: &str, doc: &Value) -> SystemInfo {
    SystemInfo {
        power: doc["PowerState"].as_str().unwrap_or("Unknown").to_string(),
        boot_target: doc["Boot"]["BootSourceOverrideTarget"].as_str().map(str::to_string),
        reset_target: doc["Actions"]["#ComputerSystem.Reset"]["target"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{path}/Actions/ComputerSystem.Reset")),
    }
}

/// The message a Redfish error body carries, if any.
fn redfish_message(body: &Value) -> Option<String> {
    let e = &body["error"];
    let ext = e["@Message.ExtendedInfo"].as_array().and_then(|a| a.first()).and_then(|m| m["Message"].as_str());
    ext.or_else(|| e["message"].as_str()).map(str::to_string)
}

impl Bmc {
    /// Builds the client; makes no call.
    pub fn new(machine: &str, cfg: BmcConfig) -> Result<Self, ProviderError> {
        tls::ensure_provider();
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .danger_accept_invalid_certs(!cfg.tls_verify);
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| ProviderError::permanent(format!("machine `{machine}`: cannot read bmc.ca_file `{}`: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ProviderError::permanent(format!("machine `{machine}`: bmc.ca_file `{}`: {e}", ca.display())))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b.build().map_err(|e| ProviderError::permanent(format!("machine `{machine}`: cannot set up the BMC client: {e}")))?;
        Ok(Self { machine: machine.to_string(), cfg, client, system: OnceCell::new() })
    }

    pub fn url(&self) -> &str {
        &self.cfg.url
    }

    fn password(&self) -> Result<Option<String>, ProviderError> {
        match &self.cfg.password_env {
            None => Ok(None),
            Some(var) => std::env::var(var).map(Some).map_err(|_| {
                ProviderError::permanent(format!(
                    "machine `{}`: the BMC password is read from the environment variable `{var}`, which is not set",
                    self.machine
                ))
            }),
        }
    }

    /// One Redfish call with retries; the parsed JSON body (`Null` when empty).
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, ProviderError> {
        let url = format!("{}{path}", self.cfg.url.trim_end_matches('/'));
        let password = self.password()?;
        let attempts = self.cfg.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(Duration::from_millis(500 << (attempt - 2).min(4))).await;
            }
            let mut req = self.client.request(method.clone(), &url).header("Accept", "application/json");
            if let Some(user) = &self.cfg.username {
                req = req.basic_auth(user, password.as_deref());
            }
            if let Some(b) = body {
                req = req.header("Content-Type", "application/json").body(b.to_string());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = crate::http_check::chain(&e);
                    tracing::debug!(machine = %self.machine, attempt, error = %last, "BMC call failed");
                    continue;
                }
            };
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(doc);
            }
            let detail = redfish_message(&doc).unwrap_or_else(|| text.chars().take(200).collect());
            last = format!("{method} {path}: HTTP {status}: {detail}");
            if status.is_server_error() || status.as_u16() == 429 {
                continue;
            }
            let hint = if status.as_u16() == 401 { " (check bmc.username and the password variable)" } else { "" };
            return Err(ProviderError::permanent(format!("machine `{}`: the BMC at {} answered {last}{hint}", self.machine, self.cfg.url)));
        }
        Err(ProviderError::transient(format!(
            "machine `{}`: the BMC at {} is unreachable after {attempts} attempts: {last}",
            self.machine, self.cfg.url
        )))
    }

    /// The system's path, looked up once.
    async fn system(&self) -> Result<&str, ProviderError> {
        self.system
            .get_or_try_init(|| async {
                if let Some(s) = &self.cfg.system {
                    return Ok(system_path(s));
                }
                let doc = self.call(Method::GET, "/redfish/v1/Systems", None).await?;
                let members: Vec<&str> = doc["Members"].as_array().into_iter().flatten().filter_map(|m| m["@odata.id"].as_str()).collect();
                match members.as_slice() {
                    [one] => Ok(one.to_string()),
                    _ => Err(ProviderError::permanent(format!(
                        "machine `{}`: the BMC at {} manages {} systems; set bmc.system to one of: {}",
                        self.machine,
                        self.cfg.url,
                        members.len(),
                        members.join(", ")
                    ))),
                }
            })
            .await
            .map(String::as_str)
    }

    pub async fn info(&self) -> Result<SystemInfo, ProviderError> {
        let path = self.system().await?.to_string();
        let doc = self.call(Method::GET, &path, None).await?;
        Ok(parse_system(&path, &doc))
    }

    /// `ComputerSystem.Reset` with `kind` (On, ForceOff, GracefulShutdown, ForceRestart...).
    pub async fn reset(&self, kind: &str) -> Result<(), ProviderError> {
        let target = self.info().await?.reset_target;
        self.call(Method::POST, &target, Some(&reset_body(kind))).await.map(drop)
    }

    pub async fn boot_once(&self, target: &str) -> Result<(), ProviderError> {
        let path = self.system().await?.to_string();
        self.call(Method::PATCH, &path, Some(&boot_once_body(target))).await.map(drop)
    }

    /// The first virtual media device that takes CDs or DVDs.
    async fn cd_device(&self) -> Result<String, ProviderError> {
        let path = format!("{}/VirtualMedia", self.system().await?);
        let doc = self.call(Method::GET, &path, None).await?;
        for m in doc["Members"].as_array().into_iter().flatten().filter_map(|m| m["@odata.id"].as_str()) {
            let dev = self.call(Method::GET, m, None).await?;
            let types = dev["MediaTypes"].as_array().into_iter().flatten().filter_map(Value::as_str);
            if types.into_iter().any(|t| t == "CD" || t == "DVD") {
                return Ok(m.to_string());
            }
        }
        Err(ProviderError::permanent(format!("machine `{}`: the BMC offers no CD/DVD virtual media", self.machine)))
    }

    /// Inserts `image` (a URL the BMC downloads) into the virtual CD.
    pub async fn insert_media(&self, image: &str) -> Result<(), ProviderError> {
        let dev = self.cd_device().await?;
        let current = self.call(Method::GET, &dev, None).await?;
        if current["Inserted"].as_bool() == Some(true) {
            if current["Image"].as_str() == Some(image) {
                return Ok(());
            }
            self.call(Method::POST, &format!("{dev}/Actions/VirtualMedia.EjectMedia"), Some(&json!({}))).await?;
        }
        self.call(Method::POST, &format!("{dev}/Actions/VirtualMedia.InsertMedia"), Some(&insert_media_body(image))).await.map(drop)
    }

    /// The image in the virtual CD, if any.
    pub async fn inserted_media(&self) -> Result<Option<String>, ProviderError> {
        let dev = self.cd_device().await?;
        let doc = self.call(Method::GET, &dev, None).await?;
        Ok((doc["Inserted"].as_bool() == Some(true)).then(|| doc["Image"].as_str().unwrap_or_default().to_string()))
    }

    pub async fn eject_media(&self) -> Result<(), ProviderError> {
        let dev = self.cd_device().await?;
        let doc = self.call(Method::GET, &dev, None).await?;
        if doc["Inserted"].as_bool() == Some(true) {
            self.call(Method::POST, &format!("{dev}/Actions/VirtualMedia.EjectMedia"), Some(&json!({}))).await?;
        }
        Ok(())
    }

    /// Polls until the power state is `want`: BMCs apply resets asynchronously.
    pub async fn wait_power(&self, want: &str, timeout: Duration) -> Result<(), ProviderError> {
        let deadline = Instant::now() + timeout;
        loop {
            let power = self.info().await?.power;
            if power == want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::permanent(format!(
                    "machine `{}`: the BMC still reports power {power} after {}s (waiting for {want})",
                    self.machine,
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Powers on (or off) unless it already is, and waits for it.
    pub async fn ensure_power(&self, on: bool, timeout: Duration) -> Result<(), ProviderError> {
        let (want, kind) = if on { ("On", "On") } else { ("Off", "ForceOff") };
        if self.info().await?.power != want {
            self.reset(kind).await?;
        }
        self.wait_power(want, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_plain_values() {
        assert_eq!(reset_body("On"), json!({"ResetType": "On"}));
        assert_eq!(boot_once_body("Pxe")["Boot"]["BootSourceOverrideEnabled"], "Once");
        assert_eq!(insert_media_body("http://h/i.iso")["Inserted"], true);
        assert_eq!(system_path("abc"), "/redfish/v1/Systems/abc");
        assert_eq!(system_path("/redfish/v1/Systems/1"), "/redfish/v1/Systems/1");
    }

    #[test]
    fn systems_and_errors_parse() {
        let doc = json!({"PowerState": "On", "Boot": {"BootSourceOverrideTarget": "Pxe"},
            "Actions": {"#ComputerSystem.Reset": {"target": "/x/Actions/ComputerSystem.Reset"}}});
        let s = parse_system("/x", &doc);
        assert_eq!(
            (s.power.as_str(), s.boot_target.as_deref(), s.reset_target.as_str()),
            ("On", Some("Pxe"), "/x/Actions/ComputerSystem.Reset")
        );
        assert_eq!(parse_system("/y", &json!({})).reset_target, "/y/Actions/ComputerSystem.Reset");
        let err = json!({"error": {"message": "generic", "@Message.ExtendedInfo": [{"Message": "Bad ResetType"}]}});
        assert_eq!(redfish_message(&err).as_deref(), Some("Bad ResetType"));
    }
}
