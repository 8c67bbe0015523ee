//! `phoenix up multicloud`: the AWS primary tier on moto and the GCP standby
//! tier and database replica on the Compute Engine test server, in one plan
//! and one graph, then `down`. Checked through each cloud's own API.

mod support;

use aws_sdk_ec2::types::Filter;
use phoenix_gce_server::{GceServer, PROJECT};
use phoenix_testkit::Moto;
use support::{Output, Project};

fn run(project: &Project, moto: &Moto, gce: &GceServer, args: &[&str]) -> Output {
    let mut c = support::command(&project.dir, args);
    c.envs(moto.env());
    c.envs(gce.env());
    let out = c.output().expect("phoenix runs");
    Output::of(args, out)
}

fn ec2(moto: &Moto) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(Moto::REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

async fn aws_instances(ec2: &aws_sdk_ec2::Client) -> usize {
    let out = ec2
        .describe_instances()
        .filters(Filter::builder().name("tag:phoenix:environment").values("multicloud").build())
        .filters(Filter::builder().name("instance-state-name").values("pending").values("running").build())
        .send()
        .await
        .unwrap();
    out.reservations().iter().map(|r| r.instances().len()).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn multicloud_one_plan_one_graph_both_clouds_then_down() {
    let moto = Moto::start();
    let gce = GceServer::start();
    let project = Project::repo();
    let ec2 = ec2(&moto);

    // One plan covering both clouds.
    let plan = run(&project, &moto, &gce, &["--json", "plan", "multicloud"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    let changes = plan.event("plan").unwrap()["plan"]["changes"].as_array().unwrap().clone();
    let types: std::collections::BTreeSet<String> =
        changes.iter().filter_map(|c| c["type"].as_str().map(|t| t.split('.').next().unwrap().to_string())).collect();
    assert!(types.contains("aws") && types.contains("gcp"), "one plan, both clouds: {types:?}");

    let up = run(&project, &moto, &gce, &["--json", "up", "multicloud", "--yes"]);
    assert_eq!(up.code, 0, "up failed:\n{}\n{}", up.stdout, up.stderr);
    let finished = up.event("run_finished").unwrap();
    eprintln!("up multicloud: api_calls {}", finished["api_calls"]);
    assert!(finished["api_calls"]["aws"].as_u64().unwrap() > 0 && finished["api_calls"]["gcp"].as_u64().unwrap() > 0);

    // Both clouds provisioned in parallel: a GCP create started before the last AWS create finished.
    let events = up.events();
    let type_of: std::collections::HashMap<String, String> = events
        .iter()
        .filter(|e| e["type"] == "operation_started")
        .map(|e| (e["addr"].as_str().unwrap().to_string(), e["resource_type"].as_str().unwrap().to_string()))
        .collect();
    let cloud =
        |e: &serde_json::Value| type_of.get(e["addr"].as_str().unwrap_or_default()).map(|t| t.split('.').next().unwrap().to_string());
    let first_gcp_start =
        events.iter().position(|e| e["type"] == "operation_started" && cloud(e).as_deref() == Some("gcp")).expect("gcp work started");
    let last_aws_finish =
        events.iter().rposition(|e| e["type"] == "operation_finished" && cloud(e).as_deref() == Some("aws")).expect("aws work finished");
    assert!(first_gcp_start < last_aws_finish, "the clouds were provisioned in parallel");

    // AWS: the primary tier; GCP: the standby tier and the replica, whose firewall admits the AWS elastic IP.
    assert_eq!(aws_instances(&ec2).await, 2);
    let eips = ec2
        .describe_addresses()
        .filters(Filter::builder().name("tag:phoenix:environment").values("multicloud").build())
        .send()
        .await
        .unwrap();
    let eip = eips.addresses()[0].public_ip().unwrap().to_string();
    let filter = "labels.phoenix-environment = \"multicloud\"";
    let gcp_vms = gce.list_all(&format!("projects/{PROJECT}/aggregated/instances"), Some(filter));
    assert_eq!(gcp_vms.len(), 3, "two standby web servers and the replica");
    let fw = gce.get(&format!("projects/{PROJECT}/global/firewalls/multicloud-db-replication"));
    assert_eq!(fw["sourceRanges"], serde_json::json!([format!("{eip}/32")]), "the cross-cloud reference resolved to the AWS EIP");
    let replica = gcp_vms.iter().find(|v| v["name"] == "multicloud-db-replica").unwrap();
    let primary = replica["metadata"]["items"].as_array().unwrap().iter().find(|i| i["key"] == "primary-host").unwrap();
    assert_eq!(primary["value"], eip.as_str());

    let plan = run(&project, &moto, &gce, &["--json", "plan", "multicloud", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "no changes on either cloud:\n{}\n{}", plan.stdout, plan.stderr);
    eprintln!("no-change plan multicloud: api_calls {}", plan.event("plan").unwrap()["api_calls"]);

    let down = run(&project, &moto, &gce, &["--json", "down", "multicloud", "--yes"]);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert_eq!(aws_instances(&ec2).await, 0);
    for coll in ["instances", "disks", "addresses"] {
        assert!(gce.list_all(&format!("projects/{PROJECT}/aggregated/{coll}"), Some(filter)).is_empty(), "{coll} left on GCP");
    }
    let marked = gce.list_all(&format!("projects/{PROJECT}/global/firewalls"), None);
    assert!(marked.is_empty(), "firewalls left: {marked:?}");
}
