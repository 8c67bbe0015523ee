//! Creates that never make a second object when an answer is lost.

use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use phoenix_core::provider::{ErrorClass, ProviderError};

/// How a create call ended.
pub enum Made<O, F> {
    /// The service answered with the new object.
    Answered(O),
    /// The answer was lost (or the call failed ambiguously) but the object
    /// exists: found by its ownership tags, as adoption would.
    Found(F),
}

/// "Not found" codes of things a user names (an image, a key, a snapshot)
/// rather than of a parent just created: waiting will not make them appear.
const NEVER_APPEARS: [&str; 3] = ["InvalidAMIID.NotFound", "InvalidKeyPair.NotFound", "InvalidSnapshot.NotFound"];

/// Attempts whose outcome was unknown.
const ATTEMPTS: u32 = 6;

/// Runs a create call (built with [`crate::client::create_call_config`]) so
/// that a lost answer never makes a second object: after a failure that may
/// have created it (no answer, 5xx, throttled out) the object is looked up
/// with `find` (by the ownership tags the create set atomically); only if it
/// is absent is the call tried again. "Not found" answers (a parent created
/// a moment ago and not yet visible: EC2 is eventually consistent) are
/// retried for about 30 seconds. Refusals (4xx) fail at once.
pub async fn create_once<O, Fd, F, Fut, E, R, FindFut>(
    what: &str,
    mut call: F,
    mut find: impl FnMut() -> FindFut,
) -> Result<Made<O, Fd>, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<O, SdkError<E, R>>>,
    FindFut: Future<Output = Result<Option<Fd>, ProviderError>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let started = Instant::now();
    let mut unknown = 0;
    let mut delay = Duration::from_millis(200);
    loop {
        let sent = { call().await };
        let e = match sent {
            Ok(o) => return Ok(Made::Answered(o)),
            Err(e)
                if crate::error::is_not_found(&e)
                    && !crate::error::code(&e).is_some_and(|c| NEVER_APPEARS.contains(&c))
                    && started.elapsed() < Duration::from_secs(30) =>
            {
                tokio::time::sleep(crate::wait::jitter(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(4));
                continue;
            }
            Err(e) => crate::error::sdk(what, e),
        };
        if e.class() == ErrorClass::Permanent {
            return Err(e);
        }
        if let Some(found) = find().await? {
            tracing::debug!("{what}: the answer was lost but the object exists; adopting it");
            return Ok(Made::Found(found));
        }
        unknown += 1;
        if unknown >= ATTEMPTS {
            return Err(e);
        }
        tokio::time::sleep(crate::wait::jitter(delay)).await;
        delay = (delay * 2).min(Duration::from_secs(4));
    }
}
