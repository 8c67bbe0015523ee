//! A fault-injecting HTTP proxy between an SDK and an emulator (moto), for
//! tests of what Phoenix does when the cloud API misbehaves.
//!
//! Point the SDK at [`FaultProxy::endpoint`] (e.g. through `AWS_ENDPOINT_URL`);
//! every request is decided by a seeded generator, in arrival order:
//!
//! - **throttled**: answered `RequestLimitExceeded` in EC2's XML error shape
//!   (HTTP 503 or 429) without reaching the emulator;
//! - **server error**: answered `InternalError` (HTTP 500), not forwarded;
//! - **reset**: the connection is reset before the request is forwarded;
//! - **dropped response**: forwarded, executed by the emulator, and then the
//!   connection is reset instead of answering — the call happened and the
//!   client never heard, the case that makes duplicates;
//! - **delayed**: forwarded after a pause (combinable with the above);
//! - **rules**: a request whose `Action` matches is always answered with a
//!   fixed error (`UnauthorizedOperation`, `InvalidAMIID.NotFound` …), for
//!   permanent failures.
//!
//! Counts of everything are readable at any time ([`FaultProxy::counts`]), so
//! a test can assert both that faults were injected and how many requests the
//! client made (no retry storms). A [`Hook`] sees each request after the
//! emulator executed it and before the client hears back: the crash harness
//! kills the client there.
//!
//! It speaks HTTP/1.1 itself on tokio rather than through hyper's server: the
//! tree builds hyper without its `server` feature, and turning it on would
//! rebuild the whole AWS SDK for every builder. The SDK's EC2 requests are
//! plain `Content-Length` POSTs; each connection carries one exchange and is
//! closed (`connection: close`), so no request framing beyond that is needed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What to inject, per request, as probabilities in `0.0..=1.0`.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    pub seed: u64,
    /// Answered `RequestLimitExceeded` (HTTP 503 or 429), not forwarded.
    pub throttle: f64,
    /// Answered `InternalError` (HTTP 500), not forwarded.
    pub server_error: f64,
    /// Connection reset before forwarding.
    pub reset: f64,
    /// Forwarded and executed, then the connection is reset instead of answering.
    pub drop_response: f64,
    /// Delayed by up to `max_latency` before forwarding.
    pub latency: f64,
    pub max_latency: Duration,
    /// Requests whose `Action` is named here are answered with this error, always.
    pub rules: Vec<ErrorRule>,
    /// Faults apply only to these actions (all when empty); rules always apply.
    pub only_actions: Vec<String>,
    /// The response to the first request of each of these actions is dropped
    /// after the emulator executed it: a deterministic lost answer.
    pub drop_first: Vec<String>,
}

impl FaultPlan {
    /// No faults: a transparent proxy that counts.
    pub fn none() -> Self {
        Self::default()
    }

    /// `rate` of the requests fail transiently, spread evenly over throttling,
    /// 500s and resets; `rate / 2` are delayed up to 200 ms.
    pub fn transient(seed: u64, rate: f64) -> Self {
        Self {
            seed,
            throttle: rate / 3.0,
            server_error: rate / 3.0,
            reset: rate / 3.0,
            latency: rate / 2.0,
            max_latency: Duration::from_millis(200),
            ..Self::default()
        }
    }

    /// `rate` of the responses are lost after the emulator executed the request.
    pub fn dropped_responses(seed: u64, rate: f64) -> Self {
        Self { seed, drop_response: rate, ..Self::default() }
    }

    /// Loses the answer to the first request of `action` (after it ran).
    pub fn with_drop_first(mut self, action: &str) -> Self {
        self.drop_first.push(action.into());
        self
    }

    pub fn with_rule(mut self, rule: ErrorRule) -> Self {
        self.rules.push(rule);
        self
    }
}

/// A fixed error answer for every request of one `Action`.
#[derive(Debug, Clone)]
pub struct ErrorRule {
    pub action: String,
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ErrorRule {
    pub fn new(action: &str, status: u16, code: &str, message: &str) -> Self {
        Self { action: action.into(), status, code: code.into(), message: message.into() }
    }
}

/// What the proxy did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Requests received.
    pub requests: u64,
    /// Requests the emulator executed (answered or with the answer dropped).
    pub forwarded: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub resets: u64,
    pub dropped_responses: u64,
    pub delayed: u64,
    /// Answered by an [`ErrorRule`].
    pub rule_errors: u64,
    /// Requests received, by `Action`.
    pub by_action: BTreeMap<String, u64>,
    /// The most requests the proxy held at once (received, not yet answered).
    pub peak_in_flight: u64,
    /// When each request arrived, since the proxy started: what a test of
    /// a client's rate limit reads.
    pub arrivals: Vec<Duration>,
}

impl FaultCounts {
    /// Transient faults injected (not counting delays, which are not failures).
    pub fn transient_faults(&self) -> u64 {
        self.throttled + self.server_errors + self.resets + self.dropped_responses
    }

    pub fn action(&self, action: &str) -> u64 {
        self.by_action.get(action).copied().unwrap_or(0)
    }
}

/// One request as a [`Hook`] sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// 1-based arrival number.
    pub seq: u64,
    /// The Query API's `Action`, or `METHOD /path` for a REST API.
    pub action: String,
}

/// Called after the emulator executed a request, before its answer is sent
/// (or dropped). The proxy waits for it to return.
pub type Hook = Arc<dyn Fn(&Seen) + Send + Sync>;

/// What the proxy decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Throttle { status: u16 },
    ServerError,
    Reset,
    DropResponse,
}

/// SplitMix64: small, seedable, and the same sequence on every platform.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Inner {
    plan: FaultPlan,
    rng: Rng,
    counts: FaultCounts,
    hook: Option<Hook>,
    started: std::time::Instant,
    in_flight: u64,
}

/// Counts one request as in flight until the exchange ends, however it ends.
struct InFlight<'a>(&'a Mutex<Inner>);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Mutex<Inner>) -> Self {
        let mut inner = shared.lock().expect("not poisoned");
        inner.in_flight += 1;
        inner.counts.peak_in_flight = inner.counts.peak_in_flight.max(inner.in_flight);
        let at = inner.started.elapsed();
        inner.counts.arrivals.push(at);
        drop(inner);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.lock().expect("not poisoned").in_flight -= 1;
    }
}

/// The proxy: listening on a free loopback port, forwarding to `upstream`,
/// stopped when dropped.
pub struct FaultProxy {
    pub port: u16,
    inner: Arc<Mutex<Inner>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `http://127.0.0.1:{upstream_port}`.
    pub fn start(upstream_port: u16, plan: FaultPlan) -> FaultProxy {
        let port = crate::free_port();
        let inner = Arc::new(Mutex::new(Inner {
            rng: Rng(plan.seed),
            plan,
            counts: FaultCounts::default(),
            hook: None,
            started: std::time::Instant::now(),
            in_flight: 0,
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let shared = inner.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime");
                rt.block_on(async move {
                    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the fault proxy");
                    ready_tx.send(()).expect("the starter waits");
                    let serve = async {
                        loop {
                            let Ok((client, _)) = listener.accept().await else { continue };
                            let shared = shared.clone();
                            tokio::spawn(async move {
                                let _ = exchange(client, upstream_port, &shared).await;
                            });
                        }
                    };
                    tokio::select! {
                        () = serve => {}
                        _ = stopped => {}
                    }
                });
                rt.shutdown_background();
            })
            .expect("spawn the fault proxy thread");
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("the fault proxy starts");
        FaultProxy { port, inner, stop: Some(stop), thread: Some(thread) }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the fault plan (the generator is reseeded from it).
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.rng = Rng(plan.seed);
        inner.plan = plan;
    }

    pub fn set_hook(&self, hook: Hook) {
        self.inner.lock().expect("not poisoned").hook = Some(hook);
    }

    pub fn counts(&self) -> FaultCounts {
        self.inner.lock().expect("not poisoned").counts.clone()
    }

    pub fn reset_counts(&self) {
        self.inner.lock().expect("not poisoned").counts = FaultCounts::default();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request read off the client connection.
struct Request {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Request {
    /// The EC2 query `Action` (form body or query string), or `?`.
    fn action(&self) -> String {
        let first_line = self.head.split(|b| *b == b'\n').next().unwrap_or_default();
        let query = first_line.splitn(2, |b| *b == b'?').nth(1).unwrap_or_default();
        [self.body.as_slice(), query]
            .iter()
            .flat_map(|s| s.split(|b| *b == b'&' || *b == b' '))
            .find_map(|kv| kv.strip_prefix(b"Action="))
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_else(|| {
                // A REST API (GCE, Route 53): the method and the path.
                let line = String::from_utf8_lossy(first_line);
                let mut words = line.split_whitespace();
                let method = words.next().unwrap_or("?");
                let path = words.next().unwrap_or("").split('?').next().unwrap_or("");
                format!("{method} {path}")
            })
    }
}

/// Whether `pattern` names `action`: the same (`CreateVpc`), or for a REST
/// API a pattern with one `*` (`POST */global/networks`).
fn names(pattern: &str, action: &str) -> bool {
    match pattern.split_once('*') {
        Some((prefix, suffix)) => action.len() >= prefix.len() + suffix.len() && action.starts_with(prefix) && action.ends_with(suffix),
        None => pattern == action,
    }
}

/// One exchange on one client connection.
async fn exchange(mut client: TcpStream, upstream_port: u16, shared: &Mutex<Inner>) -> std::io::Result<()> {
    let Some(req) = read_request(&mut client).await? else { return Ok(()) };
    let _in_flight = InFlight::enter(shared);
    let action = req.action();
    let (seq, fault, delay, rule) = {
        let mut inner = shared.lock().expect("not poisoned");
        inner.counts.requests += 1;
        *inner.counts.by_action.entry(action.clone()).or_default() += 1;
        let seq = inner.counts.requests;
        let rule = inner.plan.rules.iter().find(|r| names(&r.action, &action)).cloned();
        let (mut fault, delay) = decide(&mut inner, &action);
        if inner.counts.by_action[&action] == 1 && inner.plan.drop_first.iter().any(|p| names(p, &action)) {
            fault = Fault::DropResponse;
        }
        (seq, fault, delay, rule)
    };
    if let Some(rule) = rule {
        shared.lock().expect("not poisoned").counts.rule_errors += 1;
        return answer_error(&mut client, rule.status, &rule.code, &rule.message, seq).await;
    }
    if let Some(d) = delay {
        shared.lock().expect("not poisoned").counts.delayed += 1;
        tokio::time::sleep(d).await;
    }
    match fault {
        Fault::Throttle { status } => {
            shared.lock().expect("not poisoned").counts.throttled += 1;
            return answer_error(&mut client, status, "RequestLimitExceeded", "Request limit exceeded.", seq).await;
        }
        Fault::ServerError => {
            shared.lock().expect("not poisoned").counts.server_errors += 1;
            return answer_error(&mut client, 500, "InternalError", "An internal error has occurred.", seq).await;
        }
        Fault::Reset => {
            shared.lock().expect("not poisoned").counts.resets += 1;
            return reset(client);
        }
        Fault::None | Fault::DropResponse => {}
    }
    let response = forward(&req, upstream_port).await?;
    let hook = {
        let mut inner = shared.lock().expect("not poisoned");
        inner.counts.forwarded += 1;
        if fault == Fault::DropResponse {
            inner.counts.dropped_responses += 1;
        }
        inner.hook.clone()
    };
    if let Some(hook) = hook {
        hook(&Seen { seq, action });
    }
    if fault == Fault::DropResponse {
        return reset(client);
    }
    client.write_all(&response).await?;
    client.shutdown().await
}

/// Draws the fault and delay of one request from the plan's generator.
fn decide(inner: &mut Inner, action: &str) -> (Fault, Option<Duration>) {
    let plan = &inner.plan;
    let eligible = plan.only_actions.is_empty() || plan.only_actions.iter().any(|a| names(a, action));
    // Always draw the same number of values, so one request's fate never shifts another's.
    let (r, l, s, which) = (inner.rng.unit(), inner.rng.unit(), inner.rng.unit(), inner.rng.next_u64());
    if !eligible {
        return (Fault::None, None);
    }
    let delay = (l < plan.latency).then(|| plan.max_latency.mul_f64(s));
    let edges = [plan.throttle, plan.server_error, plan.reset, plan.drop_response]
        .iter()
        .scan(0.0, |acc, p| {
            *acc += p;
            Some(*acc)
        })
        .collect::<Vec<f64>>();
    let fault = match edges.iter().position(|edge| r < *edge) {
        Some(0) => Fault::Throttle { status: if which % 2 == 0 { 503 } else { 429 } },
        Some(1) => Fault::ServerError,
        Some(2) => Fault::Reset,
        Some(_) => Fault::DropResponse,
        None => Fault::None,
    };
    (fault, delay)
}

/// Reads one request: the head up to the blank line, then `Content-Length` bytes.
async fn read_request(client: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 1 << 20 {
            return Err(std::io::Error::other("request head over 1 MiB"));
        }
    };
    let head = buf[..head_end].to_vec();
    let length = header(&head, "content-length").and_then(|v| v.trim().parse::<usize>().ok()).unwrap_or(0);
    if header(&head, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        return Err(std::io::Error::other("chunked request bodies are not supported by the fault proxy"));
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("client closed mid-body"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(Request { head, body }))
}

/// Sends the request to the emulator on a fresh connection and returns the
/// whole response, re-headed to close the client connection after it.
async fn forward(req: &Request, upstream_port: u16) -> std::io::Result<Vec<u8>> {
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port)).await?;
    upstream.write_all(&with_connection_close(&req.head)).await?;
    upstream.write_all(&req.body).await?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response).await?;
    let head_end = find(&response, b"\r\n\r\n").map(|i| i + 4).ok_or_else(|| std::io::Error::other("upstream sent no response head"))?;
    let mut out = with_connection_close(&response[..head_end]);
    out.extend_from_slice(&response[head_end..]);
    Ok(out)
}

/// The head with any `Connection` header replaced by `connection: close`.
fn with_connection_close(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(text.len() + 20);
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    out.into_bytes()
}

fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a str> {
    std::str::from_utf8(head).ok()?.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v)
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An error in EC2's XML shape, as the SDK parses it.
async fn answer_error(client: &mut TcpStream, status: u16, code: &str, message: &str, seq: u64) -> std::io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault-proxy-{seq}</RequestID></Response>"
    );
    let reason = match status {
        400 => "Bad Request",
        403 => "Forbidden",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/xml;charset=UTF-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(body.as_bytes()).await?;
    client.shutdown().await
}

/// Resets the connection (RST, not FIN): the client sees "connection reset".
fn reset(client: TcpStream) -> std::io::Result<()> {
    client.set_zero_linger()?;
    drop(client);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let draw = |seed| {
            let mut inner = Inner {
                plan: FaultPlan::transient(seed, 0.3),
                rng: Rng(seed),
                counts: FaultCounts::default(),
                hook: None,
                started: std::time::Instant::now(),
                in_flight: 0,
            };
            (0..200).map(|_| decide(&mut inner, "X").0).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let faults = draw(7).into_iter().filter(|f| *f != Fault::None).count();
        assert!((30..=90).contains(&faults), "about 30 % of 200: {faults}");
    }

    #[test]
    fn dropped_responses_are_drawn_at_their_rate() {
        let mut inner = Inner {
            plan: FaultPlan::dropped_responses(5, 0.1),
            rng: Rng(5),
            counts: FaultCounts::default(),
            hook: None,
            started: std::time::Instant::now(),
            in_flight: 0,
        };
        let dropped = (0..1000).filter(|_| decide(&mut inner, "X").0 == Fault::DropResponse).count();
        assert!((60..=140).contains(&dropped), "about 10 % of 1000: {dropped}");
    }

    #[test]
    fn action_comes_from_the_form_body_or_the_query() {
        let r = Request { head: b"POST / HTTP/1.1\r\n\r\n".to_vec(), body: b"Action=RunInstances&Version=2016-11-15".to_vec() };
        assert_eq!(r.action(), "RunInstances");
        let r = Request { head: b"GET /?Version=1&Action=DescribeVpcs HTTP/1.1\r\n\r\n".to_vec(), body: vec![] };
        assert_eq!(r.action(), "DescribeVpcs");
    }

    #[test]
    fn connection_header_is_replaced() {
        let out = with_connection_close(b"POST / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
        assert_eq!(String::from_utf8(out).unwrap(), "POST / HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n");
    }
}
