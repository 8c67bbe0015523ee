//! The documentation's claims, checked: every shell block of `README.md` and
//! `docs/**/*.md` whose fence reads ```` ```sh runnable ```` is run by bash, as
//! a user would type it, in a copy of this project with `phoenix` (this
//! build) on PATH. A command that fails fails the test; a command whose line
//! ends in `# prints: TEXT` must also print TEXT (stdout or stderr).
//!
//! Each block gets its own copy of `environments/` and `templates/` and its own
//! free port for `dev` (the text `8741` in the block and in `dev.toml` is
//! replaced by it), and everything it brought up is taken down afterwards.
//! Also checked: the README stays short, and every relative link in the docs
//! points at a file that exists.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use phoenix_testkit::Moto;
use support::{Project, free_port};

/// The port `environments/dev.toml` declares, as the docs show it.
const DEV_PORT: &str = "8741";
const RUNNABLE_FENCE: &str = "```sh runnable";
/// A runnable block that needs AWS: it runs against a moto of its own.
const RUNNABLE_MOTO_FENCE: &str = "```sh runnable moto";
const PRINTS: &str = "# prints: ";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// README.md and every Markdown file under docs/, sorted.
fn markdown_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut out = vec![root.join("README.md")];
    let mut stack = vec![root.join("docs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

struct Block {
    /// `README.md:42`: where the fence opens.
    origin: String,
    text: String,
    moto: bool,
}

fn runnable_blocks(path: &Path) -> Vec<Block> {
    let rel = path.strip_prefix(repo_root()).unwrap().display().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    let mut blocks = Vec::new();
    let mut open: Option<(usize, bool, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut open {
            None if line.trim_end() == RUNNABLE_FENCE => open = Some((i + 1, false, String::new())),
            None if line.trim_end() == RUNNABLE_MOTO_FENCE => open = Some((i + 1, true, String::new())),
            None => {}
            Some((start, moto, body)) if line.trim_end() == "```" => {
                blocks.push(Block { origin: format!("{rel}:{start}"), text: std::mem::take(body), moto: *moto });
                open = None;
            }
            Some((_, _, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(open.is_none(), "{rel}: a runnable block is never closed");
    blocks
}

/// Single-quotes a string for sh.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The block as a bash script: each command runs in turn and is echoed first;
/// one that fails, or does not print what its `# prints:` says, stops the script.
fn script(block: &str) -> String {
    // Commands run in this shell (not a subshell), so a variable one sets is there for the next.
    let mut out = String::from("set -uo pipefail\n__log=$(mktemp)\n");
    for line in block.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (command, expected) = match line.split_once(PRINTS) {
            Some((c, e)) => (c.trim_end(), Some(e.trim())),
            None => (line.trim_end(), None),
        };
        out.push_str(&format!("echo {}\n", quoted(&format!("$ {command}"))));
        out.push_str(&format!("{{ {command}\n}} >\"$__log\" 2>&1; __code=$?\ncat \"$__log\"; __out=$(cat \"$__log\")\n"));
        out.push_str(&format!("if [ $__code -ne 0 ]; then echo \"FAILED (exit $__code): \"{}; exit 1; fi\n", quoted(command)));
        if let Some(text) = expected {
            out.push_str(&format!(
                "case \"$__out\" in *{}*) ;; *) echo \"FAILED: the output lacks \"{}; exit 1;; esac\n",
                quoted(text),
                quoted(text)
            ));
        }
    }
    out
}

/// The instances a block names with `--instance NAME`.
fn instances(block: &str) -> Vec<String> {
    let words: Vec<&str> = block.split_whitespace().collect();
    let mut out: Vec<String> = words.windows(2).filter(|w| w[0] == "--instance").map(|w| w[1].to_string()).collect();
    out.sort();
    out.dedup();
    out
}

/// A directory holding `phoenix`, this build's binary, to put first on PATH.
fn bin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(support::bin(), dir.path().join("phoenix")).unwrap();
    dir
}

fn bash(project: &Path, bin: &Path, script: &str, env: &[(&'static str, String)]) -> (bool, String) {
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("-c")
        .arg(script)
        .current_dir(project)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("PHOENIX_STATE")
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Takes down `dev` (and the instances a block made) in its project, whatever happened.
struct TearDown<'a> {
    project: &'a Path,
    bin: &'a Path,
    instances: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl Drop for TearDown<'_> {
    fn drop(&mut self) {
        let mut script = String::from("phoenix down dev --yes >/dev/null 2>&1\n");
        for i in &self.instances {
            script.push_str(&format!("phoenix down dev --instance {i} --yes >/dev/null 2>&1\n"));
        }
        bash(self.project, self.bin, &script, &self.env);
    }
}

fn run_block(block: &Block, bin: &Path) -> Result<(), String> {
    let project = Project::repo();
    let port = free_port().to_string();
    let dev = project.dir.join("environments/dev.toml");
    let toml = std::fs::read_to_string(&dev).unwrap();
    assert!(toml.contains(&format!("port = {DEV_PORT}")), "environments/dev.toml no longer declares port = {DEV_PORT}");
    std::fs::write(&dev, toml.replace(&format!("port = {DEV_PORT}"), &format!("port = {port}"))).unwrap();
    let text = block.text.replace(DEV_PORT, &port);
    // Declared before the teardown, so it outlives it.
    let moto = block.moto.then(Moto::start);
    let env = moto.as_ref().map(Moto::env).unwrap_or_default();
    let _teardown = TearDown { project: &project.dir, bin, instances: instances(&text), env: env.clone() };
    let (ok, output) = bash(&project.dir, bin, &script(&text), &env);
    if ok { Ok(()) } else { Err(format!("{} (dev on port {port}):\n{output}", block.origin)) }
}

#[test]
fn every_runnable_example_in_the_docs_runs_as_shown() {
    let bin = bin_dir();
    let blocks: Vec<Block> = markdown_files().iter().flat_map(|p| runnable_blocks(p)).collect();
    let in_readme = blocks.iter().filter(|b| b.origin.starts_with("README.md:")).count();
    assert!(in_readme >= 2, "the README should keep its runnable examples; found {in_readme}");
    let failures: Vec<String> = blocks.iter().filter_map(|b| run_block(b, bin.path()).err()).collect();
    assert!(failures.is_empty(), "{} of {} runnable examples failed:\n\n{}", failures.len(), blocks.len(), failures.join("\n\n"));
}

#[test]
fn the_readme_stays_short() {
    let lines = std::fs::read_to_string(repo_root().join("README.md")).unwrap().lines().count();
    assert!(lines <= 200, "README.md has {lines} lines; keep it to 200 and move details into docs/");
}

#[test]
fn relative_links_in_the_docs_point_at_files_that_exist() {
    let mut broken = Vec::new();
    for path in markdown_files().into_iter().chain([repo_root().join("crates/README.md")]) {
        let text = std::fs::read_to_string(&path).unwrap();
        for target in text.split("](").skip(1).filter_map(|rest| rest.split_once(')').map(|(t, _)| t)) {
            let file = target.split('#').next().unwrap_or_default();
            if file.is_empty() || file.contains("://") || file.starts_with("mailto:") {
                continue;
            }
            if !path.parent().unwrap().join(file).exists() {
                broken.push(format!("{}: {target}", path.strip_prefix(repo_root()).unwrap().display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n  {}", broken.join("\n  "));
}

#[test]
fn a_failing_example_or_a_missing_output_fails_the_run() {
    // The harness itself: a claim that is false must not pass.
    let bin = bin_dir();
    let wrong_output = Block { origin: "self-test".into(), moto: false, text: "phoenix validate dev   # prints: no such text\n".into() };
    let err = run_block(&wrong_output, bin.path()).expect_err("a missing output fails");
    assert!(err.contains("the output lacks"), "{err}");
    let failing = Block { origin: "self-test".into(), moto: false, text: "phoenix validate no-such-env\n".into() };
    let err = run_block(&failing, bin.path()).expect_err("a failing command fails");
    assert!(err.contains("FAILED (exit"), "{err}");
    let passing = Block { origin: "self-test".into(), moto: false, text: "phoenix validate dev   # prints: is valid\n".into() };
    run_block(&passing, bin.path()).expect("a true claim passes");
}

#[test]
fn the_environment_format_example_is_a_valid_environment() {
    // docs/guide/environments.md shows an environment file, then its template.
    let text = std::fs::read_to_string(repo_root().join("docs/guide/environments.md")).unwrap();
    let toml_blocks: Vec<&str> = text.split("```toml\n").skip(1).map(|rest| rest.split_once("```").expect("a closed block").0).collect();
    let (env, template) = (toml_blocks[0], toml_blocks[1]);
    let name = env.lines().next().and_then(|l| l.strip_prefix("# environments/")).and_then(|f| f.strip_suffix(".toml"));
    let name = name.expect("the environment example starts with `# environments/NAME.toml`");
    let project = Project::empty();
    project.write(&format!("environments/{name}.toml"), env);
    project.write(&format!("templates/{name}.toml.j2"), template);
    let out = support::phoenix(&project.dir, &["validate", name]);
    assert_eq!(out.code, 0, "the example in docs/guide/environments.md is invalid:\n{}\n{}", out.stdout, out.stderr);
}

#[test]
fn the_quick_start_builds_features_that_exist_and_brings_up_dev() {
    // The README's first command is the one a new user runs: it must name real
    // features of phoenix-cli and bring up `dev`.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let first = readme.lines().find(|l| l.starts_with("cargo run ")).expect("the README's quick start is a `cargo run`");
    assert!(first.ends_with("-- up dev"), "the quick start should bring up dev: {first}");
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo_root().join("crates/phoenix-cli/Cargo.toml")).unwrap()).unwrap();
    let features = manifest["features"].as_table().expect("phoenix-cli has features");
    let words: Vec<&str> = first.split_whitespace().collect();
    let named: Vec<&str> = words.windows(2).filter(|w| w[0] == "--features").flat_map(|w| w[1].split(',')).collect();
    assert!(!named.is_empty(), "the quick start builds only what dev needs, so it names its features: {first}");
    for f in named {
        assert!(features.contains_key(f), "the quick start names feature `{f}`, which phoenix-cli does not have");
    }
}
