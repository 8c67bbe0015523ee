//! Ownership marks on GCE objects.
//!
//! GCE labels are stricter than AWS tags: keys and values are at most 63
//! characters of lowercase letters, digits, `_` and `-` (keys start with a
//! letter), and `:` is not allowed. Phoenix writes:
//!
//! | label | value |
//! | --- | --- |
//! | `phoenix-environment` | the environment |
//! | `phoenix-instance` | the instance, when there is one |
//! | `phoenix-resource` | the resource address |
//! | `phoenix-lineage` | the state's lineage |
//!
//! each value passed through [`sanitize`]: kept as is when already valid;
//! otherwise lowercased, other characters replaced by `_`, cut to 54
//! characters and suffixed with `-` and 8 hex digits of a hash of the
//! original, so two different names never share a label value.
//!
//! Networks, subnetworks and firewalls have no labels in the Compute API:
//! their marks go in the `description` field as a first line
//! `phoenix: environment=… instance=… resource=… lineage=…` (unsanitised),
//! followed by the user's description.

use phoenix_core::state::Ownership;
use serde_json::{Map, Value, json};

pub const PREFIX: &str = "phoenix-";

/// A label value (or key) GCE accepts, derived from `s` injectively (see the module docs).
pub fn sanitize(s: &str) -> String {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if s.len() <= 63 && s.chars().all(ok) {
        return s.to_string();
    }
    let mut out: String = s.to_lowercase().chars().map(|c| if ok(c) { c } else { '_' }).take(54).collect();
    out.push('-');
    out.push_str(&hash8(s));
    out
}

fn hash8(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes()).iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The ownership labels of `o`.
pub fn ownership(o: &Ownership) -> Vec<(String, String)> {
    o.tags().into_iter().map(|(k, v)| (k.replace("phoenix:", PREFIX), sanitize(&v))).collect()
}

/// Ownership labels plus the user's `labels` attribute (which may not use the `phoenix-` prefix).
pub fn all(o: &Ownership, user: Option<&Value>) -> Value {
    let mut m = Map::new();
    if let Some(u) = user.and_then(Value::as_object) {
        for (k, v) in u {
            if !k.starts_with(PREFIX) {
                m.insert(k.clone(), json!(v.as_str().map_or_else(|| v.to_string(), str::to_string)));
            }
        }
    }
    for (k, v) in ownership(o) {
        m.insert(k, json!(v));
    }
    Value::Object(m)
}

/// The user's labels as observed: everything but Phoenix's own.
pub fn user(labels: &Value) -> Value {
    let m: Map<String, Value> =
        labels.as_object().into_iter().flatten().filter(|(k, _)| !k.starts_with(PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect();
    Value::Object(m)
}

/// Whether an object's labels say `o` owns it (resource and lineage must both match).
pub fn owned_by(labels: &Value, o: &Ownership) -> bool {
    ownership(o).iter().filter(|(k, _)| k.ends_with("resource") || k.ends_with("lineage")).all(|(k, v)| labels[k.as_str()] == v.as_str())
}

/// The list filter that finds the objects of one environment (and instance).
pub fn env_filter(environment: &str, instance: Option<&str>) -> String {
    let mut f = format!("(labels.{PREFIX}environment = \"{}\")", sanitize(environment));
    if let Some(i) = instance {
        f.push_str(&format!(" (labels.{PREFIX}instance = \"{}\")", sanitize(i)));
    }
    f
}

/// The owner an object's labels name, as written (values sanitized; the
/// expiry is not read back). `None` unless environment, resource and lineage are all there.
pub fn ownership_of_labels(labels: &Value) -> Option<Ownership> {
    let get = |k: &str| labels[format!("{PREFIX}{k}")].as_str();
    Some(Ownership {
        environment: get("environment")?.to_string(),
        instance: get("instance").map(str::to_string),
        resource: phoenix_core::addr::ResourceAddr::parse(get("resource")?).ok()?,
        lineage: get("lineage")?.to_string(),
        expires_at: None,
    })
}

/// The owner a description's first line names (see [`description_mark`]).
pub fn ownership_of_description(description: &str) -> Option<Ownership> {
    let line = description.lines().next()?.strip_prefix("phoenix: ")?;
    let fields: std::collections::HashMap<&str, &str> = line.split(' ').filter_map(|f| f.split_once('=')).collect();
    Some(Ownership {
        environment: fields.get("environment")?.to_string(),
        instance: fields.get("instance").map(|s| s.to_string()),
        resource: phoenix_core::addr::ResourceAddr::parse(fields.get("resource")?).ok()?,
        lineage: fields.get("lineage")?.to_string(),
        expires_at: None,
    })
}

/// Whether `name` is what a mark holding `marked` was written from: as is
/// (descriptions) or sanitized (labels).
pub fn names(marked: &str, name: &str) -> bool {
    marked == name || marked == sanitize(name)
}

/// The first line of the description of an unlabelled object.
pub fn description_mark(o: &Ownership) -> String {
    let mut s = format!("phoenix: environment={}", o.environment);
    if let Some(i) = &o.instance {
        s.push_str(&format!(" instance={i}"));
    }
    s.push_str(&format!(" resource={} lineage={}", o.resource, o.lineage));
    s
}

/// The description Phoenix writes: its mark, then the user's text.
pub fn description(o: &Ownership, user: Option<&str>) -> String {
    match user {
        Some(u) if !u.is_empty() => format!("{}\n{u}", description_mark(o)),
        _ => description_mark(o),
    }
}

/// Whether a description carries `o`'s mark.
pub fn description_owned_by(description: &str, o: &Ownership) -> bool {
    description.lines().next() == Some(description_mark(o).as_str())
}

/// The user's part of a description (without Phoenix's mark).
pub fn user_description(description: &str) -> &str {
    if description.starts_with("phoenix: ") { description.split_once('\n').map_or("", |(_, u)| u) } else { description }
}

#[cfg(test)]
mod tests {
    use phoenix_core::addr::ResourceAddr;

    use super::*;

    #[test]
    fn sanitizing_is_valid_and_injective() {
        assert_eq!(sanitize("web-0"), "web-0");
        let a = sanitize("Web.0");
        let b = sanitize("web_0");
        assert_ne!(a, b);
        assert!(a.starts_with("web_0-") && a.len() <= 63, "{a}");
        let long = sanitize(&"x".repeat(100));
        assert!(long.len() <= 63);
        assert!(long.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'));
    }

    #[test]
    fn ownership_round_trips_through_labels_and_descriptions() {
        let o = Ownership {
            environment: "Staging".into(),
            instance: None,
            resource: ResourceAddr::new_unchecked("web-0"),
            lineage: "abc".into(),
            expires_at: None,
        };
        let labels = all(&o, Some(&json!({"role": "web", "phoenix-resource": "spoof"})));
        assert!(owned_by(&labels, &o));
        assert_eq!(user(&labels), json!({"role": "web"}));
        let d = description(&o, Some("front end"));
        assert!(description_owned_by(&d, &o));
        assert_eq!(user_description(&d), "front end");
        // Read back (for gc): exact from a description, sanitized from labels.
        let i = Ownership { instance: Some("Job-7".into()), ..o.clone() };
        assert_eq!(ownership_of_description(&description(&i, Some("x"))), Some(i.clone()));
        let back = ownership_of_labels(&all(&i, None)).unwrap();
        assert_eq!((back.resource.as_str(), back.lineage.as_str()), ("web-0", "abc"));
        assert!(names(&back.environment, "Staging") && names(back.instance.as_deref().unwrap(), "Job-7"));
        assert!(!names(&back.environment, "staging2"));
        assert_eq!(ownership_of_labels(&json!({"role": "web"})), None, "unmarked objects are nobody's");
    }
}
