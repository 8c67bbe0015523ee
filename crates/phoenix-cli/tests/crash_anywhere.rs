//! Crash anywhere: `phoenix up` / `phoenix down` of the AWS web stack, killed
//! with SIGKILL at a seeded point, then run again to completion; afterwards the
//! environment matches the definition, nothing is duplicated or orphaned, and
//! the state is valid with a higher serial.
//!
//! The kill points are API requests: a fault proxy in front of moto counts
//! them, and kills `phoenix` right after moto executed the chosen request and
//! before `phoenix` hears the answer — the worst moment for a create. A
//! baseline run first measures how many requests an `up` and a `down` make,
//! so the seeds spread over the whole run whatever the code does.
//!
//! Seeds: `PHOENIX_CRASH_SEEDS=N` runs seeds 1..=N (default 20),
//! `PHOENIX_CRASH_SEED=S` runs just seed S. A failure names its seed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use aws_sdk_ec2::types::Filter;
use phoenix_testkit::Moto;
use phoenix_testkit::fault_proxy::{FaultPlan, FaultProxy, Seen};
use support::{Output, Project};

/// One web server keeps a run short; the stack still has every type and the
/// whole dependency chain (VPC → subnets/IGW → routes → instance → volume,
/// attachment, EIP).
const WEB_COUNT: &str = "web_count=1";

/// Resource names of the stack at `web_count=1`, by object type as counted below.
fn declared() -> BTreeSet<(&'static str, String)> {
    let mut d = BTreeSet::new();
    d.insert(("vpc", "vpc".into()));
    for z in 0..3 {
        d.insert(("subnet", format!("subnet-{z}")));
    }
    d.insert(("igw", "igw".into()));
    d.insert(("route_table", "public-routes".into()));
    d.insert(("security_group", "web-sg".into()));
    d.insert(("instance", "web-0".into()));
    d.insert(("volume", "data-0".into()));
    d.insert(("root_volume", "web-0".into()));
    d.insert(("eip", "web-ip".into()));
    d
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

/// Every live object tagged as this environment instance's, seen directly in
/// moto (not through Phoenix): (object type, `phoenix:resource` tag, id).
async fn tagged_objects(ec2: &aws_sdk_ec2::Client, instance: &str) -> Vec<(&'static str, String, String)> {
    let f = || {
        vec![
            Filter::builder().name("tag:phoenix:environment").values("staging").build(),
            Filter::builder().name("tag:phoenix:instance").values(instance).build(),
        ]
    };
    fn res(tags: &[aws_sdk_ec2::types::Tag]) -> String {
        tags.iter().find(|t| t.key() == Some("phoenix:resource")).and_then(|t| t.value()).unwrap_or("?").to_string()
    }
    let mut out = Vec::new();
    let live =
        Filter::builder().name("instance-state-name").values("pending").values("running").values("stopping").values("stopped").build();
    let mut filters = f();
    filters.push(live);
    for r in ec2.describe_instances().set_filters(Some(filters)).send().await.unwrap().reservations() {
        for i in r.instances() {
            out.push(("instance", res(i.tags()), i.instance_id().unwrap_or_default().to_string()));
        }
    }
    for v in ec2.describe_vpcs().set_filters(Some(f())).send().await.unwrap().vpcs() {
        out.push(("vpc", res(v.tags()), v.vpc_id().unwrap_or_default().to_string()));
    }
    for s in ec2.describe_subnets().set_filters(Some(f())).send().await.unwrap().subnets() {
        out.push(("subnet", res(s.tags()), s.subnet_id().unwrap_or_default().to_string()));
    }
    for g in ec2.describe_internet_gateways().set_filters(Some(f())).send().await.unwrap().internet_gateways() {
        out.push(("igw", res(g.tags()), g.internet_gateway_id().unwrap_or_default().to_string()));
    }
    for t in ec2.describe_route_tables().set_filters(Some(f())).send().await.unwrap().route_tables() {
        out.push(("route_table", res(t.tags()), t.route_table_id().unwrap_or_default().to_string()));
    }
    for g in ec2.describe_security_groups().set_filters(Some(f())).send().await.unwrap().security_groups() {
        out.push(("security_group", res(g.tags()), g.group_id().unwrap_or_default().to_string()));
    }
    for v in ec2.describe_volumes().set_filters(Some(f())).send().await.unwrap().volumes() {
        let r = res(v.tags());
        let kind = if r.starts_with("data-") { "volume" } else { "root_volume" };
        out.push((kind, r, v.volume_id().unwrap_or_default().to_string()));
    }
    for a in ec2.describe_addresses().set_filters(Some(f())).send().await.unwrap().addresses() {
        out.push(("eip", res(a.tags()), a.allocation_id().unwrap_or_default().to_string()));
    }
    out
}

/// The compacted state document (`state.json`'s `state`), if any.
fn state_doc(project: &Project) -> Option<serde_json::Value> {
    let dir = project.dir.join(".phoenix/state");
    let file = find_file(&dir, "state.json")?;
    let text = std::fs::read_to_string(file).ok()?;
    let envelope: serde_json::Value = serde_json::from_str(&text).expect("state.json is JSON");
    Some(envelope["state"].clone())
}

fn find_file(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

fn serial(project: &Project) -> u64 {
    state_doc(project).and_then(|s| s["serial"].as_u64()).unwrap_or(0)
}

/// Ids recorded in state: (resource, id).
fn recorded_ids(project: &Project) -> BTreeMap<String, String> {
    let Some(doc) = state_doc(project) else { return BTreeMap::new() };
    doc["resources"]
        .as_object()
        .map(|m| m.iter().filter_map(|(a, r)| Some((a.clone(), r["outputs"]["id"].as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

struct Stack {
    moto: Moto,
    ec2: aws_sdk_ec2::Client,
}

impl Stack {
    /// `phoenix ARGS` for instance `inst` through `proxy`, killed (SIGKILL)
    /// right after the proxy passed request number `kill_at` to moto.
    fn run(&self, project: &Project, proxy: &FaultProxy, inst: &str, args: &[&str], kill_at: Option<u64>) -> (Output, bool) {
        let mut all = args.to_vec();
        all.extend(["--yes", "--instance", inst, "--var", WEB_COUNT]);
        let mut c = support::command(&project.dir, &all);
        c.envs(self.moto.env()).env("AWS_ENDPOINT_URL", proxy.endpoint());
        c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        proxy.reset_counts();
        let pid = Arc::new(AtomicI32::new(0));
        let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(n) = kill_at {
            let (pid, killed) = (pid.clone(), killed.clone());
            proxy.set_hook(Arc::new(move |seen: &Seen| {
                let p = pid.load(Ordering::SeqCst);
                if seen.seq == n && p > 0 {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
                    killed.store(true, Ordering::SeqCst);
                }
            }));
        } else {
            proxy.set_hook(Arc::new(|_: &Seen| {}));
        }
        let child = c.spawn().expect("phoenix runs");
        pid.store(child.id() as i32, Ordering::SeqCst);
        let out = child.wait_with_output().unwrap();
        pid.store(0, Ordering::SeqCst);
        let output = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (output, killed.load(Ordering::SeqCst))
    }

    /// Everything that must hold once `up` finished: exactly the declared
    /// objects, once each, all recorded in state, and a clean plan.
    async fn check_up(&self, project: &Project, proxy: &FaultProxy, inst: &str) -> Result<(), String> {
        let objects = tagged_objects(&self.ec2, inst).await;
        let mut seen = BTreeSet::new();
        for (kind, res, id) in &objects {
            if !seen.insert((*kind, res.clone())) {
                return Err(format!("duplicate {kind} `{res}` ({id}): {objects:?}"));
            }
        }
        if seen != declared() {
            return Err(format!("objects differ from the definition: have {seen:?}"));
        }
        let recorded = recorded_ids(project);
        for (kind, res, id) in &objects {
            if *kind != "root_volume" && recorded.get(res) != Some(id) {
                return Err(format!("orphan {kind} `{res}` ({id}): state records {:?}", recorded.get(res)));
            }
        }
        let (plan, _) = self.run_plan(project, proxy, inst);
        if plan.code != 0 {
            return Err(format!("the plan after the rerun is not clean (exit {}):\n{}\n{}", plan.code, plan.stdout, plan.stderr));
        }
        Ok(())
    }

    fn run_plan(&self, project: &Project, proxy: &FaultProxy, inst: &str) -> (Output, bool) {
        let mut c = support::command(&project.dir, &["plan", "staging", "--detailed-exitcode", "--instance", inst, "--var", WEB_COUNT]);
        c.envs(self.moto.env()).env("AWS_ENDPOINT_URL", proxy.endpoint());
        let out = c.output().unwrap();
        let o = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (o, false)
    }

    async fn check_down(&self, project: &Project, inst: &str) -> Result<(), String> {
        let left = tagged_objects(&self.ec2, inst).await;
        if !left.is_empty() {
            return Err(format!("left behind after down: {left:?}"));
        }
        let recorded = recorded_ids(project);
        if !recorded.is_empty() {
            return Err(format!("state still records {recorded:?}"));
        }
        Ok(())
    }
}

/// SplitMix64 of the seed: the kill point of a seed is the same on every machine.
fn draw(seed: u64, salt: u64) -> u64 {
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(salt);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn seeds() -> Vec<u64> {
    if let Ok(s) = std::env::var("PHOENIX_CRASH_SEED") {
        return vec![s.parse().expect("PHOENIX_CRASH_SEED is a number")];
    }
    let n: u64 = std::env::var("PHOENIX_CRASH_SEEDS").ok().map(|s| s.parse().expect("PHOENIX_CRASH_SEEDS is a number")).unwrap_or(20);
    (1..=n).collect()
}

/// One seed: odd seeds crash an `up` from nothing; even seeds bring the stack
/// up, then crash its `down`. Returns the kill point used, or what went wrong.
async fn one_seed(stack: &Stack, proxy: &FaultProxy, seed: u64, up_requests: u64, down_requests: u64) -> Result<String, String> {
    let project = Project::repo();
    let inst = format!("s{seed}");
    let crash_down = seed % 2 == 0;
    if crash_down {
        let (up, _) = stack.run(&project, proxy, &inst, &["up", "staging"], None);
        if up.code != 0 {
            return Err(format!("the setup up failed:\n{}\n{}", up.stdout, up.stderr));
        }
    }
    let (command, range) = if crash_down { ("down", down_requests) } else { ("up", up_requests) };
    let kill_at = 1 + draw(seed, 1) % range.max(1);
    let serial_before = serial(&project);
    let (first, killed) = stack.run(&project, proxy, &inst, &[command, "staging"], Some(kill_at));
    if !killed {
        return Err(format!("{command} was not killed at request {kill_at} (exit {}):\n{}", first.code, first.stderr));
    }
    let (rerun, _) = stack.run(&project, proxy, &inst, &[command, "staging"], None);
    if rerun.code != 0 {
        return Err(format!("the rerun of {command} after a kill at request {kill_at} failed:\n{}\n{}", rerun.stdout, rerun.stderr));
    }
    let serial_after = serial(&project);
    if serial_after <= serial_before {
        return Err(format!("state serial did not increase: {serial_before} -> {serial_after}"));
    }
    if crash_down { stack.check_down(&project, &inst).await } else { stack.check_up(&project, proxy, &inst).await }
        .map_err(|e| format!("{command} killed at request {kill_at}: {e}"))?;
    Ok(format!("{command} killed at request {kill_at}/{range}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_seeded_points_of_up_and_down_then_rerun_converges() {
    let moto = Moto::start();
    let ec2 = client(&moto);
    let stack = Stack { moto, ec2 };
    let proxy = FaultProxy::start(stack.moto.port, FaultPlan::none());

    // Baseline: an uninterrupted up and down, measuring their request counts.
    let base = Project::repo();
    let (up, _) = stack.run(&base, &proxy, "base", &["up", "staging"], None);
    assert_eq!(up.code, 0, "baseline up:\n{}\n{}", up.stdout, up.stderr);
    let up_requests = proxy.counts().requests;
    stack.check_up(&base, &proxy, "base").await.unwrap();
    let (down, _) = stack.run(&base, &proxy, "base", &["down", "staging"], None);
    assert_eq!(down.code, 0, "baseline down:\n{}\n{}", down.stdout, down.stderr);
    let down_requests = proxy.counts().requests;
    stack.check_down(&base, "base").await.unwrap();
    eprintln!("crash_anywhere: a full up makes {up_requests} API requests, a down {down_requests}");

    let mut failures = Vec::new();
    let seeds = seeds();
    for &seed in &seeds {
        match one_seed(&stack, &proxy, seed, up_requests, down_requests).await {
            Ok(what) => eprintln!("crash_anywhere: seed {seed}: {what}: converged"),
            Err(e) => {
                eprintln!("crash_anywhere: seed {seed} FAILED (rerun with PHOENIX_CRASH_SEED={seed}): {e}");
                failures.push(seed);
            }
        }
    }
    eprintln!("crash_anywhere: {} of {} seeds converged", seeds.len() - failures.len(), seeds.len());
    assert!(failures.is_empty(), "seeds that did not converge: {failures:?} (rerun one with PHOENIX_CRASH_SEED=<seed>)");
}
