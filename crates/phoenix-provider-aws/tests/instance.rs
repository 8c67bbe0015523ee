//! `aws.instance` against moto through the real SDK.

mod compute;
mod support;

use compute::*;
use phoenix_core::provider::Provider;
use serde_json::json;
use support::*;

#[tokio::test]
async fn instance_create_tags_resolves_ami_sizes_root_volume_and_deletes_twice() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let (subnet, [sg, _]) = network(&ec2).await;
    let mut inputs = web(&subnet, &[&sg]);
    inputs["user_data"] = json!("#!/bin/sh\necho hello\n");
    inputs["root_volume_size"] = json!(20);
    let out = make_instance(&*p, "web-0", &inputs).await;
    let id = out["id"].as_str().unwrap().to_string();

    // Independently: running, of the type asked, from the newest AMI matching the name, in the subnet, tagged.
    let i = instance(&ec2, &id).await;
    assert_eq!(i.state().unwrap().name().unwrap().as_str(), "running");
    assert_eq!(i.instance_type().unwrap().as_str(), "t3.micro");
    assert_eq!(i.image_id(), Some(newest_ami(&ec2, AL2023, "amazon").await.as_str()));
    assert_eq!(i.subnet_id(), Some(subnet.as_str()));
    assert_eq!(i.security_groups().iter().filter_map(|g| g.group_id()).collect::<Vec<_>>(), vec![sg.as_str()]);
    assert_eq!(tag(i.tags(), "phoenix:resource").as_deref(), Some("web-0"));
    assert_eq!(tag(i.tags(), "phoenix:lineage").as_deref(), Some("lineage-test"));
    assert_eq!(tag(i.tags(), "Name").as_deref(), Some("test-web-0"));
    assert_eq!(tag(i.tags(), "team").as_deref(), Some("web"));

    // The user data arrives base64-encoded, as EC2 wants it.
    let ud = ec2
        .describe_instance_attribute()
        .instance_id(&id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    let ud = aws_smithy_types::base64::decode(ud.user_data().unwrap().value().unwrap()).unwrap();
    assert_eq!(String::from_utf8(ud).unwrap(), "#!/bin/sh\necho hello\n");

    // The root volume is on the AMI's root device, of the size asked, and carries the ownership tags.
    let root = i.block_device_mappings().iter().find(|m| m.device_name() == i.root_device_name()).expect("a root device mapping");
    let vol = volume(&ec2, root.ebs().unwrap().volume_id().unwrap()).await.unwrap();
    assert_eq!(vol.size(), Some(20));
    assert_eq!(tag(vol.tags(), "phoenix:resource").as_deref(), Some("web-0"));
    assert_eq!(tag(vol.tags(), "phoenix:environment").as_deref(), Some("test"));

    // Computed attributes.
    assert_eq!(out["image_id"], json!(i.image_id().unwrap()));
    assert_eq!(out["availability_zone"], json!("eu-west-1a"));
    assert_eq!(out["private_ip"], json!(i.private_ip_address().unwrap()));
    assert_eq!(out["state"], json!("running"));

    // Refresh sees it with no drift on what it can read back.
    let item = refresh_item("aws.instance", "web-0", &attrs(inputs.clone()), &out);
    let seen = p.refresh(vec![item.clone()]).await;
    let obs = seen[0].as_ref().unwrap().as_ref().unwrap();
    for k in ["instance_type", "subnet_id", "security_group_ids", "tags"] {
        assert_eq!(obs.inputs[k], inputs[k], "{k}");
    }
    assert_eq!(obs.outputs["id"], json!(id));

    // Delete waits until terminated (so the subnet and group can go next); twice is fine.
    p.delete(delete_req("aws.instance", "web-0", &attrs(inputs.clone()), &out)).await.unwrap();
    assert_eq!(instance(&ec2, &id).await.state().unwrap().name().unwrap().as_str(), "terminated");
    p.delete(delete_req("aws.instance", "web-0", &attrs(inputs.clone()), &out)).await.unwrap();
    assert!(p.refresh(vec![item]).await[0].as_ref().unwrap().is_none());
    // The root volume went with it (DeleteOnTermination).
    assert!(volume(&ec2, root.ebs().unwrap().volume_id().unwrap()).await.is_none());
}

#[tokio::test]
async fn ami_name_resolves_to_the_newest_image_and_bad_names_create_nothing() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let (subnet, [sg, _]) = network(&ec2).await;

    // Two images of our own; the newer one has the name that sorts first, so only the date can pick it.
    let base = ec2
        .run_instances()
        .image_id(newest_ami(&ec2, AL2023, "amazon").await)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .send()
        .await
        .unwrap();
    let base = base.instances()[0].instance_id().unwrap().to_string();
    let older = ec2.create_image().instance_id(&base).name("phoenix-web-b").send().await.unwrap().image_id().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newer = ec2.create_image().instance_id(&base).name("phoenix-web-a").send().await.unwrap().image_id().unwrap().to_string();
    assert_ne!(older, newer);

    let inputs = json!({"ami_name": "phoenix-web-*", "ami_owner": "self", "instance_type": "t3.micro", "subnet_id": subnet, "security_group_ids": [sg]});
    let out = make_instance(&*p, "web-0", &inputs).await;
    assert_eq!(out["image_id"], json!(newer));
    assert_eq!(instance(&ec2, out["id"].as_str().unwrap()).await.image_id(), Some(newer.as_str()));

    // An explicit id is used as given.
    let inputs = json!({"ami": older, "instance_type": "t3.micro", "subnet_id": subnet});
    let out = make_instance(&*p, "web-1", &inputs).await;
    assert_eq!(out["image_id"], json!(older));

    // A pattern that matches nothing, the wrong owner, both or neither: an error naming the problem, and no instance.
    let count =
        || async { ec2.describe_instances().send().await.unwrap().reservations().iter().map(|r| r.instances().len()).sum::<usize>() };
    let before = count().await;
    for (inputs, says) in [
        (
            json!({"ami_name": "no-such-image-*", "instance_type": "t3.micro", "subnet_id": subnet}),
            "no available AMI named `no-such-image-*`",
        ),
        (
            json!({"ami_name": "phoenix-web-*", "ami_owner": "amazon", "instance_type": "t3.micro", "subnet_id": subnet}),
            "owned by `amazon`",
        ),
        (json!({"ami": newer, "ami_name": "phoenix-web-*", "instance_type": "t3.micro", "subnet_id": subnet}), "not both"),
        (json!({"instance_type": "t3.micro", "subnet_id": subnet}), "set `ami`"),
    ] {
        let e = p.create(create_req("aws.instance", "web-9", inputs)).await.unwrap_err();
        assert!(e.message.contains(says), "{}", e.message);
        assert!(e.created.is_none());
    }
    assert_eq!(count().await, before);
}

#[tokio::test]
async fn refresh_of_five_instances_is_one_batch_and_sees_one_terminated_behind_our_back() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let (subnet, [sg, _]) = network(&ec2).await;
    let inputs = web(&subnet, &[&sg]);
    let names: Vec<String> = (0..5).map(|i| format!("web-{i}")).collect();
    let before = p.api_calls();
    let outs = futures::future::join_all(names.iter().map(|n| make_instance(&*p, n, &inputs))).await;
    // One DescribeImages for the run (the AMI by name, looked up once), then per instance
    // RunInstances and one DescribeInstances of the wait (moto is running at once).
    let calls = p.api_calls() - before;
    eprintln!("create of 5 instances: {calls} API call(s)");
    assert!(calls <= 1 + 5 * 2, "create of 5 instances cost {calls} calls");
    let items: Vec<_> = names.iter().zip(&outs).map(|(n, o)| refresh_item("aws.instance", n, &attrs(inputs.clone()), o)).collect();

    let before = p.api_calls();
    let seen = p.refresh(items.clone()).await;
    let calls = p.api_calls() - before;
    eprintln!("refresh of 5 instances: {calls} API call(s)");
    assert!(calls <= 2, "refresh of 5 instances cost {calls} calls");
    for (s, o) in seen.iter().zip(&outs) {
        let obs = s.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(obs.outputs["id"], o["id"]);
        assert_eq!(obs.inputs["instance_type"], json!("t3.micro"));
        assert_eq!(obs.inputs["tags"], json!({"team": "web"}));
    }

    // Drift: web-2 is terminated outside Phoenix; refresh says it is gone, the others stay.
    ec2.terminate_instances().instance_ids(outs[2]["id"].as_str().unwrap()).send().await.unwrap();
    let before = p.api_calls();
    let seen = p.refresh(items).await;
    assert!(p.api_calls() - before <= 2);
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.as_ref().unwrap().is_none(), i == 2, "web-{i}");
    }

    // Delete: TerminateInstances and the wait's DescribeInstances; the one already terminated is done all the same.
    let before = p.api_calls();
    for (n, o) in names.iter().zip(&outs) {
        p.delete(delete_req("aws.instance", n, &attrs(inputs.clone()), o)).await.unwrap();
    }
    let calls = p.api_calls() - before;
    eprintln!("delete of 5 instances: {calls} API call(s)");
    assert!(calls <= 5 * 2, "delete of 5 instances cost {calls} calls");
}

#[tokio::test]
async fn instance_type_security_groups_and_tags_change_in_place() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let (subnet, [sg1, sg2]) = network(&ec2).await;
    let inputs = web(&subnet, &[&sg1]);
    let out = make_instance(&*p, "web-0", &inputs).await;
    let id = out["id"].as_str().unwrap().to_string();

    let mut next = inputs.clone();
    next["instance_type"] = json!("t3.small");
    next["security_group_ids"] = json!([sg1, sg2]);
    next["tags"] = json!({"team": "api"});
    let new = p
        .update(update_req(
            "aws.instance",
            "web-0",
            &attrs(inputs.clone()),
            &out,
            next.clone(),
            &["instance_type", "security_group_ids", "tags"],
        ))
        .await
        .unwrap();
    // Same instance, new type, running again, same private address (marked stable in the schema).
    assert_eq!(new["id"], json!(id));
    assert_eq!(new["state"], json!("running"));
    assert_eq!(new["private_ip"], out["private_ip"]);
    let i = instance(&ec2, &id).await;
    assert_eq!(i.instance_type().unwrap().as_str(), "t3.small");
    assert_eq!(i.state().unwrap().name().unwrap().as_str(), "running");
    let mut groups: Vec<&str> = i.security_groups().iter().filter_map(|g| g.group_id()).collect();
    groups.sort();
    let mut want = vec![sg1.as_str(), sg2.as_str()];
    want.sort();
    assert_eq!(groups, want);
    assert_eq!(tag(i.tags(), "team").as_deref(), Some("api"));
    assert_eq!(tag(i.tags(), "phoenix:resource").as_deref(), Some("web-0"));

    // Refresh agrees with the new definition (groups in the definition's order).
    let seen = p.refresh(vec![refresh_item("aws.instance", "web-0", &attrs(next.clone()), &new)]).await;
    let obs = seen[0].as_ref().unwrap().as_ref().unwrap();
    for k in ["instance_type", "security_group_ids", "tags"] {
        assert_eq!(obs.inputs[k], next[k], "{k}");
    }

    // Emptying the groups is refused with a reason rather than sent to EC2.
    let mut none = next.clone();
    none["security_group_ids"] = json!([]);
    let e = p.update(update_req("aws.instance", "web-0", &attrs(next.clone()), &new, none, &["security_group_ids"])).await.unwrap_err();
    assert!(e.message.contains("at least one security group"), "{}", e.message);
}

#[tokio::test]
async fn adoption_finds_the_instance_of_a_lost_create_but_not_a_terminated_one() {
    let moto = Moto::start();
    let p = moto.provider();
    let ec2 = moto.ec2().await;
    let (subnet, [sg, _]) = network(&ec2).await;
    let inputs = web(&subnet, &[&sg]);

    // The create happened but its result was lost (the process died before recording it).
    let lost = make_instance(&*p, "web-0", &inputs).await;
    // Another resource's instance and another lineage's are not ours.
    make_instance(&*p, "web-1", &inputs).await;

    let found = p.adopt(adopt_req("aws.instance", "web-0", &attrs(inputs.clone()))).await.unwrap().expect("adopted");
    assert_eq!(found.outputs["id"], lost["id"]);
    assert_eq!(found.outputs["state"], json!("running"));
    assert_eq!(found.inputs["instance_type"], json!("t3.micro"));
    let mut other = adopt_req("aws.instance", "web-0", &attrs(inputs.clone()));
    other.ownership.lineage = "another-lineage".into();
    assert!(p.adopt(other).await.unwrap().is_none());

    // A stopped instance is still ours to adopt; a terminated one is not.
    ec2.stop_instances().instance_ids(lost["id"].as_str().unwrap()).send().await.unwrap();
    let found = p.adopt(adopt_req("aws.instance", "web-0", &attrs(inputs.clone()))).await.unwrap().expect("adopted while stopped");
    assert_eq!(found.outputs["id"], lost["id"]);
    ec2.terminate_instances().instance_ids(lost["id"].as_str().unwrap()).send().await.unwrap();
    assert!(p.adopt(adopt_req("aws.instance", "web-0", &attrs(inputs))).await.unwrap().is_none());
}
