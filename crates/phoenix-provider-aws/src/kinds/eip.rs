//! `aws.eip`: an elastic IP address, optionally associated with an instance.
//!
//! The association changes in place (AssociateAddress with reassociation,
//! or DisassociateAddress); the address itself, and so `public_ip`, stays.
//! Delete disassociates from whatever EC2 says it is associated with now,
//! then releases.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Address, DomainType, ResourceType};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::{Kind, delete_retrying, id_attr, id_chunks, id_of, in_item_order, opt_str, priors, tags_attr, update_tags};
use super::{Made, create_once};
use crate::client::{Aws, create_call_config};
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct Eip;

/// EC2 (and moto) report an unassociated address with empty strings.
fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

fn outputs(id: &str, public_ip: &str, association: Option<&str>) -> Attrs {
    [
        ("id".to_string(), json!(id)),
        ("public_ip".to_string(), json!(public_ip)),
        ("association_id".to_string(), json!(association.unwrap_or_default())),
    ]
    .into_iter()
    .collect()
}

fn observed(a: &Address, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    // Associated by hand shows as drift (and is undone); disassociated behind
    // Phoenix's back reads as `null`, so the plan re-associates it.
    match non_empty(a.instance_id()) {
        Some(i) => {
            inputs.insert("instance_id".into(), json!(i));
        }
        None if prior.contains_key("instance_id") => {
            inputs.insert("instance_id".into(), Value::Null);
        }
        None => {}
    }
    tags::observe_tags(&mut inputs, prior, a.tags());
    let outputs = outputs(a.allocation_id().unwrap_or_default(), a.public_ip().unwrap_or_default(), non_empty(a.association_id()));
    Observed { inputs, outputs }
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<Address>, ProviderError> {
    let out = aws
        .ec2
        .describe_addresses()
        .filters(tags::id_filter("allocation-id", &[id.to_string()]))
        .send()
        .await
        .map_err(|e| sdk("DescribeAddresses", e))?;
    Ok(out.addresses().first().cloned())
}

/// Associates the address with an instance (moving it if it is elsewhere).
/// An instance launched a moment ago may not be visible yet, or not yet running.
async fn associate(aws: &Aws, id: &str, instance: &str) -> Result<Option<String>, ProviderError> {
    crate::wait::consistent(|| async {
        match aws.ec2.associate_address().allocation_id(id).instance_id(instance).allow_reassociation(true).send().await {
            Ok(out) => Ok(out.association_id().map(str::to_string)),
            Err(e) => Err((is_not_found(&e) || code(&e) == Some("IncorrectInstanceState"), sdk("AssociateAddress", e))),
        }
    })
    .await
}

async fn disassociate(aws: &Aws, association: &str) -> Result<(), ProviderError> {
    match aws.ec2.disassociate_address().association_id(association).send().await {
        Err(e) if !is_not_found(&e) => Err(sdk("DisassociateAddress", e)),
        _ => Ok(()),
    }
}

#[async_trait]
impl Kind for Eip {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.eip",
            description: "An elastic IP address, optionally associated with an instance",
            attrs: vec![
                AttrSchema::optional("instance_id", AttrType::String, "the instance to associate with (i-…); changes in place"),
                tags_attr(),
                id_attr("the allocation id (eipalloc-…)"),
                AttrSchema::computed("public_ip", AttrType::String, "the public IPv4 address").stable(),
                // Not stable: a new association gets a new id.
                AttrSchema::computed("association_id", AttrType::String, "the current association (eipassoc-…), empty when unassociated"),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let mut found = HashMap::new();
        // DescribeAddresses is not paginated: one call per 200 ids.
        for ids in id_chunks(items) {
            let out = {
                aws.ec2
                    .describe_addresses()
                    .filters(tags::id_filter("allocation-id", &ids))
                    .send()
                    .await
                    .map_err(|e| sdk("DescribeAddresses", e))?
            };
            for a in out.addresses() {
                let id = a.allocation_id().unwrap_or_default().to_string();
                let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
                found.insert(id, observed(a, &p));
            }
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        let out = aws.ec2.describe_addresses().filters(super::owned_filter()).send().await.map_err(|e| sdk("DescribeAddresses", e))?;
        Ok(Some(out.addresses().iter().filter_map(|o| super::owned(self, o.tags(), observed(o, &Attrs::new()))).collect()))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let out = aws
            .ec2
            .describe_addresses()
            .set_filters(Some(tags::owner_filters(&req.ownership)))
            .send()
            .await
            .map_err(|e| sdk("DescribeAddresses", e))?;
        Ok(out.addresses().first().map(|a| observed(a, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let tags = tags::all_tags(&req.ownership, req.inputs.get("tags"));
        // AllocateAddress has no ClientToken; an interrupted allocation is adopted by its tags.
        let made = create_once(aws, self, req, "AllocateAddress", || {
            aws.ec2
                .allocate_address()
                .domain(DomainType::Vpc)
                .tag_specifications(tags::spec(ResourceType::ElasticIp, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        })
        .await?;
        let id = &made.id(|o| o.allocation_id(), "AllocateAddress")?;
        let ip = &match &made {
            Made::Answered(o) => o.public_ip().map(str::to_string),
            Made::Found(obs) => obs.outputs.get("public_ip").and_then(Value::as_str).map(str::to_string),
        }
        .unwrap_or_default();
        let Some(instance) = opt_str(&req.inputs, "instance_id") else { return Ok(outputs(id, ip, None)) };
        // The address exists now: a failed association must not leak it.
        let association = associate(aws, id, instance).await.map_err(|e| e.with_created(outputs(id, ip, None)))?;
        Ok(outputs(id, ip, association.as_deref()))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = id_of(&req.prior_outputs)?;
        let mut out = req.prior_outputs.clone();
        if req.changed.iter().any(|c| c == "instance_id") {
            let association = match opt_str(&req.inputs, "instance_id") {
                Some(instance) => associate(aws, id, instance).await?,
                None => {
                    // The association in state may be stale: ask EC2 which one to undo.
                    let a = describe(aws, id).await?.ok_or_else(|| ProviderError::permanent(format!("address {id} no longer exists")))?;
                    if let Some(assoc) = non_empty(a.association_id()) {
                        disassociate(aws, assoc).await?;
                    }
                    None
                }
            };
            out.insert("association_id".into(), json!(association.unwrap_or_default()));
        }
        update_tags(aws, id, req).await?;
        Ok(out)
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?.to_string();
        let Some(a) = describe(aws, &id).await? else { return Ok(()) };
        if let Some(assoc) = non_empty(a.association_id()) {
            disassociate(aws, assoc).await?;
        }
        delete_retrying(aws, "ReleaseAddress", || {
            let call = aws.ec2.release_address().allocation_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
