//! Checks a definition against provider schemas before any side effect.
//!
//! Every problem is collected (not just the first), each with an [`Origin`]
//! that the configuration loader maps back to a file, line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::addr::ResourceAddr;
use crate::definition::Definition;
use crate::graph::Dag;
use crate::schema::{ResourceSchema, closest};
use crate::value::{reference_syntax_errors, references};

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
            if let Some(s) = closest(&res.type_name, schemas.keys().map(String::as_str)) {
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
            if let Err(e) = attr.ty.check(value) {
                problems.push(Problem::new(ErrorKind::WrongType, Origin::field(addr, name), format!("`{name}`: {e}")));
            } else if let Some(check) = attr.validator
                && let Err(e) = check(value)
            {
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
            check_reference(def, schemas, addr, &attr_name, &r.resource, Some(&r.attribute), &mut problems);
        }
        for dep in &res.depends_on {
            check_reference(def, schemas, addr, "depends_on", dep, None, &mut problems);
        }
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
    if let Some(cycle) = dependency_graph(def).find_cycle() {
        let path: Vec<String> = cycle.iter().map(ToString::to_string).collect();
        let first = cycle[0].clone();
        problems.push(
            Problem::new(ErrorKind::Cycle, Origin::resource(&first), format!("dependency cycle: {}", path.join(" -> ")))
                .help("break the cycle by removing one of these references or `depends_on` entries"),
        );
    }
    problems
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
    let mut dag = Dag::new();
    for addr in def.resources.keys() {
        dag.add_node(addr.clone());
    }
    for (addr, res) in &def.resources {
        let deps: BTreeSet<_> = res.dependencies().into_iter().filter(|d| def.resources.contains_key(d)).collect();
        for dep in deps {
            dag.add_edge(addr, &dep);
        }
    }
    dag
}
