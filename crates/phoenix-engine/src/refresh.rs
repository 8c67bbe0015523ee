//! `refresh`: record in state what the objects are now. Never creates,
//! changes or deletes an object.

use std::collections::BTreeMap;

use phoenix_core::ResourceAddr;
use phoenix_core::planner::{Refreshed, refresh as read_all};
use phoenix_core::state::StateDoc;
use phoenix_core::value::is_sealed;

use crate::env::{Env, state_failure};
use crate::event::{DriftedAttr, Event};
use crate::exit::Failure;
use crate::plan::refresh_failure;
use crate::report::Reporter;

/// One attribute that differs between state and reality.
pub struct Drift {
    pub attr: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// What a refresh found and recorded.
pub struct RefreshReport {
    pub environment: String,
    pub instance: Option<String>,
    /// Objects read.
    pub read: usize,
    /// Resources in state now.
    pub resources: usize,
    pub drift: Vec<(ResourceAddr, Vec<Drift>)>,
    pub gone: Vec<ResourceAddr>,
    pub adopted: Vec<ResourceAddr>,
    /// Whether state was written (nothing differs: the serial is kept, so a saved plan stays applicable).
    pub state_changed: bool,
    pub serial: u64,
    pub api_calls: BTreeMap<String, u64>,
}

impl RefreshReport {
    /// The `refreshed` event (sensitive values as `"(sensitive)"`).
    pub fn event(&self) -> Event {
        Event::Refreshed {
            environment: self.environment.clone(),
            instance: self.instance.clone(),
            resources: self.resources,
            drifted: self
                .drift
                .iter()
                .map(|(a, d)| {
                    (
                        a.to_string(),
                        d.iter().map(|x| (x.attr.clone(), DriftedAttr { before: shown(&x.before), after: shown(&x.after) })).collect(),
                    )
                })
                .collect(),
            gone: self.gone.iter().map(ToString::to_string).collect(),
            adopted: self.adopted.iter().map(ToString::to_string).collect(),
            state_changed: self.state_changed,
            serial: self.serial,
            api_calls: self.api_calls.clone(),
        }
    }
}

/// Locks state, reads every object through its provider and records what it found.
pub async fn refresh(env: &Env, lock_timeout: std::time::Duration, reporter: &dyn Reporter) -> Result<RefreshReport, Failure> {
    let run_id = uuid::Uuid::new_v4().to_string();
    let (guard, state) = env.lock_state("refresh", &run_id, lock_timeout, reporter).await?;
    env.configure_providers(&state)?;
    let refreshed = read_all(&state, &env.registry).await.map_err(refresh_failure)?;
    let drift = drift_of(&state, &refreshed);
    let mut new_state = refreshed.state.clone();
    // Objects found by their ownership marks are recorded now: their announced creates are done.
    new_state.pending.retain(|a, _| !refreshed.adopted.contains(a));
    let changed = new_state.resources != state.resources || new_state.pending != state.pending;
    let serial = if changed { guard.write(&new_state).await.map_err(state_failure)?.serial } else { state.serial };
    Ok(RefreshReport {
        environment: env.loaded.name.clone(),
        instance: env.loaded.instance.clone(),
        read: state.resources.len() + refreshed.adopted.len(),
        resources: new_state.resources.len(),
        drift,
        gone: refreshed.gone.iter().cloned().collect(),
        adopted: refreshed.adopted.iter().cloned().collect(),
        state_changed: changed,
        serial,
        api_calls: env.api_calls(),
    })
}

/// The inputs that reality changed, attribute by attribute.
fn drift_of(state: &StateDoc, refreshed: &Refreshed) -> Vec<(ResourceAddr, Vec<Drift>)> {
    refreshed
        .drifted
        .iter()
        .map(|(addr, attrs)| {
            let before = state.resources.get(addr).map(|r| &r.inputs);
            let after = refreshed.state.resources.get(addr).map(|r| &r.inputs);
            let diffs = attrs
                .iter()
                .map(|a| Drift {
                    attr: a.clone(),
                    before: before.and_then(|i| i.get(a)).cloned(),
                    after: after.and_then(|i| i.get(a)).cloned(),
                })
                .collect();
            (addr.clone(), diffs)
        })
        .collect()
}

fn shown(v: &Option<serde_json::Value>) -> serde_json::Value {
    match v {
        Some(v) if is_sealed(v) => "(sensitive)".into(),
        Some(v) => v.clone(),
        None => serde_json::Value::Null,
    }
}
