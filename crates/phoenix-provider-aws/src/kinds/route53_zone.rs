//! `aws.route53_zone`: a public hosted zone (or a private one, with `vpc_id`).
//!
//! The comment changes in place (UpdateHostedZoneComment); name and VPC
//! replace it. `CallerReference` is the create's idempotency token, so a
//! retried CreateHostedZone cannot make a second zone.

use async_trait::async_trait;
use aws_sdk_route53::types::{HostedZone, HostedZoneConfig, Tag, TagResourceType, VpcRegion};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::state::Ownership;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::client::Aws;
use crate::ec2::UserTags;
use crate::error::{code, is_not_found, sdk};
use crate::route53::{name_as_read, same_name, short_id, zone_tags};
use crate::tags;

pub struct Route53Zone;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route53ZoneSpec {
    /// the domain, e.g. example.com
    #[schemars(extend("force_new" = true))]
    pub name: String,
    /// a note (in place)
    #[serde(default = "managed")]
    pub comment: String,
    /// make it a private zone of this VPC
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub vpc_id: Option<String>,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Route53ZoneOutputs {
    /// the hosted zone id (Z…)
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the delegation set
    #[schemars(extend("stable" = true))]
    pub name_servers: Vec<String>,
}

fn managed() -> String {
    "Managed by Phoenix".into()
}

/// What a read sees. Zone listings carry no VPC and no delegation set:
/// `prior` (the spec and outputs last applied) supplies what `read` cannot see.
fn observe(
    z: &HostedZone,
    tags: &[(String, String)],
    prior: Option<&Route53ZoneSpec>,
    vpc_id: Option<String>,
    name_servers: Vec<String>,
) -> Observed<Route53Zone> {
    let spec = Route53ZoneSpec {
        name: name_as_read(prior.map(|p| p.name.as_str()), z.name()),
        comment: z.config().and_then(|c| c.comment()).unwrap_or_default().to_string(),
        vpc_id,
        tags: tags::observed_user_pairs(tags),
    };
    Observed { spec, outputs: Route53ZoneOutputs { id: short_id(z.id()).to_string(), name_servers } }
}

fn zone_tags_of(ownership: &Ownership, user: Option<&UserTags>) -> Vec<Tag> {
    tags::pairs_typed(ownership, user).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

#[async_trait]
impl Kind for Route53Zone {
    const TYPE: &'static str = "aws.route53_zone";
    const DESCRIPTION: &'static str = "A Route 53 hosted zone";
    type Client = Aws;
    type Spec = Route53ZoneSpec;
    type Outputs = Route53ZoneOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        // One listing (100 zones a page) rather than a GetHostedZone per zone.
        let wanted = |z: &HostedZone| items.iter().any(|i| i.outputs.id == short_id(z.id()));
        let zones: Vec<HostedZone> = crate::route53::all_zones(aws).await?.into_iter().filter(wanted).collect();
        let ids: Vec<String> = zones.iter().map(|z| short_id(z.id()).to_string()).collect();
        let tags = zone_tags(aws, &ids).await?;
        Ok(items
            .iter()
            .map(|i| {
                let z = zones.iter().find(|z| short_id(z.id()) == i.outputs.id)?;
                let t = tags.get(&i.outputs.id).map_or(&[][..], Vec::as_slice);
                Some(observe(z, t, Some(&i.spec), i.spec.vpc_id.clone(), i.outputs.name_servers.clone()))
            })
            .collect())
    }

    /// GetHostedZone answers the zone with its VPCs and delegation set.
    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        let out = match aws.route53.get_hosted_zone().id(id).send().await {
            Ok(out) => out,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(sdk("GetHostedZone", e)),
        };
        let Some(z) = out.hosted_zone() else { return Ok(None) };
        let zone = short_id(z.id()).to_string();
        let tags = zone_tags(aws, std::slice::from_ref(&zone)).await?.remove(&zone).unwrap_or_default();
        let vpc_id = out.vpcs().first().and_then(|v| v.vpc_id()).map(str::to_string);
        let name_servers = out.delegation_set().map(|d| d.name_servers().to_vec()).unwrap_or_default();
        Ok(Some(observe(z, &tags, None, vpc_id, name_servers)))
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        let name = &req.spec.name;
        let out = aws.route53.list_hosted_zones_by_name().dns_name(name).send().await.map_err(|e| sdk("ListHostedZonesByName", e))?;
        let same: Vec<&HostedZone> = out.hosted_zones().iter().filter(|z| same_name(z.name(), name)).collect();
        let ids: Vec<String> = same.iter().map(|z| short_id(z.id()).to_string()).collect();
        let tags = zone_tags(aws, &ids).await?;
        Ok(same.iter().find_map(|z| {
            let t = tags.get(short_id(z.id()))?;
            tags::owned_by(t, req.ownership).then(|| observe(z, t, Some(req.spec), req.spec.vpc_id.clone(), Vec::new()))
        }))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        Ok(Some(
            crate::route53::owned_zones(aws)
                .await?
                .iter()
                .filter_map(|(z, pairs)| {
                    let ownership = Ownership::from_tags(|k| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()))?;
                    Some(Owned { ownership, observed: observe(z, pairs, None, None, Vec::new()), container: None })
                })
                .collect(),
        ))
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<Route53ZoneOutputs, ProviderError> {
        let s = req.spec;
        let config = HostedZoneConfig::builder().comment(&s.comment).private_zone(s.vpc_id.is_some()).build();
        let vpc = s
            .vpc_id
            .as_ref()
            .map(|v| aws_sdk_route53::types::Vpc::builder().vpc_id(v).vpc_region(VpcRegion::from(aws.region.as_str())).build());
        let out = aws
            .route53
            .create_hosted_zone()
            .name(&s.name)
            // At most 128 characters; unique per create call.
            .caller_reference(req.idempotency_token.chars().take(128).collect::<String>())
            .hosted_zone_config(config)
            .set_vpc(vpc)
            .send()
            .await
            .map_err(|e| sdk("CreateHostedZone", e))?;
        let z = out.hosted_zone().ok_or_else(|| ProviderError::permanent("CreateHostedZone returned no zone"))?;
        let made = Route53ZoneOutputs {
            id: short_id(z.id()).to_string(),
            name_servers: out.delegation_set().map(|d| d.name_servers().to_vec()).unwrap_or_default(),
        };
        // Zones cannot be tagged at creation: tag right after; a failure hands the zone to the engine.
        aws.route53
            .change_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(&made.id)
            .set_add_tags(Some(zone_tags_of(req.ownership, s.tags.as_ref())))
            .send()
            .await
            .map_err(|e| sdk("ChangeTagsForResource", e).with_created(phoenix_core::kit::output_attrs(&made)))?;
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<Route53ZoneOutputs, ProviderError> {
        let id = &req.outputs.id;
        if req.changed("comment") {
            aws.route53
                .update_hosted_zone_comment()
                .id(id)
                .comment(&req.spec.comment)
                .send()
                .await
                .map_err(|e| sdk("UpdateHostedZoneComment", e))?;
        }
        let removed = tags::removed_keys_typed(req.prior.tags.as_ref(), req.spec.tags.as_ref());
        aws.route53
            .change_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(id)
            .set_add_tags(Some(zone_tags_of(req.ownership, req.spec.tags.as_ref())))
            .set_remove_tag_keys((!removed.is_empty()).then_some(removed))
            .send()
            .await
            .map_err(|e| sdk("ChangeTagsForResource", e))?;
        Ok(req.outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let id = req.outputs.id.as_str();
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
