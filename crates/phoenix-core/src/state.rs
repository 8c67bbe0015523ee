//! The state document and the journal records that change it.
//!
//! A run never rewrites the document per resource: each operation appends one
//! [`JournalRecord`] (durable before dependents start), and the backend folds
//! the journal into the document at the end of the run. Replaying the journal
//! with [`StateDoc::apply_record`] is also how a crashed run is recovered.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::addr::ResourceAddr;
use crate::value::{Attrs, Value};

pub const STATE_FORMAT_VERSION: u32 = 1;

/// What Phoenix knows of one remote object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    #[serde(rename = "type")]
    pub type_name: String,
    /// Configured attributes as last applied (sensitive ones sealed).
    pub inputs: Attrs,
    /// Attributes the provider computed (ids, addresses, pids).
    pub outputs: Attrs,
    /// What this object needed when it was made: destroy runs in the reverse order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceAddr>,
    /// A create that failed half-way: the object exists but must be replaced.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tainted: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_before_destroy: bool,
}

impl ResourceState {
    /// Inputs and outputs together: what `${name.attr}` can read.
    pub fn attribute(&self, name: &str) -> Option<&Value> {
        self.outputs.get(name).or_else(|| self.inputs.get(name))
    }
}

/// Which operation an intent announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentOp {
    Create,
    Update,
    Delete,
}

/// An operation announced before its provider call: if the run dies before the
/// result is recorded, the next run knows to look for (and adopt) what the call
/// may have made, instead of making a second one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    pub op: IntentOp,
    #[serde(rename = "type")]
    pub type_name: String,
    pub inputs: Attrs,
    pub at: DateTime<Utc>,
}

/// One environment's (or instance's) state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateDoc {
    pub format_version: u32,
    /// Identifies this state's history; a saved plan from another lineage is refused.
    pub lineage: String,
    /// Increases with every committed change.
    pub serial: u64,
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// When `phoenix gc` may destroy this instance (`up --ttl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When the first run of this state started (set by the CLI, so that
    /// `new` stays deterministic): the age `phoenix instances` shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    pub resources: BTreeMap<ResourceAddr, ResourceState>,
    /// Old objects of create-before-destroy replacements that still have to be destroyed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deposed: BTreeMap<ResourceAddr, ResourceState>,
    /// Announced operations whose results were never recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<ResourceAddr, Intent>,
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// Provider settings this state's objects were made with where they
    /// differ from the environment file, by provider (a restore into another
    /// region records `aws.region`): every later command on this state uses
    /// them, so a `down` finds the objects where they are.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provider_overrides: BTreeMap<String, Attrs>,
}

impl StateDoc {
    pub fn new(environment: &str, instance: Option<&str>, lineage: String) -> Self {
        Self {
            format_version: STATE_FORMAT_VERSION,
            lineage,
            serial: 0,
            environment: environment.to_string(),
            instance: instance.map(str::to_string),
            expires_at: None,
            created_at: None,
            resources: BTreeMap::new(),
            deposed: BTreeMap::new(),
            pending: BTreeMap::new(),
            outputs: BTreeMap::new(),
            updated_at: None,
            provider_overrides: BTreeMap::new(),
        }
    }

    /// Folds one journal record into the document. Records are idempotent, so
    /// replaying a journal twice gives the same document.
    pub fn apply_record(&mut self, record: &JournalRecord) {
        match record {
            JournalRecord::Intent { addr, intent } => {
                self.pending.insert(addr.clone(), intent.clone());
            }
            JournalRecord::Put { addr, resource } => {
                self.pending.remove(addr);
                self.resources.insert(addr.clone(), resource.clone());
            }
            JournalRecord::Remove { addr } => {
                self.pending.remove(addr);
                self.resources.remove(addr);
            }
            JournalRecord::Depose { addr } => {
                if let Some(old) = self.resources.remove(addr) {
                    self.deposed.insert(addr.clone(), old);
                }
            }
            JournalRecord::RemoveDeposed { addr } => {
                self.deposed.remove(addr);
            }
            JournalRecord::ClearIntent { addr } => {
                self.pending.remove(addr);
            }
            JournalRecord::Outputs { outputs } => {
                self.outputs = outputs.clone();
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.deposed.is_empty() && self.pending.is_empty()
    }
}

/// One durable change to state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum JournalRecord {
    Intent {
        addr: ResourceAddr,
        intent: Intent,
    },
    Put {
        addr: ResourceAddr,
        resource: ResourceState,
    },
    Remove {
        addr: ResourceAddr,
    },
    /// Moves the current object aside before a create-before-destroy replacement.
    Depose {
        addr: ResourceAddr,
    },
    RemoveDeposed {
        addr: ResourceAddr,
    },
    /// An announced operation that provably did nothing (it failed before any call took effect).
    ClearIntent {
        addr: ResourceAddr,
    },
    Outputs {
        outputs: BTreeMap<String, Value>,
    },
}

/// Where the executor records what it did.
///
/// # Behavior
/// `record` returns only once the record is durable (written and synced), so a
/// crash after it returns never loses the record. Implementations may batch
/// concurrent records into one sync.
#[async_trait]
pub trait Journal: Send + Sync {
    async fn record(&self, record: JournalRecord) -> Result<(), JournalError>;
}

/// A record that could not be made durable: the run must stop scheduling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The journal was closed, or its writer stopped before the record was durable.
    #[error("the state journal is closed: {0}")]
    Closed(String),
    /// Writing, syncing or uploading the record failed.
    #[error("the journal record was not made durable: {0}")]
    NotDurable(String),
    #[error("cannot serialize a journal record: {0}")]
    Serialize(String),
}

/// Marks every object Phoenix makes so that an interrupted run can find and
/// adopt it, and `gc` can find leaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub resource: ResourceAddr,
    /// The state's lineage: two checkouts of one environment (or a restored
    /// copy) never mistake each other's objects for their own.
    pub lineage: String,
    /// When the instance may be destroyed by `phoenix gc` (`--ttl`). Tagged
    /// on the object too, so a leak swept by `gc` shows when it was due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl Ownership {
    /// Tag keys and values as providers write them.
    pub fn tags(&self) -> Vec<(&'static str, String)> {
        let mut tags = vec![
            ("phoenix:environment", self.environment.clone()),
            ("phoenix:resource", self.resource.to_string()),
            ("phoenix:lineage", self.lineage.clone()),
        ];
        if let Some(i) = &self.instance {
            tags.push(("phoenix:instance", i.clone()));
        }
        if let Some(t) = &self.expires_at {
            tags.push(("phoenix:expires", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        }
        tags
    }

    /// Reads ownership back from tags as [`Ownership::tags`] wrote them;
    /// `None` unless environment, resource and lineage are all present.
    pub fn from_tags<'a>(mut get: impl FnMut(&str) -> Option<&'a str>) -> Option<Ownership> {
        Some(Ownership {
            environment: get("phoenix:environment")?.to_string(),
            resource: ResourceAddr::parse(get("phoenix:resource")?).ok()?,
            lineage: get("phoenix:lineage")?.to_string(),
            instance: get("phoenix:instance").map(str::to_string),
            expires_at: get("phoenix:expires").and_then(|t| t.parse().ok()),
        })
    }

    /// One string naming the owner uniquely: `env[/instance]/resource@lineage`.
    pub fn key(&self) -> String {
        match &self.instance {
            Some(i) => format!("{}/{}/{}@{}", self.environment, i, self.resource, self.lineage),
            None => format!("{}/{}@{}", self.environment, self.resource, self.lineage),
        }
    }
}
