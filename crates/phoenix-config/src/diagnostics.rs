//! Problems with a location, rendered with source snippets by miette and as
//! plain records for `--json`.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceCode};
use phoenix_core::validate::ErrorKind;
use serde::Serialize;

/// A source text a diagnostic can point into.
#[derive(Debug, Clone)]
pub struct Source {
    /// Path relative to the project, e.g. `templates/web.toml.j2`.
    pub name: String,
    pub text: Arc<String>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self { name: name.into(), text: Arc::new(text.into()) }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        (line, col)
    }
}

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem in an environment definition.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The resource or output it concerns, and the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip)]
    pub source: Option<(Source, Range<usize>)>,
}

impl Diagnostic {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), help: None, location: None, resource: None, field: None, source: None }
    }

    pub fn with_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// Points at `span` in `source`.
    pub fn at(mut self, source: &Source, span: Range<usize>) -> Self {
        let (line, column) = source.line_col(span.start);
        self.location = Some(Location { file: source.name.clone(), line, column });
        self.source = Some((source.clone(), span));
        self
    }

    /// Points at a whole file (no position known).
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.location = Some(Location { file: file.into(), line: 1, column: 1 });
        self
    }

    pub fn about(mut self, resource: impl Into<String>, field: Option<String>) -> Self {
        self.resource = Some(resource.into());
        self.field = field;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let loc = self.location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default();
        Some(Box::new(format!("{}{loc}", self.kind)))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|(s, _)| s.text.as_ref() as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (_, span) = self.source.as_ref()?;
        let label = self.field.clone().unwrap_or_else(|| "here".into());
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(Some(label), span.clone()))))
    }
}

/// All problems found, reported at once.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Adds a problem unless the same one is already there (a mistake inside a
    /// template loop is reported once, not once per iteration).
    pub fn push(&mut self, d: Diagnostic) {
        let same = |o: &Diagnostic| o.kind == d.kind && o.location == d.location && o.message == d.message;
        if !self.0.iter().any(same) {
            self.0.push(d);
        }
    }

    /// Renders every problem with its snippet, for a terminal.
    pub fn render(&self, color: bool) -> String {
        let handler = if color {
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode())
        } else {
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        };
        let mut out = String::new();
        for d in &self.0 {
            let _ = match &d.source {
                Some((s, _)) => {
                    let named = Named { inner: d, source: NamedSource::new(s.name.clone(), s.text.to_string()) };
                    handler.render_report(&mut out, &named)
                }
                None => handler.render_report(&mut out, d),
            };
        }
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) in the environment definition", self.0.len())
    }
}

impl std::error::Error for Diagnostics {}

/// A diagnostic whose snippet carries the file name in its header.
struct Named<'a> {
    inner: &'a Diagnostic,
    source: NamedSource<String>,
}

impl fmt::Debug for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.inner, f)
    }
}
impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.inner, f)
    }
}
impl std::error::Error for Named<'_> {}
impl miette::Diagnostic for Named<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        miette::Diagnostic::code(self.inner)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        miette::Diagnostic::help(self.inner)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        miette::Diagnostic::labels(self.inner)
    }
}
