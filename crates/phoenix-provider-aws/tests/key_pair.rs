//! `aws.key_pair` against moto through the real SDK; every effect is checked
//! with an independent SDK client.

mod support;

use aws_sdk_ec2::types::{Filter, Tag};
use phoenix_core::provider::{AdoptRequest, Provider};
use serde_json::json;
use support::*;

/// Public halves of throwaway keys (ssh-keygen); the private halves were never kept.
const KEYS: [&str; 3] = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOcNOEV3pBNwDnYoI/as3v1YXESI16vpWgSSf4Q6RaKX phoenix-test-1",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm8jhMlbP1rohSGbgfLFx2/huxzVDaTZEyMPnpgqZwP phoenix-test-2",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCuPIFAY9leQijNVRM5xXlSfU0dymVuUZ18rqZHhRstDGdrx8oUiHWHreOnW3pYxKFFFnLMttK/XMu3xKT9+pMIdy7MHPmuMGKB312/kvWtbNAUleeeTIeLeQ2vj3+qq3YXtxi/i0bIYKUSWOZFA1twaDHSZuwAdmBrIgbBOECXI7/LQft7jBv5BBoPbxmfBA4FpdIqYhNu1mYYOkbs+nym3pK7hqDBuG1HKG10rtCjcw8VCy29pw4x1f7Q4gHwV2EZ6szgtlcXEEVNshi/6lozQbbjSPxnGQ6gORlxKEetST77Ua0JBu2FgLQEMd0Hz6ww/isrua1FyG54DTYsJEuH phoenix-test-3",
];

/// moto ignores `KeyPairIds` (it returns every key), so the check filters by id instead.
fn by_id(id: &str) -> Filter {
    Filter::builder().name("key-pair-id").values(id).build()
}

fn tag(tags: &[Tag], k: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string)
}

#[tokio::test]
async fn key_pairs_import_refresh_in_one_call_drift_update_adopt_delete() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;

    let mut made = Vec::new();
    let before = p.api_calls();
    for (i, key) in KEYS.iter().enumerate() {
        let inputs = json!({"key_name": format!("deploy-{i}"), "public_key": key, "tags": {"owner": "ops"}});
        let out = p.create(create_req("aws.key_pair", &format!("key{i}"), inputs.clone())).await.unwrap();
        made.push((format!("key{i}"), attrs(inputs), out));
    }

    assert_eq!(p.api_calls() - before, 3, "one ImportKeyPair each");

    // Independently: imported under its name, with the fingerprint Phoenix recorded, tagged.
    for (i, (name, _, out)) in made.iter().enumerate() {
        let k = ec2.describe_key_pairs().filters(by_id(out["id"].as_str().unwrap())).send().await.unwrap();
        assert_eq!(k.key_pairs().len(), 1);
        let k = &k.key_pairs()[0];
        assert_eq!(k.key_name(), Some(format!("deploy-{i}").as_str()));
        assert_eq!(k.key_fingerprint(), out["fingerprint"].as_str());
        assert!(!out["fingerprint"].as_str().unwrap().is_empty());
        assert_eq!(tag(k.tags(), "phoenix:resource").as_deref(), Some(name.as_str()));
        assert_eq!(tag(k.tags(), "phoenix:lineage").as_deref(), Some("lineage-test"));
        assert_eq!(tag(k.tags(), "Name"), Some(format!("test-{name}")));
        assert_eq!(tag(k.tags(), "owner").as_deref(), Some("ops"));
    }

    // All three refreshed in one call; what can be read back matches.
    let items: Vec<_> = made.iter().map(|(n, i, o)| refresh_item("aws.key_pair", n, i, o)).collect();
    let before = p.api_calls();
    let seen = p.refresh(items.clone()).await;
    assert!(p.api_calls() - before <= 2, "{} calls", p.api_calls() - before);
    for (r, (n, inputs, outputs)) in seen.iter().zip(&made) {
        let obs = r.as_ref().unwrap().as_ref().unwrap();
        for (k, v) in &obs.inputs {
            assert_eq!(inputs.get(k), Some(v), "{n}: `{k}` drifted");
        }
        assert_eq!(&obs.outputs, outputs);
    }

    // Drift: retagged by hand.
    let id0 = made[0].2["id"].as_str().unwrap().to_string();
    ec2.create_tags().resources(&id0).tags(Tag::builder().key("owner").value("intruder").build()).send().await.unwrap();
    let seen = p.refresh(vec![items[0].clone()]).await;
    assert_eq!(seen[0].as_ref().unwrap().as_ref().unwrap().inputs["tags"], json!({"owner": "intruder"}));

    // Tags update in place (removing one, adding one).
    let (_, inputs0, out0) = &made[0];
    let desired = json!({"key_name": "deploy-0", "public_key": KEYS[0], "tags": {"team": "platform"}});
    let updated = p.update(update_req("aws.key_pair", "key0", inputs0, out0, desired, &["tags"])).await.unwrap();
    assert_eq!(&updated, out0);
    let k = ec2.describe_key_pairs().filters(by_id(&id0)).send().await.unwrap();
    assert_eq!(tag(k.key_pairs()[0].tags(), "team").as_deref(), Some("platform"));
    assert_eq!(tag(k.key_pairs()[0].tags(), "owner"), None);
    assert_eq!(tag(k.key_pairs()[0].tags(), "phoenix:resource").as_deref(), Some("key0"), "ownership tags survive");

    // Adoption by tags.
    let adopted = p
        .adopt(AdoptRequest {
            addr: phoenix_core::ResourceAddr::parse("key2").unwrap(),
            type_name: "aws.key_pair".into(),
            inputs: made[2].1.clone(),
            ownership: ownership("key2"),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(adopted.outputs, made[2].2);

    // Imported by id: the public key cannot be read back, so state holds none;
    // that state still updates and deletes.
    let addr = phoenix_core::ResourceAddr::parse("key1").unwrap();
    let imported = p.import(&addr, "aws.key_pair", made[1].2["id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(imported.outputs, made[1].2);
    assert_eq!((imported.inputs.get("key_name"), imported.inputs.get("public_key")), (Some(&json!("deploy-1")), None));
    let retagged = json!({"key_name": "deploy-1", "public_key": KEYS[1], "tags": {"owner": "ops"}});
    assert_eq!(&p.update(update_req("aws.key_pair", "key1", &imported.inputs, &made[1].2, retagged, &["tags"])).await.unwrap(), &made[1].2);
    let made: Vec<_> = made.into_iter().map(|(n, i, o)| if n == "key1" { (n, imported.inputs.clone(), o) } else { (n, i, o) }).collect();

    // Delete each twice; refresh says gone; independently none is left.
    for (n, i, o) in &made {
        p.delete(delete_req("aws.key_pair", n, i, o)).await.unwrap();
        p.delete(delete_req("aws.key_pair", n, i, o)).await.unwrap();
    }
    assert!(p.refresh(items).await.iter().all(|r| r.as_ref().unwrap().is_none()));
    // A key of the same name imported since by someone else is not Phoenix's to delete.
    ec2.import_key_pair().key_name("deploy-0").public_key_material(aws_sdk_ec2::primitives::Blob::new(KEYS[0])).send().await.unwrap();
    p.delete(delete_req("aws.key_pair", &made[0].0, &made[0].1, &made[0].2)).await.unwrap();
    let theirs = ec2.describe_key_pairs().filters(Filter::builder().name("key-name").values("deploy-0").build()).send().await.unwrap();
    assert_eq!(theirs.key_pairs().len(), 1, "the stranger's key survives");
    let left = ec2
        .describe_key_pairs()
        .filters(Filter::builder().name("tag:phoenix:lineage").values("lineage-test").build())
        .send()
        .await
        .unwrap();
    assert!(left.key_pairs().is_empty());
}

#[tokio::test]
async fn public_key_validation_and_schema() {
    let moto = Moto::start();
    let p = moto.provider();
    let schema = p.schemas().into_iter().find(|s| s.type_name == "aws.key_pair").unwrap();
    let check = schema.attr("public_key").unwrap().validator.unwrap();
    assert!(check(&json!(KEYS[0])).is_ok());
    assert!(check(&json!("${file.content}")).is_ok());
    assert!(check(&json!("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...")).unwrap_err().0.contains("private key"));
    assert!(check(&json!("not a key")).is_err());
    assert!(schema.attr("key_name").unwrap().force_new && schema.attr("public_key").unwrap().force_new);
    assert!(schema.attr("fingerprint").unwrap().computed && schema.attr("id").unwrap().stable);
}
