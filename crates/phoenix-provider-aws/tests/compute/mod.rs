//! Prerequisites of the compute tests (aws.instance, aws.volume, aws.volume_attachment),
//! made with the independent SDK client so these tests do not depend on the network kinds.
#![allow(dead_code)]

use phoenix_core::provider::{AdoptRequest, Provider};
use phoenix_core::value::Attrs;
use serde_json::json;

use crate::support::*;

/// An AMI name pattern moto knows in eu-west-1 (owned by `amazon`).
pub const AL2023: &str = "al2023-ami-2023*-kernel-6.1-x86_64";

/// A VPC, a subnet in eu-west-1a and two security groups; returns (subnet, [sg1, sg2]).
pub async fn network(ec2: &aws_sdk_ec2::Client) -> (String, [String; 2]) {
    let vpc = ec2.create_vpc().cidr_block("10.9.0.0/16").send().await.unwrap().vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.9.1.0/24")
        .availability_zone("eu-west-1a")
        .send()
        .await
        .unwrap()
        .subnet()
        .unwrap()
        .subnet_id()
        .unwrap()
        .to_string();
    let mut groups = Vec::new();
    for name in ["web", "ssh"] {
        let g = ec2.create_security_group().group_name(name).description(name).vpc_id(&vpc).send().await.unwrap();
        groups.push(g.group_id().unwrap().to_string());
    }
    (subnet, [groups[0].clone(), groups[1].clone()])
}

/// The newest AMI matching `pattern` owned by `owner`, looked up independently of the provider.
pub async fn newest_ami(ec2: &aws_sdk_ec2::Client, pattern: &str, owner: &str) -> String {
    let out = ec2
        .describe_images()
        .owners(owner)
        .filters(aws_sdk_ec2::types::Filter::builder().name("name").values(pattern).build())
        .send()
        .await
        .unwrap();
    let newest = out
        .images()
        .iter()
        .max_by_key(|i| (i.creation_date().map(str::to_string), i.name().map(str::to_string)))
        .expect("moto has such an AMI");
    newest.image_id().unwrap().to_string()
}

/// One instance as EC2 sees it.
pub async fn instance(ec2: &aws_sdk_ec2::Client, id: &str) -> aws_sdk_ec2::types::Instance {
    let out = ec2.describe_instances().instance_ids(id).send().await.unwrap();
    out.reservations()[0].instances()[0].clone()
}

/// One volume as EC2 sees it; `None` once it is deleted.
pub async fn volume(ec2: &aws_sdk_ec2::Client, id: &str) -> Option<aws_sdk_ec2::types::Volume> {
    let f = aws_sdk_ec2::types::Filter::builder().name("volume-id").values(id).build();
    ec2.describe_volumes().filters(f).send().await.unwrap().volumes().first().cloned()
}

pub fn tag(tags: &[aws_sdk_ec2::types::Tag], key: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_string)
}

pub fn adopt_req(ty: &str, name: &str, inputs: &Attrs) -> AdoptRequest {
    AdoptRequest {
        addr: phoenix_core::ResourceAddr::parse(name).unwrap(),
        type_name: ty.into(),
        inputs: inputs.clone(),
        ownership: ownership(name),
    }
}

/// The inputs of a small instance in `subnet`.
pub fn web(subnet: &str, groups: &[&str]) -> serde_json::Value {
    json!({"ami_name": AL2023, "ami_owner": "amazon", "instance_type": "t3.micro", "subnet_id": subnet, "security_group_ids": groups, "tags": {"team": "web"}})
}

/// Makes an instance through the provider; returns its outputs.
pub async fn make_instance(p: &dyn Provider, name: &str, inputs: &serde_json::Value) -> Attrs {
    p.create(create_req("aws.instance", name, inputs.clone())).await.unwrap()
}
