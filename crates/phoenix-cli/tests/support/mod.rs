//! Helpers for driving the `phoenix` binary the way a user does.
#![allow(dead_code)]

pub mod aws_stack;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// A finished `phoenix ARGS`: with `--json`, every line of stdout must be
    /// an event of the committed contract (docs/events.schema.json).
    pub fn of(args: &[&str], out: std::process::Output) -> Self {
        let out = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if emits_events(args) {
            check_event_lines(&out.stdout, args);
        }
        out
    }

    /// Lines of stdout parsed as JSON events (each checked against the contract).
    pub fn events(&self) -> Vec<serde_json::Value> {
        let events: Vec<serde_json::Value> = self.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        for e in &events {
            check_event(e);
        }
        events
    }
    pub fn event(&self, name: &str) -> Option<serde_json::Value> {
        self.events().into_iter().find(|e| e["type"] == name)
    }
}

/// `--json` runs whose stdout is events: all but `schema` (its JSON is the
/// resource types' reference), `completions`, `graph` (DOT) and `output --format`.
fn emits_events(args: &[&str]) -> bool {
    args.contains(&"--json") && !args.iter().any(|a| ["schema", "completions", "graph", "--format"].contains(a))
}

/// The committed JSON Schema of one `--json` line.
fn event_schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.schema.json");
        let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("docs/events.schema.json")).unwrap();
        jsonschema::validator_for(&schema).expect("a valid JSON Schema")
    })
}

/// Panics unless `event` is a line of the contract.
pub fn check_event(event: &serde_json::Value) {
    let errors: Vec<String> = event_schema().iter_errors(event).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "a --json line breaks docs/events.schema.json:\n{event}\n{}", errors.join("\n"));
}

/// Panics unless every line of `stdout` is an event of the contract.
pub fn check_event_lines(stdout: &str, args: &[&str]) {
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("`phoenix {}` wrote a line that is not JSON ({e}):\n{line}", args.join(" ")));
        check_event(&event);
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_phoenix")
}

/// Runs `phoenix -C dir ARGS` with no stdin (as CI does) and waits.
pub fn phoenix(dir: &Path, args: &[&str]) -> Output {
    Output::of(args, command(dir, args).output().expect("phoenix runs"))
}

pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("-C").arg(dir).args(args).stdin(Stdio::null()).env("NO_COLOR", "1").env_remove("RUST_LOG").env_remove("PHOENIX_STATE");
    c
}

/// A throw-away project directory.
pub struct Project {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Project {
    pub fn empty() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        std::fs::create_dir_all(dir.join("environments")).unwrap();
        std::fs::create_dir_all(dir.join("templates")).unwrap();
        Self { _tmp: tmp, dir }
    }

    /// A copy of a directory (e.g. a bad-input case).
    pub fn copy_of(src: &Path) -> Self {
        let p = Self::empty();
        copy_dir(src, &p.dir);
        p
    }

    /// A copy of this repository's environments/ and templates/.
    pub fn repo() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let p = Self::empty();
        copy_dir(&root.join("environments"), &p.dir.join("environments"));
        copy_dir(&root.join("templates"), &p.dir.join("templates"));
        p
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Files left under a directory of the project, relative, sorted.
    pub fn files_under(&self, rel: &str) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.dir.join(rel), &self.dir.join(rel), &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        out.push(p.strip_prefix(root).unwrap().display().to_string());
        if p.is_dir() {
            walk(root, &p, out);
        }
    }
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}

#[allow(unused_imports)] // not every test binary needs a port
pub use phoenix_testkit::free_port;

/// A plain HTTP GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// This test's own run of an environment: the processes its state started,
/// told from every other process on the machine by the lineage at the end of
/// their owner mark (`PHOENIX_OWNER=env[/instance]/resource@lineage`, see
/// `Ownership::key`). Never a machine-wide prefix such as `dev/`: a developer's
/// own `phoenix up dev`, or another run of this suite, carries the same one.
/// Dropped, it kills what its state still owns (a failed test's leftovers)
/// and says which.
pub struct Run {
    state_dir: PathBuf,
    lineage: std::sync::OnceLock<String>,
}

impl Run {
    /// The run of `env` in the project at `project_dir` (state under `.phoenix/state/<env>`).
    pub fn of(project_dir: &Path, env: &str) -> Self {
        Self { state_dir: project_dir.join(".phoenix/state").join(env), lineage: std::sync::OnceLock::new() }
    }

    /// The state's lineage once the first run wrote it; kept after `down`
    /// removes the state, so leftovers are still found.
    pub fn lineage(&self) -> Option<&str> {
        if self.lineage.get().is_none()
            && let Some(l) = read_lineage(&self.state_dir)
        {
            let _ = self.lineage.set(l);
        }
        self.lineage.get().map(String::as_str)
    }

    /// Live processes of this run whose owner starts with `owner_prefix`
    /// (`dev/web@`, `crash/`); none before the state has a lineage.
    pub fn processes(&self, owner_prefix: &str) -> Vec<(u32, String)> {
        let Some(lineage) = self.lineage() else { return Vec::new() };
        let suffix = format!("@{lineage}");
        marked_processes().into_iter().filter(|(_, o)| o.starts_with(owner_prefix) && o.ends_with(&suffix)).collect()
    }

    /// The services among [`Run::processes`]: the marked processes that lead
    /// their own process group (a service's supervisor; its command runs in
    /// the same group, marked too).
    pub fn services(&self, owner_prefix: &str) -> Vec<(u32, String)> {
        self.processes(owner_prefix).into_iter().filter(|(pid, _)| process_group(*pid) == Some(*pid)).collect()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for (pid, owner) in self.processes("") {
            eprintln!("reaper: killing pid {pid} left by this test ({owner})");
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

/// The lineage of the state in `dir`, read as `phoenix-state` writes it
/// (plain, not sealed): `state.json`'s `state.lineage`, or, before the first
/// compaction (a first run killed midway), the header that opens
/// `journal.log` (`<crc> {"lineage":…,"after_seq":…}`).
fn read_lineage(dir: &Path) -> Option<String> {
    let field = |doc: &serde_json::Value| doc["lineage"].as_str().map(str::to_string);
    let compacted = std::fs::read_to_string(dir.join("state.json")).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    compacted.and_then(|doc| field(&doc["state"])).or_else(|| {
        let journal = std::fs::read_to_string(dir.join("journal.log")).ok()?;
        let (_crc, header) = journal.lines().next()?.split_once(' ')?;
        field(&serde_json::from_str(header).ok()?)
    })
}

/// Every live process on the machine whose environment carries
/// `PHOENIX_OWNER`, with its owner: only ever filtered by [`Run`].
fn marked_processes() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(env) = std::fs::read(e.path().join("environ")) else { continue };
        // Zombies keep no environment; a live process does.
        for var in env.split(|b| *b == 0) {
            if let Some(owner) = var.strip_prefix(b"PHOENIX_OWNER=")
                && !is_zombie(pid)
            {
                out.push((pid, String::from_utf8_lossy(owner).into_owned()));
            }
        }
    }
    out.sort();
    out
}

fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split_whitespace().nth(2)?.parse().ok()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

/// Polls `f` until it is true or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    f()
}
