//! Phoenix's AWS provider (`aws.*`) on the AWS SDK for Rust.
//!
//! ```text
//!  Provider (phoenix-core) ──► AwsProvider ──► kinds::<type> (one module per resource type)
//!                                   │                 │
//!                                   └── Aws (client.rs): one EC2 client, a concurrency limit,
//!                                       a request-rate token bucket, an API-call counter,
//!                                       and the region's availability zones
//! ```
//!
//! Every object Phoenix makes carries the ownership tags of
//! [`phoenix_core::state::Ownership`] (plus `Name`), so an interrupted create is
//! adopted by tag rather than made twice, and leaks can be swept. Refresh is
//! batched: one paginated `Describe*` per type with all ids as a filter.
//!
//! ```toml
//! [providers.aws]
//! region = "eu-west-1"            # else AWS_REGION / the profile
//! profile = "prod"                # else AWS_PROFILE / default
//! endpoint = "http://127.0.0.1:5000"  # else AWS_ENDPOINT_URL; for emulators and private clouds
//! max_concurrency = 32            # requests in flight
//! requests_per_second = 20        # token bucket refill
//! ```

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use phoenix_core::addr::ResourceAddr;
use phoenix_core::kit::KindSet;
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, ErrorKind, Observed, Provider, ProviderContext, ProviderError, Recovery, RefreshItem,
    SnapshotRequest, UpdateRequest,
};
use phoenix_core::recovery::SnapshotRef;
use phoenix_core::schema::ResourceSchema;
use phoenix_core::value::Attrs;
use tokio::sync::OnceCell;

mod client;
mod config;
mod create;
mod ec2;
mod elbv2;
mod error;
mod http;
pub mod kinds;
mod placement;
mod rds;
mod recovery;
mod route53;
mod tags;
mod wait;

pub use client::Aws;
pub use config::AwsConfig;

pub const PROVIDER_NAME: &str = "aws";

/// Every type, in the order they usually depend on each other (a kit's
/// kinds come by name): `gc` deletes leaks in reverse, so that an auto
/// scaling group goes before its launch template and subnets, an instance
/// before its subnet.
const DEPENDENCY_ORDER: &[&str] = &[
    "aws.vpc",
    "aws.subnet",
    "aws.internet_gateway",
    "aws.route_table",
    "aws.security_group",
    "aws.key_pair",
    "aws.instance",
    "aws.volume",
    "aws.volume_attachment",
    "aws.eip",
    "aws.lb",
    "aws.lb_target_group",
    "aws.lb_listener",
    "aws.launch_template",
    "aws.autoscaling_group",
    "aws.autoscaling_policy",
    "aws.db_subnet_group",
    "aws.db_parameter_group",
    "aws.db_cluster",
    "aws.db_instance",
    "aws.route53_zone",
    "aws.route53_record",
];

/// The `aws` provider.
pub struct AwsProvider {
    config: OnceLock<AwsConfig>,
    client: OnceCell<Arc<Aws>>,
    /// The kinds on the provider kit, one line each.
    kit: KindSet<Aws>,
}

impl Default for AwsProvider {
    fn default() -> Self {
        Self {
            config: OnceLock::new(),
            client: OnceCell::new(),
            kit: KindSet::new()
                .with(kinds::vpc::Vpc)
                .with(kinds::instance::Instance)
                .with(kinds::volume::Volume)
                .with(kinds::volume_attachment::VolumeAttachment)
                .with(kinds::launch_template::LaunchTemplate)
                .with(kinds::autoscaling_group::AutoscalingGroup)
                .with(kinds::autoscaling_policy::AutoscalingPolicy)
                .with(kinds::db_subnet_group::DbSubnetGroup)
                .with(kinds::db_parameter_group::DbParameterGroup)
                .with(kinds::db_cluster::DbCluster)
                .with(kinds::db_instance::DbInstance)
                .with(kinds::lb::Lb)
                .with(kinds::lb_target_group::LbTargetGroup)
                .with(kinds::lb_listener::LbListener)
                .with(kinds::route53_zone::Route53Zone)
                .with(kinds::route53_record::Route53Record),
        }
    }
}

impl AwsProvider {
    pub fn new() -> Self {
        Self::default()
    }

    /// The client, built on first use (loading credentials and region makes no API call).
    async fn aws(&self) -> Result<&Arc<Aws>, ProviderError> {
        let config = self.config.get().ok_or_else(|| ProviderError::permanent("the aws provider was not configured"))?;
        self.client.get_or_try_init(|| async { Aws::connect(config).await.map(Arc::new) }).await
    }
}

fn kind(type_name: &str) -> Result<&'static dyn kinds::Kind, ProviderError> {
    kinds::by_name(type_name).ok_or_else(|| ProviderError::permanent(format!("the aws provider has no type `{type_name}`")))
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    /// In [`DEPENDENCY_ORDER`]: `gc` deletes leaked types in reverse.
    fn schemas(&self) -> Vec<ResourceSchema> {
        let mut schemas = self.kit.schemas();
        schemas.extend(kinds::all().iter().map(|k| k.schema()));
        schemas.sort_by_key(|s| DEPENDENCY_ORDER.iter().position(|t| *t == s.type_name).unwrap_or(usize::MAX));
        schemas
    }

    fn configure(&self, cx: &ProviderContext) -> Result<(), ProviderError> {
        let config = AwsConfig::from_block(&cx.config)?;
        let _ = self.config.set(config);
        Ok(())
    }

    /// Resolves region and credentials, then proves the credentials with STS
    /// GetCallerIdentity: the account they act in is the line's first word.
    async fn preflight(&self) -> Result<Option<String>, ProviderError> {
        let aws = self.aws().await?;
        let via = match (self.config.get().and_then(|c| c.endpoint.clone()), std::env::var("AWS_ENDPOINT_URL")) {
            (Some(e), _) => format!(" via endpoint {e}"),
            (None, Ok(e)) if !e.is_empty() => format!(" via AWS_ENDPOINT_URL={e}"),
            _ => String::new(),
        };
        let account = aws.account().await.map_err(|e| match e.kind {
            ErrorKind::Credentials => ProviderError::credentials(format!(
                "AWS refused the credentials in {}{via}: {}; fix them with `aws configure`, AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                aws.region, e.message
            )),
            kind => ProviderError::new(kind, format!("cannot confirm the AWS credentials in {}{via}: {}", aws.region, e.message)),
        })?;
        Ok(Some(format!("account {account} in {}{via}", aws.region)))
    }

    async fn refresh(&self, items: Vec<RefreshItem>) -> Vec<Result<Option<Observed>, ProviderError>> {
        let aws = match self.aws().await {
            Ok(a) => a,
            Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
        };
        // Kinds on the kit are read by the kit, the others here; one batch per type, types in parallel.
        let (on_kit, rest): (Vec<usize>, Vec<usize>) = (0..items.len()).partition(|i| self.kit.contains(&items[*i].type_name));
        if rest.is_empty() {
            return self.kit.refresh(aws, &items).await;
        }
        let kit_items: Vec<RefreshItem> = on_kit.iter().map(|i| items[*i].clone()).collect();
        let kit_read = self.kit.refresh(aws, &kit_items);
        let mut by_type: std::collections::BTreeMap<&str, Vec<usize>> = std::collections::BTreeMap::new();
        for i in rest {
            by_type.entry(items[i].type_name.as_str()).or_default().push(i);
        }
        let mut out: Vec<Option<Result<Option<Observed>, ProviderError>>> = (0..items.len()).map(|_| None).collect();
        let batches = by_type.into_iter().map(|(t, idx)| {
            let batch: Vec<RefreshItem> = idx.iter().map(|i| items[*i].clone()).collect();
            async move {
                let result = match kind(t) {
                    Ok(k) => k.read(aws, &batch).await,
                    Err(e) => Err(e),
                };
                (idx, result)
            }
        });
        let (kit_found, batches) = futures::future::join(kit_read, futures::future::join_all(batches)).await;
        for (i, found) in on_kit.into_iter().zip(kit_found) {
            out[i] = Some(found);
        }
        for (idx, result) in batches {
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

    async fn import(&self, addr: &ResourceAddr, type_name: &str, id: &str) -> Result<Option<Observed>, ProviderError> {
        if self.kit.contains(type_name) {
            return self.kit.import(self.aws().await?, type_name, id).await;
        }
        self.refresh(vec![RefreshItem::imported(addr, type_name, id)]).await.into_iter().next().unwrap_or(Ok(None))
    }

    async fn adopt(&self, req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let aws = self.aws().await?;
        if self.kit.contains(&req.type_name) {
            return self.kit.adopt(aws, &req).await;
        }
        kind(&req.type_name)?.find(aws, &req).await
    }

    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        let aws = self.aws().await?;
        if self.kit.contains(&req.type_name) {
            return self.kit.create(aws, &req).await;
        }
        kind(&req.type_name)?.create(aws, &req).await
    }

    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        let aws = self.aws().await?;
        if self.kit.contains(&req.type_name) {
            return self.kit.update(aws, &req).await;
        }
        kind(&req.type_name)?.update(aws, &req).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), ProviderError> {
        let aws = self.aws().await?;
        if self.kit.contains(&req.type_name) {
            return self.kit.delete(aws, &req).await;
        }
        kind(&req.type_name)?.delete(aws, &req).await
    }

    fn unique_names(&self) -> Vec<(&'static str, &'static str)> {
        // Key pair names are unique in a region, security group names in a VPC
        // (and a VPC may be shared through a variable).
        vec![("aws.key_pair", "key_name"), ("aws.security_group", "name")]
    }

    async fn list_owned(&self) -> Result<phoenix_core::provider::OwnedListing, ProviderError> {
        let aws = self.aws().await?;
        let mut listing = self.kit.list_owned(aws).await?;
        let found =
            futures::future::join_all(kinds::all().iter().map(|k| async move { (k.schema().type_name, k.list_owned(aws).await) })).await;
        for (type_name, result) in found {
            match result? {
                Some(objects) => listing.objects.extend(objects),
                None => listing.unsupported.push(type_name.to_string()),
            }
        }
        Ok(listing)
    }

    fn placement(&self) -> Option<&dyn phoenix_core::provider::Placement> {
        Some(&placement::RegionPlacement)
    }

    fn api_calls(&self) -> u64 {
        self.client.get().map_or(0, |a| a.calls())
    }

    fn recovery(&self) -> Option<&dyn Recovery> {
        Some(self)
    }
}

/// Recovery points, from the kinds: each stateful kind says its restore
/// input and which objects hold data, and takes its own snapshots.
#[async_trait]
impl Recovery for AwsProvider {
    fn restore_attr(&self, type_name: &str) -> Option<&'static str> {
        self.kit.restore_attr(type_name)
    }

    fn is_stateful(&self, type_name: &str, inputs: &phoenix_core::value::Attrs) -> bool {
        self.kit.is_stateful(type_name, inputs)
    }

    async fn snapshot(&self, req: SnapshotRequest) -> Result<SnapshotRef, ProviderError> {
        self.kit.snapshot(self.aws().await?, &req).await
    }

    async fn copy_snapshot(&self, type_name: &str, snapshot: &SnapshotRef, to_region: &str) -> Result<SnapshotRef, ProviderError> {
        self.kit.copy_snapshot(self.aws().await?, type_name, snapshot, to_region).await
    }

    async fn delete_snapshot(&self, type_name: &str, snapshot: &SnapshotRef) -> Result<(), ProviderError> {
        self.kit.delete_snapshot(self.aws().await?, type_name, snapshot).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_place_in_the_dependency_order() {
        let schemas = AwsProvider::default().schemas();
        let missing: Vec<&str> = schemas.iter().map(|s| s.type_name).filter(|t| !DEPENDENCY_ORDER.contains(t)).collect();
        assert!(missing.is_empty(), "not in DEPENDENCY_ORDER (gc would delete them first): {missing:?}");
        let order: Vec<&str> = schemas.iter().map(|s| s.type_name).collect();
        assert_eq!(order, DEPENDENCY_ORDER, "schemas() lists the types in dependency order");
    }
}
