//! Everything the CLI prints for people: plans, summaries, notes and errors.
//! Machine output (`--json`) is written by the commands as whole documents.

use std::io::Write;

use console::style;
use phoenix_config::Diagnostics;
use phoenix_core::plan::Plan;
use phoenix_core::value::{Value, is_known, is_sealed};

mod plan;

/// Longest value shown in full with `--compact` (and in drift lines); longer ones are shortened.
const MAX_VALUE_CHARS: usize = 120;

#[derive(Debug, Clone)]
pub struct Printer {
    pub json: bool,
    /// `--compact`: plans show one shortened line per attribute.
    pub compact: bool,
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
            let doc = serde_json::json!({"event": "error", "error": format!("{err:#}")});
            println!("{doc}");
        } else {
            eprintln!("{} {err:#}", style("error:").red().bold());
        }
    }

    pub fn diagnostics(&self, d: &Diagnostics) {
        if self.json {
            let doc = serde_json::json!({"event": "invalid", "valid": false, "diagnostics": d.0});
            println!("{doc}");
        } else {
            let color = console::colors_enabled_stderr();
            eprint!("{}", d.render(color));
            eprintln!("{} {} problem(s) found; nothing was changed", style("error:").red().bold(), d.len());
        }
    }

    /// Prints a plan for review: see [`plan`].
    pub fn plan(&self, plan: &Plan) {
        let _ = std::io::stdout().write_all(plan::render(plan, self.compact).as_bytes());
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
