//! `aws.route53_zone`: a public hosted zone (or a private one, with `vpc_id`).
//!
//! The comment changes in place (UpdateHostedZoneComment); name and VPC
//! replace it. `CallerReference` is the create's idempotency token, so a
//! retried CreateHostedZone cannot make a second zone.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_route53::types::{HostedZone, HostedZoneConfig, Tag, TagResourceType, VpcRegion};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema};
use phoenix_core::value::Attrs;
use serde_json::json;

use super::{Kind, id_attr, id_of, in_item_order, opt_str, priors, req_str, tags_attr};
use crate::client::Aws;
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct Route53Zone;

/// `/hostedzone/Z123` → `Z123`.
pub(crate) fn short_id(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// `example.com.` and `Example.com` are the same name.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

fn outputs(z: &HostedZone, name_servers: Option<Vec<String>>, prior: &Attrs) -> Attrs {
    let mut o = Attrs::new();
    o.insert("id".into(), json!(short_id(z.id())));
    let ns = name_servers.map(|n| json!(n)).or_else(|| prior.get("name_servers").cloned()).unwrap_or_else(|| json!([]));
    o.insert("name_servers".into(), ns);
    o
}

fn observed(z: &HostedZone, tag_pairs: &[(String, String)], prior: &Attrs, prior_out: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    let name = opt_str(prior, "name").filter(|n| same_name(n, z.name())).map_or_else(|| z.name().to_string(), str::to_string);
    inputs.insert("name".into(), json!(name));
    if prior.contains_key("comment") {
        inputs.insert("comment".into(), json!(z.config().and_then(|c| c.comment()).unwrap_or_default()));
    }
    tags::observe_pairs(&mut inputs, prior, tag_pairs);
    Observed { inputs, outputs: outputs(z, None, prior_out) }
}

/// Every hosted zone carrying Phoenix's ownership tags, with those tags
/// (Route 53 lists zones without tags: one ListTagsForResources per ten zones).
pub(crate) async fn owned_zones(aws: &Aws) -> Result<Vec<(HostedZone, Vec<(String, String)>)>, ProviderError> {
    let pages = aws.route53.list_hosted_zones().into_paginator().send();
    let zones: Vec<HostedZone> = super::all_pages("ListHostedZones", pages).await?.iter().flat_map(|p| p.hosted_zones().to_vec()).collect();
    let ids: Vec<String> = zones.iter().map(|z| short_id(z.id()).to_string()).collect();
    let mut tag_map = tags_of(aws, &ids).await?;
    Ok(zones
        .into_iter()
        .filter_map(|z| {
            let pairs = tag_map.remove(short_id(z.id()))?;
            pairs.iter().any(|(k, _)| k == "phoenix:environment").then_some((z, pairs))
        })
        .collect())
}

/// Tags of many zones: ListTagsForResources takes ten ids per call.
async fn tags_of(aws: &Aws, ids: &[String]) -> Result<HashMap<String, Vec<(String, String)>>, ProviderError> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(10) {
        let out = aws
            .route53
            .list_tags_for_resources()
            .resource_type(TagResourceType::Hostedzone)
            .set_resource_ids(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| sdk("ListTagsForResources", e))?;
        for set in out.resource_tag_sets() {
            let pairs = set.tags().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()));
            found.insert(set.resource_id().unwrap_or_default().to_string(), pairs.collect());
        }
    }
    Ok(found)
}

fn zone_tags(req_tags: Vec<(String, String)>) -> Vec<Tag> {
    req_tags.into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

#[async_trait]
impl Kind for Route53Zone {
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.route53_zone",
            description: "A Route 53 hosted zone",
            attrs: vec![
                AttrSchema::required("name", AttrType::String, "the domain, e.g. example.com").force_new(),
                AttrSchema::optional("comment", AttrType::String, "a note (in place)").default(json!("Managed by Phoenix")),
                AttrSchema::optional("vpc_id", AttrType::String, "make it a private zone of this VPC").force_new(),
                tags_attr(),
                id_attr("the hosted zone id (Z…)"),
                AttrSchema::computed("name_servers", AttrType::List(Box::new(AttrType::String)), "the delegation set").stable(),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let prior_out: HashMap<&str, &Attrs> = items.iter().filter_map(|i| Some((i.outputs.get("id")?.as_str()?, &i.outputs))).collect();
        // One listing (100 zones a page) rather than a GetHostedZone per zone.
        let pages = aws.route53.list_hosted_zones().into_paginator().send();
        let zones: Vec<HostedZone> = super::all_pages("ListHostedZones", pages)
            .await?
            .iter()
            .flat_map(|p| p.hosted_zones().to_vec())
            .filter(|z| prior.contains_key(short_id(z.id())))
            .collect();
        let ids: Vec<String> = zones.iter().map(|z| short_id(z.id()).to_string()).collect();
        let tag_map = tags_of(aws, &ids).await?;
        let mut found = HashMap::new();
        for z in &zones {
            let id = short_id(z.id()).to_string();
            let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
            let po = prior_out.get(id.as_str()).copied().cloned().unwrap_or_default();
            found.insert(id.clone(), observed(z, tag_map.get(&id).map_or(&[][..], Vec::as_slice), &p, &po));
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        Ok(Some(
            owned_zones(aws)
                .await?
                .iter()
                .filter_map(|(z, pairs)| super::owned_pairs(self, pairs, observed(z, pairs, &Attrs::new(), &Attrs::new())))
                .collect(),
        ))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let name = req_str(&req.inputs, "name")?;
        let out = { aws.route53.list_hosted_zones_by_name().dns_name(name).send().await.map_err(|e| sdk("ListHostedZonesByName", e))? };
        let same: Vec<HostedZone> = out.hosted_zones().iter().filter(|z| same_name(z.name(), name)).cloned().collect();
        let ids: Vec<String> = same.iter().map(|z| short_id(z.id()).to_string()).collect();
        let tag_map = tags_of(aws, &ids).await?;
        Ok(same.iter().find_map(|z| {
            let t = tag_map.get(short_id(z.id()))?;
            tags::owned_by(t, &req.ownership).then(|| observed(z, t, &req.inputs, &Attrs::new()))
        }))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let i = &req.inputs;
        let config = HostedZoneConfig::builder()
            .set_comment(opt_str(i, "comment").map(str::to_string))
            .private_zone(i.contains_key("vpc_id"))
            .build();
        let vpc = opt_str(i, "vpc_id")
            .map(|v| aws_sdk_route53::types::Vpc::builder().vpc_id(v).vpc_region(VpcRegion::from(aws.region.as_str())).build());
        let out = {
            aws.route53
                .create_hosted_zone()
                .name(req_str(i, "name")?)
                // At most 128 characters; unique per create call.
                .caller_reference(req.idempotency_token.chars().take(128).collect::<String>())
                .hosted_zone_config(config)
                .set_vpc(vpc)
                .send()
                .await
                .map_err(|e| sdk("CreateHostedZone", e))?
        };
        let z = out.hosted_zone().ok_or_else(|| ProviderError::permanent("CreateHostedZone returned no zone"))?;
        let ns = out.delegation_set().map(|d| d.name_servers().to_vec());
        let made = outputs(z, ns, &Attrs::new());
        // Zones cannot be tagged at creation: tag right after; a failure hands the zone to the engine.
        aws.route53
            .change_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(short_id(z.id()))
            .set_add_tags(Some(zone_tags(tags::pairs(&req.ownership, i.get("tags")))))
            .send()
            .await
            .map_err(|e| sdk("ChangeTagsForResource", e).with_created(made.clone()))?;
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = id_of(&req.prior_outputs)?;
        if req.changed.iter().any(|c| c == "comment") {
            aws.route53
                .update_hosted_zone_comment()
                .id(id)
                .set_comment(opt_str(&req.inputs, "comment").map(str::to_string))
                .send()
                .await
                .map_err(|e| sdk("UpdateHostedZoneComment", e))?;
        }
        let removed = tags::removed_keys(&req.prior_inputs, &req.inputs);
        aws.route53
            .change_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(id)
            .set_add_tags(Some(zone_tags(tags::pairs(&req.ownership, req.inputs.get("tags")))))
            .set_remove_tag_keys((!removed.is_empty()).then_some(removed))
            .send()
            .await
            .map_err(|e| sdk("ChangeTagsForResource", e))?;
        Ok(req.prior_outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?;
        // Records still being deleted keep it non-empty for a moment (HostedZoneNotEmpty).
        crate::wait::until(&format!("hosted zone {id} to be deletable"), aws.wait_timeout, || async move {
            match aws.route53.delete_hosted_zone().id(id).send().await {
                Ok(_) => Ok(Some(())),
                Err(e) if is_not_found(&e) => Ok(Some(())),
                Err(e) if code(&e) == Some("HostedZoneNotEmpty") => Ok(None),
                Err(e) => Err(sdk("DeleteHostedZone", e)),
            }
        })
        .await
    }
}
