//! `aws.lb_listener`: a port on a load balancer forwarding to a target group.
//!
//! Port, protocol and target group change in place (ModifyListener); the load
//! balancer it belongs to replaces it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, Listener, ProtocolEnum};
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, OwnedObject, ProviderError, RefreshItem, UpdateRequest,
};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::Attrs;
use serde_json::json;

use super::lb::{elb_tags, retag, tags_of};
use super::{Kind, id_attr, id_of, in_item_order, opt_i64, opt_str, priors, req_str, tags_attr};
use crate::client::Aws;
use crate::error::{is_not_found, sdk};
use crate::tags;

pub struct LbListener;

fn forward(inputs: &Attrs) -> Result<Action, ProviderError> {
    Ok(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(req_str(inputs, "target_group_arn")?).build())
}

fn port(inputs: &Attrs) -> Result<i32, ProviderError> {
    opt_i64(inputs, "port").and_then(|p| i32::try_from(p).ok()).ok_or_else(|| ProviderError::permanent("attribute `port` is missing"))
}

fn outputs(l: &Listener) -> Attrs {
    let arn = l.listener_arn().unwrap_or_default();
    [("id".to_string(), json!(arn)), ("arn".to_string(), json!(arn))].into_iter().collect()
}

fn observed(l: &Listener, tag_pairs: &[(String, String)], prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    inputs.insert("load_balancer_arn".into(), json!(l.load_balancer_arn().unwrap_or_default()));
    inputs.insert("port".into(), json!(l.port().unwrap_or_default()));
    inputs.insert("protocol".into(), json!(l.protocol().map_or("", ProtocolEnum::as_str)));
    let target = l.default_actions().iter().find(|a| a.r#type() == Some(&ActionTypeEnum::Forward)).and_then(Action::target_group_arn);
    inputs.insert("target_group_arn".into(), json!(target.unwrap_or_default()));
    tags::observe_pairs(&mut inputs, prior, tag_pairs);
    Observed { inputs, outputs: outputs(l) }
}

/// Listeners by ARN (see `lb::by_arns`).
async fn describe(aws: &Aws, arns: &[String]) -> Result<Vec<Listener>, ProviderError> {
    super::lb::by_arns("DescribeListeners", arns, |chunk| async move {
        aws.elb.describe_listeners().set_listener_arns(Some(chunk)).send().await.map(|o| o.listeners().to_vec())
    })
    .await
}

#[async_trait]
impl Kind for LbListener {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.lb_listener",
            description: "A listener of an application load balancer, forwarding to a target group",
            attrs: vec![
                AttrSchema::required("load_balancer_arn", AttrType::String, "the load balancer (${lb.arn})").force_new(),
                AttrSchema::required("port", AttrType::Int, "the port it listens on (in place)").validate_with(validators::port),
                AttrSchema::optional("protocol", AttrType::String, "HTTP (HTTPS needs certificates, not modelled yet)")
                    .default(json!("HTTP")),
                AttrSchema::required("target_group_arn", AttrType::String, "where it forwards (${tg.arn}; in place)"),
                tags_attr(),
                id_attr("the listener's ARN"),
                AttrSchema::computed("arn", AttrType::String, "the listener's ARN").stable(),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let arns: Vec<String> = prior.keys().map(|s| s.to_string()).collect();
        let listeners = describe(aws, &arns).await?;
        let live: Vec<String> = listeners.iter().filter_map(|l| l.listener_arn().map(str::to_string)).collect();
        let tag_map = tags_of(aws, &live).await?;
        let mut found = HashMap::new();
        for l in &listeners {
            let arn = l.listener_arn().unwrap_or_default().to_string();
            let p = prior.get(arn.as_str()).copied().cloned().unwrap_or_default();
            found.insert(arn.clone(), observed(l, tag_map.get(&arn).map_or(&[][..], Vec::as_slice), &p));
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<OwnedObject>>, ProviderError> {
        // Listeners are listed per load balancer (DescribeListeners needs one).
        let (lbs, _) = super::lb::all_owned(aws).await?;
        let mut listeners = Vec::new();
        for arn in lbs.iter().filter_map(|l| l.load_balancer_arn()) {
            let mut marker = None;
            loop {
                let res = { aws.elb.describe_listeners().load_balancer_arn(arn).set_marker(marker).send().await };
                let out = match res {
                    Ok(out) => out,
                    // Deleted since it was listed: so are its listeners.
                    Err(e) if is_not_found(&e) => break,
                    Err(e) => return Err(sdk("DescribeListeners", e)),
                };
                listeners.extend(out.listeners().iter().cloned());
                marker = out.next_marker().map(str::to_string);
                if marker.is_none() {
                    break;
                }
            }
        }
        let arns: Vec<String> = listeners.iter().filter_map(|l| l.listener_arn().map(str::to_string)).collect();
        let tag_map = tags_of(aws, &arns).await?;
        Ok(Some(
            listeners
                .iter()
                .filter_map(|l| {
                    let pairs = tag_map.get(l.listener_arn()?)?;
                    super::owned_pairs(self, pairs, observed(l, pairs, &Attrs::new()))
                })
                .collect(),
        ))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        // A port is unique on its load balancer: the listener on ours, if it carries our tags.
        let res = { aws.elb.describe_listeners().load_balancer_arn(req_str(&req.inputs, "load_balancer_arn")?).send().await };
        let listeners = match res {
            Ok(out) => out.listeners().to_vec(),
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(sdk("DescribeListeners", e)),
        };
        let want = port(&req.inputs)?;
        let Some(l) = listeners.into_iter().find(|l| l.port() == Some(want)) else { return Ok(None) };
        let arn = l.listener_arn().unwrap_or_default().to_string();
        let tag_pairs = tags_of(aws, std::slice::from_ref(&arn)).await?.remove(&arn).unwrap_or_default();
        Ok(tags::owned_by(&tag_pairs, &req.ownership).then(|| observed(&l, &tag_pairs, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let out = {
            aws.elb
                .create_listener()
                .load_balancer_arn(req_str(&req.inputs, "load_balancer_arn")?)
                .port(port(&req.inputs)?)
                .protocol(ProtocolEnum::from(opt_str(&req.inputs, "protocol").unwrap_or("HTTP")))
                .default_actions(forward(&req.inputs)?)
                .set_tags(Some(elb_tags(&req.ownership, req.inputs.get("tags"))))
                .send()
                .await
                .map_err(|e| sdk("CreateListener", e))?
        };
        let l = out.listeners().first().ok_or_else(|| ProviderError::permanent("CreateListener returned no listener"))?;
        Ok(outputs(l))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let arn = id_of(&req.prior_outputs)?;
        if req.changed.iter().any(|c| matches!(c.as_str(), "port" | "protocol" | "target_group_arn")) {
            aws.elb
                .modify_listener()
                .listener_arn(arn)
                .port(port(&req.inputs)?)
                .protocol(ProtocolEnum::from(opt_str(&req.inputs, "protocol").unwrap_or("HTTP")))
                .default_actions(forward(&req.inputs)?)
                .send()
                .await
                .map_err(|e| sdk("ModifyListener", e))?;
        }
        retag(aws, arn, req).await?;
        Ok(req.prior_outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let arn = id_of(&req.outputs)?;
        match aws.elb.delete_listener().listener_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(sdk("DeleteListener", e)),
        }
    }
}
