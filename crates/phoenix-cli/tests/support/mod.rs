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
    /// Lines of stdout parsed as JSON events.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
    pub fn event(&self, name: &str) -> Option<serde_json::Value> {
        self.events().into_iter().find(|e| e["event"] == name)
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_phoenix")
}

/// Runs `phoenix -C dir ARGS` with no stdin (as CI does) and waits.
pub fn phoenix(dir: &Path, args: &[&str]) -> Output {
    let out = command(dir, args).output().expect("phoenix runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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

/// Pids of live processes whose environment carries `PHOENIX_OWNER=<owner>`.
pub fn owned_processes(owner_prefix: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(env) = std::fs::read(e.path().join("environ")) else { continue };
        // Zombies keep no environment; a live process does.
        for var in env.split(|b| *b == 0) {
            if let Some(owner) = var.strip_prefix(b"PHOENIX_OWNER=") {
                let owner = String::from_utf8_lossy(owner).into_owned();
                if owner.starts_with(owner_prefix) && !is_zombie(pid) {
                    out.push((pid, owner));
                }
            }
        }
    }
    out.sort();
    out
}

/// The services among [`owned_processes`]: the marked processes that lead
/// their own process group (a service's supervisor; its command runs in the
/// same group, marked too).
#[allow(dead_code)] // not every test binary counts services
pub fn owned_services(owner_prefix: &str) -> Vec<(u32, String)> {
    owned_processes(owner_prefix).into_iter().filter(|(pid, _)| process_group(*pid) == Some(*pid)).collect()
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

/// Kills processes a failed test left behind (only those owned by this test's environment).
pub struct Reaper(pub String);
impl Drop for Reaper {
    fn drop(&mut self) {
        for (pid, _) in owned_processes(&self.0) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
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
