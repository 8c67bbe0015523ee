//! What a Terraform user reaches for, through the binary: `apply`/`destroy`,
//! `--var-file`, `--replace`, `--exclude`, `refresh`, `show`, `state mv`,
//! `completions`, `version`, and the `prevent_destroy`/`ignore_changes` keys.

mod support;

use support::{Project, phoenix};

/// `data` resources (no processes, no ports): `base`, two items that need it, and `loose`.
fn project() -> Project {
    let p = Project::empty();
    p.write("environments/app.toml", "template = \"app\"\n\n[vars]\nlabel = \"v1\"\ncount = 2\n");
    p.write(
        "templates/app.toml.j2",
        r#"[resource.base]
type = "data"
input = "{{ label }}"

{% for i in range(count) %}
[resource.item-{{ i }}]
type = "data"
input = "${base.output}-{{ i }}"
{% endfor %}

[resource.loose]
type = "data"
input = "alone"
"#,
    );
    p
}

/// Local files (metal, local transport): objects that can drift and vanish.
fn files_project() -> Project {
    let p = Project::empty();
    p.write("environments/files.toml", "template = \"files\"\n\n[vars]\ntext = \"one\"\n");
    p.write(
        "templates/files.toml.j2",
        "[resource.notes]\ntype = \"metal.file\"\npath = \"notes.txt\"\ncontent = \"{{ text }}\"\n\n\
         [resource.keep]\ntype = \"metal.file\"\npath = \"keep.txt\"\ncontent = \"k\"\nprevent_destroy = true\n",
    );
    p
}

fn state_names(p: &Project, env: &str) -> Vec<String> {
    phoenix(&p.dir, &["state", "list", env]).stdout.lines().map(|l| l.split('\t').next().unwrap().to_string()).collect()
}

fn summary(p: &Project, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "plan"];
    all.extend_from_slice(args);
    let out = phoenix(&p.dir, &all);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    out.event("plan").unwrap()["summary"].clone()
}

#[test]
fn apply_and_destroy_are_up_and_down() {
    let p = project();
    let up = phoenix(&p.dir, &["apply", "app", "--yes"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert_eq!(state_names(&p, "app").len(), 4);
    let down = phoenix(&p.dir, &["destroy", "app", "--yes"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(state_names(&p, "app").is_empty());
    let help = phoenix(&p.dir, &["--help"]);
    assert!(help.stdout.contains("[alias: apply]") && help.stdout.contains("[alias: destroy]"), "{}", help.stdout);
}

#[test]
fn bad_usage_exits_64_and_suggests_the_command_meant() {
    let p = project();
    let typo = phoenix(&p.dir, &["destory", "app"]);
    assert_eq!(typo.code, 64, "usage errors must not read as `changes present` (2): {}", typo.stderr);
    assert!(typo.stderr.contains("'destroy'"), "{}", typo.stderr);
    let flag = phoenix(&p.dir, &["plan", "app", "--detailed-exitcode", "--bogus"]);
    assert_eq!(flag.code, 64, "{}", flag.stderr);
    let var = phoenix(&p.dir, &["plan", "app", "--var", "count"]);
    assert_eq!(var.code, 64, "a --var without `=`: {}", var.stderr);
    assert!(var.stderr.contains("expected NAME=VALUE"), "{}", var.stderr);
    assert!(!p.dir.join(".phoenix").exists(), "bad usage wrote something");
    // Help is an answer, not an error.
    assert_eq!(phoenix(&p.dir, &["plan", "--help"]).code, 0);
}

/// `phoenix --help` and docs/reference/exit-codes.md list the same codes.
#[test]
fn help_and_the_exit_code_reference_list_the_same_codes() {
    let p = project();
    let help = phoenix(&p.dir, &["--help"]).stdout;
    let section = help.split_once("Exit codes:").expect("--help lists the exit codes").1;
    let in_help: std::collections::BTreeSet<String> =
        section.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u8>().is_ok()).map(str::to_string).collect();
    let doc = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference/exit-codes.md")).unwrap();
    let in_doc: std::collections::BTreeSet<String> =
        doc.lines().filter_map(|l| l.strip_prefix("| `")).filter_map(|l| l.split_once('`')).map(|(c, _)| c.to_string()).collect();
    assert_eq!(in_help, in_doc, "--help:\n{section}");
    assert!(in_help.contains("64") && in_help.contains("3"), "{in_help:?}");
}

#[test]
fn environment_names_get_a_did_you_mean_and_paths_are_paths() {
    let p = project();
    // A name that is not there is bad usage (64), not an invalid definition (3).
    let out = phoenix(&p.dir, &["validate", "App"]);
    assert_eq!(out.code, 64);
    assert!(out.stderr.contains("did you mean `app`?"), "{}", out.stderr);
    let path = phoenix(&p.dir, &["validate", "./x.toml"]);
    assert_eq!(path.code, 64);
    assert!(!path.stderr.contains(".toml.toml") && path.stderr.contains("./x.toml"), "{}", path.stderr);
    let elsewhere = Project::empty();
    std::fs::remove_dir(elsewhere.dir.join("environments")).unwrap();
    let out = phoenix(&elsewhere.dir, &["plan", "app"]);
    assert_eq!(out.code, 64);
    assert!(out.stderr.contains("no environments/ directory") && out.stderr.contains("-C DIR"), "{}", out.stderr);
}

#[test]
fn var_files_apply_in_order_and_var_wins() {
    let p = project();
    p.write("big.toml", "label = \"from-big\"\ncount = 3\n");
    p.write("bigger.toml", "count = 4\n");
    let render = phoenix(&p.dir, &["render", "app", "--var-file", "big.toml", "--var-file", "bigger.toml"]);
    assert_eq!(render.code, 0, "{}", render.stderr);
    assert!(render.stdout.contains("\"from-big\"") && render.stdout.contains("item-3") && !render.stdout.contains("item-4"));
    let render = phoenix(&p.dir, &["render", "app", "--var", "label=cli", "--var-file", "big.toml"]);
    assert!(render.stdout.contains("\"cli\"") && !render.stdout.contains("from-big"), "{}", render.stdout);

    // An undeclared name is located at its line in the var file, with a suggestion.
    p.write("typo.toml", "# sizes\nlabel = \"x\"\ncuont = 5\n");
    let out = phoenix(&p.dir, &["--json", "plan", "app", "--var-file", "typo.toml"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    let doc: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let d = &doc["diagnostics"][0];
    assert_eq!(d["kind"], "unknown_variable");
    assert_eq!(d["location"]["file"], "typo.toml");
    assert_eq!(d["location"]["line"], 3);
    assert_eq!(d["help"], "did you mean `count`?");
    p.write("wrong.toml", "count = \"many\"\n");
    let out = phoenix(&p.dir, &["--json", "plan", "app", "--var-file", "wrong.toml"]);
    assert_eq!(out.code, 3);
    assert!(out.stdout.contains("\"wrong_type\"") && out.stdout.contains("\"file\":\"wrong.toml\""), "{}", out.stdout);
    assert!(!p.dir.join(".phoenix").exists());
    // --var names get the same suggestion.
    let out = phoenix(&p.dir, &["validate", "app", "--var", "lable=x"]);
    assert!(out.stderr.contains("did you mean `label`?"), "{}", out.stderr);
}

#[test]
fn replace_forces_a_replacement_and_names_must_exist() {
    let p = project();
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes"]).code, 0);
    assert_eq!(summary(&p, &["app"])["replace"], 0);
    assert_eq!(summary(&p, &["app", "--replace", "loose"])["replace"], 1);
    let before = phoenix(&p.dir, &["state", "show", "app", "loose"]).stdout;
    let up = phoenix(&p.dir, &["up", "app", "--yes", "--replace", "loose"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert_ne!(before, phoenix(&p.dir, &["state", "show", "app", "loose"]).stdout, "a replaced data resource gets a new id");
    let ghost = phoenix(&p.dir, &["plan", "app", "--replace", "lose"]);
    assert_eq!(ghost.code, 64);
    assert!(ghost.stderr.contains("did you mean `loose`?"), "{}", ghost.stderr);
    let target = phoenix(&p.dir, &["plan", "app", "--target", "item-9"]);
    assert_eq!(target.code, 64);
    assert!(target.stderr.contains("did you mean `item-0`?") || target.stderr.contains("did you mean `item-1`?"), "{}", target.stderr);
}

#[test]
fn exclude_leaves_a_resource_and_what_needs_it() {
    let p = project();
    let up = phoenix(&p.dir, &["up", "app", "--yes", "--exclude", "base"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert_eq!(state_names(&p, "app"), vec!["loose"]);
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes"]).code, 0);
    // Destroying all but item-0 keeps what item-0 needs (base) too.
    let down = phoenix(&p.dir, &["down", "app", "--yes", "--exclude", "item-0"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!(state_names(&p, "app"), vec!["base", "item-0"]);
}

#[test]
fn refresh_records_drift_and_vanished_objects_without_changing_anything() {
    let p = files_project();
    assert_eq!(phoenix(&p.dir, &["up", "files", "--yes"]).code, 0);
    let notes = p.dir.join(".phoenix/env/files/work/notes.txt");
    let clean = phoenix(&p.dir, &["--json", "refresh", "files"]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    assert_eq!(clean.event("refreshed").unwrap()["state_changed"], false);

    std::fs::write(&notes, "edited by hand\n").unwrap();
    let out = phoenix(&p.dir, &["refresh", "files"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("notes changed outside Phoenix") && out.stdout.contains("\"one\" -> \"edited by hand\\n\""),
        "{}",
        out.stdout
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "edited by hand\n", "refresh changes no object");
    let state: serde_json::Value = serde_json::from_str(&phoenix(&p.dir, &["state", "show", "files", "notes"]).stdout).unwrap();
    assert_eq!(state["resource"]["inputs"]["content"], "edited by hand\n", "reality is recorded in state");

    std::fs::remove_file(&notes).unwrap();
    let out = phoenix(&p.dir, &["--json", "refresh", "files"]);
    let ev = out.event("refreshed").unwrap();
    assert_eq!(ev["gone"], serde_json::json!(["notes"]));
    assert_eq!(state_names(&p, "files"), vec!["keep"]);
}

#[test]
fn show_prints_a_saved_plan_for_people_and_as_json() {
    let p = project();
    assert_eq!(phoenix(&p.dir, &["plan", "app", "--out", "app.plan"]).code, 0);
    let human = phoenix(&p.dir, &["show", "app.plan"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(human.stdout.contains("Saved plan for app") && human.stdout.contains("item-1 (data) will be created"), "{}", human.stdout);
    let json = phoenix(&p.dir, &["--json", "show", "app.plan"]);
    let plan: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(plan["type"], "plan");
    assert_eq!(plan["plan"]["changes"].as_array().unwrap().len(), 4);
    let missing = phoenix(&p.dir, &["show", "nope.plan"]);
    assert_eq!(missing.code, 1);
}

#[test]
fn state_mv_follows_a_rename_so_nothing_is_rebuilt() {
    let p = project();
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes"]).code, 0);
    let tpl = std::fs::read_to_string(p.dir.join("templates/app.toml.j2")).unwrap();
    p.write("templates/app.toml.j2", &tpl.replace("[resource.loose]", "[resource.single]"));
    assert_eq!(summary(&p, &["app"])["delete"], 1);
    let mv = phoenix(&p.dir, &["state", "mv", "app", "loose", "single"]);
    assert_eq!(mv.code, 0, "{}", mv.stderr);
    let s = summary(&p, &["app"]);
    assert_eq!((s["create"].as_u64(), s["delete"].as_u64(), s["unchanged"].as_u64()), (Some(0), Some(0), Some(4)), "{s}");
    // An address that names nothing is bad usage; a destination already taken is an error.
    let again = phoenix(&p.dir, &["state", "mv", "app", "lose", "other"]);
    assert_eq!(again.code, 64);
    assert!(again.stderr.contains("did you mean"), "{}", again.stderr);
    let taken = phoenix(&p.dir, &["state", "mv", "app", "single", "base"]);
    assert_eq!(taken.code, 1);
    assert!(taken.stderr.contains("already in the state"), "{}", taken.stderr);
}

#[test]
fn completions_and_version() {
    let p = project();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef phoenix"),
        ("fish", "complete -c phoenix"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = phoenix(&p.dir, &["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains(marker) && out.stdout.contains("refresh"), "{shell}: {}", &out.stdout[..out.stdout.len().min(300)]);
    }
    let v = phoenix(&p.dir, &["version"]);
    assert_eq!(v.code, 0);
    assert!(v.stdout.starts_with(&format!("phoenix {}", env!("CARGO_PKG_VERSION"))), "{}", v.stdout);
    let j: serde_json::Value = serde_json::from_str(phoenix(&p.dir, &["--json", "version"]).stdout.trim()).unwrap();
    assert!(j["providers"].as_array().unwrap().iter().any(|x| x == "metal"), "{j}");
}

#[test]
fn prevent_destroy_fails_the_plan_naming_the_resource() {
    let p = files_project();
    assert_eq!(phoenix(&p.dir, &["up", "files", "--yes"]).code, 0);
    for args in [&["down", "files", "--yes"][..], &["plan", "files", "--destroy"][..]] {
        let out = phoenix(&p.dir, args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stdout);
        assert!(out.stderr.contains("keep (metal.file) would be deleted") && out.stderr.contains("prevent_destroy"), "{}", out.stderr);
    }
    assert_eq!(state_names(&p, "files"), vec!["keep", "notes"], "nothing was destroyed");
    assert!(p.dir.join(".phoenix/env/files/work/keep.txt").exists());
    let out = phoenix(&p.dir, &["down", "files", "--yes", "--exclude", "keep"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(state_names(&p, "files"), vec!["keep"]);
}

#[test]
fn ignore_changes_keeps_an_attribute_as_it_is() {
    let p = project();
    let tpl = std::fs::read_to_string(p.dir.join("templates/app.toml.j2")).unwrap();
    p.write("templates/app.toml.j2", &tpl.replace("input = \"alone\"", "input = \"{{ label }}-alone\"\nignore_changes = [\"input\"]"));
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes"]).code, 0);
    let s = summary(&p, &["app", "--var", "label=v2"]);
    // base and the items follow the label; `loose` ignores it.
    assert_eq!((s["update"].as_u64(), s["unchanged"].as_u64()), (Some(3), Some(1)), "{s}");
    p.write("templates/app.toml.j2", &tpl.replace("input = \"alone\"", "input = \"alone\"\nignore_changes = [\"inptu\"]"));
    let out = phoenix(&p.dir, &["--json", "validate", "app"]);
    assert_eq!(out.code, 3);
    let doc: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let d = &doc["diagnostics"][0];
    assert_eq!(d["field"], "ignore_changes");
    assert_eq!(d["help"], "did you mean `input`?");
    assert_eq!(d["location"]["file"], "templates/app.toml.j2");
}
