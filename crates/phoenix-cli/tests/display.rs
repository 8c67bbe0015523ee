//! What a person sees, through the binary: closed pipes end quietly, colour
//! obeys `--no-color` and NO_COLOR, a run off a terminal leaves one timestamped
//! line per operation with the object's id, command output is streamed under
//! its resource, and `phoenix graph` draws DOT, Mermaid and SVG.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use support::{Project, Run, command, free_port, phoenix};

/// Runs `phoenix ARGS` with stdout on a pipe that is closed after `keep`
/// lines (0: at once, before anything is written); returns (exit code, stderr).
fn with_stdout_closed_after(project: &Project, args: &[&str], keep: usize) -> (Option<i32>, String, Vec<String>) {
    let mut child = command(&project.dir, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("phoenix runs");
    let stdout = child.stdout.take().unwrap();
    let mut kept = Vec::new();
    let mut reader = BufReader::new(stdout);
    for _ in 0..keep {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        kept.push(line);
    }
    drop(reader);
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned(), kept)
}

#[test]
fn render_into_a_pipe_closed_after_one_line_exits_quietly() {
    let project = Project::repo();
    let (code, stderr, kept) = with_stdout_closed_after(&project, &["render", "staging"], 1);
    assert_eq!(kept.len(), 1);
    assert_eq!(code, Some(0), "killed by a signal or failed:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "nothing to say about a reader that left: {stderr}");
}

#[test]
fn commands_whose_reader_is_gone_before_they_write_exit_quietly() {
    let project = Project::repo();
    for args in [
        &["render", "staging"][..],
        &["graph", "staging"],
        &["graph", "dev", "--format", "svg"],
        &["schema"],
        &["--help"],
        &["completions", "bash"],
        &["validate", "dev"],
    ] {
        let (code, stderr, _) = with_stdout_closed_after(&project, args, 0);
        assert_eq!(code, Some(0), "phoenix {args:?}:\n{stderr}");
        assert!(!stderr.contains("panicked"), "phoenix {args:?}: {stderr}");
    }
}

#[test]
fn an_apply_whose_reader_is_gone_still_finishes_and_records_everything() {
    let project = Project::repo();
    let run = Run::of(&project.dir, "dev");
    let port = format!("port={}", free_port());
    let (code, stderr, _) = with_stdout_closed_after(&project, &["up", "dev", "--yes", "--var", &port], 0);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(run.services("dev/web@").len(), 1, "the run went on to the end");
    let plan = phoenix(&project.dir, &["plan", "dev", "--detailed-exitcode", "--var", &port]);
    assert_eq!(plan.code, 0, "state holds everything:\n{}{}", plan.stdout, plan.stderr);
    let down = phoenix(&project.dir, &["down", "dev", "--yes", "--var", &port]);
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
}

/// `phoenix up … | tail`, then Ctrl-C: the terminal's SIGINT ends `tail` and
/// interrupts `up`, whose next lines meet a closed pipe. It must finish what is
/// in flight and exit 130, quietly.
#[test]
fn an_interrupted_apply_whose_reader_died_exits_130_without_a_panic() {
    let project = Project::empty();
    project.write("environments/slow.toml", "template = \"slow\"\n[providers.metal]\n");
    project.write(
        "templates/slow.toml.j2",
        "[resource.first]\ntype = \"metal.exec\"\ncommand = \"sleep 2; echo first\"\n\n\
         [resource.second]\ntype = \"metal.exec\"\ncommand = \"echo second\"\ndepends_on = [\"first\"]\n",
    );
    let _run = Run::of(&project.dir, "slow");
    let mut child = command(&project.dir, &["up", "slow", "--yes"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    // Until the apply has started (its signal handler is in place).
    while !seen.contains("first: creating") {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "no apply started:\n{seen}");
        seen.push_str(&line);
    }
    drop(reader);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // What was in flight was recorded: the next run only has `second` left to do.
    let plan = phoenix(&project.dir, &["--json", "plan", "slow"]);
    let changes = plan.event("plan").unwrap()["plan"]["changes"].clone();
    let todo: Vec<_> = changes.as_array().unwrap().iter().filter(|c| c["action"] != "no_op").map(|c| c["addr"].clone()).collect();
    assert_eq!(todo, vec![serde_json::json!("second")], "{}", plan.stdout);
}

/// A failing run's stderr, with colour forced on (CLICOLOR_FORCE) as a
/// terminal would have it, and then switched off by the flag or NO_COLOR.
#[test]
fn no_color_and_the_no_color_flag_remove_every_escape_from_a_failing_run() {
    let project = Project::copy_of(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/bad-input/dangling-reference"));
    let run = |flag: Option<&str>, no_color: bool| {
        let mut c = command(&project.dir, &["validate", "bad"]);
        c.env_remove("NO_COLOR").env("CLICOLOR_FORCE", "1");
        if let Some(f) = flag {
            c.arg(f);
        }
        if no_color {
            c.env("NO_COLOR", "1");
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let coloured = run(None, false);
    assert!(coloured.contains('\x1b'), "colour is forced on, so the check below means something:\n{coloured}");
    for (flag, env) in [(Some("--no-color"), false), (None, true)] {
        let plain = run(flag, env);
        assert!(plain.contains("nope"), "{plain}");
        assert!(!plain.contains('\x1b'), "an escape with {flag:?}, NO_COLOR={env}:\n{plain:?}");
    }
}

/// Lines of an apply log as `addr: text`, without their timestamps (which each line must have).
fn log_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| {
            let (ts, rest) = l.split_once(' ')?;
            let stamped = ts.len() == 12
                && ts.chars().enumerate().all(|(i, c)| {
                    if [2, 5].contains(&i) {
                        c == ':'
                    } else if i == 8 {
                        c == '.'
                    } else {
                        c.is_ascii_digit()
                    }
                });
            stamped.then(|| rest.to_string())
        })
        .collect()
}

#[test]
fn off_a_terminal_each_operation_leaves_timestamped_lines_with_its_time_and_id() {
    let project = Project::repo();
    let _run = Run::of(&project.dir, "dev");
    let port = format!("port={}", free_port());
    let up = phoenix(&project.dir, &["up", "dev", "--yes", "--var", &port]);
    assert_eq!(up.code, 0, "{}{}", up.stdout, up.stderr);
    let lines = log_lines(&up.stdout);
    let line = |prefix: &str| {
        lines.iter().find(|l| l.starts_with(prefix)).cloned().unwrap_or_else(|| panic!("no `{prefix}` line in\n{}", up.stdout))
    };
    assert_eq!(line("web: creating"), "web: creating (metal.service)");
    // The service is named by its process id, taken from what the provider returned.
    let web = line("web: created in ");
    let pid = web.rsplit_once("[pid ").and_then(|(_, p)| p.strip_suffix(']')).unwrap_or_else(|| panic!("no id: {web}"));
    assert!(pid.parse::<u32>().is_ok(), "{web}");
    // A file has no id: its line ends with its time.
    let index = line("index: created in ");
    assert!(index.ends_with('s') && index["index: created in ".len()..index.len() - 1].parse::<f64>().is_ok(), "{index}");
    // Command output is streamed under its resource at the default level.
    assert!(line("preflight: Python 3").starts_with("preflight: Python 3."), "{}", up.stdout);
    // Nothing but Phoenix's own lines: no library log, no escape.
    assert!(!up.stdout.contains('\x1b') && !up.stderr.contains('\x1b'), "{}{}", up.stdout, up.stderr);

    let down = phoenix(&project.dir, &["down", "dev", "--yes", "--var", &port]);
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
    let lines = log_lines(&down.stdout);
    assert!(lines.contains(&format!("web: destroying (metal.service)")), "{}", down.stdout);
    assert!(lines.iter().any(|l| l.starts_with("web: destroyed in ") && l.ends_with(&format!("[pid {pid}]"))), "{}", down.stdout);
}

#[test]
fn with_json_a_finished_event_carries_the_id() {
    let project = Project::repo();
    let _run = Run::of(&project.dir, "dev");
    let port = format!("port={}", free_port());
    let up = phoenix(&project.dir, &["--json", "up", "dev", "--yes", "--var", &port]);
    assert_eq!(up.code, 0, "{}{}", up.stdout, up.stderr);
    let web = up.events().into_iter().find(|e| e["type"] == "operation_finished" && e["addr"] == "web").expect("web finished");
    assert!(web["id"].as_str().is_some_and(|id| id.starts_with("pid ")), "{web}");
    let index = up.events().into_iter().find(|e| e["type"] == "operation_finished" && e["addr"] == "index").unwrap();
    assert!(index.get("id").is_none(), "{index}");
    let down = phoenix(&project.dir, &["down", "dev", "--yes", "--var", &port]);
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
}

/// (node, label) pairs and (from, to) edges, as layout-rs's Graphviz parser reads the DOT.
fn parse_dot(dot: &str) -> (Vec<(String, String)>, Vec<(String, String)>) {
    use layout::gv::parser::ast::Stmt;
    let graph = layout::gv::DotParser::new(dot).process().unwrap_or_else(|e| panic!("DOT does not parse: {e}\n{dot}"));
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for stmt in &graph.list.list {
        match stmt {
            Stmt::Node(n) => {
                let label = n.list.iter().find(|(k, _)| k == "label").map(|(_, v)| v.clone()).unwrap_or_default();
                nodes.push((n.id.name.clone(), label));
            }
            Stmt::Edge(e) => edges.push((e.from.name.clone(), e.to[0].0.name.clone())),
            _ => {}
        }
    }
    (nodes, edges)
}

#[test]
fn graph_dot_labels_are_address_and_type_on_two_lines() {
    let project = Project::repo();
    let out = phoenix(&project.dir, &["graph", "dev"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("digraph \"dev\" {"), "{}", out.stdout);
    let (nodes, edges) = parse_dot(&out.stdout);
    assert_eq!(nodes.len(), 7, "{nodes:?}");
    assert!(nodes.contains(&("web".into(), "web\nmetal.service".into())), "{nodes:?}");
    assert!(nodes.iter().all(|(_, label)| !label.contains('\\')), "a label shows a backslash: {nodes:?}");
    assert!(edges.contains(&("web".into(), "health-page".into())), "{edges:?}");
    assert!(edges.contains(&("announce".into(), "web-ready".into())), "{edges:?}");
}

#[test]
fn graph_mermaid_of_dev() {
    let project = Project::repo();
    let out = phoenix(&project.dir, &["graph", "dev", "--format", "mermaid"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "flowchart RL\n  \
         n0[\"announce<br/>metal.exec\"]\n  \
         n1[\"health-page<br/>metal.file\"]\n  \
         n2[\"index<br/>metal.file\"]\n  \
         n3[\"preflight<br/>metal.exec\"]\n  \
         n4[\"site<br/>data\"]\n  \
         n5[\"web<br/>metal.service\"]\n  \
         n6[\"web-ready<br/>metal.http_check\"]\n  \
         n0 --> n2\n  \
         n0 --> n5\n  \
         n0 --> n6\n  \
         n1 --> n3\n  \
         n2 --> n3\n  \
         n5 --> n1\n  \
         n6 --> n5\n"
    );
}

#[test]
fn graph_svg_is_well_formed_with_one_node_per_resource() {
    let project = Project::repo();
    let out = phoenix(&project.dir, &["graph", "dev", "--format", "svg"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc = roxmltree::Document::parse(&out.stdout).unwrap_or_else(|e| panic!("not XML: {e}\n{}", out.stdout));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let mut addrs: Vec<&str> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "g" && n.attribute("class") == Some("node"))
        .filter_map(|n| n.attribute("data-addr"))
        .collect();
    addrs.sort_unstable();
    assert_eq!(addrs, ["announce", "health-page", "index", "preflight", "site", "web", "web-ready"]);
    let texts: Vec<&str> = doc.descendants().filter(|n| n.tag_name().name() == "tspan").filter_map(|n| n.text()).collect();
    assert!(texts.contains(&"metal.http_check"), "{texts:?}");
}

#[test]
fn graph_with_a_plan_colours_by_action() {
    let project = Project::repo();
    let _run = Run::of(&project.dir, "dev");
    let port = format!("port={}", free_port());
    // Nothing exists yet: everything is to be created.
    let out = phoenix(&project.dir, &["graph", "dev", "--plan", "--var", &port]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (nodes, _) = parse_dot(&out.stdout);
    assert!(nodes.iter().all(|(_, l)| l.ends_with("\n(create)")), "{nodes:?}");
    assert!(out.stdout.contains("fillcolor = \"#dcfce7\""), "{}", out.stdout);

    let up = phoenix(&project.dir, &["up", "dev", "--yes", "--var", &port]);
    assert_eq!(up.code, 0, "{}{}", up.stdout, up.stderr);
    let out = phoenix(&project.dir, &["graph", "dev", "--plan", "--format", "mermaid", "--var", &port, "--var", "greeting=Hi"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("n2[\"index<br/>metal.file<br/>(update)\"]"), "{}", out.stdout);
    assert!(out.stdout.contains("classDef update fill:#fef9c3,stroke:#a16207\n  class n2 update\n"), "{}", out.stdout);
    assert!(out.stdout.contains("n5[\"web<br/>metal.service<br/>(no change)\"]"), "{}", out.stdout);
    let down = phoenix(&project.dir, &["down", "dev", "--yes", "--var", &port]);
    assert_eq!(down.code, 0, "{}{}", down.stdout, down.stderr);
}
