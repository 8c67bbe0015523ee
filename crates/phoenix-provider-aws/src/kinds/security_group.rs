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
use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, ResourceType, Tag};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::{Validator, validators};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Aws, create_call_config};
use crate::create::{Made, create_once};
use crate::ec2::{self, Ec2Kind, UserTags};
use crate::error::{code, sdk};
use crate::tags;

pub struct SecurityGroup;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupSpec {
    /// the group name, unique in its VPC
    #[schemars(extend("force_new" = true, "format" = "aws-security-group-name"))]
    pub name: String,
    /// what the group is for (EC2 cannot change it)
    #[serde(default = "managed_by_phoenix")]
    #[schemars(extend("force_new" = true))]
    pub description: String,
    /// the VPC (vpc-…)
    #[schemars(extend("force_new" = true))]
    pub vpc_id: String,
    /// inbound rules: [{protocol = "tcp", from_port = 22, to_port = 22, cidr_blocks = ["0.0.0.0/0"], description = "ssh"}]
    #[serde(default)]
    #[schemars(extend("format" = "aws-security-group-rules"))]
    pub ingress: Vec<RuleTable>,
    /// outbound rules, like ingress (default: all traffic to anywhere)
    // EC2's own default: everything out. Setting `egress` replaces it.
    #[serde(default = "all_traffic_out")]
    #[schemars(extend("format" = "aws-security-group-rules"))]
    pub egress: Vec<RuleTable>,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

/// A rule table as written: one EC2 rule per CIDR block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleTable {
    /// `tcp`, `udp`, `icmp`, `all` (or `-1`), or a protocol number
    pub protocol: String,
    /// the first port (ICMP: the type); none for `all`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i64>,
    /// the last port (ICMP: the code); default: `from_port`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i64>,
    pub cidr_blocks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SecurityGroupOutputs {
    /// the security group id (sg-…)
    #[schemars(extend("stable" = true))]
    pub id: String,
}

fn managed_by_phoenix() -> String {
    "Managed by Phoenix".into()
}

fn all_traffic_out() -> Vec<RuleTable> {
    vec![RuleTable { protocol: "-1".into(), from_port: None, to_port: None, cidr_blocks: vec!["0.0.0.0/0".into()], description: None }]
}

/// A port range (from, to); none for protocol `-1`.
type Ports = Option<(i32, i32)>;

/// One EC2 rule: protocol (`tcp`, `udp`, `icmp`, `-1` for all), port range
/// (none for `-1`), one CIDR block, and its description (`""` for none).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rule {
    protocol: String,
    ports: Ports,
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
fn table_rules(t: &RuleTable) -> Vec<Rule> {
    let protocol = protocol(&t.protocol);
    let ports = if protocol == "-1" {
        None
    } else {
        // ICMP without ports means every type and code; a single port needs no `to_port`.
        let from = t.from_port.unwrap_or(-1) as i32;
        Some((from, t.to_port.map_or(from, |p| p as i32)))
    };
    let description = t.description.clone().unwrap_or_default();
    t.cidr_blocks.iter().map(|c| Rule { protocol: protocol.clone(), ports, cidr: c.clone(), description: description.clone() }).collect()
}

fn configured_rules(tables: &[RuleTable]) -> BTreeSet<Rule> {
    tables.iter().flat_map(table_rules).collect()
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
    let mut groups: BTreeMap<(&str, Ports), Vec<IpRange>> = BTreeMap::new();
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
fn observed_tables(prior: &[RuleTable], actual: &BTreeSet<Rule>) -> Vec<RuleTable> {
    let mut left = actual.clone();
    let mut out = Vec::new();
    for t in prior {
        let rules = table_rules(t);
        if !rules.is_empty() && rules.iter().all(|r| left.contains(r)) {
            rules.iter().for_each(|r| {
                left.remove(r);
            });
            out.push(t.clone());
        }
    }
    let mut groups: BTreeMap<(String, Ports, String), Vec<String>> = BTreeMap::new();
    for r in left {
        groups.entry((r.protocol, r.ports, r.description)).or_default().push(r.cidr);
    }
    out.extend(groups.into_iter().map(|((protocol, ports, description), cidr_blocks)| RuleTable {
        protocol,
        from_port: ports.map(|p| i64::from(p.0)),
        to_port: ports.map(|p| i64::from(p.1)),
        cidr_blocks,
        description: Some(description).filter(|d| !d.is_empty()),
    }));
    out
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
impl Ec2Kind for SecurityGroup {
    type Object = aws_sdk_ec2::types::SecurityGroup;
    const ID_FILTER: &'static str = "group-id";

    async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Self::Object>, ProviderError> {
        let pages = super::all_pages(
            "DescribeSecurityGroups",
            aws.ec2.describe_security_groups().set_filters(Some(filters)).into_paginator().send(),
        )
        .await?;
        Ok(pages.into_iter().flat_map(|p| p.security_groups.unwrap_or_default()).collect())
    }
    fn id(g: &Self::Object) -> &str {
        g.group_id().unwrap_or_default()
    }
    fn tags(g: &Self::Object) -> &[Tag] {
        g.tags()
    }
    fn id_of(outputs: &SecurityGroupOutputs) -> &str {
        &outputs.id
    }
    fn observe(g: &Self::Object, prior: Option<&SecurityGroupSpec>) -> Observed<Self> {
        let spec = SecurityGroupSpec {
            name: g.group_name().unwrap_or_default().to_string(),
            description: g.description().unwrap_or_default().to_string(),
            vpc_id: g.vpc_id().unwrap_or_default().to_string(),
            ingress: observed_tables(prior.map_or(&[][..], |p| &p.ingress), &ec2_rules(g.ip_permissions())),
            egress: observed_tables(prior.map_or(&[][..], |p| &p.egress), &ec2_rules(g.ip_permissions_egress())),
            tags: ec2::user_tags(g.tags()),
        };
        Observed { spec, outputs: SecurityGroupOutputs { id: Self::id(g).to_string() } }
    }
}

#[async_trait]
impl Kind for SecurityGroup {
    const TYPE: &'static str = "aws.security_group";
    const DESCRIPTION: &'static str = "A VPC security group with its ingress and egress rules";
    const FORMATS: &'static [(&'static str, Validator)] = &[("aws-security-group-rules", check_rules)];
    type Client = Aws;
    type Spec = SecurityGroupSpec;
    type Outputs = SecurityGroupOutputs;

    /// Names are unique in a VPC (and a VPC may be shared through a variable).
    fn capabilities(&self) -> Capabilities {
        Capabilities::managed().unique_names(&["name"])
    }

    async fn read(&self, aws: &Aws, items: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
        ec2::read(aws, items).await
    }

    async fn import(&self, aws: &Aws, id: &str) -> Result<Option<Observed<Self>>, ProviderError> {
        ec2::import(aws, id).await
    }

    async fn find(&self, aws: &Aws, req: Found<'_, Self>) -> Result<Option<Observed<Self>>, ProviderError> {
        ec2::find(aws, req.spec, req.ownership).await
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<Owned<Self>>>, ProviderError> {
        ec2::list_owned(aws).await
    }

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<SecurityGroupOutputs, ProviderError> {
        let spec = req.spec;
        let tags = tags::all_tags_typed(req.ownership, spec.tags.as_ref());
        // No ClientToken here; an interrupted create is adopted by its tags (and the name is unique per VPC).
        let call = || {
            aws.ec2
                .create_security_group()
                .group_name(&spec.name)
                .description(&spec.description)
                .vpc_id(&spec.vpc_id)
                .tag_specifications(tags::spec(ResourceType::SecurityGroup, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        };
        let find = || ec2::find::<SecurityGroup>(aws, spec, req.ownership);
        let made = match create_once("CreateSecurityGroup", call, find).await? {
            Made::Answered(o) => SecurityGroupOutputs { id: o.group_id().unwrap_or_default().to_string() },
            Made::Found(found) => found.outputs,
        };
        if made.id.is_empty() {
            return Err(ProviderError::permanent("CreateSecurityGroup returned no id"));
        }
        let id = &made.id;
        // A new group has no inbound rules and EC2's allow-all outbound rule:
        // known without a describe. The group exists now: failures must not leak it.
        let rules = async {
            reconcile(aws, id, Direction::Ingress, &configured_rules(&spec.ingress), &BTreeSet::new()).await?;
            reconcile(aws, id, Direction::Egress, &configured_rules(&spec.egress), &allow_all_egress()).await
        };
        rules.await.map_err(|e| e.with_created(phoenix_core::kit::output_attrs(&made)))?;
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<SecurityGroupOutputs, ProviderError> {
        let id = &req.outputs.id;
        if req.changed("ingress") || req.changed("egress") {
            // Against what EC2 holds now, so rules added or removed by hand are reconciled too.
            let g = ec2::describe_one::<Self>(aws, id)
                .await?
                .ok_or_else(|| ProviderError::permanent(format!("security group {id} no longer exists")))?;
            reconcile(aws, id, Direction::Ingress, &configured_rules(&req.spec.ingress), &ec2_rules(g.ip_permissions())).await?;
            reconcile(aws, id, Direction::Egress, &configured_rules(&req.spec.egress), &ec2_rules(g.ip_permissions_egress())).await?;
        }
        ec2::update_tags(aws, id, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        Ok(req.outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let id = req.outputs.id.clone();
        // Instances still terminating hold the group: DependencyViolation is retried until they are gone.
        super::delete_retrying(aws, "DeleteSecurityGroup", || {
            let call = aws.ec2.delete_security_group().group_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
