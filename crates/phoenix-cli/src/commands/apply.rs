//! `phoenix up`, `phoenix down` and `phoenix restore`: the engine plans and
//! applies ([`phoenix_engine::run`]); this approves, shows progress and renders.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use console::style;
use phoenix_core::executor::{ApplyReport, Outcome};
use phoenix_core::plan::Plan;
use phoenix_core::value::is_sealed;
use phoenix_engine::event::Event;
use phoenix_engine::report::Reporter;
use phoenix_engine::run::{ApplyWiring, RunHooks, RunOptions, RunReport};

use crate::args::{ApplyArgs, EnvArgs, Global};
use crate::context;
use crate::exit::{CmdResult, Exit, Failure};
use crate::printer::Printer;
use crate::progress::{Mode, Progress};

pub async fn up(
    g: &Global,
    printer: &Printer,
    args: &EnvArgs,
    opts: &ApplyArgs,
    saved: Option<&Path>,
    ttl: Option<std::time::Duration>,
    outputs_file: Option<&Path>,
) -> CmdResult {
    let env = context::load(g, args)?;
    // `-C DIR` means "as if started in DIR": relative paths are under it.
    let run = RunOptions { saved_plan: saved.map(|p| env.project.root.join(p)), ttl, ..run_options(opts) };
    let hooks = CliRun::new(g, printer, opts.yes, outputs_file.map(|p| env.project.root.join(p)));
    let result = phoenix_engine::run::run(&env, run, &hooks).await;
    hooks.end(result)
}

pub async fn down(g: &Global, printer: &Printer, args: &EnvArgs, opts: &ApplyArgs, keep_history: bool) -> CmdResult {
    let env = context::load(g, args)?;
    let run = RunOptions { destroy: true, keep_history, ..run_options(opts) };
    let hooks = CliRun::new(g, printer, opts.yes, None);
    let result = phoenix_engine::run::run(&env, run, &hooks).await;
    hooks.end(result)
}

/// `phoenix restore ENV --from ID` (and `up --from-snapshot ID`).
pub async fn restore(
    g: &Global,
    printer: &Printer,
    args: &EnvArgs,
    from: &str,
    region: Option<&str>,
    zone: Option<&str>,
    opts: &ApplyArgs,
) -> CmdResult {
    let env = context::load(g, args)?;
    let hooks = CliRun::new(g, printer, opts.yes, None);
    let result = phoenix_engine::recovery::restore(&env, from, region, zone, run_options(opts), &hooks).await;
    hooks.end(result)
}

fn run_options(opts: &ApplyArgs) -> RunOptions {
    RunOptions {
        scope: opts.scope.engine(),
        parallelism: opts.parallelism as usize,
        lock_timeout: opts.lock.lock_timeout,
        ..RunOptions::default()
    }
}

/// The CLI's side of a run: the plan and the prompt, the progress display,
/// Ctrl-C, and the summary.
pub struct CliRun<'a> {
    printer: &'a Printer,
    verbose: u8,
    /// `--yes`: approve without asking (the data lost is still named).
    yes: bool,
    /// `up --outputs-file`.
    outputs_file: Option<PathBuf>,
    progress: Mutex<Option<Arc<Progress>>>,
    signals: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// A failure of the rendering side (the outputs file), reported at the end.
    failure: Mutex<Option<Failure>>,
}

impl<'a> CliRun<'a> {
    pub fn new(g: &Global, printer: &'a Printer, yes: bool, outputs_file: Option<PathBuf>) -> Self {
        Self {
            printer,
            verbose: g.verbose,
            yes,
            outputs_file,
            progress: Mutex::new(None),
            signals: Mutex::new(None),
            failure: Mutex::new(None),
        }
    }

    /// Stops the progress display and the Ctrl-C watch (the apply is over, or never started).
    fn stop(&self) {
        if let Some(p) = self.progress.lock().expect("not poisoned").take() {
            p.finish();
        }
        if let Some(s) = self.signals.lock().expect("not poisoned").take() {
            s.abort();
        }
    }

    /// The command's end: its exit code, or the failure of the run or of its rendering.
    pub fn end(&self, result: Result<RunReport, Failure>) -> CmdResult {
        self.stop();
        let report = result?;
        if let Some(f) = self.failure.lock().expect("not poisoned").take() {
            return Err(f);
        }
        Ok(report.exit())
    }
}

impl Reporter for CliRun<'_> {
    fn event(&self, event: &Event) {
        self.printer.event(event);
    }
    fn note(&self, text: &str) {
        self.printer.note(text);
    }
}

impl RunHooks for CliRun<'_> {
    fn planned(&self, plan: &Plan) {
        if !self.printer.json {
            self.printer.plan(plan);
        }
    }

    fn approve(&self, plan: &Plan, lost: &[String]) -> Result<(), Failure> {
        // People just read the objects holding data in the plan's warning,
        // right above the prompt; `--json` prints no plan, so it is said here.
        let lost = if self.printer.json { lost } else { &[] };
        if self.yes {
            crate::confirm::warn_lost(lost);
            return Ok(());
        }
        let action = if plan.destroy {
            format!("destroy everything in {}", plan.environment)
        } else {
            format!("apply these changes to {}", plan.environment)
        };
        crate::confirm::ask(&action, lost)
    }

    fn apply_starting(&self, total_ops: usize) -> ApplyWiring {
        let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
        let progress = Arc::new(Progress::new(Mode::detect(self.printer.json), total_ops));
        *self.signals.lock().expect("not poisoned") = Some(tokio::spawn(watch_signals(cancel_tx, progress.clone())));
        *self.progress.lock().expect("not poisoned") = Some(progress.clone());
        ApplyWiring { progress, cancel }
    }

    fn finished(&self, report: &RunReport) {
        self.stop();
        if !self.printer.json
            && let Some(applied) = &report.apply
        {
            print_summary(applied, (report.created, report.updated, report.deleted), report.destroy);
            if !report.destroy && applied.is_success() && !report.outputs.is_empty() {
                outln!("\nOutputs:");
                for (k, v) in &report.outputs {
                    outln!("  {k} = {}", if is_sealed(v) { "(sensitive)".to_string() } else { v.to_string() });
                }
            }
            if self.verbose > 0 {
                outln!("state: serial {}, {} bytes written this run", report.state_serial, report.state_bytes_written);
                outln!(
                    "API calls: {} in all, {} of them to refresh",
                    context::show_calls(&report.api_calls),
                    context::show_calls(&report.refresh_api_calls)
                );
            }
        }
        if let Some(path) = &self.outputs_file
            && report.is_success()
            && let Err(f) = super::outputs::write_file(path, &report.outputs)
        {
            *self.failure.lock().expect("not poisoned") = Some(f);
        }
        if !self.printer.json
            && report.apply.is_some()
            && report.is_success()
            && let Some((spec, restored)) = &report.restore
        {
            outln!(
                "\n{} {}{} from recovery point {} in {} (recovery time).",
                style("Restored").green().bold(),
                report.environment,
                report.instance.as_deref().map(|i| format!(" (instance {i})")).unwrap_or_default(),
                spec.point.id,
                style(format!("{:.1}s", report.total_ms as f64 / 1000.0)).bold()
            );
            for r in restored {
                outln!("  {:<24} {} = {}", r.addr.to_string(), r.restore_attr, r.snapshot.id);
            }
        }
    }
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
    for line in phoenix_engine::plan::said_once(failures) {
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
