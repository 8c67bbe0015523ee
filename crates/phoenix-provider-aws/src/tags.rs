//! Ownership tags: every object names its environment, instance, resource and
//! state lineage, so an interrupted create is adopted by tag and leaks can be swept.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use phoenix_core::state::Ownership;
use phoenix_core::value::Value;

/// The `Name` tag Phoenix gives an object unless the user sets one.
pub fn default_name(o: &Ownership) -> String {
    match &o.instance {
        Some(i) => format!("{}-{}-{}", o.environment, i, o.resource),
        None => format!("{}-{}", o.environment, o.resource),
    }
}

/// Ownership tags, `Name`, and the user's `tags` attribute (which may override `Name`).
pub fn all_tags(o: &Ownership, user: Option<&Value>) -> Vec<Tag> {
    pairs(o, user).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// [`all_tags`] of a typed `tags` input.
pub fn all_tags_typed(o: &Ownership, user: Option<&std::collections::BTreeMap<String, String>>) -> Vec<Tag> {
    all_tags(o, serde_json::to_value(user).ok().as_ref())
}

/// The user's tags as read back from an object: Phoenix's own and the default `Name` left out.
pub fn observed_user_tags(tags: &[Tag]) -> Value {
    user_tags(tags, default_name_from(tags).as_deref())
}

/// [`all_tags`] as key/value pairs, for the services whose `Tag` types differ from EC2's
/// (ELBv2, Auto Scaling, RDS, Route 53): one rule for every service.
pub fn pairs(o: &Ownership, user: Option<&Value>) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = o.tags().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let user: Vec<(String, String)> = user
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect())
        .unwrap_or_default();
    if !user.iter().any(|(k, _)| k == "Name") {
        tags.push(("Name".into(), default_name(o)));
    }
    tags.extend(user.into_iter().filter(|(k, _)| !k.starts_with("phoenix:")));
    tags
}

/// Whether tags (as pairs) name exactly the object `o` describes: what adoption by name checks
/// before taking over an object, so that a same-named object of someone else is never adopted.
pub fn owned_by(tags: &[(String, String)], o: &Ownership) -> bool {
    let get = |k: &str| tags.iter().find(|(tk, _)| tk == k).map(|(_, v)| v.as_str());
    get("phoenix:lineage") == Some(o.lineage.as_str())
        && get("phoenix:resource") == Some(o.resource.as_str())
        && get("phoenix:environment") == Some(o.environment.as_str())
}

pub fn spec(resource_type: ResourceType, tags: Vec<Tag>) -> TagSpecification {
    TagSpecification::builder().resource_type(resource_type).set_tags(Some(tags)).build()
}

/// Filters that find exactly the object `o` names.
pub fn owner_filters(o: &Ownership) -> Vec<Filter> {
    let f = |k: &str, v: &str| Filter::builder().name(format!("tag:{k}")).values(v).build();
    vec![f("phoenix:lineage", &o.lineage), f("phoenix:resource", o.resource.as_str()), f("phoenix:environment", &o.environment)]
}

/// A filter on ids (`vpc-id`, `instance-id` …).
pub fn id_filter(name: &str, ids: &[String]) -> Filter {
    Filter::builder().name(name).set_values(Some(ids.to_vec())).build()
}

/// The user's tags as observed: everything but Phoenix's own and the default `Name`.
pub fn user_tags(tags: &[Tag], default_name: Option<&str>) -> Value {
    let mut m = serde_json::Map::new();
    for t in tags {
        let (Some(k), Some(v)) = (t.key(), t.value()) else { continue };
        if k.starts_with("phoenix:") || (k == "Name" && Some(v) == default_name) {
            continue;
        }
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Value::Object(m)
}

/// The value of one tag.
pub fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(Tag::value)
}

/// The `Name` Phoenix would have given the object carrying these tags.
fn default_name_from(tags: &[Tag]) -> Option<String> {
    let env = tag(tags, "phoenix:environment")?;
    let res = tag(tags, "phoenix:resource")?;
    Some(match tag(tags, "phoenix:instance") {
        Some(i) => format!("{env}-{i}-{res}"),
        None => format!("{env}-{res}"),
    })
}

/// [`observed_user_tags`] of key/value pairs (ELBv2, Route 53), typed.
pub fn observed_user_pairs(pairs: &[(String, String)]) -> Option<std::collections::BTreeMap<String, String>> {
    let tags: Vec<Tag> = pairs.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    serde_json::from_value(observed_user_tags(&tags)).ok()
}

/// [`pairs`] of a typed `tags` input.
pub fn pairs_typed(o: &Ownership, user: Option<&std::collections::BTreeMap<String, String>>) -> Vec<(String, String)> {
    pairs(o, serde_json::to_value(user).ok().as_ref())
}

/// Tag keys the user removed from `tags` in an update (never Phoenix's own).
pub fn removed_keys_typed(
    prior: Option<&std::collections::BTreeMap<String, String>>,
    now: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<String> {
    prior
        .into_iter()
        .flat_map(|p| p.keys())
        .filter(|k| !now.is_some_and(|n| n.contains_key(*k)) && !k.starts_with("phoenix:"))
        .cloned()
        .collect()
}
