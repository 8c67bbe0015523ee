//! Test doubles for the executor and planner unit tests: a provider that
//! records its calls and can be told to fail or to take time, and an
//! in-memory journal. Never used for a real provider's tests.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;

use crate::addr::ResourceAddr;
use crate::definition::{Definition, ResourceConfig};
use crate::provider::*;
use crate::recovery::SnapshotRef;
use crate::schema::{AttrSchema, AttrType, ResourceSchema};
use crate::state::{Journal, JournalError, JournalRecord, StateDoc};
use crate::value::{Attrs, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub op: &'static str,
    pub addr: String,
    pub start: Instant,
    pub end: Instant,
}

#[derive(Default)]
pub struct FakeProvider {
    pub calls: Mutex<Vec<Call>>,
    pub fail: Mutex<BTreeSet<String>>,
    pub delay: Duration,
    pub journal: Option<Arc<MemoryJournal>>,
    pub journal_len_at_start: Mutex<Vec<(String, usize)>>,
}

impl FakeProvider {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    pub fn ops(&self) -> Vec<(String, String)> {
        self.calls().into_iter().map(|c| (c.op.to_string(), c.addr)).collect()
    }
    async fn call(&self, op: &'static str, addr: &ResourceAddr) -> Result<(), ProviderError> {
        if let Some(j) = &self.journal {
            self.journal_len_at_start.lock().unwrap().push((addr.to_string(), j.records().len()));
        }
        let start = Instant::now();
        tokio::time::sleep(self.delay).await;
        self.calls.lock().unwrap().push(Call { op, addr: addr.to_string(), start, end: Instant::now() });
        if self.fail.lock().unwrap().contains(addr.as_str()) {
            return Err(ProviderError::new(ErrorKind::PermissionDenied, format!("{addr} failed on purpose")));
        }
        Ok(())
    }
}

pub fn thing_schema() -> ResourceSchema {
    ResourceSchema {
        type_name: "fake.thing",
        description: "test",
        attrs: vec![
            AttrSchema::optional("name", AttrType::String, "updatable"),
            AttrSchema::optional("size", AttrType::Int, "forces replacement").force_new(),
            AttrSchema::optional("password", AttrType::String, "sensitive").sensitive(),
            AttrSchema::optional("port", AttrType::Int, "has a default").default(json!(80)),
            AttrSchema::optional("from_snapshot", AttrType::String, "the snapshot it was made from").force_new(),
            AttrSchema::optional("stateful", AttrType::Bool, "false: holds no data to snapshot"),
            AttrSchema::computed("id", AttrType::String, "id").stable(),
            AttrSchema::computed("echo", AttrType::String, "the name, as last applied"),
        ],
        update_in_place: true,
        create_before_destroy: false,
        adoptable: true,
    }
}

#[async_trait]
impl Provider for FakeProvider {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn schemas(&self) -> Vec<ResourceSchema> {
        vec![thing_schema()]
    }
    fn configure(&self, _cx: &ProviderContext) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>> {
        items.into_iter().map(|i| Ok(Some(Observed { inputs: Attrs::new(), outputs: i.outputs }))).collect()
    }
    async fn adopt(&self, _req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        Ok(None)
    }
    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        self.call("create", &req.addr).await?;
        let echo = req.inputs.get("name").cloned().unwrap_or(Value::Null);
        Ok([("id".to_string(), json!(format!("id-{}", req.addr))), ("echo".to_string(), echo)].into_iter().collect())
    }
    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        self.call("update", &req.addr).await?;
        let mut out = req.prior_outputs;
        out.insert("echo".into(), req.inputs.get("name").cloned().unwrap_or(Value::Null));
        Ok(out)
    }
    async fn delete(&self, req: DeleteRequest) -> Result<(), ProviderError> {
        self.call("delete", &req.addr).await
    }
    fn recovery(&self) -> Option<&dyn Recovery> {
        Some(self)
    }
}

#[async_trait]
impl Recovery for FakeProvider {
    fn restore_attr(&self, _type_name: &str) -> Option<&'static str> {
        Some("from_snapshot")
    }
    /// Every object holds data unless its inputs say `stateful = false`.
    fn is_stateful(&self, _type_name: &str, inputs: &Attrs) -> bool {
        inputs.get("stateful") != Some(&Value::Bool(false))
    }
    async fn snapshot(&self, req: SnapshotRequest) -> Result<SnapshotRef, ProviderError> {
        self.call("snapshot", &req.addr).await?;
        Ok(SnapshotRef { id: format!("snap-{}-{}", req.addr, req.point), region: Some("r1".into()) })
    }
    async fn copy_snapshot(&self, type_name: &str, _snapshot: &SnapshotRef, _to_region: &str) -> Result<SnapshotRef, ProviderError> {
        Err(ProviderError::unsupported(format!("the fake provider cannot copy `{type_name}` snapshots between regions")))
    }
    async fn delete_snapshot(&self, type_name: &str, _snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        Err(ProviderError::unsupported(format!("the fake provider cannot delete `{type_name}` snapshots")))
    }
}

#[derive(Default)]
pub struct MemoryJournal {
    records: Mutex<Vec<JournalRecord>>,
}

impl MemoryJournal {
    pub fn records(&self) -> Vec<JournalRecord> {
        self.records.lock().unwrap().clone()
    }
    /// The state that replaying the journal over `base` gives.
    pub fn replay(&self, base: &StateDoc) -> StateDoc {
        let mut s = base.clone();
        for r in self.records() {
            s.apply_record(&r);
        }
        s
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn record(&self, record: JournalRecord) -> Result<(), JournalError> {
        self.records.lock().unwrap().push(record);
        Ok(())
    }
}

/// A definition from `(name, attrs as JSON, depends_on)`, all of type `fake.thing`.
pub fn def(resources: &[(&str, Value)]) -> Definition {
    let mut d = Definition::default();
    for (name, attrs) in resources {
        let addr = ResourceAddr::parse(name).unwrap();
        let attrs: Attrs = serde_json::from_value(attrs.clone()).unwrap();
        d.resources.insert(
            addr.clone(),
            ResourceConfig {
                addr,
                type_name: "fake.thing".into(),
                attrs,
                depends_on: vec![],
                create_before_destroy: None,
                lifecycle: Default::default(),
            },
        );
    }
    d
}

pub fn addr(s: &str) -> ResourceAddr {
    ResourceAddr::parse(s).unwrap()
}

pub fn registry(p: Arc<FakeProvider>) -> Registry {
    let mut r = Registry::new();
    r.register(p);
    r
}

/// Plans `def` against `state` and applies it with a fresh fake provider: the resulting state.
pub async fn applied(def: &Definition, state: &StateDoc) -> StateDoc {
    use crate::planner::{PlanOptions, diff, refresh};
    let reg = registry(Arc::new(FakeProvider::default()));
    let plan = diff(def, &refresh(state, &reg).await.unwrap(), &reg, &PlanOptions::default());
    let journal = Arc::new(MemoryJournal::default());
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let report = crate::executor::apply(
        &plan,
        &reg,
        journal.clone(),
        Arc::new(crate::executor::NullReporter),
        crate::executor::ApplyOptions { parallelism: 4, cancel: rx },
    )
    .await
    .unwrap();
    assert!(report.is_success(), "{report:?}");
    journal.replay(state)
}

pub fn empty_state() -> StateDoc {
    StateDoc::new("test", None, "lineage-1".into())
}
