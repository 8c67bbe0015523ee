//! The conformance suite on the builtin `data` kind, and the suite failing
//! on kinds that break the contract (so a passing kind means something).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use phoenix_core::Attrs;
use phoenix_core::builtin::BuiltinProvider;
use phoenix_core::provider::*;
use phoenix_core::schema::ResourceSchema;
use phoenix_testkit::conformance::{self, Case, Harness};
use serde_json::json;

fn data_case() -> Case {
    Case::new("data", json!({"input": "one"}))
        .update(json!({"input": "two"}))
        .replace(json!({"input": "two", "triggers": {"release": 2}}))
        .not_listable()
}

#[tokio::test]
async fn data() {
    let report = conformance::run(&Harness { provider: Arc::new(BuiltinProvider::default()), proxied: None }, &data_case()).await;
    assert!(report.has("update in place") && report.has("force-new change replaces"), "{report:?}");
}

/// The builtin provider with one defect.
struct Broken {
    inner: BuiltinProvider,
    defect: Defect,
    deleted: Mutex<HashSet<String>>,
}

#[derive(Clone, Copy)]
enum Defect {
    /// Reads back a value other than the one applied.
    ReadsBackOther,
    /// Deleting what is already gone fails.
    DeleteNotIdempotent,
}

#[async_trait]
impl Provider for Broken {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn schemas(&self) -> Vec<ResourceSchema> {
        self.inner.schemas()
    }
    fn configure(&self, cx: &ProviderContext) -> Result<(), ProviderError> {
        self.inner.configure(cx)
    }
    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>> {
        let mut out = self.inner.refresh(items).await;
        if let Defect::ReadsBackOther = self.defect {
            for o in out.iter_mut().flatten().flatten() {
                o.inputs.insert("input".into(), json!("something else"));
            }
        }
        out
    }
    async fn adopt(&self, req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        self.inner.adopt(req).await
    }
    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        self.inner.create(req).await
    }
    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        self.inner.update(req).await
    }
    async fn delete(&self, req: DeleteRequest) -> Result<(), ProviderError> {
        let id = req.outputs["id"].to_string();
        if let Defect::DeleteNotIdempotent = self.defect
            && !self.deleted.lock().unwrap().insert(id)
        {
            return Err(ProviderError::not_found("no such object"));
        }
        self.inner.delete(req).await
    }
}

async fn run_broken(defect: Defect) {
    let provider = Arc::new(Broken { inner: BuiltinProvider::default(), defect, deleted: Mutex::default() });
    conformance::run(&Harness { provider, proxied: None }, &data_case()).await;
}

#[tokio::test]
#[should_panic(expected = "the read back differs from what was applied: input = \"something else\"")]
async fn a_kind_reading_back_another_value_fails() {
    run_broken(Defect::ReadsBackOther).await;
}

#[tokio::test]
#[should_panic(expected = "a second delete should succeed")]
async fn a_kind_whose_second_delete_fails_fails() {
    run_broken(Defect::DeleteNotIdempotent).await;
}
