//! `aws.autoscaling_policy`: a target tracking policy of an auto scaling group
//! (keep average CPU, or requests per target, at a value).
//!
//! PutScalingPolicy is an upsert by (group, name), so create and update are
//! the same call and a retried create cannot duplicate. Policies carry no
//! tags; the (group, name) pair identifies one, and the group is Phoenix's.

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{MetricType, PredefinedMetricSpecification, ScalingPolicy, TargetTrackingConfiguration};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Number;

use crate::client::Aws;
use crate::error::{is_not_found, sdk};

pub struct AutoscalingPolicy;

const METRICS: [&str; 4] = ["ASGAverageCPUUtilization", "ASGAverageNetworkIn", "ASGAverageNetworkOut", "ALBRequestCountPerTarget"];

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoscalingPolicySpec {
    /// the group (${asg.id})
    #[schemars(extend("force_new" = true))]
    pub autoscaling_group_name: String,
    /// the policy's name, unique in its group
    #[schemars(extend("force_new" = true))]
    pub name: String,
    /// ASGAverageCPUUtilization, ASGAverageNetworkIn/Out, ALBRequestCountPerTarget
    #[serde(default = "cpu")]
    #[schemars(extend("format" = "aws-scaling-metric"))]
    pub metric: String,
    /// for ALBRequestCountPerTarget: app/…/targetgroup/…
    pub resource_label: Option<String>,
    /// the value to keep the metric at (e.g. 50 % CPU)
    // A number as written (`50` stays `50`, not `50.0`): what the definition is compared with.
    #[schemars(extend("format" = "non-negative"))]
    pub target_value: Number,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct AutoscalingPolicyOutputs {
    /// the policy's ARN
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the policy's ARN
    #[schemars(extend("stable" = true))]
    pub arn: String,
}

fn cpu() -> String {
    METRICS[0].into()
}

fn metric(v: &serde_json::Value) -> Result<(), phoenix_core::schema::Invalid> {
    match v.as_str() {
        Some(m) if !METRICS.contains(&m) => Err(format!("`{m}` is not one of {}", METRICS.join(", ")).into()),
        _ => Ok(()),
    }
}

fn outputs(p: &ScalingPolicy) -> AutoscalingPolicyOutputs {
    let arn = p.policy_arn().unwrap_or_default();
    AutoscalingPolicyOutputs { id: arn.to_string(), arn: arn.to_string() }
}

fn observe(p: &ScalingPolicy, prior: Option<&AutoscalingPolicySpec>) -> Observed<AutoscalingPolicy> {
    let t = p.target_tracking_configuration();
    let m = t.and_then(|t| t.predefined_metric_specification());
    let target_value = match t.and_then(|t| t.target_value()) {
        // `50` and `50.0` are the same target: keep the definition's spelling when equal.
        Some(v) => match prior {
            Some(p) if p.target_value.as_f64() == Some(v) => p.target_value.clone(),
            _ => as_written(v),
        },
        None => prior.map_or_else(|| Number::from(0), |p| p.target_value.clone()),
    };
    let spec = AutoscalingPolicySpec {
        autoscaling_group_name: p.auto_scaling_group_name().unwrap_or_default().to_string(),
        name: p.policy_name().unwrap_or_default().to_string(),
        metric: match m {
            Some(m) => m.predefined_metric_type().map_or("", MetricType::as_str).to_string(),
            None => prior.map_or_else(cpu, |p| p.metric.clone()),
        },
        resource_label: match m {
            Some(m) => m.resource_label().map(str::to_string),
            None => prior.and_then(|p| p.resource_label.clone()),
        },
        target_value,
    };
    Observed { spec, outputs: outputs(p) }
}

/// A target as a user writes it: `50`, not `50.0`, for a whole number.
fn as_written(v: f64) -> Number {
    if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        Number::from(v as i64)
    } else {
        Number::from_f64(v).unwrap_or_else(|| Number::from(0))
    }
}

/// The policies named `names` (of `group`, else of any group), over all pages.
async fn describe(aws: &Aws, group: Option<&str>, names: &[String]) -> Result<Vec<ScalingPolicy>, ProviderError> {
    let mut found = Vec::new();
    for chunk in names.chunks(50) {
        let pages = aws
            .autoscaling
            .describe_policies()
            .set_auto_scaling_group_name(group.map(str::to_string))
            .set_policy_names(Some(chunk.to_vec()))
            .into_paginator()
            .send();
        for page in super::all_pages("DescribePolicies", pages).await? {
            found.extend(page.scaling_policies().iter().cloned());
        }
    }
    Ok(found)
}

/// The group and the policy's name in its ARN,
/// `arn:aws:autoscaling:…:scalingPolicy:…:autoScalingGroupName/GROUP:policyName/NAME`.
fn arn_names(arn: &str) -> Option<(&str, &str)> {
    let (_, rest) = arn.split_once(":scalingPolicy:")?;
    let (_, rest) = rest.split_once(":autoScalingGroupName/")?;
    rest.split_once(":policyName/").filter(|(group, name)| !group.is_empty() && !name.is_empty())
}

async fn put(aws: &Aws, spec: &AutoscalingPolicySpec) -> Result<ScalingPolicy, ProviderError> {
    let (group, name) = (spec.autoscaling_group_name.as_str(), spec.name.as_str());
    let target = spec.target_value.as_f64().ok_or_else(|| ProviderError::permanent("`target_value` is missing"))?;
    let metric = PredefinedMetricSpecification::builder()
        .predefined_metric_type(MetricType::from(spec.metric.as_str()))
        .set_resource_label(spec.resource_label.clone())
        .build();
    let config = TargetTrackingConfiguration::builder().predefined_metric_specification(metric).target_value(target).build();
    {
        aws.autoscaling
            .put_scaling_policy()
            .auto_scaling_group_name(group)
            .policy_name(name)
            .policy_type("TargetTrackingScaling")
            .target_tracking_configuration(config)
            .send()
            .await
            .map_err(|e| sdk("PutScalingPolicy", e))?;
    }
    // The ARN is read back rather than taken from the response (moto leaves it out).
    describe(aws, Some(group), &[name.to_string()])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ProviderError::transient(format!("policy {name} of {group} is not listed yet")))
}

#[async_trait]
impl Kind for AutoscalingPolicy {
    const TYPE: &'static str = "aws.autoscaling_policy";
    const DESCRIPTION: &'static str = "A target tracking scaling policy of an auto scaling group";
    type Client = Aws;
    type Spec = AutoscalingPolicySpec;
    type Outputs = AutoscalingPolicyOutputs;
    const FORMATS: &'static [(&'static str, Validator)] = &[("aws-scaling-metric", metric)];

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        let mut names: Vec<String> = items.iter().map(|i| i.spec.name.clone()).collect();
        names.sort();
        names.dedup();
        let found = describe(aws, None, &names).await?;
        Ok(items
            .iter()
            .map(|i| found.iter().find(|p| p.policy_arn() == Some(i.outputs.id.as_str())).map(|p| observe(p, Some(&i.spec))))
            .collect())
    }

    /// By its ARN, which names its group and name: one DescribePolicies of that group.
    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        let (group, name) = arn_names(id).ok_or_else(|| {
            ProviderError::invalid_input(format!(
                "`{id}` is not a scaling policy ARN (arn:aws:autoscaling:…:scalingPolicy:…:autoScalingGroupName/GROUP:policyName/NAME)"
            ))
        })?;
        let found = describe(aws, Some(group), &[name.to_string()]).await?;
        Ok(found.iter().find(|p| p.policy_arn() == Some(id)).map(|p| observe(p, None)))
    }

    /// Policies carry no tags and live inside their group: deleting a leaked
    /// group deletes its policies with it, so there is nothing to list on its own.
    async fn list_owned(&self, _aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        Ok(Some(Vec::new()))
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        let found = describe(aws, Some(&req.spec.autoscaling_group_name), std::slice::from_ref(&req.spec.name)).await?;
        Ok(found.first().map(|p| observe(p, Some(req.spec))))
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<AutoscalingPolicyOutputs, ProviderError> {
        Ok(outputs(&put(aws, req.spec).await?))
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<AutoscalingPolicyOutputs, ProviderError> {
        Ok(outputs(&put(aws, req.spec).await?))
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let (group, name) = (req.spec.autoscaling_group_name.as_str(), req.spec.name.as_str());
        match aws.autoscaling.delete_policy().auto_scaling_group_name(group).policy_name(name).send().await {
            Ok(_) => Ok(()),
            // Deleting the group deletes its policies; either way, it is gone.
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(sdk("DeletePolicy", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arn_names_its_group_and_policy() {
        let arn = "arn:aws:autoscaling:eu-west-1:123456789012:scalingPolicy:c322761b-3172-4d56-9a21-0ed9d6161d67:autoScalingGroupName/web:policyName/cpu";
        assert_eq!(arn_names(arn), Some(("web", "cpu")));
        assert_eq!(arn_names("arn:aws:autoscaling:eu-west-1:1:autoScalingGroup:x:autoScalingGroupName/web"), None);
        assert_eq!(arn_names("cpu"), None);
    }

    #[test]
    fn a_whole_target_reads_back_as_written() {
        assert_eq!(serde_json::to_string(&as_written(50.0)).unwrap(), "50");
        assert_eq!(serde_json::to_string(&as_written(62.5)).unwrap(), "62.5");
    }
}
