//! A plan is a value: what will change, attribute by attribute, computed
//! against a given state serial. It is shown, saved, compared and executed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::addr::ResourceAddr;
use crate::schema::ResourceSchema;
use crate::state::ResourceState;
use crate::value::{Attrs, Value, is_known, is_sealed, seal, unescape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::NoOp => "no-op",
        })
    }
}

/// One attribute that changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttrChange {
    pub name: String,
    /// `None`: not set before.
    pub before: Option<Value>,
    /// `None`: unset by the change. A string still holding `${...}` is known after apply.
    pub after: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forces_replacement: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// One resource's planned change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedChange {
    pub addr: ResourceAddr,
    #[serde(rename = "type")]
    pub type_name: String,
    pub action: Action,
    /// Why, when it is not obvious: drift, a vanished object, adoption, taint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<AttrChange>,
    /// Desired inputs with references resolved where known. Sensitive values are
    /// in clear here (the executor needs them) and sealed by [`Plan::redacted`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Attrs>,
    /// What state held before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<ResourceState>,
    /// What the resource needs, per the definition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceAddr>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_before_destroy: bool,
    /// The change destroys the deposed (old) object of an earlier replacement.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deposed: bool,
    /// The object was found by its ownership marks after an interrupted run; apply records it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
    /// Names of sensitive attributes, so renderers and redaction need no schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
    /// The change deletes or replaces an object whose contents a new one
    /// would not have (a volume, a database, a stateful instance), per its
    /// provider's recovery facet: a plan names these prominently. Decided by
    /// the planner, which has the providers, so a saved plan shows it too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub loses_data: bool,
}

/// An output's planned value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedOutput {
    pub value: Value,
    #[serde(default)]
    pub sensitive: bool,
}

/// How one output changes from what state recorded to what the plan makes.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputChange<'a> {
    pub name: &'a str,
    /// `None`: not recorded before.
    pub before: Option<&'a Value>,
    /// `None`: the output goes (no longer declared, or a destroy).
    pub after: Option<&'a Value>,
    pub sensitive: bool,
}

/// Counts by action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Summary {
    pub fn has_changes(&self) -> bool {
        self.create + self.update + self.replace + self.delete > 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to create, {} to update, {} to replace, {} to delete, {} unchanged",
            self.create, self.update, self.replace, self.delete, self.unchanged
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub lineage: String,
    /// The instance's expiry (`--ttl`), tagged onto every object it creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The state serial the plan was computed against; applying a saved plan
    /// against any other serial is refused.
    pub state_serial: u64,
    pub destroy: bool,
    /// In dependency order (creates after what they need; deletes listed after creates).
    pub changes: Vec<PlannedChange>,
    pub outputs: BTreeMap<String, PlannedOutput>,
    /// Announced creates of resources no longer declared and not found: cleared on apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale_intents: Vec<ResourceAddr>,
    /// Recorded objects the refresh found gone that nothing recreates (a
    /// destroy, or no longer declared) — e.g. a delete that ran but whose run
    /// was killed before recording it: forgotten on apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gone: Vec<ResourceAddr>,
    /// The outputs state held when the plan was made (sensitive ones sealed),
    /// so a plan can show how they change, or that they go (a destroy).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prior_outputs: BTreeMap<String, Value>,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
                Action::NoOp => s.unchanged += 1,
            }
        }
        s
    }

    /// Whether applying would do anything at all (including recording adopted objects).
    pub fn has_work(&self) -> bool {
        self.summary().has_changes() || self.changes.iter().any(|c| c.adopt) || !self.stale_intents.is_empty() || !self.gone.is_empty()
    }

    /// The plan with every sensitive value sealed: what may be printed or saved.
    pub fn redacted(&self) -> Plan {
        let mut plan = self.clone();
        for c in &mut plan.changes {
            for a in &mut c.changes {
                if a.sensitive {
                    a.before = a.before.as_ref().map(|v| seal(v, &self.lineage));
                    a.after = a.after.as_ref().map(|v| seal(v, &self.lineage));
                }
            }
            if let Some(d) = &mut c.desired {
                for name in &c.sensitive {
                    if let Some(v) = d.get_mut(name) {
                        *v = seal(v, &self.lineage);
                    }
                }
            }
        }
        for (name, o) in plan.outputs.iter_mut() {
            if o.sensitive {
                o.value = seal(&o.value, &self.lineage);
                // State seals what was sensitive when recorded; an output made
                // sensitive since is sealed here too.
                if let Some(v) = plan.prior_outputs.get_mut(name) {
                    *v = seal(v, &self.lineage);
                }
            }
        }
        plan
    }

    /// The outputs that change, by name: new ones, changed ones (a value
    /// not yet known counts as changed), and those that go.
    pub fn output_changes(&self) -> Vec<OutputChange<'_>> {
        let mut out = Vec::new();
        for (name, o) in &self.outputs {
            let before = self.prior_outputs.get(name);
            let same = before.is_some_and(|b| {
                // A redacted plan holds the sealed value already.
                if is_sealed(&o.value) {
                    return *b == o.value;
                }
                if !is_known(&o.value) {
                    return false;
                }
                // What the executor will record: unescaped, sealed if sensitive.
                let v = unescape(&o.value);
                if o.sensitive { *b == seal(&v, &self.lineage) } else { *b == v }
            });
            if !same {
                out.push(OutputChange { name, before, after: Some(&o.value), sensitive: o.sensitive || before.is_some_and(is_sealed) });
            }
        }
        for (name, v) in &self.prior_outputs {
            if !self.outputs.contains_key(name) {
                out.push(OutputChange { name, before: Some(v), after: None, sensitive: is_sealed(v) });
            }
        }
        out.sort_by(|a, b| a.name.cmp(b.name));
        out
    }

    /// The changes that delete or replace an object holding data.
    pub fn data_losses(&self) -> impl Iterator<Item = &PlannedChange> {
        self.changes.iter().filter(|c| c.loses_data && matches!(c.action, Action::Delete | Action::Replace))
    }

    /// A digest of what the plan would do, to check a saved plan still holds.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let redacted = self.redacted();
        let json = serde_json::to_string(&(&redacted.changes, &redacted.outputs, redacted.destroy)).unwrap_or_default();
        Sha256::digest(json.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Seals the sensitive attributes of `inputs` per `schema`.
pub fn seal_sensitive(schema: Option<&ResourceSchema>, inputs: &Attrs, salt: &str) -> Attrs {
    let Some(schema) = schema else { return inputs.clone() };
    inputs
        .iter()
        .map(|(k, v)| {
            let sensitive = schema.attr(k).is_some_and(|a| a.sensitive);
            (k.clone(), if sensitive { seal(v, salt) } else { v.clone() })
        })
        .collect()
}
