//! Rendering templates with minijinja, confined to the project's `templates/`.
//!
//! Templates may read variables and, through `env("NAME")`, environment
//! variables; nothing else of the machine. Includes cannot leave `templates/`
//! (no `..`, no absolute paths, no symlinks pointing out). Fuel bounds loops so
//! a hostile template cannot hang Phoenix.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use minijinja::{Environment, UndefinedBehavior};
use phoenix_core::validate::ErrorKind;

use crate::diagnostics::{Diagnostic, Source};

/// Instructions a template may execute: generous for 100,000-resource graphs, finite for runaway loops.
const FUEL: u64 = 2_000_000_000;

/// Bytes one template may render: ample for 100,000 resources, and a bound
/// on what fuel does not count (`"x" * 100000000` is one instruction). Found
/// by the hostile-input corpus: a 100 MB render took minutes to diagnose.
const MAX_OUTPUT: usize = 64 << 20;

/// A render target that refuses to grow past [`MAX_OUTPUT`].
struct CappedOutput(Vec<u8>);

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT {
            return Err(std::io::Error::other(format!("the template renders more than {} MiB", MAX_OUTPUT >> 20)));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One rendered template.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The template as the environment named it (`web-stack`).
    pub name: String,
    /// The template source, named by its path relative to the project.
    pub template: Source,
    /// What rendering produced.
    pub output: String,
    /// Values `env()` returned: masked wherever the rendered text is shown
    /// (diagnostics), since they may be secrets.
    pub env_values: Vec<String>,
    /// The templates it included (or imported), so that problems in lines they
    /// produced are reported in their own file.
    pub includes: Vec<Source>,
}

/// Finds the file of a template name: `web` -> `web.toml.j2`, `web.j2`, `web.toml` or `web`.
pub fn template_file(templates_dir: &Path, name: &str) -> Option<String> {
    [format!("{name}.toml.j2"), format!("{name}.j2"), format!("{name}.toml"), name.to_string()]
        .into_iter()
        .find(|f| safe_relative(f).is_some() && templates_dir.join(f).is_file())
}

/// `name` as a path inside the templates directory, or `None` if it would escape it.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Reads a template file, refusing anything outside `templates_dir` (including through symlinks).
fn load_confined(templates_dir: &Path, name: &str) -> Result<Option<String>, String> {
    let Some(rel) = safe_relative(name) else {
        return Err(format!("template `{name}` is outside templates/: only paths inside templates/ can be loaded"));
    };
    let path = templates_dir.join(rel);
    if !path.exists() {
        return Ok(None);
    }
    let root = templates_dir.canonicalize().map_err(|e| format!("templates/: {e}"))?;
    let real = path.canonicalize().map_err(|e| format!("{name}: {e}"))?;
    if !real.starts_with(&root) {
        return Err(format!("template `{name}` resolves outside templates/ (a symlink?): refused"));
    }
    let bytes = std::fs::read(&real).map_err(|e| format!("cannot read template `{name}`: {e}"))?;
    String::from_utf8(bytes).map(Some).map_err(|e| {
        let line = line_of(e.as_bytes(), e.utf8_error().valid_up_to());
        format!("template `{name}` is not UTF-8 text: an invalid byte at line {line}; save it as UTF-8")
    })
}

/// The 1-based line of a byte offset.
fn line_of(bytes: &[u8], at: usize) -> usize {
    bytes[..at].iter().filter(|b| **b == b'\n').count() + 1
}

/// A template file that is not UTF-8, shown lossily with the first bad byte located.
fn not_utf8(templates_dir: &Path, file: &str) -> Option<Diagnostic> {
    let bytes = std::fs::read(templates_dir.join(safe_relative(file)?)).ok()?;
    let err = std::str::from_utf8(&bytes).err()?;
    let line = line_of(&bytes, err.valid_up_to());
    let lossy = String::from_utf8_lossy(&bytes[..err.valid_up_to()]).into_owned() + "\u{FFFD}";
    let source = Source::new(format!("templates/{file}"), lossy);
    let end = source.text.len();
    Some(
        Diagnostic::new(ErrorKind::Template, format!("templates/{file} is not UTF-8 text: an invalid byte at line {line}"))
            .with_help(Some("save the file as UTF-8".into()))
            .at(&source, end - '\u{FFFD}'.len_utf8()..end),
    )
}

/// Renders template file `file` (relative to `templates_dir`) with `context`.
pub fn render(templates_dir: &Path, name: &str, file: &str, context: &serde_json::Value) -> Result<Rendered, Diagnostic> {
    fn display(f: &str) -> String {
        format!("templates/{f}")
    }
    let text = match load_confined(templates_dir, file) {
        Ok(Some(t)) => t,
        Ok(None) => return Err(Diagnostic::new(ErrorKind::UnknownTemplate, format!("template `{file}` not found in templates/"))),
        // Confined and read, but not text: located at the first bad byte.
        Err(e) if e.contains("is not UTF-8") => {
            return Err(not_utf8(templates_dir, file).unwrap_or_else(|| Diagnostic::new(ErrorKind::Template, e)));
        }
        Err(e) => return Err(Diagnostic::new(ErrorKind::UnknownTemplate, e)),
    };
    let source = Source::new(display(file), text);

    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_keep_trailing_newline(true);
    let dir = templates_dir.to_path_buf();
    let loaded: Arc<Mutex<Vec<Source>>> = Arc::default();
    let record = loaded.clone();
    let main_file = file.to_string();
    env.set_loader(move |name| {
        let text = load_confined(&dir, name).map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))?;
        if let Some(t) = &text
            && name != main_file
        {
            record.lock().expect("not poisoned").push(Source::new(display(name), t.clone()));
        }
        Ok(text)
    });
    let missing_env: Arc<Mutex<Vec<String>>> = Arc::default();
    let missing = missing_env.clone();
    let read_env: Arc<Mutex<Vec<String>>> = Arc::default();
    let read = read_env.clone();
    env.add_function("env", move |name: String, default: Option<String>| -> Result<String, minijinja::Error> {
        match (std::env::var(&name), default) {
            (Ok(v), _) => {
                read.lock().expect("not poisoned").push(v.clone());
                Ok(v)
            }
            (Err(_), Some(d)) => Ok(d),
            (Err(_), None) => {
                missing.lock().expect("not poisoned").push(name.clone());
                Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("environment variable `{name}` is not set")))
            }
        }
    });

    let result = env.get_template(file).and_then(|t| {
        let mut out = CappedOutput(Vec::new());
        t.render_captured_to(minijinja::Value::from_serialize(context), &mut out)?;
        String::from_utf8(out.0).map_err(|_| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "the output is not UTF-8"))
    });
    match result {
        Ok(output) => {
            let env_values = std::mem::take(&mut *read_env.lock().expect("not poisoned"));
            let includes = std::mem::take(&mut *loaded.lock().expect("not poisoned"));
            Ok(Rendered { name: name.to_string(), template: source, output, env_values, includes })
        }
        Err(err) => {
            let kind = if !missing_env.lock().expect("not poisoned").is_empty() {
                ErrorKind::MissingEnvironmentVariable
            } else if innermost(&err).kind() == minijinja::ErrorKind::UndefinedError {
                ErrorKind::UnknownVariable
            } else {
                ErrorKind::Template
            };
            let known: Vec<&str> = context.as_object().into_iter().flat_map(|m| m.keys().map(String::as_str)).collect();
            Err(template_diagnostic(kind, &err, templates_dir, &source, file, &known))
        }
    }
}

/// Locates a minijinja error in the template that raised it (which may be an include).
/// The error that caused `err` (through includes): it knows the real kind and place.
fn innermost(err: &minijinja::Error) -> &minijinja::Error {
    let mut inner = err;
    while let Some(next) = std::error::Error::source(inner).and_then(|s| s.downcast_ref::<minijinja::Error>()) {
        inner = next;
    }
    inner
}

fn template_diagnostic(
    kind: ErrorKind,
    err: &minijinja::Error,
    templates_dir: &Path,
    main: &Source,
    main_file: &str,
    variables: &[&str],
) -> Diagnostic {
    let inner = innermost(err);
    let name = inner.name().or(err.name()).unwrap_or(main_file);
    let source = if name == main_file {
        Some(main.clone())
    } else {
        load_confined(templates_dir, name).ok().flatten().map(|t| Source::new(format!("templates/{name}"), t))
    };
    // The expression at fault (`prot` in `{{ prot }}`), from the template's own text.
    let culprit = source.as_ref().zip(inner.range()).and_then(|(s, r)| s.text.get(r).map(|t| t.trim().to_string()));
    let detail = inner.detail().map(str::to_string).unwrap_or_else(|| inner.kind().to_string());
    let message = match (kind, &culprit) {
        (ErrorKind::UnknownVariable, Some(c)) => format!("template error in {name}: `{c}` is undefined (is it declared under [vars]?)"),
        (ErrorKind::UnknownVariable, None) => format!("template error in {name}: {detail} (is it declared under [vars]?)"),
        _ if name != main_file => format!("template error in {name}: {detail}"),
        _ => format!("template error: {detail}"),
    };
    let suggestion = culprit.as_deref().and_then(|c| phoenix_core::schema::closest(c, variables.iter().copied()));
    let help = match (kind, suggestion) {
        (ErrorKind::MissingEnvironmentVariable, _) => {
            Some("export the variable, or give a default: env(\"NAME\", \"default\")".to_string())
        }
        (ErrorKind::UnknownVariable, Some(s)) => Some(format!("did you mean `{s}`?")),
        (ErrorKind::UnknownVariable, None) => Some("declare it under [vars] in the environment file, or pass --var name=value".to_string()),
        _ => None,
    };
    let d = Diagnostic::new(kind, message).with_help(help);
    match (source, inner.range().or(err.range()), inner.line().or(err.line())) {
        (Some(s), Some(range), _) => d.at(&s, range),
        (Some(s), None, Some(line)) => {
            let start: usize = s.text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
            let len = s.text[start..].find('\n').unwrap_or(s.text.len() - start);
            d.at(&s, start..start + len)
        }
        (Some(s), None, None) => d.in_file(s.name.clone()),
        (None, _, _) => d.in_file(format!("templates/{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape() {
        assert!(safe_relative("../etc/passwd").is_none());
        assert!(safe_relative("/etc/passwd").is_none());
        assert!(safe_relative("a/../../b").is_none());
        assert_eq!(safe_relative("./net/vpc.j2").unwrap(), PathBuf::from("net/vpc.j2"));
    }
}
