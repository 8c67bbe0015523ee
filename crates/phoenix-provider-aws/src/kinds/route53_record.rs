//! `aws.route53_record`: a record set in a hosted zone — plain values (`records`
//! with a `ttl`) or an alias to a load balancer (`alias_name`, `alias_zone_id`),
//! optionally with failover routing (`failover` PRIMARY/SECONDARY and a
//! `set_identifier`).
//!
//! Values, TTL, alias and routing change in place (UPSERT); zone, name, type
//! and set identifier replace it. A create is a CREATE, not an UPSERT, so a
//! record someone else made is reported rather than overwritten. Record sets
//! carry no tags: one is identified by (zone, name, type, set identifier).
//! Changes are awaited until Route 53 reports them `INSYNC`.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, ResourceRecordSetFailover, RrType,
};
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, OwnedObject, ProviderError, RefreshItem, UpdateRequest,
};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::state::Ownership;
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::route53_zone::same_name;
use super::same_set;
use super::{Kind, in_item_order, opt_i64, opt_str, req_str, str_list};
use crate::client::Aws;
use crate::error::{code, sdk};

pub struct Route53Record;

/// What identifies a record set in its zone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    name: String,
    rtype: String,
    set: Option<String>,
}

impl Key {
    fn of_inputs(i: &Attrs) -> Result<Key, ProviderError> {
        Ok(Key {
            name: req_str(i, "name")?.trim_end_matches('.').to_ascii_lowercase(),
            rtype: req_str(i, "record_type")?.to_string(),
            set: opt_str(i, "set_identifier").map(str::to_string),
        })
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

fn outputs(zone: &str, key: &Key) -> Attrs {
    [("id".to_string(), json!(key.id(zone))), ("fqdn".to_string(), json!(key.name))].into_iter().collect()
}

fn observed(zone: &str, r: &ResourceRecordSet, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    let name = opt_str(prior, "name").filter(|n| same_name(n, r.name())).map_or_else(|| r.name().to_string(), str::to_string);
    inputs.insert("zone_id".into(), json!(zone));
    inputs.insert("name".into(), json!(name));
    inputs.insert("record_type".into(), json!(r.r#type().as_str()));
    if let Some(s) = r.set_identifier() {
        inputs.insert("set_identifier".into(), json!(s));
    }
    if let Some(f) = r.failover() {
        inputs.insert("failover".into(), json!(f.as_str()));
    }
    if prior.contains_key("health_check_id") {
        inputs.insert("health_check_id".into(), r.health_check_id().map_or(Value::Null, |h| json!(h)));
    }
    match r.alias_target() {
        Some(a) => {
            // AWS may answer `dualstack.name.` for `name`: the same target.
            let want = opt_str(prior, "alias_name").unwrap_or_default();
            let have = a.dns_name().trim_end_matches('.');
            let same = same_name(want, have)
                || have.to_ascii_lowercase().ends_with(&format!(".{}", want.trim_end_matches('.').to_ascii_lowercase()));
            inputs.insert("alias_name".into(), json!(if same && !want.is_empty() { want } else { have }));
            inputs.insert("alias_zone_id".into(), json!(a.hosted_zone_id()));
            inputs.insert("alias_evaluate_target_health".into(), json!(a.evaluate_target_health()));
        }
        None => {
            if let Some(t) = r.ttl() {
                inputs.insert("ttl".into(), json!(t));
            }
            let values = r.resource_records().iter().map(|v| v.value().to_string()).collect();
            inputs.insert("records".into(), same_set(prior, "records", values));
        }
    }
    Observed { inputs, outputs: outputs(zone, &Key::of_set(r)) }
}

fn record_set(i: &Attrs) -> Result<ResourceRecordSet, ProviderError> {
    let bad = |e: aws_sdk_route53::error::BuildError| ProviderError::permanent(format!("record set: {e}"));
    let alias = opt_str(i, "alias_name");
    let records = str_list(i, "records");
    if alias.is_some() == !records.is_empty() {
        return Err(ProviderError::permanent("set either `records` (with `ttl`) or `alias_name` and `alias_zone_id`"));
    }
    let mut b = ResourceRecordSet::builder()
        .name(req_str(i, "name")?)
        .r#type(RrType::from(req_str(i, "record_type")?))
        .set_set_identifier(opt_str(i, "set_identifier").map(str::to_string))
        .set_failover(opt_str(i, "failover").map(ResourceRecordSetFailover::from))
        .set_health_check_id(opt_str(i, "health_check_id").map(str::to_string));
    if let Some(name) = alias {
        let target = AliasTarget::builder()
            .dns_name(name)
            .hosted_zone_id(req_str(i, "alias_zone_id")?)
            .evaluate_target_health(i.get("alias_evaluate_target_health").and_then(Value::as_bool).unwrap_or(false))
            .build()
            .map_err(bad)?;
        b = b.alias_target(target);
    } else {
        b = b.ttl(opt_i64(i, "ttl").unwrap_or(300));
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
    let out = {
        aws.route53
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch.build().map_err(bad)?)
            .send()
            .await
            .map_err(|e| sdk(&format!("ChangeResourceRecordSets ({})", action.as_str()), e))?
    };
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

/// Every record set of a zone, over all pages (one listing serves every record of the zone in a batch).
async fn zone_sets(aws: &Aws, zone: &str) -> Result<Option<Vec<ResourceRecordSet>>, ProviderError> {
    let mut found = Vec::new();
    let mut next: Option<(String, Option<RrType>, Option<String>)> = None;
    loop {
        let mut call = aws.route53.list_resource_record_sets().hosted_zone_id(zone);
        if let Some((name, rtype, ident)) = next.take() {
            call = call.start_record_name(name).set_start_record_type(rtype).set_start_record_identifier(ident);
        }
        let out = {
            match call.send().await {
                Ok(o) => o,
                Err(e) if code(&e) == Some("NoSuchHostedZone") => return Ok(None),
                Err(e) => return Err(sdk("ListResourceRecordSets", e)),
            }
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
    fn schema(&self) -> ResourceSchema {
        ResourceSchema {
            type_name: "aws.route53_record",
            description: "A Route 53 record set: values, or an alias to a load balancer; optionally failover-routed",
            attrs: vec![
                AttrSchema::required("zone_id", AttrType::String, "the hosted zone (${zone.id})").force_new(),
                AttrSchema::required("name", AttrType::String, "the full name, e.g. www.example.com").force_new(),
                AttrSchema::required("record_type", AttrType::String, "A, AAAA, CNAME, TXT, MX …").force_new(),
                AttrSchema::optional("ttl", AttrType::Int, "seconds (plain records; default 300)").validate_with(validators::non_negative),
                AttrSchema::optional("records", AttrType::List(Box::new(AttrType::String)), "the values (or use an alias)"),
                AttrSchema::optional("alias_name", AttrType::String, "alias target's DNS name (${lb.dns_name})"),
                AttrSchema::optional("alias_zone_id", AttrType::String, "alias target's hosted zone (${lb.zone_id})"),
                AttrSchema::optional("alias_evaluate_target_health", AttrType::Bool, "answer only while the target is healthy"),
                AttrSchema::optional("set_identifier", AttrType::String, "distinguishes records of one name under routing policies")
                    .force_new(),
                AttrSchema::optional("failover", AttrType::String, "PRIMARY or SECONDARY (failover routing)").validate_with(|v| {
                    match v.as_str() {
                        Some("PRIMARY" | "SECONDARY") | None => Ok(()),
                        Some(o) => Err(format!("`{o}` is not a failover role: PRIMARY or SECONDARY").into()),
                    }
                }),
                AttrSchema::optional("health_check_id", AttrType::String, "a Route 53 health check deciding failover"),
                AttrSchema::computed("id", AttrType::String, "zone_name_type[_set]").stable(),
                AttrSchema::computed("fqdn", AttrType::String, "the record's name").stable().highlight(),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let mut by_zone: BTreeMap<&str, Vec<&RefreshItem>> = BTreeMap::new();
        for i in items {
            if let Some(z) = opt_str(&i.inputs, "zone_id") {
                by_zone.entry(z).or_default().push(i);
            }
        }
        let mut found = HashMap::new();
        for (zone, zone_items) in by_zone {
            let sets = zone_sets(aws, zone).await?.unwrap_or_default();
            for item in zone_items {
                let Ok(key) = Key::of_inputs(&item.inputs) else { continue };
                if let Some(r) = sets.iter().find(|r| Key::of_set(r) == key) {
                    found.insert(key.id(zone), observed(zone, r, &item.inputs));
                }
            }
        }
        Ok(in_item_order(items, found))
    }

    /// Record sets carry no tags: those of Phoenix's zones are listed under
    /// their zone's ownership, with the zone as container (see
    /// `OwnedObject::container`), so `gc` deletes them only with a leaked zone,
    /// which Route 53 refuses to delete while they are in it. The zone's own
    /// SOA and apex NS records go with it and are not listed.
    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<OwnedObject>>, ProviderError> {
        let mut found = Vec::new();
        for (z, pairs) in super::route53_zone::owned_zones(aws).await? {
            let zone = super::route53_zone::short_id(z.id()).to_string();
            let Some(ownership) = Ownership::from_tags(|k| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())) else {
                continue;
            };
            for r in zone_sets(aws, &zone).await?.unwrap_or_default() {
                let apex = same_name(r.name(), z.name());
                if apex && matches!(r.r#type(), RrType::Soa | RrType::Ns) {
                    continue;
                }
                let o = observed(&zone, &r, &Attrs::new());
                found.push(OwnedObject {
                    type_name: "aws.route53_record".into(),
                    ownership: ownership.clone(),
                    inputs: o.inputs,
                    outputs: o.outputs,
                    container: Some(zone.clone()),
                });
            }
        }
        Ok(Some(found))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let zone = req_str(&req.inputs, "zone_id")?;
        Ok(current(aws, zone, &Key::of_inputs(&req.inputs)?).await?.map(|r| observed(zone, &r, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let zone = req_str(&req.inputs, "zone_id")?;
        change(aws, zone, ChangeAction::Create, record_set(&req.inputs)?).await?;
        Ok(outputs(zone, &Key::of_inputs(&req.inputs)?))
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let zone = req_str(&req.inputs, "zone_id")?;
        change(aws, zone, ChangeAction::Upsert, record_set(&req.inputs)?).await?;
        Ok(outputs(zone, &Key::of_inputs(&req.inputs)?))
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let zone = req_str(&req.inputs, "zone_id")?;
        // DELETE must name the record set exactly as it is: delete what is there, if anything.
        let Some(set) = current(aws, zone, &Key::of_inputs(&req.inputs)?).await? else { return Ok(()) };
        change(aws, zone, ChangeAction::Delete, set).await
    }
}
