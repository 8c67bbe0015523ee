//! Every `aws.*` kind through the kind conformance suite
//! (`phoenix_testkit::conformance`) against moto, with the lost-answer case
//! through the fault proxy. Each test has its own moto.

mod support;

use std::sync::Arc;

use phoenix_core::provider::Provider;
use phoenix_testkit::conformance::{self, Case, Harness, Listed, Report};
use phoenix_testkit::fault_proxy::{FaultPlan, FaultProxy};
use serde_json::{Value, json};
use support::*;

const AL2023: &str = "al2023-ami-2023*-kernel-6.1-x86_64";
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOcNOEV3pBNwDnYoI/as3v1YXESI16vpWgSSf4Q6RaKX phoenix-test-1";

async fn conform(case: Case) -> Report {
    let moto = Moto::start();
    let proxy = Arc::new(FaultProxy::start(moto.port, FaultPlan::none()));
    let mut via_proxy = moto.block();
    via_proxy.insert("endpoint".into(), json!(proxy.endpoint()));
    let direct: Arc<dyn Provider> = moto.provider();
    let proxied: Arc<dyn Provider> = moto.provider_with(via_proxy);
    let report = conformance::run(&Harness { provider: direct, proxied: Some((proxied, proxy)) }, &case).await;
    assert_eq!(report.has("lost create answer"), case.create_request.is_some(), "{report:?}");
    report
}

/// `inputs` with `changes` laid over it (a table).
fn with(inputs: &Value, changes: Value) -> Value {
    let mut v = inputs.clone();
    for (k, c) in changes.as_object().expect("a table") {
        v[k] = c.clone();
    }
    v
}

fn in_vpc(case: Case) -> Case {
    case.need("vpc", "aws.vpc", json!({"cidr_block": "10.4.0.0/16"}))
}

/// A VPC with subnets in two zones (`a`, `b`).
fn in_two_zones(case: Case) -> Case {
    in_vpc(case).need("a", "aws.subnet", json!({"vpc_id": "${vpc.id}", "cidr_block": "10.4.0.0/24", "az_index": 0})).need(
        "b",
        "aws.subnet",
        json!({"vpc_id": "${vpc.id}", "cidr_block": "10.4.1.0/24", "az_index": 1}),
    )
}

fn with_instance(case: Case) -> Case {
    in_two_zones(case).need("vm", "aws.instance", json!({"ami_name": AL2023, "instance_type": "t3.micro", "subnet_id": "${a.id}"}))
}

#[tokio::test]
async fn vpc() {
    let v = json!({"cidr_block": "10.1.0.0/16", "tags": {"team": "web"}});
    conform(
        Case::new("aws.vpc", v.clone())
            .update(with(&v, json!({"enable_dns_hostnames": false})))
            .update(with(&v, json!({"enable_dns_hostnames": false, "tags": {"team": "api"}})))
            .replace(with(&v, json!({"enable_dns_hostnames": false, "tags": {"team": "api"}, "cidr_block": "10.2.0.0/16"})))
            .lost_answer_of("CreateVpc"),
    )
    .await;
}

#[tokio::test]
async fn subnet() {
    let v = json!({"vpc_id": "${vpc.id}", "cidr_block": "10.4.7.0/24", "az_index": 0});
    conform(
        in_vpc(Case::new("aws.subnet", v.clone()))
            .update(with(&v, json!({"map_public_ip_on_launch": true})))
            .update(with(&v, json!({"map_public_ip_on_launch": true, "tags": {"tier": "public"}})))
            .replace(with(&v, json!({"map_public_ip_on_launch": true, "tags": {"tier": "public"}, "cidr_block": "10.4.8.0/24"})))
            .lost_answer_of("CreateSubnet"),
    )
    .await;
}

#[tokio::test]
async fn internet_gateway() {
    conform(
        in_vpc(Case::new("aws.internet_gateway", json!({"vpc_id": "${vpc.id}"})))
            .need("other", "aws.vpc", json!({"cidr_block": "10.5.0.0/16"}))
            .update(json!({"vpc_id": "${vpc.id}", "tags": {"tier": "edge"}}))
            .replace(json!({"vpc_id": "${other.id}", "tags": {"tier": "edge"}}))
            .lost_answer_of("CreateInternetGateway"),
    )
    .await;
}

#[tokio::test]
async fn route_table() {
    let v = json!({"vpc_id": "${vpc.id}", "routes": [], "subnet_ids": []});
    conform(
        in_two_zones(Case::new("aws.route_table", v.clone()))
            .need("igw", "aws.internet_gateway", json!({"vpc_id": "${vpc.id}"}))
            .need("other", "aws.vpc", json!({"cidr_block": "10.5.0.0/16"}))
            .update(with(&v, json!({"routes": [{"cidr_block": "0.0.0.0/0", "gateway_id": "${igw.id}"}]})))
            .update(with(&v, json!({"routes": [{"cidr_block": "0.0.0.0/0", "gateway_id": "${igw.id}"}], "subnet_ids": ["${a.id}"]})))
            .replace(json!({"vpc_id": "${other.id}", "routes": [], "subnet_ids": []}))
            .lost_answer_of("CreateRouteTable"),
    )
    .await;
}

#[tokio::test]
async fn security_group() {
    let v = json!({"name": "c-sg", "vpc_id": "${vpc.id}",
        "ingress": [{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/8"]}]});
    conform(
        in_vpc(Case::new("aws.security_group", v.clone()))
            .update(with(&v, json!({"ingress": [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]}]})))
            .update(with(&v, json!({"egress": [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]}]})))
            .replace(with(&v, json!({"description": "web servers"})))
            .lost_answer_of("CreateSecurityGroup"),
    )
    .await;
}

#[tokio::test]
async fn key_pair() {
    let v = json!({"key_name": "c-key", "public_key": KEY});
    conform(
        Case::new("aws.key_pair", v.clone())
            .update(with(&v, json!({"tags": {"owner": "ops"}})))
            .replace(with(&v, json!({"tags": {"owner": "ops"}, "key_name": "c-key-2"})))
            .lost_answer_of("ImportKeyPair"),
    )
    .await;
}

#[tokio::test]
async fn instance() {
    let v = json!({"ami_name": AL2023, "instance_type": "t3.micro", "subnet_id": "${a.id}", "security_group_ids": ["${sg.id}"]});
    conform(
        in_two_zones(Case::new("aws.instance", v.clone()))
            .need("sg", "aws.security_group", json!({"name": "c-web", "vpc_id": "${vpc.id}"}))
            .need("sg2", "aws.security_group", json!({"name": "c-web2", "vpc_id": "${vpc.id}"}))
            .update(with(&v, json!({"instance_type": "t3.small"})))
            .update(with(
                &v,
                json!({"instance_type": "t3.small", "tags": {"role": "web"}, "security_group_ids": ["${sg.id}", "${sg2.id}"]}),
            ))
            .replace(with(&v, json!({"instance_type": "t3.small", "subnet_id": "${b.id}"})))
            .lost_answer_of("RunInstances"),
    )
    .await;
}

#[tokio::test]
async fn volume() {
    let v = json!({"availability_zone": "eu-west-1a", "size": 3});
    let report = conform(
        Case::new("aws.volume", v.clone())
            .update(with(&v, json!({"size": 4})))
            .update(with(&v, json!({"size": 4, "tags": {"role": "data"}})))
            .replace(with(&v, json!({"size": 4, "volume_type": "gp2"})))
            .lost_answer_of("CreateVolume"),
    )
    .await;
    assert!(report.has("snapshot and restore"), "a volume is stateful: {report:?}");
}

#[tokio::test]
async fn volume_attachment() {
    let v = json!({"volume_id": "${data.id}", "instance_id": "${vm.id}", "device_name": "/dev/sdf"});
    conform(
        with_instance(Case::new("aws.volume_attachment", v.clone()))
            .need("data", "aws.volume", json!({"availability_zone": "${vm.availability_zone}", "size": 3}))
            .replace(with(&v, json!({"device_name": "/dev/sdg"})))
            .listed(Listed::Under("data"))
            .lost_answer_of("AttachVolume"),
    )
    .await;
}

#[tokio::test]
async fn eip() {
    conform(
        with_instance(Case::new("aws.eip", json!({"instance_id": "${vm.id}"})))
            .update(json!({"instance_id": "${vm.id}", "tags": {"role": "front"}}))
            .update(json!({"tags": {"role": "front"}}))
            .lost_answer_of("AllocateAddress"),
    )
    .await;
}

#[tokio::test]
async fn launch_template() {
    let v = json!({"name": "c-lt", "ami_name": AL2023, "instance_type": "t3.micro"});
    conform(
        Case::new("aws.launch_template", v.clone())
            .update(with(&v, json!({"instance_type": "t3.small"})))
            .update(with(&v, json!({"instance_type": "t3.small", "user_data": "#!/bin/sh\necho hi\n"})))
            .replace(with(&v, json!({"name": "c-lt-2"})))
            .lost_answer_of("CreateLaunchTemplate"),
    )
    .await;
}

#[tokio::test]
async fn lb() {
    let v = json!({"name": "c-lb", "subnet_ids": ["${a.id}", "${b.id}"]});
    let report = conform(
        in_two_zones(Case::new("aws.lb", v.clone()))
            .need("sg", "aws.security_group", json!({"name": "c-lb", "vpc_id": "${vpc.id}"}))
            .update(with(&v, json!({"security_group_ids": ["${sg.id}"]})))
            .update(with(&v, json!({"security_group_ids": ["${sg.id}"], "tags": {"tier": "edge"}})))
            .replace(with(&v, json!({"security_group_ids": ["${sg.id}"], "internal": true}))),
        // No lost-answer case: AWS answers a repeated CreateLoadBalancer of the
        // same settings with the existing load balancer (the SDK's retry relies
        // on it), moto 5 makes a second one of the same name.
    )
    .await;
    assert!(report.has("imported by id"), "{report:?}");
}

#[tokio::test]
async fn lb_target_group() {
    let v = json!({"name": "c-tg", "port": 80, "vpc_id": "${vpc.id}"});
    let report = conform(
        in_vpc(Case::new("aws.lb_target_group", v.clone()))
            .update(with(&v, json!({"health_check_path": "/healthz"})))
            .update(with(&v, json!({"health_check_path": "/healthz", "healthy_threshold": 3, "tags": {"tier": "app"}})))
            .replace(with(&v, json!({"port": 8080})))
            .lost_answer_of("CreateTargetGroup"),
    )
    .await;
    assert!(report.has("imported by id"), "{report:?}");
}

#[tokio::test]
async fn lb_listener() {
    let v = json!({"load_balancer_arn": "${lb.arn}", "port": 80, "target_group_arn": "${tg.arn}"});
    let report = conform(
        in_two_zones(Case::new("aws.lb_listener", v.clone()))
            .need("lb", "aws.lb", json!({"name": "c-lb", "subnet_ids": ["${a.id}", "${b.id}"]}))
            .need("lb2", "aws.lb", json!({"name": "c-lb2", "subnet_ids": ["${a.id}", "${b.id}"]}))
            .need("tg", "aws.lb_target_group", json!({"name": "c-tg", "port": 80, "vpc_id": "${vpc.id}"}))
            .need("tg2", "aws.lb_target_group", json!({"name": "c-tg2", "port": 80, "vpc_id": "${vpc.id}"}))
            .update(with(&v, json!({"port": 8080})))
            .update(with(&v, json!({"port": 8080, "target_group_arn": "${tg2.arn}"})))
            .replace(with(&v, json!({"load_balancer_arn": "${lb2.arn}"}))),
        // No lost-answer case: AWS answers a repeated CreateListener of the same
        // settings with the existing listener, moto 5 makes a second one.
    )
    .await;
    assert!(report.has("imported by id"), "{report:?}");
}

fn autoscaled(case: Case) -> Case {
    in_two_zones(case).need("lt", "aws.launch_template", json!({"name": "c-lt", "ami_name": AL2023, "instance_type": "t3.micro"}))
}

#[tokio::test]
async fn autoscaling_group() {
    let v = json!({"name": "c-asg", "launch_template_id": "${lt.id}", "min_size": 1, "max_size": 3, "desired_capacity": 1,
        "subnet_ids": ["${a.id}"]});
    conform(
        autoscaled(Case::new("aws.autoscaling_group", v.clone()))
            .update(with(&v, json!({"desired_capacity": 2})))
            .update(with(&v, json!({"desired_capacity": 2, "max_size": 4, "subnet_ids": ["${a.id}", "${b.id}"]})))
            .replace(with(&v, json!({"name": "c-asg-2"})))
            .lost_answer_of("CreateAutoScalingGroup"),
    )
    .await;
}

#[tokio::test]
async fn autoscaling_policy() {
    let v = json!({"autoscaling_group_name": "${asg.name}", "name": "cpu", "target_value": 50});
    conform(
        autoscaled(Case::new("aws.autoscaling_policy", v.clone()))
            .need(
                "asg",
                "aws.autoscaling_group",
                json!({"name": "c-asg", "launch_template_id": "${lt.id}", "min_size": 0, "max_size": 2, "desired_capacity": 0, "subnet_ids": ["${a.id}"]}),
            )
            .update(with(&v, json!({"target_value": 60})))
            .replace(with(&v, json!({"target_value": 60, "name": "cpu-2"})))
            .listed(Listed::GoesWith("asg"))
            .lost_answer_of("PutScalingPolicy"),
    )
    .await;
}

#[tokio::test]
async fn db_subnet_group() {
    let v = json!({"name": "c-dbsub", "subnet_ids": ["${a.id}", "${b.id}"]});
    conform(
        in_two_zones(Case::new("aws.db_subnet_group", v.clone()))
            // Only tags: moto 5's ModifyDBSubnetGroup (description, subnets)
            // removes the group it modifies.
            .update(with(&v, json!({"tags": {"tier": "data"}})))
            .replace(with(&v, json!({"name": "c-dbsub-2"})))
            .lost_answer_of("CreateDBSubnetGroup"),
    )
    .await;
}

#[tokio::test]
async fn db_parameter_group() {
    let v = json!({"name": "c-pg", "family": "mysql8.0", "parameters": {"max_connections": "200"}});
    conform(
        Case::new("aws.db_parameter_group", v.clone())
            .update(with(&v, json!({"parameters": {"max_connections": "300"}})))
            .update(with(&v, json!({"parameters": {"max_connections": "300"}, "tags": {"tier": "data"}})))
            .replace(with(&v, json!({"name": "c-pg-2"})))
            .lost_answer_of("CreateDBParameterGroup"),
    )
    .await;
}

#[tokio::test]
async fn db_instance() {
    let v = json!({"identifier": "c-db", "engine": "mysql", "instance_class": "db.t3.micro", "allocated_storage": 20,
        "username": "app", "password": "correct-horse-battery", "skip_final_snapshot": true});
    let report = conform(
        Case::new("aws.db_instance", v.clone())
            .update(with(&v, json!({"instance_class": "db.t3.small"})))
            .update(with(&v, json!({"instance_class": "db.t3.small", "backup_retention_period": 7, "tags": {"tier": "data"}})))
            .replace(with(&v, json!({"identifier": "c-db-2"})))
            .lost_answer_of("CreateDBInstance"),
    )
    .await;
    assert!(report.has("snapshot and restore"), "a database is stateful: {report:?}");
}

#[tokio::test]
async fn db_cluster() {
    let v = json!({"cluster_identifier": "c-cl", "engine": "aurora-postgresql", "master_username": "app",
        "master_password": "correct-horse-battery", "db_subnet_group_name": "${dbsub.name}", "skip_final_snapshot": true});
    let report = conform(
        in_two_zones(Case::new("aws.db_cluster", v.clone()))
            .need("dbsub", "aws.db_subnet_group", json!({"name": "c-dbsub", "subnet_ids": ["${a.id}", "${b.id}"]}))
            .update(with(&v, json!({"backup_retention_period": 7})))
            .update(with(&v, json!({"backup_retention_period": 7, "port": 6432, "tags": {"tier": "data"}})))
            .replace(with(&v, json!({"cluster_identifier": "c-cl-2"})))
            // moto keeps a deleted cluster's automated snapshot, named by the minute.
            .fresh_names(&["cluster_identifier"])
            .lost_answer_of("CreateDBCluster"),
    )
    .await;
    assert!(report.has("snapshot and restore"), "a cluster is stateful: {report:?}");
}

#[tokio::test]
async fn route53_zone() {
    let v = json!({"name": "conformance.test"});
    let report = conform(
        Case::new("aws.route53_zone", v.clone())
            .update(with(&v, json!({"tags": {"team": "web"}})))
            .update(with(&v, json!({"tags": {"team": "web"}, "comment": "public"})))
            .replace(with(&v, json!({"name": "other.test"})))
            .lost_answer_of("POST */hostedzone"),
    )
    .await;
    assert!(report.has("imported by id"), "{report:?}");
}

#[tokio::test]
async fn route53_record() {
    let v = json!({"zone_id": "${zone.id}", "name": "www.conformance.test", "record_type": "A", "ttl": 60, "records": ["192.0.2.10"]});
    let report = conform(
        Case::new("aws.route53_record", v.clone())
            .need("zone", "aws.route53_zone", json!({"name": "conformance.test"}))
            .update(with(&v, json!({"records": ["192.0.2.20"]})))
            .update(with(&v, json!({"records": ["192.0.2.20", "192.0.2.21"], "ttl": 120})))
            .replace(with(&v, json!({"name": "api.conformance.test"})))
            .listed(Listed::Under("zone"))
            .lost_answer_of("POST */rrset"),
    )
    .await;
    assert!(report.has("imported by id"), "{report:?}");
}
