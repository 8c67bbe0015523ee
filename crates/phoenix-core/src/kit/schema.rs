//! A kind's [`ResourceSchema`], derived from its typed `Spec` and `Outputs`.
//!
//! The structs are the one place an attribute is described: its doc comment
//! is the description, serde's default is the default, `Option` or a default
//! makes it optional, and these keywords (`#[schemars(extend(...))]`) add
//! what serde cannot say:
//!
//! | keyword | on | meaning |
//! |---|---|---|
//! | `"force_new" = true` | spec | a change replaces the object |
//! | `"sensitive" = true` | spec | never in state, plans or logs in clear (implied by [`super::Secret`]) |
//! | `"stable" = true` | outputs | an in-place update never changes it (ids, ARNs) |
//! | `"highlight" = true` | outputs | `phoenix status` shows it |
//! | `"format" = "ipv4-cidr"` | spec | a named validator: the kind's own ([`Kind::FORMATS`]), else [`validators::by_format`] |
//!
//! Enums of unit variants become a one-of constraint; integers keep the
//! range of their Rust type (`u16` ports cannot be 70000).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use schemars::JsonSchema;
use serde_json::{Map, Value};

use super::Kind;
use crate::schema::{AttrSchema, AttrType, Constraint, Relation, ResourceSchema, ZoneRole, validators};

/// The schema of kind `K`.
///
/// # Panics
/// On a spec the schema model cannot express (a bug in the kind, caught by
/// every kind's schema test in the conformance suite).
pub fn of<K: Kind>(kind: &K) -> ResourceSchema {
    let caps = kind.capabilities();
    let mut attrs = Vec::new();
    let spec = json_schema_of::<K::Spec>();
    let required: HashSet<&str> = spec["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    for (name, prop) in properties(&spec) {
        let mut a = if required.contains(name.as_str()) {
            AttrSchema::required(intern(name), attr_type(prop), description(prop))
        } else {
            AttrSchema::optional(intern(name), attr_type(prop), description(prop))
        };
        a.default = prop.get("default").filter(|d| !d.is_null()).cloned();
        a.force_new = flag(prop, "force_new");
        a.sensitive = flag(prop, "sensitive");
        if let Some(format) = prop.get("format").and_then(Value::as_str)
            && let Some(validator) = validator::<K>(format)
        {
            a.validator = Some(validator);
            a.format = Some(intern(format));
        }
        a.constraint = constraint(prop);
        a.relation = relation(prop);
        a.zone = zone_role(prop);
        attrs.push(a);
    }
    for (name, prop) in properties(&json_schema_of::<K::Outputs>()) {
        // An output named like an input is the input's value as the provider
        // settled it ("optional, else computed"); one of another type is a
        // different attribute that happens to share the name (`gcp.instance`'s
        // `external_ip`: asked for as a boolean, given as an address).
        if let Some(input) = attrs.iter_mut().find(|a| a.name == name && !a.computed && a.ty == attr_type(prop)) {
            input.computed = true;
            input.stable |= flag(prop, "stable");
            continue;
        }
        let mut a = AttrSchema::computed(intern(name), attr_type(prop), description(prop));
        a.stable = flag(prop, "stable");
        a.highlight = flag(prop, "highlight");
        attrs.push(a);
    }
    ResourceSchema {
        type_name: K::TYPE,
        description: K::DESCRIPTION,
        attrs,
        update_in_place: caps.update_in_place,
        create_before_destroy: caps.create_before_destroy,
        adoptable: caps.adoptable,
    }
}

/// The validator a `format` keyword names: the kind's own, else a shared one.
fn validator<K: Kind>(format: &str) -> Option<crate::schema::Validator> {
    K::FORMATS.iter().find(|(f, _)| *f == format).map(|(_, v)| *v).or_else(|| validators::by_format(format))
}

/// The JSON Schema of `T` with every subschema inlined (draft 2020-12).
pub fn json_schema_of<T: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true);
    settings.into_generator().into_root_schema_for::<T>().to_value()
}

fn properties(schema: &Value) -> impl Iterator<Item = (&String, &Value)> {
    schema["properties"].as_object().into_iter().flat_map(Map::iter)
}

/// A keyword on the attribute, or on its type inside an `Option`.
fn flag(prop: &Value, key: &str) -> bool {
    [prop, non_null(prop)].iter().any(|p| p.get(key).and_then(Value::as_bool).unwrap_or(false))
}

/// A keyword's value on the attribute, or on its type inside an `Option`.
fn keyword<'a>(prop: &'a Value, key: &str) -> Option<&'a Value> {
    prop.get(key).or_else(|| non_null(prop).get(key))
}

/// `"inside" = "vpc_id.cidr_block"`: a range inside the range of the resource
/// `vpc_id` refers to; `"spread_over_zones" = 2`: references in two zones.
///
/// # Panics
/// On an `inside` that is not `attribute.attribute`: a bug in the kind.
fn relation(prop: &Value) -> Option<Relation> {
    if let Some(inside) = keyword(prop, "inside").and_then(Value::as_str) {
        let (parent, range) = inside.split_once('.').unwrap_or_else(|| panic!("`inside` = {inside:?} is not `attribute.attribute`"));
        return Some(Relation::InsideRangeOf { parent: intern(parent), range: intern(range) });
    }
    let min = keyword(prop, "spread_over_zones").and_then(Value::as_u64)?;
    Some(Relation::SpreadOverZones { min: min as usize })
}

/// `"zone" = "named"` or `"zone" = "index"`: how the attribute places its resource.
fn zone_role(prop: &Value) -> Option<ZoneRole> {
    match keyword(prop, "zone").and_then(Value::as_str)? {
        "named" => Some(ZoneRole::Named),
        "index" => Some(ZoneRole::Index),
        other => panic!("`zone` = {other:?} is neither \"named\" nor \"index\""),
    }
}

fn description(prop: &Value) -> &'static str {
    intern(prop.get("description").and_then(Value::as_str).unwrap_or_default())
}

/// The schema without its `null` alternative (`Option<T>`).
fn non_null(prop: &Value) -> &Value {
    if let Some(alts) = prop.get("anyOf").or_else(|| prop.get("oneOf")).and_then(Value::as_array) {
        let rest: Vec<&Value> = alts.iter().filter(|a| a.get("type").and_then(Value::as_str) != Some("null")).collect();
        if let [only] = rest.as_slice() {
            return only;
        }
    }
    prop
}

fn type_name(prop: &Value) -> Option<&str> {
    match prop.get("type") {
        Some(Value::String(t)) => Some(t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn attr_type(prop: &Value) -> AttrType {
    let prop = non_null(prop);
    if prop.get("enum").is_some() || prop.get("const").is_some() {
        return AttrType::String;
    }
    match type_name(prop) {
        Some("string") => AttrType::String,
        Some("integer") => AttrType::Int,
        Some("number") => AttrType::Float,
        Some("boolean") => AttrType::Bool,
        Some("array") => AttrType::List(Box::new(prop.get("items").map_or(AttrType::Any, attr_type))),
        Some("object") => match prop.get("additionalProperties") {
            // A struct: a table whose keys the spec checks when it is deserialized.
            _ if prop.get("properties").is_some() => AttrType::Map(Box::new(AttrType::Any)),
            Some(Value::Object(inner)) if !inner.is_empty() => AttrType::Map(Box::new(attr_type(&Value::Object(inner.clone())))),
            _ => AttrType::Map(Box::new(AttrType::Any)),
        },
        _ => AttrType::Any,
    }
}

fn constraint(prop: &Value) -> Option<Constraint> {
    let prop = non_null(prop);
    if let Some(values) = prop.get("enum").and_then(Value::as_array) {
        return Some(Constraint::OneOf(values.iter().filter_map(Value::as_str).map(str::to_string).collect()));
    }
    if let Some(alts) = prop.get("oneOf").and_then(Value::as_array) {
        // Enums with documented variants: one `const` per variant.
        let values: Option<Vec<String>> = alts.iter().map(|a| a.get("const").and_then(Value::as_str).map(str::to_string)).collect();
        return values.map(Constraint::OneOf);
    }
    let (min, max) = (prop.get("minimum").and_then(Value::as_f64), prop.get("maximum").and_then(Value::as_f64));
    (min.is_some() || max.is_some()).then_some(Constraint::Range { min, max })
}

/// Schema text lives as long as the process: each distinct string is leaked once.
fn intern(s: &str) -> &'static str {
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = seen.get(s) {
        return s;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    seen.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use crate::schema::Invalid;
    use std::collections::BTreeMap;

    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::builtin::Data;
    use crate::kit::{Capabilities, Create, Delete, Observed, Prior};
    use crate::provider::ProviderError;

    #[test]
    fn the_data_kind_keeps_its_schema() {
        let s = of(&Data);
        let a = |n: &str| s.attr(n).unwrap_or_else(|| panic!("no `{n}`"));
        assert_eq!((s.type_name, s.update_in_place, s.adoptable), ("data", true, false));
        assert!(a("input").optional && a("input").ty == AttrType::Any && !a("input").computed);
        assert!(a("triggers").force_new && a("triggers").ty == AttrType::Map(Box::new(AttrType::Any)));
        assert!(a("secret").sensitive && a("secret").ty == AttrType::String);
        assert!(a("id").computed && a("id").stable && !a("id").configurable());
        assert!(a("output").computed && !a("output").stable);
        assert_eq!(a("input").description, "any value; copied to `output`");
    }

    /// A spec using every feature of the schema model.
    #[derive(Clone, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Everything {
        /// the range
        #[schemars(extend("force_new" = true, "format" = "ipv4-cidr"))]
        cidr: String,
        /// a port
        port: Option<u16>,
        /// how many
        #[serde(default = "three")]
        count: i64,
        /// a mode
        #[serde(default)]
        mode: Mode,
        /// names
        #[serde(default)]
        names: Vec<String>,
        /// tags
        #[serde(default)]
        tags: BTreeMap<String, String>,
        /// rules
        #[serde(default)]
        rules: Vec<Rule>,
        /// a name only this kind knows how to check
        #[serde(default = "three")]
        #[schemars(extend("format" = "odd"))]
        odd: i64,
    }
    #[derive(Clone, Default, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Fast,
        Safe,
    }
    #[derive(Clone, Serialize, Deserialize, JsonSchema)]
    struct Rule {
        from: u16,
    }
    #[derive(Clone, Serialize, Deserialize, JsonSchema)]
    struct Out {
        /// the id
        #[schemars(extend("stable" = true, "highlight" = true))]
        id: String,
        /// the port in use
        port: u16,
    }
    fn three() -> i64 {
        3
    }
    fn odd(v: &serde_json::Value) -> Result<(), Invalid> {
        match v.as_i64() {
            Some(n) if n % 2 == 0 => Err(Invalid(format!("{n} is even"))),
            _ => Ok(()),
        }
    }
    struct K;
    #[async_trait::async_trait]
    impl Kind for K {
        const TYPE: &'static str = "test.everything";
        const DESCRIPTION: &'static str = "test";
        type Client = ();
        type Spec = Everything;
        type Outputs = Out;
        const FORMATS: &'static [(&'static str, crate::schema::Validator)] = &[("odd", odd)];
        fn capabilities(&self) -> Capabilities {
            Capabilities::managed().replace_only()
        }
        async fn read(&self, _: &(), _: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
            unreachable!()
        }
        async fn create(&self, _: &(), _: Create<'_, Self>) -> Result<Out, ProviderError> {
            unreachable!()
        }
        async fn delete(&self, _: &(), _: Delete<'_, Self>) -> Result<(), ProviderError> {
            unreachable!()
        }
    }

    #[test]
    fn every_feature_of_a_spec_reaches_the_schema() {
        use serde_json::json;
        let s = of(&K);
        let a = |n: &str| s.attr(n).unwrap_or_else(|| panic!("no `{n}`"));
        assert!(!s.update_in_place);
        assert!(a("cidr").required && a("cidr").force_new && a("cidr").validator.is_some());
        assert!(a("cidr").check_value(&json!("10.0.0.1/16")).is_err());
        assert!(a("port").optional && a("port").ty == AttrType::Int && a("port").computed, "in spec and outputs: optional + computed");
        assert!(a("port").check_value(&json!(70000)).is_err() && a("port").check_value(&json!(443)).is_ok());
        assert_eq!(a("count").default, Some(json!(3)));
        assert!(!a("count").required);
        assert_eq!(a("mode").ty, AttrType::String);
        assert!(a("mode").check_value(&json!("slow")).unwrap_err().0.contains("fast, safe"));
        assert!(a("mode").check_value(&json!("${x.mode}")).is_ok(), "unknown values are checked once known");
        assert_eq!(a("names").ty, AttrType::List(Box::new(AttrType::String)));
        assert_eq!(a("tags").ty, AttrType::Map(Box::new(AttrType::String)));
        assert_eq!(a("rules").ty, AttrType::List(Box::new(AttrType::Map(Box::new(AttrType::Any)))));
        assert!(a("id").computed && a("id").stable && a("id").highlight);
        assert_eq!(a("id").description, "the id");
        assert!(a("odd").check_value(&json!(4)).unwrap_err().0.contains("even"), "a kind's own format, over an i64's `int64`");
        assert!(a("odd").check_value(&json!(5)).is_ok() && a("odd").ty == AttrType::Int);
    }
}

/// A spec's transform (`#[schemars(transform = kit::schema::required(&["vpc_id"]))]`)
/// keeping inputs required of users whose serde default exists only so that
/// state still parses where a read found them absent (a gateway detached by
/// hand, a key that cannot be read back after an import): required, no default.
pub fn required(names: &'static [&'static str]) -> impl FnMut(&mut schemars::Schema) {
    move |schema| {
        let object = schema.ensure_object();
        for name in names {
            if let Some(prop) = object.get_mut("properties").and_then(|p| p.get_mut(*name)).and_then(Value::as_object_mut) {
                prop.remove("default");
            }
            if let Some(required) = object.entry("required").or_insert_with(|| Value::Array(Vec::new())).as_array_mut()
                && !required.iter().any(|r| r == *name)
            {
                required.push(Value::from(*name));
            }
        }
    }
}

#[cfg(test)]
mod kind_set_tests {
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::kit::{Capabilities, Create, Delete, Observed, Prior};
    use crate::provider::ProviderError;

    #[derive(Clone, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(transform = required(&["parent"]))]
    struct Spec {
        /// the parent
        #[serde(default)]
        parent: String,
        /// the zone
        zone: Option<String>,
    }
    #[derive(Clone, Serialize, Deserialize, JsonSchema)]
    struct Out {
        /// the zone picked
        #[schemars(extend("stable" = true))]
        zone: String,
    }
    struct K;
    #[async_trait::async_trait]
    impl Kind for K {
        const TYPE: &'static str = "test.required";
        const DESCRIPTION: &'static str = "test";
        type Client = ();
        type Spec = Spec;
        type Outputs = Out;
        fn capabilities(&self) -> Capabilities {
            Capabilities::managed()
        }
        async fn read(&self, _: &(), _: &[Prior<Self>]) -> Result<Vec<Option<Observed<Self>>>, ProviderError> {
            unreachable!()
        }
        async fn create(&self, _: &(), _: Create<'_, Self>) -> Result<Out, ProviderError> {
            unreachable!()
        }
        async fn delete(&self, _: &(), _: Delete<'_, Self>) -> Result<(), ProviderError> {
            unreachable!()
        }
    }

    #[test]
    fn a_required_input_with_a_serde_default_stays_required_and_an_output_keeps_an_input_stable() {
        let s = of(&K);
        let parent = s.attr("parent").unwrap();
        assert!(parent.required && !parent.optional && parent.default.is_none(), "{parent:?}");
        let spec: Spec = serde_json::from_value(serde_json::json!({})).expect("state without it still parses");
        assert_eq!(spec.parent, "");
        let zone = s.attr("zone").unwrap();
        assert!(zone.optional && zone.computed && zone.stable, "{zone:?}");
    }

    #[test]
    fn a_kind_set_lists_its_schemas_in_registration_order() {
        // The order types depend on each other, which `gc` deletes in reverse: not alphabetical.
        let set = crate::kit::KindSet::new().with(K).with(crate::builtin::Data);
        let types: Vec<&str> = set.schemas().iter().map(|s| s.type_name).collect();
        assert_eq!(types, ["test.required", "data"]);
    }
}
