//! Parsing rendered TOML into a definition, keeping the position of every
//! resource, field and output so that later problems can be located.

use std::collections::BTreeMap;
use std::ops::Range;

use phoenix_core::ResourceAddr;
use phoenix_core::definition::{Definition, Lifecycle, OutputConfig, ResourceConfig};
use phoenix_core::schema::Invalid;
use phoenix_core::validate::ErrorKind;
use phoenix_core::value::{Attrs, Value};
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostics::{Diagnostic, Source};
use crate::render::Rendered;

/// Keys of a resource table that are not provider attributes.
pub const RESERVED_KEYS: [&str; 5] = ["type", "depends_on", "create_before_destroy", "prevent_destroy", "ignore_changes"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    #[serde(default)]
    resource: BTreeMap<Spanned<String>, Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>>,
    #[serde(default)]
    output: BTreeMap<Spanned<String>, Spanned<BTreeMap<Spanned<String>, Spanned<toml::Value>>>>,
}

/// A rendered template as a source: its own text, and the template it came from
/// so that lines copied verbatim can be reported at their template line.
#[derive(Debug, Clone)]
pub struct RenderedSource {
    pub rendered: Source,
    pub template: Source,
    /// Templates it included: a line copied from one of them is reported there.
    pub includes: Vec<Source>,
}

impl RenderedSource {
    /// Where a span of rendered text is best shown: in the template when the
    /// line appears there exactly once, otherwise in the rendered text.
    pub fn locate(&self, span: Range<usize>) -> (Source, Range<usize>) {
        let text = self.rendered.text.as_str();
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = &text[line_start..line_end];
        if !line.trim().is_empty() {
            let mut found = None;
            let mut count = 0;
            for source in std::iter::once(&self.template).chain(&self.includes) {
                let mut offset = 0;
                for l in source.text.split_inclusive('\n') {
                    if l.trim_end_matches(['\n', '\r']) == line {
                        count += 1;
                        found = Some((source, offset));
                    }
                    offset += l.len();
                }
            }
            if let (1, Some((source, tpl_line_start))) = (count, found) {
                let s = tpl_line_start + (start - line_start);
                let e = (tpl_line_start + (span.end.min(line_end) - line_start)).max(s);
                return (source.clone(), s..e);
            }
        }
        (self.rendered.clone(), span)
    }
}

/// Positions of one resource or output.
#[derive(Debug, Clone)]
pub struct Spans {
    pub source: usize,
    pub header: Range<usize>,
    pub fields: BTreeMap<String, Range<usize>>,
}

/// Where everything in a definition came from.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    pub sources: Vec<RenderedSource>,
    pub resources: BTreeMap<ResourceAddr, Spans>,
    pub outputs: BTreeMap<String, Spans>,
}

impl SourceMap {
    /// A diagnostic located at a resource (or one of its fields), or an output.
    pub fn locate(&self, d: Diagnostic, spans: Option<&Spans>, field: Option<&str>) -> Diagnostic {
        let Some(spans) = spans else { return d };
        let span = field.and_then(|f| spans.fields.get(f)).unwrap_or(&spans.header).clone();
        let (source, span) = self.sources[spans.source].locate(span);
        d.at(&source, span)
    }
}

/// The rendered text as diagnostics may show it: every value read through
/// `env()` (possibly a secret) replaced by as many `*` as it has bytes, so
/// spans into the text stay valid. Values under 4 bytes are left alone: masking
/// every `1` would garble the snippet and hide nothing worth hiding.
fn masked(output: &str, env_values: &[String]) -> String {
    let mut text = output.to_string();
    for v in env_values.iter().filter(|v| v.len() >= 4) {
        text = text.replace(v.as_str(), &"*".repeat(v.len()));
    }
    text
}

/// Parses every rendered template into one definition.
pub fn parse_all(rendered: &[Rendered]) -> Result<(Definition, SourceMap), Vec<Diagnostic>> {
    let mut def = Definition::default();
    let mut map = SourceMap::default();
    let mut problems = Vec::new();
    for r in rendered {
        let idx = map.sources.len();
        let rs = RenderedSource {
            rendered: Source::new(format!("{} (rendered)", r.template.name), masked(&r.output, &r.env_values)),
            template: r.template.clone(),
            includes: r.includes.clone(),
        };
        map.sources.push(rs.clone());
        let raw: RawDoc = match toml::from_str(&r.output) {
            Ok(raw) => raw,
            Err(e) => {
                let d = Diagnostic::new(ErrorKind::TomlSyntax, format!("invalid TOML after rendering: {}", e.message().trim()));
                let d = match e.span() {
                    Some(span) => {
                        let (src, span) = rs.locate(span);
                        d.at(&src, span)
                    }
                    None => d.in_file(r.template.name.clone()),
                };
                problems.push(d);
                continue;
            }
        };
        for (name, table) in raw.resource {
            let name_span = name.span();
            let header = table.span();
            let header = header.start..header.start.max(name_span.end).min(header.end.max(name_span.end));
            let locate = |span: Range<usize>| rs.locate(span);
            let addr = match ResourceAddr::parse(name.get_ref()) {
                Ok(a) => a,
                Err(e) => {
                    let (src, span) = locate(name_span);
                    problems.push(Diagnostic::new(ErrorKind::InvalidName, e).at(&src, span).about(name.get_ref().clone(), None));
                    continue;
                }
            };
            if def.resources.contains_key(&addr) {
                let (src, span) = locate(name_span.clone());
                problems.push(
                    Diagnostic::new(ErrorKind::DuplicateResource, format!("resource `{addr}` is declared twice"))
                        .at(&src, span)
                        .about(addr.to_string(), None),
                );
                continue;
            }
            let mut spans = Spans { source: idx, header: name_span.clone(), fields: BTreeMap::new() };
            let _ = header;
            let mut type_name = None;
            let mut depends_on = Vec::new();
            let mut cbd = None;
            let mut lifecycle = Lifecycle::default();
            let mut attrs = Attrs::new();
            for (key, value) in table.into_inner() {
                let key_name = key.get_ref().clone();
                let value_span = value.span();
                spans.fields.insert(key_name.clone(), key.span().start..value_span.end);
                let bad = |kind, msg: String| {
                    let (src, span) = locate(key.span().start..value_span.end);
                    Diagnostic::new(kind, msg).at(&src, span).about(addr.to_string(), Some(key_name.clone()))
                };
                match key_name.as_str() {
                    "type" => match value.get_ref() {
                        toml::Value::String(s) => type_name = Some(s.clone()),
                        _ => problems.push(bad(ErrorKind::WrongType, "`type` must be a string such as \"metal.file\"".into())),
                    },
                    "depends_on" => match value.get_ref() {
                        toml::Value::Array(items) => {
                            for item in items {
                                match item.as_str().map(ResourceAddr::parse) {
                                    Some(Ok(a)) => depends_on.push(a),
                                    Some(Err(e)) => problems.push(bad(ErrorKind::InvalidName, format!("in `depends_on`: {e}"))),
                                    None => problems.push(bad(ErrorKind::WrongType, "`depends_on` lists resource names as strings".into())),
                                }
                            }
                        }
                        _ => problems.push(bad(ErrorKind::WrongType, "`depends_on` must be a list of resource names".into())),
                    },
                    "create_before_destroy" => match value.get_ref() {
                        toml::Value::Boolean(b) => cbd = Some(*b),
                        _ => problems.push(bad(ErrorKind::WrongType, "`create_before_destroy` must be true or false".into())),
                    },
                    "prevent_destroy" => match value.get_ref() {
                        toml::Value::Boolean(b) => lifecycle.prevent_destroy = *b,
                        _ => problems.push(bad(ErrorKind::WrongType, "`prevent_destroy` must be true or false".into())),
                    },
                    "ignore_changes" => {
                        match value.get_ref().as_array().map(|a| a.iter().map(toml::Value::as_str).collect::<Option<Vec<_>>>()) {
                            Some(Some(names)) => lifecycle.ignore_changes = names.into_iter().map(str::to_string).collect(),
                            _ => problems.push(bad(
                                ErrorKind::WrongType,
                                "`ignore_changes` must be a list of attribute names, e.g. [\"tags\"]".into(),
                            )),
                        }
                    }
                    _ => match to_value(value.get_ref()) {
                        Ok(v) => {
                            attrs.insert(key_name.clone(), v);
                        }
                        Err(e) => problems.push(bad(ErrorKind::WrongType, e.into())),
                    },
                }
            }
            let Some(type_name) = type_name else {
                let (src, span) = locate(name_span);
                problems.push(
                    Diagnostic::new(ErrorKind::MissingAttribute, format!("resource `{addr}` has no `type`"))
                        .with_help(Some("add a line `type = \"...\"`, e.g. `type = \"data\"`".into()))
                        .at(&src, span)
                        .about(addr.to_string(), Some("type".into())),
                );
                continue;
            };
            map.resources.insert(addr.clone(), spans);
            def.resources
                .insert(addr.clone(), ResourceConfig { addr, type_name, attrs, depends_on, create_before_destroy: cbd, lifecycle });
        }
        for (name, table) in raw.output {
            let name_span = name.span();
            let mut spans = Spans { source: idx, header: name_span.clone(), fields: BTreeMap::new() };
            let mut value = None;
            let mut sensitive = false;
            let mut description = None;
            for (key, v) in table.into_inner() {
                spans.fields.insert(key.get_ref().clone(), key.span().start..v.span().end);
                let (src, span) = rs.locate(key.span().start..v.span().end);
                match (key.get_ref().as_str(), v.get_ref()) {
                    ("value", x) => match to_value(x) {
                        Ok(x) => value = Some(x),
                        Err(e) => problems.push(Diagnostic::new(ErrorKind::WrongType, e).at(&src, span)),
                    },
                    ("sensitive", toml::Value::Boolean(b)) => sensitive = *b,
                    ("description", toml::Value::String(s)) => description = Some(s.clone()),
                    (k, _) => problems.push(
                        Diagnostic::new(ErrorKind::UnknownAttribute, format!("output `{}` has no field `{k}`", name.get_ref()))
                            .with_help(Some("outputs take `value`, `sensitive` and `description`".into()))
                            .at(&src, span),
                    ),
                }
            }
            let Some(value) = value else {
                let (src, span) = rs.locate(name_span);
                problems.push(
                    Diagnostic::new(ErrorKind::MissingAttribute, format!("output `{}` has no `value`", name.get_ref())).at(&src, span),
                );
                continue;
            };
            map.outputs.insert(name.get_ref().clone(), spans);
            def.outputs.insert(name.into_inner(), OutputConfig { value, sensitive, description });
        }
    }
    if problems.is_empty() { Ok((def, map)) } else { Err(problems) }
}

/// TOML to Phoenix values. Datetimes become RFC 3339 strings.
pub fn to_value(v: &toml::Value) -> Result<Value, Invalid> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map(Value::Number).ok_or_else(|| Invalid(format!("{f} is not a finite number")))?
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(to_value).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| Ok((k.clone(), to_value(v)?))).collect::<Result<_, Invalid>>()?),
    })
}
