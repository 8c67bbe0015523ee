//! Disaster recovery: `phoenix snapshot` takes a recovery point and `phoenix
//! snapshot list|show|delete` manage them ([`phoenix_engine::recovery`]); this
//! asks and renders. `phoenix restore` is run as an `up` (see `apply::restore`).

use std::sync::Arc;

use console::style;
use phoenix_core::recovery::RecoveryPoint;
use phoenix_engine::event::Event;
use phoenix_engine::recovery::TakeOptions;

use crate::args::{EnvArgs, Global, TakeArgs};
use crate::context::{self, Env};
use crate::exit::{CmdResult, Exit, Failure};
use crate::printer::{Printer, emit};

/// `phoenix snapshot ENV`.
pub async fn take(g: &Global, printer: &Printer, t: &TakeArgs) -> CmdResult {
    let env = context::load(g, &t.env_args())?;
    let opts = TakeOptions {
        strict: t.strict,
        parallelism: t.parallelism as usize,
        copy_to_regions: t.copy_to_region.clone(),
        keep: t.keep.map(|k| k as usize),
        lock_timeout: t.lock.lock_timeout,
    };
    let report = phoenix_engine::recovery::take(&env, &opts, Arc::new(printer.clone())).await?;
    if printer.json {
        emit(&report.event());
    } else {
        let point = &report.point;
        show(point);
        outln!("Recovery point {} taken in {:.1}s; stored at {}.", style(&point.id).bold(), point.took_ms as f64 / 1000.0, report.store);
        for r in &report.removed {
            outln!("Removed recovery point {r} (--keep {}).", t.keep.unwrap_or_default());
        }
    }
    Ok(Exit::Ok)
}

fn show(p: &RecoveryPoint) {
    outln!(
        "{} of {} at {} (state serial {}, {} resources, {} snapshot(s))",
        style(&p.id).bold(),
        p.environment,
        p.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        p.serial,
        p.definition.resources.len(),
        p.snapshots.len()
    );
    for s in &p.snapshots {
        let copies: Vec<String> = s.copies.iter().map(|(r, c)| format!("{r}: {}", c.id)).collect();
        let copies = if copies.is_empty() { String::new() } else { format!("  (copies: {})", copies.join(", ")) };
        outln!("  {:<24} {:<18} {}{copies}", s.addr.to_string(), s.type_name, s.snapshot.id);
    }
}

/// The environment, loaded for its recovery store (its `state =` setting).
fn env_of(g: &Global, env: &str) -> Result<Env, Failure> {
    context::load(g, &EnvArgs::named(env, None))
}

pub async fn list(g: &Global, printer: &Printer, env: &str) -> CmdResult {
    let env = env_of(g, env)?;
    let points = phoenix_engine::recovery::list(&env).await?;
    if printer.json {
        emit(&Event::RecoveryPoints { points: points.iter().map(Into::into).collect() });
    } else if points.is_empty() {
        outln!("No recovery points of {} (take one with `phoenix snapshot {}`).", env.loaded.name, env.loaded.name);
    } else {
        outln!("{:<28} {:<20} {:>9} {:>8}  regions", "ID", "TAKEN (UTC)", "SNAPSHOTS", "TOOK");
        for p in &points {
            let regions: Vec<String> = p.copied_regions().into_iter().collect();
            outln!(
                "{:<28} {:<20} {:>9} {:>7.1}s  {}",
                p.id,
                p.created_at.format("%Y-%m-%d %H:%M:%S"),
                p.snapshots.len(),
                p.took_ms as f64 / 1000.0,
                regions.join(",")
            );
        }
    }
    Ok(Exit::Ok)
}

pub async fn show_point(g: &Global, printer: &Printer, env: &str, id: &str) -> CmdResult {
    let env = env_of(g, env)?;
    let point = phoenix_engine::recovery::get(&env, id).await?;
    if printer.json {
        emit(&Event::RecoveryPoint { point: (&point).into(), variables: point.variables.clone() });
    } else {
        show(&point);
    }
    Ok(Exit::Ok)
}

pub async fn delete(g: &Global, printer: &Printer, env: &str, id: &str, yes: bool) -> CmdResult {
    let env = env_of(g, env)?;
    let approve = |point: &RecoveryPoint| {
        if yes {
            return Ok(());
        }
        let lost: Vec<String> = point.snapshots.iter().map(|s| format!("the snapshot of {} ({})", s.addr, s.type_name)).collect();
        crate::confirm::ask(&format!("delete recovery point {id} and its {} snapshot(s)", point.snapshots.len()), &lost)
    };
    let point = phoenix_engine::recovery::delete(&env, id, printer, &approve).await?;
    if printer.json {
        emit(&Event::RecoveryPointDeleted { id: id.to_string(), snapshots: point.snapshots.len() });
    } else {
        outln!("Deleted recovery point {id} and its {} snapshot(s).", point.snapshots.len());
    }
    Ok(Exit::Ok)
}
