//! `phoenix plan` and `phoenix show`: the engine plans, this renders.

use std::path::Path;

use phoenix_engine::event::Event;
use phoenix_engine::plan::read_saved_plan;

use crate::args::{EnvArgs, Global, Scope};
use crate::context;
use crate::exit::{CmdResult, Exit};
use crate::printer::{Printer, emit};

pub async fn plan(
    g: &Global,
    printer: &Printer,
    args: &EnvArgs,
    destroy: bool,
    out: Option<&Path>,
    detailed_exitcode: bool,
    scope: &Scope,
) -> CmdResult {
    let env = context::load(g, args)?;
    // `-C DIR` means "as if started in DIR": relative paths are under it.
    let out = out.map(|p| env.project.root.join(p));
    let report = phoenix_engine::plan::plan(&env, printer, destroy, &scope.engine(), out.as_deref()).await?;
    let (plan, calls) = (report.plan, report.api_calls);
    if printer.json {
        emit(&Event::plan(&plan, calls));
        if let Some(path) = &out {
            emit(&Event::PlanSaved { path: path.display().to_string() });
        }
    } else {
        printer.plan(&plan);
        if g.verbose > 0 {
            errln!("API calls: {}", context::show_calls(&calls));
        }
        if let Some(path) = &out {
            outln!("\nSaved the plan to {}. Apply exactly it with: phoenix up {} --plan {}", path.display(), args.env, path.display());
        }
    }
    Ok(if detailed_exitcode && plan.has_work() { Exit::Changes } else { Exit::Ok })
}

/// `phoenix show PLANFILE`: a saved plan, as `plan` showed it (or as JSON).
pub fn show(g: &Global, printer: &Printer, path: &Path) -> CmdResult {
    let path = context::project(g)?.root.join(path);
    let plan = read_saved_plan(&path)?;
    if printer.json {
        // Saved plans are already redacted; the event redacts again, which keeps that true of any file.
        emit(&Event::plan(&plan, Default::default()));
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
