//! `aws.eip` against moto through the real SDK; every effect is checked with
//! an independent SDK client. Instances to associate with are launched with
//! that client too, so this test does not depend on `aws.instance`.

mod support;

use aws_sdk_ec2::types::{Filter, InstanceType, Tag};
use phoenix_core::provider::{AdoptRequest, Provider};
use serde_json::json;
use support::*;

fn tag(tags: &[Tag], k: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string)
}

/// A VPC with an internet gateway and a subnet, and two instances in it.
async fn instances(ec2: &aws_sdk_ec2::Client) -> Vec<String> {
    let vpc = ec2.create_vpc().cidr_block("10.5.0.0/16").send().await.unwrap().vpc().unwrap().vpc_id().unwrap().to_string();
    let igw = ec2.create_internet_gateway().send().await.unwrap().internet_gateway().unwrap().internet_gateway_id().unwrap().to_string();
    ec2.attach_internet_gateway().internet_gateway_id(&igw).vpc_id(&vpc).send().await.unwrap();
    let subnet =
        ec2.create_subnet().vpc_id(&vpc).cidr_block("10.5.1.0/24").send().await.unwrap().subnet().unwrap().subnet_id().unwrap().to_string();
    let out = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Micro)
        .subnet_id(&subnet)
        .min_count(2)
        .max_count(2)
        .send()
        .await
        .unwrap();
    out.instances().iter().map(|i| i.instance_id().unwrap().to_string()).collect()
}

async fn address(ec2: &aws_sdk_ec2::Client, id: &str) -> aws_sdk_ec2::types::Address {
    ec2.describe_addresses().allocation_ids(id).send().await.unwrap().addresses()[0].clone()
}

#[tokio::test]
async fn eip_allocate_associate_refresh_in_one_call_drift_reassociate_adopt_release() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let vms = instances(&ec2).await;

    // One address on the first instance, two unassociated.
    let front_inputs = attrs(json!({"instance_id": vms[0], "tags": {"role": "front"}}));
    let before = p.api_calls();
    let front = p.create(create_req("aws.eip", "front", json!({"instance_id": vms[0], "tags": {"role": "front"}}))).await.unwrap();
    assert_eq!(p.api_calls() - before, 2, "AllocateAddress and AssociateAddress");
    let id = front["id"].as_str().unwrap().to_string();
    let mut made = vec![("front".to_string(), front_inputs.clone(), front.clone())];
    for name in ["spare0", "spare1"] {
        let o = p.create(create_req("aws.eip", name, json!({}))).await.unwrap();
        assert_eq!(o["association_id"], json!(""));
        made.push((name.to_string(), attrs(json!({})), o));
    }

    // Independently: allocated, on the instance, under the recorded association, tagged.
    let a = address(&ec2, &id).await;
    assert_eq!(a.instance_id(), Some(vms[0].as_str()));
    assert_eq!(a.public_ip(), front["public_ip"].as_str());
    assert_eq!(a.association_id(), front["association_id"].as_str());
    assert!(front["association_id"].as_str().unwrap().starts_with("eipassoc-"));
    assert_eq!(tag(a.tags(), "phoenix:resource").as_deref(), Some("front"));
    assert_eq!(tag(a.tags(), "phoenix:lineage").as_deref(), Some("lineage-test"));
    assert_eq!(tag(a.tags(), "Name").as_deref(), Some("test-front"));
    assert_eq!(tag(a.tags(), "role").as_deref(), Some("front"));
    for (n, _, o) in &made[1..] {
        let a = address(&ec2, o["id"].as_str().unwrap()).await;
        assert_eq!(tag(a.tags(), "phoenix:resource").as_deref(), Some(n.as_str()));
        assert!(a.instance_id().unwrap_or_default().is_empty());
    }

    // All three refreshed in one call, without drift.
    let items: Vec<_> = made.iter().map(|(n, i, o)| refresh_item("aws.eip", n, i, o)).collect();
    let before = p.api_calls();
    let seen = p.refresh(items.clone()).await;
    assert!(p.api_calls() - before <= 2, "{} calls", p.api_calls() - before);
    for (r, (n, inputs, outputs)) in seen.iter().zip(&made) {
        let obs = r.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(&obs.inputs, inputs, "{n}: no drift");
        assert_eq!(&obs.outputs, outputs);
    }

    // Drift: disassociated by hand reads as no instance.
    ec2.disassociate_address().association_id(front["association_id"].as_str().unwrap()).send().await.unwrap();
    let seen = p.refresh(vec![items[0].clone()]).await;
    let obs = seen[0].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(obs.inputs["instance_id"], json!(null));
    assert_eq!(obs.outputs["association_id"], json!(""));

    // Update in place: onto the second instance; the address stays, the association is new.
    let desired = json!({"instance_id": vms[1], "tags": {"role": "front"}});
    let moved = p.update(update_req("aws.eip", "front", &obs.inputs, &obs.outputs, desired.clone(), &["instance_id"])).await.unwrap();
    assert_eq!((&moved["id"], &moved["public_ip"]), (&front["id"], &front["public_ip"]));
    let a = address(&ec2, &id).await;
    assert_eq!(a.instance_id(), Some(vms[1].as_str()));
    assert_eq!(a.association_id(), moved["association_id"].as_str());
    let seen = p.refresh(vec![refresh_item("aws.eip", "front", &attrs(desired.clone()), &moved)]).await;
    assert_eq!(seen[0].as_ref().unwrap().as_ref().unwrap().inputs, attrs(desired.clone()), "no drift after the move");

    // Update in place: no instance any more.
    let none = p
        .update(update_req("aws.eip", "front", &attrs(desired.clone()), &moved, json!({"tags": {"role": "front"}}), &["instance_id"]))
        .await
        .unwrap();
    assert_eq!(none["association_id"], json!(""));
    assert!(address(&ec2, &id).await.instance_id().unwrap_or_default().is_empty());

    // Adoption by tags.
    let adopted = p
        .adopt(AdoptRequest {
            addr: phoenix_core::ResourceAddr::parse("spare1").unwrap(),
            type_name: "aws.eip".into(),
            inputs: made[2].1.clone(),
            ownership: ownership("spare1"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(adopted.outputs, made[2].2);

    // Associated again (by hand), then deleted twice: disassociated and released.
    ec2.associate_address().allocation_id(&id).instance_id(&vms[0]).send().await.unwrap();
    for (n, i, o) in &made {
        p.delete(delete_req("aws.eip", n, i, o)).await.unwrap();
        p.delete(delete_req("aws.eip", n, i, o)).await.unwrap();
    }
    assert!(p.refresh(items).await.iter().all(|r| r.as_ref().unwrap().is_none()));
    let left = ec2
        .describe_addresses()
        .filters(Filter::builder().name("tag:phoenix:lineage").values("lineage-test").build())
        .send()
        .await
        .unwrap();
    assert!(left.addresses().is_empty());
    let all = ec2.describe_addresses().send().await.unwrap();
    assert!(all.addresses().is_empty(), "every address was released");
}

#[tokio::test]
async fn eip_schema() {
    let moto = Moto::start();
    let p = moto.provider();
    let schema = p.schemas().into_iter().find(|s| s.type_name == "aws.eip").unwrap();
    assert!(schema.update_in_place && !schema.attr("instance_id").unwrap().force_new);
    assert!(schema.attr("public_ip").unwrap().stable && !schema.attr("association_id").unwrap().stable);
}
