//! One client per AWS service per run (EC2, ELBv2, Auto Scaling, RDS, Route 53),
//! built from one SdkConfig and shared by every resource type, with the limits
//! that keep `--parallelism 200` from flooding the API: a concurrency cap and
//! a request-rate token bucket, plus a counter of requests actually sent —
//! all applied where requests leave (`http.rs`).

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use phoenix_core::kit::{CallLimits, CallPolicy};
use phoenix_core::provider::ProviderError;
use tokio::sync::OnceCell;

use crate::config::AwsConfig;

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
    /// Every request of every service client leaves through it (see `http.rs`).
    policy: Arc<CallPolicy>,
    zones: OnceCell<Vec<String>>,
    /// AMI lookups of this run, by query: every instance of a run launches the
    /// same image for the same query, and the lookup is paid once.
    images: std::sync::Mutex<std::collections::HashMap<String, Arc<OnceCell<(String, Option<String>)>>>>,
}

impl Aws {
    /// Loads credentials and region from the standard sources (environment,
    /// profiles, SSO caches, instance metadata) and checks them before any EC2 call.
    pub async fn connect(config: &AwsConfig) -> Result<Self, ProviderError> {
        let policy = Arc::new(CallPolicy::new(CallLimits {
            max_concurrency: config.max_concurrency,
            requests_per_second: config.requests_per_second,
        }));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(crate::http::policed_client(policy.clone()))
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
                        "no AWS credentials: {e}; run `aws configure`, or set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or `profile` in [providers.aws]"
                    ))
                })?;
            }
        }
        // Every service client shares the SdkConfig's policed HTTP client: the
        // limits are per provider, not per service.
        Ok(Self {
            ec2: aws_sdk_ec2::Client::new(&sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(&sdk),
            autoscaling: aws_sdk_autoscaling::Client::new(&sdk),
            rds: aws_sdk_rds::Client::new(&sdk),
            route53: aws_sdk_route53::Client::new(&sdk),
            sdk: sdk.clone(),
            region,
            wait_timeout: Duration::from_secs(config.wait_timeout_secs),
            policy,
            zones: OnceCell::new(),
            images: std::sync::Mutex::default(),
        })
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

    /// The account the credentials belong to (STS GetCallerIdentity): the one
    /// call that proves them, made by the preflight before any plan. Four
    /// attempts, 200 ms apart at first: a blip is ridden out, while a wrong
    /// endpoint fails within seconds (refused keys are not retried at all).
    pub async fn account(&self) -> Result<String, ProviderError> {
        let retries = RetryConfig::standard().with_max_attempts(4).with_initial_backoff(Duration::from_millis(200));
        let conf = aws_sdk_sts::config::Builder::from(&self.sdk).retry_config(retries).build();
        let out = aws_sdk_sts::Client::from_conf(conf).get_caller_identity().send().await.map_err(|e| {
            // GetCallerIdentity needs no permission: a 403 is always the keys
            // themselves (unknown, expired, signed wrong), whatever shape its body has.
            let forbidden = e.raw_response().is_some_and(|r| r.status().as_u16() == 403);
            let e = crate::error::sdk("STS GetCallerIdentity", e);
            if forbidden && e.kind != phoenix_core::provider::ErrorKind::Credentials {
                ProviderError::credentials("STS GetCallerIdentity: 403 Forbidden: the keys are unknown, expired or signed wrong")
            } else {
                e
            }
        })?;
        out.account().map(str::to_string).ok_or_else(|| ProviderError::permanent("STS GetCallerIdentity answered without an account"))
    }

    /// An EC2 client of another region, on the same credentials, endpoint,
    /// retries and call counter (`region` is this one's: the shared client).
    pub fn ec2_in(&self, region: &str) -> aws_sdk_ec2::Client {
        if region == self.region {
            return self.ec2.clone();
        }
        let conf = aws_sdk_ec2::config::Builder::from(&self.sdk).region(aws_config::Region::new(region.to_string())).build();
        aws_sdk_ec2::Client::from_conf(conf)
    }

    /// An RDS client of another region (like [`Aws::ec2_in`]).
    pub fn rds_in(&self, region: &str) -> aws_sdk_rds::Client {
        if region == self.region {
            return self.rds.clone();
        }
        let conf = aws_sdk_rds::config::Builder::from(&self.sdk).region(aws_config::Region::new(region.to_string())).build();
        aws_sdk_rds::Client::from_conf(conf)
    }

    /// Requests sent so far (retries included).
    pub fn calls(&self) -> u64 {
        self.policy.calls()
    }

    /// The region's availability zones, sorted (looked up once per run).
    pub async fn zones(&self) -> Result<&[String], ProviderError> {
        self.zones
            .get_or_try_init(|| async {
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
