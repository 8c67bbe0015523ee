//! Environment files (`environments/NAME.toml`) and the project around them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use phoenix_core::definition::Definition;
use phoenix_core::schema::Invalid;
use phoenix_core::validate::{ErrorKind, Origin, Schemas, validate};
use phoenix_core::value::Attrs;
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostics::{Diagnostic, Diagnostics, Source};
use crate::parse::{SourceMap, parse_all, to_value};
use crate::render::{Rendered, render, template_file};

/// A Phoenix project: the directory holding `environments/` and `templates/`.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
}

/// Where an environment keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateSpec {
    /// The embedded default: files under `.phoenix/state/` (or the given directory).
    Local { dir: Option<PathBuf> },
    /// `s3://bucket/prefix`: team state (served by the S3 backend where it is built in).
    S3 { bucket: String, prefix: String },
}

impl StateSpec {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        if s == "local" {
            return Ok(StateSpec::Local { dir: None });
        }
        if let Some(dir) = s.strip_prefix("local:") {
            return Ok(StateSpec::Local { dir: Some(PathBuf::from(dir)) });
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Invalid(format!("`{s}`: the S3 state location needs a bucket: s3://BUCKET/PREFIX")));
            }
            return Ok(StateSpec::S3 { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() });
        }
        Err(Invalid(format!("unknown state location `{s}`: use \"local\", \"local:DIR\" or \"s3://BUCKET/PREFIX\"")))
    }
}

/// A TOML table with the position of every key and value.
type SpannedTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    description: Option<String>,
    template: Option<Spanned<String>>,
    templates: Option<Vec<Spanned<String>>>,
    state: Option<Spanned<String>>,
    #[serde(default)]
    providers: BTreeMap<Spanned<String>, Spanned<SpannedTable>>,
    #[serde(default)]
    vars: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

/// How to load: variable overrides and the instance.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--var name=value`, in order; later ones win, and they win over every var file.
    pub vars: Vec<(String, String)>,
    /// `--var-file FILE` (TOML `name = value`), in order, relative to the project; later ones win.
    pub var_files: Vec<PathBuf>,
    pub instance: Option<String>,
}

/// A loaded, rendered and parsed environment (not yet validated against schemas).
#[derive(Debug, Clone)]
pub struct LoadedEnvironment {
    pub name: String,
    pub instance: Option<String>,
    pub description: Option<String>,
    /// The environment file.
    pub source: Source,
    pub state: StateSpec,
    /// `[providers.NAME]` tables, with where each one is.
    pub providers: BTreeMap<String, Attrs>,
    pub provider_spans: BTreeMap<String, std::ops::Range<usize>>,
    /// Where each key of each `[providers.NAME]` table is (key through value).
    pub provider_key_spans: BTreeMap<String, BTreeMap<String, std::ops::Range<usize>>>,
    /// Variables after overrides.
    pub vars: Attrs,
    /// Where each variable's value was set: a problem with the value is reported there.
    pub var_origins: BTreeMap<String, VarOrigin>,
    pub rendered: Vec<Rendered>,
    pub definition: Definition,
    pub sources: SourceMap,
}

/// Where a variable's value comes from.
#[derive(Debug, Clone)]
pub enum VarOrigin {
    /// A file (the environment's `[vars]`, or a `--var-file`), at the `name = value` line.
    File(Source, std::ops::Range<usize>),
    /// `--var NAME=VALUE` on the command line.
    Flag(String),
}

impl Project {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn environments_dir(&self) -> PathBuf {
        self.root.join("environments")
    }
    pub fn templates_dir(&self) -> PathBuf {
        self.root.join("templates")
    }
    /// Phoenix's own directory (state, work files).
    pub fn data_dir(&self) -> PathBuf {
        self.root.join(".phoenix")
    }

    /// Names of the environments in `environments/`, sorted.
    pub fn environments(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.environments_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".toml")).map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// The file of an environment: `environments/NAME.toml`, or NAME itself when it is a path to a file.
    pub fn environment_file(&self, name: &str) -> PathBuf {
        // A name with a directory or the extension is a path (`./x.toml`), never `environments/./x.toml.toml`.
        if name.ends_with(".toml") || name.contains('/') {
            return self.root.join(name);
        }
        self.environments_dir().join(format!("{name}.toml"))
    }

    /// Why an environment could not be found, and what the user probably meant.
    fn missing_environment_help(&self, name: &str) -> String {
        if !self.environments_dir().is_dir() {
            return format!(
                "{} has no environments/ directory: run phoenix in the project directory, or point at it with `-C DIR`",
                self.root.display()
            );
        }
        let known = self.environments();
        let lower: Vec<String> = known.iter().map(|k| k.to_lowercase()).collect();
        if let Some(s) = phoenix_core::schema::closest(&name.to_lowercase(), lower.iter().map(String::as_str))
            && let Some(i) = lower.iter().position(|l| l == s)
        {
            return format!("did you mean `{}`?", known[i]);
        }
        if known.is_empty() { "create environments/NAME.toml".to_string() } else { format!("known environments: {}", known.join(", ")) }
    }

    /// Loads, renders and parses an environment. Every problem found is returned at once.
    pub fn load(&self, name: &str, opts: &LoadOptions) -> Result<LoadedEnvironment, Diagnostics> {
        let path = self.environment_file(name);
        let display = path.strip_prefix(&self.root).unwrap_or(&path).display().to_string();
        let env_name = path.file_stem().and_then(|s| s.to_str()).unwrap_or(name).to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                return Err(Diagnostics(vec![
                    Diagnostic::new(ErrorKind::EnvironmentFile, format!("cannot read environment `{name}` ({display}): {e}"))
                        .with_help(Some(self.missing_environment_help(name)))
                        .in_file(display),
                ]));
            }
        };
        let source = Source::new(display.clone(), text);
        let raw: RawEnv = toml::from_str(&source.text).map_err(|e| {
            // serde's "unknown field" is a mistake in the file's keys, not its syntax.
            let kind = if e.message().contains("unknown field") { ErrorKind::EnvironmentFile } else { ErrorKind::TomlSyntax };
            let d = Diagnostic::new(kind, format!("invalid environment file: {}", e.message().trim()));
            Diagnostics(vec![match e.span() {
                Some(span) => d.at(&source, span),
                None => d.in_file(display.clone()),
            }])
        })?;
        let mut problems = Diagnostics::default();

        let state = match &raw.state {
            None => StateSpec::Local { dir: None },
            Some(s) => StateSpec::parse(s.get_ref()).unwrap_or_else(|e| {
                problems.push(Diagnostic::new(ErrorKind::EnvironmentFile, e).at(&source, s.span()));
                StateSpec::Local { dir: None }
            }),
        };
        let state = match std::env::var("PHOENIX_STATE") {
            Ok(s) if !s.is_empty() => StateSpec::parse(&s).unwrap_or_else(|e| {
                problems.push(Diagnostic::new(ErrorKind::EnvironmentFile, format!("PHOENIX_STATE: {e}")));
                state
            }),
            _ => state,
        };

        let mut providers = BTreeMap::new();
        let mut provider_spans = BTreeMap::new();
        let mut provider_key_spans = BTreeMap::new();
        for (name, table) in &raw.providers {
            let mut block = Attrs::new();
            let mut keys = BTreeMap::new();
            for (k, v) in table.get_ref() {
                keys.insert(k.get_ref().clone(), k.span().start..v.span().end);
                match to_value(v.get_ref()) {
                    Ok(x) => {
                        block.insert(k.get_ref().clone(), x);
                    }
                    Err(e) => problems.push(Diagnostic::new(ErrorKind::WrongType, e).at(&source, v.span())),
                }
            }
            providers.insert(name.get_ref().clone(), block);
            provider_spans.insert(name.get_ref().clone(), name.span());
            provider_key_spans.insert(name.get_ref().clone(), keys);
        }

        // Variables: declared defaults, then overrides (which must be declared, and keep their type).
        let mut vars = Attrs::new();
        let mut var_types: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut var_origins = BTreeMap::new();
        for (k, v) in &raw.vars {
            var_origins.insert(k.get_ref().clone(), VarOrigin::File(source.clone(), k.span().start..v.span().end));
            match to_value(v.get_ref()) {
                Ok(x) => {
                    var_types.insert(k.get_ref().clone(), v.get_ref().type_str());
                    vars.insert(k.get_ref().clone(), x);
                }
                Err(e) => problems.push(Diagnostic::new(ErrorKind::WrongType, e).at(&source, v.span())),
            }
        }
        let undeclared = |k: &str, what: String| {
            let known: Vec<_> = var_types.keys().cloned().collect();
            let help = match phoenix_core::schema::closest(k, known.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None if known.is_empty() => "declare it under [vars]".to_string(),
                None => format!("declared variables: {}", known.join(", ")),
            };
            Diagnostic::new(ErrorKind::UnknownVariable, format!("{what}: `{display}` declares no variable `{k}`")).with_help(Some(help))
        };
        for file in &opts.var_files {
            let (source, values) = match read_var_file(&self.root, file) {
                Ok(x) => x,
                Err(d) => {
                    problems.push(*d);
                    continue;
                }
            };
            for (k, v) in values {
                let key_span = k.span();
                let value_span = v.span();
                let (k, v) = (k.into_inner(), v.into_inner());
                let Some(declared) = var_types.get(&k) else {
                    problems.push(undeclared(&k, format!("variable `{k}` in {}", source.name)).at(&source, key_span));
                    continue;
                };
                if !same_type(declared, &v) {
                    problems.push(
                        Diagnostic::new(
                            ErrorKind::WrongType,
                            format!("`{k}` is declared as {declared} in {display}, but {} sets {}", source.name, v.type_str()),
                        )
                        .at(&source, value_span),
                    );
                    continue;
                }
                match to_value(&v) {
                    Ok(x) => {
                        var_origins.insert(k.clone(), VarOrigin::File(source.clone(), key_span.start..value_span.end));
                        vars.insert(k, x);
                    }
                    Err(e) => problems.push(Diagnostic::new(ErrorKind::WrongType, e).at(&source, value_span)),
                }
            }
        }
        for (k, raw_value) in &opts.vars {
            let Some(declared) = var_types.get(k) else {
                problems.push(undeclared(k, format!("--var {k}")).in_file(display.clone()));
                continue;
            };
            let parsed = toml::from_str::<toml::Table>(&format!("v = {raw_value}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .filter(|v| same_type(declared, v))
                .unwrap_or_else(|| toml::Value::String(raw_value.clone()));
            if !same_type(declared, &parsed) {
                problems.push(
                    Diagnostic::new(
                        ErrorKind::WrongType,
                        format!("--var {k}={raw_value}: `{k}` is declared as {declared} in {display}, got `{raw_value}`"),
                    )
                    .in_file(display.clone()),
                );
                continue;
            }
            if let Ok(v) = to_value(&parsed) {
                // The flag without its value: a --var may carry a secret.
                var_origins.insert(k.clone(), VarOrigin::Flag(format!("--var {k}=…")));
                vars.insert(k.clone(), v);
            }
        }

        let mut template_names: Vec<Spanned<String>> = raw.templates.clone().unwrap_or_default();
        if let Some(t) = &raw.template {
            template_names.insert(0, t.clone());
        }
        if template_names.is_empty() {
            problems.push(
                Diagnostic::new(ErrorKind::EnvironmentFile, format!("`{display}` names no template"))
                    .with_help(Some("add `template = \"NAME\"` naming a file in templates/".into()))
                    .in_file(display.clone()),
            );
        }
        if !problems.is_empty() {
            return Err(problems);
        }

        let mut context: serde_json::Map<String, serde_json::Value> = vars.clone().into_iter().collect();
        context.insert("environment".into(), env_name.clone().into());
        context.insert("instance".into(), opts.instance.clone().unwrap_or_default().into());
        let context = serde_json::Value::Object(context);
        let templates_dir = self.templates_dir();
        let mut rendered = Vec::new();
        for t in &template_names {
            let Some(file) = template_file(&templates_dir, t.get_ref()) else {
                problems.push(
                    Diagnostic::new(ErrorKind::UnknownTemplate, format!("template `{}` not found in templates/", t.get_ref()))
                        .with_help(Some(format!("looked for templates/{0}.toml.j2, templates/{0}.j2 and templates/{0}.toml", t.get_ref())))
                        .at(&source, t.span()),
                );
                continue;
            };
            match render(&templates_dir, t.get_ref(), &file, &context) {
                Ok(r) => rendered.push(r),
                Err(d) => problems.push(d),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let (definition, sources) = parse_all(&rendered).map_err(Diagnostics)?;
        Ok(LoadedEnvironment {
            name: env_name,
            instance: opts.instance.clone(),
            description: raw.description,
            source,
            state,
            providers,
            provider_spans,
            provider_key_spans,
            vars,
            var_origins,
            rendered,
            definition,
            sources,
        })
    }
}

/// Whether a value may replace a variable declared with a value of type `declared` (an integer is a float).
fn same_type(declared: &str, v: &toml::Value) -> bool {
    v.type_str() == declared || (declared == "float" && v.type_str() == "integer")
}

/// A `--var-file`: its text (for locations) and its `name = value` pairs with spans.
fn read_var_file(root: &Path, file: &Path) -> Result<(Source, SpannedTable), Box<Diagnostic>> {
    let path = root.join(file);
    let name = display_path(root, &path);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Box::new(
            Diagnostic::new(ErrorKind::EnvironmentFile, format!("--var-file {}: cannot read it: {e}", file.display()))
                .in_file(name.clone()),
        )
    })?;
    let source = Source::new(name, text);
    let values = toml::from_str(&source.text).map_err(|e| {
        let d = Diagnostic::new(ErrorKind::TomlSyntax, format!("invalid variable file: {}", e.message().trim()));
        Box::new(match e.span() {
            Some(span) => d.at(&source, span),
            None => d.in_file(source.name.clone()),
        })
    })?;
    Ok((source, values))
}

impl LoadedEnvironment {
    /// Checks the definition against the schemas of the available providers:
    /// types, attributes, values, references, cycles and provider blocks.
    pub fn validate(&self, schemas: &Schemas, providers: &[&str]) -> Diagnostics {
        let mut out = Diagnostics::default();
        for (name, span) in &self.provider_spans {
            if !providers.contains(&name.as_str()) {
                out.push(
                    Diagnostic::new(ErrorKind::UnknownProvider, format!("unknown provider `{name}`"))
                        .with_help(Some(format!("providers built into this phoenix: {}", providers.join(", "))))
                        .at(&self.source, span.clone()),
                );
            }
        }
        for p in validate(&self.definition, schemas) {
            let d = Diagnostic::new(p.kind, p.message).with_help(p.help);
            let d = match &p.origin {
                Origin::Resource { resource, field } => {
                    let d = d.about(resource.to_string(), field.clone());
                    let d = self.sources.locate(d, self.sources.resources.get(resource), field.as_deref());
                    match (p.kind, field) {
                        (ErrorKind::InvalidValue | ErrorKind::WrongType, Some(f)) => self.at_variable(d, resource, f),
                        _ => d,
                    }
                }
                Origin::Output { output } => {
                    let d = d.about(format!("output.{output}"), Some("value".into()));
                    self.sources.locate(d, self.sources.outputs.get(output), Some("value"))
                }
            };
            out.push(d);
        }
        out
    }

    /// A bad value that one variable supplied is reported where that variable
    /// is set (its `[vars]` or `--var-file` line, or the `--var` flag), with the
    /// rendered line it produced as the secondary place.
    fn at_variable(&self, d: Diagnostic, resource: &phoenix_core::ResourceAddr, field: &str) -> Diagnostic {
        let Some(value) = self.definition.resources.get(resource).and_then(|r| r.attrs.get(field)) else { return d };
        let supplies = |v: &serde_json::Value| match (v, value) {
            (_, w) if w == v => true,
            (serde_json::Value::String(s), serde_json::Value::String(w)) => s.len() >= 3 && w.contains(s.as_str()),
            (_, serde_json::Value::Array(items)) => items.contains(v),
            _ => false,
        };
        let mut from = self.vars.iter().filter(|(_, v)| !v.is_boolean() && supplies(v));
        let (Some((name, _)), None) = (from.next(), from.next()) else { return d };
        let rendered_at = d.location.as_ref().map(|l| format!("it is used at {l}")).unwrap_or_default();
        let help =
            Some([d.help.clone().unwrap_or_default(), rendered_at].into_iter().filter(|h| !h.is_empty()).collect::<Vec<_>>().join("; "));
        let message = format!("{} (the value of variable `{name}`)", d.message);
        match self.var_origins.get(name) {
            Some(VarOrigin::File(source, span)) => Diagnostic { message, help, ..d }.at(source, span.clone()),
            Some(VarOrigin::Flag(flag)) => Diagnostic { message: format!("{message}, set by `{flag}`"), help, ..d },
            None => d,
        }
    }

    /// A provider's block as configured (empty when absent).
    pub fn provider_config(&self, name: &str) -> Attrs {
        self.providers.get(name).cloned().unwrap_or_default()
    }

    /// Points a problem with a provider block at the key the provider says it
    /// is about (an unknown `regoin`, a bad `region`), else at the block.
    pub fn provider_diagnostic(&self, name: &str, message: String, about: Option<&phoenix_core::provider::ConfigKey>) -> Diagnostic {
        let d = Diagnostic::new(ErrorKind::EnvironmentFile, message);
        let keys = self.provider_key_spans.get(name);
        if let Some(about) = about
            && let Some((key, span)) = keys.into_iter().flatten().find(|(k, _)| **k == about.key)
        {
            let known = about.known.iter().map(String::as_str).filter(|k| *k != key);
            let help = phoenix_core::schema::closest(key, known).map(|s| format!("did you mean `{s}`?"));
            return d.at(&self.source, span.clone()).about(format!("providers.{name}"), Some(key.clone())).with_help(help);
        }
        match self.provider_spans.get(name) {
            Some(span) => d.at(&self.source, span.clone()),
            None => d.in_file(self.source.name.clone()),
        }
    }

    /// The rendered definition as one text, template by template.
    pub fn rendered_text(&self) -> String {
        let mut out = String::new();
        for r in &self.rendered {
            out.push_str(&format!("# ---- {} ----\n", r.template.name));
            out.push_str(&r.output);
            if !r.output.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }

    /// The state directory key: `NAME` or `NAME.INSTANCE`.
    pub fn state_key(&self) -> String {
        match &self.instance {
            Some(i) => format!("{}.{i}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A path shown relative to the project when possible.
pub fn display_path(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}
