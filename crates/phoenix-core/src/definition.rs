//! The desired state: resources and outputs, as rendered from an environment.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::addr::{Reference, ResourceAddr};
use crate::value::{Attrs, Value, references};

/// One declared resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceConfig {
    pub addr: ResourceAddr,
    #[serde(rename = "type")]
    pub type_name: String,
    pub attrs: Attrs,
    /// Explicit ordering edges besides references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceAddr>,
    /// Overrides the type's default replacement order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_before_destroy: Option<bool>,
    /// `prevent_destroy` and `ignore_changes`.
    #[serde(default, skip_serializing_if = "Lifecycle::is_default")]
    pub lifecycle: Lifecycle,
}

/// Lifecycle keys any resource may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Any plan that would destroy or replace the object fails, naming it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prevent_destroy: bool,
    /// Attributes whose differences from the definition are ignored once the object exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_changes: Vec<String>,
}

impl Lifecycle {
    pub fn is_default(&self) -> bool {
        *self == Lifecycle::default()
    }
}

impl ResourceConfig {
    /// References in attributes, in attribute order.
    pub fn references(&self) -> Vec<(String, Reference)> {
        self.attrs.iter().flat_map(|(k, v)| references(v).into_iter().map(move |r| (k.clone(), r))).collect()
    }

    /// Every resource this one must come after: referenced ones and `depends_on`, sorted, without duplicates.
    pub fn dependencies(&self) -> Vec<ResourceAddr> {
        let mut deps: Vec<ResourceAddr> =
            self.references().into_iter().map(|(_, r)| r.resource).chain(self.depends_on.iter().cloned()).collect();
        deps.sort();
        deps.dedup();
        deps.retain(|d| d != &self.addr);
        deps
    }

    /// The provider prefix of the type: `metal` for `metal.file`, `builtin` for `data`.
    pub fn provider_name(&self) -> &str {
        provider_of(&self.type_name)
    }
}

/// The provider that owns a resource type.
pub fn provider_of(type_name: &str) -> &str {
    type_name.split_once('.').map_or(crate::builtin::PROVIDER_NAME, |(p, _)| p)
}

/// A value the environment exposes after apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputConfig {
    pub value: Value,
    #[serde(default)]
    pub sensitive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Everything an environment declares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub resources: BTreeMap<ResourceAddr, ResourceConfig>,
    pub outputs: BTreeMap<String, OutputConfig>,
}
