//! Property test of state integrity: random definitions, random provider
//! outcomes (failures before or after the object came into being, i.e. lost
//! answers) and random interruption points (the journal stops accepting
//! records, as when the process is killed), over a modelled world of objects.
//!
//! Invariants, after every run, interrupted or not:
//! - no orphan: every object in the world is recorded in state by its id, or
//!   its resource has a pending create intent (the next run adopts it);
//! - no duplicate: at most one object per ownership key, and no id recorded
//!   for two resources;
//!
//! and after a final run without faults: the world holds exactly the declared
//! objects, once each, all recorded, nothing pending, and a new plan is empty.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use proptest::prelude::*;
use serde_json::json;

use crate::addr::ResourceAddr;
use crate::definition::{Definition, ResourceConfig};
use crate::executor::{ApplyOptions, NullReporter, apply};
use crate::planner::{PlanOptions, diff, refresh};
use crate::provider::*;
use crate::schema::{AttrSchema, AttrType, ResourceSchema};
use crate::state::{Journal, JournalError, JournalRecord, StateDoc};
use crate::value::{Attrs, Value};

/// What one provider call does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Ok,
    /// Fails; nothing happened.
    FailBefore,
    /// Happens, then fails: a lost answer.
    FailAfter,
}

#[derive(Default)]
struct World {
    /// id -> (ownership key, resource)
    objects: BTreeMap<String, (String, String)>,
    next: u64,
    /// Fates of the next calls, in call order; `Ok` once used up.
    script: Vec<Fate>,
}

#[derive(Default)]
struct WorldProvider(Mutex<World>);

impl WorldProvider {
    fn fate(&self) -> Fate {
        let mut w = self.0.lock().unwrap();
        if w.script.is_empty() { Fate::Ok } else { w.script.remove(0) }
    }
}

fn schema() -> ResourceSchema {
    ResourceSchema {
        type_name: "world.thing",
        description: "an object in the modelled world",
        attrs: vec![
            AttrSchema::optional("name", AttrType::String, "updatable"),
            AttrSchema::optional("size", AttrType::Int, "forces replacement").force_new(),
            AttrSchema::computed("id", AttrType::String, "id").stable(),
        ],
        update_in_place: true,
        create_before_destroy: false,
        adoptable: true,
    }
}

fn id_attrs(id: &str) -> Attrs {
    [("id".to_string(), json!(id))].into_iter().collect()
}

#[async_trait]
impl Provider for WorldProvider {
    fn name(&self) -> &'static str {
        "world"
    }
    fn schemas(&self) -> Vec<ResourceSchema> {
        vec![schema()]
    }
    fn configure(&self, _cx: &ProviderContext) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>> {
        let w = self.0.lock().unwrap();
        items
            .into_iter()
            .map(|i| {
                let id = i.outputs.get("id").and_then(Value::as_str).unwrap_or_default();
                Ok(w.objects.contains_key(id).then(|| Observed { inputs: Attrs::new(), outputs: i.outputs.clone() }))
            })
            .collect()
    }
    async fn adopt(&self, req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let w = self.0.lock().unwrap();
        let key = req.ownership.key();
        Ok(w.objects.iter().find(|(_, (k, _))| *k == key).map(|(id, _)| Observed { inputs: Attrs::new(), outputs: id_attrs(id) }))
    }
    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        let fate = self.fate();
        if fate == Fate::FailBefore {
            return Err(ProviderError::transient("throttled"));
        }
        let id = {
            let mut w = self.0.lock().unwrap();
            w.next += 1;
            let id = format!("obj-{}", w.next);
            w.objects.insert(id.clone(), (req.ownership.key(), req.addr.to_string()));
            id
        };
        tokio::task::yield_now().await;
        if fate == Fate::FailAfter { Err(ProviderError::transient("connection reset")) } else { Ok(id_attrs(&id)) }
    }
    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        match self.fate() {
            Fate::Ok => Ok(req.prior_outputs),
            _ => Err(ProviderError::transient("update failed")),
        }
    }
    async fn delete(&self, req: DeleteRequest) -> Result<(), ProviderError> {
        let fate = self.fate();
        if fate == Fate::FailBefore {
            return Err(ProviderError::transient("throttled"));
        }
        let id = req.outputs.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        self.0.lock().unwrap().objects.remove(&id);
        tokio::task::yield_now().await;
        if fate == Fate::FailAfter { Err(ProviderError::transient("connection reset")) } else { Ok(()) }
    }
}

/// A journal that a "kill" stops: the first `limit` records are kept, later ones refused.
struct KilledAt {
    records: Mutex<Vec<JournalRecord>>,
    limit: usize,
}

#[async_trait]
impl Journal for KilledAt {
    async fn record(&self, record: JournalRecord) -> Result<(), JournalError> {
        let mut r = self.records.lock().unwrap();
        if r.len() >= self.limit {
            return Err(JournalError::Closed("killed".into()));
        }
        r.push(record);
        Ok(())
    }
}

/// One resource of a random definition: (name, size, depends on earlier indexes).
type Spec = Vec<(u8, u8, Vec<usize>)>;

fn definition(spec: &Spec) -> Definition {
    let mut d = Definition::default();
    for (i, (name, size, deps)) in spec.iter().enumerate() {
        let addr = ResourceAddr::parse(&format!("r{i}")).unwrap();
        let attrs: Attrs = [("name".to_string(), json!(format!("n{name}"))), ("size".to_string(), json!(size))].into_iter().collect();
        let depends_on = deps.iter().filter(|d| **d < i).map(|d| ResourceAddr::parse(&format!("r{d}")).unwrap()).collect();
        d.resources.insert(
            addr.clone(),
            ResourceConfig {
                addr,
                type_name: "world.thing".into(),
                attrs,
                depends_on,
                create_before_destroy: None,
                lifecycle: Default::default(),
            },
        );
    }
    d
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    prop::collection::vec((0u8..3, 0u8..2, prop::collection::vec(0usize..6, 0..3)), 0..6)
}

fn fate_strategy() -> impl Strategy<Value = Fate> {
    prop_oneof![6 => Just(Fate::Ok), 1 => Just(Fate::FailBefore), 1 => Just(Fate::FailAfter)]
}

/// Plans `def` (or a destroy) against `state` and applies it through a
/// journal killed after `limit` records; returns the state the next run sees.
async fn run(state: &StateDoc, def: &Definition, destroy: bool, registry: &Registry, limit: usize, parallelism: usize) -> StateDoc {
    let refreshed = refresh(state, registry).await.unwrap_or_else(|e| panic!("refresh failed: {e:?}"));
    let plan = diff(def, &refreshed, registry, &PlanOptions { destroy, ..Default::default() });
    let journal = Arc::new(KilledAt { records: Mutex::new(Vec::new()), limit });
    let (_tx, cancel) = tokio::sync::watch::channel(false);
    let _ = apply(&plan, registry, journal.clone(), Arc::new(NullReporter), ApplyOptions { parallelism, cancel }).await;
    let mut next = state.clone();
    for r in journal.records.lock().unwrap().iter() {
        next.apply_record(r);
    }
    next
}

fn check_no_orphan_no_duplicate(world: &World, state: &StateDoc, when: &str) -> Result<(), TestCaseError> {
    let recorded: BTreeMap<&str, &ResourceAddr> =
        state.resources.iter().filter_map(|(a, r)| Some((r.outputs.get("id")?.as_str()?, a))).collect();
    let ids: Vec<&str> = recorded.keys().copied().collect();
    prop_assert_eq!(ids.len(), state.resources.len(), "{}: an id recorded twice or missing: {:?}", when, state.resources);
    let mut keys = BTreeSet::new();
    for (id, (key, res)) in &world.objects {
        prop_assert!(keys.insert(key.clone()), "{}: duplicate object for {}: {:?}", when, res, world.objects);
        let tracked = recorded.contains_key(id.as_str()) || state.pending.keys().any(|a| a.as_str() == res);
        prop_assert!(
            tracked,
            "{}: orphan {} of {} (state {:?}, pending {:?})",
            when,
            id,
            res,
            state.resources.keys(),
            state.pending.keys()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn interrupted_faulty_runs_never_orphan_or_duplicate_and_a_clean_run_converges(
        first in spec_strategy(),
        second in spec_strategy(),
        destroy_second in any::<bool>(),
        fates in prop::collection::vec(fate_strategy(), 0..24),
        kill1 in 0usize..30,
        kill2 in 0usize..30,
        parallelism in 1usize..4,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let provider = Arc::new(WorldProvider::default());
            provider.0.lock().unwrap().script = fates.clone();
            let mut registry = Registry::new();
            registry.register(provider.clone());
            let (d1, d2) = (definition(&first), definition(&second));

            let s1 = run(&StateDoc::new("env", None, "lineage".into()), &d1, false, &registry, kill1, parallelism).await;
            check_no_orphan_no_duplicate(&provider.0.lock().unwrap(), &s1, "after the first run")?;
            let s2 = run(&s1, &d2, destroy_second, &registry, kill2, parallelism).await;
            check_no_orphan_no_duplicate(&provider.0.lock().unwrap(), &s2, "after the second run")?;

            // No more faults, no kill: one run converges.
            provider.0.lock().unwrap().script.clear();
            let target = if destroy_second { Definition::default() } else { d2.clone() };
            let s3 = run(&s2, &target, destroy_second, &registry, usize::MAX, parallelism).await;
            let world = provider.0.lock().unwrap();
            check_no_orphan_no_duplicate(&world, &s3, "after the clean run")?;
            let in_world: BTreeSet<&str> = world.objects.values().map(|(_, r)| r.as_str()).collect();
            let declared: BTreeSet<&str> = target.resources.keys().map(ResourceAddr::as_str).collect();
            prop_assert_eq!(&in_world, &declared, "the world after the clean run");
            let recorded: BTreeSet<&str> = s3.resources.keys().map(ResourceAddr::as_str).collect();
            prop_assert_eq!(&recorded, &declared, "state after the clean run");
            prop_assert!(s3.pending.is_empty(), "pending after the clean run: {:?}", s3.pending);
            drop(world);
            let refreshed = refresh(&s3, &registry).await.unwrap();
            let plan = diff(&target, &refreshed, &registry, &PlanOptions { destroy: destroy_second, ..Default::default() });
            prop_assert!(!plan.has_work(), "a clean run left work: {:?}", plan.summary());
            Ok(())
        })?;
    }
}
