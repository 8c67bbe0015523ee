//! SDK errors as provider errors: what failed, the AWS error code and message,
//! and whether retrying can help.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use phoenix_core::provider::ProviderError;

/// Codes the SDK's own retries may give up on but a later attempt can pass.
const TRANSIENT: [&str; 6] =
    ["RequestLimitExceeded", "Throttling", "ThrottlingException", "InternalError", "ServiceUnavailable", "Unavailable"];

/// `what` names the API call (`CreateVpc`), for the message.
pub fn sdk<E, R>(what: &str, e: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().map(str::to_string);
    let message = e.message().map(str::to_string);
    let transient = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        _ => code.as_deref().is_some_and(|c| TRANSIENT.contains(&c)),
    };
    let text = match (code, message) {
        (Some(c), Some(m)) => format!("{what}: {c}: {m}"),
        (Some(c), None) => format!("{what}: {c}"),
        _ => format!("{what}: {}", aws_smithy_types::error::display::DisplayErrorContext(&e)),
    };
    if transient { ProviderError::transient(text) } else { ProviderError::permanent(text) }
}

/// The AWS error code of an SDK error, if the service sent one.
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.code()
}

/// `InvalidVpcID.NotFound`, `InvalidInstanceID.NotFound`, `LoadBalancerNotFound`,
/// `InvalidLaunchTemplateName.NotFoundException`, `DBSubnetGroupNotFoundFault`,
/// `NoSuchHostedZone` … : the object is gone (or not visible yet).
pub fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code().is_some_and(|c| {
        c.ends_with("NotFound") || c.ends_with("NotFoundException") || c.ends_with("NotFoundFault") || c.starts_with("NoSuch")
    })
}
