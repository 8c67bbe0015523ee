//! `aws.security_group` with its ingress and egress rules.
//!
//! A rule table `{protocol, from_port, to_port, cidr_blocks, description}`
//! stands for one EC2 rule per CIDR block. EC2 regroups rules as it likes
//! (one IpPermission per protocol and port range), so rules are compared as
//! sets of single (protocol, ports, CIDR, description) rules: an update
//! revokes and authorizes only the difference against what EC2 has *now*,
//! and a read reports the configured tables verbatim when EC2 holds exactly
//! them, so regrouping never reads as drift while a rule added by hand does.
//! Sources other than IPv4 CIDR blocks (other groups, IPv6, prefix lists)
//! are neither managed nor reported.

use phoenix_core::schema::Invalid;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::create_once;
use super::{Kind, all_pages, delete_retrying, id_attr, id_chunks, id_of, in_item_order, priors, req_str, tags_attr, update_tags};
use crate::client::{Aws, create_call_config};
use crate::error::{code, sdk};
use crate::tags;

pub struct SecurityGroup;

/// One EC2 rule: protocol (`tcp`, `udp`, `icmp`, `-1` for all), port range
/// (none for `-1`), one CIDR block, and its description (`""` for none).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rule {
    protocol: String,
    ports: Option<(i32, i32)>,
    cidr: String,
    description: String,
}

/// `all` and protocol numbers as EC2 reports them.
fn protocol(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "all" | "-1" => "-1".into(),
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        other => other.into(),
    }
}

/// The single rules of one configured table.
fn table_rules(t: &Value) -> Vec<Rule> {
    let Some(protocol) = t.get("protocol").and_then(Value::as_str).map(protocol) else { return Vec::new() };
    let ports = if protocol == "-1" {
        None
    } else {
        // ICMP without ports means every type and code; a single port needs no `to_port`.
        let from = t.get("from_port").and_then(Value::as_i64).unwrap_or(-1) as i32;
        Some((from, t.get("to_port").and_then(Value::as_i64).map_or(from, |p| p as i32)))
    };
    let description = t.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
    t.get("cidr_blocks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|c| Rule { protocol: protocol.clone(), ports, cidr: c.to_string(), description: description.clone() })
        .collect()
}

fn configured_rules(v: Option<&Value>) -> BTreeSet<Rule> {
    v.and_then(Value::as_array).into_iter().flatten().flat_map(table_rules).collect()
}

fn ec2_rules(perms: &[IpPermission]) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for p in perms {
        let protocol = protocol(p.ip_protocol().unwrap_or("-1"));
        let ports = if protocol == "-1" { None } else { Some((p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1))) };
        for r in p.ip_ranges() {
            let Some(cidr) = r.cidr_ip() else { continue };
            let description = r.description().unwrap_or_default().to_string();
            out.insert(Rule { protocol: protocol.clone(), ports, cidr: cidr.to_string(), description });
        }
    }
    out
}

/// Rules as EC2 permissions, one per protocol and port range.
fn permissions<'a>(rules: impl IntoIterator<Item = &'a Rule>, with_descriptions: bool) -> Vec<IpPermission> {
    let mut groups: BTreeMap<(&str, Option<(i32, i32)>), Vec<IpRange>> = BTreeMap::new();
    for r in rules {
        let mut range = IpRange::builder().cidr_ip(&r.cidr);
        if with_descriptions && !r.description.is_empty() {
            range = range.description(&r.description);
        }
        groups.entry((r.protocol.as_str(), r.ports)).or_default().push(range.build());
    }
    groups
        .into_iter()
        .map(|((proto, ports), ranges)| {
            IpPermission::builder()
                .ip_protocol(proto)
                .set_from_port(ports.map(|p| p.0))
                .set_to_port(ports.map(|p| p.1))
                .set_ip_ranges(Some(ranges))
                .build()
        })
        .collect()
}

/// What EC2 holds, as tables: the configured tables it holds in full are
/// reported as written (and in their order); the rest, grouped, after them.
fn observed_tables(prior: Option<&Value>, actual: &BTreeSet<Rule>) -> Value {
    let mut left = actual.clone();
    let mut out = Vec::new();
    for t in prior.and_then(Value::as_array).into_iter().flatten() {
        let rules = table_rules(t);
        if !rules.is_empty() && rules.iter().all(|r| left.contains(r)) {
            rules.iter().for_each(|r| {
                left.remove(r);
            });
            out.push(t.clone());
        }
    }
    let mut groups: BTreeMap<(String, Option<(i32, i32)>, String), Vec<String>> = BTreeMap::new();
    for r in left {
        groups.entry((r.protocol, r.ports, r.description)).or_default().push(r.cidr);
    }
    for ((protocol, ports, description), cidrs) in groups {
        let mut t = serde_json::Map::new();
        t.insert("protocol".into(), json!(protocol));
        if let Some((from, to)) = ports {
            t.insert("from_port".into(), json!(from));
            t.insert("to_port".into(), json!(to));
        }
        t.insert("cidr_blocks".into(), json!(cidrs));
        if !description.is_empty() {
            t.insert("description".into(), json!(description));
        }
        out.push(Value::Object(t));
    }
    Value::Array(out)
}

/// Checks `ingress`/`egress` tables: known keys, a protocol, CIDR blocks, and ports where the protocol has them.
fn check_rules(value: &Value) -> Result<(), Invalid> {
    const KEYS: [&str; 5] = ["protocol", "from_port", "to_port", "cidr_blocks", "description"];
    let pending = |v: &Value| v.as_str().is_some_and(|s| s.contains("${"));
    for (i, t) in value.as_array().into_iter().flatten().enumerate() {
        let Some(m) = t.as_object() else { continue };
        if let Some(k) = m.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(Invalid(format!("rule {i}: unknown key `{k}` (a rule takes {})", KEYS.join(", "))));
        }
        let Some(p) = m.get("protocol") else { return Err(Invalid(format!("rule {i}: needs a protocol (tcp, udp, icmp or all)"))) };
        let Some(cidrs) = m.get("cidr_blocks") else { return Err(Invalid(format!("rule {i}: needs cidr_blocks, e.g. [\"0.0.0.0/0\"]"))) };
        match cidrs.as_array() {
            Some(list) if !list.is_empty() => {
                for c in list {
                    validators::ipv4_cidr(c).map_err(|e| format!("rule {i}: {e}"))?;
                }
            }
            _ if pending(cidrs) => {}
            _ => return Err(Invalid(format!("rule {i}: cidr_blocks must be a non-empty list of CIDR blocks"))),
        }
        let proto = p.as_str().map(protocol).unwrap_or_default();
        let port = |k: &str| -> Result<Option<i64>, String> {
            match m.get(k) {
                None => Ok(None),
                Some(v) if pending(v) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .filter(|p| (-1..=65535).contains(p))
                    .map(Some)
                    .ok_or_else(|| format!("rule {i}: `{k}` must be a port (0-65535) or -1")),
            }
        };
        let (from, to) = (port("from_port")?, port("to_port")?);
        if (proto == "tcp" || proto == "udp") && from.is_none() && !m.get("from_port").is_some_and(pending) {
            return Err(Invalid(format!("rule {i}: {proto} needs from_port (and to_port for a range)")));
        }
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            return Err(Invalid(format!("rule {i}: to_port {t} is below from_port {f}")));
        }
    }
    Ok(())
}

fn observed(g: &aws_sdk_ec2::types::SecurityGroup, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    for (k, v) in [("name", g.group_name()), ("description", g.description()), ("vpc_id", g.vpc_id())] {
        if let Some(v) = v {
            inputs.insert(k.into(), json!(v));
        }
    }
    inputs.insert("ingress".into(), observed_tables(prior.get("ingress"), &ec2_rules(g.ip_permissions())));
    inputs.insert("egress".into(), observed_tables(prior.get("egress"), &ec2_rules(g.ip_permissions_egress())));
    tags::observe_tags(&mut inputs, prior, g.tags());
    let outputs = [("id".to_string(), json!(g.group_id().unwrap_or_default()))].into_iter().collect();
    Observed { inputs, outputs }
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Ingress,
    Egress,
}

/// `Ok(false)` for the `benign` error code; otherwise the error, retryable
/// (`true`) when the group is not visible yet.
fn benign_or<E, R>(what: &str, benign: &str, e: aws_sdk_ec2::error::SdkError<E, R>) -> Result<bool, (bool, ProviderError)>
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if code(&e) == Some(benign) { Ok(false) } else { Err((code(&e) == Some("InvalidGroup.NotFound"), sdk(what, e))) }
}

/// Authorizes (or revokes) `rules` in one call; if EC2 refuses because one of
/// them already exists (or is already gone) after a race, one call per rule,
/// skipping those. A group made a moment ago may not be visible yet.
async fn apply(aws: &Aws, id: &str, dir: Direction, authorize: bool, rules: &[&Rule]) -> Result<(), ProviderError> {
    if rules.is_empty() {
        return Ok(());
    }
    let what = match (dir, authorize) {
        (Direction::Ingress, true) => "AuthorizeSecurityGroupIngress",
        (Direction::Ingress, false) => "RevokeSecurityGroupIngress",
        (Direction::Egress, true) => "AuthorizeSecurityGroupEgress",
        (Direction::Egress, false) => "RevokeSecurityGroupEgress",
    };
    let benign = if authorize { "InvalidPermission.Duplicate" } else { "InvalidPermission.NotFound" };
    // Ok(false): the batch hit the benign error and nothing was changed.
    let call = |perms: Vec<IpPermission>| async move {
        crate::wait::consistent(|| {
            let perms = Some(perms.clone());
            async move {
                let ec2 = &aws.ec2;
                match (dir, authorize) {
                    (Direction::Ingress, true) => ec2
                        .authorize_security_group_ingress()
                        .group_id(id)
                        .set_ip_permissions(perms)
                        .send()
                        .await
                        .map(|_| true)
                        .or_else(|e| benign_or(what, benign, e)),
                    (Direction::Ingress, false) => ec2
                        .revoke_security_group_ingress()
                        .group_id(id)
                        .set_ip_permissions(perms)
                        .send()
                        .await
                        .map(|_| true)
                        .or_else(|e| benign_or(what, benign, e)),
                    (Direction::Egress, true) => ec2
                        .authorize_security_group_egress()
                        .group_id(id)
                        .set_ip_permissions(perms)
                        .send()
                        .await
                        .map(|_| true)
                        .or_else(|e| benign_or(what, benign, e)),
                    (Direction::Egress, false) => ec2
                        .revoke_security_group_egress()
                        .group_id(id)
                        .set_ip_permissions(perms)
                        .send()
                        .await
                        .map(|_| true)
                        .or_else(|e| benign_or(what, benign, e)),
                }
            }
        })
        .await
    };
    // Revokes match without descriptions; authorizations carry them.
    if !call(permissions(rules.iter().copied(), authorize)).await? && rules.len() > 1 {
        for r in rules {
            call(permissions([*r], authorize)).await?;
        }
    }
    Ok(())
}

/// Makes one direction's rules `want`, from `have`. Revokes first, so that a
/// rule whose description changed is not refused as a duplicate.
async fn reconcile(aws: &Aws, id: &str, dir: Direction, want: &BTreeSet<Rule>, have: &BTreeSet<Rule>) -> Result<(), ProviderError> {
    apply(aws, id, dir, false, &have.difference(want).collect::<Vec<_>>()).await?;
    apply(aws, id, dir, true, &want.difference(have).collect::<Vec<_>>()).await
}

/// The rule EC2 gives every new VPC security group.
fn allow_all_egress() -> BTreeSet<Rule> {
    [Rule { protocol: "-1".into(), ports: None, cidr: "0.0.0.0/0".into(), description: String::new() }].into_iter().collect()
}

#[async_trait]
impl Kind for SecurityGroup {
    fn schema(&self) -> ResourceSchema {
        let rules = || AttrType::List(Box::new(AttrType::Map(Box::new(AttrType::Any))));
        ResourceSchema {
            type_name: "aws.security_group",
            description: "A VPC security group with its ingress and egress rules",
            attrs: vec![
                AttrSchema::required("name", AttrType::String, "the group name, unique in its VPC")
                    .force_new()
                    .format("aws-security-group-name"),
                AttrSchema::optional("description", AttrType::String, "what the group is for (EC2 cannot change it)")
                    .force_new()
                    .default(json!("Managed by Phoenix")),
                AttrSchema::required("vpc_id", AttrType::String, "the VPC (vpc-…)").force_new(),
                AttrSchema::optional(
                    "ingress",
                    rules(),
                    "inbound rules: [{protocol = \"tcp\", from_port = 22, to_port = 22, cidr_blocks = [\"0.0.0.0/0\"], description = \"ssh\"}]",
                )
                .default(json!([]))
                .validate_with(check_rules),
                // EC2's own default: everything out. Setting `egress` replaces it.
                AttrSchema::optional("egress", rules(), "outbound rules, like ingress (default: all traffic to anywhere)")
                    .default(json!([{"protocol": "-1", "cidr_blocks": ["0.0.0.0/0"]}]))
                    .validate_with(check_rules),
                tags_attr(),
                id_attr("the security group id (sg-…)"),
            ],
            update_in_place: true,
            create_before_destroy: false,
            adoptable: true,
        }
    }

    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError> {
        let prior = priors(items);
        let mut found = HashMap::new();
        for ids in id_chunks(items) {
            let pages = all_pages(
                "DescribeSecurityGroups",
                aws.ec2.describe_security_groups().filters(tags::id_filter("group-id", &ids)).into_paginator().send(),
            )
            .await?;
            for g in pages.iter().flat_map(|p| p.security_groups()) {
                let id = g.group_id().unwrap_or_default().to_string();
                let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
                found.insert(id, observed(g, &p));
            }
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        let out =
            aws.ec2.describe_security_groups().filters(super::owned_filter()).send().await.map_err(|e| sdk("DescribeSecurityGroups", e))?;
        Ok(Some(out.security_groups().iter().filter_map(|o| super::owned(self, o.tags(), observed(o, &Attrs::new()))).collect()))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let out = aws
            .ec2
            .describe_security_groups()
            .set_filters(Some(tags::owner_filters(&req.ownership)))
            .send()
            .await
            .map_err(|e| sdk("DescribeSecurityGroups", e))?;
        Ok(out.security_groups().first().map(|g| observed(g, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let name = req_str(&req.inputs, "name")?;
        let vpc = req_str(&req.inputs, "vpc_id")?;
        let description = req.inputs.get("description").and_then(Value::as_str).unwrap_or("Managed by Phoenix");
        let tags = tags::all_tags(&req.ownership, req.inputs.get("tags"));
        // No ClientToken here; an interrupted create is adopted by its tags (and the name is unique per VPC).
        let made = create_once(aws, self, req, "CreateSecurityGroup", || {
            aws.ec2
                .create_security_group()
                .group_name(name)
                .description(description)
                .vpc_id(vpc)
                .tag_specifications(tags::spec(ResourceType::SecurityGroup, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        })
        .await?;
        let id = &made.id(|o| o.group_id(), "CreateSecurityGroup")?;
        let made: Attrs = [("id".to_string(), json!(id))].into_iter().collect();
        // A new group has no inbound rules and EC2's allow-all outbound rule:
        // known without a describe. The group exists now: failures must not leak it.
        let rules = async {
            reconcile(aws, id, Direction::Ingress, &configured_rules(req.inputs.get("ingress")), &BTreeSet::new()).await?;
            let egress = req.inputs.get("egress").map_or_else(allow_all_egress, |e| configured_rules(Some(e)));
            reconcile(aws, id, Direction::Egress, &egress, &allow_all_egress()).await
        };
        rules.await.map_err(|e| e.with_created(made.clone()))?;
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = id_of(&req.prior_outputs)?;
        if req.changed.iter().any(|c| c == "ingress" || c == "egress") {
            // Against what EC2 holds now, so rules added or removed by hand are reconciled too.
            let current = {
                aws.ec2
                    .describe_security_groups()
                    .filters(tags::id_filter("group-id", &[id.to_string()]))
                    .send()
                    .await
                    .map_err(|e| sdk("DescribeSecurityGroups", e))?
            };
            let g = current
                .security_groups()
                .first()
                .ok_or_else(|| ProviderError::permanent(format!("security group {id} no longer exists")))?;
            reconcile(aws, id, Direction::Ingress, &configured_rules(req.inputs.get("ingress")), &ec2_rules(g.ip_permissions())).await?;
            let egress = req.inputs.get("egress").map_or_else(allow_all_egress, |e| configured_rules(Some(e)));
            reconcile(aws, id, Direction::Egress, &egress, &ec2_rules(g.ip_permissions_egress())).await?;
        }
        update_tags(aws, id, req).await?;
        Ok(req.prior_outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?.to_string();
        // Instances still terminating hold the group: DependencyViolation is retried until they are gone.
        delete_retrying(aws, "DeleteSecurityGroup", || {
            let call = aws.ec2.delete_security_group().group_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
