//! Everything the CLI prints for people: plans, summaries, notes and errors.
//! Machine output (`--json`) is one [`Event`] per line, written by [`emit`] only.

use std::io::Write;

use console::style;
use phoenix_config::Diagnostics;
use phoenix_core::plan::{Action, AttrChange, Plan, PlannedChange};
use phoenix_core::value::{Value, is_known, is_sealed};
use phoenix_engine::event::Event;

/// Longest value shown in full in a plan; longer ones are shortened.
const MAX_VALUE_CHARS: usize = 120;

/// Writes one `--json` line: the only place the CLI writes machine output.
pub fn emit(event: &Event) {
    println!("{}", event.to_line());
}

#[derive(Debug, Clone)]
pub struct Printer {
    pub json: bool,
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
            eprintln!("{} {msg}", style("note:").cyan().bold());
        }
    }

    pub fn error(&self, err: &anyhow::Error) {
        if self.json {
            emit(&Event::Error { error: format!("{err:#}") });
        } else {
            eprintln!("{} {err:#}", style("error:").red().bold());
        }
    }

    pub fn diagnostics(&self, d: &Diagnostics) {
        if self.json {
            emit(&Event::Invalid { diagnostics: serde_json::to_value(&d.0).unwrap_or_default() });
        } else {
            let color = console::colors_enabled_stderr();
            eprint!("{}", d.render(color));
            eprintln!("{} {} problem(s) found; nothing was changed", style("error:").red().bold(), d.len());
        }
    }

    /// Prints a plan as an attribute-level diff.
    pub fn plan(&self, plan: &Plan) {
        let mut out = String::new();
        let changed: Vec<&PlannedChange> = plan.changes.iter().filter(|c| c.action != Action::NoOp || c.adopt).collect();
        let target = match &plan.instance {
            Some(i) => format!("{} (instance {i})", plan.environment),
            None => plan.environment.clone(),
        };
        if changed.is_empty() && plan.stale_intents.is_empty() && plan.gone.is_empty() {
            out.push_str(&format!("{} {target} matches its definition.\n", style("No changes.").green().bold()));
        } else {
            out.push_str(&format!("Phoenix will perform these actions on {}:\n\n", style(&target).bold()));
            for c in changed {
                render_change(&mut out, c);
            }
            for a in &plan.stale_intents {
                out.push_str(&format!("  {} {a}: forget an interrupted create that left nothing behind\n\n", style("•").dim()));
            }
            for a in &plan.gone {
                out.push_str(&format!("  {} {a}: forget an object that no longer exists\n\n", style("•").dim()));
            }
            let s = plan.summary();
            out.push_str(&format!(
                "{} {} to create, {} to update, {} to replace, {} to delete.\n",
                style("Plan:").bold(),
                style(s.create).green(),
                style(s.update).yellow(),
                style(s.replace).magenta(),
                style(s.delete).red()
            ));
        }
        if !plan.outputs.is_empty() && !plan.destroy {
            out.push_str("\nOutputs:\n");
            for (name, o) in &plan.outputs {
                let v = if o.sensitive { style("(sensitive)".to_string()).dim().to_string() } else { show_value(&o.value) };
                out.push_str(&format!("  {name} = {v}\n"));
            }
        }
        let _ = std::io::stdout().write_all(out.as_bytes());
    }
}

fn render_change(out: &mut String, c: &PlannedChange) {
    let (sym, verb) = match (c.action, c.create_before_destroy) {
        (Action::Create, _) => (style("+").green().bold(), "will be created".to_string()),
        (Action::Update, _) => (style("~").yellow().bold(), "will be updated in place".to_string()),
        (Action::Replace, true) => (style("+/-").magenta().bold(), "will be replaced (new one first)".to_string()),
        (Action::Replace, false) => (style("-/+").magenta().bold(), "will be replaced".to_string()),
        (Action::Delete, _) if c.deposed => (style("-").red().bold(), "(old object of a replacement) will be destroyed".to_string()),
        (Action::Delete, _) => (style("-").red().bold(), "will be destroyed".to_string()),
        (Action::NoOp, _) => (style("•").cyan().bold(), "will be recorded".to_string()),
    };
    out.push_str(&format!("  {sym} {} ({}) {verb}\n", style(&c.addr).bold(), c.type_name));
    for r in &c.reasons {
        out.push_str(&format!("      {}\n", style(format!("# {r}")).dim()));
    }
    let width = c.changes.iter().map(|a| a.name.len()).max().unwrap_or(0);
    for a in &c.changes {
        out.push_str(&format!("      {}\n", render_attr(a, width, c.action)));
    }
    out.push('\n');
}

fn render_attr(a: &AttrChange, width: usize, action: Action) -> String {
    let shown = |v: &Option<Value>| match v {
        _ if a.sensitive => style("(sensitive)".to_string()).dim().to_string(),
        None => style("(unset)".to_string()).dim().to_string(),
        Some(v) => show_value(v),
    };
    let name = format!("{:width$}", a.name, width = width);
    let forces = if a.forces_replacement { format!("  {}", style("# forces replacement").magenta()) } else { String::new() };
    match (&a.before, action) {
        (None, _) | (_, Action::Create) => format!("{} {name} = {}", style("+").green(), shown(&a.after)),
        (Some(_), _) if a.after.is_none() => format!("{} {name} = {}", style("-").red(), shown(&a.before)),
        _ => format!("{} {name} = {} -> {}{forces}", style("~").yellow(), shown(&a.before), shown(&a.after)),
    }
}

/// A value for a plan line: JSON, shortened, with references marked as known after apply.
pub fn show_value(v: &Value) -> String {
    if is_sealed(v) {
        return style("(sensitive)".to_string()).dim().to_string();
    }
    let text = v.to_string();
    let text = if text.chars().count() > MAX_VALUE_CHARS {
        let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
        format!("{cut}… ({} chars)", text.chars().count())
    } else {
        text
    };
    if is_known(v) { text } else { format!("{text} {}", style("(known after apply)").dim()) }
}

/// An event a workflow reports mid-way, as people read it.
fn render_event(event: &Event) {
    let who = |env: &str, instance: &Option<String>| match instance {
        Some(i) => format!("{env} --instance {i}"),
        None => env.to_string(),
    };
    match event {
        Event::Error { error } => eprintln!("{} {error}", style("error:").red().bold()),
        Event::SnapshotStarted { id, environment, snapshots } => {
            eprintln!("Taking recovery point {} of {environment}: {snapshots} snapshot(s)", style(id).bold());
        }
        Event::Log { addr, line } => eprintln!("  {} {line}", style(format!("{addr}:")).dim()),
        Event::GcExpired { environment, instance, expires_at, resources, dry_run } => {
            let due = expires_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default();
            println!(
                "{} {}: expired at {due}, {resources} resource(s)",
                style(if *dry_run { "would destroy" } else { "destroying" }).bold(),
                who(environment, instance)
            );
        }
        Event::GcLeak { resource_type, id, environment, instance, resource, lineage, .. } => println!(
            "{} {resource_type} {id}  ({}, resource {resource}, lineage {lineage}) is in no state",
            style("leak:").yellow().bold(),
            who(environment, instance)
        ),
        Event::GcLeakDeleted { resource_type, id } => println!("{} {resource_type} {id}", style("destroyed leak").green()),
        Event::GcLeakDeleteFailed { resource_type, id, error } => {
            eprintln!("{} {resource_type} {id}: {error}", style("could not destroy leak").red().bold());
        }
        Event::GcFinished { expired, leaks, deleted_leaks, left_alone, unsupported_types, dry_run, .. } => {
            println!(
                "gc: {expired} expired instance(s), {leaks} leaked object(s){}{}.",
                if *dry_run { " (dry run: nothing was changed)".to_string() } else { format!(", {deleted_leaks} destroyed") },
                if *left_alone > 0 {
                    format!("; {left_alone} tagged object(s) of runs in progress or other environments left alone")
                } else {
                    String::new()
                }
            );
            if !unsupported_types.is_empty() {
                println!("not swept (the provider cannot list them yet): {}", unsupported_types.join(", "));
            }
        }
        _ => {}
    }
}
