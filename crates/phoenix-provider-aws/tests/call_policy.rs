//! The call policy holds where requests leave: observed at the proxy in
//! front of moto, not inside Phoenix.

mod support;

use std::time::Duration;

use phoenix_core::provider::Provider;
use phoenix_testkit::fault_proxy::{FaultCounts, FaultPlan, FaultProxy};
use serde_json::json;
use support::*;

const CREATES: usize = 30;

/// Creates `CREATES` VPCs at once through a proxy, with these limits.
async fn create_many(max_concurrency: u64, requests_per_second: f64) -> FaultCounts {
    let moto = Moto::start();
    let proxy = FaultProxy::start(moto.port, FaultPlan::none());
    let mut block = moto.block();
    block.insert("endpoint".into(), json!(proxy.endpoint()));
    block.insert("max_concurrency".into(), json!(max_concurrency));
    block.insert("requests_per_second".into(), json!(requests_per_second));
    let p = moto.provider_with(block);
    let creates = (0..CREATES).map(|i| {
        let p = p.clone();
        async move {
            p.create(create_req("aws.vpc", &format!("net-{i}"), json!({"cidr_block": "10.9.0.0/16", "enable_dns_hostnames": false}))).await
        }
    });
    for made in futures::future::join_all(creates).await {
        made.unwrap();
    }
    let counts = proxy.counts();
    assert_eq!(counts.action("CreateVpc"), CREATES as u64, "{counts:?}");
    assert_eq!(p.api_calls(), counts.requests, "the provider counts what reached the wire");
    counts
}

#[tokio::test]
async fn never_more_than_two_in_flight_nor_five_a_second_after_the_first_burst() {
    let counts = create_many(2, 5.0).await;
    assert!(counts.peak_in_flight <= 2, "{} requests were in flight at once", counts.peak_in_flight);
    let mut at = counts.arrivals.clone();
    at.sort();
    // The first burst is `max_concurrency` requests; after it, one token every
    // 200 ms: six arrivals need a full second, so no 950 ms holds more than five.
    for (i, start) in at.iter().enumerate().skip(2) {
        let within = at[i..].iter().take_while(|t| **t < *start + Duration::from_millis(950)).count();
        assert!(within <= 5, "{within} requests within 950 ms from {start:?}: {at:?}");
    }
}

#[tokio::test]
async fn without_tight_limits_the_same_creates_overlap() {
    // The control: the proxy does see parallel requests when the policy allows them.
    let counts = create_many(32, 1000.0).await;
    assert!(counts.peak_in_flight > 2, "peak {}", counts.peak_in_flight);
}
