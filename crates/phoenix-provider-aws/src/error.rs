//! SDK errors as provider errors: what failed, the AWS error code and message,
//! and whether retrying can help.

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use phoenix_core::provider::{ErrorKind, ProviderError};

/// The kind of an AWS error: the one place codes are interpreted.
///
/// Auto Scaling is the exception that needs its message: it reports a group
/// or policy that does not exist as a `ValidationError` whose message says
/// "not found", with no code of its own.
fn kind_of(code: &str, message: Option<&str>) -> ErrorKind {
    match code {
        "ValidationError" if message.is_some_and(|m| m.contains("not found")) => ErrorKind::NotFound,
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "TooManyRequestsException" | "PriorRequestNotComplete" => {
            ErrorKind::RateLimited
        }
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" => ErrorKind::Transient,
        "AuthFailure"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "InvalidAccessKeyId" => ErrorKind::Credentials,
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => ErrorKind::PermissionDenied,
        "DependencyViolation" | "ResourceInUse" | "IncorrectState" | "InvalidDBInstanceState" | "InvalidDBClusterStateFault" => {
            ErrorKind::Conflict
        }
        c if c.ends_with("NotFound") || c.ends_with("NotFoundException") || c.ends_with("NotFoundFault") || c.starts_with("NoSuch") => {
            ErrorKind::NotFound
        }
        c if c.ends_with(".Duplicate") || c.contains("AlreadyExists") || c.starts_with("Duplicate") => ErrorKind::AlreadyExists,
        c if c.starts_with("Invalid") || c.starts_with("Missing") || c == "ValidationError" => ErrorKind::InvalidInput,
        c if c.starts_with("Unsupported") => ErrorKind::Unsupported,
        _ => ErrorKind::Unexpected,
    }
}

/// `what` names the API call (`CreateVpc`), for the message.
pub fn sdk<E, R>(what: &str, e: SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().map(str::to_string);
    let message = e.message().map(str::to_string);
    let kind = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => ErrorKind::Transient,
        _ => code.as_deref().map_or(ErrorKind::Unexpected, |c| kind_of(c, message.as_deref())),
    };
    let text = match (code, message) {
        (Some(c), Some(m)) => format!("{what}: {c}: {m}"),
        (Some(c), None) => format!("{what}: {c}"),
        _ => format!("{what}: {}", aws_smithy_types::error::display::DisplayErrorContext(&e)),
    };
    ProviderError::new(kind, text)
}

/// The AWS error code of an SDK error, if the service sent one.
pub fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    e.code()
}

/// `InvalidVpcID.NotFound`, `InvalidInstanceID.NotFound`, `LoadBalancerNotFound`,
/// `InvalidLaunchTemplateName.NotFoundException`, `DBSubnetGroupNotFoundFault`,
/// `NoSuchHostedZone` … : the object is gone (or not visible yet).
pub fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code().is_some_and(|c| kind_of(c, e.message()) == ErrorKind::NotFound)
}
