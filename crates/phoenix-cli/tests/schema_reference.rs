//! `phoenix schema` and the reference pages it generates: the committed
//! `docs/reference/` must be exactly what the resource schemas produce now.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::phoenix;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every file under `dir`, by path relative to it.
fn files(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}

#[test]
fn committed_reference_pages_are_what_the_schemas_generate() {
    let tmp = tempfile::tempdir().unwrap();
    let out = phoenix(tmp.path(), &["schema", "--write", "reference"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let generated = files(&tmp.path().join("reference"));
    assert!(generated.len() > 30, "too few pages: {:?}", generated.keys());

    let committed_dir = repo_root().join("docs/reference");
    let committed = files(&committed_dir);
    let mut problems = Vec::new();
    for (rel, text) in &generated {
        match committed.get(rel) {
            None => problems.push(format!("missing: docs/reference/{}", rel.display())),
            Some(c) if c != text => problems.push(format!("differs: docs/reference/{}", rel.display())),
            Some(_) => {}
        }
    }
    // Pages of a provider's directory that no type generates any more (a removed or renamed type).
    for rel in committed.keys() {
        let in_provider_dir = rel.components().count() > 1;
        if in_provider_dir && !generated.contains_key(rel) {
            problems.push(format!("stale: docs/reference/{} (no such type now)", rel.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/reference/ is out of date with the resource schemas:\n  {}\nRegenerate it with\n  cargo run -q -p phoenix-cli -- schema --write docs/reference\nand commit the result.",
        problems.join("\n  ")
    );
}

#[test]
fn schema_prints_one_type_as_markdown_or_json() {
    let tmp = tempfile::tempdir().unwrap();
    let md = phoenix(tmp.path(), &["schema", "metal.service"]);
    assert_eq!(md.code, 0, "{}", md.stderr);
    assert!(md.stdout.contains("# `metal.service`"), "{}", md.stdout);
    assert!(md.stdout.contains("| `command` | string | required |"), "{}", md.stdout);
    // The sensitive `environment` is marked so.
    let env_row = md.stdout.lines().find(|l| l.starts_with("| `environment` |")).expect("an environment row");
    assert!(env_row.contains("| yes |"), "{env_row}");

    let json = phoenix(tmp.path(), &["schema", "metal.service", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(doc["type_name"], "metal.service");
    let command = doc["attrs"].as_array().unwrap().iter().find(|a| a["name"] == "command").expect("command");
    assert_eq!(command["required"], true);
    assert_eq!(command["type"], "string");

    // The global --json means the same as --format json; a provider lists its types.
    let aws = phoenix(tmp.path(), &["--json", "schema", "aws"]);
    let types: serde_json::Value = serde_json::from_str(&aws.stdout).expect("JSON");
    let names: Vec<_> = types.as_array().unwrap().iter().map(|t| t["type_name"].as_str().unwrap().to_string()).collect();
    assert!(names.contains(&"aws.instance".to_string()) && names.iter().all(|n| n.starts_with("aws.")), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "types are listed in name order");
}

#[test]
fn schema_of_an_unknown_type_fails_and_says_how_to_list_them() {
    let tmp = tempfile::tempdir().unwrap();
    let out = phoenix(tmp.path(), &["schema", "metal.nothing"]);
    assert_eq!(out.code, 64);
    assert!(out.stderr.contains("metal.nothing") && out.stderr.contains("phoenix schema"), "{}", out.stderr);
}
