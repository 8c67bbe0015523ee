//! `aws.autoscaling_group`: instances from a launch template, kept at the
//! desired count over subnets in several zones, registered in target groups,
//! and replaced when they fail the load balancer's health check (`ELB`).
//!
//! Sizes, subnets, target groups and health checks change in place
//! (UpdateAutoScalingGroup, Attach/DetachTrafficSources). A new launch template
//! or version starts an instance refresh, so running instances are rolled onto
//! it. Create and updates wait until the group has its desired capacity in service.

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{AutoScalingGroup, LaunchTemplateSpecification, LifecycleState, RefreshPreferences, Tag};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use phoenix_core::state::Ownership;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::Aws;
use crate::ec2::{self, UserTags};
use crate::error::{is_not_found, sdk};
use crate::tags;

pub struct AutoscalingGroup;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoscalingGroupSpec {
    /// unique in the region
    #[schemars(extend("force_new" = true))]
    pub name: String,
    /// the launch template (${lt.id})
    pub launch_template_id: String,
    /// its version (${lt.latest_version}, so a template change rolls the instances); default: the template's default
    pub launch_template_version: Option<i64>,
    /// fewest instances
    #[schemars(extend("format" = "non-negative"))]
    pub min_size: i64,
    /// most instances
    #[schemars(extend("format" = "non-negative"))]
    pub max_size: i64,
    /// instances wanted now (in place); unset: scaling policies decide
    #[schemars(extend("format" = "non-negative"))]
    pub desired_capacity: Option<i64>,
    /// subnets, one per availability zone (in place)
    pub subnet_ids: Vec<String>,
    /// target groups the instances are registered in (in place)
    pub target_group_arns: Option<Vec<String>>,
    /// EC2, or ELB to replace instances the load balancer finds unhealthy
    #[serde(default = "ec2_checks")]
    #[schemars(extend("format" = "aws-health-check-type"))]
    pub health_check_type: String,
    /// seconds before a new instance is health-checked
    #[serde(default = "three_hundred")]
    #[schemars(extend("format" = "non-negative"))]
    pub health_check_grace_period: i64,
    /// kept in service during an instance refresh
    #[serde(default = "ninety")]
    #[schemars(extend("format" = "non-negative"))]
    pub min_healthy_percentage: i64,
    /// wait until the desired capacity is in service
    #[serde(default = "yes")]
    pub wait_for_capacity: bool,
    /// extra tags (Phoenix adds its ownership tags and Name)
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct AutoscalingGroupOutputs {
    /// the group's name
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the group's ARN
    #[schemars(extend("stable" = true))]
    pub arn: String,
    /// instances in the group (read on refresh)
    #[schemars(extend("highlight" = true))]
    pub instance_count: i64,
    /// instances in service (read on refresh)
    #[schemars(extend("highlight" = true))]
    pub in_service: i64,
}

fn ec2_checks() -> String {
    "EC2".into()
}
fn three_hundred() -> i64 {
    300
}
fn ninety() -> i64 {
    90
}
fn yes() -> bool {
    true
}

fn health_check_type(v: &serde_json::Value) -> Result<(), phoenix_core::schema::Invalid> {
    match v.as_str() {
        Some("EC2" | "ELB") | None => Ok(()),
        Some(o) => Err(format!("`{o}` is not a health check type: EC2 or ELB").into()),
    }
}

fn int(v: i64) -> Option<i32> {
    i32::try_from(v).ok()
}

/// Ownership tags propagate to the instances the group launches, so they too
/// are known to be Phoenix's (and are swept with the group).
fn asg_tags(o: &Ownership, user: Option<&UserTags>, name: &str) -> Vec<Tag> {
    let user = serde_json::to_value(user).ok();
    tags::pairs(o, user.as_ref())
        .into_iter()
        .map(|(k, v)| {
            Tag::builder().key(k).value(v).propagate_at_launch(true).resource_id(name).resource_type("auto-scaling-group").build()
        })
        .collect()
}

fn template(spec: &AutoscalingGroupSpec) -> LaunchTemplateSpecification {
    let version = spec.launch_template_version.map_or_else(|| "$Default".to_string(), |v| v.to_string());
    LaunchTemplateSpecification::builder().launch_template_id(&spec.launch_template_id).version(version).build()
}

fn in_service(g: &AutoScalingGroup) -> usize {
    g.instances().iter().filter(|i| i.lifecycle_state() == Some(&LifecycleState::InService)).count()
}

fn outputs(g: &AutoScalingGroup) -> AutoscalingGroupOutputs {
    AutoscalingGroupOutputs {
        id: g.auto_scaling_group_name().unwrap_or_default().to_string(),
        arn: g.auto_scaling_group_arn().unwrap_or_default().to_string(),
        instance_count: g.instances().len() as i64,
        in_service: in_service(g) as i64,
    }
}

fn pairs(g: &AutoScalingGroup) -> Vec<(String, String)> {
    g.tags().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect()
}

/// What a read sees; what the API does not report (refresh preferences,
/// waiting) is kept as applied.
fn observe(g: &AutoScalingGroup, prior: Option<&AutoscalingGroupSpec>) -> Observed<AutoscalingGroup> {
    let subnets = g.vpc_zone_identifier().unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let lt = g.launch_template();
    let group_tags: Vec<aws_sdk_ec2::types::Tag> =
        pairs(g).into_iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()).collect();
    let spec = AutoscalingGroupSpec {
        name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
        launch_template_id: lt
            .and_then(|t| t.launch_template_id())
            .map(str::to_string)
            .or_else(|| prior.map(|p| p.launch_template_id.clone()))
            .unwrap_or_default(),
        launch_template_version: match lt {
            Some(t) => t.version().and_then(|v| v.parse::<i64>().ok()),
            None => prior.and_then(|p| p.launch_template_version),
        },
        min_size: i64::from(g.min_size().unwrap_or_default()),
        max_size: i64::from(g.max_size().unwrap_or_default()),
        // Scaling policies move the desired capacity: compared only when the definition pins it.
        desired_capacity: Some(i64::from(g.desired_capacity().unwrap_or_default())),
        subnet_ids: ec2::as_set(prior.map(|p| p.subnet_ids.as_slice()), subnets),
        target_group_arns: Some(ec2::as_set(prior.and_then(|p| p.target_group_arns.as_deref()), g.target_group_arns().to_vec())),
        health_check_type: g.health_check_type().unwrap_or("EC2").to_string(),
        health_check_grace_period: g
            .health_check_grace_period()
            .map(i64::from)
            .or_else(|| prior.map(|p| p.health_check_grace_period))
            .unwrap_or_else(three_hundred),
        min_healthy_percentage: prior.map_or_else(ninety, |p| p.min_healthy_percentage),
        wait_for_capacity: prior.is_none_or(|p| p.wait_for_capacity),
        tags: ec2::user_tags(&group_tags),
    };
    Observed { spec, outputs: outputs(g) }
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
    const TYPE: &'static str = "aws.autoscaling_group";
    const DESCRIPTION: &'static str = "An EC2 auto scaling group launching from a launch template";
    type Client = Aws;
    type Spec = AutoscalingGroupSpec;
    type Outputs = AutoscalingGroupOutputs;
    const FORMATS: &'static [(&'static str, Validator)] = &[("aws-health-check-type", health_check_type)];

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        let mut names: Vec<String> = items.iter().map(|i| i.outputs.id.clone()).filter(|n| !n.is_empty()).collect();
        names.sort();
        names.dedup();
        let found = describe(aws, &names).await?;
        Ok(items
            .iter()
            .map(|i| found.iter().find(|g| g.auto_scaling_group_name() == Some(i.outputs.id.as_str())).map(|g| observe(g, Some(&i.spec))))
            .collect())
    }

    /// By the group's name (its id).
    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        Ok(describe(aws, &[id.to_string()]).await?.iter().find(|g| g.auto_scaling_group_name() == Some(id)).map(|g| observe(g, None)))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        let owned = aws_sdk_autoscaling::types::Filter::builder().name("tag-key").values("phoenix:environment").build();
        let pages = aws.autoscaling.describe_auto_scaling_groups().filters(owned).max_records(100).into_paginator().send();
        let mut found = Vec::new();
        for page in super::all_pages("DescribeAutoScalingGroups", pages).await? {
            for g in page.auto_scaling_groups().iter().filter(|g| g.status().is_none()) {
                let pairs = pairs(g);
                let Some(ownership) = Ownership::from_tags(|k| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())) else {
                    continue;
                };
                found.push(Owned { ownership, observed: observe(g, None), container: None });
            }
        }
        Ok(Some(found))
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        let Some(g) = describe(aws, std::slice::from_ref(&req.spec.name)).await?.into_iter().next() else { return Ok(None) };
        Ok(tags::owned_by(&pairs(&g), req.ownership).then(|| observe(&g, Some(req.spec))))
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<AutoscalingGroupOutputs, ProviderError> {
        let s = req.spec;
        let name = s.name.as_str();
        let groups = s.target_group_arns.clone().unwrap_or_default();
        {
            // No client token: a second create of the same name fails (AlreadyExists) rather
            // than duplicating, and an interrupted create is adopted by name and tags.
            aws.autoscaling
                .create_auto_scaling_group()
                .auto_scaling_group_name(name)
                .launch_template(template(s))
                .min_size(int(s.min_size).unwrap_or(0))
                .max_size(int(s.max_size).unwrap_or(0))
                .set_desired_capacity(s.desired_capacity.and_then(int))
                .vpc_zone_identifier(s.subnet_ids.join(","))
                .set_target_group_arns((!groups.is_empty()).then_some(groups))
                .health_check_type(&s.health_check_type)
                .set_health_check_grace_period(int(s.health_check_grace_period))
                .set_tags(Some(asg_tags(req.ownership, s.tags.as_ref(), name)))
                .send()
                .await
                .map_err(|e| sdk("CreateAutoScalingGroup", e))?;
        }
        // The group exists from here on: a failure must hand it to the engine, never leak it.
        let made: phoenix_core::value::Attrs = [("id".to_string(), serde_json::json!(name))].into_iter().collect();
        let g = if s.wait_for_capacity {
            wait_capacity(aws, name, s.desired_capacity.and_then(int)).await
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

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<AutoscalingGroupOutputs, ProviderError> {
        let name = req.outputs.id.as_str();
        let s = req.spec;
        let template_changed = req.changed("launch_template_id") || req.changed("launch_template_version");
        {
            aws.autoscaling
                .update_auto_scaling_group()
                .auto_scaling_group_name(name)
                .launch_template(template(s))
                .min_size(int(s.min_size).unwrap_or(0))
                .max_size(int(s.max_size).unwrap_or(0))
                .set_desired_capacity(s.desired_capacity.and_then(int))
                .vpc_zone_identifier(s.subnet_ids.join(","))
                .health_check_type(&s.health_check_type)
                .set_health_check_grace_period(int(s.health_check_grace_period))
                .send()
                .await
                .map_err(|e| sdk("UpdateAutoScalingGroup", e))?;
        }
        if req.changed("target_group_arns") {
            let before = req.prior.target_group_arns.clone().unwrap_or_default();
            let after = s.target_group_arns.clone().unwrap_or_default();
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
        let kept = |k: &String| s.tags.as_ref().is_some_and(|t| t.contains_key(k));
        let removed: Vec<&String> =
            req.prior.tags.iter().flat_map(|t| t.keys()).filter(|k| !kept(k) && !k.starts_with("phoenix:")).collect();
        if !removed.is_empty() {
            let gone: Vec<Tag> =
                removed.iter().map(|k| Tag::builder().key(*k).resource_id(name).resource_type("auto-scaling-group").build()).collect();
            aws.autoscaling.delete_tags().set_tags(Some(gone)).send().await.map_err(|e| sdk("DeleteTags", e))?;
        }
        {
            aws.autoscaling
                .create_or_update_tags()
                .set_tags(Some(asg_tags(req.ownership, s.tags.as_ref(), name)))
                .send()
                .await
                .map_err(|e| sdk("CreateOrUpdateTags", e))?;
        }
        if template_changed {
            // Running instances keep the template they were launched from: roll them.
            (req.log)(req.addr, &format!("starting an instance refresh of {name} onto the new launch template"));
            let prefs = RefreshPreferences::builder().set_min_healthy_percentage(int(s.min_healthy_percentage)).build();
            aws.autoscaling
                .start_instance_refresh()
                .auto_scaling_group_name(name)
                .preferences(prefs)
                .send()
                .await
                .map_err(|e| sdk("StartInstanceRefresh", e))?;
        }
        let g = if s.wait_for_capacity {
            wait_capacity(aws, name, s.desired_capacity.and_then(int)).await?
        } else {
            describe(aws, &[name.to_string()])
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| ProviderError::permanent(format!("auto scaling group {name} no longer exists")))?
        };
        Ok(outputs(&g))
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let name = req.outputs.id.as_str();
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
