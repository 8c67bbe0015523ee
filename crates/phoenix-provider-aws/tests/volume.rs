//! `aws.volume` against moto through the real SDK.

mod compute;
mod support;

use compute::*;
use phoenix_core::provider::Provider;
use serde_json::json;
use support::*;

#[tokio::test]
async fn volume_create_grow_in_place_refuse_shrink_retag_and_delete_twice() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let inputs = json!({"availability_zone": "eu-west-1b", "size": 10, "volume_type": "gp3", "tags": {"role": "data"}});
    let out = p.create(create_req("aws.volume", "data-0", inputs.clone())).await.unwrap();
    let id = out["id"].as_str().unwrap().to_string();
    assert_eq!(out["state"], json!("available"));

    // Independently: the zone, size and type asked, available, with the ownership tags.
    let v = volume(&ec2, &id).await.unwrap();
    assert_eq!((v.availability_zone(), v.size(), v.volume_type().map(|t| t.as_str())), (Some("eu-west-1b"), Some(10), Some("gp3")));
    assert_eq!(v.state().unwrap().as_str(), "available");
    assert_eq!(tag(v.tags(), "phoenix:resource").as_deref(), Some("data-0"));
    assert_eq!(tag(v.tags(), "phoenix:lineage").as_deref(), Some("lineage-test"));
    assert_eq!(tag(v.tags(), "Name").as_deref(), Some("test-data-0"));
    assert_eq!(tag(v.tags(), "role").as_deref(), Some("data"));

    // Refresh: no drift.
    let item = refresh_item("aws.volume", "data-0", &attrs(inputs.clone()), &out);
    let seen = p.refresh(vec![item.clone()]).await;
    let obs = seen[0].as_ref().unwrap().as_ref().unwrap();
    for k in ["availability_zone", "size", "volume_type", "tags"] {
        assert_eq!(obs.inputs[k], inputs[k], "{k}");
    }

    // Size grows in place (ModifyVolume, which moto supports), same id; tags too.
    let mut bigger = inputs.clone();
    bigger["size"] = json!(20);
    bigger["tags"] = json!({"role": "db"});
    let new = p.update(update_req("aws.volume", "data-0", &attrs(inputs.clone()), &out, bigger.clone(), &["size", "tags"])).await.unwrap();
    assert_eq!(new["id"], json!(id));
    let v = volume(&ec2, &id).await.unwrap();
    assert_eq!(v.size(), Some(20));
    assert_eq!(tag(v.tags(), "role").as_deref(), Some("db"));

    // Shrinking is refused with a reason, and changes nothing.
    let mut smaller = bigger.clone();
    smaller["size"] = json!(5);
    let e = p.update(update_req("aws.volume", "data-0", &attrs(bigger.clone()), &new, smaller, &["size"])).await.unwrap_err();
    assert!(e.message.contains("cannot shrink"), "{}", e.message);
    assert_eq!(volume(&ec2, &id).await.unwrap().size(), Some(20));

    // Delete waits until it is gone; twice is fine; refresh then says gone.
    p.delete(delete_req("aws.volume", "data-0", &attrs(bigger.clone()), &new)).await.unwrap();
    assert!(volume(&ec2, &id).await.is_none());
    p.delete(delete_req("aws.volume", "data-0", &attrs(bigger), &new)).await.unwrap();
    assert!(p.refresh(vec![item]).await[0].as_ref().unwrap().is_none());
}

#[tokio::test]
async fn volume_restores_from_a_snapshot() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let source = ec2.create_volume().availability_zone("eu-west-1a").size(7).send().await.unwrap().volume_id().unwrap().to_string();
    let snap = ec2.create_snapshot().volume_id(&source).send().await.unwrap().snapshot_id().unwrap().to_string();

    // No size: the snapshot's.
    let inputs = json!({"availability_zone": "eu-west-1a", "snapshot_id": snap, "volume_type": "gp3"});
    let out = p.create(create_req("aws.volume", "restored", inputs.clone())).await.unwrap();
    let v = volume(&ec2, out["id"].as_str().unwrap()).await.unwrap();
    assert_eq!((v.snapshot_id(), v.size()), (Some(snap.as_str()), Some(7)));
    assert_eq!(tag(v.tags(), "phoenix:resource").as_deref(), Some("restored"));
    let seen = p.refresh(vec![refresh_item("aws.volume", "restored", &attrs(inputs.clone()), &out)]).await;
    assert_eq!(seen[0].as_ref().unwrap().as_ref().unwrap().inputs["snapshot_id"], json!(snap));

    // Neither size nor snapshot: an error before any volume is made.
    let e = p.create(create_req("aws.volume", "empty", json!({"availability_zone": "eu-west-1a"}))).await.unwrap_err();
    assert!(e.message.contains("`size`"), "{}", e.message);
}

#[tokio::test]
async fn volume_refresh_is_batched_drift_is_seen_and_adoption_goes_by_tags() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let inputs = json!({"availability_zone": "eu-west-1a", "size": 5, "volume_type": "gp3"});
    let names: Vec<String> = (0..5).map(|i| format!("data-{i}")).collect();
    let outs = futures::future::join_all(names.iter().map(|n| p.create(create_req("aws.volume", n, inputs.clone())))).await;
    let outs: Vec<_> = outs.into_iter().map(Result::unwrap).collect();
    let items: Vec<_> = names.iter().zip(&outs).map(|(n, o)| refresh_item("aws.volume", n, &attrs(inputs.clone()), o)).collect();

    // Deleted behind Phoenix's back: refresh says gone; the batch costs one call.
    ec2.delete_volume().volume_id(outs[3]["id"].as_str().unwrap()).send().await.unwrap();
    let before = p.api_calls();
    let seen = p.refresh(items).await;
    let calls = p.api_calls() - before;
    eprintln!("refresh of 5 volumes: {calls} API call(s)");
    assert!(calls <= 2, "{calls} calls");
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.as_ref().unwrap().is_none(), i == 3, "data-{i}");
    }

    // The create whose result was lost is found by its tags; a deleted one is not.
    let found = p.adopt(adopt_req("aws.volume", "data-1", &attrs(inputs.clone()))).await.unwrap().expect("adopted");
    assert_eq!(found.outputs["id"], outs[1]["id"]);
    assert!(p.adopt(adopt_req("aws.volume", "data-3", &attrs(inputs))).await.unwrap().is_none());
}
