//! `phoenix plan`, and the refresh + diff that `up` and `down` share.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use phoenix_core::ResourceAddr;
use phoenix_core::plan::Plan;
use phoenix_core::planner::{PlanOptions, diff, refresh};
use phoenix_core::state::StateDoc;

use crate::args::{EnvArgs, Global};
use crate::context::{self, Env};
use crate::exit::{CmdResult, Exit, Failure};
use crate::printer::Printer;

/// Refreshes state through the providers and diffs the definition against it.
pub async fn make_plan(env: &Env, state: &StateDoc, destroy: bool, targets: &[String]) -> Result<Plan, Failure> {
    Ok(refresh_and_plan(env, state, destroy, targets).await?.1)
}

/// [`make_plan`], also returning the state as the providers read it (for `status --refresh`).
pub async fn refresh_and_plan(env: &Env, state: &StateDoc, destroy: bool, targets: &[String]) -> Result<(StateDoc, Plan), Failure> {
    let targets = targets
        .iter()
        .map(|t| {
            let addr = ResourceAddr::parse(t).map_err(|e| anyhow!("--target {t}: {e}"))?;
            if !env.loaded.definition.resources.contains_key(&addr) && !state.resources.contains_key(&addr) {
                return Err(anyhow!("--target {t}: no resource `{t}` is declared or in state"));
            }
            Ok(addr)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let refreshed = refresh(state, &env.registry).await.map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {}: {}", e.addr, e.error.message)).collect();
        anyhow!("refresh failed; nothing was changed:\n{}", lines.join("\n"))
    })?;
    let opts = PlanOptions { destroy, targets };
    let plan = diff(&env.loaded.definition, &refreshed, &env.registry, &opts);
    Ok((refreshed.state, plan))
}

pub async fn plan(
    g: &Global,
    printer: &Printer,
    args: &EnvArgs,
    destroy: bool,
    out: Option<&Path>,
    detailed_exitcode: bool,
    targets: &[String],
) -> CmdResult {
    let env = context::load(g, printer, args)?;
    let state = env.read_state().await?;
    env.configure_providers(printer, &state)?;
    let plan = make_plan(&env, &state, destroy, targets).await?;
    let calls = context::api_calls(&env.registry);
    // `-C DIR` means "as if started in DIR": relative paths are under it.
    let out = out.map(|p| env.project.root.join(p));
    if let Some(path) = &out {
        save_plan(&plan, path)?;
    }
    if printer.json {
        let doc = serde_json::json!({
            "event": "plan",
            "plan": plan.redacted(),
            "summary": plan.summary(),
            "api_calls": calls,
        });
        println!("{doc}");
    } else {
        printer.plan(&plan);
        if g.verbose > 0 {
            eprintln!("API calls: {calls}");
        }
        if let Some(path) = &out {
            println!("\nSaved the plan to {}. Apply exactly it with: phoenix up {} --plan {}", path.display(), args.env, path.display());
        }
    }
    Ok(if detailed_exitcode && plan.has_work() { Exit::Changes } else { Exit::Ok })
}

/// Saves a plan (sensitive values sealed) readable only by its owner.
fn save_plan(plan: &Plan, path: &Path) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let json = serde_json::to_vec_pretty(&plan.redacted())?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write plan file {}", path.display()))?;
    f.write_all(&json)?;
    f.sync_all()?;
    Ok(())
}

/// Reads a plan saved by `phoenix plan --out`.
pub fn read_saved_plan(path: &Path) -> Result<Plan, Failure> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read plan file {}", path.display()))?;
    Ok(serde_json::from_str(&text).with_context(|| format!("{} is not a Phoenix plan", path.display()))?)
}

/// Checks that a saved plan still describes what would happen now.
pub fn check_saved_plan(path: &Path, saved: &Plan, current: &Plan) -> Result<(), Failure> {
    let refuse =
        |why: String| Failure::new(Exit::Error, anyhow!("refusing saved plan {}: {why}; run `phoenix plan` again", path.display()));
    if saved.environment != current.environment || saved.instance != current.instance {
        return Err(refuse(format!("it was made for environment `{}`", saved.environment)));
    }
    if saved.lineage != current.lineage {
        return Err(refuse("it was made for a different state (lineage differs)".into()));
    }
    if saved.state_serial != current.state_serial {
        return Err(refuse(format!("state changed since (serial {} then, {} now)", saved.state_serial, current.state_serial)));
    }
    if saved.destroy != current.destroy || saved.fingerprint() != current.fingerprint() {
        return Err(refuse("the definition or the real objects changed since it was made".into()));
    }
    Ok(())
}
