//! `aws.lb_target_group`: where a load balancer sends traffic, and how it
//! decides a target is healthy (path, expected status, thresholds).
//!
//! The health check changes in place (ModifyTargetGroup); port, protocol, VPC
//! and target type replace it. Refresh also reads the targets' health
//! (DescribeTargetHealth: one call per group, ELBv2 has no batch form), which
//! `phoenix status` shows.

use phoenix_core::schema::Invalid;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{Matcher, ProtocolEnum, TargetGroup, TargetHealthStateEnum, TargetTypeEnum};
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, OwnedObject, ProviderError, RefreshItem, UpdateRequest,
};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::lb::{check_elb_name, elb_tags, retag, tags_of};
use super::{Kind, id_attr, id_of, in_item_order, opt_i64, opt_str, priors, req_str, tags_attr};
use crate::client::Aws;
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct LbTargetGroup;

/// Health check attributes with their defaults (AWS's for HTTP, but a 200 matcher and `/`).
const HEALTH_INTS: [(&str, i64); 4] =
    [("health_check_interval", 30), ("health_check_timeout", 5), ("healthy_threshold", 5), ("unhealthy_threshold", 2)];

fn int(inputs: &Attrs, name: &str) -> Option<i32> {
    opt_i64(inputs, name).and_then(|v| i32::try_from(v).ok())
}

/// `200`, `200,204` or `200-299`.
fn check_matcher(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    let ok = s.split(',').all(|part| part.split('-').all(|c| c.trim().parse::<u16>().is_ok_and(|n| (100..=599).contains(&n))));
    if ok { Ok(()) } else { Err(Invalid(format!("`{s}` is not a status matcher such as \"200\", \"200,204\" or \"200-299\""))) }
}

fn health(tg: &TargetGroup) -> [(&'static str, Option<i32>); 4] {
    [
        ("health_check_interval", tg.health_check_interval_seconds()),
        ("health_check_timeout", tg.health_check_timeout_seconds()),
        ("healthy_threshold", tg.healthy_threshold_count()),
        ("unhealthy_threshold", tg.unhealthy_threshold_count()),
    ]
}

fn outputs(tg: &TargetGroup, counts: (i64, i64)) -> Attrs {
    let arn = tg.target_group_arn().unwrap_or_default();
    let mut o = Attrs::new();
    o.insert("id".into(), json!(arn));
    o.insert("arn".into(), json!(arn));
    o.insert("healthy_targets".into(), json!(counts.0));
    o.insert("unhealthy_targets".into(), json!(counts.1));
    o
}

fn observed(tg: &TargetGroup, tag_pairs: &[(String, String)], counts: (i64, i64), prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    inputs.insert("name".into(), json!(tg.target_group_name().unwrap_or_default()));
    inputs.insert("port".into(), json!(tg.port().unwrap_or_default()));
    inputs.insert("protocol".into(), json!(tg.protocol().map_or("", ProtocolEnum::as_str)));
    inputs.insert("vpc_id".into(), json!(tg.vpc_id().unwrap_or_default()));
    inputs.insert("target_type".into(), json!(tg.target_type().map_or("instance", TargetTypeEnum::as_str)));
    inputs.insert("health_check_path".into(), json!(tg.health_check_path().unwrap_or_default()));
    inputs.insert("health_check_matcher".into(), json!(tg.matcher().and_then(Matcher::http_code).unwrap_or_default()));
    for (name, v) in health(tg) {
        if let Some(v) = v {
            inputs.insert(name.into(), json!(v));
        }
    }
    tags::observe_pairs(&mut inputs, prior, tag_pairs);
    Observed { inputs, outputs: outputs(tg, counts) }
}

/// Target groups by ARN (see `lb::by_arns`).
async fn describe(aws: &Aws, arns: &[String]) -> Result<Vec<TargetGroup>, ProviderError> {
    super::lb::by_arns("DescribeTargetGroups", arns, |chunk| async move {
        aws.elb.describe_target_groups().set_target_group_arns(Some(chunk)).send().await.map(|o| o.target_groups().to_vec())
    })
    .await
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

#[async_trait]
impl Kind for LbTargetGroup {
    fn schema(&self) -> ResourceSchema {
        let mut attrs = vec![
            AttrSchema::required("name", AttrType::String, "unique in the region and account, 1-32 characters")
                .force_new()
                .validate_with(check_elb_name),
            AttrSchema::required("port", AttrType::Int, "the port targets receive traffic on").force_new().validate_with(validators::port),
            AttrSchema::optional("protocol", AttrType::String, "HTTP or HTTPS").default(json!("HTTP")).force_new(),
            AttrSchema::required("vpc_id", AttrType::String, "the VPC of the targets").force_new(),
            AttrSchema::optional("target_type", AttrType::String, "instance, ip or lambda").default(json!("instance")).force_new(),
            AttrSchema::optional("health_check_path", AttrType::String, "the path the health check requests").default(json!("/")),
            AttrSchema::optional("health_check_matcher", AttrType::String, "healthy statuses: \"200\", \"200,204\", \"200-299\"")
                .default(json!("200"))
                .validate_with(check_matcher),
        ];
        for (name, default) in HEALTH_INTS {
            let what = match name {
                "health_check_interval" => "seconds between checks",
                "health_check_timeout" => "seconds before a check fails",
                "healthy_threshold" => "consecutive passes before a target is healthy",
                _ => "consecutive failures before a target is unhealthy",
            };
            attrs.push(AttrSchema::optional(name, AttrType::Int, what).default(json!(default)).validate_with(validators::non_negative));
        }
        attrs.extend([
            tags_attr(),
            id_attr("the target group's ARN"),
            AttrSchema::computed("arn", AttrType::String, "the target group's ARN").stable(),
            AttrSchema::computed("healthy_targets", AttrType::Int, "targets passing the health check (read on refresh)").highlight(),
            AttrSchema::computed("unhealthy_targets", AttrType::Int, "registered targets not (yet) healthy (read on refresh)").highlight(),
        ]);
        ResourceSchema {
            type_name: "aws.lb_target_group",
            description: "A target group of an application load balancer, with its health check",
            attrs,
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let arns: Vec<String> = prior.keys().map(|s| s.to_string()).collect();
        let groups = describe(aws, &arns).await?;
        let live: Vec<String> = groups.iter().filter_map(|g| g.target_group_arn().map(str::to_string)).collect();
        let tag_map = tags_of(aws, &live).await?;
        let counts = futures::future::try_join_all(live.iter().map(|a| target_health(aws, a))).await?;
        let mut found = HashMap::new();
        for (tg, counts) in groups.iter().zip(counts) {
            let arn = tg.target_group_arn().unwrap_or_default().to_string();
            let p = prior.get(arn.as_str()).copied().cloned().unwrap_or_default();
            found.insert(arn.clone(), observed(tg, tag_map.get(&arn).map_or(&[][..], Vec::as_slice), counts, &p));
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<OwnedObject>>, ProviderError> {
        let pages = aws.elb.describe_target_groups().into_paginator().send();
        let groups: Vec<TargetGroup> =
            super::all_pages("DescribeTargetGroups", pages).await?.iter().flat_map(|p| p.target_groups().to_vec()).collect();
        let arns: Vec<String> = groups.iter().filter_map(|g| g.target_group_arn().map(str::to_string)).collect();
        let tag_map = tags_of(aws, &arns).await?;
        Ok(Some(
            groups
                .iter()
                .filter_map(|tg| {
                    let pairs = tag_map.get(tg.target_group_arn()?)?;
                    // Target health is not needed to delete a leak: counts read as zero.
                    super::owned_pairs(self, pairs, observed(tg, pairs, (0, 0), &Attrs::new()))
                })
                .collect(),
        ))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let res = { aws.elb.describe_target_groups().names(req_str(&req.inputs, "name")?).send().await };
        let tg = match res {
            Ok(out) => out.target_groups().first().cloned(),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(sdk("DescribeTargetGroups", e)),
        };
        let Some(tg) = tg else { return Ok(None) };
        let arn = tg.target_group_arn().unwrap_or_default().to_string();
        let tag_pairs = tags_of(aws, std::slice::from_ref(&arn)).await?.remove(&arn).unwrap_or_default();
        if !tags::owned_by(&tag_pairs, &req.ownership) {
            return Ok(None);
        }
        Ok(Some(observed(&tg, &tag_pairs, target_health(aws, &arn).await?, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let i = &req.inputs;
        let out = {
            aws.elb
                .create_target_group()
                .name(req_str(i, "name")?)
                .port(int(i, "port").ok_or_else(|| ProviderError::permanent("attribute `port` is missing"))?)
                .protocol(ProtocolEnum::from(opt_str(i, "protocol").unwrap_or("HTTP")))
                .vpc_id(req_str(i, "vpc_id")?)
                .target_type(TargetTypeEnum::from(opt_str(i, "target_type").unwrap_or("instance")))
                .health_check_path(opt_str(i, "health_check_path").unwrap_or("/"))
                .matcher(Matcher::builder().http_code(opt_str(i, "health_check_matcher").unwrap_or("200")).build())
                .set_health_check_interval_seconds(int(i, "health_check_interval"))
                .set_health_check_timeout_seconds(int(i, "health_check_timeout"))
                .set_healthy_threshold_count(int(i, "healthy_threshold"))
                .set_unhealthy_threshold_count(int(i, "unhealthy_threshold"))
                .set_tags(Some(elb_tags(&req.ownership, i.get("tags"))))
                .send()
                .await
                .map_err(|e| sdk("CreateTargetGroup", e))?
        };
        let tg = out.target_groups().first().ok_or_else(|| ProviderError::permanent("CreateTargetGroup returned no target group"))?;
        Ok(outputs(tg, (0, 0)))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let arn = id_of(&req.prior_outputs)?;
        let i = &req.inputs;
        if req.changed.iter().any(|c| c.starts_with("health") || c.ends_with("_threshold")) {
            aws.elb
                .modify_target_group()
                .target_group_arn(arn)
                .set_health_check_path(opt_str(i, "health_check_path").map(str::to_string))
                .set_matcher(opt_str(i, "health_check_matcher").map(|m| Matcher::builder().http_code(m).build()))
                .set_health_check_interval_seconds(int(i, "health_check_interval"))
                .set_health_check_timeout_seconds(int(i, "health_check_timeout"))
                .set_healthy_threshold_count(int(i, "healthy_threshold"))
                .set_unhealthy_threshold_count(int(i, "unhealthy_threshold"))
                .send()
                .await
                .map_err(|e| sdk("ModifyTargetGroup", e))?;
        }
        retag(aws, arn, req).await?;
        let mut out = req.prior_outputs.clone();
        let (h, u) = target_health(aws, arn).await?;
        out.insert("healthy_targets".into(), json!(h));
        out.insert("unhealthy_targets".into(), json!(u));
        Ok(out)
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let arn = id_of(&req.outputs)?;
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
