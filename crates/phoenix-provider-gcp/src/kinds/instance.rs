//! `gcp.instance`: a Compute Engine VM with its boot disk, network interface,
//! attached disks, metadata (a startup script among it) and service account.
//!
//! In place: the machine type (stop → setMachineType → start), labels
//! (setLabels), metadata and the startup script (setMetadata), attached
//! disks (attachDisk/detachDisk). Everything GCE fixes at creation (image,
//! boot disk, network, service account, network tags) replaces it.

use async_trait::async_trait;
use phoenix_core::provider::{Observed, ProviderError, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::{Map, json};

use super::{Kind, common_inputs, common_outputs, last, opt_str, req_str, schema, str_list};
use crate::gce::{Coll, Gce, InstanceAction, Loc, Scope, request_id};

pub struct Instance;

const STARTUP_KEY: &str = "startup-script";
const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Same object whatever the spelling (full URL, `projects/…` path).
fn same_link(a: &str, b: &str) -> bool {
    let rel = |s: &str| s.rsplit_once("/compute/v1/").map_or(s, |(_, r)| r).to_string();
    rel(a) == rel(b)
}

/// The metadata items Phoenix sets: the `metadata` map plus the startup script.
fn metadata_items(inputs: &Attrs) -> Vec<Value> {
    let mut items: Vec<Value> = inputs
        .get("metadata")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| json!({"key": k, "value": v.as_str().map_or_else(|| v.to_string(), str::to_string)}))
        .collect();
    if let Some(s) = opt_str(inputs, "startup_script") {
        items.push(json!({"key": STARTUP_KEY, "value": s}));
    }
    items
}

/// `attached_disks` as (source, device name).
fn attached(inputs: &Attrs) -> Vec<(String, String)> {
    inputs
        .get("attached_disks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let source = d["source"].as_str()?.to_string();
            let device = d["device_name"].as_str().map_or_else(|| last(&json!(source)), str::to_string);
            Some((source, device))
        })
        .collect()
}

fn nic(o: &Value) -> &Value {
    &o["networkInterfaces"][0]
}

#[async_trait]
impl Kind for Instance {
    fn schema(&self) -> ResourceSchema {
        let validate_machine = |v: &Value| match v.as_str() {
            Some(s) if !s.is_empty() && !s.contains('/') => Ok(()),
            _ => Err("a machine type name such as e2-small (not a URL)".into()),
        };
        schema(
            "gcp.instance",
            "A Compute Engine VM instance",
            true,
            vec![
                AttrSchema::optional("zone", AttrType::String, "default: the provider's zone").force_new().format("gcp-zone"),
                AttrSchema::required("machine_type", AttrType::String, "e.g. e2-small; changed in place (stop, setMachineType, start)")
                    .validate_with(validate_machine),
                AttrSchema::required(
                    "image",
                    AttrType::String,
                    "boot image: a self_link, or project/family such as debian-cloud/debian-12",
                )
                .force_new(),
                AttrSchema::optional("boot_disk_size_gb", AttrType::Int, "boot disk size in GB (default: the image's)").force_new(),
                AttrSchema::optional("boot_disk_type", AttrType::String, "pd-standard, pd-balanced, pd-ssd …")
                    .default(json!("pd-balanced"))
                    .force_new(),
                AttrSchema::optional("subnetwork", AttrType::String, "the subnetwork's self_link (or set `network`)").force_new(),
                AttrSchema::optional("network", AttrType::String, "the network's self_link, for auto-mode networks").force_new(),
                AttrSchema::optional("external_ip", AttrType::Bool, "give it an ephemeral external IPv4 address")
                    .default(json!(false))
                    .force_new(),
                AttrSchema::optional("nat_ip", AttrType::String, "a reserved external address (gcp.address's `address`)").force_new(),
                AttrSchema::optional(
                    "attached_disks",
                    AttrType::List(Box::new(AttrType::Any)),
                    "extra disks: [{ source = \"${data.self_link}\", device_name = \"data\" }]; attached and detached in place",
                ),
                AttrSchema::optional("metadata", AttrType::Map(Box::new(AttrType::String)), "metadata items; changed in place"),
                // Bootstrap scripts often carry secrets: kept out of state and plans.
                AttrSchema::optional("startup_script", AttrType::String, "the startup-script metadata item; changed in place").sensitive(),
                AttrSchema::optional("service_account", AttrType::String, "the service account email it runs as").force_new(),
                AttrSchema::optional("scopes", AttrType::List(Box::new(AttrType::String)), "OAuth scopes of the service account")
                    .default(json!([DEFAULT_SCOPE]))
                    .force_new(),
                AttrSchema::optional("network_tags", AttrType::List(Box::new(AttrType::String)), "network tags (firewall targets)")
                    .force_new(),
                AttrSchema::computed("internal_ip", AttrType::String, "the primary internal IPv4 address").stable(),
                AttrSchema::computed("external_ip", AttrType::String, "the external IPv4 address, or \"\""),
                AttrSchema::computed("boot_disk", AttrType::String, "the boot disk's self_link").stable(),
                AttrSchema::computed("status", AttrType::String, "RUNNING, TERMINATED …"),
            ],
        )
    }
    fn coll(&self) -> Coll {
        Coll::Instances
    }
    fn scope(&self, gce: &Gce, inputs: &Attrs) -> Result<Scope, ProviderError> {
        Ok(Scope::Zone(gce.zone_or_default(opt_str(inputs, "zone"))?))
    }
    async fn body(&self, gce: &Gce, inputs: &Attrs) -> Result<Map<String, Value>, ProviderError> {
        let zone = gce.zone_or_default(opt_str(inputs, "zone"))?;
        let mut b = Map::new();
        b.insert("machineType".into(), json!(format!("zones/{zone}/machineTypes/{}", req_str(inputs, "machine_type")?)));
        let mut init = json!({
            "sourceImage": super::disk::image_ref(req_str(inputs, "image")?),
            "diskType": format!("zones/{zone}/diskTypes/{}", opt_str(inputs, "boot_disk_type").unwrap_or("pd-balanced")),
        });
        if let Some(s) = inputs.get("boot_disk_size_gb").and_then(Value::as_i64) {
            init["diskSizeGb"] = json!(s.to_string());
        }
        let mut disks = vec![json!({"boot": true, "autoDelete": true, "type": "PERSISTENT", "initializeParams": init})];
        for (source, device) in attached(inputs) {
            disks.push(json!({"boot": false, "autoDelete": false, "type": "PERSISTENT", "source": source, "deviceName": device}));
        }
        b.insert("disks".into(), json!(disks));
        let mut nic = Map::new();
        match (opt_str(inputs, "subnetwork"), opt_str(inputs, "network")) {
            (None, None) => return Err(ProviderError::permanent("set `subnetwork` (or `network` for an auto-mode network)")),
            (s, n) => {
                if let Some(s) = s {
                    nic.insert("subnetwork".into(), json!(s));
                }
                if let Some(n) = n {
                    nic.insert("network".into(), json!(n));
                }
            }
        }
        if let Some(ip) = opt_str(inputs, "nat_ip") {
            nic.insert("accessConfigs".into(), json!([{"type": "ONE_TO_ONE_NAT", "name": "External NAT", "natIP": ip}]));
        } else if inputs.get("external_ip").and_then(Value::as_bool).unwrap_or(false) {
            nic.insert("accessConfigs".into(), json!([{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]));
        }
        b.insert("networkInterfaces".into(), json!([nic]));
        let items = metadata_items(inputs);
        if !items.is_empty() {
            b.insert("metadata".into(), json!({ "items": items }));
        }
        if let Some(sa) = opt_str(inputs, "service_account") {
            let scopes = inputs.get("scopes").cloned().unwrap_or_else(|| json!([DEFAULT_SCOPE]));
            b.insert("serviceAccounts".into(), json!([{"email": sa, "scopes": scopes}]));
        }
        let tags = str_list(inputs, "network_tags");
        if !tags.is_empty() {
            b.insert("tags".into(), json!({ "items": tags }));
        }
        Ok(b)
    }
    fn observe(&self, o: &Value, prior: &Attrs) -> Observed {
        let mut inputs = common_inputs(o, prior);
        inputs.insert("machine_type".into(), json!(last(&o["machineType"])));
        if prior.contains_key("zone") {
            inputs.insert("zone".into(), json!(last(&o["zone"])));
        }
        for (attr, field) in [("subnetwork", "subnetwork"), ("network", "network")] {
            if let Some(p) = opt_str(prior, attr) {
                let seen = nic(o)[field].as_str().unwrap_or_default();
                inputs.insert(attr.into(), if same_link(p, seen) { json!(p) } else { json!(seen) });
            }
        }
        // The image, boot disk and scopes are fixed at creation (force-new) and not re-read.
        for k in ["image", "boot_disk_size_gb", "boot_disk_type", "scopes", "nat_ip", "external_ip"] {
            if let Some(v) = prior.get(k) {
                inputs.insert(k.into(), v.clone());
            }
        }
        if prior.contains_key("attached_disks") {
            let seen: Vec<(String, String)> = o["disks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["boot"] != true)
                .map(|d| (d["source"].as_str().unwrap_or_default().to_string(), d["deviceName"].as_str().unwrap_or_default().to_string()))
                .collect();
            let want = attached(prior);
            let same = seen.len() == want.len() && want.iter().all(|(s, d)| seen.iter().any(|(s2, d2)| same_link(s, s2) && d == d2));
            let value = if same {
                prior["attached_disks"].clone()
            } else {
                json!(seen.iter().map(|(s, d)| json!({"source": s, "device_name": d})).collect::<Vec<_>>())
            };
            inputs.insert("attached_disks".into(), value);
        }
        if prior.contains_key("metadata") {
            let m: Map<String, Value> = o["metadata"]["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|i| i["key"] != STARTUP_KEY)
                .map(|i| (i["key"].as_str().unwrap_or_default().to_string(), i["value"].clone()))
                .collect();
            inputs.insert("metadata".into(), Value::Object(m));
        }
        if prior.contains_key("service_account") {
            inputs.insert("service_account".into(), o["serviceAccounts"][0]["email"].clone());
        }
        if prior.contains_key("network_tags") {
            inputs.insert("network_tags".into(), o["tags"]["items"].as_array().cloned().map_or(json!([]), Value::Array));
        }
        let mut outputs = common_outputs(o);
        outputs.insert("internal_ip".into(), json!(nic(o)["networkIP"].as_str().unwrap_or_default()));
        outputs.insert("external_ip".into(), json!(nic(o)["accessConfigs"][0]["natIP"].as_str().unwrap_or_default()));
        let boot = o["disks"].as_array().into_iter().flatten().find(|d| d["boot"] == true);
        outputs.insert("boot_disk".into(), json!(boot.and_then(|d| d["source"].as_str()).unwrap_or_default()));
        outputs.insert("status".into(), json!(o["status"].as_str().unwrap_or_default()));
        Observed { inputs, outputs }
    }
    async fn settle(&self, gce: &Gce, loc: &Loc, object: Value) -> Result<Value, ProviderError> {
        wait_status(gce, loc, object, "RUNNING").await
    }
    async fn update_fields(&self, gce: &Gce, req: &UpdateRequest, loc: &Loc, object: &Value) -> Result<(), ProviderError> {
        let what = |w: &str| format!("update gcp.instance `{}`: {w}", loc.name);
        if req.changed.iter().any(|c| c == "machine_type") {
            let to = req_str(&req.inputs, "machine_type")?;
            if last(&object["machineType"]) != to {
                (req.log)(&req.addr, &format!("stopping {} to change its machine type to {to}", loc.name));
                gce.instance(loc, InstanceAction::Stop, &request_id()).await.map_err(|e| e.into_provider(&what("stop")))?;
                wait_status(gce, loc, object.clone(), "TERMINATED").await?;
                let zone = match &loc.scope {
                    Scope::Zone(z) => z.clone(),
                    _ => String::new(),
                };
                let set = gce.instance(loc, InstanceAction::SetMachineType(format!("zones/{zone}/machineTypes/{to}")), &request_id()).await;
                // Start it again even when the change was refused, so a bad type does not leave it stopped.
                gce.instance(loc, InstanceAction::Start, &request_id()).await.map_err(|e| e.into_provider(&what("start")))?;
                wait_status(gce, loc, object.clone(), "RUNNING").await?;
                set.map_err(|e| e.into_provider(&what("setMachineType")))?;
            }
        }
        if req.changed.iter().any(|c| c == "metadata" || c == "startup_script") {
            let current = gce.get(Coll::Instances, loc).await.map_err(|e| e.into_provider(&what("get")))?.unwrap_or_else(|| object.clone());
            let body = json!({"items": metadata_items(&req.inputs), "fingerprint": current["metadata"]["fingerprint"]});
            gce.instance(loc, InstanceAction::SetMetadata(body), &request_id()).await.map_err(|e| e.into_provider(&what("setMetadata")))?;
        }
        if req.changed.iter().any(|c| c == "attached_disks") {
            let want = attached(&req.inputs);
            let have: Vec<(String, String)> = object["disks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| d["boot"] != true)
                .map(|d| (d["source"].as_str().unwrap_or_default().to_string(), d["deviceName"].as_str().unwrap_or_default().to_string()))
                .collect();
            for (s, d) in &have {
                if !want.iter().any(|(s2, d2)| same_link(s, s2) && d == d2) {
                    gce.instance(loc, InstanceAction::DetachDisk(d.clone()), &request_id())
                        .await
                        .map_err(|e| e.into_provider(&what("detachDisk")))?;
                }
            }
            for (s, d) in &want {
                if !have.iter().any(|(s2, d2)| same_link(s, s2) && d == d2) {
                    let body = json!({"source": s, "deviceName": d, "type": "PERSISTENT", "autoDelete": false});
                    gce.instance(loc, InstanceAction::AttachDisk(body), &request_id())
                        .await
                        .map_err(|e| e.into_provider(&what("attachDisk")))?;
                }
            }
        }
        Ok(())
    }
}

/// Waits until the instance has `want` status; one that stops while we wait for it to run is an error.
async fn wait_status(gce: &Gce, loc: &Loc, object: Value, want: &'static str) -> Result<Value, ProviderError> {
    if object["status"] == want {
        return Ok(object);
    }
    super::wait_until(gce, &format!("instance {} to be {want}", loc.name), || async move {
        let Some(i) = gce.get(Coll::Instances, loc).await? else {
            return Err(crate::gce::GceError {
                http: Some(404),
                reason: "notFound".into(),
                message: format!("instance {} disappeared", loc.name),
            });
        };
        let status = i["status"].as_str().unwrap_or_default();
        if status == want {
            return Ok(Some(i));
        }
        if want == "RUNNING" && status == "TERMINATED" {
            return Err(crate::gce::GceError {
                http: Some(400),
                reason: "notRunning".into(),
                message: format!("instance {} stopped while starting", loc.name),
            });
        }
        Ok(None)
    })
    .await
}
