//! `phoenix up` and `phoenix down`: plan, confirm, apply along the graph, save state.

use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use console::style;
use phoenix_core::executor::{ApplyOptions, ApplyReport, OpKind, Outcome, apply, operation_graph};
use phoenix_core::value::is_sealed;

use crate::args::{ApplyArgs, EnvArgs, Global};
use crate::commands::plan::{check_saved_plan, make_plan, read_saved_plan};
use crate::commands::recovery::{self, RestoreSpec};
use crate::context;
use crate::exit::{CmdResult, Exit, Failure};
use crate::printer::Printer;
use crate::progress::{Mode, Progress, json_event};

pub async fn up(
    g: &Global,
    printer: &Printer,
    args: &EnvArgs,
    opts: &ApplyArgs,
    saved: Option<&Path>,
    ttl: Option<std::time::Duration>,
    outputs_file: Option<&Path>,
) -> CmdResult {
    execute(g, printer, args, opts, false, saved, Extras { ttl, outputs_file, ..Extras::default() }).await
}

pub async fn down(g: &Global, printer: &Printer, args: &EnvArgs, opts: &ApplyArgs, keep_history: bool) -> CmdResult {
    execute(g, printer, args, opts, true, None, Extras { keep_history, ..Extras::default() }).await
}

/// `up` from a recovery point (`phoenix restore`).
pub async fn restore(g: &Global, printer: &Printer, args: &EnvArgs, opts: &ApplyArgs, spec: RestoreSpec) -> CmdResult {
    execute(g, printer, args, opts, false, None, Extras { restore: Some(spec), ..Extras::default() }).await
}

/// What only `up` takes.
#[derive(Default)]
struct Extras<'a> {
    ttl: Option<std::time::Duration>,
    outputs_file: Option<&'a Path>,
    restore: Option<RestoreSpec>,
    /// `down`: keep the local state directory (its history) once everything is gone.
    keep_history: bool,
}

async fn execute(
    g: &Global,
    printer: &Printer,
    args: &EnvArgs,
    opts: &ApplyArgs,
    destroy: bool,
    saved: Option<&Path>,
    extras: Extras<'_>,
) -> CmdResult {
    let started = std::time::Instant::now();
    let operation = match (destroy, &extras.restore) {
        (true, _) => "down",
        (false, Some(_)) => "restore",
        (false, None) => "up",
    };
    let env = context::load(g, printer, args)?;
    if let Some(spec) = extras.restore.as_ref() {
        recovery::check_restorable(&env, spec)?;
    }
    if extras.restore.is_none() {
        // Credentials and place resolved before anything is locked or written
        // (a restore configures after the lock: it may move the region first).
        let recorded = env.read_state().await?;
        env.configure_providers(printer, &recorded)?;
        env.preflight(printer, &recorded).await?;
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let (lock, mut state) = env.lock_state(operation, &run_id, opts.lock.lock_timeout, printer).await?;
    if state.created_at.is_none() {
        state.created_at = Some(chrono::Utc::now());
    }
    if let Some(ttl) = extras.ttl {
        // The expiry is durable before any object exists, so `gc` finds even
        // an instance whose first run is killed half-way.
        state.expires_at = Some(chrono::Utc::now() + ttl);
        state = lock.write(&state).await.map_err(context::state_failure)?;
    }
    if let Some(spec) = extras.restore.as_ref()
        && let Some(region) = spec.region.as_deref()
    {
        // Durable before any object is made there: later commands find them in that region.
        recovery::override_region(&mut state, &env.registry, region, spec.zone.as_deref())?;
        state = lock.write(&state).await.map_err(context::state_failure)?;
    }
    // `-C DIR` means "as if started in DIR": relative paths are under it.
    let saved = saved.map(|p| env.project.root.join(p));
    let saved = saved.as_deref();
    let saved_plan = saved.map(read_saved_plan).transpose()?;
    if let Some(p) = &saved_plan
        && state.serial == 0
        && state.is_empty()
    {
        // A plan made before the state existed names the lineage the new state takes.
        state.lineage = p.lineage.clone();
    }
    env.configure_providers(printer, &state)?;
    if extras.restore.is_some() {
        env.preflight(printer, &state).await?;
    }
    if printer.json {
        json_event(serde_json::json!({
            "event": "run_started", "run_id": run_id, "operation": operation,
            "environment": env.loaded.name, "instance": env.loaded.instance,
            "state": env.store().await?.location(), "expires_at": state.expires_at,
        }));
    }
    let (plan, restored) = match &extras.restore {
        Some(spec) => recovery::plan(&env, &state, spec).await?,
        None => (make_plan(&env, &state, destroy, &opts.scope).await?, Vec::new()),
    };
    let refresh_calls = context::api_calls(&env.registry);
    if let (Some(path), Some(saved_plan)) = (saved, &saved_plan) {
        check_saved_plan(path, saved_plan, &plan)?;
    }
    if printer.json {
        let changes: Vec<_> = plan
            .changes
            .iter()
            .filter(|c| c.action != phoenix_core::plan::Action::NoOp || c.adopt)
            .map(|c| serde_json::json!({"addr": c.addr, "type": c.type_name, "action": c.action, "adopt": c.adopt}))
            .collect();
        json_event(serde_json::json!({"event": "plan", "summary": plan.summary(), "changes": changes, "api_calls": refresh_calls}));
    } else {
        printer.plan(&plan);
    }
    if !plan.has_work() {
        if destroy && state.is_empty() && opts.scope.targets.is_empty() && opts.scope.excludes.is_empty() {
            drop(lock);
            leave_no_trace(&env, extras.keep_history)?;
        }
        if let Some(path) = extras.outputs_file {
            super::outputs::write_file(&env.project.root.join(path), &state.outputs)?;
        }
        if printer.json {
            json_event(
                serde_json::json!({"event": "run_finished", "run_id": run_id, "success": true, "changes": 0, "outputs": visible_outputs(&state.outputs)}),
            );
        }
        return Ok(Exit::Ok);
    }
    let lost = data_lost(&plan, &state, &env.registry);
    if opts.yes {
        crate::confirm::warn_lost(&lost);
    } else {
        let action = if destroy {
            format!("destroy everything in {}", env.loaded.name)
        } else {
            format!("apply these changes to {}", env.loaded.name)
        };
        crate::confirm::ask(&action, &lost)?;
    }

    let journal = lock.journal(state.clone()).await.map_err(context::state_failure)?;
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let total_ops = operation_graph(&plan).len();
    let progress = Arc::new(Progress::new(Mode::detect(printer.json), total_ops));
    let signals = tokio::spawn(watch_signals(cancel_tx, progress.clone()));
    let result = apply(
        &plan,
        &env.registry,
        journal.clone(),
        progress.clone(),
        ApplyOptions { parallelism: opts.parallelism as usize, cancel: cancel_rx },
    )
    .await;
    progress.finish();
    signals.abort();
    // Fold the journal into the state document whatever happened: every recorded
    // operation must survive, including those of a failed or interrupted run.
    let final_state = journal.finish().await.map_err(context::state_failure)?;
    let report = result.map_err(|e| Failure::new(Exit::Error, anyhow!("{e}")))?;
    let bytes = journal.bytes_written();
    let state_requests = journal.requests();

    let counts = count(&report);
    if printer.json {
        let failed: Vec<_> = report
            .results
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Failed { error } => {
                    Some(serde_json::json!({"addr": r.addr, "op": r.op, "error": error.message, "error_kind": error.kind}))
                }
                _ => None,
            })
            .collect();
        json_event(serde_json::json!({
            "event": "run_finished", "run_id": run_id, "success": report.is_success(), "interrupted": report.interrupted,
            "created": counts.0, "updated": counts.1, "destroyed": counts.2, "failed": failed, "skipped": report.skipped(),
            "elapsed_ms": report.elapsed_ms, "outputs": visible_outputs(&final_state.outputs),
            "state_serial": final_state.serial, "state_bytes_written": bytes, "state_requests": state_requests,
            "resources": final_state.resources.len(),
            "api_calls": context::api_calls(&env.registry), "refresh_api_calls": refresh_calls,
        }));
    } else {
        print_summary(&report, counts, destroy);
        if !destroy && report.is_success() && !final_state.outputs.is_empty() {
            outln!("\nOutputs:");
            for (k, v) in &final_state.outputs {
                outln!("  {k} = {}", if is_sealed(v) { "(sensitive)".to_string() } else { v.to_string() });
            }
        }
        if g.verbose > 0 {
            outln!("state: serial {}, {} bytes written this run", final_state.serial, bytes);
            outln!("API calls: {} in all, {} of them to refresh", context::api_calls(&env.registry), refresh_calls);
        }
    }
    if let Some(path) = extras.outputs_file
        && report.is_success()
    {
        super::outputs::write_file(&env.project.root.join(path), &final_state.outputs)?;
    }
    if let Some(spec) = &extras.restore
        && report.is_success()
    {
        recovery::report(printer, spec, &restored, started.elapsed().as_millis(), &env);
    }
    if report.interrupted {
        return Ok(Exit::Interrupted);
    }
    if !report.is_success() {
        return Ok(Exit::Error);
    }
    if destroy && opts.scope.targets.is_empty() && opts.scope.excludes.is_empty() {
        if !final_state.is_empty() {
            let left: Vec<String> = final_state.resources.keys().map(ToString::to_string).collect();
            return Err(Failure::new(Exit::Error, anyhow!("destroy finished but these remain in state: {}", left.join(", "))));
        }
        drop(journal);
        drop(lock);
        leave_no_trace(&env, extras.keep_history)?;
    }
    Ok(Exit::Ok)
}

/// After a complete `down`: the local state directory goes (unless
/// --keep-history), and so do Phoenix's scratch directory of this environment
/// (if providers emptied it) and `.phoenix/` itself once nothing is left in it.
/// Recovery points (`.phoenix/state/@recovery/`) are kept.
fn leave_no_trace(env: &context::Env, keep_history: bool) -> Result<(), Failure> {
    if !keep_history
        && let Some(dir) = env.local_state_dir()
        && dir.exists()
    {
        std::fs::remove_dir_all(&dir).map_err(|e| anyhow!("everything was destroyed, but {} could not be removed: {e}", dir.display()))?;
        if let Some(root) = dir.parent() {
            let _ = std::fs::remove_dir(root);
        }
    }
    let data_dir = env.data_dir();
    let _ = std::fs::remove_dir(&data_dir);
    if let Some(parent) = data_dir.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    let _ = std::fs::remove_dir(env.project.data_dir());
    Ok(())
}

fn count(report: &ApplyReport) -> (usize, usize, usize) {
    let ok = |k: OpKind| report.results.iter().filter(|r| r.op == k && r.outcome == Outcome::Succeeded).count();
    (ok(OpKind::Create) + ok(OpKind::Adopt), ok(OpKind::Update), ok(OpKind::Destroy))
}

fn print_summary(report: &ApplyReport, (created, updated, destroyed): (usize, usize, usize), destroy: bool) {
    let secs = report.elapsed_ms as f64 / 1000.0;
    let what = if destroy { "Destroy" } else { "Apply" };
    if report.is_success() {
        outln!(
            "\n{} {created} created, {updated} updated, {destroyed} destroyed in {secs:.1}s.",
            style(format!("{what} complete:")).green().bold()
        );
        return;
    }
    let head = if report.interrupted { format!("{what} interrupted:") } else { format!("{what} failed:") };
    outln!(
        "\n{} {created} created, {updated} updated, {destroyed} destroyed, {} failed, {} not started, in {secs:.1}s.",
        style(head).red().bold(),
        report.failed(),
        report.skipped()
    );
    let failures = report.results.iter().filter_map(|r| match &r.outcome {
        Outcome::Failed { error } => Some((format!("{} ({})", r.addr, r.op), error.to_string())),
        _ => None,
    });
    for line in crate::commands::plan::said_once(failures) {
        outln!("  {} {line}", style("✗").red());
    }
    // What to do about it, once per kind of error (credentials, throttling…).
    let mut hints: Vec<&str> = report
        .results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed { error } => error.hint(),
            _ => None,
        })
        .collect();
    hints.sort_unstable();
    hints.dedup();
    for hint in hints {
        outln!("    {}", style(format!("hint: {hint}")).dim());
    }
    outln!("State was saved; run the command again to continue.");
}

fn visible_outputs(outputs: &std::collections::BTreeMap<String, serde_json::Value>) -> serde_json::Value {
    outputs
        .iter()
        .map(|(k, v)| (k.clone(), if is_sealed(v) { serde_json::Value::String("(sensitive)".into()) } else { v.clone() }))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The data-holding objects (volumes, databases, stateful instances) the plan
/// deletes or replaces, as `addr (type) deleted`: their contents go with them.
fn data_lost(
    plan: &phoenix_core::plan::Plan,
    state: &phoenix_core::state::StateDoc,
    registry: &phoenix_core::provider::Registry,
) -> Vec<String> {
    let stateful: std::collections::BTreeSet<_> =
        phoenix_core::recovery::stateful(state, registry).into_iter().map(|(a, _, _)| a).collect();
    plan.changes
        .iter()
        .filter(|c| matches!(c.action, phoenix_core::plan::Action::Delete | phoenix_core::plan::Action::Replace))
        .filter(|c| !c.deposed && stateful.contains(&c.addr))
        .map(|c| {
            let why = c.reasons.first().map(|r| format!(": {r}")).unwrap_or_default();
            format!("{} ({}) {}d{why}", c.addr, c.type_name, c.action)
        })
        .collect()
}

/// First Ctrl-C (or SIGTERM): stop scheduling, let in-flight work finish, save state.
/// Second: exit at once (the journal already holds every finished operation).
/// The live area is cleared before that exit, so no spinner frame stays on the terminal.
async fn watch_signals(cancel: tokio::sync::watch::Sender<bool>, progress: Arc<Progress>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else { return };
    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    let _ = cancel.send(true);
    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    progress.clear();
    errln!("\nSecond interrupt: exiting now. Finished operations are recorded; run the command again to continue.");
    std::process::exit(Exit::Interrupted as i32);
}
