//! What people see, pinned: the text of plans, applies and destroys, errors,
//! listings and every `--help`, run through the binary as a user runs it
//! (no stdin, not a terminal, so progress comes as plain lines).
//!
//! A change to CLI text shows up here as a snapshot diff to review. After a
//! deliberate change, run these tests with `INSTA_UPDATE=always` and read the
//! changed `.snap` files under `tests/snapshots/` before committing them. In
//! CI a missing or different snapshot fails the test.
//!
//! Times, durations, ids, pids, ports and temporary paths are replaced by
//! placeholders (`[TIME]`, `[DURATION]`, `[ID]`…); everything else is exact.
//! Applies run with `--parallelism 1` so that their lines come in one order.

mod support;

use std::path::Path;

use phoenix_testkit::Moto;
use support::{Output, Project, Run, free_port};

/// Filters for what differs from run to run.
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    for (pattern, replacement) in [
        // Progress lines: `12:34:56.789 web: created after 0.1s`.
        (r"(?m)^\d{2}:\d{2}:\d{2}\.\d{3} ", "[TIME] "),
        (r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?( ?UTC|Z|[+-]\d{2}:\d{2})?", "[TIME]"),
        (r"\b\d+\.\d+s\b", "[DURATION]"),
        (r"\brp-\d{8}-\d{6}-[0-9a-f]+\b", "[RECOVERY_POINT]"),
        (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "[UUID]"),
        // AWS ids: vpc-0a1b…, sg-…, vol-…, i-…
        (r"\b(vpc|sg|vol|subnet|igw|rtb|eni|i|snap|ami)-[0-9a-f]{8,17}\b", "$1-[ID]"),
        (r"/tmp/\.tmp[A-Za-z0-9]+", "[TMP]"),
        // The id of a builtin `data` resource: random.
        (r#""[0-9a-f]{16}""#, r#""[ID]""#),
        // …and as a finished line shows it: `site: created in 0.1s [72607fcb97f57dc3]`.
        (r"\[[0-9a-f]{16}\]", "[[ID]]"),
        // The dev preflight's streamed output: the machine's own Python.
        (r"Python \d+\.\d+\.\d+", "Python [VERSION]"),
        // A readiness check's streamed "waiting for …" lines: how many depends
        // on how fast the server starts (its outcome is the `created` line).
        (r"(?m)^\[TIME\] [A-Za-z0-9_-]+: waiting for [^\n]*\n", ""),
    ] {
        s.add_filter(pattern, replacement);
    }
    s
}

/// Exit code, stdout and stderr as one document, with the project's path
/// (and any other literal text of this run) replaced.
fn shown(out: &Output, project: &Path, extra: &[(&str, &str)]) -> String {
    let mut text = format!("exit: {}\n--- stdout\n{}--- stderr\n{}", out.code, out.stdout, out.stderr);
    text = text.replace(&project.display().to_string(), "[PROJECT]");
    for (from, to) in extra {
        text = text.replace(from, to);
    }
    text
}

fn run(project: &Project, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = support::command(&project.dir, args);
    // Not a terminal, as in CI; a fixed width, which clap wraps help to.
    c.env("CI", "true").env("COLUMNS", "100");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("phoenix runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------- --help

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.split("\nCommands:\n")
        .nth(1)
        .map(|rest| {
            rest.lines()
                .take_while(|l| !l.trim().is_empty())
                .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|c| *c != "help")
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn help_of_every_command() {
    let project = Project::empty();
    let help = |path: &[String]| {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = run(&project, &args, &[]);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        out.stdout
    };
    // Walk the tree as `phoenix help` shows it.
    let top = run(&project, &["help"], &[]);
    assert_eq!(top.code, 0);
    let mut queue: Vec<Vec<String>> = subcommands(&top.stdout).into_iter().map(|c| vec![c]).collect();
    assert!(queue.len() >= 20, "{}", top.stdout);
    let mut seen = Vec::new();
    let _guard = settings().bind_to_scope();
    insta::assert_snapshot!("help", help(&[]));
    while let Some(path) = queue.pop() {
        let text = help(&path);
        queue.extend(subcommands(&text).into_iter().map(|c| [path.clone(), vec![c]].concat()));
        insta::assert_snapshot!(format!("help__{}", path.join("_")), text);
        seen.push(path.join(" "));
    }
    for nested in ["state list", "state show", "state mv", "state rm", "snapshot list", "snapshot show", "snapshot delete"] {
        assert!(seen.iter().any(|s| s == nested), "`phoenix {nested} --help` was not reached: {seen:?}");
    }
}

// ---------------------------------------------------------------- bad input

#[test]
fn diagnostics_of_every_bad_input_case() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bad-input");
    let mut cases: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 80);
    let _guard = settings().bind_to_scope();
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let expect: toml::Table = toml::from_str(&std::fs::read_to_string(case.join("expect.toml")).unwrap()).unwrap();
        let extra: Vec<&str> =
            expect.get("args").and_then(|a| a.as_array()).map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
        let project = Project::copy_of(&case);
        let mut args = vec!["validate", "bad"];
        args.extend(extra);
        let out = run(&project, &args, &[]);
        assert_eq!(out.code, 3, "{name}: {}", out.stderr);
        insta::assert_snapshot!(format!("bad_input__{name}"), shown(&out, &project.dir, &[]));
    }
}

// ---------------------------------------------------------------- dev

#[test]
fn dev_plan_up_status_snapshot_change_and_down() {
    let project = Project::repo();
    let run_guard = Run::of(&project.dir, "dev");
    let port = free_port().to_string();
    let port_var = format!("port={port}");
    let port_text = format!("127.0.0.1:{port}");
    let dev = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--var", &port_var]);
        run(&project, &all, &[])
    };
    let _guard = settings().bind_to_scope();
    let mut placeholders: Vec<(String, String)> =
        vec![(port_text.clone(), "127.0.0.1:[PORT]".into()), (format!("http.server {port} "), "http.server [PORT] ".into())];
    let snap = |name: &str, out: &Output, placeholders: &[(String, String)]| {
        let extra: Vec<(&str, &str)> = placeholders.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        insta::assert_snapshot!(name.to_string(), shown(out, &project.dir, &extra));
    };

    let plan = dev(&["plan", "dev"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    snap("dev__plan", &plan, &placeholders);

    let up = dev(&["up", "dev", "--yes", "--parallelism", "1"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let pid = dev(&["output", "dev", "pid"]).stdout.trim().to_string();
    assert!(pid.parse::<u32>().is_ok(), "{pid}");
    placeholders.push((pid, "[PID]".into()));
    snap("dev__up", &up, &placeholders);

    let status = dev(&["status", "dev"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    snap("dev__status", &status, &placeholders);

    let instances = run(&project, &["instances", "dev"], &[]);
    assert_eq!(instances.code, 0, "{}", instances.stderr);
    // The age column counts seconds since the first run.
    let instances = Output { stdout: mask_age(&instances.stdout), ..instances };
    snap("dev__instances", &instances, &placeholders);

    let take = dev(&["snapshot", "dev"]);
    assert_eq!(take.code, 0, "{}\n{}", take.stdout, take.stderr);
    snap("dev__snapshot_take", &take, &placeholders);
    let list = run(&project, &["snapshot", "list", "dev"], &[]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    snap("dev__snapshot_list", &list, &placeholders);

    // The page's text is a multi-line string: its change is a line diff.
    let changed = dev(&["plan", "dev", "--var", "greeting=Risen again"]);
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    snap("dev__plan_greeting_changed", &changed, &placeholders);
    let compact = dev(&["--compact", "plan", "dev", "--var", "greeting=Risen again"]);
    snap("dev__plan_greeting_changed_compact", &compact, &placeholders);

    let down = dev(&["down", "dev", "--yes", "--parallelism", "1"]);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    snap("dev__down", &down, &placeholders);
    drop(run_guard);
}

/// `phoenix instances` prints each instance's age (`3s`, `2m`): a placeholder
/// in the AGE column, the rest as is.
fn mask_age(text: &str) -> String {
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return text.to_string() };
    let (Some(start), Some(end)) = (header.find("RESOURCES").map(|i| i + "RESOURCES".len()), header.find("EXPIRES")) else {
        return text.to_string();
    };
    let mut out = format!("{header}\n");
    for l in lines {
        if l.len() > end {
            out.push_str(&format!("{}{:>w$}  {}\n", &l[..start], "[AGE]", &l[end..], w = end - start - 2));
        } else {
            out.push_str(&format!("{l}\n"));
        }
    }
    out
}

// ---------------------------------------------------------------- a moto stack

const STACK_ENV: &str = r#"description = "Snapshot test stack: a VPC, a security group, a data volume and a page"
template = "stack"

[providers.aws]
region = "eu-west-1"

[vars]
http_port = 80
greeting = "Hello"
volume_type = "gp3"
tier = "staging"
"#;

const STACK_TEMPLATE: &str = r#"[resource.vpc]
type = "aws.vpc"
cidr_block = "10.0.0.0/16"
tags = { team = "web", tier = "{{ tier }}", "cost center" = "42" }

[resource.web-sg]
type = "aws.security_group"
name = "web-sg"
description = "web servers"
vpc_id = "${vpc.id}"
ingress = [
  { protocol = "tcp", from_port = 22, to_port = 22, cidr_blocks = ["10.0.0.0/8"], description = "ssh" },
  { protocol = "tcp", from_port = {{ http_port }}, to_port = {{ http_port }}, cidr_blocks = ["0.0.0.0/0"], description = "http" },
  { protocol = "tcp", from_port = 443, to_port = 443, cidr_blocks = ["0.0.0.0/0"], description = "https" },
]

[resource.data]
type = "aws.volume"
availability_zone = "eu-west-1a"
size = 10
volume_type = "{{ volume_type }}"

[resource.page]
type = "metal.file"
path = "site/index.html"
content = """<!doctype html>
<title>{{ greeting }}</title>
<h1>{{ greeting }}</h1>
<p>one</p>
<p>two</p>
<p>three</p>
<p>four</p>
<p>five</p>
"""

[output.vpc]
value = "${vpc.id}"

[output.greeting]
value = "{{ greeting }}"
"#;

#[test]
fn a_moto_stack_planned_changed_and_destroyed() {
    let moto = Moto::start();
    let project = Project::empty();
    project.write("environments/stack.toml", STACK_ENV);
    project.write("templates/stack.toml.j2", STACK_TEMPLATE);
    let env: Vec<(&str, String)> = moto.env();
    let _guard = settings().bind_to_scope();
    let snap = |name: &str, out: &Output| {
        let endpoint = moto.endpoint();
        insta::assert_snapshot!(name.to_string(), shown(out, &project.dir, &[(endpoint.as_str(), "[ENDPOINT]")]));
    };

    let plan = run(&project, &["plan", "stack"], &env);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    snap("moto__plan_create", &plan);

    let up = run(&project, &["up", "stack", "--yes", "--parallelism", "1"], &env);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    snap("moto__up", &up);

    // One rule's port, the page's text, one tag, and a volume type that replaces the volume.
    let changes = ["--var", "http_port=8080", "--var", "greeting=Risen again", "--var", "tier=prod", "--var", "volume_type=gp2"];
    let plan = run(&project, &[&["plan", "stack"][..], &changes].concat(), &env);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    snap("moto__plan_changes", &plan);
    let out = project.dir.join("changes.plan");
    let saved = run(&project, &[&["plan", "stack", "--out", out.to_str().unwrap()][..], &changes].concat(), &env);
    assert_eq!(saved.code, 0, "{}", saved.stderr);
    let show = run(&project, &["show", "changes.plan"], &[]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    snap("moto__show_saved_plan", &show);

    let down = run(&project, &["down", "stack", "--yes", "--parallelism", "1"], &env);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    snap("moto__down", &down);
}
