//! `aws.lb`: an application load balancer (ELBv2), internet-facing or internal.
//!
//! Its subnets and security groups change in place (SetSubnets,
//! SetSecurityGroups); name, scheme and type replace it. Reads come from the
//! ELBv2 sub-template (`crate::elbv2`).

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, LoadBalancerSchemeEnum, LoadBalancerStateEnum, LoadBalancerTypeEnum};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::Validator;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::Aws;
use crate::ec2::{UserTags, as_set};
use crate::elbv2::{self, ElbKind};
use crate::error::{is_not_found, sdk};

pub struct Lb;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LbSpec {
    /// unique in the region and account, 1-32 characters
    #[schemars(extend("force_new" = true, "format" = "aws-elb-name"))]
    pub name: String,
    /// internal (private addresses only) rather than internet-facing
    #[serde(default = "no")]
    #[schemars(extend("force_new" = true))]
    pub internal: bool,
    /// subnets in at least two zones (in place)
    #[schemars(extend("spread_over_zones" = 2))]
    pub subnet_ids: Vec<String>,
    /// security groups (in place)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_ids: Option<Vec<String>>,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LbOutputs {
    /// the load balancer's ARN
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the load balancer's ARN
    #[schemars(extend("stable" = true))]
    pub arn: String,
    /// its DNS name, the stable endpoint
    #[schemars(extend("stable" = true, "highlight" = true))]
    pub dns_name: String,
    /// its canonical hosted zone, for Route 53 aliases
    #[schemars(extend("stable" = true))]
    pub zone_id: String,
    /// the VPC of its subnets
    #[schemars(extend("stable" = true))]
    pub vpc_id: String,
    /// provisioning, active, failed
    pub state: String,
}

fn no() -> bool {
    false
}

fn state_of(lb: &LoadBalancer) -> &str {
    lb.state().and_then(|s| s.code()).map_or("unknown", LoadBalancerStateEnum::as_str)
}

fn outputs(lb: &LoadBalancer) -> LbOutputs {
    let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
    LbOutputs {
        id: arn.clone(),
        arn,
        dns_name: lb.dns_name().unwrap_or_default().to_string(),
        zone_id: lb.canonical_hosted_zone_id().unwrap_or_default().to_string(),
        vpc_id: lb.vpc_id().unwrap_or_default().to_string(),
        state: state_of(lb).to_string(),
    }
}

/// Waits until the load balancer is `active`; `failed` will not recover.
async fn wait_active(aws: &Aws, arn: &str) -> Result<LoadBalancer, ProviderError> {
    crate::wait::until(&format!("load balancer {arn} to be active"), aws.wait_timeout, || async move {
        let Some(lb) = elbv2::describe::<Lb>(aws, &[arn.to_string()]).await?.into_iter().next() else { return Ok(None) };
        match state_of(&lb) {
            "active" => Ok(Some(lb)),
            "failed" => Err(ProviderError::permanent(format!("load balancer {arn} failed to provision"))),
            _ => Ok(None),
        }
    })
    .await
}

#[async_trait]
impl ElbKind for Lb {
    type Object = LoadBalancer;

    async fn describe(aws: &Aws, arns: Vec<String>) -> Result<Vec<LoadBalancer>, ProviderError> {
        let out = aws
            .elb
            .describe_load_balancers()
            .set_load_balancer_arns(Some(arns))
            .send()
            .await
            .map_err(|e| sdk("DescribeLoadBalancers", e))?;
        Ok(out.load_balancers().to_vec())
    }

    async fn describe_all(aws: &Aws) -> Result<Vec<LoadBalancer>, ProviderError> {
        let pages = aws.elb.describe_load_balancers().into_paginator().send();
        Ok(super::all_pages("DescribeLoadBalancers", pages).await?.iter().flat_map(|p| p.load_balancers().to_vec()).collect())
    }

    /// Names are unique in a region.
    async fn lookup(aws: &Aws, spec: &LbSpec) -> Result<Option<LoadBalancer>, ProviderError> {
        match aws.elb.describe_load_balancers().names(&spec.name).send().await {
            Ok(out) => Ok(out.load_balancers().first().cloned()),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(sdk("DescribeLoadBalancers", e)),
        }
    }

    async fn usable(aws: &Aws, lb: LoadBalancer) -> Result<LoadBalancer, ProviderError> {
        wait_active(aws, lb.load_balancer_arn().unwrap_or_default()).await
    }

    fn arn(lb: &LoadBalancer) -> &str {
        lb.load_balancer_arn().unwrap_or_default()
    }

    fn arn_of(outputs: &LbOutputs) -> &str {
        &outputs.id
    }

    fn observe(lb: &LoadBalancer, tags: &[(String, String)], prior: Option<&LbSpec>) -> Observed<Self> {
        let subnets = lb.availability_zones().iter().filter_map(|z| z.subnet_id().map(str::to_string)).collect();
        let groups = lb.security_groups().to_vec();
        let prior_groups = prior.and_then(|p| p.security_group_ids.as_deref());
        let spec = LbSpec {
            name: lb.load_balancer_name().unwrap_or_default().to_string(),
            internal: lb.scheme() == Some(&LoadBalancerSchemeEnum::Internal),
            // With no prior (import, gc) in the order ELBv2 answers: that of its zones.
            subnet_ids: match prior {
                Some(p) => as_set(Some(&p.subnet_ids), subnets),
                None => subnets,
            },
            security_group_ids: (prior_groups.is_some() || !groups.is_empty()).then(|| as_set(prior_groups, groups)),
            tags: elbv2::user_tags(tags),
        };
        Observed { spec, outputs: outputs(lb) }
    }
}

#[async_trait]
impl Kind for Lb {
    const TYPE: &'static str = "aws.lb";
    const DESCRIPTION: &'static str = "An application load balancer (ELBv2)";
    const FORMATS: &'static [(&'static str, Validator)] = &[(elbv2::NAME_FORMAT, elbv2::check_name)];
    type Client = Aws;
    type Spec = LbSpec;
    type Outputs = LbOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        elbv2::read(aws, items).await
    }

    async fn import(&self, aws: &Aws, arn: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        elbv2::import(aws, arn).await
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        elbv2::find(aws, req.spec, req.ownership).await
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        elbv2::list_owned(aws).await
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<LbOutputs, ProviderError> {
        let spec = req.spec;
        let scheme = if spec.internal { LoadBalancerSchemeEnum::Internal } else { LoadBalancerSchemeEnum::InternetFacing };
        let groups = spec.security_group_ids.clone().unwrap_or_default();
        // CreateLoadBalancer is idempotent by name on AWS (same settings: the same ARN back),
        // so an SDK retry after a lost response does not make a second one.
        let out = aws
            .elb
            .create_load_balancer()
            .name(&spec.name)
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(scheme)
            .set_subnets(Some(spec.subnet_ids.clone()))
            .set_security_groups((!groups.is_empty()).then_some(groups))
            .set_tags(Some(elbv2::create_tags(req.ownership, spec.tags.as_ref())))
            .send()
            .await
            .map_err(|e| sdk("CreateLoadBalancer", e))?;
        let arn = out
            .load_balancers()
            .first()
            .and_then(|l| l.load_balancer_arn())
            .ok_or_else(|| ProviderError::permanent("CreateLoadBalancer returned no load balancer"))?
            .to_string();
        let made = LbOutputs { id: arn.clone(), arn: arn.clone(), ..LbOutputs::default() };
        let lb = wait_active(aws, &arn).await.map_err(|e| e.with_created(phoenix_core::kit::output_attrs(&made)))?;
        Ok(outputs(&lb))
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<LbOutputs, ProviderError> {
        let arn = &req.outputs.id;
        if req.changed("subnet_ids") {
            aws.elb
                .set_subnets()
                .load_balancer_arn(arn)
                .set_subnets(Some(req.spec.subnet_ids.clone()))
                .send()
                .await
                .map_err(|e| sdk("SetSubnets", e))?;
        }
        if req.changed("security_group_ids") {
            aws.elb
                .set_security_groups()
                .load_balancer_arn(arn)
                .set_security_groups(Some(req.spec.security_group_ids.clone().unwrap_or_default()))
                .send()
                .await
                .map_err(|e| sdk("SetSecurityGroups", e))?;
        }
        elbv2::update_tags(aws, arn, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        Ok(outputs(&wait_active(aws, arn).await?))
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let arn = req.outputs.id.as_str();
        match aws.elb.delete_load_balancer().load_balancer_arn(arn).send().await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(sdk("DeleteLoadBalancer", e)),
        }
        // Its network interfaces hold the subnets and security groups until it is gone.
        crate::wait::until(&format!("load balancer {arn} to be deleted"), aws.wait_timeout, || async move {
            Ok(elbv2::describe::<Lb>(aws, &[arn.to_string()]).await?.is_empty().then_some(()))
        })
        .await
    }
}
