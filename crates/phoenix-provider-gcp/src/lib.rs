//! Phoenix's GCP provider (`gcp.*`) on `google-cloud-compute-v1`.
//!
//! ```text
//!  Provider (phoenix-core) ──► GcpProvider ──► KindSet ──► kinds::<type> (one module per type, on gce_kind)
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
// Only the CLI prints; libraries report through return values, events and tracing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use phoenix_core::addr::ResourceAddr;
use phoenix_core::kit::KindSet;
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Leaks, Observed, Provider, ProviderContext, ProviderError, Recovery, RefreshItem,
    SnapshotRequest, UpdateRequest,
};
use phoenix_core::recovery::SnapshotRef;
use phoenix_core::schema::ResourceSchema;
use phoenix_core::value::Attrs;
use tokio::sync::OnceCell;

mod config;
pub mod gce;
pub mod gce_kind;
pub mod kinds;
pub mod labels;
mod placement;
pub mod recovery;

pub use config::GcpConfig;
pub use gce::Gce;

pub const PROVIDER_NAME: &str = "gcp";

/// The `gcp` provider.
pub struct GcpProvider {
    config: OnceLock<(GcpConfig, gce::EnvMarks)>,
    client: OnceCell<Arc<Gce>>,
    /// The kinds, one line each.
    kit: KindSet<Gce>,
}

impl Default for GcpProvider {
    /// A kind after the kinds it usually depends on: `gc` deletes in reverse.
    fn default() -> Self {
        let kit = KindSet::new()
            .with(kinds::network::Network)
            .with(kinds::subnetwork::Subnetwork)
            .with(kinds::firewall::Firewall)
            .with(kinds::address::Address)
            .with(kinds::disk::Disk)
            .with(kinds::instance::Instance)
            .with(kinds::snapshot::Snapshot)
            .with(kinds::image::Image);
        GcpProvider { config: OnceLock::new(), client: OnceCell::new(), kit }
    }
}

impl GcpProvider {
    pub fn new() -> Self {
        Self::default()
    }

    /// The client, built on first use (building makes no API call).
    async fn gce(&self) -> Result<&Gce, ProviderError> {
        let (config, marks) = self.config.get().ok_or_else(|| ProviderError::permanent("the gcp provider was not configured"))?;
        let gce =
            self.client.get_or_try_init(|| async { Gce::connect(config).await.map(|g| Arc::new(g.with_marks(marks.clone()))) }).await?;
        Ok(gce)
    }
}

#[async_trait]
impl Provider for GcpProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    /// In registration order: `gc` deletes in reverse.
    fn schemas(&self) -> Vec<ResourceSchema> {
        self.kit.schemas()
    }

    fn configure(&self, cx: &ProviderContext) -> Result<(), ProviderError> {
        let config = GcpConfig::from_block(&cx.config, &|n| std::env::var(n).ok())?;
        let marks = gce::EnvMarks { environment: cx.environment.clone(), instance: cx.instance.clone() };
        let _ = self.config.set((config, marks));
        Ok(())
    }

    async fn preflight(&self) -> Result<Option<String>, ProviderError> {
        let gce = self.gce().await?;
        let place = gce.zone.as_ref().or(gce.region.as_ref()).map(|p| format!(" in {p}")).unwrap_or_default();
        let endpoint = self.config.get().and_then(|(c, _)| c.endpoint.clone()).map(|e| format!(" via {e}")).unwrap_or_default();
        Ok(Some(format!("project {}{place}{endpoint}", gce.project)))
    }

    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>> {
        match self.gce().await {
            Ok(gce) => self.kit.refresh(gce, &items).await,
            Err(e) => items.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn import(&self, _addr: &ResourceAddr, type_name: &str, id: &str) -> Result<Option<Observed>, ProviderError> {
        self.kit.import(self.gce().await?, type_name, id).await
    }

    async fn adopt(&self, req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        self.kit.adopt(self.gce().await?, &req).await
    }

    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        self.kit.create(self.gce().await?, &req).await
    }

    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        self.kit.update(self.gce().await?, &req).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), ProviderError> {
        self.kit.delete(self.gce().await?, &req).await
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

    fn leaks(&self) -> Option<&dyn Leaks> {
        Some(self)
    }
}

#[async_trait]
impl Leaks for GcpProvider {
    /// One list call per collection (aggregated over zones and regions), of every environment.
    async fn list_owned(&self) -> Result<phoenix_core::provider::OwnedListing, ProviderError> {
        self.kit.list_owned(self.gce().await?).await
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
}

#[async_trait]
impl Recovery for GcpProvider {
    fn restore_attr(&self, type_name: &str) -> Option<&'static str> {
        self.kit.restore_attr(type_name)
    }

    fn is_stateful(&self, type_name: &str, inputs: &phoenix_core::value::Attrs) -> bool {
        self.kit.is_stateful(type_name, inputs)
    }

    async fn snapshot(&self, req: SnapshotRequest) -> Result<SnapshotRef, ProviderError> {
        self.kit.snapshot(self.gce().await?, &req).await
    }

    async fn copy_snapshot(&self, type_name: &str, snapshot: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        self.kit.copy_snapshot(self.gce().await?, type_name, snapshot, to_region).await
    }

    async fn delete_snapshot(&self, type_name: &str, snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        self.kit.delete_snapshot(self.gce().await?, type_name, snapshot).await
    }
}
