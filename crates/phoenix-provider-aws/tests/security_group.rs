//! `aws.security_group` and its rules against moto through the real SDK;
//! every effect is checked with an independent SDK client.

mod support;

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, Tag};
use phoenix_core::provider::{AdoptRequest, Provider};
use serde_json::json;
use support::*;

fn tag(tags: &[Tag], k: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string)
}

/// (protocol, from, to, cidr, description) of each single rule.
type Rules = BTreeSet<(String, Option<i32>, Option<i32>, String, String)>;

fn flat(perms: &[IpPermission]) -> Rules {
    let mut out = BTreeSet::new();
    for p in perms {
        for r in p.ip_ranges() {
            out.insert((
                p.ip_protocol().unwrap().to_string(),
                p.from_port(),
                p.to_port(),
                r.cidr_ip().unwrap().to_string(),
                r.description().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

fn rule(proto: &str, from: Option<i32>, to: Option<i32>, cidr: &str, desc: &str) -> (String, Option<i32>, Option<i32>, String, String) {
    (proto.into(), from, to, cidr.into(), desc.into())
}

async fn group(ec2: &aws_sdk_ec2::Client, id: &str) -> aws_sdk_ec2::types::SecurityGroup {
    ec2.describe_security_groups().group_ids(id).send().await.unwrap().security_groups()[0].clone()
}

#[tokio::test]
async fn rules_create_refresh_drift_update_adopt_delete() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let vpc =
        p.create(create_req("aws.vpc", "net", json!({"cidr_block": "10.4.0.0/16"}))).await.unwrap()["id"].as_str().unwrap().to_string();

    // As the planner passes it: defaults filled in (description, all-out egress).
    let web = json!({
        "name": "web", "vpc_id": vpc, "description": "Managed by Phoenix",
        "ingress": [
            {"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": ["10.0.0.0/8"], "description": "ssh"},
            {"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["0.0.0.0/0", "10.0.0.0/8"]},
        ],
        "egress": [{"protocol": "-1", "cidr_blocks": ["0.0.0.0/0"]}],
        "tags": {"tier": "web"},
    });
    let before = p.api_calls();
    let out = p.create(create_req("aws.security_group", "web", web.clone())).await.unwrap();
    assert_eq!(p.api_calls() - before, 2, "CreateSecurityGroup and one AuthorizeSecurityGroupIngress; EC2's egress rule is kept");
    let id = out["id"].as_str().unwrap().to_string();

    // Independently: name, description, rules and tags.
    let g = group(&ec2, &id).await;
    assert_eq!((g.group_name(), g.description(), g.vpc_id()), (Some("web"), Some("Managed by Phoenix"), Some(vpc.as_str())));
    let want: Rules = [
        rule("tcp", Some(22), Some(22), "10.0.0.0/8", "ssh"),
        rule("tcp", Some(80), Some(80), "0.0.0.0/0", ""),
        rule("tcp", Some(80), Some(80), "10.0.0.0/8", ""),
    ]
    .into();
    assert_eq!(flat(g.ip_permissions()), want);
    assert_eq!(flat(g.ip_permissions_egress()), [rule("-1", None, None, "0.0.0.0/0", "")].into());
    assert_eq!(tag(g.tags(), "phoenix:resource").as_deref(), Some("web"));
    assert_eq!(tag(g.tags(), "phoenix:lineage").as_deref(), Some("lineage-test"));
    assert_eq!(tag(g.tags(), "Name").as_deref(), Some("test-web"));
    assert_eq!(tag(g.tags(), "tier").as_deref(), Some("web"));

    // Two more groups; all three refreshed in one call with no drift
    // (EC2 regroups the port-80 ranges and the ssh rule; that is not drift).
    let mut made = vec![("web".to_string(), attrs(web.clone()), out.clone())];
    for name in ["db", "cache"] {
        let inputs = json!({"name": name, "vpc_id": vpc, "description": format!("{name} tier"), "ingress": [{"protocol": "tcp", "from_port": 5432, "cidr_blocks": ["10.4.0.0/16"]}], "egress": []});
        let o = p.create(create_req("aws.security_group", name, inputs.clone())).await.unwrap();
        made.push((name.to_string(), attrs(inputs), o));
    }
    let db = group(&ec2, made[1].2["id"].as_str().unwrap()).await;
    assert_eq!(
        flat(db.ip_permissions()),
        [rule("tcp", Some(5432), Some(5432), "10.4.0.0/16", "")].into(),
        "a single port needs no to_port"
    );
    assert!(flat(db.ip_permissions_egress()).is_empty(), "egress = [] removes EC2's default rule");
    let items: Vec<_> = made.iter().map(|(n, i, o)| refresh_item("aws.security_group", n, i, o)).collect();
    let before = p.api_calls();
    let seen = p.refresh(items.clone()).await;
    assert!(p.api_calls() - before <= 1, "{} calls", p.api_calls() - before);
    for (r, (n, inputs, outputs)) in seen.iter().zip(&made) {
        let obs = r.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(&obs.inputs, inputs, "{n}: no drift");
        assert_eq!(&obs.outputs, outputs);
    }

    // Drift: HTTPS opened by hand shows as an extra rule after the configured ones.
    ec2.authorize_security_group_ingress()
        .group_id(&id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(443)
                .to_port(443)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let seen = p.refresh(vec![items[0].clone()]).await;
    let obs = seen[0].as_ref().unwrap().as_ref().unwrap();
    let mut drifted = web["ingress"].as_array().unwrap().clone();
    drifted.push(json!({"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]}));
    assert_eq!(obs.inputs["ingress"], json!(drifted));
    assert_eq!(obs.inputs["egress"], web["egress"]);

    // Update in place against what EC2 holds: ssh goes, the stray 443 goes,
    // port 80 keeps one range and gains a description, egress narrows to HTTPS.
    let desired = json!({
        "name": "web", "vpc_id": vpc, "description": "Managed by Phoenix",
        "ingress": [{"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["0.0.0.0/0"], "description": "http"}],
        "egress": [{"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]}],
        "tags": {"tier": "frontend"},
    });
    let updated = p
        .update(update_req("aws.security_group", "web", &obs.inputs, &out, desired.clone(), &["ingress", "egress", "tags"]))
        .await
        .unwrap();
    assert_eq!(updated, out, "the id stays");
    let g = group(&ec2, &id).await;
    assert_eq!(flat(g.ip_permissions()), [rule("tcp", Some(80), Some(80), "0.0.0.0/0", "http")].into());
    assert_eq!(flat(g.ip_permissions_egress()), [rule("tcp", Some(443), Some(443), "0.0.0.0/0", "")].into());
    assert_eq!(tag(g.tags(), "tier").as_deref(), Some("frontend"));
    let seen = p.refresh(vec![refresh_item("aws.security_group", "web", &attrs(desired.clone()), &out)]).await;
    assert_eq!(seen[0].as_ref().unwrap().as_ref().unwrap().inputs, attrs(desired.clone()), "no drift after the update");

    // Adoption by tags.
    let adopted = p
        .adopt(AdoptRequest {
            addr: phoenix_core::ResourceAddr::parse("db").unwrap(),
            type_name: "aws.security_group".into(),
            inputs: made[1].1.clone(),
            ownership: ownership("db"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(adopted.outputs, made[1].2);
    assert_eq!(adopted.inputs["ingress"], made[1].1["ingress"]);

    // Delete each twice; refresh says gone; independently none is left.
    for (n, i, o) in &made {
        p.delete(delete_req("aws.security_group", n, i, o)).await.unwrap();
        p.delete(delete_req("aws.security_group", n, i, o)).await.unwrap();
    }
    assert!(p.refresh(items).await.iter().all(|r| r.as_ref().unwrap().is_none()));
    let left = ec2
        .describe_security_groups()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag:phoenix:lineage").values("lineage-test").build())
        .send()
        .await
        .unwrap();
    assert!(left.security_groups().is_empty());
}

#[tokio::test]
async fn rule_validation_and_schema() {
    let moto = Moto::start();
    let p = moto.provider();
    let schema = p.schemas().into_iter().find(|s| s.type_name == "aws.security_group").unwrap();
    let check = schema.attr("ingress").unwrap().validator.unwrap();
    assert!(check(&json!([{"protocol": "tcp", "from_port": 22, "cidr_blocks": ["0.0.0.0/0"]}])).is_ok());
    assert!(check(&json!([{"protocol": "all", "cidr_blocks": ["${vpc.cidr_block}"]}])).is_ok());
    assert!(check(&json!([{"protocol": "icmp", "cidr_blocks": ["0.0.0.0/0"]}])).is_ok(), "icmp needs no ports");
    assert!(check(&json!([{"protocol": "tcp", "cidr_blocks": ["0.0.0.0/0"]}])).is_err(), "tcp needs a port");
    assert!(check(&json!([{"protocol": "tcp", "from_port": 80, "to_port": 70, "cidr_blocks": ["0.0.0.0/0"]}])).is_err(), "backwards range");
    assert!(check(&json!([{"protocol": "tcp", "from_port": 70000, "cidr_blocks": ["0.0.0.0/0"]}])).is_err(), "port range");
    assert!(check(&json!([{"protocol": "tcp", "from_port": 80, "cidr_blocks": []}])).is_err(), "no sources");
    assert!(check(&json!([{"protocol": "tcp", "from_port": 80, "cidr_blocks": ["10.0.0.1/8"]}])).is_err(), "host bits");
    assert!(check(&json!([{"protocol": "tcp", "from_port": 80, "cidr": ["10.0.0.0/8"]}])).is_err(), "unknown key");
    assert_eq!(schema.attr("description").unwrap().default, Some(json!("Managed by Phoenix")));
    for a in ["name", "description", "vpc_id"] {
        assert!(schema.attr(a).unwrap().force_new, "{a}");
    }
    assert!(!schema.attr("ingress").unwrap().force_new && !schema.attr("egress").unwrap().force_new);
}

#[tokio::test]
async fn a_rule_refused_after_the_group_exists_reports_the_group_so_it_is_not_leaked() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let vpc =
        p.create(create_req("aws.vpc", "net", json!({"cidr_block": "10.6.0.0/16"}))).await.unwrap()["id"].as_str().unwrap().to_string();
    // Validation would refuse this CIDR; here it reaches EC2, which refuses it after CreateSecurityGroup succeeded.
    let inputs = json!({"name": "bad", "vpc_id": vpc, "ingress": [{"protocol": "tcp", "from_port": 22, "cidr_blocks": ["not-a-cidr"]}]});
    let err = p.create(create_req("aws.security_group", "bad", inputs.clone())).await.unwrap_err();
    assert!(err.message.contains("AuthorizeSecurityGroupIngress"), "{}", err.message);
    let created = err.created.expect("the group that exists is reported with the error");
    let id = created["id"].as_str().unwrap();
    let g = group(&ec2, id).await;
    assert_eq!(tag(g.tags(), "phoenix:resource").as_deref(), Some("bad"), "it carries its ownership tags, so it can be found and replaced");
    p.delete(delete_req("aws.security_group", "bad", &attrs(inputs), &created)).await.unwrap();
    let left = ec2
        .describe_security_groups()
        .filters(aws_sdk_ec2::types::Filter::builder().name("group-id").values(id).build())
        .send()
        .await
        .unwrap();
    assert!(left.security_groups().is_empty());
}
