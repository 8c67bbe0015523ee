//! Every `gcp.*` kind through the kind conformance suite
//! (`phoenix_testkit::conformance`) against the Compute Engine test server,
//! with the lost-answer case through the fault proxy.

use std::sync::Arc;

use phoenix_core::provider::{Provider, ProviderContext};
use phoenix_gce_server::{GceServer, PROJECT};
use phoenix_provider_gcp::GcpProvider;
use phoenix_testkit::conformance::{self, Case, ENVIRONMENT, Harness};
use phoenix_testkit::fault_proxy::{FaultPlan, FaultProxy};
use serde_json::json;

fn configured(endpoint: String) -> Arc<dyn Provider> {
    let p = GcpProvider::new();
    let dir = std::env::temp_dir();
    p.configure(&ProviderContext {
        environment: ENVIRONMENT.into(),
        instance: None,
        project_dir: dir.clone(),
        data_dir: dir,
        config: serde_json::from_value(json!({
            "project": PROJECT, "region": "us-central1", "zone": "us-central1-a", "endpoint": endpoint,
        }))
        .unwrap(),
    })
    .unwrap();
    Arc::new(p)
}

async fn conform(case: Case) -> conformance::Report {
    let gce = GceServer::start();
    let proxy = Arc::new(FaultProxy::start(gce.port(), FaultPlan::none()));
    let harness = Harness { provider: configured(gce.endpoint()), proxied: Some((configured(proxy.endpoint()), proxy)) };
    let report = conformance::run(&harness, &case).await;
    assert!(report.has("lost create answer"), "{report:?}");
    report
}

fn in_network(case: Case) -> Case {
    case.need("net", "gcp.network", json!({"name": "c-net"}))
}

fn in_subnetwork(case: Case) -> Case {
    in_network(case).need("sub", "gcp.subnetwork", json!({"name": "c-sub", "network": "${net.self_link}", "ip_cidr_range": "10.8.0.0/24"}))
}

#[tokio::test(flavor = "multi_thread")]
async fn network() {
    conform(
        Case::new("gcp.network", json!({"name": "c-network"}))
            .update(json!({"name": "c-network", "routing_mode": "GLOBAL"}))
            .replace(json!({"name": "c-network", "routing_mode": "GLOBAL", "mtu": 1500}))
            .lost_answer_of("POST */global/networks"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn subnetwork() {
    conform(
        in_network(Case::new(
            "gcp.subnetwork",
            json!({"name": "c-subnetwork", "network": "${net.self_link}", "ip_cidr_range": "10.9.0.0/24"}),
        ))
        .replace(json!({"name": "c-subnetwork", "network": "${net.self_link}", "ip_cidr_range": "10.9.1.0/24"}))
        .lost_answer_of("POST */subnetworks"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn firewall() {
    let rule = |ports: &[&str], priority: u32, ranges: &[&str]| {
        json!({"name": "c-fw", "network": "${net.self_link}", "allow": [{"protocol": "tcp", "ports": ports}],
            "priority": priority, "source_ranges": ranges})
    };
    conform(
        in_network(Case::new("gcp.firewall", rule(&["22"], 1000, &["10.0.0.0/8"])))
            .update(rule(&["22", "2222"], 1000, &["10.0.0.0/8"]))
            .update(rule(&["22", "2222"], 900, &["10.0.0.0/8", "192.168.0.0/16"]))
            .replace(json!({"name": "c-fw", "network": "${net.self_link}", "allow": [{"protocol": "tcp", "ports": ["22", "2222"]}],
                "priority": 900, "source_ranges": ["10.0.0.0/8", "192.168.0.0/16"], "description": "ssh"}))
            .lost_answer_of("POST */global/firewalls"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn address() {
    conform(
        Case::new("gcp.address", json!({"name": "c-ip", "labels": {"team": "web"}}))
            .update(json!({"name": "c-ip", "labels": {"team": "api"}}))
            .replace(json!({"name": "c-ip2", "labels": {"team": "api"}}))
            .lost_answer_of("POST */addresses"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disk() {
    let report = conform(
        Case::new("gcp.disk", json!({"name": "c-disk", "size_gb": 10}))
            .update(json!({"name": "c-disk", "size_gb": 20}))
            .update(json!({"name": "c-disk", "size_gb": 20, "labels": {"role": "data"}}))
            .replace(json!({"name": "c-disk", "size_gb": 20, "labels": {"role": "data"}, "type": "pd-ssd"}))
            .lost_answer_of("POST */disks"),
    )
    .await;
    assert!(report.has("snapshot and restore"), "a disk is stateful: {report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot() {
    conform(
        Case::new("gcp.snapshot", json!({"name": "c-snap", "source_disk": "${src.self_link}"}))
            .need("src", "gcp.disk", json!({"name": "c-src", "size_gb": 10}))
            .update(json!({"name": "c-snap", "source_disk": "${src.self_link}", "labels": {"point": "p1"}}))
            .replace(json!({"name": "c-snap2", "source_disk": "${src.self_link}", "labels": {"point": "p1"}}))
            .lost_answer_of("POST */global/snapshots"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn image() {
    conform(
        Case::new("gcp.image", json!({"name": "c-img", "source_disk": "${src.self_link}", "family": "c"}))
            .need("src", "gcp.disk", json!({"name": "c-src", "size_gb": 10}))
            .update(json!({"name": "c-img", "source_disk": "${src.self_link}", "family": "c", "labels": {"v": "1"}}))
            .replace(json!({"name": "c-img", "source_disk": "${src.self_link}", "family": "d", "labels": {"v": "1"}}))
            .lost_answer_of("POST */global/images"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn instance() {
    let vm = |machine_type: &str, metadata: serde_json::Value, disks: serde_json::Value| {
        json!({"name": "c-vm", "machine_type": machine_type, "image": "debian-cloud/debian-12", "subnetwork": "${sub.self_link}",
            "metadata": metadata, "attached_disks": disks, "labels": {"role": "web"}, "network_tags": ["web"]})
    };
    let data = json!([{"source": "${data.self_link}", "device_name": "data"}]);
    conform(
        in_subnetwork(Case::new("gcp.instance", vm("e2-small", json!({"role": "web"}), data.clone())))
            .need("data", "gcp.disk", json!({"name": "c-data", "size_gb": 10}))
            .update(vm("e2-medium", json!({"role": "web"}), data.clone()))
            .update(vm("e2-medium", json!({"role": "api"}), json!([])))
            .replace({
                let mut v = vm("e2-medium", json!({"role": "api"}), json!([]));
                v["network_tags"] = json!(["web", "api"]);
                v
            })
            .lost_answer_of("POST */instances"),
    )
    .await;
}
