//! Everything the CLI prints for people: plans, summaries, notes and errors.
//! Machine output (`--json`) is written by the commands as whole documents.

use console::style;
use phoenix_config::Diagnostics;
use phoenix_core::plan::{Action, AttrChange, Plan, PlannedChange};
use phoenix_core::value::{Value, is_known, is_sealed};

/// Longest value shown in full in a plan; longer ones are shortened.
const MAX_VALUE_CHARS: usize = 120;

#[derive(Debug, Clone)]
pub struct Printer {
    pub json: bool,
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
            let doc = serde_json::json!({"event": "error", "error": format!("{err:#}")});
            outln!("{doc}");
        } else {
            errln!("{} {err:#}", style("error:").red().bold());
        }
    }

    pub fn diagnostics(&self, d: &Diagnostics) {
        if self.json {
            let doc = serde_json::json!({"event": "invalid", "valid": false, "diagnostics": d.0});
            outln!("{doc}");
        } else {
            let color = console::colors_enabled_stderr();
            err!("{}", d.render(color));
            errln!("{} {} problem(s) found; nothing was changed", style("error:").red().bold(), d.len());
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
        crate::out::stdout_bytes(out.as_bytes());
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
