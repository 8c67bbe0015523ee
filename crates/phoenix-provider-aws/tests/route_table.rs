//! `aws.route_table` (routes and subnet associations) against moto through
//! the real SDK; every effect is checked with an independent SDK client.

mod support;

use aws_sdk_ec2::types::{RouteOrigin, Tag};
use phoenix_core::provider::{AdoptRequest, Provider};
use serde_json::json;
use support::*;

fn tag(tags: &[Tag], k: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string)
}

/// (destination, gateway) of the routes made by CreateRoute, and the associated subnets, sorted.
async fn actual(ec2: &aws_sdk_ec2::Client, id: &str) -> (Vec<(String, String)>, Vec<String>) {
    let t = ec2.describe_route_tables().route_table_ids(id).send().await.unwrap();
    let t = &t.route_tables()[0];
    let mut routes: Vec<_> = t
        .routes()
        .iter()
        .filter(|r| r.origin() == Some(&RouteOrigin::CreateRoute))
        .map(|r| (r.destination_cidr_block().unwrap().to_string(), r.gateway_id().unwrap_or_default().to_string()))
        .collect();
    routes.sort();
    let mut subnets: Vec<_> = t.associations().iter().filter_map(|a| a.subnet_id().map(str::to_string)).collect();
    subnets.sort();
    (routes, subnets)
}

#[tokio::test]
async fn routes_and_associations_create_refresh_drift_update_adopt_delete() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let vpc =
        p.create(create_req("aws.vpc", "net", json!({"cidr_block": "10.3.0.0/16"}))).await.unwrap()["id"].as_str().unwrap().to_string();
    let igw =
        p.create(create_req("aws.internet_gateway", "igw", json!({"vpc_id": vpc}))).await.unwrap()["id"].as_str().unwrap().to_string();
    let mut subnets = Vec::new();
    for i in 0..2 {
        let s = p
            .create(create_req(
                "aws.subnet",
                &format!("s{i}"),
                json!({"vpc_id": vpc, "cidr_block": format!("10.3.{i}.0/24"), "az_index": i}),
            ))
            .await
            .unwrap();
        subnets.push(s["id"].as_str().unwrap().to_string());
    }

    let inputs = json!({"vpc_id": vpc, "routes": [{"cidr_block": "0.0.0.0/0", "gateway_id": igw}], "subnet_ids": [subnets[0]], "tags": {"tier": "public"}});
    let before = p.api_calls();
    let out = p.create(create_req("aws.route_table", "public", inputs.clone())).await.unwrap();
    assert_eq!(p.api_calls() - before, 3, "CreateRouteTable, CreateRoute, AssociateRouteTable");
    let id = out["id"].as_str().unwrap().to_string();
    let inputs = attrs(inputs);

    // Independently: the route, the association and the tags are there.
    assert_eq!(actual(&ec2, &id).await, (vec![("0.0.0.0/0".to_string(), igw.clone())], vec![subnets[0].clone()]));
    let t = ec2.describe_route_tables().route_table_ids(&id).send().await.unwrap();
    let tags = t.route_tables()[0].tags();
    assert_eq!(tag(tags, "phoenix:resource").as_deref(), Some("public"));
    assert_eq!(tag(tags, "phoenix:lineage").as_deref(), Some("lineage-test"));
    assert_eq!(tag(tags, "Name").as_deref(), Some("test-public"));
    assert_eq!(tag(tags, "tier").as_deref(), Some("public"));

    // A second, empty table: both refreshed in one call, neither drifted (the `local` route is not reported).
    let empty_inputs = attrs(json!({"vpc_id": vpc, "routes": [], "subnet_ids": []}));
    let empty = p.create(create_req("aws.route_table", "private", json!({"vpc_id": vpc, "routes": [], "subnet_ids": []}))).await.unwrap();
    let items =
        vec![refresh_item("aws.route_table", "public", &inputs, &out), refresh_item("aws.route_table", "private", &empty_inputs, &empty)];
    let before = p.api_calls();
    let seen = p.refresh(items.clone()).await;
    assert!(p.api_calls() - before <= 1, "{} calls", p.api_calls() - before);
    assert_eq!(seen[0].as_ref().unwrap().as_ref().unwrap().inputs, inputs);
    assert_eq!(seen[1].as_ref().unwrap().as_ref().unwrap().inputs, empty_inputs);

    // Drift: a route and an association added by hand.
    ec2.create_route().route_table_id(&id).destination_cidr_block("192.168.0.0/16").gateway_id(&igw).send().await.unwrap();
    ec2.associate_route_table().route_table_id(&id).subnet_id(&subnets[1]).send().await.unwrap();
    let seen = p.refresh(vec![items[0].clone()]).await;
    let obs = seen[0].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(
        obs.inputs["routes"],
        json!([{"cidr_block": "0.0.0.0/0", "gateway_id": igw}, {"cidr_block": "192.168.0.0/16", "gateway_id": igw}]),
        "configured routes first, in their order; the stranger after"
    );
    assert_eq!(obs.inputs["subnet_ids"], json!([subnets[0], subnets[1]]));

    // Update in place, against what EC2 has now: the stray route goes, a new one comes,
    // the first subnet is let go and the second kept.
    let desired = json!({"vpc_id": vpc, "routes": [{"cidr_block": "0.0.0.0/0", "gateway_id": igw}, {"cidr_block": "172.16.0.0/12", "gateway_id": igw}], "subnet_ids": [subnets[1]], "tags": {"tier": "public"}});
    let updated =
        p.update(update_req("aws.route_table", "public", &obs.inputs, &out, desired.clone(), &["routes", "subnet_ids"])).await.unwrap();
    assert_eq!(updated["id"], json!(id));
    let want_routes = vec![("0.0.0.0/0".to_string(), igw.clone()), ("172.16.0.0/12".to_string(), igw.clone())];
    assert_eq!(actual(&ec2, &id).await, (want_routes, vec![subnets[1].clone()]));
    let seen = p.refresh(vec![refresh_item("aws.route_table", "public", &attrs(desired.clone()), &out)]).await;
    assert_eq!(seen[0].as_ref().unwrap().as_ref().unwrap().inputs, attrs(desired.clone()), "no drift after the update");

    // Adoption by tags.
    let adopted = p
        .adopt(AdoptRequest {
            addr: phoenix_core::ResourceAddr::parse("public").unwrap(),
            type_name: "aws.route_table".into(),
            inputs: attrs(desired.clone()),
            ownership: ownership("public"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(adopted.outputs["id"], json!(id));

    // Delete (it still has an association) twice; then the subnet is free and the table gone.
    let before = p.api_calls();
    p.delete(delete_req("aws.route_table", "public", &attrs(desired.clone()), &out)).await.unwrap();
    assert_eq!(p.api_calls() - before, 3, "DescribeRouteTables, DisassociateRouteTable, DeleteRouteTable");
    p.delete(delete_req("aws.route_table", "public", &attrs(desired), &out)).await.unwrap();
    assert_eq!(p.api_calls() - before, 4, "a second delete only finds it gone");
    p.delete(delete_req("aws.route_table", "private", &empty_inputs, &empty)).await.unwrap();
    assert!(p.refresh(items).await.iter().all(|r| r.as_ref().unwrap().is_none()));
    let left = ec2
        .describe_route_tables()
        .filters(aws_sdk_ec2::types::Filter::builder().name("route-table-id").values(&id).build())
        .send()
        .await
        .unwrap();
    assert!(left.route_tables().is_empty());
    let assoc = ec2
        .describe_route_tables()
        .filters(aws_sdk_ec2::types::Filter::builder().name("association.subnet-id").values(&subnets[1]).build())
        .send()
        .await
        .unwrap();
    assert!(assoc.route_tables().is_empty(), "the subnet is no longer associated anywhere");
}

#[tokio::test]
async fn route_validation_rejects_bad_tables() {
    let moto = Moto::start();
    let p = moto.provider();
    let schema = p.schemas().into_iter().find(|s| s.type_name == "aws.route_table").unwrap();
    let check = schema.attr("routes").unwrap().validator.unwrap();
    assert!(check(&json!([{"cidr_block": "0.0.0.0/0", "gateway_id": "${igw.id}"}])).is_ok());
    assert!(check(&json!([{"cidr_block": "0.0.0.1/0", "gateway_id": "igw-1"}])).is_err(), "host bits");
    assert!(check(&json!([{"cidr_block": "0.0.0.0/0"}])).is_err(), "no target");
    assert!(check(&json!([{"cidr_block": "0.0.0.0/0", "gateway_id": "igw-1", "nat": "x"}])).is_err(), "unknown key");
    let dup = json!([{"cidr_block": "0.0.0.0/0", "gateway_id": "igw-1"}, {"cidr_block": "0.0.0.0/0", "gateway_id": "igw-2"}]);
    assert!(check(&dup).is_err(), "two routes to one destination");
    assert!(
        schema.attr("vpc_id").unwrap().force_new
            && !schema.attr("routes").unwrap().force_new
            && !schema.attr("subnet_ids").unwrap().force_new
    );
}
