//! The bad-input corpus (`tests/bad-input/`): every broken environment is
//! refused before any side effect, with the exact kind and location.

mod support;

use std::path::Path;

use support::{Project, phoenix};

#[derive(serde::Deserialize)]
struct Expect {
    kind: String,
    file: String,
    line: usize,
    message: Option<String>,
    /// A fragment of the help line (a did-you-mean).
    help: Option<String>,
    #[serde(default)]
    args: Vec<String>,
}

fn cases() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bad-input");
    let mut dirs: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

#[test]
fn corpus_has_at_least_fifty_cases() {
    assert!(cases().len() >= 50, "only {} cases", cases().len());
}

#[test]
fn every_broken_environment_is_refused_with_its_kind_and_location() {
    let mut failures = Vec::new();
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let expect: Expect = toml::from_str(&std::fs::read_to_string(case.join("expect.toml")).unwrap()).unwrap();
        let project = Project::copy_of(&case);
        let mut args = vec!["--json", "validate", "bad"];
        args.extend(expect.args.iter().map(String::as_str));
        let out = phoenix(&project.dir, &args);
        if out.code != 3 {
            failures.push(format!("{name}: validate exited {} (want 3)\n{}{}", out.code, out.stdout, out.stderr));
            continue;
        }
        let doc: serde_json::Value = match serde_json::from_str(out.stdout.trim()) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{name}: output is not one JSON document ({e}): {}", out.stdout));
                continue;
            }
        };
        let diags = doc["diagnostics"].as_array().cloned().unwrap_or_default();
        let found = diags.iter().any(|d| {
            d["kind"] == expect.kind.as_str()
                && d["location"]["file"] == expect.file.as_str()
                && d["location"]["line"] == expect.line
                && expect.message.as_ref().is_none_or(|m| d["message"].as_str().unwrap_or("").contains(m.as_str()))
                && expect.help.as_ref().is_none_or(|h| d["help"].as_str().unwrap_or("").contains(h.as_str()))
        });
        if !found {
            failures.push(format!(
                "{name}: expected {} at {}:{}{}; got {}",
                expect.kind,
                expect.file,
                expect.line,
                expect.message.as_ref().map(|m| format!(" mentioning `{m}`")).unwrap_or_default()
                    + &expect.help.as_ref().map(|h| format!(" with help `{h}`")).unwrap_or_default(),
                serde_json::to_string_pretty(&diags).unwrap()
            ));
        }
        // `up` refuses the same way and nothing is created: no state, no work directory.
        let mut up = vec!["--json", "up", "bad", "--yes"];
        up.extend(expect.args.iter().map(String::as_str));
        let out = phoenix(&project.dir, &up);
        if out.code != 3 {
            failures.push(format!("{name}: up exited {} (want 3)", out.code));
        }
        if project.dir.join(".phoenix").exists() {
            failures.push(format!("{name}: up created .phoenix/ for an invalid definition"));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn human_output_shows_file_line_and_snippet() {
    let case = cases().into_iter().find(|c| c.ends_with("unknown-attribute")).unwrap();
    let project = Project::copy_of(&case);
    let out = phoenix(&project.dir, &["--no-color", "validate", "bad"]);
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("templates/bad.toml.j2:4"), "{}", out.stderr);
    assert!(out.stderr.contains("contnt = \"hello\""), "snippet missing: {}", out.stderr);
    assert!(out.stderr.contains("did you mean `content`?"), "{}", out.stderr);
}
