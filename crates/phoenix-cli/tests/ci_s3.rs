//! CI at scale through the binary, against moto's S3 (state) and EC2:
//! concurrent instances on one S3 prefix, lease locking with a SIGKILLed
//! holder, and `gc` of expired instances and leaks. Every claim is checked
//! with independent SDK clients.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use phoenix_testkit::Moto;
use support::{Output, Project};

const BUCKET: &str = "phoenix-state";

fn cmd(project: &Project, moto: &Moto, args: &[&str]) -> std::process::Command {
    let mut c = support::command(&project.dir, args);
    c.envs(moto.env());
    c
}

fn run(project: &Project, moto: &Moto, args: &[&str]) -> Output {
    collect(cmd(project, moto, args).output().expect("phoenix runs"))
}

fn collect(out: std::process::Output) -> Output {
    Output::of(&[], out)
}

fn spawn(project: &Project, moto: &Moto, args: &[&str], extra_env: &[(&str, &str)]) -> Child {
    let mut c = cmd(project, moto, args);
    c.envs(extra_env.iter().copied()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c.spawn().expect("phoenix starts")
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

fn s3(moto: &Moto) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(Moto::REGION))
        .endpoint_url(moto.endpoint())
        .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

async fn create_bucket(moto: &Moto) -> aws_sdk_s3::Client {
    let c = s3(moto);
    c.create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    c
}

async fn keys(s3: &aws_sdk_s3::Client, prefix: &str) -> Vec<String> {
    let out = s3.list_objects_v2().bucket(BUCKET).prefix(prefix).send().await.unwrap();
    out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
}

fn tag(tags: &[aws_sdk_ec2::types::Tag], key: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_string)
}

fn owned() -> Filter {
    Filter::builder().name("tag-key").values("phoenix:environment").build()
}

/// Live instances carrying Phoenix's tags: (id, phoenix:instance, Name, phoenix:expires).
async fn tagged_instances(ec2: &aws_sdk_ec2::Client) -> Vec<(String, String, String, Option<String>)> {
    let live =
        Filter::builder().name("instance-state-name").values("pending").values("running").values("stopping").values("stopped").build();
    let out = ec2.describe_instances().filters(owned()).filters(live).send().await.unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            (
                i.instance_id().unwrap_or_default().to_string(),
                tag(i.tags(), "phoenix:instance").unwrap_or_default(),
                tag(i.tags(), "Name").unwrap_or_default(),
                tag(i.tags(), "phoenix:expires"),
            )
        })
        .collect()
}

/// Every tagged object of every type the ci template makes, by type: (id, phoenix:instance).
async fn everything_tagged(ec2: &aws_sdk_ec2::Client) -> BTreeMap<&'static str, Vec<(String, String)>> {
    let mut m: BTreeMap<&'static str, Vec<(String, String)>> = BTreeMap::new();
    m.insert("instance", tagged_instances(ec2).await.into_iter().map(|(id, i, _, _)| (id, i)).collect());
    let o = ec2.describe_vpcs().filters(owned()).send().await.unwrap();
    m.insert(
        "vpc",
        o.vpcs().iter().map(|v| (v.vpc_id().unwrap().to_string(), tag(v.tags(), "phoenix:instance").unwrap_or_default())).collect(),
    );
    let o = ec2.describe_subnets().filters(owned()).send().await.unwrap();
    m.insert(
        "subnet",
        o.subnets().iter().map(|v| (v.subnet_id().unwrap().to_string(), tag(v.tags(), "phoenix:instance").unwrap_or_default())).collect(),
    );
    let o = ec2.describe_security_groups().filters(owned()).send().await.unwrap();
    m.insert(
        "security_group",
        o.security_groups()
            .iter()
            .map(|v| (v.group_name().unwrap().to_string(), tag(v.tags(), "phoenix:instance").unwrap_or_default()))
            .collect(),
    );
    let o = ec2.describe_key_pairs().filters(owned()).send().await.unwrap();
    m.insert(
        "key_pair",
        o.key_pairs().iter().map(|v| (v.key_name().unwrap().to_string(), tag(v.tags(), "phoenix:instance").unwrap_or_default())).collect(),
    );
    m
}

fn event(out: &Output, name: &str) -> serde_json::Value {
    out.event(name).unwrap_or_else(|| panic!("no `{name}` event\nstdout:\n{}\nstderr:\n{}", out.stdout, out.stderr))
}

fn instances_json(project: &Project, moto: &Moto) -> Vec<serde_json::Value> {
    let out = run(project, moto, &["instances", "ci", "--json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    event(&out, "instances")["instances"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_ci_jobs_up_and_down_at_once_on_one_s3_prefix() {
    const JOBS: usize = 20;
    let moto = Moto::start();
    let s3 = create_bucket(&moto).await;
    let ec2 = ec2(&moto);
    let project = Project::repo();

    let started = Instant::now();
    let children: Vec<(usize, Child)> = (0..JOBS)
        .map(|k| (k, spawn(&project, &moto, &["up", "ci", "--instance", &format!("job-{k}"), "--yes", "--json", "--ttl", "2h"], &[])))
        .collect();
    let mut requests = Vec::new();
    for (k, child) in children {
        let out = collect(child.wait_with_output().unwrap());
        assert_eq!(out.code, 0, "job-{k}:\n{}\n{}", out.stdout, out.stderr);
        let done = event(&out, "run_finished");
        assert_eq!(done["success"], true, "job-{k}: {done}");
        assert_eq!(done["resources"], 6, "job-{k}: {done}");
        requests.push(done["state_requests"].as_u64().unwrap());
    }
    eprintln!(
        "figure: {JOBS} concurrent `up ci` (6 resources each) on one S3 prefix: {:.1}s wall; S3 requests per run: min {} max {}",
        started.elapsed().as_secs_f64(),
        requests.iter().min().unwrap(),
        requests.iter().max().unwrap()
    );

    // Each state is complete and carries its expiry.
    let listed = instances_json(&project, &moto);
    assert_eq!(listed.len(), JOBS);
    for i in &listed {
        assert_eq!(i["resources"], 6, "{i}");
        assert_eq!(i["pending"], 0, "{i}");
        assert!(i["expires_at"].is_string() && i["expired"] == false, "{i}");
        assert!(i["locked_by"].is_null(), "{i}");
    }
    // No two instances share a name, every object names its instance, and the expiry is tagged.
    let machines = tagged_instances(&ec2).await;
    assert_eq!(machines.len(), JOBS * 2);
    let names: BTreeSet<&String> = machines.iter().map(|(_, _, n, _)| n).collect();
    assert_eq!(names.len(), JOBS * 2, "instance Name tags must all differ");
    assert!(machines.iter().all(|(_, inst, _, exp)| inst.starts_with("job-") && exp.is_some()));
    let all = everything_tagged(&ec2).await;
    for (kind, objects) in &all {
        assert_eq!(objects.len(), if *kind == "instance" { JOBS * 2 } else { JOBS }, "{kind}: {objects:?}");
        let per_instance: BTreeSet<&String> = objects.iter().map(|(_, i)| i).collect();
        assert_eq!(per_instance.len(), JOBS, "{kind}: every job has its own");
    }
    let sg_names: BTreeSet<&String> = all["security_group"].iter().map(|(n, _)| n).collect();
    let key_names: BTreeSet<&String> = all["key_pair"].iter().map(|(n, _)| n).collect();
    assert_eq!((sg_names.len(), key_names.len()), (JOBS, JOBS), "unique names per instance");
    // Nothing is left locked or half-journaled on S3.
    let left = keys(&s3, "ci/").await;
    assert!(left.iter().all(|k| k.ends_with("/state.json")), "{left:?}");

    let started = Instant::now();
    let children: Vec<(usize, Child)> = (0..JOBS)
        .map(|k| (k, spawn(&project, &moto, &["down", "ci", "--instance", &format!("job-{k}"), "--yes", "--json"], &[])))
        .collect();
    for (k, child) in children {
        let out = collect(child.wait_with_output().unwrap());
        assert_eq!(out.code, 0, "down job-{k}:\n{}\n{}", out.stdout, out.stderr);
    }
    eprintln!("figure: {JOBS} concurrent `down ci`: {:.1}s wall", started.elapsed().as_secs_f64());
    for (kind, objects) in everything_tagged(&ec2).await {
        assert!(objects.is_empty(), "{kind} left: {objects:?}");
    }
    for i in instances_json(&project, &moto) {
        assert_eq!(i["resources"], 0, "{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_per_instance_and_a_killed_holders_lease_is_taken_over() {
    let moto = Moto::start();
    let s3 = create_bucket(&moto).await;
    let ec2 = ec2(&moto);
    let project = Project::repo();

    // Two runs on one instance at once: exactly one runs, the other exits 4 naming it.
    let a = spawn(&project, &moto, &["up", "ci", "--instance", "same", "--yes"], &[]);
    let b = spawn(&project, &moto, &["up", "ci", "--instance", "same", "--yes"], &[]);
    let (pid_a, pid_b) = (a.id(), b.id());
    let outs = [collect(a.wait_with_output().unwrap()), collect(b.wait_with_output().unwrap())];
    let mut codes: Vec<i32> = outs.iter().map(|o| o.code).collect();
    codes.sort();
    assert_eq!(codes, vec![0, 4], "{}\n{}\n{}\n{}", outs[0].stdout, outs[0].stderr, outs[1].stdout, outs[1].stderr);
    let (winner, loser) = if outs[0].code == 0 { (pid_a, &outs[1]) } else { (pid_b, &outs[0]) };
    assert!(loser.stderr.contains(&format!("(pid {winner})")) && loser.stderr.contains("running `up`"), "{}", loser.stderr);
    assert_eq!(tagged_instances(&ec2).await.iter().filter(|(_, i, _, _)| i == "same").count(), 2, "one run's instances, not two");

    // A holder killed with SIGKILL mid-run leaves its lease; it expires and the next run takes over.
    let lease = [("PHOENIX_LOCK_LEASE", "3s")];
    let mut killed = spawn(&project, &moto, &["up", "ci", "--instance", "killed", "--yes", "--json"], &lease);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let k = keys(&s3, "ci/ci.killed/journal/").await;
        if !k.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the run never journaled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    assert!(keys(&s3, "ci/ci.killed/").await.contains(&"ci/ci.killed/lock.json".to_string()), "the dead run's lock is left behind");

    // Before the lease runs out: refused, with the dead holder's details.
    let early = run(&project, &moto, &["up", "ci", "--instance", "killed", "--yes"]);
    assert_eq!(early.code, 4, "{}{}", early.stdout, early.stderr);
    assert!(early.stderr.contains(&format!("(pid {})", killed.id())) && early.stderr.contains("lease"), "{}", early.stderr);
    let unlock = run(&project, &moto, &["unlock", "ci", "--instance", "killed"]);
    assert_eq!(unlock.code, 4, "a live lease is not removed without --force: {}{}", unlock.stdout, unlock.stderr);
    assert!(unlock.stderr.contains(&format!("(pid {})", killed.id())), "unlock shows the holder: {}", unlock.stderr);

    let started = Instant::now();
    let mut c = cmd(&project, &moto, &["up", "ci", "--instance", "killed", "--yes", "--json", "--lock-timeout", "60s"]);
    c.envs(lease);
    let taken = collect(c.output().unwrap());
    assert_eq!(taken.code, 0, "{}\n{}", taken.stdout, taken.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(event(&taken, "run_finished")["resources"], 6);
    // The killed run's objects were adopted or recorded, never made twice.
    assert_eq!(tagged_instances(&ec2).await.iter().filter(|(_, i, _, _)| i == "killed").count(), 2);
    assert!(!keys(&s3, "ci/ci.killed/").await.iter().any(|k| k.ends_with("lock.json")), "released at the end");

    for inst in ["same", "killed"] {
        let out = run(&project, &moto, &["down", "ci", "--instance", inst, "--yes"]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    }
    assert!(tagged_instances(&ec2).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_destroys_expired_instances_and_leaks_and_never_touches_untagged_objects() {
    let moto = Moto::start();
    let s3 = create_bucket(&moto).await;
    let ec2 = ec2(&moto);
    let project = Project::repo();
    for args in [
        vec!["up", "ci", "--instance", "old", "--ttl", "1s", "--yes"],
        vec!["up", "ci", "--instance", "leak", "--ttl", "2h", "--yes"],
        vec!["up", "ci", "--instance", "keep", "--ttl", "2h", "--yes", "--outputs-file", "keep.env"],
    ] {
        let out = run(&project, &moto, &args);
        assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    }
    let dotenv = std::fs::read_to_string(project.dir.join("keep.env")).unwrap();
    assert!(dotenv.contains("VPC_ID='vpc-") && dotenv.contains("RUNNER_IP='"), "{dotenv}");

    // A job killed for good: its state is gone, its objects are not.
    for k in keys(&s3, "ci/ci.leak/").await {
        s3.delete_object().bucket(BUCKET).key(k).send().await.unwrap();
    }
    // Something Phoenix did not make, in the same account.
    let image = tagged_instances(&ec2).await[0].0.clone();
    let image =
        ec2.describe_instances().instance_ids(image).send().await.unwrap().reservations()[0].instances()[0].image_id().unwrap().to_string();
    let untagged = ec2.run_instances().image_id(image).min_count(1).max_count(1).send().await.unwrap().instances()[0]
        .instance_id()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let before = everything_tagged(&ec2).await;
    let dry = run(&project, &moto, &["gc", "ci", "--dry-run", "--json"]);
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    let expired: Vec<_> = dry.events().into_iter().filter(|e| e["type"] == "gc_expired").collect();
    assert_eq!(expired.len(), 1, "{}", dry.stdout);
    assert_eq!(expired[0]["instance"], "old");
    let leaks: Vec<_> = dry.events().into_iter().filter(|e| e["type"] == "gc_leak").collect();
    assert_eq!(leaks.len(), 6, "vpc, subnet, security group, key pair and two instances of `leak`: {}", dry.stdout);
    assert!(leaks.iter().all(|l| l["instance"] == "leak"));
    assert_eq!(everything_tagged(&ec2).await, before, "a dry run changes nothing");

    let gc = run(&project, &moto, &["gc", "ci", "--yes"]);
    assert_eq!(gc.code, 0, "{}{}", gc.stdout, gc.stderr);
    let after = everything_tagged(&ec2).await;
    for (kind, objects) in &after {
        let owners: BTreeSet<&str> = objects.iter().map(|(_, i)| i.as_str()).collect();
        assert_eq!(owners, BTreeSet::from(["keep"]), "{kind}: only `keep` survives: {objects:?}");
    }
    let untouched = ec2.describe_instances().instance_ids(&untagged).send().await.unwrap();
    let state = untouched.reservations()[0].instances()[0].state().unwrap().name().unwrap().as_str().to_string();
    assert_eq!(state, "running", "an untagged instance is never touched");
    let listed = instances_json(&project, &moto);
    let by_name: BTreeMap<String, u64> =
        listed.iter().map(|i| (i["instance"].as_str().unwrap().to_string(), i["resources"].as_u64().unwrap())).collect();
    assert_eq!(by_name, BTreeMap::from([("keep".to_string(), 6), ("old".to_string(), 0)]));
    // A second gc finds nothing more.
    let again = run(&project, &moto, &["gc", "ci", "--yes", "--json"]);
    let fin = event(&again, "gc_finished");
    assert_eq!((fin["expired"].as_u64(), fin["leaks"].as_u64()), (Some(0), Some(0)), "{fin}");

    let out = run(&project, &moto, &["down", "ci", "--instance", "keep", "--yes"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}
