//! One module per resource type. Each implements [`Kind`] against the shared
//! [`Aws`] context; `lib.rs` only dispatches.
//!
//! # Contract of every kind
//! - `create` tags the object with ownership tags (`crate::tags::all_tags`),
//!   passes `req.idempotency_token` as `ClientToken` where the API has one, and
//!   waits until the object is usable (running, available, attached).
//! - `read` reads a whole batch in a handful of paginated `Describe*` calls
//!   (ids as a filter: missing ids are simply absent, not an error) and
//!   returns `None` for objects that are gone (or terminated/deleted).
//! - `find` looks an object up by its ownership tags (adoption after a crash).
//! - `delete` succeeds when the object is already gone, and waits until it
//!   is gone when dependents' deletes would otherwise fail.

use async_trait::async_trait;
use phoenix_core::provider::{
    AdoptRequest, CreateRequest, DeleteRequest, Observed, OwnedObject, ProviderError, RefreshItem, UpdateRequest,
};
use phoenix_core::schema::ResourceSchema;
use phoenix_core::value::{Attrs, Value};

use crate::client::Aws;

pub mod autoscaling_group;
pub mod autoscaling_policy;
pub mod db_cluster;
pub mod db_instance;
pub mod db_parameter_group;
pub mod db_subnet_group;
pub mod eip;
pub mod instance;
pub mod internet_gateway;
pub mod key_pair;
pub mod launch_template;
pub mod lb;
pub mod lb_listener;
pub mod lb_target_group;
pub mod route53_record;
pub mod route53_zone;
pub mod route_table;
pub mod security_group;
pub mod subnet;
pub mod volume;
pub mod volume_attachment;
pub mod vpc;

/// One AWS resource type.
#[async_trait]
pub trait Kind: Send + Sync {
    fn schema(&self) -> ResourceSchema;
    async fn read(&self, aws: &Aws, items: &[RefreshItem]) -> Result<Vec<Option<Observed>>, ProviderError>;
    async fn find(&self, aws: &Aws, req: &AdoptRequest) -> Result<Option<Observed>, ProviderError>;
    async fn create(&self, aws: &Aws, req: &CreateRequest) -> Result<Attrs, ProviderError>;
    async fn update(&self, aws: &Aws, req: &UpdateRequest) -> Result<Attrs, ProviderError>;
    async fn delete(&self, aws: &Aws, req: &DeleteRequest) -> Result<(), ProviderError>;

    /// Every live object of this kind carrying Phoenix's ownership tags, of
    /// any environment: what `phoenix gc` compares with every state to find
    /// leaks. `Ok(None)` (the default) means this kind cannot be listed, and
    /// `gc` reports it as not swept.
    ///
    /// A kind implements it with one `Describe*` filtered on [`owned_filter`]
    /// (plus a state filter where deleted objects linger), mapping each object
    /// through [`owned`] with the same `observed` its `read` uses.
    async fn list_owned(&self, _aws: &Aws) -> Result<Option<Vec<OwnedObject>>, ProviderError> {
        Ok(None)
    }
}

/// `tag-key=phoenix:environment`: every object Phoenix made, whoever's.
pub fn owned_filter() -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder().name("tag-key").values("phoenix:environment").build()
}

/// An object as `gc` sees it: its ownership read back from its tags (`None`
/// when they are incomplete: such an object is never touched).
pub fn owned(kind: &dyn Kind, tags: &[aws_sdk_ec2::types::Tag], observed: Observed) -> Option<OwnedObject> {
    owned_by_tags(kind, |k| crate::tags::tag(tags, k), observed)
}

/// [`owned`] for the APIs whose tags come as key/value pairs (ELBv2, RDS,
/// Route 53, Auto Scaling).
pub fn owned_pairs(kind: &dyn Kind, pairs: &[(String, String)], observed: Observed) -> Option<OwnedObject> {
    owned_by_tags(kind, |k| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()), observed)
}

fn owned_by_tags<'a>(kind: &dyn Kind, get: impl FnMut(&str) -> Option<&'a str>, observed: Observed) -> Option<OwnedObject> {
    let ownership = phoenix_core::state::Ownership::from_tags(get)?;
    Some(OwnedObject {
        type_name: kind.schema().type_name.to_string(),
        ownership,
        inputs: observed.inputs,
        outputs: observed.outputs,
        container: None,
    })
}

/// Every type, in the order they usually depend on each other.
pub fn all() -> &'static [&'static dyn Kind] {
    &[
        &subnet::Subnet,
        &internet_gateway::InternetGateway,
        &route_table::RouteTable,
        &security_group::SecurityGroup,
        &key_pair::KeyPair,
        &eip::Eip,
    ]
}

pub fn by_name(type_name: &str) -> Option<&'static dyn Kind> {
    all().iter().copied().find(|k| k.schema().type_name == type_name)
}

/// A required string input (validation guarantees presence; this guards the provider itself).
pub fn req_str<'a>(inputs: &'a Attrs, name: &str) -> Result<&'a str, ProviderError> {
    inputs.get(name).and_then(Value::as_str).ok_or_else(|| ProviderError::permanent(format!("attribute `{name}` is missing")))
}

pub fn opt_str<'a>(inputs: &'a Attrs, name: &str) -> Option<&'a str> {
    inputs.get(name).and_then(Value::as_str)
}

pub fn opt_i64(inputs: &Attrs, name: &str) -> Option<i64> {
    inputs.get(name).and_then(Value::as_i64)
}

/// A string list input.
pub fn str_list(inputs: &Attrs, name: &str) -> Vec<String> {
    inputs
        .get(name)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The id a resource's state recorded (`outputs.id`).
pub fn id_of(outputs: &Attrs) -> Result<&str, ProviderError> {
    outputs.get("id").and_then(Value::as_str).ok_or_else(|| ProviderError::permanent("state holds no `id` for this object"))
}

/// Orders a batch's results like its items, by id; missing ids are `None`.
pub fn in_item_order(items: &[RefreshItem], mut found: std::collections::HashMap<String, Observed>) -> Vec<Option<Observed>> {
    items.iter().map(|i| i.outputs.get("id").and_then(Value::as_str).and_then(|id| found.remove(id))).collect()
}

/// The ids of a batch, chunked to the 200 values a filter takes.
pub fn id_chunks(items: &[RefreshItem]) -> Vec<Vec<String>> {
    let ids: Vec<String> = items.iter().filter_map(|i| i.outputs.get("id").and_then(Value::as_str).map(str::to_string)).collect();
    ids.chunks(200).map(<[String]>::to_vec).collect()
}

/// `tags` as a schema attribute, shared by every taggable type.
pub fn tags_attr() -> phoenix_core::schema::AttrSchema {
    use phoenix_core::schema::{AttrSchema, AttrType};
    AttrSchema::optional("tags", AttrType::Map(Box::new(AttrType::String)), "extra tags (Phoenix adds its ownership tags and Name)")
}

/// `id` as a computed, stable attribute.
pub fn id_attr(what: &'static str) -> phoenix_core::schema::AttrSchema {
    use phoenix_core::schema::{AttrSchema, AttrType};
    AttrSchema::computed("id", AttrType::String, what).stable()
}

/// Applies a change of the `tags` attribute: deletes removed keys, writes the
/// rest. Every update also rewrites the ownership tags (an imported object gets
/// them; tags removed out of band come back), which costs one idempotent call.
pub async fn update_tags(aws: &Aws, id: &str, req: &UpdateRequest) -> Result<(), ProviderError> {
    let keys =
        |a: &Attrs| -> Vec<String> { a.get("tags").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default() };
    let now = keys(&req.inputs);
    let removed: Vec<String> = keys(&req.prior_inputs).into_iter().filter(|k| !now.contains(k) && !k.starts_with("phoenix:")).collect();
    if !removed.is_empty() {
        let tags: Vec<_> = removed.iter().map(|k| aws_sdk_ec2::types::Tag::builder().key(k).build()).collect();
        aws.ec2.delete_tags().resources(id).set_tags(Some(tags)).send().await.map_err(|e| crate::error::sdk("DeleteTags", e))?;
    }
    let tags = crate::tags::all_tags(&req.ownership, req.inputs.get("tags"));
    aws.ec2.create_tags().resources(id).set_tags(Some(tags)).send().await.map_err(|e| crate::error::sdk("CreateTags", e))?;
    Ok(())
}

/// Deletes with retries while dependents are still going away
/// (`DependencyViolation`), and treats "not found" as done.
pub async fn delete_retrying<F, Fut, E, R>(aws: &Aws, what: &str, mut op: F) -> Result<(), ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), aws_sdk_ec2::error::SdkError<E, R>>>,
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    crate::wait::until(&format!("{what} to be deletable"), aws.wait_timeout, || {
        let fut = op();
        async move {
            match fut.await {
                Ok(()) => Ok(Some(())),
                Err(e) if crate::error::is_not_found(&e) => Ok(Some(())),
                Err(e) if crate::error::code(&e) == Some("DependencyViolation") => Ok(None),
                Err(e) => Err(crate::error::sdk(what, e)),
            }
        }
    })
    .await
}

/// The inputs each object of a batch was last applied with, by id: what a
/// read compares observed values against.
pub fn priors(items: &[RefreshItem]) -> std::collections::HashMap<&str, &Attrs> {
    items.iter().filter_map(|i| Some((i.outputs.get("id")?.as_str()?, &i.inputs))).collect()
}

/// How a create call ended.
pub enum Made<O> {
    /// The service answered with the new object.
    Answered(O),
    /// The answer was lost (or the call failed ambiguously) but the object
    /// exists: found by its ownership tags, as adoption would.
    Found(Observed),
}

impl<O> Made<O> {
    /// The id: from the answer through `answered`, or the one found.
    pub fn id(&self, answered: impl FnOnce(&O) -> Option<&str>, what: &str) -> Result<String, ProviderError> {
        match self {
            Made::Answered(o) => answered(o).map(str::to_string),
            Made::Found(obs) => obs.outputs.get("id").and_then(Value::as_str).map(str::to_string),
        }
        .ok_or_else(|| ProviderError::permanent(format!("{what} returned no id")))
    }
}

/// [`crate::create::create_once`] for the kinds not yet on the provider kit.
pub async fn create_once<O, F, Fut, E, R>(
    aws: &Aws,
    kind: &dyn Kind,
    req: &CreateRequest,
    what: &str,
    call: F,
) -> Result<Made<O>, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<O, aws_sdk_ec2::error::SdkError<E, R>>>,
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let find = || async {
        let adopt = AdoptRequest {
            addr: req.addr.clone(),
            type_name: req.type_name.clone(),
            inputs: req.inputs.clone(),
            ownership: req.ownership.clone(),
        };
        kind.find(aws, &adopt).await
    };
    Ok(match crate::create::create_once(what, call, find).await? {
        crate::create::Made::Answered(o) => Made::Answered(o),
        crate::create::Made::Found(f) => Made::Found(f),
    })
}

/// Every page of a paginated call (each page is a request under the call policy, like any other).
pub async fn all_pages<O, E, R>(
    what: &str,
    mut pages: aws_smithy_async::future::pagination_stream::PaginationStream<Result<O, aws_sdk_ec2::error::SdkError<E, R>>>,
) -> Result<Vec<O>, ProviderError>
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let mut out = Vec::new();
    loop {
        let page = { pages.next().await };
        match page {
            None => return Ok(out),
            Some(p) => out.push(p.map_err(|e| crate::error::sdk(what, e))?),
        }
    }
}
