//! A real moto server per test, on a free loopback port, stopped on drop;
//! and an `AwsProvider` configured against it.
// Each test binary uses part of this module (and of what it re-exports).
#![allow(dead_code, unused_imports)]

use std::sync::Arc;

use phoenix_core::provider::*;
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
    /// A provider configured with `block` (e.g. `block()` plus limits or a proxy endpoint).
    fn provider_with(&self, block: Attrs) -> Arc<AwsProvider>;
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
        self.provider_with(self.block())
    }

    fn provider_with(&self, block: Attrs) -> Arc<AwsProvider> {
        let p = Arc::new(AwsProvider::new());
        p.configure(&ProviderContext {
            environment: "test".into(),
            instance: None,
            project_dir: self.dir.path().to_path_buf(),
            data_dir: self.dir.path().join(".phoenix"),
            config: block,
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

/// Independent clients of the application-tier services, like [`MotoExt::ec2`].
macro_rules! client {
    ($name:ident, $sdk:ident) => {
        pub fn $name(moto: &Moto) -> $sdk::Client {
            let conf = $sdk::Config::builder()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .region($sdk::config::Region::new(REGION))
                .endpoint_url(moto.endpoint())
                .credentials_provider($sdk::config::Credentials::new("testing", "testing", None, None, "test"))
                .build();
            $sdk::Client::from_conf(conf)
        }
    };
}
client!(elb, aws_sdk_elasticloadbalancingv2);
client!(autoscaling, aws_sdk_autoscaling);
client!(rds, aws_sdk_rds);
client!(route53, aws_sdk_route53);

/// A VPC with three subnets in three zones, made independently of the provider: (vpc, [subnets]).
pub async fn three_zone_network(ec2: &aws_sdk_ec2::Client) -> (String, Vec<String>) {
    let vpc = ec2.create_vpc().cidr_block("10.7.0.0/16").send().await.unwrap().vpc().unwrap().vpc_id().unwrap().to_string();
    let mut subnets = Vec::new();
    for (i, z) in ["a", "b", "c"].iter().enumerate() {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.7.{i}.0/24"))
            .availability_zone(format!("{REGION}{z}"))
            .send()
            .await
            .unwrap();
        subnets.push(s.subnet().unwrap().subnet_id().unwrap().to_string());
    }
    (vpc, subnets)
}

/// The observed inputs of one object through the provider's batched refresh.
pub async fn observe(p: &AwsProvider, ty: &str, name: &str, inputs: &Attrs, outputs: &Attrs) -> Option<Observed> {
    p.refresh(vec![refresh_item(ty, name, inputs, outputs)]).await.remove(0).unwrap()
}

pub use phoenix_testkit::requests::{adopt_req as adopt_request, attrs, create_req, delete_req, ownership, refresh_item, update_req};
