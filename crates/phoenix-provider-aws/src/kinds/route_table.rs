//! `aws.route_table`: routes of a VPC and the subnets that use them.
//!
//! Routes and subnet associations change in place. Both are reconciled
//! against what EC2 has *now* (one DescribeRouteTables), not against the
//! last applied inputs, so changes made outside Phoenix are undone too.
//! Only routes Phoenix could have made (origin `CreateRoute`) are managed:
//! the VPC's `local` route and propagated routes are left alone.

use phoenix_core::schema::Invalid;
use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, RouteOrigin, Tag};
use phoenix_core::kit::{Capabilities, Create, Delete, Found, Kind, Observed, Owned, Prior, Update};
use phoenix_core::provider::ProviderError;
use phoenix_core::schema::{Validator, validators};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Aws, create_call_config};
use crate::create::{Made, create_once};
use crate::ec2::{self, Ec2Kind, UserTags};
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct RouteTable;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteTableSpec {
    /// the VPC (vpc-…)
    #[schemars(extend("force_new" = true))]
    pub vpc_id: String,
    /// routes: [{cidr_block = "0.0.0.0/0", gateway_id = "igw-…"}]
    // Written as tables of strings; the format checks their keys and CIDRs.
    #[serde(default)]
    #[schemars(with = "Vec<BTreeMap<String, String>>", extend("format" = "aws-routes"))]
    pub routes: Vec<Route>,
    /// subnets that use this table
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    /// extra tags (Phoenix adds its ownership tags and Name)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<UserTags>,
}

/// One route: a destination and its target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub cidr_block: String,
    pub gateway_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct RouteTableOutputs {
    /// the route table id (rtb-…)
    #[schemars(extend("stable" = true))]
    pub id: String,
}

/// Checks `routes`: a list of `{cidr_block, gateway_id}` tables, one per destination.
fn check_routes(value: &Value) -> Result<(), Invalid> {
    let Some(items) = value.as_array() else { return Ok(()) };
    let mut seen = Vec::new();
    for (i, r) in items.iter().enumerate() {
        let Some(m) = r.as_object() else { continue };
        if let Some(k) = m.keys().find(|k| *k != "cidr_block" && *k != "gateway_id") {
            return Err(Invalid(format!("route {i}: unknown key `{k}` (a route takes cidr_block and gateway_id)")));
        }
        let (Some(cidr), Some(_)) = (m.get("cidr_block"), m.get("gateway_id")) else {
            return Err(Invalid(format!("route {i}: needs both cidr_block and gateway_id")));
        };
        validators::ipv4_cidr(cidr).map_err(|e| format!("route {i}: {e}"))?;
        if seen.contains(&cidr) {
            return Err(Invalid(format!("route {i}: a second route to {cidr}; a destination has one route")));
        }
        seen.push(cidr);
    }
    Ok(())
}

/// The routes Phoenix manages: any target kind, so a route to a NAT gateway
/// or an instance added by hand still shows as drift.
fn actual_routes(t: &aws_sdk_ec2::types::RouteTable) -> Vec<Route> {
    t.routes()
        .iter()
        .filter(|r| r.origin() == Some(&RouteOrigin::CreateRoute))
        .filter_map(|r| {
            let target = r
                .gateway_id()
                .or(r.nat_gateway_id())
                .or(r.transit_gateway_id())
                .or(r.vpc_peering_connection_id())
                .or(r.network_interface_id())
                .or(r.instance_id())
                .unwrap_or_default();
            Some(Route { cidr_block: r.destination_cidr_block()?.to_string(), gateway_id: target.to_string() })
        })
        .collect()
}

/// Subnet associations as (subnet id, association id); the main association is not one.
fn associations(t: &aws_sdk_ec2::types::RouteTable) -> Vec<(String, String)> {
    t.associations()
        .iter()
        .filter(|a| !a.main().unwrap_or(false))
        .filter_map(|a| Some((a.subnet_id()?.to_string(), a.route_table_association_id()?.to_string())))
        .collect()
}

/// Observed list items in the order the definition lists them, new ones after
/// (sorted), so an unchanged list never reads as drift because EC2 reordered it.
fn order_like<T: PartialEq + Ord>(prior: &[T], mut actual: Vec<T>) -> Vec<T> {
    let mut out = Vec::new();
    for p in prior {
        if let Some(i) = actual.iter().position(|a| a == p) {
            out.push(actual.remove(i));
        }
    }
    actual.sort();
    out.extend(actual);
    out
}

/// Makes the table's routes and associations those of `spec`, from
/// `current` (`None` for a table just created: no routes, no associations).
/// Targets and subnets made a moment ago may not be visible yet: NotFound is retried.
async fn reconcile(
    aws: &Aws,
    id: &str,
    spec: &RouteTableSpec,
    current: Option<&aws_sdk_ec2::types::RouteTable>,
) -> Result<(), ProviderError> {
    let want = &spec.routes;
    let have = current.map(actual_routes).unwrap_or_default();
    for r in have.iter().filter(|h| !want.iter().any(|w| w.cidr_block == h.cidr_block)) {
        match aws.ec2.delete_route().route_table_id(id).destination_cidr_block(&r.cidr_block).send().await {
            Err(e) if !is_not_found(&e) => return Err(sdk("DeleteRoute", e)),
            _ => {}
        }
    }
    for Route { cidr_block: cidr, gateway_id: gw } in want {
        let replace = match have.iter().find(|h| &h.cidr_block == cidr) {
            Some(h) if &h.gateway_id == gw => continue,
            Some(_) => true,
            None => false,
        };
        crate::wait::consistent(|| async {
            if !replace {
                match aws.ec2.create_route().route_table_id(id).destination_cidr_block(cidr).gateway_id(gw).send().await {
                    Ok(_) => return Ok(()),
                    // Made by a retried call (or by hand) meanwhile: point it where it should go.
                    Err(e) if code(&e) == Some("RouteAlreadyExists") => {}
                    Err(e) => return Err((is_not_found(&e), sdk("CreateRoute", e))),
                }
            }
            let r = aws.ec2.replace_route().route_table_id(id).destination_cidr_block(cidr).gateway_id(gw).send().await;
            r.map(|_| ()).map_err(|e| (is_not_found(&e), sdk("ReplaceRoute", e)))
        })
        .await?;
    }
    let want = &spec.subnet_ids;
    let have = current.map(associations).unwrap_or_default();
    for (_, assoc) in have.iter().filter(|(s, _)| !want.contains(s)) {
        match aws.ec2.disassociate_route_table().association_id(assoc).send().await {
            Err(e) if !is_not_found(&e) => return Err(sdk("DisassociateRouteTable", e)),
            _ => {}
        }
    }
    for subnet in want.iter().filter(|s| !have.iter().any(|(h, _)| h == *s)) {
        crate::wait::consistent(|| async {
            aws.ec2
                .associate_route_table()
                .route_table_id(id)
                .subnet_id(subnet)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| (is_not_found(&e), sdk("AssociateRouteTable", e)))
        })
        .await?;
    }
    Ok(())
}

#[async_trait]
impl Ec2Kind for RouteTable {
    type Object = aws_sdk_ec2::types::RouteTable;
    const ID_FILTER: &'static str = "route-table-id";

    async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Self::Object>, ProviderError> {
        let pages =
            super::all_pages("DescribeRouteTables", aws.ec2.describe_route_tables().set_filters(Some(filters)).into_paginator().send())
                .await?;
        Ok(pages.into_iter().flat_map(|p| p.route_tables.unwrap_or_default()).collect())
    }
    fn id(t: &Self::Object) -> &str {
        t.route_table_id().unwrap_or_default()
    }
    fn tags(t: &Self::Object) -> &[Tag] {
        t.tags()
    }
    fn id_of(outputs: &RouteTableOutputs) -> &str {
        &outputs.id
    }
    fn observe(t: &Self::Object, prior: Option<&RouteTableSpec>) -> Observed<Self> {
        let subnets = associations(t).into_iter().map(|(s, _)| s).collect();
        let spec = RouteTableSpec {
            vpc_id: t.vpc_id().unwrap_or_default().to_string(),
            routes: order_like(prior.map_or(&[][..], |p| &p.routes), actual_routes(t)),
            subnet_ids: order_like(prior.map_or(&[][..], |p| &p.subnet_ids), subnets),
            tags: ec2::user_tags(t.tags()),
        };
        Observed { spec, outputs: RouteTableOutputs { id: Self::id(t).to_string() } }
    }
}

#[async_trait]
impl Kind for RouteTable {
    const TYPE: &'static str = "aws.route_table";
    const DESCRIPTION: &'static str = "A VPC route table with its routes and subnet associations";
    const FORMATS: &'static [(&'static str, Validator)] = &[("aws-routes", check_routes)];
    type Client = Aws;
    type Spec = RouteTableSpec;
    type Outputs = RouteTableOutputs;

    fn capabilities(&self) -> Capabilities {
        Capabilities::managed()
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

    async fn create(&self, aws: &Aws, req: Create<'_, Self>) -> Result<RouteTableOutputs, ProviderError> {
        let tags = tags::all_tags_typed(req.ownership, req.spec.tags.as_ref());
        let call = || {
            aws.ec2
                .create_route_table()
                .vpc_id(&req.spec.vpc_id)
                .client_token(req.idempotency_token)
                .tag_specifications(tags::spec(ResourceType::RouteTable, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        };
        let find = || ec2::find::<RouteTable>(aws, req.spec, req.ownership);
        let made = match create_once("CreateRouteTable", call, find).await? {
            Made::Answered(o) => RouteTableOutputs { id: o.route_table().and_then(|t| t.route_table_id()).unwrap_or_default().to_string() },
            Made::Found(found) => found.outputs,
        };
        if made.id.is_empty() {
            return Err(ProviderError::permanent("CreateRouteTable returned no id"));
        }
        // The table exists now: a failed route or association must not leak it.
        reconcile(aws, &made.id, req.spec, None).await.map_err(|e| e.with_created(phoenix_core::kit::output_attrs(&made)))?;
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: Update<'_, Self>) -> Result<RouteTableOutputs, ProviderError> {
        let id = &req.outputs.id;
        if req.changed("routes") || req.changed("subnet_ids") {
            let now = ec2::describe_one::<RouteTable>(aws, id)
                .await?
                .ok_or_else(|| ProviderError::permanent(format!("route table {id} no longer exists")))?;
            reconcile(aws, id, req.spec, Some(&now)).await?;
        }
        ec2::update_tags(aws, id, req.prior.tags.as_ref(), req.spec.tags.as_ref(), req.ownership).await?;
        Ok(req.outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: Delete<'_, Self>) -> Result<(), ProviderError> {
        let id = req.outputs.id.clone();
        let Some(t) = ec2::describe_one::<RouteTable>(aws, &id).await? else { return Ok(()) };
        // A table is deletable only once no subnet uses it.
        for (_, assoc) in associations(&t) {
            match aws.ec2.disassociate_route_table().association_id(&assoc).send().await {
                Err(e) if !is_not_found(&e) => return Err(sdk("DisassociateRouteTable", e)),
                _ => {}
            }
        }
        if t.associations().iter().any(|a| a.main().unwrap_or(false)) {
            return Err(ProviderError::permanent(format!("route table {id} is its VPC's main table; EC2 deletes it with the VPC")));
        }
        super::delete_retrying(aws, "DeleteRouteTable", || {
            let call = aws.ec2.delete_route_table().route_table_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
