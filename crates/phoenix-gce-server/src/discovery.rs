//! Google's Compute Engine v1 discovery document (the subset in
//! `data/compute-v1-subset.json`): routes requests to methods by HTTP verb and
//! `flatPath`, and checks query parameters and request bodies against the
//! method's declared parameters and schemas, as the real API's front end does.

use std::collections::BTreeMap;

use serde_json::Value;

/// The subset of the discovery document, extracted by `data/extract-discovery.py`.
pub const SUBSET: &str = include_str!("../data/compute-v1-subset.json");

/// One API method (`compute.instances.insert`).
#[derive(Debug)]
pub struct Method {
    pub id: String,
    pub http_method: String,
    segments: Vec<Segment>,
    parameters: serde_json::Map<String, Value>,
    request: Option<String>,
    /// The method's `apiVersion` (a date): clients pin a version with `$apiVersion`.
    api_version: Option<String>,
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Var(String),
}

/// A request the discovery document says the API rejects (HTTP 400).
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid(pub String);

pub struct Discovery {
    pub revision: String,
    methods: Vec<Method>,
    schemas: serde_json::Map<String, Value>,
    system_parameters: serde_json::Map<String, Value>,
}

impl Discovery {
    pub fn load() -> Self {
        let doc: Value = serde_json::from_str(SUBSET).expect("the discovery subset is valid JSON");
        let mut methods = Vec::new();
        for resource in doc["resources"].as_object().expect("resources").values() {
            for m in resource["methods"].as_object().expect("methods").values() {
                let segments = m["flatPath"]
                    .as_str()
                    .expect("flatPath")
                    .split('/')
                    .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(v) => Segment::Var(v.to_string()),
                        None => Segment::Literal(s.to_string()),
                    })
                    .collect();
                methods.push(Method {
                    id: m["id"].as_str().expect("id").to_string(),
                    http_method: m["httpMethod"].as_str().expect("httpMethod").to_string(),
                    segments,
                    parameters: m["parameters"].as_object().cloned().unwrap_or_default(),
                    request: m["request"]["$ref"].as_str().map(str::to_string),
                    api_version: m["apiVersion"].as_str().map(str::to_string),
                });
            }
        }
        Self {
            revision: doc["revision"].as_str().unwrap_or_default().to_string(),
            methods,
            schemas: doc["schemas"].as_object().cloned().unwrap_or_default(),
            system_parameters: doc["parameters"].as_object().cloned().unwrap_or_default(),
        }
    }

    /// The method serving `verb path` (path relative to `/compute/v1/`), with its path parameters.
    pub fn route(&self, verb: &str, path: &str) -> Option<(&Method, BTreeMap<String, String>)> {
        let parts: Vec<&str> = path.split('/').collect();
        'methods: for m in self.methods.iter().filter(|m| m.http_method == verb) {
            if m.segments.len() != parts.len() {
                continue;
            }
            let mut vars = BTreeMap::new();
            for (seg, part) in m.segments.iter().zip(&parts) {
                match seg {
                    Segment::Literal(l) if l == part => {}
                    Segment::Literal(_) => continue 'methods,
                    Segment::Var(_) if part.is_empty() => continue 'methods,
                    Segment::Var(v) => {
                        vars.insert(v.clone(), percent_decode(part));
                    }
                }
            }
            return Some((m, vars));
        }
        None
    }

    /// Checks the query string: every parameter must be one the method (or the
    /// API as a whole) declares, of the declared type; required ones must be present.
    pub fn check_query(&self, m: &Method, query: &[(String, String)]) -> Result<(), Invalid> {
        for (name, value) in query {
            // `$apiVersion` pins the API version a client was generated for: accepted for
            // methods that declare one, when it is a date no later than the document's.
            if name == "$apiVersion" {
                let ok = m.api_version.as_deref().is_some_and(|v| is_date(value) && value.as_str() <= v);
                if !ok {
                    return Err(Invalid(format!(
                        "Invalid value at '$apiVersion', \"{value}\": {} serves versions up to {:?}",
                        m.id, m.api_version
                    )));
                }
                continue;
            }
            let decl = match m.parameters.get(name).filter(|p| p["location"] == "query") {
                Some(p) => p,
                // System parameters such as `alt` are also accepted as `$alt`.
                None => match self.system_parameters.get(name.strip_prefix('$').unwrap_or(name)) {
                    Some(p) => p,
                    None => {
                        return Err(Invalid(format!(
                            "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. Field '{name}' could not be found in request message."
                        )));
                    }
                },
            };
            check_scalar(decl, value).map_err(|want| Invalid(format!("Invalid value at '{name}' ({want}), \"{value}\"")))?;
        }
        for (name, p) in &m.parameters {
            if p["location"] == "query" && p["required"] == true && !query.iter().any(|(n, _)| n == name) {
                return Err(Invalid(format!("Required parameter '{name}' is missing.")));
            }
        }
        Ok(())
    }

    /// Checks a request body against the method's request schema: unknown
    /// fields, wrong types, values outside an enum, and fields the schema marks
    /// required for this method are all rejected.
    pub fn check_body(&self, m: &Method, body: Option<&Value>) -> Result<(), Invalid> {
        match (&m.request, body) {
            (None, None) => Ok(()),
            (None, Some(Value::Object(o))) if o.is_empty() => Ok(()),
            (None, Some(_)) => Err(Invalid(format!("Invalid JSON payload received. {} takes no request body.", m.id))),
            (Some(schema), None) => Err(Invalid(format!("Invalid JSON payload received. {} needs a {schema} body.", m.id))),
            (Some(schema), Some(v)) => self.check_value("resource", &serde_json::json!({ "$ref": schema }), v, &m.id),
        }
    }

    fn check_value(&self, at: &str, decl: &Value, v: &Value, method: &str) -> Result<(), Invalid> {
        if let Some(name) = decl["$ref"].as_str() {
            let schema = self.schemas.get(name).ok_or_else(|| Invalid(format!("schema {name} is missing from the subset")))?;
            return self.check_value(at, schema, v, method);
        }
        let bad = |want: &str| Invalid(format!("Invalid value at '{at}' ({want}), {v}"));
        match decl["type"].as_str() {
            Some("object") => {
                let Value::Object(o) = v else { return Err(bad("TYPE_MESSAGE")) };
                let props = decl["properties"].as_object();
                for (k, fv) in o {
                    let field_decl = props.and_then(|p| p.get(k)).or_else(|| decl.get("additionalProperties").filter(|a| a.is_object()));
                    let Some(field_decl) = field_decl else {
                        return Err(Invalid(format!("Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field.")));
                    };
                    // `null` clears a field in JSON requests; the API accepts it for any field.
                    if fv.is_null() {
                        continue;
                    }
                    self.check_value(&format!("{at}.{k}"), field_decl, fv, method)?;
                }
                if let Some(props) = props {
                    for (k, p) in props {
                        let required = p["annotations"]["required"].as_array().is_some_and(|r| r.iter().any(|x| x == method));
                        if required && o.get(k).is_none_or(Value::is_null) {
                            return Err(Invalid(format!("Invalid value for field '{at}.{k}': ''. Required field is not specified.")));
                        }
                    }
                }
                Ok(())
            }
            Some("array") => {
                let Value::Array(items) = v else { return Err(bad("TYPE_LIST")) };
                for (i, item) in items.iter().enumerate() {
                    self.check_value(&format!("{at}[{i}]"), &decl["items"], item, method)?;
                }
                Ok(())
            }
            Some("string") => {
                // 64-bit integers travel as strings in JSON; bare numbers are accepted too, as protobuf JSON does.
                let s = match (v, decl["format"].as_str()) {
                    (Value::String(s), _) => s.clone(),
                    (Value::Number(n), Some("int64" | "uint64")) => n.to_string(),
                    _ => return Err(bad("TYPE_STRING")),
                };
                check_scalar(decl, &s).map_err(|w| bad(w))
            }
            Some("integer") => {
                let s = match v {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => return Err(bad("TYPE_INT32")),
                };
                check_scalar(decl, &s).map_err(|w| bad(w))
            }
            Some("number") => match v {
                Value::Number(_) => Ok(()),
                Value::String(s) if s.parse::<f64>().is_ok() => Ok(()),
                _ => Err(bad("TYPE_DOUBLE")),
            },
            Some("boolean") => match v {
                Value::Bool(_) => Ok(()),
                _ => Err(bad("TYPE_BOOL")),
            },
            Some("any") | None => Ok(()),
            Some(other) => Err(Invalid(format!("unsupported schema type {other} at {at}"))),
        }
    }
}

/// Checks one scalar (a query value, or a string/integer field) against its
/// declaration: integer formats, booleans and enums. Returns the protobuf type name on failure.
fn check_scalar(decl: &Value, s: &str) -> Result<(), &'static str> {
    let ok = match (decl["type"].as_str(), decl["format"].as_str()) {
        (Some("integer"), Some("uint32")) => s.parse::<u32>().is_ok(),
        (Some("integer"), _) => s.parse::<i32>().is_ok(),
        (Some("string"), Some("int64")) => s.parse::<i64>().is_ok(),
        (Some("string"), Some("uint64")) => s.parse::<u64>().is_ok(),
        (Some("boolean"), _) => s == "true" || s == "false",
        _ => true,
    };
    if !ok {
        return Err(match (decl["type"].as_str(), decl["format"].as_str()) {
            (Some("integer"), Some("uint32")) => "TYPE_UINT32",
            (Some("integer"), _) => "TYPE_INT32",
            (_, Some("int64")) => "TYPE_INT64",
            (_, Some("uint64")) => "TYPE_UINT64",
            _ => "TYPE_BOOL",
        });
    }
    if let Some(values) = decl["enum"].as_array()
        && !values.iter().any(|e| e == s)
    {
        return Err("TYPE_ENUM");
    }
    Ok(())
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10 && b[4] == b'-' && b[7] == b'-' && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// Decodes `%XX` escapes of a path segment or query value (and `+` in queries is left to the caller).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_verb_and_flat_path() {
        let d = Discovery::load();
        let (m, vars) = d.route("POST", "projects/p/zones/z/instances/vm/setMachineType").unwrap();
        assert_eq!(m.id, "compute.instances.setMachineType");
        assert_eq!(vars["instance"], "vm");
        let (m, _) = d.route("GET", "projects/p/global/images/family/debian-12").unwrap();
        assert_eq!(m.id, "compute.images.getFromFamily");
        assert!(d.route("PUT", "projects/p/global/networks/n").is_none());
    }
}
