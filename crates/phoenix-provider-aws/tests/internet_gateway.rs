//! `aws.internet_gateway` against moto through the real SDK; every effect is
//! checked with an independent SDK client.

mod support;

use aws_sdk_ec2::types::Tag;
use phoenix_core::provider::{AdoptRequest, Provider};
use serde_json::json;
use support::*;

fn tag(tags: &[Tag], k: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string)
}

#[tokio::test]
async fn gateway_attaches_refreshes_in_one_call_shows_detach_drift_adopts_and_deletes() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;

    // Two VPCs, a gateway in each.
    let mut made = Vec::new();
    for i in 0..2 {
        let vpc = p.create(create_req("aws.vpc", &format!("net{i}"), json!({"cidr_block": format!("10.{i}.0.0/16")}))).await.unwrap();
        let vpc_id = vpc["id"].as_str().unwrap().to_string();
        let inputs = json!({"vpc_id": vpc_id, "tags": {"role": "edge"}});
        let before = p.api_calls();
        let out = p.create(create_req("aws.internet_gateway", &format!("igw{i}"), inputs.clone())).await.unwrap();
        assert_eq!(p.api_calls() - before, 2, "CreateInternetGateway and AttachInternetGateway");
        made.push((vpc_id, vpc, attrs(inputs), out));
    }

    // Independently: attached to its VPC and tagged.
    for (i, (vpc_id, _, _, out)) in made.iter().enumerate() {
        let g = ec2.describe_internet_gateways().internet_gateway_ids(out["id"].as_str().unwrap()).send().await.unwrap();
        let g = &g.internet_gateways()[0];
        assert_eq!(g.attachments().len(), 1);
        assert_eq!(g.attachments()[0].vpc_id(), Some(vpc_id.as_str()));
        assert_eq!(tag(g.tags(), "phoenix:resource"), Some(format!("igw{i}")));
        assert_eq!(tag(g.tags(), "phoenix:lineage").as_deref(), Some("lineage-test"));
        assert_eq!(tag(g.tags(), "Name"), Some(format!("test-igw{i}")));
        assert_eq!(tag(g.tags(), "role").as_deref(), Some("edge"));
    }

    // Both refreshed in one call, without drift.
    let items: Vec<_> =
        made.iter().enumerate().map(|(i, (_, _, inp, out))| refresh_item("aws.internet_gateway", &format!("igw{i}"), inp, out)).collect();
    let before = p.api_calls();
    let seen = p.refresh(items.clone()).await;
    assert!(p.api_calls() - before <= 1, "{} calls", p.api_calls() - before);
    for (i, r) in seen.iter().enumerate() {
        let obs = r.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(obs.inputs, made[i].2, "no drift");
        assert_eq!(obs.outputs, made[i].3);
    }

    // Drift: detached by hand reads as no VPC.
    let (vpc0, _, _, out0) = &made[0];
    ec2.detach_internet_gateway().internet_gateway_id(out0["id"].as_str().unwrap()).vpc_id(vpc0).send().await.unwrap();
    let seen = p.refresh(vec![items[0].clone()]).await;
    let detached = seen[0].as_ref().unwrap().as_ref().unwrap().inputs.clone();
    assert_eq!(detached["vpc_id"], json!(null));

    // Tags change in place.
    let (vpc1, _, inp1, out1) = &made[1];
    let out = p
        .update(update_req("aws.internet_gateway", "igw1", inp1, out1, json!({"vpc_id": vpc1, "tags": {"role": "ingress"}}), &["tags"]))
        .await
        .unwrap();
    assert_eq!(&out, out1);
    let g = ec2.describe_internet_gateways().internet_gateway_ids(out1["id"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(tag(g.internet_gateways()[0].tags(), "role").as_deref(), Some("ingress"));

    // Adoption by tags.
    let adopted = p
        .adopt(AdoptRequest {
            addr: phoenix_core::ResourceAddr::parse("igw1").unwrap(),
            type_name: "aws.internet_gateway".into(),
            inputs: inp1.clone(),
            ownership: ownership("igw1"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(adopted.outputs["id"], out1["id"]);

    // Delete (one detached already, one attached) twice each, then the VPCs are deletable: nothing holds them.
    // The detached one as state holds it after that refresh: no VPC.
    for (i, (_, vpc, inp, out)) in made.iter().enumerate() {
        let inp = if i == 0 { &detached } else { inp };
        p.delete(delete_req("aws.internet_gateway", &format!("igw{i}"), inp, out)).await.unwrap();
        p.delete(delete_req("aws.internet_gateway", &format!("igw{i}"), inp, out)).await.unwrap();
        let vpc_inputs = attrs(json!({"cidr_block": format!("10.{i}.0.0/16")}));
        p.delete(delete_req("aws.vpc", &format!("net{i}"), &vpc_inputs, vpc)).await.unwrap();
    }
    assert!(p.refresh(items).await.iter().all(|r| r.as_ref().unwrap().is_none()));
    let left = ec2
        .describe_internet_gateways()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:phoenix:lineage").values("lineage-test").build())
        .send()
        .await
        .unwrap();
    assert!(left.internet_gateways().is_empty());
    let vpcs = ec2
        .describe_vpcs()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:phoenix:lineage").values("lineage-test").build())
        .send()
        .await
        .unwrap();
    assert!(vpcs.vpcs().is_empty());
}
