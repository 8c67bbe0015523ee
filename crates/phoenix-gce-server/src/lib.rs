//! A Compute Engine v1 test server: no official emulator exists, so Phoenix's
//! tests run the GCP provider against this one.
//!
//! It is strict where drift would hide: every request is routed and checked
//! against Google's published discovery document (`data/compute-v1-subset.json`,
//! revision in [`GceServer::discovery_revision`]) — unknown methods, unknown
//! query parameters, unknown body fields, wrong types, values outside an
//! enum and missing required fields get the 400 the real API sends, in
//! Google's error envelope. Behind that, `api` keeps the objects: ids are
//! decimal uint64 strings, mutations return operations that go PENDING →
//! RUNNING → DONE, `requestId` dedupes retried mutations, `list` and
//! `aggregatedList` filter (labels …) and paginate (`maxResults`/`pageToken`),
//! names conflict (409) and missing objects are 404.
//!
//! Faults, like the AWS fault proxy: [`GceServer::fail_next`] answers the next
//! requests with 429 `rateLimitExceeded` or 503, [`GceServer::set_operation_delay`]
//! makes operations slow.
//!
//! ```no_run
//! let gce = phoenix_gce_server::GceServer::start();
//! let _endpoint = gce.endpoint(); // http://127.0.0.1:PORT
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};

pub mod api;
pub mod discovery;
mod filter;

use api::{Api, ApiError, Call};
use discovery::Discovery;

/// The project tests use, and the region and zone set for the `phoenix` binary.
pub const PROJECT: &str = "phoenix-test";
pub const REGION: &str = "us-central1";
pub const ZONE: &str = "us-central1-a";

/// A fault to inject into upcoming requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 429 with reason `rateLimitExceeded`.
    RateLimited,
    /// HTTP 503 with reason `backendError`.
    Unavailable,
}

#[derive(Default)]
struct Shared {
    api: Api,
    /// Faults to answer the next matching requests with: (method id substring, fault, how many more).
    faults: Vec<(String, Fault, u32)>,
    /// Requests served, by method id (`compute.instances.insert`); faulted ones included.
    calls: BTreeMap<String, u64>,
}

/// A running server on a free loopback port; stopped on drop.
pub struct GceServer {
    port: u16,
    shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GceServer {
    /// Starts the server on its own thread and runtime (usable from sync and async tests).
    pub fn start() -> Self {
        let port = phoenix_testkit::free_port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let discovery = Arc::new(Discovery::load());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(serve(port, s, discovery, stopped, ready_tx));
        });
        ready_rx.recv_timeout(Duration::from_secs(10)).expect("the GCE test server listens");
        Self { port, shared, stop: Some(stop), thread: Some(thread) }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`: what clients take as their endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    /// Environment variables that point the `phoenix` binary here (endpoint, project, region, zone).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE".into(), format!("{}/compute/v1/", self.endpoint())),
            ("GOOGLE_CLOUD_PROJECT".into(), PROJECT.into()),
            ("CLOUDSDK_COMPUTE_REGION".into(), REGION.into()),
            ("CLOUDSDK_COMPUTE_ZONE".into(), ZONE.into()),
        ]
    }

    /// The discovery document revision requests are validated against.
    pub fn discovery_revision() -> String {
        Discovery::load().revision
    }

    /// Answers the next `count` requests whose method id contains `method` ("" for any) with `fault`.
    pub fn fail_next(&self, method: &str, fault: Fault, count: u32) {
        self.shared.lock().expect("not poisoned").faults.push((method.to_string(), fault, count));
    }

    /// Operations stay RUNNING at least this long.
    pub fn set_operation_delay(&self, d: Duration) {
        self.shared.lock().expect("not poisoned").api.op_delay = d;
    }

    /// Requests served so far, by method id.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.shared.lock().expect("not poisoned").calls.clone()
    }

    /// All requests served so far.
    pub fn total_calls(&self) -> u64 {
        self.calls().values().sum()
    }

    /// One HTTP request through the real HTTP front end, as a client sends it: (status, JSON body).
    /// `path` is relative to `/compute/v1/` and may carry a query string.
    pub fn request(&self, verb: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the GCE test server");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        let payload = body.map(Value::to_string).unwrap_or_default();
        write!(
            s,
            "{verb} /compute/v1/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
            payload.len()
        )
        .expect("send");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("read");
        let text = String::from_utf8_lossy(&buf);
        let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// GET, asserting success.
    pub fn get(&self, path: &str) -> Value {
        let (code, v) = self.request("GET", path, None);
        assert_eq!(code, 200, "GET {path}: {v}");
        v
    }

    /// Every object of a collection across all pages: `list_all("projects/p/global/networks")`
    /// or an aggregated path (`projects/p/aggregated/instances`), flattened.
    pub fn list_all(&self, path: &str, filter: Option<&str>) -> Vec<Value> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut q = vec!["maxResults=50".to_string()];
            if let Some(f) = filter {
                q.push(format!("filter={}", encode(f)));
            }
            if let Some(t) = &token {
                q.push(format!("pageToken={t}"));
            }
            let page = self.get(&format!("{path}?{}", q.join("&")));
            match &page["items"] {
                Value::Array(a) => out.extend(a.iter().cloned()),
                Value::Object(groups) => {
                    for g in groups.values() {
                        for list in g.as_object().into_iter().flat_map(|o| o.values()) {
                            out.extend(list.as_array().into_iter().flatten().cloned());
                        }
                    }
                }
                _ => {}
            }
            match page["nextPageToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => return out,
            }
        }
    }

    /// Polls an operation (as returned by a mutation) until DONE; returns it.
    pub fn wait(&self, op: &Value) -> Value {
        let link = op["selfLink"].as_str().expect("an operation");
        let path = link.split_once("/compute/v1/").map(|(_, p)| p.to_string()).expect("a compute link");
        for _ in 0..1000 {
            let now = self.get(&path);
            if now["status"] == "DONE" {
                return now;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("operation {path} never finished")
    }
}

impl Drop for GceServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

async fn serve(
    port: u16,
    shared: Arc<Mutex<Shared>>,
    discovery: Arc<Discovery>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<()>,
) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the GCE test server port");
    let _ = ready.send(());
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                let discovery = discovery.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        let discovery = discovery.clone();
                        async move { Ok::<_, Infallible>(handle(req, &shared, &discovery).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

fn respond(code: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a response")
}

fn error(e: &ApiError) -> Response<Full<Bytes>> {
    respond(e.code, &e.envelope())
}

async fn handle(req: Request<hyper::body::Incoming>, shared: &Mutex<Shared>, discovery: &Discovery) -> Response<Full<Bytes>> {
    let verb = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (discovery::percent_decode(&k.replace('+', " ")), discovery::percent_decode(&v.replace('+', " ")))
        })
        .collect();
    let bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(&ApiError::invalid(format!("cannot read the request body: {e}"))),
    };
    let Some(rel) = path.strip_prefix("/compute/v1/") else {
        return error(&ApiError::new(404, "notFound", format!("The requested URL {path} was not found on this server.")));
    };
    let Some((method, vars)) = discovery.route(&verb, rel) else {
        return error(&ApiError::new(404, "notFound", format!("The requested URL {path} ({verb}) is not a Compute Engine v1 method.")));
    };
    let mut s = shared.lock().expect("not poisoned");
    *s.calls.entry(method.id.clone()).or_default() += 1;
    if let Some(f) = s.faults.iter_mut().find(|(m, _, n)| *n > 0 && method.id.contains(m.as_str())) {
        f.2 -= 1;
        let e = match f.1 {
            Fault::RateLimited => ApiError::new(429, "rateLimitExceeded", "Rate Limit Exceeded"),
            Fault::Unavailable => ApiError::new(503, "backendError", "The service is currently unavailable."),
        };
        s.faults.retain(|(_, _, n)| *n > 0);
        return error(&e);
    }
    let body: Option<Value> = if bytes.is_empty() {
        None
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => return error(&ApiError::invalid(format!("Invalid JSON payload received. {e}"))),
        }
    };
    if let Err(e) = discovery.check_query(method, &query) {
        return error(&ApiError::invalid(e.0));
    }
    if let Err(e) = discovery.check_body(method, body.as_ref()) {
        return error(&ApiError::invalid(e.0));
    }
    let call = Call { method: &method.id, vars: &vars, query: &query, body };
    match s.api.call(&call) {
        Ok(v) => respond(200, &v),
        Err(e) => error(&e),
    }
}

/// A JSON value for tests' convenience.
pub fn body(v: Value) -> Value {
    json!(v)
}
