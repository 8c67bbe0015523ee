//! What the Route 53 kinds (hosted zones and their record sets) share: how
//! names and zone ids are written, and the zones carrying Phoenix's
//! ownership tags (record sets carry none: `gc` finds them under their zone).

use std::collections::HashMap;

use aws_sdk_route53::types::{HostedZone, TagResourceType};
use phoenix_core::provider::ProviderError;

use crate::client::Aws;
use crate::error::sdk;

/// `/hostedzone/Z123` → `Z123`.
pub fn short_id(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// `example.com.` and `Example.com` are the same name.
pub fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// A name as read back: as the definition wrote it when it is the same
/// name, else as Route 53 answers it without the root's trailing dot (the
/// way definitions write names).
pub fn name_as_read(prior: Option<&str>, answered: &str) -> String {
    match prior {
        Some(p) if same_name(p, answered) => p.to_string(),
        _ => answered.strip_suffix('.').unwrap_or(answered).to_string(),
    }
}

/// Tags of many zones: ListTagsForResources takes ten ids per call.
pub async fn zone_tags(aws: &Aws, ids: &[String]) -> Result<HashMap<String, Vec<(String, String)>>, ProviderError> {
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

/// Every hosted zone of the account, all pages (100 zones a page).
pub async fn all_zones(aws: &Aws) -> Result<Vec<HostedZone>, ProviderError> {
    let pages = aws.route53.list_hosted_zones().into_paginator().send();
    Ok(crate::kinds::all_pages("ListHostedZones", pages).await?.iter().flat_map(|p| p.hosted_zones().to_vec()).collect())
}

/// Every hosted zone carrying Phoenix's ownership tags, with those tags
/// (Route 53 lists zones without tags: one ListTagsForResources per ten zones).
pub async fn owned_zones(aws: &Aws) -> Result<Vec<(HostedZone, Vec<(String, String)>)>, ProviderError> {
    let zones = all_zones(aws).await?;
    let ids: Vec<String> = zones.iter().map(|z| short_id(z.id()).to_string()).collect();
    let mut tags = zone_tags(aws, &ids).await?;
    Ok(zones
        .into_iter()
        .filter_map(|z| {
            let pairs = tags.remove(short_id(z.id()))?;
            pairs.iter().any(|(k, _)| k == "phoenix:environment").then_some((z, pairs))
        })
        .collect())
}
