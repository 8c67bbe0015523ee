//! The EC2 sub-template: what every EC2 kind reads the same way.
//!
//! An EC2 kind says how to `Describe*` its objects with filters, how to get
//! an object's id and tags, and what a read observes; [`read`] (ids as a
//! filter, 200 a call, paginated), [`find`] (by ownership tags, for
//! adoption) and [`list_owned`] (every object carrying Phoenix's tags, for
//! `gc`) are written here once. [`update_tags`] applies a change of `tags`.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, Tag};
use phoenix_core::kit::{Kind, Observed, Owned, Prior};
use phoenix_core::provider::ProviderError;
use phoenix_core::state::Ownership;

use crate::client::Aws;
use crate::error::sdk;
use crate::tags;

/// The user's `tags` input: extra tags beside Phoenix's ownership tags and `Name`.
pub type UserTags = BTreeMap<String, String>;

/// An EC2 kind's reads.
#[async_trait]
pub trait Ec2Kind: Kind<Client = Aws> {
    /// The SDK's type of one object (`aws_sdk_ec2::types::Vpc`).
    type Object: Send + Sync;
    /// The `Describe*` filter that names ids (`vpc-id`).
    const ID_FILTER: &'static str;

    /// Every object matching `filters`, all pages, leaving out objects that
    /// are gone but still listed (terminated, deleted).
    async fn describe(aws: &Aws, filters: Vec<Filter>) -> Result<Vec<Self::Object>, ProviderError>;
    fn id(object: &Self::Object) -> &str;
    fn tags(object: &Self::Object) -> &[Tag];
    /// The id state recorded for an object.
    fn id_of(outputs: &Self::Outputs) -> &str;
    /// What a read sees. `prior` is the spec last applied (`None` when
    /// listing for `gc`): anything that cannot be read back is taken from it.
    fn observe(object: &Self::Object, prior: Option<&Self::Spec>) -> Observed<Self>;
}

/// Reads a batch by id; missing ids are `None`.
pub async fn read<K: Ec2Kind>(aws: &Aws, items: &[Prior<K>]) -> Result<Vec<Option<Observed<K>>>, ProviderError> {
    let ids: Vec<String> = items.iter().map(|i| K::id_of(&i.outputs).to_string()).filter(|id| !id.is_empty()).collect();
    let mut objects = HashMap::new();
    for chunk in ids.chunks(200) {
        for o in K::describe(aws, vec![tags::id_filter(K::ID_FILTER, chunk)]).await? {
            objects.insert(K::id(&o).to_string(), o);
        }
    }
    Ok(items.iter().map(|i| objects.get(K::id_of(&i.outputs)).map(|o| K::observe(o, Some(&i.spec)))).collect())
}

/// One object by id, everything read from the API (for `phoenix import`).
pub async fn import<K: Ec2Kind>(aws: &Aws, id: &str) -> Result<Option<Observed<K>>, ProviderError> {
    let found = K::describe(aws, vec![tags::id_filter(K::ID_FILTER, &[id.to_string()])]).await?;
    Ok(found.iter().find(|o| K::id(o) == id).map(|o| K::observe(o, None)))
}

/// The object an interrupted create made, by its ownership tags.
pub async fn find<K: Ec2Kind>(aws: &Aws, spec: &K::Spec, ownership: &Ownership) -> Result<Option<Observed<K>>, ProviderError> {
    let found = K::describe(aws, tags::owner_filters(ownership)).await?;
    Ok(found.first().map(|o| K::observe(o, Some(spec))))
}

/// Every object carrying Phoenix's ownership tags, whoever's.
pub async fn list_owned<K: Ec2Kind>(aws: &Aws) -> Result<Option<Vec<Owned<K>>>, ProviderError> {
    let found = K::describe(aws, vec![owned_filter()]).await?;
    Ok(Some(
        found
            .iter()
            .filter_map(|o| {
                let ownership = Ownership::from_tags(|k| tags::tag(K::tags(o), k))?;
                Some(Owned { ownership, observed: K::observe(o, None), container: None })
            })
            .collect(),
    ))
}

/// `tag-key=phoenix:environment`: every object Phoenix made.
pub fn owned_filter() -> Filter {
    Filter::builder().name("tag-key").values("phoenix:environment").build()
}

/// The user's tags as read back (Phoenix's own and the default `Name` left out).
pub fn user_tags(object_tags: &[Tag]) -> Option<UserTags> {
    serde_json::from_value(tags::observed_user_tags(object_tags)).ok()
}

/// Applies a change of `tags`: deletes removed keys, writes the rest. Every
/// update also rewrites the ownership tags (an imported object gets them;
/// tags removed out of band come back), which costs one idempotent call.
pub async fn update_tags(
    aws: &Aws,
    id: &str,
    prior: Option<&UserTags>,
    now: Option<&UserTags>,
    ownership: &Ownership,
) -> Result<(), ProviderError> {
    let removed: Vec<Tag> = prior
        .into_iter()
        .flat_map(BTreeMap::keys)
        .filter(|k| !now.is_some_and(|n| n.contains_key(*k)) && !k.starts_with("phoenix:"))
        .map(|k| Tag::builder().key(k).build())
        .collect();
    if !removed.is_empty() {
        aws.ec2.delete_tags().resources(id).set_tags(Some(removed)).send().await.map_err(|e| sdk("DeleteTags", e))?;
    }
    let all = tags::all_tags_typed(ownership, now);
    aws.ec2.create_tags().resources(id).set_tags(Some(all)).send().await.map_err(|e| sdk("CreateTags", e))?;
    Ok(())
}

/// A list input read back as a set: the definition's order when the members
/// are the same (EC2 does not keep the order), else the members sorted.
pub fn as_set(prior: Option<&[String]>, mut seen: Vec<String>) -> Vec<String> {
    seen.sort();
    let mut want = prior.map(<[String]>::to_vec).unwrap_or_default();
    want.sort();
    match prior {
        Some(p) if seen == want => p.to_vec(),
        _ => seen,
    }
}

/// One object by id as EC2 has it now (`None` when it is gone): what a
/// delete or an update that works from the live object reads first.
pub async fn describe_one<K: Ec2Kind>(aws: &Aws, id: &str) -> Result<Option<K::Object>, ProviderError> {
    Ok(K::describe(aws, vec![tags::id_filter(K::ID_FILTER, &[id.to_string()])]).await?.into_iter().next())
}
