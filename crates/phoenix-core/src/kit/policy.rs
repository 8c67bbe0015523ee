//! The call policy of one API client: a cap on requests in flight, a
//! token-bucket rate, and a count of requests sent. A provider applies it
//! once where its requests leave (the AWS SDK's HTTP client, the GCE
//! client's send, the BMC's HTTP client), so no call site takes a permit by
//! hand and no request escapes the limits, retries included.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{Mutex, Semaphore, SemaphorePermit};

/// Limits of one client, from the provider block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallLimits {
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Requests per second, after a first burst of up to `max_concurrency`.
    pub requests_per_second: f64,
}

/// See the module docs.
#[derive(Debug)]
pub struct CallPolicy {
    in_flight: Semaphore,
    bucket: Bucket,
    sent: AtomicU64,
}

/// Held while one request is in flight.
pub struct CallPermit<'a> {
    _slot: SemaphorePermit<'a>,
}

impl CallPolicy {
    pub fn new(limits: CallLimits) -> Self {
        let burst = limits.max_concurrency.max(1) as f64;
        Self {
            in_flight: Semaphore::new(limits.max_concurrency.max(1)),
            bucket: Bucket { rate: limits.requests_per_second.max(0.001), state: Mutex::new((burst, Instant::now())) },
            sent: AtomicU64::new(0),
        }
    }

    /// Waits for a slot and a token, and counts the request.
    pub async fn admit(&self) -> CallPermit<'_> {
        let slot = self.in_flight.acquire().await.expect("the semaphore is never closed");
        self.bucket.take().await;
        self.sent.fetch_add(1, Ordering::Relaxed);
        CallPermit { _slot: slot }
    }

    /// Requests admitted so far (retries included).
    pub fn calls(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// A token bucket that starts full (the first burst) and then refills at
/// `rate` but saves up at most one token: an idle pause never buys a second
/// burst, so no second after the first holds more than `rate` requests.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    async fn take(&self) {
        // The lock is held while waiting, so tokens go out in arrival order.
        let mut s = self.state.lock().await;
        loop {
            let now = Instant::now();
            let refilled = s.0 + now.duration_since(s.1).as_secs_f64() * self.rate;
            // Above one only while the first burst lasts.
            s.0 = s.0.max(refilled.min(1.0));
            s.1 = now;
            if s.0 >= 1.0 {
                s.0 -= 1.0;
                return;
            }
            tokio::time::sleep(Duration::from_secs_f64((1.0 - s.0) / self.rate)).await;
        }
    }
}

/// `d` scaled by a factor in `[0.5, 1.0)`: spreads retries of many callers apart.
pub fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.subsec_nanos()).unwrap_or(0);
    d.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_in_flight_or_faster_than_the_limits() {
        let policy = Arc::new(CallPolicy::new(CallLimits { max_concurrency: 2, requests_per_second: 5.0 }));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let admitted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (policy, in_flight, peak, admitted) = (policy.clone(), in_flight.clone(), peak.clone(), admitted.clone());
                tokio::spawn(async move {
                    let _p = policy.admit().await;
                    admitted.lock().unwrap().push(started.elapsed());
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(policy.calls(), 20);
        // After the burst of 2, one token every 200 ms: 18 more take 3.6 s.
        let last = *admitted.lock().unwrap().iter().max().unwrap();
        assert!(last >= Duration::from_millis(3590), "20 requests at 5/s after a burst of 2 finished at {last:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pause_buys_no_second_burst() {
        let policy = CallPolicy::new(CallLimits { max_concurrency: 4, requests_per_second: 5.0 });
        for _ in 0..4 {
            drop(policy.admit().await);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = Instant::now();
        for _ in 0..3 {
            drop(policy.admit().await);
        }
        // One saved token, then two more at 200 ms each.
        assert_eq!(before.elapsed(), Duration::from_millis(400));
    }
}
