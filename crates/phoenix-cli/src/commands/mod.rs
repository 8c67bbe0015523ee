//! One module per group of commands. Each returns an [`Exit`] or a [`Failure`].

mod apply;
mod gc;
mod inspect;
mod meta;
mod outputs;
mod plan;
mod recovery;
mod refresh;
mod schema;

use crate::args::{Cli, Command, SnapshotCommand, StateCommand};
use crate::exit::{Exit, Failure};
use crate::printer::Printer;

pub async fn run(cli: Cli) -> Exit {
    let printer = Printer { json: cli.global.json, compact: cli.global.compact };
    let g = &cli.global;
    let result = match cli.command {
        Command::Validate { env } => inspect::validate(g, &printer, &env),
        Command::Render { env } => inspect::render(g, &printer, &env),
        Command::Graph { env, format, plan } => inspect::graph(g, &printer, &env, format, plan).await,
        Command::Status { env, refresh } => inspect::status(g, &printer, &env, refresh).await,
        Command::Output { env, name, format: Some(format), out } => outputs::export(g, &env, name.as_deref(), format, out.as_deref()).await,
        Command::Output { env, name, format: None, .. } => inspect::output(g, &printer, &env, name.as_deref()).await,
        Command::Instances { env } => gc::instances(g, &printer, &env).await,
        Command::Gc { envs, yes, dry_run, lock } => gc::gc(g, &printer, &envs, yes, dry_run, &lock).await,
        Command::Unlock { env, force } => inspect::unlock(g, &printer, &env, force).await,
        Command::Import { env, resource, id, lock } => inspect::import(g, &printer, &env, &resource, &id, &lock).await,
        Command::Schema { name, format, write } => schema::schema(g, &printer, name.as_deref(), format, write.as_deref()),
        Command::State(StateCommand::List { env }) => inspect::state_list(g, &printer, &env).await,
        Command::State(StateCommand::Show { env, resource }) => inspect::state_show(g, &printer, &env, &resource).await,
        Command::State(StateCommand::Rm { env, resources, yes, lock }) => {
            inspect::state_rm(g, &printer, &env, &resources, yes, &lock).await
        }
        Command::Plan { env, destroy, out, detailed_exitcode, scope } => {
            plan::plan(g, &printer, &env, destroy, out.as_deref(), detailed_exitcode, &scope).await
        }
        Command::Show { plan } => plan::show(g, &printer, &plan),
        Command::Refresh { env, lock } => refresh::refresh(g, &printer, &env, &lock).await,
        Command::Completions { shell } => meta::completions(shell),
        Command::Version => meta::version(&printer),
        Command::State(StateCommand::Mv { env, source, destination, lock }) => {
            inspect::state_mv(g, &printer, &env, &source, &destination, &lock).await
        }
        Command::Up { env, apply, from_snapshot: Some(id), .. } => apply::restore(g, &printer, &env, &id, None, None, &apply).await,
        Command::Up { env, apply, plan, ttl, outputs_file, from_snapshot: None } => {
            apply::up(g, &printer, &env, &apply, plan.as_deref(), ttl, outputs_file.as_deref()).await
        }
        Command::Snapshot { command: None, take } => recovery::take(g, &printer, &take).await,
        Command::Snapshot { command: Some(SnapshotCommand::List { env }), .. } => recovery::list(g, &printer, &env).await,
        Command::Snapshot { command: Some(SnapshotCommand::Show { env, id }), .. } => recovery::show_point(g, &printer, &env, &id).await,
        Command::Snapshot { command: Some(SnapshotCommand::Delete { env, id, yes }), .. } => {
            recovery::delete(g, &printer, &env, &id, yes).await
        }
        Command::Restore { env, from, region, zone, apply } => {
            apply::restore(g, &printer, &env, &from, region.as_deref(), zone.as_deref(), &apply).await
        }
        Command::Down { env, apply, keep_history } => apply::down(g, &printer, &env, &apply, keep_history).await,
    };
    match result {
        Ok(code) => code,
        Err(Failure { code, error }) => {
            // Invalid definitions are shown as diagnostics with their
            // sources; any other failure, whatever its exit code, as an error.
            match error.downcast_ref::<phoenix_engine::exit::InvalidDefinition>() {
                Some(invalid) => printer.diagnostics(&invalid.0),
                None => printer.error(&error),
            }
            code
        }
    }
}
