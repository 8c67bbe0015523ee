//! `aws.autoscaling_policy`: a target tracking policy of an auto scaling group
//! (keep average CPU, or requests per target, at a value).
//!
//! PutScalingPolicy is an upsert by (group, name), so create and update are
//! the same call and a retried create cannot duplicate. Policies carry no
//! tags; the (group, name) pair identifies one, and the group is Phoenix's.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{MetricType, PredefinedMetricSpecification, ScalingPolicy, TargetTrackingConfiguration};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::{Kind, id_attr, id_of, in_item_order, opt_str, req_str};
use crate::client::Aws;
use crate::error::{is_not_found, sdk};

pub struct AutoscalingPolicy;

const METRICS: [&str; 4] = ["ASGAverageCPUUtilization", "ASGAverageNetworkIn", "ASGAverageNetworkOut", "ALBRequestCountPerTarget"];

fn outputs(p: &ScalingPolicy) -> Attrs {
    let arn = p.policy_arn().unwrap_or_default();
    [("id".to_string(), json!(arn)), ("arn".to_string(), json!(arn))].into_iter().collect()
}

fn observed(p: &ScalingPolicy, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    inputs.insert("autoscaling_group_name".into(), json!(p.auto_scaling_group_name().unwrap_or_default()));
    inputs.insert("name".into(), json!(p.policy_name().unwrap_or_default()));
    if let Some(t) = p.target_tracking_configuration() {
        if let Some(v) = t.target_value() {
            // `50` and `50.0` are the same target: keep the definition's spelling when equal.
            let same = prior.get("target_value").and_then(Value::as_f64) == Some(v);
            inputs.insert("target_value".into(), if same { prior["target_value"].clone() } else { json!(v) });
        }
        if let Some(m) = t.predefined_metric_specification() {
            inputs.insert("metric".into(), json!(m.predefined_metric_type().map_or("", MetricType::as_str)));
            if prior.contains_key("resource_label") {
                inputs.insert("resource_label".into(), m.resource_label().map_or(Value::Null, |l| json!(l)));
            }
        }
    }
    Observed { inputs, outputs: outputs(p) }
}

/// The policies named `names` (of any group), over all pages.
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

async fn put(aws: &Aws, inputs: &Attrs) -> Result<ScalingPolicy, ProviderError> {
    let group = req_str(inputs, "autoscaling_group_name")?;
    let name = req_str(inputs, "name")?;
    let target = inputs.get("target_value").and_then(Value::as_f64).ok_or_else(|| ProviderError::permanent("`target_value` is missing"))?;
    let metric = PredefinedMetricSpecification::builder()
        .predefined_metric_type(MetricType::from(opt_str(inputs, "metric").unwrap_or(METRICS[0])))
        .set_resource_label(opt_str(inputs, "resource_label").map(str::to_string))
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
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.autoscaling_policy",
            description: "A target tracking scaling policy of an auto scaling group",
            attrs: vec![
                AttrSchema::required("autoscaling_group_name", AttrType::String, "the group (${asg.id})").force_new(),
                AttrSchema::required("name", AttrType::String, "the policy's name, unique in its group").force_new(),
                AttrSchema::optional(
                    "metric",
                    AttrType::String,
                    "ASGAverageCPUUtilization, ASGAverageNetworkIn/Out, ALBRequestCountPerTarget",
                )
                .default(json!(METRICS[0]))
                .validate_with(|v| match v.as_str() {
                    Some(m) if !METRICS.contains(&m) => Err(format!("`{m}` is not one of {}", METRICS.join(", ")).into()),
                    _ => Ok(()),
                }),
                AttrSchema::optional("resource_label", AttrType::String, "for ALBRequestCountPerTarget: app/…/targetgroup/…"),
                AttrSchema::required("target_value", AttrType::Float, "the value to keep the metric at (e.g. 50 % CPU)")
                    .validate_with(validators::non_negative),
                id_attr("the policy's ARN"),
                AttrSchema::computed("arn", AttrType::String, "the policy's ARN").stable(),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let mut names: Vec<String> = items.iter().filter_map(|i| opt_str(&i.inputs, "name").map(str::to_string)).collect();
        names.sort();
        names.dedup();
        let prior: HashMap<&str, &Attrs> = items.iter().filter_map(|i| Some((i.outputs.get("id")?.as_str()?, &i.inputs))).collect();
        let mut found = HashMap::new();
        for p in describe(aws, None, &names).await? {
            let arn = p.policy_arn().unwrap_or_default().to_string();
            if let Some(prior) = prior.get(arn.as_str()) {
                found.insert(arn, observed(&p, prior));
            }
        }
        Ok(in_item_order(items, found))
    }

    /// Policies carry no tags and live inside their group: deleting a leaked
    /// group deletes its policies with it, so there is nothing to list on its own.
    async fn list_owned(&self, _aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        Ok(Some(Vec::new()))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let group = req_str(&req.inputs, "autoscaling_group_name")?;
        let found = describe(aws, Some(group), &[req_str(&req.inputs, "name")?.to_string()]).await?;
        Ok(found.first().map(|p| observed(p, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        Ok(outputs(&put(aws, &req.inputs).await?))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let _ = id_of(&req.prior_outputs)?;
        Ok(outputs(&put(aws, &req.inputs).await?))
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let group = req_str(&req.inputs, "autoscaling_group_name")?;
        let name = req_str(&req.inputs, "name")?;
        match aws.autoscaling.delete_policy().auto_scaling_group_name(group).policy_name(name).send().await {
            Ok(_) => Ok(()),
            // Deleting the group deletes its policies; either way, it is gone.
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(sdk("DeletePolicy", e)),
        }
    }
}
