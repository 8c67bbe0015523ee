//! Commands that read: validate, render, graph, status, output, state, and unlock.

use anyhow::anyhow;
use console::style;
use phoenix_core::ResourceAddr;
use phoenix_core::validate::dependency_graph;
use phoenix_core::value::is_sealed;

use crate::args::{EnvArgs, Global, GraphFormat, LockArgs};
use crate::context;
use crate::exit::{CmdResult, Exit};
use crate::printer::{Printer, emit};
use phoenix_engine::event::{Event, RenderedTemplate, StateEntry, StatusResource};
use phoenix_engine::plan::refresh_and_plan;
use phoenix_engine::surgery;

pub fn validate(g: &Global, printer: &Printer, args: &EnvArgs) -> CmdResult {
    let env = context::load(g, args)?;
    let def = &env.loaded.definition;
    if printer.json {
        emit(&Event::Valid { resources: def.resources.len(), outputs: def.outputs.len() });
    } else {
        outln!(
            "{} {} is valid: {} resources, {} outputs.",
            style("✓").green().bold(),
            env.loaded.source.name,
            def.resources.len(),
            def.outputs.len()
        );
    }
    Ok(Exit::Ok)
}

pub fn render(g: &Global, printer: &Printer, args: &EnvArgs) -> CmdResult {
    let project = context::project(g)?;
    let opts = args.load_options();
    let loaded = context::load_definition(&project, &args.env, &opts)?;
    let secrets = sensitive_values(&loaded.definition, &context::registry());
    if printer.json {
        let templates = loaded
            .rendered
            .iter()
            .map(|r| RenderedTemplate { template: r.template.name.to_string(), output: mask(&r.output, &secrets) })
            .collect();
        emit(&Event::Rendered { templates });
    } else {
        out!("{}", mask(&loaded.rendered_text(), &secrets));
    }
    Ok(Exit::Ok)
}

/// Literal values of sensitive attributes (a password read with `env()`):
/// `render` shows the definition, never them.
fn sensitive_values(def: &phoenix_core::definition::Definition, registry: &phoenix_core::provider::Registry) -> Vec<String> {
    let mut out: Vec<String> = def
        .resources
        .values()
        .flat_map(|r| {
            let schema = registry.schema(&r.type_name);
            r.attrs.iter().filter(move |(k, _)| schema.and_then(|s| s.attr(k)).is_some_and(|a| a.sensitive)).map(|(_, v)| v)
        })
        .filter_map(|v| v.as_str().map(str::to_string).or_else(|| (!v.is_null()).then(|| v.to_string())))
        // A reference is not the secret itself, and a tiny value would mask half the text.
        .filter(|v| !v.contains("${") && v.len() >= 4)
        .collect();
    // Longest first, so a secret containing another is masked whole.
    out.sort_by_key(|v| std::cmp::Reverse(v.len()));
    out.dedup();
    out
}

fn mask(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |t, s| t.replace(s.as_str(), "(sensitive)"))
}

pub async fn graph(g: &Global, printer: &Printer, args: &EnvArgs, format: GraphFormat, with_plan: bool) -> CmdResult {
    let env = context::load(g, args)?;
    let def = &env.loaded.definition;
    let plan = if with_plan {
        // The plan command's own path: state, credentials, preflight, refresh and diff.
        let scope = crate::args::Scope::default().engine();
        Some(phoenix_engine::plan::plan(&env, printer, false, &scope, None).await?.plan)
    } else {
        None
    };
    let drawing = crate::draw::Drawing::of(&env.loaded.state_key(), def, &dependency_graph(def), plan.as_ref());
    match format {
        GraphFormat::Dot => out!("{}", drawing.dot()),
        GraphFormat::Mermaid => out!("{}", drawing.mermaid()),
        GraphFormat::Svg => outln!("{}", drawing.svg()),
    }
    Ok(Exit::Ok)
}

pub async fn status(g: &Global, printer: &Printer, args: &EnvArgs, refresh: bool) -> CmdResult {
    let env = context::load(g, args)?;
    let mut state = env.read_state().await?;
    let mut live: Option<std::collections::BTreeMap<ResourceAddr, &'static str>> = None;
    if refresh {
        env.configure_providers(&state)?;
        let (read, plan) = refresh_and_plan(&env, &state, false, &Default::default()).await?;
        // Show what the providers read now (DNS names, healthy targets, instance counts), not the last run's values.
        state = read;
        live = Some(
            plan.changes
                .iter()
                .map(|c| {
                    let s = match c.action {
                        phoenix_core::plan::Action::NoOp => "in sync",
                        phoenix_core::plan::Action::Create if c.reasons.iter().any(|r| r.contains("no longer exists")) => "missing",
                        phoenix_core::plan::Action::Create => "not created",
                        phoenix_core::plan::Action::Delete => "not declared",
                        _ => "differs",
                    };
                    (c.addr.clone(), s)
                })
                .collect(),
        );
    }
    let holder = env.store().await?.lock_holder().await.ok().flatten().map(|s| (s.info, s.live));
    if printer.json {
        let resources = state
            .resources
            .iter()
            .map(|(a, r)| StatusResource {
                addr: a.to_string(),
                resource_type: r.type_name.clone(),
                id: r.outputs.get("id").cloned(),
                tainted: r.tainted,
                status: live.as_ref().and_then(|l| l.get(a)).map(|s| s.to_string()),
                highlights: highlights(&env, r).into_iter().collect(),
            })
            .collect();
        emit(&Event::Status {
            environment: env.loaded.name.clone(),
            instance: env.loaded.instance.clone(),
            serial: state.serial,
            lineage: state.lineage.clone(),
            updated_at: state.updated_at,
            resources,
            declared: env.loaded.definition.resources.len(),
            pending: state.pending.keys().map(ToString::to_string).collect(),
            locked_by: holder.as_ref().filter(|(_, live)| *live).map(|(i, _)| i.to_string()),
        });
        return Ok(Exit::Ok);
    }
    outln!(
        "{} {}: {} of {} declared resources exist (state serial {}{})",
        style("Environment").bold(),
        env.loaded.state_key(),
        state.resources.len(),
        env.loaded.definition.resources.len(),
        state.serial,
        state.updated_at.map(|t| format!(", updated {}", t.format("%Y-%m-%d %H:%M:%S UTC"))).unwrap_or_default()
    );
    if let Some((info, true)) = &holder {
        outln!("{} {info}", style("Locked:").yellow().bold());
    }
    let width = state.resources.keys().map(|a| a.as_str().len()).max().unwrap_or(0);
    for (a, r) in &state.resources {
        let id = r.outputs.get("id").or_else(|| r.outputs.get("pid")).map(|v| v.to_string()).unwrap_or_default();
        let st = live.as_ref().and_then(|l| l.get(a)).map(|s| format!("  [{s}]")).unwrap_or_default();
        let taint = if r.tainted { "  (tainted)" } else { "" };
        outln!("  {:width$}  {:22} {id}{st}{taint}", a.as_str(), r.type_name, width = width);
        let marks = highlights(&env, r);
        if !marks.is_empty() {
            let text: Vec<String> = marks.iter().map(|(k, v)| format!("{k}: {}", phoenix_core::value::display_plain(v))).collect();
            outln!("  {:width$}    {}", "", style(text.join("  ")).dim(), width = width);
        }
    }
    if !refresh && state.resources.values().any(|r| !highlights(&env, r).is_empty()) {
        outln!("  (values as of the last run; `--refresh` reads them now)");
    }
    for a in state.pending.keys() {
        outln!("  {} {a}: an interrupted operation; the next `up` will finish it", style("!").yellow());
    }
    if !state.outputs.is_empty() {
        outln!("Outputs:");
        for (k, v) in &state.outputs {
            outln!("  {k} = {}", if is_sealed(v) { "(sensitive)".to_string() } else { v.to_string() });
        }
    }
    Ok(Exit::Ok)
}

/// The attributes a resource's type marks as worth seeing at a glance (load balancer
/// DNS names, healthy targets, instance counts), as recorded in `r`; never sensitive ones.
fn highlights(env: &context::Env, r: &phoenix_core::state::ResourceState) -> Vec<(String, serde_json::Value)> {
    let Some(schema) = env.registry.schema(&r.type_name) else { return Vec::new() };
    schema
        .attrs
        .iter()
        .filter(|a| a.highlight && !a.sensitive)
        .filter_map(|a| r.outputs.get(a.name).filter(|v| !is_sealed(v)).map(|v| (a.name.to_string(), v.clone())))
        .collect()
}

pub async fn output(g: &Global, printer: &Printer, args: &EnvArgs, name: Option<&str>) -> CmdResult {
    let project = context::project(g)?;
    let opts = args.load_options();
    let loaded = context::load_definition(&project, &args.env, &opts)?;
    let env = context::env_of(project, loaded);
    let state = env.read_state().await?;
    let shown = |v: &serde_json::Value| if is_sealed(v) { serde_json::Value::String("(sensitive)".into()) } else { v.clone() };
    match name {
        Some(n) => {
            let v = state.outputs.get(n).ok_or_else(|| {
                let known: Vec<_> = state.outputs.keys().cloned().collect();
                anyhow!(
                    "no output `{n}` in state (known: {})",
                    if known.is_empty() { "none; run `phoenix up` first".into() } else { known.join(", ") }
                )
            })?;
            if printer.json {
                emit(&Event::Output { name: n.to_string(), value: shown(v) });
            } else {
                match shown(v) {
                    serde_json::Value::String(s) => outln!("{s}"),
                    other => outln!("{other}"),
                }
            }
        }
        None => {
            if printer.json {
                emit(&Event::Outputs { outputs: state.outputs.iter().map(|(k, v)| (k.clone(), shown(v))).collect() });
            } else {
                for (k, v) in &state.outputs {
                    outln!("{k} = {}", shown(v));
                }
            }
        }
    }
    Ok(Exit::Ok)
}

pub async fn unlock(g: &Global, printer: &Printer, args: &EnvArgs, force: bool) -> CmdResult {
    let project = context::project(g)?;
    let opts = args.load_options();
    let loaded = context::load_definition(&project, &args.env, &opts)?;
    let env = context::env_of(project, loaded);
    let store = env.store().await?;
    // Show who holds it first, whatever happens next.
    if let Some(status) = store.lock_holder().await.map_err(context::state_failure)? {
        let state = if status.live { "live" } else { "stale" };
        let lease = status.lease_expires_at.map(|t| format!(", lease until {}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
        errln!("Lock of {} ({state}): {}{}", env.loaded.state_key(), status.info, lease.unwrap_or_default());
    }
    let released = store.unlock(force).await.map_err(context::state_failure)?;
    if printer.json {
        emit(&Event::Unlocked { released: released.map(|i| i.to_string()) });
        return Ok(Exit::Ok);
    }
    match released {
        Some(info) => outln!("Released the lock left by {info}."),
        None => outln!("{} is not locked.", env.loaded.state_key()),
    }
    Ok(Exit::Ok)
}

pub async fn state_list(g: &Global, printer: &Printer, args: &EnvArgs) -> CmdResult {
    let env = context::load(g, args)?;
    let state = env.read_state().await?;
    if printer.json {
        let resources =
            state.resources.iter().map(|(a, r)| StateEntry { addr: a.to_string(), resource_type: r.type_name.clone() }).collect();
        emit(&Event::StateList { resources });
    } else {
        for (a, r) in &state.resources {
            outln!("{a}\t{}", r.type_name);
        }
    }
    Ok(Exit::Ok)
}

pub async fn state_show(g: &Global, printer: &Printer, args: &EnvArgs, resource: &str) -> CmdResult {
    let env = context::load(g, args)?;
    let state = env.read_state().await?;
    let addr = ResourceAddr::new_unchecked(resource);
    let r = state.resources.get(&addr).ok_or_else(|| anyhow!("`{resource}` is not in the state of {}", env.loaded.state_key()))?;
    if printer.json {
        emit(&Event::StateResource { addr: addr.to_string(), resource: serde_json::to_value(r)? });
        return Ok(Exit::Ok);
    }
    outln!("{}", serde_json::to_string_pretty(&serde_json::json!({"addr": addr, "resource": r}))?);
    Ok(Exit::Ok)
}

pub async fn state_rm(g: &Global, printer: &Printer, args: &EnvArgs, resources: &[String], yes: bool, lock: &LockArgs) -> CmdResult {
    let env = context::load(g, args)?;
    let approve = |removed: &[ResourceAddr]| {
        if yes {
            return Ok(());
        }
        let names = removed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        crate::confirm::ask(&format!("forget {names} (the objects keep existing, unmanaged)"), &[])
    };
    let report = surgery::state_rm(&env, resources, lock.lock_timeout, printer, &approve).await?;
    if printer.json {
        emit(&report.event());
    } else {
        outln!("Removed {} resource(s) from state (serial {}).", report.removed.len(), report.serial);
    }
    Ok(Exit::Ok)
}

pub async fn state_mv(g: &Global, printer: &Printer, args: &EnvArgs, source: &str, destination: &str, lock: &LockArgs) -> CmdResult {
    let env = context::load(g, args)?;
    let report = surgery::state_mv(&env, source, destination, lock.lock_timeout, printer).await?;
    if printer.json {
        emit(&report.event());
    } else {
        outln!("Moved {source} to {destination} in the state of {} (serial {}).", report.state_key, report.serial);
    }
    Ok(Exit::Ok)
}

pub async fn import(g: &Global, printer: &Printer, args: &EnvArgs, resource: &str, id: &str, lock: &LockArgs) -> CmdResult {
    let env = context::load(g, args)?;
    let report = surgery::import(&env, resource, id, lock.lock_timeout, printer).await?;
    if printer.json {
        emit(&report.event());
    } else {
        outln!(
            "Imported {id} as {resource} ({}); state serial {}. Run `phoenix plan {}` to see how it differs from the definition.",
            report.resource_type,
            report.serial,
            args.env
        );
    }
    Ok(Exit::Ok)
}
