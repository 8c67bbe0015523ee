//! One module per resource type, each a [`phoenix_core::kit::Kind`]
//! registered with one line in `lib.rs`; EC2, ELBv2, RDS and Route 53 kinds
//! read through their service's sub-template (`ec2.rs`, `elbv2.rs`, `rds.rs`,
//! `route53.rs`). What several kinds of different services share is here.

use phoenix_core::provider::ProviderError;

use crate::client::Aws;

pub mod autoscaling_group;
pub mod autoscaling_policy;
pub mod db_cluster;
pub mod db_instance;
pub mod db_parameter_group;
pub mod db_subnet_group;
pub mod eip;
pub mod instance;
pub mod internet_gateway;
pub mod key_pair;
pub mod launch_template;
pub mod lb;
pub mod lb_listener;
pub mod lb_target_group;
pub mod route53_record;
pub mod route53_zone;
pub mod route_table;
pub mod security_group;
pub mod subnet;
pub mod volume;
pub mod volume_attachment;
pub mod vpc;

/// Deletes with retries while dependents are still going away
/// (`DependencyViolation`), and treats "not found" as done.
pub async fn delete_retrying<F, Fut, E, R>(aws: &Aws, what: &str, mut op: F) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), aws_sdk_ec2::error::SdkError<E, R>>>,
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    crate::wait::until(&format!("{what} to be deletable"), aws.wait_timeout, || {
        let fut = op();
        async move {
            match fut.await {
                Ok(()) => Ok(Some(())),
                Err(e) if crate::error::is_not_found(&e) => Ok(Some(())),
                Err(e) if crate::error::code(&e) == Some("DependencyViolation") => Ok(None),
                Err(e) => Err(crate::error::sdk(what, e)),
            }
        }
    })
    .await
}

/// Every page of a paginated call (each page is a request under the call policy, like any other).
pub async fn all_pages<O, E, R>(
    what: &str,
    mut pages: aws_smithy_async::future::pagination_stream::PaginationStream<Result<O, aws_sdk_ec2::error::SdkError<E, R>>>,
) -> Result<Vec<O>, ProviderError>
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let mut out = Vec::new();
    loop {
        let page = { pages.next().await };
        match page {
            None => return Ok(out),
            Some(p) => out.push(p.map_err(|e| crate::error::sdk(what, e))?),
        }
    }
}
