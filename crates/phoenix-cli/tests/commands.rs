//! The rest of the command surface, through the binary: saved plans, secrets,
//! `env()`, Ctrl-C, graph, render, state surgery, targets, JSON events.

mod support;

use std::time::Duration;

use support::{Project, phoenix};

/// A project of `data` resources: no processes, no ports.
fn data_project() -> Project {
    let p = Project::empty();
    p.write("environments/app.toml", "template = \"app\"\n\n[vars]\ncount = 3\nlabel = \"v1\"\n");
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

[resource.token]
type = "data"
secret = "{{ env('APP_TOKEN', 'none') }}"
input = "token holder"

[output.first]
value = "${item-0.output}"
"#,
    );
    p
}

#[test]
fn saved_plan_applies_exactly_and_is_refused_once_state_moves() {
    let p = data_project();
    let plan_file = p.dir.join("app.plan");
    let plan_path = plan_file.to_str().unwrap();
    let out = phoenix(&p.dir, &["plan", "app", "--out", plan_path]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let up = phoenix(&p.dir, &["up", "app", "--plan", plan_path, "--yes"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    // The same file again: state moved on (serial changed), so it is refused.
    let again = phoenix(&p.dir, &["up", "app", "--plan", plan_path, "--yes"]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("refusing saved plan"), "{}", again.stderr);
    // A plan made, then a definition change before applying: refused too.
    let out = phoenix(&p.dir, &["plan", "app", "--out", plan_path, "--var", "label=v2"]);
    assert_eq!(out.code, 0);
    let changed = phoenix(&p.dir, &["up", "app", "--plan", plan_path, "--yes", "--var", "label=v3"]);
    assert_eq!(changed.code, 1, "{}", changed.stdout);
    assert!(changed.stderr.contains("changed since"), "{}", changed.stderr);
}

/// `-C DIR` is "as if started in DIR", like `terraform -chdir`: a relative
/// plan file is written and read under DIR, wherever phoenix was started.
#[test]
fn relative_plan_files_live_under_the_chdir_directory() {
    let p = data_project();
    let out = phoenix(&p.dir, &["plan", "app", "--out", "saved/app.plan"]);
    assert_eq!(out.code, 1, "the directory does not exist yet: {}", out.stderr);
    std::fs::create_dir(p.dir.join("saved")).unwrap();
    let out = phoenix(&p.dir, &["plan", "app", "--out", "saved/app.plan"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(p.dir.join("saved/app.plan").is_file(), "written under -C");
    let up = phoenix(&p.dir, &["up", "app", "--plan", "saved/app.plan", "--yes"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
}

#[test]
fn secrets_never_reach_state_plans_or_output() {
    let p = data_project();
    let secret = "s3cr3t-value-from-env";
    let run = |args: &[&str]| {
        let mut c = support::command(&p.dir, args);
        c.env("APP_TOKEN", secret);
        let o = c.output().unwrap();
        (o.status.code().unwrap(), String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr))
    };
    let plan_file = p.dir.join("app.plan");
    let (code, plan_out) = run(&["plan", "app", "--out", plan_file.to_str().unwrap()]);
    assert_eq!(code, 0);
    let (_, json_plan) = run(&["--json", "plan", "app"]);
    let (code, up_out) = run(&["-vv", "--json", "up", "app", "--yes"]);
    assert_eq!(code, 0, "{up_out}");
    let (_, status) = run(&["--json", "status", "app"]);
    let (_, show) = run(&["state", "show", "app", "token"]);
    for (what, text) in [("plan", &plan_out), ("json plan", &json_plan), ("up", &up_out), ("status", &status), ("state show", &show)] {
        assert!(!text.contains(secret), "the secret leaked into {what}: {text}");
    }
    assert!(plan_out.contains("(sensitive)"), "{plan_out}");
    for entry in walk(&p.dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains(secret), "the secret reached {}", entry.display());
    }
    // State files are private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p.dir.join(".phoenix/state/app/state.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(&plan_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // A changed secret is detected (sealed digest differs) without being shown.
    let mut c = support::command(&p.dir, &["plan", "app", "--detailed-exitcode"]);
    c.env("APP_TOKEN", "another-value");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("another-value"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn json_up_emits_one_event_per_line_and_outputs() {
    let p = data_project();
    let up = phoenix(&p.dir, &["--json", "up", "app", "--yes"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    let events = up.events();
    assert_eq!(events.len(), up.stdout.lines().count(), "every stdout line is a JSON event");
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "operation_started").count(), 5);
    assert_eq!(kinds.iter().filter(|k| **k == "operation_finished").count(), 5);
    let done = up.event("run_finished").unwrap();
    assert_eq!(done["success"], true);
    assert_eq!(done["outputs"]["first"], "v1-0");
    assert!(done["state_bytes_written"].as_u64().unwrap() > 0);
    let out = phoenix(&p.dir, &["--json", "output", "app"]);
    assert_eq!(out.event("outputs").unwrap()["outputs"]["first"], "v1-0");
}

#[test]
fn render_graph_and_state_commands() {
    let p = data_project();
    let render = phoenix(&p.dir, &["render", "app", "--var", "count=2"]);
    assert!(render.stdout.contains("[resource.item-1]") && !render.stdout.contains("item-2"), "{}", render.stdout);
    let graph = phoenix(&p.dir, &["graph", "app"]);
    assert!(graph.stdout.starts_with("digraph"), "{}", graph.stdout);
    assert!(graph.stdout.contains("\"item-0\" -> \"base\";"), "{}", graph.stdout);
    assert_eq!(phoenix(&p.dir, &["up", "app", "--yes"]).code, 0);
    let list = phoenix(&p.dir, &["state", "list", "app"]);
    assert_eq!(list.stdout.lines().count(), 5, "{}", list.stdout);
    let rm = phoenix(&p.dir, &["state", "rm", "app", "item-2", "--yes"]);
    assert_eq!(rm.code, 0, "{}", rm.stderr);
    assert_eq!(phoenix(&p.dir, &["state", "list", "app"]).stdout.lines().count(), 4);
    // Forgotten, so the next plan creates it again.
    let plan = phoenix(&p.dir, &["--json", "plan", "app"]);
    assert_eq!(plan.event("plan").unwrap()["summary"]["create"], 1);
    let unknown = phoenix(&p.dir, &["state", "rm", "app", "nope", "--yes"]);
    assert_eq!(unknown.code, 64);
    assert_eq!(phoenix(&p.dir, &["unlock", "app"]).code, 0);
}

#[test]
fn targets_limit_up_to_a_resource_and_what_it_needs() {
    let p = data_project();
    let up = phoenix(&p.dir, &["--json", "up", "app", "--yes", "--target", "item-1"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    let list = phoenix(&p.dir, &["state", "list", "app"]).stdout;
    let names: Vec<&str> = list.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(names, vec!["base", "item-1"]);
    let bad = phoenix(&p.dir, &["up", "app", "--yes", "--target", "ghost"]);
    assert_eq!(bad.code, 64);
}

#[test]
fn interrupt_lets_in_flight_work_finish_and_saves_state() {
    let p = Project::empty();
    p.write("environments/slow.toml", "template = \"slow\"\n");
    p.write(
        "templates/slow.toml.j2",
        "[resource.first]\ntype = \"metal.exec\"\ncommand = \"sleep 1\"\n\n[resource.second]\ntype = \"metal.exec\"\ncommand = \"true\"\ndepends_on = [\"first\"]\n",
    );
    let mut child = support::command(&p.dir, &["--json", "up", "slow", "--yes"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    // Interrupt once `first` is in flight.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let started = lines.by_ref().map_while(Result::ok).any(|l| l.contains("\"type\":\"operation_started\"") && l.contains("\"first\""));
    assert!(started, "first never started");
    std::thread::sleep(Duration::from_millis(100));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{}", rest.join("\n"));
    assert!(rest.iter().any(|l| l.contains("\"type\":\"interrupted\"")), "{}", rest.join("\n"));
    let list = phoenix(&p.dir, &["state", "list", "slow"]).stdout;
    assert_eq!(list.lines().map(|l| l.split('\t').next().unwrap()).collect::<Vec<_>>(), vec!["first"], "in-flight work was recorded");
    let rerun = phoenix(&p.dir, &["--json", "up", "slow", "--yes"]);
    assert_eq!(rerun.code, 0);
    assert_eq!(rerun.event("plan").unwrap()["summary"]["create"], 1, "only the unstarted resource is left");
}

#[test]
fn every_shipped_environment_validates_without_any_cloud() {
    let p = Project::repo();
    let envs: Vec<String> = std::fs::read_dir(p.dir.join("environments"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".toml")).map(str::to_string))
        .collect();
    assert!(envs.len() >= 2, "{envs:?}");
    for env in envs {
        // Secrets come from the environment (env() in templates, e.g. a database password): each
        // variable a template says is missing gets a placeholder, so the file itself is what is checked.
        let mut secrets: Vec<String> = Vec::new();
        let out = loop {
            // No credentials, no endpoints: validation makes no API call.
            let mut c = support::command(&p.dir, &["validate", &env]);
            c.env_remove("AWS_ACCESS_KEY_ID").env("AWS_EC2_METADATA_DISABLED", "true");
            c.envs(secrets.iter().map(|k| (k.as_str(), "placeholder-for-validation")));
            let out = c.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let missing = stderr.split("environment variable `").nth(1).and_then(|s| s.split('`').next()).map(str::to_string);
            match missing {
                Some(var) if out.status.code() == Some(3) && !secrets.contains(&var) && secrets.len() < 8 => secrets.push(var),
                _ => break out,
            }
        };
        assert!(out.status.success(), "{env} does not validate:\n{}", String::from_utf8_lossy(&out.stderr));
    }
}
