//! `aws.lb`, `aws.lb_target_group` and `aws.lb_listener` against moto through the real SDK;
//! every claim checked with an independent ELBv2 client.

mod support;

use phoenix_core::provider::Provider;
use serde_json::json;
use support::*;

async fn elb_tags(elb: &aws_sdk_elasticloadbalancingv2::Client, arn: &str) -> Vec<(String, String)> {
    let out = elb.describe_tags().resource_arns(arn).send().await.unwrap();
    out.tag_descriptions()[0].tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect()
}

fn has(tags: &[(String, String)], k: &str, v: &str) -> bool {
    tags.iter().any(|(tk, tv)| tk == k && tv == v)
}

#[tokio::test]
async fn lb_create_refresh_batch_adopt_update_subnets_and_delete() {
    let moto = Moto::start();
    let p = moto.provider();
    let elb = elb(&moto);
    let (_, subnets) = three_zone_network(&moto.ec2().await).await;

    let inputs = json!({"name": "front", "internal": false, "subnet_ids": subnets.clone(), "tags": {"tier": "web"}});
    let out = p.create(create_req("aws.lb", "front-lb", inputs.clone())).await.unwrap();
    let arn = out["arn"].as_str().unwrap().to_string();
    assert_eq!(out["id"], out["arn"]);
    assert_eq!(out["state"], json!("active"));

    // Independently: an internet-facing ALB in the three subnets, its DNS name as reported, tagged.
    let lb = elb.describe_load_balancers().load_balancer_arns(&arn).send().await.unwrap().load_balancers()[0].clone();
    assert_eq!(lb.scheme().unwrap().as_str(), "internet-facing");
    assert_eq!(lb.r#type().unwrap().as_str(), "application");
    assert_eq!(out["dns_name"], json!(lb.dns_name().unwrap()));
    assert!(!lb.dns_name().unwrap().is_empty());
    assert_eq!(out["zone_id"], json!(lb.canonical_hosted_zone_id().unwrap()));
    assert_eq!(lb.availability_zones().len(), 3);
    let tags = elb_tags(&elb, &arn).await;
    for (k, v) in [("phoenix:resource", "front-lb"), ("phoenix:lineage", "lineage-test"), ("Name", "test-front-lb"), ("tier", "web")] {
        assert!(has(&tags, k, v), "{k}={v} missing from {tags:?}");
    }

    // Refresh reads back what was set: no drift.
    let obs = observe(&p, "aws.lb", "front-lb", &attrs(inputs.clone()), &out).await.unwrap();
    for k in ["name", "internal", "subnet_ids", "tags"] {
        assert_eq!(obs.inputs[k], inputs[k], "{k}");
    }

    // Adoption finds it by name only with our ownership tags.
    let found = p.adopt(adopt_request("aws.lb", "front-lb", inputs.clone())).await.unwrap().unwrap();
    assert_eq!(found.outputs["id"], json!(arn));
    assert!(p.adopt(adopt_request("aws.lb", "someone-else", inputs.clone())).await.unwrap().is_none());

    // A batch with one load balancer deleted behind Phoenix's back: that one reads as gone, the other as it is.
    let other_in = json!({"name": "back", "internal": true, "subnet_ids": subnets.clone()});
    let other = p.create(create_req("aws.lb", "back-lb", other_in.clone())).await.unwrap();
    let lb2 = elb.describe_load_balancers().load_balancer_arns(other["arn"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(lb2.load_balancers()[0].scheme().unwrap().as_str(), "internal");
    elb.delete_load_balancer().load_balancer_arn(other["arn"].as_str().unwrap()).send().await.unwrap();
    let seen = p
        .refresh(vec![
            refresh_item("aws.lb", "front-lb", &attrs(inputs.clone()), &out),
            refresh_item("aws.lb", "back-lb", &attrs(other_in.clone()), &other),
        ])
        .await;
    assert!(seen[0].as_ref().unwrap().is_some());
    assert!(seen[1].as_ref().unwrap().is_none());

    // Subnets change in place (SetSubnets): same ARN, two subnets now.
    let mut fewer = inputs.clone();
    fewer["subnet_ids"] = json!(subnets[..2]);
    let new = p.update(update_req("aws.lb", "front-lb", &attrs(inputs.clone()), &out, fewer.clone(), &["subnet_ids"])).await.unwrap();
    assert_eq!(new["arn"], json!(arn));
    let lb = elb.describe_load_balancers().load_balancer_arns(&arn).send().await.unwrap().load_balancers()[0].clone();
    assert_eq!(lb.availability_zones().len(), 2);

    // Delete waits until it is gone; twice is fine.
    p.delete(delete_req("aws.lb", "front-lb", &attrs(fewer.clone()), &new)).await.unwrap();
    assert!(elb.describe_load_balancers().load_balancer_arns(&arn).send().await.is_err());
    p.delete(delete_req("aws.lb", "front-lb", &attrs(fewer.clone()), &new)).await.unwrap();
    assert!(observe(&p, "aws.lb", "front-lb", &attrs(fewer), &new).await.is_none());
}

#[tokio::test]
async fn target_group_health_check_in_place_listener_forwarding_and_target_health() {
    let moto = Moto::start();
    let p = moto.provider();
    let elb = elb(&moto);
    let ec2 = moto.ec2().await;
    let (vpc, subnets) = three_zone_network(&ec2).await;
    let lb_in = json!({"name": "web", "internal": false, "subnet_ids": subnets});
    let lb = p.create(create_req("aws.lb", "lb", lb_in.clone())).await.unwrap();

    let tg_in = json!({
        "name": "web-tg", "port": 80, "protocol": "HTTP", "vpc_id": vpc, "target_type": "instance",
        "health_check_path": "/healthz", "health_check_matcher": "200-299",
        "health_check_interval": 10, "health_check_timeout": 5, "healthy_threshold": 3, "unhealthy_threshold": 2,
    });
    let tg = p.create(create_req("aws.lb_target_group", "tg", tg_in.clone())).await.unwrap();
    let tg_arn = tg["arn"].as_str().unwrap().to_string();
    let got = elb.describe_target_groups().target_group_arns(&tg_arn).send().await.unwrap().target_groups()[0].clone();
    assert_eq!(got.health_check_path(), Some("/healthz"));
    assert_eq!(got.matcher().unwrap().http_code(), Some("200-299"));
    assert_eq!((got.healthy_threshold_count(), got.unhealthy_threshold_count()), (Some(3), Some(2)));
    assert_eq!(got.health_check_interval_seconds(), Some(10));
    assert!(has(&elb_tags(&elb, &tg_arn).await, "phoenix:resource", "tg"));
    let obs = observe(&p, "aws.lb_target_group", "tg", &attrs(tg_in.clone()), &tg).await.unwrap();
    for (k, v) in tg_in.as_object().unwrap() {
        assert_eq!(&obs.inputs[k], v, "{k}");
    }
    assert_eq!((obs.outputs["healthy_targets"].clone(), obs.outputs["unhealthy_targets"].clone()), (json!(0), json!(0)));

    // The health check changes in place (ModifyTargetGroup): same ARN, new path and threshold.
    let mut changed = tg_in.clone();
    changed["health_check_path"] = json!("/");
    changed["healthy_threshold"] = json!(5);
    let tg2 = p
        .update(update_req(
            "aws.lb_target_group",
            "tg",
            &attrs(tg_in.clone()),
            &tg,
            changed.clone(),
            &["health_check_path", "healthy_threshold"],
        ))
        .await
        .unwrap();
    assert_eq!(tg2["arn"], json!(tg_arn));
    let got = elb.describe_target_groups().target_group_arns(&tg_arn).send().await.unwrap().target_groups()[0].clone();
    assert_eq!((got.health_check_path(), got.healthy_threshold_count()), (Some("/"), Some(5)));

    // Registered targets show up in the refreshed health counts.
    let image = ec2.describe_images().owners("amazon").send().await.unwrap().images()[0].image_id().unwrap().to_string();
    let run = ec2.run_instances().image_id(image).min_count(2).max_count(2).subnet_id(
        ec2.describe_subnets()
            .filters(aws_sdk_ec2::types::Filter::builder().name("vpc-id").values(&vpc).build())
            .send()
            .await
            .unwrap()
            .subnets()[0]
            .subnet_id()
            .unwrap(),
    );
    let ids: Vec<String> = run.send().await.unwrap().instances().iter().map(|i| i.instance_id().unwrap().to_string()).collect();
    let targets: Vec<_> =
        ids.iter().map(|id| aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder().id(id).port(80).build()).collect();
    elb.register_targets().target_group_arn(&tg_arn).set_targets(Some(targets)).send().await.unwrap();
    let obs = observe(&p, "aws.lb_target_group", "tg", &attrs(changed.clone()), &tg2).await.unwrap();
    let counts = obs.outputs["healthy_targets"].as_i64().unwrap() + obs.outputs["unhealthy_targets"].as_i64().unwrap();
    assert_eq!(counts, 2, "{:?}", obs.outputs);

    // A listener forwarding to it; then the port moves in place.
    let l_in = json!({"load_balancer_arn": lb["arn"], "port": 80, "protocol": "HTTP", "target_group_arn": tg_arn});
    let l = p.create(create_req("aws.lb_listener", "http", l_in.clone())).await.unwrap();
    let l_arn = l["arn"].as_str().unwrap().to_string();
    let got = elb.describe_listeners().listener_arns(&l_arn).send().await.unwrap().listeners()[0].clone();
    assert_eq!(got.port(), Some(80));
    assert_eq!(got.default_actions()[0].target_group_arn(), Some(tg_arn.as_str()));
    assert!(has(&elb_tags(&elb, &l_arn).await, "phoenix:resource", "http"));
    let obs = observe(&p, "aws.lb_listener", "http", &attrs(l_in.clone()), &l).await.unwrap();
    for (k, v) in l_in.as_object().unwrap() {
        assert_eq!(&obs.inputs[k], v, "{k}");
    }
    assert_eq!(p.adopt(adopt_request("aws.lb_listener", "http", l_in.clone())).await.unwrap().unwrap().outputs["id"], json!(l_arn));
    let mut moved = l_in.clone();
    moved["port"] = json!(8080);
    p.update(update_req("aws.lb_listener", "http", &attrs(l_in.clone()), &l, moved.clone(), &["port"])).await.unwrap();
    assert_eq!(elb.describe_listeners().listener_arns(&l_arn).send().await.unwrap().listeners()[0].port(), Some(8080));

    // Teardown in reverse order; each delete is idempotent.
    for (ty, name, inputs, outputs) in
        [("aws.lb_listener", "http", moved, l), ("aws.lb_target_group", "tg", changed, tg2), ("aws.lb", "lb", lb_in, lb)]
    {
        p.delete(delete_req(ty, name, &attrs(inputs.clone()), &outputs)).await.unwrap();
        p.delete(delete_req(ty, name, &attrs(inputs.clone()), &outputs)).await.unwrap();
        assert!(observe(&p, ty, name, &attrs(inputs), &outputs).await.is_none(), "{ty} still there");
    }
}
