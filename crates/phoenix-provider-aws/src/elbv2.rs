//! The ELBv2 sub-template: what every ELBv2 kind (load balancer, target
//! group, listener) reads the same way.
//!
//! ELBv2 names objects by ARN, lists no tags with them and filters on none:
//! a kind says how to describe its objects by ARN, how to list them all and
//! how to look one up by what is unique about it (a name, a port on a load
//! balancer); [`read`] and [`import`] (by ARN, 20 a call, tags read the
//! same way), [`find`] (the lookup, adopted only with Phoenix's ownership
//! tags) and [`list_owned`] are written here once. [`update_tags`] applies
//! a change of `tags`.

use std::collections::HashMap;
use std::future::Future;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::Tag;
use phoenix_core::kit::{Kind, Observed, Owned, Prior};
use phoenix_core::provider::{ErrorKind, ProviderError};
use phoenix_core::schema::Invalid;
use phoenix_core::state::Ownership;
use serde_json::Value;

use crate::client::Aws;
use crate::ec2::UserTags;
use crate::error::sdk;
use crate::tags;

/// Tags as ELBv2 answers them: key/value pairs.
pub type Pairs = Vec<(String, String)>;

/// An ELBv2 kind's reads.
#[async_trait]
pub trait ElbKind: Kind<Client = Aws> {
    /// The SDK's type of one object (`LoadBalancer`).
    type Object: Clone + Send + Sync;

    /// The objects of at most 20 ARNs. The whole call fails with a "not
    /// found" error when one of them is unknown.
    async fn describe(aws: &Aws, arns: Vec<String>) -> Result<Vec<Self::Object>, ProviderError>;
    /// Every object of the region, all pages (for `gc`).
    async fn describe_all(aws: &Aws) -> Result<Vec<Self::Object>, ProviderError>;
    /// The object an interrupted create may have made, by what is unique
    /// about it (whoever's it is: [`find`] checks the ownership tags).
    async fn lookup(aws: &Aws, spec: &Self::Spec) -> Result<Option<Self::Object>, ProviderError>;
    /// An adopted object once it is usable (default: as it is).
    async fn usable(_aws: &Aws, object: Self::Object) -> Result<Self::Object, ProviderError> {
        Ok(object)
    }
    fn arn(object: &Self::Object) -> &str;
    /// The ARN state recorded for an object.
    fn arn_of(outputs: &Self::Outputs) -> &str;
    /// What a read sees. `prior` is the spec last applied (`None` for
    /// `phoenix import` and `gc`): anything that cannot be read back is taken from it.
    fn observe(object: &Self::Object, tags: &[(String, String)], prior: Option<&Self::Spec>) -> Observed<Self>;
}

/// ELBv2 calls taking ARNs (20 at most) fail as a whole when one ARN is
/// unknown (deleted since it was listed): `arns` are read 20 at a time, and a
/// batch that fails so is read again one ARN at a time, gone ones skipped.
pub async fn by_arns<T, F, Fut>(arns: &[String], call: F) -> Result<Vec<T>, ProviderError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, ProviderError>>,
{
    let gone = |e: &ProviderError| e.kind == ErrorKind::NotFound;
    let mut found = Vec::new();
    for chunk in arns.chunks(20) {
        match call(chunk.to_vec()).await {
            Ok(items) => found.extend(items),
            Err(e) if gone(&e) && chunk.len() > 1 => {
                for arn in chunk {
                    match call(vec![arn.clone()]).await {
                        Ok(items) => found.extend(items),
                        Err(e) if gone(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if gone(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// Objects of kind `K` by ARN; gone ones are left out.
pub async fn describe<K: ElbKind>(aws: &Aws, arns: &[String]) -> Result<Vec<K::Object>, ProviderError> {
    by_arns(arns, |chunk| K::describe(aws, chunk)).await
}

/// Tags of many ELBv2 objects, by ARN.
pub async fn tags_of(aws: &Aws, arns: &[String]) -> Result<HashMap<String, Pairs>, ProviderError> {
    let descriptions = by_arns(arns, |chunk| async move {
        let out = aws.elb.describe_tags().set_resource_arns(Some(chunk)).send().await.map_err(|e| sdk("DescribeTags", e))?;
        Ok(out.tag_descriptions().to_vec())
    })
    .await?;
    Ok(descriptions
        .iter()
        .map(|d| {
            let pairs = d.tags().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()));
            (d.resource_arn().unwrap_or_default().to_string(), pairs.collect())
        })
        .collect())
}

/// Objects with their tags (one DescribeTags per 20).
async fn with_tags<K: ElbKind>(aws: &Aws, objects: Vec<K::Object>) -> Result<Vec<(K::Object, Pairs)>, ProviderError> {
    let arns: Vec<String> = objects.iter().map(|o| K::arn(o).to_string()).collect();
    let mut tags = tags_of(aws, &arns).await?;
    Ok(objects
        .into_iter()
        .map(|o| {
            let t = tags.remove(K::arn(&o)).unwrap_or_default();
            (o, t)
        })
        .collect())
}

/// Reads a batch by ARN; gone ones are `None`.
pub async fn read<K: ElbKind>(aws: &Aws, items: &[Prior<K>]) -> Result<Vec<Option<Observed<K>>>, ProviderError> {
    let arns: Vec<String> = items.iter().map(|i| K::arn_of(&i.outputs).to_string()).filter(|a| !a.is_empty()).collect();
    let found: HashMap<String, (K::Object, Pairs)> =
        with_tags::<K>(aws, describe::<K>(aws, &arns).await?).await?.into_iter().map(|(o, t)| (K::arn(&o).to_string(), (o, t))).collect();
    Ok(items.iter().map(|i| found.get(K::arn_of(&i.outputs)).map(|(o, t)| K::observe(o, t, Some(&i.spec)))).collect())
}

/// One object by ARN, everything read from the API (for `phoenix import`).
pub async fn import<K: ElbKind>(aws: &Aws, arn: &str) -> Result<Option<Observed<K>>, ProviderError> {
    let found = with_tags::<K>(aws, describe::<K>(aws, &[arn.to_string()]).await?).await?;
    Ok(found.iter().find(|(o, _)| K::arn(o) == arn).map(|(o, t)| K::observe(o, t, None)))
}

/// The object an interrupted create made: the lookup's, only if it carries
/// exactly our ownership tags (a same-named object of someone else is never adopted).
pub async fn find<K: ElbKind>(aws: &Aws, spec: &K::Spec, ownership: &Ownership) -> Result<Option<Observed<K>>, ProviderError> {
    let Some(object) = K::lookup(aws, spec).await? else { return Ok(None) };
    let arn = K::arn(&object).to_string();
    let tags = tags_of(aws, std::slice::from_ref(&arn)).await?.remove(&arn).unwrap_or_default();
    if !tags::owned_by(&tags, ownership) {
        return Ok(None);
    }
    let object = K::usable(aws, object).await?;
    Ok(Some(K::observe(&object, &tags, Some(spec))))
}

/// Every object carrying Phoenix's ownership tags, whoever's.
pub async fn list_owned<K: ElbKind>(aws: &Aws) -> Result<Option<Vec<Owned<K>>>, ProviderError> {
    let found = with_tags::<K>(aws, K::describe_all(aws).await?).await?;
    Ok(Some(
        found
            .iter()
            .filter_map(|(o, t)| {
                let ownership = Ownership::from_tags(|k| t.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()))?;
                Some(Owned { ownership, observed: K::observe(o, t, None), container: None })
            })
            .collect(),
    ))
}

/// The tags a create sets: ownership, `Name`, and the user's.
pub fn create_tags(ownership: &Ownership, user: Option<&UserTags>) -> Vec<Tag> {
    tags::pairs_typed(ownership, user).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// The user's tags as read back (Phoenix's own and the default `Name` left out).
pub fn user_tags(pairs: &[(String, String)]) -> Option<UserTags> {
    tags::observed_user_pairs(pairs)
}

/// Applies a change of `tags` (removed keys deleted) and restores the ownership tags.
pub async fn update_tags(
    aws: &Aws,
    arn: &str,
    prior: Option<&UserTags>,
    now: Option<&UserTags>,
    ownership: &Ownership,
) -> Result<(), ProviderError> {
    let removed = tags::removed_keys_typed(prior, now);
    if !removed.is_empty() {
        aws.elb.remove_tags().resource_arns(arn).set_tag_keys(Some(removed)).send().await.map_err(|e| sdk("RemoveTags", e))?;
    }
    aws.elb.add_tags().resource_arns(arn).set_tags(Some(create_tags(ownership, now))).send().await.map_err(|e| sdk("AddTags", e))?;
    Ok(())
}

/// ELBv2 names: 1–32 letters, digits and hyphens, not starting or ending with a hyphen.
pub fn check_name(value: &Value) -> Result<(), Invalid> {
    let Some(s) = value.as_str() else { return Ok(()) };
    if s.contains("${") {
        return Ok(());
    }
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.starts_with("internal-");
    if ok { Ok(()) } else { Err(Invalid(format!("`{s}` is not a load balancer / target group name: 1-32 letters, digits and hyphens"))) }
}

/// The format name of [`check_name`], for the kinds' `FORMATS`.
pub const NAME_FORMAT: &str = "aws-elb-name";
