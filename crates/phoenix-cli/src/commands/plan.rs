//! `phoenix plan`, and the refresh + diff that `up` and `down` share.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use phoenix_core::ResourceAddr;
use phoenix_core::plan::Plan;
use phoenix_core::planner::{PlanOptions, RefreshError, diff, prevented_destroys, refresh};
use phoenix_core::schema::closest;
use phoenix_core::state::StateDoc;

use crate::args::{EnvArgs, Global, Scope};
use crate::context::{self, Env};
use crate::exit::{CmdResult, Exit, Failure};
use crate::printer::Printer;

/// Refreshes state through the providers and diffs the definition against it;
/// a plan that would destroy a resource declared with `prevent_destroy` fails.
pub async fn make_plan(env: &Env, state: &StateDoc, destroy: bool, scope: &Scope) -> Result<Plan, Failure> {
    if !destroy && !scope.allow_empty && env.loaded.definition.resources.is_empty() && !state.resources.is_empty() {
        // A template that renders to nothing (a wrong `{% if %}`, a forgotten variable) is not "delete everything".
        return Err(Failure::new(
            Exit::Invalid,
            anyhow!(
                "{} renders no resources, but the state of {} holds {}; applying it would destroy them all. \
                 Nothing was changed: pass --allow-empty if that is what you want, or use `phoenix down`",
                env.loaded.source.name,
                env.loaded.state_key(),
                state.resources.len()
            ),
        ));
    }
    let plan = refresh_and_plan(env, state, destroy, scope).await?.1;
    let prevented = prevented_destroys(&env.loaded.definition, &plan);
    if !prevented.is_empty() {
        let lines: Vec<String> = prevented.iter().map(|c| format!("  {} ({}) would be {}d", c.addr, c.type_name, c.action)).collect();
        return Err(Failure::new(
            Exit::Error,
            anyhow!(
                "this plan would destroy resources declared with `prevent_destroy = true`; nothing was changed:\n{}\n\
                 remove `prevent_destroy` from their definition first, or leave them out with --exclude",
                lines.join("\n")
            ),
        ));
    }
    Ok(plan)
}

/// [`make_plan`], also returning the state as the providers read it (for `status --refresh`).
pub async fn refresh_and_plan(env: &Env, state: &StateDoc, destroy: bool, scope: &Scope) -> Result<(StateDoc, Plan), Failure> {
    if destroy && !scope.replace.is_empty() {
        return Err(Failure::new(Exit::Usage, anyhow!("--replace makes no sense when destroying everything")));
    }
    let opts = PlanOptions {
        destroy,
        targets: addresses(env, state, "--target", &scope.targets)?,
        excludes: addresses(env, state, "--exclude", &scope.excludes)?,
        replace: addresses(env, state, "--replace", &scope.replace)?,
    };
    let refreshed = refresh(state, &env.registry).await.map_err(refresh_failure)?;
    let plan = diff(&env.loaded.definition, &refreshed, &env.registry, &opts);
    Ok((refreshed.state, plan))
}

/// The resources named by a flag (`--target`, `--exclude`, `--replace`): each must be declared or in state.
fn addresses(env: &Env, state: &StateDoc, flag: &str, given: &[String]) -> Result<Vec<ResourceAddr>, Failure> {
    given
        .iter()
        .map(|t| {
            let addr = ResourceAddr::parse(t).map_err(|e| Failure::new(Exit::Usage, anyhow!("{flag} {t}: {e}")))?;
            if !env.loaded.definition.resources.contains_key(&addr) && !state.resources.contains_key(&addr) {
                let known = env.loaded.definition.resources.keys().chain(state.resources.keys()).map(ResourceAddr::as_str);
                let hint = closest(t, known).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
                return Err(Failure::new(Exit::Usage, anyhow!("{flag} {t}: no resource `{t}` is declared or in state{hint}")));
            }
            Ok(addr)
        })
        .collect()
}

/// Refresh errors, one line per distinct error: the same message from many
/// resources (missing credentials) is shown once with the resources it hit.
pub fn refresh_failure(errors: Vec<RefreshError>) -> Failure {
    let lines = said_once(errors.into_iter().map(|e| (e.addr.to_string(), e.error.message)));
    let lines: Vec<String> = lines.iter().map(|l| format!("  {l}")).collect();
    Failure::new(Exit::Error, anyhow!("refresh failed; nothing was changed:\n{}", lines.join("\n")))
}

/// Errors as `who: message` lines, each distinct message once, in the order
/// first seen: many resources hit by the same error (missing credentials, a
/// refused key) make one line with their count, `3 resources (a, b, c): …`.
pub fn said_once(errors: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let mut by_message: Vec<(String, Vec<String>)> = Vec::new();
    for (who, message) in errors {
        match by_message.iter_mut().find(|(m, _)| *m == message) {
            Some((_, hit)) => hit.push(who),
            None => by_message.push((message, vec![who])),
        }
    }
    by_message
        .iter()
        .map(|(message, hit)| match hit.as_slice() {
            [one] => format!("{one}: {message}"),
            many => format!("{} resources ({}): {message}", many.len(), shorten(many)),
        })
        .collect()
}

/// The first few names of a long list, and how many more.
fn shorten(names: &[String]) -> String {
    const SHOWN: usize = 3;
    if names.len() <= SHOWN { names.join(", ") } else { format!("{}, and {} more", names[..SHOWN].join(", "), names.len() - SHOWN) }
}

pub async fn plan(
    g: &Global,
    printer: &Printer,
    args: &EnvArgs,
    destroy: bool,
    out: Option<&Path>,
    detailed_exitcode: bool,
    scope: &Scope,
) -> CmdResult {
    let env = context::load(g, printer, args)?;
    let state = env.read_state().await?;
    env.configure_providers(printer, &state)?;
    env.preflight(printer, &state).await?;
    let plan = make_plan(&env, &state, destroy, scope).await?;
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
        outln!("{doc}");
    } else {
        printer.plan(&plan);
        if g.verbose > 0 {
            errln!("API calls: {calls}");
        }
        if let Some(path) = &out {
            outln!("\nSaved the plan to {}. Apply exactly it with: phoenix up {} --plan {}", path.display(), args.env, path.display());
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

/// `phoenix show PLANFILE`: a saved plan, as `plan` showed it (or as JSON).
pub fn show(g: &Global, printer: &Printer, path: &Path) -> CmdResult {
    let path = context::project(g)?.root.join(path);
    let plan = read_saved_plan(&path)?;
    if printer.json {
        // Saved plans are already redacted; redacting again keeps that true of any file.
        outln!("{}", serde_json::to_string(&plan.redacted())?);
        return Ok(Exit::Ok);
    }
    let instance = plan.instance.as_ref().map(|i| format!(" --instance {i}")).unwrap_or_default();
    outln!(
        "Saved plan for {}{instance} against state serial {}{}:",
        plan.environment,
        plan.state_serial,
        if plan.destroy { " (destroy)" } else { "" }
    );
    printer.plan(&plan.redacted());
    outln!("\nApply exactly it with: phoenix up {}{instance} --plan {}", plan.environment, path.display());
    Ok(Exit::Ok)
}
