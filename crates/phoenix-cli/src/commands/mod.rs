//! One module per group of commands. Each returns an [`Exit`] or a [`Failure`].

mod apply;
mod inspect;
mod plan;

use crate::args::{Cli, Command, StateCommand};
use crate::exit::{Exit, Failure};
use crate::printer::Printer;

pub async fn run(cli: Cli) -> Exit {
    let printer = Printer { json: cli.global.json };
    let g = &cli.global;
    let result = match cli.command {
        Command::Validate { env } => inspect::validate(g, &printer, &env),
        Command::Render { env } => inspect::render(g, &printer, &env),
        Command::Graph { env } => inspect::graph(g, &printer, &env),
        Command::Status { env, refresh } => inspect::status(g, &printer, &env, refresh).await,
        Command::Output { env, name } => inspect::output(g, &printer, &env, name.as_deref()),
        Command::Unlock { env } => inspect::unlock(g, &printer, &env),
        Command::Import { env, resource, id, lock } => inspect::import(g, &printer, &env, &resource, &id, &lock).await,
        Command::State(StateCommand::List { env }) => inspect::state_list(g, &printer, &env),
        Command::State(StateCommand::Show { env, resource }) => inspect::state_show(g, &printer, &env, &resource),
        Command::State(StateCommand::Rm { env, resources, yes, lock }) => inspect::state_rm(g, &printer, &env, &resources, yes, &lock),
        Command::Plan { env, destroy, out, detailed_exitcode, targets } => {
            plan::plan(g, &printer, &env, destroy, out.as_deref(), detailed_exitcode, &targets).await
        }
        Command::Up { env, apply, plan } => apply::up(g, &printer, &env, &apply, plan.as_deref()).await,
        Command::Down { env, apply } => apply::down(g, &printer, &env, &apply).await,
    };
    match result {
        Ok(code) => code,
        Err(Failure { code, error }) => {
            // Invalid definitions were already printed as diagnostics.
            if code != Exit::Invalid {
                printer.error(&error);
            }
            code
        }
    }
}
