//! Secrets: a canary value given through `env()` to sensitive attributes never
//! shows up in any artifact — state, journal, history, saved plans, logs at
//! `-vv`, `--json` events, error messages — and state files are private (0600).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::{Output, Project};

const CANARY: &str = "canary-7f3a9c-DO-NOT-LEAK";

fn project() -> Project {
    let project = Project::empty();
    project.write("environments/vault.toml", "template = \"vault\"\n\n[vars]\nhold_secs = 0\n");
    project.write(
        "templates/vault.toml.j2",
        r#"[resource.vault]
type = "data"
secret = "{{ env("PHX_CANARY") }}"
input = "public"

[resource.hook]
type = "metal.exec"
# Uses the secret without printing it.
command = "test -n \"$TOKEN\" && echo token-is-set"
environment = { TOKEN = "{{ env("PHX_CANARY") }}" }

[resource.hold]
type = "metal.exec"
command = "sleep {{ hold_secs }}"
depends_on = ["vault", "hook"]

[output.token]
value = "${vault.secret}"
sensitive = true

[output.public]
value = "${vault.output}"
"#,
    );
    project
}

fn run(project: &Project, args: &[&str]) -> Output {
    run_with(project, args, CANARY)
}

fn run_with(project: &Project, args: &[&str], canary: &str) -> Output {
    let out = support::command(&project.dir, args).env("PHX_CANARY", canary).output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every file under `dir`, with its bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_canary_secret_never_reaches_state_plans_logs_events_or_errors() {
    let project = project();
    let mut checked = 0;
    let mut outputs: Vec<(String, Output)> = Vec::new();
    let changed = format!("{CANARY}-2");
    let mut secret = CANARY;
    let mut step = |name: &str, args: &[&str], want: i32, secret: &str| {
        let o = run_with(&project, args, secret);
        assert_eq!(o.code, want, "{name}: {}\n{}", o.stdout, o.stderr);
        outputs.push((name.to_string(), o));
    };
    step("validate", &["-vv", "validate", "vault"], 0, secret);
    step("render", &["-vv", "render", "vault"], 0, secret);
    step("render --json", &["--json", "render", "vault"], 0, secret);
    let plan_file = project.dir.join("vault.plan").display().to_string();
    step("plan --out", &["-vv", "plan", "vault", "--out", &plan_file], 0, secret);
    step("plan --json", &["--json", "-vv", "plan", "vault"], 0, secret);
    step("up --plan", &["-vv", "up", "vault", "--yes", "--plan", &plan_file], 0, secret);
    step("status --json", &["--json", "status", "vault"], 0, secret);
    step("output", &["output", "vault"], 0, secret);
    step("output --json", &["--json", "output", "vault"], 0, secret);
    step("state show", &["state", "show", "vault", "vault"], 0, secret);
    step("state show --json", &["--json", "state", "show", "vault", "hook"], 0, secret);
    // A change of the secret (update in place), shown and applied with every event.
    secret = &changed;
    step("up --json (changed secret)", &["--json", "-vv", "up", "vault", "--yes"], 0, secret);
    // Errors: a sensitive value of the wrong type, and a failing command that was given the secret.
    project.write(
        "templates/vault.toml.j2",
        &std::fs::read_to_string(project.dir.join("templates/vault.toml.j2"))
            .unwrap()
            .replace(r#"secret = "{{ env("PHX_CANARY") }}""#, r#"secret = ["{{ env("PHX_CANARY") }}"]"#),
    );
    step("validate (bad type)", &["-vv", "validate", "vault"], 3, secret);
    step("up --json (bad type)", &["--json", "-vv", "up", "vault", "--yes"], 3, secret);
    project.write("templates/vault.toml.j2", &project_template_with_failing_hook());
    step("up (failing hook)", &["-vv", "up", "vault", "--yes"], 1, secret);
    // --keep-history: the state and its history stay, to be searched for the secret below.
    step("down", &["-vv", "down", "vault", "--yes", "--keep-history"], 0, secret);

    for (name, o) in &outputs {
        for (stream, text) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            assert!(!text.contains(CANARY), "`phoenix {name}` printed the secret on {stream}:\n{text}");
            checked += 1;
        }
    }
    let artifacts = files(&project.dir.join(".phoenix"));
    assert!(artifacts.iter().any(|(p, _)| p.ends_with("state.json")), "{artifacts:?}");
    for (path, bytes) in artifacts.iter().chain(files(&project.dir).iter().filter(|(p, _)| p.ends_with("vault.plan"))) {
        assert!(!contains(bytes, CANARY), "{} holds the secret", path.display());
        checked += 1;
    }
    // The plan is saved, and still holds no secret; it was checked above.
    assert!(project.dir.join("vault.plan").exists());
    eprintln!("secrets: {checked} artifacts and output streams checked, none holds the canary");
}

fn project_template_with_failing_hook() -> String {
    r#"[resource.vault]
type = "data"
secret = "{{ env("PHX_CANARY") }}"
input = "public"

[resource.broken]
type = "metal.exec"
command = "exit 7"
environment = { TOKEN = "{{ env("PHX_CANARY") }}" }
"#
    .into()
}

#[test]
fn state_journal_and_history_are_private_files_even_mid_run() {
    let project = project();
    project.write("environments/vault.toml", "template = \"vault\"\n\n[vars]\nhold_secs = 30\n");
    let state_dir = project.dir.join(".phoenix/state/vault");
    let mut child = support::command(&project.dir, &["up", "vault", "--yes"])
        .env("PHX_CANARY", CANARY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed while `hold` runs: the journal holds the secret resources' records.
    let journal = state_dir.join("journal.log");
    let recorded = support::wait_until(30, || std::fs::read(&journal).is_ok_and(|b| contains(&b, "\"hook\"") && contains(&b, "\"vault\"")));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(recorded, "the journal never recorded the secret resources");
    let bytes = std::fs::read(&journal).unwrap();
    assert!(!contains(&bytes, CANARY), "the journal holds the secret");
    assert_eq!(mode(&journal), 0o600);
    assert_eq!(mode(&state_dir), 0o700);

    project.write("environments/vault.toml", "template = \"vault\"\n\n[vars]\nhold_secs = 0\n");
    assert_eq!(run(&project, &["up", "vault", "--yes"]).code, 0);
    assert_eq!(run(&project, &["up", "vault", "--yes", "--var", "hold_secs=1"]).code, 0);
    assert_eq!(mode(&state_dir.join("state.json")), 0o600);
    let history: Vec<_> = files(&state_dir.join("history"));
    assert!(!history.is_empty());
    for (p, bytes) in &history {
        assert_eq!(mode(p), 0o600, "{}", p.display());
        assert!(!contains(bytes, CANARY), "{} holds the secret", p.display());
    }
}

/// Lines of a file that are not sealed (a journal line is `<crc> <payload>`).
fn plain_lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.is_empty() && !l.split_once(' ').map_or(l.to_string(), |(_, p)| p.to_string()).starts_with("phoenix-sealed:v1:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn encrypted_state_never_reaches_disk_in_clear_and_a_wrong_or_missing_key_is_refused() {
    const KEY: &str = "a long random state key for tests 0123";
    let project = project();
    project.write("environments/vault.toml", "template = \"vault\"\n\n[vars]\nhold_secs = 30\n");
    let state_dir = project.dir.join(".phoenix/state/vault");
    let with_key = |args: &[&str], key: Option<&str>| {
        let mut c = support::command(&project.dir, args);
        c.env("PHX_CANARY", CANARY);
        if let Some(k) = key {
            c.env("PHOENIX_STATE_KEY", k);
        }
        let out = c.output().unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };

    // Killed mid-run: every journal line is sealed.
    let mut child = support::command(&project.dir, &["up", "vault", "--yes"])
        .env("PHX_CANARY", CANARY)
        .env("PHOENIX_STATE_KEY", KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = state_dir.join("journal.log");
    let lines = support::wait_until(30, || std::fs::read(&journal).is_ok_and(|b| b.iter().filter(|c| **c == b'\n').count() >= 3));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(lines, "the journal never got records");
    let bytes = std::fs::read(&journal).unwrap();
    assert!(plain_lines(&bytes).is_empty(), "plain journal lines: {:?}", plain_lines(&bytes));
    assert!(!contains(&bytes, "vault") && !contains(&bytes, "lineage"), "names in clear in the journal");

    // Finished: state.json and history are sealed too.
    project.write("environments/vault.toml", "template = \"vault\"\n\n[vars]\nhold_secs = 0\n");
    let up = with_key(&["up", "vault", "--yes"], Some(KEY));
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let up = with_key(&["up", "vault", "--yes", "--var", "hold_secs=1"], Some(KEY));
    assert_eq!(up.code, 0, "{}\n{}", up.stdout, up.stderr);
    let on_disk = files(&state_dir);
    assert!(on_disk.iter().any(|(p, _)| p.starts_with(state_dir.join("history"))), "history kept");
    for (path, bytes) in &on_disk {
        if path.ends_with("lock") {
            continue; // who holds the lock: pid, host, operation; no state.
        }
        assert!(
            bytes.is_empty() || bytes.starts_with(b"phoenix-sealed:v1:") || plain_lines(bytes).is_empty(),
            "{} is in clear",
            path.display()
        );
        assert!(!contains(bytes, "\"resources\"") && !contains(bytes, "hold"), "{} is in clear", path.display());
    }
    let before: Vec<_> = files(&state_dir).into_iter().filter(|(p, _)| !p.ends_with("lock")).collect();

    // Without the key, or with another: a clear error, and nothing rewritten.
    for (key, says) in [(None, "PHOENIX_STATE_KEY is not set"), (Some("another long key, not the one used"), "cannot be decrypted")] {
        for args in [&["status", "vault"][..], &["up", "vault", "--yes"][..], &["down", "vault", "--yes"][..]] {
            let o = with_key(args, key);
            assert_eq!(o.code, 1, "{args:?} with {key:?}: {}\n{}", o.stdout, o.stderr);
            assert!(o.stderr.contains(says), "{args:?} with {key:?}: {}", o.stderr);
        }
    }
    let after: Vec<_> = files(&state_dir).into_iter().filter(|(p, _)| !p.ends_with("lock")).collect();
    assert_eq!(before, after, "state files changed without the right key");
    let short = with_key(&["status", "vault"], Some("short"));
    assert_eq!(short.code, 1);
    assert!(short.stderr.contains("too short"), "{}", short.stderr);

    // With the key: all there, nothing to do.
    let plan = with_key(&["plan", "vault", "--detailed-exitcode", "--var", "hold_secs=1"], Some(KEY));
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    assert_eq!(with_key(&["down", "vault", "--yes"], Some(KEY)).code, 0);
}
