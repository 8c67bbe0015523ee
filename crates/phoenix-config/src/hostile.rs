//! The entry point for hostile input: one byte string holding an environment
//! file and its templates, loaded the way `phoenix validate` loads a project.
//! Shared by the `cargo fuzz` target (`fuzz/`) and the corpus test, so a
//! crash the fuzzer finds is replayed by the test suite from its corpus file.
//!
//! A case is text split into files by header lines:
//!
//! ```text
//! --- environments/fuzz.toml
//! template = "main"
//! --- templates/main.toml.j2
//! [resource.a]
//! type = "data"
//! ```
//!
//! Bytes before the first header are the environment file. Only
//! `environments/fuzz.toml` and `templates/<name>` (no `/`, no `..`) are
//! written; other headers are ignored. Next to `templates/`, the project holds
//! `outside.txt` with [`OUTSIDE_CANARY`], so a template that manages to read
//! outside `templates/` shows it in its output.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::environment::{LoadOptions, Project};

/// The content of a file outside `templates/` that no rendering may show.
pub const OUTSIDE_CANARY: &str = "outside-templates-canary-3b1f";
/// An environment variable whose value only a definition calling `env()` may
/// show: `PATH`, set everywhere and long enough not to occur by chance.
pub const ENV_CANARY_VAR: &str = "PATH";

/// What loading a case did (anything but a panic or a hang is acceptable).
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Loaded and rendered; carries the rendered text.
    Loaded(String),
    /// Refused with diagnostics (the normal fate of garbage).
    Refused(usize),
}

/// A property of the rules that a case broke (a real bug, unlike a refusal).
#[derive(Debug, PartialEq, Eq)]
pub struct Violation(pub String);

/// Loads `case` in a fresh project directory under the system temp dir and
/// checks the confinement rules on what it rendered.
pub fn load_case(case: &[u8]) -> Result<Outcome, Violation> {
    let dir = scratch_dir();
    let result = load_in(&dir, case);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn scratch_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!("phoenix-hostile-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)))
}

fn load_in(dir: &Path, case: &[u8]) -> Result<Outcome, Violation> {
    let text = String::from_utf8_lossy(case);
    let io = |e: std::io::Error| Violation(format!("cannot prepare the scratch project: {e}"));
    std::fs::create_dir_all(dir.join("environments")).map_err(io)?;
    std::fs::create_dir_all(dir.join("templates")).map_err(io)?;
    std::fs::write(dir.join("outside.txt"), OUTSIDE_CANARY).map_err(io)?;
    let mut current = Some(dir.join("environments/fuzz.toml"));
    let mut body = String::new();
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(header) = line.strip_prefix("--- ") {
            if let Some(p) = current.take() {
                files.push((p, std::mem::take(&mut body)));
            }
            body.clear();
            current = target(dir, header.trim());
        } else if current.is_some() {
            body.push_str(line);
        }
    }
    if let Some(p) = current {
        files.push((p, body));
    }
    for (path, content) in files {
        // A name the filesystem refuses (too long …) is a file the project
        // cannot have: it is left out, as if the header were not there.
        let _ = std::fs::write(path, content);
    }

    match Project::new(dir).load("fuzz", &LoadOptions::default()) {
        Err(d) => Ok(Outcome::Refused(d.0.len())),
        Ok(loaded) => {
            let rendered = loaded.rendered_text();
            if rendered.contains(OUTSIDE_CANARY) {
                return Err(Violation("a template read a file outside templates/".into()));
            }
            if let Ok(v) = std::env::var(ENV_CANARY_VAR)
                && v.len() >= 16
                && rendered.contains(&v)
                && !text.contains("env(")
            {
                return Err(Violation(format!("{ENV_CANARY_VAR} was read without env()")));
            }
            Ok(Outcome::Loaded(rendered))
        }
    }
}

/// Where a header's file goes, if it is one a case may write.
fn target(dir: &Path, header: &str) -> Option<PathBuf> {
    if header == "environments/fuzz.toml" {
        return Some(dir.join(header));
    }
    let name = header.strip_prefix("templates/")?;
    // No separators, no NUL or control characters: a name the filesystem takes as one file in templates/.
    let plain = !name.is_empty()
        && !name.contains('/')
        && !name.contains('\\')
        && !name.chars().any(char::is_control)
        && name.len() <= 200
        && name != "."
        && name != "..";
    plain.then(|| dir.join("templates").join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_split_into_its_files_and_loaded() {
        let case = b"template = \"main\"\n--- templates/main.toml.j2\n[resource.a]\ntype = \"data\"\ninput = \"{{ 1 + 1 }}\"\n";
        match load_case(case).unwrap() {
            Outcome::Loaded(text) => assert!(text.contains("input = \"2\""), "{text}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_refused_and_headers_cannot_escape() {
        assert!(matches!(load_case(b"\xff\x00[[[").unwrap(), Outcome::Refused(_)));
        assert_eq!(target(Path::new("/p"), "templates/../outside.txt"), None);
        assert_eq!(target(Path::new("/p"), "environments/other.toml"), None);
        // Found by the fuzzer: a NUL in a header made the harness itself fail.
        assert_eq!(target(Path::new("/p"), "templates/main.\0toml.j2"), None);
    }

    #[test]
    fn an_include_of_a_file_outside_templates_is_refused() {
        let case = b"template = \"main\"\n--- templates/main.toml.j2\n{% include \"../outside.txt\" %}\n";
        assert!(matches!(load_case(case).unwrap(), Outcome::Refused(_)));
    }
}
