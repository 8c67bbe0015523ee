//! `aws.lb_target_group`: where a load balancer sends traffic, and how it
//! decides a target is healthy (path, expected status, thresholds).
//!
//! The health check changes in place (ModifyTargetGroup); port, protocol, VPC
//! and target type replace it. Reads come from the ELBv2 sub-template
//! (`crate::elbv2`); a read also reads the targets' health
//! (DescribeTargetHealth: one call per group, ELBv2 has no batch form), which
//! `phoenix status` shows.

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{Matcher, ProtocolEnum, TargetGroup, TargetHealthStateEnum, TargetTypeEnum};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::{Invalid, Validator};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::Aws;
use crate::ec2::UserTags;
use crate::elbv2::{self, ElbKind};
use crate::error::{code, is_not_found, sdk};

pub struct LbTargetGroup;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LbTargetGroupSpec {
    /// unique in the region and account, 1-32 characters
    #[schemars(extend("force_new" = true, "format" = "aws-elb-name"))]
    pub name: String,
    /// the port targets receive traffic on
    #[schemars(extend("force_new" = true, "format" = "port"))]
    pub port: i64,
    /// HTTP or HTTPS
    #[serde(default = "http")]
    #[schemars(extend("force_new" = true))]
    pub protocol: String,
    /// the VPC of the targets
    #[schemars(extend("force_new" = true))]
    pub vpc_id: String,
    /// instance, ip or lambda
    #[serde(default = "instance")]
    #[schemars(extend("force_new" = true))]
    pub target_type: String,
    /// the path the health check requests
    #[serde(default = "root")]
    pub health_check_path: String,
    /// healthy statuses: "200", "200,204", "200-299"
    #[serde(default = "ok_status")]
    #[schemars(extend("format" = "aws-elb-matcher"))]
    pub health_check_matcher: String,
    /// seconds between checks
    #[serde(default = "thirty")]
    #[schemars(extend("format" = "non-negative"))]
    pub health_check_interval: i64,
    /// seconds before a check fails
    #[serde(default = "five")]
    #[schemars(extend("format" = "non-negative"))]
    pub health_check_timeout: i64,
    /// consecutive passes before a target is healthy
    #[serde(default = "five")]
    #[schemars(extend("format" = "non-negative"))]
    pub healthy_threshold: i64,
    /// consecutive failures before a target is unhealthy
    #[serde(default = "two")]
    #[schemars(extend("format" = "non-negative"))]
    pub unhealthy_threshold: i64,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LbTargetGroupOutputs {
    /// the target group's ARN
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the target group's ARN
    #[schemars(extend("stable" = true))]
    pub arn: String,
    /// targets passing the health check (read on refresh)
    #[schemars(extend("highlight" = true))]
    pub healthy_targets: i64,
    /// registered targets not (yet) healthy (read on refresh)
    #[schemars(extend("highlight" = true))]
    pub unhealthy_targets: i64,
}

fn http() -> String {
    "HTTP".into()
}
fn instance() -> String {
    "instance".into()
}
fn root() -> String {
    "/".into()
}
fn ok_status() -> String {
    "200".into()
}
fn thirty() -> i64 {
    30
}
fn five() -> i64 {
    5
}
fn two() -> i64 {
    2
}

/// `200`, `200,204` or `200-299`.
fn check_matcher(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    let ok = s.split(',').all(|part| part.split('-').all(|c| c.trim().parse::<u16>().is_ok_and(|n| (100..=599).contains(&n))));
    if ok { Ok(()) } else { Err(Invalid(format!("`{s}` is not a status matcher such as \"200\", \"200,204\" or \"200-299\""))) }
}

/// A number the API takes as 32 bits (validation keeps them small).
fn int(v: i64) -> Option<i32> {
    i32::try_from(v).ok()
}

/// The health check settings of `$spec` on a CreateTargetGroup or a
/// ModifyTargetGroup call (their builders share the setters, not a type).
macro_rules! with_health_check {
    ($call:expr, $spec:expr) => {
        $call
            .health_check_path(&$spec.health_check_path)
            .matcher(Matcher::builder().http_code(&$spec.health_check_matcher).build())
            .set_health_check_interval_seconds(int($spec.health_check_interval))
            .set_health_check_timeout_seconds(int($spec.health_check_timeout))
            .set_healthy_threshold_count(int($spec.healthy_threshold))
            .set_unhealthy_threshold_count(int($spec.unhealthy_threshold))
    };
}

fn outputs(tg: &TargetGroup, (healthy, unhealthy): (i64, i64)) -> LbTargetGroupOutputs {
    let arn = tg.target_group_arn().unwrap_or_default().to_string();
    LbTargetGroupOutputs { id: arn.clone(), arn, healthy_targets: healthy, unhealthy_targets: unhealthy }
}

/// (healthy, not healthy) registered targets; draining and unused targets count as not healthy.
async fn target_health(aws: &Aws, arn: &str) -> Result<(i64, i64), ProviderError> {
    let out = match aws.elb.describe_target_health().target_group_arn(arn).send().await {
        Ok(o) => o,
        Err(e) if is_not_found(&e) => return Ok((0, 0)),
        Err(e) => return Err(sdk("DescribeTargetHealth", e)),
    };
    let healthy = out
        .target_health_descriptions()
        .iter()
        .filter(|d| d.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy))
        .count() as i64;
    Ok((healthy, out.target_health_descriptions().len() as i64 - healthy))
}

/// Observed groups with their targets' health read (one call per group, in parallel).
async fn with_health(
    aws: &Aws,
    found: Vec<Option<Observed<LbTargetGroup>>>,
) -> Result<Vec<Option<Observed<LbTargetGroup>>>, ProviderError> {
    futures::future::try_join_all(found.into_iter().map(|f| async move {
        let Some(mut o) = f else { return Ok(None) };
        (o.outputs.healthy_targets, o.outputs.unhealthy_targets) = target_health(aws, &o.outputs.arn).await?;
        Ok(Some(o))
    }))
    .await
}

#[async_trait]
impl ElbKind for LbTargetGroup {
    type Object = TargetGroup;

    async fn describe(aws: &Aws, arns: Vec<String>) -> Result<Vec<TargetGroup>, ProviderError> {
        let out =
            aws.elb.describe_target_groups().set_target_group_arns(Some(arns)).send().await.map_err(|e| sdk("DescribeTargetGroups", e))?;
        Ok(out.target_groups().to_vec())
    }

    async fn describe_all(aws: &Aws) -> Result<Vec<TargetGroup>, ProviderError> {
        let pages = aws.elb.describe_target_groups().into_paginator().send();
        Ok(super::all_pages("DescribeTargetGroups", pages).await?.iter().flat_map(|p| p.target_groups().to_vec()).collect())
    }

    /// Names are unique in a region.
    async fn lookup(aws: &Aws, spec: &LbTargetGroupSpec) -> Result<Option<TargetGroup>, ProviderError> {
        match aws.elb.describe_target_groups().names(&spec.name).send().await {
            Ok(out) => Ok(out.target_groups().first().cloned()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(sdk("DescribeTargetGroups", e)),
        }
    }

    fn arn(tg: &TargetGroup) -> &str {
        tg.target_group_arn().unwrap_or_default()
    }

    fn arn_of(outputs: &LbTargetGroupOutputs) -> &str {
        &outputs.id
    }

    /// Target health is read by `read`, `import` and `find` only: for `gc`
    /// (deleting a leak needs none) the counts read as zero.
    fn observe(tg: &TargetGroup, tags: &[(String, String)], prior: Option<&LbTargetGroupSpec>) -> Observed<Self> {
        let int_or = |v: Option<i32>, prior: Option<i64>, default: i64| v.map_or(prior.unwrap_or(default), i64::from);
        let spec = LbTargetGroupSpec {
            name: tg.target_group_name().unwrap_or_default().to_string(),
            port: tg.port().map_or(0, i64::from),
            protocol: tg.protocol().map_or("", ProtocolEnum::as_str).to_string(),
            vpc_id: tg.vpc_id().unwrap_or_default().to_string(),
            target_type: tg.target_type().map_or("instance", TargetTypeEnum::as_str).to_string(),
            health_check_path: tg.health_check_path().unwrap_or_default().to_string(),
            health_check_matcher: tg.matcher().and_then(Matcher::http_code).unwrap_or_default().to_string(),
            health_check_interval: int_or(tg.health_check_interval_seconds(), prior.map(|p| p.health_check_interval), 30),
            health_check_timeout: int_or(tg.health_check_timeout_seconds(), prior.map(|p| p.health_check_timeout), 5),
            healthy_threshold: int_or(tg.healthy_threshold_count(), prior.map(|p| p.healthy_threshold), 5),
            unhealthy_threshold: int_or(tg.unhealthy_threshold_count(), prior.map(|p| p.unhealthy_threshold), 2),
            tags: elbv2::user_tags(tags),
        };
        Observed { spec, outputs: outputs(tg, (0, 0)) }
    }
}

#[async_trait]
impl Kind for LbTargetGroup {
    const TYPE: &'static str = "aws.lb_target_group";
    const DESCRIPTION: &'static str = "A target group of an application load balancer, with its health check";
    const FORMATS: &'static [(&'static str, Validator)] = &[(elbv2::NAME_FORMAT, elbv2::check_name), ("aws-elb-matcher", check_matcher)];
    type Client = Aws;
    type Spec = LbTargetGroupSpec;
    type Outputs = LbTargetGroupOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        with_health(aws, elbv2::read(aws, items).await?).await
    }

    async fn import(&self, aws: &Aws, arn: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        Ok(with_health(aws, vec![elbv2::import(aws, arn).await?]).await?.pop().flatten())
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        Ok(with_health(aws, vec![elbv2::find(aws, req.spec, req.ownership).await?]).await?.pop().flatten())
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        elbv2::list_owned(aws).await
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<LbTargetGroupOutputs, ProviderError> {
        let s = req.spec;
        let create = aws
            .elb
            .create_target_group()
            .name(&s.name)
            .port(int(s.port).ok_or_else(|| ProviderError::permanent("attribute `port` is missing"))?)
            .protocol(ProtocolEnum::from(s.protocol.as_str()))
            .vpc_id(&s.vpc_id)
            .target_type(TargetTypeEnum::from(s.target_type.as_str()));
        let out = with_health_check!(create, s)
            .set_tags(Some(elbv2::create_tags(req.ownership, s.tags.as_ref())))
            .send()
            .await
            .map_err(|e| sdk("CreateTargetGroup", e))?;
        let tg = out.target_groups().first().ok_or_else(|| ProviderError::permanent("CreateTargetGroup returned no target group"))?;
        Ok(outputs(tg, (0, 0)))
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<LbTargetGroupOutputs, ProviderError> {
        let arn = &req.outputs.id;
        let s = req.spec;
        if req.changed.iter().any(|c| c.starts_with("health") || c.ends_with("_threshold")) {
            with_health_check!(aws.elb.modify_target_group().target_group_arn(arn), s)
                .send()
                .await
                .map_err(|e| sdk("ModifyTargetGroup", e))?;
        }
        elbv2::update_tags(aws, arn, req.prior.tags.as_ref(), s.tags.as_ref(), req.ownership).await?;
        let (healthy_targets, unhealthy_targets) = target_health(aws, arn).await?;
        Ok(LbTargetGroupOutputs { healthy_targets, unhealthy_targets, ..req.outputs.clone() })
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let arn = req.outputs.id.as_str();
        // A group is in use until the listener forwarding to it and the auto scaling
        // group registering into it are gone (ResourceInUse): retried until they are.
        crate::wait::until(&format!("target group {arn} to be deletable"), aws.wait_timeout, || async move {
            match aws.elb.delete_target_group().target_group_arn(arn).send().await {
                Ok(_) => Ok(Some(())),
                Err(e) if is_not_found(&e) => Ok(Some(())),
                Err(e) if code(&e) == Some("ResourceInUse") => Ok(None),
                Err(e) => Err(sdk("DeleteTargetGroup", e)),
            }
        })
        .await
    }
}
