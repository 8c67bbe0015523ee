//! `phoenix refresh`: record in state what the objects are now, and show what
//! drifted. Never creates, changes or deletes an object.

use console::style;
use phoenix_core::ResourceAddr;
use phoenix_core::planner::{Refreshed, refresh as read_all};
use phoenix_core::state::StateDoc;
use phoenix_core::value::is_sealed;

use crate::args::{EnvArgs, Global, LockArgs};
use crate::commands::plan::refresh_failure;
use crate::context;
use crate::exit::{CmdResult, Exit};
use crate::printer::{Printer, show_value};

/// One attribute that differs between state and reality.
struct Drift {
    attr: String,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

pub async fn refresh(g: &Global, printer: &Printer, args: &EnvArgs, lock: &LockArgs) -> CmdResult {
    let env = context::load(g, printer, args)?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let (guard, state) = env.lock_state("refresh", &run_id, lock.lock_timeout, printer).await?;
    env.configure_providers(printer, &state)?;
    let refreshed = read_all(&state, &env.registry).await.map_err(refresh_failure)?;
    let drift = drift_of(&state, &refreshed);
    let mut new_state = refreshed.state.clone();
    // Objects found by their ownership marks are recorded now: their announced creates are done.
    new_state.pending.retain(|a, _| !refreshed.adopted.contains(a));
    // Nothing differs: keep the serial, so a saved plan stays applicable.
    let changed = new_state.resources != state.resources || new_state.pending != state.pending;
    let serial = if changed { guard.write(&new_state).await.map_err(context::state_failure)?.serial } else { state.serial };
    if printer.json {
        let drifted: serde_json::Map<String, serde_json::Value> = drift
            .iter()
            .map(|(a, d)| {
                let attrs: serde_json::Map<_, _> =
                    d.iter().map(|x| (x.attr.clone(), serde_json::json!({"before": shown(&x.before), "after": shown(&x.after)}))).collect();
                (a.to_string(), attrs.into())
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "event": "refreshed", "environment": env.loaded.name, "instance": env.loaded.instance,
                "resources": new_state.resources.len(), "drifted": drifted, "gone": refreshed.gone,
                "adopted": refreshed.adopted, "state_changed": changed, "serial": serial,
                "api_calls": context::api_calls(&env.registry),
            })
        );
        return Ok(Exit::Ok);
    }
    let key = env.loaded.state_key();
    outln!("Read {} object(s) of {key}.", state.resources.len() + refreshed.adopted.len());
    for (addr, attrs) in &drift {
        outln!("  {} {} changed outside Phoenix:", style("~").yellow().bold(), style(addr).bold());
        for d in attrs {
            let show = |v: &Option<serde_json::Value>| v.as_ref().map_or_else(|| "(unset)".to_string(), show_value);
            outln!("      {} = {} -> {}", d.attr, show(&d.before), show(&d.after));
        }
    }
    for addr in &refreshed.gone {
        outln!("  {} {} no longer exists; forgotten", style("-").red().bold(), style(addr).bold());
    }
    for addr in &refreshed.adopted {
        outln!("  {} {} found by its ownership tags; recorded", style("+").green().bold(), style(addr).bold());
    }
    if changed {
        outln!(
            "State updated (serial {serial}). Nothing was created, changed or deleted; `phoenix plan {}` shows what `up` would do.",
            args.env
        );
    } else {
        outln!("{} every object matches state.", style("No drift:").green().bold());
    }
    Ok(Exit::Ok)
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
