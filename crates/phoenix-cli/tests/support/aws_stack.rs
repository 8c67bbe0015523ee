//! The AWS web stack (`environments/staging.toml`) driven through the binary
//! against moto behind a fault proxy, and checked with an independent SDK
//! client: what exists, once, recorded in state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use aws_sdk_ec2::types::Filter;
use phoenix_testkit::Moto;
use phoenix_testkit::fault_proxy::{FaultProxy, Seen};

use super::{Output, Project};

/// One web server keeps a run short; the stack still has every type and the
/// whole dependency chain (VPC → subnets/IGW → routes → instance → volume,
/// attachment, EIP).
pub const WEB_COUNT: &str = "web_count=1";

/// Resource names of the stack at `web_count=1`, by object type as counted below.
pub fn declared() -> BTreeSet<(&'static str, String)> {
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

pub fn client(moto: &Moto) -> aws_sdk_ec2::Client {
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
pub async fn tagged_objects(ec2: &aws_sdk_ec2::Client, instance: &str) -> Vec<(&'static str, String, String)> {
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
pub fn state_doc(project: &Project) -> Option<serde_json::Value> {
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

pub fn serial(project: &Project) -> u64 {
    state_doc(project).and_then(|s| s["serial"].as_u64()).unwrap_or(0)
}

/// Ids recorded in state: (resource, id).
pub fn recorded_ids(project: &Project) -> BTreeMap<String, String> {
    let Some(doc) = state_doc(project) else { return BTreeMap::new() };
    doc["resources"]
        .as_object()
        .map(|m| m.iter().filter_map(|(a, r)| Some((a.clone(), r["outputs"]["id"].as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

pub struct Stack {
    pub moto: Moto,
    pub ec2: aws_sdk_ec2::Client,
}

impl Stack {
    /// `phoenix ARGS` for instance `inst` through `proxy`, killed (SIGKILL)
    /// right after the proxy passed request number `kill_at` to moto.
    pub fn run(&self, project: &Project, proxy: &FaultProxy, inst: &str, args: &[&str], kill_at: Option<u64>) -> (Output, bool) {
        let mut all = args.to_vec();
        all.extend(["--yes", "--instance", inst, "--var", WEB_COUNT]);
        let mut c = super::command(&project.dir, &all);
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
                    // Marked before the signal: the parent may see the child gone before this thread runs on.
                    killed.store(true, Ordering::SeqCst);
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
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
    pub async fn check_up(&self, project: &Project, proxy: &FaultProxy, inst: &str) -> Result<(), String> {
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

    pub fn run_plan(&self, project: &Project, proxy: &FaultProxy, inst: &str) -> (Output, bool) {
        let mut c = super::command(&project.dir, &["plan", "staging", "--detailed-exitcode", "--instance", inst, "--var", WEB_COUNT]);
        c.envs(self.moto.env()).env("AWS_ENDPOINT_URL", proxy.endpoint());
        let out = c.output().unwrap();
        let o = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (o, false)
    }

    pub async fn check_down(&self, project: &Project, inst: &str) -> Result<(), String> {
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
