//! `aws.launch_template`, `aws.autoscaling_group` and `aws.autoscaling_policy` against moto
//! through the real SDK; every claim checked with independent EC2 / Auto Scaling clients.

mod support;

use phoenix_core::provider::Provider;
use serde_json::json;
use support::*;

/// An AMI name pattern moto knows in eu-west-1 (owned by `amazon`).
const AL2023: &str = "al2023-ami-2023*-kernel-6.1-x86_64";

#[tokio::test]
async fn launch_template_resolves_the_ami_and_changes_by_new_default_version() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let inputs = json!({"name": "web-lt", "ami_name": AL2023, "instance_type": "t3.micro", "user_data": "#!/bin/sh\necho hi\n"});
    let out = p.create(create_req("aws.launch_template", "lt", inputs.clone())).await.unwrap();
    let id = out["id"].as_str().unwrap().to_string();
    assert_eq!(out["latest_version"], json!(1));
    let image = out["image_id"].as_str().unwrap().to_string();
    assert!(image.starts_with("ami-"), "{image}");

    let t = ec2.describe_launch_templates().launch_template_ids(&id).send().await.unwrap().launch_templates()[0].clone();
    assert_eq!(t.launch_template_name(), Some("web-lt"));
    assert!(t.tags().iter().any(|t| t.key() == Some("phoenix:resource") && t.value() == Some("lt")));
    let v = ec2.describe_launch_template_versions().launch_template_id(&id).versions("1").send().await.unwrap();
    let data = v.launch_template_versions()[0].launch_template_data().unwrap();
    assert_eq!((data.image_id(), data.instance_type().map(|t| t.as_str())), (Some(image.as_str()), Some("t3.micro")));
    assert_eq!(
        data.user_data().map(|u| String::from_utf8(aws_smithy_types::base64::decode(u).unwrap()).unwrap()).as_deref(),
        Some("#!/bin/sh\necho hi\n")
    );

    // A new instance type is a new version, made the default: same template, latest_version 2.
    let mut bigger = inputs.clone();
    bigger["instance_type"] = json!("t3.small");
    let new =
        p.update(update_req("aws.launch_template", "lt", &attrs(inputs.clone()), &out, bigger.clone(), &["instance_type"])).await.unwrap();
    assert_eq!((new["id"].clone(), new["latest_version"].clone()), (json!(id), json!(2)));
    let t = ec2.describe_launch_templates().launch_template_ids(&id).send().await.unwrap().launch_templates()[0].clone();
    assert_eq!((t.default_version_number(), t.latest_version_number()), (Some(2), Some(2)));
    let v = ec2.describe_launch_template_versions().launch_template_id(&id).versions("2").send().await.unwrap();
    assert_eq!(v.launch_template_versions()[0].launch_template_data().unwrap().instance_type().unwrap().as_str(), "t3.small");

    // Refresh and adoption by tags.
    let obs = observe(&p, "aws.launch_template", "lt", &attrs(bigger.clone()), &new).await.unwrap();
    assert_eq!((obs.inputs["name"].clone(), obs.outputs["latest_version"].clone()), (json!("web-lt"), json!(2)));
    assert_eq!(p.adopt(adopt_request("aws.launch_template", "lt", bigger.clone())).await.unwrap().unwrap().outputs["id"], json!(id));

    p.delete(delete_req("aws.launch_template", "lt", &attrs(bigger.clone()), &new)).await.unwrap();
    p.delete(delete_req("aws.launch_template", "lt", &attrs(bigger.clone()), &new)).await.unwrap();
    assert!(observe(&p, "aws.launch_template", "lt", &attrs(bigger), &new).await.is_none());
}

#[tokio::test]
async fn autoscaling_group_over_three_zones_in_a_target_group_scales_in_place_with_a_policy() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let asg = autoscaling(&moto);
    let elb = elb(&moto);
    let (vpc, subnets) = three_zone_network(&ec2).await;
    let lt = p
        .create(create_req("aws.launch_template", "lt", json!({"name": "app-lt", "ami_name": AL2023, "instance_type": "t3.micro"})))
        .await
        .unwrap();
    let tg_inputs = json!({"name": "app-tg", "port": 80, "vpc_id": vpc, "health_check_path": "/"});
    let tg = p.create(create_req("aws.lb_target_group", "tg", tg_inputs.clone())).await.unwrap();
    let tg_arn = tg["arn"].as_str().unwrap().to_string();

    let inputs = json!({
        "name": "app", "launch_template_id": lt["id"], "launch_template_version": 1,
        "min_size": 2, "max_size": 6, "desired_capacity": 3, "subnet_ids": subnets.clone(),
        "target_group_arns": [tg_arn], "health_check_type": "ELB", "health_check_grace_period": 60,
        "tags": {"tier": "app"},
    });
    let out = p.create(create_req("aws.autoscaling_group", "app-asg", inputs.clone())).await.unwrap();
    assert_eq!((out["id"].clone(), out["instance_count"].clone(), out["in_service"].clone()), (json!("app"), json!(3), json!(3)));

    // Independently: three instances over the three zones, registered in the target group, ELB health checks.
    let g = asg.describe_auto_scaling_groups().auto_scaling_group_names("app").send().await.unwrap().auto_scaling_groups()[0].clone();
    assert_eq!((g.min_size(), g.max_size(), g.desired_capacity()), (Some(2), Some(6), Some(3)));
    assert_eq!(g.health_check_type(), Some("ELB"));
    assert_eq!(g.target_group_arns(), [tg_arn.clone()]);
    assert_eq!(g.launch_template().unwrap().version(), Some("1"));
    // The group spans the three zones. (moto 5.2 launches every instance into the first
    // subnet, so where the instances landed is not evidence of anything here.)
    let zones: std::collections::BTreeSet<_> = g.availability_zones().iter().collect();
    assert_eq!(zones.len(), 3, "{zones:?}");
    assert_eq!(g.vpc_zone_identifier().unwrap().split(',').count(), 3);
    let health = elb.describe_target_health().target_group_arn(&tg_arn).send().await.unwrap();
    assert_eq!(health.target_health_descriptions().len(), 3);
    // The ownership tags propagate to the instances it launches.
    let tagged = ec2
        .describe_instances()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:phoenix:resource").values("app-asg").build())
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.reservations().iter().map(|r| r.instances().len()).sum::<usize>(), 3);

    // Refresh: no drift; the target group counts its three targets.
    let obs = observe(&p, "aws.autoscaling_group", "app-asg", &attrs(inputs.clone()), &out).await.unwrap();
    for k in [
        "name",
        "launch_template_id",
        "launch_template_version",
        "min_size",
        "max_size",
        "desired_capacity",
        "subnet_ids",
        "target_group_arns",
        "health_check_type",
        "health_check_grace_period",
        "tags",
    ] {
        assert_eq!(obs.inputs[k], inputs[k], "{k}");
    }
    let tg_obs = observe(&p, "aws.lb_target_group", "tg", &attrs(tg_inputs), &tg).await.unwrap();
    assert_eq!(tg_obs.outputs["healthy_targets"].as_i64().unwrap() + tg_obs.outputs["unhealthy_targets"].as_i64().unwrap(), 3);
    assert!(p.adopt(adopt_request("aws.autoscaling_group", "app-asg", inputs.clone())).await.unwrap().is_some());
    assert!(p.adopt(adopt_request("aws.autoscaling_group", "not-ours", inputs.clone())).await.unwrap().is_none());

    // Desired capacity changes in place and the update waits for it.
    let mut scaled = inputs.clone();
    scaled["desired_capacity"] = json!(5);
    let new = p
        .update(update_req("aws.autoscaling_group", "app-asg", &attrs(inputs.clone()), &out, scaled.clone(), &["desired_capacity"]))
        .await
        .unwrap();
    assert_eq!(new["instance_count"], json!(5));
    let g = asg.describe_auto_scaling_groups().auto_scaling_group_names("app").send().await.unwrap().auto_scaling_groups()[0].clone();
    assert_eq!((g.desired_capacity(), g.instances().len(), g.auto_scaling_group_arn()), (Some(5), 5, out["arn"].as_str()));

    // A target tracking policy, changed in place.
    let pol_in = json!({"autoscaling_group_name": "app", "name": "cpu50", "metric": "ASGAverageCPUUtilization", "target_value": 50});
    let pol = p.create(create_req("aws.autoscaling_policy", "cpu", pol_in.clone())).await.unwrap();
    assert!(pol["arn"].as_str().unwrap().starts_with("arn:aws:autoscaling:"), "{pol:?}");
    let got = asg.describe_policies().auto_scaling_group_name("app").send().await.unwrap().scaling_policies()[0].clone();
    assert_eq!(got.policy_type(), Some("TargetTrackingScaling"));
    assert_eq!(got.target_tracking_configuration().unwrap().target_value(), Some(50.0));
    let obs = observe(&p, "aws.autoscaling_policy", "cpu", &attrs(pol_in.clone()), &pol).await.unwrap();
    for k in ["autoscaling_group_name", "name", "metric", "target_value"] {
        assert_eq!(obs.inputs[k], pol_in[k], "{k}");
    }
    let mut pol2 = pol_in.clone();
    pol2["target_value"] = json!(70.0);
    p.update(update_req("aws.autoscaling_policy", "cpu", &attrs(pol_in.clone()), &pol, pol2.clone(), &["target_value"])).await.unwrap();
    let got = asg.describe_policies().auto_scaling_group_name("app").send().await.unwrap().scaling_policies()[0].clone();
    assert_eq!(got.target_tracking_configuration().unwrap().target_value(), Some(70.0));
    p.delete(delete_req("aws.autoscaling_policy", "cpu", &attrs(pol2.clone()), &pol)).await.unwrap();
    assert!(asg.describe_policies().auto_scaling_group_name("app").send().await.unwrap().scaling_policies().is_empty());

    // Delete terminates the instances with the group and waits until the group is gone.
    p.delete(delete_req("aws.autoscaling_group", "app-asg", &attrs(scaled.clone()), &new)).await.unwrap();
    assert!(asg.describe_auto_scaling_groups().auto_scaling_group_names("app").send().await.unwrap().auto_scaling_groups().is_empty());
    let live = ec2
        .describe_instances()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:phoenix:resource").values("app-asg").build())
        .filters(aws_sdk_ec2::types::Filter::builder().name("instance-state-name").values("pending").values("running").build())
        .send()
        .await
        .unwrap();
    assert_eq!(live.reservations().iter().map(|r| r.instances().len()).sum::<usize>(), 0);
    p.delete(delete_req("aws.autoscaling_group", "app-asg", &attrs(scaled.clone()), &new)).await.unwrap();
}

/// A new launch template version rolls the group (UpdateAutoScalingGroup, then StartInstanceRefresh).
/// moto 5.2 does not implement StartInstanceRefresh: the group is updated and the refresh call fails
/// with moto's "not implemented" answer, which Phoenix reports rather than hides.
#[tokio::test]
async fn launch_template_change_updates_the_group_then_asks_for_an_instance_refresh() {
    let moto = Moto::start();
    let p = moto.provider();
    let asg = autoscaling(&moto);
    let (_, subnets) = three_zone_network(&moto.ec2().await).await;
    let lt = p
        .create(create_req("aws.launch_template", "lt", json!({"name": "r-lt", "ami_name": AL2023, "instance_type": "t3.micro"})))
        .await
        .unwrap();
    let inputs = json!({"name": "roll", "launch_template_id": lt["id"], "launch_template_version": 1,
        "min_size": 1, "max_size": 3, "desired_capacity": 2, "subnet_ids": subnets});
    let out = p.create(create_req("aws.autoscaling_group", "roll", inputs.clone())).await.unwrap();
    let mut v2 = inputs.clone();
    v2["launch_template_version"] = json!(2);
    let e =
        p.update(update_req("aws.autoscaling_group", "roll", &attrs(inputs), &out, v2, &["launch_template_version"])).await.unwrap_err();
    assert!(e.message.contains("StartInstanceRefresh"), "{}", e.message);
    let g = asg.describe_auto_scaling_groups().auto_scaling_group_names("roll").send().await.unwrap().auto_scaling_groups()[0].clone();
    assert_eq!(g.launch_template().unwrap().version(), Some("2"));
}
