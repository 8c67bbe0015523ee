//! The `[providers.gcp]` block, with gcloud's standard environment variables as fallbacks.

use phoenix_core::provider::ProviderError;
use phoenix_core::schema::validators;
use phoenix_core::value::{Attrs, Value};

/// Settings of the provider block; credentials come from the standard Google sources.
#[derive(Debug, Clone, PartialEq)]
pub struct GcpConfig {
    /// Else `GOOGLE_CLOUD_PROJECT`, else `CLOUDSDK_CORE_PROJECT`.
    pub project: Option<String>,
    /// Else `CLOUDSDK_COMPUTE_REGION`, else the zone's region.
    pub region: Option<String>,
    /// Else `CLOUDSDK_COMPUTE_ZONE`.
    pub zone: Option<String>,
    /// The Compute API root (`http://127.0.0.1:8080`), else `CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE`
    /// (gcloud's variable; its `/compute/v1/` suffix is dropped, the client adds it).
    pub endpoint: Option<String>,
    /// `"default"` (application default credentials) or `"anonymous"` (no token).
    /// Unset: anonymous when the endpoint is plain `http://` — a test server or an
    /// emulator; a bearer token must never travel in clear — otherwise default.
    pub credentials: Option<String>,
    pub max_concurrency: usize,
    pub requests_per_second: f64,
    pub wait_timeout_secs: u64,
}

impl Default for GcpConfig {
    fn default() -> Self {
        Self {
            project: None,
            region: None,
            zone: None,
            endpoint: None,
            credentials: None,
            max_concurrency: 32,
            requests_per_second: 20.0,
            wait_timeout_secs: 600,
        }
    }
}

const KEYS: [&str; 8] =
    ["project", "region", "zone", "endpoint", "credentials", "max_concurrency", "requests_per_second", "wait_timeout_secs"];

/// The environment variable that overrides the endpoint.
pub const ENDPOINT_VAR: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE";

impl GcpConfig {
    /// Reads and checks the block, then fills what it leaves out from the environment (`env`).
    pub fn from_block(block: &Attrs, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ProviderError> {
        let mut c = GcpConfig::default();
        for (k, v) in block {
            // Every refusal names its key, so the CLI points at its line.
            let mut apply = || -> Result<(), ProviderError> {
                let bad = |want: &str| ProviderError::permanent(format!("`{k}` in [providers.gcp] must be {want}"));
                let string = |want: &str| v.as_str().map(str::to_string).ok_or_else(|| bad(want));
                match k.as_str() {
                    "project" => c.project = Some(string("a project id")?),
                    "region" => {
                        c.region = Some(string("a region such as \"europe-west1\"")?);
                        validators::gcp_region(v).map_err(|e| ProviderError::permanent(format!("`region` in [providers.gcp]: {e}")))?;
                    }
                    "zone" => {
                        c.zone = Some(string("a zone such as \"europe-west1-b\"")?);
                        validators::gcp_zone(v).map_err(|e| ProviderError::permanent(format!("`zone` in [providers.gcp]: {e}")))?;
                    }
                    "endpoint" => c.endpoint = Some(endpoint(&string("a URL")?).map_err(|e| bad(&e))?),
                    "credentials" => {
                        let s = string("\"default\" or \"anonymous\"")?;
                        if s != "default" && s != "anonymous" {
                            return Err(bad("\"default\" or \"anonymous\""));
                        }
                        c.credentials = Some(s);
                    }
                    "max_concurrency" => c.max_concurrency = positive(v).ok_or_else(|| bad("a positive integer"))? as usize,
                    "requests_per_second" => {
                        c.requests_per_second = v.as_f64().filter(|r| *r > 0.0).ok_or_else(|| bad("a positive number"))?
                    }
                    "wait_timeout_secs" => c.wait_timeout_secs = positive(v).ok_or_else(|| bad("a positive integer"))?,
                    other => {
                        return Err(ProviderError::permanent(format!(
                            "unknown key `{other}` in [providers.gcp]; known keys: {}",
                            KEYS.join(", ")
                        )));
                    }
                }
                Ok(())
            };
            apply().map_err(|e| e.about_key(k, &KEYS))?;
        }
        let nonempty = |n: &str| env(n).filter(|v| !v.is_empty());
        c.project = c.project.or_else(|| nonempty("GOOGLE_CLOUD_PROJECT")).or_else(|| nonempty("CLOUDSDK_CORE_PROJECT"));
        c.region = c.region.or_else(|| nonempty("CLOUDSDK_COMPUTE_REGION"));
        c.zone = c.zone.or_else(|| nonempty("CLOUDSDK_COMPUTE_ZONE"));
        if c.endpoint.is_none()
            && let Some(e) = nonempty(ENDPOINT_VAR)
        {
            c.endpoint = Some(endpoint(&e).map_err(|w| ProviderError::permanent(format!("{ENDPOINT_VAR} must be {w}")))?);
        }
        Ok(c)
    }

    /// Whether requests go without credentials (see [`GcpConfig::credentials`]).
    pub fn anonymous(&self) -> bool {
        match self.credentials.as_deref() {
            Some(c) => c == "anonymous",
            None => self.endpoint.as_deref().is_some_and(|e| e.starts_with("http://")),
        }
    }
}

/// Checks an endpoint URL and drops gcloud's `/compute/v1/` suffix.
fn endpoint(e: &str) -> Result<String, String> {
    if !(e.starts_with("http://") || e.starts_with("https://")) {
        return Err("a URL starting with http:// or https://".into());
    }
    let e = e.trim_end_matches('/');
    Ok(e.strip_suffix("/compute/v1").unwrap_or(e).to_string())
}

fn positive(v: &Value) -> Option<u64> {
    v.as_u64().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn block_then_environment_and_credentials_choice() {
        let env = |n: &str| match n {
            "GOOGLE_CLOUD_PROJECT" => Some("from-env".to_string()),
            "CLOUDSDK_COMPUTE_ZONE" => Some("europe-west1-b".to_string()),
            ENDPOINT_VAR => Some("http://127.0.0.1:9/compute/v1/".to_string()),
            _ => None,
        };
        let block: Attrs = serde_json::from_value(json!({"project": "p1"})).unwrap();
        let c = GcpConfig::from_block(&block, &env).unwrap();
        assert_eq!(c.project.as_deref(), Some("p1"));
        assert_eq!(c.zone.as_deref(), Some("europe-west1-b"));
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert!(c.anonymous(), "plain http endpoint: no token");
        let block: Attrs = serde_json::from_value(json!({"endpoint": "https://compute.internal", "credentials": "default"})).unwrap();
        let c = GcpConfig::from_block(&block, &|_| None).unwrap();
        assert!(!c.anonymous());
        let bad: Attrs = serde_json::from_value(json!({"projet": "x"})).unwrap();
        assert!(GcpConfig::from_block(&bad, &|_| None).unwrap_err().message.contains("projet"));
        let bad: Attrs = serde_json::from_value(json!({"credentials": "magic"})).unwrap();
        assert!(GcpConfig::from_block(&bad, &|_| None).is_err());
        let bad: Attrs = serde_json::from_value(json!({"zone": "europe-west1"})).unwrap();
        assert!(GcpConfig::from_block(&bad, &|_| None).unwrap_err().message.contains("is a region, not a zone"));
    }
}
