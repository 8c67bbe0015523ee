//! `phoenix up gcp-staging` (the GCP web stack) end to end against the
//! Compute Engine test server, through the binary as a user runs it; every
//! claim checked through the server's own API, never Phoenix's state.

mod support;

use std::collections::BTreeMap;

use phoenix_gce_server::{GceServer, PROJECT};
use serde_json::Value;
use support::{Output, Project};

fn run(project: &Project, gce: &GceServer, args: &[&str]) -> Output {
    let mut c = support::command(&project.dir, args);
    c.envs(gce.env());
    let out = c.output().expect("phoenix runs");
    Output::of(args, out)
}

const ENV_FILTER: &str = "labels.phoenix-environment = \"gcp-staging\"";

/// Instances labelled for the environment: resource label -> (id, machine type, labels, boot disk link).
fn instances(gce: &GceServer) -> BTreeMap<String, Vec<Value>> {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for i in gce.list_all(&format!("projects/{PROJECT}/aggregated/instances"), Some(ENV_FILTER)) {
        m.entry(i["labels"]["phoenix-resource"].as_str().unwrap_or("?").to_string()).or_default().push(i);
    }
    m
}

/// Everything of the environment left in the project, by collection (unlabelled types by their description mark).
fn leftovers(gce: &GceServer) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for (coll, path) in [
        ("instances", format!("projects/{PROJECT}/aggregated/instances")),
        ("disks", format!("projects/{PROJECT}/aggregated/disks")),
        ("addresses", format!("projects/{PROJECT}/aggregated/addresses")),
    ] {
        m.insert(coll, gce.list_all(&path, Some(ENV_FILTER)).len());
    }
    let marked = |v: &Value| v["description"].as_str().is_some_and(|d| d.starts_with("phoenix: environment=gcp-staging "));
    for (coll, path) in [
        ("networks", format!("projects/{PROJECT}/global/networks")),
        ("firewalls", format!("projects/{PROJECT}/global/firewalls")),
        ("subnetworks", format!("projects/{PROJECT}/aggregated/subnetworks")),
    ] {
        m.insert(coll, gce.list_all(&path, None).iter().filter(|v| marked(v)).count());
    }
    m
}

fn calls(out: &Output, event: &str) -> u64 {
    out.event(event).and_then(|e| e["api_calls"]["gcp"].as_u64()).unwrap_or_else(|| panic!("no gcp api_calls in {event}: {}", out.stdout))
}

/// (resource, action) of every change, sorted (the plan's order follows the graph, not names).
fn acted(plan: &Output) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = plan.event("plan").unwrap()["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| (c["addr"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn gcp_staging_up_plan_change_and_down_on_the_test_server() {
    let gce = GceServer::start();
    let project = Project::repo();

    let before = gce.total_calls();
    let up = run(&project, &gce, &["--json", "up", "gcp-staging", "--yes"]);
    assert_eq!(up.code, 0, "up failed:\n{}\n{}", up.stdout, up.stderr);
    let up_calls = calls(&up, "run_finished");
    assert_eq!(up_calls, gce.total_calls() - before, "Phoenix counts every request the server saw");
    eprintln!("up gcp-staging: {up_calls} API calls: {:?}", gce.calls());

    // Objects exist, as the server reports them.
    let want: BTreeMap<&str, usize> =
        [("instances", 2), ("disks", 4), ("addresses", 1), ("networks", 1), ("firewalls", 2), ("subnetworks", 1)].into_iter().collect();
    assert_eq!(leftovers(&gce), want, "2 instances, their boot disks and data disks, the address, network, subnetwork, 2 firewalls");
    let web = instances(&gce);
    assert_eq!(web.keys().collect::<Vec<_>>(), ["gcp-web-0", "gcp-web-1"]);
    let web0 = &web["gcp-web-0"][0];
    assert!(web0["machineType"].as_str().unwrap().ends_with("/machineTypes/e2-small"));
    assert_eq!(web0["labels"]["role"], "web");
    assert_eq!(web0["status"], "RUNNING");
    let ip = gce.get(&format!("projects/{PROJECT}/regions/us-central1/addresses/gcp-staging-web-ip"));
    assert_eq!(web0["networkInterfaces"][0]["accessConfigs"][0]["natIP"], ip["address"], "the reserved address is the first server's");
    let data = web0["disks"].as_array().unwrap().iter().find(|d| d["deviceName"] == "data").expect("the data disk is attached");
    assert!(data["source"].as_str().unwrap().ends_with("/disks/gcp-staging-data-0"));
    let script = web0["metadata"]["items"].as_array().unwrap().iter().find(|i| i["key"] == "startup-script").unwrap();
    assert!(script["value"].as_str().unwrap().contains("web-0 of gcp-staging"));
    let fw = gce.get(&format!("projects/{PROJECT}/global/firewalls/gcp-staging-http"));
    assert_eq!(fw["allowed"][0]["ports"], serde_json::json!(["80", "443"]));
    let finished = up.event("run_finished").unwrap();
    assert_eq!(finished["outputs"]["gcp_public_ip"], ip["address"], "{finished}");

    // No changes: exit 0 with --detailed-exitcode, in a handful of API calls (one list per type).
    let plan = run(&project, &gce, &["--json", "plan", "gcp-staging", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    let plan_calls = calls(&plan, "plan");
    eprintln!("no-change plan: {plan_calls} API calls");
    assert!(plan_calls <= 6, "a no-change plan took {plan_calls} API calls");

    // The machine type changes in place: stop, setMachineType, start; the same instances.
    let plan = run(&project, &gce, &["--json", "plan", "gcp-staging", "--var", "machine_type=e2-medium", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    assert_eq!(acted(&plan), [("gcp-web-0".into(), "update".into()), ("gcp-web-1".into(), "update".into())]);
    let before = gce.calls();
    let up = run(&project, &gce, &["up", "gcp-staging", "--yes", "--var", "machine_type=e2-medium"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let after = gce.calls();
    for m in ["compute.instances.stop", "compute.instances.setMachineType", "compute.instances.start"] {
        assert_eq!(after.get(m).copied().unwrap_or(0) - before.get(m).copied().unwrap_or(0), 2, "{m} once per instance");
    }
    let resized = instances(&gce);
    assert_eq!(resized["gcp-web-0"][0]["id"], web0["id"], "updated in place, same instance");
    assert!(resized["gcp-web-0"][0]["machineType"].as_str().unwrap().ends_with("/machineTypes/e2-medium"));
    assert_eq!(resized["gcp-web-0"][0]["status"], "RUNNING");

    // Labels change in place (setLabels).
    let vars = ["--var", "machine_type=e2-medium", "--var", "web_role=frontend"];
    let mut args = vec!["--json", "plan", "gcp-staging", "--detailed-exitcode"];
    args.extend(vars);
    let plan = run(&project, &gce, &args);
    assert_eq!(acted(&plan), [("gcp-web-0".into(), "update".into()), ("gcp-web-1".into(), "update".into())]);
    let mut args = vec!["up", "gcp-staging", "--yes"];
    args.extend(vars);
    let up = run(&project, &gce, &args);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let relabelled = instances(&gce);
    assert_eq!(relabelled["gcp-web-1"][0]["id"], web["gcp-web-1"][0]["id"]);
    assert_eq!(relabelled["gcp-web-1"][0]["labels"]["role"], "frontend");
    assert_eq!(relabelled["gcp-web-1"][0]["labels"]["phoenix-resource"], "gcp-web-1", "ownership labels kept");

    // The image replaces the instances (new boot disks from Debian 11); the data disks move over.
    let vars = ["--var", "machine_type=e2-medium", "--var", "web_role=frontend", "--var", "image=debian-cloud/debian-11"];
    let mut args = vec!["--json", "plan", "gcp-staging"];
    args.extend(vars);
    let plan = run(&project, &gce, &args);
    assert_eq!(acted(&plan), [("gcp-web-0".into(), "replace".into()), ("gcp-web-1".into(), "replace".into())]);
    let mut args = vec!["up", "gcp-staging", "--yes"];
    args.extend(vars);
    let up = run(&project, &gce, &args);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let replaced = instances(&gce);
    assert!(replaced.values().all(|v| v.len() == 1), "no duplicates: {replaced:?}");
    assert_ne!(replaced["gcp-web-0"][0]["id"], web0["id"], "replaced: a new instance");
    let boot = replaced["gcp-web-0"][0]["disks"][0]["source"].as_str().unwrap().split_once("/compute/v1/").unwrap().1.to_string();
    assert!(gce.get(&boot)["sourceImage"].as_str().unwrap().contains("debian-11"), "booted from the new image");
    let mut args = vec!["--json", "plan", "gcp-staging", "--detailed-exitcode"];
    args.extend(vars);
    assert_eq!(run(&project, &gce, &args).code, 0, "converged");

    // down: nothing Phoenix made remains.
    let mut args = vec!["--json", "down", "gcp-staging", "--yes"];
    args.extend(vars);
    let down = run(&project, &gce, &args);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    eprintln!("down gcp-staging: {} API calls", calls(&down, "run_finished"));
    let left: BTreeMap<&str, usize> = leftovers(&gce).into_iter().filter(|(_, n)| *n > 0).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Names of every live object marked for `instance` of gcp-staging, by collection.
fn marked_for(gce: &GceServer, instance: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut m: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for (coll, path) in [
        ("instances", format!("projects/{PROJECT}/aggregated/instances")),
        ("disks", format!("projects/{PROJECT}/aggregated/disks")),
        ("addresses", format!("projects/{PROJECT}/aggregated/addresses")),
    ] {
        let filter = format!("{ENV_FILTER} (labels.phoenix-instance = \"{instance}\")");
        m.insert(coll, gce.list_all(&path, Some(&filter)).iter().map(|v| v["name"].as_str().unwrap().to_string()).collect());
    }
    let mark = format!("phoenix: environment=gcp-staging instance={instance} ");
    for (coll, path) in [
        ("networks", format!("projects/{PROJECT}/global/networks")),
        ("firewalls", format!("projects/{PROJECT}/global/firewalls")),
        ("subnetworks", format!("projects/{PROJECT}/aggregated/subnetworks")),
    ] {
        let names = gce
            .list_all(&path, None)
            .iter()
            .filter(|v| v["description"].as_str().is_some_and(|d| d.starts_with(&mark)))
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect();
        m.insert(coll, names);
    }
    m.retain(|_, v| !v.is_empty());
    m
}

/// `phoenix gc` on GCP: a copy whose state was lost is found through labels
/// and description marks and destroyed (boot disks with their instances); a
/// live copy and a disk made by hand are left alone; nothing is "not swept".
#[test]
fn gc_sweeps_a_leaked_gcp_copy_and_leaves_a_live_one_and_unmarked_disks_alone() {
    let gce = GceServer::start();
    let project = Project::repo();
    for inst in ["leak", "keep"] {
        let up = run(&project, &gce, &["up", "gcp-staging", "--instance", inst, "--yes"]);
        assert_eq!(up.code, 0, "up {inst}:\n{}\n{}", up.stdout, up.stderr);
    }
    let leak_before = marked_for(&gce, "leak");
    assert_eq!(leak_before.keys().count(), 6, "every collection has leak's objects: {leak_before:?}");
    let hand = serde_json::json!({"name": "made-by-hand", "sizeGb": "10"});
    let (code, op) = gce.request("POST", &format!("projects/{PROJECT}/zones/us-central1-a/disks"), Some(&hand));
    assert_eq!(code, 200, "{op}");
    gce.wait(&op);
    let keep_before = marked_for(&gce, "keep");
    std::fs::remove_dir_all(project.dir.join(".phoenix/state/gcp-staging.leak")).expect("leak's state directory");

    let dry = run(&project, &gce, &["--json", "gc", "gcp-staging", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    let leaks: Vec<Value> = dry.events().into_iter().filter(|e| e["type"] == "gc_leak").collect();
    assert!(leaks.iter().all(|l| l["instance"] == "leak"), "only leak's objects: {leaks:?}");
    let mut types: Vec<&str> = leaks.iter().map(|l| l["resource_type"].as_str().unwrap()).collect();
    types.sort();
    types.dedup();
    assert_eq!(types, ["gcp.address", "gcp.disk", "gcp.firewall", "gcp.instance", "gcp.network", "gcp.subnetwork"]);
    let disks = leaks.iter().filter(|l| l["resource_type"] == "gcp.disk").count();
    assert_eq!(disks, leak_before["instances"].len(), "data disks only: boot disks go with their instances");
    let fin = dry.event("gc_finished").expect("gc_finished");
    assert_eq!(fin["unsupported_types"], serde_json::json!([]), "every GCP type is swept: {fin}");
    assert_eq!(marked_for(&gce, "leak"), leak_before, "a dry run changes nothing");

    let gc = run(&project, &gce, &["gc", "gcp-staging", "--yes"]);
    assert_eq!(gc.code, 0, "{}{}", gc.stdout, gc.stderr);
    assert_eq!(marked_for(&gce, "leak"), BTreeMap::new(), "nothing of the leaked copy is left");
    assert_eq!(marked_for(&gce, "keep"), keep_before, "the live copy is untouched");
    let hand = gce.get(&format!("projects/{PROJECT}/zones/us-central1-a/disks/made-by-hand"));
    assert_eq!(hand["name"], "made-by-hand", "an unmarked disk is never touched: {hand}");

    let down = run(&project, &gce, &["down", "gcp-staging", "--instance", "keep", "--yes"]);
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
}
