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
// Only the CLI prints; libraries report through return values, events and tracing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use phoenix_core::addr::ResourceAddr;
use phoenix_core::kit::KindSet;
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, ErrorKind, Leaks, Observed, Provider, ProviderContext, ProviderError, Recovery,
    RefreshItem, SnapshotRequest, UpdateRequest,
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
            // Each after the kinds its objects depend on: `gc` deletes in reverse.
            kit: KindSet::new()
                .with(kinds::vpc::Vpc)
                .with(kinds::subnet::Subnet)
                .with(kinds::internet_gateway::InternetGateway)
                .with(kinds::route_table::RouteTable)
                .with(kinds::security_group::SecurityGroup)
                .with(kinds::key_pair::KeyPair)
                .with(kinds::instance::Instance)
                .with(kinds::volume::Volume)
                .with(kinds::volume_attachment::VolumeAttachment)
                .with(kinds::eip::Eip)
                .with(kinds::lb::Lb)
                .with(kinds::lb_target_group::LbTargetGroup)
                .with(kinds::lb_listener::LbListener)
                .with(kinds::launch_template::LaunchTemplate)
                .with(kinds::autoscaling_group::AutoscalingGroup)
                .with(kinds::autoscaling_policy::AutoscalingPolicy)
                .with(kinds::db_subnet_group::DbSubnetGroup)
                .with(kinds::db_parameter_group::DbParameterGroup)
                .with(kinds::db_cluster::DbCluster)
                .with(kinds::db_instance::DbInstance)
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

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &'static str {
        PROVIDER_NAME
    }

    /// In registration order: `gc` deletes leaked types in reverse.
    fn schemas(&self) -> Vec<ResourceSchema> {
        self.kit.schemas()
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
        self.kit.refresh(aws, &items).await
    }

    async fn import(&self, _addr: &ResourceAddr, type_name: &str, id: &str) -> Result<Option<Observed>, ProviderError> {
        self.kit.import(self.aws().await?, type_name, id).await
    }

    async fn adopt(&self, req: AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        self.kit.adopt(self.aws().await?, &req).await
    }

    async fn create(&self, req: CreateRequest) -> Result<Attrs, ProviderError> {
        self.kit.create(self.aws().await?, &req).await
    }

    async fn update(&self, req: UpdateRequest) -> Result<Attrs, ProviderError> {
        self.kit.update(self.aws().await?, &req).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), ProviderError> {
        self.kit.delete(self.aws().await?, &req).await
    }

    fn unique_names(&self) -> Vec<(&'static str, &'static str)> {
        // Each kind says which of its inputs are (key pair names in a region, security group names in a VPC).
        self.kit.unique_names()
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

    fn leaks(&self) -> Option<&dyn Leaks> {
        Some(self)
    }
}

/// Every kind lists what carries Phoenix's tags (`gc`).
#[async_trait]
impl Leaks for AwsProvider {
    async fn list_owned(&self) -> Result<phoenix_core::provider::OwnedListing, ProviderError> {
        self.kit.list_owned(self.aws().await?).await
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

    /// `gc` deletes leaked objects type by type in reverse of `schemas()`:
    /// a type that refers to another must come after it.
    #[test]
    fn types_are_listed_after_the_types_they_refer_to() {
        let order: Vec<&str> = AwsProvider::default().schemas().iter().map(|s| s.type_name).collect();
        let at = |t: &str| order.iter().position(|o| *o == t).unwrap_or_else(|| panic!("`{t}` is not registered"));
        for (first, then) in [
            ("aws.vpc", "aws.subnet"),
            ("aws.subnet", "aws.instance"),
            ("aws.security_group", "aws.instance"),
            ("aws.instance", "aws.volume_attachment"),
            ("aws.volume", "aws.volume_attachment"),
            ("aws.instance", "aws.eip"),
            ("aws.lb", "aws.lb_listener"),
            ("aws.lb_target_group", "aws.lb_listener"),
            ("aws.lb_target_group", "aws.autoscaling_group"),
            ("aws.launch_template", "aws.autoscaling_group"),
            ("aws.autoscaling_group", "aws.autoscaling_policy"),
            ("aws.db_subnet_group", "aws.db_cluster"),
            ("aws.db_cluster", "aws.db_instance"),
            ("aws.route53_zone", "aws.route53_record"),
            ("aws.lb", "aws.route53_record"),
        ] {
            assert!(at(first) < at(then), "`{then}` refers to `{first}`, so it must be listed after it: {order:?}");
        }
        assert_eq!(order.len(), 22, "every AWS kind is registered");
    }
}
