//! Waiting for an object to reach a state, with jittered exponential backoff
//! and a timeout that names what was awaited.

use std::future::Future;
use std::time::{Duration, Instant};

use phoenix_core::provider::ProviderError;

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, ProviderError>>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(ProviderError::transient(format!("timed out after {}s waiting for {what}", timeout.as_secs())));
        }
        tokio::time::sleep(jitter(delay)).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Retries `op` while it fails with "not found" just after the object it
/// needs was created (EC2 is eventually consistent), up to about 30 seconds.
pub async fn consistent<T, F, Fut>(mut op: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, (bool, ProviderError)>>,
{
    let mut delay = Duration::from_millis(200);
    let start = Instant::now();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err((true, _)) if start.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(jitter(delay)).await;
                delay = (delay * 2).min(Duration::from_secs(4));
            }
            Err((_, e)) => return Err(e),
        }
    }
}

pub use phoenix_core::kit::jitter;
