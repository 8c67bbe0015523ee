//! `phoenix up staging` (the AWS web stack) end to end against moto, through
//! the binary as a user runs it; every claim checked with an independent SDK client.

mod support;

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use phoenix_testkit::Moto;
use support::{Output, Project};

fn run(project: &Project, moto: &Moto, args: &[&str]) -> Output {
    let mut c = support::command(&project.dir, args);
    c.envs(moto.env());
    let out = c.output().expect("phoenix runs");
    Output::of(args, out)
}

fn client(moto: &Moto) -> aws_sdk_ec2::Client {
    let conf = aws_sdk_ec2::Config::builder()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(Moto::REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_ec2::Client::from_conf(conf)
}

fn env_filter(env: &str) -> Filter {
    Filter::builder().name("tag:phoenix:environment").values(env).build()
}

/// Live (not terminated) instances of an environment: resource name -> (id, type, image).
async fn instances(ec2: &aws_sdk_ec2::Client, env: &str) -> BTreeMap<String, Vec<(String, String, String)>> {
    let out = ec2
        .describe_instances()
        .filters(env_filter(env))
        .filters(
            Filter::builder().name("instance-state-name").values("pending").values("running").values("stopping").values("stopped").build(),
        )
        .send()
        .await
        .unwrap();
    let mut m: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in out.reservations() {
        for i in r.instances() {
            let name = i.tags().iter().find(|t| t.key() == Some("phoenix:resource")).and_then(|t| t.value()).unwrap_or("?").to_string();
            m.entry(name).or_default().push((
                i.instance_id().unwrap_or_default().to_string(),
                i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
                i.image_id().unwrap_or_default().to_string(),
            ));
        }
    }
    m
}

async fn count_tagged(ec2: &aws_sdk_ec2::Client, env: &str) -> BTreeMap<&'static str, usize> {
    let f = || env_filter(env);
    let mut m = BTreeMap::new();
    m.insert("instances", instances(ec2, env).await.values().map(Vec::len).sum());
    m.insert("vpcs", ec2.describe_vpcs().filters(f()).send().await.unwrap().vpcs().len());
    m.insert("subnets", ec2.describe_subnets().filters(f()).send().await.unwrap().subnets().len());
    m.insert("igws", ec2.describe_internet_gateways().filters(f()).send().await.unwrap().internet_gateways().len());
    m.insert("route_tables", ec2.describe_route_tables().filters(f()).send().await.unwrap().route_tables().len());
    m.insert("security_groups", ec2.describe_security_groups().filters(f()).send().await.unwrap().security_groups().len());
    // Data volumes, and the instances' root volumes (tagged too: Phoenix made them).
    let volumes = ec2.describe_volumes().filters(f()).send().await.unwrap();
    let is_data = |v: &&aws_sdk_ec2::types::Volume| {
        v.tags().iter().any(|t| t.key() == Some("phoenix:resource") && t.value().is_some_and(|r| r.starts_with("data-")))
    };
    m.insert("volumes", volumes.volumes().iter().filter(is_data).count());
    m.insert("root_volumes", volumes.volumes().len() - volumes.volumes().iter().filter(is_data).count());
    m.insert("eips", ec2.describe_addresses().filters(f()).send().await.unwrap().addresses().len());
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn staging_up_plan_change_drift_and_down_on_moto() {
    let moto = Moto::start();
    let project = Project::repo();
    let ec2 = client(&moto);

    let up = run(&project, &moto, &["--json", "up", "staging", "--yes", "--var", "web_count=3"]);
    assert_eq!(up.code, 0, "up failed:\n{}\n{}", up.stdout, up.stderr);
    let counts = count_tagged(&ec2, "staging").await;
    let want: BTreeMap<&str, usize> = [
        ("instances", 3),
        ("vpcs", 1),
        ("subnets", 3),
        ("igws", 1),
        ("route_tables", 1),
        ("security_groups", 1),
        ("volumes", 3),
        ("root_volumes", 3),
        ("eips", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, want);
    // Each data volume is attached to its own instance; the subnets are in three zones.
    let web = instances(&ec2, "staging").await;
    let vols = ec2
        .describe_volumes()
        .filters(env_filter("staging"))
        .filters(Filter::builder().name("tag:phoenix:resource").values("data-1").build())
        .send()
        .await
        .unwrap();
    let attached_to = vols.volumes()[0].attachments()[0].instance_id().unwrap().to_string();
    assert_eq!(attached_to, web["web-1"][0].0);
    let zones: std::collections::BTreeSet<String> = ec2
        .describe_subnets()
        .filters(env_filter("staging"))
        .send()
        .await
        .unwrap()
        .subnets()
        .iter()
        .filter_map(|s| s.availability_zone().map(str::to_string))
        .collect();
    assert_eq!(zones.len(), 3);
    let finished = up.event("run_finished").unwrap();
    assert!(finished["api_calls"]["aws"].as_u64().unwrap() > 0);

    // No changes: exit 0 with --detailed-exitcode, in a handful of API calls.
    let plan = run(&project, &moto, &["--json", "plan", "staging", "--var", "web_count=3", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    let calls = plan.event("plan").unwrap()["api_calls"]["aws"].as_u64().unwrap();
    assert!(calls <= 12, "a no-change plan took {calls} API calls");

    // instance_type updates in place; the AMI replaces.
    let plan = run(
        &project,
        &moto,
        &["--json", "plan", "staging", "--var", "web_count=3", "--var", "instance_type=t3.small", "--detailed-exitcode"],
    );
    assert_eq!(plan.code, 2);
    let changes = plan.event("plan").unwrap()["plan"]["changes"].as_array().unwrap().clone();
    let acted: Vec<(String, String)> = changes
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| (c["addr"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(acted, vec![("web-0".into(), "update".into()), ("web-1".into(), "update".into()), ("web-2".into(), "update".into())]);
    let up = run(&project, &moto, &["up", "staging", "--yes", "--var", "web_count=3", "--var", "instance_type=t3.small"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let after = instances(&ec2, "staging").await;
    assert_eq!(after["web-0"][0].0, web["web-0"][0].0, "updated in place, same instance");
    assert_eq!(after["web-0"][0].1, "t3.small");

    let new_ami = "al2023-ami-2023*-kernel-6.12-x86_64";
    let ami_var = format!("ami_name={new_ami}");
    let plan =
        run(&project, &moto, &["--json", "plan", "staging", "--var", "web_count=3", "--var", "instance_type=t3.small", "--var", &ami_var]);
    let changes = plan.event("plan").unwrap()["plan"]["changes"].as_array().unwrap().clone();
    let replaced: Vec<&str> = changes.iter().filter(|c| c["action"] == "replace").map(|c| c["addr"].as_str().unwrap()).collect();
    assert!(replaced.contains(&"web-0") && replaced.contains(&"web-2"), "{replaced:?}");
    let up =
        run(&project, &moto, &["up", "staging", "--yes", "--var", "web_count=3", "--var", "instance_type=t3.small", "--var", &ami_var]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let replaced_web = instances(&ec2, "staging").await;
    assert_eq!(replaced_web.len(), 3);
    assert!(replaced_web.values().all(|v| v.len() == 1), "no duplicates: {replaced_web:?}");
    assert_ne!(replaced_web["web-0"][0].0, web["web-0"][0].0, "replaced: a new instance");
    assert_ne!(replaced_web["web-0"][0].2, web["web-0"][0].2, "with the new AMI");

    // Drift: an instance deleted behind Phoenix's back is recreated.
    ec2.terminate_instances().instance_ids(&replaced_web["web-1"][0].0).send().await.unwrap();
    let vars = ["--var", "web_count=3", "--var", "instance_type=t3.small", "--var", &ami_var];
    let mut args = vec!["--json", "plan", "staging"];
    args.extend(vars);
    let plan = run(&project, &moto, &args);
    let changes = plan.event("plan").unwrap()["plan"]["changes"].as_array().unwrap().clone();
    let web1 = changes.iter().find(|c| c["addr"] == "web-1").unwrap();
    assert_eq!(web1["action"], "create", "{web1}");
    let mut args = vec!["up", "staging", "--yes"];
    args.extend(vars);
    let up = run(&project, &moto, &args);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert_eq!(instances(&ec2, "staging").await.len(), 3);

    // down: nothing tagged by Phoenix remains.
    let mut args = vec!["down", "staging", "--yes"];
    args.extend(vars);
    let down = run(&project, &moto, &args);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    let left: BTreeMap<&str, usize> = count_tagged(&ec2, "staging").await.into_iter().filter(|(_, n)| *n > 0).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_up_then_rerun_leaves_exactly_the_declared_instances() {
    let moto = Moto::start();
    let project = Project::repo();
    let ec2 = client(&moto);
    let mut c = support::command(&project.dir, &["up", "staging", "--yes", "--var", "web_count=20", "--parallelism", "8"]);
    c.envs(moto.env()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    // Kill once some instances exist but before the run can finish.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let n: usize = instances(&ec2, "staging").await.values().map(Vec::len).sum();
        if n >= 4 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before: usize = instances(&ec2, "staging").await.values().map(Vec::len).sum();
    assert!(before < 20, "the run finished before it was killed");

    let up = run(&project, &moto, &["up", "staging", "--yes", "--var", "web_count=20"]);
    assert_eq!(up.code, 0, "rerun failed:\n{}\n{}", up.stdout, up.stderr);
    let web = instances(&ec2, "staging").await;
    assert_eq!(web.len(), 20, "{web:?}");
    assert!(web.values().all(|v| v.len() == 1), "duplicate instances: {web:?}");
    let counts = count_tagged(&ec2, "staging").await;
    assert_eq!(counts["volumes"], 20);
    let plan = run(&project, &moto, &["plan", "staging", "--var", "web_count=20", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "state complete: {}", plan.stdout);
    let down = run(&project, &moto, &["down", "staging", "--yes", "--var", "web_count=20"]);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn import_brings_an_existing_vpc_under_management() {
    let moto = Moto::start();
    let project = Project::repo();
    let ec2 = client(&moto);
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();

    let missing = run(&project, &moto, &["import", "staging", "vpc", "vpc-00000000000000000", "--var", "web_count=0"]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    let undeclared = run(&project, &moto, &["import", "staging", "nope", &id, "--var", "web_count=0"]);
    assert_eq!(undeclared.code, 64);

    let import = run(&project, &moto, &["import", "staging", "vpc", &id, "--var", "web_count=0"]);
    assert_eq!(import.code, 0, "{}\n{}", import.stdout, import.stderr);
    let plan = run(&project, &moto, &["--json", "plan", "staging", "--var", "web_count=0"]);
    let changes = plan.event("plan").unwrap()["plan"]["changes"].as_array().unwrap().clone();
    let vpc_change = changes.iter().find(|c| c["addr"] == "vpc").unwrap();
    assert!(vpc_change["action"] == "no_op" || vpc_change["action"] == "update", "the imported VPC is kept: {vpc_change}");
    let up = run(&project, &moto, &["up", "staging", "--yes", "--var", "web_count=0"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let vpcs = ec2.describe_vpcs().filters(env_filter("staging")).send().await.unwrap();
    assert_eq!(vpcs.vpcs().len(), 1, "tagged as Phoenix's own after the update");
    let out = run(&project, &moto, &["output", "staging", "vpc_id", "--var", "web_count=0"]);
    assert_eq!(out.stdout.trim(), id, "the same VPC, not a new one");
    assert_eq!(run(&project, &moto, &["down", "staging", "--yes", "--var", "web_count=0"]).code, 0);
}
