//! `metal.http_check`.

use std::time::Duration;

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Kind, Observed, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use crate::schemas::http_url;
use crate::ssh::shell::quote;
use crate::transport::{ExecSpec, OutputStream, Transport};
use crate::{Metal, default_host};

/// Starts the line on which `curl` reports the status of a check made on the host.
const MARK: &str = "\u{1e}phoenix-http-status ";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest one attempt may take (the whole check has `timeout_secs`).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Refresh makes one attempt, this long at most.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a body `contains` looks at.
const MAX_BODY: usize = 1 << 20;

pub fn client() -> Result<reqwest::Client, ProviderError> {
    crate::tls::ensure_provider();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        // The status asked for is the status of this URL, not of where it redirects.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ProviderError::permanent(format!("cannot set up the HTTP client: {}", chain(&e))))
}

pub struct HttpCheck;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpCheckSpec {
    /// the host it lives on: a name under [providers.metal.hosts]
    #[serde(default = "default_host")]
    #[schemars(extend("force_new" = true))]
    pub host: String,
    /// an http:// URL to GET
    #[schemars(extend("format" = "http-url"))]
    pub url: String,
    /// the status that passes
    #[serde(default = "default_status")]
    #[schemars(extend("format" = "http-status"))]
    pub expect_status: i64,
    /// text the response body must contain
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// give up after this many seconds
    #[serde(default = "default_timeout")]
    #[schemars(extend("format" = "positive"))]
    pub timeout_secs: i64,
    /// milliseconds between attempts
    #[serde(default = "default_interval")]
    #[schemars(extend("format" = "positive"))]
    pub interval_ms: i64,
    /// where the GET is made: "phoenix" (this machine, the default) or "host" (on the resource's host, with curl)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "check-from"))]
    pub from: Option<String>,
}

/// Missing fields read as empty: state may hold none (a delete of what a failed create recorded).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct HttpCheckOutputs {
    /// the status of the passing response
    pub status: u16,
}

fn default_status() -> i64 {
    200
}

fn default_timeout() -> i64 {
    60
}

fn default_interval() -> i64 {
    250
}

struct Check<'a> {
    url: &'a str,
    expect: u16,
    contains: Option<&'a str>,
    /// `from = "host"`: the GET is made on the resource's host (with `curl`), not by Phoenix.
    from_host: bool,
}

impl<'a> Check<'a> {
    fn from_spec(spec: &'a HttpCheckSpec) -> Result<Self, ProviderError> {
        let url = spec.url.as_str();
        http_url(&json!(url)).map_err(|e| ProviderError::permanent(format!("`url`: {e}")))?;
        let expect = spec.expect_status;
        let expect = u16::try_from(expect)
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| ProviderError::permanent(format!("`expect_status`: {expect} is not an HTTP status code")))?;
        let from_host = match spec.from.as_deref() {
            None | Some("phoenix") => false,
            Some("host") => true,
            Some(other) => return Err(ProviderError::permanent(format!("`from`: `{other}` is neither \"phoenix\" nor \"host\""))),
        };
        Ok(Self { url, expect, contains: spec.contains.as_deref(), from_host })
    }

    fn goal(&self) -> String {
        match self.contains {
            Some(c) => format!("status {} with `{c}` in the body", self.expect),
            None => format!("status {}", self.expect),
        }
    }

    /// One GET from wherever the check is made.
    async fn attempt_from(&self, client: &reqwest::Client, t: &dyn Transport, timeout: Duration) -> Result<u16, String> {
        if self.from_host { self.attempt_on_host(t, timeout).await } else { self.attempt(client, timeout).await }
    }

    /// One GET made on the host with `curl`, which prints the body and then a
    /// marker line with the status, so both come back through the transport.
    async fn attempt_on_host(&self, t: &dyn Transport, timeout: Duration) -> Result<u16, String> {
        let secs = timeout.as_secs().max(1);
        let spec = ExecSpec {
            command: format!("exec curl -sS --max-time {secs} -w '\\n{MARK}%{{http_code}}\\n' {}", quote(self.url)),
            workdir: "/".into(),
            env: Vec::new(),
            timeout: Some(timeout + Duration::from_secs(5)),
        };
        let lines = std::sync::Mutex::new((Vec::<String>::new(), Vec::<String>::new()));
        let exit = t
            .exec(&spec, &|s, l| {
                let mut g = lines.lock().unwrap_or_else(|e| e.into_inner());
                if s == OutputStream::Stdout { g.0.push(l.to_string()) } else { g.1.push(l.to_string()) }
            })
            .await
            .map_err(|e| format!("cannot run curl on the host: {e}"))?;
        let (out, err) = lines.into_inner().unwrap_or_else(|e| e.into_inner());
        if exit.code == Some(127) {
            return Err("`curl` is not installed on the host".into());
        }
        let status = out.iter().rev().find_map(|l| l.strip_prefix(MARK)).and_then(|c| c.trim().parse::<u16>().ok()).unwrap_or(0);
        if status == 0 {
            return Err(format!("from the host: {}", err.last().map(String::as_str).unwrap_or("no answer")));
        }
        if status != self.expect {
            return Err(format!("status {status} (from the host)"));
        }
        if let Some(text) = self.contains
            && !out.iter().any(|l| l.contains(text))
        {
            return Err(format!("status {status} but the body does not contain `{text}` (from the host)"));
        }
        Ok(status)
    }

    /// One GET: the status when it passes, else why not.
    async fn attempt(&self, client: &reqwest::Client, timeout: Duration) -> Result<u16, String> {
        let mut resp = client.get(self.url).timeout(timeout).send().await.map_err(|e| chain(&e))?;
        let status = resp.status().as_u16();
        if status != self.expect {
            return Err(format!("status {status}"));
        }
        if let Some(text) = self.contains {
            let mut body = Vec::new();
            while body.len() < MAX_BODY {
                match resp.chunk().await {
                    Ok(Some(c)) => body.extend_from_slice(&c),
                    Ok(None) => break,
                    Err(e) => {
                        return Err(format!("status {status}, reading the body: {}", chain(&e)));
                    }
                }
            }
            if !String::from_utf8_lossy(&body).contains(text) {
                return Err(format!("status {status} but the body does not contain `{text}`"));
            }
        }
        Ok(status)
    }
}

/// An error with its causes: reqwest's own message rarely says "connection refused".
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

/// Create and update: GET every `interval_ms` until it passes; an error after `timeout_secs`.
async fn wait(
    client: &Metal,
    addr: &phoenix_core::ResourceAddr,
    spec: &HttpCheckSpec,
    log: &phoenix_core::provider::LogSink,
) -> Result<HttpCheckOutputs, ProviderError> {
    let http = client.http()?;
    let t = client.config()?.transport(&spec.host)?;
    let check = Check::from_spec(spec)?;
    let timeout = Duration::from_secs(spec.timeout_secs.max(1) as u64);
    let interval = Duration::from_millis(spec.interval_ms.max(1) as u64);
    let deadline = Instant::now() + timeout;
    let mut last_logged = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let reason = match check.attempt_from(http, t.as_ref(), left.clamp(Duration::from_millis(100), ATTEMPT_TIMEOUT)).await {
            Ok(status) => return Ok(HttpCheckOutputs { status }),
            Err(reason) => reason,
        };
        if reason != last_logged {
            log(addr, &format!("waiting for {} from {}: {reason}", check.goal(), check.url));
            last_logged.clone_from(&reason);
        }
        if Instant::now() + interval >= deadline {
            return Err(ProviderError::permanent(format!(
                "`{addr}`: GET {} did not return {} within {}s; last attempt: {reason}",
                check.url,
                check.goal(),
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(interval).await;
    }
}

#[async_trait]
impl Kind for HttpCheck {
    const TYPE: &'static str = "metal.http_check";
    const DESCRIPTION: &'static str =
        "Waits until an HTTP GET returns the expected status (and body text), made from the machine running Phoenix or from the host";
    const FORMATS: &'static [(&'static str, Validator)] = crate::schemas::FORMATS;
    type Client = Metal;
    type Spec = HttpCheckSpec;
    type Outputs = HttpCheckOutputs;

    fn capabilities(&self) -> Capabilities {
        // Checks leave nothing to find.
        Capabilities::managed().not_adoptable()
    }

    /// One GET: passing keeps the check, failing forgets it so the next plan runs it again.
    async fn read(&self, client: &Metal, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        let (http, cfg) = (client.http()?, client.config()?);
        futures_util::future::try_join_all(items.iter().map(|i| async {
            let t = cfg.transport(&i.spec.host)?;
            let check = Check::from_spec(&i.spec)?;
            match check.attempt_from(http, t.as_ref(), REFRESH_TIMEOUT).await {
                Ok(status) => Ok(Some(Observed { spec: i.spec.clone(), outputs: HttpCheckOutputs { status } })),
                Err(reason) => {
                    tracing::debug!(addr = %i.addr, url = check.url, %reason, "http check no longer passes");
                    Ok(None)
                }
            }
        }))
        .await
    }

    async fn create(&self, client: &Metal, req: Create<'_, Self>) -> Result<HttpCheckOutputs, ProviderError> {
        wait(client, req.addr, req.spec, req.log).await
    }

    async fn update(&self, client: &Metal, req: Update<'_, Self>) -> Result<HttpCheckOutputs, ProviderError> {
        wait(client, req.addr, req.spec, req.log).await
    }

    async fn delete(&self, _: &Metal, _: Delete<'_, Self>) -> Result<(), ProviderError> {
        Ok(())
    }
}
