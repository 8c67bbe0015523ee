//! One client per AWS service per run (EC2, ELBv2, Auto Scaling, RDS, Route 53),
//! built from one SdkConfig and shared by every resource type, with the limits
//! that keep `--parallelism 200` from flooding the API: a concurrency cap and
//! a request-rate token bucket, plus a counter of requests actually sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_ec2::config::{Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_types::config_bag::ConfigBag;
use phoenix_core::provider::ProviderError;
use tokio::sync::{Mutex, OnceCell, Semaphore, SemaphorePermit};

use crate::config::AwsConfig;

/// Counts every HTTP request the SDK transmits (retries included).
#[derive(Debug, Clone)]
struct CallCounter(Arc<AtomicU64>);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "PhoenixCallCounter"
    }
    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Retry policy of calls that create objects: the SDK may retry only when
/// the service answered that it refused the request (4xx: throttling and the
/// like, or 503: throttled). A call that got no answer (reset, timeout, lost
/// response) or a 500 may have run; retrying it blindly makes a second object
/// when the API has no idempotency token (CreateVpc, AllocateAddress …) or
/// ignores it. Those failures come back to `kinds::create_once`, which looks
/// the object up by its ownership tags before trying again.
#[derive(Debug)]
struct AnsweredRefusalsOnly;

impl aws_smithy_runtime_api::client::retries::classifiers::ClassifyRetry for AnsweredRefusalsOnly {
    fn classify_retry(
        &self,
        ctx: &aws_smithy_runtime_api::client::interceptors::context::InterceptorContext,
    ) -> aws_smithy_runtime_api::client::retries::classifiers::RetryAction {
        use aws_smithy_runtime_api::client::retries::classifiers::RetryAction;
        match ctx.output_or_error() {
            None | Some(Ok(_)) => RetryAction::NoActionIndicated,
            Some(Err(_)) => match ctx.response().map(|r| r.status().as_u16()) {
                Some(status) if (400..500).contains(&status) || status == 503 => RetryAction::NoActionIndicated,
                _ => RetryAction::RetryForbidden,
            },
        }
    }

    fn name(&self) -> &'static str {
        "PhoenixAnsweredRefusalsOnly"
    }
}

/// The per-call configuration of a create (see [`AnsweredRefusalsOnly`]).
pub fn create_call_config() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_classifier(AnsweredRefusalsOnly)
}

/// A token bucket: `rate` requests per second, bursts up to `burst`.
struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    async fn take(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.burst);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.0) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The shared AWS context of a run.
pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub rds: aws_sdk_rds::Client,
    pub route53: aws_sdk_route53::Client,
    /// The loaded configuration, for clients of other regions (snapshot copies).
    sdk: aws_config::SdkConfig,
    pub region: String,
    pub wait_timeout: Duration,
    calls: Arc<AtomicU64>,
    in_flight: Semaphore,
    bucket: Bucket,
    zones: OnceCell<Vec<String>>,
    /// AMI lookups of this run, by query: every instance of a run launches the
    /// same image for the same query, and the lookup is paid once.
    images: std::sync::Mutex<std::collections::HashMap<String, Arc<OnceCell<(String, Option<String>)>>>>,
}

impl Aws {
    /// Loads credentials and region from the standard sources (environment,
    /// profiles, SSO caches, instance metadata) and checks them before any EC2 call.
    pub async fn connect(config: &AwsConfig) -> Result<Self, ProviderError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            // Throttling and 5xx are retried by the SDK with jittered exponential backoff.
            .retry_config(RetryConfig::standard().with_max_attempts(8).with_initial_backoff(Duration::from_millis(200)));
        if let Some(r) = &config.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if !config.shared_credentials_files.is_empty() {
            use aws_runtime::env_config::file::{EnvConfigFileKind as ProfileFileKind, EnvConfigFiles as ProfileFiles};
            let mut files = ProfileFiles::builder().include_default_credentials_file(false).include_default_config_file(true);
            for f in &config.shared_credentials_files {
                files = files.with_file(ProfileFileKind::Credentials, f);
            }
            loader = loader.profile_files(files.build());
        }
        if let Some(p) = &config.profile {
            loader = loader.profile_name(p);
        }
        if let Some(e) = &config.endpoint {
            loader = loader.endpoint_url(e);
        }
        let sdk = loader.load().await;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| ProviderError::permanent("no AWS region: set `region` in [providers.aws] or AWS_REGION"))?;
        match sdk.credentials_provider() {
            None => return Err(ProviderError::permanent("no AWS credentials provider is available")),
            Some(p) => {
                use aws_credential_types::provider::ProvideCredentials;
                p.provide_credentials().await.map_err(|e| {
                    ProviderError::permanent(format!(
                        "no AWS credentials: {e}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or `profile` in [providers.aws]"
                    ))
                })?;
            }
        }
        let calls = Arc::new(AtomicU64::new(0));
        // Every service client counts its requests on the same counter and goes
        // through the same permit(): the limits are per provider, not per service.
        let counter = CallCounter(calls.clone());
        let ec2_config = aws_sdk_ec2::config::Builder::from(&sdk).interceptor(counter.clone()).build();
        let elb_config = aws_sdk_elasticloadbalancingv2::config::Builder::from(&sdk).interceptor(counter.clone()).build();
        let asg_config = aws_sdk_autoscaling::config::Builder::from(&sdk).interceptor(counter.clone()).build();
        let rds_config = aws_sdk_rds::config::Builder::from(&sdk).interceptor(counter.clone()).build();
        let r53_config = aws_sdk_route53::config::Builder::from(&sdk).interceptor(counter).build();
        Ok(Self {
            ec2: aws_sdk_ec2::Client::from_conf(ec2_config),
            elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(elb_config),
            autoscaling: aws_sdk_autoscaling::Client::from_conf(asg_config),
            rds: aws_sdk_rds::Client::from_conf(rds_config),
            route53: aws_sdk_route53::Client::from_conf(r53_config),
            sdk: sdk.clone(),
            region,
            wait_timeout: Duration::from_secs(config.wait_timeout_secs),
            calls,
            in_flight: Semaphore::new(config.max_concurrency),
            bucket: Bucket {
                rate: config.requests_per_second,
                burst: config.max_concurrency as f64,
                state: Mutex::new((config.max_concurrency as f64, Instant::now())),
            },
            zones: OnceCell::new(),
            images: std::sync::Mutex::default(),
        })
    }

    /// Waits for a slot (concurrency) and a token (rate) before one request.
    pub async fn permit(&self) -> SemaphorePermit<'_> {
        let permit = self.in_flight.acquire().await.expect("the semaphore is never closed");
        self.bucket.take().await;
        permit
    }

    /// Resolves an image once per run for each distinct `query`; concurrent
    /// callers with the same query share one lookup.
    pub async fn image<F, Fut>(&self, query: String, lookup: F) -> Result<(String, Option<String>), ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, Option<String>), ProviderError>>,
    {
        let cell = self.images.lock().expect("not poisoned").entry(query).or_default().clone();
        cell.get_or_try_init(lookup).await.cloned()
    }

    /// Requests sent so far.
    /// An EC2 client of another region, on the same credentials, endpoint,
    /// retries and call counter (`region` is this one's: the shared client).
    pub fn ec2_in(&self, region: &str) -> aws_sdk_ec2::Client {
        if region == self.region {
            return self.ec2.clone();
        }
        let conf = aws_sdk_ec2::config::Builder::from(&self.sdk)
            .region(aws_config::Region::new(region.to_string()))
            .interceptor(CallCounter(self.calls.clone()))
            .build();
        aws_sdk_ec2::Client::from_conf(conf)
    }

    /// An RDS client of another region (like [`Aws::ec2_in`]).
    pub fn rds_in(&self, region: &str) -> aws_sdk_rds::Client {
        if region == self.region {
            return self.rds.clone();
        }
        let conf = aws_sdk_rds::config::Builder::from(&self.sdk)
            .region(aws_config::Region::new(region.to_string()))
            .interceptor(CallCounter(self.calls.clone()))
            .build();
        aws_sdk_rds::Client::from_conf(conf)
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The region's availability zones, sorted (looked up once per run).
    pub async fn zones(&self) -> Result<&[String], ProviderError> {
        self.zones
            .get_or_try_init(|| async {
                let _p = self.permit().await;
                let out =
                    self.ec2.describe_availability_zones().send().await.map_err(|e| crate::error::sdk("DescribeAvailabilityZones", e))?;
                let mut z: Vec<String> = out.availability_zones().iter().filter_map(|z| z.zone_name().map(str::to_string)).collect();
                z.sort();
                Ok(z)
            })
            .await
            .map(Vec::as_slice)
    }

    /// Resolves `az_index` (0, 1, 2 …, wrapping) or an explicit zone name.
    pub async fn zone(&self, name: Option<&str>, index: Option<i64>) -> Result<String, ProviderError> {
        if let Some(n) = name {
            return Ok(n.to_string());
        }
        let zones = self.zones().await?;
        if zones.is_empty() {
            return Err(ProviderError::permanent(format!("region {} reports no availability zones", self.region)));
        }
        let i = index.unwrap_or(0).rem_euclid(zones.len() as i64) as usize;
        Ok(zones[i].clone())
    }
}
