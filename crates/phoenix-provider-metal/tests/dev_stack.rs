//! The dev stack (hook -> files -> service -> health check -> hook) through
//! phoenix-core's planner and executor: up, a second plan with nothing to do,
//! an `up` killed before it recorded the service, and down leaving no trace.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use phoenix_core::definition::{Definition, OutputConfig, ResourceConfig};
use phoenix_core::executor::{ApplyOptions, NullReporter, Outcome, apply};
use phoenix_core::plan::Action;
use phoenix_core::planner::{PlanOptions, diff, refresh};
use phoenix_core::provider::{ProviderContext, Registry};
use phoenix_core::state::{Journal, JournalError, JournalRecord, StateDoc};
use phoenix_core::{Attrs, ResourceAddr, Value};
use phoenix_provider_metal::{LocalTransport, MetalProvider, OwnerMark, Transport};
use serde_json::json;

/// Journal in memory; can "crash" by dropping the result of one resource's create.
struct MemJournal {
    records: Mutex<Vec<JournalRecord>>,
    lose_put_of: Option<String>,
}

#[async_trait]
impl Journal for MemJournal {
    async fn record(&self, record: JournalRecord) -> Result<(), JournalError> {
        if let (JournalRecord::Put { addr, .. }, Some(lost)) = (&record, &self.lose_put_of)
            && addr.as_str() == lost
        {
            return Ok(());
        }
        self.records.lock().unwrap().push(record);
        Ok(())
    }
}

fn resource(name: &str, type_name: &str, attrs: Value, depends_on: &[&str]) -> (ResourceAddr, ResourceConfig) {
    let addr = ResourceAddr::parse(name).unwrap();
    let attrs: Attrs = serde_json::from_value(attrs).unwrap();
    let depends_on = depends_on.iter().map(|d| ResourceAddr::parse(d).unwrap()).collect();
    (
        addr.clone(),
        ResourceConfig { addr, type_name: type_name.into(), attrs, depends_on, create_before_destroy: None, lifecycle: Default::default() },
    )
}

fn dev_definition(port: u16) -> Definition {
    let resources = [
        resource("preflight", "metal.exec", json!({"command": "python3 --version"}), &[]),
        resource("index", "metal.file", json!({"path": "site/index.html", "content": "<h1>Hello</h1>\n"}), &["preflight"]),
        resource("health-page", "metal.file", json!({"path": "site/healthz", "content": "ok\n"}), &["preflight"]),
        resource(
            "web",
            "metal.service",
            json!({
                "command": format!("exec python3 -m http.server {port} --bind 127.0.0.1 --directory site"),
                "environment": {"GREETING": "secret-ish"},
                "restart_on": {"index": "${index.sha256}"},
            }),
            &["health-page"],
        ),
        resource(
            "web-ready",
            "metal.http_check",
            json!({"url": format!("http://127.0.0.1:{port}/healthz"), "contains": "ok", "timeout_secs": 30, "interval_ms": 50}),
            &["web"],
        ),
        resource(
            "announce",
            "metal.exec",
            json!({"command": "echo 'deployed ${web.pid}' > deployed.txt", "destroy_command": "rm -f deployed.txt"}),
            &["web-ready", "index"],
        ),
    ];
    let mut outputs = std::collections::BTreeMap::new();
    outputs.insert("pid".to_string(), OutputConfig { value: json!("${web.pid}"), sensitive: false, description: None });
    Definition { resources: resources.into_iter().collect(), outputs }
}

async fn up(def: &Definition, state: &StateDoc, registry: &Registry, lose_put_of: Option<&str>) -> (StateDoc, Vec<(String, Action)>) {
    let refreshed =
        refresh(state, registry).await.map_err(|e| format!("{:?}", e.iter().map(|e| &e.error.message).collect::<Vec<_>>())).unwrap();
    let plan = diff(def, &refreshed, registry, &PlanOptions::default());
    let actions = plan.changes.iter().map(|c| (c.addr.to_string(), c.action)).collect();
    let journal = Arc::new(MemJournal { records: Mutex::new(Vec::new()), lose_put_of: lose_put_of.map(str::to_string) });
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let report = apply(&plan, registry, journal.clone(), Arc::new(NullReporter), ApplyOptions { parallelism: 8, cancel }).await.unwrap();
    for r in &report.results {
        assert!(matches!(r.outcome, Outcome::Succeeded), "{} {}: {:?}", r.op, r.addr, r.outcome);
    }
    let mut next = refreshed.state.clone();
    for rec in journal.records.lock().unwrap().iter() {
        next.apply_record(rec);
    }
    (next, actions)
}

async fn down(state: &StateDoc, registry: &Registry) -> StateDoc {
    let refreshed = refresh(state, registry).await.unwrap();
    let plan = diff(&Definition::default(), &refreshed, registry, &PlanOptions { destroy: true, ..Default::default() });
    let journal = Arc::new(MemJournal { records: Mutex::new(Vec::new()), lose_put_of: None });
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let report = apply(&plan, registry, journal.clone(), Arc::new(NullReporter), ApplyOptions { parallelism: 8, cancel }).await.unwrap();
    for r in &report.results {
        assert!(matches!(r.outcome, Outcome::Succeeded), "{} {}: {:?}", r.op, r.addr, r.outcome);
    }
    let mut next = refreshed.state.clone();
    for rec in journal.records.lock().unwrap().iter() {
        next.apply_record(rec);
    }
    next
}

/// Stops every service of the environment left running if the test fails.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let owner = self.0.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let t = LocalTransport::new();
                let mark = OwnerMark { vars: vec![("PHOENIX_OWNER".into(), owner)] };
                for pid in t.find_services(&mark).await.unwrap_or_default() {
                    let _ = t.stop_service(pid, &mark, std::time::Duration::from_secs(1)).await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_stack_up_noop_adopt_down() {
    let dir = tempfile::tempdir().unwrap();
    let lineage = dir.path().file_name().unwrap().to_string_lossy().into_owned();
    let _cleanup = Cleanup(format!("dev/web@{lineage}"));
    let provider = MetalProvider::new();
    use phoenix_core::provider::Provider as _;
    provider
        .configure(&ProviderContext {
            environment: "dev".into(),
            instance: None,
            project_dir: dir.path().to_path_buf(),
            data_dir: dir.path().join(".phoenix/env/dev"),
            config: Attrs::new(),
        })
        .unwrap();
    let mut registry = Registry::new();
    registry.register(Arc::new(provider));
    let root = dir.path().join(".phoenix/env/dev/work");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let def = dev_definition(port);
    let services = || async {
        let mark = OwnerMark { vars: vec![("PHOENIX_OWNER".into(), format!("dev/web@{lineage}"))] };
        LocalTransport::new().find_services(&mark).await.unwrap()
    };

    // up
    let (state, actions) = up(&def, &StateDoc::new("dev", None, lineage.clone()), &registry, None).await;
    assert!(actions.iter().all(|(_, a)| *a == Action::Create), "{actions:?}");
    let pid = state.resources[&ResourceAddr::parse("web").unwrap()].outputs["pid"].as_u64().unwrap() as u32;
    assert_eq!(std::fs::read_to_string(root.join("deployed.txt")).unwrap(), format!("deployed {pid}\n"));
    assert_eq!(services().await, vec![pid]);
    // The sensitive environment is sealed in state.
    let web_inputs = &state.resources[&ResourceAddr::parse("web").unwrap()].inputs;
    assert!(!web_inputs["environment"].to_string().contains("secret-ish"));

    // A second plan has nothing to do: refresh reads back exactly what was applied.
    let (state, actions) = up(&def, &state, &registry, None).await;
    assert!(actions.iter().all(|(_, a)| *a == Action::NoOp), "{actions:?}");

    // Changing the page restarts the service (restart_on references its sha256).
    let mut def2 = def.clone();
    def2.resources.get_mut(&ResourceAddr::parse("index").unwrap()).unwrap().attrs.insert("content".into(), json!("<h1>Hi</h1>\n"));
    let (state, actions) = up(&def2, &state, &registry, None).await;
    let action = |n: &str| actions.iter().find(|(a, _)| a == n).unwrap().1;
    assert_eq!(action("index"), Action::Update);
    assert_eq!(action("web"), Action::Update);
    let pid2 = state.resources[&ResourceAddr::parse("web").unwrap()].outputs["pid"].as_u64().unwrap() as u32;
    assert_ne!(pid, pid2);
    assert_eq!(services().await, vec![pid2]);

    // Killed out from under Phoenix: the next up starts it again.
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid2 as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (state, actions) = up(&def2, &state, &registry, None).await;
    assert_eq!(actions.iter().find(|(a, _)| a == "web").unwrap().1, Action::Create);
    let pid3 = state.resources[&ResourceAddr::parse("web").unwrap()].outputs["pid"].as_u64().unwrap() as u32;
    assert_eq!(services().await, vec![pid3]);

    // down, then an `up` that dies before recording the service: the next run adopts it.
    let state = down(&state, &registry).await;
    assert!(state.is_empty());
    assert!(services().await.is_empty());
    assert!(!root.exists(), "down leaves no trace");
    let (crashed, _) = up(&def2, &state, &registry, Some("web")).await;
    assert!(!crashed.resources.contains_key(&ResourceAddr::parse("web").unwrap()));
    assert!(crashed.pending.contains_key(&ResourceAddr::parse("web").unwrap()));
    let lost = services().await;
    assert_eq!(lost.len(), 1);
    let (state, actions) = up(&def2, &crashed, &registry, None).await;
    assert_ne!(actions.iter().find(|(a, _)| a == "web").unwrap().1, Action::Create, "{actions:?}");
    assert_eq!(services().await, lost, "adopted, not started twice");
    assert_eq!(state.resources[&ResourceAddr::parse("web").unwrap()].outputs["pid"].as_u64().unwrap() as u32, lost[0]);

    let state = down(&state, &registry).await;
    assert!(state.is_empty());
    assert!(services().await.is_empty());
    assert!(!root.exists());
}
