//! `up`, `down` and `restore`: lock, plan, approve, apply along the graph,
//! save state. The caller approves and renders through [`RunHooks`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use phoenix_core::executor::{ApplyOptions, ApplyReport, OpKind, Outcome, apply, operation_graph};
use phoenix_core::plan::Plan;
use phoenix_core::recovery::Restored;
use phoenix_core::value::is_sealed;

use crate::env::{Env, state_failure};
use crate::event::{Event, FailedOperation};
use crate::exit::{Exit, Failure};
use crate::plan::{Scope, check_saved_plan, make_plan, read_saved_plan};
use crate::recovery::{self, RestoreSpec};
use crate::report::Reporter;

/// What a run is asked to do.
#[derive(Default)]
pub struct RunOptions {
    /// `down`: destroy everything (in scope).
    pub destroy: bool,
    pub scope: Scope,
    /// Operations in flight at once.
    pub parallelism: usize,
    pub lock_timeout: Duration,
    /// `up --plan FILE`: apply exactly this saved plan, or refuse.
    pub saved_plan: Option<PathBuf>,
    /// `up --ttl`: when `gc` may destroy this instance.
    pub ttl: Option<Duration>,
    /// `restore`: rebuild from a recovery point.
    pub restore: Option<RestoreSpec>,
    /// `down`: keep the local state directory (its history) once everything is gone.
    pub keep_history: bool,
}

/// What an apply reports to and listens to, from the caller.
pub struct ApplyWiring {
    /// The progress display.
    pub progress: Arc<dyn phoenix_core::executor::Reporter>,
    /// Becomes `true` to stop scheduling (the first Ctrl-C): in-flight operations finish and are recorded.
    pub cancel: tokio::sync::watch::Receiver<bool>,
}

/// What the caller does at the points of a run only it can handle.
pub trait RunHooks: Reporter {
    /// The plan is made (before approval); shown to people here.
    fn planned(&self, plan: &Plan);
    /// Approves a plan with work; `lost` names the data its deletes and replacements destroy.
    fn approve(&self, plan: &Plan, lost: &[String]) -> Result<(), Failure>;
    /// The approved apply of `total_ops` operations starts: its progress display and cancellation.
    fn apply_starting(&self, total_ops: usize) -> ApplyWiring;
    /// The run is over (state saved): its report, for people.
    fn finished(&self, report: &RunReport);
}

/// What a run did.
pub struct RunReport {
    pub run_id: String,
    /// `up`, `down` or `restore`.
    pub operation: &'static str,
    pub destroy: bool,
    pub environment: String,
    pub instance: Option<String>,
    /// `None`: the plan had nothing to do.
    pub apply: Option<ApplyReport>,
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    /// Outputs as state holds them now (sensitive ones sealed).
    pub outputs: BTreeMap<String, serde_json::Value>,
    pub state_serial: u64,
    pub state_bytes_written: u64,
    pub state_requests: u64,
    pub resources: usize,
    /// The apply's time (0 without work).
    pub elapsed_ms: u64,
    /// From the start of the command to state saved (a restore's recovery time).
    pub total_ms: u64,
    pub api_calls: BTreeMap<String, u64>,
    pub refresh_api_calls: BTreeMap<String, u64>,
    /// `restore`: the point, where to, and what came from which snapshot.
    pub restore: Option<(RestoreSpec, Vec<Restored>)>,
}

impl RunReport {
    pub fn is_success(&self) -> bool {
        self.apply.as_ref().is_none_or(ApplyReport::is_success)
    }

    pub fn interrupted(&self) -> bool {
        self.apply.as_ref().is_some_and(|a| a.interrupted)
    }

    /// How the command ends.
    pub fn exit(&self) -> Exit {
        if self.interrupted() {
            Exit::Interrupted
        } else if !self.is_success() {
            Exit::Error
        } else {
            Exit::Ok
        }
    }

    /// The `run_finished` event: one shape with or without work.
    pub fn finished_event(&self) -> Event {
        let failed = self
            .apply
            .iter()
            .flat_map(|a| &a.results)
            .filter_map(|r| match &r.outcome {
                Outcome::Failed { error } => Some(FailedOperation {
                    addr: r.addr.to_string(),
                    action: r.op.into(),
                    error: error.message.clone(),
                    error_kind: error.kind,
                }),
                _ => None,
            })
            .collect();
        Event::RunFinished {
            run_id: self.run_id.clone(),
            success: self.is_success(),
            interrupted: self.interrupted(),
            created: self.created,
            updated: self.updated,
            deleted: self.deleted,
            failed,
            skipped: self.apply.as_ref().map_or(0, ApplyReport::skipped),
            elapsed_ms: self.elapsed_ms,
            outputs: visible_outputs(&self.outputs),
            state_serial: self.state_serial,
            state_bytes_written: self.state_bytes_written,
            state_requests: self.state_requests,
            resources: self.resources,
            api_calls: self.api_calls.clone(),
            refresh_api_calls: self.refresh_api_calls.clone(),
        }
    }

    /// The `restore_finished` event of a successful restore.
    pub fn restore_event(&self) -> Option<Event> {
        // Only after an apply: a restore with nothing to do restored nothing.
        let (spec, restored) = self.restore.as_ref().filter(|_| self.apply.is_some() && self.is_success())?;
        Some(Event::RestoreFinished {
            point: spec.point.id.clone(),
            environment: self.environment.clone(),
            instance: self.instance.clone(),
            region: spec.region.clone(),
            recovery_time_ms: self.total_ms,
            restored: restored.iter().map(Into::into).collect(),
        })
    }
}

/// Outputs with sensitive ones as `"(sensitive)"`.
pub fn visible_outputs(outputs: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, serde_json::Value> {
    outputs
        .iter()
        .map(|(k, v)| (k.clone(), if is_sealed(v) { serde_json::Value::String("(sensitive)".into()) } else { v.clone() }))
        .collect()
}

/// Runs `up`, `down` or `restore` on `env`.
pub async fn run(env: &Env, opts: RunOptions, hooks: &dyn RunHooks) -> Result<RunReport, Failure> {
    let started = std::time::Instant::now();
    let destroy = opts.destroy;
    let operation = match (destroy, &opts.restore) {
        (true, _) => "down",
        (false, Some(_)) => "restore",
        (false, None) => "up",
    };
    if let Some(spec) = opts.restore.as_ref() {
        recovery::check_restorable(env, spec)?;
    }
    if opts.restore.is_none() {
        // Credentials and place resolved before anything is locked or written
        // (a restore configures after the lock: it may move the region first).
        let recorded = env.read_state().await?;
        env.configure_providers(&recorded)?;
        env.preflight(hooks, &recorded).await?;
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let (lock, mut state) = env.lock_state(operation, &run_id, opts.lock_timeout, hooks).await?;
    if state.created_at.is_none() {
        state.created_at = Some(chrono::Utc::now());
    }
    if let Some(ttl) = opts.ttl {
        // The expiry is durable before any object exists, so `gc` finds even
        // an instance whose first run is killed half-way.
        state.expires_at = Some(chrono::Utc::now() + ttl);
        state = lock.write(&state).await.map_err(state_failure)?;
    }
    if let Some(spec) = opts.restore.as_ref()
        && let Some(region) = spec.region.as_deref()
    {
        // Durable before any object is made there: later commands find them in that region.
        recovery::override_region(&mut state, &env.registry, region, spec.zone.as_deref())?;
        state = lock.write(&state).await.map_err(state_failure)?;
    }
    let saved = opts.saved_plan.as_deref();
    let saved_plan = saved.map(read_saved_plan).transpose()?;
    if let Some(p) = &saved_plan
        && state.serial == 0
        && state.is_empty()
    {
        // A plan made before the state existed names the lineage the new state takes.
        state.lineage = p.lineage.clone();
    }
    env.configure_providers(&state)?;
    if opts.restore.is_some() {
        env.preflight(hooks, &state).await?;
    }
    hooks.event(&Event::RunStarted {
        run_id: run_id.clone(),
        operation: operation.to_string(),
        environment: env.loaded.name.clone(),
        instance: env.loaded.instance.clone(),
        state: env.store().await?.location(),
        expires_at: state.expires_at,
    });
    let (plan, restored) = match &opts.restore {
        Some(spec) => recovery::plan_restore(env, &state, spec).await?,
        None => (make_plan(env, &state, destroy, &opts.scope).await?, Vec::new()),
    };
    let refresh_calls = env.api_calls();
    if let (Some(path), Some(saved_plan)) = (saved, &saved_plan) {
        check_saved_plan(path, saved_plan, &plan)?;
    }
    hooks.event(&Event::plan(&plan, refresh_calls.clone()));
    hooks.planned(&plan);
    let mut report = RunReport {
        run_id,
        operation,
        destroy,
        environment: env.loaded.name.clone(),
        instance: env.loaded.instance.clone(),
        apply: None,
        created: 0,
        updated: 0,
        deleted: 0,
        outputs: state.outputs.clone(),
        state_serial: state.serial,
        state_bytes_written: 0,
        state_requests: 0,
        resources: state.resources.len(),
        elapsed_ms: 0,
        total_ms: 0,
        api_calls: BTreeMap::new(),
        refresh_api_calls: refresh_calls,
        restore: opts.restore.map(|spec| (spec, restored)),
    };
    if !plan.has_work() {
        if destroy && state.is_empty() && opts.scope.is_everything() {
            drop(lock);
            leave_no_trace(env, opts.keep_history)?;
        }
        report.total_ms = started.elapsed().as_millis() as u64;
        report.api_calls = env.api_calls();
        finish(&report, hooks);
        return Ok(report);
    }
    hooks.approve(&plan, &data_lost(&plan, &state, &env.registry))?;

    let journal = lock.journal(state.clone()).await.map_err(state_failure)?;
    let ApplyWiring { progress, cancel } = hooks.apply_starting(operation_graph(&plan).len());
    let result =
        apply(&plan, &env.registry, journal.clone(), progress, ApplyOptions { parallelism: opts.parallelism.max(1), cancel }).await;
    // Fold the journal into the state document whatever happened: every recorded
    // operation must survive, including those of a failed or interrupted run.
    let final_state = journal.finish().await.map_err(state_failure)?;
    let applied = result.map_err(|e| Failure::new(Exit::Error, anyhow!("{e}")))?;
    let ok = |k: OpKind| applied.results.iter().filter(|r| r.op == k && r.outcome == Outcome::Succeeded).count();
    report.created = ok(OpKind::Create) + ok(OpKind::Adopt);
    report.updated = ok(OpKind::Update);
    report.deleted = ok(OpKind::Destroy);
    report.state_bytes_written = journal.bytes_written();
    report.state_requests = journal.requests();
    report.outputs = final_state.outputs.clone();
    report.state_serial = final_state.serial;
    report.resources = final_state.resources.len();
    report.api_calls = env.api_calls();
    report.elapsed_ms = applied.elapsed_ms;
    report.total_ms = started.elapsed().as_millis() as u64;
    let success = applied.is_success();
    report.apply = Some(applied);
    finish(&report, hooks);
    if success && destroy && opts.scope.is_everything() {
        if !final_state.is_empty() {
            let left: Vec<String> = final_state.resources.keys().map(ToString::to_string).collect();
            return Err(Failure::new(Exit::Error, anyhow!("destroy finished but these remain in state: {}", left.join(", "))));
        }
        drop(journal);
        drop(lock);
        leave_no_trace(env, opts.keep_history)?;
    }
    Ok(report)
}

/// Reports the end of a run: `run_finished` (and `restore_finished`), then the caller's rendering.
fn finish(report: &RunReport, hooks: &dyn RunHooks) {
    hooks.event(&report.finished_event());
    if let Some(restored) = report.restore_event() {
        hooks.event(&restored);
    }
    hooks.finished(report);
}

/// After a complete `down`: the local state directory goes (unless
/// --keep-history), and so do Phoenix's scratch directory of this environment
/// (if providers emptied it) and `.phoenix/` itself once nothing is left in it.
/// Recovery points (`.phoenix/state/@recovery/`) are kept.
fn leave_no_trace(env: &Env, keep_history: bool) -> Result<(), Failure> {
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

/// The data-holding objects (volumes, databases, stateful instances) the plan
/// deletes or replaces, as `addr (type) deleted`: their contents go with them.
fn data_lost(plan: &Plan, state: &phoenix_core::state::StateDoc, registry: &phoenix_core::provider::Registry) -> Vec<String> {
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
