//! `phoenix-bench`: whole-process figures for the `phoenix` binary on generated
//! layered DAGs, for the targets in docs/performance.md.
//!
//! ```text
//! cargo build --release -p phoenix-cli -p phoenix-bench
//! target/release/phoenix-bench                 # everything
//! target/release/phoenix-bench scale 10000     # validate/plan/apply of 10,000 data resources
//! target/release/phoenix-bench delay           # executor vs the critical-path lower bound, `sleep 0.1` processes
//! target/release/phoenix-bench executor        # the executor alone, in process, with 100 ms operations
//! target/release/phoenix-bench aws             # the AWS web stack on moto: up, no-change plan, snapshot, down, restore, down
//! ```
//!
//! Each phoenix command runs as a child of a fresh measuring process, so its
//! peak memory (max RSS) is its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

mod executor;

struct Measured {
    wall_s: f64,
    max_rss_mb: f64,
    stdout: String,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--measure") {
        return measure_child(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("executor") {
        return executor::run(); // in process: no binary needed
    }
    let phoenix = phoenix_bin()?;
    match args.first().map(String::as_str) {
        Some("scale") => {
            let n: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1000);
            scale(&phoenix, n)?;
        }
        Some("delay") => delay(&phoenix)?,
        Some("aws") => {
            let counts: Vec<usize> = args[1..].iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
            aws(&phoenix, if counts.is_empty() { &[10, 50] } else { &counts })?;
        }
        None => {
            scale(&phoenix, 1000)?;
            scale(&phoenix, 10_000)?;
            executor::run()?;
            delay(&phoenix)?;
        }
        Some(other) => bail!("unknown benchmark `{other}`: use `scale [N]`, `executor`, `delay` or `aws [WEB_COUNT…]`"),
    }
    Ok(())
}

/// The phoenix binary next to this one (same profile), or $PHOENIX_BIN.
fn phoenix_bin() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("PHOENIX_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let p = me.with_file_name("phoenix");
    if !p.exists() {
        bail!("{} not found: build it first (cargo build --release -p phoenix-cli) or set PHOENIX_BIN", p.display());
    }
    Ok(p)
}

/// Runs a command as our only child and prints its wall time and peak RSS.
fn measure_child(cmd: &[String]) -> anyhow::Result<()> {
    let start = Instant::now();
    let out = Command::new(&cmd[0]).args(&cmd[1..]).output().with_context(|| format!("running {}", cmd[0]))?;
    let wall = start.elapsed().as_secs_f64();
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    let rss_kb = usage.max_rss();
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    println!(
        "{}",
        serde_json::json!({"wall_s": wall, "max_rss_kb": rss_kb, "code": out.status.code(), "stdout": String::from_utf8_lossy(&out.stdout)})
    );
    Ok(())
}

fn run(phoenix: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<Measured> {
    let me = std::env::current_exe()?;
    let out = Command::new(me).arg("--measure").arg(phoenix).arg("-C").arg(dir).args(args).env("CI", "1").output()?;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).context("measuring process output")?;
    if doc["code"] != 0 {
        bail!("phoenix {} failed: {}\n{}", args.join(" "), doc["stdout"], String::from_utf8_lossy(&out.stderr));
    }
    Ok(Measured {
        wall_s: doc["wall_s"].as_f64().unwrap_or_default(),
        max_rss_mb: doc["max_rss_kb"].as_f64().unwrap_or_default() / 1024.0,
        stdout: doc["stdout"].as_str().unwrap_or_default().to_string(),
    })
}

/// A project whose environment `layered` is `layers` x `width` resources, each
/// depending on two resources of the layer before.
fn layered_project(resource: &str, layers: usize, width: usize) -> anyhow::Result<tempfile::TempDir> {
    let tmp = tempfile::tempdir()?;
    std::fs::create_dir_all(tmp.path().join("environments"))?;
    std::fs::create_dir_all(tmp.path().join("templates"))?;
    std::fs::write(
        tmp.path().join("environments/layered.toml"),
        format!("template = \"layered\"\n\n[vars]\nlayers = {layers}\nwidth = {width}\n"),
    )?;
    std::fs::write(tmp.path().join("templates/layered.toml.j2"), resource)?;
    Ok(tmp)
}

const DATA_TEMPLATE: &str = r#"{% for l in range(layers) %}{% for i in range(width) %}
[resource.n{{ l }}-{{ i }}]
type = "data"
{% if l == 0 %}input = "seed-{{ i }}"{% else %}input = ["${n{{ l - 1 }}-{{ i }}.id}", "${n{{ l - 1 }}-{{ (i * 7 + 3) % width }}.id}"]{% endif %}
{% endfor %}{% endfor %}"#;

fn scale(phoenix: &Path, n: usize) -> anyhow::Result<()> {
    let layers = 10;
    let width = n / layers;
    let project = layered_project(DATA_TEMPLATE, layers, width)?;
    let dir = project.path();
    println!("== {n} data resources ({layers} layers x {width}, each needing two of the layer before)");
    let v = run(phoenix, dir, &["validate", "layered"])?;
    println!("validate            {:>8.3} s  {:>7.1} MB peak", v.wall_s, v.max_rss_mb);
    let p = run(phoenix, dir, &["plan", "layered"])?;
    println!("plan (empty state)  {:>8.3} s  {:>7.1} MB peak", p.wall_s, p.max_rss_mb);
    let a = run(phoenix, dir, &["--json", "up", "layered", "--yes", "--parallelism", "64"])?;
    let finished = a
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "run_finished")
        .context("no run_finished event")?;
    let state_size = std::fs::metadata(dir.join(".phoenix/state/layered/state.json"))?.len();
    let written = finished["state_bytes_written"].as_u64().unwrap_or_default();
    println!(
        "apply (up)          {:>8.3} s  {:>7.1} MB peak  executor {:.3} s  state {} bytes, {} written ({:.2}x)",
        a.wall_s,
        a.max_rss_mb,
        finished["elapsed_ms"].as_f64().unwrap_or_default() / 1000.0,
        state_size,
        written,
        written as f64 / state_size as f64
    );
    let p2 = run(phoenix, dir, &["plan", "layered", "--detailed-exitcode"])?;
    println!("plan (no changes)   {:>8.3} s  {:>7.1} MB peak", p2.wall_s, p2.max_rss_mb);
    let d = run(phoenix, dir, &["down", "layered", "--yes", "--parallelism", "64"])?;
    println!("destroy (down)      {:>8.3} s  {:>7.1} MB peak", d.wall_s, d.max_rss_mb);
    Ok(())
}

const DELAY_TEMPLATE: &str = r#"{% for l in range(layers) %}{% for i in range(width) %}
[resource.n{{ l }}-{{ i }}]
type = "metal.exec"
command = "sleep 0.1"
{% if l > 0 %}depends_on = ["n{{ l - 1 }}-{{ i }}", "n{{ l - 1 }}-{{ (i * 7 + 3) % width }}"]{% endif %}
{% endfor %}{% endfor %}"#;

fn delay(phoenix: &Path) -> anyhow::Result<()> {
    println!("== executor vs lower bound: metal.exec `sleep 0.1` on layered DAGs");
    for (layers, width, parallelism) in [(10, 10, 10), (10, 20, 64), (5, 40, 16), (20, 8, 4)] {
        let project = layered_project(DELAY_TEMPLATE, layers, width)?;
        let n = layers * width;
        let work = n as f64 * 0.1;
        let critical = layers as f64 * 0.1;
        let bound = critical.max(work / parallelism as f64);
        let par = parallelism.to_string();
        let a = run(phoenix, project.path(), &["--json", "up", "layered", "--yes", "--parallelism", &par])?;
        let finished = a
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "run_finished")
            .context("no run_finished event")?;
        let exec = finished["elapsed_ms"].as_f64().unwrap_or_default() / 1000.0;
        let floor = process_floor(layers, width, parallelism)?;
        println!(
            "{n:>4} ops ({layers} x {width}), parallelism {parallelism:>3}: executor {exec:.3} s, bound {bound:.3} s \
             (critical path {critical:.1} s, work/parallelism {:.3} s): {:+.1} %; same processes without Phoenix {floor:.3} s: {:+.1} %",
            work / parallelism as f64,
            (exec / bound - 1.0) * 100.0,
            (exec / floor - 1.0) * 100.0
        );
        run(phoenix, project.path(), &["down", "layered", "--yes", "--parallelism", "64"])?;
    }
    Ok(())
}

/// The same layered DAG's processes run directly, layer by layer, at most
/// `parallelism` at once: what process creation alone costs on this machine.
fn process_floor(layers: usize, width: usize, parallelism: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    for _ in 0..layers {
        let mut left = width;
        while left > 0 {
            let batch = left.min(parallelism);
            let children: Vec<_> = (0..batch).map(|_| Command::new("sh").args(["-c", "sleep 0.1"]).spawn()).collect::<Result<_, _>>()?;
            for mut c in children {
                c.wait()?;
            }
            left -= batch;
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The repository's `staging` web stack against a fresh moto: wall time and
/// API calls of `up`, a no-change `plan`, a recovery point (`snapshot`),
/// `down`, a `restore` from the point with the state gone too (its wall time
/// is the recovery time), and `down` again, counted both by Phoenix and by
/// moto's own request log.
fn aws(phoenix: &Path, web_counts: &[usize]) -> anyhow::Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for &n in web_counts {
        let project = tempfile::tempdir()?;
        for dir in ["environments", "templates"] {
            std::fs::create_dir_all(project.path().join(dir))?;
            for f in std::fs::read_dir(repo.join(dir))? {
                let f = f?;
                std::fs::copy(f.path(), project.path().join(dir).join(f.file_name()))?;
            }
        }
        let log = project.path().join("moto.log");
        let moto = phoenix_testkit::Moto::start_logged(&log);
        let requests = || {
            std::fs::read_to_string(&log).map(|l| l.lines().filter(|l| l.contains("\"POST ") || l.contains("\"GET ")).count()).unwrap_or(0)
        };
        // vpc, 3 subnets, igw, route table, security group; per server an instance, a volume and an attachment; one EIP.
        let resources = 7 + 3 * n + usize::from(n > 0);
        println!("== staging web stack, web_count = {n} ({resources} resources), on moto");
        let var = format!("web_count={n}");
        // The recovery point `snapshot` takes, for `restore` after everything (state too) is gone.
        let mut point = String::new();
        for (phase, args) in [
            ("up", vec!["--json", "up", "staging", "--yes", "--var", &var]),
            ("plan (no changes)", vec!["--json", "plan", "staging", "--detailed-exitcode", "--var", &var]),
            ("snapshot", vec!["--json", "snapshot", "staging", "--var", &var]),
            ("down", vec!["--json", "down", "staging", "--yes", "--var", &var]),
            ("restore (all lost)", vec!["--json", "restore", "staging", "--from", "POINT", "--yes", "--var", &var]),
            ("down (restored)", vec!["--json", "down", "staging", "--yes", "--var", &var]),
        ] {
            let args: Vec<&str> = args.into_iter().map(|a| if a == "POINT" { point.as_str() } else { a }).collect();
            if phase.starts_with("restore") {
                // Lost with the environment: its state (the recovery point lives
                // apart from it). `down` removes an emptied state itself; whatever
                // is left (history kept elsewhere) goes too.
                let state = project.path().join(".phoenix/state/staging");
                if state.exists() {
                    std::fs::remove_dir_all(state)?;
                }
            }
            let before = requests();
            let start = Instant::now();
            let out = Command::new(phoenix).arg("-C").arg(project.path()).args(&args).envs(moto.env()).env("CI", "1").output()?;
            let wall = start.elapsed().as_secs_f64();
            if !out.status.success() {
                bail!(
                    "phoenix {} failed:\n{}{}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let events: Vec<serde_json::Value> =
                String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
            let phoenix_calls = events.iter().rev().find_map(|e| e["api_calls"]["aws"].as_u64()).unwrap_or(0);
            if let Some(id) = events.iter().find_map(|e| e["point"]["id"].as_str()) {
                point = id.to_string();
            }
            std::thread::sleep(std::time::Duration::from_millis(200)); // let moto flush its log
            let moto_calls = requests() - before;
            let per_resource =
                if phase == "up" { format!(", {:.2} per resource", moto_calls as f64 / resources as f64) } else { String::new() };
            println!("{phase:<18} {wall:>7.2} s  {phoenix_calls:>5} API calls (moto's log: {moto_calls}{per_resource})");
        }
    }
    Ok(())
}
