//! `metal.http_check`.

use std::time::Duration;

use phoenix_core::addr::ResourceAddr;
use phoenix_core::provider::{LogSink, Observed, ProviderError, RefreshItem};
use phoenix_core::value::Attrs;
use serde_json::json;
use tokio::time::Instant;

use crate::config::MetalConfig;
use crate::schemas::http_url;
use crate::ssh::shell::quote;
use crate::transport::{ExecSpec, OutputStream, Transport};

/// Starts the line on which `curl` reports the status of a check made on the host.
const MARK: &str = "\u{1e}phoenix-http-status ";
use crate::{host, int, opt_str, req_str};

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

struct Check<'a> {
    url: &'a str,
    expect: u16,
    contains: Option<&'a str>,
    /// `from = "host"`: the GET is made on the resource's host (with `curl`), not by Phoenix.
    from_host: bool,
}

impl<'a> Check<'a> {
    fn from_inputs(inputs: &'a Attrs) -> Result<Self, ProviderError> {
        let url = req_str(inputs, "url")?;
        http_url(&json!(url)).map_err(|e| ProviderError::permanent(format!("`url`: {e}")))?;
        let expect = int(inputs, "expect_status", 200)?;
        let expect = u16::try_from(expect)
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| ProviderError::permanent(format!("`expect_status`: {expect} is not an HTTP status code")))?;
        let from_host = match opt_str(inputs, "from")? {
            None | Some("phoenix") => false,
            Some("host") => true,
            Some(other) => return Err(ProviderError::permanent(format!("`from`: `{other}` is neither \"phoenix\" nor \"host\""))),
        };
        Ok(Self { url, expect, contains: opt_str(inputs, "contains")?, from_host })
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

fn outputs(status: u16) -> Attrs {
    let mut o = Attrs::new();
    o.insert("status".into(), json!(status));
    o
}

/// Create and update: GET every `interval_ms` until it passes; an error after `timeout_secs`.
pub async fn wait(
    client: &reqwest::Client,
    cfg: &MetalConfig,
    addr: &ResourceAddr,
    inputs: &Attrs,
    log: &LogSink,
) -> Result<Attrs, ProviderError> {
    let t = cfg.transport(host(inputs))?;
    let check = Check::from_inputs(inputs)?;
    let timeout = Duration::from_secs(int(inputs, "timeout_secs", 60)?.max(1) as u64);
    let interval = Duration::from_millis(int(inputs, "interval_ms", 250)?.max(1) as u64);
    let deadline = Instant::now() + timeout;
    let mut last_logged = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let reason = match check.attempt_from(client, t.as_ref(), left.clamp(Duration::from_millis(100), ATTEMPT_TIMEOUT)).await {
            Ok(status) => return Ok(outputs(status)),
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

/// One GET: passing keeps the check, failing forgets it so the next plan runs it again.
pub async fn refresh(client: &reqwest::Client, cfg: &MetalConfig, item: &RefreshItem) -> Result<Option<Observed>, ProviderError> {
    let t = cfg.transport(host(&item.inputs))?;
    let check = Check::from_inputs(&item.inputs)?;
    match check.attempt_from(client, t.as_ref(), REFRESH_TIMEOUT).await {
        Ok(status) => Ok(Some(Observed { inputs: item.inputs.clone(), outputs: outputs(status) })),
        Err(reason) => {
            tracing::debug!(addr = %item.addr, url = check.url, %reason, "http check no longer passes");
            Ok(None)
        }
    }
}
