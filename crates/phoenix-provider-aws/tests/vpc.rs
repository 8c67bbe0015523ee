//! `aws.vpc` against moto through the real SDK.

mod support;

use phoenix_core::provider::Provider;
use serde_json::json;
use support::*;

#[tokio::test]
async fn vpc_lifecycle_tags_refresh_adopt_and_delete() {
    let moto = Moto::start();
    let p = moto.provider();
    let inputs = json!({"cidr_block": "10.1.0.0/16", "enable_dns_hostnames": true, "tags": {"team": "web"}});
    let out = p.create(create_req("aws.vpc", "net", inputs.clone())).await.unwrap();
    let id = out["id"].as_str().unwrap().to_string();

    // Independently: it exists, carries the ownership tags, Name and the user's tag.
    let ec2 = moto.ec2().await;
    let vpcs = ec2.describe_vpcs().vpc_ids(&id).send().await.unwrap();
    let tags = vpcs.vpcs()[0].tags();
    let tag = |k: &str| tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string);
    assert_eq!(tag("phoenix:resource").as_deref(), Some("net"));
    assert_eq!(tag("phoenix:lineage").as_deref(), Some("lineage-test"));
    assert_eq!(tag("Name").as_deref(), Some("test-net"));
    assert_eq!(tag("team").as_deref(), Some("web"));

    // Refresh sees it, with no drift; adoption finds it by tags.
    let item = refresh_item("aws.vpc", "net", &attrs(inputs.clone()), &out);
    let seen = p.refresh(vec![item.clone()]).await;
    let obs = seen[0].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(obs.inputs["cidr_block"], json!("10.1.0.0/16"));
    assert_eq!(obs.inputs["tags"], json!({"team": "web"}));
    let adopted = p
        .adopt(phoenix_core::provider::AdoptRequest {
            addr: phoenix_core::ResourceAddr::parse("net").unwrap(),
            type_name: "aws.vpc".into(),
            inputs: attrs(inputs.clone()),
            ownership: ownership("net"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(adopted.outputs["id"], json!(id));

    // Tags update in place.
    p.update(update_req(
        "aws.vpc",
        "net",
        &attrs(inputs.clone()),
        &out,
        json!({"cidr_block": "10.1.0.0/16", "tags": {"team": "api"}}),
        &["tags"],
    ))
    .await
    .unwrap();
    let vpcs = ec2.describe_vpcs().vpc_ids(&id).send().await.unwrap();
    assert!(vpcs.vpcs()[0].tags().iter().any(|t| t.key() == Some("team") && t.value() == Some("api")));

    // Delete, twice (the second is a no-op), then refresh says gone.
    p.delete(delete_req("aws.vpc", "net", &attrs(inputs.clone()), &out)).await.unwrap();
    p.delete(delete_req("aws.vpc", "net", &attrs(inputs), &out)).await.unwrap();
    let seen = p.refresh(vec![item]).await;
    assert!(seen[0].as_ref().unwrap().is_none());
    assert!(p.api_calls() > 0);
}
