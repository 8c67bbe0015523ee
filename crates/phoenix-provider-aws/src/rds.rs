//! The RDS sub-template: what the `aws.db_*` kinds read the same way.
//!
//! - Tags: RDS tags are key/value pairs. Clusters and instances carry theirs
//!   in their describe answers; groups need a ListTagsForResource each, made
//!   only where the answer needs them ([`tags_of`]). [`rds_tags`] writes
//!   Phoenix's ownership tags, [`retag`] applies a change of `tags`.
//! - Databases (clusters and instances, [`RdsDb`]): described by identifier
//!   as a filter, 100 a call, paginated, leaving out what is being deleted;
//!   [`read`], [`import`], [`find`] (by identifier, then ownership tags),
//!   [`list_owned`], [`wait_available`] and [`delete`] (with its final
//!   snapshot) are written here once.
//! - Groups (subnet and parameter groups, [`RdsGroup`]): their describe
//!   takes one name or none, so a batch is one listing of every group;
//!   [`read_groups`], [`import_group`], [`find_group`], [`list_owned_groups`]
//!   and [`delete_group`] (retried while the group is in use).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_rds::types::{Filter, Tag};
use phoenix_core::kit::{Delete, Kind, Observed, Owned, Prior, Secret};
use phoenix_core::provider::ProviderError;
use phoenix_core::state::Ownership;
use phoenix_core::value::Attrs;

use crate::client::Aws;
use crate::ec2::UserTags;
use crate::error::{is_not_found, sdk};
use crate::tags;

/// Ownership tags, `Name` and the user's `tags`, as RDS takes them.
pub fn rds_tags(o: &Ownership, user: Option<&UserTags>) -> Vec<Tag> {
    let user = serde_json::to_value(user).ok();
    tags::pairs(o, user.as_ref()).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

pub fn pairs(tags: &[Tag]) -> Vec<(String, String)> {
    tags.iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect()
}

/// The user's tags as read back (Phoenix's own and the default `Name` left out).
pub fn user_tags(pairs: &[(String, String)]) -> Option<UserTags> {
    let tags: Vec<aws_sdk_ec2::types::Tag> =
        pairs.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build()).collect();
    crate::ec2::user_tags(&tags)
}

/// Tags of one RDS resource (groups do not carry them in their descriptions).
pub async fn tags_of(aws: &Aws, arn: &str) -> Result<Vec<(String, String)>, ProviderError> {
    match aws.rds.list_tags_for_resource().resource_name(arn).send().await {
        Ok(out) => Ok(pairs(out.tag_list())),
        Err(e) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(sdk("ListTagsForResource", e)),
    }
}

/// Rewrites an RDS resource's tags after a change of `tags`: removed keys go,
/// and the ownership tags are written again (an imported object gets them).
pub async fn retag(
    aws: &Aws,
    arn: &str,
    prior: Option<&UserTags>,
    now: Option<&UserTags>,
    ownership: &Ownership,
) -> Result<(), ProviderError> {
    let removed: Vec<String> = prior
        .into_iter()
        .flat_map(BTreeMap::keys)
        .filter(|k| !now.is_some_and(|n| n.contains_key(*k)) && !k.starts_with("phoenix:"))
        .cloned()
        .collect();
    if !removed.is_empty() {
        aws.rds
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(|e| sdk("RemoveTagsFromResource", e))?;
    }
    aws.rds
        .add_tags_to_resource()
        .resource_name(arn)
        .set_tags(Some(rds_tags(ownership, now)))
        .send()
        .await
        .map_err(|e| sdk("AddTagsToResource", e))?;
    Ok(())
}

/// A list RDS keeps as a set (subnets, security groups) as read back: in the
/// order last applied when it holds the same ids (sorted when they differ);
/// with nothing applied (import, `gc`), as the API lists them.
pub fn same_set(prior: Option<&[String]>, mut seen: Vec<String>) -> Vec<String> {
    let Some(want) = prior else { return seen };
    let mut sorted = want.to_vec();
    sorted.sort();
    seen.sort();
    if sorted == seen { want.to_vec() } else { seen }
}

/// An engine version as read back: `8.0` in the definition is satisfied by
/// the 8.0.35 (or 8.0.mysql_aurora.3.05.2) RDS chose.
pub fn engine_version(want: Option<&str>, have: Option<&str>) -> Option<String> {
    match (want, have) {
        (Some(want), Some(have)) if have == want || have.starts_with(&format!("{want}.")) => Some(want.to_string()),
        (want, have) => have.or(want).map(str::to_string),
    }
}

/// A master password, checked before any call and named without its value.
pub fn password<'a>(input: &str, secret: &'a Secret<String>) -> Result<&'a str, ProviderError> {
    let p = secret.clear()?;
    if p.len() < 8 {
        return Err(ProviderError::permanent(format!("`{input}` must be at least 8 characters")));
    }
    Ok(p)
}

/// An integer input as the SDK takes it (out of range: left unset, as RDS's default).
pub fn int(v: Option<i64>) -> Option<i32> {
    v.and_then(|v| i32::try_from(v).ok())
}

/// Security groups as a create takes them: none named, none sent (RDS picks the VPC's default).
pub fn groups(ids: &Option<Vec<String>>) -> Option<Vec<String>> {
    ids.clone().filter(|g| !g.is_empty())
}

/// What a create that may fail after the object exists hands the engine: its id.
pub fn made(id: &str) -> Attrs {
    [("id".to_string(), serde_json::json!(id))].into_iter().collect()
}

/// RDS identifiers: 1–63 lower-case letters, digits and hyphens, starting with a letter.
pub fn check_identifier(value: &serde_json::Value) -> Result<(), phoenix_core::schema::Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if s.contains("${") {
        return Ok(());
    }
    let ok = s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!("`{s}` is not an RDS identifier: lower-case letters, digits and single hyphens, starting with a letter").into())
    }
}

/// The `format` of RDS identifiers, for [`Kind::FORMATS`].
pub const IDENTIFIER_FORMAT: (&str, phoenix_core::schema::Validator) = ("aws-rds-identifier", check_identifier);

/// How a delete call of a cluster or instance was answered.
pub enum Deleting {
    /// Deleting now.
    Started,
    /// Nothing to delete.
    Gone,
    /// Already being deleted (a previous, interrupted destroy).
    InProgress,
    /// The final snapshot's name is taken.
    SnapshotExists,
    Failed(ProviderError),
}

/// A database (an Aurora cluster or a DB instance): its reads.
#[async_trait]
pub trait RdsDb: Kind<Client = Aws> {
    type Object: Clone + Send + Sync;
    /// How messages name one: `DB cluster`.
    const OBJECT: &'static str;
    /// How the final-snapshot line names one before its id: `cluster `.
    const IN_LOG: &'static str;
    /// The describe filter that names identifiers: `db-cluster-id`.
    const ID_FILTER: &'static str;
    /// Statuses it does not recover from by waiting.
    const FAILED: &'static [&'static str];

    /// Every object matching `filter` (every one without), all pages.
    async fn describe(aws: &Aws, filter: Option<Filter>) -> Result<Vec<Self::Object>, ProviderError>;
    fn id(object: &Self::Object) -> &str;
    fn status(object: &Self::Object) -> &str;
    fn tags(object: &Self::Object) -> &[Tag];
    /// The identifier state recorded.
    fn id_of(outputs: &Self::Outputs) -> &str;
    /// The identifier a spec names (what an interrupted create made).
    fn identifier(spec: &Self::Spec) -> &str;
    fn outputs(object: &Self::Object) -> Self::Outputs;
    /// What a read sees. `prior` is the spec last applied (`None` for import
    /// and `gc`): anything that cannot be read back is taken from it.
    fn observe(object: &Self::Object, prior: Option<&Self::Spec>) -> Observed<Self>;

    /// Sends the delete, with a final snapshot of that name unless `None`.
    async fn start_delete(aws: &Aws, spec: &Self::Spec, id: &str, final_snapshot: Option<&str>) -> Deleting;
    /// Whether the describe by identifier still finds it (deleting included).
    async fn still_there(aws: &Aws, id: &str) -> Result<bool, ProviderError>;
}

/// Objects by identifier (a filter, so identifiers that are gone are simply
/// absent), or every one of the region when `ids` is `None`; none being deleted.
async fn describe<K: RdsDb>(aws: &Aws, ids: Option<&[String]>) -> Result<Vec<K::Object>, ProviderError> {
    let chunks: Vec<Option<Filter>> = match ids {
        Some(ids) => ids.chunks(100).map(|c| Some(Filter::builder().name(K::ID_FILTER).set_values(Some(c.to_vec())).build())).collect(),
        None => vec![None],
    };
    let mut found = Vec::new();
    for filter in chunks {
        found.extend(K::describe(aws, filter).await?.into_iter().filter(|o| K::status(o) != "deleting"));
    }
    Ok(found)
}

async fn one<K: RdsDb>(aws: &Aws, id: &str) -> Result<Option<K::Object>, ProviderError> {
    Ok(describe::<K>(aws, Some(&[id.to_string()])).await?.into_iter().next())
}

/// Reads a batch in one describe (per 100); missing identifiers are `None`.
pub async fn read<K: RdsDb>(aws: &Aws, items: &[Prior<K>]) -> Result<Vec<Option<Observed<K>>>, ProviderError> {
    let mut ids: Vec<String> = items.iter().map(|i| K::id_of(&i.outputs).to_string()).filter(|id| !id.is_empty()).collect();
    ids.sort();
    ids.dedup();
    let objects: HashMap<String, K::Object> =
        describe::<K>(aws, Some(&ids)).await?.into_iter().map(|o| (K::id(&o).to_string(), o)).collect();
    Ok(items.iter().map(|i| objects.get(K::id_of(&i.outputs)).map(|o| K::observe(o, Some(&i.spec)))).collect())
}

/// One object by identifier, everything read from the API (for `phoenix import`).
pub async fn import<K: RdsDb>(aws: &Aws, id: &str) -> Result<Option<Observed<K>>, ProviderError> {
    Ok(one::<K>(aws, id).await?.map(|o| K::observe(&o, None)))
}

/// What an interrupted create made: the identifier the spec names, if it
/// carries these ownership tags; waited on until available, as create would.
pub async fn find<K: RdsDb>(aws: &Aws, spec: &K::Spec, ownership: &Ownership) -> Result<Option<Observed<K>>, ProviderError> {
    let id = K::identifier(spec);
    let Some(o) = one::<K>(aws, id).await? else { return Ok(None) };
    if !tags::owned_by(&pairs(K::tags(&o)), ownership) {
        return Ok(None);
    }
    Ok(Some(K::observe(&wait_available::<K>(aws, id).await?, Some(spec))))
}

/// Every object carrying Phoenix's ownership tags: the describe filters on
/// no tag, but carries each object's tags.
pub async fn list_owned<K: RdsDb>(aws: &Aws) -> Result<Option<Vec<Owned<K>>>, ProviderError> {
    let found = describe::<K>(aws, None).await?;
    Ok(Some(
        found
            .iter()
            .filter_map(|o| {
                let tags = pairs(K::tags(o));
                let ownership = Ownership::from_tags(|k| tags.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()))?;
                Some(Owned { ownership, observed: K::observe(o, None), container: None })
            })
            .collect(),
    ))
}

/// Waits until the object is `available`.
pub async fn wait_available<K: RdsDb>(aws: &Aws, id: &str) -> Result<K::Object, ProviderError> {
    crate::wait::until(&format!("{} {id} to be available", K::OBJECT), aws.wait_timeout, || async move {
        let Some(o) = one::<K>(aws, id).await? else { return Ok(None) };
        match K::status(&o) {
            "available" => Ok(Some(o)),
            s if K::FAILED.contains(&s) => Err(ProviderError::permanent(format!("{} {id} is `{s}`", K::OBJECT))),
            _ => Ok(None),
        }
    })
    .await
}

/// Deletes, taking a final snapshot (named `final_snapshot`, else
/// `<id>-final-<time>`) unless `skip`, and waits until it is gone: what it
/// is placed in (subnet and parameter groups) cannot go before.
pub async fn delete<K: RdsDb>(aws: &Aws, req: &Delete<'_, K>, skip: bool, final_snapshot: Option<&str>) -> Result<(), ProviderError> {
    let id = K::id_of(req.outputs);
    let snapshot = final_snapshot.map(str::to_string).unwrap_or_else(|| {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        format!("{id}-final-{secs}")
    });
    if !skip {
        (req.log)(req.addr, &format!("taking final snapshot {snapshot} of {}{id}", K::IN_LOG));
    }
    match K::start_delete(aws, req.spec, id, (!skip).then_some(snapshot.as_str())).await {
        Deleting::Started | Deleting::InProgress => {}
        Deleting::Gone => return Ok(()),
        Deleting::SnapshotExists => {
            return Err(ProviderError::permanent(format!(
                "{} {id} was not deleted: its final snapshot `{snapshot}` already exists; \
                 set another `final_snapshot_identifier` (or delete the old snapshot)",
                K::OBJECT
            )));
        }
        Deleting::Failed(e) => return Err(e),
    }
    crate::wait::until(&format!("{} {id} to be deleted", K::OBJECT), aws.wait_timeout, || async move {
        Ok((!K::still_there(aws, id).await?).then_some(()))
    })
    .await
}

/// A subnet or parameter group: its reads.
#[async_trait]
pub trait RdsGroup: Kind<Client = Aws> {
    type Object: Clone + Send + Sync;
    /// How messages name one: `DB subnet group`.
    const OBJECT: &'static str;

    /// Every group of the account and region, all pages.
    async fn list(aws: &Aws) -> Result<Vec<Self::Object>, ProviderError>;
    /// The group of this name, if any.
    async fn one(aws: &Aws, name: &str) -> Result<Option<Self::Object>, ProviderError>;
    fn name(object: &Self::Object) -> &str;
    fn arn(object: &Self::Object) -> &str;
    fn id_of(outputs: &Self::Outputs) -> &str;
    fn name_of(spec: &Self::Spec) -> &str;
    /// Whether `gc` looks at it at all (RDS's own `default.*` groups are never Phoenix's).
    fn listed(_object: &Self::Object) -> bool {
        true
    }
    /// What a read sees, given the tags when they were read. `prior` is the
    /// spec last applied (`None` for import and `gc`); `full` asks for what
    /// costs further calls even without a prior spec that sets it (import).
    async fn observe(
        aws: &Aws,
        object: &Self::Object,
        prior: Option<&Self::Spec>,
        tags: Option<&[(String, String)]>,
        full: bool,
    ) -> Result<Observed<Self>, ProviderError>;
    /// Whether the spec manages `tags` (reading them costs a call per group).
    fn manages_tags(spec: &Self::Spec) -> bool;
}

/// Reads a batch in one listing; tags (a call each) only where the definition manages them.
pub async fn read_groups<K: RdsGroup>(aws: &Aws, items: &[Prior<K>]) -> Result<Vec<Option<Observed<K>>>, ProviderError> {
    let wanted: HashMap<&str, &K::Spec> = items.iter().map(|i| (K::id_of(&i.outputs), &i.spec)).collect();
    let mut found = HashMap::new();
    for g in K::list(aws).await? {
        let Some(spec) = wanted.get(K::name(&g)) else { continue };
        let tags = if K::manages_tags(spec) { Some(tags_of(aws, K::arn(&g)).await?) } else { None };
        found.insert(K::name(&g).to_string(), K::observe(aws, &g, Some(spec), tags.as_deref(), false).await?);
    }
    Ok(items.iter().map(|i| found.remove(K::id_of(&i.outputs))).collect())
}

/// One group by name, everything read from the API (for `phoenix import`).
pub async fn import_group<K: RdsGroup>(aws: &Aws, name: &str) -> Result<Option<Observed<K>>, ProviderError> {
    let Some(g) = K::one(aws, name).await? else { return Ok(None) };
    let tags = tags_of(aws, K::arn(&g)).await?;
    Ok(Some(K::observe(aws, &g, None, Some(&tags), true).await?))
}

/// The group the spec names, if it carries these ownership tags.
pub async fn find_group<K: RdsGroup>(aws: &Aws, spec: &K::Spec, ownership: &Ownership) -> Result<Option<Observed<K>>, ProviderError> {
    let Some(g) = K::one(aws, K::name_of(spec)).await? else { return Ok(None) };
    let tags = tags_of(aws, K::arn(&g)).await?;
    if !tags::owned_by(&tags, ownership) {
        return Ok(None);
    }
    Ok(Some(K::observe(aws, &g, Some(spec), Some(&tags), false).await?))
}

/// Every group carrying Phoenix's ownership tags: groups carry no tags in
/// their descriptions, so one ListTagsForResource each.
pub async fn list_owned_groups<K: RdsGroup>(aws: &Aws) -> Result<Option<Vec<Owned<K>>>, ProviderError> {
    let mut found = Vec::new();
    for g in K::list(aws).await?.iter().filter(|g| K::listed(g)) {
        let tags = tags_of(aws, K::arn(g)).await?;
        let Some(ownership) = Ownership::from_tags(|k| tags.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())) else { continue };
        found.push(Owned { ownership, observed: K::observe(aws, g, None, Some(&tags), false).await?, container: None });
    }
    Ok(Some(found))
}

/// Deletes a group, retried while it is in use (`in_use`: the error code
/// RDS answers while a database still uses it); one already gone is deleted.
pub async fn delete_group<K, F, Fut, E, R>(aws: &Aws, name: &str, what: &str, in_use: &str, mut op: F) -> Result<(), ProviderError>
where
    K: RdsGroup,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), aws_sdk_rds::error::SdkError<E, R>>>,
    E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    crate::wait::until(&format!("{} {name} to be deletable", K::OBJECT), aws.wait_timeout, || {
        let sent = op();
        async move {
            match sent.await {
                Ok(()) => Ok(Some(())),
                Err(e) if is_not_found(&e) => Ok(Some(())),
                Err(e) if crate::error::code(&e) == Some(in_use) => Ok(None),
                Err(e) => Err(sdk(what, e)),
            }
        }
    })
    .await
}
