//! The `[providers.aws]` block.

use phoenix_core::provider::ProviderError;
use phoenix_core::schema::validators;
use phoenix_core::value::{Attrs, Value};

/// Settings of the provider block; credentials come from the standard AWS sources.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsConfig {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Overrides the endpoint (emulators, private clouds); `AWS_ENDPOINT_URL` works too.
    pub endpoint: Option<String>,
    /// Requests in flight at once, whatever `--parallelism` says.
    pub max_concurrency: usize,
    /// Sustained request rate (token bucket); bursts up to `max_concurrency`.
    pub requests_per_second: f64,
    /// How long to wait for an object to reach a state (running, available, gone).
    pub wait_timeout_secs: u64,
    /// Credentials files to read instead of ~/.aws/credentials (like Terraform's `shared_credentials_files`).
    pub shared_credentials_files: Vec<String>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: None,
            profile: None,
            endpoint: None,
            max_concurrency: 32,
            requests_per_second: 50.0,
            wait_timeout_secs: 600,
            shared_credentials_files: Vec::new(),
        }
    }
}

const KEYS: [&str; 7] =
    ["region", "profile", "endpoint", "max_concurrency", "requests_per_second", "wait_timeout_secs", "shared_credentials_files"];

impl AwsConfig {
    /// Reads and checks the block; unknown keys and wrong types are errors naming the key.
    pub fn from_block(block: &Attrs) -> Result<Self, ProviderError> {
        let mut c = AwsConfig::default();
        for (k, v) in block {
            // Every refusal names its key, so the CLI points at its line.
            let mut apply = || -> Result<(), ProviderError> {
                let bad = |want: &str| ProviderError::permanent(format!("`{k}` must be {want}"));
                match k.as_str() {
                    "region" => {
                        let r = v.as_str().ok_or_else(|| bad("a string such as \"eu-west-1\""))?;
                        validators::aws_region(v).map_err(|e| ProviderError::permanent(format!("`region`: {e}")))?;
                        c.region = Some(r.to_string());
                    }
                    "profile" => c.profile = Some(v.as_str().ok_or_else(|| bad("a profile name"))?.to_string()),
                    "endpoint" => {
                        let e = v.as_str().ok_or_else(|| bad("a URL"))?;
                        if !(e.starts_with("http://") || e.starts_with("https://")) {
                            return Err(bad("a URL starting with http:// or https://"));
                        }
                        c.endpoint = Some(e.to_string());
                    }
                    "max_concurrency" => c.max_concurrency = positive(v).ok_or_else(|| bad("a positive integer"))? as usize,
                    "requests_per_second" => {
                        c.requests_per_second = v.as_f64().filter(|r| *r > 0.0).ok_or_else(|| bad("a positive number"))?
                    }
                    "wait_timeout_secs" => c.wait_timeout_secs = positive(v).ok_or_else(|| bad("a positive integer"))?,
                    "shared_credentials_files" => {
                        c.shared_credentials_files = v
                            .as_array()
                            .and_then(|a| a.iter().map(|x| x.as_str().map(str::to_string)).collect::<Option<Vec<_>>>())
                            .ok_or_else(|| bad("a list of file paths"))?
                    }
                    other => {
                        return Err(ProviderError::permanent(format!(
                            "unknown key `{other}` in [providers.aws]; known keys: {}",
                            KEYS.join(", ")
                        )));
                    }
                }
                Ok(())
            };
            apply().map_err(|e| e.about_key(k, &KEYS))?;
        }
        Ok(c)
    }
}

fn positive(v: &Value) -> Option<u64> {
    v.as_u64().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_block_and_names_bad_keys() {
        let block: Attrs = serde_json::from_value(json!({"region": "eu-west-1", "max_concurrency": 8})).unwrap();
        let c = AwsConfig::from_block(&block).unwrap();
        assert_eq!((c.region.as_deref(), c.max_concurrency), (Some("eu-west-1"), 8));
        let bad: Attrs = serde_json::from_value(json!({"regoin": "x"})).unwrap();
        assert!(AwsConfig::from_block(&bad).unwrap_err().message.contains("regoin"));
        let bad: Attrs = serde_json::from_value(json!({"endpoint": "localhost:5000"})).unwrap();
        assert!(AwsConfig::from_block(&bad).is_err());
        let bad: Attrs = serde_json::from_value(json!({"region": "eu-west1"})).unwrap();
        assert!(AwsConfig::from_block(&bad).unwrap_err().message.contains("`region`: `eu-west1` is not an AWS region"));
    }
}
