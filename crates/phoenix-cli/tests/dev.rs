//! The out-of-the-box `dev` environment, end to end through the binary:
//! up -> health check passes -> plan is clean -> a variable change plans
//! exactly that change -> down leaves nothing on disk or in the process table.
//! All of it beside another `dev` of this machine (a developer's own, another
//! run of this suite), which it neither counts, nor stops, nor cleans up.

mod support;

use support::{Project, Run, free_port, http_get, phoenix, wait_until};

/// Another `phoenix up dev` on this machine, in its own directory on its own
/// port: stopped by the test that started it, and only by that test.
struct Neighbour {
    // Before `project`: fields drop in order, and the reaper reads the state in the project.
    run: Run,
    project: Project,
    port_var: String,
    port: u16,
}

impl Neighbour {
    fn up() -> Self {
        let project = Project::repo();
        let run = Run::of(&project.dir, "dev");
        let port = free_port();
        let n = Neighbour { run, project, port_var: format!("port={port}"), port };
        let up = phoenix(&n.project.dir, &["up", "dev", "--yes", "--var", &n.port_var]);
        assert_eq!(up.code, 0, "the neighbour's up failed:\n{}\n{}", up.stdout, up.stderr);
        n
    }

    fn down(&self) {
        let down = phoenix(&self.project.dir, &["down", "dev", "--yes", "--var", &self.port_var]);
        assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
        assert!(wait_until(5, || self.run.processes("dev/").is_empty()), "{:?}", self.run.processes("dev/"));
        assert!(http_get(self.port, "/").is_none(), "the neighbour's port still answers");
    }
}

#[test]
fn dev_comes_up_changes_and_goes_down_without_a_trace_beside_another_dev() {
    let neighbour = Neighbour::up();
    let neighbour_server = neighbour.run.services("dev/web@");
    assert_eq!(neighbour_server.len(), 1, "{neighbour_server:?}");

    let project = Project::repo();
    let run = Run::of(&project.dir, "dev");
    let port = free_port().to_string();
    let port_var = format!("port={port}");
    let port: u16 = port.parse().unwrap();

    // up
    let up = phoenix(&project.dir, &["up", "dev", "--yes", "--var", &port_var]);
    assert_eq!(up.code, 0, "up failed:\n{}\n{}", up.stdout, up.stderr);
    assert!(up.stdout.contains("Apply complete"), "{}", up.stdout);
    let (status, body) = http_get(port, "/").expect("the site answers");
    assert_eq!(status, 200);
    assert!(body.contains("Hello from Phoenix"), "{body}");
    assert_eq!(http_get(port, "/healthz").unwrap().0, 200);
    // The post-deployment hook ran after the health check.
    let deployed = project.files_under(".phoenix/env/dev/work");
    assert!(deployed.contains(&"deployed.txt".to_string()), "{deployed:?}");
    // Exactly one supervised server of its own; the neighbour's is another state's.
    assert_ne!(run.lineage(), neighbour.run.lineage(), "two checkouts, two lineages");
    let servers = run.services("dev/web@");
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert!(!servers.iter().any(|s| neighbour_server.contains(s)), "{servers:?} {neighbour_server:?}");
    // Outputs are recorded.
    let out = phoenix(&project.dir, &["output", "dev", "url", "--var", &port_var]);
    assert_eq!(out.stdout.trim(), format!("http://127.0.0.1:{port}/"));

    // A second plan finds nothing to do.
    let plan = phoenix(&project.dir, &["plan", "dev", "--detailed-exitcode", "--var", &port_var]);
    assert_eq!(plan.code, 0, "plan should be clean:\n{}\n{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("No changes."), "{}", plan.stdout);

    // Changing a variable plans exactly that change.
    let plan =
        phoenix(&project.dir, &["--json", "plan", "dev", "--detailed-exitcode", "--var", &port_var, "--var", "greeting=Risen again"]);
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let doc = plan.event("plan").unwrap();
    let changed: Vec<_> = doc["plan"]["changes"].as_array().unwrap().iter().filter(|c| c["action"] != "no_op").collect();
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert_eq!(changed[0]["addr"], "index");
    assert_eq!(changed[0]["action"], "update");
    let attrs: Vec<_> = changed[0]["changes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(attrs, vec!["content"]);

    let up = phoenix(&project.dir, &["up", "dev", "--yes", "--var", &port_var, "--var", "greeting=Risen again"]);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert!(http_get(port, "/").unwrap().1.contains("Risen again"));
    assert_eq!(run.services("dev/web@").len(), 1, "the server was not duplicated");

    // Without --yes and without a terminal, up refuses.
    let refused = phoenix(&project.dir, &["up", "dev", "--var", &port_var]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);

    // down removes every trace of its own.
    let down = phoenix(&project.dir, &["down", "dev", "--yes", "--var", &port_var]);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert!(wait_until(5, || run.processes("dev/").is_empty()), "processes left: {:?}", run.processes("dev/"));
    assert!(http_get(port, "/").is_none(), "the port still answers");
    let left = project.files_under(".phoenix/env");
    assert!(left.is_empty(), "files left behind: {left:?}");
    let status = phoenix(&project.dir, &["--json", "status", "dev", "--var", &port_var]);
    assert_eq!(status.event("status").unwrap()["resources"].as_array().unwrap().len(), 0);

    // The neighbour lived through all of it: the same server, still serving its page.
    assert_eq!(neighbour.run.services("dev/web@"), neighbour_server, "the neighbour's server was touched");
    let (status, body) = http_get(neighbour.port, "/").expect("the neighbour still answers");
    assert_eq!(status, 200);
    assert!(body.contains("Hello from Phoenix"), "{body}");
    assert!(!neighbour.project.files_under(".phoenix/env/dev/work").is_empty(), "the neighbour's files are there");
    neighbour.down();
}

#[test]
fn a_second_run_is_locked_out_while_one_holds_the_state() {
    let project = Project::repo();
    // A template whose first resource takes a while, so the first run holds the lock.
    project.write("environments/slow.toml", "template = \"slow\"\n");
    project.write("templates/slow.toml.j2", "[resource.wait]\ntype = \"metal.exec\"\ncommand = \"sleep 3\"\n");
    let mut first = support::command(&project.dir, &["up", "slow", "--yes"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    let lock = project.dir.join(".phoenix/state/slow/lock");
    assert!(wait_until(10, || std::fs::read_to_string(&lock).map(|s| s.contains("pid")).unwrap_or(false)));
    let second = phoenix(&project.dir, &["up", "slow", "--yes"]);
    assert_eq!(second.code, 4, "{}\n{}", second.stdout, second.stderr);
    assert!(second.stderr.contains("locked") || second.stderr.contains("held by"), "{}", second.stderr);
    assert!(first.wait().unwrap().success());
    let third = phoenix(&project.dir, &["down", "slow", "--yes"]);
    assert_eq!(third.code, 0, "{}", third.stderr);
}
