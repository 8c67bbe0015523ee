//! Every `metal.*` kind through the kind conformance suite
//! (`phoenix_testkit::conformance`): files, services, commands and checks on
//! this machine (the local transport, in a temporary root), and machines
//! claimed from an inventory of a sushy-tools Redfish emulator and an sshd.
#![allow(unsafe_code)] // the BMC password is given the production way, through a variable (see machine.rs)

mod peers;

use std::sync::Arc;

use peers::{Sshd, Sushy, System};
use phoenix_core::provider::{Provider, ProviderContext};
use phoenix_provider_metal::MetalProvider;
use phoenix_testkit::conformance::{self, Case, ENVIRONMENT, Harness};
use phoenix_testkit::free_port;
use serde_json::{Value, json};

fn local(dir: &tempfile::TempDir) -> Harness {
    harness(dir, json!({}))
}

fn harness(dir: &tempfile::TempDir, config: Value) -> Harness {
    let p = MetalProvider::new();
    p.configure(&ProviderContext {
        environment: ENVIRONMENT.into(),
        instance: None,
        project_dir: dir.path().to_path_buf(),
        data_dir: dir.path().join(".phoenix"),
        config: serde_json::from_value(config).unwrap(),
    })
    .unwrap();
    Harness { provider: Arc::new(p), proxied: None }
}

#[tokio::test(flavor = "multi_thread")]
async fn file() {
    let dir = tempfile::tempdir().unwrap();
    let case = Case::new("metal.file", json!({"path": "conf/app.conf", "content": "one\n"}))
        .update(json!({"path": "conf/app.conf", "content": "two\n"}))
        .update(json!({"path": "conf/app.conf", "content": "two\n", "mode": "0600"}))
        .replace(json!({"path": "conf/other.conf", "content": "two\n"}))
        .not_listable();
    let report = conformance::run(&local(&dir), &case).await;
    assert!(report.has("killed after create"), "{report:?}");
    assert!(!dir.path().join(".phoenix/work/conf/other.conf").exists(), "deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn service() {
    let dir = tempfile::tempdir().unwrap();
    let case = Case::new("metal.service", json!({"command": "exec sleep 600"}))
        .update(json!({"command": "exec sleep 601"}))
        .update(json!({"command": "exec sleep 601", "stop_timeout_secs": 3}))
        .not_listable();
    let report = conformance::run(&local(&dir), &case).await;
    assert!(report.has("killed after create"), "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec() {
    let dir = tempfile::tempdir().unwrap();
    let case = Case::new("metal.exec", json!({"command": "echo one >> runs.txt", "destroy_command": "echo gone >> runs.txt"}))
        .update(json!({"command": "echo one >> runs.txt", "update_command": "echo two >> runs.txt", "destroy_command": "echo gone >> runs.txt"}))
        .replace(json!({"command": "echo one >> runs.txt", "update_command": "echo two >> runs.txt", "destroy_command": "echo gone >> runs.txt", "triggers": {"release": 2}}))
        .not_listable();
    conformance::run(&local(&dir), &case).await;
    let runs = std::fs::read_to_string(dir.path().join(".phoenix/work/runs.txt")).unwrap();
    assert!(runs.starts_with("one\ntwo\n") && runs.contains("gone\n"), "the commands ran: {runs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_check() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let case = Case::new("metal.http_check", json!({"url": url, "contains": "ready"}))
        .need("page", "metal.file", json!({"path": "site/index.html", "content": "ready\n"}))
        .need("web", "metal.service", json!({"command": format!("exec python3 -m http.server {port} --bind 127.0.0.1 --directory site")}))
        .update(json!({"url": url, "contains": "ready", "timeout_secs": 30}))
        .not_listable();
    conformance::run(&local(&dir), &case).await;
}

const PASSWORD_ENV: &str = "PHOENIX_TEST_BMC_PASSWORD";
const NODE1: System = System { name: "node-1", uuid: "8f3c1e52-0b7a-4d2e-9a61-1c2b3d4e5f01" };
const NODE2: System = System { name: "node-2", uuid: "8f3c1e52-0b7a-4d2e-9a61-1c2b3d4e5f02" };

#[tokio::test(flavor = "multi_thread")]
async fn machine() {
    let sshd = Sshd::start();
    let sushy = Sushy::start(&[NODE1, NODE2]);
    unsafe { std::env::set_var(PASSWORD_ENV, &sushy.password) };
    let machine = |sys: &System| {
        json!({
            "address": "127.0.0.1", "port": sshd.port, "user": sshd.user, "key": sshd.key.display().to_string(),
            "labels": {"role": "web"},
            "root": sshd.dir.path().join(sys.name).display().to_string(),
            "bmc": {"url": sushy.url(), "system": sys.uuid, "username": sushy.username, "password_env": PASSWORD_ENV, "attempts": 3},
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "known_hosts": sshd.known_hosts().display().to_string(),
        "machines": {NODE1.name: machine(&NODE1), NODE2.name: machine(&NODE2)},
    });
    let case = Case::new("metal.machine", json!({"machine": "node-1", "boot_override": "Pxe", "wait_ssh_secs": 60}))
        .update(json!({"machine": "node-1", "boot_override": "Pxe", "wait_ssh_secs": 90}))
        .replace(json!({"machine": "node-2", "boot_override": "Pxe", "wait_ssh_secs": 90}))
        .not_listable();
    conformance::run(&harness(&dir, config), &case).await;
}
