//! The `onprem` environment end to end through the `phoenix` binary, against
//! real peers on loopback: a sushy-tools Redfish emulator for the two BMCs and
//! an OpenSSH `sshd` for the two machines (each with its own root).
//! up -> powered on with the boot override, files and services on the hosts,
//! health check passes -> plan clean -> a variable change updates exactly one
//! file and restarts its service -> down -> everything gone, released, off.
//! Then the failure paths through the binary: a command failing on a machine
//! (stderr tail, dependents skipped) and a wrong host key.

#[path = "../../phoenix-provider-metal/tests/peers/mod.rs"]
mod peers;
mod support;

use std::path::{Path, PathBuf};

use peers::{Sshd, Sushy, System};
use support::{Output, Project, Run, free_port, http_get, wait_until};

const BACKEND: System = System { name: "rack-a-1", uuid: "9d4f2a10-6c1b-4e8e-a3f7-2b5c8d9e0a01" };
const FRONTEND: System = System { name: "rack-a-2", uuid: "9d4f2a10-6c1b-4e8e-a3f7-2b5c8d9e0a02" };
const PASSWORD_ENV: &str = "ONPREM_BMC_PASSWORD";

struct Lab {
    project: Project,
    sshd: Sshd,
    sushy: Sushy,
    vars: Vec<String>,
}

impl Lab {
    fn root(&self, machine: &str) -> PathBuf {
        self.sshd.dir.path().join(machine)
    }

    /// `phoenix ARGS --var ...` with the BMC password in the environment, no stdin.
    fn phoenix(&self, args: &[&str], extra_vars: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        for v in self.vars.iter().map(String::as_str).chain(extra_vars.iter().copied()) {
            all.push("--var");
            all.push(v);
        }
        let out = support::command(&self.project.dir, &all).env(PASSWORD_ENV, &self.sushy.password).output().expect("phoenix runs");
        Output::of(&all, out)
    }
}

/// The repository's onprem environment with its inventory pointed at this lab.
fn lab() -> Lab {
    let project = Project::repo();
    let sshd = Sshd::start();
    let sushy = Sushy::start(&[BACKEND, FRONTEND]);
    let env_path = project.dir.join("environments/onprem.toml");
    let text = std::fs::read_to_string(&env_path).unwrap();
    let head = &text[..text.find("[providers.metal]").expect("onprem.toml has a [providers.metal] block")];
    let known_hosts = sshd.known_hosts();
    let machine = |sys: &System, role: &str| {
        format!(
            "[providers.metal.machines.{name}]\naddress = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\nkey = \"{key}\"\n\
             labels = {{ rack = \"a\", role = \"{role}\" }}\nroot = \"{root}\"\npower_off_on_release = true\n\
             wipe = [\"echo wiped > {dir}/{name}.wiped\"]\n\
             bmc = {{ url = \"{url}\", system = \"{uuid}\", username = \"{bmc_user}\", password_env = \"{PASSWORD_ENV}\" }}\n\n",
            name = sys.name,
            port = sshd.port,
            user = sshd.user,
            key = sshd.key.display(),
            root = sshd.dir.path().join(sys.name).display(),
            dir = sshd.dir.path().display(),
            url = sushy.url(),
            uuid = sys.uuid,
            bmc_user = sushy.username,
        )
    };
    let providers = format!(
        "[providers.metal]\nknown_hosts = \"{}\"\n\n{}{}",
        known_hosts.display(),
        machine(&BACKEND, "backend"),
        machine(&FRONTEND, "frontend")
    );
    std::fs::write(&env_path, format!("{head}{providers}")).unwrap();
    let vars = vec![format!("backend_port={}", free_port()), format!("frontend_port={}", free_port())];
    Lab { project, sshd, sushy, vars }
}

fn port_of(lab: &Lab, var: &str) -> u16 {
    lab.vars.iter().find_map(|v| v.strip_prefix(&format!("{var}="))).unwrap().parse().unwrap()
}

fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            if e.path().is_dir() {
                walk(root, &e.path(), out);
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn onprem_comes_up_on_claimed_machines_changes_one_file_and_goes_down() {
    let lab = lab();
    let run = Run::of(&lab.project.dir, "onprem");
    let (backend_port, frontend_port) = (port_of(&lab, "backend_port"), port_of(&lab, "frontend_port"));

    let v = lab.phoenix(&["validate", "onprem"], &[]);
    assert_eq!(v.code, 0, "{}\n{}", v.stdout, v.stderr);

    // up, re-imaging both machines from PXE on the way.
    let up = lab.phoenix(&["up", "onprem", "--yes"], &["reimage_from=Pxe"]);
    assert_eq!(up.code, 0, "up failed:\n{}\n{}\nsshd log:\n{}", up.stdout, up.stderr, lab.sshd.log());
    assert!(!up.stdout.contains(&lab.sushy.password) && !up.stderr.contains(&lab.sushy.password), "the BMC password never shows");
    for sys in [&BACKEND, &FRONTEND] {
        assert_eq!(lab.sushy.system_field(sys.uuid, "PowerState").as_deref(), Some("On"), "{} is powered on", sys.name);
        assert_eq!(lab.sushy.system_field(sys.uuid, "BootSourceOverrideTarget").as_deref(), Some("Pxe"));
        assert!(lab.root(sys.name).join(".phoenix-claim.json").exists(), "{} is claimed", sys.name);
    }
    assert!(lab.root("rack-a-1").join("backend/status.json").exists());
    assert!(lab.root("rack-a-2").join("frontend/app.py").exists());
    assert_eq!(run.services("onprem/backend@").len(), 1);
    let frontend_pid = run.services("onprem/frontend@");
    assert_eq!(frontend_pid.len(), 1, "{frontend_pid:?}");
    let (status, body) = http_get(frontend_port, "/").expect("the frontend answers");
    assert_eq!(status, 200);
    assert!(body.contains("Hello from the rack") && body.contains("\"service\": \"backend\""), "{body}");
    assert_eq!(http_get(frontend_port, "/healthz").unwrap().0, 200);
    let url = lab.phoenix(&["output", "onprem", "url"], &["reimage_from=Pxe"]);
    assert_eq!(url.stdout.trim(), format!("http://127.0.0.1:{frontend_port}/"));
    // The state names the claims; the password is nowhere in it.
    let state = std::fs::read_to_string(lab.project.dir.join(".phoenix/state/onprem/state.json")).unwrap_or_default()
        + &std::fs::read_to_string(lab.project.dir.join(".phoenix/state/onprem/journal.log")).unwrap_or_default();
    assert!(state.contains("onprem/backend-box@"), "the claim is in state");
    assert!(!state.contains(&lab.sushy.password));

    // Nothing to do.
    let plan = lab.phoenix(&["plan", "onprem", "--detailed-exitcode"], &["reimage_from=Pxe"]);
    assert_eq!(plan.code, 0, "plan should be clean:\n{}\n{}", plan.stdout, plan.stderr);

    // A new greeting: that file, and the service that reads it, nothing else.
    let change = ["reimage_from=Pxe", "greeting=Risen in the rack"];
    let plan = lab.phoenix(&["--json", "plan", "onprem", "--detailed-exitcode"], &change);
    assert_eq!(plan.code, 2, "{}\n{}", plan.stdout, plan.stderr);
    let doc = plan.event("plan").unwrap();
    let mut changed: Vec<(String, String)> = doc["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| (c["addr"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect();
    changed.sort();
    assert_eq!(changed, vec![("frontend".into(), "update".into()), ("frontend-config".into(), "update".into())]);
    let up = lab.phoenix(&["up", "onprem", "--yes"], &change);
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    assert!(http_get(frontend_port, "/").unwrap().1.contains("Risen in the rack"));
    let restarted = run.services("onprem/frontend@");
    assert_eq!(restarted.len(), 1);
    assert_ne!(restarted, frontend_pid, "the frontend was restarted");
    assert_eq!(run.services("onprem/backend@").len(), 1, "the backend kept running");
    let plan = lab.phoenix(&["plan", "onprem", "--detailed-exitcode"], &change);
    assert_eq!(plan.code, 0, "clean again:\n{}\n{}", plan.stdout, plan.stderr);

    // down: services stopped, files removed, machines wiped, released and off.
    let down = lab.phoenix(&["down", "onprem", "--yes"], &change);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert!(wait_until(10, || run.processes("onprem/").is_empty()), "{:?}", run.processes("onprem/"));
    assert!(http_get(backend_port, "/").is_none() && http_get(frontend_port, "/").is_none());
    for sys in [&BACKEND, &FRONTEND] {
        let root = lab.root(sys.name);
        assert!(!root.exists(), "{} left: {:?}", sys.name, files(&root));
        assert!(lab.sshd.dir.path().join(format!("{}.wiped", sys.name)).exists(), "{} was wiped", sys.name);
        assert_eq!(lab.sushy.system_field(sys.uuid, "PowerState").as_deref(), Some("Off"), "{} is powered off", sys.name);
    }
}

/// A machine without a BMC for the failure paths: reached over SSH only.
fn ssh_only_project(sshd: &Sshd, known_hosts: &Path, template: &str) -> Project {
    let project = Project::empty();
    project.write(
        "environments/fail.toml",
        &format!(
            "template = \"fail\"\n[providers.metal]\nknown_hosts = \"{}\"\n[providers.metal.machines.box]\naddress = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\nkey = \"{}\"\nroot = \"{}\"\n",
            known_hosts.display(),
            sshd.port,
            sshd.user,
            sshd.key.display(),
            sshd.dir.path().join("box").display()
        ),
    );
    project.write("templates/fail.toml.j2", template);
    project
}

#[test]
fn failures_on_a_machine_show_their_cause_and_skip_dependents() {
    let sshd = Sshd::start();
    let template = "[resource.box]\ntype = \"metal.machine\"\n\n\
        [resource.migrate]\ntype = \"metal.exec\"\nhost = \"${box.name}\"\ncommand = \"echo migrating; echo 'relation users does not exist' >&2; exit 4\"\n\n\
        [resource.after]\ntype = \"metal.file\"\nhost = \"${box.name}\"\npath = \"after.txt\"\ncontent = \"x\"\ndepends_on = [\"migrate\"]\n";

    // A command exits non-zero: its stderr tail is in the error, what depends on it is skipped.
    let project = ssh_only_project(&sshd, &sshd.known_hosts(), template);
    let up = support::phoenix(&project.dir, &["up", "fail", "--yes"]);
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    let all = format!("{}\n{}", up.stdout, up.stderr);
    assert!(all.contains("exit code 4") && all.contains("relation users does not exist"), "{all}");
    assert!(all.contains("after: skipped"), "{all}");
    assert!(!sshd.dir.path().join("box/after.txt").exists());
    // down releases the machine it did claim.
    let down = support::phoenix(&project.dir, &["down", "fail", "--yes"]);
    assert_eq!(down.code, 0, "{}\n{}", down.stdout, down.stderr);
    assert!(!sshd.dir.path().join("box/.phoenix-claim.json").exists());

    // A wrong host key: refused before anything is sent, with what to do.
    let project = ssh_only_project(&sshd, &sshd.wrong_known_hosts(), template);
    let up = support::phoenix(&project.dir, &["up", "fail", "--yes"]);
    assert_eq!(up.code, 1, "{}\n{}", up.stdout, up.stderr);
    let all = format!("{}\n{}", up.stdout, up.stderr);
    assert!(all.contains("host key verification failed for box") && all.contains("remove that line"), "{all}");
    assert!(!sshd.dir.path().join("box").exists(), "nothing was written");
}

#[test]
fn onprem_validates_offline_and_refuses_secrets_in_the_file() {
    // Nothing listens anywhere: validation reads the inventory and calls nothing.
    let project = Project::repo();
    let v = support::phoenix(&project.dir, &["validate", "onprem"]);
    assert_eq!(v.code, 0, "{}\n{}", v.stdout, v.stderr);
    assert!(!project.dir.join(".phoenix/state/onprem").exists(), "validate wrote no state");

    // A password in clear is refused when the provider block is read (plan,
    // up), before any call, without repeating it.
    let env_path = project.dir.join("environments/onprem.toml");
    let text = std::fs::read_to_string(&env_path).unwrap();
    std::fs::write(&env_path, text.replacen("password_env = \"ONPREM_BMC_PASSWORD\"", "password = \"hunter2\"", 1)).unwrap();
    let v = support::phoenix(&project.dir, &["plan", "onprem"]);
    assert_eq!(v.code, 3, "{}\n{}", v.stdout, v.stderr);
    assert!(v.stderr.contains("password_env") && !v.stderr.contains("hunter2"), "{}", v.stderr);
}
