//! `phoenix refresh`: the engine records in state what the objects are now;
//! this shows what drifted. Never creates, changes or deletes an object.

use console::style;

use crate::args::{EnvArgs, Global, LockArgs};
use crate::context;
use crate::exit::{CmdResult, Exit};
use crate::printer::{Printer, emit, show_value};

pub async fn refresh(g: &Global, printer: &Printer, args: &EnvArgs, lock: &LockArgs) -> CmdResult {
    let env = context::load(g, args)?;
    let report = phoenix_engine::refresh::refresh(&env, lock.lock_timeout, printer).await?;
    if printer.json {
        emit(&report.event());
        return Ok(Exit::Ok);
    }
    let key = env.loaded.state_key();
    outln!("Read {} object(s) of {key}.", report.read);
    for (addr, attrs) in &report.drift {
        outln!("  {} {} changed outside Phoenix:", style("~").yellow().bold(), style(addr).bold());
        for d in attrs {
            let show = |v: &Option<serde_json::Value>| v.as_ref().map_or_else(|| "(unset)".to_string(), show_value);
            outln!("      {} = {} -> {}", d.attr, show(&d.before), show(&d.after));
        }
    }
    for addr in &report.gone {
        outln!("  {} {} no longer exists; forgotten", style("-").red().bold(), style(addr).bold());
    }
    for addr in &report.adopted {
        outln!("  {} {} found by its ownership tags; recorded", style("+").green().bold(), style(addr).bold());
    }
    if report.state_changed {
        outln!(
            "State updated (serial {}). Nothing was created, changed or deleted; `phoenix plan {}` shows what `up` would do.",
            report.serial,
            args.env
        );
    } else {
        outln!("{} every object matches state.", style("No drift:").green().bold());
    }
    Ok(Exit::Ok)
}
