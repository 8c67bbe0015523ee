//! `executor`: the scheduler alone against the critical-path lower bound.
//!
//! The `delay` benchmark runs `metal.exec sleep 0.1` through the binary, so
//! its figure includes creating a process per operation (3–5 ms each here,
//! more when dozens start at once on 2 cores). This one runs the real planner
//! and executor in process on the same layered DAGs with a provider whose every
//! create takes exactly `DELAY` (a timer, no process), so what it measures
//! beyond the bound is the executor's own scheduling, journaling and
//! bookkeeping. The journal keeps records in memory (the `scale` benchmark
//! measures the durable one).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use phoenix_core::addr::ResourceAddr;
use phoenix_core::definition::{Definition, ResourceConfig};
use phoenix_core::executor::{ApplyOptions, NullReporter, apply};
use phoenix_core::planner::{PlanOptions, diff, refresh};
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, Provider, ProviderContext, ProviderError, RefreshItem, Registry, UpdateRequest,
};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::state::{Journal, JournalError, JournalRecord, StateDoc};
use phoenix_core::value::{Attrs, Value};

const DELAY: Duration = Duration::from_millis(100);

/// Every operation takes `DELAY`, then succeeds.
struct DelayProvider;

#[async_trait]
impl Provider for DelayProvider {
    fn name(&self) -> &'static str {
        "delay"
    }
    fn schemas(&self) -> Vec<ResourceSchema> {
        vec![ResourceSchema {
            type_name: "delay.op",
            description: "an operation taking a fixed time",
            attrs: vec![
                AttrSchema::optional("label", AttrType::String, "any value"),
                AttrSchema::computed("id", AttrType::String, "id").stable(),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: false,
        }]
    }
    fn configure(&self, _cx: &ProviderContext) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>> {
        items.into_iter().map(|i| Ok(Some(Observed { inputs: i.inputs, outputs: i.outputs }))).collect()
    }
    async fn adopt(&self, _req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        Ok(None)
    }
    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        tokio::time::sleep(DELAY).await;
        Ok([("id".to_string(), Value::String(format!("op-{}", req.addr)))].into_iter().collect())
    }
    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        tokio::time::sleep(DELAY).await;
        Ok(req.prior_outputs)
    }
    async fn delete(&self, _req: DeleteRequest) -> Result<(), ProviderError> {
        tokio::time::sleep(DELAY).await;
        Ok(())
    }
}

/// Serializes each record as the local backend would before appending it.
#[derive(Default)]
struct MemoryJournal(Mutex<Vec<String>>);

#[async_trait]
impl Journal for MemoryJournal {
    async fn record(&self, record: JournalRecord) -> Result<(), JournalError> {
        let line = serde_json::to_string(&record).map_err(|e| JournalError::Serialize(e.to_string()))?;
        self.0.lock().unwrap().push(line);
        Ok(())
    }
}

/// `layers` x `width` operations, each needing two of the layer before (as in `delay`).
fn layered(layers: usize, width: usize) -> Definition {
    let mut d = Definition::default();
    let name = |l: usize, i: usize| ResourceAddr::parse(&format!("n{l}-{i}")).unwrap();
    for l in 0..layers {
        for i in 0..width {
            let addr = name(l, i);
            let depends_on = if l == 0 { vec![] } else { vec![name(l - 1, i), name(l - 1, (i * 7 + 3) % width)] };
            let attrs: Attrs = [("label".to_string(), Value::String(addr.to_string()))].into_iter().collect();
            d.resources.insert(
                addr.clone(),
                ResourceConfig {
                    addr,
                    type_name: "delay.op".into(),
                    attrs,
                    depends_on,
                    create_before_destroy: None,
                    lifecycle: Default::default(),
                },
            );
        }
    }
    d
}

pub fn run() -> anyhow::Result<()> {
    println!("== executor alone (in process) vs lower bound: operations of exactly {} ms on layered DAGs", DELAY.as_millis());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    for (layers, width, parallelism) in [(10, 10, 10), (10, 20, 64), (5, 40, 16), (20, 8, 4), (10, 100, 256)] {
        let def = layered(layers, width);
        let mut registry = Registry::new();
        registry.register(Arc::new(DelayProvider));
        let state = StateDoc::new("bench", None, "bench-lineage".into());
        let exec = rt.block_on(async {
            let refreshed = refresh(&state, &registry).await.map_err(|e| anyhow::anyhow!("refresh: {} error(s)", e.len()))?;
            let plan = diff(&def, &refreshed, &registry, &PlanOptions::default());
            let (_tx, cancel) = tokio::sync::watch::channel(false);
            let start = Instant::now();
            let report =
                apply(&plan, &registry, Arc::new(MemoryJournal::default()), Arc::new(NullReporter), ApplyOptions { parallelism, cancel })
                    .await
                    .map_err(|e| anyhow::anyhow!("apply: {e:?}"))?;
            anyhow::ensure!(report.is_success() && report.succeeded() == layers * width, "not every operation succeeded");
            Ok::<_, anyhow::Error>(start.elapsed().as_secs_f64())
        })?;
        let n = layers * width;
        let step = DELAY.as_secs_f64();
        let work = n as f64 * step / parallelism as f64;
        let critical = layers as f64 * step;
        let bound = critical.max(work);
        // Operations are indivisible: n of them on `parallelism` slots take at
        // least ceil(n / parallelism) whole steps, which no schedule beats.
        let whole = critical.max(n.div_ceil(parallelism) as f64 * step);
        println!(
            "{n:>5} ops ({layers} x {width}), parallelism {parallelism:>3}: executor {exec:.3} s, bound {bound:.3} s \
             (critical path {critical:.1} s, work/parallelism {work:.3} s): {:+.1} %; in whole steps {whole:.3} s: {:+.1} %",
            (exec / bound - 1.0) * 100.0,
            (exec / whole - 1.0) * 100.0
        );
    }
    Ok(())
}
