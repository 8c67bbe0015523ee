//! `aws.route53_zone` and `aws.route53_record` against moto through the real SDK; every claim
//! checked with an independent Route 53 client.

mod support;

use phoenix_core::provider::Provider;
use serde_json::json;
use support::*;

async fn sets(r53: &aws_sdk_route53::Client, zone: &str) -> Vec<aws_sdk_route53::types::ResourceRecordSet> {
    r53.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap().resource_record_sets().to_vec()
}

#[tokio::test]
async fn zone_with_failover_aliases_to_a_load_balancer_and_a_plain_record() {
    let moto = Moto::start();
    let p = moto.provider();
    let r53 = route53(&moto);
    let (_, subnets) = three_zone_network(&moto.ec2().await).await;
    let lb = p.create(create_req("aws.lb", "lb", json!({"name": "web", "subnet_ids": subnets}))).await.unwrap();

    let z_in = json!({"name": "example.test", "comment": "prod", "tags": {"team": "web"}});
    let z = p.create(create_req("aws.route53_zone", "zone", z_in.clone())).await.unwrap();
    let zone = z["id"].as_str().unwrap().to_string();
    assert!(!zone.contains('/'), "{zone}");
    let got = r53.get_hosted_zone().id(&zone).send().await.unwrap();
    assert_eq!(got.hosted_zone().unwrap().name(), "example.test.");
    let tags = r53
        .list_tags_for_resource()
        .resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
        .resource_id(&zone)
        .send()
        .await
        .unwrap();
    let tags = tags.resource_tag_set().unwrap().tags();
    assert!(tags.iter().any(|t| t.key() == Some("phoenix:resource") && t.value() == Some("zone")));
    let obs = observe(&p, "aws.route53_zone", "zone", &attrs(z_in.clone()), &z).await.unwrap();
    for k in ["name", "comment", "tags"] {
        assert_eq!(obs.inputs[k], z_in[k], "{k}");
    }
    assert_eq!(p.adopt(adopt_request("aws.route53_zone", "zone", z_in.clone())).await.unwrap().unwrap().outputs["id"], json!(zone));
    assert!(p.adopt(adopt_request("aws.route53_zone", "other", z_in.clone())).await.unwrap().is_none());

    // Failover: the primary is an alias to the load balancer, the secondary a plain record.
    let primary_in = json!({
        "zone_id": zone, "name": "www.example.test", "record_type": "A", "set_identifier": "primary", "failover": "PRIMARY",
        "alias_name": lb["dns_name"], "alias_zone_id": lb["zone_id"], "alias_evaluate_target_health": true,
    });
    let secondary_in = json!({
        "zone_id": zone, "name": "www.example.test", "record_type": "A", "set_identifier": "secondary", "failover": "SECONDARY",
        "ttl": 60, "records": ["192.0.2.10"],
    });
    let primary = p.create(create_req("aws.route53_record", "www-primary", primary_in.clone())).await.unwrap();
    let secondary = p.create(create_req("aws.route53_record", "www-secondary", secondary_in.clone())).await.unwrap();
    let all = sets(&r53, &zone).await;
    let alias = all.iter().find(|r| r.set_identifier() == Some("primary")).expect("primary record");
    assert_eq!(alias.failover().unwrap().as_str(), "PRIMARY");
    let target = alias.alias_target().unwrap();
    assert_eq!(target.dns_name().trim_end_matches('.'), lb["dns_name"].as_str().unwrap());
    assert_eq!(target.hosted_zone_id(), lb["zone_id"].as_str().unwrap());
    let plain = all.iter().find(|r| r.set_identifier() == Some("secondary")).expect("secondary record");
    assert_eq!(plain.resource_records()[0].value(), "192.0.2.10");

    // Both read back in one batch without drift.
    let seen = p
        .refresh(vec![
            refresh_item("aws.route53_record", "www-primary", &attrs(primary_in.clone()), &primary),
            refresh_item("aws.route53_record", "www-secondary", &attrs(secondary_in.clone()), &secondary),
        ])
        .await;
    for (obs, want) in seen.iter().zip([&primary_in, &secondary_in]) {
        let obs = obs.as_ref().unwrap().as_ref().unwrap();
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&obs.inputs[k], v, "{k}");
        }
    }

    // `phoenix import` by id alone (no prior inputs): the zone as defined, each
    // record of the failover pair told apart by its set identifier.
    let addr = phoenix_core::ResourceAddr::parse("imported").unwrap();
    let imported = p.import(&addr, "aws.route53_zone", &zone).await.unwrap().expect("the zone, imported by id");
    for k in ["name", "comment", "tags"] {
        assert_eq!(imported.inputs[k], z_in[k], "imported zone: {k}");
    }
    assert_eq!(imported.outputs["name_servers"], z["name_servers"]);
    for (made, want) in [(&primary, &primary_in), (&secondary, &secondary_in)] {
        let id = made["id"].as_str().unwrap();
        let imported = p.import(&addr, "aws.route53_record", id).await.unwrap().unwrap_or_else(|| panic!("{id} not imported"));
        assert_eq!(imported.outputs["id"], made["id"]);
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(&imported.inputs[k], v, "imported {id}: {k}");
        }
    }
    assert!(p.import(&addr, "aws.route53_record", &format!("{zone}_nothing.example.test_A")).await.unwrap().is_none());

    // The secondary's value changes in place (UPSERT).
    let mut moved = secondary_in.clone();
    moved["records"] = json!(["192.0.2.20"]);
    p.update(update_req("aws.route53_record", "www-secondary", &attrs(secondary_in.clone()), &secondary, moved.clone(), &["records"]))
        .await
        .unwrap();
    let all = sets(&r53, &zone).await;
    let plain = all.iter().find(|r| r.set_identifier() == Some("secondary")).unwrap();
    assert_eq!(plain.resource_records()[0].value(), "192.0.2.20");

    // Records, then the zone; every delete idempotent.
    for (name, inputs, outputs) in [("www-primary", primary_in, primary), ("www-secondary", moved, secondary)] {
        p.delete(delete_req("aws.route53_record", name, &attrs(inputs.clone()), &outputs)).await.unwrap();
        p.delete(delete_req("aws.route53_record", name, &attrs(inputs.clone()), &outputs)).await.unwrap();
        assert!(observe(&p, "aws.route53_record", name, &attrs(inputs), &outputs).await.is_none());
    }
    p.delete(delete_req("aws.route53_zone", "zone", &attrs(z_in.clone()), &z)).await.unwrap();
    p.delete(delete_req("aws.route53_zone", "zone", &attrs(z_in.clone()), &z)).await.unwrap();
    assert!(r53.get_hosted_zone().id(&zone).send().await.is_err());
}
