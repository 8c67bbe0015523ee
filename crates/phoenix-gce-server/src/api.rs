//! The Compute Engine resources the server keeps, and what each method does
//! to them. Requests reach here only after `discovery` has validated them.
//!
//! Mutations return an `Operation` that moves PENDING → RUNNING → DONE, one
//! step per `get` of the operation (and no sooner than the injected delay);
//! their effect is applied when it reaches DONE, so a client that does not
//! wait for its operations sees the object in its old state, as on GCE.
//! Inserts are the exception: the object is visible at once (PROVISIONING,
//! CREATING …) so that its name is taken, and becomes ready at DONE.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::filter::Filter;

/// What selfLinks start with: the real API's, never built from the Host header.
pub const BASE: &str = "https://www.googleapis.com/compute/v1/";

/// Ids are decimal uint64 strings; starting above i64::MAX catches clients that parse them as signed.
const FIRST_ID: u64 = 9_300_000_000_000_000_000;

/// An error in Google's envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into() }
    }
    pub fn not_found(key: &str) -> Self {
        Self::new(404, "notFound", format!("The resource '{key}' was not found"))
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid", message)
    }
    pub fn in_use(key: &str, by: &str) -> Self {
        Self::new(400, "resourceInUseByAnotherResource", format!("The resource '{key}' is already being used by '{by}'"))
    }

    pub fn envelope(&self) -> Value {
        let status = match self.code {
            400 => "INVALID_ARGUMENT",
            404 => "NOT_FOUND",
            409 => "ALREADY_EXISTS",
            412 => "FAILED_PRECONDITION",
            429 => "RESOURCE_EXHAUSTED",
            503 => "UNAVAILABLE",
            _ => "UNKNOWN",
        };
        let domain = if self.code == 429 { "usageLimits" } else { "global" };
        json!({"error": {"code": self.code, "message": self.message,
            "errors": [{"message": self.message, "domain": domain, "reason": self.reason}], "status": status}})
    }
}

type Effect = Box<dyn FnOnce(&mut Objects) -> Result<(), ApiError> + Send>;

struct Op {
    value: Value,
    started: Instant,
    effect: Option<Effect>,
}

/// Every object, by its path (`projects/p/zones/z/instances/vm`).
#[derive(Default)]
pub struct Objects {
    pub map: BTreeMap<String, Value>,
}

impl Objects {
    fn get(&self, key: &str) -> Result<&Value, ApiError> {
        self.map.get(key).ok_or_else(|| ApiError::not_found(key))
    }
    fn get_mut(&mut self, key: &str) -> Result<&mut Value, ApiError> {
        self.map.get_mut(key).ok_or_else(|| ApiError::not_found(key))
    }
    /// Objects of one collection (`instances`) under `prefix` (`projects/p/zones/z`), or in every scope when `prefix` is a project.
    fn in_collection<'a>(&'a self, project: &'a str, scope: Option<&'a str>, collection: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.map.iter().filter_map(move |(k, v)| {
            let parts: Vec<&str> = k.split('/').collect();
            let ok = match parts.as_slice() {
                ["projects", p, "global", c, _] => *p == project && *c == collection && scope.is_none_or(|s| s == "global"),
                ["projects", p, kind, where_, c, _] => {
                    *p == project && *c == collection && scope.is_none_or(|s| s == format!("{kind}/{where_}"))
                }
                _ => false,
            };
            ok.then_some(v)
        })
    }
}

/// The server's whole state.
pub struct Api {
    pub objects: Objects,
    ops: HashMap<String, Op>,
    request_ids: HashMap<String, String>,
    next_id: u64,
    pub op_delay: Duration,
}

/// The key (`projects/p/global/networks/n`) a reference names: a full URL, a
/// `projects/…` path or a project-relative path (`global/networks/n`, `zones/z/disks/d`).
pub fn key_of(reference: &str, project: &str) -> String {
    let r = reference.rsplit_once("/compute/v1/").map_or(reference, |(_, k)| k).trim_start_matches('/');
    if r.starts_with("projects/") { r.to_string() } else { format!("projects/{project}/{r}") }
}

fn link(key: &str) -> String {
    format!("{BASE}{key}")
}

fn now() -> String {
    // RFC 3339 with a fixed offset, as GCE prints it; precision is all tests need.
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, dd) = civil(days as i64);
    format!("{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}-00:00", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_millis())
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// A fingerprint of a value (labels, metadata): changes whenever the value does.
/// GCE fingerprints are base64 `bytes`; these are 12 characters drawn from the
/// alphanumerics both base64 alphabets share (9 bytes, no padding), so every
/// client decodes and re-encodes them unchanged.
fn fingerprint(v: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    let mut n = h.finish();
    const T: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..12)
        .map(|_| {
            let c = T[(n % 62) as usize] as char;
            n = n / 62 + 0x9e37_79b9;
            c
        })
        .collect()
}

/// Call arguments after validation.
pub struct Call<'a> {
    pub method: &'a str,
    pub vars: &'a BTreeMap<String, String>,
    pub query: &'a [(String, String)],
    pub body: Option<Value>,
}

impl Call<'_> {
    fn var(&self, name: &str) -> &str {
        self.vars.get(name).map_or("", String::as_str)
    }
    fn q(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn body(&self) -> Value {
        self.body.clone().unwrap_or_else(|| json!({}))
    }
    /// `zones/z`, `regions/r` or `global`.
    fn scope(&self) -> String {
        if let Some(z) = self.vars.get("zone") {
            format!("zones/{z}")
        } else if let Some(r) = self.vars.get("region") {
            format!("regions/{r}")
        } else {
            "global".into()
        }
    }
}

/// Collection name and the path variable naming one of its objects.
fn collection(method: &str) -> (&str, &str) {
    let res = method.split('.').nth(1).unwrap_or_default();
    let var = match res {
        "networks" => "network",
        "subnetworks" => "subnetwork",
        "firewalls" => "firewall",
        "addresses" => "address",
        "disks" => "disk",
        "instances" => "instance",
        "snapshots" => "snapshot",
        "images" => "image",
        _ => "operation",
    };
    (res, var)
}

fn kind_of(collection: &str) -> &'static str {
    match collection {
        "networks" => "compute#network",
        "subnetworks" => "compute#subnetwork",
        "firewalls" => "compute#firewall",
        "addresses" => "compute#address",
        "disks" => "compute#disk",
        "instances" => "compute#instance",
        "snapshots" => "compute#snapshot",
        "images" => "compute#image",
        _ => "compute#operation",
    }
}

fn set(v: &mut Value, k: &str, x: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(k.to_string(), x);
    }
}

impl Default for Api {
    fn default() -> Self {
        let mut api = Self {
            objects: Objects::default(),
            ops: HashMap::new(),
            request_ids: HashMap::new(),
            next_id: FIRST_ID,
            op_delay: Duration::ZERO,
        };
        api.seed_public_images();
        api
    }
}

impl Api {
    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// Public images, as in Google's image projects: two generations of Debian 12 and one of Debian 11.
    fn seed_public_images(&mut self) {
        for (project, name, family) in [
            ("debian-cloud", "debian-11-bullseye-v20250610", "debian-11"),
            ("debian-cloud", "debian-12-bookworm-v20250610", "debian-12"),
            ("debian-cloud", "debian-12-bookworm-v20251014", "debian-12"),
            ("ubuntu-os-cloud", "ubuntu-2404-noble-amd64-v20251001", "ubuntu-2404-lts-amd64"),
        ] {
            let key = format!("projects/{project}/global/images/{name}");
            let id = self.id();
            self.objects.map.insert(
                key.clone(),
                json!({"kind": "compute#image", "id": id, "name": name, "family": family, "selfLink": link(&key),
                    "creationTimestamp": format!("2025-{}-01T00:00:00.000-00:00", &name[name.len() - 4..name.len() - 2]),
                    "status": "READY", "diskSizeGb": "10", "archiveSizeBytes": "1000000000", "sourceType": "RAW",
                    "labels": {}, "labelFingerprint": fingerprint(&json!({}))}),
            );
        }
    }

    /// Serves one validated call.
    pub fn call(&mut self, c: &Call) -> Result<Value, ApiError> {
        let project = c.var("project").to_string();
        let (coll, var) = collection(c.method);
        let verb = c.method.rsplit('.').next().unwrap_or_default();
        let scope_key = format!("projects/{project}/{}", c.scope());
        let key = format!("{scope_key}/{coll}/{}", c.vars.get(var).or_else(|| c.vars.get("resource")).map_or("", String::as_str));
        // requestId: a retried mutation returns the operation of the first one.
        if let Some(rid) = c.q("requestId") {
            if rid == "00000000-0000-0000-0000-000000000000" || !is_uuid(rid) {
                return Err(ApiError::invalid(format!(
                    "Invalid value for field 'requestId': '{rid}'. Must be a valid UUID (not the zero UUID)."
                )));
            }
            if let Some(op) = self.request_ids.get(rid).and_then(|k| self.ops.get(k)) {
                return Ok(op.value.clone());
            }
        }
        let result = match verb {
            "get" if coll == "globalOperations" || coll == "regionOperations" || coll == "zoneOperations" => {
                let k = format!("{scope_key}/operations/{}", c.var("operation"));
                self.poll(&k)
            }
            "get" => self.objects.get(&key).cloned(),
            "getFromFamily" => self.from_family(&project, c.var("family")),
            "list" => self.list(c, &project, Some(&c.scope()), coll),
            "aggregatedList" => self.list(c, &project, None, coll),
            "insert" => self.insert(c, &project, &scope_key, coll),
            "delete" => self.delete(c, &project, &scope_key, &key),
            _ => self.mutate(c, &project, &scope_key, &key, verb),
        }?;
        Ok(result)
    }

    /// Records an operation on `target` whose `effect` runs when it is DONE.
    fn operation(&mut self, c: &Call, scope_key: &str, op_type: &str, target: &str, effect: Effect) -> Value {
        let id = self.id();
        let name = format!(
            "operation-{}-{id}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis()
        );
        let key = format!("{scope_key}/operations/{name}");
        let target_id = self.objects.map.get(target).and_then(|o| o["id"].as_str()).unwrap_or_default().to_string();
        let mut value = json!({"kind": "compute#operation", "id": id, "name": name, "operationType": op_type,
            "targetLink": link(target), "targetId": target_id, "status": "PENDING", "progress": 0,
            "insertTime": now(), "selfLink": link(&key), "user": "phoenix-test@example.com"});
        let parts: Vec<&str> = scope_key.split('/').collect();
        match parts.as_slice() {
            [_, _, "zones", z] => set(&mut value, "zone", json!(link(&format!("projects/{}/zones/{z}", parts[1])))),
            [_, _, "regions", r] => set(&mut value, "region", json!(link(&format!("projects/{}/regions/{r}", parts[1])))),
            _ => {}
        }
        if let Some(rid) = c.q("requestId") {
            self.request_ids.insert(rid.to_string(), key.clone());
        }
        self.ops.insert(key, Op { value: value.clone(), started: Instant::now(), effect: Some(effect) });
        value
    }

    /// One step of an operation's life per read: PENDING → RUNNING → DONE (not before the injected delay).
    fn poll(&mut self, key: &str) -> Result<Value, ApiError> {
        let delay = self.op_delay;
        let op = self.ops.get_mut(key).ok_or_else(|| ApiError::not_found(key))?;
        match op.value["status"].as_str() {
            Some("PENDING") => {
                set(&mut op.value, "status", json!("RUNNING"));
                set(&mut op.value, "startTime", json!(now()));
            }
            Some("RUNNING") if op.started.elapsed() >= delay => {
                let effect = op.effect.take();
                let value = op.value.clone();
                let outcome = effect.map_or(Ok(()), |e| e(&mut self.objects));
                let op = self.ops.get_mut(key).expect("still there");
                op.value = value;
                set(&mut op.value, "status", json!("DONE"));
                set(&mut op.value, "progress", json!(100));
                set(&mut op.value, "endTime", json!(now()));
                if let Err(e) = outcome {
                    set(&mut op.value, "error", json!({"errors": [{"code": e.reason_code(), "message": e.message}]}));
                    set(&mut op.value, "httpErrorStatusCode", json!(e.code));
                    set(&mut op.value, "httpErrorMessage", json!(if e.code == 404 { "NOT FOUND" } else { "BAD REQUEST" }));
                }
            }
            _ => {}
        }
        Ok(self.ops[key].value.clone())
    }

    fn list(&self, c: &Call, project: &str, scope: Option<&str>, coll: &str) -> Result<Value, ApiError> {
        let filter = match c.q("filter") {
            Some(f) => Filter::parse(f).map_err(|e| ApiError::invalid(format!("Invalid list filter expression '{f}': {e}")))?,
            None => Filter::default(),
        };
        let max = match c.q("maxResults") {
            Some(m) => m.parse::<usize>().map_err(|_| ApiError::invalid("Invalid value for field 'maxResults'"))?,
            None => 500,
        };
        if max > 500 {
            return Err(ApiError::invalid(format!("Invalid value for field 'maxResults': '{max}'. Must be less than or equal to 500")));
        }
        let start = match c.q("pageToken") {
            Some(t) => t
                .strip_prefix("pt")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| ApiError::invalid("Invalid value for field 'pageToken'"))?,
            None => 0,
        };
        let all: Vec<&Value> = self.objects.in_collection(project, scope, coll).filter(|v| filter.matches(v)).collect();
        let page: Vec<&Value> = all.iter().skip(start).take(max.max(1)).copied().collect();
        let kind = kind_of(coll).replace("compute#", "");
        let mut out = json!({"kind": format!("compute#{kind}{}", if scope.is_some() { "List" } else { "AggregatedList" }),
            "id": format!("projects/{project}/{}{coll}", scope.map_or("aggregated/".to_string(), |s| format!("{s}/"))),
            "selfLink": link(&format!("projects/{project}/{}/{coll}", scope.unwrap_or("aggregated")))});
        if scope.is_some() {
            set(&mut out, "items", json!(page));
        } else {
            // aggregatedList groups by scope: {"zones/z": {"instances": [...]}}.
            let mut groups: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
            for v in &page {
                let key = v["selfLink"].as_str().and_then(|l| l.strip_prefix(BASE)).unwrap_or_default();
                let parts: Vec<&str> = key.split('/').collect();
                groups.entry(format!("{}/{}", parts.get(2).unwrap_or(&""), parts.get(3).unwrap_or(&""))).or_default().push(v);
            }
            let items: Map<String, Value> = groups.into_iter().map(|(k, v)| (k, json!({ coll: v }))).collect();
            set(&mut out, "items", Value::Object(items));
        }
        if start + max < all.len() {
            set(&mut out, "nextPageToken", json!(format!("pt{}", start + max)));
        }
        Ok(out)
    }

    fn from_family(&self, project: &str, family: &str) -> Result<Value, ApiError> {
        self.objects
            .in_collection(project, Some("global"), "images")
            .filter(|i| i["family"] == family && i.get("deprecated").is_none())
            .max_by(|a, b| {
                (a["creationTimestamp"].as_str(), a["name"].as_str()).cmp(&(b["creationTimestamp"].as_str(), b["name"].as_str()))
            })
            .cloned()
            .ok_or_else(|| ApiError::not_found(&format!("projects/{project}/global/images/family/{family}")))
    }

    /// Resolves an image reference, following `…/images/family/F` to the family's newest image.
    fn image(&self, reference: &str, project: &str) -> Result<Value, ApiError> {
        let key = key_of(reference, project);
        let parts: Vec<&str> = key.split('/').collect();
        if let ["projects", p, "global", "images", "family", f] = parts.as_slice() {
            return self.from_family(p, f);
        }
        self.objects.get(&key).cloned()
    }

    fn require(&self, reference: Option<&str>, project: &str, what: &str) -> Result<String, ApiError> {
        let r = reference.ok_or_else(|| ApiError::invalid(format!("Invalid value for field 'resource.{what}': ''. Required.")))?;
        let key = key_of(r, project);
        self.objects.get(&key)?;
        Ok(key)
    }

    fn insert(&mut self, c: &Call, project: &str, scope_key: &str, coll: &str) -> Result<Value, ApiError> {
        let mut body = c.body();
        let name = body["name"].as_str().unwrap_or_default().to_string();
        if !valid_name(&name) {
            return Err(ApiError::invalid(format!(
                "Invalid value for field 'resource.name': '{name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?)'"
            )));
        }
        let key = format!("{scope_key}/{coll}/{name}");
        if self.objects.map.contains_key(&key) {
            return Err(ApiError::new(409, "alreadyExists", format!("The resource '{key}' already exists")));
        }
        if let Some(labels) = body.get("labels").and_then(Value::as_object) {
            check_labels(labels)?;
        }
        let id = self.id();
        set(&mut body, "kind", json!(kind_of(coll)));
        set(&mut body, "id", json!(id));
        set(&mut body, "selfLink", json!(link(&key)));
        set(&mut body, "creationTimestamp", json!(now()));
        if matches!(coll, "addresses" | "disks" | "instances" | "snapshots" | "images") {
            let labels = body.get("labels").cloned().filter(Value::is_object).unwrap_or_else(|| json!({}));
            set(&mut body, "labelFingerprint", json!(fingerprint(&labels)));
            set(&mut body, "labels", labels);
        }
        let zone = c.vars.get("zone").cloned();
        let region = c.vars.get("region").cloned();
        if let Some(z) = &zone {
            set(&mut body, "zone", json!(link(&format!("projects/{project}/zones/{z}"))));
        }
        if let Some(r) = &region {
            set(&mut body, "region", json!(link(&format!("projects/{project}/regions/{r}"))));
        }
        let mut extra: Vec<(String, Value)> = Vec::new(); // objects made alongside (an instance's boot disk)
        let ready: Value = match coll {
            "networks" => {
                if body.get("autoCreateSubnetworks").is_none() && body.get("IPv4Range").is_none() {
                    return Err(ApiError::invalid(
                        "Invalid value for field 'resource.autoCreateSubnetworks': ''. Must be set for a VPC network.",
                    ));
                }
                if body.get("routingConfig").is_none() {
                    set(&mut body, "routingConfig", json!({"routingMode": "REGIONAL"}));
                }
                if body.get("mtu").is_none() {
                    set(&mut body, "mtu", json!(1460));
                }
                set(&mut body, "subnetworks", json!([]));
                json!({})
            }
            "subnetworks" => {
                let net = self.require(body["network"].as_str(), project, "network")?;
                let cidr = body["ipCidrRange"]
                    .as_str()
                    .ok_or_else(|| ApiError::invalid("Invalid value for field 'resource.ipCidrRange': ''. Required."))?;
                let (base, bits) = parse_cidr(cidr).ok_or_else(|| {
                    ApiError::invalid(format!("Invalid value for field 'resource.ipCidrRange': '{cidr}'. Invalid IPv4 CIDR range."))
                })?;
                set(&mut body, "network", json!(link(&net)));
                set(&mut body, "gatewayAddress", json!(ip(base + 1)));
                set(&mut body, "fingerprint", json!(fingerprint(&json!(id))));
                let _ = bits;
                let sub = link(&key);
                self.objects.get_mut(&net)?["subnetworks"].as_array_mut().map(|a| a.push(json!(sub)));
                json!({})
            }
            "firewalls" => {
                let net = self.require(Some(body["network"].as_str().unwrap_or("global/networks/default")), project, "network")?;
                set(&mut body, "network", json!(link(&net)));
                if body.get("direction").is_none() {
                    set(&mut body, "direction", json!("INGRESS"));
                }
                if body.get("priority").is_none() {
                    set(&mut body, "priority", json!(1000));
                }
                if body.get("allowed").is_none() && body.get("denied").is_none() {
                    return Err(ApiError::invalid(
                        "Invalid value for field 'resource.allowed': ''. Must specify at least one of allowed or denied.",
                    ));
                }
                let disabled = body.get("disabled").cloned().unwrap_or(json!(false));
                set(&mut body, "disabled", disabled);
                json!({})
            }
            "addresses" => {
                if body.get("address").is_none() {
                    let n = self.next_id % 250 + 2;
                    set(&mut body, "address", json!(format!("34.1.{}.{n}", (self.next_id / 250) % 250)));
                }
                if body.get("addressType").is_none() {
                    set(&mut body, "addressType", json!("EXTERNAL"));
                }
                set(&mut body, "status", json!("RESERVING"));
                json!({"status": "RESERVED"})
            }
            "disks" => {
                let zone = zone.clone().unwrap_or_default();
                let image_ref = c.q("sourceImage").map(str::to_string).or_else(|| body["sourceImage"].as_str().map(str::to_string));
                let mut size = body["sizeGb"].as_str().map(str::to_string);
                if let Some(r) = &image_ref {
                    let image = self.image(r, project)?;
                    set(&mut body, "sourceImage", image["selfLink"].clone());
                    set(&mut body, "sourceImageId", image["id"].clone());
                    size.get_or_insert_with(|| image["diskSizeGb"].as_str().unwrap_or("10").to_string());
                }
                if let Some(r) = body["sourceSnapshot"].as_str().map(str::to_string) {
                    let snap = self.objects.get(&key_of(&r, project))?.clone();
                    set(&mut body, "sourceSnapshot", snap["selfLink"].clone());
                    set(&mut body, "sourceSnapshotId", snap["id"].clone());
                    size.get_or_insert_with(|| snap["diskSizeGb"].as_str().unwrap_or("10").to_string());
                }
                set(&mut body, "sizeGb", json!(size.unwrap_or_else(|| "500".into())));
                let t = body["type"].as_str().map_or_else(|| format!("zones/{zone}/diskTypes/pd-standard"), str::to_string);
                set(&mut body, "type", json!(link(&key_of(&t, project))));
                set(&mut body, "users", json!([]));
                set(&mut body, "status", json!("CREATING"));
                json!({"status": "READY"})
            }
            "instances" => {
                let zone = zone.clone().unwrap_or_default();
                let mt = body["machineType"].as_str().unwrap_or_default().to_string();
                let mt_key = key_of(&mt, project);
                if !mt_key.starts_with(&format!("projects/{project}/zones/{zone}/machineTypes/"))
                    || mt_key.rsplit('/').next().is_none_or(|n| !valid_name(n))
                {
                    return Err(ApiError::invalid(format!(
                        "Invalid value for field 'resource.machineType': '{mt}'. Machine type with name '{}' does not exist in zone '{zone}'.",
                        mt.rsplit('/').next().unwrap_or_default()
                    )));
                }
                set(&mut body, "machineType", json!(link(&mt_key)));
                let inst_link = link(&key);
                let disks = body["disks"].as_array().cloned().unwrap_or_default();
                if disks.iter().filter(|d| d["boot"] == true).count() != 1 {
                    return Err(ApiError::invalid(
                        "Invalid value for field 'resource.disks': ''. Exactly one boot disk must be specified.",
                    ));
                }
                let mut attached = Vec::new();
                for (i, d) in disks.into_iter().enumerate() {
                    let mut d = d;
                    let disk_key = if let Some(src) = d["source"].as_str() {
                        let k = key_of(src, project);
                        let disk = self.objects.get(&k)?;
                        if disk["users"].as_array().is_some_and(|u| !u.is_empty()) {
                            return Err(ApiError::in_use(&k, disk["users"][0].as_str().unwrap_or_default()));
                        }
                        k
                    } else if let Some(init) = d.get("initializeParams").cloned() {
                        let disk_name = init["diskName"]
                            .as_str()
                            .map_or_else(|| if i == 0 { name.clone() } else { format!("{name}-{i}") }, str::to_string);
                        let k = format!("projects/{project}/zones/{zone}/disks/{disk_name}");
                        if self.objects.map.contains_key(&k) || extra.iter().any(|(x, _)| *x == k) {
                            return Err(ApiError::new(409, "alreadyExists", format!("The resource '{k}' already exists")));
                        }
                        let mut disk = json!({"kind": "compute#disk", "id": self.id(), "name": disk_name, "selfLink": link(&k),
                            "creationTimestamp": now(), "zone": link(&format!("projects/{project}/zones/{zone}")), "status": "READY",
                            "users": [inst_link.clone()], "labels": init.get("labels").cloned().unwrap_or(json!({}))});
                        let lf = fingerprint(&disk["labels"]);
                        set(&mut disk, "labelFingerprint", json!(lf));
                        let mut size = init["diskSizeGb"].as_str().map(str::to_string);
                        if let Some(r) = init["sourceImage"].as_str() {
                            let image = self.image(r, project)?;
                            set(&mut disk, "sourceImage", image["selfLink"].clone());
                            set(&mut disk, "sourceImageId", image["id"].clone());
                            size.get_or_insert_with(|| image["diskSizeGb"].as_str().unwrap_or("10").to_string());
                        } else if let Some(r) = init["sourceSnapshot"].as_str() {
                            let snap = self.objects.get(&key_of(r, project))?.clone();
                            set(&mut disk, "sourceSnapshot", snap["selfLink"].clone());
                            size.get_or_insert_with(|| snap["diskSizeGb"].as_str().unwrap_or("10").to_string());
                        } else if d["boot"] == true {
                            return Err(ApiError::invalid(
                                "Invalid value for field 'resource.disks[0].initializeParams.sourceImage': ''. Source image must be specified.",
                            ));
                        }
                        set(&mut disk, "sizeGb", json!(size.unwrap_or_else(|| "10".into())));
                        let t = init["diskType"].as_str().map_or_else(|| format!("zones/{zone}/diskTypes/pd-standard"), str::to_string);
                        set(&mut disk, "type", json!(link(&key_of(&t, project))));
                        extra.push((k.clone(), disk));
                        k
                    } else {
                        return Err(ApiError::invalid(format!(
                            "Invalid value for field 'resource.disks[{i}]': ''. A disk needs a source or initializeParams."
                        )));
                    };
                    let dn = d["deviceName"]
                        .as_str()
                        .map_or_else(|| disk_key.rsplit('/').next().unwrap_or_default().to_string(), str::to_string);
                    if let Some(o) = d.as_object_mut() {
                        o.remove("initializeParams");
                        o.insert("source".into(), json!(link(&disk_key)));
                        o.insert("deviceName".into(), json!(dn));
                        o.insert("index".into(), json!(i));
                        o.entry("autoDelete").or_insert(json!(false));
                        o.entry("mode").or_insert(json!("READ_WRITE"));
                        o.entry("type").or_insert(json!("PERSISTENT"));
                        o.insert("kind".into(), json!("compute#attachedDisk"));
                    }
                    attached.push((disk_key, d));
                }
                let mut nics = body["networkInterfaces"].as_array().cloned().unwrap_or_default();
                if nics.is_empty() {
                    return Err(ApiError::invalid(
                        "Invalid value for field 'resource.networkInterfaces': ''. At least one network interface is required.",
                    ));
                }
                for (i, nic) in nics.iter_mut().enumerate() {
                    let sub = nic["subnetwork"].as_str().map(|s| key_of(s, project));
                    let (net, ip_addr) = match &sub {
                        Some(s) => {
                            let subnet = self.objects.get(s)?;
                            let (base, _) = parse_cidr(subnet["ipCidrRange"].as_str().unwrap_or("10.0.0.0/24")).unwrap_or((0, 24));
                            let used = self.objects.in_collection(project, Some(&format!("zones/{zone}")), "instances").count() as u32;
                            (
                                key_of(subnet["network"].as_str().unwrap_or_default(), project),
                                ip(base + 2 + used + self.next_id as u32 % 200),
                            )
                        }
                        None => (self.require(nic["network"].as_str(), project, "networkInterfaces.network")?, ip(0x0a80_0002 + i as u32)),
                    };
                    self.objects.get(&net)?;
                    set(nic, "network", json!(link(&net)));
                    if let Some(s) = &sub {
                        set(nic, "subnetwork", json!(link(s)));
                    }
                    set(nic, "networkIP", json!(ip_addr));
                    set(nic, "name", json!(format!("nic{i}")));
                    set(nic, "kind", json!("compute#networkInterface"));
                    if let Some(acs) = nic.get_mut("accessConfigs").and_then(Value::as_array_mut) {
                        for ac in acs {
                            if ac.get("natIP").is_none() {
                                set(ac, "natIP", json!(format!("35.2.{}.{}", self.next_id / 250 % 250, self.next_id % 250 + 2)));
                            }
                            set(ac, "kind", json!("compute#accessConfig"));
                            ac.as_object_mut().map(|o| o.entry("type").or_insert(json!("ONE_TO_ONE_NAT")));
                            ac.as_object_mut().map(|o| o.entry("name").or_insert(json!("External NAT")));
                        }
                    }
                }
                set(&mut body, "networkInterfaces", json!(nics));
                set(&mut body, "disks", json!(attached.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>()));
                for (k, _) in &attached {
                    if let Some(d) = self.objects.map.get_mut(k) {
                        d["users"].as_array_mut().map(|u| u.push(json!(inst_link.clone())));
                    }
                }
                let md = body.get("metadata").cloned().unwrap_or_else(|| json!({}));
                let mut md = md;
                set(&mut md, "kind", json!("compute#metadata"));
                let fp = fingerprint(&md["items"]);
                set(&mut md, "fingerprint", json!(fp));
                set(&mut body, "metadata", md);
                set(&mut body, "status", json!("PROVISIONING"));
                json!({"status": "RUNNING"})
            }
            "snapshots" => {
                let disk = self.require(body["sourceDisk"].as_str(), project, "sourceDisk")?;
                let d = self.objects.get(&disk)?.clone();
                set(&mut body, "sourceDisk", d["selfLink"].clone());
                set(&mut body, "sourceDiskId", d["id"].clone());
                set(&mut body, "diskSizeGb", d["sizeGb"].clone());
                set(&mut body, "status", json!("CREATING"));
                json!({"status": "READY"})
            }
            "images" => {
                let size = if let Some(r) = body["sourceDisk"].as_str().map(str::to_string) {
                    let d = self.objects.get(&key_of(&r, project))?.clone();
                    set(&mut body, "sourceDisk", d["selfLink"].clone());
                    set(&mut body, "sourceDiskId", d["id"].clone());
                    d["sizeGb"].clone()
                } else if let Some(r) = body["sourceSnapshot"].as_str().map(str::to_string) {
                    let s = self.objects.get(&key_of(&r, project))?.clone();
                    set(&mut body, "sourceSnapshot", s["selfLink"].clone());
                    s["diskSizeGb"].clone()
                } else if let Some(r) = body["sourceImage"].as_str().map(str::to_string) {
                    let i = self.image(&r, project)?;
                    set(&mut body, "sourceImage", i["selfLink"].clone());
                    i["diskSizeGb"].clone()
                } else if body.get("rawDisk").is_some() {
                    json!("10")
                } else {
                    return Err(ApiError::invalid(
                        "Invalid value for field 'resource': ''. An image needs a sourceDisk, sourceSnapshot, sourceImage or rawDisk.",
                    ));
                };
                set(&mut body, "diskSizeGb", size);
                set(&mut body, "status", json!("PENDING"));
                json!({"status": "READY"})
            }
            other => return Err(ApiError::invalid(format!("insert into {other} is not served"))),
        };
        self.objects.map.insert(key.clone(), body);
        for (k, d) in extra {
            self.objects.map.insert(k, d);
        }
        let k2 = key.clone();
        let effect: Effect = Box::new(move |o: &mut Objects| {
            if let (Ok(obj), Some(r)) = (o.get_mut(&k2), ready.as_object()) {
                for (f, v) in r {
                    set(obj, f, v.clone());
                }
            }
            Ok(())
        });
        Ok(self.operation(c, scope_key, "insert", &key, effect))
    }

    fn delete(&mut self, c: &Call, project: &str, scope_key: &str, key: &str) -> Result<Value, ApiError> {
        let obj = self.objects.get(key)?.clone();
        let me = link(key);
        // What still uses the object: the API refuses to delete it.
        let users: Vec<String> = self
            .objects
            .map
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .filter(|(_, v)| {
                let s = v.to_string();
                match obj["kind"].as_str() {
                    Some("compute#network") => {
                        v["network"] == me || v["networkInterfaces"].as_array().is_some_and(|n| n.iter().any(|i| i["network"] == me))
                    }
                    Some("compute#subnetwork") => {
                        v["networkInterfaces"].as_array().is_some_and(|n| n.iter().any(|i| i["subnetwork"] == me))
                    }
                    Some("compute#disk") => v["kind"] == "compute#instance" && s.contains(&format!("\"{me}\"")),
                    _ => false,
                }
            })
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(u) = users.first() {
            return Err(ApiError::in_use(key, u));
        }
        let _ = project;
        let k = key.to_string();
        let effect: Effect = Box::new(move |o: &mut Objects| {
            let Some(gone) = o.map.remove(&k) else { return Ok(()) };
            let me = link(&k);
            if gone["kind"] == "compute#instance" {
                for d in gone["disks"].as_array().cloned().unwrap_or_default() {
                    let dk = key_of(d["source"].as_str().unwrap_or_default(), "");
                    if d["autoDelete"] == true {
                        o.map.remove(&dk);
                    } else if let Some(disk) = o.map.get_mut(&dk) {
                        disk["users"].as_array_mut().map(|u| u.retain(|x| *x != me));
                    }
                }
            }
            if gone["kind"] == "compute#subnetwork"
                && let Some(net) = o.map.get_mut(&key_of(gone["network"].as_str().unwrap_or_default(), ""))
            {
                net["subnetworks"].as_array_mut().map(|s| s.retain(|x| *x != me));
            }
            Ok(())
        });
        if obj["kind"] == "compute#instance" {
            let o = self.objects.get_mut(key)?;
            set(o, "status", json!("STOPPING"));
        }
        Ok(self.operation(c, scope_key, "delete", key, effect))
    }

    fn mutate(&mut self, c: &Call, project: &str, scope_key: &str, key: &str, verb: &str) -> Result<Value, ApiError> {
        let obj = self.objects.get(key)?.clone();
        let body = c.body();
        let k = key.to_string();
        let effect: Effect = match verb {
            "setLabels" => {
                let labels = body.get("labels").cloned().unwrap_or_else(|| json!({}));
                check_labels(labels.as_object().unwrap_or(&Map::new()))?;
                if body["labelFingerprint"] != obj["labelFingerprint"] {
                    return Err(ApiError::new(412, "conditionNotMet", "Labels fingerprint either invalid or resource labels have changed"));
                }
                Box::new(move |o| {
                    let x = o.get_mut(&k)?;
                    set(x, "labelFingerprint", json!(fingerprint(&labels)));
                    set(x, "labels", labels);
                    Ok(())
                })
            }
            "setMetadata" => {
                if body["fingerprint"] != obj["metadata"]["fingerprint"] {
                    return Err(ApiError::new(412, "conditionNotMet", "Supplied fingerprint does not match current metadata fingerprint."));
                }
                Box::new(move |o| {
                    let x = o.get_mut(&k)?;
                    let mut md = body;
                    set(&mut md, "kind", json!("compute#metadata"));
                    let fp = fingerprint(&md["items"]);
                    set(&mut md, "fingerprint", json!(fp));
                    set(x, "metadata", md);
                    Ok(())
                })
            }
            "setMachineType" => {
                let mt = body["machineType"].as_str().unwrap_or_default().to_string();
                let mt_key = key_of(&mt, project);
                if !mt_key.contains("/machineTypes/") {
                    return Err(ApiError::invalid(format!("Invalid value for field 'resource.machineType': '{mt}'.")));
                }
                Box::new(move |o| {
                    let x = o.get_mut(&k)?;
                    if x["status"] != "TERMINATED" {
                        return Err(ApiError::new(
                            400,
                            "resourceNotReady",
                            format!("The resource '{k}' is not ready: the instance must be stopped to change its machine type"),
                        ));
                    }
                    set(x, "machineType", json!(link(&mt_key)));
                    Ok(())
                })
            }
            "setServiceAccount" => Box::new(move |o| {
                let x = o.get_mut(&k)?;
                if x["status"] != "TERMINATED" {
                    return Err(ApiError::new(
                        400,
                        "resourceNotReady",
                        format!("The resource '{k}' must be stopped to change its service account"),
                    ));
                }
                let sa = if body.get("email").is_some() {
                    json!([{"email": body["email"], "scopes": body["scopes"].clone()}])
                } else {
                    json!([])
                };
                set(x, "serviceAccounts", sa);
                Ok(())
            }),
            "stop" => {
                set(self.objects.get_mut(key)?, "status", json!("STOPPING"));
                Box::new(move |o| {
                    set(o.get_mut(&k)?, "status", json!("TERMINATED"));
                    Ok(())
                })
            }
            "start" => {
                if obj["status"] == "RUNNING" {
                    Box::new(|_| Ok(()))
                } else {
                    set(self.objects.get_mut(key)?, "status", json!("STAGING"));
                    Box::new(move |o| {
                        set(o.get_mut(&k)?, "status", json!("RUNNING"));
                        Ok(())
                    })
                }
            }
            "attachDisk" => {
                let dk = self.require(body["source"].as_str(), project, "source")?;
                let disk = self.objects.get(&dk)?;
                if disk["users"].as_array().is_some_and(|u| !u.is_empty()) {
                    return Err(ApiError::in_use(&dk, disk["users"][0].as_str().unwrap_or_default()));
                }
                let dn = body["deviceName"].as_str().map_or_else(|| dk.rsplit('/').next().unwrap_or_default().to_string(), str::to_string);
                if obj["disks"].as_array().is_some_and(|d| d.iter().any(|x| x["deviceName"] == dn.as_str())) {
                    return Err(ApiError::invalid(format!(
                        "Invalid value for field 'resource.deviceName': '{dn}'. The device name is already in use."
                    )));
                }
                Box::new(move |o| {
                    let me = link(&k);
                    let index = o.get(&k)?["disks"].as_array().map_or(0, Vec::len);
                    let mut d = body;
                    set(&mut d, "source", json!(link(&dk)));
                    set(&mut d, "deviceName", json!(dn));
                    set(&mut d, "index", json!(index));
                    set(&mut d, "kind", json!("compute#attachedDisk"));
                    d.as_object_mut().map(|m| {
                        m.entry("autoDelete").or_insert(json!(false));
                        m.entry("mode").or_insert(json!("READ_WRITE"));
                        m.entry("type").or_insert(json!("PERSISTENT"));
                        m.entry("boot").or_insert(json!(false));
                    });
                    o.get_mut(&k)?["disks"].as_array_mut().map(|a| a.push(d));
                    o.get_mut(&dk)?["users"].as_array_mut().map(|u| u.push(json!(me)));
                    Ok(())
                })
            }
            "detachDisk" => {
                let dn = c.q("deviceName").unwrap_or_default().to_string();
                let Some(d) = obj["disks"].as_array().and_then(|ds| ds.iter().find(|x| x["deviceName"] == dn.as_str())).cloned() else {
                    return Err(ApiError::invalid(format!(
                        "Invalid value for field 'deviceName': '{dn}'. No attached disk found with the device name."
                    )));
                };
                if d["boot"] == true {
                    return Err(ApiError::invalid(
                        "Invalid value for field 'deviceName': the boot disk cannot be detached from a running instance.",
                    ));
                }
                Box::new(move |o| {
                    let me = link(&k);
                    o.get_mut(&k)?["disks"].as_array_mut().map(|a| a.retain(|x| x["deviceName"] != dn.as_str()));
                    if let Some(disk) = o.map.get_mut(&key_of(d["source"].as_str().unwrap_or_default(), "")) {
                        disk["users"].as_array_mut().map(|u| u.retain(|x| *x != me));
                    }
                    Ok(())
                })
            }
            "createSnapshot" => {
                let mut snap = body;
                set(&mut snap, "sourceDisk", json!(link(key)));
                let call = Call { method: "compute.snapshots.insert", vars: c.vars, query: c.query, body: Some(snap) };
                let global = format!("projects/{project}/global");
                return self.insert(&call, project, &global, "snapshots");
            }
            "resize" => {
                let want = body["sizeGb"].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
                let have = obj["sizeGb"].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
                if want <= have {
                    return Err(ApiError::invalid(format!(
                        "Invalid value for field 'sizeGb': '{want}'. Disks can only grow (now {have} GB)."
                    )));
                }
                Box::new(move |o| {
                    set(o.get_mut(&k)?, "sizeGb", json!(want.to_string()));
                    Ok(())
                })
            }
            "patch" => {
                // Fields that cannot change after creation are refused, as the API does.
                for fixed in ["name", "network", "ipCidrRange", "autoCreateSubnetworks"] {
                    if let Some(v) = body.get(fixed)
                        && !v.is_null()
                        && obj.get(fixed).is_some_and(|o| {
                            key_of(o.as_str().unwrap_or_default(), project) != key_of(v.as_str().unwrap_or_default(), project)
                        })
                    {
                        return Err(ApiError::invalid(format!("Invalid value for field 'resource.{fixed}': the field cannot be changed.")));
                    }
                }
                if obj["kind"] == "compute#subnetwork" && body["fingerprint"] != obj["fingerprint"] {
                    return Err(ApiError::new(412, "conditionNotMet", "Invalid fingerprint: the subnetwork changed since it was read."));
                }
                Box::new(move |o| {
                    let x = o.get_mut(&k)?;
                    for (f, v) in body.as_object().cloned().unwrap_or_default() {
                        if matches!(f.as_str(), "name" | "network" | "fingerprint" | "id" | "selfLink" | "kind") {
                            continue;
                        }
                        set(x, &f, v);
                    }
                    if x["kind"] == "compute#subnetwork" {
                        let fp = fingerprint(x);
                        set(x, "fingerprint", json!(fp));
                    }
                    Ok(())
                })
            }
            other => return Err(ApiError::invalid(format!("method {other} is not served by the test server"))),
        };
        Ok(self.operation(c, scope_key, verb, key, effect))
    }
}

impl ApiError {
    fn reason_code(&self) -> String {
        match self.reason {
            "resourceNotReady" => "RESOURCE_NOT_READY".into(),
            "notFound" => "RESOURCE_NOT_FOUND".into(),
            "resourceInUseByAnotherResource" => "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE".into(),
            other => other.to_uppercase(),
        }
    }
}

/// RFC 1035 names, as GCE requires: lowercase letter first, then [-a-z0-9], no trailing dash, ≤ 63.
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

/// GCE's label rules: keys start with a lowercase letter; keys and values ≤ 63 of [a-z0-9_-]; ≤ 64 labels.
fn check_labels(labels: &Map<String, Value>) -> Result<(), ApiError> {
    let ok = |s: &str| s.len() <= 63 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if labels.len() > 64 {
        return Err(ApiError::invalid("Invalid value for field 'labels': too many labels (at most 64)."));
    }
    for (k, v) in labels {
        let v = v.as_str().unwrap_or_default();
        if !k.starts_with(|c: char| c.is_ascii_lowercase()) || !ok(k) || !ok(v) {
            return Err(ApiError::invalid(format!(
                "Invalid value for field 'labels': '{k}={v}'. Label keys and values can only contain lowercase letters, numeric characters, underscores and dashes."
            )));
        }
    }
    Ok(())
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5 && [8, 4, 4, 4, 12].iter().zip(&parts).all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn parse_cidr(s: &str) -> Option<(u32, u32)> {
    let (addr, bits) = s.split_once('/')?;
    let bits: u32 = bits.parse().ok().filter(|b| *b <= 32)?;
    let o: Vec<u32> = addr.split('.').map(|x| x.parse::<u8>().ok().map(u32::from)).collect::<Option<_>>()?;
    (o.len() == 4).then(|| ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3], bits))
}

fn ip(n: u32) -> String {
    format!("{}.{}.{}.{}", n >> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255)
}
