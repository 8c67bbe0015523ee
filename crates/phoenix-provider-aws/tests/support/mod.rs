//! A real moto server per test, on a free loopback port, stopped on drop;
//! and an `AwsProvider` configured against it.
#![allow(dead_code)]

use std::sync::Arc;

use phoenix_core::ResourceAddr;
use phoenix_core::provider::*;
use phoenix_core::state::Ownership;
use phoenix_core::value::Attrs;
use phoenix_provider_aws::AwsProvider;

pub const REGION: &str = "eu-west-1";

pub use phoenix_testkit::Moto;

/// What the AWS tests need of a moto beyond starting it.
#[allow(async_fn_in_trait)]
pub trait MotoExt {
    /// The `[providers.aws]` block pointing at this moto.
    fn block(&self) -> Attrs;
    /// A configured provider.
    fn provider(&self) -> Arc<AwsProvider>;
    /// An independent SDK client for checking what exists (never the provider's own).
    async fn ec2(&self) -> aws_sdk_ec2::Client;
}

impl MotoExt for Moto {
    fn block(&self) -> Attrs {
        serde_json::from_value(serde_json::json!({
            "region": REGION,
            "endpoint": self.endpoint(),
            "profile": "moto",
            "shared_credentials_files": [self.credentials_file().to_str().unwrap()],
        }))
        .unwrap()
    }

    fn provider(&self) -> Arc<AwsProvider> {
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

    async fn ec2(&self) -> aws_sdk_ec2::Client {
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

pub fn ownership(name: &str) -> Ownership {
    Ownership {
        environment: "test".into(),
        instance: None,
        resource: ResourceAddr::parse(name).unwrap(),
        lineage: "lineage-test".into(),
        expires_at: None,
    }
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

pub fn update_req(
    ty: &str,
    name: &str,
    prior_inputs: &Attrs,
    prior_outputs: &Attrs,
    inputs: serde_json::Value,
    changed: &[&str],
) -> UpdateRequest {
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
