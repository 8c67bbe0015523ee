//! Commands about phoenix itself: `version` and `completions`.

use clap::CommandFactory;

use crate::args::Cli;
use crate::context;
use crate::exit::{CmdResult, Exit};
use crate::printer::{Printer, emit};
use phoenix_engine::event::Event;

/// The state backends compiled into this binary.
fn state_backends() -> Vec<&'static str> {
    let mut out = vec!["local"];
    if cfg!(feature = "s3") {
        out.push("s3");
    }
    out
}

pub fn version(printer: &Printer) -> CmdResult {
    let registry = context::registry();
    let providers: Vec<&str> = registry.provider_names().filter(|n| *n != phoenix_core::builtin::PROVIDER_NAME).collect();
    let version = env!("CARGO_PKG_VERSION");
    if printer.json {
        emit(&Event::Version {
            version: version.to_string(),
            providers: providers.iter().map(ToString::to_string).collect(),
            state_backends: state_backends().iter().map(ToString::to_string).collect(),
        });
    } else {
        outln!("phoenix {version}");
        outln!("providers: {}", providers.join(", "));
        outln!("state backends: {}", state_backends().join(", "));
    }
    Ok(Exit::Ok)
}

pub fn completions(shell: clap_complete::Shell) -> CmdResult {
    // Into a buffer first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "phoenix", &mut script);
    crate::out::stdout_bytes(&script);
    Ok(Exit::Ok)
}
