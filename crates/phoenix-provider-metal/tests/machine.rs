//! `metal.machine` against real peers: a sushy-tools Redfish emulator (fake
//! driver, basic auth) for the BMCs and an OpenSSH `sshd` standing in for the
//! machines' operating systems (each machine has its own root on it).
//! Claims across environments, power and boot through Redfish (polled: the
//! emulator applies power changes after 1-11 s), virtual media, wipe and
//! release, and a BMC that does not answer.
// The BMC password reaches the provider the way it does in production: from
// the variable `password_env` names. Setting a variable is `unsafe` since the
// 2024 edition; every test sets the same value, before any thread reads it.
#![allow(unsafe_code)]

mod peers;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use peers::{Sshd, Sushy, System, free_port};
use phoenix_core::provider::*;
use phoenix_core::state::Ownership;
use phoenix_core::{Attrs, ResourceAddr, Value};
use phoenix_provider_metal::MetalProvider;
use phoenix_provider_metal::schemas::MACHINE;
use serde_json::json;

const PASSWORD_ENV: &str = "PHOENIX_TEST_BMC_PASSWORD";
const NODE1: System = System { name: "node-1", uuid: "8f3c1e52-0b7a-4d2e-9a61-1c2b3d4e5f01" };
const NODE2: System = System { name: "node-2", uuid: "8f3c1e52-0b7a-4d2e-9a61-1c2b3d4e5f02" };

struct Lab {
    sshd: Sshd,
    sushy: Sushy,
    known_hosts: PathBuf,
    project: tempfile::TempDir,
}

fn lab() -> Lab {
    let sshd = Sshd::start();
    let sushy = Sushy::start(&[NODE1, NODE2]);
    unsafe { std::env::set_var(PASSWORD_ENV, &sushy.password) };
    let known_hosts = sshd.known_hosts();
    Lab { sshd, sushy, known_hosts, project: tempfile::tempdir().unwrap() }
}

impl Lab {
    fn root(&self, machine: &str) -> PathBuf {
        self.sshd.dir.path().join(machine)
    }

    fn machine(&self, sys: &System, bmc_url: &str) -> Value {
        json!({
            "address": "127.0.0.1", "port": self.sshd.port, "user": self.sshd.user, "key": self.sshd.key.display().to_string(),
            "labels": {"role": "web", "rack": "r1"},
            "root": self.root(sys.name).display().to_string(),
            "wipe": [format!("echo wiped > {}/{}.wiped", self.sshd.dir.path().display(), sys.name)],
            "power_off_on_release": true,
            "bmc": {"url": bmc_url, "system": sys.uuid, "username": self.sushy.username, "password_env": PASSWORD_ENV, "attempts": 3},
        })
    }

    fn provider(&self, environment: &str) -> MetalProvider {
        let url = self.sushy.url();
        self.provider_with(environment, json!({NODE1.name: self.machine(&NODE1, &url), NODE2.name: self.machine(&NODE2, &url)}))
    }

    fn provider_with(&self, environment: &str, machines: Value) -> MetalProvider {
        let p = MetalProvider::new();
        p.configure(&ProviderContext {
            environment: environment.into(),
            instance: None,
            project_dir: self.project.path().to_path_buf(),
            data_dir: self.project.path().join(".phoenix"),
            config: serde_json::from_value(json!({"known_hosts": self.known_hosts.display().to_string(), "machines": machines})).unwrap(),
        })
        .unwrap();
        p
    }

    fn power(&self, sys: &System) -> String {
        self.sushy.system_field(sys.uuid, "PowerState").unwrap_or_default()
    }
}

fn ownership(env: &str, name: &str) -> Ownership {
    Ownership {
        environment: env.into(),
        instance: None,
        resource: ResourceAddr::parse(name).unwrap(),
        lineage: "lineage-1".into(),
        expires_at: None,
    }
}

fn collecting() -> (LogSink, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    (Arc::new(move |_: &ResourceAddr, line: &str| l.lock().unwrap().push(line.to_string())), lines)
}

fn attrs(v: Value) -> Attrs {
    serde_json::from_value(v).unwrap()
}

async fn claim(p: &MetalProvider, env: &str, name: &str, inputs: &Value) -> Result<Attrs, ProviderError> {
    let (log, _) = collecting();
    p.create(CreateRequest {
        addr: ResourceAddr::parse(name).unwrap(),
        type_name: MACHINE.into(),
        inputs: attrs(inputs.clone()),
        ownership: ownership(env, name),
        idempotency_token: format!("{env}-{name}"),
        log,
    })
    .await
}

async fn release(p: &MetalProvider, env: &str, name: &str, inputs: &Value, outputs: &Attrs) -> Vec<String> {
    let (log, lines) = collecting();
    p.delete(DeleteRequest {
        addr: ResourceAddr::parse(name).unwrap(),
        type_name: MACHINE.into(),
        inputs: attrs(inputs.clone()),
        outputs: outputs.clone(),
        ownership: ownership(env, name),
        log,
    })
    .await
    .unwrap();
    lines.lock().unwrap().clone()
}

async fn refresh(p: &MetalProvider, name: &str, inputs: &Value, outputs: &Attrs) -> Option<Observed> {
    let item = RefreshItem {
        addr: ResourceAddr::parse(name).unwrap(),
        type_name: MACHINE.into(),
        inputs: attrs(inputs.clone()),
        outputs: outputs.clone(),
    };
    p.refresh(vec![item]).await.pop().unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_keep_environments_apart_and_release_wipes_and_powers_off() {
    let lab = lab();
    let (e1, e2, e3) = (lab.provider("prod"), lab.provider("staging"), lab.provider("qa"));
    assert_eq!(lab.power(&NODE1), "Off");

    // prod claims the first matching machine: powered on, re-imaged from PXE.
    let web = json!({"labels": {"role": "web"}, "boot_override": "Pxe", "wait_ssh_secs": 60});
    let out = claim(&e1, "prod", "web-box", &web).await.unwrap();
    assert_eq!(out["name"], json!("node-1"));
    assert_eq!(out["claim"], json!(ownership("prod", "web-box").key()), "the claim is recorded in state");
    assert_eq!(out["boot_target"], json!("Pxe"));
    assert_eq!(lab.power(&NODE1), "On", "the emulator shows it powered on");
    assert_eq!(lab.sushy.system_field(NODE1.uuid, "BootSourceOverrideTarget").as_deref(), Some("Pxe"));
    let claim_file = std::fs::read_to_string(lab.root("node-1").join(".phoenix-claim.json")).unwrap();
    assert!(claim_file.contains("prod/web-box@lineage-1"), "{claim_file}");
    assert!(!claim_file.contains(&lab.sushy.password), "no secret in the claim");
    assert!(!serde_json::to_string(&out).unwrap().contains(&lab.sushy.password), "no secret in state");

    // Another environment, with its own state, cannot take node-1: it gets node-2.
    let other = json!({"labels": {"role": "web"}});
    let out2 = claim(&e2, "staging", "web-box", &other).await.unwrap();
    assert_eq!(out2["name"], json!("node-2"));
    assert_eq!(out2["boot_target"], json!("Hdd"), "no override asked, none set");
    // A third finds the pool taken, and says by whom.
    let err = claim(&e3, "qa", "web-box", &other).await.unwrap_err();
    assert!(err.message.contains("no free machine matches labels {role=web}"), "{}", err.message);
    assert!(
        err.message.contains("node-1: claimed by prod/web-box") && err.message.contains("node-2: claimed by staging/web-box"),
        "{}",
        err.message
    );
    // No machine has these labels at all.
    let err = claim(&e3, "qa", "db", &json!({"labels": {"role": "db"}})).await.unwrap_err();
    assert!(err.message.contains("no machine in the inventory matches labels {role=db}"), "{}", err.message);

    // A retried create finds its own claim (idempotent), and adopt finds it by its owner.
    let again = claim(&e1, "prod", "web-box", &json!({"labels": {"role": "web"}})).await.unwrap();
    assert_eq!(again["name"], json!("node-1"));
    let adopted = e2
        .adopt(AdoptRequest {
            addr: ResourceAddr::parse("web-box").unwrap(),
            type_name: MACHINE.into(),
            inputs: attrs(other.clone()),
            ownership: ownership("staging", "web-box"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(adopted.outputs["name"], json!("node-2"));
    assert!(refresh(&e1, "web-box", &web, &out).await.is_some());

    // Release: wipe commands (inventory's, then the resource's), claim removed, powered off.
    std::fs::create_dir_all(lab.root("node-1").join("data")).unwrap();
    std::fs::write(lab.root("node-1").join("data/db"), "x").unwrap();
    let web_wipe = json!({"labels": {"role": "web"}, "boot_override": "Pxe", "wipe_commands": [format!("rm -rf {}/data", lab.root("node-1").display())]});
    let lines = release(&e1, "prod", "web-box", &web_wipe, &out).await;
    assert!(lines.iter().any(|l| l.contains("released machine node-1")), "{lines:?}");
    assert!(lab.sshd.dir.path().join("node-1.wiped").exists(), "the inventory's wipe ran");
    assert!(!lab.root("node-1").join("data").exists(), "the resource's wipe ran");
    assert!(!lab.root("node-1").exists(), "the claim is gone and the emptied root removed");
    assert_eq!(lab.power(&NODE1), "Off", "powered off on release");
    // Once released, it is gone for its old owner and free for others.
    assert!(refresh(&e1, "web-box", &web, &out).await.is_none());
    let out3 = claim(&e3, "qa", "web-box", &other).await.unwrap();
    assert_eq!(out3["name"], json!("node-1"));

    // Releasing twice, or a machine someone else holds now, touches nothing.
    let lines = release(&e1, "prod", "web-box", &web, &out).await;
    assert!(lines.iter().any(|l| l.contains("not claimed by this environment")), "{lines:?}");
    assert_eq!(lab.power(&NODE1), "On");
    release(&e3, "qa", "web-box", &other, &out3).await;
    release(&e2, "staging", "web-box", &other, &out2).await;
    assert_eq!((lab.power(&NODE1), lab.power(&NODE2)), ("Off".to_string(), "Off".to_string()));
}

/// Serves one small file on loopback for as long as the test runs.
fn serve_image() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming().take(8) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = b"phoenix test image\n";
            let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(body);
        }
    });
    (port, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reimage_from_virtual_media() {
    let lab = lab();
    let p = lab.provider("prod");
    let (port, _server) = serve_image();
    let image = format!("http://127.0.0.1:{port}/tiny.iso");
    let inputs = json!({"machine": "node-2", "image": image});
    let out = claim(&p, "prod", "box", &inputs).await.unwrap();
    assert_eq!(out["name"], json!("node-2"));
    assert_eq!(out["boot_target"], json!("Cd"), "boots from the inserted media");
    let (_, cd) = lab.sushy.get(&format!("/redfish/v1/Systems/{}/VirtualMedia/Cd", NODE2.uuid));
    assert!(cd.contains(&image) && cd.contains("\"Inserted\": true"), "{cd}");
    release(&p, "prod", "box", &inputs, &out).await;
    let (_, cd) = lab.sushy.get(&format!("/redfish/v1/Systems/{}/VirtualMedia/Cd", NODE2.uuid));
    assert!(cd.contains("\"Inserted\": false"), "ejected on release: {cd}");
    assert_eq!(lab.power(&NODE2), "Off");
}

#[tokio::test]
async fn an_unreachable_bmc_is_retried_then_reported_and_nothing_is_claimed() {
    let lab = lab();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let p = lab.provider_with("prod", json!({"node-1": lab.machine(&NODE1, &dead)}));
    let started = std::time::Instant::now();
    let err = claim(&p, "prod", "box", &json!({"labels": {"role": "web"}})).await.unwrap_err();
    assert!(err.message.contains(&format!("the BMC at {dead} is unreachable after 3 attempts")), "{}", err.message);
    assert!(err.message.contains("onnect"), "the cause is shown: {}", err.message);
    assert!(started.elapsed() >= std::time::Duration::from_millis(1400), "it backed off between attempts");
    assert!(!lab.root("node-1").join(".phoenix-claim.json").exists());
}

#[tokio::test]
async fn a_wrong_bmc_password_is_refused_and_never_shown() {
    let lab = lab();
    let p = MetalProvider::new();
    let mut m = lab.machine(&NODE1, &lab.sushy.url());
    m["bmc"]["password_env"] = json!("PHOENIX_TEST_UNSET_PASSWORD_VARIABLE");
    p.configure(&ProviderContext {
        environment: "prod".into(),
        instance: None,
        project_dir: lab.project.path().to_path_buf(),
        data_dir: lab.project.path().join(".phoenix"),
        config: serde_json::from_value(json!({"known_hosts": lab.known_hosts.display().to_string(), "machines": {"node-1": m}})).unwrap(),
    })
    .unwrap();
    let err = claim(&p, "prod", "box", &json!({})).await.unwrap_err();
    assert!(err.message.contains("`PHOENIX_TEST_UNSET_PASSWORD_VARIABLE`, which is not set"), "{}", err.message);

    let mut m = lab.machine(&NODE1, &lab.sushy.url());
    m["bmc"]["password_env"] = json!("HOME");
    let p = lab.provider_with("prod", json!({"node-1": m}));
    let err = claim(&p, "prod", "box", &json!({})).await.unwrap_err();
    assert!(err.message.contains("401") && err.message.contains("password variable"), "{}", err.message);
    assert!(!err.message.contains(&std::env::var("HOME").unwrap()), "the password is not echoed: {}", err.message);
}
