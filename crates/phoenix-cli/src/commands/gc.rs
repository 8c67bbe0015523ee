//! `phoenix instances ENV` and `phoenix gc`: the engine finds and destroys
//! ([`phoenix_engine::gc`], whose docs say how gc decides); this asks and renders.

use std::io::{BufRead, IsTerminal};

use phoenix_config::LoadOptions;
use phoenix_engine::gc::{GcHooks, GcOptions};
use phoenix_engine::report::Reporter;
use phoenix_engine::run::RunHooks;
use phoenix_state::StoredState;

use crate::args::{Global, LockArgs};
use crate::commands::apply::CliRun;
use crate::context::{self, Env};
use crate::exit::{CmdResult, Exit, Failure};
use crate::printer::{Printer, emit};

/// Loads an environment without an instance (its state root and providers).
fn load_env(g: &Global, name: &str) -> Result<Env, Failure> {
    let project = context::project(g)?;
    let loaded = context::load_definition(&project, name, &LoadOptions::default())?;
    Ok(context::env_of(project, loaded))
}

fn age(from: Option<chrono::DateTime<chrono::Utc>>, now: chrono::DateTime<chrono::Utc>) -> String {
    let Some(from) = from else { return "?".into() };
    human(now - from)
}

fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds().abs();
    let text = if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else if s < 172_800 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}d", s / 86400)
    };
    if d.num_seconds() < 0 { format!("{text} ago") } else { text }
}

pub async fn instances(g: &Global, printer: &Printer, env_name: &str) -> CmdResult {
    let env = load_env(g, env_name)?;
    let (location, states) = phoenix_engine::gc::instances(&env).await?;
    let now = chrono::Utc::now();
    if printer.json {
        emit(&phoenix_engine::gc::instances_event(&env.loaded.name, location, &states, now));
        return Ok(Exit::Ok);
    }
    if states.is_empty() {
        outln!("{} has no instances in {location}.", env.loaded.name);
        return Ok(Exit::Ok);
    }
    let name = |s: &StoredState| s.doc.instance.clone().unwrap_or_else(|| "(default)".into());
    let width = states.iter().map(|s| name(s).len()).max().unwrap_or(8).max(8);
    outln!("{:width$}  {:>9}  {:>8}  {:24}  LOCK", "INSTANCE", "RESOURCES", "AGE", "EXPIRES");
    for s in &states {
        let expires = match s.doc.expires_at {
            None => "never".to_string(),
            Some(t) if t <= now => format!("expired {} ago", human(now - t)),
            Some(t) => format!("in {} ({})", human(t - now), t.format("%H:%M UTC")),
        };
        let lock = match &s.lock {
            Some(l) if l.live => format!("{}@{} ({})", l.info.owner, l.info.host, l.info.operation),
            _ => "-".into(),
        };
        outln!("{:width$}  {:>9}  {:>8}  {:24}  {lock}", name(s), s.doc.resources.len(), age(s.doc.created_at, now), expires);
    }
    Ok(Exit::Ok)
}

pub async fn gc(g: &Global, printer: &Printer, envs: &[String], yes: bool, dry_run: bool, lock: &LockArgs) -> CmdResult {
    let project = context::project(g)?;
    let names: Vec<String> = if envs.is_empty() { project.environments() } else { envs.to_vec() };
    if !yes && !dry_run {
        crate::confirm::require_terminal("destroy (--dry-run shows what would go)")?;
    }
    // An expired instance's `down` is approved by gc's own question (or --yes).
    let hooks = CliGc(CliRun::new(g, printer, true, None));
    let opts = GcOptions { yes, dry_run, lock_timeout: lock.lock_timeout };
    let report = phoenix_engine::gc::gc(&context::host(), &project, &names, &opts, &hooks).await?;
    Ok(if report.failures > 0 { Exit::Error } else { Exit::Ok })
}

/// A run's hooks, plus gc's question per destruction.
struct CliGc<'a>(CliRun<'a>);

impl Reporter for CliGc<'_> {
    fn event(&self, event: &phoenix_engine::event::Event) {
        self.0.event(event);
    }
    fn note(&self, text: &str) {
        self.0.note(text);
    }
}

impl RunHooks for CliGc<'_> {
    fn planned(&self, plan: &phoenix_core::plan::Plan) {
        self.0.planned(plan);
    }
    fn approve(&self, plan: &phoenix_core::plan::Plan, lost: &[String]) -> Result<(), Failure> {
        self.0.approve(plan, lost)
    }
    fn apply_starting(&self, total_ops: usize) -> phoenix_engine::run::ApplyWiring {
        self.0.apply_starting(total_ops)
    }
    fn finished(&self, report: &phoenix_engine::run::RunReport) {
        self.0.finished(report);
    }
}

impl GcHooks for CliGc<'_> {
    fn confirm(&self, what: &str) -> Result<bool, Failure> {
        confirm(what)
    }
}

fn confirm(what: &str) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    err!("{what}? Only `yes` is accepted: ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
