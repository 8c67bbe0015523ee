//! The provider under API faults, through the fault-injecting proxy in front
//! of moto: transient failures are survived, lost answers never duplicate an
//! object, permanent errors fail at once with AWS's message.

mod support;

use std::sync::Arc;

use aws_sdk_ec2::types::Filter;
use phoenix_core::provider::Provider;
use phoenix_provider_aws::AwsProvider;
use phoenix_testkit::fault_proxy::{ErrorRule, FaultPlan, FaultProxy};
use serde_json::json;
use support::*;

/// A provider talking to moto through `proxy`.
fn provider_via(moto: &Moto, proxy: &FaultProxy) -> Arc<AwsProvider> {
    let mut block = moto.block();
    block.insert("endpoint".into(), json!(proxy.endpoint()));
    moto.provider_with(block)
}

async fn tagged(ec2: &aws_sdk_ec2::Client, resource: &str) -> Vec<String> {
    let f = Filter::builder().name("tag:phoenix:resource").values(resource).build();
    ec2.describe_vpcs().filters(f).send().await.unwrap().vpcs().iter().filter_map(|v| v.vpc_id().map(str::to_string)).collect()
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_through() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.port, FaultPlan { seed: 11, throttle: 0.3, server_error: 0.2, ..FaultPlan::none() });
    let p = provider_via(&moto, &proxy);
    for i in 0..6 {
        let name = format!("net-{i}");
        p.create(create_req("aws.vpc", &name, json!({"cidr_block": "10.9.0.0/16", "enable_dns_hostnames": false}))).await.unwrap();
    }
    let counts = proxy.counts();
    assert!(counts.throttled + counts.server_errors > 0, "{counts:?}");
    let ec2 = moto.ec2().await;
    for i in 0..6 {
        assert_eq!(tagged(&ec2, &format!("net-{i}")).await.len(), 1, "{counts:?}");
    }
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_found_not_made_twice() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.port, FaultPlan::none().with_drop_first("CreateVpc"));
    let p = provider_via(&moto, &proxy);
    let out = p.create(create_req("aws.vpc", "net", json!({"cidr_block": "10.9.0.0/16", "enable_dns_hostnames": true}))).await.unwrap();
    let counts = proxy.counts();
    assert_eq!(counts.dropped_responses, 1, "{counts:?}");
    let ec2 = moto.ec2().await;
    let vpcs = tagged(&ec2, "net").await;
    assert_eq!(vpcs, vec![out["id"].as_str().unwrap().to_string()], "one VPC, the one returned: {counts:?}");
}

#[tokio::test]
async fn permission_denied_fails_at_once_with_the_aws_message() {
    let moto = Moto::start();
    let rule = ErrorRule::new("CreateVpc", 403, "UnauthorizedOperation", "You are not authorized to perform this operation.");
    let proxy = FaultProxy::start(moto.port, FaultPlan::none().with_rule(rule));
    let p = provider_via(&moto, &proxy);
    let e = p.create(create_req("aws.vpc", "net", json!({"cidr_block": "10.9.0.0/16"}))).await.unwrap_err();
    assert!(e.message.contains("UnauthorizedOperation") && e.message.contains("not authorized"), "{}", e.message);
    assert_eq!(e.class(), phoenix_core::provider::ErrorClass::Permanent);
    assert_eq!(proxy.counts().action("CreateVpc"), 1, "no retries of a permanent error: {:?}", proxy.counts());
}
