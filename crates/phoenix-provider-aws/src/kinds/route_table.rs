//! `aws.route_table`: routes of a VPC and the subnets that use them.
//!
//! Routes and subnet associations change in place. Both are reconciled
//! against what EC2 has *now* (one DescribeRouteTables), not against the
//! last applied inputs, so changes made outside Phoenix are undone too.
//! Only routes Phoenix could have made (origin `CreateRoute`) are managed:
//! the VPC's `local` route and propagated routes are left alone.

use phoenix_core::schema::Invalid;
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ResourceType, RouteOrigin};
use phoenix_core::provider::{AdoptRequest, CreateRequest, DeleteRequest, Observed, ProviderError, RefreshItem, UpdateRequest};
use phoenix_core::schema::{AttrSchema, AttrType, ResourceSchema, validators};
use phoenix_core::value::{Attrs, Value};
use serde_json::json;

use super::create_once;
use super::{
    Kind, all_pages, delete_retrying, id_attr, id_chunks, id_of, in_item_order, priors, req_str, str_list, tags_attr, update_tags,
};
use crate::client::{Aws, create_call_config};
use crate::error::{code, is_not_found, sdk};
use crate::tags;

pub struct RouteTable;

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

/// Desired routes as (destination, target).
fn desired_routes(inputs: &Attrs) -> Vec<(String, String)> {
    let Some(items) = inputs.get("routes").and_then(Value::as_array) else { return Vec::new() };
    items.iter().filter_map(|r| Some((r.get("cidr_block")?.as_str()?.to_string(), r.get("gateway_id")?.as_str()?.to_string()))).collect()
}

/// The routes Phoenix manages, as (destination, target): any target kind, so a
/// route to a NAT gateway or an instance added by hand still shows as drift.
fn actual_routes(t: &aws_sdk_ec2::types::RouteTable) -> Vec<(String, String)> {
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
            Some((r.destination_cidr_block()?.to_string(), target.to_string()))
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
fn order_like(prior: Option<&Value>, mut actual: Vec<Value>) -> Value {
    let mut out = Vec::new();
    for p in prior.and_then(Value::as_array).into_iter().flatten() {
        if let Some(i) = actual.iter().position(|a| a == p) {
            out.push(actual.remove(i));
        }
    }
    actual.sort_by_key(Value::to_string);
    out.extend(actual);
    Value::Array(out)
}

fn observed(t: &aws_sdk_ec2::types::RouteTable, prior: &Attrs) -> Observed {
    let mut inputs = Attrs::new();
    if let Some(v) = t.vpc_id() {
        inputs.insert("vpc_id".into(), json!(v));
    }
    let routes = actual_routes(t).into_iter().map(|(c, g)| json!({"cidr_block": c, "gateway_id": g})).collect();
    inputs.insert("routes".into(), order_like(prior.get("routes"), routes));
    let subnets = associations(t).into_iter().map(|(s, _)| json!(s)).collect();
    inputs.insert("subnet_ids".into(), order_like(prior.get("subnet_ids"), subnets));
    tags::observe_tags(&mut inputs, prior, t.tags());
    let outputs = [("id".to_string(), json!(t.route_table_id().unwrap_or_default()))].into_iter().collect();
    Observed { inputs, outputs }
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<aws_sdk_ec2::types::RouteTable>, ProviderError> {
    let out = aws
        .ec2
        .describe_route_tables()
        .filters(tags::id_filter("route-table-id", &[id.to_string()]))
        .send()
        .await
        .map_err(|e| sdk("DescribeRouteTables", e))?;
    Ok(out.route_tables().first().cloned())
}

/// Makes the table's routes and associations those of `inputs`, from
/// `current` (`None` for a table just created: no routes, no associations).
/// Targets and subnets made a moment ago may not be visible yet: NotFound is retried.
async fn reconcile(aws: &Aws, id: &str, inputs: &Attrs, current: Option<&aws_sdk_ec2::types::RouteTable>) -> Result<(), ProviderError> {
    let want = desired_routes(inputs);
    let have = current.map(actual_routes).unwrap_or_default();
    for (cidr, _) in have.iter().filter(|(c, _)| !want.iter().any(|(w, _)| w == c)) {
        match aws.ec2.delete_route().route_table_id(id).destination_cidr_block(cidr).send().await {
            Err(e) if !is_not_found(&e) => return Err(sdk("DeleteRoute", e)),
            _ => {}
        }
    }
    for (cidr, gw) in &want {
        let replace = match have.iter().find(|(c, _)| c == cidr) {
            Some((_, g)) if g == gw => continue,
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
    let want = str_list(inputs, "subnet_ids");
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
impl Kind for RouteTable {
    fn schema(&self) -> ResourceSchema {
        let table = AttrType::Map(Box::new(AttrType::String));
        ResourceSchema {
            type_name: "aws.route_table",
            description: "A VPC route table with its routes and subnet associations",
            attrs: vec![
                AttrSchema::required("vpc_id", AttrType::String, "the VPC (vpc-…)").force_new(),
                AttrSchema::optional(
                    "routes",
                    AttrType::List(Box::new(table)),
                    "routes: [{cidr_block = \"0.0.0.0/0\", gateway_id = \"igw-…\"}]",
                )
                .default(json!([]))
                .validate_with(check_routes),
                AttrSchema::optional("subnet_ids", AttrType::List(Box::new(AttrType::String)), "subnets that use this table")
                    .default(json!([])),
                tags_attr(),
                id_attr("the route table id (rtb-…)"),
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
                "DescribeRouteTables",
                aws.ec2.describe_route_tables().filters(tags::id_filter("route-table-id", &ids)).into_paginator().send(),
            )
            .await?;
            for t in pages.iter().flat_map(|p| p.route_tables()) {
                let id = t.route_table_id().unwrap_or_default().to_string();
                let p = prior.get(id.as_str()).copied().cloned().unwrap_or_default();
                found.insert(id, observed(t, &p));
            }
        }
        Ok(in_item_order(items, found))
    }

    async fn list_owned(&self, aws: &Aws) -> Result<Option<Vec<phoenix_core::provider::OwnedObject>>, ProviderError> {
        let out = aws.ec2.describe_route_tables().filters(super::owned_filter()).send().await.map_err(|e| sdk("DescribeRouteTables", e))?;
        Ok(Some(out.route_tables().iter().filter_map(|o| super::owned(self, o.tags(), observed(o, &Attrs::new()))).collect()))
    }

    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError> {
        let out = aws
            .ec2
            .describe_route_tables()
            .set_filters(Some(tags::owner_filters(&req.ownership)))
            .send()
            .await
            .map_err(|e| sdk("DescribeRouteTables", e))?;
        Ok(out.route_tables().first().map(|t| observed(t, &req.inputs)))
    }

    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError> {
        let vpc = req_str(&req.inputs, "vpc_id")?;
        let tags = tags::all_tags(&req.ownership, req.inputs.get("tags"));
        let made = create_once(aws, self, req, "CreateRouteTable", || {
            aws.ec2
                .create_route_table()
                .vpc_id(vpc)
                .client_token(&req.idempotency_token)
                .tag_specifications(tags::spec(ResourceType::RouteTable, tags.clone()))
                .customize()
                .config_override(create_call_config())
                .send()
        })
        .await?;
        let id = &made.id(|o| o.route_table().and_then(|t| t.route_table_id()), "CreateRouteTable")?;
        let made: Attrs = [("id".to_string(), json!(id))].into_iter().collect();
        // The table exists now: a failed route or association must not leak it.
        reconcile(aws, id, &req.inputs, None).await.map_err(|e| e.with_created(made.clone()))?;
        Ok(made)
    }

    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError> {
        let id = id_of(&req.prior_outputs)?;
        if req.changed.iter().any(|c| c == "routes" || c == "subnet_ids") {
            let current = describe(aws, id).await?.ok_or_else(|| ProviderError::permanent(format!("route table {id} no longer exists")))?;
            reconcile(aws, id, &req.inputs, Some(&current)).await?;
        }
        update_tags(aws, id, req).await?;
        Ok(req.prior_outputs.clone())
    }

    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError> {
        let id = id_of(&req.outputs)?.to_string();
        let Some(t) = describe(aws, &id).await? else { return Ok(()) };
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
        delete_retrying(aws, "DeleteRouteTable", || {
            let call = aws.ec2.delete_route_table().route_table_id(&id);
            async move { call.send().await.map(|_| ()) }
        })
        .await
    }
}
