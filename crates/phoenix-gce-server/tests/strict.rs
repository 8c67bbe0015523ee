//! The test server rejects what the discovery document says the API rejects,
//! and behaves like Compute Engine where the provider depends on it.

use phoenix_gce_server::{Fault, GceServer, PROJECT};
use serde_json::{Value, json};

fn reason(v: &Value) -> &str {
    v["error"]["errors"][0]["reason"].as_str().unwrap_or_default()
}

fn net(gce: &GceServer, name: &str) -> Value {
    let (code, op) =
        gce.request("POST", &format!("projects/{PROJECT}/global/networks"), Some(&json!({"name": name, "autoCreateSubnetworks": false})));
    assert_eq!(code, 200, "{op}");
    gce.wait(&op)
}

#[test]
fn unknown_body_fields_wrong_types_and_enums_are_400_in_googles_envelope() {
    let gce = GceServer::start();
    let path = format!("projects/{PROJECT}/global/networks");
    let (code, v) = gce.request("POST", &path, Some(&json!({"name": "n1", "autoCreateSubnetworks": false, "labels": {"a": "b"}})));
    assert_eq!(code, 400, "networks have no labels in the discovery document: {v}");
    assert_eq!(v["error"]["code"], 400);
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert!(v["error"]["message"].as_str().unwrap().contains("Unknown name \"labels\" at 'resource'"), "{v}");

    let (code, v) = gce.request("POST", &path, Some(&json!({"name": "n1", "autoCreateSubnetworks": "yes"})));
    assert_eq!(code, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("resource.autoCreateSubnetworks"), "{v}");

    let (code, v) = gce.request("POST", &path, Some(&json!({"name": "n1", "routingConfig": {"routingMode": "SIDEWAYS"}})));
    assert_eq!(code, 400, "routingMode is an enum: {v}");

    // Nested: a disk's size is an int64 (a string in JSON); a typo inside initializeParams is unknown.
    let ipath = format!("projects/{PROJECT}/zones/us-central1-a/instances");
    let (code, v) = gce.request(
        "POST",
        &ipath,
        Some(&json!({"name": "vm", "machineType": "zones/us-central1-a/machineTypes/e2-small",
            "disks": [{"boot": true, "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12", "diskSizeGB": "10"}}]})),
    );
    assert_eq!(code, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("Unknown name \"diskSizeGB\" at 'resource.disks[0].initializeParams'"), "{v}");
    let (code, v) =
        gce.request("POST", &format!("projects/{PROJECT}/zones/us-central1-a/disks"), Some(&json!({"name": "d", "sizeGb": "ten"})));
    assert_eq!(code, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("TYPE_INT64"), "{v}");

    // Required by annotation: a network without a name.
    let (code, v) = gce.request("POST", &path, Some(&json!({"autoCreateSubnetworks": false})));
    assert_eq!(code, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("resource.name"), "{v}");
}

#[test]
fn unknown_query_parameters_bad_values_and_unknown_methods_are_rejected() {
    let gce = GceServer::start();
    let (code, v) = gce.request("GET", &format!("projects/{PROJECT}/global/networks?maxResult=5"), None);
    assert_eq!(code, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("Cannot bind query parameter"), "{v}");
    let (code, _) = gce.request("GET", &format!("projects/{PROJECT}/global/networks?maxResults=many"), None);
    assert_eq!(code, 400, "maxResults is a uint32");
    let (code, _) = gce.request("GET", &format!("projects/{PROJECT}/global/networks?returnPartialSuccess=maybe"), None);
    assert_eq!(code, 400, "not a parameter of networks.list");
    let (code, _) = gce.request("GET", &format!("projects/{PROJECT}/global/networks?$alt=json&prettyPrint=false"), None);
    assert_eq!(code, 200, "system parameters are accepted");
    let (code, v) = gce.request("PUT", &format!("projects/{PROJECT}/global/networks/n"), Some(&json!({})));
    assert_eq!(code, 404, "{v}");
    let (code, _) = gce.request("POST", &format!("projects/{PROJECT}/zones/z/instances/vm/detachDisk"), None);
    assert_eq!(code, 400, "deviceName is required by the discovery document");
    let (code, _) = gce.request(
        "POST",
        &format!("projects/{PROJECT}/global/networks?requestId=not-a-uuid"),
        Some(&json!({"name": "n", "autoCreateSubnetworks": false})),
    );
    assert_eq!(code, 400);
}

#[test]
fn operations_progress_request_ids_dedupe_and_conflicts_are_409() {
    let gce = GceServer::start();
    let path = format!("projects/{PROJECT}/global/networks?requestId=0b6f7d2e-6a7c-4c8e-9f0a-1b2c3d4e5f60");
    let body = json!({"name": "n1", "autoCreateSubnetworks": false});
    let (code, op) = gce.request("POST", &path, Some(&body));
    assert_eq!(code, 200);
    assert_eq!(op["status"], "PENDING");
    let id: u64 = op["id"].as_str().unwrap().parse().expect("ids are decimal uint64 strings");
    assert!(id > i64::MAX as u64);
    let (_, again) = gce.request("POST", &path, Some(&body));
    assert_eq!(again["name"], op["name"], "the same requestId returns the same operation");
    let op_path = op["selfLink"].as_str().unwrap().split_once("/compute/v1/").unwrap().1.to_string();
    assert_eq!(gce.get(&op_path)["status"], "RUNNING");
    assert_eq!(gce.get(&op_path)["status"], "DONE");
    let (code, v) = gce.request("POST", &format!("projects/{PROJECT}/global/networks"), Some(&body));
    assert_eq!((code, reason(&v)), (409, "alreadyExists"));
    let (code, v) = gce.request("GET", &format!("projects/{PROJECT}/global/networks/nope"), None);
    assert_eq!((code, reason(&v)), (404, "notFound"));
    assert_eq!(gce.list_all(&format!("projects/{PROJECT}/global/networks"), None).len(), 1, "deduped: one network");
}

#[test]
fn list_filters_on_labels_and_paginates() {
    let gce = GceServer::start();
    let path = format!("projects/{PROJECT}/zones/us-central1-a/disks");
    for i in 0..7 {
        let env = if i % 2 == 0 { "a" } else { "b" };
        let (code, op) = gce.request("POST", &path, Some(&json!({"name": format!("d{i}"), "sizeGb": "10", "labels": {"env": env}})));
        assert_eq!(code, 200, "{op}");
        gce.wait(&op);
    }
    let page = gce.get(&format!("{path}?maxResults=3"));
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert!(page["nextPageToken"].is_string());
    assert_eq!(gce.list_all(&path, None).len(), 7, "all pages");
    assert_eq!(gce.list_all(&path, Some("labels.env = \"a\"")).len(), 4);
    assert_eq!(gce.list_all(&format!("projects/{PROJECT}/aggregated/disks"), Some("labels.env = b")).len(), 3);
    let (code, _) = gce.request("GET", &format!("{path}?filter={}", phoenix_gce_server::encode("labels.env =")), None);
    assert_eq!(code, 400, "a malformed filter is an error, not an empty list");
    let (code, _) = gce.request("POST", &path, Some(&json!({"name": "bad", "labels": {"Env": "x"}})));
    assert_eq!(code, 400, "label keys are lowercase");
}

#[test]
fn in_use_objects_cannot_be_deleted_and_failed_operations_carry_an_error() {
    let gce = GceServer::start();
    net(&gce, "n1");
    let (_, op) = gce.request(
        "POST",
        &format!("projects/{PROJECT}/regions/us-central1/subnetworks"),
        Some(&json!({"name": "s1", "network": "global/networks/n1", "ipCidrRange": "10.0.0.0/24"})),
    );
    gce.wait(&op);
    let (code, v) = gce.request("DELETE", &format!("projects/{PROJECT}/global/networks/n1"), None);
    assert_eq!((code, reason(&v)), (400, "resourceInUseByAnotherResource"));
    let (_, op) = gce.request(
        "POST",
        &format!("projects/{PROJECT}/zones/us-central1-a/instances"),
        Some(&json!({"name": "vm", "machineType": "zones/us-central1-a/machineTypes/e2-small",
            "disks": [{"boot": true, "autoDelete": true, "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
            "networkInterfaces": [{"subnetwork": "regions/us-central1/subnetworks/s1"}]})),
    );
    assert_eq!(gce.wait(&op)["error"], Value::Null);
    // setMachineType on a running instance: the operation finishes with an error.
    let (code, op) = gce.request(
        "POST",
        &format!("projects/{PROJECT}/zones/us-central1-a/instances/vm/setMachineType"),
        Some(&json!({"machineType": "zones/us-central1-a/machineTypes/e2-medium"})),
    );
    assert_eq!(code, 200);
    let done = gce.wait(&op);
    assert_eq!(done["status"], "DONE");
    assert_eq!(done["error"]["errors"][0]["code"], "RESOURCE_NOT_READY", "{done}");
    assert_eq!(done["httpErrorStatusCode"], 400);
}

#[test]
fn faults_rate_limit_unavailable_and_slow_operations() {
    let gce = GceServer::start();
    gce.fail_next("networks.list", Fault::RateLimited, 1);
    gce.fail_next("", Fault::Unavailable, 1);
    let path = format!("projects/{PROJECT}/global/networks");
    let (code, v) = gce.request("GET", &path, None);
    assert_eq!((code, reason(&v)), (429, "rateLimitExceeded"));
    assert_eq!(v["error"]["errors"][0]["domain"], "usageLimits");
    let (code, _) = gce.request("GET", &path, None);
    assert_eq!(code, 503);
    assert_eq!(gce.request("GET", &path, None).0, 200);
    gce.set_operation_delay(std::time::Duration::from_millis(300));
    let (_, op) = gce.request("POST", &path, Some(&json!({"name": "slow", "autoCreateSubnetworks": false})));
    let op_path = op["selfLink"].as_str().unwrap().split_once("/compute/v1/").unwrap().1.to_string();
    let started = std::time::Instant::now();
    gce.wait(&op);
    assert!(started.elapsed() >= std::time::Duration::from_millis(250), "held RUNNING for the delay");
    assert_eq!(gce.get(&op_path)["status"], "DONE");
    assert_eq!(gce.calls()["compute.networks.list"], 3);
}

#[test]
fn api_version_is_accepted_up_to_the_documents_own() {
    let gce = GceServer::start();
    let path = format!("projects/{PROJECT}/global/networks");
    assert_eq!(gce.request("GET", &format!("{path}?$apiVersion=2026-09-01"), None).0, 200, "an older client's pinned version");
    assert_eq!(gce.request("GET", &format!("{path}?$apiVersion=2099-01-01"), None).0, 400, "a version the document does not know");
    assert_eq!(gce.request("GET", &format!("{path}?$apiVersion=latest"), None).0, 400);
}
