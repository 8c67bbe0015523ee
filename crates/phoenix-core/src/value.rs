//! Attribute values, reference resolution and sealing of sensitive values.
//!
//! Values are JSON-shaped (string, number, bool, list, map) because that is
//! what every provider API, the state file and `--json` speak. References stay
//! as `${name.attr}` text inside strings until the value they name is known.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::addr::{Reference, Segment, parse_segments};

pub use serde_json::Value;

/// Attributes of one resource, sorted by name so output and state are deterministic.
pub type Attrs = BTreeMap<String, Value>;

/// Every well-formed reference inside a value, in order of appearance.
pub fn references(value: &Value) -> Vec<Reference> {
    let mut out = Vec::new();
    walk_strings(value, &mut |s| {
        if let Ok(segs) = parse_segments(s) {
            out.extend(segs.into_iter().filter_map(|seg| match seg {
                Segment::Ref(r) => Some(r),
                Segment::Text(_) => None,
            }));
        }
    });
    out
}

/// Malformed reference syntax anywhere inside a value, as messages.
pub fn reference_syntax_errors(value: &Value) -> Vec<crate::schema::Invalid> {
    let mut out = Vec::new();
    walk_strings(value, &mut |s| {
        if let Err(e) = parse_segments(s) {
            out.push(e);
        }
    });
    out
}

fn walk_strings(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| walk_strings(v, f)),
        Value::Object(map) => map.values().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

/// Substitutes every reference whose value `lookup` knows; leaves the others as
/// `${...}` text, which is how a plan shows "known after apply".
///
/// A string that is exactly one reference takes the referenced value with its
/// type (`"${db.port}"` becomes the number); a reference inside a longer
/// string is interpolated as text.
pub fn resolve_known(value: &Value, lookup: &dyn Fn(&Reference) -> Option<Value>) -> Value {
    match value {
        Value::String(s) => resolve_string(s, lookup),
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve_known(v, lookup)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), resolve_known(v, lookup))).collect()),
        other => other.clone(),
    }
}

fn resolve_string(s: &str, lookup: &dyn Fn(&Reference) -> Option<Value>) -> Value {
    if !s.contains('$') {
        return Value::String(s.to_string());
    }
    let Ok(segs) = parse_segments(s) else {
        return Value::String(s.to_string());
    };
    if let [Segment::Ref(r)] = segs.as_slice() {
        return lookup(r).unwrap_or_else(|| Value::String(r.to_string()));
    }
    let mut out = String::new();
    for seg in segs {
        match seg {
            Segment::Text(t) => out.push_str(&t.replace("${", "$${")),
            Segment::Ref(r) => match lookup(&r) {
                Some(v) => out.push_str(&display_plain(&v).replace("${", "$${")),
                None => out.push_str(&r.to_string()),
            },
        }
    }
    Value::String(out)
}

/// True when no reference is left to resolve.
pub fn is_known(value: &Value) -> bool {
    references(value).is_empty()
}

/// Removes the `$${` escapes from a fully resolved value: what providers receive.
pub fn unescape(value: &Value) -> Value {
    match value {
        Value::String(s) if s.contains("$${") => Value::String(s.replace("$${", "${")),
        Value::Array(items) => Value::Array(items.iter().map(unescape).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), unescape(v))).collect()),
        other => other.clone(),
    }
}

/// A value as a person reads it: strings without quotes, the rest as JSON.
pub fn display_plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const SEALED_KEY: &str = "$sensitive";

/// Replaces a sensitive value by a salted digest: state can tell whether the
/// value changed without ever holding it.
pub fn seal(value: &Value, salt: &str) -> Value {
    if is_sealed(value) {
        return value.clone();
    }
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update([0]);
    hasher.update(value.to_string().as_bytes());
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut map = serde_json::Map::new();
    map.insert(SEALED_KEY.into(), Value::String(format!("sha256:{hex}")));
    Value::Object(map)
}

pub fn is_sealed(value: &Value) -> bool {
    matches!(value, Value::Object(m) if m.len() == 1 && m.contains_key(SEALED_KEY))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn lookup(r: &Reference) -> Option<Value> {
        match (r.resource.as_str(), r.attribute.as_str()) {
            ("db", "port") => Some(json!(5432)),
            ("web", "host") => Some(json!("127.0.0.1")),
            _ => None,
        }
    }

    #[test]
    fn whole_reference_keeps_type() {
        assert_eq!(resolve_known(&json!("${db.port}"), &lookup), json!(5432));
    }

    #[test]
    fn embedded_reference_interpolates() {
        assert_eq!(resolve_known(&json!("http://${web.host}:${db.port}/"), &lookup), json!("http://127.0.0.1:5432/"));
    }

    #[test]
    fn unknown_references_stay() {
        let v = resolve_known(&json!(["${vpc.id}", "${db.port}"]), &lookup);
        assert_eq!(v, json!(["${vpc.id}", 5432]));
        assert!(!is_known(&v));
    }

    #[test]
    fn escaped_dollars_survive_resolution_and_unescape() {
        let v = resolve_known(&json!("echo $${HOME} ${web.host}"), &lookup);
        assert_eq!(v, json!("echo $${HOME} 127.0.0.1"));
        assert!(is_known(&v));
        assert_eq!(unescape(&v), json!("echo ${HOME} 127.0.0.1"));
    }

    #[test]
    fn sealing_hides_the_value_but_detects_change() {
        let a = seal(&json!("hunter2"), "lineage");
        assert!(!a.to_string().contains("hunter2"));
        assert_eq!(a, seal(&json!("hunter2"), "lineage"));
        assert_ne!(a, seal(&json!("hunter3"), "lineage"));
        assert_eq!(seal(&a, "lineage"), a);
    }
}
