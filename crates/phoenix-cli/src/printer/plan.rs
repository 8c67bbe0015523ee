//! A plan as a reviewer reads it, in the shape Terraform users know:
//!
//! ```text
//!   ~ web-sg (aws.security_group) will be updated in place
//!       ~ ingress = [
//!           ~ {
//!                 cidr_blocks = ["10.0.0.0/8"]
//!               ~ from_port   = 80 -> 8080
//!                 protocol    = "tcp"
//!             },
//!             # (1 unchanged element hidden)
//!         ]
//!       ~ content = <<-EOT
//!             <!doctype html>
//!           - <title>Hello</title>
//!           + <title>Risen again</title>
//!         EOT
//! ```
//!
//! Multi-line strings are a line diff; lists and tables are indented blocks
//! with only what changes marked (`+`, `-`, `~`) and unchanged elements
//! counted, not shown. Nothing is shortened unless `--compact` asks for it.
//! Sensitive values are `(sensitive)` at every depth: a sensitive attribute
//! is never looked into, and a sealed value anywhere inside one is shown as
//! such. Objects that hold data and are destroyed or replaced are named in
//! a warning at the end, just above the confirmation prompt of `up`/`down`.

use console::style;
use phoenix_core::plan::{Action, AttrChange, Plan, PlannedChange};
use phoenix_core::value::{Value, is_known, is_sealed};
use similar::{Algorithm, ChangeTag, DiffOp, TextDiff, capture_diff_slices};

use super::show_value;

/// Lines of context kept around each changed part of a multi-line string.
const CONTEXT_LINES: usize = 3;

/// The whole plan as text (coloured if the terminal allows).
pub fn render(plan: &Plan, compact: bool) -> String {
    let mut r = Renderer { out: String::new(), compact };
    r.plan(plan);
    r.out
}

/// How one line of a block is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Add,
    Remove,
    Change,
    Same,
}

impl Mark {
    fn symbol(self) -> String {
        match self {
            Mark::Add => style("+").green().bold().to_string(),
            Mark::Remove => style("-").red().bold().to_string(),
            Mark::Change => style("~").yellow().bold().to_string(),
            Mark::Same => " ".to_string(),
        }
    }
}

/// The name a value is shown under, padded so that the `=` of a block line up.
#[derive(Clone, Copy)]
struct Key<'a> {
    name: &'a str,
    width: usize,
}

impl Key<'_> {
    fn prefix(key: Option<Key<'_>>) -> String {
        match key {
            Some(k) => format!("{:width$} = ", k.name, width = k.width),
            None => String::new(),
        }
    }
}

/// How a map key is written: bare when it reads as a name, else quoted.
fn key_text(k: &str) -> String {
    let bare = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { k.to_string() } else { Value::String(k.to_string()).to_string() }
}

fn sensitive_text() -> String {
    style("(sensitive)").dim().to_string()
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("{n} {what}") } else { format!("{n} {what}s") }
}

/// A scalar (or an empty/sealed container) on one line, with values not
/// known until apply marked as such.
fn scalar(v: &Value) -> String {
    if is_sealed(v) {
        return sensitive_text();
    }
    let text = v.to_string();
    if is_known(v) { text } else { format!("{text} {}", style("(known after apply)").dim()) }
}

fn is_multiline(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.contains('\n'))
}

/// Whether a value is shown as an indented block rather than on one line.
fn is_block(v: &Value) -> bool {
    !is_sealed(v)
        && match v {
            Value::Array(items) => !items.is_empty(),
            Value::Object(map) => !map.is_empty(),
            other => is_multiline(other),
        }
}

struct Renderer {
    out: String,
    compact: bool,
}

impl Renderer {
    fn line(&mut self, indent: usize, mark: Mark, text: &str) {
        self.out.push_str(&format!("{:indent$}{} {text}\n", "", mark.symbol()));
    }

    /// A comment line (`# (2 unchanged elements hidden)`) at the content column of a block.
    fn hidden(&mut self, indent: usize, n: usize, what: &str) {
        if n > 0 {
            let text = format!("# ({} hidden)", plural(n, &format!("unchanged {what}")));
            self.out.push_str(&format!("{:indent$}  {}\n", "", style(text).dim()));
        }
    }

    fn plan(&mut self, plan: &Plan) {
        let changed: Vec<&PlannedChange> = plan.changes.iter().filter(|c| c.action != Action::NoOp || c.adopt).collect();
        let target = match &plan.instance {
            Some(i) => format!("{} (instance {i})", plan.environment),
            None => plan.environment.clone(),
        };
        if !plan.has_work() {
            self.out.push_str(&format!("{} {target} matches its definition.\n", style("No changes.").green().bold()));
            return;
        }
        self.out.push_str(&format!("Phoenix will perform these actions on {}:\n\n", style(&target).bold()));
        for c in changed {
            self.change(c);
        }
        for a in &plan.stale_intents {
            self.out.push_str(&format!("  {} {a}: forget an interrupted create that left nothing behind\n\n", style("•").dim()));
        }
        for a in &plan.gone {
            self.out.push_str(&format!("  {} {a}: forget an object that no longer exists\n\n", style("•").dim()));
        }
        let s = plan.summary();
        self.out.push_str(&format!(
            "{} {} to create, {} to update, {} to replace, {} to delete.\n",
            style("Plan:").bold(),
            style(s.create).green(),
            style(s.update).yellow(),
            style(s.replace).magenta(),
            style(s.delete).red()
        ));
        self.outputs(plan);
        self.data_warning(plan);
    }

    fn change(&mut self, c: &PlannedChange) {
        let (sym, verb) = match (c.action, c.create_before_destroy) {
            (Action::Create, _) => (style("+").green().bold(), "will be created"),
            (Action::Update, _) => (style("~").yellow().bold(), "will be updated in place"),
            (Action::Replace, true) => (style("+/-").magenta().bold(), "will be replaced (new one first)"),
            (Action::Replace, false) => (style("-/+").magenta().bold(), "will be replaced"),
            (Action::Delete, _) if c.deposed => (style("-").red().bold(), "(old object of a replacement) will be destroyed"),
            (Action::Delete, _) => (style("-").red().bold(), "will be destroyed"),
            (Action::NoOp, _) => (style("•").cyan().bold(), "will be recorded"),
        };
        self.out.push_str(&format!("  {sym} {} ({}) {verb}\n", style(&c.addr).bold(), c.type_name));
        for r in &c.reasons {
            self.out.push_str(&format!("      {}\n", style(format!("# {r}")).dim()));
        }
        let width = c.changes.iter().map(|a| a.name.len()).max().unwrap_or(0);
        for a in &c.changes {
            self.attr(a, width, c.action);
        }
        self.out.push('\n');
    }

    /// One attribute of a resource: its lines at indent 6.
    fn attr(&mut self, a: &AttrChange, width: usize, action: Action) {
        let forces = if a.forces_replacement { format!("  {}", style("# forces replacement").magenta()) } else { String::new() };
        // A create lists what will be set, whatever state said before.
        let before = if action == Action::Create { None } else { a.before.as_ref() };
        self.named_change(6, Key { name: &a.name, width }, before, a.after.as_ref(), a.sensitive, &forces);
    }

    /// A named value going from `before` to `after` (`None`: unset).
    fn named_change(&mut self, indent: usize, key: Key<'_>, before: Option<&Value>, after: Option<&Value>, sensitive: bool, suffix: &str) {
        let k = Key::prefix(Some(key));
        if sensitive {
            let mark = match (before, after) {
                (None, _) => Mark::Add,
                (_, None) => Mark::Remove,
                _ => Mark::Change,
            };
            return self.line(indent, mark, &format!("{k}{}{suffix}", sensitive_text()));
        }
        if self.compact {
            let shown = |v: Option<&Value>| v.map_or_else(|| style("(unset)").dim().to_string(), show_value);
            return match (before, after) {
                (None, after) => self.line(indent, Mark::Add, &format!("{k}{}{suffix}", shown(after))),
                (before, None) => self.line(indent, Mark::Remove, &format!("{k}{}{suffix}", shown(before))),
                (before, after) => self.line(indent, Mark::Change, &format!("{k}{} -> {}{suffix}", shown(before), shown(after))),
            };
        }
        match (before, after) {
            (None, None) => {}
            (None, Some(v)) => self.value(indent, Mark::Add, Some(key), v, "", suffix),
            (Some(v), None) => self.value(indent, Mark::Remove, Some(key), v, "", suffix),
            (Some(b), Some(a)) => self.diff(indent, Some(key), b, a, "", suffix),
        }
    }

    /// A whole value, every line of it carrying `mark` (a created, removed
    /// or unchanged value). `comma` follows list elements.
    fn value(&mut self, indent: usize, mark: Mark, key: Option<Key<'_>>, v: &Value, comma: &str, suffix: &str) {
        let k = Key::prefix(key);
        if !is_block(v) {
            return self.line(indent, mark, &format!("{k}{}{comma}{suffix}", scalar(v)));
        }
        // Inside a value, the lines of what is added or removed carry the same mark.
        let inner = if mark == Mark::Change { Mark::Same } else { mark };
        match v {
            Value::String(s) => {
                self.line(indent, mark, &format!("{k}<<-EOT{suffix}"));
                for l in s.strip_suffix('\n').unwrap_or(s).split('\n') {
                    self.line(indent + 4, Mark::Same, l);
                }
                self.out.push_str(&format!("{:w$}EOT{comma}\n", "", w = indent + 2));
            }
            Value::Array(items) => {
                self.line(indent, mark, &format!("{k}[{suffix}"));
                for item in items {
                    self.value(indent + 4, inner, None, item, ",", "");
                }
                self.out.push_str(&format!("{:w$}]{comma}\n", "", w = indent + 2));
            }
            Value::Object(map) => {
                self.line(indent, mark, &format!("{k}{{{suffix}"));
                let keys: Vec<String> = map.keys().map(|k| key_text(k)).collect();
                let width = keys.iter().map(String::len).max().unwrap_or(0);
                for (name, item) in keys.iter().zip(map.values()) {
                    self.value(indent + 4, inner, Some(Key { name, width }), item, "", "");
                }
                self.out.push_str(&format!("{:w$}}}{comma}\n", "", w = indent + 2));
            }
            _ => unreachable!("scalars are one line"),
        }
    }

    /// A value that changes: a line diff, a block with what changed marked,
    /// or `before -> after` on one line.
    fn diff(&mut self, indent: usize, key: Option<Key<'_>>, before: &Value, after: &Value, comma: &str, suffix: &str) {
        let k = Key::prefix(key);
        if is_sealed(before) || is_sealed(after) {
            return self.line(indent, Mark::Change, &format!("{k}{}{comma}{suffix}", sensitive_text()));
        }
        match (before, after) {
            (Value::String(b), Value::String(a)) if is_multiline(before) || is_multiline(after) => {
                self.line(indent, Mark::Change, &format!("{k}<<-EOT{suffix}"));
                self.text_diff(indent + 4, b, a);
                self.out.push_str(&format!("{:w$}EOT{comma}\n", "", w = indent + 2));
            }
            (Value::Array(b), Value::Array(a)) if !b.is_empty() && !a.is_empty() => {
                self.line(indent, Mark::Change, &format!("{k}[{suffix}"));
                self.list_diff(indent + 4, b, a);
                self.out.push_str(&format!("{:w$}]{comma}\n", "", w = indent + 2));
            }
            (Value::Object(b), Value::Object(a)) if !b.is_empty() && !a.is_empty() => {
                self.line(indent, Mark::Change, &format!("{k}{{{suffix}"));
                // An element of a list has no name: its unchanged attributes
                // are what tells the reviewer which one it is (which rule).
                self.map_diff(indent + 4, b, a, key.is_none());
                self.out.push_str(&format!("{:w$}}}{comma}\n", "", w = indent + 2));
            }
            _ if is_block(before) || is_block(after) => {
                // A change of shape (a list becoming empty, a string becoming a list): the old, then the new.
                self.value(indent, Mark::Remove, key, before, comma, suffix);
                self.value(indent, Mark::Add, key, after, comma, "");
            }
            _ => self.line(indent, Mark::Change, &format!("{k}{} -> {}{comma}{suffix}", scalar(before), scalar(after))),
        }
    }

    /// Lines removed and added, with a little unchanged context around them.
    fn text_diff(&mut self, indent: usize, before: &str, after: &str) {
        let diff = TextDiff::configure().algorithm(Algorithm::Myers).diff_lines(before, after);
        let total = diff.old_slices().len();
        let mut shown_to = 0;
        for group in diff.grouped_ops(CONTEXT_LINES) {
            let Some(first) = group.first() else { continue };
            self.hidden(indent, first.old_range().start - shown_to, "line");
            for op in &group {
                for change in diff.iter_changes(op) {
                    let mark = match change.tag() {
                        ChangeTag::Delete => Mark::Remove,
                        ChangeTag::Insert => Mark::Add,
                        ChangeTag::Equal => Mark::Same,
                    };
                    let text = change.value();
                    let text = text.strip_suffix('\n').unwrap_or(text);
                    self.line(indent, mark, text);
                }
            }
            shown_to = group.last().map_or(shown_to, |op| op.old_range().end);
        }
        self.hidden(indent, total.saturating_sub(shown_to), "line");
    }

    /// Elements compared in order; a run of removed elements facing a run of
    /// added ones is shown as changed elements, pairwise, where both are
    /// blocks of the same shape (a rule with one port changed).
    fn list_diff(&mut self, indent: usize, before: &[Value], after: &[Value]) {
        let old: Vec<String> = before.iter().map(Value::to_string).collect();
        let new: Vec<String> = after.iter().map(Value::to_string).collect();
        let mut same = 0;
        for op in capture_diff_slices(Algorithm::Myers, &old, &new) {
            if let DiffOp::Equal { len, .. } = op {
                same += len;
                continue;
            }
            self.hidden(indent, std::mem::take(&mut same), "element");
            let (removed, added) = (&before[op.old_range()], &after[op.new_range()]);
            let paired = removed.iter().zip(added).take_while(|(b, a)| same_shape(b, a)).count();
            for (b, a) in removed.iter().zip(added).take(paired) {
                self.diff(indent, None, b, a, ",", "");
            }
            for b in &removed[paired..] {
                self.value(indent, Mark::Remove, None, b, ",", "");
            }
            for a in &added[paired..] {
                self.value(indent, Mark::Add, None, a, ",", "");
            }
        }
        self.hidden(indent, same, "element");
    }

    /// Keys in order: added, removed and changed ones marked; unchanged ones
    /// shown plain (`show_same`) or counted.
    fn map_diff(
        &mut self,
        indent: usize,
        before: &serde_json::Map<String, Value>,
        after: &serde_json::Map<String, Value>,
        show_same: bool,
    ) {
        let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
        names.sort();
        names.dedup();
        let width = names.iter().filter(|n| show_same || before.get(**n) != after.get(**n)).map(|n| key_text(n).len()).max().unwrap_or(0);
        let mut same = 0;
        for name in names {
            let text = key_text(name);
            let key = Some(Key { name: &text, width });
            match (before.get(name), after.get(name)) {
                (Some(b), Some(a)) if b == a => {
                    if show_same {
                        self.value(indent, Mark::Same, key, b, "", "");
                    } else {
                        same += 1;
                    }
                }
                (Some(b), Some(a)) => self.diff(indent, key, b, a, "", ""),
                (Some(b), None) => self.value(indent, Mark::Remove, key, b, "", ""),
                (None, Some(a)) => self.value(indent, Mark::Add, key, a, "", ""),
                (None, None) => {}
            }
        }
        self.hidden(indent, same, "element");
    }

    /// "Changes to outputs:", against the outputs state recorded.
    fn outputs(&mut self, plan: &Plan) {
        let changes = plan.output_changes();
        if changes.is_empty() {
            return;
        }
        self.out.push_str("\nChanges to outputs:\n");
        let width = changes.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in changes {
            self.named_change(2, Key { name: c.name, width }, c.before, c.after, c.sensitive, "");
        }
    }

    /// The objects holding data that the plan destroys or replaces, named
    /// in a box that stands out from the plan above it.
    fn data_warning(&mut self, plan: &Plan) {
        let lost: Vec<&PlannedChange> = plan.data_losses().collect();
        if lost.is_empty() {
            return;
        }
        let bar = style("│").yellow().bold();
        let mut lines = vec![
            format!(
                "{} {} that hold{} data will be {}",
                style("Warning:").yellow().bold(),
                plural(lost.len(), "object"),
                if lost.len() == 1 { "s" } else { "" },
                if lost.iter().all(|c| c.action == Action::Delete) { "destroyed" } else { "destroyed or replaced" }
            ),
            String::new(),
        ];
        for c in &lost {
            let what = if c.action == Action::Replace { "replaced" } else { "destroyed" };
            let why = c.reasons.first().map(|r| format!(" ({r})")).unwrap_or_default();
            lines.push(format!("  - {} ({}) will be {what}{why}", style(&c.addr).bold(), c.type_name));
        }
        let instance = plan.instance.as_ref().map(|i| format!(" --instance {i}")).unwrap_or_default();
        lines.extend([
            String::new(),
            "Their contents go with them: Phoenix cannot make them again from the".to_string(),
            "definition. Take a recovery point first if you may need them:".to_string(),
            format!("  phoenix snapshot {}{instance}", plan.environment),
        ]);
        self.out.push_str(&format!("\n{}\n", style("╷").yellow().bold()));
        for l in lines {
            if l.is_empty() {
                self.out.push_str(&format!("{bar}\n"));
            } else {
                self.out.push_str(&format!("{bar} {l}\n"));
            }
        }
        self.out.push_str(&format!("{}\n", style("╵").yellow().bold()));
    }
}

/// Whether two list elements are shown as one changed element.
fn same_shape(a: &Value, b: &Value) -> bool {
    matches!((a, b), (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_)))
        || (a.is_string() && b.is_string() && (is_multiline(a) || is_multiline(b)))
}

#[cfg(test)]
mod tests;
