//! `aws.subnet` against moto through the real SDK; every effect is checked
//! with an independent SDK client, not the provider's own.

mod support;

use aws_sdk_ec2::types::{AttributeBooleanValue, Tag};
use phoenix_core::provider::{AdoptRequest, Provider};
use phoenix_core::value::Attrs;
use serde_json::json;
use support::*;

fn tag(tags: &[Tag], k: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string)
}

async fn vpc(p: &phoenix_provider_aws::AwsProvider) -> String {
    let out = p.create(create_req("aws.vpc", "net", json!({"cidr_block": "10.2.0.0/16"}))).await.unwrap();
    out["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn three_subnets_by_zone_index_refresh_in_one_call_drift_update_adopt_delete() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let vpc = vpc(&p).await;

    // Three subnets, one per zone by index (the template's way), the first public.
    let mut made: Vec<(Attrs, Attrs)> = Vec::new();
    let before = p.api_calls();
    for i in 0..3 {
        let inputs = json!({
            "vpc_id": vpc, "cidr_block": format!("10.2.{i}.0/24"), "az_index": i,
            "map_public_ip_on_launch": i == 0, "tags": {"tier": "web"},
        });
        let out = p.create(create_req("aws.subnet", &format!("web{i}"), inputs.clone())).await.unwrap();
        made.push((attrs(inputs), out));
    }
    // The zones are looked up once; one CreateSubnet each; one ModifySubnetAttribute for the public one.
    assert_eq!(p.api_calls() - before, 1 + 3 + 1, "calls to create 3 subnets");
    let ids: Vec<String> = made.iter().map(|(_, o)| o["id"].as_str().unwrap().to_string()).collect();

    // Independently: each exists in its own zone (the region's first three, sorted), tagged, first one public.
    let mut zones: Vec<String> = ec2
        .describe_availability_zones()
        .send()
        .await
        .unwrap()
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect();
    zones.sort();
    let seen = ec2.describe_subnets().set_subnet_ids(Some(ids.clone())).send().await.unwrap();
    assert_eq!(seen.subnets().len(), 3);
    for (i, id) in ids.iter().enumerate() {
        let s = seen.subnets().iter().find(|s| s.subnet_id() == Some(id.as_str())).unwrap();
        assert_eq!(s.vpc_id(), Some(vpc.as_str()));
        assert_eq!(s.cidr_block(), Some(format!("10.2.{i}.0/24").as_str()));
        assert_eq!(s.availability_zone(), Some(zones[i].as_str()));
        assert_eq!(made[i].1["availability_zone"], json!(zones[i]));
        assert_eq!(s.map_public_ip_on_launch(), Some(i == 0));
        assert_eq!(tag(s.tags(), "phoenix:resource"), Some(format!("web{i}")));
        assert_eq!(tag(s.tags(), "phoenix:lineage").as_deref(), Some("lineage-test"));
        assert_eq!(tag(s.tags(), "phoenix:environment").as_deref(), Some("test"));
        assert_eq!(tag(s.tags(), "Name"), Some(format!("test-web{i}")));
        assert_eq!(tag(s.tags(), "tier").as_deref(), Some("web"));
    }

    // Refresh of all three: one DescribeSubnets, and nothing drifted.
    let items: Vec<_> = made.iter().enumerate().map(|(i, (inp, out))| refresh_item("aws.subnet", &format!("web{i}"), inp, out)).collect();
    let before = p.api_calls();
    let seen = p.refresh(items.clone()).await;
    let calls = p.api_calls() - before;
    assert!(calls <= 2, "refreshing 3 subnets took {calls} calls");
    for (i, r) in seen.iter().enumerate() {
        let obs = r.as_ref().unwrap().as_ref().unwrap();
        for (k, v) in &obs.inputs {
            assert_eq!(made[i].0.get(k), Some(v), "subnet {i}: `{k}` reads back differently");
        }
        assert_eq!(obs.outputs, made[i].1);
    }

    // Drift: the second subnet made public and retagged by hand.
    ec2.modify_subnet_attribute()
        .subnet_id(&ids[1])
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .unwrap();
    ec2.create_tags().resources(&ids[1]).tags(Tag::builder().key("tier").value("db").build()).send().await.unwrap();
    let seen = p.refresh(vec![items[1].clone()]).await;
    let obs = seen[0].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(obs.inputs["map_public_ip_on_launch"], json!(true));
    assert_eq!(obs.inputs["tags"], json!({"tier": "db"}));

    // Update in place puts it back.
    let (_, out1) = &made[1];
    let back =
        json!({"vpc_id": vpc, "cidr_block": "10.2.1.0/24", "az_index": 1, "map_public_ip_on_launch": false, "tags": {"tier": "web"}});
    let drifted =
        attrs(json!({"vpc_id": vpc, "cidr_block": "10.2.1.0/24", "az_index": 1, "map_public_ip_on_launch": true, "tags": {"tier": "db"}}));
    let out = p.update(update_req("aws.subnet", "web1", &drifted, out1, back, &["map_public_ip_on_launch", "tags"])).await.unwrap();
    assert_eq!(&out, out1, "an update keeps the id and zone");
    let s = ec2.describe_subnets().subnet_ids(&ids[1]).send().await.unwrap();
    assert_eq!(s.subnets()[0].map_public_ip_on_launch(), Some(false));
    assert_eq!(tag(s.subnets()[0].tags(), "tier").as_deref(), Some("web"));
    assert_eq!(
        p.refresh(vec![items[1].clone()]).await[0].as_ref().unwrap().as_ref().unwrap().inputs["map_public_ip_on_launch"],
        json!(false)
    );

    // Adoption after an interrupted create finds it by its tags.
    let adopted = p
        .adopt(AdoptRequest {
            addr: phoenix_core::ResourceAddr::parse("web2").unwrap(),
            type_name: "aws.subnet".into(),
            inputs: made[2].0.clone(),
            ownership: ownership("web2"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(adopted.outputs["id"], json!(ids[2]));
    let none = p
        .adopt(AdoptRequest {
            addr: phoenix_core::ResourceAddr::parse("web9").unwrap(),
            type_name: "aws.subnet".into(),
            inputs: made[2].0.clone(),
            ownership: ownership("web9"),
        })
        .await
        .unwrap();
    assert!(none.is_none());

    // Delete each twice; refresh says gone; independently none is left.
    let before = p.api_calls();
    for (i, (inp, out)) in made.iter().enumerate() {
        p.delete(delete_req("aws.subnet", &format!("web{i}"), inp, out)).await.unwrap();
        p.delete(delete_req("aws.subnet", &format!("web{i}"), inp, out)).await.unwrap();
    }
    assert_eq!(p.api_calls() - before, 6, "one DeleteSubnet per delete, the second answered NotFound");
    assert!(p.refresh(items).await.iter().all(|r| r.as_ref().unwrap().is_none()));
    let left =
        ec2.describe_subnets().filters(aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&vpc).build()).send().await.unwrap();
    assert!(left.subnets().is_empty());
}

#[tokio::test]
async fn named_zone_is_an_input_and_zone_and_index_together_are_refused() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let vpc = vpc(&p).await;
    let inputs = json!({"vpc_id": vpc, "cidr_block": "10.2.9.0/24", "availability_zone": "eu-west-1b", "map_public_ip_on_launch": false});
    let out = p.create(create_req("aws.subnet", "named", inputs.clone())).await.unwrap();
    assert_eq!(out["availability_zone"], json!("eu-west-1b"));
    let s = ec2.describe_subnets().subnet_ids(out["id"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(s.subnets()[0].availability_zone(), Some("eu-west-1b"));
    assert_eq!(tag(s.subnets()[0].tags(), "phoenix:resource").as_deref(), Some("named"));
    // Read back as an input (it was configured), without drift.
    let seen = p.refresh(vec![refresh_item("aws.subnet", "named", &attrs(inputs.clone()), &out)]).await;
    let obs = seen[0].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(obs.inputs["availability_zone"], json!("eu-west-1b"));
    assert_eq!(obs.inputs["cidr_block"], json!("10.2.9.0/24"));

    let both = json!({"vpc_id": vpc, "cidr_block": "10.2.8.0/24", "availability_zone": "eu-west-1b", "az_index": 1});
    let err = p.create(create_req("aws.subnet", "both", both)).await.unwrap_err();
    assert!(err.message.contains("az_index"), "{}", err.message);
    assert!(err.created.is_none());

    // The schema rejects a bad CIDR before any call.
    let schema = p.schemas().into_iter().find(|s| s.type_name == "aws.subnet").unwrap();
    let check = schema.attr("cidr_block").unwrap().validator.unwrap();
    assert!(check(&json!("10.2.0.1/24")).is_err());
    assert!(schema.attr("vpc_id").unwrap().force_new && schema.attr("az_index").unwrap().force_new);
    assert!(schema.attr("id").unwrap().stable && schema.attr("availability_zone").unwrap().computed);
}
