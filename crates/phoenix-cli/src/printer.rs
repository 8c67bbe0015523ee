//! Everything the CLI prints for people: plans, summaries, notes and errors.
//! Machine output (`--json`) is one [`Event`] per line, written by [`emit`] only.

use console::style;
use phoenix_config::Diagnostics;
use phoenix_core::plan::Plan;
use phoenix_core::value::{Value, is_known, is_sealed};
use phoenix_engine::event::Event;

mod plan;

/// Longest value shown in full with `--compact` (and in drift lines); longer ones are shortened.
const MAX_VALUE_CHARS: usize = 120;

/// Writes one `--json` line: the only place the CLI writes machine output.
pub fn emit(event: &Event) {
    outln!("{}", event.to_line());
}

#[derive(Debug, Clone)]
pub struct Printer {
    pub json: bool,
    /// `--compact`: plans show one shortened line per attribute.
    pub compact: bool,
}

/// The engine's events: written as lines with `--json`, else the few that
/// people see as they happen (the rest are rendered from the final reports);
/// its notes go to people only.
impl phoenix_engine::report::Reporter for Printer {
    fn event(&self, event: &Event) {
        if self.json {
            emit(event);
        } else {
            render_event(event);
        }
    }
    fn note(&self, text: &str) {
        Printer::note(self, text);
    }
}

impl Printer {
    /// A diagnostic-free note for people (stderr, so stdout stays clean for pipes).
    pub fn note(&self, msg: &str) {
        if !self.json {
            errln!("{} {msg}", style("note:").cyan().bold());
        }
    }

    pub fn error(&self, err: &anyhow::Error) {
        if self.json {
            emit(&Event::Error { error: format!("{err:#}") });
        } else {
            errln!("{} {err:#}", style("error:").red().bold());
        }
    }

    pub fn diagnostics(&self, d: &Diagnostics) {
        if self.json {
            emit(&Event::Invalid { diagnostics: serde_json::to_value(&d.0).unwrap_or_default() });
        } else {
            let color = console::colors_enabled_stderr();
            err!("{}", d.render(color));
            errln!("{} {} problem(s) found; nothing was changed", style("error:").red().bold(), d.len());
        }
    }

    /// Prints a plan for review: see [`plan`].
    pub fn plan(&self, plan: &Plan) {
        crate::out::stdout_bytes(plan::render(plan, self.compact).as_bytes());
    }
}

/// A value on one line: JSON, shortened, sealed values at any depth as
/// `(sensitive)`, with references marked as known after apply.
pub fn show_value(v: &Value) -> String {
    if is_sealed(v) {
        return style("(sensitive)".to_string()).dim().to_string();
    }
    let text = one_line(v);
    let text = if text.chars().count() > MAX_VALUE_CHARS {
        let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}… ({} chars)", text.chars().count())
    } else {
        text
    };
    if is_known(v) { text } else { format!("{text} {}", style("(known after apply)").dim()) }
}

/// JSON text, but a sealed value inside is `(sensitive)`, never its digest.
fn one_line(v: &Value) -> String {
    match v {
        _ if is_sealed(v) => "(sensitive)".to_string(),
        Value::Array(items) => format!("[{}]", items.iter().map(one_line).collect::<Vec<_>>().join(",")),
        Value::Object(map) => {
            format!(
                "{{{}}}",
                map.iter().map(|(k, v)| format!("{}:{}", Value::String(k.clone()), one_line(v))).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

/// An event a workflow reports mid-way, as people read it.
fn render_event(event: &Event) {
    let who = |env: &str, instance: &Option<String>| match instance {
        Some(i) => format!("{env} --instance {i}"),
        None => env.to_string(),
    };
    match event {
        Event::Error { error } => errln!("{} {error}", style("error:").red().bold()),
        Event::SnapshotStarted { id, environment, snapshots } => {
            errln!("Taking recovery point {} of {environment}: {snapshots} snapshot(s)", style(id).bold());
        }
        Event::Log { addr, line } => errln!("  {} {line}", style(format!("{addr}:")).dim()),
        Event::GcExpired { environment, instance, expires_at, resources, dry_run } => {
            let due = expires_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default();
            outln!(
                "{} {}: expired at {due}, {resources} resource(s)",
                style(if *dry_run { "would destroy" } else { "destroying" }).bold(),
                who(environment, instance)
            );
        }
        Event::GcLeak { resource_type, id, environment, instance, resource, lineage, .. } => outln!(
            "{} {resource_type} {id}  ({}, resource {resource}, lineage {lineage}) is in no state",
            style("leak:").yellow().bold(),
            who(environment, instance)
        ),
        Event::GcLeakDeleted { resource_type, id } => outln!("{} {resource_type} {id}", style("destroyed leak").green()),
        Event::GcLeakDeleteFailed { resource_type, id, error } => {
            errln!("{} {resource_type} {id}: {error}", style("could not destroy leak").red().bold());
        }
        Event::GcFinished { expired, leaks, deleted_leaks, left_alone, unsupported_types, dry_run, .. } => {
            outln!(
                "gc: {expired} expired instance(s), {leaks} leaked object(s){}{}.",
                if *dry_run { " (dry run: nothing was changed)".to_string() } else { format!(", {deleted_leaks} destroyed") },
                if *left_alone > 0 {
                    format!("; {left_alone} tagged object(s) of runs in progress or other environments left alone")
                } else {
                    String::new()
                }
            );
            if !unsupported_types.is_empty() {
                outln!("not swept (the provider cannot list them yet): {}", unsupported_types.join(", "));
            }
        }
        _ => {}
    }
}
