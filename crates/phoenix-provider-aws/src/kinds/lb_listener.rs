//! `aws.lb_listener`: a port on a load balancer forwarding to a target group.
//!
//! Port, protocol and target group change in place (ModifyListener); the load
//! balancer it belongs to replaces it. Reads come from the ELBv2 sub-template
//! (`crate::elbv2`).

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, Listener, ProtocolEnum};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::lb::Lb;
use crate::client::Aws;
use crate::ec2::UserTags;
use crate::elbv2::{self, ElbKind};
use crate::error::{is_not_found, sdk};

pub struct LbListener;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LbListenerSpec {
    /// the load balancer (${lb.arn})
    #[schemars(extend("force_new" = true))]
    pub load_balancer_arn: String,
    /// the port it listens on (in place)
    #[schemars(extend("format" = "port"))]
    pub port: i64,
    /// HTTP (HTTPS needs certificates, not modelled yet)
    #[serde(default = "http")]
    pub protocol: String,
    /// where it forwards (${tg.arn}; in place)
    pub target_group_arn: String,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct LbListenerOutputs {
    /// the listener's ARN
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the listener's ARN
    #[schemars(extend("stable" = true))]
    pub arn: String,
}

fn http() -> String {
    "HTTP".into()
}

fn forward(spec: &LbListenerSpec) -> Action {
    Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&spec.target_group_arn).build()
}

fn port(spec: &LbListenerSpec) -> Result<i32, ProviderError> {
    i32::try_from(spec.port).map_err(|_| ProviderError::permanent("attribute `port` is missing"))
}

fn outputs(l: &Listener) -> LbListenerOutputs {
    let arn = l.listener_arn().unwrap_or_default().to_string();
    LbListenerOutputs { id: arn.clone(), arn }
}

/// The listeners of one load balancer, all pages; none when it is gone.
async fn listeners_of(aws: &Aws, lb_arn: &str) -> Result<Vec<Listener>, ProviderError> {
    let mut listeners = Vec::new();
    let mut marker = None;
    loop {
        let out = match aws.elb.describe_listeners().load_balancer_arn(lb_arn).set_marker(marker).send().await {
            Ok(out) => out,
            // Deleted since it was listed: so are its listeners.
            Err(e) if is_not_found(&e) => return Ok(listeners),
            Err(e) => return Err(sdk("DescribeListeners", e)),
        };
        listeners.extend(out.listeners().iter().cloned());
        marker = out.next_marker().map(str::to_string);
        if marker.is_none() {
            return Ok(listeners);
        }
    }
}

#[async_trait]
impl ElbKind for LbListener {
    type Object = Listener;

    async fn describe(aws: &Aws, arns: Vec<String>) -> Result<Vec<Listener>, ProviderError> {
        let out = aws.elb.describe_listeners().set_listener_arns(Some(arns)).send().await.map_err(|e| sdk("DescribeListeners", e))?;
        Ok(out.listeners().to_vec())
    }

    /// Listeners are listed per load balancer (DescribeListeners needs one).
    async fn describe_all(aws: &Aws) -> Result<Vec<Listener>, ProviderError> {
        let mut listeners = Vec::new();
        for lb in Lb::describe_all(aws).await? {
            listeners.extend(listeners_of(aws, Lb::arn(&lb)).await?);
        }
        Ok(listeners)
    }

    /// A port is unique on its load balancer.
    async fn lookup(aws: &Aws, spec: &LbListenerSpec) -> Result<Option<Listener>, ProviderError> {
        let listeners = match aws.elb.describe_listeners().load_balancer_arn(&spec.load_balancer_arn).send().await {
            Ok(out) => out.listeners().to_vec(),
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(sdk("DescribeListeners", e)),
        };
        let want = port(spec)?;
        Ok(listeners.into_iter().find(|l| l.port() == Some(want)))
    }

    fn arn(l: &Listener) -> &str {
        l.listener_arn().unwrap_or_default()
    }

    fn arn_of(outputs: &LbListenerOutputs) -> &str {
        &outputs.id
    }

    fn observe(l: &Listener, tags: &[(String, String)], _prior: Option<&LbListenerSpec>) -> Observed<Self> {
        let target = l.default_actions().iter().find(|a| a.r#type() == Some(&ActionTypeEnum::Forward)).and_then(Action::target_group_arn);
        let spec = LbListenerSpec {
            load_balancer_arn: l.load_balancer_arn().unwrap_or_default().to_string(),
            port: l.port().map_or(0, i64::from),
            protocol: l.protocol().map_or("", ProtocolEnum::as_str).to_string(),
            target_group_arn: target.unwrap_or_default().to_string(),
            tags: elbv2::user_tags(tags),
        };
        Observed { spec, outputs: outputs(l) }
    }
}

#[async_trait]
impl Kind for LbListener {
    const TYPE: &'static str = "aws.lb_listener";
    const DESCRIPTION: &'static str = "A listener of an application load balancer, forwarding to a target group";
    type Client = Aws;
    type Spec = LbListenerSpec;
    type Outputs = LbListenerOutputs;

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

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<LbListenerOutputs, ProviderError> {
        let s = req.spec;
        let out = aws
            .elb
            .create_listener()
            .load_balancer_arn(&s.load_balancer_arn)
            .port(port(s)?)
            .protocol(ProtocolEnum::from(s.protocol.as_str()))
            .default_actions(forward(s))
            .set_tags(Some(elbv2::create_tags(req.ownership, s.tags.as_ref())))
            .send()
            .await
            .map_err(|e| sdk("CreateListener", e))?;
        let l = out.listeners().first().ok_or_else(|| ProviderError::permanent("CreateListener returned no listener"))?;
        Ok(outputs(l))
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<LbListenerOutputs, ProviderError> {
        let arn = &req.outputs.id;
        let s = req.spec;
        if req.changed("port") || req.changed("protocol") || req.changed("target_group_arn") {
            aws.elb
                .modify_listener()
                .listener_arn(arn)
                .port(port(s)?)
                .protocol(ProtocolEnum::from(s.protocol.as_str()))
                .default_actions(forward(s))
                .send()
                .await
                .map_err(|e| sdk("ModifyListener", e))?;
        }
        elbv2::update_tags(aws, arn, req.prior.tags.as_ref(), s.tags.as_ref(), req.ownership).await?;
        Ok(req.outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        match aws.elb.delete_listener().listener_arn(&req.outputs.id).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(sdk("DeleteListener", e)),
        }
    }
}
