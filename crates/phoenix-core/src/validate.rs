//! Checks a definition against provider schemas before any side effect.
//!
//! Every problem is collected (not just the first), each with an [`Origin`]
//! that the configuration loader maps back to a file, line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::addr::ResourceAddr;
use crate::addr::{Segment, parse_segments};
use crate::definition::Definition;
use crate::graph::Dag;
use crate::schema::{AttrType, Invalid, Relation, ResourceSchema, ZoneRole, closest};
use crate::value::{Value, is_known, reference_syntax_errors, references};

/// What kind of mistake; stable names that tests and `--json` consumers match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    TomlSyntax,
    Template,
    EnvironmentFile,
    UnknownTemplate,
    UnknownVariable,
    UnknownProvider,
    UnknownType,
    UnknownAttribute,
    MissingAttribute,
    ComputedAttribute,
    WrongType,
    InvalidValue,
    InvalidName,
    DuplicateResource,
    BadReference,
    DanglingReference,
    UnknownReferenceAttribute,
    Cycle,
    MissingEnvironmentVariable,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        f.write_str(&s)
    }
}

/// Where in the definition a problem is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "in", rename_all = "snake_case")]
pub enum Origin {
    /// A resource, optionally one of its fields (`type`, `depends_on` or an attribute).
    Resource {
        resource: ResourceAddr,
        field: Option<String>,
    },
    Output {
        output: String,
    },
}

impl Origin {
    pub fn field(resource: &ResourceAddr, field: impl Into<String>) -> Self {
        Origin::Resource { resource: resource.clone(), field: Some(field.into()) }
    }
    pub fn resource(resource: &ResourceAddr) -> Self {
        Origin::Resource { resource: resource.clone(), field: None }
    }
}

/// One problem found by validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub kind: ErrorKind,
    pub origin: Origin,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Problem {
    fn new(kind: ErrorKind, origin: Origin, message: impl Into<String>) -> Self {
        Self { kind, origin, message: message.into(), help: None }
    }
    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Resource types known to the registry, by type name.
pub type Schemas = BTreeMap<String, ResourceSchema>;

/// Validates types, attributes, values, references and the absence of cycles.
pub fn validate(def: &Definition, schemas: &Schemas) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (addr, res) in &def.resources {
        let Some(schema) = schemas.get(&res.type_name) else {
            let mut p =
                Problem::new(ErrorKind::UnknownType, Origin::field(addr, "type"), format!("unknown resource type `{}`", res.type_name));
            // `gcp.subnet` means a GCP type: never suggest another provider's `aws.subnet`.
            let provider = crate::definition::provider_of(&res.type_name);
            let same_provider = schemas.keys().map(String::as_str).filter(|t| crate::definition::provider_of(t) == provider);
            if let Some(s) = closest(&res.type_name, same_provider) {
                p = p.help(format!("did you mean `{s}`?"));
            } else {
                p = p.help(format!("known types: {}", schemas.keys().cloned().collect::<Vec<_>>().join(", ")));
            }
            problems.push(p);
            continue;
        };
        for (name, value) in &res.attrs {
            let Some(attr) = schema.attr(name) else {
                let mut p = Problem::new(
                    ErrorKind::UnknownAttribute,
                    Origin::field(addr, name),
                    format!("`{}` has no attribute `{name}`", res.type_name),
                );
                let configurable = schema.attrs.iter().filter(|a| a.configurable()).map(|a| a.name);
                if let Some(s) = closest(name, configurable) {
                    p = p.help(format!("did you mean `{s}`?"));
                } else {
                    let names: Vec<_> = schema.attrs.iter().filter(|a| a.configurable()).map(|a| a.name).collect();
                    p = p.help(format!("`{}` takes: {}", res.type_name, names.join(", ")));
                }
                problems.push(p);
                continue;
            };
            if !attr.configurable() {
                problems.push(Problem::new(
                    ErrorKind::ComputedAttribute,
                    Origin::field(addr, name),
                    format!("`{}.{name}` is computed by the provider and cannot be set", res.type_name),
                ));
                continue;
            }
            for e in reference_syntax_errors(value) {
                problems.push(Problem::new(ErrorKind::BadReference, Origin::field(addr, name), e));
            }
            if let Err(e) = attr.ty.check(value).and_then(|()| check_reference_types(&attr.ty, value, def, schemas)) {
                problems.push(Problem::new(ErrorKind::WrongType, Origin::field(addr, name), format!("`{name}`: {e}")));
            } else if let Err(e) = attr.check_value(value) {
                problems.push(Problem::new(ErrorKind::InvalidValue, Origin::field(addr, name), format!("`{name}`: {e}")));
            }
        }
        for name in &res.lifecycle.ignore_changes {
            if schema.attr(name).is_none_or(|a| !a.configurable()) {
                let mut p = Problem::new(
                    ErrorKind::UnknownAttribute,
                    Origin::field(addr, "ignore_changes"),
                    format!("`ignore_changes` names `{name}`, which `{}` cannot be configured with", res.type_name),
                );
                if let Some(s) = closest(name, schema.attrs.iter().filter(|a| a.configurable()).map(|a| a.name)) {
                    p = p.help(format!("did you mean `{s}`?"));
                }
                problems.push(p);
            }
        }
        for attr in schema.attrs.iter().filter(|a| a.required) {
            if !res.attrs.contains_key(attr.name) {
                problems.push(
                    Problem::new(
                        ErrorKind::MissingAttribute,
                        Origin::resource(addr),
                        format!("`{}` requires attribute `{}`", res.type_name, attr.name),
                    )
                    .help(format!("add `{} = ...` ({}: {})", attr.name, attr.ty, attr.description)),
                );
            }
        }
        for (attr_name, r) in res.references() {
            if r.resource == *addr {
                problems.push(
                    Problem::new(
                        ErrorKind::Cycle,
                        Origin::field(addr, &attr_name),
                        format!("`{addr}.{attr_name}` refers to `{r}`: its own resource"),
                    )
                    .help("a resource cannot use its own attributes; refer to another resource, or write the value itself"),
                );
                continue;
            }
            check_reference(def, schemas, addr, &attr_name, &r.resource, Some(&r.attribute), &mut problems);
        }
        for dep in &res.depends_on {
            if dep == addr {
                problems.push(Problem::new(ErrorKind::Cycle, Origin::field(addr, "depends_on"), format!("`{addr}` depends on itself")));
                continue;
            }
            check_reference(def, schemas, addr, "depends_on", dep, None, &mut problems);
        }
        check_relations(def, schemas, addr, res, schema, &mut problems);
    }
    for (name, out) in &def.outputs {
        for e in reference_syntax_errors(&out.value) {
            problems.push(Problem::new(ErrorKind::BadReference, Origin::Output { output: name.clone() }, e));
        }
        for r in references(&out.value) {
            match def.resources.get(&r.resource) {
                None => problems.push(Problem::new(
                    ErrorKind::DanglingReference,
                    Origin::Output { output: name.clone() },
                    format!("output `{name}` refers to `{r}`, but no resource is named `{}`", r.resource),
                )),
                Some(target) => {
                    if let Some(schema) = schemas.get(&target.type_name)
                        && !schema.has_attr(&r.attribute)
                    {
                        problems.push(Problem::new(
                            ErrorKind::UnknownReferenceAttribute,
                            Origin::Output { output: name.clone() },
                            format!("output `{name}` refers to `{r}`, but `{}` has no attribute `{}`", target.type_name, r.attribute),
                        ));
                    }
                }
            }
        }
    }
    // Every cycle, not just the first: each found one is cut at its first edge and the search goes on.
    let mut cut = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for _ in 0..def.resources.len() {
        let Some(cycle) = graph_without(def, &cut).find_cycle() else { break };
        let mut members = cycle.clone();
        members.sort();
        if !seen.insert(members) {
            break;
        }
        let path: Vec<String> = cycle.iter().map(ToString::to_string).collect();
        let first = cycle[0].clone();
        problems.push(
            Problem::new(ErrorKind::Cycle, Origin::resource(&first), format!("dependency cycle: {}", path.join(" -> ")))
                .help("break the cycle by removing one of these references or `depends_on` entries"),
        );
        cut.insert((first, cycle.get(1).cloned().unwrap_or_else(|| cycle[0].clone())));
    }
    problems
}

/// A string at a position typed other than string: text with a reference inside
/// is text, and a whole `${r.attr}` takes that attribute's type, which must fit.
fn check_reference_types(expected: &AttrType, value: &Value, def: &Definition, schemas: &Schemas) -> Result<(), Invalid> {
    match (expected, value) {
        (AttrType::Any | AttrType::String, _) => Ok(()),
        (AttrType::List(inner), Value::Array(items)) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_reference_types(inner, v, def, schemas).map_err(|e| e.within(format!("item {i}")))),
        (AttrType::Map(inner), Value::Object(map)) => {
            map.iter().try_for_each(|(k, v)| check_reference_types(inner, v, def, schemas).map_err(|e| e.within(format!("key `{k}`"))))
        }
        (_, Value::String(s)) if !is_known(value) => {
            let segments = parse_segments(s).unwrap_or_default();
            let [Segment::Ref(r)] = segments.as_slice() else {
                return Err(Invalid(format!("expected {expected}, found text with a reference inside (`{s}`), which is always a string")));
            };
            let target = def.resources.get(&r.resource).and_then(|t| schemas.get(&t.type_name)).and_then(|s| s.attr(&r.attribute));
            match target {
                Some(t) if !fits(expected, &t.ty) => Err(Invalid(format!("expected {expected}, but `{r}` is {}", t.ty))),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// Whether a value of type `given` may stand where `expected` is needed.
fn fits(expected: &AttrType, given: &AttrType) -> bool {
    match (expected, given) {
        (AttrType::Any, _) | (_, AttrType::Any) => true,
        (AttrType::Float, AttrType::Int) => true,
        (AttrType::List(a), AttrType::List(b)) | (AttrType::Map(a), AttrType::Map(b)) => fits(a, b),
        (a, b) => a == b,
    }
}

/// Holds a resource to the relations its kind declares on its attributes.
fn check_relations(
    def: &Definition,
    schemas: &Schemas,
    addr: &ResourceAddr,
    res: &crate::definition::ResourceConfig,
    schema: &ResourceSchema,
    problems: &mut Vec<Problem>,
) {
    for attr in &schema.attrs {
        match &attr.relation {
            Some(Relation::InsideRangeOf { parent, range }) => check_inside_range(def, addr, res, attr.name, parent, range, problems),
            Some(Relation::SpreadOverZones { min }) => check_zone_spread(def, schemas, addr, res, attr.name, *min, problems),
            None => {}
        }
    }
}

/// A range must be inside its parent's (a subnet's inside its VPC's), when both are written out.
fn check_inside_range(
    def: &Definition,
    addr: &ResourceAddr,
    res: &crate::definition::ResourceConfig,
    range_attr: &str,
    parent_attr: &str,
    parent_range_attr: &str,
    problems: &mut Vec<Problem>,
) {
    let Some(range) = res.attrs.get(range_attr).and_then(Value::as_str).and_then(parse_cidr) else { return };
    let Some(parent) = res.attrs.get(parent_attr).and_then(|v| references(v).into_iter().next()) else { return };
    let Some(parent_res) = def.resources.get(&parent.resource) else { return };
    let Some(parent_text) = parent_res.attrs.get(parent_range_attr).and_then(Value::as_str) else { return };
    let Some(outer) = parse_cidr(parent_text) else { return };
    let inside = range.1 >= outer.1 && (range.0 & prefix_mask(outer.1)) == outer.0;
    if !inside {
        problems.push(
            Problem::new(
                ErrorKind::InvalidValue,
                Origin::field(addr, range_attr),
                format!(
                    "`{range_attr}` = \"{}\" is not inside `{}`'s {parent_range_attr} {parent_text}",
                    res.attrs[range_attr].as_str().unwrap_or_default(),
                    parent.resource
                ),
            )
            .help(format!("pick a range within {parent_text}, or widen `{}.{parent_range_attr}`", parent.resource)),
        );
    }
}

/// Where a resource of this definition is, as far as the definition says.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ZoneOf {
    Named(String),
    /// Picked by position (`az_index`): equal indexes are the same zone.
    Index(i64),
}

/// The zone a resource is placed in by its attributes of a [`ZoneRole`],
/// with the names of those attributes; `None` when the definition doesn't say.
fn zone_of(res: &crate::definition::ResourceConfig, schema: &ResourceSchema) -> Option<(ZoneOf, &'static str, &'static str)> {
    let named = schema.attrs.iter().find(|a| a.zone == Some(ZoneRole::Named))?.name;
    let index = schema.attrs.iter().find(|a| a.zone == Some(ZoneRole::Index)).map_or(named, |a| a.name);
    let zone = match (res.attrs.get(named), res.attrs.get(index).and_then(Value::as_i64)) {
        (Some(z), _) if is_known(z) => ZoneOf::Named(z.as_str()?.to_string()),
        (None, Some(i)) => ZoneOf::Index(i),
        _ => return None,
    };
    Some((zone, named, index))
}

/// A list of resources of this definition, each with its zone written out,
/// must span `min` zones (a load balancer's or DB subnet group's subnets).
fn check_zone_spread(
    def: &Definition,
    schemas: &Schemas,
    addr: &ResourceAddr,
    res: &crate::definition::ResourceConfig,
    list_attr: &str,
    min: usize,
    problems: &mut Vec<Problem>,
) {
    let Some(items) = res.attrs.get(list_attr).and_then(Value::as_array) else { return };
    let mut zones = Vec::new();
    let mut zone_attrs = None;
    for item in items {
        // An id written out, or anything but a whole `${subnet.id}`: its zone is unknown here.
        let Some(r) = whole_reference(item) else { return };
        let Some(member) = def.resources.get(&r.resource) else { return };
        let Some((zone, named, index)) = schemas.get(&member.type_name).and_then(|s| zone_of(member, s)) else { return };
        zone_attrs = Some((named, index));
        zones.push((zone, r.resource.clone()));
    }
    let distinct: BTreeSet<&ZoneOf> = zones.iter().map(|(z, _)| z).collect();
    let mixed = distinct.iter().any(|z| matches!(z, ZoneOf::Named(_))) && distinct.iter().any(|z| matches!(z, ZoneOf::Index(_)));
    if distinct.len() >= min || mixed {
        return;
    }
    let (named, index) = zone_attrs.unwrap_or(("availability_zone", "az_index"));
    let names: Vec<String> = zones.iter().map(|(_, r)| format!("`{r}`")).collect();
    let place = match distinct.first() {
        Some(ZoneOf::Named(z)) => format!("in {z}"),
        Some(ZoneOf::Index(i)) => format!("in the zone of {index} {i}"),
        None => String::new(),
    };
    let at_least = match min {
        2 => "two".to_string(),
        3 => "three".to_string(),
        n => n.to_string(),
    };
    let needs = format!("`{}` needs its `{list_attr}` in at least {at_least} availability zones", res.type_name);
    let message = match names.as_slice() {
        [] => format!("{needs}; none is given"),
        [one] => format!("{needs}; only {one} is given ({place})"),
        [a, b] => format!("{needs}; {a} and {b} are both {place}"),
        many => format!("{needs}; {} are all {place}", many.join(", ")),
    };
    problems.push(
        Problem::new(ErrorKind::InvalidValue, Origin::field(addr, list_attr), message)
            .help(format!("add one in another zone, or give one of these another `{named}` (or `{index}`)")),
    );
}

/// The reference a value is made of entirely (`"${subnet-a.id}"`), if it is one.
fn whole_reference(value: &Value) -> Option<crate::addr::Reference> {
    let segments = parse_segments(value.as_str()?).ok()?;
    match segments.as_slice() {
        [Segment::Ref(r)] => Some(r.clone()),
        _ => None,
    }
}

/// `10.0.0.0/16` as (network address, prefix length); `None` for anything else
/// (a malformed one is reported by the attribute's own validator).
fn parse_cidr(s: &str) -> Option<(u32, u32)> {
    let (ip, len) = s.split_once('/')?;
    let ip: std::net::Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((u32::from(ip) & prefix_mask(len), len))
}

fn prefix_mask(len: u32) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

fn check_reference(
    def: &Definition,
    schemas: &Schemas,
    from: &ResourceAddr,
    field: &str,
    target: &ResourceAddr,
    attribute: Option<&str>,
    problems: &mut Vec<Problem>,
) {
    let Some(res) = def.resources.get(target) else {
        let mut p = Problem::new(
            ErrorKind::DanglingReference,
            Origin::field(from, field),
            format!("`{from}.{field}` refers to `{target}`, but no resource has that name"),
        );
        if let Some(s) = closest(target.as_str(), def.resources.keys().map(ResourceAddr::as_str)) {
            p = p.help(format!("did you mean `{s}`?"));
        }
        problems.push(p);
        return;
    };
    if let (Some(attribute), Some(schema)) = (attribute, schemas.get(&res.type_name))
        && !schema.has_attr(attribute)
    {
        let mut p = Problem::new(
            ErrorKind::UnknownReferenceAttribute,
            Origin::field(from, field),
            format!("`{from}.{field}` refers to `{target}.{attribute}`, but `{}` has no attribute `{attribute}`", res.type_name),
        );
        if let Some(s) = closest(attribute, schema.attr_names()) {
            p = p.help(format!("did you mean `{target}.{s}`?"));
        }
        problems.push(p);
    }
}

/// The resource dependency graph: an edge from each resource to what it needs.
pub fn dependency_graph(def: &Definition) -> Dag<ResourceAddr> {
    graph_without(def, &BTreeSet::new())
}

/// The dependency graph without some edges (`(from, to)`).
fn graph_without(def: &Definition, cut: &BTreeSet<(ResourceAddr, ResourceAddr)>) -> Dag<ResourceAddr> {
    let mut dag = Dag::new();
    for addr in def.resources.keys() {
        dag.add_node(addr.clone());
    }
    for (addr, res) in &def.resources {
        let deps: BTreeSet<_> = res.dependencies().into_iter().filter(|d| def.resources.contains_key(d)).collect();
        for dep in deps {
            if !cut.contains(&(addr.clone(), dep.clone())) {
                dag.add_edge(addr, &dep);
            }
        }
    }
    dag
}

#[cfg(test)]
mod relation_tests {
    //! The relations kinds declare on their attributes, held with schemas that
    //! name no real provider: the core knows the rule, the kind says where it applies.
    use serde_json::json;

    use super::*;
    use crate::definition::ResourceConfig;
    use crate::schema::AttrSchema;

    fn schemas() -> Schemas {
        let mut range = AttrSchema::required("range", AttrType::String, "a CIDR");
        range.relation = Some(Relation::InsideRangeOf { parent: "net", range: "range" });
        let mut zone = AttrSchema::optional("zone", AttrType::String, "named zone");
        zone.zone = Some(ZoneRole::Named);
        let mut nth = AttrSchema::optional("nth", AttrType::Int, "zone by index");
        nth.zone = Some(ZoneRole::Index);
        let mut members = AttrSchema::required("members", AttrType::List(Box::new(AttrType::String)), "spread");
        members.relation = Some(Relation::SpreadOverZones { min: 2 });
        let schema = |type_name, attrs| ResourceSchema {
            type_name,
            description: "test",
            attrs,
            update_in_place: true,
            create_before_destroy: false,
            adoptable: false,
        };
        let id = || AttrSchema::computed("id", AttrType::String, "id");
        [
            schema("x.net", vec![AttrSchema::required("range", AttrType::String, "a CIDR"), id()]),
            schema("x.sub", vec![range, AttrSchema::required("net", AttrType::String, "its net"), zone, nth, id()]),
            schema("x.group", vec![members, id()]),
        ]
        .into_iter()
        .map(|s| (s.type_name.to_string(), s))
        .collect()
    }

    fn def(resources: &[(&str, &str, serde_json::Value)]) -> Definition {
        let mut d = Definition::default();
        for (name, type_name, attrs) in resources {
            let addr = ResourceAddr::parse(name).unwrap();
            let config = ResourceConfig {
                addr: addr.clone(),
                type_name: type_name.to_string(),
                attrs: serde_json::from_value(attrs.clone()).unwrap(),
                depends_on: vec![],
                create_before_destroy: None,
                lifecycle: Default::default(),
            };
            d.resources.insert(addr, config);
        }
        d
    }

    fn messages(d: &Definition) -> Vec<String> {
        validate(d, &schemas()).into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn a_range_outside_its_parents_is_refused_and_one_inside_is_not() {
        let net = ("net", "x.net", json!({"range": "10.0.0.0/16"}));
        let inside = def(&[net.clone(), ("a", "x.sub", json!({"range": "10.0.1.0/24", "net": "${net.id}", "zone": "z1"}))]);
        assert_eq!(messages(&inside), Vec::<String>::new());
        let outside = def(&[net, ("a", "x.sub", json!({"range": "10.1.1.0/24", "net": "${net.id}", "zone": "z1"}))]);
        assert_eq!(messages(&outside), vec!["`range` = \"10.1.1.0/24\" is not inside `net`'s range 10.0.0.0/16".to_string()]);
    }

    #[test]
    fn members_in_one_zone_are_refused_by_name_or_by_index() {
        let net = ("net", "x.net", json!({"range": "10.0.0.0/16"}));
        let sub = |name, zone: serde_json::Value| (name, "x.sub", merged(json!({"range": "10.0.1.0/24", "net": "${net.id}"}), zone));
        let group = ("g", "x.group", json!({"members": ["${a.id}", "${b.id}"]}));
        let named = def(&[net.clone(), sub("a", json!({"zone": "z1"})), sub("b", json!({"zone": "z1"})), group.clone()]);
        assert_eq!(
            messages(&named),
            vec!["`x.group` needs its `members` in at least two availability zones; `a` and `b` are both in z1".to_string()]
        );
        let indexed = def(&[net.clone(), sub("a", json!({"nth": 1})), sub("b", json!({"nth": 1})), group.clone()]);
        assert_eq!(
            messages(&indexed),
            vec!["`x.group` needs its `members` in at least two availability zones; `a` and `b` are both in the zone of nth 1".to_string()]
        );
        let spread = def(&[net.clone(), sub("a", json!({"zone": "z1"})), sub("b", json!({"zone": "z2"})), group.clone()]);
        assert_eq!(messages(&spread), Vec::<String>::new());
        // A zone the definition doesn't say (an id written out, no zone given) is not guessed at.
        let unknown = def(&[net, sub("a", json!({"zone": "z1"})), sub("b", json!({})), group]);
        assert_eq!(messages(&unknown), Vec::<String>::new());
    }

    /// The object with `more`'s keys added.
    fn merged(mut base: serde_json::Value, more: serde_json::Value) -> serde_json::Value {
        if let (Some(m), serde_json::Value::Object(more)) = (base.as_object_mut(), more) {
            m.extend(more);
        }
        base
    }
}
