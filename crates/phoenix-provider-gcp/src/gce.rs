//! The only module that touches `google-cloud-compute-v1`. Everything generic
//! about the SDK (request builders, pollers) is instantiated here, behind
//! non-generic methods taking and returning JSON in the API's own shape, so
//! crates that use the provider never monomorphise SDK code.
//!
//! Every request goes through [`Gce::attempt`]: a concurrency permit, a
//! token from the rate bucket, one count in the call counter, and retries
//! with jittered exponential backoff on 429/5xx and I/O errors. The SDK's own
//! retry loop is switched off so those counts are exact. Mutations carry a
//! `requestId`, so retrying them is safe: GCE returns the first operation.
//! Long-running operations are polled here (one counted request per poll,
//! backoff between polls) and an operation that finished with `error` is an
//! error — the SDK's poller reports those as success.

use std::time::{Duration, Instant};

use google_cloud_compute_v1::client;
use google_cloud_compute_v1::model;
use google_cloud_gax::error::Error as SdkError;
use google_cloud_lro::{Poller, PollingResult};
use phoenix_core::kit::{CallLimits, CallPolicy};
use phoenix_core::provider::{ErrorKind, ProviderError};
use serde_json::Value;

use crate::config::GcpConfig;

/// A Compute Engine collection Phoenix manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coll {
    Networks,
    Subnetworks,
    Firewalls,
    Addresses,
    Disks,
    Instances,
    Snapshots,
    Images,
}

impl Coll {
    pub fn path(self) -> &'static str {
        match self {
            Coll::Networks => "networks",
            Coll::Subnetworks => "subnetworks",
            Coll::Firewalls => "firewalls",
            Coll::Addresses => "addresses",
            Coll::Disks => "disks",
            Coll::Instances => "instances",
            Coll::Snapshots => "snapshots",
            Coll::Images => "images",
        }
    }
}

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Global,
    Region(String),
    Zone(String),
}

/// An object's address: project, scope and name (what a selfLink says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub project: String,
    pub scope: Scope,
    pub name: String,
}

impl Loc {
    /// Parses a selfLink or `projects/…` path.
    pub fn parse(link: &str) -> Option<Loc> {
        let rel = link.rsplit_once("/compute/v1/").map_or(link, |(_, r)| r);
        let p: Vec<&str> = rel.split('/').collect();
        match p.as_slice() {
            ["projects", project, "global", _, name] => {
                Some(Loc { project: project.to_string(), scope: Scope::Global, name: name.to_string() })
            }
            ["projects", project, "regions", r, _, name] => {
                Some(Loc { project: project.to_string(), scope: Scope::Region(r.to_string()), name: name.to_string() })
            }
            ["projects", project, "zones", z, _, name] => {
                Some(Loc { project: project.to_string(), scope: Scope::Zone(z.to_string()), name: name.to_string() })
            }
            _ => None,
        }
    }
    fn zone(&self) -> String {
        match &self.scope {
            Scope::Zone(z) => z.clone(),
            _ => String::new(),
        }
    }
    fn region(&self) -> String {
        match &self.scope {
            Scope::Region(r) => r.clone(),
            _ => String::new(),
        }
    }
}

/// A failed call, with what retry and delete logic need to know.
#[derive(Debug, Clone)]
pub struct GceError {
    pub http: Option<u16>,
    /// The `reason` of Google's error envelope (`notFound`, `resourceInUseByAnotherResource` …) or an operation error code.
    pub reason: String,
    pub message: String,
}

impl GceError {
    pub fn is_not_found(&self) -> bool {
        self.http == Some(404)
    }
    pub fn is_conflict(&self) -> bool {
        self.http == Some(409)
    }
    pub fn is_in_use(&self) -> bool {
        self.reason.eq_ignore_ascii_case("resourceInUseByAnotherResource")
            || self.reason.eq_ignore_ascii_case("RESOURCE_IN_USE_BY_ANOTHER_RESOURCE")
    }
    fn is_transient(&self) -> bool {
        matches!(self.http, Some(429 | 500 | 502 | 503 | 504) | None)
    }
    /// The kind of this error: the one place Google's statuses and reasons are interpreted.
    pub fn kind(&self) -> ErrorKind {
        match self.http {
            _ if self.is_in_use() => ErrorKind::Conflict,
            Some(429) => ErrorKind::RateLimited,
            _ if self.is_transient() => ErrorKind::Transient,
            Some(401) => ErrorKind::Credentials,
            Some(403) => ErrorKind::PermissionDenied,
            Some(404) => ErrorKind::NotFound,
            Some(409) => ErrorKind::AlreadyExists,
            Some(412) => ErrorKind::Conflict,
            Some(400) => ErrorKind::InvalidInput,
            Some(501) => ErrorKind::Unsupported,
            _ => ErrorKind::Unexpected,
        }
    }
    pub fn into_provider(self, what: &str) -> ProviderError {
        let text = format!("{what}: {}{}", if self.reason.is_empty() { String::new() } else { format!("{}: ", self.reason) }, self.message);
        ProviderError::new(self.kind(), text)
    }

    fn from_sdk(e: &SdkError) -> Self {
        let http = e.http_status_code();
        // Google's envelope: {"error": {"code", "message", "errors": [{"reason"}]}}.
        let payload: Option<Value> = e.http_payload().and_then(|b| serde_json::from_slice(b).ok());
        let reason = payload.as_ref().and_then(|p| p["error"]["errors"][0]["reason"].as_str()).unwrap_or_default().to_string();
        let message = payload
            .as_ref()
            .and_then(|p| p["error"]["message"].as_str().map(str::to_string))
            .or_else(|| e.status().map(|s| s.message.clone()))
            .unwrap_or_else(|| e.to_string());
        // The client keeps the status, not always the raw envelope: take the
        // reason from the status's details, else from the status code.
        let detailed = e.status().and_then(|s| {
            s.details.iter().find_map(|d| match d {
                google_cloud_gax::error::rpc::StatusDetails::ErrorInfo(info) if !info.reason.is_empty() => Some(info.reason.clone()),
                _ => None,
            })
        });
        let reason = if !reason.is_empty() {
            reason
        } else if let Some(reason) = detailed {
            reason
        } else {
            match http {
                Some(404) => "notFound",
                Some(409) => "alreadyExists",
                Some(412) => "conditionNotMet",
                Some(429) => "rateLimitExceeded",
                Some(503) => "backendError",
                _ => "",
            }
            .to_string()
        };
        // Errors without an HTTP status are I/O, timeouts or authentication.
        let http = if http.is_none() && (e.is_authentication() || e.is_binding() || e.is_serialization()) { Some(400) } else { http };
        Self { http, reason, message }
    }
}

/// The environment (and instance) whose objects a refresh lists.
#[derive(Debug, Clone, Default)]
pub struct EnvMarks {
    pub environment: String,
    pub instance: Option<String>,
}

/// The shared Compute Engine context of a run.
pub struct Gce {
    pub project: String,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub wait_timeout: Duration,
    /// The environment (and instance) whose objects a refresh lists.
    pub marks: EnvMarks,
    networks: client::Networks,
    subnetworks: client::Subnetworks,
    firewalls: client::Firewalls,
    addresses: client::Addresses,
    disks: client::Disks,
    instances: client::Instances,
    snapshots: client::Snapshots,
    images: client::Images,
    /// Concurrency, rate and counting of every request ([`Gce::attempt`]).
    policy: CallPolicy,
    max_attempts: u32,
}

macro_rules! build {
    ($ty:ty, $config:expr, $creds:expr) => {{
        let mut b = <$ty>::builder()
            .with_credentials($creds.clone())
            // Phoenix retries (and counts) every request itself; see the module docs.
            .with_retry_policy(google_cloud_gax::retry_policy::NeverRetry);
        if let Some(e) = &$config.endpoint {
            b = b.with_endpoint(e.clone());
        }
        b.build().await.map_err(|e| ProviderError::permanent(format!("cannot build the Compute Engine client: {e}")))?
    }};
}

/// `T` from the API's JSON (how Phoenix builds request bodies).
fn model<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> Result<T, GceError> {
    serde_json::from_value(v).map_err(|e| GceError {
        http: Some(400),
        reason: "invalid".into(),
        message: format!("{what}: cannot encode the request body: {e}"),
    })
}

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Gce {
    pub async fn connect(config: &GcpConfig) -> Result<Self, ProviderError> {
        let creds = if config.anonymous() {
            google_cloud_auth::credentials::anonymous::Builder::new().build()
        } else {
            // Application default credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud's user
            // credentials, then the metadata server. Building makes no call; the first request fetches a token.
            default_credentials_exist(&|n| std::env::var_os(n))?;
            google_cloud_auth::credentials::Builder::default().build().map_err(|e| {
                ProviderError::permanent(format!(
                    "no Google credentials: {e}; set GOOGLE_APPLICATION_CREDENTIALS, run `gcloud auth application-default login`, or run on GCE"
                ))
            })?
        };
        let project = config.project.clone().ok_or_else(|| {
            ProviderError::permanent("no GCP project: set `project` in [providers.gcp], GOOGLE_CLOUD_PROJECT or CLOUDSDK_CORE_PROJECT")
        })?;
        Ok(Self {
            project,
            region: config.region.clone(),
            zone: config.zone.clone(),
            wait_timeout: Duration::from_secs(config.wait_timeout_secs),
            marks: EnvMarks::default(),
            networks: build!(client::Networks, config, creds),
            subnetworks: build!(client::Subnetworks, config, creds),
            firewalls: build!(client::Firewalls, config, creds),
            addresses: build!(client::Addresses, config, creds),
            disks: build!(client::Disks, config, creds),
            instances: build!(client::Instances, config, creds),
            snapshots: build!(client::Snapshots, config, creds),
            images: build!(client::Images, config, creds),
            policy: CallPolicy::new(CallLimits {
                max_concurrency: config.max_concurrency,
                requests_per_second: config.requests_per_second,
            }),
            max_attempts: 8,
        })
    }

    /// The client of a run of `marks`'s environment.
    pub fn with_marks(mut self, marks: EnvMarks) -> Self {
        self.marks = marks;
        self
    }

    /// Requests sent so far (retries and operation polls included).
    pub fn calls(&self) -> u64 {
        self.policy.calls()
    }

    /// The zone to use: given, else the provider's.
    pub fn zone_or_default(&self, z: Option<&str>) -> Result<String, ProviderError> {
        z.map(str::to_string)
            .or_else(|| self.zone.clone())
            .ok_or_else(|| ProviderError::permanent("no zone: set `zone` on the resource, in [providers.gcp], or CLOUDSDK_COMPUTE_ZONE"))
    }

    /// The region to use: given, else the provider's, else the default zone's.
    pub fn region_or_default(&self, r: Option<&str>) -> Result<String, ProviderError> {
        r.map(str::to_string)
            .or_else(|| self.region.clone())
            .or_else(|| self.zone.as_deref().and_then(|z| z.rsplit_once('-')).map(|(r, _)| r.to_string()))
            .ok_or_else(|| {
                ProviderError::permanent("no region: set `region` on the resource, in [providers.gcp], or CLOUDSDK_COMPUTE_REGION")
            })
    }

    /// One request with retries on throttling and 5xx.
    async fn attempt<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T, GceError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, SdkError>>,
    {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let result = {
                let _p = self.policy.admit().await;
                call().await
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let e = GceError::from_sdk(&e);
                    if !e.is_transient() || attempt >= self.max_attempts {
                        return Err(GceError { message: format!("{what}: {}", e.message), ..e });
                    }
                    tracing::debug!(what, attempt, http = ?e.http, "retrying");
                    tokio::time::sleep(jitter(delay)).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
            }
        }
    }

    /// Starts a mutation and polls its operation until DONE. `start` makes a
    /// fresh poller; it is called again when the starting request itself must be retried.
    async fn operation<P, F>(&self, what: &str, start: F) -> Result<Value, GceError>
    where
        F: Fn() -> P,
        P: Poller<model::Operation, model::Operation>,
    {
        let began = Instant::now();
        let mut attempt = 1;
        let mut retry_delay = Duration::from_millis(200);
        'start: loop {
            let mut poller = start();
            let mut poll_delay = Duration::from_millis(100);
            loop {
                let result = {
                    let _p = self.policy.admit().await;
                    poller.poll().await
                };
                match result {
                    Some(PollingResult::Completed(Ok(op))) => {
                        let op = json(&op);
                        if !op["error"].is_null() {
                            let first = &op["error"]["errors"][0];
                            let http = op["httpErrorStatusCode"].as_u64().and_then(|c| u16::try_from(c).ok()).or(Some(400));
                            return Err(GceError {
                                http,
                                reason: first["code"].as_str().unwrap_or_default().to_string(),
                                message: format!(
                                    "{what}: operation {} failed: {}",
                                    op["name"].as_str().unwrap_or("?"),
                                    first["message"].as_str().unwrap_or("no message")
                                ),
                            });
                        }
                        return Ok(op);
                    }
                    Some(PollingResult::Completed(Err(e))) => {
                        let e = GceError::from_sdk(&e);
                        if e.is_transient() && attempt < self.max_attempts {
                            // The start (or a poll the SDK gave up on) failed transiently: starting
                            // again is safe, the requestId makes GCE return the same operation.
                            tokio::time::sleep(jitter(retry_delay)).await;
                            retry_delay = (retry_delay * 2).min(Duration::from_secs(10));
                            attempt += 1;
                            continue 'start;
                        }
                        return Err(GceError { message: format!("{what}: {}", e.message), ..e });
                    }
                    Some(PollingResult::InProgress(_) | PollingResult::PollingError(_)) => {}
                    None => {
                        return Err(GceError {
                            http: None,
                            reason: String::new(),
                            message: format!("{what}: the operation poller stopped"),
                        });
                    }
                }
                if began.elapsed() > self.wait_timeout {
                    return Err(GceError {
                        http: None,
                        reason: "timeout".into(),
                        message: format!("{what}: the operation did not finish within {}s", self.wait_timeout.as_secs()),
                    });
                }
                tokio::time::sleep(jitter(poll_delay)).await;
                poll_delay = (poll_delay * 2).min(Duration::from_secs(5));
            }
        }
    }

    /// Inserts an object and waits for its operation.
    pub async fn insert(&self, coll: Coll, scope: &Scope, body: Value, request_id: &str) -> Result<(), GceError> {
        let p = self.project.clone();
        let (zone, region) = match scope {
            Scope::Zone(z) => (z.clone(), String::new()),
            Scope::Region(r) => (String::new(), r.clone()),
            Scope::Global => (String::new(), String::new()),
        };
        let what = format!("{}.insert", coll.path());
        macro_rules! go {
            ($client:ident, $model:ty, |$b:ident| $scoped:expr) => {{
                let m: $model = model(&what, body)?;
                self.operation(&what, || {
                    let $b = self.$client.insert().set_project(&p).set_body(m.clone()).set_request_id(request_id);
                    $scoped.poller()
                })
                .await
            }};
        }
        match coll {
            Coll::Networks => go!(networks, model::Network, |b| b),
            Coll::Subnetworks => go!(subnetworks, model::Subnetwork, |b| b.set_region(&region)),
            Coll::Firewalls => go!(firewalls, model::Firewall, |b| b),
            Coll::Addresses => go!(addresses, model::Address, |b| b.set_region(&region)),
            Coll::Disks => go!(disks, model::Disk, |b| b.set_zone(&zone)),
            Coll::Instances => go!(instances, model::Instance, |b| b.set_zone(&zone)),
            Coll::Snapshots => go!(snapshots, model::Snapshot, |b| b),
            Coll::Images => go!(images, model::Image, |b| b),
        }
        .map(|_| ())
    }

    /// One object; `None` if it does not exist.
    pub async fn get(&self, coll: Coll, loc: &Loc) -> Result<Option<Value>, GceError> {
        let what = format!("{}.get", coll.path());
        let (p, z, r, n) = (&loc.project, loc.zone(), loc.region(), &loc.name);
        let result = match coll {
            Coll::Networks => self.attempt(&what, || self.networks.get().set_project(p).set_network(n).send()).await.map(|v| json(&v)),
            Coll::Subnetworks => self
                .attempt(&what, || self.subnetworks.get().set_project(p).set_region(&r).set_subnetwork(n).send())
                .await
                .map(|v| json(&v)),
            Coll::Firewalls => self.attempt(&what, || self.firewalls.get().set_project(p).set_firewall(n).send()).await.map(|v| json(&v)),
            Coll::Addresses => {
                self.attempt(&what, || self.addresses.get().set_project(p).set_region(&r).set_address(n).send()).await.map(|v| json(&v))
            }
            Coll::Disks => self.attempt(&what, || self.disks.get().set_project(p).set_zone(&z).set_disk(n).send()).await.map(|v| json(&v)),
            Coll::Instances => {
                self.attempt(&what, || self.instances.get().set_project(p).set_zone(&z).set_instance(n).send()).await.map(|v| json(&v))
            }
            Coll::Snapshots => self.attempt(&what, || self.snapshots.get().set_project(p).set_snapshot(n).send()).await.map(|v| json(&v)),
            Coll::Images => self.attempt(&what, || self.images.get().set_project(p).set_image(n).send()).await.map(|v| json(&v)),
        };
        match result {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every object of a collection matching `filter`, all pages: one `list` for
    /// global collections, one `aggregatedList` (every region or zone) for the others.
    pub async fn list(&self, coll: Coll, filter: Option<&str>) -> Result<Vec<Value>, GceError> {
        let what = format!(
            "{}.{}",
            coll.path(),
            if matches!(coll, Coll::Networks | Coll::Firewalls | Coll::Snapshots | Coll::Images) { "list" } else { "aggregatedList" }
        );
        let p = &self.project;
        let f = filter.map(str::to_string);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let t = token.clone();
            macro_rules! page {
                ($client:ident, $method:ident) => {
                    self.attempt(&what, || {
                        self.$client
                            .$method()
                            .set_project(p)
                            .set_or_clear_filter(f.clone())
                            .set_max_results(500u32)
                            .set_or_clear_page_token(t.clone())
                            .send()
                    })
                    .await
                    .map(|v| json(&v))?
                };
            }
            let page = match coll {
                Coll::Networks => page!(networks, list),
                Coll::Firewalls => page!(firewalls, list),
                Coll::Snapshots => page!(snapshots, list),
                Coll::Images => page!(images, list),
                Coll::Subnetworks => page!(subnetworks, aggregated_list),
                Coll::Addresses => page!(addresses, aggregated_list),
                Coll::Disks => page!(disks, aggregated_list),
                Coll::Instances => page!(instances, aggregated_list),
            };
            match &page["items"] {
                Value::Array(items) => out.extend(items.iter().cloned()),
                // aggregatedList: {"zones/z": {"instances": [...]}, "regions/r": {"warning": …}}
                Value::Object(scopes) => {
                    for s in scopes.values() {
                        out.extend(s[coll.path()].as_array().into_iter().flatten().cloned());
                    }
                }
                _ => {}
            }
            match page["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(out),
            }
        }
    }

    /// Deletes an object and waits for its operation; an object that is already gone is not an error.
    pub async fn delete(&self, coll: Coll, loc: &Loc, request_id: &str) -> Result<(), GceError> {
        let what = format!("{}.delete", coll.path());
        let (p, z, r, n) = (&loc.project, loc.zone(), loc.region(), &loc.name);
        macro_rules! del {
            ($client:ident, $set:ident $(, $scope:ident = $v:expr)?) => {
                self.operation(&what, || self.$client.delete().set_project(p)$(.$scope($v))?.$set(n).set_request_id(request_id).poller()).await
            };
        }
        let result = match coll {
            Coll::Networks => del!(networks, set_network),
            Coll::Subnetworks => del!(subnetworks, set_subnetwork, set_region = &r),
            Coll::Firewalls => del!(firewalls, set_firewall),
            Coll::Addresses => del!(addresses, set_address, set_region = &r),
            Coll::Disks => del!(disks, set_disk, set_zone = &z),
            Coll::Instances => del!(instances, set_instance, set_zone = &z),
            Coll::Snapshots => del!(snapshots, set_snapshot),
            Coll::Images => del!(images, set_image),
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the labels of a labelled object (`fingerprint` is the one last read: GCE refuses stale writes).
    pub async fn set_labels(&self, coll: Coll, loc: &Loc, labels: Value, fingerprint: &str, request_id: &str) -> Result<(), GceError> {
        let what = format!("{}.setLabels", coll.path());
        let body = serde_json::json!({"labels": labels, "labelFingerprint": fingerprint});
        let (p, z, r, n) = (&loc.project, loc.zone(), loc.region(), &loc.name);
        match coll {
            Coll::Instances => {
                let m: model::InstancesSetLabelsRequest = model(&what, body)?;
                self.operation(&what, || {
                    self.instances
                        .set_labels()
                        .set_project(p)
                        .set_zone(&z)
                        .set_instance(n)
                        .set_body(m.clone())
                        .set_request_id(request_id)
                        .poller()
                })
                .await
            }
            Coll::Disks => {
                let m: model::ZoneSetLabelsRequest = model(&what, body)?;
                self.operation(&what, || {
                    self.disks
                        .set_labels()
                        .set_project(p)
                        .set_zone(&z)
                        .set_resource(n)
                        .set_body(m.clone())
                        .set_request_id(request_id)
                        .poller()
                })
                .await
            }
            Coll::Addresses => {
                let m: model::RegionSetLabelsRequest = model(&what, body)?;
                self.operation(&what, || {
                    self.addresses
                        .set_labels()
                        .set_project(p)
                        .set_region(&r)
                        .set_resource(n)
                        .set_body(m.clone())
                        .set_request_id(request_id)
                        .poller()
                })
                .await
            }
            // Global setLabels takes no requestId; writing the same labels twice is harmless.
            Coll::Snapshots => {
                let m: model::GlobalSetLabelsRequest = model(&what, body)?;
                self.operation(&what, || self.snapshots.set_labels().set_project(p).set_resource(n).set_body(m.clone()).poller()).await
            }
            Coll::Images => {
                let m: model::GlobalSetLabelsRequest = model(&what, body)?;
                self.operation(&what, || self.images.set_labels().set_project(p).set_resource(n).set_body(m.clone()).poller()).await
            }
            other => {
                return Err(GceError { http: Some(400), reason: "invalid".into(), message: format!("{} have no labels", other.path()) });
            }
        }
        .map(|_| ())
    }

    /// PATCHes a network or firewall (only the fields in `body` change).
    pub async fn patch(&self, coll: Coll, loc: &Loc, body: Value, request_id: &str) -> Result<(), GceError> {
        let what = format!("{}.patch", coll.path());
        let (p, n) = (&loc.project, &loc.name);
        match coll {
            Coll::Firewalls => {
                let m: model::Firewall = model(&what, body)?;
                self.operation(&what, || {
                    self.firewalls.patch().set_project(p).set_firewall(n).set_body(m.clone()).set_request_id(request_id).poller()
                })
                .await
            }
            Coll::Networks => {
                let m: model::Network = model(&what, body)?;
                self.operation(&what, || {
                    self.networks.patch().set_project(p).set_network(n).set_body(m.clone()).set_request_id(request_id).poller()
                })
                .await
            }
            other => {
                return Err(GceError { http: Some(400), reason: "invalid".into(), message: format!("{} are not patched", other.path()) });
            }
        }
        .map(|_| ())
    }

    /// Grows a disk.
    pub async fn resize_disk(&self, loc: &Loc, size_gb: i64, request_id: &str) -> Result<(), GceError> {
        let what = "disks.resize";
        let m: model::DisksResizeRequest = model(what, serde_json::json!({"sizeGb": size_gb.to_string()}))?;
        let z = loc.zone();
        self.operation(what, || {
            self.disks
                .resize()
                .set_project(&loc.project)
                .set_zone(&z)
                .set_disk(&loc.name)
                .set_body(m.clone())
                .set_request_id(request_id)
                .poller()
        })
        .await
        .map(|_| ())
    }

    /// A lifecycle or configuration call on an instance.
    pub async fn instance(&self, loc: &Loc, action: InstanceAction, request_id: &str) -> Result<(), GceError> {
        let (p, z, n) = (&loc.project, loc.zone(), &loc.name);
        let i = &self.instances;
        match action {
            InstanceAction::Start => {
                self.operation("instances.start", || {
                    i.start().set_project(p).set_zone(&z).set_instance(n).set_request_id(request_id).poller()
                })
                .await
            }
            InstanceAction::Stop => {
                self.operation("instances.stop", || {
                    i.stop().set_project(p).set_zone(&z).set_instance(n).set_request_id(request_id).poller()
                })
                .await
            }
            InstanceAction::SetMachineType(mt) => {
                let what = "instances.setMachineType";
                let m: model::InstancesSetMachineTypeRequest = model(what, serde_json::json!({ "machineType": mt }))?;
                self.operation(what, || {
                    i.set_machine_type().set_project(p).set_zone(&z).set_instance(n).set_body(m.clone()).set_request_id(request_id).poller()
                })
                .await
            }
            InstanceAction::SetMetadata(md) => {
                let what = "instances.setMetadata";
                let m: model::Metadata = model(what, md)?;
                self.operation(what, || {
                    i.set_metadata().set_project(p).set_zone(&z).set_instance(n).set_body(m.clone()).set_request_id(request_id).poller()
                })
                .await
            }
            InstanceAction::AttachDisk(d) => {
                let what = "instances.attachDisk";
                let m: model::AttachedDisk = model(what, d)?;
                self.operation(what, || {
                    i.attach_disk().set_project(p).set_zone(&z).set_instance(n).set_body(m.clone()).set_request_id(request_id).poller()
                })
                .await
            }
            InstanceAction::DetachDisk(device) => {
                self.operation("instances.detachDisk", || {
                    i.detach_disk().set_project(p).set_zone(&z).set_instance(n).set_device_name(&device).set_request_id(request_id).poller()
                })
                .await
            }
        }
        .map(|_| ())
    }
}

/// What [`Gce::instance`] does.
pub enum InstanceAction {
    Start,
    Stop,
    /// A machine type URL or `zones/Z/machineTypes/T`.
    SetMachineType(String),
    /// A `Metadata` body with the current fingerprint.
    SetMetadata(Value),
    /// An `AttachedDisk` body.
    AttachDisk(Value),
    /// A device name.
    DetachDisk(String),
}

pub use phoenix_core::kit::jitter;

/// A fresh requestId (a random v4 UUID) for calls that are not creates.
pub fn request_id() -> String {
    uuid(&format!("{:?}{:?}", std::time::SystemTime::now(), std::thread::current().id()), rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

/// A v4-shaped UUID from a seed: GCE requires `requestId` to be a UUID, and the
/// engine's idempotency token (hex) is turned into one deterministically, so a
/// retried create sends the same requestId.
pub fn uuid(seed: &str, salt: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    h.update(salt.to_le_bytes());
    let mut b: Vec<u8> = h.finalize().iter().take(16).copied().collect();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Whether application default credentials have a source, looked up as
/// google-cloud-auth does but without its last resort: off GCE, the metadata
/// server it falls back to is not there, and the first request would fail
/// with a connection error that says nothing about credentials.
fn default_credentials_exist(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Result<(), ProviderError> {
    let set = |n: &str| env(n).filter(|v| !v.is_empty());
    if set("GOOGLE_APPLICATION_CREDENTIALS").is_some() || set("GCE_METADATA_HOST").is_some() {
        return Ok(());
    }
    let well_known = set("HOME").map(|home| std::path::PathBuf::from(home).join(".config/gcloud/application_default_credentials.json"));
    if well_known.as_ref().is_some_and(|f| f.is_file()) {
        return Ok(());
    }
    // A GCE machine says so in its DMI data; its metadata server gives the token.
    let on_gce = std::fs::read_to_string("/sys/class/dmi/id/product_name").is_ok_and(|p| p.contains("Google"));
    if on_gce {
        return Ok(());
    }
    Err(ProviderError::credentials(format!(
        "no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set and {} does not exist; \
         run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file \
         (for an emulator, set `endpoint` in [providers.gcp] to its http:// URL)",
        well_known.map_or("~/.config/gcloud/application_default_credentials.json".to_string(), |f| f.display().to_string())
    )))
}
