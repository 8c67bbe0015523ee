//! Crash safety: SIGKILL `phoenix up` in the middle of a run of many
//! resources, run it again, and the environment is complete with no duplicate
//! service and valid state.

mod support;

use std::time::Duration;

use support::{Project, Run, phoenix, wait_until};

const SERVICES: usize = 24;

fn crash_project() -> Project {
    let project = Project::empty();
    project.write("environments/crash.toml", "template = \"crash\"\n\n[vars]\nservices = 24\n");
    // Each service waits on its own short hook, so a run takes a few seconds and
    // is killed with some services recorded, some started but unrecorded, some not started.
    project.write(
        "templates/crash.toml.j2",
        r#"{% for i in range(services) %}
[resource.hook-{{ i }}]
type = "metal.exec"
command = "sleep 0.{{ 1 + i % 3 }}"

[resource.svc-{{ i }}]
type = "metal.service"
command = "exec sleep 600"
depends_on = ["hook-{{ i }}"]

[resource.note-{{ i }}]
type = "data"
input = "${svc-{{ i }}.pid}"
{% endfor %}
"#,
    );
    project
}

#[test]
fn sigkill_mid_run_then_rerun_converges_without_duplicates() {
    let project = crash_project();
    let run = Run::of(&project.dir, "crash");
    let journal = project.dir.join(".phoenix/state/crash/journal.log");
    let mut child = support::command(&project.dir, &["up", "crash", "--yes", "--parallelism", "4"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once some services are running but the run is far from done (its
    // journal names the lineage from the first record, before any service starts).
    let started = wait_until(30, || run.services("crash/").len() >= 5);
    assert!(started, "services never started");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = run.services("crash/").len();
    assert!(before < SERVICES, "the run finished before it was killed ({before} services)");
    assert!(journal.exists(), "a killed run leaves its journal");

    let rerun = phoenix(&project.dir, &["up", "crash", "--yes", "--parallelism", "8"]);
    assert_eq!(rerun.code, 0, "rerun failed:\n{}\n{}", rerun.stdout, rerun.stderr);

    // Complete, and exactly one running service per declared one.
    let procs = run.services("crash/");
    let mut owners: Vec<String> = procs.iter().map(|(_, o)| o.split('@').next().unwrap().to_string()).collect();
    owners.sort();
    let mut unique = owners.clone();
    unique.dedup();
    assert_eq!(owners, unique, "duplicate services: {procs:?}");
    assert_eq!(owners.len(), SERVICES, "{procs:?}");

    // State is valid and complete: every resource recorded, nothing pending, plan clean.
    let status = phoenix(&project.dir, &["--json", "status", "crash"]);
    let doc = status.event("status").unwrap();
    assert_eq!(doc["resources"].as_array().unwrap().len(), SERVICES * 3);
    assert!(doc["pending"].as_array().unwrap().is_empty());
    let plan = phoenix(&project.dir, &["plan", "crash", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.stdout);

    let down = phoenix(&project.dir, &["down", "crash", "--yes"]);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert!(wait_until(10, || run.processes("crash/").is_empty()), "{:?}", run.processes("crash/"));
    std::thread::sleep(Duration::from_millis(10));
}
