//! `phoenix up prod` (the three-tier application: ALB + web ASG, internal ALB +
//! backend ASG, RDS, Route 53) end to end against moto, through the binary as a
//! user runs it; every claim checked with independent SDK clients. (Every file in
//! `environments/`, prod and integration included, is validated by
//! `commands.rs::every_shipped_environment_validates_without_any_cloud`.)

mod support;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::Filter;
use phoenix_testkit::Moto;
use support::{Output, Project};

/// The database password: from the environment, so it must never show up in output or state.
const DB_PASSWORD: &str = "pw-Xq7-never-printed-4c1e";

fn run(project: &Project, moto: &Moto, args: &[&str]) -> Output {
    let mut c = support::command(&project.dir, args);
    c.envs(moto.env()).env("PROD_DB_PASSWORD", DB_PASSWORD).env("INTEGRATION_DB_PASSWORD", DB_PASSWORD);
    let out = c.output().expect("phoenix runs");
    Output::of(args, out)
}

macro_rules! client {
    ($name:ident, $sdk:ident) => {
        fn $name(moto: &Moto) -> $sdk::Client {
            let conf = $sdk::Config::builder()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .region($sdk::config::Region::new(Moto::REGION))
                .endpoint_url(moto.endpoint())
                .credentials_provider($sdk::config::Credentials::new("testing", "testing", None, None, "test"))
                .build();
            $sdk::Client::from_conf(conf)
        }
    };
}
client!(ec2, aws_sdk_ec2);
client!(elb, aws_sdk_elasticloadbalancingv2);
client!(autoscaling, aws_sdk_autoscaling);
client!(rds, aws_sdk_rds);
client!(route53, aws_sdk_route53);

fn prod() -> Filter {
    Filter::builder().name("tag:phoenix:environment").values("prod").build()
}

async fn group(asg: &aws_sdk_autoscaling::Client, name: &str) -> aws_sdk_autoscaling::types::AutoScalingGroup {
    asg.describe_auto_scaling_groups().auto_scaling_group_names(name).send().await.unwrap().auto_scaling_groups()[0].clone()
}

async fn target_count(elb: &aws_sdk_elasticloadbalancingv2::Client, tg: &str) -> (usize, usize) {
    let h = elb.describe_target_health().target_group_arn(tg).send().await.unwrap();
    let healthy = h
        .target_health_descriptions()
        .iter()
        .filter(|d| d.target_health().and_then(|t| t.state()).map(|s| s.as_str()) == Some("healthy"))
        .count();
    (healthy, h.target_health_descriptions().len())
}

/// Every file under `.phoenix/` of the project, as text (lossy), for secret scans.
fn state_text(project: &Project) -> String {
    let mut text = String::new();
    for rel in project.files_under(".phoenix") {
        let path = project.dir.join(".phoenix").join(&rel);
        if path.is_file() {
            text.push_str(&String::from_utf8_lossy(&std::fs::read(path).unwrap()));
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn prod_up_status_plan_scale_and_down_on_moto() {
    let moto = Moto::start();
    let project = Project::repo();
    let (ec2, elb, asg, rds, r53) = (ec2(&moto), elb(&moto), autoscaling(&moto), rds(&moto), route53(&moto));

    let up = run(&project, &moto, &["--json", "up", "prod", "--yes"]);
    assert_eq!(up.code, 0, "up failed:\n{}\n{}", up.stdout, up.stderr);

    // Load balancers: a public one and an internal one.
    let lbs = elb.describe_load_balancers().names("prod-front").names("prod-back").send().await.unwrap();
    let lb = |n: &str| lbs.load_balancers().iter().find(|l| l.load_balancer_name() == Some(n)).unwrap().clone();
    let (front, back) = (lb("prod-front"), lb("prod-back"));
    assert_eq!(front.scheme().unwrap().as_str(), "internet-facing");
    assert_eq!(back.scheme().unwrap().as_str(), "internal");
    assert_eq!(front.availability_zones().len(), 3);
    // Target groups with their health checks, and listeners forwarding to them.
    let tgs = elb.describe_target_groups().names("prod-front").names("prod-back").send().await.unwrap();
    let tg = |n: &str| tgs.target_groups().iter().find(|t| t.target_group_name() == Some(n)).unwrap().clone();
    let (front_tg, back_tg) = (tg("prod-front"), tg("prod-back"));
    assert_eq!((front_tg.port(), back_tg.port()), (Some(80), Some(8080)));
    assert_eq!((front_tg.health_check_path(), front_tg.matcher().unwrap().http_code()), (Some("/"), Some("200")));
    assert_eq!((front_tg.healthy_threshold_count(), front_tg.unhealthy_threshold_count()), (Some(3), Some(2)));
    for (lb, tg, port) in [(&front, &front_tg, 80), (&back, &back_tg, 8080)] {
        let ls = elb.describe_listeners().load_balancer_arn(lb.load_balancer_arn().unwrap()).send().await.unwrap();
        assert_eq!(ls.listeners().len(), 1);
        assert_eq!(ls.listeners()[0].port(), Some(port));
        assert_eq!(ls.listeners()[0].default_actions()[0].target_group_arn(), tg.target_group_arn());
    }
    // Auto scaling groups at their desired capacity, over three zones, in their target groups, on ELB health checks.
    for (name, desired, tg) in [("prod-front", 6, &front_tg), ("prod-back", 3, &back_tg)] {
        let g = group(&asg, name).await;
        assert_eq!((g.min_size(), g.desired_capacity()), (Some(3), Some(desired)), "{name}");
        assert_eq!(g.instances().len(), desired as usize, "{name}");
        assert!(g.instances().iter().all(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService")), "{name}");
        assert_eq!(g.health_check_type(), Some("ELB"));
        assert_eq!(g.availability_zones().len(), 3, "{name}");
        assert_eq!(g.target_group_arns(), [tg.target_group_arn().unwrap().to_string()]);
        assert_eq!(target_count(&elb, tg.target_group_arn().unwrap()).await, (desired as usize, desired as usize), "{name}");
        let policies = asg.describe_policies().auto_scaling_group_name(name).send().await.unwrap();
        assert_eq!(policies.scaling_policies().len(), 1);
        assert_eq!(policies.scaling_policies()[0].policy_type(), Some("TargetTrackingScaling"));
    }
    // The database: available, multi-AZ, production class, in its subnet group.
    let db = rds.describe_db_instances().db_instance_identifier("prod-db").send().await.unwrap().db_instances()[0].clone();
    assert_eq!((db.db_instance_status(), db.multi_az(), db.db_instance_class()), (Some("available"), Some(true), Some("db.r6g.large")));
    assert_eq!((db.engine(), db.allocated_storage()), (Some("mysql"), Some(100)));
    assert_eq!(db.db_subnet_group().unwrap().db_subnet_group_name(), Some("prod-db"));
    assert_eq!(db.db_parameter_groups()[0].db_parameter_group_name(), Some("prod-mysql"));
    // Route 53: www is a failover pair, the primary an alias to the public load balancer.
    let zones = r53.list_hosted_zones_by_name().dns_name("prod.phoenix.example").send().await.unwrap();
    let zone = zones.hosted_zones().iter().find(|z| z.name() == "prod.phoenix.example.").expect("the zone").id().to_string();
    let sets = r53.list_resource_record_sets().hosted_zone_id(&zone).send().await.unwrap();
    let www: Vec<_> = sets.resource_record_sets().iter().filter(|r| r.name().trim_end_matches('.') == "www.prod.phoenix.example").collect();
    assert_eq!(www.len(), 2, "{www:?}");
    let primary = www.iter().find(|r| r.failover().map(|f| f.as_str()) == Some("PRIMARY")).unwrap();
    let alias = primary.alias_target().expect("an alias");
    assert_eq!(alias.dns_name().trim_end_matches('.'), front.dns_name().unwrap());
    assert_eq!(alias.hosted_zone_id(), front.canonical_hosted_zone_id().unwrap());
    assert!(www.iter().any(|r| r.failover().map(|f| f.as_str()) == Some("SECONDARY") && r.alias_target().is_none()));

    // The stable endpoint is an output; status shows the DNS name, target health and instance counts.
    let endpoint = run(&project, &moto, &["output", "prod", "endpoint"]);
    assert_eq!(endpoint.stdout.trim(), "http://www.prod.phoenix.example/");
    let lb_dns = run(&project, &moto, &["output", "prod", "lb_dns_name"]);
    assert_eq!(lb_dns.stdout.trim(), front.dns_name().unwrap());
    let status = run(&project, &moto, &["status", "prod", "--refresh"]);
    assert_eq!(status.code, 0, "{}\n{}", status.stdout, status.stderr);
    let line_of = |addr: &str| -> String {
        let lines: Vec<&str> = status.stdout.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.trim_start().starts_with(&format!("{addr} ")))
            .unwrap_or_else(|| panic!("{addr} in\n{}", status.stdout));
        lines[i + 1].to_string()
    };
    assert!(line_of("front-lb").contains(&format!("dns_name: {}", front.dns_name().unwrap())), "{}", status.stdout);
    assert!(
        line_of("front-tg").contains("healthy_targets: 6") && line_of("front-tg").contains("unhealthy_targets: 0"),
        "{}",
        status.stdout
    );
    assert!(line_of("front-asg").contains("instance_count: 6"), "{}", status.stdout);
    assert!(line_of("back-asg").contains("instance_count: 3"), "{}", status.stdout);
    let json = run(&project, &moto, &["--json", "status", "prod", "--refresh"]);
    let doc = json.event("status").unwrap();
    let res = doc["resources"].as_array().unwrap().iter().find(|r| r["addr"] == "front-asg").unwrap().clone();
    assert_eq!(res["highlights"]["instance_count"], 6);

    // No changes: exit 0 with --detailed-exitcode.
    let plan = run(&project, &moto, &["plan", "prod", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);

    // Scale the web tier: exactly one in-place update, then the group has 8 in service in the same group.
    let plan = run(&project, &moto, &["--json", "plan", "prod", "--var", "front_desired=8", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let changes = plan.event("plan").unwrap()["plan"]["changes"].as_array().unwrap().clone();
    let acted: Vec<(String, String)> = changes
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| (c["addr"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(acted, vec![("front-asg".to_string(), "update".to_string())]);
    let before = group(&asg, "prod-front").await;
    let up = run(&project, &moto, &["up", "prod", "--yes", "--var", "front_desired=8"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let after = group(&asg, "prod-front").await;
    assert_eq!(after.auto_scaling_group_arn(), before.auto_scaling_group_arn(), "updated in place");
    assert_eq!((after.desired_capacity(), after.instances().len()), (Some(8), 8));
    assert_eq!(target_count(&elb, front_tg.target_group_arn().unwrap()).await.1, 8);
    let plan = run(&project, &moto, &["plan", "prod", "--var", "front_desired=8", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);

    // The password never appears: not in any output, not in state, journal or history.
    let all_output = [&up, &plan, &status, &json].iter().map(|o| format!("{}{}", o.stdout, o.stderr)).collect::<String>();
    assert!(!all_output.contains(DB_PASSWORD));
    assert!(!state_text(&project).contains(DB_PASSWORD), "the password is in .phoenix/");

    // down: the final DB snapshot stays; nothing else tagged by Phoenix remains.
    let down = run(&project, &moto, &["down", "prod", "--yes", "--var", "front_desired=8"]);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    let snap = rds.describe_db_snapshots().db_snapshot_identifier("prod-db-final").send().await.unwrap();
    assert_eq!(snap.db_snapshots()[0].db_instance_identifier(), Some("prod-db"));
    assert!(rds.describe_db_instances().send().await.unwrap().db_instances().is_empty());
    assert!(rds.describe_db_subnet_groups().send().await.unwrap().db_subnet_groups().is_empty());
    let groups = rds.describe_db_parameter_groups().send().await.unwrap();
    assert!(groups.db_parameter_groups().iter().all(|g| g.db_parameter_group_name() != Some("prod-mysql")));
    assert!(elb.describe_load_balancers().send().await.unwrap().load_balancers().is_empty());
    assert!(elb.describe_target_groups().send().await.unwrap().target_groups().is_empty());
    let tagged_groups = asg
        .describe_auto_scaling_groups()
        .filters(aws_sdk_autoscaling::types::Filter::builder().name("tag:phoenix:environment").values("prod").build())
        .send()
        .await
        .unwrap();
    assert!(tagged_groups.auto_scaling_groups().is_empty());
    assert!(r53.list_hosted_zones().send().await.unwrap().hosted_zones().is_empty());
    let live = ec2
        .describe_instances()
        .filters(prod())
        .filters(
            Filter::builder().name("instance-state-name").values("pending").values("running").values("stopping").values("stopped").build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(live.reservations().iter().map(|r| r.instances().len()).sum::<usize>(), 0, "instances left");
    assert!(ec2.describe_vpcs().filters(prod()).send().await.unwrap().vpcs().is_empty());
    assert!(ec2.describe_subnets().filters(prod()).send().await.unwrap().subnets().is_empty());
    assert!(ec2.describe_security_groups().filters(prod()).send().await.unwrap().security_groups().is_empty());
    assert!(ec2.describe_internet_gateways().filters(prod()).send().await.unwrap().internet_gateways().is_empty());
    assert!(ec2.describe_route_tables().filters(prod()).send().await.unwrap().route_tables().is_empty());
    assert!(ec2.describe_launch_templates().filters(prod()).send().await.unwrap().launch_templates().is_empty());
}

fn tag_pairs<'a>(pairs: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>) -> BTreeMap<String, String> {
    pairs.filter_map(|(k, v)| Some((k?.to_string(), v.unwrap_or_default().to_string()))).collect()
}

/// Every application-tier object (and the network under it) carrying
/// `phoenix:instance = inst`, by type, read with the services' own APIs.
async fn app_tier_of(moto: &Moto, inst: &str) -> BTreeMap<&'static str, usize> {
    let (ec2, elb, asg, rds, r53) = (ec2(moto), elb(moto), autoscaling(moto), rds(moto), route53(moto));
    let mine = |t: &BTreeMap<String, String>| t.get("phoenix:instance").map(String::as_str) == Some(inst);
    let mut n = BTreeMap::new();
    let by_tag = || Filter::builder().name("tag:phoenix:instance").values(inst).build();
    n.insert("vpc", ec2.describe_vpcs().filters(by_tag()).send().await.unwrap().vpcs().len());
    n.insert("launch_template", ec2.describe_launch_templates().filters(by_tag()).send().await.unwrap().launch_templates().len());
    let running = Filter::builder().name("instance-state-name").values("pending").values("running").build();
    let reservations = ec2.describe_instances().filters(by_tag()).filters(running).send().await.unwrap();
    n.insert("instance", reservations.reservations().iter().map(|r| r.instances().len()).sum());
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    let tgs = elb.describe_target_groups().send().await.unwrap();
    let mut arns: Vec<(&'static str, String)> = Vec::new();
    for lb in lbs.load_balancers() {
        let arn = lb.load_balancer_arn().unwrap().to_string();
        for l in elb.describe_listeners().load_balancer_arn(&arn).send().await.unwrap().listeners() {
            arns.push(("lb_listener", l.listener_arn().unwrap().to_string()));
        }
        arns.push(("lb", arn));
    }
    arns.extend(tgs.target_groups().iter().map(|t| ("lb_target_group", t.target_group_arn().unwrap().to_string())));
    for (kind, arn) in arns {
        let d = elb.describe_tags().resource_arns(&arn).send().await.unwrap();
        if mine(&tag_pairs(d.tag_descriptions()[0].tags().iter().map(|t| (t.key(), t.value())))) {
            *n.entry(kind).or_default() += 1;
        }
    }
    for g in asg.describe_auto_scaling_groups().send().await.unwrap().auto_scaling_groups() {
        if mine(&tag_pairs(g.tags().iter().map(|t| (t.key(), t.value())))) {
            *n.entry("autoscaling_group").or_default() += 1;
        }
    }
    for d in rds.describe_db_instances().send().await.unwrap().db_instances() {
        if mine(&tag_pairs(d.tag_list().iter().map(|t| (t.key(), t.value())))) {
            *n.entry("db_instance").or_default() += 1;
        }
    }
    for g in rds.describe_db_subnet_groups().send().await.unwrap().db_subnet_groups() {
        let t = rds.list_tags_for_resource().resource_name(g.db_subnet_group_arn().unwrap()).send().await.unwrap();
        if mine(&tag_pairs(t.tag_list().iter().map(|t| (t.key(), t.value())))) {
            *n.entry("db_subnet_group").or_default() += 1;
        }
    }
    for g in rds.describe_db_parameter_groups().send().await.unwrap().db_parameter_groups() {
        let t = rds.list_tags_for_resource().resource_name(g.db_parameter_group_arn().unwrap()).send().await.unwrap();
        if mine(&tag_pairs(t.tag_list().iter().map(|t| (t.key(), t.value())))) {
            *n.entry("db_parameter_group").or_default() += 1;
        }
    }
    for z in r53.list_hosted_zones().send().await.unwrap().hosted_zones() {
        let id = z.id().rsplit('/').next().unwrap();
        let t =
            r53.list_tags_for_resource().resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone).resource_id(id).send().await;
        let Ok(t) = t else { continue };
        if mine(&tag_pairs(t.resource_tag_set().unwrap().tags().iter().map(|t| (t.key(), t.value())))) {
            *n.entry("route53_zone").or_default() += 1;
            let sets = r53.list_resource_record_sets().hosted_zone_id(id).send().await.unwrap();
            *n.entry("route53_record").or_default() += sets.resource_record_sets().len();
        }
    }
    n.retain(|_, v| *v > 0);
    n
}

/// `phoenix gc` on the application tier: a CI job's whole three-tier copy whose
/// state was lost is found through every service (ELBv2, Auto Scaling, RDS,
/// Route 53, EC2) and destroyed; a live copy — including a record someone added
/// to its zone by hand and the instances its auto scaling groups launched,
/// which no state lists — is left alone, and nothing is reported as not swept.
#[tokio::test(flavor = "multi_thread")]
async fn gc_sweeps_a_leaked_application_tier_and_leaves_a_live_one_alone() {
    let moto = Moto::start();
    let project = Project::repo();
    for inst in ["leak", "keep"] {
        let up = run(&project, &moto, &["up", "integration", "--instance", inst, "--yes"]);
        assert_eq!(up.code, 0, "up {inst}:\n{}\n{}", up.stdout, up.stderr);
    }
    let leak_before = app_tier_of(&moto, "leak").await;
    for kind in
        ["lb", "lb_listener", "lb_target_group", "launch_template", "autoscaling_group", "db_instance", "db_subnet_group", "route53_zone"]
    {
        assert!(leak_before.get(kind).is_some_and(|n| *n > 0), "{kind} made by up: {leak_before:?}");
    }
    // A record added by hand to the live copy's zone: no state knows it, no tag marks it.
    let r53 = route53(&moto);
    let zones = r53.list_hosted_zones().send().await.unwrap();
    let mut keep_zone = None;
    for z in zones.hosted_zones() {
        let id = z.id().rsplit('/').next().unwrap().to_string();
        let t =
            r53.list_tags_for_resource().resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone).resource_id(&id).send().await;
        if t.unwrap().resource_tag_set().unwrap().tags().iter().any(|t| t.key() == Some("phoenix:instance") && t.value() == Some("keep")) {
            keep_zone = Some((id, z.name().to_string()));
        }
    }
    let (keep_zone, zone_name) = keep_zone.expect("keep's zone");
    let by_hand = aws_sdk_route53::types::ResourceRecordSet::builder()
        .name(format!("hand.{zone_name}"))
        .r#type(aws_sdk_route53::types::RrType::Txt)
        .ttl(60)
        .resource_records(aws_sdk_route53::types::ResourceRecord::builder().value("\"made by hand\"").build().unwrap())
        .build()
        .unwrap();
    let change = |action| {
        let c = aws_sdk_route53::types::Change::builder().action(action).resource_record_set(by_hand.clone()).build().unwrap();
        r53.change_resource_record_sets()
            .hosted_zone_id(&keep_zone)
            .change_batch(aws_sdk_route53::types::ChangeBatch::builder().changes(c).build().unwrap())
            .send()
    };
    change(aws_sdk_route53::types::ChangeAction::Create).await.unwrap();
    let keep_before = app_tier_of(&moto, "keep").await;

    // The leaking job's state is lost for good.
    std::fs::remove_dir_all(project.dir.join(".phoenix/state/integration.leak")).expect("leak's state directory");

    let dry = run(&project, &moto, &["--json", "gc", "integration", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    let leaks: Vec<serde_json::Value> = dry.events().into_iter().filter(|e| e["type"] == "gc_leak").collect();
    assert!(leaks.iter().all(|l| l["instance"] == "leak"), "only leak's objects: {leaks:?}");
    let types: BTreeSet<String> = leaks.iter().map(|l| l["resource_type"].as_str().unwrap().to_string()).collect();
    for kind in leak_before.keys() {
        assert!(types.contains(&format!("aws.{kind}")), "aws.{kind} is listed as a leak: {types:?}");
    }
    let fin = dry.event("gc_finished").expect("gc_finished");
    assert_eq!(fin["unsupported_types"], serde_json::json!([]), "every AWS type is swept: {fin}");
    assert_eq!(app_tier_of(&moto, "leak").await, leak_before, "a dry run changes nothing");

    let gc = run(&project, &moto, &["gc", "integration", "--yes"]);
    assert_eq!(gc.code, 0, "{}{}", gc.stdout, gc.stderr);
    assert!(!gc.stdout.contains("not swept"), "{}", gc.stdout);
    assert_eq!(app_tier_of(&moto, "leak").await, BTreeMap::new(), "nothing of the leaked copy is left");
    assert_eq!(app_tier_of(&moto, "keep").await, keep_before, "the live copy, its hand-made record included, is untouched");

    let again = run(&project, &moto, &["--json", "gc", "integration", "--yes"]);
    let fin = again.event("gc_finished").expect("gc_finished");
    assert_eq!(fin["leaks"], 0, "{fin}");
    // Route 53 keeps a zone with records in it: the hand-made one goes first, by hand.
    change(aws_sdk_route53::types::ChangeAction::Delete).await.unwrap();
    let down = run(&project, &moto, &["down", "integration", "--instance", "keep", "--yes"]);
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
}
