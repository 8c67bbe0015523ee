//! Phoenix's GCP provider (`gcp.*`) on `google-cloud-compute-v1`.
//!
//! ```text
//!  Provider (phoenix-core) ──► GcpProvider ──► kinds::<type> (one module per resource type)
//!                                   │                 │
//!                                   └── Gce (gce.rs): the Compute clients, a concurrency limit,
//!                                       a request-rate token bucket, retries, operation polling,
//!                                       an API-call counter — the only code that names SDK types
//! ```
//!
//! Every object Phoenix makes carries ownership marks (labels, or a
//! `description` line for the types without labels; see [`labels`]), so an
//! interrupted create is adopted rather than made twice. Refresh is batched:
//! one paginated `list`/`aggregatedList` per type with a label filter.
//!
//! ```toml
//! [providers.gcp]
//! project = "my-project"      # else GOOGLE_CLOUD_PROJECT / CLOUDSDK_CORE_PROJECT
//! region = "europe-west1"     # else CLOUDSDK_COMPUTE_REGION / the zone's region
//! zone = "europe-west1-b"     # else CLOUDSDK_COMPUTE_ZONE
//! endpoint = "http://127.0.0.1:8080"  # else CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE
//! credentials = "default"     # or "anonymous"; unset: anonymous for a plain-http endpoint
//! max_concurrency = 32        # requests in flight
//! requests_per_second = 20    # token bucket refill
//! ```

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, Provider, ProviderContext, ProviderError, Recovery, RefreshItem, SnapshotRequest,
    UpdateRequest,
};
use phoenix_core::recovery::SnapshotRef;
use phoenix_core::schema::ResourceSchema;
use phoenix_core::value::Attrs;
use tokio::sync::OnceCell;

mod config;
pub mod gce;
pub mod kinds;
pub mod labels;
mod placement;
pub mod recovery;
mod sweep;

pub use config::GcpConfig;
pub use gce::Gce;

pub const PROVIDER_NAME: &str = "gcp";

/// The `gcp` provider.
#[derive(Default)]
pub struct GcpProvider {
    config: OnceLock<(GcpConfig, kinds::EnvMarks)>,
    client: OnceCell<Arc<Gce>>,
}

impl GcpProvider {
    pub fn new() -> Self {
        Self::default()
    }

    /// The client, built on first use (building makes no API call).
    async fn gce(&self) -> Result<(&Arc<Gce>, &kinds::EnvMarks), ProviderError> {
        let (config, marks) = self.config.get().ok_or_else(|| ProviderError::permanent("the gcp provider was not configured"))?;
        let gce = self.client.get_or_try_init(|| async { Gce::connect(config).await.map(Arc::new) }).await?;
        Ok((gce, marks))
    }
}

fn kind(type_name: &str) -> Result<&'static dyn kinds::Kind, ProviderError> {
    kinds::by_name(type_name).ok_or_else(|| ProviderError::permanent(format!("the gcp provider has no type `{type_name}`")))
}

#[async_trait]
impl Provider for GcpProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    fn schemas(&self) -> Vec<ResourceSchema> {
        kinds::all().iter().map(|k| k.schema()).collect()
    }

    fn configure(&self, cx: &ProviderContext) -> Result<(), ProviderError> {
        let config = GcpConfig::from_block(&cx.config, &|n| std::env::var(n).ok())?;
        let marks = kinds::EnvMarks { environment: cx.environment.clone(), instance: cx.instance.clone() };
        let _ = self.config.set((config, marks));
        Ok(())
    }

    async fn preflight(&self) -> Result<Option<String>, ProviderError> {
        let (gce, _) = self.gce().await?;
        let place = gce.zone.as_ref().or(gce.region.as_ref()).map(|p| format!(" in {p}")).unwrap_or_default();
        let endpoint = self.config.get().and_then(|(c, _)| c.endpoint.clone()).map(|e| format!(" via {e}")).unwrap_or_default();
        Ok(Some(format!("project {}{place}{endpoint}", gce.project)))
    }

    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>> {
        let (gce, marks) = match self.gce().await {
            Ok(g) => g,
            Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
        };
        // One batch per type, types in parallel.
        let mut by_type: std::collections::BTreeMap<&str, Vec<usize>> = std::collections::BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            by_type.entry(item.type_name.as_str()).or_default().push(i);
        }
        let mut out: Vec<Option<Result<Option<Observed>, ProviderError>>> = (0..items.len()).map(|_| None).collect();
        let batches = by_type.into_iter().map(|(t, idx)| {
            let batch: Vec<RefreshItem> = idx.iter().map(|i| items[*i].clone()).collect();
            async move {
                let result = match kind(t) {
                    Ok(k) => k.read(gce, marks, &batch).await,
                    Err(e) => Err(e),
                };
                (idx, result)
            }
        });
        for (idx, result) in futures::future::join_all(batches).await {
            match result {
                Ok(found) => {
                    for (i, f) in idx.into_iter().zip(found) {
                        out[i] = Some(Ok(f));
                    }
                }
                Err(e) => {
                    for i in idx {
                        out[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        out.into_iter().map(|r| r.unwrap_or_else(|| Err(ProviderError::permanent("refresh returned too few results")))).collect()
    }

    async fn adopt(&self, req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let (gce, _) = self.gce().await?;
        kind(&req.type_name)?.find(gce, &req).await
    }

    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        let (gce, _) = self.gce().await?;
        kind(&req.type_name)?.create(gce, &req).await
    }

    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        let (gce, _) = self.gce().await?;
        kind(&req.type_name)?.update(gce, &req).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), ProviderError> {
        let (gce, _) = self.gce().await?;
        kind(&req.type_name)?.delete(gce, &req).await
    }

    async fn list_owned(&self) -> Result<phoenix_core::provider::OwnedListing, ProviderError> {
        let (gce, _) = self.gce().await?;
        sweep::list_owned(gce).await
    }

    /// Label values are sanitized (see `labels`): a name may be marked lowercased and hashed.
    fn same_owner(&self, listed: &phoenix_core::state::Ownership, environment: &str, instance: Option<&str>) -> bool {
        labels::names(&listed.environment, environment)
            && match (&listed.instance, instance) {
                (Some(marked), Some(name)) => labels::names(marked, name),
                (None, None) => true,
                _ => false,
            }
    }

    fn placement(&self) -> Option<&dyn phoenix_core::provider::Placement> {
        Some(&placement::GcePlacement)
    }

    fn api_calls(&self) -> u64 {
        self.client.get().map_or(0, |g| g.calls())
    }

    fn recovery(&self) -> Option<&dyn Recovery> {
        Some(self)
    }
}

#[async_trait]
impl Recovery for GcpProvider {
    fn restore_attr(&self, type_name: &str) -> Option<&'static str> {
        recovery::restore_attr(type_name)
    }

    fn is_stateful(&self, type_name: &str, _inputs: &phoenix_core::value::Attrs) -> bool {
        self.restore_attr(type_name).is_some()
    }

    async fn snapshot(&self, req: SnapshotRequest) -> Result<SnapshotRef, ProviderError> {
        recovery::snapshot(self.gce().await?.0, &req).await
    }

    async fn copy_snapshot(&self, type_name: &str, snapshot: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        recovery::copy(self.gce().await?.0, type_name, snapshot, to_region).await
    }

    async fn delete_snapshot(&self, type_name: &str, snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        recovery::delete(self.gce().await?.0, type_name, snapshot).await
    }
}
