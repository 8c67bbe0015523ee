//! `aws.route53_record`: a record set in a hosted zone — plain values (`records`
//! with a `ttl`) or an alias to a load balancer (`alias_name`, `alias_zone_id`),
//! optionally with failover routing (`failover` PRIMARY/SECONDARY and a
//! `set_identifier`).
//!
//! Values, TTL, alias and routing change in place (UPSERT); zone, name, type
//! and set identifier replace it. A create is a CREATE, not an UPSERT, so a
//! record someone else made is reported rather than overwritten. Record sets
//! carry no tags: one is identified by (zone, name, type, set identifier),
//! and its id says them all (`ZONE_name_TYPE[_set]`).
//! Changes are awaited until Route 53 reports them `INSYNC`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, ResourceRecordSetFailover, RrType,
};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::{Invalid, Validator};
use phoenix_core::state::Ownership;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::Aws;
use crate::ec2::as_set;
use crate::error::{code, sdk};
use crate::route53::{name_as_read, same_name, short_id};

pub struct Route53Record;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route53RecordSpec {
    /// the hosted zone (${zone.id})
    #[schemars(extend("force_new" = true))]
    pub zone_id: String,
    /// the full name, e.g. www.example.com
    #[schemars(extend("force_new" = true))]
    pub name: String,
    /// A, AAAA, CNAME, TXT, MX …
    #[schemars(extend("force_new" = true))]
    pub record_type: String,
    /// seconds (plain records; default 300)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "non-negative"))]
    pub ttl: Option<i64>,
    /// the values (or use an alias)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<String>>,
    /// alias target's DNS name (${lb.dns_name})
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_name: Option<String>,
    /// alias target's hosted zone (${lb.zone_id})
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_zone_id: Option<String>,
    /// answer only while the target is healthy
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_evaluate_target_health: Option<bool>,
    /// distinguishes records of one name under routing policies
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("force_new" = true))]
    pub set_identifier: Option<String>,
    /// PRIMARY or SECONDARY (failover routing)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "aws-failover-role"))]
    pub failover: Option<String>,
    /// a Route 53 health check deciding failover
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Route53RecordOutputs {
    /// zone_name_type[_set]
    #[schemars(extend("stable" = true))]
    pub id: String,
    /// the record's name
    #[schemars(extend("stable" = true, "highlight" = true))]
    pub fqdn: String,
}

fn check_failover(value: &Value) -> Result<(), Invalid> {
    match value.as_str() {
        Some("PRIMARY" | "SECONDARY") | None => Ok(()),
        Some(o) => Err(Invalid(format!("`{o}` is not a failover role: PRIMARY or SECONDARY"))),
    }
}

/// What identifies a record set in its zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    name: String,
    rtype: String,
    set: Option<String>,
}

impl Key {
    fn of_spec(s: &Route53RecordSpec) -> Key {
        Key { name: s.name.trim_end_matches('.').to_ascii_lowercase(), rtype: s.record_type.clone(), set: s.set_identifier.clone() }
    }
    fn of_set(r: &ResourceRecordSet) -> Key {
        Key {
            name: r.name().trim_end_matches('.').to_ascii_lowercase(),
            rtype: r.r#type().as_str().to_string(),
            set: r.set_identifier().map(str::to_string),
        }
    }
    fn id(&self, zone: &str) -> String {
        match &self.set {
            Some(s) => format!("{zone}_{}_{}_{s}", self.name, self.rtype),
            None => format!("{zone}_{}_{}", self.name, self.rtype),
        }
    }
}

fn outputs(zone: &str, key: &Key) -> Route53RecordOutputs {
    Route53RecordOutputs { id: key.id(zone), fqdn: key.name.clone() }
}

/// What a read sees; `prior` (the spec last applied, `None` for `phoenix
/// import` and `gc`) keeps the definition's spelling of equal names and order of equal values.
fn observe(zone: &str, r: &ResourceRecordSet, prior: Option<&Route53RecordSpec>) -> Observed<Route53Record> {
    let mut spec = Route53RecordSpec {
        zone_id: zone.to_string(),
        name: name_as_read(prior.map(|p| p.name.as_str()), r.name()),
        record_type: r.r#type().as_str().to_string(),
        ttl: None,
        records: None,
        alias_name: None,
        alias_zone_id: None,
        alias_evaluate_target_health: None,
        set_identifier: r.set_identifier().map(str::to_string),
        failover: r.failover().map(|f| f.as_str().to_string()),
        health_check_id: r.health_check_id().map(str::to_string),
    };
    match r.alias_target() {
        Some(a) => {
            // AWS may answer `dualstack.name.` for `name`: the same target.
            let want = prior.and_then(|p| p.alias_name.as_deref()).unwrap_or_default();
            let have = a.dns_name().trim_end_matches('.');
            let same = same_name(want, have)
                || have.to_ascii_lowercase().ends_with(&format!(".{}", want.trim_end_matches('.').to_ascii_lowercase()));
            spec.alias_name = Some(if same && !want.is_empty() { want } else { have }.to_string());
            spec.alias_zone_id = Some(a.hosted_zone_id().to_string());
            spec.alias_evaluate_target_health = Some(a.evaluate_target_health());
        }
        None => {
            spec.ttl = r.ttl();
            let values = r.resource_records().iter().map(|v| v.value().to_string()).collect();
            spec.records = Some(as_set(prior.and_then(|p| p.records.as_deref()), values));
        }
    }
    Observed { spec, outputs: outputs(zone, &Key::of_set(r)) }
}

fn record_set(s: &Route53RecordSpec) -> Result<ResourceRecordSet, ProviderError> {
    let bad = |e: aws_sdk_route53::error::BuildError| ProviderError::permanent(format!("record set: {e}"));
    let records = s.records.clone().unwrap_or_default();
    if s.alias_name.is_some() != records.is_empty() {
        return Err(ProviderError::permanent("set either `records` (with `ttl`) or `alias_name` and `alias_zone_id`"));
    }
    let mut b = ResourceRecordSet::builder()
        .name(&s.name)
        .r#type(RrType::from(s.record_type.as_str()))
        .set_set_identifier(s.set_identifier.clone())
        .set_failover(s.failover.as_deref().map(ResourceRecordSetFailover::from))
        .set_health_check_id(s.health_check_id.clone());
    if let Some(name) = &s.alias_name {
        let zone = s.alias_zone_id.as_ref().ok_or_else(|| ProviderError::permanent("attribute `alias_zone_id` is missing"))?;
        let target = AliasTarget::builder()
            .dns_name(name)
            .hosted_zone_id(zone)
            .evaluate_target_health(s.alias_evaluate_target_health.unwrap_or(false))
            .build()
            .map_err(bad)?;
        b = b.alias_target(target);
    } else {
        b = b.ttl(s.ttl.unwrap_or(300));
        for r in records {
            b = b.resource_records(ResourceRecord::builder().value(r).build().map_err(bad)?);
        }
    }
    b.build().map_err(bad)
}

/// Sends one change and waits until Route 53 has it everywhere.
async fn change(aws: &Aws, zone: &str, action: ChangeAction, set: ResourceRecordSet) -> Result<(), ProviderError> {
    let bad = |e: aws_sdk_route53::error::BuildError| ProviderError::permanent(format!("change: {e}"));
    let batch = ChangeBatch::builder().changes(Change::builder().action(action.clone()).resource_record_set(set).build().map_err(bad)?);
    let out = aws
        .route53
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch.build().map_err(bad)?)
        .send()
        .await
        .map_err(|e| sdk(&format!("ChangeResourceRecordSets ({})", action.as_str()), e))?;
    let Some(info) = out.change_info() else { return Ok(()) };
    let id = info.id().to_string();
    if info.status() == &ChangeStatus::Insync {
        return Ok(());
    }
    crate::wait::until(&format!("Route 53 change {id} to be in sync"), aws.wait_timeout, || {
        let id = id.clone();
        async move {
            let out = aws.route53.get_change().id(&id).send().await.map_err(|e| sdk("GetChange", e))?;
            Ok(out.change_info().is_some_and(|c| c.status() == &ChangeStatus::Insync).then_some(()))
        }
    })
    .await
}

/// Every record set of a zone, over all pages (one listing serves every
/// record of the zone in a batch); `None` when the zone is gone.
async fn zone_sets(aws: &Aws, zone: &str) -> Result<Option<Vec<ResourceRecordSet>>, ProviderError> {
    let mut found = Vec::new();
    let mut next: Option<(String, Option<RrType>, Option<String>)> = None;
    loop {
        let mut call = aws.route53.list_resource_record_sets().hosted_zone_id(zone);
        if let Some((name, rtype, ident)) = next.take() {
            call = call.start_record_name(name).set_start_record_type(rtype).set_start_record_identifier(ident);
        }
        let out = match call.send().await {
            Ok(o) => o,
            Err(e) if code(&e) == Some("NoSuchHostedZone") => return Ok(None),
            Err(e) => return Err(sdk("ListResourceRecordSets", e)),
        };
        found.extend(out.resource_record_sets().iter().cloned());
        match (out.is_truncated(), out.next_record_name()) {
            (true, Some(n)) => {
                next = Some((n.to_string(), out.next_record_type().cloned(), out.next_record_identifier().map(str::to_string)))
            }
            _ => return Ok(Some(found)),
        }
    }
}

async fn current(aws: &Aws, zone: &str, key: &Key) -> Result<Option<ResourceRecordSet>, ProviderError> {
    Ok(zone_sets(aws, zone).await?.unwrap_or_default().into_iter().find(|r| &Key::of_set(r) == key))
}

#[async_trait]
impl Kind for Route53Record {
    const TYPE: &'static str = "aws.route53_record";
    const DESCRIPTION: &'static str = "A Route 53 record set: values, or an alias to a load balancer; optionally failover-routed";
    const FORMATS: &'static [(&'static str, Validator)] = &[("aws-failover-role", check_failover)];
    type Client = Aws;
    type Spec = Route53RecordSpec;
    type Outputs = Route53RecordOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
    }

    /// One listing per zone serves every record of the batch in it.
    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        let mut by_zone: BTreeMap<&str, Vec<ResourceRecordSet>> = BTreeMap::new();
        for i in items {
            if !by_zone.contains_key(i.spec.zone_id.as_str()) {
                let sets = zone_sets(aws, &i.spec.zone_id).await?.unwrap_or_default();
                by_zone.insert(&i.spec.zone_id, sets);
            }
        }
        Ok(items
            .iter()
            .map(|i| {
                let key = Key::of_spec(&i.spec);
                let r = by_zone.get(i.spec.zone_id.as_str())?.iter().find(|r| Key::of_set(r) == key)?;
                Some(observe(&i.spec.zone_id, r, Some(&i.spec)))
            })
            .collect())
    }

    /// The id names the zone first (`ZONE_name_TYPE[_set]`): its record set
    /// is the one whose id is the same.
    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        let zone = id.split('_').next().unwrap_or_default();
        let Some(sets) = zone_sets(aws, zone).await? else { return Ok(None) };
        Ok(sets.iter().find(|r| Key::of_set(r).id(zone) == id).map(|r| observe(zone, r, None)))
    }

    /// Record sets carry no tags: the one of this (zone, name, type, set identifier).
    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        let zone = &req.spec.zone_id;
        Ok(current(aws, zone, &Key::of_spec(req.spec)).await?.map(|r| observe(zone, &r, Some(req.spec))))
    }

    /// Record sets carry no tags: those of Phoenix's zones are listed under
    /// their zone's ownership, with the zone as container (see
    /// `OwnedObject::container`), so `gc` deletes them only with a leaked zone,
    /// which Route 53 refuses to delete while they are in it. The zone's own
    /// SOA and apex NS records go with it and are not listed.
    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        let mut found = Vec::new();
        for (z, pairs) in crate::route53::owned_zones(aws).await? {
            let zone = short_id(z.id()).to_string();
            let Some(ownership) = Ownership::from_tags(|k| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())) else {
                continue;
            };
            for r in zone_sets(aws, &zone).await?.unwrap_or_default() {
                let apex = same_name(r.name(), z.name());
                if apex && matches!(r.r#type(), RrType::Soa | RrType::Ns) {
                    continue;
                }
                found.push(Owned { ownership: ownership.clone(), observed: observe(&zone, &r, None), container: Some(zone.clone()) });
            }
        }
        Ok(Some(found))
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<Route53RecordOutputs, ProviderError> {
        let zone = &req.spec.zone_id;
        change(aws, zone, ChangeAction::Create, record_set(req.spec)?).await?;
        Ok(outputs(zone, &Key::of_spec(req.spec)))
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<Route53RecordOutputs, ProviderError> {
        let zone = &req.spec.zone_id;
        change(aws, zone, ChangeAction::Upsert, record_set(req.spec)?).await?;
        Ok(outputs(zone, &Key::of_spec(req.spec)))
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let zone = &req.spec.zone_id;
        // DELETE must name the record set exactly as it is: delete what is there, if anything.
        let Some(set) = current(aws, zone, &Key::of_spec(req.spec)).await? else { return Ok(()) };
        change(aws, zone, ChangeAction::Delete, set).await
    }
}
