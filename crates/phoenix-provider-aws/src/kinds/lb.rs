//! `aws.lb`: an application load balancer (ELBv2), internet-facing or internal.
//!
//! Its subnets and security groups change in place (SetSubnets,
//! SetSecurityGroups); name, scheme and type replace it. The ELBv2 tag helpers
//! shared by `aws.lb_target_group` and `aws.lb_listener` live here too.

use phoenix_core::schema::Invalid;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, LoadBalancerSchemeEnum, LoadBalancerStateEnum, LoadBalancerTypeEnum, Tag};
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, OwnedObject, ProviderError, RefreshItem, UpdateRequest,
};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::state::Ownership;
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::{Kind, id_attr, id_of, in_item_order, priors, req_str, str_list, tags_attr};
use crate::client::Aws;
use crate::error::{is_not_found, sdk};
use crate::tags;

pub struct Lb;

/// ELBv2 names: 1–32 letters, digits and hyphens, not starting or ending with a hyphen.
pub(crate) fn check_elb_name(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if s.contains("${") {
        return Ok(());
    }
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.starts_with("internal-");
    if ok { Ok(()) } else { Err(Invalid(format!("`{s}` is not a load balancer / target group name: 1-32 letters, digits and hyphens"))) }
}

pub(crate) fn elb_tags(o: &Ownership, user: Option<&Value>) -> Vec<Tag> {
    tags::pairs(o, user).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// ELBv2 calls taking ARNs (20 at most) fail as a whole when one ARN is
/// unknown (deleted since it was listed): `arns` are read 20 at a time, and a
/// batch that fails so is read again one ARN at a time, gone ones skipped.
pub(crate) async fn by_arns<T, F, Fut, E, R>(what: &str, arns: &[String], call: F) -> Result<Vec<T>, ProviderError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, aws_sdk_ec2::error::SdkError<E, R>>>,
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let mut found = Vec::new();
    for chunk in arns.chunks(20) {
        let res = { call(chunk.to_vec()).await };
        match res {
            Ok(items) => found.extend(items),
            Err(e) if is_not_found(&e) && chunk.len() > 1 => {
                for arn in chunk {
                    let one = { call(vec![arn.clone()]).await };
                    match one {
                        Ok(items) => found.extend(items),
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(sdk(what, e)),
                    }
                }
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(sdk(what, e)),
        }
    }
    Ok(found)
}

/// Tags of many ELBv2 resources by ARN.
pub(crate) async fn tags_of(aws: &Aws, arns: &[String]) -> Result<HashMap<String, Vec<(String, String)>>, ProviderError> {
    let descriptions = by_arns("DescribeTags", arns, |chunk| async move {
        aws.elb.describe_tags().set_resource_arns(Some(chunk)).send().await.map(|o| o.tag_descriptions().to_vec())
    })
    .await?;
    Ok(descriptions
        .iter()
        .map(|d| {
            let pairs = d.tags().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()));
            (d.resource_arn().unwrap_or_default().to_string(), pairs.collect())
        })
        .collect())
}

/// Rewrites an ELBv2 resource's tags after a change of `tags` (and restores the ownership tags).
pub(crate) async fn retag(aws: &Aws, arn: &str, req: &UpdateRequest) -> Result<(), ProviderError> {
    let removed = tags::removed_keys(&req.prior_inputs, &req.inputs);
    if !removed.is_empty() {
        aws.elb.remove_tags().resource_arns(arn).set_tag_keys(Some(removed)).send().await.map_err(|e| sdk("RemoveTags", e))?;
    }
    aws.elb
        .add_tags()
        .resource_arns(arn)
        .set_tags(Some(elb_tags(&req.ownership, req.inputs.get("tags"))))
        .send()
        .await
        .map_err(|e| sdk("AddTags", e))?;
    Ok(())
}

/// A list attribute read back as a set: the definition's order when the members are the same.
pub(crate) fn same_set(prior: &Attrs, name: &str, mut seen: Vec<String>) -> Value {
    let mut want = str_list(prior, name);
    seen.sort();
    want.sort();
    if seen == want { prior[name].clone() } else { json!(seen) }
}

fn state_of(lb: &LoadBalancer) -> &str {
    lb.state().and_then(|s| s.code()).map_or("unknown", LoadBalancerStateEnum::as_str)
}

fn outputs(lb: &LoadBalancer) -> Attrs {
    let arn = lb.load_balancer_arn().unwrap_or_default();
    let mut o = Attrs::new();
    o.insert("id".into(), json!(arn));
    o.insert("arn".into(), json!(arn));
    o.insert("dns_name".into(), json!(lb.dns_name().unwrap_or_default()));
    o.insert("zone_id".into(), json!(lb.canonical_hosted_zone_id().unwrap_or_default()));
    o.insert("vpc_id".into(), json!(lb.vpc_id().unwrap_or_default()));
    o.insert("state".into(), json!(state_of(lb)));
    o
}

fn observed(lb: &LoadBalancer, tag_pairs: &[(String, String)], prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    inputs.insert("name".into(), json!(lb.load_balancer_name().unwrap_or_default()));
    inputs.insert("internal".into(), json!(lb.scheme() == Some(&LoadBalancerSchemeEnum::Internal)));
    let subnets = lb.availability_zones().iter().filter_map(|z| z.subnet_id().map(str::to_string)).collect();
    inputs.insert("subnet_ids".into(), same_set(prior, "subnet_ids", subnets));
    if prior.contains_key("security_group_ids") {
        inputs.insert("security_group_ids".into(), same_set(prior, "security_group_ids", lb.security_groups().to_vec()));
    }
    tags::observe_pairs(&mut inputs, prior, tag_pairs);
    Observed { inputs, outputs: outputs(lb) }
}

/// Load balancers by ARN.
async fn describe(aws: &Aws, arns: &[String]) -> Result<Vec<LoadBalancer>, ProviderError> {
    by_arns("DescribeLoadBalancers", arns, |chunk| async move {
        aws.elb.describe_load_balancers().set_load_balancer_arns(Some(chunk)).send().await.map(|o| o.load_balancers().to_vec())
    })
    .await
}

/// Every load balancer of the region (all pages) with the tags of those that
/// carry any (ELBv2 lists no tags and filters on none: DescribeTags by ARN).
pub(crate) async fn all_owned(aws: &Aws) -> Result<(Vec<LoadBalancer>, HashMap<String, Vec<(String, String)>>), ProviderError> {
    let pages = aws.elb.describe_load_balancers().into_paginator().send();
    let lbs: Vec<LoadBalancer> =
        super::all_pages("DescribeLoadBalancers", pages).await?.iter().flat_map(|p| p.load_balancers().to_vec()).collect();
    let arns: Vec<String> = lbs.iter().filter_map(|l| l.load_balancer_arn().map(str::to_string)).collect();
    let tag_map = tags_of(aws, &arns).await?;
    Ok((lbs, tag_map))
}

async fn by_name(aws: &Aws, name: &str) -> Result<Option<LoadBalancer>, ProviderError> {
    match aws.elb.describe_load_balancers().names(name).send().await {
        Ok(out) => Ok(out.load_balancers().first().cloned()),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(sdk("DescribeLoadBalancers", e)),
    }
}

/// Waits until the load balancer is `active`; `failed` will not recover.
async fn wait_active(aws: &Aws, arn: &str) -> Result<LoadBalancer, ProviderError> {
    crate::wait::until(&format!("load balancer {arn} to be active"), aws.wait_timeout, || async move {
        let Some(lb) = describe(aws, &[arn.to_string()]).await?.into_iter().next() else { return Ok(None) };
        match state_of(&lb) {
            "active" => Ok(Some(lb)),
            "failed" => Err(ProviderError::permanent(format!("load balancer {arn} failed to provision"))),
            _ => Ok(None),
        }
    })
    .await
}

#[async_trait]
impl Kind for Lb {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.lb",
            description: "An application load balancer (ELBv2)",
            attrs: vec![
                AttrSchema::required("name", AttrType::String, "unique in the region and account, 1-32 characters")
                    .force_new()
                    .validate_with(check_elb_name),
                AttrSchema::optional("internal", AttrType::Bool, "internal (private addresses only) rather than internet-facing")
                    .default(json!(false))
                    .force_new(),
                AttrSchema::required("subnet_ids", AttrType::List(Box::new(AttrType::String)), "subnets in at least two zones (in place)"),
                AttrSchema::optional("security_group_ids", AttrType::List(Box::new(AttrType::String)), "security groups (in place)"),
                tags_attr(),
                id_attr("the load balancer's ARN"),
                AttrSchema::computed("arn", AttrType::String, "the load balancer's ARN").stable(),
                AttrSchema::computed("dns_name", AttrType::String, "its DNS name, the stable endpoint").stable().highlight(),
                AttrSchema::computed("zone_id", AttrType::String, "its canonical hosted zone, for Route 53 aliases").stable(),
                AttrSchema::computed("vpc_id", AttrType::String, "the VPC of its subnets").stable(),
                AttrSchema::computed("state", AttrType::String, "provisioning, active, failed"),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let arns: Vec<String> = prior.keys().map(|s| s.to_string()).collect();
        let lbs = describe(aws, &arns).await?;
        let live: Vec<String> = lbs.iter().filter_map(|l| l.load_balancer_arn().map(str::to_string)).collect();
        let tag_map = tags_of(aws, &live).await?;
        let mut found = HashMap::new();
        for lb in &lbs {
            let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
            let p = prior.get(arn.as_str()).copied().cloned().unwrap_or_default();
            found.insert(arn.clone(), observed(lb, tag_map.get(&arn).map_or(&[][..], Vec::as_slice), &p));
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<OwnedObject>>, ProviderError> {
        let (lbs, tag_map) = all_owned(aws).await?;
        Ok(Some(
            lbs.iter()
                .filter_map(|lb| {
                    let pairs = tag_map.get(lb.load_balancer_arn()?)?;
                    super::owned_pairs(self, pairs, observed(lb, pairs, &Attrs::new()))
                })
                .collect(),
        ))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        // Names are unique: look the name up, and adopt only what carries our ownership tags.
        let Some(lb) = by_name(aws, req_str(&req.inputs, "name")?).await? else { return Ok(None) };
        let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
        let tag_pairs = tags_of(aws, std::slice::from_ref(&arn)).await?.remove(&arn).unwrap_or_default();
        if !tags::owned_by(&tag_pairs, &req.ownership) {
            return Ok(None);
        }
        let lb = wait_active(aws, &arn).await?;
        Ok(Some(observed(&lb, &tag_pairs, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let scheme = if req.inputs.get("internal").and_then(Value::as_bool).unwrap_or(false) {
            LoadBalancerSchemeEnum::Internal
        } else {
            LoadBalancerSchemeEnum::InternetFacing
        };
        let groups = str_list(&req.inputs, "security_group_ids");
        // CreateLoadBalancer is idempotent by name on AWS (same settings: the same ARN back),
        // so an SDK retry after a lost response does not make a second one.
        let out = {
            aws.elb
                .create_load_balancer()
                .name(req_str(&req.inputs, "name")?)
                .r#type(LoadBalancerTypeEnum::Application)
                .scheme(scheme)
                .set_subnets(Some(str_list(&req.inputs, "subnet_ids")))
                .set_security_groups((!groups.is_empty()).then_some(groups))
                .set_tags(Some(elb_tags(&req.ownership, req.inputs.get("tags"))))
                .send()
                .await
                .map_err(|e| sdk("CreateLoadBalancer", e))?
        };
        let arn = out
            .load_balancers()
            .first()
            .and_then(|l| l.load_balancer_arn())
            .ok_or_else(|| ProviderError::permanent("CreateLoadBalancer returned no load balancer"))?
            .to_string();
        let made: Attrs = [("id".to_string(), json!(arn))].into_iter().collect();
        let lb = wait_active(aws, &arn).await.map_err(|e| e.with_created(made))?;
        Ok(outputs(&lb))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let arn = id_of(&req.prior_outputs)?;
        if req.changed.iter().any(|c| c == "subnet_ids") {
            aws.elb
                .set_subnets()
                .load_balancer_arn(arn)
                .set_subnets(Some(str_list(&req.inputs, "subnet_ids")))
                .send()
                .await
                .map_err(|e| sdk("SetSubnets", e))?;
        }
        if req.changed.iter().any(|c| c == "security_group_ids") {
            aws.elb
                .set_security_groups()
                .load_balancer_arn(arn)
                .set_security_groups(Some(str_list(&req.inputs, "security_group_ids")))
                .send()
                .await
                .map_err(|e| sdk("SetSecurityGroups", e))?;
        }
        retag(aws, arn, req).await?;
        Ok(outputs(&wait_active(aws, arn).await?))
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let arn = id_of(&req.outputs)?;
        {
            match aws.elb.delete_load_balancer().load_balancer_arn(arn).send().await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => return Err(sdk("DeleteLoadBalancer", e)),
            }
        }
        // Its network interfaces hold the subnets and security groups until it is gone.
        crate::wait::until(&format!("load balancer {arn} to be deleted"), aws.wait_timeout, || async move {
            Ok(describe(aws, &[arn.to_string()]).await?.is_empty().then_some(()))
        })
        .await
    }
}
