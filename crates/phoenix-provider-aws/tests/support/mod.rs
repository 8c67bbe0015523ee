//! A real moto server per test, on a free loopback port, stopped on drop;
//! and an `AwsProvider` configured against it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use phoenix_core::ResourceAddr;
use phoenix_core::provider::*;
use phoenix_core::state::Ownership;
use phoenix_core::value::Attrs;
use phoenix_provider_aws::AwsProvider;

pub const REGION: &str = "eu-west-1";

pub struct Moto {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Moto {
    /// Starts `moto_server` (installed by `tests/run`) on 127.0.0.1.
    pub fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server is installed (tests/run installs it: pip install 'moto[server]')");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::write(dir.path().join("credentials"), "[moto]\naws_access_key_id = testing\naws_secret_access_key = testing\n").unwrap();
        Moto { child, port, dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `[providers.aws]` block pointing at this moto.
    pub fn block(&self) -> Attrs {
        serde_json::from_value(serde_json::json!({
            "region": REGION,
            "endpoint": self.endpoint(),
            "profile": "moto",
            "shared_credentials_files": [self.dir.path().join("credentials").to_str().unwrap()],
        }))
        .unwrap()
    }

    /// A configured provider.
    pub fn provider(&self) -> Arc<AwsProvider> {
        let p = Arc::new(AwsProvider::new());
        p.configure(&ProviderContext {
            environment: "test".into(),
            instance: None,
            project_dir: self.dir.path().to_path_buf(),
            data_dir: self.dir.path().join(".phoenix"),
            config: self.block(),
        })
        .unwrap();
        p
    }

    /// An independent SDK client for checking what exists (never the provider's own).
    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        let creds = aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test");
        let conf = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(creds)
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn ownership(name: &str) -> Ownership {
    Ownership { environment: "test".into(), instance: None, resource: ResourceAddr::parse(name).unwrap(), lineage: "lineage-test".into() }
}

pub fn attrs(v: serde_json::Value) -> Attrs {
    serde_json::from_value(v).unwrap()
}

pub fn create_req(ty: &str, name: &str, inputs: serde_json::Value) -> CreateRequest {
    CreateRequest {
        addr: ResourceAddr::parse(name).unwrap(),
        type_name: ty.into(),
        inputs: attrs(inputs),
        ownership: ownership(name),
        idempotency_token: format!("token-{name}-{}", std::process::id()),
        log: Arc::new(|_, _| {}),
    }
}

pub fn delete_req(ty: &str, name: &str, inputs: &Attrs, outputs: &Attrs) -> DeleteRequest {
    DeleteRequest {
        addr: ResourceAddr::parse(name).unwrap(),
        type_name: ty.into(),
        inputs: inputs.clone(),
        outputs: outputs.clone(),
        ownership: ownership(name),
        log: Arc::new(|_, _| {}),
    }
}

pub fn update_req(ty: &str, name: &str, prior_inputs: &Attrs, prior_outputs: &Attrs, inputs: serde_json::Value, changed: &[&str]) -> UpdateRequest {
    UpdateRequest {
        addr: ResourceAddr::parse(name).unwrap(),
        type_name: ty.into(),
        prior_inputs: prior_inputs.clone(),
        prior_outputs: prior_outputs.clone(),
        inputs: attrs(inputs),
        changed: changed.iter().map(|s| s.to_string()).collect(),
        ownership: ownership(name),
        log: Arc::new(|_, _| {}),
    }
}

pub fn refresh_item(ty: &str, name: &str, inputs: &Attrs, outputs: &Attrs) -> RefreshItem {
    RefreshItem { addr: ResourceAddr::parse(name).unwrap(), type_name: ty.into(), inputs: inputs.clone(), outputs: outputs.clone() }
}
