//! `aws.autoscaling_group`: instances from a launch template, kept at the
//! desired count over subnets in several zones, registered in target groups,
//! and replaced when they fail the load balancer's health check (`ELB`).
//!
//! Sizes, subnets, target groups and health checks change in place
//! (UpdateAutoScalingGroup, Attach/DetachTrafficSources). A new launch template
//! or version starts an instance refresh, so running instances are rolled onto
//! it. Create and updates wait until the group has its desired capacity in service.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{AutoScalingGroup, LaunchTemplateSpecification, LifecycleState, RefreshPreferences, Tag};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::state::Ownership;
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::lb::same_set;
use super::{Kind, id_attr, id_of, in_item_order, opt_i64, opt_str, priors, req_str, str_list, tags_attr};
use crate::client::Aws;
use crate::error::{is_not_found, sdk};
use crate::tags;

pub struct AutoscalingGroup;

fn int(inputs: &Attrs, name: &str) -> Option<i32> {
    opt_i64(inputs, name).and_then(|v| i32::try_from(v).ok())
}

/// Ownership tags propagate to the instances the group launches, so they too
/// are known to be Phoenix's (and are swept with the group).
fn asg_tags(o: &Ownership, user: Option<&Value>, name: &str) -> Vec<Tag> {
    tags::pairs(o, user)
        .into_iter()
        .map(|(k, v)| {
            Tag::builder().key(k).value(v).propagate_at_launch(true).resource_id(name).resource_type("auto-scaling-group").build()
        })
        .collect()
}

fn template(inputs: &Attrs) -> Result<LaunchTemplateSpecification, ProviderError> {
    let version = opt_i64(inputs, "launch_template_version").map_or_else(|| "$Default".to_string(), |v| v.to_string());
    Ok(LaunchTemplateSpecification::builder().launch_template_id(req_str(inputs, "launch_template_id")?).version(version).build())
}

fn in_service(g: &AutoScalingGroup) -> usize {
    g.instances().iter().filter(|i| i.lifecycle_state() == Some(&LifecycleState::InService)).count()
}

fn outputs(g: &AutoScalingGroup) -> Attrs {
    let mut o = Attrs::new();
    o.insert("id".into(), json!(g.auto_scaling_group_name().unwrap_or_default()));
    o.insert("arn".into(), json!(g.auto_scaling_group_arn().unwrap_or_default()));
    o.insert("instance_count".into(), json!(g.instances().len()));
    o.insert("in_service".into(), json!(in_service(g)));
    o
}

fn pairs(g: &AutoScalingGroup) -> Vec<(String, String)> {
    g.tags().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect()
}

fn observed(g: &AutoScalingGroup, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    inputs.insert("name".into(), json!(g.auto_scaling_group_name().unwrap_or_default()));
    inputs.insert("min_size".into(), json!(g.min_size().unwrap_or_default()));
    inputs.insert("max_size".into(), json!(g.max_size().unwrap_or_default()));
    // Scaling policies move the desired capacity: compared only when the definition pins it.
    if prior.contains_key("desired_capacity") {
        inputs.insert("desired_capacity".into(), json!(g.desired_capacity().unwrap_or_default()));
    }
    let subnets = g.vpc_zone_identifier().unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
    inputs.insert("subnet_ids".into(), same_set(prior, "subnet_ids", subnets));
    if prior.contains_key("target_group_arns") {
        inputs.insert("target_group_arns".into(), same_set(prior, "target_group_arns", g.target_group_arns().to_vec()));
    }
    inputs.insert("health_check_type".into(), json!(g.health_check_type().unwrap_or("EC2")));
    if let Some(p) = g.health_check_grace_period() {
        inputs.insert("health_check_grace_period".into(), json!(p));
    }
    if let Some(lt) = g.launch_template() {
        inputs.insert("launch_template_id".into(), json!(lt.launch_template_id().unwrap_or_default()));
        if prior.contains_key("launch_template_version") {
            let v = lt.version().and_then(|v| v.parse::<i64>().ok()).map_or(Value::Null, |v| json!(v));
            inputs.insert("launch_template_version".into(), v);
        }
    }
    tags::observe_pairs(&mut inputs, prior, &pairs(g));
    Observed { inputs, outputs: outputs(g) }
}

/// Groups by name, over all pages; unknown names are simply absent.
async fn describe(aws: &Aws, names: &[String]) -> Result<Vec<AutoScalingGroup>, ProviderError> {
    let mut found = Vec::new();
    for chunk in names.chunks(50) {
        let pages = aws
            .autoscaling
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names(Some(chunk.to_vec()))
            .max_records(100)
            .into_paginator()
            .send();
        for page in super::all_pages("DescribeAutoScalingGroups", pages).await? {
            // A group being deleted is on its way out.
            found.extend(page.auto_scaling_groups().iter().filter(|g| g.status().is_none()).cloned());
        }
    }
    Ok(found)
}

/// Waits until `desired` instances are in service (the group launched them and, with
/// `ELB` health checks, the load balancer let them in).
async fn wait_capacity(aws: &Aws, name: &str, desired: Option<i32>) -> Result<AutoScalingGroup, ProviderError> {
    crate::wait::until(&format!("auto scaling group {name} to reach its desired capacity"), aws.wait_timeout, || async move {
        let Some(g) = describe(aws, &[name.to_string()]).await?.into_iter().next() else { return Ok(None) };
        let want = desired.or(g.desired_capacity()).unwrap_or(0) as usize;
        Ok((in_service(&g) == want && g.instances().len() == want).then_some(g))
    })
    .await
}

#[async_trait]
impl Kind for AutoscalingGroup {
    fn schema(&self) -> ResourceSchema {
        let list = || AttrType::List(Box::new(AttrType::String));
        ResourceSchema {
            type_name: "aws.autoscaling_group",
            description: "An EC2 auto scaling group launching from a launch template",
            attrs: vec![
                AttrSchema::required("name", AttrType::String, "unique in the region").force_new(),
                AttrSchema::required("launch_template_id", AttrType::String, "the launch template (${lt.id})"),
                AttrSchema::optional(
                    "launch_template_version",
                    AttrType::Int,
                    "its version (${lt.latest_version}, so a template change rolls the instances); default: the template's default",
                ),
                AttrSchema::required("min_size", AttrType::Int, "fewest instances").validate_with(validators::non_negative),
                AttrSchema::required("max_size", AttrType::Int, "most instances").validate_with(validators::non_negative),
                AttrSchema::optional("desired_capacity", AttrType::Int, "instances wanted now (in place); unset: scaling policies decide")
                    .validate_with(validators::non_negative),
                AttrSchema::required("subnet_ids", list(), "subnets, one per availability zone (in place)"),
                AttrSchema::optional("target_group_arns", list(), "target groups the instances are registered in (in place)"),
                AttrSchema::optional(
                    "health_check_type",
                    AttrType::String,
                    "EC2, or ELB to replace instances the load balancer finds unhealthy",
                )
                .default(json!("EC2"))
                .validate_with(|v| match v.as_str() {
                    Some("EC2" | "ELB") | None => Ok(()),
                    Some(o) => Err(format!("`{o}` is not a health check type: EC2 or ELB").into()),
                }),
                AttrSchema::optional("health_check_grace_period", AttrType::Int, "seconds before a new instance is health-checked")
                    .default(json!(300))
                    .validate_with(validators::non_negative),
                AttrSchema::optional("min_healthy_percentage", AttrType::Int, "kept in service during an instance refresh")
                    .default(json!(90))
                    .validate_with(validators::non_negative),
                AttrSchema::optional("wait_for_capacity", AttrType::Bool, "wait until the desired capacity is in service")
                    .default(json!(true)),
                tags_attr(),
                id_attr("the group's name"),
                AttrSchema::computed("arn", AttrType::String, "the group's ARN").stable(),
                AttrSchema::computed("instance_count", AttrType::Int, "instances in the group (read on refresh)").highlight(),
                AttrSchema::computed("in_service", AttrType::Int, "instances in service (read on refresh)").highlight(),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let names: Vec<String> = prior.keys().map(|s| s.to_string()).collect();
        let mut found = HashMap::new();
        for g in describe(aws, &names).await? {
            let name = g.auto_scaling_group_name().unwrap_or_default().to_string();
            let p = prior.get(name.as_str()).copied().cloned().unwrap_or_default();
            found.insert(name, observed(&g, &p));
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        let owned = aws_sdk_autoscaling::types::Filter::builder().name("tag-key").values("phoenix:environment").build();
        let pages = aws.autoscaling.describe_auto_scaling_groups().filters(owned).max_records(100).into_paginator().send();
        let mut found = Vec::new();
        for page in super::all_pages("DescribeAutoScalingGroups", pages).await? {
            for g in page.auto_scaling_groups().iter().filter(|g| g.status().is_none()) {
                found.extend(super::owned_pairs(self, &pairs(g), observed(g, &Attrs::new())));
            }
        }
        Ok(Some(found))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let name = req_str(&req.inputs, "name")?.to_string();
        let Some(g) = describe(aws, &[name]).await?.into_iter().next() else { return Ok(None) };
        Ok(tags::owned_by(&pairs(&g), &req.ownership).then(|| observed(&g, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let i = &req.inputs;
        let name = req_str(i, "name")?;
        let groups = str_list(i, "target_group_arns");
        {
            // No client token: a second create of the same name fails (AlreadyExists) rather
            // than duplicating, and an interrupted create is adopted by name and tags.
            aws.autoscaling
                .create_auto_scaling_group()
                .auto_scaling_group_name(name)
                .launch_template(template(i)?)
                .min_size(int(i, "min_size").unwrap_or(0))
                .max_size(int(i, "max_size").unwrap_or(0))
                .set_desired_capacity(int(i, "desired_capacity"))
                .vpc_zone_identifier(str_list(i, "subnet_ids").join(","))
                .set_target_group_arns((!groups.is_empty()).then_some(groups))
                .health_check_type(opt_str(i, "health_check_type").unwrap_or("EC2"))
                .set_health_check_grace_period(int(i, "health_check_grace_period"))
                .set_tags(Some(asg_tags(&req.ownership, i.get("tags"), name)))
                .send()
                .await
                .map_err(|e| sdk("CreateAutoScalingGroup", e))?;
        }
        let made: Attrs = [("id".to_string(), json!(name))].into_iter().collect();
        let g = if i.get("wait_for_capacity").and_then(Value::as_bool).unwrap_or(true) {
            wait_capacity(aws, name, int(i, "desired_capacity")).await
        } else {
            describe(aws, &[name.to_string()])
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| ProviderError::transient(format!("auto scaling group {name} is not listed yet")))
        }
        .map_err(|e| e.with_created(made))?;
        Ok(outputs(&g))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let name = id_of(&req.prior_outputs)?;
        let i = &req.inputs;
        let changed = |n: &str| req.changed.iter().any(|c| c == n);
        let template_changed = changed("launch_template_id") || changed("launch_template_version");
        {
            aws.autoscaling
                .update_auto_scaling_group()
                .auto_scaling_group_name(name)
                .launch_template(template(i)?)
                .min_size(int(i, "min_size").unwrap_or(0))
                .max_size(int(i, "max_size").unwrap_or(0))
                .set_desired_capacity(int(i, "desired_capacity"))
                .vpc_zone_identifier(str_list(i, "subnet_ids").join(","))
                .health_check_type(opt_str(i, "health_check_type").unwrap_or("EC2"))
                .set_health_check_grace_period(int(i, "health_check_grace_period"))
                .send()
                .await
                .map_err(|e| sdk("UpdateAutoScalingGroup", e))?;
        }
        if changed("target_group_arns") {
            let before = str_list(&req.prior_inputs, "target_group_arns");
            let after = str_list(i, "target_group_arns");
            let add: Vec<String> = after.iter().filter(|a| !before.contains(a)).cloned().collect();
            let remove: Vec<String> = before.iter().filter(|b| !after.contains(b)).cloned().collect();
            if !add.is_empty() {
                aws.autoscaling
                    .attach_load_balancer_target_groups()
                    .auto_scaling_group_name(name)
                    .set_target_group_arns(Some(add))
                    .send()
                    .await
                    .map_err(|e| sdk("AttachLoadBalancerTargetGroups", e))?;
            }
            if !remove.is_empty() {
                aws.autoscaling
                    .detach_load_balancer_target_groups()
                    .auto_scaling_group_name(name)
                    .set_target_group_arns(Some(remove))
                    .send()
                    .await
                    .map_err(|e| sdk("DetachLoadBalancerTargetGroups", e))?;
            }
        }
        // Tags are rewritten on every update: that also restores ownership tags removed out of band.
        let removed = tags::removed_keys(&req.prior_inputs, i);
        if !removed.is_empty() {
            let gone: Vec<Tag> =
                removed.iter().map(|k| Tag::builder().key(k).resource_id(name).resource_type("auto-scaling-group").build()).collect();
            aws.autoscaling.delete_tags().set_tags(Some(gone)).send().await.map_err(|e| sdk("DeleteTags", e))?;
        }
        {
            aws.autoscaling
                .create_or_update_tags()
                .set_tags(Some(asg_tags(&req.ownership, i.get("tags"), name)))
                .send()
                .await
                .map_err(|e| sdk("CreateOrUpdateTags", e))?;
        }
        if template_changed {
            // Running instances keep the template they were launched from: roll them.
            (req.log)(&req.addr, &format!("starting an instance refresh of {name} onto the new launch template"));
            let prefs = RefreshPreferences::builder().set_min_healthy_percentage(int(i, "min_healthy_percentage")).build();
            aws.autoscaling
                .start_instance_refresh()
                .auto_scaling_group_name(name)
                .preferences(prefs)
                .send()
                .await
                .map_err(|e| sdk("StartInstanceRefresh", e))?;
        }
        let g = if i.get("wait_for_capacity").and_then(Value::as_bool).unwrap_or(true) {
            wait_capacity(aws, name, int(i, "desired_capacity")).await?
        } else {
            describe(aws, &[name.to_string()])
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| ProviderError::permanent(format!("auto scaling group {name} no longer exists")))?
        };
        Ok(outputs(&g))
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let name = id_of(&req.outputs)?;
        {
            // ForceDelete terminates the instances with the group.
            match aws.autoscaling.delete_auto_scaling_group().auto_scaling_group_name(name).force_delete(true).send().await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => return Err(sdk("DeleteAutoScalingGroup", e)),
            }
        }
        // The group lists until its instances are terminated; its subnets and
        // security groups cannot go before that.
        crate::wait::until(&format!("auto scaling group {name} to be deleted"), aws.wait_timeout, || async move {
            let out = aws
                .autoscaling
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(name)
                .send()
                .await
                .map_err(|e| sdk("DescribeAutoScalingGroups", e))?;
            Ok(out.auto_scaling_groups().is_empty().then_some(()))
        })
        .await
    }
}
