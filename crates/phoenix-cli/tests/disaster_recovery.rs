//! Disaster recovery end to end on moto, through the binary as a user runs it:
//! recovery points of `prod` (its RDS database) and `staging` (its EBS data
//! volumes); restores after losing everything (objects and state), after
//! losing part, into another region from copied snapshots, and as a drill
//! beside the original. Every claim is checked with independent SDK clients.

mod support;

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use phoenix_testkit::Moto;
use support::{Output, Project};

const DB_PASSWORD: &str = "pw-dr-3b9e-never-printed";

fn run(project: &Project, moto: &Moto, args: &[&str]) -> Output {
    let mut c = support::command(&project.dir, args);
    c.envs(moto.env()).env("PROD_DB_PASSWORD", DB_PASSWORD);
    let out = c.output().expect("phoenix runs");
    Output::of(args, out)
}

fn ok(out: Output, what: &str) -> Output {
    assert_eq!(out.code, 0, "{what} failed:\n{}\n{}", out.stdout, out.stderr);
    out
}

macro_rules! client {
    ($name:ident, $sdk:ident) => {
        fn $name(moto: &Moto, region: &str) -> $sdk::Client {
            let conf = $sdk::Config::builder()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .region($sdk::config::Region::new(region.to_string()))
                .endpoint_url(moto.endpoint())
                .credentials_provider($sdk::config::Credentials::new("testing", "testing", None, None, "test"))
                .build();
            $sdk::Client::from_conf(conf)
        }
    };
}
client!(ec2, aws_sdk_ec2);
client!(rds, aws_sdk_rds);
client!(elb, aws_sdk_elasticloadbalancingv2);
client!(autoscaling, aws_sdk_autoscaling);

fn tag(k: &str, v: &str) -> Filter {
    Filter::builder().name(format!("tag:{k}")).values(v).build()
}

/// Data volumes of an environment (instance) by resource name: (volume id, snapshot it was made from).
async fn volumes(ec2: &aws_sdk_ec2::Client, env: &str, instance: Option<&str>) -> BTreeMap<String, (String, String)> {
    let mut req = ec2.describe_volumes().filters(tag("phoenix:environment", env));
    if let Some(i) = instance {
        req = req.filters(tag("phoenix:instance", i));
    }
    let out = req.send().await.unwrap();
    out.volumes()
        .iter()
        .filter(|v| instance.is_some() || !v.tags().iter().any(|t| t.key() == Some("phoenix:instance")))
        .filter_map(|v| {
            let name = v.tags().iter().find(|t| t.key() == Some("phoenix:resource"))?.value()?.to_string();
            name.starts_with("data-").then(|| (name, (v.volume_id().unwrap().to_string(), v.snapshot_id().unwrap_or_default().to_string())))
        })
        .collect()
}

/// The snapshot ids of a recovery point's JSON, by resource: (snapshot, copies by region).
fn snapshots_of(point: &serde_json::Value) -> BTreeMap<String, (String, BTreeMap<String, String>)> {
    point["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let copies =
                s["copies"].as_object().map(|m| m.iter().map(|(r, c)| (r.clone(), c["id"].as_str().unwrap().to_string())).collect());
            (s["addr"].as_str().unwrap().to_string(), (s["snapshot"]["id"].as_str().unwrap().to_string(), copies.unwrap_or_default()))
        })
        .collect()
}

fn restored_of(out: &Output) -> BTreeMap<String, String> {
    let ev = out.event("restore_finished").unwrap_or_else(|| panic!("no restore report:\n{}", out.stdout));
    assert!(ev["recovery_time_ms"].as_u64().is_some(), "the recovery time is measured: {ev}");
    ev["restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["addr"].as_str().unwrap().to_string(), r["snapshot"]["id"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn prod_comes_back_from_a_recovery_point_after_losing_everything() {
    let moto = Moto::start();
    let project = Project::repo();
    let (rds, elb, asg) = (rds(&moto, Moto::REGION), elb(&moto, Moto::REGION), autoscaling(&moto, Moto::REGION));
    ok(run(&project, &moto, &["--json", "up", "prod", "--yes"]), "up prod");

    let taken = ok(run(&project, &moto, &["--json", "snapshot", "prod"]), "snapshot prod");
    let point = taken.event("snapshot_finished").unwrap()["point"].clone();
    let id = point["id"].as_str().unwrap().to_string();
    let snaps = snapshots_of(&point);
    assert_eq!(snaps.keys().collect::<Vec<_>>(), ["db"], "the database is prod's stateful object");
    let db_snapshot = snaps["db"].0.clone();
    let s = rds.describe_db_snapshots().db_snapshot_identifier(&db_snapshot).send().await.unwrap();
    let s = &s.db_snapshots()[0];
    assert_eq!((s.status(), s.db_instance_identifier()), (Some("available"), Some("prod-db")));
    let listed = ok(run(&project, &moto, &["--json", "snapshot", "list", "prod"]), "snapshot list");
    assert_eq!(listed.event("recovery_points").unwrap()["points"][0]["id"], serde_json::json!(id));
    assert!(
        !std::fs::read_dir(project.dir.join(".phoenix/state/@recovery/prod"))
            .unwrap()
            .any(|e| { std::fs::read_to_string(e.unwrap().path()).unwrap().contains(DB_PASSWORD) })
    );

    // Everything is lost: every object, and the state with it.
    ok(run(&project, &moto, &["down", "prod", "--yes"]), "down prod");
    assert!(!project.dir.join(".phoenix/state/prod").exists(), "a complete down leaves no state behind");
    assert!(rds.describe_db_instances().db_instance_identifier("prod-db").send().await.is_err(), "the database is gone");

    let restore = ok(run(&project, &moto, &["--json", "restore", "prod", "--from", &id, "--yes"]), "restore prod");
    assert_eq!(restored_of(&restore), BTreeMap::from([("db".to_string(), db_snapshot.clone())]));
    // The whole environment exists again, the database from the recovery point's snapshot.
    let db = rds.describe_db_instances().db_instance_identifier("prod-db").send().await.unwrap().db_instances()[0].clone();
    assert_eq!(db.db_instance_status(), Some("available"));
    let shown = ok(run(&project, &moto, &["state", "show", "prod", "db"]), "state show");
    assert!(shown.stdout.contains(&db_snapshot), "the database records the snapshot it came from:\n{}", shown.stdout);
    let lbs = elb.describe_load_balancers().names("prod-front").names("prod-back").send().await.unwrap();
    assert_eq!(lbs.load_balancers().len(), 2);
    let g = asg.describe_auto_scaling_groups().auto_scaling_group_names("prod-front").send().await.unwrap();
    assert_eq!(g.auto_scaling_groups()[0].instances().len(), 6);
    // The everyday definition (no snapshot named) finds nothing to do.
    let plan = run(&project, &moto, &["plan", "prod", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "clean after the restore:\n{}\n{}", plan.stdout, plan.stderr);
    assert!(!restore.stdout.contains(DB_PASSWORD) && !restore.stderr.contains(DB_PASSWORD));
    // The first down left its final snapshot under the name the next one wants: clear it, as an operator would.
    rds.delete_db_snapshot().db_snapshot_identifier("prod-db-final").send().await.unwrap();
    ok(run(&project, &moto, &["down", "prod", "--yes"]), "down prod again");
}

#[tokio::test(flavor = "multi_thread")]
async fn staging_volumes_come_back_after_partial_loss_in_another_region_and_as_a_drill() {
    let moto = Moto::start();
    let project = Project::repo();
    let (west, east) = (ec2(&moto, Moto::REGION), ec2(&moto, "us-east-2"));
    let vars = ["--var", "web_count=2"];
    let with = |args: &[&str]| -> Vec<String> { args.iter().chain(vars.iter()).map(|s| s.to_string()).collect() };
    let call = |args: Vec<String>| run(&project, &moto, &args.iter().map(String::as_str).collect::<Vec<_>>());
    ok(call(with(&["up", "staging", "--yes"])), "up staging");
    let before = volumes(&west, "staging", None).await;
    assert_eq!(before.len(), 2);

    let taken = ok(call(with(&["--json", "snapshot", "staging", "--copy-to-region", "us-east-2"])), "snapshot");
    let point = taken.event("snapshot_finished").unwrap()["point"].clone();
    let id = point["id"].as_str().unwrap().to_string();
    let snaps = snapshots_of(&point);
    assert_eq!(snaps.keys().collect::<Vec<_>>(), ["data-0", "data-1"]);
    assert!(snaps.values().all(|(_, c)| c.contains_key("us-east-2")), "copied: {snaps:?}");
    let tagged = west.describe_snapshots().filters(tag("phoenix:recovery-point", &id)).send().await.unwrap();
    assert_eq!(tagged.snapshots().len(), 2, "tagged with the recovery point");

    // Part is lost: both instances, and one data volume.
    let running = west
        .describe_instances()
        .filters(tag("phoenix:environment", "staging"))
        .filters(Filter::builder().name("instance-state-name").values("running").build())
        .send()
        .await
        .unwrap();
    let ids: Vec<String> =
        running.reservations().iter().flat_map(|r| r.instances()).filter_map(|i| i.instance_id().map(String::from)).collect();
    assert_eq!(ids.len(), 2);
    let lost = before["data-1"].0.clone();
    let v = west.describe_volumes().volume_ids(&lost).send().await.unwrap();
    let att = v.volumes()[0].attachments()[0].clone();
    west.detach_volume().volume_id(&lost).instance_id(att.instance_id().unwrap()).device(att.device().unwrap()).send().await.unwrap();
    west.terminate_instances().set_instance_ids(Some(ids)).send().await.unwrap();
    west.delete_volume().volume_id(&lost).send().await.unwrap();

    let restore = ok(call(with(&["--json", "restore", "staging", "--from", &id, "--yes"])), "restore staging");
    let restored = restored_of(&restore);
    assert_eq!(restored.get("data-1"), Some(&snaps["data-1"].0), "the lost volume is restored");
    let after = volumes(&west, "staging", None).await;
    assert_ne!(after["data-1"].0, lost);
    assert_eq!(after["data-1"].1, snaps["data-1"].0, "the lost volume is made from its snapshot");
    // The other volume survived, but its placement follows its (recreated) instance: it is either
    // kept as it was or, when it must be replaced, made from its snapshot — never recreated empty.
    if after["data-0"].0 != before["data-0"].0 {
        assert_eq!(after["data-0"].1, snaps["data-0"].0, "a replaced stateful volume comes from its snapshot");
        assert_eq!(restored.get("data-0"), Some(&snaps["data-0"].0));
    }
    let plan = call(with(&["plan", "staging", "--detailed-exitcode"]));
    assert_eq!(plan.code, 0, "complete again:\n{}\n{}", plan.stdout, plan.stderr);

    // A region the point holds no copies in: refused before anything is made, and said why.
    let nowhere = call(with(&["restore", "staging", "--from", &id, "--region", "us-west-2", "--instance", "drill-0", "--yes"]));
    assert_eq!(nowhere.code, 3, "{}\n{}", nowhere.stdout, nowhere.stderr);
    assert!(nowhere.stderr.contains("has no copy") && nowhere.stderr.contains("us-west-2"), "the reason is printed: {}", nowhere.stderr);
    assert!(!project.dir.join(".phoenix/state/staging.drill-0").exists(), "no state is left behind");

    // A drill in another region, beside the original, from the copies there.
    let drill = ok(
        call(with(&["--json", "restore", "staging", "--from", &id, "--region", "us-east-2", "--instance", "drill-1", "--yes"])),
        "restore drill",
    );
    let expected: BTreeMap<String, String> = snaps.iter().map(|(a, (_, c))| (a.clone(), c["us-east-2"].clone())).collect();
    assert_eq!(restored_of(&drill), expected);
    let there = volumes(&east, "staging", Some("drill-1")).await;
    let made_from: BTreeMap<String, String> = there.iter().map(|(a, (_, s))| (a.clone(), s.clone())).collect();
    assert_eq!(made_from, expected, "the drill's volumes come from the copies in us-east-2");
    assert_eq!(volumes(&west, "staging", None).await, after, "the original is untouched");
    // The drill's state remembers its region: down removes it there, not in the file's region.
    ok(call(with(&["down", "staging", "--instance", "drill-1", "--yes"])), "down drill");
    assert!(volumes(&east, "staging", Some("drill-1")).await.is_empty(), "the drill is gone");
    ok(call(with(&["down", "staging", "--yes"])), "down staging");

    ok(call(vec!["snapshot".into(), "delete".into(), "staging".into(), id.clone(), "--yes".into()]), "snapshot delete");
    for (ec2, region) in [(&west, Moto::REGION), (&east, "us-east-2")] {
        let left = ec2.describe_snapshots().filters(tag("phoenix:recovery-point", &id)).send().await.unwrap();
        assert!(left.snapshots().is_empty(), "snapshots left in {region}: {:?}", left.snapshots());
    }
    let listed = ok(call(vec!["--json".into(), "snapshot".into(), "list".into(), "staging".into()]), "list");
    assert_eq!(listed.event("recovery_points").unwrap()["points"], serde_json::json!([]));
}

/// An instance that holds data (`stateful = true`) beside one that does not,
/// and an Aurora cluster with one DB instance: the point images the first and
/// snapshots the cluster (not its instance), and a restore from nothing
/// relaunches the instance from its image and the cluster from its snapshot,
/// its DB instance joining it again — after which the everyday definition is clean.
#[tokio::test(flavor = "multi_thread")]
async fn a_stateful_instance_and_an_aurora_cluster_come_back_from_their_image_and_snapshot() {
    let moto = Moto::start();
    let project = Project::empty();
    project.write("environments/ledger.toml", "template = \"ledger\"\n\n[providers.aws]\nregion = \"eu-west-1\"\n");
    project.write(
        "templates/ledger.toml.j2",
        r#"[resource.vpc]
type = "aws.vpc"
cidr_block = "10.9.0.0/16"

[resource.subnet]
type = "aws.subnet"
vpc_id = "${vpc.id}"
cidr_block = "10.9.0.0/24"
az_index = 0

[resource.app]
type = "aws.instance"
ami_name = "al2023-ami-2023*-kernel-6.1-x86_64"
instance_type = "t3.micro"
subnet_id = "${subnet.id}"
stateful = true

[resource.worker]
type = "aws.instance"
ami_name = "al2023-ami-2023*-kernel-6.1-x86_64"
instance_type = "t3.micro"
subnet_id = "${subnet.id}"

[resource.ledger]
type = "aws.db_cluster"
cluster_identifier = "ledger-{{ environment }}"
engine = "aurora-postgresql"
master_username = "app"
master_password = "{{ env("PROD_DB_PASSWORD") }}"
skip_final_snapshot = true

[resource.ledger-1]
type = "aws.db_instance"
identifier = "ledger-{{ environment }}-1"
engine = "aurora-postgresql"
instance_class = "db.r6g.large"
db_cluster_identifier = "${ledger.id}"
"#,
    );
    let (west, rds) = (ec2(&moto, Moto::REGION), rds(&moto, Moto::REGION));
    ok(run(&project, &moto, &["up", "ledger", "--yes"]), "up ledger");
    let instances = |ec2: aws_sdk_ec2::Client| async move {
        let out = ec2
            .describe_instances()
            .filters(tag("phoenix:environment", "ledger"))
            .filters(Filter::builder().name("instance-state-name").values("running").build())
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                let name = i.tags().iter().find(|t| t.key() == Some("phoenix:resource")).and_then(|t| t.value()).unwrap_or_default();
                (name.to_string(), (i.instance_id().unwrap().to_string(), i.image_id().unwrap().to_string()))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let before = instances(west.clone()).await;
    assert_eq!(before.keys().collect::<Vec<_>>(), ["app", "worker"]);

    let taken = ok(run(&project, &moto, &["--json", "snapshot", "ledger"]), "snapshot ledger");
    let point = taken.event("snapshot_finished").unwrap()["point"].clone();
    let id = point["id"].as_str().unwrap().to_string();
    let snaps = snapshots_of(&point);
    assert_eq!(snaps.keys().collect::<Vec<_>>(), ["app", "ledger"], "the stateful instance and the cluster; not the worker");
    let image = snaps["app"].0.clone();
    let img = west.describe_images().image_ids(&image).send().await.unwrap().images()[0].clone();
    assert!(img.tags().iter().any(|t| t.key() == Some("phoenix:recovery-point") && t.value() == Some(id.as_str())), "{img:?}");
    let cs = rds.describe_db_cluster_snapshots().db_cluster_snapshot_identifier(&snaps["ledger"].0).send().await.unwrap();
    assert_eq!(cs.db_cluster_snapshots()[0].db_cluster_identifier(), Some("ledger-ledger"));

    // Everything lost, state included.
    ok(run(&project, &moto, &["down", "ledger", "--yes"]), "down ledger");
    assert!(!project.dir.join(".phoenix/state/ledger").exists(), "a complete down leaves no state behind");
    assert!(instances(west.clone()).await.is_empty());
    assert!(rds.describe_db_clusters().db_cluster_identifier("ledger-ledger").send().await.is_err());
    // moto 5.2.1 keeps a deleted cluster's automated snapshot, named `rds:<id>-<minute>`, and
    // makes one under that name for every new cluster: a cluster re-made with the same
    // identifier in the same minute then fails (DBClusterSnapshotAlreadyExistsFault). The
    // automated backups are lost with everything else here.
    let auto = rds.describe_db_cluster_snapshots().snapshot_type("automated").send().await.unwrap();
    for s in auto.db_cluster_snapshots() {
        let name = s.db_cluster_snapshot_identifier().unwrap();
        rds.delete_db_cluster_snapshot().db_cluster_snapshot_identifier(name).send().await.unwrap();
    }

    let restore = ok(run(&project, &moto, &["--json", "restore", "ledger", "--from", &id, "--yes"]), "restore ledger");
    assert_eq!(
        restored_of(&restore),
        BTreeMap::from([("app".to_string(), image.clone()), ("ledger".to_string(), snaps["ledger"].0.clone())])
    );
    // Checked independently: the stateful instance runs the recovery point's image, the worker its AMI again.
    let after = instances(west.clone()).await;
    assert_eq!(after["app"].1, image, "relaunched from the point's image");
    assert_ne!(after["app"].0, before["app"].0);
    assert_eq!(after["worker"].1, before["worker"].1);
    let c = rds.describe_db_clusters().db_cluster_identifier("ledger-ledger").send().await.unwrap().db_clusters()[0].clone();
    assert_eq!((c.status(), c.engine()), (Some("available"), Some("aurora-postgresql")));
    let members: Vec<_> = c.db_cluster_members().iter().filter_map(|m| m.db_instance_identifier()).collect();
    assert_eq!(members, ["ledger-ledger-1"], "its DB instance is back in the restored cluster");
    // The everyday definition (no image or snapshot named) finds nothing to do.
    let plan = run(&project, &moto, &["plan", "ledger", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "clean after the restore:\n{}\n{}", plan.stdout, plan.stderr);
    assert!(!restore.stdout.contains(DB_PASSWORD) && !restore.stderr.contains(DB_PASSWORD));
    ok(run(&project, &moto, &["down", "ledger", "--yes"]), "down ledger again");
    ok(run(&project, &moto, &["snapshot", "delete", "ledger", &id, "--yes"]), "snapshot delete");
    assert!(
        west.describe_images().image_ids(&image).send().await.map(|o| o.images().is_empty()).unwrap_or(true),
        "the image is deregistered"
    );
}
