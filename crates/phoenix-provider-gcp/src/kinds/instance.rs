//! `gcp.instance`: a Compute Engine VM with its boot disk, network interface,
//! attached disks, metadata (a startup script among it) and service account.
//!
//! In place: the machine type (stop → setMachineType → start), labels
//! (setLabels), metadata and the startup script (setMetadata), attached
//! disks (attachDisk/detachDisk). Everything GCE fixes at creation (image,
//! boot disk, network, service account, network tags) replaces it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Secret, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::gce::{Coll, Gce, InstanceAction, Loc, Scope, request_id};
use crate::gce_kind::{self as gk, GceKind, ObjectIds, UserLabels};

pub struct Instance;

const STARTUP_KEY: &str = "startup-script";
const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    /// the object's name (RFC 1035: lowercase letter, then [-a-z0-9], at most 63)
    #[schemars(extend("force_new" = true, "format" = "gce-name"))]
    pub name: String,
    /// labels (Phoenix adds its phoenix-* ownership labels); changed in place
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<UserLabels>,
    /// default: the provider's zone
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true, "format" = "gcp-zone"))]
    pub zone: Option<String>,
    /// e.g. e2-small; changed in place (stop, setMachineType, start)
    #[schemars(extend("format" = "gce-machine-type"))]
    pub machine_type: String,
    /// boot image: a self_link, or project/family such as debian-cloud/debian-12
    // Required in a definition; unknown (`None`) when imported or listed for `gc`:
    // an instance does not say which image (or family) its boot disk was made from.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(required, extend("force_new" = true))]
    pub image: Option<String>,
    /// boot disk size in GB (default: the image's)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub boot_disk_size_gb: Option<i64>,
    /// pd-standard, pd-balanced, pd-ssd …
    #[serde(default = "pd_balanced", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub boot_disk_type: Option<String>,
    /// the subnetwork's self_link (or set `network`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub subnetwork: Option<String>,
    /// the network's self_link, for auto-mode networks
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub network: Option<String>,
    /// give it an ephemeral external IPv4 address
    #[serde(default)]
    #[schemars(extend("force_new" = true))]
    pub external_ip: bool,
    /// a reserved external address (gcp.address's `address`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub nat_ip: Option<String>,
    /// extra disks: [{ source = "${data.self_link}", device_name = "data" }]; attached and detached in place
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<Value>>")]
    pub attached_disks: Option<Vec<AttachedDisk>>,
    /// metadata items; changed in place
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// the startup-script metadata item; changed in place
    // Bootstrap scripts often carry secrets: kept out of state and plans, and never read back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_script: Option<Secret<String>>,
    /// the service account email it runs as
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub service_account: Option<String>,
    /// OAuth scopes of the service account
    #[serde(default = "default_scopes")]
    #[schemars(extend("force_new" = true))]
    pub scopes: Vec<String>,
    /// network tags (firewall targets)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub network_tags: Option<Vec<String>>,
}

/// `{ source = "${data.self_link}", device_name = "data" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachedDisk {
    pub source: String,
    /// Default: the disk's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

fn pd_balanced() -> Option<String> {
    Some(super::disk::pd_balanced())
}

fn default_scopes() -> Vec<String> {
    vec![DEFAULT_SCOPE.to_string()]
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct InstanceOutputs {
    #[serde(flatten)]
    pub ids: ObjectIds,
    /// the primary internal IPv4 address
    #[schemars(extend("stable" = true))]
    pub internal_ip: String,
    /// the external IPv4 address, or ""
    pub external_ip: String,
    /// the boot disk's self_link
    #[schemars(extend("stable" = true))]
    pub boot_disk: String,
    /// RUNNING, TERMINATED …
    pub status: String,
}

/// The metadata items Phoenix sets: the `metadata` map plus the startup script (needed in clear).
fn metadata_items(spec: &InstanceSpec) -> Result<Vec<Value>, ProviderError> {
    let mut items: Vec<Value> = spec.metadata.iter().flatten().map(|(k, v)| json!({"key": k, "value": v})).collect();
    if let Some(s) = &spec.startup_script {
        items.push(json!({"key": STARTUP_KEY, "value": s.clear()?}));
    }
    Ok(items)
}

/// `attached_disks` as (source, device name).
fn attached(spec: &InstanceSpec) -> Vec<(String, String)> {
    spec.attached_disks
        .iter()
        .flatten()
        .map(|d| (d.source.clone(), d.device_name.clone().unwrap_or_else(|| gk::last(&json!(d.source)))))
        .collect()
}

/// The disks attached besides the boot disk, as (source, device name).
fn attached_now(o: &Value) -> Vec<(String, String)> {
    o["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["boot"] != true)
        .map(|d| (gk::text(&d["source"]), gk::text(&d["deviceName"])))
        .collect()
}

fn same_disk((s, d): &(String, String), (s2, d2): &(String, String)) -> bool {
    gk::same_link(s, s2) && d == d2
}

fn nic(o: &Value) -> &Value {
    &o["networkInterfaces"][0]
}

fn some_text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

#[async_trait]
impl GceKind for Instance {
    const COLL: Coll = Coll::Instances;

    fn name(spec: &InstanceSpec) -> &str {
        &spec.name
    }
    fn user_labels(spec: &InstanceSpec) -> Option<&UserLabels> {
        spec.labels.as_ref()
    }
    fn ids(outputs: &InstanceOutputs) -> &ObjectIds {
        &outputs.ids
    }
    fn scope(gce: &Gce, spec: &InstanceSpec) -> Result<Scope, ProviderError> {
        Ok(Scope::Zone(gce.zone_or_default(spec.zone.as_deref())?))
    }
    async fn body(gce: &Gce, spec: &InstanceSpec) -> Result<Map<String, Value>, ProviderError> {
        let zone = gce.zone_or_default(spec.zone.as_deref())?;
        let mut b = Map::new();
        b.insert("machineType".into(), json!(format!("zones/{zone}/machineTypes/{}", spec.machine_type)));
        let mut init = json!({
            "sourceImage": gk::image_ref(spec.image.as_deref().ok_or_else(|| ProviderError::invalid_input("`image` is required"))?),
            "diskType": format!("zones/{zone}/diskTypes/{}", spec.boot_disk_type.as_deref().unwrap_or("pd-balanced")),
        });
        if let Some(s) = spec.boot_disk_size_gb {
            init["diskSizeGb"] = json!(s.to_string());
        }
        let mut disks = vec![json!({"boot": true, "autoDelete": true, "type": "PERSISTENT", "initializeParams": init})];
        for (source, device) in attached(spec) {
            disks.push(json!({"boot": false, "autoDelete": false, "type": "PERSISTENT", "source": source, "deviceName": device}));
        }
        b.insert("disks".into(), json!(disks));
        let mut nic = Map::new();
        if spec.subnetwork.is_none() && spec.network.is_none() {
            return Err(ProviderError::permanent("set `subnetwork` (or `network` for an auto-mode network)"));
        }
        if let Some(s) = &spec.subnetwork {
            nic.insert("subnetwork".into(), json!(s));
        }
        if let Some(n) = &spec.network {
            nic.insert("network".into(), json!(n));
        }
        if let Some(ip) = &spec.nat_ip {
            nic.insert("accessConfigs".into(), json!([{"type": "ONE_TO_ONE_NAT", "name": "External NAT", "natIP": ip}]));
        } else if spec.external_ip {
            nic.insert("accessConfigs".into(), json!([{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}]));
        }
        b.insert("networkInterfaces".into(), json!([nic]));
        let items = metadata_items(spec)?;
        if !items.is_empty() {
            b.insert("metadata".into(), json!({ "items": items }));
        }
        if let Some(sa) = &spec.service_account {
            b.insert("serviceAccounts".into(), json!([{"email": sa, "scopes": spec.scopes}]));
        }
        if let Some(tags) = spec.network_tags.as_ref().filter(|t| !t.is_empty()) {
            b.insert("tags".into(), json!({ "items": tags }));
        }
        Ok(b)
    }
    fn observe(o: &Value, prior: Option<&InstanceSpec>) -> Observed<Self> {
        let seen_subnetwork = some_text(&nic(o)["subnetwork"]);
        let (subnetwork, network) = match prior {
            Some(p) => (
                p.subnetwork.as_deref().map(|s| gk::link_as_spelled(&nic(o)["subnetwork"], Some(s))),
                p.network.as_deref().map(|n| gk::link_as_spelled(&nic(o)["network"], Some(n))),
            ),
            // Imported: the subnetwork names the network too.
            None => (seen_subnetwork.clone(), seen_subnetwork.is_none().then(|| some_text(&nic(o)["network"])).flatten()),
        };
        let seen_disks = attached_now(o);
        let attached_disks = match prior {
            Some(p) => p.attached_disks.as_ref().map(|want| {
                let same = seen_disks.len() == want.len() && attached(p).iter().all(|w| seen_disks.iter().any(|s| same_disk(w, s)));
                if same {
                    want.clone()
                } else {
                    seen_disks.iter().map(|(s, d)| AttachedDisk { source: s.clone(), device_name: Some(d.clone()) }).collect()
                }
            }),
            None => Some(seen_disks.iter().map(|(s, d)| AttachedDisk { source: s.clone(), device_name: Some(d.clone()) }).collect()),
        };
        let metadata = o["metadata"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["key"] != STARTUP_KEY)
            .map(|i| (gk::text(&i["key"]), i["value"].as_str().map_or_else(|| i["value"].to_string(), str::to_string)))
            .collect();
        let account = &o["serviceAccounts"][0];
        let spec = InstanceSpec {
            name: gk::text(&o["name"]),
            labels: gk::observed_labels(o),
            zone: Some(gk::last(&o["zone"])),
            machine_type: gk::last(&o["machineType"]),
            // The image, boot disk and scopes are fixed at creation (force-new) and not re-read.
            image: prior.and_then(|p| p.image.clone()),
            boot_disk_size_gb: prior.and_then(|p| p.boot_disk_size_gb),
            boot_disk_type: prior.and_then(|p| p.boot_disk_type.clone()),
            subnetwork,
            network,
            external_ip: prior.map_or_else(|| !nic(o)["accessConfigs"][0].is_null(), |p| p.external_ip),
            nat_ip: prior.and_then(|p| p.nat_ip.clone()),
            attached_disks,
            metadata: Some(metadata),
            startup_script: None,
            service_account: some_text(&account["email"]),
            scopes: prior.map_or_else(
                || account["scopes"].as_array().map_or_else(default_scopes, |s| s.iter().filter_map(some_text).collect()),
                |p| p.scopes.clone(),
            ),
            network_tags: Some(o["tags"]["items"].as_array().into_iter().flatten().filter_map(some_text).collect()),
        };
        let outputs = InstanceOutputs {
            ids: ObjectIds::of(o),
            internal_ip: gk::text(&nic(o)["networkIP"]),
            external_ip: gk::text(&nic(o)["accessConfigs"][0]["natIP"]),
            boot_disk: o["disks"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|d| d["boot"] == true)
                .map(|d| gk::text(&d["source"]))
                .unwrap_or_default(),
            status: gk::text(&o["status"]),
        };
        Observed { spec, outputs }
    }
    async fn settle(gce: &Gce, loc: &Loc, object: Value) -> Result<Value, ProviderError> {
        wait_status(gce, loc, object, "RUNNING").await
    }
    async fn update_fields(gce: &Gce, req: &Update<'_, Self>, loc: &Loc, object: &Value) -> Result<(), ProviderError> {
        let what = |w: &str| format!("update gcp.instance `{}`: {w}", loc.name);
        if req.changed("machine_type") {
            let to = &req.spec.machine_type;
            if gk::last(&object["machineType"]) != *to {
                (req.log)(req.addr, &format!("stopping {} to change its machine type to {to}", loc.name));
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
        if req.changed("metadata") || req.changed("startup_script") {
            let current = gce.get(Coll::Instances, loc).await.map_err(|e| e.into_provider(&what("get")))?.unwrap_or_else(|| object.clone());
            let body = json!({"items": metadata_items(req.spec)?, "fingerprint": current["metadata"]["fingerprint"]});
            gce.instance(loc, InstanceAction::SetMetadata(body), &request_id()).await.map_err(|e| e.into_provider(&what("setMetadata")))?;
        }
        if req.changed("attached_disks") {
            let want = attached(req.spec);
            let have = attached_now(object);
            for h in &have {
                if !want.iter().any(|w| same_disk(h, w)) {
                    gce.instance(loc, InstanceAction::DetachDisk(h.1.clone()), &request_id())
                        .await
                        .map_err(|e| e.into_provider(&what("detachDisk")))?;
                }
            }
            for (s, d) in &want {
                if !have.iter().any(|h| same_disk(&(s.clone(), d.clone()), h)) {
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

#[async_trait]
impl Kind for Instance {
    const TYPE: &'static str = "gcp.instance";
    const DESCRIPTION: &'static str = "A Compute Engine VM instance";
    const FORMATS: &'static [(&'static str, Validator)] = gk::FORMATS;
    type Client = Gce;
    type Spec = InstanceSpec;
    type Outputs = InstanceOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }
    async fn read(&self, gce: &Gce, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        gk::read(gce, items).await
    }
    async fn import(&self, gce: &Gce, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        gk::import(gce, id).await
    }
    async fn find(&self, gce: &Gce, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        gk::find(gce, req.spec, req.ownership).await
    }
    async fn create(&self, gce: &Gce, req: Create<'_, Self>) -> Result<InstanceOutputs, ProviderError> {
        gk::create(gce, req).await
    }
    async fn update(&self, gce: &Gce, req: Update<'_, Self>) -> Result<InstanceOutputs, ProviderError> {
        gk::update(gce, req).await
    }
    async fn delete(&self, gce: &Gce, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        gk::delete(gce, req).await
    }
    async fn list_owned(&self, gce: &Gce) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        gk::list_owned(gce).await
    }
}

/// Waits until the instance has `want` status; one that stops while we wait for it to run is an error.
async fn wait_status(gce: &Gce, loc: &Loc, object: Value, want: &'static str) -> Result<Value, ProviderError> {
    if object["status"] == want {
        return Ok(object);
    }
    gk::wait_until(gce, &format!("instance {} to be {want}", loc.name), || async move {
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
