//! `aws.volume_attachment` against moto through the real SDK, with an instance
//! and a volume made by the provider (as the web stack does).

mod compute;
mod support;

use compute::*;
use phoenix_core::provider::Provider;
use phoenix_core::value::Attrs;
use serde_json::json;
use support::*;

/// An instance and a data volume in its zone, through the provider: (instance inputs, outputs, volume inputs, outputs).
async fn instance_and_volume(moto: &Moto, p: &dyn Provider) -> (serde_json::Value, Attrs, serde_json::Value, Attrs) {
    let ec2 = moto.ec2().await;
    let (subnet, [sg, _]) = network(&ec2).await;
    let web_in = web(&subnet, &[&sg]);
    let web_out = make_instance(p, "web-0", &web_in).await;
    let data_in = json!({"availability_zone": web_out["availability_zone"], "size": 10, "volume_type": "gp3"});
    let data_out = p.create(create_req("aws.volume", "data-0", data_in.clone())).await.unwrap();
    (web_in, web_out, data_in, data_out)
}

#[tokio::test]
async fn attach_refresh_detach_and_delete_everything_in_order() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let (web_in, web_out, data_in, data_out) = instance_and_volume(&moto, &*p).await;
    let (vol, inst) = (data_out["id"].as_str().unwrap(), web_out["id"].as_str().unwrap());
    let inputs = json!({"volume_id": vol, "instance_id": inst, "device_name": "/dev/sdf"});
    let out = p.create(create_req("aws.volume_attachment", "data-0-attach", inputs.clone())).await.unwrap();
    assert_eq!(out["id"], json!(format!("{vol}:{inst}")));

    // Independently: the volume is in use, attached to the instance as /dev/sdf.
    let v = volume(&ec2, vol).await.unwrap();
    assert_eq!(v.state().unwrap().as_str(), "in-use");
    let a = &v.attachments()[0];
    assert_eq!((a.instance_id(), a.device(), a.state().map(|s| s.as_str())), (Some(inst), Some("/dev/sdf"), Some("attached")));

    // Refresh sees it; adoption finds it by volume and instance; the volume reads in-use.
    let item = refresh_item("aws.volume_attachment", "data-0-attach", &attrs(inputs.clone()), &out);
    let seen = p.refresh(vec![item.clone()]).await;
    let obs = seen[0].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(obs.inputs, attrs(inputs.clone()));
    let found = p.adopt(adopt_req("aws.volume_attachment", "data-0-attach", &attrs(inputs.clone()))).await.unwrap().expect("adopted");
    assert_eq!(found.outputs["id"], out["id"]);
    let seen = p.refresh(vec![refresh_item("aws.volume", "data-0", &attrs(data_in.clone()), &data_out)]).await;
    assert_eq!(seen[0].as_ref().unwrap().as_ref().unwrap().outputs["state"], json!("in-use"));

    // Reverse order, as `down` does: detach (waits until the volume is available), twice is fine.
    p.delete(delete_req("aws.volume_attachment", "data-0-attach", &attrs(inputs.clone()), &out)).await.unwrap();
    let v = volume(&ec2, vol).await.unwrap();
    assert_eq!(v.state().unwrap().as_str(), "available");
    assert!(v.attachments().is_empty());
    p.delete(delete_req("aws.volume_attachment", "data-0-attach", &attrs(inputs.clone()), &out)).await.unwrap();
    assert!(p.refresh(vec![item]).await[0].as_ref().unwrap().is_none());
    assert!(p.adopt(adopt_req("aws.volume_attachment", "data-0-attach", &attrs(inputs))).await.unwrap().is_none());

    // Then the volume and the instance.
    p.delete(delete_req("aws.volume", "data-0", &attrs(data_in), &data_out)).await.unwrap();
    assert!(volume(&ec2, vol).await.is_none());
    p.delete(delete_req("aws.instance", "web-0", &attrs(web_in), &web_out)).await.unwrap();
    assert_eq!(instance(&ec2, inst).await.state().unwrap().name().unwrap().as_str(), "terminated");
}

#[tokio::test]
async fn detach_is_done_when_the_instance_or_volume_is_already_gone() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let (_, web_out, data_in, data_out) = instance_and_volume(&moto, &*p).await;
    let (vol, inst) = (data_out["id"].as_str().unwrap(), web_out["id"].as_str().unwrap());
    let inputs = json!({"volume_id": vol, "instance_id": inst, "device_name": "/dev/sdf"});
    let out = p.create(create_req("aws.volume_attachment", "att", inputs.clone())).await.unwrap();

    // The instance was terminated behind Phoenix's back (which detaches its volumes).
    ec2.terminate_instances().instance_ids(inst).send().await.unwrap();
    let item = refresh_item("aws.volume_attachment", "att", &attrs(inputs.clone()), &out);
    assert!(p.refresh(vec![item]).await[0].as_ref().unwrap().is_none());
    p.delete(delete_req("aws.volume_attachment", "att", &attrs(inputs.clone()), &out)).await.unwrap();

    // The volume is gone too: detaching is still done, and so is deleting it.
    p.delete(delete_req("aws.volume", "data-0", &attrs(data_in.clone()), &data_out)).await.unwrap();
    p.delete(delete_req("aws.volume_attachment", "att", &attrs(inputs), &out)).await.unwrap();
    p.delete(delete_req("aws.volume", "data-0", &attrs(data_in), &data_out)).await.unwrap();
}

#[tokio::test]
async fn attach_to_a_missing_instance_fails_and_records_nothing() {
    let moto = Moto::start();
    let p = moto.provider();
    let data_in = json!({"availability_zone": "eu-west-1a", "size": 1, "volume_type": "gp3"});
    let data_out = p.create(create_req("aws.volume", "data-0", data_in)).await.unwrap();
    let inputs = json!({"volume_id": data_out["id"], "instance_id": "i-0123456789abcdef0", "device_name": "/dev/sdf"});
    let started = std::time::Instant::now();
    let e = p.create(create_req("aws.volume_attachment", "att", inputs)).await.unwrap_err();
    // Retried for eventual consistency (about 30 s), then a clear error; nothing was attached.
    assert!(e.message.contains("AttachVolume") && e.message.contains("NotFound"), "{}", e.message);
    assert!(e.created.is_none());
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}
